//! kind's own node files (`images/base/files` of the pinned kind's module),
//! read from the Go module cache after `go mod download` has checked the
//! module against the pinned go.sum, with kindling's changes applied from
//! `kind-node/base/patches/`. kindling commits only its changes.

use std::path::{Path, PathBuf};

use crate::cluster::kind::pinned;

use super::sources;

/// The files of kind's `images/base/files/` the node gets (kind's
/// fuse-overlayfs unit and licence notes are left out).
pub(crate) const BASE_FILES: &[&str] = &[
    "etc/containerd/config.toml",
    "etc/crictl.yaml",
    "etc/default/kubelet",
    "etc/sysctl.d/10-network-magic.conf",
    "etc/sysctl.d/10-network-security.conf",
    "etc/systemd/system/containerd.service",
    "etc/systemd/system/kubelet.service",
    "etc/systemd/system/kubelet.service.d/10-kubeadm.conf",
    "etc/systemd/system/kubelet.service.d/11-kind.conf",
    "etc/systemd/system/kubelet.slice",
    "etc/systemd/system/undo-mount-hacks.service",
    "kind/README.txt",
    "kind/bin/create-kubelet-cgroup-v2.sh",
    "kind/bin/mount-product-files.sh",
    "kind/bin/undo-mount-hacks.sh",
    "usr/local/bin/clean-install",
    "usr/local/bin/entrypoint",
];

/// Obtaining kind's node files failed.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// The pinned kind's module could not be written.
    #[error(transparent)]
    Module(#[from] crate::cluster::components::ComponentBuildError),
    /// `go mod download` could not run or failed.
    #[error("`go mod download -json sigs.k8s.io/kind` in `{}` failed: {message}", dir.display())]
    Download {
        /// The module folder it ran in.
        dir: PathBuf,
        /// Its error output, or why it could not start.
        message: String,
    },
    /// A file kindling takes from kind's module is not in it.
    #[error("kind's module in `{}` has no `{file}`: the pinned kind's node files moved", dir.display())]
    Missing {
        /// The module's folder in the Go module cache.
        dir: PathBuf,
        /// The file, under `images/base/files/`.
        file: String,
        /// The read error.
        #[source]
        source: std::io::Error,
    },
    /// A patch of kindling's does not apply to kind's file.
    #[error("kindling's patch `{patch}` does not apply to kind's `{file}`: {message}")]
    Patch {
        /// The patch, under `kind-node/`.
        patch: String,
        /// The file it changes.
        file: String,
        /// Why not.
        message: String,
    },
}

/// The folder of the pinned kind's module in the Go module cache, downloaded
/// and checked against the pinned go.sum by `go`.
async fn module_dir(cache: &Path) -> Result<PathBuf, UpstreamError> {
    let dir = pinned::write_module(cache)?;
    let failed = |message: String| UpstreamError::Download {
        dir: dir.clone(),
        message,
    };
    let output = tokio::process::Command::new("go")
        .args(["mod", "download", "-json", "sigs.k8s.io/kind"])
        .current_dir(&dir)
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|error| failed(error.to_string()))?;
    if !output.status.success() {
        return Err(failed(format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout).trim(),
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    let listed: serde_json::Value = serde_json::from_slice(&output.stdout)
        .map_err(|error| failed(format!("its output is not JSON: {error}")))?;
    listed["Dir"]
        .as_str()
        .map(PathBuf::from)
        .ok_or_else(|| failed(format!("its output names no Dir: {listed}")))
}

/// The patch of kindling's for `file`, if any, as `(path, text)`.
fn patch_for(file: &str) -> Option<(&'static str, &'static str)> {
    let name = Path::new(file).file_name()?.to_str()?;
    let wanted = format!("base/patches/{name}.patch");
    sources::BASE
        .iter()
        .find(|(path, _)| *path == wanted)
        .copied()
}

/// `text` with kindling's patch for `file` applied, if it has one.
fn patched(file: &str, text: String) -> Result<String, UpstreamError> {
    let Some((patch_path, patch_text)) = patch_for(file) else {
        return Ok(text);
    };
    let failed = |message: String| UpstreamError::Patch {
        patch: patch_path.to_owned(),
        file: file.to_owned(),
        message,
    };
    let patch = diffy::Patch::from_str(patch_text).map_err(|error| failed(error.to_string()))?;
    diffy::apply(&text, &patch).map_err(|error| failed(error.to_string()))
}

/// kind's node files with kindling's patches applied, as
/// `(path under base/files/, contents)`.
pub(crate) async fn base_files(cache: &Path) -> Result<Vec<(String, String)>, UpstreamError> {
    let dir = module_dir(cache).await?;
    let files = dir.join("images/base/files");
    BASE_FILES
        .iter()
        .map(|file| {
            let text = std::fs::read_to_string(files.join(file)).map_err(|source| {
                UpstreamError::Missing {
                    dir: dir.clone(),
                    file: (*file).to_owned(),
                    source,
                }
            })?;
            Ok(((*file).to_owned(), patched(file, text)?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_patch_changes_a_file_taken_from_kind() {
        for (path, _) in sources::BASE {
            let Some(name) = path
                .strip_prefix("base/patches/")
                .and_then(|name| name.strip_suffix(".patch"))
            else {
                continue;
            };
            assert!(
                BASE_FILES
                    .iter()
                    .any(|file| Path::new(file).file_name().and_then(|n| n.to_str()) == Some(name)),
                "{path} patches no file the node takes from kind"
            );
        }
    }

    #[test]
    fn a_patch_that_does_not_fit_names_itself_and_the_file() {
        let error = patched("etc/containerd/config.toml", "something else\n".to_owned())
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("base/patches/config.toml.patch")
                && error.contains("etc/containerd/config.toml"),
            "{error}"
        );
    }
}
