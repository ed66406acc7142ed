//! The kind provider against a real `kind` binary (the pinned one built by
//! `fixtures/kind/build.sh`): a real two-node cluster from the node image
//! kindling made (`kindling prepare --provider kind`), created through the
//! docker shim where the engine refuses privileged containers; and
//! kind-like node containers, which kind lists, reads the kubeconfig of,
//! deletes and exports the logs of as for a real cluster.
//!
//! Without the pinned kind, a Docker engine or kindling's node image these
//! tests are reported as skipped, and fail when `CI` is set.

mod support;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use kindling::cluster::Provider as _;
use kindling::cluster::PullPolicy;
use kindling::cluster::kind::config::{read_recorded, write_recorded};
use kindling::cluster::kind::{
    ClusterConfig, KindCli, KindCluster, KindError, KindVersion, PINNED_VERSION, node_image,
};
use kindling::image::{Builder, ImageSpec, Loader};
use kindling::{Requirement, Suite};
use support::ensure;
use support::kind_like::{
    KindLikeCluster, data_image, ensure_nodes_hold, references_held, remove_cluster_containers,
    write_data_image,
};

type TestResult = Result<(), kindling::BoxError>;

fn cache() -> PathBuf {
    kindling::cluster::local::ComponentBinaries::default_cache()
}

fn real_kind() -> PathBuf {
    support::kind_like::pinned_kind()
}

/// A cluster name unique to this test process (`kk-` for CI's cleanup).
fn cluster_name(test: &str) -> String {
    format!("kk-{test}-{}", std::process::id())
}

/// A scratch world for one test: kindling's state home, and a `kind`
/// wrapper ([`support::kind_like::kind_wrapper`]) that runs the real kind
/// with HOME and KUBECONFIG pointing into it, so a kubeconfig written
/// anywhere but the state dir would show.
struct World {
    dir: tempfile::TempDir,
}

impl World {
    fn new() -> Result<Self, kindling::BoxError> {
        let world = World {
            dir: tempfile::tempdir()?,
        };
        std::fs::create_dir_all(world.home())?;
        support::kind_like::kind_wrapper(world.dir.path(), &world.home(), &world.env_kubeconfig())?;
        Ok(world)
    }

    fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    fn env_kubeconfig(&self) -> PathBuf {
        self.dir.path().join("env-kubeconfig")
    }

    fn kind(&self) -> PathBuf {
        self.dir.path().join("kind")
    }

    fn state_home(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    fn cluster(&self, name: &str) -> KindCluster {
        KindCluster::new(
            &name.parse().expect("a valid cluster name"),
            &self.state_home(),
            &cache(),
        )
        .binary(self.kind())
        .ready_timeout(Duration::from_secs(2))
    }

    fn config_file(&self, file: &str, text: &str) -> Result<PathBuf, kindling::BoxError> {
        let path = self.dir.path().join(file);
        std::fs::write(&path, text)?;
        Ok(path)
    }

    /// Neither `~/.kube/config` nor `$KUBECONFIG` of the kind process was written.
    fn user_kubeconfigs_untouched(&self) -> TestResult {
        for path in [self.home().join(".kube/config"), self.env_kubeconfig()] {
            ensure(!path.exists(), || {
                format!("kind wrote `{}`", path.display())
            })?;
        }
        Ok(())
    }
}

/// Records `config` as the configuration `cluster` was created from, as
/// a successful `ensure` would have.
fn record_created_from(cluster: &KindCluster, config: &Path) -> TestResult {
    std::fs::create_dir_all(cluster.state_dir())?;
    let fingerprint = ClusterConfig::from_file(config)?
        .fingerprint(PINNED_VERSION, &cluster.node_image_choice())?;
    write_recorded(&cluster.fingerprint_record(), &fingerprint)?;
    Ok(())
}

fn kind_error(error: &kindling::cluster::ProviderError) -> Option<&KindError> {
    match error {
        kindling::cluster::ProviderError::Kind { source, .. } => Some(source),
        _ => None,
    }
}

const TWO_NODES: &str = "kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
nodes:
- role: control-plane
- role: worker
";

const THREE_NODES: &str = "kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
nodes:
- role: control-plane
- role: worker
- role: worker
";

/// A kubeadm-shaped admin.conf as kind reads it from a control plane.
fn admin_conf(cluster: &str) -> String {
    format!(
        "apiVersion: v1
kind: Config
clusters:
- cluster:
    insecure-skip-tls-verify: true
    server: https://{cluster}-control-plane:6443
  name: kubernetes
contexts:
- context:
    cluster: kubernetes
    user: kubernetes-admin
  name: kubernetes-admin@kubernetes
current-context: kubernetes-admin@kubernetes
users:
- name: kubernetes-admin
  user:
    token: kk-not-a-real-token
"
    )
}

async fn kind_like(name: &str, workers: usize) -> Result<KindLikeCluster, kindling::BoxError> {
    let docker = kindling::docker::connect().await?;
    let cluster = KindLikeCluster::start(&docker, name, workers).await?;
    cluster
        .write_file(
            &format!("{name}-control-plane"),
            "/etc/kubernetes/admin.conf",
            admin_conf(name).as_bytes(),
        )
        .await?;
    Ok(cluster)
}

fn published_api_port(node: &str) -> Result<String, kindling::BoxError> {
    let output = std::process::Command::new("docker")
        .args(["port", node, "6443/tcp"])
        .output()?;
    let text = String::from_utf8_lossy(&output.stdout);
    let port = text
        .lines()
        .next()
        .and_then(|line| line.rsplit(':').next())
        .ok_or_else(|| format!("`docker port {node}` printed `{text}`"))?;
    Ok(port.trim().to_owned())
}

#[kindling::test(requires = pinned_kind_requirement())]
async fn version_check_passes_on_the_pinned_kind() -> TestResult {
    let version = KindCli::new(real_kind()).checked_version().await?;
    ensure(version == PINNED_VERSION, || {
        format!("`{}` is {version}", real_kind().display())
    })?;
    Ok(())
}

#[kindling::test]
async fn too_old_kind_gives_the_upgrade_message() -> TestResult {
    use std::os::unix::fs::PermissionsExt as _;
    let world = World::new()?;
    let script = world.dir.path().join("old-kind");
    let write = |text: &str| -> std::io::Result<()> {
        std::fs::write(&script, format!("#!/bin/sh\necho '{text}'\n"))?;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))
    };
    write("kind v0.10.0 go1.16.3 linux/amd64")?;
    let cluster = world.cluster(&cluster_name("old")).binary(&script);
    let error = cluster.ensure().await.expect_err("an old kind is refused");
    let text = format!("{error}: {}", std::error::Error::source(&error).unwrap());
    ensure(
        matches!(
            kind_error(&error),
            Some(KindError::TooOld { found, .. }) if *found == KindVersion::new(0, 10, 0)
        ),
        || format!("{error:?}"),
    )?;
    ensure(
        text.contains("kind v0.10.0, older than the minimum v0.20.0")
            && text.contains(&format!("go install sigs.k8s.io/kind@{PINNED_VERSION}")),
        || text.clone(),
    )?;
    write("kind version unknown")?;
    let error = cluster
        .ensure()
        .await
        .expect_err("an unknown version is refused");
    ensure(
        matches!(kind_error(&error), Some(KindError::UnknownVersion { .. })),
        || format!("{error:?}"),
    )?;
    ensure(!cluster.state_dir().exists(), || {
        "state written before the version check passed".to_owned()
    })?;
    Ok(())
}

#[kindling::test]
async fn missing_kind_binary_gives_a_clear_error() -> TestResult {
    let world = World::new()?;
    let cluster = world
        .cluster(&cluster_name("missing"))
        .binary(world.dir.path().join("no-such-kind"));
    let error = cluster.ensure().await.expect_err("no kind, no cluster");
    let text = std::error::Error::source(&error).unwrap().to_string();
    ensure(
        matches!(kind_error(&error), Some(KindError::BinaryMissing { .. }))
            && text.contains("no-such-kind")
            && text.contains("go install sigs.k8s.io/kind@"),
        || text.clone(),
    )?;
    Ok(())
}

#[kindling::test(requires = pinned_kind_requirement(), requires = Requirement::docker())]
async fn kind_sees_the_cluster_and_its_nodes_take_loaded_images() -> TestResult {
    let world = World::new()?;
    let name = cluster_name("nodes");
    let _nodes = kind_like(&name, 1).await?;
    let cluster = world.cluster(&name);
    let clusters = cluster.cli()?.clusters().await?;
    ensure(clusters.contains(&name), || {
        format!("`kind get clusters` printed {clusters:?}")
    })?;
    let stores = cluster.node_stores().await?;
    let names: Vec<&str> = stores.iter().map(|store| store.name()).collect();
    ensure(
        names == [format!("{name}-control-plane"), format!("{name}-worker")],
        || format!("discovered {names:?}"),
    )?;
    let docker = kindling::docker::connect().await?;
    let context = write_data_image(&world.dir.path().join("image"), 7, 1, "kind")?;
    let image = Builder::new(docker.clone())
        .build(&ImageSpec::new("kind-deliver", &context))
        .await?
        .image;
    let delivered = cluster.deliver(docker, vec![image.clone()]).await?;
    ensure(delivered.pull_policy == PullPolicy::Never, || {
        format!("{:?}", delivered.pull_policy)
    })?;
    ensure_nodes_hold(&stores, &image).await?;
    Ok(())
}

#[kindling::test(requires = pinned_kind_requirement(), requires = Requirement::docker())]
async fn reused_kind_cluster_with_changed_config_is_refused() -> TestResult {
    let world = World::new()?;
    let name = cluster_name("changed");
    let nodes = kind_like(&name, 1).await?;
    let created_from = world.config_file("two-nodes.yaml", TWO_NODES)?;
    let changed = world.config_file("three-nodes.yaml", THREE_NODES)?;
    let cluster = world.cluster(&name).config_file(&changed);
    record_created_from(&cluster, &created_from)?;
    let recorded = std::fs::read(cluster.fingerprint_record())?;

    let error = cluster
        .ensure()
        .await
        .expect_err("a changed config is refused");
    let text = format!("{error}: {}", std::error::Error::source(&error).unwrap());
    eprintln!("the refusal reads: {text}");
    ensure(
        matches!(kind_error(&error), Some(KindError::ConfigChanged { cluster, .. }) if *cluster == name),
        || format!("{error:?}"),
    )?;
    for expected in [
        format!("kind cluster `{name}` exists but was created with another configuration"),
        "the configuration changed".to_owned(),
        format!("`{}`", changed.display()),
        format!("created from `{}`", created_from.display()),
        format!("kindling down --provider kind --cluster {name}"),
        "KINDLING_KIND_RECREATE=1".to_owned(),
    ] {
        ensure(text.contains(&expected), || {
            format!("the refusal lacks `{expected}`: {text}")
        })?;
    }
    // Refusing changes nothing: the nodes, the record, no kubeconfig.
    ensure(
        std::fs::read(cluster.fingerprint_record())? == recorded,
        || "the record changed".to_owned(),
    )?;
    ensure(!cluster.kubeconfig().exists(), || {
        "a refused cluster's kubeconfig was exported".to_owned()
    })?;
    ensure(nodes.stores().await?.len() == 2, || {
        "a refused cluster lost nodes".to_owned()
    })?;

    // A cluster kindling has no record of is refused too.
    std::fs::remove_file(cluster.fingerprint_record())?;
    let error = cluster
        .ensure()
        .await
        .expect_err("an unrecorded cluster is refused");
    let text = std::error::Error::source(&error).unwrap().to_string();
    ensure(
        text.contains("kindling has no record of creating it")
            && text.contains(&format!("kindling down --provider kind --cluster {name}")),
        || text.clone(),
    )?;
    world.user_kubeconfigs_untouched()
}

#[kindling::test(requires = pinned_kind_requirement(), requires = Requirement::docker())]
async fn reused_kind_cluster_with_same_config_gets_its_own_kubeconfig_then_a_readiness_check()
-> TestResult {
    let world = World::new()?;
    let name = cluster_name("reuse");
    let _nodes = kind_like(&name, 0).await?;
    let config = world.config_file("one-node.yaml", kindling::cluster::kind::DEFAULT_CONFIG)?;
    let cluster = world.cluster(&name).config_file(&config);
    record_created_from(&cluster, &config)?;

    let error = cluster
        .ensure()
        .await
        .expect_err("a kind-like cluster has no API server");
    eprintln!(
        "the readiness failure reads: {error}: {}",
        std::error::Error::source(&error).unwrap()
    );
    let Some(KindError::NotReady {
        cluster: named,
        logs,
        ..
    }) = kind_error(&error)
    else {
        return Err(format!("expected a readiness failure, got {error:?}").into());
    };
    ensure(named == &name, || format!("{error:?}"))?;
    ensure(
        logs.contains(&cluster.state_dir().join("logs").display().to_string()),
        || format!("the logs folder is not named: {logs}"),
    )?;

    let kubeconfig = std::fs::read_to_string(cluster.kubeconfig())?;
    let port = published_api_port(&format!("{name}-control-plane"))?;
    for expected in [
        format!("server: https://127.0.0.1:{port}"),
        format!("current-context: kind-{name}"),
        "token: kk-not-a-real-token".to_owned(),
    ] {
        ensure(kubeconfig.contains(&expected), || {
            format!("the exported kubeconfig lacks `{expected}`:\n{kubeconfig}")
        })?;
    }
    ensure(cluster.context() == format!("kind-{name}"), || {
        cluster.context()
    })?;
    let health = cluster.healthy().await;
    ensure(health.is_err(), || {
        "a cluster without API server is healthy".to_owned()
    })?;
    world.user_kubeconfigs_untouched()
}

#[kindling::test(requires = pinned_kind_requirement(), requires = Requirement::docker())]
async fn failed_kind_create_carries_kinds_stderr_and_records_nothing() -> TestResult {
    let world = World::new()?;
    let name = cluster_name("create");
    remove_cluster_containers(&name);
    let config = world.config_file(
        "unpullable.yaml",
        "kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
nodes:
- role: control-plane
  image: kindling.invalid/node:v0
",
    )?;
    let cluster = world.cluster(&name).config_file(&config);
    let error = cluster
        .ensure()
        .await
        .expect_err("kind cannot create clusters here");
    let Some(KindError::Command {
        command, stderr, ..
    }) = kind_error(&error)
    else {
        return Err(format!("expected kind's failure, got {error:?}").into());
    };
    ensure(
        command.contains(&format!(
            "create cluster --name {name} --config {}",
            cluster.state_dir().join("kind-config.yaml").display()
        )) && command.contains(&format!("--kubeconfig {}", cluster.kubeconfig().display())),
        || command.clone(),
    )?;
    ensure(
        stderr.contains("kindling.invalid/node:v0") && stderr.contains("ERROR"),
        || format!("kind's stderr is not carried: {stderr}"),
    )?;
    ensure(
        read_recorded(&cluster.fingerprint_record())?.is_none(),
        || "a failed create was recorded".to_owned(),
    )?;
    let clusters = cluster.cli()?.clusters().await?;
    ensure(!clusters.contains(&name), || {
        format!("kind left nodes of `{name}` behind: {clusters:?}")
    })?;
    world.user_kubeconfigs_untouched()
}

#[kindling::test(requires = pinned_kind_requirement(), requires = Requirement::docker())]
async fn recreate_on_change_deletes_the_cluster_through_kind() -> TestResult {
    let world = World::new()?;
    let name = cluster_name("recreate");
    let nodes = kind_like(&name, 1).await?;
    let created_from = world.config_file("two-nodes.yaml", TWO_NODES)?;
    let changed = world.config_file(
        "changed.yaml",
        "kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
nodes:
- role: control-plane
  image: kindling.invalid/node:v0
",
    )?;
    let cluster = world
        .cluster(&name)
        .config_file(&changed)
        .recreate_on_change(true);
    record_created_from(&cluster, &created_from)?;
    let error = cluster
        .ensure()
        .await
        .expect_err("the new cluster cannot be created here");
    ensure(
        matches!(kind_error(&error), Some(KindError::Command { command, .. }) if command.contains("create cluster")),
        || format!("{error:?}"),
    )?;
    let left = nodes.stores().await?;
    ensure(left.is_empty(), || {
        format!("`kind delete cluster` left {} nodes", left.len())
    })?;
    ensure(
        read_recorded(&cluster.fingerprint_record())?.is_none(),
        || "the old record survived".to_owned(),
    )?;
    Ok(())
}

#[kindling::test(requires = pinned_kind_requirement(), requires = Requirement::docker())]
async fn delete_removes_the_nodes_and_the_record() -> TestResult {
    let world = World::new()?;
    let name = cluster_name("delete");
    let nodes = kind_like(&name, 1).await?;
    let config = world.config_file("two-nodes.yaml", TWO_NODES)?;
    let cluster = world.cluster(&name).config_file(&config);
    record_created_from(&cluster, &config)?;
    cluster.delete().await?;
    ensure(nodes.stores().await?.is_empty(), || {
        "nodes left after delete".to_owned()
    })?;
    ensure(!cluster.fingerprint_record().exists(), || {
        "record left after delete".to_owned()
    })?;
    cluster.delete().await?;
    match cluster.node_stores().await {
        Err(error) if matches!(kind_error(&error), Some(KindError::NoNodes { .. })) => {}
        Err(error) => return Err(format!("expected NoNodes, got {error:?}").into()),
        Ok(stores) => return Err(format!("{} nodes after delete", stores.len()).into()),
    }
    world.user_kubeconfigs_untouched()
}

#[kindling::test(requires = pinned_kind_requirement(), requires = Requirement::docker())]
async fn logs_export_what_kind_can_read() -> TestResult {
    let world = World::new()?;
    let name = cluster_name("logs");
    let _nodes = kind_like(&name, 0).await?;
    let cluster = world.cluster(&name);
    let dir = world.dir.path().join("artifacts");
    // A kind-like node has no journal or crictl, so kind exports part of
    // the logs and fails for the rest.
    match cluster.collect_logs(&dir).await {
        Ok(()) => {}
        Err(error) => ensure(
            matches!(kind_error(&error), Some(KindError::LogsIncomplete { dir: kept, .. }) if *kept == dir),
            || format!("{error:?}"),
        )?,
    }
    for file in [
        "kind-version.txt".to_owned(),
        "docker-info.txt".to_owned(),
        format!("{name}-control-plane/inspect.json"),
        format!("{name}-control-plane/serial.log"),
    ] {
        ensure(dir.join(&file).is_file(), || {
            format!("`kind export logs` wrote no {file}")
        })?;
    }
    Ok(())
}

/// Removes the cluster's node containers when dropped (a failed test
/// leaves nothing running).
struct RemoveNodes(String);

impl Drop for RemoveNodes {
    fn drop(&mut self) {
        remove_cluster_containers(&self.0);
    }
}

/// The node containers labelled for `cluster`, with their images.
fn node_containers(cluster: &str) -> Result<Vec<(String, String)>, kindling::BoxError> {
    let output = std::process::Command::new("docker")
        .args([
            "ps",
            "-a",
            "--filter",
            &format!("label=io.x-k8s.kind.cluster={cluster}"),
            "--format",
            "{{.Names}} {{.Image}}",
        ])
        .output()?;
    ensure(output.status.success(), || {
        format!(
            "`docker ps` failed: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    })?;
    let mut containers: Vec<(String, String)> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split_once(' '))
        .map(|(name, image)| (name.to_owned(), image.to_owned()))
        .collect();
    containers.sort();
    Ok(containers)
}

#[kindling::test(requires = pinned_kind_requirement(), requires = Requirement::docker(), requires = node_image_requirement())]
async fn two_node_cluster_from_kindlings_node_image_is_ready_and_down_removes_it() -> TestResult {
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::Node;
    use kube::api::{Api, ListParams};

    let world = tempfile::tempdir()?;
    let name = format!("kn-two-{}", std::process::id());
    let _cleanup = RemoveNodes(name.clone());
    remove_cluster_containers(&name);
    let state_home = world.path().join("state");
    let config = world.path().join("two-nodes.yaml");
    std::fs::write(&config, TWO_NODES)?;
    let cluster = KindCluster::new(&name.parse()?, &state_home, &cache())
        .binary(real_kind())
        .config_file(&config)
        .ready_timeout(Duration::from_secs(300));

    let started = Instant::now();
    let info = cluster.ensure().await?;
    eprintln!(
        "kind_create_s={:.1} (two nodes, from `{}`, readiness included)",
        started.elapsed().as_secs_f64(),
        node_image::reference()
    );
    ensure(info.created, || {
        "the cluster was reused, not created".to_owned()
    })?;

    let nodes = [format!("{name}-control-plane"), format!("{name}-worker")];
    let containers = node_containers(&name)?;
    ensure(
        containers
            == nodes
                .iter()
                .map(|node| (node.clone(), node_image::reference()))
                .collect::<Vec<_>>(),
        || format!("node containers and their images: {containers:?}"),
    )?;

    let client = kindling::kubeconfig::client_for(&info.kubeconfig, &info.context).await?;
    let listed = Api::<Node>::all(client.clone())
        .list(&ListParams::default())
        .await?;
    let mut ready: Vec<String> = listed
        .items
        .iter()
        .filter(|node| {
            node.status
                .as_ref()
                .and_then(|status| status.conditions.as_ref())
                .is_some_and(|conditions| {
                    conditions
                        .iter()
                        .any(|condition| condition.type_ == "Ready" && condition.status == "True")
                })
        })
        .filter_map(|node| node.metadata.name.clone())
        .collect();
    ready.sort();
    ensure(ready == nodes, || {
        format!("Ready nodes: {ready:?} of {} listed", listed.items.len())
    })?;
    let coredns = Api::<Deployment>::namespaced(client, "kube-system")
        .get("coredns")
        .await?;
    let available = coredns
        .status
        .as_ref()
        .and_then(|status| status.available_replicas)
        .unwrap_or(0);
    ensure(available >= 1, || {
        format!(
            "CoreDNS has {available} replicas available: {:?}",
            coredns.status
        )
    })?;

    pods_reach_across_nodes_and_resolve_names(&info, &nodes).await?;
    delivered_images_are_what_crictl_lists(&cluster, world.path(), &nodes).await?;
    a_rebuilt_image_sends_only_its_new_layers_into_each_node(&cluster, world.path(), &nodes)
        .await?;
    kind_load_and_kindling_load_leave_the_same_references(
        &cluster,
        &state_home,
        world.path(),
        &nodes,
    )
    .await?;
    kind_export_logs_is_complete(&cluster, world.path(), &nodes).await?;
    a_never_loaded_tag_is_diagnosed_naming_the_node(&cluster, &info, &nodes[1]).await?;

    let down = support::cli(&["down", "--provider", "kind", "--cluster", &name])
        .env("KINDLING_HOME", &state_home)
        .env("KINDLING_KIND_BINARY", real_kind())
        .output()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&down.stdout),
        String::from_utf8_lossy(&down.stderr)
    );
    ensure(
        down.status.success() && text.contains(&format!("kind cluster `{name}` deleted")),
        || format!("`kindling down --provider kind` failed: {text}"),
    )?;
    let left = node_containers(&name)?;
    ensure(left.is_empty(), || {
        format!("`kindling down --provider kind` left {left:?}")
    })?;
    ensure(!cluster.fingerprint_record().exists(), || {
        "the cluster's record survived its deletion".to_owned()
    })?;
    Ok(())
}

/// The pod network (kindling-cni): a pod on the worker reaches a pod on
/// the control-plane node by its pod IP (TCP to a CoreDNS serving its
/// default `whoami` on port 53), and CoreDNS answers it for
/// `kubernetes.default` with the `kubernetes` Service's IP. The pods run
/// images the node image holds.
async fn pods_reach_across_nodes_and_resolve_names(
    info: &kindling::cluster::ClusterInfo,
    nodes: &[String],
) -> TestResult {
    use k8s_openapi::api::core::v1::{Pod, Service};
    use kube::api::{Api, DeleteParams, LogParams, PostParams};

    let client = kindling::kubeconfig::client_for(&info.kubeconfig, &info.context).await?;
    let pods = Api::<Pod>::namespaced(client.clone(), "default");
    let pod = |name: &str, node: &str, image: String, command: serde_json::Value| {
        serde_json::from_value::<Pod>(serde_json::json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {
                "nodeName": node,
                "tolerations": [{"operator": "Exists"}],
                "restartPolicy": "Never",
                "containers": [{
                    "name": "net",
                    "image": image,
                    "imagePullPolicy": "Never",
                    "command": command
                }]
            }
        }))
    };
    let coredns = format!(
        "registry.k8s.io/coredns/coredns:{}",
        kindling::cluster::local::components::COREDNS_VERSION
    );
    pods.create(
        &PostParams::default(),
        &pod(
            "net-server",
            &nodes[0],
            coredns,
            serde_json::json!(["/coredns"]),
        )?,
    )
    .await?;
    let started = Instant::now();
    let server_ip = loop {
        let server = pods.get("net-server").await?;
        let status = server.status.unwrap_or_default();
        if status.phase.as_deref() == Some("Running")
            && let Some(ip) = status.pod_ip
        {
            break ip;
        }
        ensure(started.elapsed() < Duration::from_secs(120), || {
            format!("the server pod on {} is not running: {status:?}", nodes[0])
        })?;
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    let api_ip = Api::<Service>::namespaced(client, "default")
        .get("kubernetes")
        .await?
        .spec
        .and_then(|spec| spec.cluster_ip)
        .unwrap_or_default();
    let helper = format!(
        "{}/local-path-helper:{}",
        node_image::NAMESPACE,
        node_image::DEBIAN_RELEASE
    );
    let script = format!(
        "getent hosts kubernetes.default | grep -qw {api_ip} || exit 2; \
         exec 3<>/dev/tcp/{server_ip}/53 || exit 3; echo reached"
    );
    pods.create(
        &PostParams::default(),
        &pod(
            "net-client",
            &nodes[1],
            helper,
            serde_json::json!(["bash", "-c", script]),
        )?,
    )
    .await?;
    let phase = loop {
        let phase = pods.get("net-client").await?.status.and_then(|s| s.phase);
        if let Some(done @ ("Succeeded" | "Failed")) = phase.as_deref() {
            break done.to_owned();
        }
        ensure(started.elapsed() < Duration::from_secs(180), || {
            format!("the client pod on {} did not finish: {phase:?}", nodes[1])
        })?;
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    let logs = pods
        .logs("net-client", &LogParams::default())
        .await
        .unwrap_or_default();
    eprintln!(
        "cross_node_pod_network_s={:.1} (server {server_ip} on {}, {phase})",
        started.elapsed().as_secs_f64(),
        nodes[0]
    );
    ensure(phase == "Succeeded" && logs.contains("reached"), || {
        format!(
            "a pod on {} did not resolve kubernetes.default to {api_ip} (exit 2) or reach \
             {server_ip} on {} (exit 3): {phase}, logs: {logs}",
            nodes[1], nodes[0]
        )
    })?;
    for name in ["net-client", "net-server"] {
        pods.delete(name, &DeleteParams::default()).await?;
    }
    Ok(())
}

/// An image delivered into both real nodes is in each node's store under
/// its exact reference and ID, and `crictl images` there (what the kubelet
/// sees) lists that reference.
async fn delivered_images_are_what_crictl_lists(
    cluster: &KindCluster,
    scratch: &Path,
    nodes: &[String],
) -> TestResult {
    let docker = kindling::docker::connect().await?;
    let context = write_data_image(&scratch.join("image"), 11, 1, "kind-real")?;
    let image = Builder::new(docker.clone())
        .build(&ImageSpec::new("kind-real", &context))
        .await?
        .image;
    cluster.deliver(docker, vec![image.clone()]).await?;
    ensure_nodes_hold(&cluster.node_stores().await?, &image).await?;
    for node in nodes {
        crictl_lists(node, image.reference().as_str())?;
    }
    Ok(())
}

/// Fails unless `crictl images` in `node` (what its kubelet sees) lists
/// `reference`.
fn crictl_lists(node: &str, reference: &str) -> TestResult {
    let listed = std::process::Command::new("docker")
        .args(["exec", node, "crictl", "images", "-o", "json"])
        .output()?;
    ensure(listed.status.success(), || {
        format!(
            "`crictl images` in {node} failed: {}",
            String::from_utf8_lossy(&listed.stderr)
        )
    })?;
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout)?;
    let found = listed["images"].as_array().is_some_and(|images| {
        images.iter().any(|entry| {
            entry["repoTags"]
                .as_array()
                .is_some_and(|tags| tags.iter().any(|tag| tag == reference))
        })
    });
    ensure(found, || {
        format!("`crictl images` in {node} does not list {reference}: {listed}")
    })?;
    Ok(())
}

/// A rebuilt image on a base both real nodes hold: each node gets only the
/// two new layers, read from the engine's storage, and its kubelet lists
/// the exact reference.
async fn a_rebuilt_image_sends_only_its_new_layers_into_each_node(
    cluster: &KindCluster,
    scratch: &Path,
    nodes: &[String],
) -> TestResult {
    let docker = kindling::docker::connect().await?;
    let stores = cluster.node_stores().await?;
    let tag = std::process::id();
    let base = format!("localhost/kind-real-base:{tag}");
    data_image(&docker, &scratch.join("base"), 31, 30, &base).await?;
    let builder = Builder::new(docker.clone());
    let version = |name: &str, seed: u64, megabytes: usize| {
        let context = write_data_image(&scratch.join(name), seed, megabytes, name)?;
        std::fs::write(
            context.join("Dockerfile"),
            format!("FROM {base}\nCOPY data /top-data\nCOPY marker /marker\n"),
        )?;
        Ok::<_, std::io::Error>(ImageSpec::new("kind-real-layers", context))
    };
    let v1 = builder.build(&version("v1", 32, 2)?).await?.image;
    let loader = Loader::new(docker.clone());
    let first = loader.load(std::slice::from_ref(&v1), &stores).await?;
    ensure(
        first.nodes.len() == nodes.len() && first.nodes.iter().all(|node| node.bytes > 30_000_000),
        || format!("the first load did not send the base to every node: {first:?}"),
    )?;

    let v2 = builder.build(&version("v2", 33, 3)?).await?.image;
    let second = loader.load(std::slice::from_ref(&v2), &stores).await?;
    // The new layers: 3 MB of data and the marker; the base's two are held.
    let limit = 3 * 1024 * 1024 + 1_000_000;
    ensure(second.nodes.len() == nodes.len(), || {
        format!("loaded into {} nodes: {second:?}", second.nodes.len())
    })?;
    for node in &second.nodes {
        ensure(
            node.imported == [v2.reference().to_string()]
                && node.bytes <= limit
                && node.layers_sent == 2
                && node.layers_skipped == 2
                && node.from_engine_storage,
            || format!("node {} got more than the new layers: {node:?}", node.node),
        )?;
    }
    eprintln!(
        "one changed layer into the real nodes: {:?} bytes",
        second
            .nodes
            .iter()
            .map(|node| (node.node.as_str(), node.bytes))
            .collect::<Vec<_>>()
    );
    ensure_nodes_hold(&stores, &v2).await?;
    for node in nodes {
        crictl_lists(node, v2.reference().as_str())?;
    }
    Ok(())
}

/// The real `kind load docker-image` and `kindling load` leave the same
/// references on the same real nodes.
async fn kind_load_and_kindling_load_leave_the_same_references(
    cluster: &KindCluster,
    state_home: &Path,
    scratch: &Path,
    nodes: &[String],
) -> TestResult {
    let docker = kindling::docker::connect().await?;
    let stores = cluster.node_stores().await?;
    let tag = std::process::id();
    let prefix = "localhost/kind-real-vs-kind:";
    let images = [format!("{prefix}a{tag}"), format!("{prefix}b{tag}")];
    data_image(&docker, &scratch.join("a"), 34, 3, &images[0]).await?;
    data_image(&docker, &scratch.join("b"), 35, 3, &images[1]).await?;
    let refs: Vec<&str> = images.iter().map(String::as_str).collect();

    let home = scratch.join("kind-home");
    std::fs::create_dir_all(&home)?;
    let kind = support::kind_like::kind_wrapper(
        &scratch.join("kind-wrapper"),
        &home,
        &scratch.join("kind-kubeconfig"),
    )?;
    let by_kind = std::process::Command::new(&kind)
        .args(["load", "docker-image", "--name", cluster.name()])
        .args(&refs)
        .output()?;
    ensure(by_kind.status.success(), || {
        format!(
            "`kind load docker-image` failed: {}",
            String::from_utf8_lossy(&by_kind.stderr)
        )
    })?;
    let after_kind = references_held(&stores, prefix).await?;
    let mut expected: Vec<String> = images.to_vec();
    expected.sort();
    // The layer loader, then the fallback that streams each image's whole
    // `docker save` as kind does (`--all-platforms`).
    for extra in [&[][..], &["--all-platforms"][..]] {
        for store in &stores {
            store.remove(&refs).await?;
        }
        let ours = support::cli(&["load", "--provider", "kind", "--cluster", cluster.name()])
            .args(extra)
            .args(&refs)
            .env("KINDLING_HOME", state_home)
            .env("KINDLING_KIND_BINARY", real_kind())
            .output()?;
        ensure(ours.status.success(), || {
            format!(
                "`kindling load {}` failed: {}{}",
                extra.join(" "),
                String::from_utf8_lossy(&ours.stdout),
                String::from_utf8_lossy(&ours.stderr)
            )
        })?;
        let after_ours = references_held(&stores, prefix).await?;
        ensure(
            after_kind == after_ours
                && after_ours.len() == nodes.len()
                && after_ours.iter().all(|node| node == &expected),
            || {
                format!(
                    "kind left {after_kind:?}, `kindling load {}` {after_ours:?}",
                    extra.join(" ")
                )
            },
        )?;
    }
    for node in nodes {
        for reference in &refs {
            crictl_lists(node, reference)?;
        }
    }
    Ok(())
}

/// `kind export logs` through kindling is complete on real nodes: every
/// node's journal, kubelet and containerd logs, images and pod logs.
async fn kind_export_logs_is_complete(
    cluster: &KindCluster,
    scratch: &Path,
    nodes: &[String],
) -> TestResult {
    let dir = scratch.join("kind-logs");
    cluster.collect_logs(&dir).await?;
    for node in nodes {
        for file in [
            "journal.log",
            "kubelet.log",
            "containerd.log",
            "images.log",
            "kubernetes-version.txt",
            "inspect.json",
        ] {
            let path = dir.join(node).join(file);
            let size = std::fs::metadata(&path).map(|meta| meta.len()).unwrap_or(0);
            ensure(size > 0, || {
                format!("`kind export logs` wrote no {}", path.display())
            })?;
        }
        let pods = dir.join(node).join("pods");
        let kube_system = std::fs::read_dir(&pods)
            .map(|entries| {
                entries.filter_map(Result::ok).any(|entry| {
                    entry
                        .file_name()
                        .to_string_lossy()
                        .starts_with("kube-system_")
                })
            })
            .unwrap_or(false);
        ensure(kube_system, || {
            format!(
                "`kind export logs` wrote no kube-system pod logs under {}",
                pods.display()
            )
        })?;
    }
    Ok(())
}

/// A Deployment naming a tag that was never loaded is diagnosed within
/// seconds as on `local`: `ErrImageNeverPull`, naming the real node.
async fn a_never_loaded_tag_is_diagnosed_naming_the_node(
    cluster: &KindCluster,
    info: &kindling::cluster::ClusterInfo,
    worker: &str,
) -> TestResult {
    use k8s_openapi::api::apps::v1::Deployment;
    use kindling::wait::{WaitError, Waiter, Workload};
    use kube::api::{Api, PostParams};

    let client = kindling::kubeconfig::client_for(&info.kubeconfig, &info.context).await?;
    let deployment: Deployment = serde_json::from_value(serde_json::json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "never-loaded", "namespace": "default"},
        "spec": {
            "selector": {"matchLabels": {"app": "never-loaded"}},
            "template": {
                "metadata": {"labels": {"app": "never-loaded"}},
                "spec": {"containers": [{
                    "name": "app",
                    "image": "localhost/kindling/kind-real:never-loaded",
                    "imagePullPolicy": "Never"
                }]}
            }
        }
    }))?;
    Api::<Deployment>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &deployment)
        .await?;
    let started = Instant::now();
    let waited = Waiter::new(
        client,
        cluster.node_stores().await?,
        Duration::from_secs(120),
    )
    .wait(&[Workload::new("Deployment", "default", "never-loaded")])
    .await;
    let Err(WaitError::Diagnosed(diagnosis)) = waited else {
        return Err(format!("the wait was not diagnosed: {waited:?}").into());
    };
    eprintln!(
        "never_loaded_tag_diagnosed_s={:.1}",
        started.elapsed().as_secs_f64()
    );
    ensure(
        diagnosis.fatal.reason == "ErrImageNeverPull" && diagnosis.node.as_deref() == Some(worker),
        || format!("diagnosis: {diagnosis}"),
    )?;
    let text = diagnosis.to_string();
    ensure(
        text.contains(worker) && text.contains("localhost/kindling/kind-real:never-loaded"),
        || format!("the diagnosis names neither the node nor the image: {text}"),
    )?;
    Ok(())
}

/// With no kind installed or named, the kind provider builds the pinned
/// kind from the Go module proxy into its cache, and says so.
#[kindling::test(
    requires = Requirement::program("go", "install Go (https://go.dev/dl)"),
    requires = no_kind_installed()
)]
async fn a_missing_kind_is_built_into_the_cache() -> TestResult {
    let world = World::new()?;
    let cache = world.dir.path().join("cache");
    let cluster = KindCluster::new(&cluster_name("build").parse()?, &world.state_home(), &cache);
    let started = Instant::now();
    let cli = cluster.cli_or_build().await?;
    eprintln!("kind_build_s={:.1}", started.elapsed().as_secs_f64());
    let pinned = kindling::cluster::kind::cli::pinned_binary(&cache);
    ensure(cli.binary() == pinned, || {
        format!(
            "kind is `{}`, not the pinned build `{}`",
            cli.binary().display(),
            pinned.display()
        )
    })?;
    let version = cli.checked_version().await?;
    ensure(version == PINNED_VERSION, || {
        format!("the build is kind {version}, not {PINNED_VERSION}")
    })?;
    // Found, not built, the second time.
    let built = std::fs::metadata(&pinned)?.modified()?;
    cluster.cli_or_build().await?;
    ensure(std::fs::metadata(&pinned)?.modified()? == built, || {
        "the second lookup built kind again".to_owned()
    })?;
    Ok(())
}

/// With `KINDLING_PROVIDER` unset the provider follows what the machine
/// offers, said on stderr with the reason: Kind where an engine answers
/// that can run Kind nodes, `local` as root when none answers, and neither
/// (an error naming both ways) for a user who is not root without an engine.
#[kindling::test(requires = pinned_kind_requirement(), requires = Requirement::docker(), requires = Requirement::root())]
async fn the_default_provider_follows_what_the_machine_offers() -> TestResult {
    use std::os::unix::fs::PermissionsExt as _;
    let world = World::new()?;
    let name = cluster_name("default");
    let status = |env: &[(&str, &str)]| {
        let mut command = support::cli(&["status", "--cluster", &name]);
        command
            .env_remove("KINDLING_PROVIDER")
            .env("KINDLING_HOME", world.state_home())
            .envs(env.iter().copied());
        support::Ran::from(command.output().expect("the kindling CLI runs"))
    };

    let kind = status(&[("KINDLING_KIND_BINARY", real_kind().to_str().ok_or("path")?)]);
    ensure(
        kind.stderr.contains(
            "kindling: provider `kind`: KINDLING_PROVIDER is unset and a container engine answers that can run Kind nodes",
        ) && kind.stdout.contains(&format!("kind cluster `{name}`")),
        || format!("with an engine: {}", kind.text()),
    )?;

    let no_engine = "unix:///nonexistent/kindling-default.sock";
    let local = status(&[("DOCKER_HOST", no_engine)]);
    ensure(
        local.stderr.contains(
            "kindling: provider `local`: KINDLING_PROVIDER is unset, no engine can run Kind nodes",
        ) && local.stderr.contains(no_engine)
            && local.stderr.contains("this process is root on Linux")
            && local.stdout.contains(&format!("cluster `{name}` (local)")),
        || format!("without an engine, as root: {}", local.text()),
    )?;

    // As a user who is not root: the CLI copied where `nobody` may run it.
    let bin = tempfile::tempdir()?;
    std::fs::set_permissions(bin.path(), std::fs::Permissions::from_mode(0o755))?;
    let cli = bin.path().join("kindling");
    std::fs::copy(support::cli_binary(), &cli)?;
    let nobody = std::process::Command::new("setpriv")
        .args([
            "--reuid",
            "65534",
            "--regid",
            "65534",
            "--clear-groups",
            "--",
        ])
        .arg(&cli)
        .args(["status", "--cluster", &name])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", bin.path())
        .env("DOCKER_HOST", no_engine)
        .output()?;
    let nobody = support::Ran::from(nobody);
    ensure(
        nobody.code == Some(1)
            && nobody.stderr.contains("no cluster provider can run here")
            && nobody.stderr.contains(no_engine)
            && nobody.stderr.contains("start Docker or Podman")
            && nobody.stderr.contains("run the tests as root on Linux")
            && !nobody.stderr.contains("kindling: provider"),
        || format!("as nobody without an engine: {}", nobody.text()),
    )?;
    Ok(())
}

/// The pinned kind the tests compare kindling with.
fn pinned_kind_requirement() -> Requirement {
    Requirement::file(
        real_kind(),
        "build the pinned kind with `bash fixtures/kind/build.sh`",
    )
}

/// kindling's Kind node image, made beforehand (`prepare --provider kind`).
fn node_image_requirement() -> Requirement {
    Requirement::new("kindling's Kind node image", || {
        let reference = node_image::reference();
        let found = std::process::Command::new("docker")
            .args(["image", "inspect", "--format", "{{.Id}}", &reference])
            .output()
            .is_ok_and(|output| output.status.success());
        if found {
            Ok(())
        } else {
            Err(format!(
                "the engine has no `{reference}`: make it with `cargo run -p kindling-cli -- prepare --provider kind`"
            ))
        }
    })
}

/// No kind the kind provider would use instead of building its own.
fn no_kind_installed() -> Requirement {
    Requirement::new("no kind on PATH or in KINDLING_KIND_BINARY", || {
        let named = std::env::var_os("KINDLING_KIND_BINARY").is_some_and(|value| !value.is_empty());
        if named || kindling_harness::requirement::find_program("kind").is_some() {
            Err("a kind is installed, so kindling would use it rather than build one".to_owned())
        } else {
            Ok(())
        }
    })
}

fn main() -> ExitCode {
    Suite::new().run()
}
