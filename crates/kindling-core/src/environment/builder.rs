//! [`EnvironmentBuilder`]: a suite declares its images, manifest stages,
//! secrets and provider; `up` fingerprints them, brings the cluster up
//! while the images build, delivers, checks and applies stage by stage,
//! and on a later run redoes in the same namespace only what the changed
//! inputs touch.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::inputs::{self, ImageInput, Inputs, Stage};
use super::secrets::GeneratedSecret;
use super::{Environment, EnvironmentError, EnvironmentFingerprint};
use crate::cluster::{self, Provider};
use crate::deploy::DeployedObject;
use crate::deploy::namespace::{self, GcPolicy};
use crate::image::ImageSpec;
use crate::{BoxError, PhaseError, SetupContext};

/// How long workloads may take to become ready, unless set.
pub const DEFAULT_WAIT_TIMEOUT: Duration = Duration::from_secs(180);

/// What [`SetupContext::remember`] keeps of a deployed environment.
pub(super) const REMEMBERED: &str = "kindling.environment";

/// The stage `manifests` adds to.
const DEFAULT_STAGE: &str = "deploy";

/// What a finished setup leaves for the next run's setup to build on.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Deployed {
    pub(super) provider: String,
    pub(super) namespace: String,
    pub(super) objects: Vec<DeployedObject>,
}

/// Prints the provider chosen for this machine, once per process.
fn announce_choice(choice: &cluster::DefaultProvider) {
    static ANNOUNCED: std::sync::Once = std::sync::Once::new();
    ANNOUNCED.call_once(|| eprintln!("kindling: {choice}"));
}

/// Builds an [`Environment`] in a suite's setup.
pub struct EnvironmentBuilder {
    pub(super) setup: SetupContext,
    pub(super) provider: Option<Box<dyn Provider>>,
    /// The provider chosen for this machine, when `KINDLING_PROVIDER` was
    /// unset and the suite named none.
    pub(super) provider_choice: Option<cluster::DefaultProvider>,
    pub(super) images: Vec<ImageInput>,
    pub(super) bases: Vec<ImageSpec>,
    pub(super) stages: Vec<Stage>,
    pub(super) secrets: Vec<GeneratedSecret>,
    pub(super) tls: Vec<crate::tls::TlsSecret>,
    pub(super) wait_timeout: Duration,
    pub(super) gc_grace: Duration,
    pub(super) accepted: Vec<(String, String)>,
}

impl EnvironmentBuilder {
    /// The provider of the cluster (default: the one `KINDLING_PROVIDER`
    /// names, else the one this machine offers, for the cluster
    /// `KINDLING_CLUSTER` names, `kindling` when unset; see
    /// [`cluster::from_env`]).
    pub fn provider(mut self, provider: Box<dyn Provider>) -> Self {
        self.provider = Some(provider);
        self
    }

    /// An image the manifests may name as `kindling:<its name>`: an
    /// [`ImageSpec`] the environment builds (its build inputs are part of
    /// the fingerprint), an [`crate::ImageRef`] built already, or a
    /// [`crate::ThirdParty`] image.
    pub fn image(mut self, image: impl Into<ImageInput>) -> Self {
        self.images.push(image.into());
        self
    }

    /// Several images, as [`EnvironmentBuilder::image`].
    pub fn images<I: Into<ImageInput>>(mut self, images: impl IntoIterator<Item = I>) -> Self {
        self.images.extend(images.into_iter().map(Into::into));
        self
    }

    /// An image that images of this environment start from (`FROM
    /// kindling:<name>` in their Dockerfiles): built only when one of them
    /// is built, never delivered to the cluster. For example
    /// `ImageSpec::debian("debian", "bookworm")` where no base can be pulled.
    pub fn base_image(mut self, spec: ImageSpec) -> Self {
        self.bases.push(spec);
        self
    }

    /// A manifest file, or a directory of them (read in name order), for
    /// the `deploy` stage. Relative paths are relative to the suite package.
    pub fn manifests(self, path: impl Into<PathBuf>) -> Self {
        self.stage(DEFAULT_STAGE, path)
    }

    /// Manifests of the stage `name`: stages are applied and waited for in
    /// the order they are first named (a database, then its migrations Job,
    /// then the service), each a setup phase `stage: <name>` of its own.
    /// Naming a stage again adds to it.
    pub fn stage(mut self, name: impl Into<String>, path: impl Into<PathBuf>) -> Self {
        let name = name.into();
        let path = path.into();
        match self.stages.iter_mut().find(|stage| stage.name == name) {
            Some(stage) => stage.paths.push(path),
            None => self.stages.push(Stage {
                name,
                paths: vec![path],
            }),
        }
        self
    }

    /// A Secret made in the namespace before the first stage (see
    /// [`GeneratedSecret`]): generated once, kept across re-runs.
    pub fn secret(mut self, secret: GeneratedSecret) -> Self {
        self.secrets.push(secret);
        self
    }

    /// A serving certificate for one of the environment's Services, signed
    /// by a CA the environment makes (see [`crate::tls::TlsSecret`]);
    /// `caBundle: kindling:ca` in webhook configurations becomes that CA.
    pub fn tls(mut self, secret: crate::tls::TlsSecret) -> Self {
        self.tls.push(secret);
        self
    }

    /// Everything `stack` declares: its images, base images and secrets
    /// (one of a name already declared is skipped), and its stages, after
    /// the ones named so far.
    pub fn stack(mut self, stack: super::stack::Stack) -> Self {
        for image in stack.images {
            if !self.images.iter().any(|known| known.name() == image.name()) {
                self.images.push(image);
            }
        }
        for base in stack.bases {
            if !self.bases.iter().any(|known| known.name() == base.name()) {
                self.bases.push(base);
            }
        }
        for secret in stack.secrets {
            if !self
                .secrets
                .iter()
                .any(|known| known.name() == secret.name())
            {
                self.secrets.push(secret);
            }
        }
        for tls in stack.tls {
            if !self.tls.contains(&tls) {
                self.tls.push(tls);
            }
        }
        for stage in stack.stages {
            for path in stage.paths {
                self = self.stage(stage.name.clone(), path);
            }
        }
        self
    }

    /// How long workloads may take to become ready, per stage (default 180 s).
    pub fn wait_timeout(mut self, timeout: Duration) -> Self {
        self.wait_timeout = timeout;
        self
    }

    /// Uses the existing cluster-scoped object `kind`/`name` (or one in
    /// another namespace) as it is, even when the manifests differ from
    /// it, instead of stopping the setup. kindling never changes or
    /// deletes an object it did not create: without this, a manifest that
    /// would change such an object stops the setup, naming it.
    pub fn accept_existing(mut self, kind: &str, name: &str) -> Self {
        self.accepted.push((kind.to_owned(), name.to_owned()));
        self
    }

    /// Namespaces of earlier runs of this suite whose heartbeat is older
    /// than this are deleted at setup (default 15 min).
    pub fn gc_grace(mut self, grace: Duration) -> Self {
        self.gc_grace = grace;
        self
    }

    pub(super) fn take_provider(&mut self) -> Result<Box<dyn Provider>, EnvironmentError> {
        match self.provider.take() {
            Some(provider) => Ok(provider),
            None => {
                let (provider, choice) =
                    cluster::from_env_choosing(cluster::ClusterName::default())?;
                if let Some(choice) = &choice {
                    announce_choice(choice);
                }
                self.provider_choice = choice;
                Ok(provider)
            }
        }
    }

    pub(super) async fn read_inputs(
        &self,
        provider: &dyn Provider,
    ) -> Result<Inputs, EnvironmentError> {
        inputs::read(
            &self.setup,
            &self.images,
            &self.bases,
            &self.stages,
            provider.spec().fingerprint(),
        )
        .await
    }

    /// The environment's fingerprint: each image's digest of its build
    /// inputs, the manifests of every stage and the provider's
    /// configuration. Reads every input once and builds nothing.
    pub async fn fingerprint(&mut self) -> Result<EnvironmentFingerprint, EnvironmentError> {
        let provider = self.take_provider()?;
        let inputs = self.read_inputs(provider.as_ref()).await;
        self.provider = Some(provider);
        Ok(inputs?.fingerprint)
    }

    /// Brings the environment up, each step a setup phase: reads the inputs,
    /// ensures the cluster while the images build, delivers the images,
    /// checks every image reference, makes the secrets, then applies each
    /// stage and waits for it.
    ///
    /// On a later run whose provider is unchanged it works in the same
    /// namespace: only images whose inputs changed are rebuilt and sent,
    /// only objects that differ are applied (a changed Job is replaced, as
    /// Jobs cannot change), objects no longer in the manifests are deleted,
    /// and only workloads that changed, or are not ready, are waited for.
    pub async fn up(self) -> Result<Environment, PhaseError> {
        super::bringup::up(self).await
    }

    /// The namespace to deploy into: the one an earlier setup used while it
    /// still exists, else a new one for this run. Collects the suite's
    /// stale namespaces.
    pub(super) async fn namespace(
        &self,
        client: &kube::Client,
        previous: Option<&Deployed>,
    ) -> Result<String, crate::deploy::namespace::EnsureNamespaceError> {
        let suite = self.setup.suite();
        let run_id = self.setup.run_id();
        let reusable = match previous {
            Some(previous) => namespace::exists(client, &previous.namespace)
                .await?
                .then(|| previous.namespace.clone()),
            None => None,
        };
        let name = match reusable {
            Some(name) => {
                namespace::heartbeat(client, &name).await?;
                name
            }
            None => {
                if let Some(previous) = previous {
                    self.setup.progress(&format!(
                        "namespace `{}` of the last setup is gone: setting up from scratch",
                        previous.namespace
                    ));
                }
                let name = namespace::suite_namespace(suite, run_id);
                namespace::ensure_namespace(client, &name, suite, run_id).await?;
                name
            }
        };
        let gc = GcPolicy {
            grace: self.gc_grace,
            suite: Some(suite.to_owned()),
            keep: vec![name.clone()],
        };
        let collected = namespace::collect_garbage(client, &gc).await?;
        if !collected.deleted.is_empty() {
            tracing::info!("deleted stale namespaces {:?}", collected.deleted);
        }
        let objects = crate::deploy::collect_cluster_garbage(client).await?;
        if !objects.is_empty() {
            self.setup.progress(&format!(
                "deleted cluster-scoped objects no namespace uses any more: {}",
                objects.join(", ")
            ));
        }
        Ok(name)
    }
}

pub(super) fn phase_error(phase: &str, error: impl Into<BoxError>) -> PhaseError {
    PhaseError {
        phase: phase.to_owned(),
        source: error.into(),
    }
}
