//! Admissions side by side.

use kindling::{Environment, TestContext, TestResult};
use kube::api::{DynamicObject, PostParams};

use crate::{REMEDIATION, remediation};

#[kindling::test(timeout = "90s")]
async fn ten_concurrent_admissions_all_succeed(ctx: TestContext<Environment>) -> TestResult {
    let api = ctx
        .objects_as("tester", REMEDIATION.0, REMEDIATION.1)
        .await?;
    let prefix = ctx.unique_name("many");
    let creates = (0..10).map(|index| {
        let api = api.clone();
        let name = format!("{prefix}-{index}");
        async move {
            let object: DynamicObject = serde_json::from_value(remediation(&name))?;
            api.create(&PostParams::default(), &object)
                .await
                .map_err(kindling::BoxError::from)
        }
    });
    let created = futures_util::future::join_all(creates).await;
    let mut stamped = 0;
    for result in created {
        let object = result?;
        if object.data["spec"]["requestedBy"]
            .as_str()
            .is_some_and(|user| user.ends_with(":tester"))
        {
            stamped += 1;
        }
    }
    assert_eq!(stamped, 10);
    Ok(())
}
