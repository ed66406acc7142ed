//! Each format makes a RemediationRequest that says what the signal was.

use kindling::{Environment, TestContext, TestResult};
use serde_json::json;

use crate::{
    ALERTMANAGER, EVENT, REMEDIATION, alert, created, fingerprint, gateway, requests_of, webhook,
};

#[kindling::test(timeout = "60s")]
async fn an_alertmanager_alert_creates_a_request_with_its_spec(
    ctx: TestContext<Environment>,
) -> TestResult {
    let fingerprint = fingerprint(&ctx, "am");
    let answer = gateway(ctx.env())
        .await?
        .post_json(
            ALERTMANAGER,
            &webhook(vec![alert(&fingerprint, "HighLatency")]),
        )
        .await?;
    assert_eq!(answer.status, 201, "{answer:?}");
    let names = created(&answer)?;
    assert_eq!(names.len(), 1, "{answer:?}");
    let request = ctx
        .objects(REMEDIATION.0, REMEDIATION.1)
        .await?
        .get(&names[0])
        .await?;
    let spec = &request.data["spec"];
    assert_eq!(spec["signalName"], "HighLatency", "{spec}");
    assert_eq!(spec["fingerprint"], fingerprint.as_str(), "{spec}");
    assert_eq!(spec["source"], "alertmanager", "{spec}");
    assert_eq!(spec["severity"], "critical", "{spec}");
    assert_eq!(spec["namespace"], "payments", "{spec}");
    assert_eq!(spec["labels"]["pod"], "api-0", "{spec}");
    assert_eq!(spec["firedAt"], "2026-11-30T09:15:00Z", "{spec}");
    Ok(())
}

#[kindling::test(timeout = "60s")]
async fn a_generic_event_creates_a_request_with_its_spec(
    ctx: TestContext<Environment>,
) -> TestResult {
    let fingerprint = fingerprint(&ctx, "event");
    let answer = gateway(ctx.env())
        .await?
        .post_json(
            EVENT,
            &json!({
                "name": "orders-7d9f",
                "reason": "OOMKilled",
                "namespace": "orders",
                "severity": "warning",
                "labels": {"team": "checkout"},
                "firedAt": "2026-11-30T10:00:00+02:00",
                "fingerprint": fingerprint,
            }),
        )
        .await?;
    assert_eq!(answer.status, 201, "{answer:?}");
    let found = requests_of(ctx.env(), &fingerprint).await?;
    assert_eq!(found.len(), 1, "{found:?}");
    let spec = &found[0].data["spec"];
    assert_eq!(spec["signalName"], "OOMKilled", "{spec}");
    assert_eq!(spec["source"], "event", "{spec}");
    assert_eq!(spec["severity"], "warning", "{spec}");
    assert_eq!(spec["namespace"], "orders", "{spec}");
    assert_eq!(spec["labels"]["team"], "checkout", "{spec}");
    assert_eq!(spec["firedAt"], "2026-11-30T08:00:00Z", "in UTC: {spec}");
    assert_eq!(
        created(&answer)?,
        vec![found[0].metadata.name.clone().unwrap_or_default()]
    );
    Ok(())
}

#[kindling::test(timeout = "60s")]
async fn each_firing_alert_makes_a_request_and_resolved_ones_none(
    ctx: TestContext<Environment>,
) -> TestResult {
    let (first, second, resolved) = (
        fingerprint(&ctx, "one"),
        fingerprint(&ctx, "two"),
        fingerprint(&ctx, "resolved"),
    );
    let mut done = alert(&resolved, "DiskFull");
    done["status"] = "resolved".into();
    let answer = gateway(ctx.env())
        .await?
        .post_json(
            ALERTMANAGER,
            &webhook(vec![
                alert(&first, "HighLatency"),
                alert(&second, "ErrorBudgetBurn"),
                done,
            ]),
        )
        .await?;
    assert_eq!(answer.status, 201, "{answer:?}");
    assert_eq!(created(&answer)?.len(), 2, "{answer:?}");
    assert_eq!(requests_of(ctx.env(), &first).await?.len(), 1);
    assert_eq!(requests_of(ctx.env(), &second).await?.len(), 1);
    assert!(requests_of(ctx.env(), &resolved).await?.is_empty());
    Ok(())
}
