//! E2E suite of the Notification controller: it delivers each
//! NotificationRequest of its namespace to the request's receiver URL,
//! retries with backoff, sets `.status.phase` (Pending, then Sent or
//! Failed) with a `Delivered` condition saying why, and writes an audit
//! event to DataStorage.
//!
//! The environment is the DataStorage stack, the NotificationRequest CRD,
//! and the controller beside a mock receiver whose routes succeed
//! (`/webhook`, `/pagerduty`), always fail (`/fail`) or fail N times
//! first (`/flaky/<key>?failures=N`): all from `e2e_stacks`.
//!
//! Run with `cargo nextest run -p e2e-notification`.

mod audit;
mod delivery;
mod failure;
mod load;

use std::time::Duration;

use kindling::{BoxError, Environment, HttpClient, SetupContext, Suite, TestContext};
use kube::api::{DynamicObject, PostParams};
use serde_json::{Value, json};

async fn setup(setup: SetupContext) -> Result<Environment, BoxError> {
    Ok(Environment::builder(&setup)
        .stack(e2e_stacks::datastorage())
        .stack(e2e_stacks::notification_crds())
        .stack(e2e_stacks::notification())
        .up()
        .await?)
}

const NOTIFICATION: (&str, &str) = ("notification.kindling.dev/v1alpha1", "NotificationRequest");

/// A NotificationRequest named `name` for the mock receiver's `path`,
/// retried up to `max_retries` times 100 ms apart (doubling).
fn request(name: &str, path: &str, max_retries: u32) -> Value {
    json!({
        "apiVersion": NOTIFICATION.0,
        "kind": NOTIFICATION.1,
        "metadata": {"name": name},
        "spec": {
            "receiverURL": format!("http://mock-receiver{path}"),
            "message": format!("disk full on {name}"),
            "channel": "ops",
            "remediationRequestRef": format!("rr-of-{name}"),
            "maxRetries": max_retries,
            "retryBackoffMillis": 100,
        },
    })
}

/// Creates `object` in the suite's namespace.
async fn create(ctx: &TestContext<Environment>, object: Value) -> Result<(), BoxError> {
    ctx.objects(NOTIFICATION.0, NOTIFICATION.1)
        .await?
        .create(
            &PostParams::default(),
            &serde_json::from_value::<DynamicObject>(object)?,
        )
        .await?;
    Ok(())
}

/// The status of `name` once its phase is Sent or Failed.
async fn final_status(ctx: &TestContext<Environment>, name: &str) -> Result<Value, BoxError> {
    let api = ctx.objects(NOTIFICATION.0, NOTIFICATION.1).await?;
    let status = ctx
        .wait_for(
            &format!("NotificationRequest `{name}` to be Sent or Failed"),
            Duration::from_secs(60),
            || async {
                let object = api.get(name).await.map_err(|error| error.to_string())?;
                let status = object.data["status"].clone();
                match status["phase"].as_str() {
                    Some("Sent" | "Failed") => Ok(status),
                    _ => Err(format!("status {status}")),
                }
            },
        )
        .await?;
    Ok(status)
}

/// The `Delivered` condition of a status.
fn delivered_condition(status: &Value) -> Value {
    status["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|condition| condition["type"] == "Delivered")
        .cloned()
        .unwrap_or(Value::Null)
}

/// The mock receiver's API.
async fn receiver(ctx: &TestContext<Environment>) -> Result<HttpClient, BoxError> {
    Ok(ctx.http("mock-receiver", 80).await?)
}

/// What reached the mock receiver at `path`: `{path, count, bodies, attempts}`.
async fn received(receiver: &HttpClient, path: &str) -> Result<Value, BoxError> {
    let answer = receiver.get(&format!("/received?path={path}")).await?;
    if answer.status != 200 {
        return Err(format!("the receiver answered {answer:?}").into());
    }
    Ok(answer.json()?)
}

kindling::main!(
    Suite::with_setup(setup)
        .requires(kindling::cluster::requirement())
        .on_failure(Environment::collect_artifacts)
);
