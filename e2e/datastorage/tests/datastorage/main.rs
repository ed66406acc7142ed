//! E2E suite of the DataStorage service: an audit-event store in Go over
//! PostgreSQL and Redis, with migrations, authentication by TokenReview,
//! health and metrics on ports of their own.
//!
//! The environment is the DataStorage stack (`e2e_stacks::datastorage`),
//! in stages: the database (PostgreSQL on a PersistentVolumeClaim, Redis,
//! and generated credentials), the migrations Job, then the service.
//! PostgreSQL and Redis are third-party images: `postgres:16` and
//! `redis:7` where they were pulled, else built here from Debian's
//! packages on a base made by mmdebstrap. kindling fingerprints all of
//! it: a changed service is rebuilt and rolled out on the next run while
//! the database keeps its pods and data, and an unchanged one reuses
//! everything.
//!
//! Run with `cargo nextest run -p e2e-datastorage`.

mod auth;
mod dedup;
mod events;
mod load;
mod metrics;
mod readiness;
mod rollout;
mod storage;
mod validation;

use kindling::{BoxError, Environment, HttpClient, SetupContext, Suite};

/// The suite's environment: the DataStorage stack (`e2e/stacks`).
async fn setup(setup: SetupContext) -> Result<Environment, BoxError> {
    Ok(Environment::builder(&setup)
        .stack(e2e_stacks::datastorage())
        .up()
        .await?)
}

/// The service's API as the suite's `tester` ServiceAccount.
async fn api(env: &Environment) -> Result<HttpClient, BoxError> {
    Ok(env
        .http("datastorage", 8080)
        .await?
        .bearer(env.token("tester").await?))
}

/// One event, new each call, of `event_type` under `correlation_id`.
fn event(correlation_id: &str, event_type: &str) -> serde_json::Value {
    serde_json::json!({
        "event_id": uuid::Uuid::new_v4().to_string(),
        "event_type": event_type,
        "correlation_id": correlation_id,
        "resource": "orders/42",
        "occurred_at": chrono::Utc::now().to_rfc3339(),
        "payload": {"source": "e2e", "attempt": 1},
    })
}

/// The events the API holds for `correlation_id`, one page of up to 500.
async fn events_of(
    api: &HttpClient,
    correlation_id: &str,
) -> Result<Vec<serde_json::Value>, BoxError> {
    let answer = api
        .get(&format!(
            "/api/v1/audit/events?correlation_id={correlation_id}&limit=500"
        ))
        .await?;
    if answer.status != 200 {
        return Err(format!("query answered {answer:?}").into());
    }
    let body: serde_json::Value = answer.json()?;
    Ok(body["events"].as_array().cloned().unwrap_or_default())
}

kindling::main!(
    Suite::with_setup(setup)
        .requires(kindling::cluster::requirement())
        .on_failure(Environment::collect_artifacts)
);
