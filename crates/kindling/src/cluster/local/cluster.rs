//! `up`, `down` and health of a local cluster: upstream components started
//! as detached processes on this host, in dependency order, each wait
//! failing fast with the last lines of a component's log if it exits.

use std::future::Future;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Node;
use kube::Client;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::ApiResource;

use super::config::{self, LocalLayout, LocalNetwork, LocalPorts, PAUSE_IMAGE};
use super::images::{ComponentImageError, component_image, write_image_sources};
use super::manifests;
use super::ports::{PortInUse, ensure_free};
use super::process::{ProcessError, ProcessSpec, Supervisor};
use crate::cluster::pki::{self, PkiError, PkiFiles, PkiSpec};
use crate::image::{ImageSpec, LoadError, Loader};
use crate::node::{LocalProcess, NodeStore};

use super::components::{ComponentBinaries, component_versions};

/// Components in start order; stopped in reverse.
const COMPONENTS: &[&str] = &[
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "containerd",
    "kubelet",
    "kube-proxy",
];

/// Kernel settings the kubelet and pod networking need, as `/proc/sys` paths.
const HOST_SYSCTLS: &[(&str, &str)] = &[
    ("vm/overcommit_memory", "1"),
    ("vm/panic_on_oom", "0"),
    ("kernel/panic", "10"),
    ("kernel/panic_on_oops", "1"),
    ("kernel/keys/root_maxkeys", "1000000"),
    ("kernel/keys/root_maxbytes", "25000000"),
    ("net/ipv4/ip_forward", "1"),
    ("net/bridge/bridge-nf-call-iptables", "1"),
];

/// Lines of a component's log shown when it exits.
const LOG_TAIL: usize = 30;

/// What [`LocalCluster::down_with_report`] did.
#[derive(Debug, Clone, Default)]
pub struct DownReport {
    /// The components stopped.
    pub stopped: Vec<String>,
    /// What could not be removed, each naming the object and why.
    pub left: Vec<String>,
}

/// A local cluster failed.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error(transparent)]
    Components(#[from] super::components::ComponentBuildError),
    #[error(transparent)]
    Kubeconfig(Box<crate::kubeconfig::KubeconfigError>),
    #[error(transparent)]
    Packages(#[from] crate::apt::PackageError),
    #[error("the local provider runs Kubernetes components as root; run it as root")]
    NotRoot,
    #[error(transparent)]
    Lock(#[from] crate::cluster::lock::LockError),
    #[error(
        "{component} (pid {pid}) of cluster `{cluster}` was left running without a record and does not stop: kill it (`kill -9 {pid}`)"
    )]
    Unstoppable {
        cluster: String,
        component: String,
        pid: u32,
    },
    #[error(transparent)]
    PortInUse(#[from] PortInUse),
    #[error("`{command}` failed: {stderr}")]
    Host { command: String, stderr: String },
    #[error("failed to write `{path}`")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Pki(#[from] PkiError),
    #[error(transparent)]
    Process(#[from] ProcessError),
    #[error("{what} did not happen within {}s; last seen: {last}", .after.as_secs())]
    Timeout {
        what: String,
        after: Duration,
        last: String,
    },
    #[error("failed to {action}")]
    Kube {
        action: String,
        #[source]
        source: kube::Error,
    },
    #[error(transparent)]
    Images(#[from] ComponentImageError),
    #[error(transparent)]
    Load(Box<LoadError>),
    #[error(transparent)]
    Docker(#[from] crate::docker::DockerUnavailable),
}

/// The one phase of an `up` that found the cluster running.
pub const ALREADY_UP: &str = "already up";

/// A single-node cluster of upstream components on this host.
#[derive(Debug, Clone)]
pub struct LocalCluster {
    name: String,
    state_root: PathBuf,
    cache: PathBuf,
    node_name: String,
    layout: LocalLayout,
    network: LocalNetwork,
    ports: LocalPorts,
    binaries: ComponentBinaries,
    cni_bin_dir: PathBuf,
    containerd: PathBuf,
    ctr: PathBuf,
    supervisor: Supervisor,
}

impl LocalCluster {
    /// The cluster's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The node's name.
    pub fn node_name(&self) -> &str {
        &self.node_name
    }

    /// Where the cluster keeps its state and runtime files.
    pub fn layout(&self) -> &LocalLayout {
        &self.layout
    }

    /// The host ports its components listen on.
    pub fn ports(&self) -> &LocalPorts {
        &self.ports
    }

    /// The component binaries it runs.
    pub fn binaries(&self) -> &ComponentBinaries {
        &self.binaries
    }

    /// The cluster `name` with its state in `state_root/<name>` and the
    /// components in `binaries`.
    pub fn new(name: &str, state_root: &Path, binaries: ComponentBinaries) -> Self {
        let cache = binaries
            .kubernetes_dir
            .parent()
            .and_then(Path::parent)
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let layout = LocalLayout::new(state_root.join(name), Path::new("/run/kindling").join(name));
        LocalCluster {
            name: name.to_owned(),
            state_root: state_root.to_owned(),
            cache,
            node_name: format!("{name}-node"),
            supervisor: Supervisor::new(layout.root.clone()),
            layout,
            network: LocalNetwork::default(),
            ports: LocalPorts::default(),
            binaries,
            cni_bin_dir: PathBuf::from("/usr/lib/cni"),
            containerd: PathBuf::from("/usr/bin/containerd"),
            ctr: PathBuf::from("/usr/bin/ctr"),
        }
    }

    /// The cluster `name`, its state in `state_root/<name>`, the components
    /// built into (or found in) `cache`.
    pub fn in_dirs(name: &str, state_root: &Path, cache: &Path) -> Self {
        LocalCluster::new(name, state_root, ComponentBinaries::in_cache(cache))
    }

    /// The cluster `name` with the default locations: state under
    /// `KINDLING_HOME` (default `~/.local/state/kindling`), binaries in
    /// `KINDLING_CACHE_DIR` (default `~/.cache/kindling`).
    pub fn with_defaults(name: &str) -> Self {
        LocalCluster::in_dirs(
            name,
            &crate::cluster::state_home().join("clusters"),
            &ComponentBinaries::default_cache(),
        )
    }

    /// What `up` needs that it cannot obtain itself, if anything (cheap
    /// checks only): root, a Docker engine, Go when the components are not
    /// built yet, and Debian's runtime packages unless it may install them.
    pub fn missing_prerequisite(&self) -> Option<String> {
        crate::cluster::Provider::requirement(self).check().err()
    }

    /// Obtains what `up` needs and can get itself: builds the pinned
    /// components when missing and installs Debian's runtime packages
    /// (as root on Debian, unless `KINDLING_INSTALL=never`).
    pub async fn prepare(&self) -> Result<(), LocalError> {
        if !rustix::process::geteuid().is_root() {
            return Err(LocalError::NotRoot);
        }
        let say = |line: &str| eprintln!("kindling: local cluster `{}`: {line}", self.name);
        crate::apt::ensure_installed(
            &super::packages::runtime_files(&self.cni_bin_dir),
            crate::apt::InstallPolicy::from_env(),
            &self.cache,
            &say,
        )
        .await?;
        super::components::ensure_built(&self.cache, &say).await?;
        Ok(())
    }

    /// The exclusive lock guarding bringing this cluster up and taking it down.
    async fn lifecycle_lock(
        &self,
        purpose: &str,
    ) -> Result<crate::cluster::lock::Exclusive, LocalError> {
        let name = self.name.clone();
        Ok(crate::cluster::lock::exclusive(
            &self.state_root.join(format!("{}.lock", self.name)),
            purpose,
            move |holder| {
                eprintln!(
                    "kindling: waiting for local cluster `{name}`: another process is bringing it up or taking it down ({})",
                    if holder.is_empty() { "unknown" } else { holder }
                )
            },
        )
        .await?)
    }

    /// The component processes recorded as started.
    pub fn recorded_processes(&self) -> Vec<super::process::ProcessRecord> {
        self.supervisor.records()
    }

    /// Processes of containerd shims started for this cluster's containerd.
    pub fn shim_processes(&self) -> Vec<u32> {
        let socket = self.layout.containerd_socket().display().to_string();
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|entry| {
                let pid = entry.file_name().to_str()?.parse::<u32>().ok()?;
                let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
                let args: Vec<&[u8]> = cmdline.split(|byte| *byte == 0).collect();
                let ours = args.first()?.ends_with(b"containerd-shim-runc-v2")
                    && args
                        .windows(2)
                        .any(|pair| pair[0] == b"-address" && pair[1] == socket.as_bytes());
                ours.then_some(pid)
            })
            .collect()
    }

    /// A Kubernetes client with the admin identity.
    pub async fn admin_client(&self) -> Result<Client, LocalError> {
        self.client().await
    }

    /// The admin kubeconfig.
    pub fn kubeconfig(&self) -> PathBuf {
        self.layout.kubeconfig("admin")
    }

    /// The node's image store: this cluster's containerd, through local processes.
    pub fn node_store(&self) -> NodeStore {
        let socket = self.layout.containerd_socket().display().to_string();
        let config = self.layout.containerd_config().display().to_string();
        NodeStore::new(Arc::new(LocalProcess::new(
            self.node_name.clone(),
            vec![
                self.ctr.display().to_string(),
                "--address".to_owned(),
                socket,
            ],
            vec![
                self.containerd.display().to_string(),
                "--config".to_owned(),
                config,
            ],
        )))
    }

    fn pki_spec(&self) -> PkiSpec {
        PkiSpec {
            node_name: self.node_name.clone(),
            node_ip: IpAddr::V4(self.network.node_ip),
            service_ip: IpAddr::V4(self.network.api_service_ip),
        }
    }

    fn all_running(&self) -> bool {
        COMPONENTS.iter().all(|name| {
            self.supervisor
                .record(name)
                .as_ref()
                .is_some_and(Supervisor::is_running)
        })
    }

    /// Brings the cluster up, or returns at once if it already runs and is
    /// healthy (then its one phase is [`ALREADY_UP`]). Returns each phase's
    /// name and time.
    pub async fn up(&self) -> Result<Vec<(String, Duration)>, LocalError> {
        let mut phases = Vec::new();
        let mut phase = |name: &str, started: Instant| {
            let elapsed = started.elapsed();
            eprintln!("kindling up: {name} in {:.2}s", elapsed.as_secs_f64());
            phases.push((name.to_owned(), elapsed));
        };
        let started = Instant::now();
        let _lock = self
            .lifecycle_lock(&format!("bringing cluster `{}` up", self.name))
            .await?;
        if self.all_running() && self.healthy().await.is_ok() {
            let recorded = std::fs::read_to_string(self.digest_path()).unwrap_or_default();
            if recorded.trim() == self.configuration_digest() {
                phase(ALREADY_UP, started);
                return Ok(phases);
            }
            eprintln!(
                "kindling up: cluster `{}` runs with another configuration (kindling changed how it runs its components): restarting them, its data kept",
                self.name
            );
        }
        self.prepare().await?;
        // A partial cluster (a component died, or an earlier `up` failed)
        // starts over, and so do components an interrupted `up` left
        // running without a record.
        self.supervisor.stop_all(Duration::from_secs(10))?;
        self.stop_unrecorded(Duration::from_secs(10))?;
        let ports: Vec<(&str, IpAddr, u16)> = self
            .ports
            .all()
            .into_iter()
            .map(|(component, port)| (component, IpAddr::from([0, 0, 0, 0]), port))
            .collect();
        ensure_free(&ports)?;
        self.prepare_host()?;
        let pki = pki::ensure_pki(&self.pki_spec(), &self.layout.pki())?;
        self.write_configs(&pki)?;
        phase("prepare", started);

        let started = Instant::now();
        self.start_component("etcd", &pki)?;
        self.start_component("kube-apiserver", &pki)?;
        let client = self.client().await?;
        self.wait(
            "the API server to be ready",
            Duration::from_secs(90),
            &["etcd", "kube-apiserver"],
            || {
                let client = client.clone();
                async move {
                    let request = http::Request::get("/readyz")
                        .body(Vec::new())
                        .expect("static request");
                    match client.request_text(request).await {
                        Ok(text) if text.trim() == "ok" => Ok(None),
                        Ok(text) => Err(text),
                        Err(error) => Err(error.to_string()),
                    }
                }
            },
        )
        .await?;
        self.apply(&client, &manifests::apiserver_kubelet_binding())
            .await?;
        self.start_component("kube-controller-manager", &pki)?;
        self.start_component("kube-scheduler", &pki)?;
        phase("control plane", started);

        let started = Instant::now();
        self.start_component("containerd", &pki)?;
        let store = self.node_store();
        self.wait(
            "containerd to answer",
            Duration::from_secs(30),
            &["containerd"],
            || {
                let store = store.clone();
                async move {
                    store
                        .list()
                        .await
                        .map(|_| None)
                        .map_err(|error| error.to_string())
                }
            },
        )
        .await?;
        let docker = crate::docker::connect().await?;
        let work = self.layout.root.join("images");
        let sources = write_image_sources(&work.join("src"))?;
        let go = |name: &str| ImageSpec::go_binary(name, &sources).go_package(format!("./{name}"));
        let pause = component_image(&docker, go("pause")).await?;
        let smoke = component_image(&docker, go("smoke")).await?;
        let coredns = component_image(
            &docker,
            ImageSpec::static_binary("coredns", &self.binaries.coredns),
        )
        .await?;
        let images = [pause.clone(), smoke.clone(), coredns.clone()];
        Loader::new(docker)
            .load(&images, std::slice::from_ref(&store))
            .await
            .map_err(|error| LocalError::Load(Box::new(error)))?;
        store
            .tag(pause.reference().as_str(), PAUSE_IMAGE)
            .await
            .map_err(|error| LocalError::Host {
                command: format!("ctr images tag {} {PAUSE_IMAGE}", pause.reference()),
                stderr: error.to_string(),
            })?;
        phase("runtime and images", started);

        let started = Instant::now();
        self.start_component("kubelet", &pki)?;
        let nodes: Api<Node> = Api::all(client.clone());
        let node_name = self.node_name.clone();
        self.wait(
            "the node to be Ready",
            Duration::from_secs(120),
            &["containerd", "kubelet"],
            || {
                let nodes = nodes.clone();
                let node_name = node_name.clone();
                async move {
                    let node = nodes
                        .get_opt(&node_name)
                        .await
                        .map_err(|error| error.to_string())?;
                    let ready = node.as_ref().and_then(|node| {
                        node.status
                            .as_ref()?
                            .conditions
                            .as_ref()?
                            .iter()
                            .find(|c| c.type_ == "Ready")
                            .cloned()
                    });
                    match ready {
                        Some(condition) if condition.status == "True" => Ok(None),
                        Some(condition) => Err(format!(
                            "Ready={}: {}",
                            condition.status,
                            condition.message.unwrap_or_default()
                        )),
                        None => Err("the node has not registered".to_owned()),
                    }
                }
            },
        )
        .await?;
        self.start_component("kube-proxy", &pki)?;
        phase("node ready", started);

        let started = Instant::now();
        self.apply(&client, &manifests::storage_class()).await?;
        for object in manifests::coredns(&self.network, coredns.reference().as_str()) {
            self.apply(&client, &object).await?;
        }
        self.wait_deployment(&client, "kube-system", "coredns", Duration::from_secs(120))
            .await?;
        phase("cluster DNS", started);

        let started = Instant::now();
        for object in manifests::smoke(smoke.reference().as_str()) {
            self.apply(&client, &object).await?;
        }
        self.wait_deployment(
            &client,
            manifests::SMOKE_NAMESPACE,
            "smoke",
            Duration::from_secs(120),
        )
        .await?;
        let job = format!("probe-{}", std::process::id());
        self.apply(
            &client,
            &manifests::smoke_probe(smoke.reference().as_str(), &job),
        )
        .await?;
        let jobs: Api<Job> = Api::namespaced(client.clone(), manifests::SMOKE_NAMESPACE);
        self.wait(
            "the smoke Service to answer by its DNS name",
            Duration::from_secs(120),
            COMPONENTS,
            || {
                let jobs = jobs.clone();
                let job = job.clone();
                async move {
                    let found = jobs.get(&job).await.map_err(|error| error.to_string())?;
                    let status = found.status.unwrap_or_default();
                    match (status.succeeded.unwrap_or(0), status.failed.unwrap_or(0)) {
                        (succeeded, _) if succeeded > 0 => Ok(None),
                        (_, failed) => Err(format!("{failed} failed attempts")),
                    }
                }
            },
        )
        .await?;
        phase("smoke workload", started);
        let digest = self.digest_path();
        std::fs::write(&digest, self.configuration_digest()).map_err(|source| {
            LocalError::Write {
                path: digest,
                source,
            }
        })?;
        Ok(phases)
    }

    /// Stops exactly the recorded processes, removes pod sandboxes, CNI
    /// state, kube-proxy's rules, kubelet mounts, the node interface and
    /// the cluster's data.
    /// Nothing running is not an error. Returns the components stopped;
    /// what could not be removed is logged as a warning naming it
    /// ([`LocalCluster::down_with_report`] returns it).
    pub async fn down(&self) -> Result<Vec<String>, LocalError> {
        let report = self.down_with_report().await?;
        for left in &report.left {
            tracing::warn!(cluster = %self.name, "`down` left {left}");
        }
        Ok(report.stopped)
    }

    /// [`LocalCluster::down`], with what it could not remove.
    pub async fn down_with_report(&self) -> Result<DownReport, LocalError> {
        let _users = crate::cluster::lock::delete_cluster_lock("local", &self.name).await?;
        let _lock = self
            .lifecycle_lock(&format!("taking cluster `{}` down", self.name))
            .await?;
        let grace = Duration::from_secs(10);
        let mut stopped = Vec::new();
        let mut left = Vec::new();
        for name in ["kube-proxy", "kubelet"] {
            if self.supervisor.stop(name, grace)? {
                stopped.push(name.to_owned());
            }
        }
        if self
            .supervisor
            .record("containerd")
            .as_ref()
            .is_some_and(Supervisor::is_running)
        {
            self.remove_pod_containers().await;
        }
        for name in COMPONENTS.iter().rev() {
            if self.supervisor.stop(name, grace)? {
                stopped.push((*name).to_owned());
            }
        }
        stopped.extend(self.stop_unrecorded(grace)?);
        self.kill_leftover_shims();
        let kube_proxy = self.binaries.kubernetes("kube-proxy");
        if kube_proxy.is_file() {
            let cleaned = std::process::Command::new(&kube_proxy)
                .arg("--cleanup")
                .output();
            if !cleaned.as_ref().is_ok_and(|output| output.status.success()) {
                left.push("kube-proxy's rules (`kube-proxy --cleanup` failed)".to_owned());
            }
        }
        remove_kubernetes_chains();
        unmount_below(&self.layout.root);
        unmount_below(&self.layout.run);
        for netns in cni_network_namespaces() {
            if let Err(error) = run_host(&["ip", "netns", "delete", &netns]) {
                left.push(format!("network namespace `{netns}` ({error})"));
            }
        }
        for link in ["kindling-br0", self.network.interface.as_str()] {
            if Path::new("/sys/class/net").join(link).exists()
                && let Err(error) = run_host(&["ip", "link", "delete", link])
            {
                left.push(format!("network interface `{link}` ({error})"));
            }
        }
        remove_kubepods_cgroups();
        self.restore_sysctls();
        // The next `up` is a new cluster (as after `kind delete`): no stale
        // objects or statuses. Certificates and the image store are kept.
        // The volumes of a cluster that no longer exists go too.
        for dir in [
            self.layout.run.clone(),
            self.layout.etcd_data(),
            self.layout.kubelet_root(),
            PathBuf::from(manifests::HOSTPATH_VOLUMES),
        ] {
            match std::fs::remove_dir_all(&dir) {
                Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                    left.push(format!("`{}` ({error})", dir.display()));
                }
                _ => {}
            }
        }
        Ok(DownReport { stopped, left })
    }

    /// Stops this cluster's components that run without a record (their
    /// recording process was killed during `up`): processes of the
    /// component binaries whose command line names this cluster's state
    /// directory. SIGTERM, then SIGKILL after `grace`. Returns what it stopped.
    fn stop_unrecorded(&self, grace: Duration) -> Result<Vec<String>, LocalError> {
        let mut programs: Vec<(String, PathBuf)> = super::components::KUBERNETES_BINARIES
            .iter()
            .map(|name| ((*name).to_owned(), self.binaries.kubernetes(name)))
            .collect();
        programs.push(("etcd".to_owned(), self.binaries.etcd.clone()));
        programs.push(("containerd".to_owned(), self.containerd.clone()));
        let dirs = [self.layout.root.clone(), self.layout.run.clone()];
        let mut stopped = Vec::new();
        for (component, pid) in super::process::unrecorded(&programs, &dirs) {
            if !super::process::terminate(pid, grace) {
                return Err(LocalError::Unstoppable {
                    cluster: self.name.clone(),
                    component,
                    pid,
                });
            }
            eprintln!(
                "kindling: stopped {component} (pid {pid}) of cluster `{}`, left running without a record",
                self.name
            );
            stopped.push(format!("{component} (unrecorded)"));
        }
        Ok(stopped)
    }

    /// containerd 1.6 shims outlive a containerd that stops before its
    /// tasks: find ours by the socket they were started for.
    fn kill_leftover_shims(&self) {
        for pid in self.shim_processes() {
            if let Some(pid) = rustix::process::Pid::from_raw(pid as i32) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            }
        }
    }

    fn restore_sysctls(&self) {
        let saved = self.layout.saved_sysctls();
        let Ok(bytes) = std::fs::read(&saved) else {
            return;
        };
        let values: std::collections::BTreeMap<String, String> =
            serde_json::from_slice(&bytes).unwrap_or_default();
        for (key, value) in values {
            if !value.is_empty() {
                let _ = write_sysctl(&key, &value);
            }
        }
        let _ = std::fs::remove_file(saved);
    }

    /// Kills and deletes every container of the CRI namespace, so no shim outlives containerd.
    async fn remove_pod_containers(&self) {
        let store_ctr = |args: &[&str]| {
            let mut command = tokio::process::Command::new(&self.ctr);
            command
                .arg("--address")
                .arg(self.layout.containerd_socket())
                .arg("--namespace=k8s.io")
                .args(args);
            command
        };
        let Ok(listed) = store_ctr(&["tasks", "ls", "-q"]).output().await else {
            return;
        };
        for task in String::from_utf8_lossy(&listed.stdout).split_whitespace() {
            let _ = store_ctr(&["tasks", "kill", "-s", "SIGKILL", task])
                .output()
                .await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        for task in String::from_utf8_lossy(&listed.stdout).split_whitespace() {
            let _ = store_ctr(&["tasks", "delete", "-f", task]).output().await;
        }
        if let Ok(containers) = store_ctr(&["containers", "ls", "-q"]).output().await {
            for container in String::from_utf8_lossy(&containers.stdout).split_whitespace() {
                let _ = store_ctr(&["containers", "delete", container])
                    .output()
                    .await;
            }
        }
    }

    /// Healthy: the API server is ready and the node is Ready.
    pub async fn healthy(&self) -> Result<(), LocalError> {
        let client = self.client().await?;
        let node = Api::<Node>::all(client)
            .get(&self.node_name)
            .await
            .map_err(|source| LocalError::Kube {
                action: format!("read node `{}`", self.node_name),
                source,
            })?;
        let ready = node
            .status
            .and_then(|status| status.conditions)
            .is_some_and(|conditions| {
                conditions
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True")
            });
        if ready {
            Ok(())
        } else {
            Err(LocalError::Timeout {
                what: "the node to be Ready".to_owned(),
                after: Duration::ZERO,
                last: "not Ready".to_owned(),
            })
        }
    }

    fn prepare_host(&self) -> Result<(), LocalError> {
        let interface = &self.network.interface;
        if run_host(&["ip", "link", "show", interface]).is_err()
            && run_host(&["ip", "link", "add", interface, "type", "dummy"]).is_err()
        {
            // Kernels without CONFIG_DUMMY: an ifb link holds a local address just as well.
            run_host(&["ip", "link", "add", interface, "type", "ifb"])?;
        }
        run_host(&[
            "ip",
            "addr",
            "replace",
            &format!("{}/32", self.network.node_ip),
            "dev",
            interface,
        ])?;
        run_host(&["ip", "link", "set", interface, "up"])?;
        // Cluster addresses must never follow the default route off the
        // machine: service addresses without kube-proxy rules yet, and pod
        // addresses before the CNI bridge exists, go to the node's own link.
        run_host(&[
            "ip",
            "route",
            "replace",
            &self.network.service_cidr,
            "dev",
            interface,
        ])?;
        run_host(&[
            "ip",
            "route",
            "replace",
            &self.network.pod_cidr,
            "dev",
            interface,
            "metric",
            "1000",
        ])?;
        // The kubelet sets these itself; record the host's values first so
        // `down` can give them back.
        let saved = self.layout.saved_sysctls();
        if !saved.exists() {
            let values: std::collections::BTreeMap<&str, String> = HOST_SYSCTLS
                .iter()
                .map(|(key, _)| {
                    (
                        *key,
                        std::fs::read_to_string(Path::new("/proc/sys").join(key))
                            .unwrap_or_default()
                            .trim()
                            .to_owned(),
                    )
                })
                .collect();
            std::fs::create_dir_all(&self.layout.root).map_err(|source| LocalError::Write {
                path: self.layout.root.clone(),
                source,
            })?;
            std::fs::write(
                &saved,
                serde_json::to_vec_pretty(&values).expect("map serialises"),
            )
            .map_err(|source| LocalError::Write {
                path: saved.clone(),
                source,
            })?;
        }
        for (key, value) in HOST_SYSCTLS {
            write_sysctl(key, value)?;
        }
        Ok(())
    }

    /// Each component's program and arguments, in start order.
    fn component_commands(&self, pki: &PkiFiles) -> Vec<(&'static str, PathBuf, Vec<String>)> {
        vec![
            (
                "etcd",
                self.binaries.etcd.clone(),
                config::etcd_args(&self.layout, &self.ports),
            ),
            (
                "kube-apiserver",
                self.binaries.kubernetes("kube-apiserver"),
                config::apiserver_args(&self.layout, &self.network, &self.ports, pki),
            ),
            (
                "kube-controller-manager",
                self.binaries.kubernetes("kube-controller-manager"),
                config::controller_manager_args(&self.layout, &self.network, &self.ports, pki),
            ),
            (
                "kube-scheduler",
                self.binaries.kubernetes("kube-scheduler"),
                config::scheduler_args(&self.layout, &self.ports),
            ),
            (
                "containerd",
                self.containerd.clone(),
                vec![
                    "--config".to_owned(),
                    self.layout.containerd_config().display().to_string(),
                ],
            ),
            (
                "kubelet",
                self.binaries.kubernetes("kubelet"),
                config::kubelet_args(&self.layout, &self.network, &self.node_name),
            ),
            (
                "kube-proxy",
                self.binaries.kubernetes("kube-proxy"),
                vec![format!(
                    "--config={}",
                    self.layout.kube_proxy_config().display()
                )],
            ),
        ]
    }

    /// A digest of what the components run with (their command lines and
    /// configuration files): a running cluster whose recorded digest
    /// differs (kindling changed how it runs them) is restarted.
    fn configuration_digest(&self) -> String {
        use sha2::{Digest as _, Sha256};
        let pki = PkiFiles::under(&self.layout.pki());
        let mut hasher = Sha256::new();
        for (name, program, args) in self.component_commands(&pki) {
            hasher.update(name.as_bytes());
            hasher.update(program.display().to_string().as_bytes());
            for arg in args {
                hasher.update([0]);
                hasher.update(arg.as_bytes());
            }
        }
        for (path, contents) in self.config_files(&pki) {
            hasher.update(path.display().to_string().as_bytes());
            hasher.update(contents.as_bytes());
        }
        hex::encode(hasher.finalize())
    }

    fn digest_path(&self) -> PathBuf {
        self.layout.root.join("configuration-digest")
    }

    /// Starts component `name` as [`LocalCluster::component_commands`] says.
    fn start_component(&self, name: &str, pki: &PkiFiles) -> Result<(), LocalError> {
        let (_, program, args) = self
            .component_commands(pki)
            .into_iter()
            .find(|(component, _, _)| *component == name)
            .expect("a known component");
        self.start(name, &program, args)
    }

    fn config_files(&self, pki: &PkiFiles) -> Vec<(PathBuf, String)> {
        // Clients on the host use loopback: an address that only exists while
        // the cluster's link is up could otherwise route off the machine.
        let server = format!("https://127.0.0.1:{}", self.ports.apiserver);
        let kubeconfigs = [
            ("admin", "kindling-admin", &pki.admin),
            (
                "controller-manager",
                "system:kube-controller-manager",
                &pki.controller_manager,
            ),
            ("scheduler", "system:kube-scheduler", &pki.scheduler),
            ("kube-proxy", "system:kube-proxy", &pki.kube_proxy),
            ("kubelet", "kubelet", &pki.kubelet_client),
        ];
        let mut files: Vec<(PathBuf, String)> = kubeconfigs
            .iter()
            .map(|(file, user, pair)| {
                (
                    self.layout.kubeconfig(file),
                    pki::kubeconfig(&self.name, &server, &pki.ca.cert, user, pair),
                )
            })
            .collect();
        files.extend([
            (
                self.layout.containerd_config(),
                config::containerd_config(&self.layout, &self.cni_bin_dir),
            ),
            (
                self.layout.cni_conf_dir().join("10-kindling.conflist"),
                config::cni_conflist(&self.layout, &self.network),
            ),
            (
                self.layout.kubelet_config(),
                config::kubelet_config(&self.layout, &self.network, &self.ports, pki),
            ),
            (
                self.layout.kube_proxy_config(),
                config::kube_proxy_config(
                    &self.layout,
                    &self.network,
                    &self.ports,
                    &self.node_name,
                ),
            ),
            (
                self.layout.scheduler_config(),
                config::scheduler_config(&self.layout),
            ),
            (
                self.layout.resolv_conf(),
                format!("nameserver {}\n", self.network.node_ip),
            ),
        ]);
        files
    }

    fn write_configs(&self, pki: &PkiFiles) -> Result<(), LocalError> {
        for (path, contents) in self.config_files(pki) {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(|source| LocalError::Write {
                    path: parent.to_owned(),
                    source,
                })?;
            }
            std::fs::write(&path, contents).map_err(|source| LocalError::Write { path, source })?;
        }
        Ok(())
    }

    fn start(&self, name: &str, program: &Path, args: Vec<String>) -> Result<(), LocalError> {
        self.supervisor.start(&ProcessSpec {
            name: name.to_owned(),
            program: program.to_owned(),
            args,
        })?;
        Ok(())
    }

    async fn client(&self) -> Result<Client, LocalError> {
        let kube_error = |action: &str| {
            let action = action.to_owned();
            move |source| LocalError::Kube { action, source }
        };
        let mut config = crate::kubeconfig::config(&self.kubeconfig(), None)
            .await
            .map_err(|error| LocalError::Kubeconfig(Box::new(error)))?;
        // Always loopback, whatever an older kubeconfig says: the node's
        // address routes off the machine once its link is gone.
        config.cluster_url = format!("https://127.0.0.1:{}", self.ports.apiserver)
            .parse()
            .expect("a loopback URL parses");
        Client::try_from(config).map_err(kube_error("create a Kubernetes client"))
    }

    /// Server-side apply of one object (field manager `kindling`).
    async fn apply(&self, client: &Client, object: &serde_json::Value) -> Result<(), LocalError> {
        let object: DynamicObject =
            serde_json::from_value(object.clone()).expect("manifests are objects");
        let types = object.types.clone().expect("manifests have types");
        let (group, version) = match types.api_version.split_once('/') {
            Some((group, version)) => (group.to_owned(), version.to_owned()),
            None => (String::new(), types.api_version.clone()),
        };
        let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(&group, &version, &types.kind));
        let name = object.metadata.name.clone().expect("manifests are named");
        let api: Api<DynamicObject> = match object.metadata.namespace.as_deref() {
            Some(namespace) => Api::namespaced_with(client.clone(), namespace, &resource),
            None => Api::all_with(client.clone(), &resource),
        };
        api.patch(
            &name,
            &PatchParams::apply("kindling").force(),
            &Patch::Apply(&object),
        )
        .await
        .map_err(|source| LocalError::Kube {
            action: format!("apply {} `{name}`", types.kind),
            source,
        })?;
        Ok(())
    }

    async fn wait_deployment(
        &self,
        client: &Client,
        namespace: &str,
        name: &str,
        timeout: Duration,
    ) -> Result<(), LocalError> {
        let deployments: Api<k8s_openapi::api::apps::v1::Deployment> =
            Api::namespaced(client.clone(), namespace);
        let what = format!("Deployment `{namespace}/{name}` to be available");
        self.wait(&what, timeout, COMPONENTS, || {
            let deployments = deployments.clone();
            async move {
                let found = deployments
                    .get(name)
                    .await
                    .map_err(|error| error.to_string())?;
                let status = found.status.unwrap_or_default();
                if status.available_replicas.unwrap_or(0) >= 1 {
                    Ok(None)
                } else {
                    Err(format!(
                        "{} ready of {} replicas",
                        status.ready_replicas.unwrap_or(0),
                        status.replicas.unwrap_or(0)
                    ))
                }
            }
        })
        .await
    }

    /// Polls `check` until it returns `Ok`, failing at once if one of
    /// `components` exits, and at `timeout` with the last state seen.
    async fn wait<F, Fut>(
        &self,
        what: &str,
        timeout: Duration,
        components: &[&str],
        check: F,
    ) -> Result<(), LocalError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<Option<()>, String>>,
    {
        let deadline = Instant::now() + timeout;
        let mut last;
        loop {
            for component in components {
                if self.supervisor.record(component).is_some() {
                    self.supervisor.ensure_running(component, LOG_TAIL)?;
                }
            }
            match check().await {
                Ok(_) => return Ok(()),
                Err(seen) => last = seen,
            }
            if Instant::now() >= deadline {
                return Err(LocalError::Timeout {
                    what: what.to_owned(),
                    after: timeout,
                    last,
                });
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

impl crate::cluster::Provider for LocalCluster {
    fn kind(&self) -> &'static str {
        "local"
    }

    fn spec(&self) -> crate::cluster::ProviderSpec {
        crate::cluster::ProviderSpec::Local {
            cluster: self.name.clone(),
            state_root: self.state_root.clone(),
            cache: self.cache.clone(),
        }
    }

    fn requirement(&self) -> crate::Requirement {
        let binaries = self.binaries.clone();
        let cni = self.cni_bin_dir.clone();
        crate::Requirement::all(
            "the local provider",
            vec![
                crate::Requirement::root(),
                crate::Requirement::docker(),
                crate::Requirement::new("the local cluster's components", move || {
                    match binaries.missing() {
                        Some(path) if crate::requirement::find_program("go").is_none() => {
                            Err(format!(
                                "`{}` is not built and Go is not installed to build it: install Go (https://go.dev/dl)",
                                path.display()
                            ))
                        }
                        _ => Ok(()),
                    }
                }),
                crate::Requirement::new("Debian's runtime packages", move || {
                    let files = super::packages::runtime_files(&cni);
                    let Some((path, packages)) = crate::apt::missing(&files) else {
                        return Ok(());
                    };
                    crate::apt::can_install(crate::apt::InstallPolicy::from_env()).map_err(
                        |reason| {
                            crate::apt::PackageError::Missing {
                                path,
                                packages,
                                reason,
                            }
                            .to_string()
                        },
                    )
                }),
            ],
        )
    }

    fn cluster(&self) -> &str {
        &self.name
    }

    fn ensure(
        &self,
    ) -> crate::setup::BoxFuture<Result<crate::cluster::ClusterInfo, crate::cluster::ProviderError>>
    {
        let cluster = self.clone();
        Box::pin(async move {
            let phases = cluster
                .up()
                .await
                .map_err(|error| cluster.provider_error("bring the cluster up", error))?;
            Ok(crate::cluster::ClusterInfo {
                name: cluster.name.clone(),
                kubeconfig: cluster.kubeconfig(),
                context: cluster.name.clone(),
                fingerprint: format!("local {}", component_versions()),
                created: !phases.iter().any(|(phase, _)| phase == ALREADY_UP),
            })
        })
    }

    fn routes_service_addresses(&self) -> bool {
        true
    }

    fn node_stores(
        &self,
    ) -> crate::setup::BoxFuture<Result<Vec<NodeStore>, crate::cluster::ProviderError>> {
        let store = self.node_store();
        Box::pin(async move { Ok(vec![store]) })
    }

    fn delete(&self) -> crate::setup::BoxFuture<Result<(), crate::cluster::ProviderError>> {
        let cluster = self.clone();
        Box::pin(async move {
            cluster
                .down()
                .await
                .map(drop)
                .map_err(|error| cluster.provider_error("take the cluster down", error))
        })
    }

    fn collect_logs(
        &self,
        dir: &Path,
    ) -> crate::setup::BoxFuture<Result<(), crate::cluster::ProviderError>> {
        let cluster = self.clone();
        let dir = dir.to_owned();
        Box::pin(async move {
            let logs = cluster.layout.root.join("logs");
            let copy = || -> std::io::Result<()> {
                std::fs::create_dir_all(&dir)?;
                for entry in std::fs::read_dir(&logs)?.flatten() {
                    std::fs::copy(entry.path(), dir.join(entry.file_name()))?;
                }
                Ok(())
            };
            copy().map_err(|error| {
                cluster.provider_error(
                    "copy the component logs",
                    LocalError::Write {
                        path: dir.clone(),
                        source: error,
                    },
                )
            })
        })
    }

    fn healthy(&self) -> crate::setup::BoxFuture<Result<(), crate::cluster::ProviderError>> {
        let cluster = self.clone();
        Box::pin(async move {
            cluster
                .healthy()
                .await
                .map_err(|error| cluster.provider_error("check the cluster", error))
        })
    }

    fn deliver(
        &self,
        docker: bollard::Docker,
        images: Vec<crate::image::ImageRef>,
    ) -> crate::setup::BoxFuture<Result<crate::cluster::Delivered, crate::cluster::ProviderError>>
    {
        let store = self.node_store();
        let name = self.name.clone();
        Box::pin(async move {
            crate::image::Loader::new(docker)
                .load(&images, &[store])
                .await
                .map_err(|error| crate::cluster::ProviderError {
                    provider: "local".to_owned(),
                    cluster: name,
                    action: "load the images into the node".to_owned(),
                    source: Box::new(error),
                })?;
            Ok(crate::cluster::Delivered {
                images,
                pull_policy: crate::cluster::PullPolicy::Never,
            })
        })
    }
}

impl LocalCluster {
    fn provider_error(&self, action: &str, error: LocalError) -> crate::cluster::ProviderError {
        crate::cluster::ProviderError {
            provider: "local".to_owned(),
            cluster: self.name.clone(),
            action: action.to_owned(),
            source: Box::new(error),
        }
    }
}

fn write_sysctl(key: &str, value: &str) -> Result<(), LocalError> {
    let path = Path::new("/proc/sys").join(key);
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    if current.trim() != value {
        std::fs::write(&path, value).map_err(|source| LocalError::Write { path, source })?;
    }
    Ok(())
}

fn run_host(argv: &[&str]) -> Result<String, LocalError> {
    let output = std::process::Command::new(argv[0])
        .args(&argv[1..])
        .output()
        .map_err(|error| LocalError::Host {
            command: argv.join(" "),
            stderr: error.to_string(),
        })?;
    if !output.status.success() {
        return Err(LocalError::Host {
            command: argv.join(" "),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Unmounts everything mounted below `root` (kubelet volumes), deepest first.
fn unmount_below(root: &Path) {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let root = root.display().to_string();
    let mut targets: Vec<&str> = mounts
        .lines()
        .filter_map(|line| line.split_whitespace().nth(1))
        .filter(|target| target.starts_with(&root))
        .collect();
    targets.sort_by_key(|target| std::cmp::Reverse(target.len()));
    for target in targets {
        let _ = std::process::Command::new("umount")
            .args(["-l", target])
            .output();
    }
}

/// Removes the `KUBE-*` and `CNI-*` chains (and the rules jumping to them)
/// that kube-proxy, the kubelet and the CNI plugins created, in both
/// address families: `kube-proxy --cleanup` leaves the kubelet's.
fn remove_kubernetes_chains() {
    for family in ["iptables", "ip6tables"] {
        for table in ["nat", "filter", "mangle"] {
            let Ok(saved) = run_host(&[&format!("{family}-save"), "-t", table]) else {
                continue;
            };
            let ours = |chain: &str| chain.starts_with("KUBE-") || chain.starts_with("CNI-");
            for rule in saved.lines().filter_map(|line| line.strip_prefix("-A ")) {
                let mut words = rule.split_whitespace();
                let chain = words.next().unwrap_or_default();
                let jumps_to_ours = rule.split(" -j ").nth(1).is_some_and(|target| {
                    ours(target.split_whitespace().next().unwrap_or_default())
                });
                if jumps_to_ours && !ours(chain) {
                    let words = rule_words(rule);
                    let mut argv = vec![family, "-t", table, "-D"];
                    argv.extend(words.iter().map(String::as_str));
                    let _ = run_host(&argv);
                }
            }
            let chains: Vec<&str> = saved
                .lines()
                .filter_map(|line| line.strip_prefix(':')?.split_whitespace().next())
                .filter(|chain| ours(chain))
                .collect();
            for chain in &chains {
                let _ = run_host(&[family, "-t", table, "-F", chain]);
            }
            for chain in &chains {
                let _ = run_host(&[family, "-t", table, "-X", chain]);
            }
        }
    }
}

/// Splits an `iptables-save` rule into arguments: words, and double-quoted
/// strings with `\"` escapes (comments).
fn rule_words(rule: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut in_word = false;
    let mut chars = rule.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' if quoted => {
                if let Some(next) = chars.next() {
                    current.push(next);
                }
            }
            '"' => {
                quoted = !quoted;
                in_word = true;
            }
            c if c.is_whitespace() && !quoted => {
                if in_word {
                    words.push(std::mem::take(&mut current));
                    in_word = false;
                }
            }
            c => {
                current.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(current);
    }
    words
}

/// Removes the (empty) `kubepods` cgroups the kubelet created.
fn remove_kubepods_cgroups() {
    let Ok(hierarchies) = std::fs::read_dir("/sys/fs/cgroup") else {
        return;
    };
    for hierarchy in hierarchies.flatten() {
        let root = hierarchy.path().join("kubepods");
        if !root.is_dir() {
            continue;
        }
        let mut directories = Vec::new();
        let mut pending = vec![root];
        while let Some(directory) = pending.pop() {
            if let Ok(children) = std::fs::read_dir(&directory) {
                pending.extend(
                    children
                        .flatten()
                        .map(|child| child.path())
                        .filter(|path| path.is_dir()),
                );
            }
            directories.push(directory);
        }
        for directory in directories.into_iter().rev() {
            let _ = std::fs::remove_dir(directory);
        }
    }
}

/// Network namespaces the CRI plugin created for pod sandboxes.
fn cni_network_namespaces() -> Vec<String> {
    std::fs::read_dir("/var/run/netns")
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|entry| entry.file_name().into_string().ok())
                .filter(|name| name.starts_with("cni-"))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_provider_copies_component_logs_and_names_its_node_store() {
        use crate::cluster::Provider as _;
        let home = tempfile::tempdir().unwrap();
        let cluster = LocalCluster::new(
            "logs",
            home.path(),
            ComponentBinaries::in_cache(home.path()),
        );
        let logs = cluster.layout.root.join("logs");
        std::fs::create_dir_all(&logs).unwrap();
        std::fs::write(logs.join("kubelet.log"), "E0101 something failed\n").unwrap();
        let target = home.path().join("artifacts");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(cluster.collect_logs(&target)).unwrap();
        assert_eq!(
            std::fs::read_to_string(target.join("kubelet.log")).unwrap(),
            "E0101 something failed\n"
        );
        let stores = runtime.block_on(cluster.node_stores()).unwrap();
        assert_eq!(stores.len(), 1);
        assert_eq!(stores[0].name(), "logs-node");
        assert_eq!((cluster.kind(), cluster.cluster()), ("local", "logs"));
    }

    #[test]
    fn iptables_rules_split_like_a_shell() {
        let rule = r#"POSTROUTING -s 10.213.0.2/32 -m comment --comment "name: \"kindling\" id: \"2d38\"" -j CNI-562c"#;
        assert_eq!(
            rule_words(rule),
            [
                "POSTROUTING",
                "-s",
                "10.213.0.2/32",
                "-m",
                "comment",
                "--comment",
                "name: \"kindling\" id: \"2d38\"",
                "-j",
                "CNI-562c"
            ]
        );
        assert_eq!(
            rule_words(
                r#"FORWARD -m comment --comment "CNI firewall plugin rules" -j CNI-FORWARD"#
            )
            .len(),
            7
        );
    }
}
