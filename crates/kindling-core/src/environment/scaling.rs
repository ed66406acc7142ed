//! Scaling a workload of the environment, for a test that takes a
//! dependency away and brings it back.

use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::json;

use super::{Environment, KubeError};
use crate::wait::Workload;

/// How long a scaled workload may take to reach its replicas.
const SCALE_TIMEOUT: Duration = Duration::from_secs(120);

/// Why a workload could not be scaled.
#[derive(Debug, thiserror::Error)]
#[error("cannot scale {kind} `{namespace}/{name}` to {replicas}: {source}")]
pub struct ScaleError {
    /// `Deployment`, or `Deployment or StatefulSet` when no Deployment
    /// has the name and scaling a StatefulSet of that name failed too.
    pub kind: &'static str,
    /// The environment's namespace.
    pub namespace: String,
    /// The workload's name.
    pub name: String,
    /// The replicas asked for.
    pub replicas: i32,
    /// The API client's error.
    #[source]
    pub source: kube::Error,
}

impl Environment {
    /// Sets the replicas of Deployment `name` (a StatefulSet when no
    /// Deployment has that name) and waits until it has exactly that many
    /// ready pods and no more pods at all (terminating pods still serve),
    /// diagnosing a pod that cannot start.
    pub async fn scale(&self, name: &str, replicas: i32) -> Result<(), KubeError> {
        let client = self.client().await?;
        let patch = Patch::Merge(json!({"spec": {"replicas": replicas}}));
        let params = PatchParams::default();
        let error = |kind, source| ScaleError {
            kind,
            namespace: self.namespace.clone(),
            name: name.to_owned(),
            replicas,
            source,
        };
        let deployments = Api::<Deployment>::namespaced(client.clone(), &self.namespace);
        let (kind, selector) = match deployments.patch_scale(name, &params, &patch).await {
            Ok(_) => {
                let deployment = deployments
                    .get(name)
                    .await
                    .map_err(|source| Box::new(error("Deployment", source)))?;
                ("Deployment", deployment.spec.map(|spec| spec.selector))
            }
            Err(kube::Error::Api(response)) if response.code == 404 => {
                let sets = Api::<StatefulSet>::namespaced(client.clone(), &self.namespace);
                let set = sets
                    .patch_scale(name, &params, &patch)
                    .await
                    .and(sets.get(name).await)
                    .map_err(|source| Box::new(error("Deployment or StatefulSet", source)))?;
                ("StatefulSet", set.spec.map(|spec| spec.selector))
            }
            Err(source) => return Err(Box::new(error("Deployment", source)).into()),
        };
        let waiter = self.waiter(SCALE_TIMEOUT).await?;
        waiter
            .wait(&[Workload::new(kind, &self.namespace, name)])
            .await?;
        let selector = selector
            .and_then(|selector| selector.match_labels)
            .unwrap_or_default()
            .iter()
            .map(|(key, value)| format!("{key}={value}"))
            .collect::<Vec<_>>()
            .join(",");
        let pods = Api::<Pod>::namespaced(client, &self.namespace);
        let wanted = usize::try_from(replicas).unwrap_or(0);
        waiter
            .until_ok(
                &format!("{kind} `{name}` to have no more than {replicas} pods"),
                &self.namespace,
                || async {
                    let found = pods
                        .list(&ListParams::default().labels(&selector))
                        .await
                        .map_err(|error| error.to_string())?;
                    if found.items.len() <= wanted {
                        Ok(())
                    } else {
                        Err(format!(
                            "{} pods, terminating ones included",
                            found.items.len()
                        ))
                    }
                },
            )
            .await?;
        Ok(())
    }
}
