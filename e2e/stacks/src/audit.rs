//! DataStorage's audit API as the suites read it: the events the services
//! under test wrote, found by correlation id.

use std::time::Duration;

use kindling::{BoxError, Environment, HttpClient, TestContext};
use serde_json::Value;

/// DataStorage's API, called as the `tester` ServiceAccount of the
/// [`crate::datastorage`] stack.
pub struct AuditLog {
    http: HttpClient,
}

impl AuditLog {
    /// Connects to the DataStorage Service of `env`'s namespace.
    pub async fn connect(env: &Environment) -> Result<AuditLog, BoxError> {
        Ok(AuditLog {
            http: env
                .http("datastorage", 8080)
                .await?
                .bearer(env.token("tester").await?),
        })
    }

    /// The events held for `correlation_id` (up to 500).
    pub async fn events(&self, correlation_id: &str) -> Result<Vec<Value>, String> {
        let answer = self
            .http
            .get(&format!(
                "/api/v1/audit/events?correlation_id={correlation_id}&limit=500"
            ))
            .await
            .map_err(|error| format!("DataStorage did not answer: {error}"))?;
        if answer.status != 200 {
            return Err(format!("DataStorage answered {answer:?}"));
        }
        let body: Value = answer
            .json()
            .map_err(|error| format!("DataStorage answered no JSON: {error}"))?;
        Ok(body["events"].as_array().cloned().unwrap_or_default())
    }

    /// Waits until `correlation_id` has an event of `event_type`, and
    /// returns it; services write their audit events in the background.
    pub async fn wait_for_event<T>(
        &self,
        ctx: &TestContext<T>,
        correlation_id: &str,
        event_type: &str,
    ) -> Result<Value, BoxError>
    where
        T: AsRef<Environment>,
    {
        let found = ctx
            .env()
            .as_ref()
            .wait_for(
                &format!("a `{event_type}` audit event of `{correlation_id}`"),
                Duration::from_secs(30),
                || async {
                    let events = self.events(correlation_id).await?;
                    events
                        .iter()
                        .find(|event| event["event_type"] == event_type)
                        .cloned()
                        .ok_or_else(|| format!("{} other event(s): {events:?}", events.len()))
                },
            )
            .await?;
        Ok(found)
    }
}
