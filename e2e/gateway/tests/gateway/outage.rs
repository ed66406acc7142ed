//! While DataStorage is away the Gateway answers 503 with `Retry-After`
//! and creates nothing; once it is back, the same alert goes through.

use std::time::Duration;

use kindling::{Environment, TestContext, TestResult};

use crate::{ALERTMANAGER, alert, fingerprint, gateway, requests_of, webhook};

#[kindling::test(timeout = "300s")]
async fn with_datastorage_scaled_to_zero_it_answers_503_and_then_recovers(
    ctx: TestContext<Environment>,
) -> TestResult {
    // The tests beside this one need their DataStorage: this one breaks a
    // copy of the stack of its own.
    let copy = ctx.isolated_copy("outage").await?;
    let gateway = gateway(&copy).await?;
    let fingerprint = fingerprint(&ctx, "outage");
    let payload = webhook(vec![alert(&fingerprint, "HighLatency")]);

    copy.scale("datastorage", 0).await?;
    let refused = gateway.post_json(ALERTMANAGER, &payload).await?;
    assert_eq!(refused.status, 503, "{refused:?}");
    assert_eq!(refused.header("retry-after"), Some("5"), "{refused:?}");
    assert!(requests_of(&copy, &fingerprint).await?.is_empty());

    copy.scale("datastorage", 2).await?;
    let waiter = copy.waiter(Duration::from_secs(60)).await?;
    let accepted = waiter
        .until_ok(
            "the Gateway to take the alert again",
            copy.namespace(),
            || async {
                match gateway.post_json(ALERTMANAGER, &payload).await {
                    Ok(answer) if answer.status == 201 => Ok(answer),
                    Ok(answer) => Err(format!("answered {answer:?}")),
                    Err(error) => Err(error.to_string()),
                }
            },
        )
        .await?;
    assert_eq!(accepted.status, 201);
    assert_eq!(requests_of(&copy, &fingerprint).await?.len(), 1);
    copy.delete_namespace().await?;
    Ok(())
}
