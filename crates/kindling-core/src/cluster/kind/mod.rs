//! The `kind` provider: clusters of Kind node containers, driven through
//! the real `kind` CLI. kindling adds what kind leaves out: a kubeconfig of
//! the cluster's own (never `~/.kube/config`), readiness it checks itself,
//! refusing to reuse a cluster created from another configuration, a node
//! image made on this machine ([`node_image`]) where none can be pulled,
//! and a `docker` shim for engines that refuse privileged containers
//! ([`privileged`]).

pub mod cli;
pub mod config;
pub mod node_image;
pub mod pinned;
pub mod privileged;
mod provider;
pub mod ready;

use std::path::PathBuf;
use std::time::Duration;

pub use cli::{KindCli, KindVersion, MINIMUM_VERSION, PINNED_VERSION};
pub use config::{ClusterConfig, DEFAULT_CONFIG, EffectiveConfig, Fingerprint, NodeImageChoice};
pub use provider::{KindCluster, KindEngine};

/// The kind provider failed.
#[derive(Debug, thiserror::Error)]
pub enum KindError {
    /// Taking the cluster's users lock, to delete it once no suite uses it,
    /// failed.
    #[error(transparent)]
    Lock(#[from] crate::cluster::LockError),
    /// No `kind` binary was found, or the one named is not an executable file.
    #[error(
        "kind is not installed (looked for {searched}) and Go is not there to build the pinned one: install Go (kindling then builds kind {} itself), install kind (`go install sigs.k8s.io/kind@{}`), or set KINDLING_KIND_BINARY",
        PINNED_VERSION,
        PINNED_VERSION
    )]
    BinaryMissing {
        /// Where kindling looked, in words.
        searched: String,
    },
    /// Building the pinned kind into the cache failed.
    #[error("cannot build the pinned kind {}", PINNED_VERSION)]
    BuildKind(#[source] Box<crate::cluster::components::ComponentBuildError>),
    /// The `kind` binary is older than [`MINIMUM_VERSION`].
    #[error(
        "`{binary}` is kind {found}, older than the minimum {}: upgrade with `go install sigs.k8s.io/kind@{}` and put it first on PATH or in KINDLING_KIND_BINARY, or remove it from PATH so that kindling builds the pinned kind",
        MINIMUM_VERSION,
        PINNED_VERSION
    )]
    TooOld {
        /// The binary that was run.
        binary: PathBuf,
        /// The version it reported.
        found: KindVersion,
    },
    /// `kind version` printed something kindling cannot read a version from.
    #[error("`{binary} version` printed `{output}`, which is not a kind version")]
    UnknownVersion {
        /// The binary that was run.
        binary: PathBuf,
        /// What it printed on stdout, trimmed.
        output: String,
    },
    /// The kind configuration is not YAML kindling can put the node image in.
    #[error(
        "the kind configuration {config} cannot be read ({message}): kind takes YAML with a mapping at the top, `nodes` a list of mappings"
    )]
    ParseConfig {
        /// The configuration, in words (its file, or kindling's default).
        config: String,
        /// What is wrong with it.
        message: String,
    },
    /// kindling's node image could not be made.
    #[error(transparent)]
    NodeImage(Box<node_image::NodeImageError>),
    /// Whether the engine starts privileged containers could not be found
    /// out, or the shim not written.
    #[error(transparent)]
    Privileged(#[from] privileged::PrivilegedError),
    /// A kind command could not be started.
    #[error("cannot run `{command}`")]
    Spawn {
        /// The command line, binary and arguments.
        command: String,
        /// The error starting it.
        #[source]
        source: std::io::Error,
    },
    /// A kind command exited unsuccessfully.
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        /// The command line, binary and arguments.
        command: String,
        /// Its exit status, in words.
        status: String,
        /// What it wrote to stderr, trimmed.
        stderr: String,
    },
    /// The kind configuration file could not be read.
    #[error("cannot read the kind configuration `{path}`")]
    ReadConfig {
        /// The configuration file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A file of kindling's state for the cluster (its state directory, lock,
    /// configuration copy, kubeconfig or fingerprint record) could not be read,
    /// written or removed.
    #[error("cannot write kindling's state at `{path}`")]
    State {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The cluster exists but its recorded fingerprint is missing or differs
    /// from the current configuration's, and recreating it is not allowed.
    #[error(
        "kind cluster `{cluster}` exists but {reason}; kindling does not reuse it with {config} (fingerprint {current}): delete it with `kindling down --provider kind --cluster {cluster}`, or allow recreating it with KINDLING_KIND_RECREATE=1 (`KindCluster::recreate_on_change(true)`)"
    )]
    ConfigChanged {
        /// The cluster's name.
        cluster: String,
        /// Why the recorded fingerprint does not match, in words.
        reason: String,
        /// The configuration it would be created from now, in words.
        config: String,
        /// The fingerprint of that configuration with the current kind.
        current: String,
    },
    /// The cluster did not become ready (every node Ready, CoreDNS available)
    /// within the timeout.
    #[error(
        "kind cluster `{cluster}` was not ready within {}s (every node Ready, CoreDNS available); last seen: {last}; {logs}", .after.as_secs()
    )]
    NotReady {
        /// The cluster's name.
        cluster: String,
        /// The timeout that ran out.
        after: Duration,
        /// What the last readiness check saw.
        last: Box<ready::NotReady>,
        /// Where kind's logs went, or why they could not be collected.
        logs: String,
    },
    /// `KIND_EXPERIMENTAL_PROVIDER` names an engine whose nodes kindling cannot
    /// reach through the Docker API.
    #[error(
        "KIND_EXPERIMENTAL_PROVIDER=`{value}` is not supported: kindling reaches kind's nodes through the Docker API, so only `docker` and `podman` work"
    )]
    UnsupportedEngine {
        /// The value given.
        value: String,
    },
    /// The Docker (or Podman) engine the nodes run on does not answer.
    #[error(transparent)]
    Docker(#[from] crate::docker::DockerUnavailable),
    /// Listing the cluster's node containers through the engine failed.
    #[error("cannot list the node containers of kind cluster `{cluster}`")]
    Discover {
        /// The cluster's name.
        cluster: String,
        /// The Docker client's error.
        #[source]
        source: bollard::errors::Error,
    },
    /// No container carries the cluster's kind label: the cluster does not
    /// exist on the engine.
    #[error(
        "kind cluster `{cluster}` has no node containers (none labelled io.x-k8s.kind.cluster={cluster}): create it first (`kindling up --provider kind --cluster {cluster}`)"
    )]
    NoNodes {
        /// The cluster's name.
        cluster: String,
    },
    /// The cluster's own kubeconfig is not in its state directory, so
    /// kindling has not brought it up here.
    #[error(
        "kind cluster `{cluster}` has no kubeconfig at `{path}`: run `kindling up --provider kind --cluster {cluster}` first"
    )]
    NoKubeconfig {
        /// The cluster's name.
        cluster: String,
        /// Where the kubeconfig should be.
        path: PathBuf,
    },
    /// The health check of a cluster set up earlier failed.
    #[error("kind cluster `{cluster}` does not answer: {detail}")]
    Unhealthy {
        /// The cluster's name.
        cluster: String,
        /// What the check saw.
        detail: Box<ready::NotReady>,
    },
    /// `kind export logs` failed after writing part of the logs.
    #[error(
        "`kind export logs` collected only part of the logs into `{dir}` (kept there): {stderr}"
    )]
    LogsIncomplete {
        /// The directory it wrote them into, kept.
        dir: PathBuf,
        /// What kind wrote to stderr.
        stderr: String,
    },
    /// Loading images into the nodes' stores failed.
    #[error(transparent)]
    Load(Box<crate::image::LoadError>),
}
