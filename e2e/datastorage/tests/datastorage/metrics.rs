//! Metrics in Prometheus text format on a port of their own.

use k8s_openapi::api::core::v1::Pod;
use kindling::{Environment, HttpClient, TestContext, TestResult};
use kube::api::{Api, ListParams};

use crate::{api, event};

/// `datastorage_events_written_total` summed over every replica.
async fn events_written(ctx: &TestContext<Environment>) -> Result<f64, kindling::BoxError> {
    let pods = Api::<Pod>::namespaced(ctx.client().await?, ctx.namespace())
        .list(&ListParams::default().labels("app=datastorage"))
        .await?;
    let mut total = 0.0;
    for pod in pods
        .items
        .iter()
        .filter(|pod| pod.metadata.deletion_timestamp.is_none())
    {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let metrics = HttpClient::through(ctx.pod_endpoint(&name, 9090).await?)
            .get("/metrics")
            .await?;
        assert_eq!(metrics.status, 200, "{metrics:?}");
        assert!(
            metrics
                .body
                .contains("# TYPE datastorage_events_written_total counter"),
            "{}",
            metrics.body
        );
        total += metrics
            .body
            .lines()
            .filter(|line| line.starts_with("datastorage_events_written_total"))
            .filter_map(|line| line.split_whitespace().last()?.parse::<f64>().ok())
            .sum::<f64>();
    }
    Ok(total)
}

#[kindling::test(timeout = "60s")]
async fn the_write_counter_moves(ctx: TestContext<Environment>) -> TestResult {
    let api = api(ctx.env()).await?;
    let correlation = ctx.unique_name("metrics");
    let before = events_written(&ctx).await?;
    for _ in 0..3 {
        let created = api
            .post_json("/api/v1/audit/events", &event(&correlation, "metric.tick"))
            .await?;
        assert_eq!(created.status, 201, "{created:?}");
    }
    let after = events_written(&ctx).await?;
    // Other tests may write meanwhile: at least these three.
    assert!(
        after - before >= 3.0,
        "the counter went from {before} to {after}"
    );
    Ok(())
}
