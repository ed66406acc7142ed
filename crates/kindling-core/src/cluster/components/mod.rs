//! The pinned upstream components (Kubernetes, etcd, CoreDNS) that the
//! `local` provider runs on the host and kindling's Kind node image
//! carries, built from the Go module proxy into the cache once per
//! version, the first time a cluster needs them.
//!
//! Pins and why: Kubernetes 1.34 is the newest minor whose kubelet still
//! runs on cgroup v1 without extra configuration; etcd 3.6.5 is what
//! kubeadm 1.34 pins; CoreDNS 1.12.4 is the newest 1.12 (1.14 needs
//! client-go 0.35). The Go modules that pin every dependency live in
//! `crates/kindling-core/local-cluster/` (inside the package, so a
//! published kindling-core has them) and are compiled into it.

pub mod images;

use std::path::{Path, PathBuf};
use std::time::Instant;

/// The pinned Kubernetes version.
pub const KUBERNETES_VERSION: &str = "v1.34.12";
/// The pinned etcd version.
pub const ETCD_VERSION: &str = "v3.6.5";
/// The pinned CoreDNS version.
pub const COREDNS_VERSION: &str = "v1.12.4";

/// The five Kubernetes binaries a node of a local cluster runs.
pub const KUBERNETES_BINARIES: &[&str] = &[
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubelet",
    "kube-proxy",
];

/// The Go module pinning Kubernetes (its `tool` lines also name kubeadm
/// and kubectl, which the kind node image takes from it).
pub(crate) const KUBERNETES_MODULE: &[(&str, &str)] = &[
    (
        "go.mod",
        include_str!("../../../local-cluster/kubernetes/go.mod"),
    ),
    (
        "go.sum",
        include_str!("../../../local-cluster/kubernetes/go.sum"),
    ),
];

/// The Go module pinning etcd.
pub(crate) const ETCD_MODULE: &[(&str, &str)] = &[
    ("go.mod", include_str!("../../../local-cluster/etcd/go.mod")),
    ("go.sum", include_str!("../../../local-cluster/etcd/go.sum")),
    (
        "main.go",
        include_str!("../../../local-cluster/etcd/main.go"),
    ),
];

/// Building a component failed.
#[derive(Debug, thiserror::Error)]
pub enum ComponentBuildError {
    /// A component is missing from the cache and `go` is not on `PATH`.
    #[error(
        "the components of {what} are missing from `{}` and Go is not installed to build them: install Go (https://go.dev/dl) and run again",
        cache.display()
    )]
    NoGo {
        /// Whose components, e.g. `the local cluster`.
        what: String,
        /// The cache the components are missing from.
        cache: PathBuf,
    },
    /// A folder or file of the build could not be made, the `go` command
    /// (run under `nice`) could not start, or the built folder could not be
    /// moved into place.
    #[error("failed to prepare `{}` for the component build", path.display())]
    Write {
        /// The file or folder (for a command that could not start, the folder
        /// it was to run in).
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A `go build` or `go install` exited unsuccessfully.
    #[error("building {what} failed (`{command}` in `{}`):\n{stderr}", dir.display())]
    Build {
        /// The components being built, e.g. `etcd v3.6.5`.
        what: String,
        /// The `go` command line.
        command: String,
        /// The folder it ran in.
        dir: PathBuf,
        /// The last 40 lines it wrote to stderr.
        stderr: String,
    },
    /// Taking the cache's build lock (`build.lock`) failed.
    #[error(transparent)]
    Lock(#[from] crate::cluster::lock::LockError),
    /// A built binary (or its folder's digest record) could not be read.
    #[error("failed to read `{}` to check it against the digest recorded when it was built", path.display())]
    Read {
        /// The binary or the record.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// The file in each component folder that records the SHA-256 of every
/// binary in it, written when the folder was built.
pub const DIGESTS_FILE: &str = ".sha256.json";

/// Why a cached binary will not be run as it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unverified {
    /// It is not there.
    #[error("`{}` is missing", .0.display())]
    Missing(PathBuf),
    /// Its folder has no digest record (built by an older kindling, or by hand).
    #[error("`{}` has no digest recorded when it was built", .0.display())]
    Unrecorded(PathBuf),
    /// Its content differs from the digest recorded when it was built.
    #[error(
        "`{}` does not match the digest recorded when it was built (replaced or damaged)",
        .0.display()
    )]
    Changed(PathBuf),
}

impl Unverified {
    /// The binary.
    pub fn path(&self) -> &Path {
        match self {
            Unverified::Missing(path)
            | Unverified::Unrecorded(path)
            | Unverified::Changed(path) => path,
        }
    }
}

/// The SHA-256 of the file at `path`, hex.
pub(crate) fn file_digest(path: &Path) -> std::io::Result<String> {
    use sha2::{Digest as _, Sha256};
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher)?;
    Ok(hex::encode(hasher.finalize()))
}

/// Records the digest of every regular file of `dir` in [`DIGESTS_FILE`].
pub(crate) fn record_digests(dir: &Path) -> Result<(), ComponentBuildError> {
    let read_error = |path: &Path| {
        let path = path.to_owned();
        move |source| ComponentBuildError::Read { path, source }
    };
    let mut digests = std::collections::BTreeMap::new();
    for entry in std::fs::read_dir(dir).map_err(read_error(dir))?.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name != DIGESTS_FILE && entry.file_type().is_ok_and(|kind| kind.is_file()) {
            digests.insert(name, file_digest(&path).map_err(read_error(&path))?);
        }
    }
    let record = dir.join(DIGESTS_FILE);
    std::fs::write(
        &record,
        serde_json::to_vec_pretty(&digests).expect("a map serialises"),
    )
    .map_err(|source| ComponentBuildError::Write {
        path: record,
        source,
    })
}

/// Checks `binary` against its folder's digest record.
pub fn verify(binary: &Path) -> Result<(), Unverified> {
    if !binary.is_file() {
        return Err(Unverified::Missing(binary.to_owned()));
    }
    let record = binary.with_file_name(DIGESTS_FILE);
    let recorded: Option<std::collections::BTreeMap<String, String>> = std::fs::read(&record)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok());
    let name = binary
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let Some(expected) = recorded.as_ref().and_then(|digests| digests.get(&name)) else {
        return Err(Unverified::Unrecorded(binary.to_owned()));
    };
    match file_digest(binary) {
        Ok(digest) if &digest == expected => Ok(()),
        _ => Err(Unverified::Changed(binary.to_owned())),
    }
}

/// Where the pinned binaries are.
#[derive(Debug, Clone)]
pub struct ComponentBinaries {
    /// The folder holding the five Kubernetes binaries.
    pub kubernetes_dir: PathBuf,
    /// The etcd binary.
    pub etcd: PathBuf,
    /// The CoreDNS binary.
    pub coredns: PathBuf,
}

impl ComponentBinaries {
    /// The layout of the cache: `bin/<component>-<version>/`.
    pub fn in_cache(cache: &Path) -> Self {
        ComponentBinaries {
            kubernetes_dir: cache.join(format!("bin/kubernetes-{KUBERNETES_VERSION}")),
            etcd: cache.join(format!("bin/etcd-{ETCD_VERSION}/etcd")),
            coredns: cache.join(format!("bin/coredns-{COREDNS_VERSION}/coredns")),
        }
    }

    /// `~/.cache/kindling`, or `KINDLING_CACHE_DIR` ([`crate::cluster::cache_home`]).
    pub fn default_cache() -> PathBuf {
        crate::cluster::cache_home()
    }

    /// The path of a Kubernetes binary.
    pub fn kubernetes(&self, name: &str) -> PathBuf {
        self.kubernetes_dir.join(name)
    }

    /// Every binary, and whether all are there.
    pub fn all(&self) -> Vec<PathBuf> {
        let mut all: Vec<PathBuf> = KUBERNETES_BINARIES
            .iter()
            .map(|name| self.kubernetes(name))
            .collect();
        all.push(self.etcd.clone());
        all.push(self.coredns.clone());
        all
    }

    /// The first binary that is missing.
    pub fn missing(&self) -> Option<PathBuf> {
        self.all().into_iter().find(|path| !path.is_file())
    }

    /// The first binary that is missing or does not match the digest
    /// recorded when it was built (reads every binary: about half a
    /// second for all seven).
    pub fn first_unverified(&self) -> Option<Unverified> {
        self.all().into_iter().find_map(|path| verify(&path).err())
    }
}

/// The versions, as one line for fingerprints.
pub fn component_versions() -> String {
    format!("kubernetes {KUBERNETES_VERSION} etcd {ETCD_VERSION} coredns {COREDNS_VERSION}")
}

/// Builds whatever of the pinned components is missing from `cache`, one
/// process at a time per cache (others wait, then find them built).
/// Each component is built into a temporary folder and moved into place
/// once complete, so a killed build never leaves a binary that looks done.
/// `say` gets a line per step, with the expected time.
pub async fn ensure_built(
    cache: &Path,
    say: &(dyn Fn(&str) + Send + Sync),
) -> Result<ComponentBinaries, ComponentBuildError> {
    let binaries = ComponentBinaries::in_cache(cache);
    let check = binaries.clone();
    let unverified = tokio::task::spawn_blocking(move || check.first_unverified())
        .await
        .expect("the digest check does not panic");
    let Some(first) = unverified else {
        return Ok(binaries);
    };
    if !matches!(first, Unverified::Missing(_)) {
        say(&format!(
            "{first}: building it again rather than running it"
        ));
    }
    if kindling_harness::requirement::find_program("go").is_none() {
        return Err(ComponentBuildError::NoGo {
            what: "the local cluster".to_owned(),
            cache: cache.to_owned(),
        });
    }
    let lock_path = cache.join("build.lock");
    let _lock = crate::cluster::lock::exclusive(
        &lock_path,
        "building the local cluster's components",
        "waiting for another process to build the local cluster's components",
    )
    .await?;
    let stale = |path: PathBuf| verify(&path).is_err();
    let kubernetes_missing = KUBERNETES_BINARIES
        .iter()
        .any(|name| stale(binaries.kubernetes(name)));
    if kubernetes_missing {
        build_kubernetes(cache, &binaries, say).await?;
    }
    if stale(binaries.etcd.clone()) {
        build_etcd(cache, &binaries, say).await?;
    }
    if stale(binaries.coredns.clone()) {
        build_coredns(cache, &binaries, say).await?;
    }
    Ok(binaries)
}

/// Builds the Kubernetes binaries into their folder of `binaries`.
async fn build_kubernetes(
    cache: &Path,
    binaries: &ComponentBinaries,
    say: &(dyn Fn(&str) + Send + Sync),
) -> Result<(), ComponentBuildError> {
    let ldflags = kubernetes_ldflags();
    let module = write_module(
        cache,
        &format!("kubernetes-{KUBERNETES_VERSION}"),
        KUBERNETES_MODULE,
    )?;
    let mut args = vec![
        "build".to_owned(),
        "-trimpath".to_owned(),
        "-ldflags".to_owned(),
        ldflags,
        "-o".to_owned(),
    ];
    let packages = KUBERNETES_BINARIES
        .iter()
        .map(|name| format!("k8s.io/kubernetes/cmd/{name}"));
    build_into(
        &format!(
            "Kubernetes {KUBERNETES_VERSION} ({})",
            KUBERNETES_BINARIES.join(", ")
        ),
        "about 5 min with a warm Go module cache, 6 min cold, on two cores; peak 3.3 GiB",
        &module,
        &binaries.kubernetes_dir,
        |out| {
            args.push(format!("{}/", out.display()));
            args.extend(packages.clone());
            (args.clone(), Vec::new())
        },
        say,
    )
    .await
}

/// Builds etcd into its folder of `binaries`.
async fn build_etcd(
    cache: &Path,
    binaries: &ComponentBinaries,
    say: &(dyn Fn(&str) + Send + Sync),
) -> Result<(), ComponentBuildError> {
    let module = write_module(cache, &format!("etcd-{ETCD_VERSION}"), ETCD_MODULE)?;
    build_into(
        &format!("etcd {ETCD_VERSION}"),
        "about 30 s on two cores",
        &module,
        binaries.etcd.parent().expect("etcd lives in a folder"),
        |out| {
            let args = vec![
                "build".to_owned(),
                "-trimpath".to_owned(),
                "-o".to_owned(),
                out.join("etcd").display().to_string(),
                ".".to_owned(),
            ];
            (args, Vec::new())
        },
        say,
    )
    .await
}

/// Builds CoreDNS (`go install`, from `<cache>/src`) into its folder of
/// `binaries`.
async fn build_coredns(
    cache: &Path,
    binaries: &ComponentBinaries,
    say: &(dyn Fn(&str) + Send + Sync),
) -> Result<(), ComponentBuildError> {
    let work = cache.join("src");
    create_dir(&work)?;
    build_into(
        &format!("CoreDNS {COREDNS_VERSION}"),
        "about 2 min on two cores",
        &work,
        binaries
            .coredns
            .parent()
            .expect("coredns lives in a folder"),
        |out| {
            let args = vec![
                "install".to_owned(),
                "-trimpath".to_owned(),
                format!("github.com/coredns/coredns@{COREDNS_VERSION}"),
            ];
            // `go install` takes its output folder from GOBIN.
            (args, vec![("GOBIN".to_owned(), out.display().to_string())])
        },
        say,
    )
    .await
}

/// The `-ldflags` that give Kubernetes binaries their version, as
/// upstream's release build sets it.
pub(crate) fn kubernetes_ldflags() -> String {
    let minor = KUBERNETES_VERSION.split('.').nth(1).unwrap_or_default();
    let mut ldflags = String::new();
    for package in [
        "k8s.io/component-base/version",
        "k8s.io/client-go/pkg/version",
    ] {
        ldflags.push_str(&format!(
            " -X {package}.gitVersion={KUBERNETES_VERSION} -X {package}.gitMajor=1 -X {package}.gitMinor={minor}"
        ));
    }
    ldflags
}

pub(crate) fn create_dir(path: &Path) -> Result<(), ComponentBuildError> {
    std::fs::create_dir_all(path).map_err(|source| ComponentBuildError::Write {
        path: path.to_owned(),
        source,
    })
}

/// Writes a Go module's files (paths relative to it) into `<cache>/src/<name>`.
pub(crate) fn write_module(
    cache: &Path,
    name: &str,
    files: &[(&str, &str)],
) -> Result<PathBuf, ComponentBuildError> {
    let dir = cache.join("src").join(name);
    create_dir(&dir)?;
    for (file, contents) in files {
        let path = dir.join(file);
        if let Some(parent) = path.parent() {
            create_dir(parent)?;
        }
        std::fs::write(&path, contents)
            .map_err(|source| ComponentBuildError::Write { path, source })?;
    }
    Ok(dir)
}

/// Arguments and extra environment of one `go` command (`CGO_ENABLED=0`
/// unless the environment given sets it).
pub(crate) type GoCommand = (Vec<String>, Vec<(String, String)>);

/// Runs `go <command(out)>` in `dir` with `out` a fresh folder beside
/// `target`, then renames it to `target`.
pub(crate) async fn build_into(
    what: &str,
    expected: &str,
    dir: &Path,
    target: &Path,
    command: impl FnOnce(&Path) -> GoCommand,
    say: &(dyn Fn(&str) + Send + Sync),
) -> Result<(), ComponentBuildError> {
    let started = Instant::now();
    say(&format!(
        "building {what} from the Go module proxy: first run only, {expected}"
    ));
    let partial = target.with_extension(format!("partial-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&partial);
    create_dir(&partial)?;
    let (args, env) = command(&partial);
    let output = tokio::process::Command::new("nice")
        .args(["-n", "10", "go"])
        .args(&args)
        .env("CGO_ENABLED", "0")
        .envs(env)
        .current_dir(dir)
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|source| ComponentBuildError::Write {
            path: dir.to_owned(),
            source,
        })?;
    if !output.status.success() {
        let _ = std::fs::remove_dir_all(&partial);
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(40).collect();
        return Err(ComponentBuildError::Build {
            what: what.to_owned(),
            command: format!("go {}", args.join(" ")),
            dir: dir.to_owned(),
            stderr: tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
        });
    }
    record_digests(&partial)?;
    let _ = std::fs::remove_dir_all(target);
    std::fs::rename(&partial, target).map_err(|source| ComponentBuildError::Write {
        path: target.to_owned(),
        source,
    })?;
    say(&format!(
        "built {what} in {:.0} s",
        started.elapsed().as_secs_f64()
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_layout_names_every_binary() {
        let binaries = ComponentBinaries::in_cache(Path::new("/c"));
        assert_eq!(
            binaries.kubernetes("kubelet"),
            Path::new("/c/bin/kubernetes-v1.34.12/kubelet")
        );
        assert_eq!(binaries.all().len(), 7);
        assert_eq!(
            binaries.missing().as_deref(),
            Some(Path::new("/c/bin/kubernetes-v1.34.12/kube-apiserver"))
        );
    }

    #[test]
    fn a_binary_runs_only_while_it_matches_the_digest_recorded_at_its_build() {
        let dir = tempfile::tempdir().unwrap();
        let binary = dir.path().join("etcd");
        std::fs::write(&binary, b"the built etcd").unwrap();
        assert_eq!(verify(&binary), Err(Unverified::Unrecorded(binary.clone())));
        record_digests(dir.path()).unwrap();
        assert_eq!(verify(&binary), Ok(()));
        std::fs::write(&binary, b"#!/bin/sh\ntouch /tmp/pwned\n").unwrap();
        let changed = verify(&binary).unwrap_err();
        assert_eq!(changed, Unverified::Changed(binary.clone()));
        assert!(changed.to_string().contains("does not match the digest"));
        std::fs::remove_file(&binary).unwrap();
        assert_eq!(verify(&binary), Err(Unverified::Missing(binary.clone())));
    }
}
