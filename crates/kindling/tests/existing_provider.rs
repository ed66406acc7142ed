//! The `existing` provider against a real registry and a real cluster on
//! this machine: distribution's registry (built by
//! `bash fixtures/registry/build.sh`) started per test on a free loopback
//! port, and the local cluster used only through its kubeconfig, as a
//! cluster kindling does not own.
//!
//! The tests that need the registry binary, a Docker engine, Go and the
//! local cluster (which the run-wide setup brings up) are reported as
//! ignored without them, and fail when `CI` is set.

mod support;

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bollard::Docker;
use bollard::query_parameters::RemoveImageOptions;
use k8s_openapi::api::core::v1::{Event, Namespace, Pod};
use kindling::BoxError;
use kindling::cluster::existing::ExistingCluster;
use kindling::cluster::local::ComponentBinaries;
use kindling::cluster::local::images::write_image_sources;
use kindling::cluster::{Provider as _, PullPolicy};
use kindling::image::{ImageRef, Pusher, Registry, RegistryCredentials};
use kindling::{Requirement, Suite, TestContext, TestOptions};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use support::ensure;

/// The version `fixtures/registry/build.sh` builds.
const REGISTRY_VERSION: &str = "v3.1.2";
const LOCAL_CLUSTER: &str = "kindling";
/// Set in the environment of this binary re-run as a child to call
/// `cluster::from_env` with an environment of its own.
const FROM_ENV_PROBE: &str = "EXISTING_PROVIDER_FROM_ENV_PROBE";

fn registry_binary() -> PathBuf {
    ComponentBinaries::default_cache().join(format!("bin/registry-{REGISTRY_VERSION}"))
}

fn local_kubeconfig() -> PathBuf {
    support::local_cluster(LOCAL_CLUSTER).kubeconfig()
}

/// Seconds since the epoch and this process: unique enough per test run.
fn stamp() -> String {
    let seconds = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    format!("{seconds}-{}", std::process::id())
}

fn free_port() -> Result<u16, BoxError> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A minimal HTTP/1.1 request to a loopback address: status code and
/// headers (lowercased names).
fn http_head(
    address: &str,
    method: &str,
    path: &str,
    accept: &str,
) -> Result<(u16, Vec<(String, String)>), BoxError> {
    let mut stream = TcpStream::connect(address)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nAccept: {accept}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let head = response.split("\r\n\r\n").next().unwrap_or_default();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("no HTTP status from {address}: {head}"))?;
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_lowercase(), value.trim().to_owned()))
        .collect();
    Ok((status, headers))
}

/// distribution's registry as a child process on a free loopback port,
/// storing into a temporary directory; killed on drop.
struct RegistryProcess {
    child: Child,
    address: String,
    _dir: tempfile::TempDir,
}

impl RegistryProcess {
    fn start() -> Result<Self, BoxError> {
        Self::start_with_auth(None)
    }

    /// With `htpasswd` (bcrypt lines), pushes need those credentials.
    fn start_with_auth(htpasswd: Option<&str>) -> Result<Self, BoxError> {
        let dir = tempfile::tempdir()?;
        let address = format!("127.0.0.1:{}", free_port()?);
        let config = dir.path().join("config.yml");
        let mut text = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {address}\n",
            dir.path().join("data").display()
        );
        if let Some(htpasswd) = htpasswd {
            let path = dir.path().join("htpasswd");
            std::fs::write(&path, htpasswd)?;
            text.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: kindling\n    path: {}\n",
                path.display()
            ));
        }
        std::fs::write(&config, text)?;
        let log = std::fs::File::create(dir.path().join("registry.log"))?;
        let child = Command::new(registry_binary())
            .arg("serve")
            .arg(&config)
            .env("OTEL_TRACES_EXPORTER", "none")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .map_err(|error| {
                format!(
                    "cannot start `{}` ({error}): build it with `bash fixtures/registry/build.sh`",
                    registry_binary().display()
                )
            })?;
        let mut registry = RegistryProcess {
            child,
            address,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            // 401 is an answer too: the registry wants credentials.
            if let Ok((200 | 401, _)) = http_head(&registry.address, "GET", "/v2/", "*/*") {
                return Ok(registry);
            }
            if let Some(status) = registry.child.try_wait()? {
                return Err(format!("the registry exited ({status}): {}", registry.log()).into());
            }
            if Instant::now() > deadline {
                return Err(
                    format!("the registry did not answer in 15s: {}", registry.log()).into(),
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("registry.log")).unwrap_or_default()
    }

    /// The digest the registry serves for `repository:tag`.
    fn manifest_digest(&self, repository: &str, tag: &str) -> Result<String, BoxError> {
        let accept = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";
        let (status, headers) = http_head(
            &self.address,
            "HEAD",
            &format!("/v2/{repository}/manifests/{tag}"),
            accept,
        )?;
        ensure(status == 200, || {
            format!("the registry answered {status} for {repository}:{tag}")
        })?;
        headers
            .into_iter()
            .find(|(name, _)| name == "docker-content-digest")
            .map(|(_, value)| value)
            .ok_or_else(|| "the registry sent no Docker-Content-Digest".into())
    }
}

impl Drop for RegistryProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The local cluster, seen only through its kubeconfig.
fn existing_cluster(registry: &str) -> Result<ExistingCluster, BoxError> {
    Ok(ExistingCluster::new(
        &"local-as-existing".parse()?,
        local_kubeconfig(),
        Some(LOCAL_CLUSTER.to_owned()),
        Registry::new(registry)?,
    ))
}

/// A `FROM scratch` image of the smoke server whose name (and so layer
/// and digest) is new in every run, so the node must really pull it.
async fn unique_smoke_image(docker: &Docker, work: &Path) -> Result<ImageRef, BoxError> {
    let sources = write_image_sources(&work.join("src"))?;
    let name = format!("ex-smoke-{}", stamp());
    support::go_image(docker, &name, &sources, "./smoke").await
}

async fn remove_local_tags(docker: &Docker, references: &[String]) {
    for reference in references {
        let _ = docker
            .remove_image(reference, None::<RemoveImageOptions>, None)
            .await;
    }
}

fn smoke_pod(name: &str, image: &str, pull_policy: PullPolicy) -> Result<Pod, BoxError> {
    Ok(serde_json::from_value(serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "containers": [{
                "name": "app",
                "image": image,
                "imagePullPolicy": pull_policy.as_str(),
                "args": ["serve", ":8080"],
                "readinessProbe": {"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 1}
            }],
            "terminationGracePeriodSeconds": 0
        }
    }))?)
}

async fn poll<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<T, BoxError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Result<T, String>, BoxError>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        let last = match check().await? {
            Ok(found) => return Ok(found),
            Err(last) => last,
        };
        if Instant::now() > deadline {
            return Err(format!(
                "{what} did not happen within {}s; last seen: {last}",
                timeout.as_secs()
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn pushes_by_digest_and_the_cluster_pulls_it() -> Result<(), BoxError> {
    let registry = RegistryProcess::start()?;
    let docker = kindling::docker::connect().await?;
    let work = tempfile::tempdir()?;
    let built = unique_smoke_image(&docker, work.path()).await?;
    let cluster = existing_cluster(&registry.address)?;
    let pushed_tag = cluster.registry().target(&built)?;

    let started = Instant::now();
    let delivered = cluster.deliver(docker.clone(), vec![built.clone()]).await;
    let push_seconds = started.elapsed().as_secs_f64();
    let outcome = async {
        let delivered = delivered?;
        ensure(delivered.pull_policy == PullPolicy::IfNotPresent, || {
            format!("pull policy {:?}", delivered.pull_policy)
        })?;
        let [pushed] = delivered.images.as_slice() else {
            return Err(format!("delivered {:?}", delivered.images).into());
        };
        let repository = format!("kindling/{}", built.name());
        let digest = pushed
            .reference()
            .digest()
            .ok_or_else(|| format!("`{}` is not pinned by digest", pushed.reference()))?
            .to_owned();
        ensure(
            pushed.reference().as_str() == format!("{}/{repository}@{digest}", registry.address),
            || format!("pushed as `{}`", pushed.reference()),
        )?;
        ensure(
            pushed.name() == built.name() && pushed.id() == built.id(),
            || format!("pushed {pushed} is not the built {built}"),
        )?;
        let served = registry.manifest_digest(&repository, pushed_tag.tag().expect("tagged"))?;
        ensure(served == digest, || {
            format!("the registry serves {served}, the push reported {digest}")
        })?;
        eprintln!("pushed {} in {push_seconds:.2}s", pushed.reference());
        run_pod_from_registry(&cluster, pushed).await
    }
    .await;
    remove_local_tags(
        &docker,
        &[pushed_tag.to_string(), built.reference().to_string()],
    )
    .await;
    outcome.map_err(|error| -> BoxError {
        format!("{error}\n--- registry log ---\n{}", registry.log()).into()
    })
}

/// A Pod with the pushed reference and `IfNotPresent` in a namespace of its
/// own: it must pull from the registry, become Ready, and report the digest.
async fn run_pod_from_registry(
    cluster: &ExistingCluster,
    image: &ImageRef,
) -> Result<(), BoxError> {
    let client = cluster.client().await?;
    let namespace = format!("ex-pull-{}", stamp());
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(serde_json::json!({"metadata": {"name": namespace}}))?,
        )
        .await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    let events: Api<Event> = Api::namespaced(client, &namespace);
    let checked = async {
        let started = Instant::now();
        pods.create(
            &PostParams::default(),
            &smoke_pod("app", image.reference().as_str(), PullPolicy::IfNotPresent)?,
        )
        .await?;
        let image_id = poll("the pod to become Ready", Duration::from_secs(120), || {
            let pods = pods.clone();
            async move {
                let status = pods.get("app").await?.status.unwrap_or_default();
                let ready = status
                    .conditions
                    .iter()
                    .flatten()
                    .any(|c| c.type_ == "Ready" && c.status == "True");
                let container = status.container_statuses.iter().flatten().next().cloned();
                Ok(match container {
                    Some(container) if ready => Ok(container.image_id),
                    Some(container) => Err(format!("{:?}", container.state)),
                    None => Err(format!("phase {:?}", status.phase)),
                })
            }
        })
        .await?;
        let ready_seconds = started.elapsed().as_secs_f64();
        let digest = image.reference().digest().expect("pushed by digest");
        ensure(image_id.ends_with(&format!("@{digest}")), || {
            format!("the pod runs image ID `{image_id}`, not {digest}")
        })?;
        let pulled: Vec<String> = events
            .list(&ListParams::default().fields("involvedObject.name=app"))
            .await?
            .items
            .into_iter()
            .filter(|event| event.reason.as_deref() == Some("Pulled"))
            .filter_map(|event| event.message)
            .collect();
        ensure(
            pulled
                .iter()
                .any(|message| message.starts_with("Successfully pulled image")),
            || format!("the kubelet did not pull the image: {pulled:?}"),
        )?;
        eprintln!(
            "pod Ready {ready_seconds:.2}s after creation; imageID {image_id}; events {pulled:?}"
        );
        Ok::<_, BoxError>(())
    }
    .await;
    namespaces
        .delete(&namespace, &DeleteParams::default())
        .await?;
    checked
}

async fn ensure_reads_the_context_and_never_touches_nodes() -> Result<(), BoxError> {
    let cluster = existing_cluster("127.0.0.1:5000")?;
    let info = cluster.ensure().await?;
    ensure(info.context == LOCAL_CLUSTER, || {
        format!("context {}", info.context)
    })?;
    ensure(info.kubeconfig == local_kubeconfig(), || {
        format!("kubeconfig {}", info.kubeconfig.display())
    })?;
    let server = kube::config::Kubeconfig::read_from(local_kubeconfig())?
        .clusters
        .into_iter()
        .find_map(|named| named.cluster?.server)
        .ok_or("the local kubeconfig names no server")?;
    ensure(
        info.fingerprint
            .contains(&format!("{}/", server.trim_end_matches('/'))),
        || {
            format!(
                "fingerprint {} names another server than {server}",
                info.fingerprint
            )
        },
    )?;
    cluster.healthy().await?;
    ensure(cluster.node_stores().await?.is_empty(), || {
        "the existing provider offered node stores".to_owned()
    })?;
    let logs = tempfile::tempdir()?;
    cluster.collect_logs(logs.path()).await?;
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(logs.path().join("cluster.json"))?)?;
    ensure(
        report["nodes"]
            .as_array()
            .is_some_and(|nodes| !nodes.is_empty()),
        || format!("cluster.json: {report}"),
    )?;
    // Deleting is a no-op: the cluster still answers afterwards.
    cluster.delete().await?;
    cluster.healthy().await?;
    Ok(())
}

async fn a_missing_kubeconfig_names_the_file() -> Result<(), BoxError> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("nowhere.yaml");
    let cluster = ExistingCluster::new(
        &"team".parse()?,
        &path,
        None,
        Registry::new("127.0.0.1:5000")?,
    );
    let error = cluster.ensure().await.expect_err("no kubeconfig");
    let chain = support::error_text(&error);
    ensure(
        chain.contains(&format!("`{}` does not exist", path.display())),
        || chain.clone(),
    )?;
    ensure(chain.contains("KINDLING_KUBECONFIG"), || chain.clone())?;
    Ok(())
}

async fn an_unknown_context_is_named_with_the_ones_there() -> Result<(), BoxError> {
    let cluster = ExistingCluster::new(
        &"team".parse()?,
        local_kubeconfig(),
        Some("prod-eu".to_owned()),
        Registry::new("127.0.0.1:5000")?,
    );
    let chain = support::error_text(&cluster.ensure().await.expect_err("no such context"));
    for part in [
        "no context `prod-eu`".to_owned(),
        format!("`{LOCAL_CLUSTER}`"),
        local_kubeconfig().display().to_string(),
        "KINDLING_CONTEXT".to_owned(),
    ] {
        ensure(chain.contains(&part), || {
            format!("`{part}` missing from: {chain}")
        })?;
    }
    Ok(())
}

async fn an_api_server_that_does_not_answer_is_named() -> Result<(), BoxError> {
    let dir = tempfile::tempdir()?;
    let port = free_port()?;
    let path = dir.path().join("config.yaml");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: gone\nclusters:\n- name: gone\n  cluster:\n    server: https://127.0.0.1:{port}\n    insecure-skip-tls-verify: true\ncontexts:\n- name: gone\n  context:\n    cluster: gone\n    user: u\nusers:\n- name: u\n  user:\n    token: t\n"
        ),
    )?;
    let cluster = ExistingCluster::new(
        &"team".parse()?,
        &path,
        None,
        Registry::new("127.0.0.1:5000")?,
    );
    let chain = support::error_text(&cluster.ensure().await.expect_err("nothing listens"));
    for part in [
        "context `gone`",
        &format!("127.0.0.1:{port}"),
        "does not answer",
    ] {
        ensure(chain.contains(part), || {
            format!("`{part}` missing from: {chain}")
        })?;
    }
    Ok(())
}

async fn a_registry_that_does_not_answer_names_it_and_the_image() -> Result<(), BoxError> {
    let docker = kindling::docker::connect().await?;
    let work = tempfile::tempdir()?;
    let sources = write_image_sources(&work.path().join("src"))?;
    // A fixed name: this image is built once and reused, nothing is pushed.
    let built = support::go_image(&docker, "ex-unpushed", &sources, "./smoke").await?;
    let address = format!("127.0.0.1:{}", free_port()?);
    let cluster = existing_cluster(&address)?;
    let target = cluster.registry().target(&built)?;
    let started = Instant::now();
    let error = cluster
        .deliver(docker.clone(), vec![built.clone()])
        .await
        .expect_err("nothing listens");
    remove_local_tags(&docker, &[target.to_string()]).await;
    let chain = support::error_text(&error);
    eprintln!(
        "the push failed after {:.2}s",
        started.elapsed().as_secs_f64()
    );
    for part in [
        format!("registry `{address}`"),
        format!("image `{}`", built.name()),
        "check that the registry answers".to_owned(),
    ] {
        ensure(chain.contains(&part), || {
            format!("`{part}` missing from: {chain}")
        })?;
    }
    Ok(())
}

/// `kindling:e2e-secret`, bcrypt (distribution's htpasswd accepts only bcrypt).
const HTPASSWD: &str = "kindling:$2a$10$2sDWWgUwqkZGrZfNM1.NJu7FohpAcrHhdnnJrRq/4Z9qIgQ2MosiW\n";

async fn a_registry_with_credentials_takes_them_and_refuses_without() -> Result<(), BoxError> {
    let registry = RegistryProcess::start_with_auth(Some(HTPASSWD))?;
    let docker = kindling::docker::connect().await?;
    let work = tempfile::tempdir()?;
    let sources = write_image_sources(&work.path().join("src"))?;
    let built = support::go_image(&docker, "ex-unpushed", &sources, "./smoke").await?;
    let anonymous = Registry::new(&registry.address)?;
    let target = anonymous.target(&built)?;
    let refused = Pusher::new(docker.clone(), anonymous.clone())
        .push(&built)
        .await;
    let with_credentials = anonymous.with_credentials(RegistryCredentials {
        username: "kindling".to_owned(),
        password: "e2e-secret".to_owned(),
    });
    let pushed = Pusher::new(docker.clone(), with_credentials)
        .push(&built)
        .await;
    remove_local_tags(&docker, &[target.to_string()]).await;
    let chain = support::error_text(&refused.expect_err("no credentials"));
    for part in [
        format!("registry `{}`", registry.address),
        "KINDLING_REGISTRY_USERNAME".to_owned(),
    ] {
        ensure(chain.contains(&part), || {
            format!("`{part}` missing from: {chain}")
        })?;
    }
    let pushed = pushed?;
    let digest = pushed.reference().digest().unwrap_or_default().to_owned();
    ensure(digest.starts_with("sha256:"), || {
        format!("pushed as {pushed}")
    })?;
    eprintln!("refused without credentials: {chain}");
    Ok(())
}

fn from_env_needs_the_registry_variable() -> Result<(), BoxError> {
    let probe = |registry: Option<&str>| -> Result<String, BoxError> {
        let mut command = Command::new(std::env::current_exe()?);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("KINDLING_") {
                command.env_remove(key);
            }
        }
        command
            .env(FROM_ENV_PROBE, "1")
            .env("KINDLING_PROVIDER", "existing")
            .env("KINDLING_KUBECONFIG", "/nonexistent/kubeconfig");
        if let Some(registry) = registry {
            command.env("KINDLING_REGISTRY", registry);
        }
        let output = command.output()?;
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    };
    let without = probe(None)?;
    ensure(
        without.contains("error: ") && without.contains("set KINDLING_REGISTRY"),
        || format!("without KINDLING_REGISTRY: {without}"),
    )?;
    let with = probe(Some("127.0.0.1:5000"))?;
    ensure(with.trim() == "provider existing", || {
        format!("with KINDLING_REGISTRY: {with}")
    })?;
    Ok(())
}

/// The child side of [`from_env_needs_the_registry_variable`].
fn from_env_probe() -> ExitCode {
    match kindling::cluster::from_env("probe") {
        Ok(provider) => println!("provider {}", provider.kind()),
        Err(error) => println!("error: {}", support::error_text(&error)),
    }
    ExitCode::SUCCESS
}

/// The local cluster, brought up by the run-wide setup, seen by the
/// tests only through its kubeconfig.
#[derive(serde::Serialize, serde::Deserialize)]
struct Local {
    kubeconfig: PathBuf,
}

/// The CRD and ClusterRole someone else made before any suite ran, and
/// that the suite's manifests ship too.
const HOLDOUT_CRD: &str = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.x.dev
spec:
  group: x.dev
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          x-kubernetes-preserve-unknown-fields: true
      additionalPrinterColumns:
        - {name: Size, type: string, jsonPath: .spec.size}
"#;

const HOLDOUT_ROLE: &str = r#"apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: holdout-widget-reader
rules:
  - apiGroups: [x.dev]
    resources: [widgets]
    verbs: [get, list]
"#;

/// The web workload the `environment` fixture suite's test calls.
const WEB: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: web
          image: kindling:toolbox
          args: [serve, "8080", web]
          ports: [{name: http, containerPort: 8080}]
          readinessProbe: {httpGet: {path: /healthz, port: http}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 8080, targetPort: http}]
"#;

/// What must not change of an object kindling did not make: everything
/// but its status (a CRD's status is the API server's own).
fn fingerprint_of(object: &serde_json::Value) -> serde_json::Value {
    let mut object = object.clone();
    object.as_object_mut().map(|o| o.remove("status"));
    object
}

/// A suite shipping a CRD and a ClusterRole that someone else made first,
/// on the local cluster used as an existing one, with `KINDLING_KEEP=never`
/// and then `kindling gc`: both, and an object of the CRD in another
/// namespace, are untouched (labels, managers and resourceVersion); a
/// manifest whose CRD differs stops the setup naming it.
async fn objects_kindling_did_not_create_are_never_changed_or_deleted() -> Result<(), BoxError> {
    use kube::api::{DynamicObject, PostParams};
    use kube::discovery::ApiResource;
    let registry = RegistryProcess::start()?;
    let kubeconfig = local_kubeconfig();
    let client = kindling::kubeconfig::client_for(&kubeconfig, LOCAL_CLUSTER).await?;
    let stamp = stamp();
    let holdout_namespace = format!("prod-holdout-{stamp}");
    let created_by_someone = PostParams {
        field_manager: Some("holdout-admin".to_owned()),
        ..Default::default()
    };
    let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
        Api::all(client.clone());
    let roles: Api<k8s_openapi::api::rbac::v1::ClusterRole> = Api::all(client.clone());
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    // Left by an interrupted earlier run: start from someone else's objects only.
    let _ = crds.delete("widgets.x.dev", &Default::default()).await;
    let _ = roles
        .delete("holdout-widget-reader", &Default::default())
        .await;
    poll("the old CRD to go", Duration::from_secs(60), || {
        let crds = crds.clone();
        async move {
            Ok(match crds.get_opt("widgets.x.dev").await? {
                None => Ok(()),
                Some(_) => Err("still there".to_owned()),
            })
        }
    })
    .await?;
    let mut crd: serde_json::Value = serde_saphyr::from_str(HOLDOUT_CRD)?;
    crd["metadata"]["labels"] = serde_json::json!({"owner": "holdout"});
    crds.create(&created_by_someone, &serde_json::from_value(crd)?)
        .await?;
    roles
        .create(&created_by_someone, &serde_saphyr::from_str(HOLDOUT_ROLE)?)
        .await?;
    namespaces
        .create(
            &created_by_someone,
            &serde_json::from_value(serde_json::json!({"metadata": {"name": holdout_namespace}}))?,
        )
        .await?;
    poll(
        "widgets.x.dev to be Established",
        Duration::from_secs(60),
        || {
            let crds = crds.clone();
            async move {
                let crd = crds.get("widgets.x.dev").await?;
                let established =
                    crd.status
                        .and_then(|status| status.conditions)
                        .is_some_and(|conditions| {
                            conditions
                                .iter()
                                .any(|c| c.type_ == "Established" && c.status == "True")
                        });
                Ok(if established {
                    Ok(())
                } else {
                    Err("not Established".to_owned())
                })
            }
        },
    )
    .await?;
    let widget_resource = ApiResource {
        group: "x.dev".to_owned(),
        version: "v1".to_owned(),
        api_version: "x.dev/v1".to_owned(),
        kind: "Widget".to_owned(),
        plural: "widgets".to_owned(),
    };
    let widgets: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), &holdout_namespace, &widget_resource);
    widgets
        .create(
            &created_by_someone,
            &serde_json::from_value(serde_json::json!({
                "apiVersion": "x.dev/v1", "kind": "Widget",
                "metadata": {"name": "prod-widget"}, "spec": {"size": "large"}
            }))?,
        )
        .await?;
    let snapshot = || async {
        Ok::<_, BoxError>((
            fingerprint_of(&serde_json::to_value(crds.get("widgets.x.dev").await?)?),
            fingerprint_of(&serde_json::to_value(
                roles.get("holdout-widget-reader").await?,
            )?),
            fingerprint_of(&serde_json::to_value(widgets.get("prod-widget").await?)?),
        ))
    };
    let before = snapshot().await?;

    let manifests = tempfile::tempdir()?;
    std::fs::write(manifests.path().join("web.yaml"), WEB)?;
    std::fs::write(manifests.path().join("crd.yaml"), HOLDOUT_CRD)?;
    std::fs::write(manifests.path().join("role.yaml"), HOLDOUT_ROLE)?;
    let run_suite = |manifests: PathBuf| {
        let registry = registry.address.clone();
        let kubeconfig = kubeconfig.clone();
        tokio::task::spawn_blocking(move || {
            let scratch = support::Scratch::new();
            support::run_binary(
                &scratch,
                "environment",
                &[],
                &[
                    ("FIXTURE_MANIFESTS", manifests.to_str().expect("UTF-8 path")),
                    ("KINDLING_PROVIDER", "existing"),
                    (
                        "KINDLING_KUBECONFIG",
                        kubeconfig.to_str().expect("UTF-8 path"),
                    ),
                    ("KINDLING_CONTEXT", LOCAL_CLUSTER),
                    ("KINDLING_REGISTRY", &registry),
                    ("KINDLING_KEEP", "never"),
                ],
            )
        })
    };
    let ran = run_suite(manifests.path().to_owned()).await?;
    let text = ran.text();
    ensure(
        text.contains("failing on purpose after the service answered `web`"),
        || format!("the suite's setup did not get to its test:\n{text}"),
    )?;
    let gc = support::cli(&["gc", "--grace", "1s"])
        .env("KINDLING_KUBECONFIG", &kubeconfig)
        .env("KINDLING_CONTEXT", LOCAL_CLUSTER)
        .output()?;
    ensure(gc.status.success(), || {
        format!(
            "kindling gc failed: {}",
            String::from_utf8_lossy(&gc.stderr)
        )
    })?;
    let after = snapshot().await?;
    ensure(after == before, || {
        format!("objects kindling did not create changed:\nbefore {before:#?}\nafter {after:#?}")
    })?;

    // A manifest that would change the CRD stops the setup, naming it,
    // its manager and what differs; the CRD stays as it was.
    let differing = tempfile::tempdir()?;
    std::fs::write(differing.path().join("web.yaml"), WEB)?;
    std::fs::write(
        differing.path().join("crd.yaml"),
        HOLDOUT_CRD.replace(".spec.size", ".spec.colour"),
    )?;
    let ran = run_suite(differing.path().to_owned()).await?;
    let text = ran.text();
    for expected in [
        "CustomResourceDefinition `widgets.x.dev` exists and kindling did not create it",
        "holdout-admin",
        "/spec/versions/0/additionalPrinterColumns/0/jsonPath: \".spec.size\" → \".spec.colour\"",
        "accept_existing(\"CustomResourceDefinition\", \"widgets.x.dev\")",
    ] {
        ensure(text.contains(expected), || {
            format!("the refused setup does not say {expected:?}:\n{text}")
        })?;
    }
    let unchanged = snapshot().await?;
    ensure(unchanged == before, || {
        format!("the refused setup changed the CRD:\nbefore {before:#?}\nafter {unchanged:#?}")
    })?;

    let _ = namespaces
        .delete(&holdout_namespace, &Default::default())
        .await;
    let _ = crds.delete("widgets.x.dev", &Default::default()).await;
    let _ = roles
        .delete("holdout-widget-reader", &Default::default())
        .await;
    Ok(())
}

fn main() -> ExitCode {
    if std::env::var_os(FROM_ENV_PROBE).is_some() {
        return from_env_probe();
    }
    let registry = Requirement::file(
        registry_binary(),
        "build it with `bash fixtures/registry/build.sh`",
    );
    let local = support::local_cluster(LOCAL_CLUSTER);
    let needs_registry = TestOptions::new()
        .requires(registry)
        .requires(Requirement::program(
            "go",
            "install Go from https://go.dev/dl",
        ))
        .requires(local.requirement());
    let mut suite = Suite::with_setup(|setup| async move {
        let cluster = support::local_cluster(LOCAL_CLUSTER);
        setup.phase("local cluster", cluster.up()).await?;
        Ok(Local {
            kubeconfig: cluster.kubeconfig(),
        })
    });
    suite = suite.test_with(
        "pushes_by_digest_and_the_cluster_pulls_it",
        needs_registry.clone(),
        |_: TestContext<Local>| pushes_by_digest_and_the_cluster_pulls_it(),
    );
    suite = suite.test_with(
        "ensure_reads_the_context_and_never_touches_nodes",
        needs_registry.clone(),
        |_: TestContext<Local>| ensure_reads_the_context_and_never_touches_nodes(),
    );
    suite = suite.test_with(
        "an_unknown_context_is_named_with_the_ones_there",
        needs_registry.clone(),
        |_: TestContext<Local>| an_unknown_context_is_named_with_the_ones_there(),
    );
    suite = suite.test_with(
        "a_registry_that_does_not_answer_names_it_and_the_image",
        needs_registry.clone(),
        |_: TestContext<Local>| a_registry_that_does_not_answer_names_it_and_the_image(),
    );
    suite = suite.test_with(
        "a_registry_with_credentials_takes_them_and_refuses_without",
        needs_registry.clone(),
        |_: TestContext<Local>| a_registry_with_credentials_takes_them_and_refuses_without(),
    );
    suite = suite.test_with(
        "objects_kindling_did_not_create_are_never_changed_or_deleted",
        needs_registry.clone(),
        |_: TestContext<Local>| objects_kindling_did_not_create_are_never_changed_or_deleted(),
    );
    suite = suite.standalone(
        "a_missing_kubeconfig_names_the_file",
        TestOptions::new(),
        a_missing_kubeconfig_names_the_file,
    );
    suite = suite.standalone(
        "an_api_server_that_does_not_answer_is_named",
        TestOptions::new(),
        an_api_server_that_does_not_answer_is_named,
    );
    suite = suite.standalone(
        "from_env_needs_the_registry_variable",
        TestOptions::new(),
        || async { from_env_needs_the_registry_variable() },
    );
    suite.run()
}
