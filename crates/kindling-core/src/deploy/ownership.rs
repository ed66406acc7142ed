//! Which suites' namespaces use a cluster-scoped object kindling applied
//! (a CRD, a webhook configuration, a ClusterRole or its binding), so that
//! garbage collection removes it once none of them exists, and never
//! while one does: a stale `failurePolicy: Fail` webhook would otherwise
//! block creates cluster-wide, and a shared CRD must outlive no suite that
//! uses it.
//!
//! Each namespace marks the object with an annotation of its own
//! (`kindling.dev/used-by.<digest of the namespace>: <namespace>`), applied
//! by a field manager of its own, so server-side apply keeps every
//! namespace's mark when several suites apply the same object.

use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams};
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use super::manifest::Manifest;
use super::namespace::{MANAGED_BY_LABEL, NamespaceError, SUITE_LABEL};

/// The prefix of the annotations naming the namespaces that use an object.
pub const USED_BY_PREFIX: &str = "kindling.dev/used-by.";

/// Kinds kindling marks and collects.
const MARKED_KINDS: &[&str] = &[
    "CustomResourceDefinition",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
    "ClusterRole",
    "ClusterRoleBinding",
];

fn short_digest(namespace: &str) -> String {
    hex::encode(&Sha256::digest(namespace.as_bytes())[..4])
}

/// The field manager of a namespace's applies of cluster-scoped objects.
pub(crate) fn field_manager(namespace: &str) -> String {
    format!("kindling-{}", short_digest(namespace))
}

/// The annotation key a namespace marks objects with.
pub(crate) fn used_by_key(namespace: &str) -> String {
    format!("{USED_BY_PREFIX}{}", short_digest(namespace))
}

/// Marks the cluster-scoped objects of `manifests` kindling collects as
/// used by `namespace` of `suite`.
pub fn mark_cluster_objects(manifests: &mut [Manifest], namespace: &str, suite: &str) {
    for manifest in manifests
        .iter_mut()
        .filter(|manifest| MARKED_KINDS.contains(&manifest.kind()))
    {
        let metadata = &mut manifest.object["metadata"];
        for (field, key, value) in [
            ("labels", MANAGED_BY_LABEL.to_owned(), "kindling".to_owned()),
            (
                "labels",
                SUITE_LABEL.to_owned(),
                super::namespace::label_value(suite),
            ),
            ("annotations", used_by_key(namespace), namespace.to_owned()),
        ] {
            if !metadata[field].is_object() {
                metadata[field] = Value::Object(Default::default());
            }
            metadata[field][key] = Value::from(value);
        }
    }
}

/// The namespace whose field manager applies `manifest`, if it is marked.
pub(crate) fn marked_by(manifest: &Manifest) -> Option<&str> {
    manifest.object["metadata"]["annotations"]
        .as_object()?
        .iter()
        .find(|(key, _)| key.starts_with(USED_BY_PREFIX))
        .and_then(|(_, value)| value.as_str())
}

/// Deletes the cluster-scoped objects kindling created that no existing
/// namespace uses any more (a namespace being deleted counts as gone).
/// Objects it did not create are never deleted, whatever their labels.
/// Returns them as `Kind/name`.
pub async fn collect_cluster_garbage(client: &Client) -> Result<Vec<String>, NamespaceError> {
    let namespaces = Api::<Namespace>::all(client.clone())
        .list(&ListParams::default())
        .await
        .map_err(|source| NamespaceError {
            action: "list",
            namespace: "(all)".to_owned(),
            source,
        })?;
    let live: Vec<String> = namespaces
        .items
        .iter()
        .filter(|namespace| namespace.metadata.deletion_timestamp.is_none())
        .filter_map(|namespace| namespace.metadata.name.clone())
        .collect();
    let mut deleted = Vec::new();
    macro_rules! collect {
        ($kind:ty, $name:literal) => {
            let api = Api::<$kind>::all(client.clone());
            let marked = api
                .list(&ListParams::default().labels(&format!("{MANAGED_BY_LABEL}=kindling")))
                .await
                .map_err(|source| NamespaceError {
                    action: "list the cluster-scoped objects of",
                    namespace: format!("(every {})", $name),
                    source,
                })?;
            // Only objects kindling created: a label on an object someone
            // else made (an older kindling labelled those too) is no
            // creation record.
            for object in marked.items.into_iter().filter(|object| {
                object
                    .metadata
                    .annotations
                    .as_ref()
                    .is_some_and(|annotations| {
                        annotations.contains_key(super::adoption::CREATED_BY_ANNOTATION)
                    })
            }) {
                let users: Vec<String> = object
                    .metadata
                    .annotations
                    .iter()
                    .flatten()
                    .filter(|(key, _)| key.starts_with(USED_BY_PREFIX))
                    .map(|(_, value)| value.clone())
                    .collect();
                if users.is_empty() || users.iter().any(|user| live.contains(user)) {
                    continue;
                }
                let name = object.metadata.name.clone().unwrap_or_default();
                match api.delete(&name, &DeleteParams::background()).await {
                    Ok(_) => deleted.push(format!("{}/{name}", $name)),
                    Err(kube::Error::Api(response)) if response.code == 404 => {}
                    Err(source) => {
                        return Err(NamespaceError {
                            action: "delete the cluster-scoped object of",
                            namespace: format!("{}/{name}", $name),
                            source,
                        });
                    }
                }
            }
        };
    }
    collect!(
        ValidatingWebhookConfiguration,
        "ValidatingWebhookConfiguration"
    );
    collect!(MutatingWebhookConfiguration, "MutatingWebhookConfiguration");
    collect!(ClusterRoleBinding, "ClusterRoleBinding");
    collect!(ClusterRole, "ClusterRole");
    collect!(CustomResourceDefinition, "CustomResourceDefinition");
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::manifest::parse_manifests;
    use std::path::Path;

    #[test]
    fn cluster_objects_are_marked_per_namespace_and_others_are_not() {
        let mut manifests = parse_manifests(
            Path::new("m.yaml"),
            "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {name: widgets.x.dev, labels: {team: a}}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n",
        )
        .unwrap();
        mark_cluster_objects(&mut manifests, "orders-1", "orders");
        let metadata = &manifests[0].object["metadata"];
        assert_eq!(metadata["labels"]["team"], "a");
        assert_eq!(metadata["labels"][MANAGED_BY_LABEL], "kindling");
        assert_eq!(metadata["labels"][SUITE_LABEL], "orders");
        assert_eq!(metadata["annotations"][used_by_key("orders-1")], "orders-1");
        assert_eq!(marked_by(&manifests[0]), Some("orders-1"));
        assert!(manifests[1].object["metadata"]["annotations"].is_null());
        assert_ne!(used_by_key("orders-1"), used_by_key("orders-2"));
        assert!(
            used_by_key("a-very-long-namespace-name-of-sixty-three-characters-exactly-xx").len()
                < 63 + 13
        );
    }
}
