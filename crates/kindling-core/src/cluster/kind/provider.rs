//! [`KindCluster`]: the [`Provider`] that drives the `kind` CLI.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bollard::Docker;
use kindling_harness::util::{create_private_tree, write_private};

use super::cli::KindCli;
use super::config::{self, ClusterConfig, EffectiveConfig, Fingerprint, NodeImageChoice};
use super::privileged::{self, Privileges};
use super::{KindError, node_image, ready};
use crate::BoxFuture;
use crate::Requirement;
use crate::cluster::{
    ClusterInfo, ClusterName, Delivered, PrepareScope, Provider, ProviderError, ProviderSpec,
    PullPolicy,
};
use crate::image::{ImageRef, Loader};
use crate::node::{NodeStore, discover_kind_nodes};

/// Which container engine kind drives (`KIND_EXPERIMENTAL_PROVIDER`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KindEngine {
    /// Node containers are reached through the Docker engine.
    Docker,
    /// Node containers are reached through Podman's Docker-compatible socket.
    Podman,
    /// A value kindling cannot reach nodes through (e.g. `nerdctl`).
    Unsupported(String),
}

impl KindEngine {
    /// From `KIND_EXPERIMENTAL_PROVIDER`; `None` when unset (kind picks).
    pub fn from_env() -> Option<Self> {
        crate::config::Config::current().kind_engine()
    }

    /// The engine `KIND_EXPERIMENTAL_PROVIDER` would name so.
    pub fn named(value: &str) -> Self {
        match value {
            "docker" => KindEngine::Docker,
            "podman" => KindEngine::Podman,
            other => KindEngine::Unsupported(other.to_owned()),
        }
    }

    fn name(&self) -> &str {
        match self {
            KindEngine::Docker => "docker",
            KindEngine::Podman => "podman",
            KindEngine::Unsupported(value) => value,
        }
    }
}

/// A kind cluster, created from a kind configuration file and reused only
/// while that configuration (and the kind release) is unchanged.
///
/// State lives in `<state home>/kind/<name>/`: the cluster's own
/// `kubeconfig`, the `kind-config.yaml` it was created from, and
/// `fingerprint.json`, written only once the cluster was ready.
#[derive(Debug, Clone)]
pub struct KindCluster {
    name: ClusterName,
    state_dir: PathBuf,
    cache: PathBuf,
    config_file: Option<PathBuf>,
    binary: Option<PathBuf>,
    engine: Option<KindEngine>,
    recreate_on_change: bool,
    ready_timeout: Duration,
    node_image: Option<String>,
}

impl KindCluster {
    /// The cluster `name`, its state under `state_home/kind/<name>`, the
    /// pinned kind looked for in `cache`.
    pub fn new(name: &ClusterName, state_home: &Path, cache: &Path) -> Self {
        KindCluster {
            name: name.clone(),
            state_dir: state_home.join("kind").join(name),
            cache: cache.to_owned(),
            config_file: None,
            binary: None,
            engine: None,
            recreate_on_change: false,
            ready_timeout: Duration::from_secs(180),
            node_image: None,
        }
    }

    /// The cluster `name` as the environment describes it: state under
    /// `KINDLING_HOME`, kind from `KINDLING_KIND_BINARY` or the cache,
    /// the configuration from `KINDLING_KIND_CONFIG`, recreation allowed by
    /// `KINDLING_KIND_RECREATE=1`, the engine from `KIND_EXPERIMENTAL_PROVIDER`,
    /// the node image from `KINDLING_KIND_NODE_IMAGE` (kindling's own when unset).
    pub fn with_defaults(name: &ClusterName) -> Self {
        let config = crate::config::Config::current();
        let mut cluster = KindCluster::new(name, &config.state_home(), &config.cache_home());
        cluster.config_file = config.var_os("KINDLING_KIND_CONFIG").map(PathBuf::from);
        cluster.recreate_on_change = config.kind_recreate();
        cluster.engine = config.kind_engine();
        cluster.node_image = config.trimmed("KINDLING_KIND_NODE_IMAGE");
        cluster
    }

    /// Creates the cluster from this kind configuration file instead of a
    /// single control-plane node.
    pub fn config_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.config_file = Some(path.into());
        self
    }

    /// Uses this `kind` binary.
    pub fn binary(mut self, path: impl Into<PathBuf>) -> Self {
        self.binary = Some(path.into());
        self
    }

    /// Sets `KIND_EXPERIMENTAL_PROVIDER` for kind and the engine nodes are reached through.
    pub fn engine(mut self, engine: KindEngine) -> Self {
        self.engine = Some(engine);
        self
    }

    /// Deletes and recreates an existing cluster whose fingerprint differs,
    /// instead of refusing it.
    pub fn recreate_on_change(mut self, recreate: bool) -> Self {
        self.recreate_on_change = recreate;
        self
    }

    /// Gives nodes whose configuration names no image this one (e.g. a
    /// pulled `kindest/node`) instead of kindling's node image.
    pub fn node_image(mut self, reference: impl Into<String>) -> Self {
        self.node_image = Some(reference.into());
        self
    }

    /// The node image of nodes whose configuration names none: the one
    /// [`KindCluster::node_image`] names, else kindling's own.
    pub fn node_image_choice(&self) -> NodeImageChoice {
        match &self.node_image {
            Some(image) => NodeImageChoice::Named(image.clone()),
            None => NodeImageChoice::Kindling(node_image::reference()),
        }
    }

    /// How long `ensure` waits for every node Ready and CoreDNS available.
    pub fn ready_timeout(mut self, timeout: Duration) -> Self {
        self.ready_timeout = timeout;
        self
    }

    /// The cluster's name.
    pub fn name(&self) -> &str {
        self.name.as_str()
    }

    /// Where kindling keeps the cluster's state: `<state home>/kind/<name>`.
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// The cluster's own kubeconfig, written by kind with `--kubeconfig`.
    pub fn kubeconfig(&self) -> PathBuf {
        self.state_dir.join("kubeconfig")
    }

    /// The context kind names in it.
    pub fn context(&self) -> String {
        format!("kind-{}", self.name)
    }

    /// Where the fingerprint of a ready cluster is recorded.
    pub fn fingerprint_record(&self) -> PathBuf {
        self.state_dir.join("fingerprint.json")
    }

    /// The located `kind`, with the engine set for it.
    pub fn cli(&self) -> Result<KindCli, KindError> {
        let cli = match &self.binary {
            Some(binary) => KindCli::explicit(binary.clone(), "the kind binary")?,
            None => KindCli::locate(&self.cache)?,
        };
        Ok(match &self.engine {
            Some(KindEngine::Unsupported(value)) => {
                return Err(KindError::UnsupportedEngine {
                    value: value.clone(),
                });
            }
            Some(engine) => cli.env("KIND_EXPERIMENTAL_PROVIDER", engine.name()),
            None => cli,
        })
    }

    /// [`KindCluster::cli`], building the pinned kind into the cache first
    /// when no kind is found, none was named and Go is there.
    pub async fn cli_or_build(&self) -> Result<KindCli, KindError> {
        match self.cli() {
            Err(KindError::BinaryMissing { .. }) if self.may_build_kind() => {
                super::pinned::ensure_built(&self.cache, &|line| self.say(line))
                    .await
                    .map_err(|error| KindError::BuildKind(Box::new(error)))?;
                self.cli()
            }
            other => other,
        }
    }

    /// No kind binary was named, and Go is there to build the pinned one.
    fn may_build_kind(&self) -> bool {
        self.binary.is_none()
            && crate::config::Config::current()
                .var_os("KINDLING_KIND_BINARY")
                .is_none()
            && kindling_harness::requirement::find_program("go").is_some()
    }

    /// The configuration the cluster is (to be) created from.
    pub fn cluster_config(&self) -> Result<ClusterConfig, KindError> {
        match &self.config_file {
            Some(path) => ClusterConfig::from_file(path),
            None => Ok(ClusterConfig::default_config()),
        }
    }

    /// Creates the cluster, or reuses it when its recorded fingerprint
    /// matches; returns once it is ready. Creating it first makes
    /// kindling's node image when its nodes need it and the engine lacks it.
    pub async fn ensure_ready(&self) -> Result<ClusterInfo, KindError> {
        let cli = self.cli_or_build().await?;
        let version = cli.checked_version().await?;
        let config = self.cluster_config()?;
        let effective = config.effective(&self.node_image_choice())?;
        let current = effective.fingerprint(version, &config);
        let _lock = self.lock().await?;
        self.create_state_dir()?;
        let (cli, privileges) = self.engine_cli(cli).await?;
        if cli
            .clusters()
            .await?
            .iter()
            .any(|name| self.name == name.as_str())
        {
            let recorded = config::read_recorded(&self.fingerprint_record())?;
            if recorded
                .as_ref()
                .is_some_and(|recorded| recorded.fingerprint == current.fingerprint)
            {
                self.export_kubeconfig(&cli).await?;
                self.wait_ready(&cli).await?;
                return Ok(self.info(&current, false));
            }
            if !self.recreate_on_change {
                return Err(self.refusal(recorded.as_ref(), &current, &config));
            }
            tracing::info!(cluster = %self.name, "recreating the kind cluster: its configuration changed");
            self.delete_with(&cli).await?;
        } else {
            config::forget_recorded(&self.fingerprint_record())?;
        }
        if let Some(NodeImageChoice::Kindling(_)) = &effective.node_image {
            self.ensure_node_image().await?;
        }
        if let Some(privileges) = privileges
            .as_ref()
            .filter(|privileges| privileges.refused())
        {
            self.say(&shim_notice(privileges, &self.state_home()));
        }
        self.create(&cli, &effective).await?;
        self.wait_ready(&cli).await?;
        config::write_recorded(&self.fingerprint_record(), &current)?;
        Ok(self.info(&current, true))
    }

    /// What `prepare` left in place, for people.
    fn prepared(
        &self,
        image: Option<node_image::NodeImage>,
        privileges: Option<Privileges>,
        took: Duration,
    ) -> String {
        let image = match image {
            Some(image) => format!(
                "kindling's node image `{}` is {}",
                image.reference,
                if image.built {
                    "built"
                } else {
                    "in the engine"
                }
            ),
            None => format!(
                "its nodes use `{}` (kind pulls it when the engine lacks it)",
                self.node_image_choice().reference()
            ),
        };
        let engine = match privileges {
            None => "Podman is not asked about privileged containers".to_owned(),
            Some(privileges) => match &privileges.record.refusal {
                None => "the engine starts privileged containers".to_owned(),
                Some(refusal) => format!(
                    "the engine refuses privileged containers (`{refusal}`): kind runs through kindling's docker shim"
                ),
            },
        };
        format!(
            "kind cluster `{}` prepared ({:.2}s): {image}; {engine}",
            self.name,
            took.as_secs_f64()
        )
    }

    /// Obtains what creating the cluster needs and can be made here, without
    /// creating it: the pinned kind when no kind is found, kindling's node image when the configuration's nodes
    /// need it (its reference, else `None`), and whether the engine starts
    /// privileged containers (`None` for Podman, which kindling does not probe).
    pub async fn prepare(
        &self,
    ) -> Result<(Option<node_image::NodeImage>, Option<Privileges>), KindError> {
        self.cli_or_build().await?.checked_version().await?;
        let config = self.cluster_config()?;
        let effective = config.effective(&self.node_image_choice())?;
        let image = match &effective.node_image {
            Some(NodeImageChoice::Kindling(_)) => Some(self.ensure_node_image().await?),
            _ => None,
        };
        let privileges = match &self.engine {
            Some(KindEngine::Podman) => None,
            _ => {
                let docker = self.connect().await?;
                Some(privileged::check(&docker, &self.state_home()).await?)
            }
        };
        Ok((image, privileges))
    }

    /// `Ok` when nodes get another image than kindling's, or kindling's can
    /// be made: its components are built, or Go is there to build them
    /// (cheap: no image is looked up, no binary read).
    fn node_image_buildable(&self) -> Result<(), String> {
        if self.node_image.is_some()
            || kindling_harness::requirement::find_program("go").is_some()
            || node_image::NodeBinaries::in_cache(&self.cache)
                .first_missing()
                .is_none()
        {
            return Ok(());
        }
        Err(format!(
            "its components are not built in `{}` and Go is not installed to build them: install Go (https://go.dev/dl), or set KINDLING_KIND_NODE_IMAGE to a node image you have",
            self.cache.display()
        ))
    }

    /// kindling's node image, made when the engine lacks it.
    async fn ensure_node_image(&self) -> Result<node_image::NodeImage, KindError> {
        let docker = self.connect().await?;
        let say = |line: &str| self.say(line);
        node_image::ensure(&docker, &self.cache, &say)
            .await
            .map_err(|error| KindError::NodeImage(Box::new(error)))
    }

    fn say(&self, line: &str) {
        eprintln!("kindling: kind cluster `{}`: {line}", self.name);
    }

    /// `<state home>`, above `<state home>/kind/<name>`.
    fn state_home(&self) -> PathBuf {
        self.state_dir
            .parent()
            .and_then(Path::parent)
            .map(Path::to_path_buf)
            .unwrap_or_default()
    }

    /// `cli`, with the docker shim first on its `PATH` when the engine
    /// refuses privileged containers (asked once per engine); with what the
    /// engine answered (`None` for Podman, which kindling does not probe).
    async fn engine_cli(&self, cli: KindCli) -> Result<(KindCli, Option<Privileges>), KindError> {
        if let Some(KindEngine::Podman) = &self.engine {
            return Ok((cli, None));
        }
        let docker = self.connect().await?;
        let state_home = self.state_home();
        let privileges = privileged::check(&docker, &state_home).await?;
        if !privileges.refused() {
            return Ok((cli, Some(privileges)));
        }
        let path = crate::config::Config::current().var_os("PATH");
        let dir = privileged::write_shim(&state_home, path)?;
        let shimmed = privileged::path_with_shim(&dir, path);
        Ok((
            cli.env("PATH", &shimmed.to_string_lossy()),
            Some(privileges),
        ))
    }

    /// Deletes the cluster and what kindling recorded about it.
    pub async fn delete_cluster(&self) -> Result<(), KindError> {
        let cli = self.cli()?;
        // Suites setting up or testing on the cluster finish first.
        let _users = crate::cluster::lock::delete_cluster_lock("kind", self.name.as_str()).await?;
        let _lock = self.lock().await?;
        self.delete_with(&cli).await
    }

    /// `kind export logs <dir>`. kind writes what it could and fails for the
    /// rest; a partial export is an error naming the directory it filled.
    pub async fn export_logs(&self, dir: &Path) -> Result<(), KindError> {
        let (cli, _) = self.engine_cli(self.cli()?).await?;
        self.export_logs_with(&cli, dir).await
    }

    async fn export_logs_with(&self, cli: &KindCli, dir: &Path) -> Result<(), KindError> {
        let args = [
            "export".as_ref(),
            "logs".as_ref(),
            dir.as_os_str(),
            "--name".as_ref(),
            self.name.as_str().as_ref(),
        ];
        match cli.run(&args).await {
            Ok(_) => Ok(()),
            Err(KindError::Command { stderr, .. })
                if std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_some()) =>
            {
                Err(KindError::LogsIncomplete {
                    dir: dir.to_owned(),
                    stderr,
                })
            }
            Err(error) => Err(error),
        }
    }

    /// The nodes' image stores, found by kind's container labels.
    pub async fn stores(&self) -> Result<Vec<NodeStore>, KindError> {
        let docker = self.connect().await?;
        let nodes = discover_kind_nodes(&docker, self.name.as_str())
            .await
            .map_err(|source| KindError::Discover {
                cluster: self.name.to_string(),
                source,
            })?;
        if nodes.is_empty() {
            return Err(KindError::NoNodes {
                cluster: self.name.to_string(),
            });
        }
        Ok(nodes.into_iter().map(|node| node.store).collect())
    }

    /// The API answers through the cluster's kubeconfig and every node is Ready.
    pub async fn check_healthy(&self) -> Result<(), KindError> {
        let kubeconfig = self.kubeconfig();
        if !kubeconfig.is_file() {
            return Err(KindError::NoKubeconfig {
                cluster: self.name.to_string(),
                path: kubeconfig,
            });
        }
        let unhealthy = |detail| KindError::Unhealthy {
            cluster: self.name.to_string(),
            detail: Box::new(detail),
        };
        let client = ready::client(&kubeconfig, &self.context())
            .await
            .map_err(unhealthy)?;
        ready::nodes_ready(&client).await.map_err(unhealthy)
    }

    /// The engine kind's nodes run on: Podman's socket for
    /// `KIND_EXPERIMENTAL_PROVIDER=podman`, else the usual Docker engine.
    async fn connect(&self) -> Result<Docker, KindError> {
        Ok(match &self.engine {
            Some(KindEngine::Podman) => {
                crate::docker::connect_to(&crate::docker::podman_host()).await?
            }
            Some(KindEngine::Unsupported(value)) => {
                return Err(KindError::UnsupportedEngine {
                    value: value.clone(),
                });
            }
            _ => crate::docker::connect().await?,
        })
    }

    async fn create(&self, cli: &KindCli, config: &EffectiveConfig) -> Result<(), KindError> {
        // kind reads the exact text that was fingerprinted, not a file that
        // may change between fingerprinting and creating.
        let config_path = self.state_dir.join("kind-config.yaml");
        write_private(&config_path, config.text.as_bytes()).map_err(|source| KindError::State {
            path: config_path.clone(),
            source,
        })?;
        let kubeconfig = self.kubeconfig();
        // No `--wait`: it exits 0 on timeout; readiness is checked by `wait_ready`.
        let args = [
            "create".as_ref(),
            "cluster".as_ref(),
            "--name".as_ref(),
            self.name.as_str().as_ref(),
            "--config".as_ref(),
            config_path.as_os_str(),
            "--kubeconfig".as_ref(),
            kubeconfig.as_os_str(),
        ];
        cli.run(&args).await.map(drop)
    }

    async fn export_kubeconfig(&self, cli: &KindCli) -> Result<(), KindError> {
        let kubeconfig = self.kubeconfig();
        let args = [
            "export".as_ref(),
            "kubeconfig".as_ref(),
            "--name".as_ref(),
            self.name.as_str().as_ref(),
            "--kubeconfig".as_ref(),
            kubeconfig.as_os_str(),
        ];
        cli.run(&args).await.map(drop)
    }

    async fn wait_ready(&self, cli: &KindCli) -> Result<(), KindError> {
        let Err(last) =
            ready::wait_ready(&self.kubeconfig(), &self.context(), self.ready_timeout).await
        else {
            return Ok(());
        };
        let seconds = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let dir = self.state_dir.join("logs").join(seconds.to_string());
        // kind writes its files with modes of its own: a private folder
        // keeps them private.
        let exported = match create_private_tree(&self.state_dir, &dir) {
            Ok(()) => self.export_logs_with(cli, &dir).await,
            Err(source) => Err(KindError::State {
                path: dir.clone(),
                source,
            }),
        };
        let logs = match exported {
            Ok(()) => format!("kind's logs are in `{}`", dir.display()),
            Err(error) => format!("kind's logs: {error}"),
        };
        Err(KindError::NotReady {
            cluster: self.name.to_string(),
            after: self.ready_timeout,
            last: Box::new(last),
            logs,
        })
    }

    async fn delete_with(&self, cli: &KindCli) -> Result<(), KindError> {
        // The record goes first: an interrupted delete must not leave a
        // record vouching for a half-deleted cluster.
        config::forget_recorded(&self.fingerprint_record())?;
        let kubeconfig = self.kubeconfig();
        let args = [
            "delete".as_ref(),
            "cluster".as_ref(),
            "--name".as_ref(),
            self.name.as_str().as_ref(),
            "--kubeconfig".as_ref(),
            kubeconfig.as_os_str(),
        ];
        cli.run(&args).await?;
        for file in [kubeconfig, self.state_dir.join("kind-config.yaml")] {
            remove_if_present(&file)?;
        }
        Ok(())
    }

    fn refusal(
        &self,
        recorded: Option<&Fingerprint>,
        current: &Fingerprint,
        config: &ClusterConfig,
    ) -> KindError {
        let reason = match recorded {
            Some(recorded) => {
                let mut changes = current.changes_since(recorded);
                if changes.is_empty() {
                    changes.push("its fingerprint differs".to_owned());
                }
                format!(
                    "was created with another configuration ({}; recorded fingerprint {}, created from {})",
                    changes.join(", "),
                    recorded.fingerprint,
                    match &recorded.config_source {
                        Some(path) => format!("`{}`", path.display()),
                        None => "kindling's default configuration".to_owned(),
                    }
                )
            }
            None => format!(
                "kindling has no record of creating it (no `{}`; a cluster made outside kindling, or one whose creation or readiness failed, is never recorded)",
                self.fingerprint_record().display()
            ),
        };
        KindError::ConfigChanged {
            cluster: self.name.to_string(),
            reason,
            config: config.describe(),
            current: current.fingerprint.clone(),
        }
    }

    fn info(&self, fingerprint: &Fingerprint, created: bool) -> ClusterInfo {
        ClusterInfo {
            name: self.name.to_string(),
            kubeconfig: self.kubeconfig(),
            context: self.context(),
            fingerprint: fingerprint.fingerprint.clone(),
            created,
        }
    }

    /// `<state home>/kind/<name>`, and the folders above it up to the
    /// state home, `0700`.
    fn create_state_dir(&self) -> Result<(), KindError> {
        let home = self
            .state_dir
            .parent()
            .and_then(Path::parent)
            .unwrap_or(&self.state_dir);
        create_private_tree(home, &self.state_dir).map_err(|source| KindError::State {
            path: self.state_dir.clone(),
            source,
        })
    }

    /// Cluster names are global to the engine, so creating, reusing and
    /// deleting one is serialised per host by a lock beside its state.
    async fn lock(&self) -> Result<crate::cluster::lock::Exclusive, KindError> {
        let path = self.state_dir.with_file_name(format!("{}.lock", self.name));
        Ok(crate::cluster::lock::exclusive(
            &path,
            &format!("creating, reusing or deleting kind cluster `{}`", self.name),
            &format!(
                "waiting for kind cluster `{}`: another process is creating, reusing or deleting it",
                self.name
            ),
        )
        .await?)
    }

    fn provider_error(&self, action: &str, error: KindError) -> ProviderError {
        ProviderError::Kind {
            cluster: self.name.to_string(),
            action: action.to_owned(),
            source: Box::new(error),
        }
    }
}

/// The stderr line saying kind runs through the shim, and why.
fn shim_notice(privileges: &Privileges, state_home: &Path) -> String {
    format!(
        "this engine refuses privileged containers (`{}`): kind runs with the docker shim `{}`, which starts nodes with every capability but CAP_{} instead (the engine's answer is recorded in `{}`; remove it to ask again)",
        privileges.record.refusal.as_deref().unwrap_or_default(),
        privileged::shim_dir(state_home).join("docker").display(),
        privileged::DROPPED_CAPABILITY,
        privileges.record_path.display()
    )
}

fn remove_if_present(path: &Path) -> Result<(), KindError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(KindError::State {
            path: path.to_owned(),
            source,
        }),
    }
}

impl Provider for KindCluster {
    fn kind(&self) -> &'static str {
        "kind"
    }

    fn spec(&self) -> ProviderSpec {
        ProviderSpec::Kind {
            cluster: self.name.clone(),
            state_home: self.state_home(),
            cache: self.cache.clone(),
            config_file: self.config_file.clone(),
            binary: self.binary.clone(),
            engine: self.engine.as_ref().map(|engine| engine.name().to_owned()),
            recreate_on_change: self.recreate_on_change,
            node_image: self.node_image.clone(),
        }
    }

    fn requirement(&self) -> Requirement {
        let cluster = self.clone();
        Requirement::all(
            "the kind provider",
            vec![
                Requirement::new("the kind CLI", {
                    let cluster = cluster.clone();
                    move || match cluster.cli() {
                        Err(KindError::BinaryMissing { .. }) if cluster.may_build_kind() => Ok(()),
                        other => other.map(drop).map_err(|error| error.to_string()),
                    }
                }),
                Requirement::docker(),
                Requirement::new("kindling's Kind node image", move || {
                    cluster.node_image_buildable()
                }),
            ],
        )
    }

    fn cluster(&self) -> &str {
        self.name.as_str()
    }

    fn ensure(&self) -> BoxFuture<Result<ClusterInfo, ProviderError>> {
        let cluster = self.clone();
        Box::pin(async move {
            cluster
                .ensure_ready()
                .await
                .map_err(|error| cluster.provider_error("bring the cluster up", error))
        })
    }

    fn node_stores(&self) -> BoxFuture<Result<Vec<NodeStore>, ProviderError>> {
        let cluster = self.clone();
        Box::pin(async move {
            cluster
                .stores()
                .await
                .map_err(|error| cluster.provider_error("find the node containers", error))
        })
    }

    fn delete(&self) -> BoxFuture<Result<(), ProviderError>> {
        let cluster = self.clone();
        Box::pin(async move {
            cluster
                .delete_cluster()
                .await
                .map_err(|error| cluster.provider_error("delete the cluster", error))
        })
    }

    fn collect_logs(&self, dir: &Path) -> BoxFuture<Result<(), ProviderError>> {
        let cluster = self.clone();
        let dir = dir.to_owned();
        Box::pin(async move {
            cluster
                .export_logs(&dir)
                .await
                .map_err(|error| cluster.provider_error("export kind's logs", error))
        })
    }

    fn prepare_host(&self, scope: PrepareScope) -> BoxFuture<Result<String, ProviderError>> {
        let cluster = self.clone();
        Box::pin(async move {
            if scope == PrepareScope::RuntimePackagesOnly {
                return Ok(format!(
                    "kind cluster `{}`: the kind provider installs no runtime packages (its nodes bring their own); `kindling prepare --provider kind` makes its node image",
                    cluster.name
                ));
            }
            let started = std::time::Instant::now();
            let (image, privileges) = cluster
                .prepare()
                .await
                .map_err(|error| cluster.provider_error("prepare the cluster", error))?;
            Ok(cluster.prepared(image, privileges, started.elapsed()))
        })
    }

    fn kubeconfig_path(&self) -> Option<PathBuf> {
        Some(self.kubeconfig())
    }

    fn healthy(&self) -> BoxFuture<Result<(), ProviderError>> {
        let cluster = self.clone();
        Box::pin(async move {
            cluster
                .check_healthy()
                .await
                .map_err(|error| cluster.provider_error("check the cluster", error))
        })
    }

    fn deliver(
        &self,
        docker: Docker,
        images: Vec<ImageRef>,
    ) -> BoxFuture<Result<Delivered, ProviderError>> {
        let cluster = self.clone();
        Box::pin(async move {
            let stores = cluster
                .stores()
                .await
                .map_err(|error| cluster.provider_error("find the node containers", error))?;
            Loader::new(docker)
                .load(&images, &stores)
                .await
                .map_err(|error| {
                    cluster.provider_error(
                        "load the images into the nodes",
                        KindError::Load(Box::new(error)),
                    )
                })?;
            Ok(Delivered {
                images,
                pull_policy: PullPolicy::Never,
            })
        })
    }
}
