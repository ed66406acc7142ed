//! What the service wrote, read straight from PostgreSQL, and data that
//! outlives a restart of the database's pod.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kindling::wait::Workload;
use kindling::{Environment, TestContext, TestResult};
use kube::api::{Api, DeleteParams};
use serde_json::{Value, json};

use crate::{api, event, events_of};

/// A SQL client of the environment's PostgreSQL, through a port-forward,
/// with the credentials the environment generated.
async fn database(
    env: &Environment,
) -> Result<(tokio_postgres::Client, kindling::Endpoint), kindling::BoxError> {
    let endpoint = env.endpoint("postgres", 5432).await?;
    let (client, connection) = tokio_postgres::Config::new()
        .host("127.0.0.1")
        .port(endpoint.address().port())
        .user(&env.secret("postgres-credentials", "username").await?)
        .password(env.secret("postgres-credentials", "password").await?)
        .dbname(&env.secret("postgres-credentials", "database").await?)
        .connect(tokio_postgres::NoTls)
        .await?;
    tokio::spawn(connection);
    Ok((client, endpoint))
}

#[kindling::test(timeout = "60s")]
async fn the_rows_in_postgres_are_the_ones_the_api_reported(
    ctx: TestContext<Environment>,
) -> TestResult {
    let api = api(ctx.env()).await?;
    let correlation = ctx.unique_name("rows");
    let events: Vec<Value> = (0..3)
        .map(|_| event(&correlation, "invoice.sent"))
        .collect();
    let created = api
        .post_json("/api/v1/audit/events/batch", &json!({"events": events}))
        .await?;
    assert_eq!(created.status, 201, "{created:?}");
    let reported = events_of(&api, &correlation).await?;
    let (sql, _forward) = database(ctx.env()).await?;
    let rows = sql
        .query(
            "SELECT event_id::text, event_type, correlation_id, payload::text FROM audit_events WHERE correlation_id = $1 ORDER BY occurred_at, event_id",
            &[&correlation],
        )
        .await?;
    assert_eq!(rows.len(), reported.len());
    for (row, event) in rows.iter().zip(&reported) {
        assert_eq!(
            row.get::<_, String>(0),
            event["event_id"].as_str().unwrap_or_default()
        );
        assert_eq!(
            row.get::<_, String>(1),
            event["event_type"].as_str().unwrap_or_default()
        );
        assert_eq!(row.get::<_, String>(2), correlation);
        let payload: Value = serde_json::from_str(&row.get::<_, String>(3))?;
        assert_eq!(payload, event["payload"]);
    }
    let migrations = sql
        .query(
            "SELECT version FROM schema_migrations ORDER BY version",
            &[],
        )
        .await?;
    assert!(
        migrations.len() >= 2,
        "the migrations Job ran {} migrations",
        migrations.len()
    );
    Ok(())
}

#[kindling::test(timeout = "240s")]
async fn the_data_survives_a_restart_of_the_database_pod(
    ctx: TestContext<Environment>,
) -> TestResult {
    // A stack of this test's own: the suite's other tests keep their database.
    let copy = ctx.isolated_copy("restart").await?;
    let api = api(&copy).await?;
    let correlation = ctx.unique_name("survives");
    let created = api
        .post_json("/api/v1/audit/events", &event(&correlation, "user.login"))
        .await?;
    assert_eq!(created.status, 201, "{created:?}");
    let pods: Api<Pod> = Api::namespaced(copy.client().await?, copy.namespace());
    let before = pods.get("postgres-0").await?.metadata.uid;
    pods.delete("postgres-0", &DeleteParams::default()).await?;
    let waiter = copy.waiter(Duration::from_secs(180)).await?;
    waiter
        .until("a new postgres-0 pod", copy.namespace(), || async {
            pods.get_opt("postgres-0")
                .await
                .ok()
                .flatten()
                .is_some_and(|pod| {
                    pod.metadata.uid != before && pod.metadata.deletion_timestamp.is_none()
                })
        })
        .await?;
    waiter
        .wait(&[
            Workload::new("StatefulSet", copy.namespace(), "postgres"),
            Workload::new("Deployment", copy.namespace(), "datastorage"),
        ])
        .await?;
    waiter
        .until(
            "the event to be read back after the restart",
            copy.namespace(),
            || async {
                events_of(&api, &correlation)
                    .await
                    .is_ok_and(|events| events.len() == 1)
            },
        )
        .await?;
    copy.delete_namespace().await?;
    Ok(())
}
