//! Requests reach their receivers, through retries when they must.

use kindling::{Environment, TestContext, TestResult};

use crate::{create, delivered_condition, final_status, received, receiver, request};

#[kindling::test(timeout = "90s")]
async fn a_request_reaches_sent_and_its_receiver(ctx: TestContext<Environment>) -> TestResult {
    let name = ctx.unique_name("sent");
    create(&ctx, request(&name, "/webhook", 3)).await?;
    let status = final_status(&ctx, &name).await?;
    assert_eq!(status["phase"], "Sent", "{status}");
    assert_eq!(status["attempts"], 1, "{status}");
    let condition = delivered_condition(&status);
    assert_eq!(
        (&condition["status"], &condition["reason"]),
        (&"True".into(), &"Delivered".into()),
        "{status}"
    );
    let got = received(&receiver(&ctx).await?, "/webhook").await?;
    let body = got["bodies"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|body| body["name"] == name.as_str())
        .ok_or_else(|| format!("the receiver never got `{name}`: {got}"))?;
    assert_eq!(body["message"], format!("disk full on {name}").as_str());
    assert_eq!(
        body["remediationRequestRef"],
        format!("rr-of-{name}").as_str()
    );
    Ok(())
}

#[kindling::test(timeout = "90s")]
async fn an_accepted_answer_counts_as_sent(ctx: TestContext<Environment>) -> TestResult {
    // PagerDuty-like receivers answer 202 Accepted.
    let name = ctx.unique_name("accepted");
    create(&ctx, request(&name, "/pagerduty", 0)).await?;
    let status = final_status(&ctx, &name).await?;
    assert_eq!(status["phase"], "Sent", "{status}");
    let message = delivered_condition(&status)["message"].to_string();
    assert!(message.contains("202"), "{status}");
    Ok(())
}

#[kindling::test(timeout = "90s")]
async fn a_receiver_failing_twice_is_retried_until_sent(
    ctx: TestContext<Environment>,
) -> TestResult {
    let name = ctx.unique_name("flaky");
    let path = format!("/flaky/{name}");
    create(&ctx, request(&name, &format!("{path}?failures=2"), 3)).await?;
    let status = final_status(&ctx, &name).await?;
    assert_eq!(status["phase"], "Sent", "{status}");
    assert_eq!(status["attempts"], 3, "{status}");
    assert!(
        delivered_condition(&status)["message"]
            .as_str()
            .is_some_and(|message| message.contains("after 3 attempt")),
        "{status}"
    );
    let got = received(&receiver(&ctx).await?, &path).await?;
    assert_eq!(got["count"], 3, "{got}");
    assert_eq!(got["attempts"], serde_json::json!(["1", "2", "3"]), "{got}");
    Ok(())
}

#[kindling::test(timeout = "90s")]
async fn a_request_is_pending_while_it_is_retried(ctx: TestContext<Environment>) -> TestResult {
    let name = ctx.unique_name("pending");
    let mut slow = request(&name, &format!("/flaky/{name}?failures=3"), 3);
    // Long enough between attempts to be seen between them.
    slow["spec"]["retryBackoffMillis"] = 1000.into();
    create(&ctx, slow).await?;
    let api = ctx
        .objects(crate::NOTIFICATION.0, crate::NOTIFICATION.1)
        .await?;
    let pending = ctx
        .wait_for(
            "a failed attempt while Pending",
            std::time::Duration::from_secs(30),
            || async {
                let status = api
                    .get(&name)
                    .await
                    .map_err(|error| error.to_string())?
                    .data["status"]
                    .clone();
                match (status["phase"].as_str(), status["attempts"].as_u64()) {
                    (Some("Pending"), Some(1..)) => Ok(status),
                    _ => Err(format!("status {status}")),
                }
            },
        )
        .await?;
    assert!(pending["lastAttemptAt"].is_string(), "{pending}");
    let status = final_status(&ctx, &name).await?;
    assert_eq!(
        (&status["phase"], &status["attempts"]),
        (&"Sent".into(), &4.into()),
        "{status}"
    );
    Ok(())
}
