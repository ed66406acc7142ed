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
use super::stages::{self, StagePlan};
use super::{
    Environment, EnvironmentError, EnvironmentFingerprint, RecordedStage, client_for, session,
};
use crate::cluster::{self, Delivered, Provider, PullPolicy};
use crate::deploy::namespace::{self, GcPolicy};
use crate::deploy::{DeliveredImages, DeployedObject, deployed_objects, resolve_and_check};
use crate::image::{Builder, ImageRef, ImageSpec};
use crate::wait::Waiter;
use crate::{BoxError, artifacts};
use crate::{PhaseError, SetupContext};

/// How long workloads may take to become ready, unless set.
pub const DEFAULT_WAIT_TIMEOUT: Duration = Duration::from_secs(180);

/// What [`SetupContext::remember`] keeps of a deployed environment.
const REMEMBERED: &str = "kindling.environment";

/// The stage `manifests` adds to.
const DEFAULT_STAGE: &str = "deploy";

/// What a finished setup leaves for the next run's setup to build on.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Deployed {
    provider: String,
    namespace: String,
    objects: Vec<DeployedObject>,
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
    /// names, `local` when unset, for the cluster `KINDLING_CLUSTER` names,
    /// `kindling` when unset).
    pub fn provider(mut self, provider: Box<dyn Provider>) -> Self {
        self.provider = Some(provider);
        self
    }

    /// An image the manifests may name as `kindling:<its name>`: an
    /// [`ImageSpec`] the environment builds (its build inputs are part of
    /// the fingerprint), an [`ImageRef`] built already, or a
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

    fn take_provider(&mut self) -> Result<Box<dyn Provider>, EnvironmentError> {
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

    async fn read_inputs(&self, provider: &dyn Provider) -> Result<Inputs, EnvironmentError> {
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
    pub async fn up(mut self) -> Result<Environment, PhaseError> {
        let setup = self.setup.clone();
        setup.checks_inputs_itself();
        let provider = setup
            .phase("provider", async { self.take_provider() })
            .await?;
        let spec = provider.spec();
        // `kindling down` waits for this setup (and this process's tests).
        crate::cluster::lock::use_cluster(spec.kind(), spec.cluster())
            .await
            .map_err(|error| phase_error("provider", error))?;
        let mut inputs = setup
            .phase("inputs", self.read_inputs(provider.as_ref()))
            .await?;
        setup.declare_input("environment", &inputs.fingerprint.digest());
        let previous = setup.recall::<Deployed>(REMEMBERED).filter(|previous| {
            let same = previous.provider == inputs.fingerprint.provider;
            if !same {
                setup
                    .progress("the provider or its configuration changed: setting up from scratch");
            }
            same
        });

        let plans = std::mem::take(&mut inputs.plans);
        let build = async {
            if plans.is_empty() {
                return Ok(Vec::new());
            }
            let docker = crate::docker::connect().await.map_err(BoxError::from)?;
            Builder::new(docker)
                .build_planned(&plans)
                .await
                .map_err(BoxError::from)
        };
        let cluster = async {
            match crate::cluster::ReadyCluster::handed_to(provider.as_ref()) {
                Some(ready) => {
                    setup.progress(&format!(
                        "cluster `{}` was brought up by the nextest setup script: checking that it answers",
                        ready.info.name
                    ));
                    provider.healthy().await?;
                    Ok(ready.info)
                }
                None => provider.ensure().await,
            }
        };
        let (info, built) =
            tokio::try_join!(setup.phase("cluster", cluster), setup.phase("build", build))?;
        let mut images: Vec<ImageRef> = built
            .into_iter()
            .map(|outcome| outcome.image)
            .filter(|image| !inputs.bases_only.iter().any(|base| base == image.name()))
            .collect();
        images.extend(inputs.found.clone());
        let delivered = if images.is_empty() {
            Delivered {
                images: Vec::new(),
                pull_policy: PullPolicy::Never,
            }
        } else {
            let docker = crate::docker::connect()
                .await
                .map_err(|error| phase_error("images", error))?;
            setup
                .phase("images", provider.deliver(docker, images))
                .await?
        };
        let delivered_images = DeliveredImages::new(&delivered.images, delivered.pull_policy);
        let mut stages = std::mem::take(&mut inputs.stages);
        setup
            .phase("preflight", async {
                for (_, manifests) in &mut stages {
                    resolve_and_check(manifests, &delivered_images)?;
                }
                Ok::<_, crate::deploy::PreflightError>(())
            })
            .await?;
        let client = setup
            .phase("client", client_for(&info.kubeconfig, &info.context))
            .await?;

        let namespace = setup
            .phase("namespace", self.namespace(&client, previous.as_ref()))
            .await?;
        let cleanup = super::EnvironmentCleanup {
            kubeconfig: info.kubeconfig.clone(),
            context: info.context.clone(),
            namespace: namespace.clone(),
            cluster: provider.spec(),
            cluster_created: info.created,
        };
        if let Ok(data) = serde_json::to_value(&cleanup) {
            setup.remove_at_end_of_run(crate::extension::NAME, &cleanup.describe(), data);
        }
        let previous = previous.filter(|previous| previous.namespace == namespace);
        let labels = namespace::object_labels(setup.suite(), setup.run_id());
        let ca = setup
            .phase(
                "secrets",
                super::prepare_namespace(&client, &namespace, &labels, &self.secrets, &self.tls),
            )
            .await?;
        let bundle = ca.as_ref().map(|ca| ca.ca_bundle());
        setup
            .phase("scope", async {
                for (_, manifests) in &mut stages {
                    crate::deploy::scope_to_namespace(manifests, &namespace, bundle.as_deref())
                        .map_err(Box::new)?;
                    crate::deploy::mark_cluster_objects(manifests, &namespace, setup.suite());
                }
                Ok::<_, Box<crate::deploy::scope::ScopeError>>(())
            })
            .await?;
        let known = match &previous {
            Some(_) if setup.previous_interrupted() => {
                setup.progress(&format!(
                    "the last setup did not finish: applying everything again in `{namespace}`"
                ));
                None
            }
            Some(previous) => Some(previous.objects.clone()),
            None => None,
        };
        let stores = provider.node_stores().await.unwrap_or_default();
        let waiter = Waiter::new(client.clone(), stores.clone(), self.wait_timeout)
            .probe_services(provider.routes_service_addresses());
        let all: Vec<crate::deploy::Manifest> = stages
            .iter()
            .flat_map(|(_, manifests)| manifests.iter().cloned())
            .collect();
        let objects = deployed_objects(&all);
        let plan = StagePlan::new(&namespace, &self.accepted, known.as_deref(), &stages);
        let outcome = stages::deploy(&setup, &client, &waiter, plan).await;
        let workloads = match outcome {
            Ok(workloads) => workloads,
            Err(failure) => {
                let dir = setup.artifacts_dir();
                artifacts::collect(
                    artifacts::Sources {
                        client: &client,
                        namespace: &namespace,
                        stores: &stores,
                        provider: Some(provider.as_ref()),
                    },
                    &dir,
                )
                .await;
                return Err(phase_error(
                    &failure.phase,
                    EnvironmentError::WithArtifacts {
                        failure: Box::new(failure.error),
                        artifacts: dir,
                    },
                ));
            }
        };
        setup
            .phase(
                "webhooks",
                crate::deploy::webhook_probe::await_reachable(&client, &all, &namespace),
            )
            .await?;
        setup
            .remember(
                REMEMBERED,
                &Deployed {
                    provider: inputs.fingerprint.provider.clone(),
                    namespace: namespace.clone(),
                    objects,
                },
            )
            .map_err(|error| phase_error("deploy", error))?;
        session::enter(spec.kind(), spec.cluster(), &client, &namespace).await;
        Ok(Environment {
            provider_choice: self.provider_choice.as_ref().map(ToString::to_string),
            provider: spec,
            cluster: info.name,
            kubeconfig: info.kubeconfig,
            context: info.context,
            namespace,
            images: delivered_images.references().clone(),
            pull_policy: delivered.pull_policy,
            workloads,
            stages: self
                .stages
                .iter()
                .map(|stage| RecordedStage {
                    name: stage.name.clone(),
                    paths: stage.paths.iter().map(|path| setup.resolve(path)).collect(),
                })
                .collect(),
            secrets: self.secrets.clone(),
            tls: self.tls.clone(),
        })
    }

    /// The namespace to deploy into: the one an earlier setup used while it
    /// still exists, else a new one for this run. Collects the suite's
    /// stale namespaces.
    async fn namespace(
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

fn phase_error(phase: &str, error: impl Into<BoxError>) -> PhaseError {
    PhaseError {
        phase: phase.to_owned(),
        source: error.into(),
    }
}
