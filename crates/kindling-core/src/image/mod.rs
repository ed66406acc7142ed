//! Images: built with exact returned references, tagged by their inputs,
//! and loaded into node image stores or pushed to a registry.

mod archive;
mod build;
mod build_error;
mod context;
mod dockerignore;
mod engine_storage;
mod go_inputs;
mod layout;
mod loader;
mod missing_layers;
mod plan;
mod push;
mod recipes;
mod reference;
mod spec;
#[cfg(test)]
mod test_tree;
mod transfer;
mod whole_archive;

pub use build::{BuildError, BuildOutcome, Builder};
pub use context::ContextError;
pub use go_inputs::GoInputsError;
pub use layout::LayoutError;
pub use loader::{LoadError, LoadReport, Loader, NodeLoad};
pub use plan::BuildPlan;
pub use push::{PushError, Pusher, Registry, RegistryCredentials};
pub use reference::{NormalizedReference, ReferenceError, normalize};
pub use spec::{ImageSpec, TagPolicy, TagPolicyError};

use bollard::Docker;
use serde::Serialize;

pub(crate) use archive::TarStream;

/// The tar archive of everything under `dir` (modes kept, owned by root),
/// streamed as it is written: what `PUT /containers/{id}/archive` takes.
#[cfg_attr(not(feature = "kind"), allow(dead_code))]
pub(crate) fn tar_of(dir: &std::path::Path) -> Result<TarStream, ContextError> {
    Ok(context::BuildContext::scan(dir, None)?.stream_tar(None))
}

/// An image that exists in the local engine, by its exact normalised
/// reference and its image ID.
///
/// Only a build ([`Builder`]), a lookup of a local image
/// ([`ImageRef::existing`]) or a declared third-party image
/// ([`ImageRef::external`]) makes one; there is no way to make one from a
/// bare string, so a manifest can only name an image that exists.
///
/// ```compile_fail
/// let image = kindling::image::ImageRef { name: "api".into(), reference: todo!(), id: "sha256:0".into() };
/// ```
#[must_use = "an ImageRef is the only way to name this image in manifests and loads"]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageRef {
    name: String,
    reference: NormalizedReference,
    id: String,
}

/// Looking up an image failed.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The reference is not a valid image reference.
    #[error("invalid image reference")]
    Reference(#[from] ReferenceError),
    /// The local engine has no image under the reference (or could not be
    /// asked).
    #[error(
        "image `{reference}` is not in the local engine: get it first (`docker pull {reference}` where a registry is reachable, or `docker load -i <file>.tar`)"
    )]
    NotLocal {
        /// The normalised reference looked up.
        reference: String,
        /// The Docker client's error from inspecting it.
        #[source]
        source: bollard::errors::Error,
    },
    /// The engine found the image but reported no image ID for it.
    #[error("the engine reports no ID for image `{reference}`")]
    NoId {
        /// The normalised reference looked up.
        reference: String,
    },
}

impl ImageRef {
    /// The logical name manifests use.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The exact reference every node holds and every manifest gets.
    pub fn reference(&self) -> &NormalizedReference {
        &self.reference
    }

    /// The image ID (`sha256:` config digest).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// A third-party image (a database, a proxy) that must already be in the
    /// local engine: there is no registry to pull from during a load.
    pub async fn external(
        docker: &Docker,
        name: impl Into<String>,
        reference: &str,
    ) -> Result<ImageRef, ImageError> {
        Self::existing(docker, name, reference).await
    }

    /// The images an environment recorded, read back (`deserialize_with`):
    /// each reference is normalised again, so a record edited by hand to a
    /// reference that is not one fails to read (and the setup runs again).
    pub(crate) fn deserialize_recorded<'de, D>(deserializer: D) -> Result<Vec<ImageRef>, D::Error>
    where
        D: serde::Deserializer<'de>,
    {
        #[derive(serde::Deserialize)]
        struct Recorded {
            name: String,
            reference: String,
            id: String,
        }
        let recorded: Vec<Recorded> = serde::Deserialize::deserialize(deserializer)?;
        recorded
            .into_iter()
            .map(|image| {
                Ok(ImageRef {
                    reference: normalize(&image.reference).map_err(serde::de::Error::custom)?,
                    name: image.name,
                    id: image.id,
                })
            })
            .collect()
    }

    /// An image that exists locally under `reference`, named `name`.
    pub async fn existing(
        docker: &Docker,
        name: impl Into<String>,
        reference: &str,
    ) -> Result<ImageRef, ImageError> {
        let reference = normalize(reference)?;
        let inspected = docker
            .inspect_image(reference.as_str())
            .await
            .map_err(|source| ImageError::NotLocal {
                reference: reference.to_string(),
                source,
            })?;
        let id = inspected.id.ok_or_else(|| ImageError::NoId {
            reference: reference.to_string(),
        })?;
        Ok(ImageRef {
            name: name.into(),
            reference,
            id,
        })
    }
}

impl std::fmt::Display for ImageRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.reference, self.id)
    }
}
