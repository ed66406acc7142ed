//! A signal seen before makes no second RemediationRequest.

use futures_util::future::try_join_all;
use kindling::{Environment, TestContext, TestResult};

use crate::{ALERTMANAGER, alert, body, fingerprint, gateway, requests_of, webhook};

#[kindling::test(timeout = "60s")]
async fn a_duplicate_alert_creates_no_second_request(ctx: TestContext<Environment>) -> TestResult {
    let fingerprint = fingerprint(&ctx, "dup");
    let gateway = gateway(ctx.env()).await?;
    let payload = webhook(vec![alert(&fingerprint, "HighLatency")]);
    let first = gateway.post_json(ALERTMANAGER, &payload).await?;
    assert_eq!(first.status, 201, "{first:?}");
    let again = gateway.post_json(ALERTMANAGER, &payload).await?;
    assert_eq!(again.status, 202, "{again:?}");
    let answer = body(&again)?;
    assert_eq!(answer["created"], serde_json::json!([]), "{answer}");
    assert_eq!(answer["duplicates"], body(&first)?["created"], "{answer}");
    assert_eq!(requests_of(ctx.env(), &fingerprint).await?.len(), 1);
    Ok(())
}

#[kindling::test(timeout = "60s")]
async fn twenty_copies_of_one_alert_at_once_make_one_request(
    ctx: TestContext<Environment>,
) -> TestResult {
    let fingerprint = fingerprint(&ctx, "race");
    let gateway = gateway(ctx.env()).await?;
    let payload = webhook(vec![alert(&fingerprint, "HighLatency")]);
    let answers = try_join_all((0..20).map(|_| gateway.post_json(ALERTMANAGER, &payload))).await?;
    let mut statuses: Vec<u16> = answers.iter().map(|answer| answer.status).collect();
    statuses.sort();
    assert_eq!(
        statuses.iter().filter(|&&status| status == 201).count(),
        1,
        "{answers:?}"
    );
    assert!(
        statuses
            .iter()
            .all(|&status| status == 201 || status == 202),
        "{answers:?}"
    );
    assert_eq!(requests_of(ctx.env(), &fingerprint).await?.len(), 1);
    Ok(())
}
