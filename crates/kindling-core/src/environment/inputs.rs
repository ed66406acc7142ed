//! What an environment is made from, read once per setup: the images it
//! builds, finds or falls back to building, the manifests of each stage,
//! and the digests of all of it (the environment's fingerprint).

use std::collections::BTreeMap;
use std::path::PathBuf;

use bollard::Docker;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::EnvironmentError;
use crate::SetupContext;
use crate::deploy::{Manifest, read_manifests};
use crate::image::{BuildPlan, Builder, ImageError, ImageRef, ImageSpec};

/// An image an environment delivers: one it builds, one that exists, or a
/// third-party one.
#[derive(Debug, Clone)]
pub enum ImageInput {
    /// Built by the environment (and fingerprinted by its build inputs).
    Build(ImageSpec),
    /// Built or looked up already (fingerprinted by its reference and ID).
    Built(ImageRef),
    /// A third-party image, found in the engine or built from a fallback.
    ThirdParty(ThirdParty),
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

impl From<ThirdParty> for ImageInput {
    fn from(image: ThirdParty) -> Self {
        ImageInput::ThirdParty(image)
    }
}

/// A third-party image the suite does not build (a database, a cache),
/// named `kindling:<name>` in manifests like the suite's own images and
/// delivered the same way: loaded into each node that lacks it, or pushed
/// with the `existing` provider. It must be in the local engine (pulled or
/// loaded beforehand), or [`ThirdParty::or_build`] names what to build
/// instead on a machine that cannot pull it.
///
/// ```
/// use kindling::ThirdParty;
/// use kindling::image::ImageSpec;
///
/// // Where a registry is reachable: `docker pull postgres:16` once.
/// let pulled = ThirdParty::new("postgres", "postgres:16");
/// // Where none is: built here from Debian's packages when absent.
/// let here = ThirdParty::new("postgres", "postgres:16")
///     .or_build(ImageSpec::new("postgres", "../../fixtures/postgres"));
/// # let _ = (pulled, here);
/// ```
#[derive(Debug, Clone)]
pub struct ThirdParty {
    name: String,
    reference: String,
    fallback: Option<ImageSpec>,
}

impl ThirdParty {
    /// The image `reference` (as `docker pull` names it), for manifests as
    /// `kindling:<name>`.
    pub fn new(name: impl Into<String>, reference: impl Into<String>) -> Self {
        ThirdParty {
            name: name.into(),
            reference: reference.into(),
            fallback: None,
        }
    }

    /// Builds `spec` (under this image's logical name) when `reference` is
    /// not in the local engine.
    pub fn or_build(mut self, spec: ImageSpec) -> Self {
        self.fallback = Some(spec.renamed(&self.name));
        self
    }

    /// The logical name manifests use.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn resolved_against(mut self, dir: &std::path::Path) -> Self {
        self.fallback = self.fallback.map(|spec| spec.resolved_against(dir));
        self
    }
}

impl ImageInput {
    /// The logical name manifests use.
    pub fn name(&self) -> &str {
        match self {
            ImageInput::Build(spec) => spec.name(),
            ImageInput::Built(image) => image.name(),
            ImageInput::ThirdParty(third) => third.name(),
        }
    }
}

/// What an environment's fingerprint is made of, each part a digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvironmentFingerprint {
    /// The provider and its configuration, with kindling's version.
    pub provider: String,
    /// Each image's digest of its build inputs (or reference and ID), by
    /// logical name.
    pub images: BTreeMap<String, String>,
    /// The objects of every stage, in order.
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

/// Manifests of one stage.
#[derive(Debug, Clone)]
pub(crate) struct Stage {
    pub name: String,
    pub paths: Vec<PathBuf>,
}

/// Everything read before anything runs.
pub(crate) struct Inputs {
    /// Plans of what to build: the suite's images, fallbacks of absent
    /// third-party ones, and the base images those start from.
    pub plans: Vec<BuildPlan>,
    /// Logical names of the plans only built to start others from.
    pub bases_only: Vec<String>,
    /// Images found in the engine.
    pub found: Vec<ImageRef>,
    /// Each stage's manifests, in order.
    pub stages: Vec<(String, Vec<Manifest>)>,
    pub fingerprint: EnvironmentFingerprint,
}

/// Reads the declared inputs: plans builds (resolving relative paths
/// against the suite package), looks up existing images, reads manifests.
pub(crate) async fn read(
    setup: &SetupContext,
    images: &[ImageInput],
    bases: &[ImageSpec],
    stages: &[Stage],
    provider_fingerprint: String,
) -> Result<Inputs, EnvironmentError> {
    let mut engine = Engine::default();
    let (to_build, found) = sort_images(images, &mut engine).await?;
    let Planned { plans, bases_only } = plan_builds(setup, &mut engine, &to_build, bases).await?;
    let (stages, manifests) = read_stages(setup, stages).await?;
    let images = found
        .iter()
        .map(|image| {
            let digest = format!("{}@{}", image.reference(), image.id());
            (image.name().to_owned(), digest)
        })
        .chain(plans.iter().map(|plan| {
            let name = plan.spec().name().to_owned();
            (name, plan.input_digest().to_owned())
        }))
        .collect();
    Ok(Inputs {
        plans,
        bases_only,
        found,
        stages,
        fingerprint: EnvironmentFingerprint {
            provider: provider_fingerprint,
            images,
            manifests,
        },
    })
}

/// The Docker engine, connected on first need: a suite whose images are
/// all built already needs none.
#[derive(Default)]
struct Engine(Option<Docker>);

impl Engine {
    async fn get(&mut self) -> Result<Docker, EnvironmentError> {
        if let Some(docker) = &self.0 {
            return Ok(docker.clone());
        }
        Ok(self.0.insert(crate::docker::connect().await?).clone())
    }
}

/// The declared images sorted into those to build (the suite's, and the
/// fallbacks of third-party images not in the engine) and those there
/// already (built ones, third-party ones the engine has).
async fn sort_images(
    images: &[ImageInput],
    engine: &mut Engine,
) -> Result<(Vec<ImageSpec>, Vec<ImageRef>), EnvironmentError> {
    let mut to_build = Vec::new();
    let mut found = Vec::new();
    for image in images {
        match image {
            ImageInput::Build(spec) => to_build.push(spec.clone()),
            ImageInput::Built(image) => found.push(image.clone()),
            ImageInput::ThirdParty(third) => {
                let docker = engine.get().await?;
                match ImageRef::external(&docker, &third.name, &third.reference).await {
                    Ok(image) => found.push(image),
                    Err(ImageError::NotLocal { .. }) if third.fallback.is_some() => {
                        to_build.push(third.fallback.clone().expect("checked"));
                    }
                    Err(source) => {
                        return Err(EnvironmentError::ThirdParty {
                            name: third.name.clone(),
                            reference: third.reference.clone(),
                            source: Box::new(source),
                        });
                    }
                }
            }
        }
    }
    Ok((to_build, found))
}

/// What to build, in build order.
struct Planned {
    plans: Vec<BuildPlan>,
    /// Names of the plans only built to start others from.
    bases_only: Vec<String>,
}

/// Plans the images to build with the base images they start from (a
/// base no image starts from, directly or through another base, is left
/// out), their paths resolved against the suite's package.
async fn plan_builds(
    setup: &SetupContext,
    engine: &mut Engine,
    to_build: &[ImageSpec],
    bases: &[ImageSpec],
) -> Result<Planned, EnvironmentError> {
    if to_build.is_empty() {
        return Ok(Planned {
            plans: Vec::new(),
            bases_only: Vec::new(),
        });
    }
    let resolved: Vec<ImageSpec> = to_build
        .iter()
        .chain(bases)
        .map(|spec| spec.resolved_against(setup.package_dir()))
        .collect();
    let mut plans = Builder::new(engine.get().await?)
        .plan_all(&resolved)
        .await
        .map_err(Box::new)?;
    let base_plans = plans.split_off(to_build.len());
    let needed = needed_bases(&plans, &base_plans);
    let mut bases_only = Vec::new();
    for plan in base_plans {
        if needed.iter().any(|name| name == plan.spec().name()) {
            bases_only.push(plan.spec().name().to_owned());
            plans.push(plan);
        }
    }
    Ok(Planned { plans, bases_only })
}

/// Each stage's manifests, in order, and their digest.
async fn read_stages(
    setup: &SetupContext,
    stages: &[Stage],
) -> Result<(Vec<(String, Vec<Manifest>)>, String), EnvironmentError> {
    let resolved: Vec<Stage> = stages
        .iter()
        .map(|stage| Stage {
            name: stage.name.clone(),
            paths: stage.paths.iter().map(|path| setup.resolve(path)).collect(),
        })
        .collect();
    let read = tokio::task::spawn_blocking(move || {
        let mut hasher = Sha256::new();
        let mut read = Vec::new();
        for stage in resolved {
            let manifests = read_manifests(&stage.paths)?;
            hasher.update(stage.name.as_bytes());
            hasher.update([0]);
            for manifest in &manifests {
                hasher.update(serde_json::to_vec(&manifest.object).expect("an object serialises"));
                hasher.update([0]);
            }
            read.push((stage.name, manifests));
        }
        Ok::<_, crate::deploy::ManifestError>((read, hex::encode(hasher.finalize())))
    })
    .await
    .expect("manifest task")?;
    Ok(read)
}

/// The base images (of `bases`) that `images` start from, directly or
/// through other bases.
fn needed_bases(images: &[BuildPlan], bases: &[BuildPlan]) -> Vec<String> {
    let mut needed: Vec<String> = Vec::new();
    let mut pending: Vec<String> = images
        .iter()
        .flat_map(|plan| plan.bases().iter().cloned())
        .collect();
    while let Some(name) = pending.pop() {
        if needed.contains(&name) {
            continue;
        }
        if let Some(plan) = images
            .iter()
            .chain(bases)
            .find(|plan| plan.spec().name() == name)
        {
            pending.extend(plan.bases().iter().cloned());
        }
        needed.push(name);
    }
    needed
}
