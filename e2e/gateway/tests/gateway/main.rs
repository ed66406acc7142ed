//! E2E suite of the Gateway: it takes Prometheus Alertmanager webhooks and
//! generic events, deduplicates them by fingerprint, writes an audit event
//! to DataStorage for each new signal and creates one RemediationRequest
//! for it; while DataStorage is unreachable it answers 503 with
//! `Retry-After` and creates nothing.
//!
//! The environment is the DataStorage stack, the RemediationRequest CRD and
//! the Gateway, all from `e2e_stacks`.
//!
//! Run with `cargo nextest run -p e2e-gateway`.

mod audit;
mod dedup;
mod intake;
mod outage;
mod validation;

use kindling::{BoxError, Environment, HttpClient, Response, SetupContext, Suite, TestContext};
use kube::api::{DynamicObject, ListParams};
use serde_json::{Value, json};

async fn setup(setup: SetupContext) -> Result<Environment, BoxError> {
    Ok(Environment::builder(&setup)
        .stack(e2e_stacks::datastorage())
        .stack(e2e_stacks::remediation_crds())
        .stack(e2e_stacks::gateway())
        .up()
        .await?)
}

const REMEDIATION: (&str, &str) = ("remediation.kindling.dev/v1alpha1", "RemediationRequest");
const ALERTMANAGER: &str = "/api/v1/signals/alertmanager";
const EVENT: &str = "/api/v1/signals/event";

/// The Gateway's API of `env`.
async fn gateway(env: &Environment) -> Result<HttpClient, BoxError> {
    Ok(env.http("gateway", 8080).await?)
}

/// One firing Alertmanager alert, identified by `fingerprint`.
fn alert(fingerprint: &str, alertname: &str) -> Value {
    json!({
        "labels": {"alertname": alertname, "severity": "critical", "namespace": "payments", "pod": "api-0"},
        "annotations": {"summary": "the API is slow"},
        "startsAt": "2026-11-30T09:15:00Z",
        "fingerprint": fingerprint,
        "status": "firing",
    })
}

/// An Alertmanager webhook carrying `alerts`.
fn webhook(alerts: Vec<Value>) -> Value {
    json!({
        "version": "4",
        "status": "firing",
        "receiver": "kindling",
        "groupKey": "{}:{alertname=\"HighLatency\"}",
        "alerts": alerts,
    })
}

/// The answer's body as JSON, or an error holding the whole answer.
fn body(answer: &Response) -> Result<Value, BoxError> {
    answer
        .json()
        .map_err(|error| format!("{error}: {answer:?}").into())
}

/// The names of the RemediationRequests an answer says were created.
fn created(answer: &Response) -> Result<Vec<String>, BoxError> {
    Ok(serde_json::from_value(body(answer)?["created"].clone())?)
}

/// The RemediationRequests of `env`'s namespace whose fingerprint is `fingerprint`.
async fn requests_of(env: &Environment, fingerprint: &str) -> Result<Vec<DynamicObject>, BoxError> {
    let all = env
        .objects(REMEDIATION.0, REMEDIATION.1)
        .await?
        .list(&ListParams::default())
        .await?;
    Ok(all
        .items
        .into_iter()
        .filter(|object| object.data["spec"]["fingerprint"] == fingerprint)
        .collect())
}

/// A fingerprint no other test uses.
fn fingerprint(ctx: &TestContext<Environment>, what: &str) -> String {
    ctx.unique_name(what)
}

kindling::main!(
    Suite::with_setup(setup)
        .requires(kindling::cluster::requirement())
        .on_failure(Environment::collect_artifacts)
);
