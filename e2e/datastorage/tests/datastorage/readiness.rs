//! `/readyz` is ready only while PostgreSQL and Redis both answer.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kindling::{Environment, HttpClient, TestContext, TestResult};
use kube::api::{Api, ListParams};
use serde_json::Value;

#[kindling::test(timeout = "240s")]
async fn readiness_follows_redis_going_away_and_coming_back(
    ctx: TestContext<Environment>,
) -> TestResult {
    // Scaling Redis to zero in the suite's namespace would fail the tests
    // beside this one: it gets a stack of its own.
    let copy = ctx.isolated_copy("ready").await?;
    let pods = Api::<Pod>::namespaced(copy.client().await?, copy.namespace())
        .list(&ListParams::default().labels("app=datastorage"))
        .await?;
    let pod = pods.items[0].metadata.name.clone().unwrap_or_default();
    let health = HttpClient::through(copy.pod_endpoint(&pod, 8081).await?);
    let ready = health.get("/readyz").await?;
    assert_eq!(ready.status, 200, "{ready:?}");

    copy.scale("redis", 0).await?;
    let waiter = copy.waiter(Duration::from_secs(90)).await?;
    waiter
        .until(
            "`/readyz` to say Redis is down",
            copy.namespace(),
            || async {
                health.get("/readyz").await.is_ok_and(|answer| {
                    answer.status == 503
                        && answer
                            .json::<Value>()
                            .is_ok_and(|body| body["postgres"] == "ok" && body["redis"] != "ok")
                })
            },
        )
        .await?;
    copy.scale("redis", 1).await?;
    waiter
        .until("`/readyz` to be ready again", copy.namespace(), || async {
            health
                .get("/readyz")
                .await
                .is_ok_and(|answer| answer.status == 200)
        })
        .await?;
    copy.delete_namespace().await?;
    Ok(())
}
