//! When a workload counts as ready, judged from its status alone.

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};

/// A workload's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    /// Ready: for a Job, complete; for a Pod, ready or succeeded.
    Ready,
    /// Not ready yet, and why.
    Pending(String),
    /// Will never be ready (a failed Job, a failed Pod).
    Failed(String),
}

fn generation_observed(generation: Option<i64>, observed: Option<i64>) -> bool {
    observed.unwrap_or(0) >= generation.unwrap_or(0)
}

/// A Deployment is ready when its controller has seen its spec and every
/// wanted replica is updated and available, with no old ones left; it has
/// failed once past its progress deadline.
pub fn deployment(deployment: &Deployment) -> Readiness {
    let wanted = deployment
        .spec
        .as_ref()
        .and_then(|spec| spec.replicas)
        .unwrap_or(1);
    let status = deployment.status.clone().unwrap_or_default();
    if !generation_observed(deployment.metadata.generation, status.observed_generation) {
        return Readiness::Pending("the controller has not seen the latest spec".to_owned());
    }
    let conditions = status.conditions.unwrap_or_default();
    if let Some(stalled) = conditions.iter().find(|c| {
        c.type_ == "Progressing"
            && c.status == "False"
            && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
    }) {
        return Readiness::Failed(format!(
            "progress deadline exceeded: {}",
            stalled.message.clone().unwrap_or_default()
        ));
    }
    let updated = status.updated_replicas.unwrap_or(0);
    let available = status.available_replicas.unwrap_or(0);
    let total = status.replicas.unwrap_or(0);
    if updated >= wanted && available >= wanted && total <= wanted {
        Readiness::Ready
    } else {
        Readiness::Pending(format!(
            "{updated}/{wanted} updated, {available}/{wanted} available, {total} in total"
        ))
    }
}

/// A StatefulSet is ready when its controller has seen its spec and every
/// wanted replica is ready and updated to the current revision.
pub fn stateful_set(set: &StatefulSet) -> Readiness {
    let wanted = set
        .spec
        .as_ref()
        .and_then(|spec| spec.replicas)
        .unwrap_or(1);
    let status = set.status.clone().unwrap_or_default();
    if !generation_observed(set.metadata.generation, status.observed_generation) {
        return Readiness::Pending("the controller has not seen the latest spec".to_owned());
    }
    let ready = status.ready_replicas.unwrap_or(0);
    let updated = status.updated_replicas.unwrap_or(0);
    let revision_current =
        status.update_revision.is_none() || status.current_revision == status.update_revision;
    if ready >= wanted && updated >= wanted && revision_current {
        Readiness::Ready
    } else {
        Readiness::Pending(format!(
            "{ready}/{wanted} ready, {updated}/{wanted} updated"
        ))
    }
}

/// A DaemonSet is ready when its controller has seen its spec and its pod on
/// every node it is scheduled to is ready and updated.
pub fn daemon_set(set: &DaemonSet) -> Readiness {
    let status = set.status.clone().unwrap_or_default();
    if !generation_observed(set.metadata.generation, status.observed_generation) {
        return Readiness::Pending("the controller has not seen the latest spec".to_owned());
    }
    let desired = status.desired_number_scheduled;
    let ready = status.number_ready;
    let updated = status.updated_number_scheduled.unwrap_or(0);
    if ready >= desired && updated >= desired {
        Readiness::Ready
    } else {
        Readiness::Pending(format!(
            "{ready}/{desired} ready, {updated}/{desired} updated"
        ))
    }
}

/// A Job is ready once Complete, and failed once Failed.
pub fn job(job: &Job) -> Readiness {
    let status = job.status.clone().unwrap_or_default();
    let conditions = status.conditions.unwrap_or_default();
    let holds = |kind: &str| {
        conditions
            .iter()
            .find(|c| c.type_ == kind && c.status == "True")
    };
    if let Some(failed) = holds("Failed") {
        return Readiness::Failed(format!(
            "the Job failed: {} {}",
            failed.reason.clone().unwrap_or_default(),
            failed.message.clone().unwrap_or_default()
        ));
    }
    if holds("Complete").is_some() {
        return Readiness::Ready;
    }
    Readiness::Pending(format!(
        "{} succeeded, {} active, {} failed",
        status.succeeded.unwrap_or(0),
        status.active.unwrap_or(0),
        status.failed.unwrap_or(0)
    ))
}

/// Whether `succeeded` pods complete `job`: its completions (one unless
/// set) reached, for a Job without a success or pod failure policy of its
/// own, which only the Job controller can judge.
pub fn job_done_by_pods(job: &Job, succeeded: usize) -> bool {
    let Some(spec) = job.spec.as_ref() else {
        return false;
    };
    if spec.success_policy.is_some() || spec.pod_failure_policy.is_some() {
        return false;
    }
    let completions = spec.completions.unwrap_or(1).max(1);
    usize::try_from(completions).is_ok_and(|completions| succeeded >= completions)
}

/// Whether `pod` has succeeded: its phase says so, or every regular
/// container exited 0 and nothing will start one again (the pod's restart
/// policy is not `Always`, no container has one of its own). The kubelet
/// reports the phase only after tearing the pod's sandbox down, a second or
/// more after the last container exited.
pub fn pod_succeeded(pod: &Pod) -> bool {
    let Some(status) = pod.status.as_ref() else {
        return false;
    };
    if status.phase.as_deref() == Some("Succeeded") {
        return true;
    }
    let Some(spec) = pod.spec.as_ref() else {
        return false;
    };
    let restarts = spec.restart_policy.as_deref().is_none_or(|p| p == "Always")
        || spec.containers.iter().any(|c| c.restart_policy.is_some());
    let statuses = status.container_statuses.as_deref().unwrap_or_default();
    let exited_zero = |name: &str| {
        statuses.iter().any(|container| {
            container.name == name
                && container
                    .state
                    .as_ref()
                    .and_then(|state| state.terminated.as_ref())
                    .is_some_and(|terminated| terminated.exit_code == 0)
        })
    };
    !restarts
        && status.phase.as_deref() != Some("Failed")
        && spec.containers.iter().all(|c| exited_zero(&c.name))
}

/// A Pod is ready when its Ready condition holds or it has succeeded
/// ([`pod_succeeded`]), and failed when it has Failed.
pub fn pod(pod: &Pod) -> Readiness {
    if pod_succeeded(pod) {
        return Readiness::Ready;
    }
    let status = pod.status.clone().unwrap_or_default();
    if status.phase.as_deref() == Some("Failed") {
        return Readiness::Failed(format!(
            "the pod failed: {} {}",
            status.reason.unwrap_or_default(),
            status.message.unwrap_or_default()
        ));
    }
    let ready = status
        .conditions
        .unwrap_or_default()
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    if ready {
        Readiness::Ready
    } else {
        let waiting: Vec<String> = status
            .container_statuses
            .unwrap_or_default()
            .iter()
            .filter(|c| !c.ready)
            .map(describe_container)
            .collect();
        Readiness::Pending(if waiting.is_empty() {
            format!(
                "phase {}",
                status.phase.unwrap_or_else(|| "unknown".to_owned())
            )
        } else {
            waiting.join(", ")
        })
    }
}

/// `api: waiting (ContainerCreating)`, `api: running, not ready`.
pub fn describe_container(container: &ContainerStatus) -> String {
    let state = container.state.clone().unwrap_or_default();
    let what = if let Some(waiting) = state.waiting {
        format!("waiting ({})", waiting.reason.unwrap_or_default())
    } else if let Some(terminated) = state.terminated {
        format!(
            "terminated ({}, exit code {})",
            terminated.reason.unwrap_or_default(),
            terminated.exit_code
        )
    } else if state.running.is_some() {
        "running, not ready".to_owned()
    } else {
        "unknown state".to_owned()
    };
    format!("{}: {what}", container.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> T {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn a_deployment_is_ready_when_every_replica_is_updated_and_available() {
        let ready: Deployment = from(serde_json::json!({
            "metadata": {"generation": 2},
            "spec": {"replicas": 2, "selector": {}, "template": {}},
            "status": {"observedGeneration": 2, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2}
        }));
        assert_eq!(deployment(&ready), Readiness::Ready);
        let rolling: Deployment = from(serde_json::json!({
            "metadata": {"generation": 2},
            "spec": {"replicas": 2, "selector": {}, "template": {}},
            "status": {"observedGeneration": 2, "replicas": 3, "updatedReplicas": 2, "availableReplicas": 2}
        }));
        assert!(matches!(deployment(&rolling), Readiness::Pending(_)));
        let unseen: Deployment = from(serde_json::json!({
            "metadata": {"generation": 3},
            "spec": {"replicas": 1, "selector": {}, "template": {}},
            "status": {"observedGeneration": 2, "replicas": 1, "updatedReplicas": 1, "availableReplicas": 1}
        }));
        assert!(matches!(deployment(&unseen), Readiness::Pending(_)));
    }

    #[test]
    fn a_failed_job_fails_and_a_complete_one_is_ready() {
        let failed: Job = from(serde_json::json!({
            "status": {"failed": 2, "conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"}]}
        }));
        match job(&failed) {
            Readiness::Failed(why) => assert!(why.contains("BackoffLimitExceeded"), "{why}"),
            other => panic!("{other:?}"),
        }
        let complete: Job = from(serde_json::json!({
            "status": {"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]}
        }));
        assert_eq!(job(&complete), Readiness::Ready);
    }

    #[test]
    fn succeeded_pods_complete_a_plain_job_only() {
        let plain: Job = from(serde_json::json!({"spec": {"template": {}}}));
        assert!(!job_done_by_pods(&plain, 0));
        assert!(job_done_by_pods(&plain, 1));
        let three: Job = from(serde_json::json!({"spec": {"completions": 3, "template": {}}}));
        assert!(!job_done_by_pods(&three, 2) && job_done_by_pods(&three, 3));
        let judged: Job =
            from(serde_json::json!({"spec": {"template": {}, "podFailurePolicy": {"rules": []}}}));
        assert!(
            !job_done_by_pods(&judged, 5),
            "only the Job controller judges a policy"
        );
    }

    #[test]
    fn a_pod_whose_containers_exited_zero_has_succeeded_unless_one_restarts() {
        let pod_with = |restart_policy: &str, exit_codes: &[i32]| -> Pod {
            let statuses: Vec<serde_json::Value> = exit_codes
                .iter()
                .enumerate()
                .map(|(index, code)| serde_json::json!({
                    "name": format!("c{index}"), "ready": false, "restartCount": 0, "image": "x", "imageID": "",
                    "state": {"terminated": {"exitCode": code}}
                }))
                .collect();
            let containers: Vec<serde_json::Value> = (0..exit_codes.len())
                .map(|index| serde_json::json!({"name": format!("c{index}")}))
                .collect();
            from(serde_json::json!({
                "spec": {"restartPolicy": restart_policy, "containers": containers},
                "status": {"phase": "Running", "containerStatuses": statuses}
            }))
        };
        assert!(pod_succeeded(&pod_with("Never", &[0, 0])));
        assert!(pod_succeeded(&pod_with("OnFailure", &[0])));
        assert_eq!(pod(&pod_with("Never", &[0])), Readiness::Ready);
        assert!(!pod_succeeded(&pod_with("Never", &[0, 1])), "one failed");
        assert!(!pod_succeeded(&pod_with("Always", &[0])), "restarted");
        let mut running = pod_with("Never", &[0, 0]);
        running
            .status
            .as_mut()
            .unwrap()
            .container_statuses
            .as_mut()
            .unwrap()[1]
            .state = Some(Default::default());
        assert!(!pod_succeeded(&running), "one still running");
        let mut own_policy = pod_with("Never", &[0]);
        own_policy.spec.as_mut().unwrap().containers[0].restart_policy = Some("Always".into());
        assert!(
            !pod_succeeded(&own_policy),
            "a container restarts on its own"
        );
        let unstarted: Pod = from(serde_json::json!({
            "spec": {"restartPolicy": "Never", "containers": [{"name": "c0"}]},
            "status": {"phase": "Pending"}
        }));
        assert!(!pod_succeeded(&unstarted));
    }

    #[test]
    fn a_pod_not_ready_says_which_container_waits() {
        let waiting: Pod = from(serde_json::json!({
            "status": {"phase": "Pending", "containerStatuses": [
                {"name": "api", "ready": false, "restartCount": 0, "image": "x", "imageID": "",
                 "state": {"waiting": {"reason": "ContainerCreating"}}}
            ]}
        }));
        assert_eq!(
            pod(&waiting),
            Readiness::Pending("api: waiting (ContainerCreating)".to_owned())
        );
    }
}
