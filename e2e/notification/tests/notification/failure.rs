//! Requests that cannot be delivered end Failed, saying why.

use kindling::{Environment, TestContext, TestResult};

use crate::{create, delivered_condition, final_status, received, receiver, request};

#[kindling::test(timeout = "90s")]
async fn the_retry_budget_ends_in_failed_with_the_reason(
    ctx: TestContext<Environment>,
) -> TestResult {
    let name = ctx.unique_name("budget");
    create(&ctx, request(&name, "/fail", 2)).await?;
    let status = final_status(&ctx, &name).await?;
    assert_eq!(status["phase"], "Failed", "{status}");
    assert_eq!(
        status["attempts"], 3,
        "one attempt and two retries: {status}"
    );
    let condition = delivered_condition(&status);
    assert_eq!(condition["status"], "False", "{status}");
    assert_eq!(condition["reason"], "RetriesExhausted", "{status}");
    assert_eq!(
        condition["message"], "receiver answered 503 Service Unavailable on each of 3 attempts",
        "{status}"
    );
    let got = received(&receiver(&ctx).await?, "/fail").await?;
    let ours = got["bodies"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|body| body["name"] == name.as_str())
        .count();
    assert_eq!(ours, 3, "{got}");
    Ok(())
}

#[kindling::test(timeout = "90s")]
async fn an_invalid_receiver_url_fails_without_an_attempt(
    ctx: TestContext<Environment>,
) -> TestResult {
    let name = ctx.unique_name("badurl");
    let mut bad = request(&name, "/webhook", 3);
    bad["spec"]["receiverURL"] = "ftp://mock-receiver/webhook".into();
    create(&ctx, bad).await?;
    let status = final_status(&ctx, &name).await?;
    assert_eq!(status["phase"], "Failed", "{status}");
    let condition = delivered_condition(&status);
    assert_eq!(condition["reason"], "InvalidReceiverURL", "{status}");
    assert!(
        condition["message"]
            .as_str()
            .is_some_and(|message| message.contains("ftp://mock-receiver/webhook")),
        "{status}"
    );
    assert!(status["attempts"].as_u64().unwrap_or(0) == 0, "{status}");
    Ok(())
}

#[kindling::test(timeout = "90s")]
async fn a_receiver_nobody_serves_fails_naming_the_connection_error(
    ctx: TestContext<Environment>,
) -> TestResult {
    let name = ctx.unique_name("nobody");
    let mut lost = request(&name, "/webhook", 1);
    lost["spec"]["receiverURL"] = "http://no-such-service:8080/webhook".into();
    create(&ctx, lost).await?;
    let status = final_status(&ctx, &name).await?;
    assert_eq!(status["phase"], "Failed", "{status}");
    let condition = delivered_condition(&status);
    assert_eq!(condition["reason"], "RetriesExhausted", "{status}");
    assert!(
        condition["message"]
            .as_str()
            .is_some_and(|message| message.contains("no-such-service")),
        "{status}"
    );
    Ok(())
}
