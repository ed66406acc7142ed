//! What the end of a run removes of an environment (`KINDLING_KEEP`): its
//! namespace, then the cluster-scoped objects no namespace uses any more,
//! and under `never` the cluster when this run created it.

use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams};
use serde::{Deserialize, Serialize};

use crate::BoxFuture;
use crate::KeepPolicy;
use crate::cluster::ProviderSpec;
use kindling_harness::Cleanup;

/// How long the end of a run waits for a deleted namespace to be gone.
const NAMESPACE_GONE_TIMEOUT: Duration = Duration::from_secs(120);

/// What removing an environment needs, as the setup records it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct EnvironmentCleanup {
    pub kubeconfig: PathBuf,
    pub context: String,
    pub namespace: String,
    pub cluster: ProviderSpec,
    /// Whether the setup of this run created (or started) the cluster.
    pub cluster_created: bool,
}

impl EnvironmentCleanup {
    pub(crate) fn describe(&self) -> String {
        format!(
            "namespace `{}` on cluster `{}`",
            self.namespace,
            self.cluster.cluster()
        )
    }
}

/// The [`kindling_harness::FinishFn`] of environments: each namespace
/// (waiting until it is gone) and the cluster-scoped objects left unused,
/// then, under `never`, each cluster a setup of the run created.
pub(crate) fn finish_cleanups(
    cleanups: Vec<Cleanup>,
    keep: KeepPolicy,
) -> BoxFuture<Vec<Result<Vec<String>, String>>> {
    Box::pin(async move {
        let mut outcomes = Vec::new();
        // Each cluster a setup of this run created, and the first cleanup
        // on it (which its deletion is reported with).
        let mut created: Vec<(ProviderSpec, usize)> = Vec::new();
        for cleanup in cleanups {
            let environment: EnvironmentCleanup = match serde_json::from_value(cleanup.data) {
                Ok(environment) => environment,
                Err(error) => {
                    outcomes.push(Err(format!("not an environment's cleanup: {error}")));
                    continue;
                }
            };
            if environment.cluster_created
                && !created.iter().any(|(spec, _)| *spec == environment.cluster)
            {
                created.push((environment.cluster.clone(), outcomes.len()));
            }
            outcomes.push(remove_namespace(&environment).await);
        }
        if keep == KeepPolicy::Never {
            for (spec, reported_with) in created {
                let deleted = match spec.provider() {
                    Ok(provider) => provider
                        .delete()
                        .await
                        .map_err(|error| kindling_harness::render_chain(&error)),
                    Err(error) => Err(kindling_harness::render_chain(&error)),
                };
                let outcome = &mut outcomes[reported_with];
                match (deleted, outcome.as_mut()) {
                    (Ok(()), Ok(removed)) => {
                        removed.push(format!("cluster `{}`, created by this run", spec.cluster()))
                    }
                    (Ok(()), Err(_)) => {}
                    (Err(error), _) => {
                        *outcome = Err(format!("cluster `{}`: {error}", spec.cluster()))
                    }
                }
            }
        }
        outcomes
    })
}

async fn remove_namespace(environment: &EnvironmentCleanup) -> Result<Vec<String>, String> {
    let client = crate::environment::client_for(&environment.kubeconfig, &environment.context)
        .await
        .map_err(|error| kindling_harness::render_chain(&error))?;
    let namespaces = Api::<Namespace>::all(client.clone());
    let uid = match namespaces
        .delete(&environment.namespace, &DeleteParams::background())
        .await
    {
        Ok(either) => either.left().and_then(|namespace| namespace.metadata.uid),
        Err(kube::Error::Api(response)) if response.code == 404 => None,
        Err(error) => return Err(format!("deleting it: {error}")),
    };
    if let Some(uid) = uid {
        let gone = kube::runtime::wait::await_condition(
            namespaces,
            &environment.namespace,
            kube::runtime::conditions::is_deleted(&uid),
        );
        match tokio::time::timeout(NAMESPACE_GONE_TIMEOUT, gone).await {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => return Err(format!("watching it: {error}")),
            Err(_elapsed) => {
                return Err(format!(
                    "still terminating after {}s",
                    NAMESPACE_GONE_TIMEOUT.as_secs()
                ));
            }
        }
    }
    let mut removed = vec![environment.describe()];
    let objects = crate::deploy::collect_cluster_garbage(&client)
        .await
        .map_err(|error| kindling_harness::render_chain(&error))?;
    removed.extend(objects);
    Ok(removed)
}
