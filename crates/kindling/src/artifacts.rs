//! Artifacts of a failure, under `target/kindling/artifacts/<run>/<suite>/`:
//! pods and workloads (YAML), events, logs (current and previous), each
//! node's image list, the namespace's Secrets by name and key only, and the
//! provider's own logs (`kind export logs`). Every file kindling writes has
//! the values of the namespace's Secrets replaced by `<redacted …>`, so a
//! password a service logs never reaches an artifact in clear.
//! Collection is best effort: what cannot be read is listed in `errors.txt`.

use std::path::{Path, PathBuf};

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Event, Pod, Secret};
use kindling_harness::util::{create_private_dir_all, write_private};
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
    /// A client for the cluster the failure happened in.
    pub client: &'a Client,
    /// The namespace whose pods, workloads, events, logs and Secrets are
    /// collected.
    pub namespace: &'a str,
    /// The nodes' image stores, each listed into `node-<name>-images.txt`.
    pub stores: &'a [NodeStore],
    /// The cluster's provider, asked for its own logs (under `cluster/`), when
    /// there is one.
    pub provider: Option<&'a dyn Provider>,
}

/// Writes everything `sources` can tell about the failure into `dir`.
pub async fn collect(sources: Sources<'_>, dir: &Path) -> PathBuf {
    let mut errors = Vec::new();
    for folder in [dir.to_owned(), dir.join("logs")] {
        if let Err(error) = create_private_dir_all(&folder) {
            errors.push(format!("create {}: {error}", folder.display()));
        }
    }
    let namespace = sources.namespace;
    let client = sources.client;
    let secrets = Api::<Secret>::namespaced(client.clone(), namespace)
        .list(&ListParams::default())
        .await
        .map(|list| list.items)
        .unwrap_or_else(|error| {
            errors.push(format!("list secrets: {error}"));
            Vec::new()
        });
    let redactor = Redactor::of(&secrets);
    let write = |dir: &Path, file: &str, text: &str, errors: &mut Vec<String>| {
        write(dir, file, &redactor.redact(text), errors)
    };
    write(dir, "secrets.txt", &describe_secrets(&secrets), &mut errors);

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
    write(dir, "pods.yaml", &to_yaml(&pods), &mut errors);
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
    if let Some(provider) = sources.provider {
        // Made here: the provider's tools (`kind export logs`) write files
        // with modes of their own, which a private folder keeps private.
        let cluster_logs = dir.join("cluster");
        if let Err(error) = create_private_dir_all(&cluster_logs) {
            errors.push(format!("create {}: {error}", cluster_logs.display()));
        } else if let Err(error) = provider.collect_logs(&cluster_logs).await {
            errors.push(format!(
                "cluster logs: {}",
                kindling_harness::render_chain(&error)
            ));
        }
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

/// Replaces the values of Secrets in text.
struct Redactor {
    /// Each value (longest first, so none is left half shown) and its label.
    values: Vec<(String, String)>,
}

impl Redactor {
    /// Values shorter than this are too likely to be ordinary words.
    const SHORTEST: usize = 4;

    fn of(secrets: &[Secret]) -> Self {
        let mut values: Vec<(String, String)> = secrets
            .iter()
            .flat_map(|secret| {
                let name = secret.metadata.name.clone().unwrap_or_default();
                let literals: Vec<String> = secret
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|annotations| {
                        annotations.get(crate::environment::NOT_SECRET_ANNOTATION)
                    })
                    .map(|keys| keys.split(',').map(str::to_owned).collect())
                    .unwrap_or_default();
                secret
                    .data
                    .iter()
                    .flatten()
                    .filter(move |(key, _)| !literals.contains(key))
                    .filter_map(move |(key, value)| {
                        let text = String::from_utf8(value.0.clone()).ok()?;
                        (text.len() >= Self::SHORTEST)
                            .then(|| (text, format!("<redacted: Secret {name} key {key}>")))
                    })
            })
            .collect();
        values.sort_by_key(|(value, _)| std::cmp::Reverse(value.len()));
        Redactor { values }
    }

    fn redact(&self, text: &str) -> String {
        let mut text = text.to_owned();
        for (value, label) in &self.values {
            if text.contains(value.as_str()) {
                text = text.replace(value.as_str(), label);
            }
        }
        text
    }
}

/// One line per Secret: its name, type and keys with their sizes.
fn describe_secrets(secrets: &[Secret]) -> String {
    secrets
        .iter()
        .map(|secret| {
            let keys: Vec<String> = secret
                .data
                .iter()
                .flatten()
                .map(|(key, value)| format!("{key} ({} bytes)", value.0.len()))
                .collect();
            format!(
                "{} ({}): {}\n",
                secret.metadata.name.clone().unwrap_or_default(),
                secret.type_.clone().unwrap_or_default(),
                keys.join(", ")
            )
        })
        .collect()
}

fn write(dir: &Path, file: &str, text: &str, errors: &mut Vec<String>) {
    let path = dir.join(file);
    if let Err(error) = write_private(&path, text.as_bytes()) {
        errors.push(format!("write {}: {error}", path.display()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;

    #[tokio::test]
    async fn artifacts_are_private_also_in_a_folder_an_older_kindling_left_open() {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        let plant = |path: &Path, mode: u32| {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap()
        };
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("run/suite/setup");
        std::fs::create_dir_all(dir.join("logs")).unwrap();
        plant(&dir, 0o755);
        plant(&dir.join("logs"), 0o755);
        std::fs::write(dir.join("errors.txt"), "old").unwrap();
        plant(&dir.join("errors.txt"), 0o644);
        // Nothing listens there: every request fails, and the failures
        // are written down.
        let config = kube::Config::new("http://127.0.0.1:1".parse().unwrap());
        let client = Client::try_from(config).unwrap();
        let sources = Sources {
            client: &client,
            namespace: "ns",
            stores: &[],
            provider: None,
        };
        collect(sources, &dir).await;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("logs")), 0o700);
        assert_eq!(mode(&dir.join("errors.txt")), 0o600);
        let written: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.is_file())
            .collect();
        assert!(written.len() > 1, "{written:?}");
        for file in written {
            assert_eq!(mode(&file), 0o600, "{}", file.display());
        }
        assert!(
            std::fs::read_to_string(dir.join("errors.txt"))
                .unwrap()
                .contains("list secrets")
        );
    }

    #[test]
    fn secret_values_never_reach_an_artifact_in_clear() {
        let secret = Secret {
            metadata: kube::api::ObjectMeta {
                name: Some("db".to_owned()),
                ..Default::default()
            },
            type_: Some("Opaque".to_owned()),
            data: Some(std::collections::BTreeMap::from([
                ("password".to_owned(), ByteString(b"s3cr3t-Pa55".to_vec())),
                ("user".to_owned(), ByteString(b"app".to_vec())),
            ])),
            ..Default::default()
        };
        let redactor = Redactor::of(std::slice::from_ref(&secret));
        let redacted = redactor.redact("connecting as app with s3cr3t-Pa55 to db");
        assert_eq!(
            redacted,
            "connecting as app with <redacted: Secret db key password> to db"
        );
        assert_eq!(
            describe_secrets(&[secret]),
            "db (Opaque): password (11 bytes), user (3 bytes)\n"
        );
    }

    #[test]
    fn literal_values_of_a_generated_secret_stay_readable() {
        let secret = Secret {
            metadata: kube::api::ObjectMeta {
                name: Some("db".to_owned()),
                annotations: Some(std::collections::BTreeMap::from([(
                    crate::environment::NOT_SECRET_ANNOTATION.to_owned(),
                    "username,database".to_owned(),
                )])),
                ..Default::default()
            },
            data: Some(std::collections::BTreeMap::from([
                ("username".to_owned(), ByteString(b"datastorage".to_vec())),
                ("database".to_owned(), ByteString(b"audit".to_vec())),
                ("password".to_owned(), ByteString(b"Zq81xPw0".to_vec())),
            ])),
            ..Default::default()
        };
        let redactor = Redactor::of(std::slice::from_ref(&secret));
        assert_eq!(
            redactor.redact("datastorage connects to audit with Zq81xPw0"),
            "datastorage connects to audit with <redacted: Secret db key password>"
        );
    }
}
