//! The namespace a suite deploys into, and the garbage collection of
//! namespaces earlier runs left behind.
//!
//! A namespace carries the run that made it and a heartbeat that every
//! process using it renews; one whose heartbeat is older than the grace
//! period belongs to no run in progress and may be deleted. The heartbeat
//! is judged by the API server's clock alone: the time the server stamped
//! on the renewal (the heartbeat field manager's `managedFields` entry)
//! against the server's current time (its `Date` header), so writers and
//! collectors with clocks far apart agree. A namespace is deleted with a
//! precondition on the uid and resourceVersion the decision was taken on:
//! one renewed meanwhile is never deleted.

use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::Namespace;
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};

/// The label, valued `kindling`, on what kindling makes: a suite's
/// namespace, the Secrets it makes there, and the cluster-scoped objects
/// it collects.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// The label holding the suite's name (as a label value) on what kindling makes
/// for it.
pub const SUITE_LABEL: &str = "kindling.dev/suite";
/// The label holding the run's id (as a label value) on a suite's
/// namespace and the Secrets kindling makes in it.
pub const RUN_LABEL: &str = "kindling.dev/run";
/// The annotation holding a namespace's heartbeat: when a run last renewed it,
/// RFC 3339.
pub const HEARTBEAT_ANNOTATION: &str = "kindling.dev/heartbeat";

/// How long a namespace's heartbeat counts as a run in progress.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(15 * 60);

/// The field manager of heartbeat renewals, whose `managedFields` time the
/// server stamps.
pub const HEARTBEAT_MANAGER: &str = "kindling-heartbeat";

/// A namespace request failed.
#[derive(Debug, thiserror::Error)]
#[error("failed to {action} namespace `{namespace}`")]
pub struct NamespaceError {
    /// What was being done to it: `create`, `read`, `list`, `delete` or
    /// `renew the heartbeat of`.
    pub action: &'static str,
    /// The namespace, or for a list the label selector in parentheses.
    pub namespace: String,
    /// The API client's error.
    #[source]
    pub source: kube::Error,
}

/// The suite's namespace name is taken by a namespace kindling did not
/// make for this suite.
#[derive(Debug, thiserror::Error)]
#[error(
    "namespace `{namespace}` exists and kindling did not make it for suite `{suite}` (its labels: {labels}): kindling never takes over a namespace; delete it if it is a leftover of yours, or run the suite with another run id"
)]
pub struct ForeignNamespace {
    /// The namespace.
    pub namespace: String,
    /// The suite that wanted it.
    pub suite: String,
    /// Its labels, `key=value` joined by `, `.
    pub labels: String,
}

/// Making the suite's namespace failed.
#[derive(Debug, thiserror::Error)]
pub enum EnsureNamespaceError {
    /// A request failed.
    #[error(transparent)]
    Request(#[from] NamespaceError),
    /// The name is someone else's namespace.
    #[error(transparent)]
    Foreign(#[from] ForeignNamespace),
}

/// `<suite>-<first 8 of the run id>`, a valid namespace name.
pub fn suite_namespace(suite: &str, run_id: &str) -> String {
    let run = kindling_harness::util::run_name_part(run_id);
    let suite = kindling_harness::util::name_part(suite, 63 - run.len() - 1);
    format!("{}-{run}", suite.trim_matches('-'))
}

/// Label values allow 63 characters of `[A-Za-z0-9._-]`.
pub(crate) fn label_value(value: &str) -> String {
    let mut value: String = value
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    value.truncate(63);
    value
        .trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_owned()
}

/// The labels kindling puts on what it makes for a suite's run.
pub fn object_labels(suite: &str, run_id: &str) -> std::collections::BTreeMap<String, String> {
    std::collections::BTreeMap::from([
        (MANAGED_BY_LABEL.to_owned(), "kindling".to_owned()),
        (SUITE_LABEL.to_owned(), label_value(suite)),
        (RUN_LABEL.to_owned(), label_value(run_id)),
    ])
}

/// Creates the suite's namespace, labelled with the suite and the run, or
/// finds it made by kindling for this suite earlier; renews its heartbeat.
/// A namespace of that name kindling did not make for the suite is
/// refused, never taken over.
pub async fn ensure_namespace(
    client: &Client,
    namespace: &str,
    suite: &str,
    run_id: &str,
) -> Result<(), EnsureNamespaceError> {
    let api = Api::<Namespace>::all(client.clone());
    let request_error = |action: &'static str| {
        let namespace = namespace.to_owned();
        move |source| NamespaceError {
            action,
            namespace,
            source,
        }
    };
    let object: Namespace = serde_json::from_value(serde_json::json!({
        "metadata": {
            "name": namespace,
            "labels": {
                MANAGED_BY_LABEL: "kindling",
                SUITE_LABEL: label_value(suite),
                RUN_LABEL: label_value(run_id),
            },
        }
    }))
    .expect("a namespace");
    let params = kube::api::PostParams {
        field_manager: Some(HEARTBEAT_MANAGER.to_owned()),
        ..Default::default()
    };
    match api.create(&params, &object).await {
        Ok(_) => {}
        Err(kube::Error::Api(response)) if response.code == 409 => {
            let found = api.get(namespace).await.map_err(request_error("read"))?;
            let labels = found.metadata.labels.unwrap_or_default();
            let ours = labels.get(MANAGED_BY_LABEL).map(String::as_str) == Some("kindling")
                && labels.get(SUITE_LABEL) == Some(&label_value(suite));
            if !ours {
                return Err(ForeignNamespace {
                    namespace: namespace.to_owned(),
                    suite: suite.to_owned(),
                    labels: labels
                        .iter()
                        .map(|(key, value)| format!("{key}={value}"))
                        .collect::<Vec<_>>()
                        .join(", "),
                }
                .into());
            }
        }
        Err(source) => return Err(request_error("create")(source).into()),
    }
    heartbeat(client, namespace).await?;
    Ok(())
}

/// Whether `namespace` exists and is not being deleted.
pub async fn exists(client: &Client, namespace: &str) -> Result<bool, NamespaceError> {
    Api::<Namespace>::all(client.clone())
        .get_opt(namespace)
        .await
        .map(|found| found.is_some_and(|found| found.metadata.deletion_timestamp.is_none()))
        .map_err(|source| NamespaceError {
            action: "read",
            namespace: namespace.to_owned(),
            source,
        })
}

/// Renews the heartbeat of a namespace a run is using: a change by
/// [`HEARTBEAT_MANAGER`], whose time the server stamps. The annotation's
/// value (this process's clock) is only for people reading it.
pub async fn heartbeat(client: &Client, namespace: &str) -> Result<(), NamespaceError> {
    let patch = serde_json::json!({
        "metadata": {"annotations": {HEARTBEAT_ANNOTATION: Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)}}
    });
    let params = PatchParams {
        field_manager: Some(HEARTBEAT_MANAGER.to_owned()),
        ..Default::default()
    };
    Api::<Namespace>::all(client.clone())
        .patch(namespace, &params, &Patch::Merge(&patch))
        .await
        .map(drop)
        .map_err(|source| NamespaceError {
            action: "renew the heartbeat of",
            namespace: namespace.to_owned(),
            source,
        })
}

/// The API server's current time, from the `Date` header of a request
/// (one-second resolution, which a grace period of minutes does not miss).
pub async fn server_time(client: &Client) -> Result<DateTime<Utc>, NamespaceError> {
    let error = |source| NamespaceError {
        action: "read the API server's time for",
        namespace: "(none)".to_owned(),
        source,
    };
    let request = http::Request::get("/version")
        .body(kube::client::Body::empty())
        .expect("a GET request");
    let response = client.send(request).await.map_err(error)?;
    response
        .headers()
        .get(http::header::DATE)
        .and_then(|value| value.to_str().ok())
        .and_then(|text| DateTime::parse_from_rfc2822(text).ok())
        .map(|at| at.with_timezone(&Utc))
        .ok_or_else(|| {
            error(kube::Error::Service(
                "the API server's response has no valid Date header".into(),
            ))
        })
}

/// Which kindling namespaces a collection deletes.
#[derive(Debug, Clone)]
pub struct GcPolicy {
    /// Namespaces whose heartbeat is younger than this are in use.
    pub grace: Duration,
    /// Only namespaces of this suite; `None` for every suite.
    pub suite: Option<String>,
    /// Never deleted (the namespace of the current run).
    pub keep: Vec<String>,
}

/// What a collection did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct GcReport {
    /// The namespaces deleted.
    pub deleted: Vec<String>,
    /// In use by a run in progress (or already terminating).
    pub kept: Vec<String>,
}

/// A namespace the collector decided to delete, with the uid and
/// resourceVersion it decided on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaleNamespace {
    /// The namespace.
    pub name: String,
    /// Its uid when listed.
    pub uid: String,
    /// Its resourceVersion when listed: a renewal since changes it.
    pub resource_version: String,
}

/// Deletes kindling's namespaces of earlier runs: those whose heartbeat is
/// older than the grace period, by the API server's clock. Namespaces not
/// managed by kindling are never listed.
pub async fn collect_garbage(
    client: &Client,
    policy: &GcPolicy,
) -> Result<GcReport, NamespaceError> {
    let (stale, kept) = stale_namespaces(client, policy).await?;
    let mut report = delete_stale(client, &stale).await?;
    report.kept.extend(kept);
    report.kept.sort();
    Ok(report)
}

/// The decision of [`collect_garbage`]: which namespaces are stale (and
/// which are kept), as listed now.
pub async fn stale_namespaces(
    client: &Client,
    policy: &GcPolicy,
) -> Result<(Vec<StaleNamespace>, Vec<String>), NamespaceError> {
    let mut selector = format!("{MANAGED_BY_LABEL}=kindling");
    if let Some(suite) = &policy.suite {
        selector.push_str(&format!(",{SUITE_LABEL}={}", label_value(suite)));
    }
    let api = Api::<Namespace>::all(client.clone());
    let namespaces = api
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(|source| NamespaceError {
            action: "list",
            namespace: format!("({selector})"),
            source,
        })?;
    let now = server_time(client).await?;
    let mut stale = Vec::new();
    let mut kept = Vec::new();
    for namespace in namespaces {
        let name = namespace.metadata.name.clone().unwrap_or_default();
        let terminating = namespace.metadata.deletion_timestamp.is_some();
        if policy.keep.contains(&name) || terminating || in_use(&namespace, now, policy.grace) {
            kept.push(name);
            continue;
        }
        stale.push(StaleNamespace {
            name,
            uid: namespace.metadata.uid.clone().unwrap_or_default(),
            resource_version: namespace
                .metadata
                .resource_version
                .clone()
                .unwrap_or_default(),
        });
    }
    Ok((stale, kept))
}

/// Deletes each of `stale` only if it is still the very object the
/// decision saw (same uid and resourceVersion): one renewed (or replaced)
/// since is kept.
pub async fn delete_stale(
    client: &Client,
    stale: &[StaleNamespace],
) -> Result<GcReport, NamespaceError> {
    let api = Api::<Namespace>::all(client.clone());
    let mut report = GcReport::default();
    for namespace in stale {
        let params = DeleteParams {
            preconditions: Some(kube::api::Preconditions {
                uid: Some(namespace.uid.clone()),
                resource_version: Some(namespace.resource_version.clone()),
            }),
            ..DeleteParams::background()
        };
        match api.delete(&namespace.name, &params).await {
            Ok(_) => report.deleted.push(namespace.name.clone()),
            Err(kube::Error::Api(response)) if response.code == 404 => {}
            // The precondition failed: renewed since the decision.
            Err(kube::Error::Api(response)) if response.code == 409 => {
                report.kept.push(namespace.name.clone())
            }
            Err(source) => {
                return Err(NamespaceError {
                    action: "delete",
                    namespace: namespace.name.clone(),
                    source,
                });
            }
        }
    }
    Ok(report)
}

/// When the server last recorded a heartbeat of `namespace`: its
/// heartbeat manager's `managedFields` time (also an older kindling's
/// `kindling` manager), else its creation.
fn last_heartbeat(namespace: &Namespace) -> Option<DateTime<Utc>> {
    let stamped = namespace
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter(|entry| {
            matches!(
                entry.manager.as_deref(),
                Some(HEARTBEAT_MANAGER) | Some("kindling")
            )
        })
        .filter_map(|entry| entry.time.as_ref())
        .filter_map(|time| DateTime::from_timestamp(time.0.as_second(), 0))
        .max();
    let created = namespace
        .metadata
        .creation_timestamp
        .as_ref()
        .and_then(|t| DateTime::from_timestamp(t.0.as_second(), 0));
    stamped.into_iter().chain(created).max()
}

fn in_use(namespace: &Namespace, now: DateTime<Utc>, grace: Duration) -> bool {
    let grace = chrono::Duration::from_std(grace).unwrap_or(chrono::Duration::MAX);
    last_heartbeat(namespace).is_some_and(|at| now - at < grace)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suite_namespaces_are_valid_names() {
        assert_eq!(
            suite_namespace("datastorage", "6f1c2a9b-0000-4000-8000-000000000000"),
            "datastorage-6f1c2a9b"
        );
        let long = suite_namespace(&"Very_Long.Suite".repeat(10), "ABCDEF123");
        assert!(long.len() <= 63, "{long}");
        assert!(long.ends_with("-abcdef12"), "{long}");
        assert!(
            long.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        );
    }

    #[test]
    fn the_servers_stamp_decides_what_is_in_use_not_the_writers_clock() {
        let now = Utc::now();
        let namespace = |stamped: DateTime<Utc>, written: DateTime<Utc>| -> Namespace {
            serde_json::from_value(serde_json::json!({
                "metadata": {
                    "name": "a",
                    "creationTimestamp": (now - chrono::Duration::days(1)).to_rfc3339(),
                    "annotations": {HEARTBEAT_ANNOTATION: written.to_rfc3339()},
                    "managedFields": [
                        {"manager": HEARTBEAT_MANAGER, "operation": "Update", "apiVersion": "v1",
                         "time": stamped.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)},
                        {"manager": "kubectl", "operation": "Update", "apiVersion": "v1",
                         "time": now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)}
                    ]
                }
            }))
            .unwrap()
        };
        let grace = Duration::from_secs(15 * 60);
        let minutes = chrono::Duration::minutes;
        // Renewed 30 s ago by the server's clock, by a writer 16 minutes off either way.
        for skew in [minutes(16), minutes(-16)] {
            let recent = now - chrono::Duration::seconds(30);
            assert!(in_use(&namespace(recent, recent + skew), now, grace));
        }
        // Abandoned: the server stamped the last renewal 2 hours ago; another
        // manager's recent change is not a heartbeat.
        let old = now - chrono::Duration::hours(2);
        assert!(!in_use(&namespace(old, now), now, grace));
    }
}
