//! Ownership by creation for objects outside a suite's own namespace
//! (cluster-scoped ones, and namespaced ones in other namespaces): kindling
//! changes and deletes only what it created, and records the creation on
//! the object itself, at creation (`kindling.dev/created-by`), by a create
//! that fails if the object exists. An object someone else made is never
//! force-applied, relabelled, re-pointed or deleted: when the manifest
//! would not change it, it is used as it is; otherwise the setup stops
//! naming it, who manages it and what differs, unless the suite accepts
//! the existing object.

use serde_json::{Map, Value};

use super::namespace::MANAGED_BY_LABEL;
use super::ownership::USED_BY_PREFIX;

/// The annotation a kindling setup writes on an object it creates outside
/// its namespace, once, valued with the namespace whose setup created it.
/// Only objects with it are ever changed by force or deleted.
pub const CREATED_BY_ANNOTATION: &str = "kindling.dev/created-by";

/// Which objects outside the suite's namespace a setup may touch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ownership {
    /// kindling made the whole cluster (the local provider's own objects):
    /// everything in it is applied as it is.
    Cluster,
    /// A suite's objects in `namespace`: objects elsewhere follow ownership
    /// by creation; `accepted` lists `(kind, name)` of existing objects the
    /// suite uses as they are even when its manifests differ.
    Suite {
        /// The suite's own namespace (or an isolated copy's).
        namespace: String,
        /// Existing objects accepted as they are.
        accepted: Vec<(String, String)>,
    },
}

impl Ownership {
    /// A suite's ownership in `namespace`, accepting nothing.
    pub fn suite(namespace: &str) -> Self {
        Ownership::Suite {
            namespace: namespace.to_owned(),
            accepted: Vec::new(),
        }
    }

    /// Whether an object in `namespace` (`None`: cluster-scoped) is
    /// outside what the setup owns outright.
    pub(crate) fn outside(&self, namespace: Option<&str>) -> bool {
        match self {
            Ownership::Cluster => false,
            Ownership::Suite { namespace: own, .. } => namespace != Some(own.as_str()),
        }
    }

    /// The namespace recorded as the creator.
    pub(crate) fn creator(&self) -> &str {
        match self {
            Ownership::Cluster => "",
            Ownership::Suite { namespace, .. } => namespace,
        }
    }

    /// Whether the suite accepts the existing `kind`/`name` as it is.
    pub(crate) fn accepts(&self, kind: &str, name: &str) -> bool {
        match self {
            Ownership::Cluster => true,
            Ownership::Suite { accepted, .. } => {
                accepted.iter().any(|(accepted_kind, accepted_name)| {
                    accepted_kind == kind && accepted_name == name
                })
            }
        }
    }
}

/// Whether `object` (as the API server returned it) was created by a
/// kindling setup.
pub fn created_by_kindling(object: &Value) -> bool {
    let metadata = &object["metadata"];
    metadata["annotations"][CREATED_BY_ANNOTATION].is_string()
        && metadata["labels"][MANAGED_BY_LABEL] == "kindling"
}

/// `object` with the creation record kindling writes when it creates it.
pub(crate) fn with_creation_record(object: &Value, creator: &str) -> Value {
    let mut object = object.clone();
    let metadata = &mut object["metadata"];
    for field in ["labels", "annotations"] {
        if !metadata[field].is_object() {
            metadata[field] = Value::Object(Map::new());
        }
    }
    metadata["labels"][MANAGED_BY_LABEL] = Value::from("kindling");
    metadata["annotations"][CREATED_BY_ANNOTATION] = Value::from(creator);
    object
}

/// The manifest's object without the marks kindling adds to its own
/// objects (labels and annotations): what a foreign object is compared
/// with.
pub(crate) fn without_marks(object: &Value) -> Value {
    let mut object = object.clone();
    let metadata = &mut object["metadata"];
    if let Some(labels) = metadata["labels"].as_object_mut() {
        if labels.get(MANAGED_BY_LABEL) == Some(&Value::from("kindling")) {
            labels.remove(MANAGED_BY_LABEL);
        }
        labels.remove(super::namespace::SUITE_LABEL);
        if labels.is_empty() {
            metadata.as_object_mut().map(|m| m.remove("labels"));
        }
    }
    if let Some(annotations) = metadata["annotations"].as_object_mut() {
        annotations
            .retain(|key, _| !key.starts_with(USED_BY_PREFIX) && key != CREATED_BY_ANNOTATION);
        if annotations.is_empty() {
            metadata.as_object_mut().map(|m| m.remove("annotations"));
        }
    }
    object
}

/// The field managers of an object, as its `managedFields` name them.
pub(crate) fn managers(object: &Value) -> Vec<String> {
    let mut managers: Vec<String> = object["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|entry| entry["manager"].as_str().map(str::to_owned))
        .collect();
    managers.sort();
    managers.dedup();
    managers
}

/// What would change in `live` if the manifest were applied (`applied`
/// is the server's dry run of that apply): JSON paths with the value
/// before and after, server-kept fields left out. Empty: the manifest is
/// already what the object holds.
pub(crate) fn differences(live: &Value, applied: &Value) -> Vec<String> {
    let mut out = Vec::new();
    diff("", &comparable(live), &comparable(applied), &mut out);
    out
}

/// An object without what the server keeps for itself.
fn comparable(object: &Value) -> Value {
    let mut object = object.clone();
    if let Some(metadata) = object["metadata"].as_object_mut() {
        for field in [
            "managedFields",
            "resourceVersion",
            "generation",
            "creationTimestamp",
            "uid",
            "selfLink",
        ] {
            metadata.remove(field);
        }
    }
    object.as_object_mut().map(|o| o.remove("status"));
    object
}

fn diff(path: &str, before: &Value, after: &Value, out: &mut Vec<String>) {
    match (before, after) {
        (Value::Object(a), Value::Object(b)) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            for key in keys {
                let child = format!("{path}/{}", key.replace('~', "~0").replace('/', "~1"));
                diff(
                    &child,
                    a.get(key).unwrap_or(&Value::Null),
                    b.get(key).unwrap_or(&Value::Null),
                    out,
                );
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (index, (x, y)) in a.iter().zip(b).enumerate() {
                diff(&format!("{path}/{index}"), x, y, out);
            }
        }
        (a, b) if a == b => {}
        (a, b) => out.push(format!("{path}: {} → {}", short(a), short(b))),
    }
}

/// A value in at most 80 characters of JSON, `absent` for none.
fn short(value: &Value) -> String {
    if value.is_null() {
        return "absent".to_owned();
    }
    let text = value.to_string();
    if text.chars().count() <= 80 {
        text
    } else {
        format!("{}…", text.chars().take(79).collect::<String>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_objects_with_the_creation_record_are_kindlings() {
        let manifest =
            json!({"apiVersion": "v1", "kind": "ClusterRole", "metadata": {"name": "r"}});
        let created = with_creation_record(&manifest, "orders-1");
        assert!(created_by_kindling(&created));
        assert_eq!(
            created["metadata"]["annotations"][CREATED_BY_ANNOTATION],
            "orders-1"
        );
        // Labelled by an older kindling, or by hand: not a creation record.
        let labelled = json!({"metadata": {"name": "r", "labels": {MANAGED_BY_LABEL: "kindling"}}});
        assert!(!created_by_kindling(&labelled));
        assert!(!created_by_kindling(&manifest));
    }

    #[test]
    fn a_foreign_object_is_compared_without_kindlings_marks() {
        let marked = json!({"metadata": {
            "name": "widgets.x.dev",
            "labels": {MANAGED_BY_LABEL: "kindling", "kindling.dev/suite": "orders", "team": "a"},
            "annotations": {"kindling.dev/used-by.1234abcd": "orders-1"}
        }});
        let plain = without_marks(&marked);
        assert_eq!(
            plain,
            json!({"metadata": {"name": "widgets.x.dev", "labels": {"team": "a"}}})
        );
    }

    #[test]
    fn differences_name_the_paths_and_ignore_what_the_server_keeps() {
        let live = json!({
            "metadata": {"name": "w", "resourceVersion": "5", "labels": {"owner": "holdout"},
                         "managedFields": [{"manager": "kubectl-create"}]},
            "spec": {"versions": [{"name": "v1", "additionalPrinterColumns": [{"name": "Age"}]}]},
            "status": {"acceptedNames": {}}
        });
        let same = json!({
            "metadata": {"name": "w", "resourceVersion": "6", "labels": {"owner": "holdout"}},
            "spec": {"versions": [{"name": "v1", "additionalPrinterColumns": [{"name": "Age"}]}]},
            "status": {"conditions": []}
        });
        assert!(differences(&live, &same).is_empty());
        let changed = json!({
            "metadata": {"name": "w", "labels": {"owner": "holdout"}},
            "spec": {"versions": [{"name": "v1"}]}
        });
        assert_eq!(
            differences(&live, &changed),
            ["/spec/versions/0/additionalPrinterColumns: [{\"name\":\"Age\"}] → absent"]
        );
        assert_eq!(managers(&live), ["kubectl-create"]);
    }

    #[test]
    fn ownership_decides_what_is_outside_and_accepted() {
        let suite = Ownership::Suite {
            namespace: "orders-1".to_owned(),
            accepted: vec![("ClusterRole".to_owned(), "reader".to_owned())],
        };
        assert!(suite.outside(None));
        assert!(suite.outside(Some("kube-system")));
        assert!(!suite.outside(Some("orders-1")));
        assert!(suite.accepts("ClusterRole", "reader"));
        assert!(!suite.accepts("ClusterRole", "writer"));
        assert!(!Ownership::Cluster.outside(None));
    }
}
