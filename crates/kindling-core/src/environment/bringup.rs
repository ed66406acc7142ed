//! [`EnvironmentBuilder::up`] as named steps, each a setup phase (or two
//! at once): the provider and the inputs, the cluster while the images
//! build, delivery, preflight, the namespace with its secrets, the stages,
//! and the record the next run builds on.

use kube::Client;

use super::builder::{Deployed, EnvironmentBuilder, REMEMBERED, phase_error};
use super::inputs::Inputs;
use super::stages::{self, StagePlan};
use super::{Environment, EnvironmentError, RecordedStage, client_for, session};
use crate::cluster::{ClusterInfo, Delivered, Provider, ProviderSpec, PullPolicy};
use crate::deploy::namespace;
use crate::deploy::{DeliveredImages, Manifest, deployed_objects, resolve_and_check};
use crate::image::{Builder, ImageRef};
use crate::wait::Waiter;
use crate::{BoxError, PhaseError, SetupContext, artifacts};

/// Each stage's manifests, in order.
type Stages = Vec<(String, Vec<Manifest>)>;

/// What the steps share: the declarations, the provider and what was read.
struct Bringup {
    builder: EnvironmentBuilder,
    setup: SetupContext,
    provider: Box<dyn Provider>,
    spec: ProviderSpec,
    inputs: Inputs,
    /// The last setup's record, when its provider was the same.
    previous: Option<Deployed>,
}

/// Where the stages go: the cluster's client and the namespace.
struct Target {
    client: Client,
    namespace: String,
}

/// Brings the environment up (see [`EnvironmentBuilder::up`]).
pub(super) async fn up(builder: EnvironmentBuilder) -> Result<Environment, PhaseError> {
    let mut run = Bringup::start(builder).await?;
    let (info, images) = run.cluster_and_builds().await?;
    let delivered = run.deliver(images).await?;
    let mut stages = run.preflight(&delivered).await?;
    let target = run.namespace(&info, &mut stages).await?;
    let workloads = run.deploy(&target, &stages).await?;
    run.record(&target, &stages)?;
    session::enter(
        run.spec.kind(),
        run.spec.cluster(),
        &target.client,
        &target.namespace,
    )
    .await;
    Ok(run.environment(info, target, delivered, workloads))
}

impl Bringup {
    /// The provider (its cluster marked in use, so `kindling down` waits
    /// for this setup), the inputs read and declared, the last setup's
    /// record when the provider is unchanged.
    async fn start(mut builder: EnvironmentBuilder) -> Result<Self, PhaseError> {
        let setup = builder.setup.clone();
        setup.checks_inputs_itself();
        let provider = setup
            .phase("provider", async { builder.take_provider() })
            .await?;
        let spec = provider.spec();
        crate::cluster::lock::use_cluster(spec.kind(), spec.cluster())
            .await
            .map_err(|error| phase_error("provider", error))?;
        let inputs = setup
            .phase("inputs", builder.read_inputs(provider.as_ref()))
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
        Ok(Bringup {
            builder,
            setup,
            provider,
            spec,
            inputs,
            previous,
        })
    }

    /// The cluster (the one the nextest setup script brought up, checked,
    /// else ensured) while the planned images build; the images to deliver
    /// are the built ones (not those only built to start others from) and
    /// those found in the engine.
    async fn cluster_and_builds(&mut self) -> Result<(ClusterInfo, Vec<ImageRef>), PhaseError> {
        let plans = std::mem::take(&mut self.inputs.plans);
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
        let provider = self.provider.as_ref();
        let setup = &self.setup;
        let cluster = async {
            match crate::cluster::ReadyCluster::handed_to(provider) {
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
        let bases_only = &self.inputs.bases_only;
        let mut images: Vec<ImageRef> = built
            .into_iter()
            .map(|outcome| outcome.image)
            .filter(|image| !bases_only.iter().any(|base| base == image.name()))
            .collect();
        images.extend(self.inputs.found.iter().cloned());
        Ok((info, images))
    }

    /// Sends the images to the cluster, as its provider does.
    async fn deliver(&self, images: Vec<ImageRef>) -> Result<Delivered, PhaseError> {
        if images.is_empty() {
            return Ok(Delivered {
                images: Vec::new(),
                pull_policy: PullPolicy::Never,
            });
        }
        let docker = crate::docker::connect()
            .await
            .map_err(|error| phase_error("images", error))?;
        self.setup
            .phase("images", self.provider.deliver(docker, images))
            .await
    }

    /// Every stage's placeholders filled with the delivered references and
    /// every image reference checked, before anything is applied.
    async fn preflight(&mut self, delivered: &Delivered) -> Result<Stages, PhaseError> {
        let delivered_images = DeliveredImages::new(&delivered.images, delivered.pull_policy);
        let mut stages = std::mem::take(&mut self.inputs.stages);
        self.setup
            .phase("preflight", async {
                for (_, manifests) in &mut stages {
                    resolve_and_check(manifests, &delivered_images)?;
                }
                Ok::<_, crate::deploy::PreflightError>(())
            })
            .await?;
        Ok(stages)
    }

    /// The client, the namespace (the last setup's while it exists, its
    /// removal recorded for the end of the run), its secrets, and the
    /// stages scoped to it.
    async fn namespace(
        &mut self,
        info: &ClusterInfo,
        stages: &mut Stages,
    ) -> Result<Target, PhaseError> {
        let setup = &self.setup;
        let client = setup
            .phase("client", client_for(&info.kubeconfig, &info.context))
            .await?;
        let namespace = setup
            .phase(
                "namespace",
                self.builder.namespace(&client, self.previous.as_ref()),
            )
            .await?;
        let cleanup = super::EnvironmentCleanup {
            kubeconfig: info.kubeconfig.clone(),
            context: info.context.clone(),
            namespace: namespace.clone(),
            cluster: self.provider.spec(),
            cluster_created: info.created,
        };
        if let Ok(data) = serde_json::to_value(&cleanup) {
            setup.remove_at_end_of_run(crate::extension::NAME, &cleanup.describe(), data);
        }
        self.previous = self
            .previous
            .take()
            .filter(|previous| previous.namespace == namespace);
        let labels = namespace::object_labels(setup.suite(), setup.run_id());
        let ca = setup
            .phase(
                "secrets",
                super::prepare_namespace(
                    &client,
                    &namespace,
                    &labels,
                    &self.builder.secrets,
                    &self.builder.tls,
                ),
            )
            .await?;
        let bundle = ca.as_ref().map(|ca| ca.ca_bundle());
        setup
            .phase("scope", async {
                for (_, manifests) in stages.iter_mut() {
                    crate::deploy::scope_to_namespace(manifests, &namespace, bundle.as_deref())
                        .map_err(Box::new)?;
                    crate::deploy::mark_cluster_objects(manifests, &namespace, setup.suite());
                }
                Ok::<_, Box<crate::deploy::scope::ScopeError>>(())
            })
            .await?;
        Ok(Target { client, namespace })
    }

    /// Applies and waits for each stage (only what differs from the last
    /// setup's objects, unless it was interrupted), then for the
    /// webhooks to answer; a failure leaves the namespace's artifacts.
    async fn deploy(
        &self,
        target: &Target,
        stages: &Stages,
    ) -> Result<Vec<(String, String, String)>, PhaseError> {
        let Target { client, namespace } = target;
        let known = match &self.previous {
            Some(_) if self.setup.previous_interrupted() => {
                self.setup.progress(&format!(
                    "the last setup did not finish: applying everything again in `{namespace}`"
                ));
                None
            }
            Some(previous) => Some(previous.objects.clone()),
            None => None,
        };
        let stores = self.provider.node_stores().await.unwrap_or_default();
        let waiter = Waiter::new(client.clone(), stores.clone(), self.builder.wait_timeout)
            .probe_services(self.provider.routes_service_addresses());
        let plan = StagePlan::new(namespace, &self.builder.accepted, known.as_deref(), stages);
        let workloads = match stages::deploy(&self.setup, client, &waiter, plan).await {
            Ok(workloads) => workloads,
            Err(failure) => {
                let dir = self.setup.artifacts_dir();
                artifacts::collect(
                    artifacts::Sources {
                        client,
                        namespace,
                        stores: &stores,
                        provider: Some(self.provider.as_ref()),
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
        self.setup
            .phase(
                "webhooks",
                crate::deploy::webhook_probe::await_reachable(client, &all(stages), namespace),
            )
            .await?;
        Ok(workloads)
    }

    /// What the next run's setup builds on: the provider, the namespace
    /// and the objects deployed.
    fn record(&self, target: &Target, stages: &Stages) -> Result<(), PhaseError> {
        self.setup
            .remember(
                REMEMBERED,
                &Deployed {
                    provider: self.inputs.fingerprint.provider.clone(),
                    namespace: target.namespace.clone(),
                    objects: deployed_objects(&all(stages)),
                },
            )
            .map_err(|error| phase_error("deploy", error))
    }

    /// The environment the tests get.
    fn environment(
        self,
        info: ClusterInfo,
        target: Target,
        delivered: Delivered,
        workloads: Vec<(String, String, String)>,
    ) -> Environment {
        let setup = &self.setup;
        Environment {
            provider_choice: self
                .builder
                .provider_choice
                .as_ref()
                .map(ToString::to_string),
            provider: self.spec,
            cluster: info.name,
            kubeconfig: info.kubeconfig,
            context: info.context,
            namespace: target.namespace,
            images: delivered.images.clone(),
            pull_policy: delivered.pull_policy,
            workloads,
            stages: self
                .builder
                .stages
                .iter()
                .map(|stage| RecordedStage {
                    name: stage.name.clone(),
                    paths: stage.paths.iter().map(|path| setup.resolve(path)).collect(),
                })
                .collect(),
            secrets: self.builder.secrets.clone(),
            tls: self.builder.tls.clone(),
        }
    }
}

/// Every stage's manifests, in order.
fn all(stages: &Stages) -> Vec<Manifest> {
    stages
        .iter()
        .flat_map(|(_, manifests)| manifests.iter().cloned())
        .collect()
}
