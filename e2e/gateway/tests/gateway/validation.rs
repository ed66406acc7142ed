//! Input the Gateway cannot take gets 400 naming what is wrong.

use kindling::{Environment, TestContext, TestResult};
use serde_json::json;

use crate::{ALERTMANAGER, EVENT, alert, body, fingerprint, gateway, requests_of, webhook};

#[kindling::test(timeout = "60s")]
async fn bad_json_gets_400(ctx: TestContext<Environment>) -> TestResult {
    let gateway = gateway(ctx.env()).await?;
    for path in [ALERTMANAGER, EVENT] {
        let answer = gateway.post(path, "{\"alerts\": [").await?;
        assert_eq!(answer.status, 400, "{path}: {answer:?}");
        assert!(body(&answer)?["error"].is_string(), "{path}: {answer:?}");
    }
    Ok(())
}

#[kindling::test(timeout = "60s")]
async fn an_alert_without_its_name_gets_400_naming_the_field(
    ctx: TestContext<Environment>,
) -> TestResult {
    let fingerprint = fingerprint(&ctx, "noname");
    let mut nameless = alert(&fingerprint, "HighLatency");
    nameless["labels"]
        .as_object_mut()
        .ok_or("labels")?
        .remove("alertname");
    let answer = gateway(ctx.env())
        .await?
        .post_json(ALERTMANAGER, &webhook(vec![nameless]))
        .await?;
    assert_eq!(answer.status, 400, "{answer:?}");
    assert_eq!(
        body(&answer)?["field"],
        "alerts[0].labels.alertname",
        "{answer:?}"
    );
    assert!(requests_of(ctx.env(), &fingerprint).await?.is_empty());
    Ok(())
}

#[kindling::test(timeout = "60s")]
async fn a_misspelt_event_field_gets_400_naming_it(ctx: TestContext<Environment>) -> TestResult {
    let answer = gateway(ctx.env())
        .await?
        .post_json(
            EVENT,
            &json!({"name": "orders-1", "reason": "OOMKilled", "fired_at": "2026-11-30T10:00:00Z"}),
        )
        .await?;
    assert_eq!(answer.status, 400, "{answer:?}");
    assert!(
        answer.body.contains("fired_at"),
        "the misspelt field is named: {answer:?}"
    );
    Ok(())
}
