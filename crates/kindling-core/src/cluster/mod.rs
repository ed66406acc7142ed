//! Clusters: one [`Provider`] trait for every way a suite gets a cluster
//! (a local one of upstream components, Kind, an existing one), and the
//! pieces providers share.

mod choice;
pub mod components;
pub mod existing;
#[cfg(feature = "kind")]
pub mod kind;
mod lifecycle;
pub mod lock;
mod name;
pub mod ranges;
mod ready;
mod registry;
mod spec;

pub use choice::{DefaultProvider, MachineOffer, NoProvider};
pub use lifecycle::{
    DownReport, PrepareScope, ProviderKind, Removed, UnknownProviderKind, UpReport,
};
pub use lock::{LockError, users_lock_path};
pub(crate) use name::check_variable as check_cluster_variable;
pub use name::{ClusterName, InvalidClusterName, MAX_CLUSTER_NAME};
pub use ready::{READY_VARIABLE, ReadyCluster};
pub use registry::{LocalProviderSupport, register_local};
pub use spec::ProviderSpec;

use std::path::{Path, PathBuf};

use bollard::Docker;
use serde::{Deserialize, Serialize};

use crate::BoxFuture;
use crate::Requirement;
use crate::image::ImageRef;
use crate::node::NodeStore;

/// A provider failed: which one, on which cluster, doing what, with the
/// provider's own error (matched on, never downcast).
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The `local` provider failed.
    #[error("local cluster `{cluster}`: failed to {action}")]
    Local {
        /// The cluster's name.
        cluster: String,
        /// What it was doing, e.g. "bring the cluster up".
        action: String,
        /// Its error.
        #[source]
        source: crate::BoxError,
    },
    /// The provider is not part of this build.
    #[error(
        "{name} cluster `{cluster}`: the `{name}` provider is not built in: enable the `{name}` feature of the `kindling` crate (on by default)"
    )]
    NotBuiltIn {
        /// The cluster's name.
        cluster: String,
        /// The provider, e.g. `local`.
        name: &'static str,
    },
    /// The `kind` provider failed.
    #[cfg(feature = "kind")]
    #[error("kind cluster `{cluster}`: failed to {action}")]
    Kind {
        /// The cluster's name.
        cluster: String,
        /// What it was doing, e.g. "create the cluster".
        action: String,
        /// Its error.
        #[source]
        source: Box<kind::KindError>,
    },
    /// The `existing` provider failed.
    #[error("existing cluster `{cluster}`: failed to {action}")]
    Existing {
        /// The cluster's name.
        cluster: String,
        /// What it was doing, e.g. "push the images to the registry".
        action: String,
        /// Its error.
        #[source]
        source: Box<existing::ExistingError>,
    },
    /// A cluster name (`KINDLING_CLUSTER`, a recorded one) is not a
    /// DNS-1123 label; nothing was touched.
    #[error(transparent)]
    InvalidName(#[from] InvalidClusterName),
    /// `KINDLING_PROVIDER` names no provider.
    #[error(
        "{name} cluster `{cluster}`: unknown provider `{name}`: KINDLING_PROVIDER must be `local`, `kind` or `existing`"
    )]
    UnknownProvider {
        /// The value given.
        name: String,
        /// The cluster's name.
        cluster: String,
    },
    /// `KINDLING_PROVIDER` is unset and neither Kind nor the local
    /// provider can run on this machine.
    #[error("cluster `{cluster}`: {source}")]
    NoProvider {
        /// The cluster's name.
        cluster: String,
        /// Why neither can.
        #[source]
        source: NoProvider,
    },
}

impl ProviderError {
    /// The provider's kind: `local`, `kind` or `existing` (or the unknown
    /// value `KINDLING_PROVIDER` gave).
    pub fn provider(&self) -> &str {
        match self {
            ProviderError::Local { .. } => "local",
            ProviderError::NotBuiltIn { name, .. } => name,
            #[cfg(feature = "kind")]
            ProviderError::Kind { .. } => "kind",
            ProviderError::Existing { .. } => "existing",
            ProviderError::UnknownProvider { name, .. } => name,
            ProviderError::NoProvider { .. } => "none",
            ProviderError::InvalidName(_) => "unknown",
        }
    }

    /// The cluster's name.
    pub fn cluster(&self) -> &str {
        match self {
            #[cfg(feature = "kind")]
            ProviderError::Kind { cluster, .. } => cluster,
            ProviderError::Local { cluster, .. }
            | ProviderError::Existing { cluster, .. }
            | ProviderError::UnknownProvider { cluster, .. }
            | ProviderError::NoProvider { cluster, .. }
            | ProviderError::NotBuiltIn { cluster, .. } => cluster,
            ProviderError::InvalidName(error) => &error.value,
        }
    }
}

/// What a running cluster offers a suite.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterInfo {
    /// The cluster's name, as the provider knows it.
    pub name: String,
    /// A kubeconfig of its own; `~/.kube/config` is never written.
    pub kubeconfig: PathBuf,
    /// The context to use in it.
    pub context: String,
    /// Input fingerprint of the cluster's configuration: a reused cluster
    /// whose fingerprint differs must be refused, not silently used.
    pub fingerprint: String,
    /// Whether this call created (or started) the cluster, rather than
    /// finding it running: `KINDLING_KEEP=never` deletes only such a one.
    pub created: bool,
}

/// How a suite gets a cluster. Implementations: `local` (upstream
/// components on this host), `kind` (the kind CLI), `existing` (a
/// kubeconfig context, images pushed to a registry).
pub trait Provider: Send + Sync {
    /// `local`, `kind`, `existing`.
    fn kind(&self) -> &'static str;

    /// The cluster's name.
    fn cluster(&self) -> &str;

    /// This provider as data: [`ProviderSpec::provider`] makes it again.
    fn spec(&self) -> ProviderSpec;

    /// What this provider needs from the machine, checked cheaply: for
    /// [`crate::Suite::requires`], so tests skip (or fail under CI) with the
    /// reason instead of failing in the setup.
    fn requirement(&self) -> Requirement;

    /// Creates the cluster or reuses a healthy one with the same
    /// configuration; returns once it is ready for workloads.
    fn ensure(&self) -> BoxFuture<Result<ClusterInfo, ProviderError>>;

    /// The image stores of the nodes, for the loader. Empty for providers
    /// that push to a registry instead.
    fn node_stores(&self) -> BoxFuture<Result<Vec<NodeStore>, ProviderError>>;

    /// Deletes the cluster; deleting one that does not exist is not an error.
    fn delete(&self) -> BoxFuture<Result<(), ProviderError>>;

    /// Copies the cluster's logs into `dir` as they are (for artifacts on
    /// failure, which leave out the pod logs of other namespaces and redact
    /// the rest: [`crate::artifacts`]).
    fn collect_logs(&self, dir: &Path) -> BoxFuture<Result<(), ProviderError>>;

    /// Checks that a cluster set up earlier still answers (a reuse check).
    fn healthy(&self) -> BoxFuture<Result<(), ProviderError>>;

    /// Whether this host reaches Service cluster IPs through the cluster's
    /// own routing (the local cluster's node is this host), so a wait can
    /// check that a Service accepts connections, not only that its
    /// endpoints are listed.
    fn routes_service_addresses(&self) -> bool {
        false
    }

    /// Makes `images` available to the cluster's nodes: loaded into their
    /// stores, or pushed to a registry they pull from. The returned
    /// references are the ones manifests must use.
    fn deliver(
        &self,
        docker: Docker,
        images: Vec<ImageRef>,
    ) -> BoxFuture<Result<Delivered, ProviderError>>;

    /// Obtains what the cluster needs without starting it (`kindling
    /// prepare`), returning a line for people saying what is in place.
    fn prepare_host(&self, scope: PrepareScope) -> BoxFuture<Result<String, ProviderError>> {
        let said = format!(
            "{} cluster `{}`: nothing to prepare ({scope:?})",
            self.kind(),
            self.cluster()
        );
        Box::pin(async move { Ok(said) })
    }

    /// Brings the cluster up (`kindling up`): [`Provider::ensure`], with
    /// the phases where the provider times them.
    fn bring_up(&self) -> BoxFuture<Result<UpReport, ProviderError>> {
        let ensured = self.ensure();
        Box::pin(async move {
            Ok(UpReport {
                info: ensured.await?,
                phases: Vec::new(),
            })
        })
    }

    /// Takes the cluster down (`kindling down`): [`Provider::delete`],
    /// saying what went.
    fn take_down(&self) -> BoxFuture<Result<DownReport, ProviderError>> {
        let deleted = self.delete();
        Box::pin(async move {
            deleted.await?;
            Ok(DownReport {
                removed: Removed::Deleted,
                left: Vec::new(),
            })
        })
    }

    /// The kubeconfig kindling uses for this cluster, where it has one
    /// without asking the cluster.
    fn kubeconfig_path(&self) -> Option<PathBuf> {
        None
    }
}

/// The `imagePullPolicy` a provider's delivered images need.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PullPolicy {
    /// Loaded into every node: the kubelet must never pull.
    Never,
    /// Pushed to a registry: pulled once by exact digest.
    IfNotPresent,
}

impl PullPolicy {
    /// As a manifest spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            PullPolicy::Never => "Never",
            PullPolicy::IfNotPresent => "IfNotPresent",
        }
    }
}

/// Images a provider delivered, and how pods must refer to them.
#[derive(Debug, Clone)]
pub struct Delivered {
    /// The references manifests must use, one per image given, in the same
    /// order.
    pub images: Vec<ImageRef>,
    /// The `imagePullPolicy` pods must give those images.
    pub pull_policy: PullPolicy,
}

/// The provider `KINDLING_PROVIDER` names for the cluster
/// `KINDLING_CLUSTER` names (default `cluster`). With `KINDLING_PROVIDER`
/// unset, the one this machine offers ([`MachineOffer::choose`]): Kind
/// when an engine can run Kind nodes, else `local` as root on Linux, else
/// [`ProviderError::NoProvider`]. A name in `KINDLING_CLUSTER` that is not
/// a DNS-1123 label is refused before anything is touched, and so is a
/// default `cluster` that is not one.
pub fn from_env(cluster: impl AsRef<str>) -> Result<Box<dyn Provider>, ProviderError> {
    from_env_choosing(cluster).map(|(provider, _)| provider)
}

/// [`from_env`], with the choice made when `KINDLING_PROVIDER` is unset
/// (`None` when it names the provider).
pub fn from_env_choosing(
    cluster: impl AsRef<str>,
) -> Result<(Box<dyn Provider>, Option<DefaultProvider>), ProviderError> {
    from_config(crate::config::Config::current(), cluster)
}

/// [`from_env_choosing`] with the variables of `config`.
pub(crate) fn from_config(
    config: &crate::config::Config,
    cluster: impl AsRef<str>,
) -> Result<(Box<dyn Provider>, Option<DefaultProvider>), ProviderError> {
    let cluster = config.cluster(ClusterName::new(cluster.as_ref())?)?;
    let provider = config
        .provider()
        .map_err(|name| ProviderError::UnknownProvider {
            name,
            cluster: cluster.to_string(),
        })?;
    choose(provider, &cluster)
}

/// The provider `named` for `cluster`, or with none named the one this
/// machine offers ([`MachineOffer::choose`]) and why: the one rule the
/// suites (through [`from_env`]) and the `kindling` command follow. Each
/// provider reads its own variables (`KINDLING_LOCAL_*`, `KINDLING_KIND_*`,
/// the `existing` provider's).
pub fn choose(
    named: Option<ProviderKind>,
    cluster: &ClusterName,
) -> Result<(Box<dyn Provider>, Option<DefaultProvider>), ProviderError> {
    let (kind, choice) = choose_kind(named, cluster)?;
    Ok((provider_of(kind, cluster)?, choice))
}

/// [`choose`] without making the provider: which one, and why when none
/// was named.
pub fn choose_kind(
    named: Option<ProviderKind>,
    cluster: &ClusterName,
) -> Result<(ProviderKind, Option<DefaultProvider>), ProviderError> {
    match named {
        Some(kind) => Ok((kind, None)),
        None => {
            let choice = MachineOffer::of_this_machine(cluster)
                .choose()
                .map_err(|source| ProviderError::NoProvider {
                    cluster: cluster.to_string(),
                    source,
                })?;
            Ok((choice.kind(), Some(choice)))
        }
    }
}

/// The provider `kind` for `cluster`, configured by its variables.
pub fn provider_of(
    kind: ProviderKind,
    cluster: &ClusterName,
) -> Result<Box<dyn Provider>, ProviderError> {
    Ok(match kind {
        ProviderKind::Local => ProviderSpec::Local {
            cluster: cluster.clone(),
            state_root: state_home().join("clusters"),
            cache: cache_home(),
            ranges: ranges::NetworkRanges::from_env().map_err(|error| ProviderError::Local {
                cluster: cluster.to_string(),
                action: "read its configuration".to_owned(),
                source: Box::new(error),
            })?,
        }
        .provider()?,
        ProviderKind::Existing => existing::ExistingCluster::from_env(cluster)
            .map(|provider| Box::new(provider) as Box<dyn Provider>)
            .map_err(|error| ProviderError::Existing {
                cluster: cluster.to_string(),
                action: "read its configuration".to_owned(),
                source: Box::new(error),
            })?,
        #[cfg(feature = "kind")]
        ProviderKind::Kind => Box::new(kind::KindCluster::with_defaults(cluster)),
        #[cfg(not(feature = "kind"))]
        ProviderKind::Kind => {
            return Err(ProviderError::NotBuiltIn {
                cluster: cluster.to_string(),
                name: "kind",
            });
        }
    })
}

/// What the provider `KINDLING_PROVIDER` names needs from this machine, for
/// [`crate::Suite::requires`]. An unknown provider is a requirement that is
/// never met, naming the accepted values.
pub fn requirement() -> Requirement {
    match from_env(ClusterName::default()) {
        Ok(provider) => provider.requirement(),
        Err(error) => {
            let reason = kindling_harness::render_chain(&error).replace('\n', " ");
            Requirement::new("the cluster provider", move || Err(reason.clone()))
        }
    }
}

/// The cluster name when neither the suite nor `KINDLING_CLUSTER` names one.
pub const DEFAULT_CLUSTER: &str = "kindling";

/// What every provider builds once per host (components, kind, images'
/// sources): `KINDLING_CACHE_DIR`, default `~/.cache/kindling`.
pub fn cache_home() -> PathBuf {
    crate::config::Config::current().cache_home()
}

/// Per-host cluster state: `KINDLING_HOME`, default `~/.local/state/kindling`.
pub fn state_home() -> PathBuf {
    crate::config::Config::current().state_home()
}
