//! Redis deduplicates: an event id seen within the window is accepted once.

use kindling::{Environment, TestContext, TestResult};
use serde_json::Value;

use crate::{api, event, events_of};

#[kindling::test(timeout = "60s")]
async fn a_duplicate_event_id_is_accepted_once(ctx: TestContext<Environment>) -> TestResult {
    let api = api(ctx.env()).await?;
    let correlation = ctx.unique_name("dup");
    let once = event(&correlation, "payment.captured");
    let first = api.post_json("/api/v1/audit/events", &once).await?;
    assert_eq!(first.status, 201, "{first:?}");
    let again = api.post_json("/api/v1/audit/events", &once).await?;
    assert_eq!(again.status, 200, "{again:?}");
    assert_eq!(again.json::<Value>()?["status"], "duplicate", "{again:?}");
    let batch =
        serde_json::json!({"events": [once.clone(), event(&correlation, "payment.captured")]});
    let mixed = api.post_json("/api/v1/audit/events/batch", &batch).await?;
    assert_eq!(mixed.status, 201, "{mixed:?}");
    let counts: Value = mixed.json()?;
    assert_eq!(
        (counts["created"].clone(), counts["duplicates"].clone()),
        (1.into(), 1.into()),
        "{counts}"
    );
    assert_eq!(events_of(&api, &correlation).await?.len(), 2);
    Ok(())
}
