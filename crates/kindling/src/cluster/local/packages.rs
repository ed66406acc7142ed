//! The runtime pieces a local cluster takes from Debian's packages
//! (containerd, runc, the CNI plugins, iptables); see [`crate::apt`] for
//! how they are installed when missing.

use std::path::{Path, PathBuf};

/// Each file the cluster runs, and the Debian package that installs it.
pub fn runtime_files(cni_bin_dir: &Path) -> Vec<(PathBuf, &'static str)> {
    let mut files = vec![
        (PathBuf::from("/usr/bin/containerd"), "containerd"),
        (PathBuf::from("/usr/bin/ctr"), "containerd"),
        (PathBuf::from("/usr/sbin/runc"), "runc"),
        (PathBuf::from("/usr/sbin/iptables"), "iptables"),
    ];
    for plugin in ["bridge", "host-local", "loopback", "portmap", "firewall"] {
        files.push((cni_bin_dir.join(plugin), "containernetworking-plugins"));
    }
    files
}
