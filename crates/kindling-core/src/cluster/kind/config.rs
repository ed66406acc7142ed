//! The kind cluster configuration a cluster is created from, its
//! fingerprint, and the record of the fingerprint a cluster was created with.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::KindError;
use super::cli::KindVersion;

/// A single control-plane node (of kindling's node image, or the one
/// `KINDLING_KIND_NODE_IMAGE` names).
pub const DEFAULT_CONFIG: &str = "kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
nodes:
- role: control-plane
";

/// Where a cluster's configuration came from and what it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// The user's file, or `None` for [`DEFAULT_CONFIG`].
    pub source: Option<PathBuf>,
    /// The configuration's YAML text, exactly as given to
    /// `kind create cluster`.
    pub text: String,
}

impl ClusterConfig {
    /// [`DEFAULT_CONFIG`], from no file.
    pub fn default_config() -> Self {
        ClusterConfig {
            source: None,
            text: DEFAULT_CONFIG.to_owned(),
        }
    }

    /// The configuration in the file at `path`.
    pub fn from_file(path: &Path) -> Result<Self, KindError> {
        let text = std::fs::read_to_string(path).map_err(|source| KindError::ReadConfig {
            path: path.to_owned(),
            source,
        })?;
        Ok(ClusterConfig {
            source: Some(path.to_owned()),
            text,
        })
    }

    /// For messages: the file, or "kindling's default configuration".
    pub fn describe(&self) -> String {
        match &self.source {
            Some(path) => format!("`{}`", path.display()),
            None => "kindling's default configuration (one control-plane node)".to_owned(),
        }
    }

    /// The configuration kind gets: every node that names no image gets
    /// `node_image`'s, and when that is kindling's own, the kubeadm patches
    /// it needs ([`super::node_image::config_patches`]) go before the
    /// configuration's own (so they win where both set a field). A
    /// configuration whose every node names its image is used as it is.
    pub fn effective(&self, node_image: &NodeImageChoice) -> Result<EffectiveConfig, KindError> {
        let unreadable = |message: String| KindError::ParseConfig {
            config: self.describe(),
            message,
        };
        let mut value: serde_json::Value =
            serde_saphyr::from_str(&self.text).map_err(|error| unreadable(error.to_string()))?;
        let object = value
            .as_object_mut()
            .ok_or_else(|| unreadable("its top level is not a mapping".to_owned()))?;
        let nodes = object
            .entry("nodes")
            .or_insert_with(|| serde_json::Value::Array(Vec::new()));
        let nodes = nodes
            .as_array_mut()
            .ok_or_else(|| unreadable("`nodes` is not a list".to_owned()))?;
        if nodes.is_empty() {
            // kind's default: one control-plane node.
            nodes.push(serde_json::json!({ "role": "control-plane" }));
        }
        let mut filled = false;
        for node in nodes.iter_mut() {
            let node = node
                .as_object_mut()
                .ok_or_else(|| unreadable("an entry of `nodes` is not a mapping".to_owned()))?;
            let named = node
                .get("image")
                .and_then(serde_json::Value::as_str)
                .is_some_and(|image| !image.trim().is_empty());
            if !named {
                node.insert(
                    "image".to_owned(),
                    serde_json::Value::String(node_image.reference().to_owned()),
                );
                filled = true;
            }
        }
        if !filled {
            return Ok(EffectiveConfig {
                text: self.text.clone(),
                node_image: None,
            });
        }
        if let NodeImageChoice::Kindling(_) = node_image {
            let patches = object
                .entry("kubeadmConfigPatches")
                .or_insert_with(|| serde_json::Value::Array(Vec::new()));
            let patches = patches
                .as_array_mut()
                .ok_or_else(|| unreadable("`kubeadmConfigPatches` is not a list".to_owned()))?;
            for (at, patch) in super::node_image::config_patches().into_iter().enumerate() {
                patches.insert(at, serde_json::Value::String(patch));
            }
        }
        let text =
            serde_saphyr::to_string(&value).map_err(|error| unreadable(error.to_string()))?;
        Ok(EffectiveConfig {
            text,
            node_image: Some(node_image.clone()),
        })
    }

    /// What decides whether an existing cluster may be reused: the exact
    /// configuration text, the node image its nodes get, the configuration
    /// kind gets, and the kind release (which sets the nodes up).
    pub fn fingerprint(
        &self,
        kind: KindVersion,
        node_image: &NodeImageChoice,
    ) -> Result<Fingerprint, KindError> {
        Ok(self.effective(node_image)?.fingerprint(kind, self))
    }
}

/// The node image a cluster's nodes get when its configuration names none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeImageChoice {
    /// kindling's own node image ([`super::node_image::reference`]), built
    /// when missing.
    Kindling(String),
    /// An image named by `KINDLING_KIND_NODE_IMAGE` or
    /// [`super::KindCluster::node_image`] (kind pulls it when the engine
    /// lacks it).
    Named(String),
}

impl NodeImageChoice {
    /// The image's reference.
    pub fn reference(&self) -> &str {
        match self {
            NodeImageChoice::Kindling(reference) | NodeImageChoice::Named(reference) => reference,
        }
    }
}

/// A cluster's configuration as kind gets it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EffectiveConfig {
    /// The YAML (or the configuration's own text, when unchanged).
    pub text: String,
    /// The node image that nodes naming none got; `None` when every node
    /// names its own.
    pub node_image: Option<NodeImageChoice>,
}

impl EffectiveConfig {
    /// The fingerprint of a cluster created from this, from `source`, with
    /// kind `kind`.
    pub fn fingerprint(&self, kind: KindVersion, source: &ClusterConfig) -> Fingerprint {
        let config = hex::encode(Sha256::digest(source.text.as_bytes()));
        let effective = hex::encode(Sha256::digest(self.text.as_bytes()));
        let node_image = self
            .node_image
            .as_ref()
            .map(|image| image.reference().to_owned());
        let digest = Sha256::digest(
            format!(
                "kind {kind}\nconfig sha256:{config}\nnode image {}\neffective sha256:{effective}\n",
                node_image.as_deref().unwrap_or("-")
            )
            .as_bytes(),
        );
        Fingerprint {
            fingerprint: format!("sha256:{}", hex::encode(digest)),
            config_sha256: config,
            kind_version: kind.to_string(),
            config_source: source.source.clone(),
            node_image,
        }
    }
}

/// The fingerprint of a cluster's inputs, with its parts kept so a
/// refusal can say what changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    /// The digest of the kind release and the configuration's digest,
    /// `sha256:<hex>`.
    pub fingerprint: String,
    /// The SHA-256 of the configuration text, hex.
    pub config_sha256: String,
    /// The kind release, e.g. `v0.33.0`.
    pub kind_version: String,
    /// The configuration file, or `None` for [`DEFAULT_CONFIG`].
    pub config_source: Option<PathBuf>,
    /// The node image nodes naming none got; `None` when every node names
    /// its own.
    #[serde(default)]
    pub node_image: Option<String>,
}

impl Fingerprint {
    /// What differs from `earlier`, in words.
    pub fn changes_since(&self, earlier: &Fingerprint) -> Vec<String> {
        let mut changes = Vec::new();
        if self.config_sha256 != earlier.config_sha256 {
            changes.push(format!(
                "the configuration changed (sha256 {} then, {} now)",
                short(&earlier.config_sha256),
                short(&self.config_sha256)
            ));
        }
        if self.node_image != earlier.node_image {
            let named = |image: &Option<String>| match image {
                Some(image) => format!("`{image}`"),
                None => "the images its configuration names".to_owned(),
            };
            changes.push(format!(
                "the node image changed from {} to {}",
                named(&earlier.node_image),
                named(&self.node_image)
            ));
        }
        if self.kind_version != earlier.kind_version {
            changes.push(format!(
                "kind changed from {} to {}",
                earlier.kind_version, self.kind_version
            ));
        }
        changes
    }
}

fn short(digest: &str) -> &str {
    &digest[..digest.len().min(12)]
}

/// Reads the fingerprint recorded at `path`; `None` if none was recorded.
pub fn read_recorded(path: &Path) -> Result<Option<Fingerprint>, KindError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(KindError::State {
                path: path.to_owned(),
                source,
            });
        }
    };
    // A record that does not parse is treated as no record: the cluster is
    // then refused as unrecorded, never silently reused.
    Ok(serde_json::from_str(&text).ok())
}

/// Records `fingerprint` at `path` atomically (a crash leaves the old record or none).
pub fn write_recorded(path: &Path, fingerprint: &Fingerprint) -> Result<(), KindError> {
    let state = |source| KindError::State {
        path: path.to_owned(),
        source,
    };
    let text = serde_json::to_string_pretty(fingerprint).expect("fingerprints serialise");
    kindling_harness::util::write_atomically(path, text.as_bytes()).map_err(state)
}

/// Removes the record at `path`; a missing one is fine.
pub fn forget_recorded(path: &Path) -> Result<(), KindError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(KindError::State {
            path: path.to_owned(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kindlings() -> NodeImageChoice {
        NodeImageChoice::Kindling("localhost/kindling-kind/node:v1.34.12-0123456789ab".to_owned())
    }

    #[test]
    fn fingerprint_follows_config_text_node_image_and_kind_release() {
        let kind = KindVersion::new(0, 33, 0);
        let default = ClusterConfig::default_config();
        let same = ClusterConfig {
            source: Some(PathBuf::from("/elsewhere/kind.yaml")),
            text: DEFAULT_CONFIG.to_owned(),
        };
        let fingerprint = |config: &ClusterConfig, kind, image: &NodeImageChoice| {
            config.fingerprint(kind, image).unwrap()
        };
        assert_eq!(
            fingerprint(&default, kind, &kindlings()).fingerprint,
            fingerprint(&same, kind, &kindlings()).fingerprint,
            "where the text came from does not matter"
        );
        let two_nodes = ClusterConfig {
            source: None,
            text: format!("{DEFAULT_CONFIG}- role: worker\n"),
        };
        let before = fingerprint(&default, kind, &kindlings());
        let after = fingerprint(&two_nodes, kind, &kindlings());
        assert_ne!(before.fingerprint, after.fingerprint);
        assert_eq!(after.changes_since(&before).len(), 1);
        assert!(after.changes_since(&before)[0].starts_with("the configuration changed"));
        let upgraded = fingerprint(&default, KindVersion::new(0, 34, 0), &kindlings());
        assert_ne!(before.fingerprint, upgraded.fingerprint);
        assert_eq!(
            upgraded.changes_since(&before),
            ["kind changed from v0.33.0 to v0.34.0"]
        );
        let pulled = NodeImageChoice::Named("kindest/node:v1.34.0".to_owned());
        let other_image = fingerprint(&default, kind, &pulled);
        assert_ne!(before.fingerprint, other_image.fingerprint);
        assert_eq!(
            other_image.changes_since(&before),
            [
                "the node image changed from `localhost/kindling-kind/node:v1.34.12-0123456789ab` to `kindest/node:v1.34.0`"
            ]
        );
    }

    #[test]
    fn nodes_naming_no_image_get_kindlings_with_its_patches_first() {
        let config = ClusterConfig {
            source: None,
            text: "kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
nodes:
- role: control-plane
- role: worker
  image: mine/node:v1
kubeadmConfigPatches:
- |
  kind: KubeletConfiguration
  failCgroupV1: true
"
            .to_owned(),
        };
        let effective = config.effective(&kindlings()).unwrap();
        assert_eq!(effective.node_image, Some(kindlings()));
        let value: serde_json::Value = serde_saphyr::from_str(&effective.text).unwrap();
        assert_eq!(value["kind"], "Cluster");
        assert_eq!(value["apiVersion"], "kind.x-k8s.io/v1alpha4");
        assert_eq!(
            value["nodes"],
            serde_json::json!([
                { "role": "control-plane", "image": kindlings().reference() },
                { "role": "worker", "image": "mine/node:v1" },
            ])
        );
        let patches: Vec<&str> = value["kubeadmConfigPatches"]
            .as_array()
            .unwrap()
            .iter()
            .map(|patch| patch.as_str().unwrap())
            .collect();
        let mut expected = super::super::node_image::config_patches();
        expected.push("kind: KubeletConfiguration\nfailCgroupV1: true\n".to_owned());
        assert_eq!(
            patches, expected,
            "the configuration's own patches come last, and win"
        );
        assert!(patches[0].contains("imageTag: v1.12.4"), "{}", patches[0]);
    }

    #[test]
    fn a_named_image_gets_no_patches_and_a_config_naming_every_image_is_kept_as_it_is() {
        let pulled = NodeImageChoice::Named("kindest/node:v1.34.0".to_owned());
        let effective = ClusterConfig::default_config().effective(&pulled).unwrap();
        let value: serde_json::Value = serde_saphyr::from_str(&effective.text).unwrap();
        assert_eq!(
            value["nodes"],
            serde_json::json!([{ "role": "control-plane", "image": "kindest/node:v1.34.0" }])
        );
        assert!(
            value.get("kubeadmConfigPatches").is_none(),
            "{}",
            effective.text
        );

        let no_nodes = ClusterConfig {
            source: None,
            text: "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\n".to_owned(),
        };
        let value: serde_json::Value =
            serde_saphyr::from_str(&no_nodes.effective(&pulled).unwrap().text).unwrap();
        assert_eq!(
            value["nodes"],
            serde_json::json!([{ "role": "control-plane", "image": "kindest/node:v1.34.0" }]),
            "kind's default, one control plane, made explicit"
        );

        let own = "# mine\nkind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n- role: control-plane\n  image: mine/node:v1\n";
        let config = ClusterConfig {
            source: None,
            text: own.to_owned(),
        };
        let effective = config.effective(&kindlings()).unwrap();
        assert_eq!(effective.text, own);
        assert_eq!(effective.node_image, None);
    }

    #[test]
    fn an_unreadable_configuration_is_refused_naming_it() {
        let table = [
            ("kind: [unclosed", ""),
            ("- a list", "its top level is not a mapping"),
            ("nodes: control-plane", "`nodes` is not a list"),
            (
                "nodes:\n- control-plane",
                "an entry of `nodes` is not a mapping",
            ),
            (
                "nodes:\n- role: worker\nkubeadmConfigPatches: one",
                "`kubeadmConfigPatches` is not a list",
            ),
        ];
        for (text, expected) in table {
            let config = ClusterConfig {
                source: Some(PathBuf::from("/k/kind.yaml")),
                text: text.to_owned(),
            };
            let error = config.effective(&kindlings()).unwrap_err();
            let message = error.to_string();
            assert!(
                matches!(error, KindError::ParseConfig { .. })
                    && message.contains("`/k/kind.yaml`")
                    && message.contains(expected),
                "{text:?}: {message}"
            );
        }
    }

    #[test]
    fn records_round_trip_and_a_missing_or_broken_record_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fingerprint.json");
        assert_eq!(read_recorded(&path).unwrap(), None);
        let fingerprint = ClusterConfig::default_config()
            .fingerprint(KindVersion::new(0, 33, 0), &kindlings())
            .unwrap();
        write_recorded(&path, &fingerprint).unwrap();
        assert_eq!(read_recorded(&path).unwrap(), Some(fingerprint));
        std::fs::write(&path, "{ half").unwrap();
        assert_eq!(read_recorded(&path).unwrap(), None);
        forget_recorded(&path).unwrap();
        forget_recorded(&path).unwrap();
        assert!(!path.exists());
    }
}
