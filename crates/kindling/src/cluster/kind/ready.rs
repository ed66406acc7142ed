//! Readiness as kindling judges it, since `kind create cluster --wait`
//! exits 0 on timeout and only waits for control-plane nodes: every node
//! Ready and CoreDNS available.

use std::path::Path;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Node;
use kube::Client;
use kube::api::{Api, ListParams};

/// A client for `context` in the kubeconfig at `path`, whose requests give
/// up after 10 s (a readiness poll must not hang on one).
pub async fn client(path: &Path, context: &str) -> Result<Client, String> {
    let mut config = crate::kubeconfig::config(path, Some(context))
        .await
        .map_err(|error| crate::error::render_chain(&error))?;
    config.read_timeout = Some(Duration::from_secs(10));
    crate::kubeconfig::client_from(config, path).map_err(|error| crate::error::render_chain(&error))
}

/// `Ok` when every node is Ready; otherwise what is not.
pub async fn nodes_ready(client: &Client) -> Result<(), String> {
    let nodes = Api::<Node>::all(client.clone())
        .list(&ListParams::default())
        .await
        .map_err(|error| format!("cannot list nodes: {error}"))?;
    if nodes.items.is_empty() {
        return Err("no node has registered yet".to_owned());
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
        Err(format!("nodes not Ready: {}", not_ready.join(", ")))
    }
}

/// `Ok` when the `kube-system/coredns` Deployment has all its replicas available.
pub async fn coredns_available(client: &Client) -> Result<(), String> {
    let deployment = Api::<Deployment>::namespaced(client.clone(), "kube-system")
        .get("coredns")
        .await
        .map_err(|error| format!("cannot read Deployment kube-system/coredns: {error}"))?;
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
        Err(format!(
            "CoreDNS has {available} of {wanted} replicas available"
        ))
    }
}

/// Polls until the cluster is ready, or gives up at `timeout` with the last thing seen.
pub async fn wait_ready(path: &Path, context: &str, timeout: Duration) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    let mut client_result = client(path, context).await;
    loop {
        let seen = match &client_result {
            Ok(client) => match nodes_ready(client).await {
                Ok(()) => coredns_available(client).await,
                Err(seen) => Err(seen),
            },
            Err(seen) => Err(seen.clone()),
        };
        let Err(seen) = seen else {
            return Ok(());
        };
        if Instant::now() >= deadline {
            return Err(seen);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        if client_result.is_err() {
            client_result = client(path, context).await;
        }
    }
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
