//! What a process using an environment keeps up while it runs: the
//! cluster's users lock (so `kindling down` waits for it) and its
//! namespace's heartbeat (so another run's garbage collection never takes
//! a namespace whose tests are still running).

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use kube::Client;

use crate::deploy::namespace;

/// How often a running process renews its namespace's heartbeat: well
/// inside the 15-minute grace period of garbage collection.
pub(crate) const HEARTBEAT_EVERY: Duration = Duration::from_secs(60);

/// Marks this process as using `namespace` on the cluster, once per
/// process: learns the namespace's Secrets for redaction (and lists them
/// again before a failure is written), holds the cluster's users lock and
/// renews the namespace's heartbeat every minute until the process ends.
/// Failures only log: a heartbeat that cannot be written must not fail a
/// test.
pub(crate) async fn enter(provider: &str, cluster: &str, client: &Client, namespace: &str) {
    static ENTERED: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    let first = ENTERED
        .get_or_init(Mutex::default)
        .lock()
        .expect("entered namespaces")
        .insert(format!("{provider}/{cluster}/{namespace}"));
    if !first {
        return;
    }
    crate::redaction::watch_namespace(client, namespace).await;
    if let Err(error) = crate::cluster::lock::use_cluster(provider, cluster).await {
        tracing::warn!(
            "cannot mark cluster `{cluster}` as in use: {}",
            kindling_harness::render_chain(&error)
        );
    }
    let client = client.clone();
    let namespace = namespace.to_owned();
    tokio::spawn(async move {
        loop {
            if let Err(error) = namespace::heartbeat(&client, &namespace).await {
                tracing::debug!(
                    "cannot renew the heartbeat of `{namespace}`: {}",
                    kindling_harness::render_chain(&error)
                );
            }
            tokio::time::sleep(HEARTBEAT_EVERY).await;
        }
    });
}
