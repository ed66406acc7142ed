//! One readable diagnosis of a pod that cannot become ready: which
//! workload and container, the reason and message, the image asked for
//! and what each node's store holds, recent events and the last log lines,
//! the pod's own text redacted ([`crate::redaction`]).

use std::fmt;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{ContainerStatus, Event, Pod};
use kube::Client;
use kube::api::{Api, ListParams, LogParams};

use crate::deploy::images::nearest;
use crate::node::NodeStore;

/// Container states that will not resolve by waiting.
pub const FATAL_REASONS: &[&str] = &[
    "ErrImageNeverPull",
    "ImagePullBackOff",
    "ErrImagePull",
    "CrashLoopBackOff",
    "CreateContainerConfigError",
    "CreateContainerError",
    "OOMKilled",
    "InvalidImageName",
];

const LOG_LINES: i64 = 30;
const EVENTS: usize = 10;
const HELD_REFERENCES: usize = 5;

/// A container in a state that will not resolve by waiting.
#[derive(Debug, Clone)]
pub struct Fatal {
    /// The container's name.
    pub container: String,
    /// The state's reason, e.g. `ImagePullBackOff`, `CrashLoopBackOff`,
    /// `OOMKilled`.
    pub reason: String,
    /// What the kubelet said about it, or the exit code (may be empty).
    pub message: String,
    /// The image the pod's spec asks for in this container.
    pub image: String,
    /// How many times the container has restarted.
    pub restarts: i32,
}

/// Finds the first container of `pod` in a fatal state. A pod being
/// deleted has none: its containers are stopped on purpose (an earlier
/// rollout's pod, say), and an exit with an error while stopping is not a
/// crash of the workload.
pub fn fatal_container(pod: &Pod) -> Option<Fatal> {
    if pod.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let status = pod.status.as_ref()?;
    let statuses = status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten());
    statuses
        .into_iter()
        .find_map(|container| fatal_state(pod, container))
}

/// The first container of `pod` that exited with an error (a failed
/// Job's pod), described like a fatal state.
pub fn failed_container(pod: &Pod) -> Option<Fatal> {
    let status = pod.status.as_ref()?;
    let container = status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten())
        .find(|container| {
            container
                .state
                .as_ref()
                .and_then(|state| state.terminated.as_ref())
                .is_some_and(|terminated| terminated.exit_code != 0)
        })?;
    let terminated = container.state.as_ref()?.terminated.as_ref()?;
    Some(Fatal {
        container: container.name.clone(),
        reason: terminated
            .reason
            .clone()
            .unwrap_or_else(|| "Error".to_owned()),
        message: format!("exit code {}", terminated.exit_code),
        image: asked_image(pod, container),
        restarts: container.restart_count,
    })
}

fn fatal_state(pod: &Pod, container: &ContainerStatus) -> Option<Fatal> {
    let state = container.state.as_ref();
    let waiting = state.and_then(|state| state.waiting.as_ref());
    let terminated = state
        .and_then(|state| state.terminated.as_ref())
        .or_else(|| {
            container
                .last_state
                .as_ref()
                .and_then(|last| last.terminated.as_ref())
        });
    let (reason, message) = match (waiting, terminated) {
        (Some(waiting), _)
            if is_fatal(waiting.reason.as_deref())
                && !kubelet_cache_unsynced(waiting.message.as_deref()) =>
        {
            (
                waiting.reason.clone().unwrap_or_default(),
                waiting.message.clone().unwrap_or_default(),
            )
        }
        (_, Some(terminated)) if terminated.reason.as_deref() == Some("OOMKilled") => (
            "OOMKilled".to_owned(),
            format!("exit code {}", terminated.exit_code),
        ),
        // Exited with an error after a restart already: between back-offs
        // the kubelet shows the exit for seconds before it says
        // CrashLoopBackOff, so this is the same state, seen sooner.
        (_, Some(terminated))
            if container.restart_count > 0
                && terminated.exit_code != 0
                && state.is_some_and(|state| state.running.is_none()) =>
        {
            (
                "CrashLoopBackOff".to_owned(),
                format!(
                    "exited with code {} ({}) after {} restart(s)",
                    terminated.exit_code,
                    terminated.reason.clone().unwrap_or_default(),
                    container.restart_count
                ),
            )
        }
        _ => return None,
    };
    Some(Fatal {
        container: container.name.clone(),
        reason,
        message,
        image: asked_image(pod, container),
        restarts: container.restart_count,
    })
}

/// The image the pod's spec asks for in `container` (the status may name
/// what the runtime resolved instead).
fn asked_image(pod: &Pod, container: &ContainerStatus) -> String {
    pod.spec
        .iter()
        .flat_map(|spec| {
            spec.containers
                .iter()
                .chain(spec.init_containers.iter().flatten())
        })
        .find(|spec| spec.name == container.name)
        .and_then(|spec| spec.image.clone())
        .unwrap_or_else(|| container.image.clone())
}

fn is_fatal(reason: Option<&str>) -> bool {
    reason.is_some_and(|reason| FATAL_REASONS.contains(&reason))
}

/// Whether a `CreateContainerConfigError` only says the kubelet's cache of
/// the pod's Secrets or ConfigMaps had not synced yet (it waits 1 s for a
/// new namespace's, and under load may not get them in time): the kubelet
/// tries again at its next sync of the pod, and it starts then.
fn kubelet_cache_unsynced(message: Option<&str>) -> bool {
    message.is_some_and(|message| {
        [
            "failed to sync secret cache",
            "failed to sync configmap cache",
        ]
        .iter()
        .any(|unsynced| message.contains(unsynced))
    })
}

/// What a node's store holds, nearest to the asked image first.
#[derive(Debug, Clone)]
pub struct NodeImages {
    /// The node's name.
    pub node: String,
    /// Up to five references the store holds, nearest to the asked image first;
    /// or why they could not be listed.
    pub references: Result<Vec<String>, String>,
}

/// Everything known about a pod that will not become ready.
#[derive(Debug, Clone)]
pub struct Diagnosis {
    /// `Deployment/api`.
    pub workload: String,
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's name.
    pub pod: String,
    /// The node the pod is scheduled on, if any.
    pub node: Option<String>,
    /// The container that will not recover, and why.
    pub fatal: Fatal,
    /// What each node's image store holds, nearest to the asked image first.
    pub nodes: Vec<NodeImages>,
    /// The pod's most recent events (up to ten), oldest first, one line each.
    pub events: Vec<String>,
    /// The container's last log lines (up to thirty), if they could be read.
    pub logs: Option<String>,
    /// The previous container's last log lines, when it has restarted and they
    /// could be read.
    pub previous_logs: Option<String>,
}

impl fmt::Display for Diagnosis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fatal = &self.fatal;
        writeln!(
            f,
            "{} in namespace `{}`: container `{}` of pod `{}`{} is {}: {}",
            self.workload,
            self.namespace,
            fatal.container,
            self.pod,
            self.node
                .as_ref()
                .map(|node| format!(" on node `{node}`"))
                .unwrap_or_default(),
            fatal.reason,
            if fatal.message.is_empty() {
                "(no message)"
            } else {
                &fatal.message
            },
        )?;
        writeln!(f, "  image asked for: {}", fatal.image)?;
        if fatal.restarts > 0 {
            writeln!(f, "  restarts: {}", fatal.restarts)?;
        }
        for node in &self.nodes {
            match &node.references {
                Ok(references) if references.is_empty() => {
                    writeln!(f, "  node `{}` holds no images", node.node)?
                }
                Ok(references) => {
                    writeln!(f, "  node `{}` holds (nearest first):", node.node)?;
                    for reference in references {
                        writeln!(f, "    {reference}")?;
                    }
                }
                Err(error) => writeln!(f, "  node `{}`: cannot list images: {error}", node.node)?,
            }
        }
        if !self.events.is_empty() {
            writeln!(f, "  recent events:")?;
            for event in &self.events {
                writeln!(f, "    {event}")?;
            }
        }
        for (title, logs) in [
            ("last log lines", &self.logs),
            (
                "last log lines of the previous container",
                &self.previous_logs,
            ),
        ] {
            if let Some(logs) = logs.as_ref().filter(|logs| !logs.trim().is_empty()) {
                writeln!(f, "  {title}:")?;
                for line in logs.lines() {
                    writeln!(f, "    | {line}")?;
                }
            }
        }
        Ok(())
    }
}

/// The workload that owns `pod`: a Deployment through its ReplicaSet, or
/// the direct owner, or the pod itself.
pub async fn owning_workload(client: &Client, pod: &Pod) -> String {
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let pod_name = pod.metadata.name.clone().unwrap_or_default();
    let Some(owner) = pod
        .metadata
        .owner_references
        .iter()
        .flatten()
        .find(|owner| owner.controller == Some(true))
    else {
        return format!("Pod/{pod_name}");
    };
    if owner.kind == "ReplicaSet"
        && let Ok(set) = Api::<ReplicaSet>::namespaced(client.clone(), &namespace)
            .get(&owner.name)
            .await
        && let Some(deployment) = set
            .metadata
            .owner_references
            .iter()
            .flatten()
            .find(|owner| owner.kind == "Deployment")
    {
        return format!("Deployment/{}", deployment.name);
    }
    format!("{}/{}", owner.kind, owner.name)
}

/// Gathers the diagnosis of `pod`, whose container `fatal` will not recover.
pub async fn diagnose(client: &Client, stores: &[NodeStore], pod: &Pod, fatal: Fatal) -> Diagnosis {
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let pod_name = pod.metadata.name.clone().unwrap_or_default();
    let pods: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    let logs = |previous: bool| {
        let pods = pods.clone();
        let pod_name = pod_name.clone();
        let container = fatal.container.clone();
        async move {
            pods.logs(
                &pod_name,
                &LogParams {
                    container: Some(container),
                    tail_lines: Some(LOG_LINES),
                    previous,
                    ..LogParams::default()
                },
            )
            .await
            .ok()
        }
    };
    let wants_previous = fatal.restarts > 0;
    let (workload, events, logs, previous_logs, nodes, ()) = tokio::join!(
        owning_workload(client, pod),
        recent_events(client, &namespace, &pod_name),
        logs(false),
        async {
            if wants_previous {
                logs(true).await
            } else {
                None
            }
        },
        held_images(stores, &fatal.image),
        crate::redaction::learn_namespace(client, &namespace),
    );
    // What the pod printed goes into errors, JUnit and state files: it is
    // redacted here, with the namespace's Secrets as they are now.
    let redactor = crate::redaction::redactor();
    let clean = |text: String| redactor.redact_owned(text);
    let fatal = Fatal {
        message: clean(fatal.message),
        ..fatal
    };
    Diagnosis {
        workload,
        namespace,
        pod: pod_name,
        node: pod.spec.as_ref().and_then(|spec| spec.node_name.clone()),
        fatal,
        nodes,
        events: events.into_iter().map(clean).collect(),
        logs: logs.map(clean),
        previous_logs: previous_logs.map(clean),
    }
}

/// The most recent events about `object`, oldest first.
pub async fn recent_events(client: &Client, namespace: &str, object: &str) -> Vec<String> {
    let params = ListParams::default().fields(&format!("involvedObject.name={object}"));
    let Ok(events) = Api::<Event>::namespaced(client.clone(), namespace)
        .list(&params)
        .await
    else {
        return Vec::new();
    };
    let mut events: Vec<Event> = events.items;
    events.sort_by_key(event_time);
    let skip = events.len().saturating_sub(EVENTS);
    events.iter().skip(skip).map(describe_event).collect()
}

fn event_time(event: &Event) -> Option<k8s_openapi::jiff::Timestamp> {
    event
        .last_timestamp
        .as_ref()
        .map(|time| time.0)
        .or_else(|| event.event_time.as_ref().map(|time| time.0))
        .or_else(|| event.first_timestamp.as_ref().map(|time| time.0))
}

/// An event on one line: time, type, reason, message, and how many times it
/// happened when more than once.
pub fn describe_event(event: &Event) -> String {
    format!(
        "{} {} {}: {}{}",
        event_time(event)
            .map(|time| time.strftime("%H:%M:%S").to_string())
            .unwrap_or_default(),
        event.type_.clone().unwrap_or_default(),
        event.reason.clone().unwrap_or_default(),
        event.message.clone().unwrap_or_default().trim(),
        match event.count {
            Some(count) if count > 1 => format!(" (x{count})"),
            _ => String::new(),
        }
    )
}

/// What each node's store holds, nearest to `asked` first.
pub async fn held_images(stores: &[NodeStore], asked: &str) -> Vec<NodeImages> {
    let asked = crate::image::normalize(asked)
        .map(|reference| reference.to_string())
        .unwrap_or_else(|_| asked.to_owned());
    futures_util::future::join_all(stores.iter().map(|store| {
        let asked = asked.clone();
        async move {
            let references = store
                .list()
                .await
                .map(|images| {
                    let names: Vec<String> = images
                        .into_iter()
                        .map(|image| image.reference)
                        .filter(|reference| !reference.starts_with("sha256:"))
                        .collect();
                    let mut ordered = nearest(&asked, &names);
                    ordered.truncate(HELD_REFERENCES);
                    ordered
                })
                .map_err(|error| error.to_string());
            NodeImages {
                node: store.name().to_owned(),
                references,
            }
        }
    }))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fatal_states_are_found_and_transient_ones_are_not() {
        let pod = |state: serde_json::Value, last: serde_json::Value| -> Pod {
            serde_json::from_value(serde_json::json!({
                "spec": {"containers": [{"name": "api", "image": "localhost/kindling/api:c-1"}]},
                "status": {"containerStatuses": [{
                    "name": "api", "ready": false, "restartCount": 2, "image": "", "imageID": "",
                    "state": state, "lastState": last
                }]}
            }))
            .unwrap()
        };
        let never = pod(
            serde_json::json!({"waiting": {"reason": "ErrImageNeverPull", "message": "not present"}}),
            serde_json::json!({}),
        );
        let fatal = fatal_container(&never).unwrap();
        assert_eq!(
            (fatal.reason.as_str(), fatal.image.as_str()),
            ("ErrImageNeverPull", "localhost/kindling/api:c-1")
        );
        let oom = pod(
            serde_json::json!({"running": {}}),
            serde_json::json!({"terminated": {"reason": "OOMKilled", "exitCode": 137}}),
        );
        assert_eq!(fatal_container(&oom).unwrap().reason, "OOMKilled");
        let creating = pod(
            serde_json::json!({"waiting": {"reason": "ContainerCreating"}}),
            serde_json::json!({}),
        );
        assert!(fatal_container(&creating).is_none());
        let cache_unsynced = pod(
            serde_json::json!({"waiting": {"reason": "CreateContainerConfigError", "message": "failed to sync secret cache: timed out waiting for the condition"}}),
            serde_json::json!({}),
        );
        assert!(
            fatal_container(&cache_unsynced).is_none(),
            "the kubelet retries once its cache has synced"
        );
        let secret_missing = pod(
            serde_json::json!({"waiting": {"reason": "CreateContainerConfigError", "message": "secret \"postgres-credentials\" not found"}}),
            serde_json::json!({}),
        );
        assert_eq!(
            fatal_container(&secret_missing).unwrap().reason,
            "CreateContainerConfigError"
        );
        let exited_again = pod(
            serde_json::json!({"terminated": {"reason": "Error", "exitCode": 1}}),
            serde_json::json!({"terminated": {"reason": "Error", "exitCode": 1}}),
        );
        assert_eq!(
            fatal_container(&exited_again).unwrap().reason,
            "CrashLoopBackOff"
        );
        let restarted_and_running = pod(
            serde_json::json!({"running": {}}),
            serde_json::json!({"terminated": {"reason": "Error", "exitCode": 1}}),
        );
        assert!(fatal_container(&restarted_and_running).is_none());
    }

    #[test]
    fn a_pod_being_deleted_is_not_diagnosed_as_crashing() {
        let mut stopping: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "smoke-old"},
            "spec": {"containers": [{"name": "smoke", "image": "localhost/kindling/smoke:c-1"}]},
            "status": {"containerStatuses": [{
                "name": "smoke", "ready": false, "restartCount": 1, "image": "", "imageID": "",
                "state": {"terminated": {"reason": "Error", "exitCode": 2}},
                "lastState": {"terminated": {"reason": "Unknown", "exitCode": 255}}
            }]}
        }))
        .unwrap();
        assert_eq!(
            fatal_container(&stopping).unwrap().reason,
            "CrashLoopBackOff"
        );
        stopping.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                "2026-12-07T04:52:14Z".parse().unwrap(),
            ));
        assert!(fatal_container(&stopping).is_none());
    }
}
