//! Readiness as kindling judges it, since `kind create cluster --wait`
//! exits 0 on timeout and only waits for control-plane nodes: every node
//! Ready and CoreDNS available.

use std::path::Path;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Node;
use kube::Client;

/// What a readiness check saw instead of a ready cluster.
#[derive(Debug, thiserror::Error)]
pub enum NotReady {
    /// The cluster's kubeconfig could not give a client.
    #[error(transparent)]
    Kubeconfig(#[from] crate::kubeconfig::KubeconfigError),
    /// Listing the nodes failed (the API server may not answer yet).
    #[error("cannot list nodes: {0}")]
    ListNodes(#[source] kube::Error),
    /// The API answered but no node has registered.
    #[error("no node has registered yet")]
    NoNodes,
    /// Nodes not Ready, by name.
    #[error("nodes not Ready: {}", .0.join(", "))]
    Nodes(Vec<String>),
    /// Reading the `kube-system/coredns` Deployment failed.
    #[error("cannot read Deployment kube-system/coredns: {0}")]
    ReadCoreDns(#[source] kube::Error),
    /// CoreDNS has fewer available replicas than it wants.
    #[error("CoreDNS has {available} of {wanted} replicas available")]
    CoreDns {
        /// Replicas available.
        available: i32,
        /// Replicas the Deployment asks for.
        wanted: i32,
    },
}
use kube::api::{Api, ListParams};

/// A client for `context` in the kubeconfig at `path`, whose requests give
/// up after 10 s (a readiness poll must not hang on one).
pub async fn client(path: &Path, context: &str) -> Result<Client, NotReady> {
    let mut config = crate::kubeconfig::config(path, Some(context)).await?;
    config.read_timeout = Some(Duration::from_secs(10));
    Ok(crate::kubeconfig::client_from(config, path)?)
}

/// `Ok` when every node is Ready; otherwise what is not.
pub async fn nodes_ready(client: &Client) -> Result<(), NotReady> {
    let nodes = Api::<Node>::all(client.clone())
        .list(&ListParams::default())
        .await
        .map_err(NotReady::ListNodes)?;
    if nodes.items.is_empty() {
        return Err(NotReady::NoNodes);
    }
    let not_ready: Vec<String> = nodes
        .items
        .iter()
        .filter(|node| !is_ready(node))
        .map(|node| node.metadata.name.clone().unwrap_or_default())
        .collect();
    if not_ready.is_empty() {
        Ok(())
    } else {
        Err(NotReady::Nodes(not_ready))
    }
}

/// `Ok` when the `kube-system/coredns` Deployment has all its replicas available.
pub async fn coredns_available(client: &Client) -> Result<(), NotReady> {
    let deployment = Api::<Deployment>::namespaced(client.clone(), "kube-system")
        .get("coredns")
        .await
        .map_err(NotReady::ReadCoreDns)?;
    let wanted = deployment
        .spec
        .as_ref()
        .and_then(|spec| spec.replicas)
        .unwrap_or(1);
    let available = deployment
        .status
        .as_ref()
        .and_then(|status| status.available_replicas)
        .unwrap_or(0);
    if available >= wanted.max(1) {
        Ok(())
    } else {
        Err(NotReady::CoreDns { available, wanted })
    }
}

/// Polls until the cluster is ready, or gives up at `timeout` with the last thing seen.
pub async fn wait_ready(path: &Path, context: &str, timeout: Duration) -> Result<(), NotReady> {
    let deadline = Instant::now() + timeout;
    let mut connected: Option<Client> = None;
    loop {
        let seen = match &connected {
            Some(client) => check(client).await,
            None => match client(path, context).await {
                Ok(client) => {
                    let seen = check(&client).await;
                    connected = Some(client);
                    seen
                }
                Err(seen) => Err(seen),
            },
        };
        match seen {
            Ok(()) => return Ok(()),
            Err(seen) if Instant::now() >= deadline => return Err(seen),
            Err(_) => tokio::time::sleep(Duration::from_secs(1)).await,
        }
    }
}

/// Every node Ready, then CoreDNS available.
async fn check(client: &Client) -> Result<(), NotReady> {
    nodes_ready(client).await?;
    coredns_available(client).await
}

fn is_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|status| status.conditions.as_ref())
        .is_some_and(|conditions| {
            conditions
                .iter()
                .any(|condition| condition.type_ == "Ready" && condition.status == "True")
        })
}
