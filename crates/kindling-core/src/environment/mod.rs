//! A suite's whole E2E environment: a cluster from a provider, the run's
//! images delivered to it, the suite's manifests applied into a namespace
//! of its own and waited for by diagnosis. Recorded as JSON so every
//! process of a run (and a later run that reuses it) gets the same one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::Client;
use kube::api::Api;
use serde::{Deserialize, Serialize};

use crate::SetupContext;
use crate::access::{AccessError, Endpoint, HttpClient};
use crate::cluster::{Provider, ProviderError, ProviderSpec, PullPolicy};
use crate::deploy::namespace::{self, DEFAULT_GRACE, NamespaceError};
use crate::deploy::{
    Applied, ApplyError, DeliveredImages, Manifest, ManifestError, PreflightError, apply_manifests,
    read_manifests, resolve_and_check,
};
use crate::image::ImageRef;
use crate::kubeconfig::KubeconfigError;
use crate::node::NodeStore;
use crate::wait::{WaitError, Waiter, Workload};
use crate::{BoxError, artifacts};

mod bringup;
mod builder;
mod copies;
mod credentials;
mod inputs;
mod kube_error;
mod scaling;
mod secrets;
mod session;
mod stack;
mod stages;
mod teardown;

pub use builder::{DEFAULT_WAIT_TIMEOUT, EnvironmentBuilder};
pub use credentials::CredentialError;
pub use inputs::{EnvironmentFingerprint, ImageInput, ThirdParty};
pub use kube_error::KubeError;
pub use scaling::ScaleError;
pub use secrets::{GeneratedSecret, NOT_SECRET_ANNOTATION, SecretError};
pub(crate) use session::enter_recorded;
pub use stack::Stack;
pub(crate) use teardown::{EnvironmentCleanup, finish_cleanups};

/// Setting up or using an environment failed.
#[derive(Debug, thiserror::Error)]
pub enum EnvironmentError {
    /// The suite's manifests could not be read.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// An image of the manifests could not start a pod; nothing was applied.
    #[error(transparent)]
    Preflight(#[from] PreflightError),
    /// Applying (or dry-running) the manifests failed.
    #[error(transparent)]
    Apply(#[from] ApplyError),
    /// The workloads did not become ready, or a wait of a test ended without
    /// what it waited for.
    #[error(transparent)]
    Wait(#[from] WaitError),
    /// Creating, reading, deleting or renewing the heartbeat of a namespace
    /// failed.
    #[error(transparent)]
    Namespace(#[from] NamespaceError),
    /// The suite's (or a copy's) namespace name is a namespace kindling did
    /// not make for the suite.
    #[error(transparent)]
    ForeignNamespace(#[from] crate::deploy::namespace::ForeignNamespace),
    /// The cluster's provider failed: choosing it, bringing the cluster up,
    /// delivering the images.
    #[error(transparent)]
    Provider(#[from] ProviderError),
    /// Reaching a Service or pod of the environment failed.
    #[error(transparent)]
    Access(#[from] AccessError),
    /// No Docker engine answers, and the images need one.
    #[error(transparent)]
    Docker(#[from] crate::docker::DockerUnavailable),
    /// Building one of the suite's images failed.
    #[error(transparent)]
    Build(#[from] Box<crate::image::BuildError>),
    /// Reading or writing one of the environment's Secrets failed.
    #[error(transparent)]
    Secret(#[from] Box<SecretError>),
    /// A third-party image could not be taken from the local engine: it
    /// is not there and has no fallback build, or the engine failed.
    #[error(
        "third-party image `{reference}` (`kindling:{name}`) is not in the local engine: pull it where a registry is reachable (`docker pull {reference}`), load it (`docker load -i <file>.tar`), or build it here with `ThirdParty::or_build`"
    )]
    ThirdParty {
        /// The image's logical name, as in `kindling:<name>`.
        name: String,
        /// The reference the suite gives for it, e.g. `postgres:16`.
        reference: String,
        /// Why the engine does not give it.
        #[source]
        source: Box<crate::image::ImageError>,
    },
    /// A request of a test helper to the cluster failed: a token, a
    /// Secret, objects, scaling.
    #[error(transparent)]
    Kube(#[from] KubeError),
    /// Making the environment's CA or a serving certificate failed.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// A cluster-scoped object could not be tied to the suite's namespace.
    #[error(transparent)]
    Scope(#[from] Box<crate::deploy::scope::ScopeError>),
    /// Another failure: a setup phase's error that is not an environment error,
    /// or a Job that was not gone in time to be replaced.
    #[error(transparent)]
    Other(BoxError),
    /// The cluster's kubeconfig and context could not give a client.
    #[error(transparent)]
    Kubeconfig(#[from] KubeconfigError),
    /// A method that names its objects after the calling test was called
    /// outside a test's body.
    #[error(
        "`{what}` names what it makes after the calling test: call it from the test's own body, not from a task the test spawned or from a setup"
    )]
    NotInATest {
        /// The method called.
        what: &'static str,
    },
    /// Deploying a stage failed, and what the cluster could tell was collected
    /// as artifacts.
    #[error("{failure}\nartifacts: {}", artifacts.display())]
    WithArtifacts {
        /// The failure, before the artifacts were collected.
        failure: Box<EnvironmentError>,
        /// The directory the artifacts were written to.
        artifacts: PathBuf,
    },
}

/// What every test of a suite gets: where the cluster is, the namespace
/// the suite deployed into, and the exact image references it delivered.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Environment {
    provider: ProviderSpec,
    cluster: String,
    kubeconfig: PathBuf,
    context: String,
    namespace: String,
    #[serde(deserialize_with = "ImageRef::deserialize_recorded")]
    images: Vec<ImageRef>,
    pull_policy: PullPolicy,
    workloads: Vec<(String, String, String)>,
    /// The manifests of each stage, as absolute paths.
    #[serde(default)]
    stages: Vec<RecordedStage>,
    #[serde(default)]
    secrets: Vec<GeneratedSecret>,
    #[serde(default)]
    tls: Vec<crate::tls::TlsSecret>,
    /// Why the provider was chosen, when `KINDLING_PROVIDER` was unset.
    #[serde(default)]
    provider_choice: Option<String>,
}

/// A stage of an environment, as recorded.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RecordedStage {
    pub name: String,
    pub paths: Vec<PathBuf>,
}

impl AsRef<Environment> for Environment {
    fn as_ref(&self) -> &Environment {
        self
    }
}

impl Environment {
    /// Starts describing the environment of the suite `setup` belongs to:
    /// its images, manifests and provider. Then [`EnvironmentBuilder::up`].
    pub fn builder(setup: &SetupContext) -> EnvironmentBuilder {
        EnvironmentBuilder {
            setup: setup.clone(),
            provider: None,
            provider_choice: None,
            images: Vec::new(),
            bases: Vec::new(),
            stages: Vec::new(),
            secrets: Vec::new(),
            tls: Vec::new(),
            wait_timeout: DEFAULT_WAIT_TIMEOUT,
            gc_grace: DEFAULT_GRACE,
            accepted: Vec::new(),
        }
    }

    /// The suite's namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The exact reference of the image named `name`, as pods run it.
    pub fn image(&self, name: &str) -> Option<&str> {
        self.image_ref(name).map(|image| image.reference().as_str())
    }

    /// The image named `name` as delivered: its name, exact reference and
    /// image ID.
    pub fn image_ref(&self, name: &str) -> Option<&ImageRef> {
        self.images.iter().find(|image| image.name() == name)
    }

    /// Every delivered image, by name.
    pub fn images(&self) -> &[ImageRef] {
        &self.images
    }

    /// The cluster's name.
    pub fn cluster(&self) -> &str {
        &self.cluster
    }

    /// The cluster's kubeconfig file.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// A client for the cluster (one per process, shared).
    pub async fn client(&self) -> Result<Client, KubeconfigError> {
        crate::kubeconfig::client_for(&self.kubeconfig, &self.context).await
    }

    /// The provider this environment's cluster came from, as the setup
    /// recorded it (not as this process's `KINDLING_PROVIDER` says).
    pub fn provider(&self) -> Result<Box<dyn Provider>, ProviderError> {
        self.provider.provider()
    }

    /// The provider chosen and why (`provider `kind`: KINDLING_PROVIDER is
    /// unset and …`), when `KINDLING_PROVIDER` was unset at setup; `None`
    /// when it or the suite named the provider.
    pub fn provider_choice(&self) -> Option<&str> {
        self.provider_choice.as_deref()
    }

    /// The recorded provider and its configuration.
    pub fn provider_spec(&self) -> &ProviderSpec {
        &self.provider
    }

    /// The node image stores (for diagnoses); empty when unreachable.
    pub async fn node_stores(&self) -> Vec<NodeStore> {
        match self.provider() {
            Ok(provider) => provider.node_stores().await.unwrap_or_default(),
            Err(_) => Vec::new(),
        }
    }

    /// A waiter that diagnoses pods instead of timing out blind.
    pub async fn waiter(&self, timeout: Duration) -> Result<Waiter, WaitError> {
        let probe = self
            .provider()
            .is_ok_and(|provider| provider.routes_service_addresses());
        Ok(
            Waiter::new(self.client().await?, self.node_stores().await, timeout)
                .probe_services(probe),
        )
    }

    /// A waiter that diagnoses only the pods of this environment's own
    /// workloads (those its stages deployed).
    pub async fn watching_waiter(&self, timeout: Duration) -> Result<Waiter, WaitError> {
        let workloads = self
            .workloads
            .iter()
            .map(|(kind, namespace, name)| Workload::new(kind, namespace, name))
            .collect();
        Ok(self.waiter(timeout).await?.watching(workloads))
    }

    /// The images of this environment, for placeholders in more manifests.
    pub fn delivered_images(&self) -> DeliveredImages {
        DeliveredImages::new(&self.images, self.pull_policy)
    }

    /// A local port forwarded to `port` of Service `service` in the suite's namespace.
    pub async fn endpoint(&self, service: &str, port: u16) -> Result<Endpoint, AccessError> {
        let client = self.client().await?;
        crate::access::port_forward(&client, &self.namespace, service, port).await
    }

    /// The objects of `kind` in `api_version` (a custom resource, say) in
    /// this environment's namespace, found through discovery.
    pub async fn objects(
        &self,
        api_version: &str,
        kind: &str,
    ) -> Result<Api<kube::api::DynamicObject>, KubeError> {
        let resource = self.resource(api_version, kind).await?;
        Ok(Api::namespaced_with(
            self.client().await?,
            &self.namespace,
            &resource,
        ))
    }

    /// The API resource of `kind` in `api_version`, found through discovery.
    async fn resource(
        &self,
        api_version: &str,
        kind: &str,
    ) -> Result<kube::discovery::ApiResource, KubeError> {
        let client = self.client().await?;
        let (group, version) = match api_version.split_once('/') {
            Some((group, version)) => (group, version),
            None => ("", api_version),
        };
        let gvk = kube::core::GroupVersionKind::gvk(group, version, kind);
        let (resource, _) =
            kube::discovery::pinned_kind(&client, &gvk)
                .await
                .map_err(|source| KubeError::Discovery {
                    api_version: api_version.to_owned(),
                    kind: kind.to_owned(),
                    source,
                })?;
        Ok(resource)
    }

    /// A local port forwarded to `port` of pod `pod` of the suite's
    /// namespace itself, ready or not.
    pub async fn pod_endpoint(&self, pod: &str, port: u16) -> Result<Endpoint, AccessError> {
        let client = self.client().await?;
        crate::access::port_forward_pod(&client, &self.namespace, pod, port).await
    }

    /// An HTTP client for `port` of Service `service` of this environment's
    /// namespace; the forward lives as long as the client.
    pub async fn http(&self, service: &str, port: u16) -> Result<HttpClient, AccessError> {
        Ok(HttpClient::through(self.endpoint(service, port).await?))
    }

    /// Whether a reused environment still works: the cluster answers and
    /// the namespace exists; renews the namespace's heartbeat so garbage
    /// collection knows a run is using it. For [`crate::Suite::alive`].
    pub async fn alive(self: Arc<Self>) -> Result<(), BoxError> {
        self.provider()?.healthy().await?;
        let client = self.client().await?;
        let found = Api::<Namespace>::all(client.clone())
            .get_opt(&self.namespace)
            .await?;
        match found {
            Some(found) if found.metadata.deletion_timestamp.is_none() => {}
            _ => return Err(format!("namespace `{}` is gone", self.namespace).into()),
        }
        namespace::heartbeat(&client, &self.namespace).await?;
        Ok(())
    }

    /// Writes the artifacts of a failure into `dir`: pods, workloads,
    /// events, logs, node image lists and the provider's logs, and the
    /// pods, workloads, events and logs of each copy this process made of
    /// the namespace under `copies/<namespace>/`. For
    /// [`crate::Suite::on_failure`].
    pub async fn collect_artifacts(self: Arc<Self>, dir: PathBuf) {
        let Ok(client) = self.client().await else {
            let _ = kindling_harness::util::create_private_dir_all(&dir);
            let _ = kindling_harness::util::write_private(
                &dir.join("errors.txt"),
                b"cannot connect to the cluster\n",
            );
            return;
        };
        let provider = self.provider().ok();
        let stores = self.node_stores().await;
        artifacts::collect(
            artifacts::Sources {
                client: &client,
                namespace: &self.namespace,
                stores: &stores,
                provider: provider.as_deref(),
            },
            &dir,
        )
        .await;
        // The copies this process made of the namespace (the cluster's logs
        // and the nodes' images are above already).
        for copy in copies::copies_of(&self.namespace) {
            let sources = artifacts::Sources {
                client: &client,
                namespace: &copy,
                stores: &[],
                provider: None,
            };
            artifacts::collect(sources, &dir.join("copies").join(&copy)).await;
        }
    }
}

/// Makes the environment's generated Secrets and TLS Secrets in
/// `namespace` (keeping what is there) and learns every Secret value there
/// for redaction; returns its CA, if it has one.
async fn prepare_namespace(
    client: &Client,
    namespace: &str,
    labels: &BTreeMap<String, String>,
    generated: &[GeneratedSecret],
    tls: &[crate::tls::TlsSecret],
) -> Result<Option<crate::tls::CertificateAuthority>, EnvironmentError> {
    secrets::ensure(client, namespace, generated, labels)
        .await
        .map_err(Box::new)?;
    let ca = secrets::ensure_tls(client, namespace, tls, labels).await?;
    crate::redaction::watch_namespace(client, namespace).await;
    Ok(ca)
}

/// Applies checked manifests into `namespace` and waits for every workload.
pub async fn apply_and_wait(
    client: &Client,
    namespace: &str,
    manifests: &mut [Manifest],
    waiter: &Waiter,
) -> Result<Vec<Applied>, EnvironmentError> {
    let applied = apply_manifests(
        client,
        namespace,
        manifests,
        &crate::deploy::Ownership::suite(namespace),
    )
    .await?;
    let workloads: Vec<Workload> = applied
        .iter()
        .filter(|applied| Workload::is_waitable(&applied.kind))
        .map(|applied| {
            Workload::new(
                &applied.kind,
                applied.namespace.as_deref().unwrap_or(namespace),
                &applied.name,
            )
        })
        .collect();
    waiter.wait(&workloads).await?;
    Ok(applied)
}

/// [`crate::kubeconfig::client_for`], its error naming the environment's
/// kubeconfig and context.
pub(crate) async fn client_for(
    kubeconfig: &Path,
    context: &str,
) -> Result<Client, EnvironmentError> {
    Ok(crate::kubeconfig::client_for(kubeconfig, context).await?)
}

/// What a test does through its context: `ctx.deploy(..)` and the waits
/// are these, through [`crate::TestContext`]'s `Deref` to the environment.
impl Environment {
    /// Applies more manifests (placeholders resolve from the suite's
    /// images) into `namespace` and waits for their workloads by diagnosis.
    pub async fn deploy(
        &self,
        namespace: &str,
        paths: &[PathBuf],
        timeout: Duration,
    ) -> Result<Vec<Applied>, EnvironmentError> {
        let mut manifests = read_manifests(paths)?;
        resolve_and_check(&mut manifests, &self.delivered_images())?;
        let client = self.client().await?;
        let waiter = self.waiter(timeout).await?;
        apply_and_wait(&client, namespace, &mut manifests, &waiter).await
    }

    /// Waits until `check` returns `Ok` (its value is returned); an `Err`
    /// says what was seen instead, and the last one is named at `timeout`.
    /// A pod of the environment's own workloads that cannot recover fails
    /// the wait at once with its diagnosis (another test's broken pod in the
    /// namespace does not).
    pub async fn wait_for<T, F, Fut>(
        &self,
        what: &str,
        timeout: Duration,
        check: F,
    ) -> Result<T, WaitError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, String>>,
    {
        let waiter = self.watching_waiter(timeout).await?;
        waiter.until_ok(what, self.namespace(), check).await
    }

    /// Waits until `condition` holds, failing at once with a diagnosis if
    /// a pod of the environment's own workloads cannot recover, or at
    /// `timeout` with what is not ready.
    pub async fn wait_until<F, Fut>(
        &self,
        what: &str,
        timeout: Duration,
        condition: F,
    ) -> Result<(), WaitError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = bool>,
    {
        let waiter = self.watching_waiter(timeout).await?;
        waiter.until(what, self.namespace(), condition).await
    }
}

impl From<crate::deploy::namespace::EnsureNamespaceError> for EnvironmentError {
    fn from(error: crate::deploy::namespace::EnsureNamespaceError) -> Self {
        match error {
            crate::deploy::namespace::EnsureNamespaceError::Request(error) => error.into(),
            crate::deploy::namespace::EnsureNamespaceError::Foreign(error) => error.into(),
        }
    }
}
