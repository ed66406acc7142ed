//! Concurrent writers.

use kindling::{Environment, TestContext, TestResult};

use crate::{api, event, events_of};

#[kindling::test(timeout = "120s")]
async fn twenty_concurrent_writers_all_land(ctx: TestContext<Environment>) -> TestResult {
    let api = api(ctx.env()).await?;
    let correlation = ctx.unique_name("load");
    let writes = (0..20).map(|_| {
        let (api, correlation) = (api.clone(), correlation.clone());
        async move {
            api.post_json("/api/v1/audit/events", &event(&correlation, "load.write"))
                .await
                .map(|answer| answer.status)
        }
    });
    let statuses = futures_util::future::join_all(writes).await;
    let created = statuses
        .iter()
        .filter(|status| matches!(status, Ok(201)))
        .count();
    assert_eq!(created, 20, "{statuses:?}");
    assert_eq!(events_of(&api, &correlation).await?.len(), 20);
    Ok(())
}
