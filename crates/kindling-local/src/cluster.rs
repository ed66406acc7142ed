//! A local cluster: its name, files, ports and components, how each
//! component is started and configured, and its health. Bringing it up is
//! `bootstrap`, taking it down `teardown`.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use kube::Client;
use kube::api::Api;

use super::config::{self, LocalLayout, LocalPorts};
use super::network::{LocalNetwork, NetworkRanges};
use super::packages::{self, RuntimePaths};
use super::ports::PortInUse;
use super::process::{ProcessError, ProcessSpec, Supervisor};
use crate::pki::{self, PkiError, PkiFiles, PkiSpec};
use kindling_core::cluster::ClusterName;
use kindling_core::cluster::components::ComponentBinaries;
use kindling_core::cluster::components::images::ComponentImageError;
use kindling_core::image::LoadError;
use kindling_core::node::{LocalProcess, NodeStore};

/// Components in start order; stopped in reverse.
pub(super) const COMPONENTS: &[&str] = &[
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "containerd",
    "kubelet",
    "kube-proxy",
];

/// Components started again when they exit, as a kubelet restarts a
/// crashed control-plane pod: by design they exit when the API server or
/// etcd answers too slowly (kube-controller-manager exits on an
/// `etcdserver: request timed out` while it creates its clients), which a
/// loaded two-core machine can cause for seconds. The others' exit is
/// reported at once.
pub const RESTARTED_ON_EXIT: &[&str] = &["kube-controller-manager", "kube-scheduler", "kube-proxy"];

/// How many times a [`RESTARTED_ON_EXIT`] component is started again after
/// `up` last started the cluster's components; past it a later `up` starts
/// them all again, and an exit during `up` fails it with the log.
pub const RESTART_LIMIT: u32 = 3;

/// Lines of a component's log shown when it exits.
pub(super) const LOG_TAIL: usize = 30;

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
    /// Building the pinned components failed, or Go is missing to build them.
    #[error(transparent)]
    Components(#[from] kindling_core::cluster::components::ComponentBuildError),
    /// The cluster's admin kubeconfig could not give a client.
    #[error(transparent)]
    Kubeconfig(Box<kindling_core::kubeconfig::KubeconfigError>),
    /// Runtime pieces (containerd, runc, the CNI plugins, iptables) are
    /// missing and were not, or could not be, installed.
    #[error(transparent)]
    Packages(#[from] kindling_core::apt::PackageError),
    /// `prepare` (and so `up`) ran as a user other than root.
    #[error("the local provider runs Kubernetes components as root; run it as root")]
    NotRoot,
    /// Taking the lock that guards bringing the cluster up or taking it
    /// down failed.
    #[error(transparent)]
    Lock(#[from] kindling_core::cluster::lock::LockError),
    /// A component process left running without a record (by an
    /// interrupted `up`) did not end after SIGTERM and SIGKILL.
    #[error(
        "{component} (pid {pid}) of cluster `{cluster}` was left running without a record and does not stop: kill it (`kill -9 {pid}`)"
    )]
    Unstoppable {
        /// The cluster's name.
        cluster: String,
        /// The component the process runs, e.g. `kubelet`.
        component: String,
        /// The process's id.
        pid: u32,
    },
    /// A port a component listens on is taken.
    #[error(transparent)]
    PortInUse(#[from] PortInUse),
    /// A range variable (`KINDLING_LOCAL_*`) is invalid, or the ranges overlap.
    #[error(transparent)]
    NetworkRange(#[from] super::network::NetworkRangeError),
    /// A route of the host overlaps one of the cluster's ranges; nothing
    /// was changed.
    #[error(transparent)]
    RangeCollision(Box<super::network::RangeCollision>),
    /// Another Kubernetes (kube-proxy, a kubelet) manages this host's
    /// iptables, nftables or IPVS: the cluster's kube-proxy would take its
    /// rules over. Nothing was changed.
    #[error(
        "this host has kube-proxy's or a kubelet's objects that this local cluster did not make ({}): another Kubernetes manages this host's packet filter, and the local cluster's kube-proxy would take them over; stop it and remove them, or use the kind provider (KINDLING_PROVIDER=kind). Nothing was changed",
        objects.join(", ")
    )]
    ForeignKubernetes {
        /// Each object, e.g. `iptables nat KUBE-SERVICES`.
        objects: Vec<String>,
    },
    /// The node's link name exists and this cluster did not make it.
    #[error(
        "network interface `{link}` exists and this local cluster did not make it: remove it (`ip link delete {link}`) if it is left from a crashed run, or give the cluster another name. Nothing was changed"
    )]
    ForeignLink {
        /// The link.
        link: String,
    },
    /// The host-path provisioner's fixed folder exists and is not this
    /// cluster's link to its private volumes folder.
    #[error(
        "`{}` exists and is not this local cluster's ({found}): the volumes of PersistentVolumeClaims would be made in it, where another user could read or swap them; remove it, or take down the cluster that made it. Nothing was changed",
        path.display()
    )]
    ForeignVolumes {
        /// The path, `/tmp/hostpath_pv`.
        path: PathBuf,
        /// What is there.
        found: String,
    },
    /// A component that exited was not started again: its binary is not
    /// the one built for it.
    #[error(
        "{component} exited and was not started again: its binary changed since it was built; `kindling down` then `kindling up` builds it again"
    )]
    Unverified {
        /// The component.
        component: String,
        /// What is wrong with its binary.
        #[source]
        source: kindling_core::cluster::components::Unverified,
    },
    /// The record of what `up` changed on the host could not be read or written.
    #[error(transparent)]
    HostRecord(#[from] super::host_record::HostRecordError),
    /// A command run on the host (`ip`, or tagging the pause image in
    /// the node's containerd) failed or could not start.
    #[error("`{command}` failed: {stderr}")]
    Host {
        /// The command line.
        command: String,
        /// What it wrote to stderr, or why it could not start.
        stderr: String,
    },
    /// A file or folder of the cluster (configuration, digest, saved
    /// sysctls, a kernel setting, copied logs) could not be written.
    #[error("failed to write `{path}`")]
    Write {
        /// The file or folder.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The cluster's certificates could not be generated or written.
    #[error(transparent)]
    Pki(#[from] PkiError),
    /// A component could not be started or stopped, or exited.
    #[error(transparent)]
    Process(#[from] ProcessError),
    /// `healthy` found a component of the cluster not running: the host
    /// restarted, or `down` (or something else) stopped it.
    #[error(
        "`{component}` of this cluster is not running (stopped by `kindling down`, or the host restarted): start the cluster with `kindling up`"
    )]
    NotRunning {
        /// The component's name, e.g. `kube-apiserver`.
        component: String,
    },
    /// `healthy` found the node not Ready.
    #[error("node `{node}` is not Ready")]
    NodeNotReady {
        /// The node's name.
        node: String,
    },
    /// What `up` waited for did not happen in time.
    #[error("{what} did not happen within {}s; last seen: {last}", .after.as_secs())]
    Timeout {
        /// What was waited for, e.g. "the node to be Ready".
        what: String,
        /// How long it was waited for.
        after: Duration,
        /// The last state seen.
        last: String,
    },
    /// A Kubernetes client could not be made, or a request to the API
    /// server failed.
    #[error("failed to {action}")]
    Kube {
        /// What was being done, e.g. "read node `kindling-node`".
        action: String,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
    /// The pause, smoke or CoreDNS image could not be built, or its sources
    /// not written.
    #[error(transparent)]
    Images(#[from] ComponentImageError),
    /// Loading the component images into the node's containerd failed.
    #[error(transparent)]
    Load(Box<LoadError>),
    /// No Docker engine answers to build the component images.
    #[error(transparent)]
    Docker(#[from] kindling_core::docker::DockerUnavailable),
    /// The cluster's own objects (DNS, the smoke workload) were refused.
    #[error("failed to apply {what}")]
    Apply {
        /// Which of the cluster's objects.
        what: String,
        /// The apply's error.
        #[source]
        source: Box<kindling_core::deploy::ApplyError>,
    },
    /// A workload of the cluster's own did not become ready.
    #[error("{what} did not become ready")]
    Wait {
        /// The workload.
        what: String,
        /// Why the wait ended without it ready.
        #[source]
        source: Box<kindling_core::wait::WaitError>,
    },
}

/// The one phase of an `up` that found the cluster running.
pub const ALREADY_UP: &str = "already up";

/// A single-node cluster of upstream components on this host.
#[derive(Debug, Clone)]
pub struct LocalCluster {
    pub(super) name: ClusterName,
    pub(super) state_root: PathBuf,
    pub(super) cache: PathBuf,
    pub(super) node_name: String,
    pub(super) layout: LocalLayout,
    pub(super) network: LocalNetwork,
    pub(super) ports: LocalPorts,
    pub(super) binaries: ComponentBinaries,
    pub(super) cni_bin_dir: PathBuf,
    pub(super) containerd: PathBuf,
    pub(super) ctr: PathBuf,
    pub(super) runc: PathBuf,
    pub(super) iptables: PathBuf,
    pub(super) supervisor: Supervisor,
}

impl LocalCluster {
    /// The cluster's name.
    pub fn name(&self) -> &str {
        self.name.as_str()
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
    /// components in `binaries`. Its runtime pieces (containerd, ctr, runc,
    /// iptables, the CNI plugins) are those found on `PATH` and in the CNI
    /// directories now; those missing are expected where Debian's packages
    /// put them, which is where [`LocalCluster::prepare`] installs them.
    pub fn new(name: &ClusterName, state_root: &Path, binaries: ComponentBinaries) -> Self {
        let runtime = RuntimePaths::find_or_debian(
            &kindling_core::apt::SearchPath::from_env(),
            &packages::default_cni_dirs(),
        );
        let cache = binaries
            .kubernetes_dir
            .parent()
            .and_then(Path::parent)
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let layout = LocalLayout::new(state_root.join(name), Path::new("/run/kindling").join(name));
        LocalCluster {
            name: name.clone(),
            state_root: state_root.to_owned(),
            cache,
            node_name: format!("{name}-node"),
            supervisor: Supervisor::new(layout.root.clone()),
            layout,
            network: LocalNetwork::new(name, &NetworkRanges::default()),
            ports: LocalPorts::default(),
            binaries,
            cni_bin_dir: runtime.cni_bin_dir,
            containerd: runtime.containerd,
            ctr: runtime.ctr,
            runc: runtime.runc,
            iptables: runtime.iptables,
        }
    }

    /// Where its runtime pieces are (found when it was made).
    pub fn runtime_paths(&self) -> RuntimePaths {
        RuntimePaths {
            containerd: self.containerd.clone(),
            ctr: self.ctr.clone(),
            runc: self.runc.clone(),
            iptables: self.iptables.clone(),
            cni_bin_dir: self.cni_bin_dir.clone(),
        }
    }

    /// The cluster `name`, its state in `state_root/<name>`, the components
    /// built into (or found in) `cache`.
    pub fn in_dirs(name: &ClusterName, state_root: &Path, cache: &Path) -> Self {
        LocalCluster::new(name, state_root, ComponentBinaries::in_cache(cache))
    }

    /// The cluster `name` with the default locations: state under
    /// `KINDLING_HOME` (default `~/.local/state/kindling`), binaries in
    /// `KINDLING_CACHE_DIR` (default `~/.cache/kindling`), its ranges from
    /// `KINDLING_LOCAL_NODE_IP`, `KINDLING_LOCAL_POD_CIDR` and
    /// `KINDLING_LOCAL_SERVICE_CIDR` (invalid or overlapping values are an
    /// error naming the variable).
    pub fn with_defaults(name: &ClusterName) -> Result<Self, LocalError> {
        Ok(LocalCluster::in_dirs(
            name,
            &kindling_core::cluster::state_home().join("clusters"),
            &ComponentBinaries::default_cache(),
        )
        .with_ranges(NetworkRanges::from_env()?))
    }

    /// The cluster on `ranges` instead of the default ones.
    pub fn with_ranges(mut self, ranges: NetworkRanges) -> Self {
        self.network = LocalNetwork::new(&self.name, &ranges);
        self
    }

    /// Its addresses and the names of what it adds to the host.
    pub fn network(&self) -> &LocalNetwork {
        &self.network
    }

    /// What `up` needs that it cannot obtain itself, if anything (cheap
    /// checks only): root, a Docker engine, Go when the components are not
    /// built yet, and the runtime pieces unless it may install them.
    pub fn missing_prerequisite(&self) -> Option<String> {
        kindling_core::cluster::Provider::requirement(self)
            .check()
            .err()
    }

    /// Obtains what `up` needs and can get itself: installs the missing
    /// runtime packages ([`LocalCluster::ensure_packages`]) and builds the
    /// pinned components when missing.
    pub async fn prepare(&self) -> Result<(), LocalError> {
        if !rustix::process::geteuid().is_root() {
            return Err(LocalError::NotRoot);
        }
        self.ensure_packages().await?;
        let say = |line: &str| eprintln!("kindling: local cluster `{}`: {line}", self.name);
        kindling_core::cluster::components::ensure_built(&self.cache, &say).await?;
        Ok(())
    }

    /// Installs the runtime pieces missing from this host with apt-get
    /// (as root on Debian, unless `KINDLING_INSTALL=never`), saying what
    /// apt will install, and returns where each piece is; never removes a
    /// package (see [`kindling_core::apt`]).
    pub async fn ensure_packages(&self) -> Result<RuntimePaths, LocalError> {
        let say = |line: &str| eprintln!("kindling: local cluster `{}`: {line}", self.name);
        let found = kindling_core::apt::ensure_installed(
            &packages::runtime_pieces(&packages::default_cni_dirs()),
            &kindling_core::apt::SearchPath::from_env(),
            kindling_core::apt::InstallPolicy::from_env(),
            &self.cache,
            &say,
        )
        .await?;
        Ok(RuntimePaths::from_found(&found).expect("one path per runtime piece"))
    }

    /// The exclusive lock guarding bringing this cluster up and taking it down.
    pub(super) async fn lifecycle_lock(
        &self,
        purpose: &str,
    ) -> Result<kindling_core::cluster::lock::Exclusive, LocalError> {
        Ok(kindling_core::cluster::lock::exclusive(
            &self.state_root.join(format!("{}.lock", self.name)),
            purpose,
            &format!(
                "waiting for local cluster `{}`: another process is bringing it up or taking it down",
                self.name
            ),
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

    pub(super) fn pki_spec(&self) -> PkiSpec {
        PkiSpec {
            node_name: self.node_name.clone(),
            node_ip: IpAddr::V4(self.network.node_ip),
            service_ip: IpAddr::V4(self.network.api_service_ip),
        }
    }

    /// The first component, in start order, that does not run.
    fn first_not_running(&self) -> Option<&'static str> {
        COMPONENTS.iter().copied().find(|name| {
            !self
                .supervisor
                .record(name)
                .as_ref()
                .is_some_and(Supervisor::is_running)
        })
    }

    /// Healthy: every component runs, the API server is ready and the
    /// node is Ready. A component that does not run is named before any
    /// request: after a host restart the cluster's address may be answered
    /// by something else, whose reply would say nothing useful.
    pub async fn healthy(&self) -> Result<(), LocalError> {
        if let Some(component) = self.first_not_running() {
            return Err(LocalError::NotRunning {
                component: component.to_owned(),
            });
        }
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
            Err(LocalError::NodeNotReady {
                node: self.node_name.clone(),
            })
        }
    }

    /// Each component's program and arguments, in start order.
    pub(super) fn component_commands(
        &self,
        pki: &PkiFiles,
    ) -> Vec<(&'static str, PathBuf, Vec<String>)> {
        vec![
            (
                "etcd",
                self.binaries.etcd.clone(),
                config::etcd_args(&self.layout, &self.ports, pki),
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
    pub(super) fn configuration_digest(&self) -> String {
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

    pub(super) fn digest_path(&self) -> PathBuf {
        self.layout.root.join("configuration-digest")
    }

    /// Starts component `name` as [`LocalCluster::component_commands`] says.
    pub(super) fn start_component(&self, name: &str, pki: &PkiFiles) -> Result<(), LocalError> {
        let (_, program, args) = self
            .component_commands(pki)
            .into_iter()
            .find(|(component, _, _)| *component == name)
            .expect("a known component");
        self.start(name, &program, args)
    }

    pub(super) fn config_files(&self, pki: &PkiFiles) -> Vec<(PathBuf, String)> {
        // The API server listens on the node's address only (see
        // `config::apiserver_args`); the route check keeps that address off
        // every other network.
        let server = self.server_url();
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
                    pki::kubeconfig(self.name.as_str(), &server, &pki.ca.cert, user, pair),
                )
            })
            .collect();
        files.extend([
            (
                self.layout.containerd_config(),
                config::containerd_config(&self.layout, &self.cni_bin_dir, &self.runc),
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
            (
                self.layout.apiserver_authentication_config(),
                config::apiserver_authentication_config(),
            ),
        ]);
        files
    }

    pub(super) fn write_configs(&self, pki: &PkiFiles) -> Result<(), LocalError> {
        for (path, contents) in self.config_files(pki) {
            if let Some(parent) = path.parent() {
                super::host::private_dir(parent)?;
            }
            kindling_harness::util::write_private(&path, contents.as_bytes())
                .map_err(|source| LocalError::Write { path, source })?;
        }
        Ok(())
    }

    pub(super) fn start(
        &self,
        name: &str,
        program: &Path,
        args: Vec<String>,
    ) -> Result<(), LocalError> {
        self.supervisor.start(&ProcessSpec {
            name: name.to_owned(),
            program: program.to_owned(),
            args,
            env: self.component_env(),
        })?;
        Ok(())
    }

    /// The whole environment of a component: nothing of the caller's (a
    /// CI job's secrets, a proxy that would receive webhook and kubelet
    /// calls), only a fixed `PATH` for the programs components run
    /// (`iptables`, `mount`, runc through containerd) and `NO_PROXY` for
    /// the cluster's own addresses.
    pub fn component_env(&self) -> Vec<(String, String)> {
        let no_proxy = self.network.no_proxy();
        vec![
            (
                "PATH".to_owned(),
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_owned(),
            ),
            ("NO_PROXY".to_owned(), no_proxy.clone()),
            ("no_proxy".to_owned(), no_proxy),
        ]
    }

    /// The API server's URL: the node's address, the only one it listens on.
    pub fn server_url(&self) -> String {
        format!("https://{}:{}", self.network.node_ip, self.ports.apiserver)
    }

    pub(super) async fn client(&self) -> Result<Client, LocalError> {
        let kube_error = |action: &str| {
            let action = action.to_owned();
            move |source| LocalError::Kube { action, source }
        };
        let mut config = kindling_core::kubeconfig::config(&self.kubeconfig(), None)
            .await
            .map_err(|error| LocalError::Kubeconfig(Box::new(error)))?;
        // The node's address, whatever an older kubeconfig says.
        config.cluster_url = self.server_url().parse().expect("a URL parses");
        Client::try_from(config).map_err(kube_error("create a Kubernetes client"))
    }
}
