//! The record of what `up` changed on the host: written (atomically, 0600)
//! before each change is made, so a crash between the two leaves a record
//! naming what may exist, never a change no record names; read by `down`
//! to give each setting back and to know which shared-name objects
//! (kube-proxy's `KUBE-*` chains) are this cluster's.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// What `up` changed on this host.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostRecord {
    /// Kernel settings (`/proc/sys` paths) with the value each had before
    /// the first `up` changed it.
    #[serde(default)]
    pub sysctls: BTreeMap<String, String>,
    /// Links created (the node's link).
    #[serde(default)]
    pub links: Vec<String>,
    /// Routes added, as `ip route` destinations on the node's link.
    #[serde(default)]
    pub routes: Vec<String>,
    /// Whether the cluster's own iptables chains were added.
    #[serde(default)]
    pub own_chains: bool,
    /// Whether kube-proxy's and the kubelet's `KUBE-*` chains are this
    /// cluster's: none existed when it first started them.
    #[serde(default)]
    pub kubernetes_chains: bool,
    /// cgroup folders created for the kubelet's `cgroupRoot`.
    #[serde(default)]
    pub cgroups: Vec<PathBuf>,
    /// The link made for the host-path provisioner's fixed folder
    /// (`/tmp/hostpath_pv` → the cluster's `volumes`).
    #[serde(default)]
    pub volumes_link: Option<PathBuf>,
}

/// The host record could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum HostRecordError {
    /// The file exists and could not be read or parsed.
    #[error(
        "cannot read the record of what the local cluster changed on this host, `{}`: check the host by hand (links `kl-*`/`kb-*`, iptables chains `KINDLING-*`, kernel settings) and remove the file",
        path.display()
    )]
    Unreadable {
        /// The record file.
        path: PathBuf,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// It could not be written.
    #[error("cannot write the record of what the local cluster changes on this host, `{}`", path.display())]
    Write {
        /// The record file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl HostRecord {
    /// The record at `path`; none (an empty one) when there is no file.
    pub fn load(path: &Path) -> Result<Self, HostRecordError> {
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Ok(HostRecord::default());
            }
            Err(error) => {
                return Err(HostRecordError::Unreadable {
                    path: path.to_owned(),
                    source: Box::new(error),
                });
            }
        };
        serde_json::from_slice(&bytes).map_err(|error| HostRecordError::Unreadable {
            path: path.to_owned(),
            source: Box::new(error),
        })
    }

    /// Writes the record to `path` atomically, readable by root only.
    pub fn save(&self, path: &Path) -> Result<(), HostRecordError> {
        let json = serde_json::to_vec_pretty(self).expect("a record serialises");
        kindling_harness::util::write_atomically(path, &json).map_err(|source| {
            HostRecordError::Write {
                path: path.to_owned(),
                source,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_round_trips_and_a_corrupt_one_names_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("host.json");
        assert_eq!(HostRecord::load(&path).unwrap(), HostRecord::default());
        let mut record = HostRecord::default();
        record
            .sysctls
            .insert("vm/overcommit_memory".to_owned(), "0".to_owned());
        record.links.push("kl-0123456789".to_owned());
        record.kubernetes_chains = true;
        record.save(&path).unwrap();
        assert_eq!(HostRecord::load(&path).unwrap(), record);
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        std::fs::write(&path, "{\"sysctls\": {").unwrap();
        let error = HostRecord::load(&path).unwrap_err().to_string();
        assert!(error.contains(&path.display().to_string()), "{error}");
    }
}
