//! What the webhook denies is audited in DataStorage.

use e2e_stacks::AuditLog;
use kindling::{Environment, TestContext, TestResult};
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::json;

use crate::{REMEDIATION, remediation};

#[kindling::test(timeout = "60s")]
async fn a_denied_edit_is_audited_with_who_and_why(ctx: TestContext<Environment>) -> TestResult {
    let as_tester = ctx
        .objects_as("tester", REMEDIATION.0, REMEDIATION.1)
        .await?;
    let name = ctx.unique_name("denied");
    as_tester
        .create(
            &PostParams::default(),
            &serde_json::from_value(remediation(&name))?,
        )
        .await?;
    let denied = as_tester
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"source": "event"}})),
        )
        .await
        .expect_err("a changed source was admitted");
    let event = AuditLog::connect(ctx.env())
        .await?
        .wait_for_event(&ctx, &name, "authwebhook.denied")
        .await?;
    let payload = &event["payload"];
    assert_eq!(payload["operation"], "UPDATE", "{event}");
    assert_eq!(payload["kind"], "RemediationRequest", "{event}");
    assert_eq!(payload["namespace"], ctx.namespace(), "{event}");
    assert_eq!(
        payload["user"],
        format!("system:serviceaccount:{}:tester", ctx.namespace()).as_str(),
        "{event}"
    );
    let message = payload["message"].as_str().unwrap_or_default();
    assert!(
        !message.is_empty() && denied.to_string().contains(message),
        "the message the caller got ({denied}) is the one audited: {event}"
    );
    assert_eq!(
        event["actor"],
        format!("system:serviceaccount:{}:authwebhook", ctx.namespace()).as_str(),
        "{event}"
    );
    Ok(())
}
