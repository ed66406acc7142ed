//! Kind's node containers, found by the labels kind puts on them.

use std::collections::HashMap;
use std::sync::Arc;

use bollard::Docker;
use bollard::query_parameters::ListContainersOptionsBuilder;

use super::{DockerExec, NodeStore};

/// The label kind puts on each node container, valued with the cluster's name.
pub const KIND_CLUSTER_LABEL: &str = "io.x-k8s.kind.cluster";
/// The label kind puts on each node container, valued with the node's role
/// (`control-plane`, `worker`).
pub const KIND_ROLE_LABEL: &str = "io.x-k8s.kind.role";

/// A running node container of a Kind cluster.
#[derive(Clone)]
pub struct KindNode {
    /// The container's name, which is the node's name.
    pub name: String,
    /// The node's role from [`KIND_ROLE_LABEL`] (`control-plane`, `worker`;
    /// empty when unlabelled).
    pub role: String,
    /// The node's image store, reached by `docker exec` in the container.
    pub store: NodeStore,
}

/// Running node containers labelled `io.x-k8s.kind.cluster=<cluster>`,
/// control plane first, then by name.
pub async fn discover_kind_nodes(
    docker: &Docker,
    cluster: &str,
) -> Result<Vec<KindNode>, bollard::errors::Error> {
    let filters = HashMap::from([(
        "label".to_owned(),
        vec![format!("{KIND_CLUSTER_LABEL}={cluster}")],
    )]);
    let containers = docker
        .list_containers(Some(
            ListContainersOptionsBuilder::default()
                .filters(&filters)
                .build(),
        ))
        .await?;
    let mut nodes: Vec<KindNode> = containers
        .into_iter()
        .filter_map(|container| {
            let name = container.names?.first()?.trim_start_matches('/').to_owned();
            let role = container
                .labels
                .as_ref()
                .and_then(|labels| labels.get(KIND_ROLE_LABEL).cloned())
                .unwrap_or_default();
            Some(KindNode {
                store: NodeStore::new(Arc::new(DockerExec::new(docker.clone(), name.clone()))),
                name,
                role,
            })
        })
        .collect();
    nodes.sort_by(|a, b| {
        (a.role != "control-plane", &a.name).cmp(&(b.role != "control-plane", &b.name))
    });
    Ok(nodes)
}
