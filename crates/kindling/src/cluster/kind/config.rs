//! The kind cluster configuration a cluster is created from, its
//! fingerprint, and the record of the fingerprint a cluster was created with.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::KindError;
use super::cli::KindVersion;

/// A single control-plane node with kind's default node image.
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

    /// What decides whether an existing cluster may be reused: the exact
    /// configuration text and the kind release (whose default node image
    /// and node setup the cluster was created with).
    pub fn fingerprint(&self, kind: KindVersion) -> Fingerprint {
        let config = hex::encode(Sha256::digest(self.text.as_bytes()));
        let digest = Sha256::digest(format!("kind {kind}\nconfig sha256:{config}\n").as_bytes());
        Fingerprint {
            fingerprint: format!("sha256:{}", hex::encode(digest)),
            config_sha256: config,
            kind_version: kind.to_string(),
            config_source: self.source.clone(),
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

    #[test]
    fn fingerprint_follows_config_text_and_kind_release() {
        let kind = KindVersion::new(0, 33, 0);
        let default = ClusterConfig::default_config();
        let same = ClusterConfig {
            source: Some(PathBuf::from("/elsewhere/kind.yaml")),
            text: DEFAULT_CONFIG.to_owned(),
        };
        assert_eq!(
            default.fingerprint(kind).fingerprint,
            same.fingerprint(kind).fingerprint,
            "where the text came from does not matter"
        );
        let two_nodes = ClusterConfig {
            source: None,
            text: format!("{DEFAULT_CONFIG}- role: worker\n"),
        };
        let before = default.fingerprint(kind);
        let after = two_nodes.fingerprint(kind);
        assert_ne!(before.fingerprint, after.fingerprint);
        assert_eq!(after.changes_since(&before).len(), 1);
        assert!(after.changes_since(&before)[0].starts_with("the configuration changed"));
        let upgraded = default.fingerprint(KindVersion::new(0, 34, 0));
        assert_ne!(before.fingerprint, upgraded.fingerprint);
        assert_eq!(
            upgraded.changes_since(&before),
            ["kind changed from v0.33.0 to v0.34.0"]
        );
    }

    #[test]
    fn records_round_trip_and_a_missing_or_broken_record_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fingerprint.json");
        assert_eq!(read_recorded(&path).unwrap(), None);
        let fingerprint = ClusterConfig::default_config().fingerprint(KindVersion::new(0, 33, 0));
        write_recorded(&path, &fingerprint).unwrap();
        assert_eq!(read_recorded(&path).unwrap(), Some(fingerprint));
        std::fs::write(&path, "{ half").unwrap();
        assert_eq!(read_recorded(&path).unwrap(), None);
        forget_recorded(&path).unwrap();
        forget_recorded(&path).unwrap();
        assert!(!path.exists());
    }
}
