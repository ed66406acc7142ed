//! What a process using an environment keeps up while it runs: the
//! cluster's users lock (so `kindling down` waits for it) and its
//! namespace's heartbeat (so another run's garbage collection never takes
//! a namespace whose tests are still running).
//!
//! A process enters explicitly: the setup at the end of `up`, every other
//! process when the harness hands it the recorded environment
//! ([`enter_recorded`], kindling's harness extension), a copy when it is
//! made. Asking an environment for a client does not.

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use kube::Client;
use serde::Deserialize;

use crate::BoxFuture;
use crate::cluster::ProviderSpec;
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

/// What entering needs of a recorded environment.
#[derive(Deserialize)]
struct Recorded {
    provider: ProviderSpec,
    kubeconfig: std::path::PathBuf,
    context: String,
    namespace: String,
}

/// The harness extension's [`kindling_harness::extension::EnterFn`]:
/// enters every kindling environment in what a suite's setup returned (an
/// [`crate::Environment`], or a value of the suite's own holding one or
/// more).
pub(crate) fn enter_recorded(recorded: serde_json::Value) -> BoxFuture<()> {
    Box::pin(async move {
        for environment in environments_in(recorded) {
            let spec = &environment.provider;
            match super::client_for(&environment.kubeconfig, &environment.context).await {
                Ok(client) => {
                    enter(spec.kind(), spec.cluster(), &client, &environment.namespace).await;
                }
                Err(error) => tracing::warn!(
                    "cannot mark cluster `{}` as in use: {}",
                    spec.cluster(),
                    kindling_harness::render_chain(&error)
                ),
            }
        }
    })
}

/// The environments in `value`: itself if it is one, else those in its
/// fields and items.
fn environments_in(value: serde_json::Value) -> Vec<Recorded> {
    if let Ok(environment) = Recorded::deserialize(&value) {
        return vec![environment];
    }
    match value {
        serde_json::Value::Object(fields) => fields
            .into_iter()
            .flat_map(|(_, value)| environments_in(value))
            .collect(),
        serde_json::Value::Array(items) => items.into_iter().flat_map(environments_in).collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environments_are_found_whole_or_inside_a_suites_own_value() {
        let environment = serde_json::json!({
            "provider": {
                "provider": "local",
                "cluster": "kindling",
                "state_root": "/s",
                "cache": "/c",
            },
            "kubeconfig": "/k",
            "context": "c",
            "namespace": "ns-a",
            "images": {},
        });
        let found = environments_in(environment.clone());
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].namespace, "ns-a");
        assert_eq!(found[0].provider.cluster(), "kindling");
        let mut other = environment.clone();
        other["namespace"] = "ns-b".into();
        let wrapped = serde_json::json!({"system": environment, "copies": [other], "n": 3});
        let mut namespaces: Vec<String> = environments_in(wrapped)
            .into_iter()
            .map(|found| found.namespace)
            .collect();
        namespaces.sort();
        assert_eq!(namespaces, ["ns-a", "ns-b"]);
        assert!(environments_in(serde_json::json!({"made": "a string"})).is_empty());
    }
}
