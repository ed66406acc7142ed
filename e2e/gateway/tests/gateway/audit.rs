//! Each new signal is audited in DataStorage, read back through its API.

use e2e_stacks::AuditLog;
use kindling::{Environment, TestContext, TestResult};

use crate::{ALERTMANAGER, alert, created, fingerprint, gateway, webhook};

#[kindling::test(timeout = "60s")]
async fn a_new_signal_is_audited_once_by_the_gateway(ctx: TestContext<Environment>) -> TestResult {
    let fingerprint = fingerprint(&ctx, "audit");
    let gateway = gateway(ctx.env()).await?;
    let payload = webhook(vec![alert(&fingerprint, "HighLatency")]);
    let answer = gateway.post_json(ALERTMANAGER, &payload).await?;
    assert_eq!(answer.status, 201, "{answer:?}");
    let name = created(&answer)?.remove(0);
    // A duplicate writes nothing more.
    assert_eq!(gateway.post_json(ALERTMANAGER, &payload).await?.status, 202);

    let events = AuditLog::connect(ctx.env()).await?.events(&name).await?;
    assert_eq!(events.len(), 1, "{events:?}");
    let event = &events[0];
    assert_eq!(event["event_type"], "gateway.signal.received", "{event}");
    assert_eq!(
        event["resource"],
        format!("remediationrequests/{name}").as_str()
    );
    assert_eq!(
        event["payload"]["fingerprint"],
        fingerprint.as_str(),
        "{event}"
    );
    assert_eq!(event["payload"]["signalName"], "HighLatency", "{event}");
    assert_eq!(event["occurred_at"], "2026-11-30T09:15:00Z", "{event}");
    assert_eq!(
        event["actor"],
        format!("system:serviceaccount:{}:gateway", ctx.namespace()).as_str(),
        "{event}"
    );
    Ok(())
}
