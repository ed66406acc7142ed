//! [`EnvironmentBuilder`]: a suite declares its images, manifests and
//! provider; `up` fingerprints them, brings the cluster up while the images
//! build, delivers, checks and applies, and on a later run redoes in the
//! same namespace only what the changed inputs touch.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::{Environment, EnvironmentError, client_for, session};
use crate::cluster::{self, Delivered, Provider, PullPolicy};
use crate::deploy::namespace::{self, GcPolicy, NamespaceError};
use crate::deploy::{
    DeliveredImages, DeployedObject, Manifest, apply_manifests, delete_objects, deployed_objects,
    plan_changes, read_manifests, resolve_and_check,
};
use crate::image::{BuildPlan, Builder, ImageRef, ImageSpec};
use crate::setup::{PhaseError, SetupContext};
use crate::wait::{Waiter, Workload};
use crate::{BoxError, artifacts};

/// How long workloads may take to become ready, unless set.
pub const DEFAULT_WAIT_TIMEOUT: Duration = Duration::from_secs(180);

/// What [`SetupContext::remember`] keeps of a deployed environment.
const REMEMBERED: &str = "kindling.environment";

/// An image an environment delivers: one it builds, or one that exists.
#[derive(Debug, Clone)]
pub enum ImageInput {
    /// Built by the environment (and fingerprinted by its build inputs).
    Build(ImageSpec),
    /// Built or looked up already (fingerprinted by its reference and ID).
    Built(ImageRef),
}

impl From<ImageSpec> for ImageInput {
    fn from(spec: ImageSpec) -> Self {
        ImageInput::Build(spec)
    }
}

impl From<ImageRef> for ImageInput {
    fn from(image: ImageRef) -> Self {
        ImageInput::Built(image)
    }
}

/// What an environment's fingerprint is made of, each part a digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvironmentFingerprint {
    /// The provider and its configuration, with kindling's version.
    pub provider: String,
    /// Each image's digest of its build inputs, by logical name.
    pub images: BTreeMap<String, String>,
    /// The bytes of every manifest file, in reading order.
    pub manifests: String,
}

impl EnvironmentFingerprint {
    /// One digest of everything.
    pub fn digest(&self) -> String {
        let mut hasher = Sha256::new();
        hasher.update(serde_json::to_vec(self).expect("a fingerprint serialises"));
        hex::encode(hasher.finalize())
    }
}

/// What a finished setup leaves for the next run's setup to build on.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Deployed {
    provider: String,
    namespace: String,
    objects: Vec<DeployedObject>,
}

/// Everything read and computed before anything runs.
struct Inputs {
    plans: Vec<BuildPlan>,
    built: Vec<ImageRef>,
    manifests: Vec<Manifest>,
    fingerprint: EnvironmentFingerprint,
}

/// Builds an [`Environment`] in a suite's setup.
pub struct EnvironmentBuilder {
    pub(super) setup: SetupContext,
    pub(super) provider: Option<Box<dyn Provider>>,
    pub(super) images: Vec<ImageInput>,
    pub(super) manifests: Vec<PathBuf>,
    pub(super) wait_timeout: Duration,
    pub(super) gc_grace: Duration,
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
    /// the fingerprint), or an [`ImageRef`] built already.
    pub fn image(mut self, image: impl Into<ImageInput>) -> Self {
        self.images.push(image.into());
        self
    }

    /// Several images, as [`EnvironmentBuilder::image`].
    pub fn images<I: Into<ImageInput>>(mut self, images: impl IntoIterator<Item = I>) -> Self {
        self.images.extend(images.into_iter().map(Into::into));
        self
    }

    /// A manifest file, or a directory of them (read in name order).
    /// Relative paths are relative to the suite package's directory.
    pub fn manifests(mut self, path: impl Into<PathBuf>) -> Self {
        self.manifests.push(path.into());
        self
    }

    /// How long workloads may take to become ready (default 180 s).
    pub fn wait_timeout(mut self, timeout: Duration) -> Self {
        self.wait_timeout = timeout;
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
            None => Ok(cluster::from_env(cluster::DEFAULT_CLUSTER)?),
        }
    }

    /// The environment's fingerprint: each image's digest of its build
    /// inputs, the manifests' bytes and the provider's configuration. Reads
    /// every input once and builds nothing.
    pub async fn fingerprint(&mut self) -> Result<EnvironmentFingerprint, EnvironmentError> {
        let provider = self.take_provider()?;
        let inputs = self.read_inputs(provider.as_ref()).await;
        self.provider = Some(provider);
        Ok(inputs?.fingerprint)
    }

    async fn read_inputs(&self, provider: &dyn Provider) -> Result<Inputs, EnvironmentError> {
        let mut plans = Vec::new();
        let mut built = Vec::new();
        let mut images = BTreeMap::new();
        if self
            .images
            .iter()
            .any(|image| matches!(image, ImageInput::Build(_)))
        {
            let builder = Builder::new(crate::docker::connect().await?);
            for image in &self.images {
                if let ImageInput::Build(spec) = image {
                    let plan = builder
                        .plan(&spec.resolved_against(self.setup.package_dir()))
                        .await
                        .map_err(Box::new)?;
                    images.insert(spec.name().to_owned(), plan.input_digest().to_owned());
                    plans.push(plan);
                }
            }
        }
        for image in &self.images {
            if let ImageInput::Built(image) = image {
                images.insert(
                    image.name().to_owned(),
                    format!("{}@{}", image.reference(), image.id()),
                );
                built.push(image.clone());
            }
        }
        let paths: Vec<PathBuf> = self
            .manifests
            .iter()
            .map(|path| self.setup.resolve(path))
            .collect();
        let (manifests, manifest_digest) = tokio::task::spawn_blocking(move || {
            read_manifests(&paths).map(|manifests| {
                let mut hasher = Sha256::new();
                for manifest in &manifests {
                    hasher.update(
                        serde_json::to_vec(&manifest.object).expect("an object serialises"),
                    );
                    hasher.update([0]);
                }
                (manifests, hex::encode(hasher.finalize()))
            })
        })
        .await
        .expect("manifest task")?;
        Ok(Inputs {
            plans,
            built,
            manifests,
            fingerprint: EnvironmentFingerprint {
                provider: provider.spec().fingerprint(),
                images,
                manifests: manifest_digest,
            },
        })
    }

    /// Brings the environment up, each step a setup phase: reads the inputs,
    /// ensures the cluster while the images build, delivers the images,
    /// checks every image reference, then applies the manifests and waits.
    ///
    /// On a later run whose provider is unchanged it works in the same
    /// namespace: only images whose inputs changed are rebuilt and sent,
    /// only objects that differ are applied (and objects no longer in the
    /// manifests deleted), and only workloads that changed, or are not
    /// ready, are waited for; the rest keeps running untouched.
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

        let builder = Builder::new(
            crate::docker::connect()
                .await
                .map_err(|error| phase_error("docker", error))?,
        );
        let plans = std::mem::take(&mut inputs.plans);
        let build = async {
            if plans.is_empty() {
                return Ok(Vec::new());
            }
            setup.phase("build", builder.build_planned(&plans)).await
        };
        let (info, built) = tokio::try_join!(setup.phase("cluster", provider.ensure()), build)?;
        let mut images: Vec<ImageRef> = built.into_iter().map(|outcome| outcome.image).collect();
        images.extend(inputs.built.clone());
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
        let mut manifests = std::mem::take(&mut inputs.manifests);
        setup
            .phase("preflight", async {
                resolve_and_check(&mut manifests, &delivered_images)
            })
            .await?;
        let client = setup
            .phase("client", client_for(&info.kubeconfig, &info.context))
            .await?;

        let namespace = setup
            .phase("namespace", self.namespace(&client, previous.as_ref()))
            .await?;
        let previous = previous.filter(|previous| previous.namespace == namespace);
        let known = match &previous {
            Some(_) if setup.previous_interrupted() => {
                setup.progress(&format!(
                    "the last setup did not finish: applying everything again in `{namespace}`"
                ));
                None
            }
            Some(previous) => Some(previous.objects.as_slice()),
            None => None,
        };
        let stores = provider.node_stores().await.unwrap_or_default();
        let waiter = Waiter::new(client.clone(), stores.clone(), self.wait_timeout);
        let objects = deployed_objects(&manifests);
        let deployed = setup
            .phase("deploy", async {
                let outcome =
                    deploy_changes(&setup, &client, &namespace, &mut manifests, known, &waiter)
                        .await;
                match outcome {
                    Ok(workloads) => Ok(workloads),
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
                        Err(EnvironmentError::WithArtifacts {
                            failure: Box::new(failure),
                            artifacts: dir,
                        })
                    }
                }
            })
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
            provider: spec,
            cluster: info.name,
            kubeconfig: info.kubeconfig,
            context: info.context,
            namespace,
            images: delivered_images.references().clone(),
            pull_policy: delivered.pull_policy,
            workloads: deployed,
        })
    }

    /// The namespace to deploy into: the one an earlier setup used while it
    /// still exists, else a new one for this run. Collects the suite's
    /// stale namespaces.
    async fn namespace(
        &self,
        client: &kube::Client,
        previous: Option<&Deployed>,
    ) -> Result<String, NamespaceError> {
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
        Ok(name)
    }
}

fn phase_error(phase: &str, error: impl Into<BoxError>) -> PhaseError {
    PhaseError {
        phase: phase.to_owned(),
        source: error.into(),
    }
}

/// Applies what differs from `known` (everything when nothing is known),
/// deletes what the manifests dropped, and waits for the workloads that
/// changed or are not ready. Returns every workload, as `(kind, namespace,
/// name)`.
async fn deploy_changes(
    setup: &SetupContext,
    client: &kube::Client,
    namespace: &str,
    manifests: &mut [Manifest],
    known: Option<&[DeployedObject]>,
    waiter: &Waiter,
) -> Result<Vec<(String, String, String)>, EnvironmentError> {
    let changes = plan_changes(known, manifests);
    let workload_of = |manifest: &Manifest| {
        Workload::is_waitable(manifest.kind()).then(|| {
            Workload::new(
                manifest.kind(),
                manifest.namespace().unwrap_or(namespace),
                manifest.name(),
            )
        })
    };
    if known.is_some() {
        setup.progress(&format!(
            "in `{namespace}`: {} object(s) changed{}, {} unchanged, {} removed",
            changes.changed.len(),
            describe(manifests, &changes.changed),
            changes.unchanged.len(),
            changes.removed.len()
        ));
    }
    let mut changed: Vec<Manifest> = changes
        .changed
        .iter()
        .map(|index| manifests[*index].clone())
        .collect();
    if !changed.is_empty() {
        apply_manifests(client, namespace, &mut changed).await?;
    }
    if !changes.removed.is_empty() {
        let deleted = delete_objects(client, namespace, &changes.removed).await?;
        tracing::info!("deleted objects the manifests no longer hold: {deleted:?}");
    }
    let mut wait: Vec<Workload> = changed.iter().filter_map(workload_of).collect();
    let unchanged: Vec<Workload> = changes
        .unchanged
        .iter()
        .filter_map(|index| workload_of(&manifests[*index]))
        .collect();
    let stale = waiter.not_ready(&unchanged).await?;
    if !stale.is_empty() {
        setup.progress(&format!(
            "unchanged but not ready, waiting for them too: {}",
            stale
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ));
        let missing: Vec<Manifest> = changes
            .unchanged
            .iter()
            .map(|index| &manifests[*index])
            .filter(|manifest| {
                workload_of(manifest).is_some_and(|workload| stale.contains(&workload))
            })
            .cloned()
            .collect();
        // A workload deleted by hand comes back; applying an existing one changes nothing.
        let mut missing = missing;
        apply_manifests(client, namespace, &mut missing).await?;
        wait.extend(stale);
    }
    if !wait.is_empty() {
        waiter.wait(&wait).await?;
    }
    Ok(manifests
        .iter()
        .filter_map(workload_of)
        .map(|workload| (workload.kind, workload.namespace, workload.name))
        .collect())
}

fn describe(manifests: &[Manifest], indexes: &[usize]) -> String {
    if indexes.is_empty() {
        return String::new();
    }
    let names: Vec<String> = indexes
        .iter()
        .take(6)
        .map(|index| format!("{}/{}", manifests[*index].kind(), manifests[*index].name()))
        .collect();
    let more = indexes.len().saturating_sub(names.len());
    format!(
        " ({}{})",
        names.join(", "),
        if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        }
    )
}
