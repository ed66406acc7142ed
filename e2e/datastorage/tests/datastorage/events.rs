//! Writing events and reading them back through the API.

use kindling::{Environment, TestContext, TestResult};
use serde_json::{Value, json};

use crate::{api, event, events_of};

#[kindling::test(timeout = "60s")]
async fn writes_and_reads_one_event(ctx: TestContext<Environment>) -> TestResult {
    let api = api(ctx.env()).await?;
    let correlation = ctx.unique_name("one");
    let sent = event(&correlation, "user.login");
    let created = api.post_json("/api/v1/audit/events", &sent).await?;
    assert_eq!(created.status, 201, "{created:?}");
    let body: Value = created.json()?;
    assert_eq!(
        (body["event_id"].clone(), body["status"].as_str()),
        (sent["event_id"].clone(), Some("created"))
    );
    let read = events_of(&api, &correlation).await?;
    assert_eq!(read.len(), 1, "{read:?}");
    for field in [
        "event_id",
        "event_type",
        "correlation_id",
        "resource",
        "payload",
    ] {
        assert_eq!(read[0][field], sent[field], "{field} of {read:?}");
    }
    assert!(read[0]["recorded_at"].is_string(), "{read:?}");
    Ok(())
}

#[kindling::test(timeout = "60s")]
async fn a_batch_lands_every_event(ctx: TestContext<Environment>) -> TestResult {
    let api = api(ctx.env()).await?;
    let correlation = ctx.unique_name("batch");
    let events: Vec<Value> = (0..25)
        .map(|_| event(&correlation, "order.created"))
        .collect();
    let created = api
        .post_json("/api/v1/audit/events/batch", &json!({"events": events}))
        .await?;
    assert_eq!(created.status, 201, "{created:?}");
    assert_eq!(created.json::<Value>()?["created"], 25, "{created:?}");
    let read = events_of(&api, &correlation).await?;
    let mut ids: Vec<&Value> = read.iter().map(|event| &event["event_id"]).collect();
    ids.sort_by_key(|id| id.to_string());
    let mut sent: Vec<&Value> = events.iter().map(|event| &event["event_id"]).collect();
    sent.sort_by_key(|id| id.to_string());
    assert_eq!(ids, sent);
    Ok(())
}

#[kindling::test(timeout = "60s")]
async fn queries_filter_by_type_and_time(ctx: TestContext<Environment>) -> TestResult {
    let api = api(ctx.env()).await?;
    let correlation = ctx.unique_name("filter");
    let at = |minute: u32, kind: &str| {
        let mut one = event(&correlation, kind);
        one["occurred_at"] = Value::from(format!("2026-01-01T10:{minute:02}:00Z"));
        one
    };
    let events = vec![
        at(0, "user.login"),
        at(10, "user.logout"),
        at(20, "user.login"),
        at(30, "user.login"),
    ];
    let created = api
        .post_json("/api/v1/audit/events/batch", &json!({"events": events}))
        .await?;
    assert_eq!(created.status, 201, "{created:?}");
    let query = format!(
        "/api/v1/audit/events?correlation_id={correlation}&event_type=user.login&since=2026-01-01T10:05:00Z&until=2026-01-01T10:30:00Z"
    );
    let answer = api.get(&query).await?;
    assert_eq!(answer.status, 200, "{answer:?}");
    let found: Value = answer.json()?;
    let ids: Vec<&Value> = found["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["event_id"])
        .collect();
    // Since is inclusive, until exclusive: only 10:20 matches all three.
    assert_eq!(ids, vec![&events[2]["event_id"]], "{found}");
    Ok(())
}

#[kindling::test(timeout = "60s")]
async fn pages_walk_every_event_once_in_order(ctx: TestContext<Environment>) -> TestResult {
    let api = api(ctx.env()).await?;
    let correlation = ctx.unique_name("pages");
    let events: Vec<Value> = (0..23)
        .map(|minute| {
            let mut one = event(&correlation, "page.view");
            one["occurred_at"] = Value::from(format!("2026-01-02T09:{minute:02}:00Z"));
            one
        })
        .collect();
    let created = api
        .post_json("/api/v1/audit/events/batch", &json!({"events": events}))
        .await?;
    assert_eq!(created.status, 201, "{created:?}");
    let mut seen = Vec::new();
    let mut cursor = String::new();
    let mut pages = 0;
    loop {
        let answer = api
            .get(&format!(
                "/api/v1/audit/events?correlation_id={correlation}&limit=10&cursor={cursor}"
            ))
            .await?;
        assert_eq!(answer.status, 200, "{answer:?}");
        let page: Value = answer.json()?;
        let items = page["events"].as_array().cloned().unwrap_or_default();
        assert!(items.len() <= 10, "a page of {}", items.len());
        seen.extend(items.into_iter().map(|event| event["event_id"].clone()));
        pages += 1;
        cursor = page["next_cursor"].as_str().unwrap_or_default().to_owned();
        if cursor.is_empty() {
            break;
        }
        assert!(pages < 10, "pagination does not end");
    }
    assert_eq!(pages, 3);
    let sent: Vec<Value> = events
        .iter()
        .map(|event| event["event_id"].clone())
        .collect();
    assert_eq!(seen, sent, "every event once, in time order");
    Ok(())
}
