//! The `kind` provider: clusters of Kind node containers, driven through
//! the real `kind` CLI. kindling adds what kind leaves out: a kubeconfig of
//! the cluster's own (never `~/.kube/config`), readiness it checks itself,
//! and refusing to reuse a cluster created from another configuration.

pub mod cli;
pub mod config;
mod provider;
pub mod ready;

use std::path::PathBuf;
use std::time::Duration;

pub use cli::{KindCli, KindVersion, MINIMUM_VERSION, PINNED_VERSION};
pub use config::{ClusterConfig, DEFAULT_CONFIG, Fingerprint};
pub use provider::{KindCluster, KindEngine};

/// The kind provider failed.
#[derive(Debug, thiserror::Error)]
pub enum KindError {
    #[error(transparent)]
    Lock(#[from] crate::cluster::LockError),
    #[error(
        "kind is not installed (looked for {searched}): install it with `go install sigs.k8s.io/kind@{}`, build the pinned one with `bash fixtures/kind/build.sh`, or set KINDLING_KIND_BINARY",
        PINNED_VERSION
    )]
    BinaryMissing { searched: String },
    #[error(
        "`{binary}` is kind {found}, older than the minimum {}: upgrade with `go install sigs.k8s.io/kind@{}` (or `bash fixtures/kind/build.sh`) and put it first on PATH or in KINDLING_KIND_BINARY",
        MINIMUM_VERSION,
        PINNED_VERSION
    )]
    TooOld { binary: PathBuf, found: KindVersion },
    #[error("`{binary} version` printed `{output}`, which is not a kind version")]
    UnknownVersion { binary: PathBuf, output: String },
    #[error("cannot run `{command}`")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        command: String,
        status: String,
        stderr: String,
    },
    #[error("cannot read the kind configuration `{path}`")]
    ReadConfig {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write kindling's state at `{path}`")]
    State {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "kind cluster `{cluster}` exists but {reason}; kindling does not reuse it with {config} (fingerprint {current}): delete it with `kindling down --provider kind --cluster {cluster}`, or allow recreating it with KINDLING_KIND_RECREATE=1 (`KindCluster::recreate_on_change(true)`)"
    )]
    ConfigChanged {
        cluster: String,
        /// Why the recorded fingerprint does not match, in words.
        reason: String,
        config: String,
        current: String,
    },
    #[error(
        "kind cluster `{cluster}` was not ready within {}s (every node Ready, CoreDNS available); last seen: {last}; {logs}", .after.as_secs()
    )]
    NotReady {
        cluster: String,
        after: Duration,
        last: Box<ready::NotReady>,
        /// Where kind's logs went, or why they could not be collected.
        logs: String,
    },
    #[error(
        "KIND_EXPERIMENTAL_PROVIDER=`{value}` is not supported: kindling reaches kind's nodes through the Docker API, so only `docker` and `podman` work"
    )]
    UnsupportedEngine { value: String },
    #[error(transparent)]
    Docker(#[from] crate::docker::DockerUnavailable),
    #[error("cannot list the node containers of kind cluster `{cluster}`")]
    Discover {
        cluster: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error(
        "kind cluster `{cluster}` has no node containers (none labelled io.x-k8s.kind.cluster={cluster}): create it first (`kindling up --provider kind --cluster {cluster}`)"
    )]
    NoNodes { cluster: String },
    #[error(
        "kind cluster `{cluster}` has no kubeconfig at `{path}`: run `kindling up --provider kind --cluster {cluster}` first"
    )]
    NoKubeconfig { cluster: String, path: PathBuf },
    #[error("kind cluster `{cluster}` does not answer: {detail}")]
    Unhealthy {
        cluster: String,
        detail: Box<ready::NotReady>,
    },
    #[error(
        "`kind export logs` collected only part of the logs into `{dir}` (kept there): {stderr}"
    )]
    LogsIncomplete { dir: PathBuf, stderr: String },
    #[error(transparent)]
    Load(Box<crate::image::LoadError>),
}
