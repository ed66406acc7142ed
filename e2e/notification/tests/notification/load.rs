//! Many requests at once.

use futures_util::future::try_join_all;
use kindling::{Environment, TestContext, TestResult};

use crate::{create, final_status, received, receiver, request};

#[kindling::test(timeout = "180s")]
async fn forty_requests_at_once_all_complete(ctx: TestContext<Environment>) -> TestResult {
    let prefix = ctx.unique_name("many");
    let names: Vec<String> = (0..40).map(|i| format!("{prefix}-{i}")).collect();
    // Every fourth receiver fails once first.
    try_join_all(names.iter().enumerate().map(|(i, name)| {
        let path = if i % 4 == 0 {
            format!("/flaky/{name}?failures=1")
        } else {
            "/teams".to_owned()
        };
        create(&ctx, request(name, &path, 3))
    }))
    .await?;
    let statuses = try_join_all(names.iter().map(|name| final_status(&ctx, name))).await?;
    for (name, status) in names.iter().zip(&statuses) {
        assert_eq!(status["phase"], "Sent", "{name}: {status}");
    }
    let got = received(&receiver(&ctx).await?, "/teams").await?;
    let ours = got["bodies"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|body| {
            body["name"]
                .as_str()
                .is_some_and(|name| name.starts_with(&format!("{prefix}-")))
        })
        .count();
    assert_eq!(ours, 30, "each delivered once: {got}");
    Ok(())
}
