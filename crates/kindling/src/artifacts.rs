//! Artifacts of a failure, under `target/kindling/artifacts/<run>/<suite>/`:
//! pods and workloads (YAML), events, logs (current and previous), each
//! node's image list, and the provider's own logs (`kind export logs`).
//! Collection is best effort: what cannot be read is listed in `errors.txt`.

use std::path::{Path, PathBuf};

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::Client;
use kube::api::{Api, ListParams, LogParams};
use serde::Serialize;

use crate::cluster::Provider;
use crate::node::NodeStore;
use crate::wait::diagnosis::describe_event;

/// Where a run's artifacts of `suite` go.
pub fn artifacts_dir(kindling_dir: &Path, run_id: &str, suite: &str) -> PathBuf {
    kindling_dir.join("artifacts").join(run_id).join(suite)
}

/// What to collect from.
pub struct Sources<'a> {
    pub client: &'a Client,
    pub namespace: &'a str,
    pub stores: &'a [NodeStore],
    pub provider: Option<&'a dyn Provider>,
}

/// Writes everything `sources` can tell about the failure into `dir`.
pub async fn collect(sources: Sources<'_>, dir: &Path) -> PathBuf {
    let mut errors = Vec::new();
    if let Err(error) = std::fs::create_dir_all(dir.join("logs")) {
        errors.push(format!("create {}: {error}", dir.display()));
    }
    let namespace = sources.namespace;
    let client = sources.client;

    let pods = match Api::<Pod>::namespaced(client.clone(), namespace)
        .list(&ListParams::default())
        .await
    {
        Ok(pods) => pods.items,
        Err(error) => {
            errors.push(format!("list pods: {error}"));
            Vec::new()
        }
    };
    write_yaml(dir, "pods.yaml", &pods, &mut errors);
    let workloads = workloads_yaml(client, namespace).await;
    match workloads {
        Ok(text) => write(dir, "workloads.yaml", &text, &mut errors),
        Err(error) => errors.push(format!("list workloads: {error}")),
    }
    match Api::<Event>::namespaced(client.clone(), namespace)
        .list(&ListParams::default())
        .await
    {
        Ok(events) => {
            let mut events = events.items;
            events.sort_by_key(describe_event);
            let text: String = events
                .iter()
                .map(|event| {
                    format!(
                        "{} {}/{}\n",
                        describe_event(event),
                        event.involved_object.kind.clone().unwrap_or_default(),
                        event.involved_object.name.clone().unwrap_or_default()
                    )
                })
                .collect();
            write(dir, "events.txt", &text, &mut errors);
        }
        Err(error) => errors.push(format!("list events: {error}")),
    }
    let api = Api::<Pod>::namespaced(client.clone(), namespace);
    for pod in &pods {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let containers = containers_of(pod);
        for (container, restarts) in containers {
            for previous in [false, true] {
                if previous && restarts == 0 {
                    continue;
                }
                let params = LogParams {
                    container: Some(container.clone()),
                    previous,
                    ..LogParams::default()
                };
                let file = format!(
                    "logs/{name}_{container}{}.log",
                    if previous { ".previous" } else { "" }
                );
                match api.logs(&name, &params).await {
                    Ok(text) => write(dir, &file, &text, &mut errors),
                    Err(error) => errors.push(format!("{file}: {error}")),
                }
            }
        }
    }
    for store in sources.stores {
        match store.list().await {
            Ok(images) => {
                let text: String = images
                    .iter()
                    .map(|image| {
                        format!(
                            "{} {} {}\n",
                            image.reference,
                            image.manifest_digest,
                            image.image_id.clone().unwrap_or_default()
                        )
                    })
                    .collect();
                write(
                    dir,
                    &format!("node-{}-images.txt", store.name()),
                    &text,
                    &mut errors,
                );
            }
            Err(error) => errors.push(format!("images of node {}: {error}", store.name())),
        }
    }
    if let Some(provider) = sources.provider
        && let Err(error) = provider.collect_logs(&dir.join("cluster")).await
    {
        errors.push(format!(
            "cluster logs: {}",
            crate::error::render_chain(&error)
        ));
    }
    if !errors.is_empty() {
        write(
            dir,
            "errors.txt",
            &(errors.join("\n") + "\n"),
            &mut Vec::new(),
        );
    }
    dir.to_owned()
}

/// Each container of `pod` that has a status, with its restart count.
fn containers_of(pod: &Pod) -> Vec<(String, i32)> {
    let Some(status) = &pod.status else {
        return Vec::new();
    };
    status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten())
        .map(|container| (container.name.clone(), container.restart_count))
        .collect()
}

async fn workloads_yaml(client: &Client, namespace: &str) -> Result<String, kube::Error> {
    let list = ListParams::default();
    let mut text = String::new();
    let deployments = Api::<Deployment>::namespaced(client.clone(), namespace)
        .list(&list)
        .await?;
    let sets = Api::<StatefulSet>::namespaced(client.clone(), namespace)
        .list(&list)
        .await?;
    let daemons = Api::<DaemonSet>::namespaced(client.clone(), namespace)
        .list(&list)
        .await?;
    let jobs = Api::<Job>::namespaced(client.clone(), namespace)
        .list(&list)
        .await?;
    text.push_str(&to_yaml(&deployments.items));
    text.push_str(&to_yaml(&sets.items));
    text.push_str(&to_yaml(&daemons.items));
    text.push_str(&to_yaml(&jobs.items));
    Ok(text)
}

fn to_yaml<T: Serialize>(objects: &[T]) -> String {
    objects
        .iter()
        .map(|object| {
            serde_saphyr::to_string(object)
                .map(|yaml| format!("---\n{yaml}"))
                .unwrap_or_else(|error| format!("--- # cannot render: {error}\n"))
        })
        .collect()
}

fn write_yaml<T: Serialize>(dir: &Path, file: &str, objects: &[T], errors: &mut Vec<String>) {
    write(dir, file, &to_yaml(objects), errors)
}

fn write(dir: &Path, file: &str, text: &str, errors: &mut Vec<String>) {
    let path = dir.join(file);
    if let Err(error) = std::fs::write(&path, text) {
        errors.push(format!("write {}: {error}", path.display()));
    }
}
