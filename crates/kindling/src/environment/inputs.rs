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
    let mut specs = Vec::new();
    let mut found = Vec::new();
    let mut digests = BTreeMap::new();
    let mut docker: Option<Docker> = None;
    for image in images {
        match image {
            ImageInput::Build(spec) => specs.push(spec.clone()),
            ImageInput::Built(image) => {
                digests.insert(
                    image.name().to_owned(),
                    format!("{}@{}", image.reference(), image.id()),
                );
                found.push(image.clone());
            }
            ImageInput::ThirdParty(third) => {
                let engine = match &docker {
                    Some(engine) => engine.clone(),
                    None => docker.insert(crate::docker::connect().await?).clone(),
                };
                match ImageRef::external(&engine, &third.name, &third.reference).await {
                    Ok(image) => {
                        digests.insert(
                            image.name().to_owned(),
                            format!("{}@{}", image.reference(), image.id()),
                        );
                        found.push(image);
                    }
                    Err(ImageError::NotLocal { .. }) if third.fallback.is_some() => {
                        specs.push(third.fallback.clone().expect("checked"));
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
    let mut plans = Vec::new();
    let mut bases_only = Vec::new();
    if !specs.is_empty() {
        let engine = match docker {
            Some(engine) => engine,
            None => crate::docker::connect().await?,
        };
        let builder = Builder::new(engine);
        let mut all: Vec<ImageSpec> = specs
            .iter()
            .map(|spec| spec.resolved_against(setup.package_dir()))
            .collect();
        for base in bases {
            all.push(base.resolved_against(setup.package_dir()));
        }
        plans = builder.plan_all(&all).await.map_err(Box::new)?;
        // A base image is built only when an image to build starts from it.
        let needed = needed_bases(&plans, specs.len());
        let mut kept = Vec::new();
        for (index, plan) in plans.into_iter().enumerate() {
            let name = plan.spec().name().to_owned();
            if index >= specs.len() {
                if !needed.contains(&name) {
                    continue;
                }
                bases_only.push(name.clone());
            }
            digests.insert(name, plan.input_digest().to_owned());
            kept.push(plan);
        }
        plans = kept;
    }
    let resolved: Vec<Stage> = stages
        .iter()
        .map(|stage| Stage {
            name: stage.name.clone(),
            paths: stage.paths.iter().map(|path| setup.resolve(path)).collect(),
        })
        .collect();
    let (stages, manifest_digest) = tokio::task::spawn_blocking(move || {
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
    Ok(Inputs {
        plans,
        bases_only,
        found,
        stages,
        fingerprint: EnvironmentFingerprint {
            provider: provider_fingerprint,
            images: digests,
            manifests: manifest_digest,
        },
    })
}

/// The base images (plans past `first_base`) that images to build start
/// from, directly or through other bases.
fn needed_bases(plans: &[BuildPlan], first_base: usize) -> Vec<String> {
    let mut needed: Vec<String> = Vec::new();
    let mut pending: Vec<String> = plans[..first_base]
        .iter()
        .flat_map(|plan| plan.bases().iter().cloned())
        .collect();
    while let Some(name) = pending.pop() {
        if needed.contains(&name) {
            continue;
        }
        if let Some(plan) = plans.iter().find(|plan| plan.spec().name() == name) {
            pending.extend(plan.bases().iter().cloned());
        }
        needed.push(name);
    }
    needed
}
