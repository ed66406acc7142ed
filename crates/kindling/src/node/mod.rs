//! A node's containerd image store (`k8s.io` namespace), reached through a
//! transport: exec in a Kind node container through the Docker API, or a
//! local process for a containerd on this host.

mod kind;
mod store;
mod transport;

pub use kind::{KIND_CLUSTER_LABEL, KIND_ROLE_LABEL, KindNode, discover_kind_nodes};
pub use store::{NodeStore, StoredImage};
pub use transport::{ByteStream, DockerExec, ExecOutput, LocalProcess, NodeTransport};

/// A command on a node failed.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("failed to run `{command}` on node `{node}`")]
    Exec {
        node: String,
        command: String,
        #[source]
        source: crate::BoxError,
    },
    #[error("`{command}` failed on node `{node}` with exit code {code}: {stderr}")]
    Failed {
        node: String,
        command: String,
        code: i64,
        stderr: String,
    },
    #[error(
        "cannot find the image snapshotter in `containerd config dump` on node `{node}`: is containerd's CRI plugin configured?"
    )]
    NoSnapshotter { node: String },
}
