//! Artifacts of a failure, under `target/kindling/artifacts/<run>/<suite>/`:
//! pods and workloads (YAML), events, logs (current and previous), each
//! node's image list, the namespace's Secrets by name and key only, and the
//! provider's own logs (`kind export logs`, the local cluster's component
//! logs) without the pod logs of other namespaces. Every file is written
//! through the redactor ([`crate::redaction`]): the values of the
//! namespace's Secrets, and everything else this process learned, are
//! replaced by `<redacted …>`, so a password a service logs never reaches
//! an artifact in clear. Collection is best effort: what cannot be read is
//! listed in `errors.txt`.

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
use crate::redaction::Redactor;
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
    for secret in &secrets {
        crate::redaction::learn_secret(secret);
    }
    crate::redaction::refresh().await;
    let redactor = crate::redaction::redactor();
    let mut artifacts = Artifacts {
        dir,
        redactor: &redactor,
        errors,
    };
    artifacts.write("secrets.txt", &describe_secrets(&secrets));

    let pods = match Api::<Pod>::namespaced(client.clone(), namespace)
        .list(&ListParams::default())
        .await
    {
        Ok(pods) => pods.items,
        Err(error) => {
            artifacts.errors.push(format!("list pods: {error}"));
            Vec::new()
        }
    };
    artifacts.write("pods.yaml", &to_yaml(&pods));
    let workloads = workloads_yaml(client, namespace).await;
    match workloads {
        Ok(text) => artifacts.write("workloads.yaml", &text),
        Err(error) => artifacts.errors.push(format!("list workloads: {error}")),
    }
    artifacts.write_events(client, namespace).await;
    artifacts.write_pod_logs(client, namespace, &pods).await;
    artifacts.write_node_images(sources.stores).await;
    if let Some(provider) = sources.provider {
        collect_cluster_logs(provider, dir, namespace, &redactor, &mut artifacts.errors).await;
    }
    artifacts.write_errors();
    dir.to_owned()
}

/// The artifacts folder being filled: each file is written through the
/// redactor, and what cannot be read or written is noted in `errors`.
struct Artifacts<'a> {
    dir: &'a Path,
    redactor: &'a Redactor,
    errors: Vec<String>,
}

impl Artifacts<'_> {
    /// Writes `text`, redacted, to `file` in the folder.
    fn write(&mut self, file: &str, text: &str) {
        write(
            self.dir,
            file,
            &self.redactor.redact(text),
            &mut self.errors,
        );
    }

    /// `events.txt`: the namespace's events in order, each with the object
    /// it is about.
    async fn write_events(&mut self, client: &Client, namespace: &str) {
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
                self.write("events.txt", &text);
            }
            Err(error) => self.errors.push(format!("list events: {error}")),
        }
    }

    /// `logs/<pod>_<container>.log` for each container of `pods`, and
    /// `….previous.log` for those that restarted.
    async fn write_pod_logs(&mut self, client: &Client, namespace: &str, pods: &[Pod]) {
        let api = Api::<Pod>::namespaced(client.clone(), namespace);
        for pod in pods {
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
                        Ok(text) => self.write(&file, &text),
                        Err(error) => self.errors.push(format!("{file}: {error}")),
                    }
                }
            }
        }
    }

    /// `node-<name>-images.txt` for each of `stores`: each image's
    /// reference, manifest digest and image ID.
    async fn write_node_images(&mut self, stores: &[NodeStore]) {
        for store in stores {
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
                    self.write(&format!("node-{}-images.txt", store.name()), &text);
                }
                Err(error) => self
                    .errors
                    .push(format!("images of node {}: {error}", store.name())),
            }
        }
    }

    /// `errors.txt`, when anything failed: what, one per line.
    fn write_errors(self) {
        if !self.errors.is_empty() {
            let text = self.errors.join("\n") + "\n";
            write(
                self.dir,
                "errors.txt",
                &self.redactor.redact(&text),
                &mut Vec::new(),
            );
        }
    }
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

/// The provider's logs, into `cluster/`: exported into a private folder
/// first (the provider's tools write files with modes of their own), then
/// copied through the redactor, leaving out the pod logs of namespaces
/// other than `namespace` (`kind export logs` copies each node's whole
/// `/var/log`, every namespace's pods included).
async fn collect_cluster_logs(
    provider: &dyn Provider,
    dir: &Path,
    namespace: &str,
    redactor: &Redactor,
    errors: &mut Vec<String>,
) {
    let cluster_logs = dir.join("cluster");
    let export = match tempfile::Builder::new()
        .prefix(".cluster-export-")
        .tempdir_in(dir)
    {
        Ok(export) => export,
        Err(error) => {
            errors.push(format!("create a folder in {}: {error}", dir.display()));
            return;
        }
    };
    if let Err(error) = provider.collect_logs(export.path()).await {
        errors.push(format!(
            "cluster logs: {}",
            kindling_harness::render_chain(&error)
        ));
    }
    copy_cluster_logs(export.path(), &cluster_logs, namespace, redactor, errors);
}

/// Copies the tree `export` into `cluster_logs` through `redactor`, leaving
/// out the pod logs of namespaces other than `namespace`.
fn copy_cluster_logs(
    export: &Path,
    cluster_logs: &Path,
    namespace: &str,
    redactor: &Redactor,
    errors: &mut Vec<String>,
) {
    let mut pending = vec![(export.to_owned(), cluster_logs.to_owned())];
    while let Some((from, to)) = pending.pop() {
        if let Err(error) = create_private_dir_all(&to) {
            errors.push(format!("create {}: {error}", to.display()));
            continue;
        }
        let entries = match std::fs::read_dir(&from) {
            Ok(entries) => entries,
            Err(error) => {
                errors.push(format!("read {}: {error}", from.display()));
                continue;
            }
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if of_another_namespace(&path, namespace) {
                continue;
            }
            let target = to.join(entry.file_name());
            match entry.file_type() {
                Ok(kind) if kind.is_dir() => pending.push((path, target)),
                Ok(kind) if kind.is_file() => {
                    if let Err(error) = copy_redacted(&path, &target, redactor) {
                        errors.push(format!("copy {}: {error}", path.display()));
                    }
                }
                _ => {}
            }
        }
    }
}

/// Whether `path` is a pod log (kubelet's `pods/<namespace>_<pod>_<uid>`
/// folder, or `containers/<pod>_<namespace>_<container>-<id>.log`) of a
/// namespace other than `namespace`. Names of namespaces, pods and
/// containers hold no `_`, so the split is exact.
fn of_another_namespace(path: &Path, namespace: &str) -> bool {
    let (Some(name), Some(parent)) = (
        path.file_name().and_then(|name| name.to_str()),
        path.parent()
            .and_then(|parent| parent.file_name())
            .and_then(|parent| parent.to_str()),
    ) else {
        return false;
    };
    let parts: Vec<&str> = name.split('_').collect();
    match (parent, parts.as_slice()) {
        ("pods", [pod_namespace, _, uid]) if uid.len() == 36 => *pod_namespace != namespace,
        ("containers", [_, pod_namespace, rest]) if rest.ends_with(".log") => {
            *pod_namespace != namespace
        }
        _ => false,
    }
}

fn copy_redacted(from: &Path, to: &Path, redactor: &Redactor) -> std::io::Result<()> {
    let source = std::fs::File::open(from)?;
    let target = kindling_harness::util::open_private(
        to,
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true),
    )?;
    redactor.redact_stream(
        std::io::BufReader::new(source),
        std::io::BufWriter::new(target),
    )?;
    Ok(())
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
    fn secrets_are_listed_by_name_key_and_size_only() {
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
        assert_eq!(
            describe_secrets(&[secret]),
            "db (Opaque): password (11 bytes), user (3 bytes)\n"
        );
    }

    #[test]
    fn pod_logs_of_other_namespaces_are_recognised() {
        let uid = "0b7a1c2e-4d5f-4a6b-8c9d-0e1f2a3b4c5d";
        let id = "a".repeat(64);
        let table = [
            (format!("node/pods/mine_web-1_{uid}"), false),
            (format!("node/pods/kube-system_coredns-1_{uid}"), true),
            (format!("node/containers/web-1_mine_web-{id}.log"), false),
            (
                format!("node/containers/coredns-1_other_coredns-{id}.log"),
                true,
            ),
            ("node/kubelet.log".to_owned(), false),
            ("node/journal.log".to_owned(), false),
            ("node/pods".to_owned(), false),
            ("logs/other_web_x.log".to_owned(), false),
        ];
        for (path, foreign) in table {
            assert_eq!(
                of_another_namespace(Path::new(&path), "mine"),
                foreign,
                "{path}"
            );
        }
    }

    #[test]
    fn cluster_logs_are_copied_redacted_without_other_namespaces_pods() {
        let export = tempfile::tempdir().unwrap();
        let uid = "0b7a1c2e-4d5f-4a6b-8c9d-0e1f2a3b4c5d";
        let mine = export
            .path()
            .join(format!("node/pods/mine_web-1_{uid}/web"));
        let other = export
            .path()
            .join(format!("node/pods/prod_api-1_{uid}/api"));
        for folder in [&mine, &other] {
            std::fs::create_dir_all(folder).unwrap();
        }
        std::fs::write(mine.join("0.log"), "web says artifacts-pw-1\n").unwrap();
        std::fs::write(other.join("0.log"), "prod secret\n").unwrap();
        std::fs::write(
            export.path().join("node/kubelet.log"),
            "kubelet artifacts-pw-1\n",
        )
        .unwrap();
        let root = tempfile::tempdir().unwrap();
        let mut redactions = crate::redaction::Redactions::new();
        redactions.add("artifacts-pw-1", "pw");
        let mut errors = Vec::new();
        copy_cluster_logs(
            export.path(),
            &root.path().join("cluster"),
            "mine",
            &redactions.redactor(),
            &mut errors,
        );
        assert!(errors.is_empty(), "{errors:?}");
        let cluster = root.path().join("cluster/node");
        assert_eq!(
            std::fs::read_to_string(cluster.join(format!("pods/mine_web-1_{uid}/web/0.log")))
                .unwrap(),
            "web says <redacted: pw>\n"
        );
        assert_eq!(
            std::fs::read_to_string(cluster.join("kubelet.log")).unwrap(),
            "kubelet <redacted: pw>\n"
        );
        assert!(!cluster.join(format!("pods/prod_api-1_{uid}")).exists());
        assert!(cluster.join("pods").is_dir());
    }
}
