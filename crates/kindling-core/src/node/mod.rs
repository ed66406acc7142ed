//! A node's containerd image store (`k8s.io` namespace), reached through a
//! transport: exec in a Kind node container through the Docker API, or a
//! local process for a containerd on this host.

mod kind;
mod store;
mod transport;

pub use kind::{KIND_CLUSTER_LABEL, KIND_ROLE_LABEL, KindNode, discover_kind_nodes};
pub use store::{DEFAULT_IDLE_TIMEOUT, NodeStore, StoredImage};
pub use transport::{ByteStream, DockerExec, ExecOutput, LocalProcess, NodeTransport};

/// A command on a node failed.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The command could not be run on the node, or its output not read (e.g.
    /// the node container is gone).
    #[error("failed to run `{command}` on node `{node}`")]
    Exec {
        /// The node's name.
        node: String,
        /// The command line, words joined by spaces.
        command: String,
        /// The transport's error.
        #[source]
        source: crate::BoxError,
    },
    /// The command ran and exited with a non-zero code.
    #[error("`{command}` failed on node `{node}` with exit code {code}: {stderr}")]
    Failed {
        /// The node's name.
        node: String,
        /// The command line, words joined by spaces.
        command: String,
        /// Its exit code (`-1` when there is none, e.g. killed by a signal).
        code: i64,
        /// What it wrote to stderr, trimmed.
        stderr: String,
    },
    /// The command took no input and printed nothing for `waited`: it was
    /// killed.
    #[error(
        "`{command}` on node `{node}` made no progress for {}, and was killed: is the node's containerd stuck? (see its log in the cluster's artifacts)",
        humantime::format_duration(*waited)
    )]
    Stalled {
        /// The node's name.
        node: String,
        /// The command line, words joined by spaces.
        command: String,
        /// How long it went without progress.
        waited: std::time::Duration,
    },
    /// `containerd config dump` on the node names no snapshotter for the
    /// CRI plugin.
    #[error(
        "cannot find the image snapshotter in `containerd config dump` on node `{node}`: is containerd's CRI plugin configured?"
    )]
    NoSnapshotter {
        /// The node's name.
        node: String,
    },
}
