//! Applying an environment's manifests stage by stage, each stage a setup
//! phase: only objects that differ from the last setup are applied, a
//! changed Job is replaced (its template cannot change), and a stage's
//! changed or unready workloads are waited for before the next begins.

use std::time::{Duration, Instant};

use k8s_openapi::api::batch::v1::Job;
use kube::Client;
use kube::api::{Api, DeleteParams};

use super::EnvironmentError;
use crate::SetupContext;
use crate::deploy::{
    Changes, DeployedObject, Manifest, ObjectKey, Ownership, apply_manifests, delete_objects,
    dry_run_manifests, plan_changes,
};
use crate::wait::{Waiter, Workload};

/// How long a replaced Job may take to disappear.
const JOB_GONE_TIMEOUT: Duration = Duration::from_secs(60);

/// What to deploy: each stage's manifests, and what the last setup applied.
pub(crate) struct StagePlan<'a> {
    namespace: &'a str,
    ownership: Ownership,
    known: Option<&'a [DeployedObject]>,
    stages: &'a [(String, Vec<Manifest>)],
}

impl<'a> StagePlan<'a> {
    pub(crate) fn new(
        namespace: &'a str,
        accepted: &[(String, String)],
        known: Option<&'a [DeployedObject]>,
        stages: &'a [(String, Vec<Manifest>)],
    ) -> Self {
        StagePlan {
            namespace,
            ownership: Ownership::Suite {
                namespace: namespace.to_owned(),
                accepted: accepted.to_vec(),
            },
            known,
            stages,
        }
    }
}

/// A stage failed.
pub(crate) struct StageFailure {
    pub phase: String,
    pub error: EnvironmentError,
}

/// Deploys every stage in order; returns every workload as `(kind,
/// namespace, name)`.
pub(crate) async fn deploy(
    setup: &SetupContext,
    client: &Client,
    waiter: &Waiter,
    plan: StagePlan<'_>,
) -> Result<Vec<(String, String, String)>, StageFailure> {
    let namespace = plan.namespace;
    let all: Vec<Manifest> = plan
        .stages
        .iter()
        .flat_map(|(_, manifests)| manifests.iter().cloned())
        .collect();
    let changes = plan_changes(plan.known, &all);
    if plan.known.is_some() {
        setup.progress(&format!(
            "in `{namespace}`: {} object(s) changed{}, {} unchanged, {} removed",
            changes.changed.len(),
            describe(&all, &changes.changed),
            changes.unchanged.len(),
            changes.removed.len()
        ));
    }
    dry_run_changed(client, &plan, &all, &changes).await?;
    let mut offset = 0;
    for (name, manifests) in plan.stages {
        let range = offset..offset + manifests.len();
        offset = range.end;
        let stage = StageWork {
            client,
            namespace,
            ownership: &plan.ownership,
            all: &all,
            changes: &changes,
            range,
        };
        setup
            .phase(name, stage.run(setup, waiter))
            .await
            .map_err(|failure| StageFailure {
                phase: name.clone(),
                error: match failure.source.downcast::<EnvironmentError>() {
                    Ok(error) => *error,
                    Err(other) => EnvironmentError::Other(other),
                },
            })?;
    }
    if !changes.removed.is_empty() {
        let deleted = delete_objects(client, namespace, &changes.removed)
            .await
            .map_err(|error| StageFailure {
                phase: plan
                    .stages
                    .last()
                    .map(|(name, _)| name.clone())
                    .unwrap_or_default(),
                error: error.into(),
            })?;
        tracing::info!("deleted objects the manifests no longer hold: {deleted:?}");
    }
    Ok(all
        .iter()
        .filter_map(|manifest| workload_of(manifest, namespace))
        .map(|workload| (workload.kind, workload.namespace, workload.name))
        .collect())
}

/// Checks every changed object of every stage before anything is applied;
/// a changed Job, replaced since its template cannot change, is judged
/// when it is created again in its stage. A failure is the first stage's.
async fn dry_run_changed(
    client: &Client,
    plan: &StagePlan<'_>,
    all: &[Manifest],
    changes: &Changes,
) -> Result<(), StageFailure> {
    let changed: Vec<Manifest> = changes
        .changed
        .iter()
        .map(|index| all[*index].clone())
        .filter(|manifest| manifest.kind() != "Job")
        .collect();
    if changed.is_empty() {
        return Ok(());
    }
    dry_run_manifests(client, plan.namespace, &changed, &plan.ownership)
        .await
        .map_err(|error| StageFailure {
            phase: plan
                .stages
                .first()
                .map(|(name, _)| name.clone())
                .unwrap_or_default(),
            error: error.into(),
        })
}

/// One stage's share of the changes.
struct StageWork<'a> {
    client: &'a Client,
    namespace: &'a str,
    ownership: &'a Ownership,
    all: &'a [Manifest],
    changes: &'a Changes,
    range: std::ops::Range<usize>,
}

impl StageWork<'_> {
    async fn run(self, setup: &SetupContext, waiter: &Waiter) -> Result<(), EnvironmentError> {
        let in_stage = |index: &&usize| self.range.contains(index);
        let mut changed: Vec<Manifest> = self
            .changes
            .changed
            .iter()
            .filter(in_stage)
            .map(|index| self.all[*index].clone())
            .collect();
        // A changed Job that exists (from the last setup, or one that did
        // not finish) is deleted first; one that does not is just created.
        for job in changed.iter().filter(|manifest| manifest.kind() == "Job") {
            replace_job(self.client, self.namespace, job).await?;
        }
        if !changed.is_empty() {
            apply_manifests(self.client, self.namespace, &mut changed, self.ownership).await?;
        }
        let mut wait: Vec<Workload> = changed
            .iter()
            .filter_map(|manifest| workload_of(manifest, self.namespace))
            .collect();
        let unchanged: Vec<&Manifest> = self
            .changes
            .unchanged
            .iter()
            .filter(in_stage)
            .map(|index| &self.all[*index])
            .collect();
        let workloads: Vec<Workload> = unchanged
            .iter()
            .filter_map(|manifest| workload_of(manifest, self.namespace))
            .collect();
        let stale = waiter.not_ready(&workloads).await?;
        if !stale.is_empty() {
            setup.progress(&format!(
                "unchanged but not ready, waiting for them too: {}",
                stale
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            // A workload deleted by hand comes back; applying one that
            // exists changes nothing.
            let mut again: Vec<Manifest> = unchanged
                .into_iter()
                .filter(|manifest| {
                    workload_of(manifest, self.namespace)
                        .is_some_and(|workload| stale.contains(&workload))
                })
                .cloned()
                .collect();
            apply_manifests(self.client, self.namespace, &mut again, self.ownership).await?;
            wait.extend(stale);
        }
        // A rollout's earlier pods behind a Service are done once its
        // endpoints drop them (`Waiter::wait`): the stage's unchanged
        // Services are waited too when one of its Deployments rolls out.
        if wait.iter().any(|workload| workload.kind == "Deployment") {
            for service in workloads
                .iter()
                .filter(|workload| workload.kind == "Service")
            {
                if !wait.contains(service) {
                    wait.push(service.clone());
                }
            }
        }
        if !wait.is_empty() {
            waiter.wait(&wait).await?;
        }
        Ok(())
    }
}

fn workload_of(manifest: &Manifest, namespace: &str) -> Option<Workload> {
    Workload::is_waitable(manifest.kind()).then(|| {
        Workload::new(
            manifest.kind(),
            manifest.namespace().unwrap_or(namespace),
            manifest.name(),
        )
    })
}

/// Deletes a Job an earlier setup applied and waits until it is gone, so
/// the changed one can be created.
async fn replace_job(
    client: &Client,
    namespace: &str,
    job: &Manifest,
) -> Result<(), EnvironmentError> {
    let key = ObjectKey::of(job);
    let api: Api<Job> = Api::namespaced(client.clone(), job.namespace().unwrap_or(namespace));
    let request = |source| {
        EnvironmentError::Apply(crate::deploy::ApplyError::Request {
            action: format!("replace {key}"),
            source,
        })
    };
    // Background: the Job goes at once (its name is free again); its old
    // pods are collected after.
    match api.delete(job.name(), &DeleteParams::background()).await {
        Ok(_) => {}
        Err(kube::Error::Api(response)) if response.code == 404 => return Ok(()),
        Err(source) => return Err(request(source)),
    }
    let deadline = Instant::now() + JOB_GONE_TIMEOUT;
    while api.get_opt(job.name()).await.map_err(request)?.is_some() {
        if Instant::now() > deadline {
            return Err(EnvironmentError::Other(
                format!(
                    "{key} was not gone {}s after its deletion: it cannot be replaced",
                    JOB_GONE_TIMEOUT.as_secs()
                )
                .into(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

fn describe(manifests: &[Manifest], indexes: &[usize]) -> String {
    if indexes.is_empty() {
        return String::new();
    }
    let names: Vec<String> = indexes
        .iter()
        .take(6)
        .map(|index| format!("{}/{}", manifests[*index].kind(), manifests[*index].name()))
        .collect();
    let more = indexes.len().saturating_sub(names.len());
    format!(
        " ({}{})",
        names.join(", "),
        if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        }
    )
}
