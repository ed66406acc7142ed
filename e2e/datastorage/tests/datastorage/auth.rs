//! Requests are authenticated through the TokenReview API.

use kindling::{Environment, TestContext, TestResult};
use serde_json::Value;

use crate::{api, event};

#[kindling::test(timeout = "60s")]
async fn a_request_without_a_token_is_unauthorized(ctx: TestContext<Environment>) -> TestResult {
    let anonymous = ctx.http("datastorage", 8080).await?;
    let write = anonymous
        .post_json("/api/v1/audit/events", &event("anonymous", "user.login"))
        .await?;
    assert_eq!(write.status, 401, "{write:?}");
    let read = anonymous.get("/api/v1/audit/events").await?;
    assert_eq!(read.status, 401, "{read:?}");
    Ok(())
}

#[kindling::test(timeout = "60s")]
async fn a_token_the_cluster_rejects_is_unauthorized(ctx: TestContext<Environment>) -> TestResult {
    // A well-formed token signed by nobody the cluster trusts.
    let forged = "eyJhbGciOiJSUzI1NiIsImtpZCI6ImZvcmdlZCJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6ZGVmYXVsdDp0ZXN0ZXIifQ.c2lnbmF0dXJl";
    let client = ctx.http("datastorage", 8080).await?.bearer(forged);
    let answer = client.get("/api/v1/audit/events").await?;
    assert_eq!(answer.status, 401, "{answer:?}");
    assert_eq!(
        answer.json::<Value>()?["error"],
        "token rejected",
        "{answer:?}"
    );
    Ok(())
}

#[kindling::test(timeout = "60s")]
async fn the_caller_is_stamped_as_the_actor(ctx: TestContext<Environment>) -> TestResult {
    let api = api(ctx.env()).await?;
    let correlation = ctx.unique_name("actor");
    let created = api
        .post_json("/api/v1/audit/events", &event(&correlation, "user.login"))
        .await?;
    assert_eq!(created.status, 201, "{created:?}");
    let read = crate::events_of(&api, &correlation).await?;
    let expected = format!("system:serviceaccount:{}:tester", ctx.namespace());
    assert_eq!(read[0]["actor"], expected.as_str(), "{read:?}");
    Ok(())
}
