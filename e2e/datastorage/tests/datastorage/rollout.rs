//! A rollout of the service keeps it serving.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use kindling::wait::{Waiter, Workload};
use kindling::{Environment, TestContext, TestResult};
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use crate::{api, event};

#[kindling::test(timeout = "180s")]
async fn a_rollout_keeps_the_service_serving(ctx: TestContext<Environment>) -> TestResult {
    let api = api(ctx.env()).await?;
    let correlation = ctx.unique_name("rollout");
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..3)
        .map(|_| {
            let (api, stop, correlation) = (api.clone(), stop.clone(), correlation.clone());
            tokio::spawn(async move {
                let mut statuses = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let answer = api
                        .post_json(
                            "/api/v1/audit/events",
                            &event(&correlation, "rollout.write"),
                        )
                        .await;
                    statuses.push(
                        answer
                            .map(|answer| answer.status)
                            .map_err(|error| error.to_string()),
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                statuses
            })
        })
        .collect();
    // What `kubectl rollout restart` does.
    let deployments: Api<Deployment> = Api::namespaced(ctx.client().await?, ctx.namespace());
    deployments
        .patch(
            "datastorage",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"template": {"metadata": {"annotations": {
                "kindling.dev/restarted-at": chrono::Utc::now().to_rfc3339()
            }}}}})),
        )
        .await?;
    Waiter::new(ctx.client().await?, Vec::new(), Duration::from_secs(120))
        .wait(&[Workload::new("Deployment", ctx.namespace(), "datastorage")])
        .await?;
    stop.store(true, Ordering::Relaxed);
    let mut statuses = Vec::new();
    for writer in writers {
        statuses.extend(writer.await?);
    }
    let failed: Vec<_> = statuses
        .iter()
        .filter(|status| !matches!(status, Ok(201)))
        .collect();
    assert!(
        statuses.len() >= 10,
        "only {} writes during the rollout",
        statuses.len()
    );
    assert!(
        failed.is_empty(),
        "{} of {} writes failed during the rollout: {failed:?}",
        failed.len(),
        statuses.len()
    );
    Ok(())
}
