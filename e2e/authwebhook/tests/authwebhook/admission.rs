//! Mutation stamps the caller; validation refuses what must not be.

use kindling::{Environment, TestContext, TestResult};
use kube::api::{DynamicObject, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::{NOTIFICATION, REMEDIATION, notification, remediation};

/// The API server's message for a refused request.
fn refusal(error: kube::Error) -> String {
    match error {
        kube::Error::Api(response) => format!("{} {}", response.code, response.message),
        other => other.to_string(),
    }
}

#[kindling::test(timeout = "60s")]
async fn mutation_stamps_the_user_who_made_the_object(ctx: TestContext<Environment>) -> TestResult {
    let as_tester = ctx
        .objects_as("tester", REMEDIATION.0, REMEDIATION.1)
        .await?;
    let name = ctx.unique_name("stamp");
    let mut sent = remediation(&name);
    // A caller cannot choose who it claims to be.
    sent["spec"]["requestedBy"] = json!("somebody-else");
    let created = as_tester
        .create(
            &PostParams::default(),
            &serde_json::from_value::<DynamicObject>(sent)?,
        )
        .await?;
    let tester = format!("system:serviceaccount:{}:tester", ctx.namespace());
    assert_eq!(
        created.data["spec"]["requestedBy"],
        tester.as_str(),
        "{:?}",
        created.data
    );
    let annotations = created.metadata.annotations.clone().unwrap_or_default();
    assert_eq!(
        annotations.get("authwebhook.kindling.dev/changed-by"),
        Some(&tester)
    );
    // A change by another identity is stamped as that one's; the creator stays.
    let as_admin = ctx.objects(REMEDIATION.0, REMEDIATION.1).await?;
    let changed = as_admin
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"severity": "warning"}})),
        )
        .await?;
    assert_eq!(changed.data["spec"]["requestedBy"], tester.as_str());
    let changer = changed
        .metadata
        .annotations
        .unwrap_or_default()
        .remove("authwebhook.kindling.dev/changed-by")
        .unwrap_or_default();
    assert!(
        !changer.is_empty() && changer != tester,
        "changed by {changer}"
    );
    Ok(())
}

#[kindling::test(timeout = "60s")]
async fn an_edit_of_an_immutable_field_is_denied_with_the_webhooks_message(
    ctx: TestContext<Environment>,
) -> TestResult {
    let api = ctx.objects(REMEDIATION.0, REMEDIATION.1).await?;
    let name = ctx.unique_name("immutable");
    api.create(
        &PostParams::default(),
        &serde_json::from_value(remediation(&name))?,
    )
    .await?;
    let denied = api
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"fingerprint": "another"}})),
        )
        .await
        .map(drop)
        .map_err(refusal)
        .expect_err("a changed fingerprint was admitted");
    assert!(
        denied.contains("422") && denied.contains(&format!("spec.fingerprint is immutable: it identifies the signal (was \"fp-{name}\", now \"another\")")),
        "{denied}"
    );
    assert!(
        denied.contains("rr.validate.authwebhook.kindling.dev"),
        "the webhook is named: {denied}"
    );
    let kept = api.get(&name).await?;
    assert_eq!(
        kept.data["spec"]["fingerprint"],
        format!("fp-{name}").as_str()
    );
    Ok(())
}

#[kindling::test(timeout = "60s")]
async fn a_notification_without_its_reference_is_denied(
    ctx: TestContext<Environment>,
) -> TestResult {
    let api = ctx.objects(NOTIFICATION.0, NOTIFICATION.1).await?;
    let denied = api
        .create(
            &PostParams::default(),
            &serde_json::from_value(notification(&ctx.unique_name("orphan"), None))?,
        )
        .await
        .map(drop)
        .map_err(refusal)
        .expect_err("a notification without reference was admitted");
    assert!(
        denied.contains("spec.remediationRequestRef is required: a NotificationRequest must name the RemediationRequest it belongs to"),
        "{denied}"
    );
    let dangling = api
        .create(
            &PostParams::default(),
            &serde_json::from_value(notification(
                &ctx.unique_name("dangling"),
                Some("rr-nowhere"),
            ))?,
        )
        .await
        .map(drop)
        .map_err(refusal)
        .expect_err("a notification naming no existing request was admitted");
    assert!(
        dangling.contains(&format!(
            "RemediationRequest \"rr-nowhere\" does not exist in namespace \"{}\"",
            ctx.namespace()
        )),
        "{dangling}"
    );
    Ok(())
}

#[kindling::test(timeout = "60s")]
async fn a_notification_of_an_existing_request_is_admitted_and_stamped(
    ctx: TestContext<Environment>,
) -> TestResult {
    let requests = ctx.objects(REMEDIATION.0, REMEDIATION.1).await?;
    let reference = ctx.unique_name("ref");
    requests
        .create(
            &PostParams::default(),
            &serde_json::from_value(remediation(&reference))?,
        )
        .await?;
    let notifications = ctx
        .objects_as("tester", NOTIFICATION.0, NOTIFICATION.1)
        .await?;
    let created = notifications
        .create(
            &PostParams::default(),
            &serde_json::from_value(notification(&ctx.unique_name("ok"), Some(&reference)))?,
        )
        .await?;
    assert_eq!(
        created.data["spec"]["requestedBy"],
        format!("system:serviceaccount:{}:tester", ctx.namespace()).as_str()
    );
    Ok(())
}
