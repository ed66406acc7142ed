//! [`Stack`]: a reusable part of an environment (a service with its
//! database and migrations, say) declared once as a Rust value, so every
//! suite that needs it deploys the same thing instead of a copy of its
//! YAML.

use std::path::{Path, PathBuf};

use super::inputs::{ImageInput, Stage};
use super::secrets::GeneratedSecret;
use crate::image::ImageSpec;
use crate::tls::TlsSecret;

/// A named part of an environment: images, base images, generated and TLS
/// secrets, and stages, with relative paths relative to `dir` (where the
/// stack is declared, not the suite that uses it).
///
/// ```
/// use kindling::Stack;
/// use kindling::image::ImageSpec;
///
/// // In a crate every suite depends on, for example `e2e/stacks`:
/// pub fn orders() -> Stack {
///     Stack::new("orders", concat!(env!("CARGO_MANIFEST_DIR"), "/orders"))
///         .image(ImageSpec::go_binary("orders", "../../services/orders"))
///         .stage("orders", "manifests")
/// }
/// # let _ = orders();
/// ```
#[derive(Debug, Clone)]
pub struct Stack {
    name: String,
    dir: PathBuf,
    pub(super) images: Vec<ImageInput>,
    pub(super) bases: Vec<ImageSpec>,
    pub(super) secrets: Vec<GeneratedSecret>,
    pub(super) tls: Vec<TlsSecret>,
    pub(super) stages: Vec<Stage>,
}

impl Stack {
    /// An empty stack named `name`, its relative paths relative to `dir`.
    pub fn new(name: impl Into<String>, dir: impl Into<PathBuf>) -> Self {
        Stack {
            name: name.into(),
            dir: dir.into(),
            images: Vec::new(),
            bases: Vec::new(),
            secrets: Vec::new(),
            tls: Vec::new(),
            stages: Vec::new(),
        }
    }

    /// The stack's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The directory its relative paths are relative to.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// An image, as [`crate::EnvironmentBuilder::image`].
    pub fn image(mut self, image: impl Into<ImageInput>) -> Self {
        let image = match image.into() {
            ImageInput::Build(spec) => ImageInput::Build(spec.resolved_against(&self.dir)),
            ImageInput::ThirdParty(third) => {
                ImageInput::ThirdParty(third.resolved_against(&self.dir))
            }
            built => built,
        };
        self.images.push(image);
        self
    }

    /// A base image, as [`crate::EnvironmentBuilder::base_image`].
    pub fn base_image(mut self, spec: ImageSpec) -> Self {
        self.bases.push(spec.resolved_against(&self.dir));
        self
    }

    /// A generated Secret, as [`crate::EnvironmentBuilder::secret`].
    pub fn secret(mut self, secret: GeneratedSecret) -> Self {
        self.secrets.push(secret);
        self
    }

    /// A TLS Secret, as [`crate::EnvironmentBuilder::tls`].
    pub fn tls(mut self, secret: TlsSecret) -> Self {
        self.tls.push(secret);
        self
    }

    /// Manifests of stage `name`, as [`crate::EnvironmentBuilder::stage`].
    pub fn stage(mut self, name: impl Into<String>, path: impl Into<PathBuf>) -> Self {
        let name = name.into();
        let path = self.dir.join(path.into());
        match self.stages.iter_mut().find(|stage| stage.name == name) {
            Some(stage) => stage.paths.push(path),
            None => self.stages.push(Stage {
                name,
                paths: vec![path],
            }),
        }
        self
    }
}
