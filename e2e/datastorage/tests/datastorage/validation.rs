//! Bad input gets 400 with a message naming the field.

use kindling::{Environment, TestContext, TestResult};
use serde_json::{Value, json};

use crate::{api, event};

#[kindling::test(timeout = "60s")]
async fn bad_input_names_the_field(ctx: TestContext<Environment>) -> TestResult {
    let api = api(ctx.env()).await?;
    let correlation = ctx.unique_name("bad");
    let with = |field: &str, value: Value| {
        let mut one = event(&correlation, "user.login");
        one[field] = value;
        one
    };
    let without = |field: &str| {
        let mut one = event(&correlation, "user.login");
        one.as_object_mut().unwrap().remove(field);
        one
    };
    let cases: Vec<(&str, Value)> = vec![
        ("event_id", with("event_id", json!("not-a-uuid"))),
        ("event_type", without("event_type")),
        ("correlation_id", with("correlation_id", json!(""))),
        ("occurred_at", with("occurred_at", json!("yesterday"))),
        ("payload", with("payload", json!([1, 2]))),
    ];
    for (field, body) in cases {
        let answer = api.post_json("/api/v1/audit/events", &body).await?;
        assert_eq!(answer.status, 400, "{field}: {answer:?}");
        let error: Value = answer.json()?;
        assert_eq!(error["field"], field, "{answer:?}");
        assert!(
            error["error"]
                .as_str()
                .is_some_and(|text| text.contains(field)),
            "{answer:?}"
        );
    }
    let batch = json!({"events": [event(&correlation, "a.b"), with("event_type", json!(""))]});
    let answer = api.post_json("/api/v1/audit/events/batch", &batch).await?;
    assert_eq!(answer.status, 400, "{answer:?}");
    assert_eq!(
        answer.json::<Value>()?["field"],
        "events[1].event_type",
        "{answer:?}"
    );
    let malformed = api.post("/api/v1/audit/events", "{not json").await?;
    assert_eq!(
        (
            malformed.status,
            malformed.json::<Value>()?["field"].clone()
        ),
        (400, json!("body"))
    );
    let limit = api.get("/api/v1/audit/events?limit=100000").await?;
    assert_eq!(
        (limit.status, limit.json::<Value>()?["field"].clone()),
        (400, json!("limit"))
    );
    Ok(())
}
