//! Cluster-scoped objects that belong to one suite's namespace: a
//! ClusterRoleBinding granting the suite's ServiceAccounts a ClusterRole
//! (to call TokenReview, say) must name that namespace, which differs per
//! suite and run, and must not be overwritten by another suite's binding
//! of the same name.

use serde_json::Value;

use super::manifest::Manifest;

/// For each ClusterRoleBinding: ServiceAccount subjects without a
/// namespace get `namespace`, and the binding's name gets `-<namespace>`
/// appended (nothing refers to a binding by name), so suites and copies
/// side by side each keep their own.
pub fn scope_to_namespace(manifests: &mut [Manifest], namespace: &str) {
    for manifest in manifests
        .iter_mut()
        .filter(|manifest| manifest.kind() == "ClusterRoleBinding")
    {
        let mut scoped = false;
        if let Some(subjects) = manifest.object["subjects"].as_array_mut() {
            for subject in subjects {
                if subject["kind"] == "ServiceAccount" && subject["namespace"].as_str().is_none() {
                    subject["namespace"] = Value::from(namespace);
                    scoped = true;
                }
            }
        }
        if scoped {
            let name = format!("{}-{namespace}", manifest.name());
            manifest.object["metadata"]["name"] = Value::from(name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::manifest::parse_manifests;
    use std::path::Path;

    #[test]
    fn service_account_bindings_are_tied_to_the_namespace() {
        let mut manifests = parse_manifests(
            Path::new("rbac.yaml"),
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: reviewer}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: system:auth-delegator}\nsubjects: [{kind: ServiceAccount, name: api}, {kind: User, name: alice}]\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: fixed}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: view}\nsubjects: [{kind: ServiceAccount, name: api, namespace: elsewhere}]\n",
        )
        .unwrap();
        scope_to_namespace(&mut manifests, "suite-1");
        assert_eq!(manifests[0].name(), "reviewer-suite-1");
        assert_eq!(manifests[0].object["subjects"][0]["namespace"], "suite-1");
        assert!(manifests[0].object["subjects"][1]["namespace"].is_null());
        assert_eq!(
            manifests[1].name(),
            "fixed",
            "an explicit namespace is kept"
        );
    }
}
