//! Every outcome is audited in DataStorage, read back through its API.

use e2e_stacks::AuditLog;
use kindling::{Environment, TestContext, TestResult};

use crate::{create, final_status, request};

#[kindling::test(timeout = "90s")]
async fn a_sent_request_is_audited(ctx: TestContext<Environment>) -> TestResult {
    let name = ctx.unique_name("audit-sent");
    create(&ctx, request(&name, "/webhook", 3)).await?;
    let status = final_status(&ctx, &name).await?;
    let audit = AuditLog::connect(ctx.env()).await?;
    let event = audit
        .wait_for_event(&ctx, &name, "notification.sent")
        .await?;
    assert_eq!(
        event["resource"],
        format!("notificationrequests/{name}").as_str()
    );
    // The audit records the attempts the request's status counts (one,
    // unless the first met a network not yet routing to the receiver).
    assert_eq!(event["payload"]["attempts"], status["attempts"], "{event}");
    assert_eq!(
        event["payload"]["receiverURL"], "http://mock-receiver/webhook",
        "{event}"
    );
    // Written by the controller's own identity, which DataStorage checked.
    assert_eq!(
        event["actor"],
        format!("system:serviceaccount:{}:notification", ctx.namespace()).as_str(),
        "{event}"
    );
    Ok(())
}

#[kindling::test(timeout = "90s")]
async fn a_failed_request_is_audited_with_its_reason(ctx: TestContext<Environment>) -> TestResult {
    let name = ctx.unique_name("audit-failed");
    create(&ctx, request(&name, "/fail", 1)).await?;
    final_status(&ctx, &name).await?;
    let audit = AuditLog::connect(ctx.env()).await?;
    let event = audit
        .wait_for_event(&ctx, &name, "notification.failed")
        .await?;
    assert_eq!(event["payload"]["attempts"], 2, "{event}");
    assert_eq!(event["payload"]["reason"], "RetriesExhausted", "{event}");
    let events = audit.events(&name).await?;
    assert_eq!(events.len(), 1, "one outcome, one event: {events:?}");
    Ok(())
}
