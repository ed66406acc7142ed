//! The namespace a suite deploys into, and the garbage collection of
//! namespaces earlier runs left behind.
//!
//! A namespace carries the run that made it and a heartbeat that every
//! run using it renews; one whose heartbeat is older than the grace period
//! belongs to no run in progress and may be deleted.

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

/// Creates (or adopts) the suite's namespace, labelled with the run, and
/// renews its heartbeat.
pub async fn ensure_namespace(
    client: &Client,
    namespace: &str,
    suite: &str,
    run_id: &str,
) -> Result<(), NamespaceError> {
    let object = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": namespace,
            "labels": {
                MANAGED_BY_LABEL: "kindling",
                SUITE_LABEL: label_value(suite),
                RUN_LABEL: label_value(run_id),
            },
            "annotations": {HEARTBEAT_ANNOTATION: Utc::now().to_rfc3339()},
        }
    });
    Api::<Namespace>::all(client.clone())
        .patch(
            namespace,
            &PatchParams::apply("kindling").force(),
            &Patch::Apply(&object),
        )
        .await
        .map(drop)
        .map_err(|source| NamespaceError {
            action: "create",
            namespace: namespace.to_owned(),
            source,
        })
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

/// Renews the heartbeat of a namespace a run is using.
pub async fn heartbeat(client: &Client, namespace: &str) -> Result<(), NamespaceError> {
    let patch = serde_json::json!({
        "metadata": {"annotations": {HEARTBEAT_ANNOTATION: Utc::now().to_rfc3339()}}
    });
    Api::<Namespace>::all(client.clone())
        .patch(namespace, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map(drop)
        .map_err(|source| NamespaceError {
            action: "renew the heartbeat of",
            namespace: namespace.to_owned(),
            source,
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

/// Deletes kindling's namespaces of earlier runs: those whose heartbeat is
/// older than the grace period. Namespaces not managed by kindling are
/// never listed.
pub async fn collect_garbage(
    client: &Client,
    policy: &GcPolicy,
) -> Result<GcReport, NamespaceError> {
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
    let now = Utc::now();
    let mut report = GcReport::default();
    for namespace in namespaces {
        let name = namespace.metadata.name.clone().unwrap_or_default();
        let terminating = namespace.metadata.deletion_timestamp.is_some();
        if policy.keep.contains(&name) || terminating || in_use(&namespace, now, policy.grace) {
            report.kept.push(name);
            continue;
        }
        match api.delete(&name, &DeleteParams::background()).await {
            Ok(_) => report.deleted.push(name),
            Err(kube::Error::Api(response)) if response.code == 404 => {}
            Err(source) => {
                return Err(NamespaceError {
                    action: "delete",
                    namespace: name,
                    source,
                });
            }
        }
    }
    Ok(report)
}

fn in_use(namespace: &Namespace, now: DateTime<Utc>, grace: Duration) -> bool {
    let heartbeat = namespace
        .metadata
        .annotations
        .as_ref()
        .and_then(|annotations| annotations.get(HEARTBEAT_ANNOTATION))
        .and_then(|value| DateTime::parse_from_rfc3339(value).ok())
        .map(|at| at.with_timezone(&Utc))
        .or_else(|| {
            namespace
                .metadata
                .creation_timestamp
                .as_ref()
                .and_then(|t| DateTime::from_timestamp(t.0.as_second(), 0))
        });
    let grace = chrono::Duration::from_std(grace).unwrap_or(chrono::Duration::MAX);
    heartbeat.is_some_and(|at| now - at < grace)
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
    fn heartbeat_decides_what_is_in_use() {
        let now = Utc::now();
        let namespace = |beat: DateTime<Utc>| -> Namespace {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "a", "annotations": {HEARTBEAT_ANNOTATION: beat.to_rfc3339()}}
            }))
            .unwrap()
        };
        let grace = Duration::from_secs(600);
        assert!(in_use(
            &namespace(now - chrono::Duration::seconds(30)),
            now,
            grace
        ));
        assert!(!in_use(
            &namespace(now - chrono::Duration::hours(2)),
            now,
            grace
        ));
    }
}
