//! E2E suite of the AuthWebhook: mutating and validating admission
//! webhooks over TLS for the team's custom resources. The environment
//! deploys both CRDs, the webhook server with a certificate signed by a CA
//! of the environment, and the webhook configurations, whose `caBundle`
//! kindling fills and whose scope kindling narrows to the suite's
//! namespace, so suites side by side never intercept each other; and the
//! DataStorage stack, where the webhook audits what it denies.
//!
//! Run with `cargo nextest run -p e2e-authwebhook`.

mod admission;
mod audit;
mod concurrency;
mod tls;

use kindling::{BoxError, Environment, SetupContext, Suite};
use serde_json::{Value, json};

async fn setup(setup: SetupContext) -> Result<Environment, BoxError> {
    Ok(Environment::builder(&setup)
        .stack(e2e_stacks::datastorage())
        .stack(e2e_stacks::remediation_crds())
        .stack(e2e_stacks::notification_crds())
        .stack(e2e_stacks::authwebhook())
        .up()
        .await?)
}

const REMEDIATION: (&str, &str) = ("remediation.kindling.dev/v1alpha1", "RemediationRequest");
const NOTIFICATION: (&str, &str) = ("notification.kindling.dev/v1alpha1", "NotificationRequest");

/// A RemediationRequest named `name`.
fn remediation(name: &str) -> Value {
    json!({
        "apiVersion": REMEDIATION.0,
        "kind": REMEDIATION.1,
        "metadata": {"name": name},
        "spec": {"signalName": "HighCPU", "fingerprint": format!("fp-{name}"), "source": "alertmanager", "severity": "critical"},
    })
}

/// A NotificationRequest named `name` for RemediationRequest `reference`.
fn notification(name: &str, reference: Option<&str>) -> Value {
    let mut object = json!({
        "apiVersion": NOTIFICATION.0,
        "kind": NOTIFICATION.1,
        "metadata": {"name": name},
        "spec": {"receiverURL": "http://receiver/webhook", "message": "CPU is high"},
    });
    if let Some(reference) = reference {
        object["spec"]["remediationRequestRef"] = Value::from(reference);
    }
    object
}

kindling::main!(
    Suite::with_setup(setup)
        .requires(kindling::cluster::requirement())
        .on_failure(Environment::collect_artifacts)
);
