//! What changed between the objects an earlier setup applied and the ones
//! this run would apply: each object is known by its kind and name and
//! compared by a digest of its content after placeholders are resolved,
//! so a rebuilt image changes exactly the objects that run it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::manifest::Manifest;

/// An object by identity: `apiVersion`, kind, namespace (as the manifest
/// gives it; none means the suite's) and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ObjectKey {
    /// The object's `apiVersion`.
    pub api_version: String,
    /// The object's kind.
    pub kind: String,
    /// The namespace the manifest gives it; `None` for the suite's namespace
    /// (or a cluster-scoped object).
    pub namespace: Option<String>,
    /// The object's `metadata.name`.
    pub name: String,
}

impl ObjectKey {
    /// The key of a manifest's object.
    pub fn of(manifest: &Manifest) -> Self {
        ObjectKey {
            api_version: manifest.api_version().to_owned(),
            kind: manifest.kind().to_owned(),
            namespace: manifest.namespace().map(str::to_owned),
            name: manifest.name().to_owned(),
        }
    }
}

impl std::fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.namespace {
            Some(namespace) => write!(f, "{}/{} in `{namespace}`", self.kind, self.name),
            None => write!(f, "{}/{}", self.kind, self.name),
        }
    }
}

/// An object a setup applied, and the digest of what it applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployedObject {
    /// Which object it is.
    pub key: ObjectKey,
    /// The digest of the object as applied, placeholders resolved (see
    /// [`object_digest`]).
    pub digest: String,
}

/// The digest of a manifest's object as it would be applied.
pub fn object_digest(manifest: &Manifest) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"kindling object v1\0");
    hasher.update(serde_json::to_vec(&manifest.object).expect("an object serialises"));
    hex::encode(hasher.finalize())
}

/// The objects of `manifests`, as they would be recorded once applied.
pub fn deployed_objects(manifests: &[Manifest]) -> Vec<DeployedObject> {
    manifests
        .iter()
        .map(|manifest| DeployedObject {
            key: ObjectKey::of(manifest),
            digest: object_digest(manifest),
        })
        .collect()
}

/// What a re-setup must do to go from `previous` to `manifests`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// Indexes into the manifests of objects that are new or differ.
    pub changed: Vec<usize>,
    /// Indexes of objects applied before exactly as they are now.
    pub unchanged: Vec<usize>,
    /// Objects applied before that the manifests no longer hold.
    pub removed: Vec<ObjectKey>,
}

/// Compares `manifests` with what an earlier setup applied; `None` (nothing
/// known to be applied) makes every object changed.
pub fn plan_changes(previous: Option<&[DeployedObject]>, manifests: &[Manifest]) -> Changes {
    let before: BTreeMap<&ObjectKey, &str> = previous
        .unwrap_or_default()
        .iter()
        .map(|object| (&object.key, object.digest.as_str()))
        .collect();
    let mut changes = Changes::default();
    let mut now = Vec::with_capacity(manifests.len());
    for (index, manifest) in manifests.iter().enumerate() {
        let key = ObjectKey::of(manifest);
        if before.get(&key) == Some(&object_digest(manifest).as_str()) {
            changes.unchanged.push(index);
        } else {
            changes.changed.push(index);
        }
        now.push(key);
    }
    changes.removed = before
        .keys()
        .filter(|key| !now.contains(key))
        .map(|key| (*key).clone())
        .collect();
    changes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::manifest::parse_manifests;
    use std::path::Path;

    fn manifests(text: &str) -> Vec<Manifest> {
        parse_manifests(Path::new("m.yaml"), text).unwrap()
    }

    const BASE: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: {x: '1'}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: api}\nspec: {template: {spec: {containers: [{name: api, image: one}]}}}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: gone}\n";

    #[test]
    fn only_new_and_different_objects_are_changed() {
        let before = deployed_objects(&manifests(BASE));
        let now = manifests(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: {x: '1'}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: api}\nspec: {template: {spec: {containers: [{name: api, image: two}]}}}\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: new}\n",
        );
        let changes = plan_changes(Some(&before), &now);
        assert_eq!(changes.unchanged, vec![0]);
        assert_eq!(changes.changed, vec![1, 2]);
        assert_eq!(
            changes
                .removed
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            ["Service/gone"]
        );
    }

    #[test]
    fn nothing_known_changes_everything_and_the_same_changes_nothing() {
        let now = manifests(BASE);
        let everything = plan_changes(None, &now);
        assert_eq!(everything.changed, vec![0, 1, 2]);
        assert!(everything.unchanged.is_empty() && everything.removed.is_empty());
        let same = plan_changes(Some(&deployed_objects(&now)), &now);
        assert_eq!(same.unchanged, vec![0, 1, 2]);
        assert!(same.changed.is_empty() && same.removed.is_empty());
    }
}
