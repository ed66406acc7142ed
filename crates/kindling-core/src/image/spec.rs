//! What an image is built from, and how its tag is chosen.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// How built images are tagged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagPolicy {
    /// A digest of every build input: an unchanged image is neither rebuilt nor reloaded.
    Content,
    /// `<name>-<user>-<git short sha>[-dirty]-<unix seconds>`: a new tag every run.
    Unique,
    /// A tag a CI pipeline built beforehand; the image must exist locally.
    Fixed(String),
}

/// A tag policy in `KINDLING_TAG_POLICY` (with `KINDLING_IMAGE_TAG` for `fixed`) is invalid.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum TagPolicyError {
    /// `KINDLING_TAG_POLICY` is none of `content`, `unique` and `fixed`.
    #[error(
        "invalid value `{value}` in KINDLING_TAG_POLICY: expected one of `content`, `unique`, `fixed`"
    )]
    Unknown {
        /// The value given, trimmed.
        value: String,
    },
    /// `KINDLING_TAG_POLICY=fixed` without a `KINDLING_IMAGE_TAG`.
    #[error(
        "KINDLING_TAG_POLICY=fixed needs KINDLING_IMAGE_TAG, the tag the pipeline built (e.g. `ci-1234`)"
    )]
    MissingFixedTag,
}

impl TagPolicy {
    /// The policy from `KINDLING_TAG_POLICY` and `KINDLING_IMAGE_TAG`, or `default` when unset.
    pub fn from_env(default: TagPolicy) -> Result<TagPolicy, TagPolicyError> {
        crate::config::Config::current().tag_policy(default)
    }

    pub(crate) fn from_values(
        policy: Option<&str>,
        tag: Option<&str>,
        default: TagPolicy,
    ) -> Result<TagPolicy, TagPolicyError> {
        match policy.map(str::trim).filter(|p| !p.is_empty()) {
            None => Ok(default),
            Some("content") => Ok(TagPolicy::Content),
            Some("unique") => Ok(TagPolicy::Unique),
            Some("fixed") => match tag.map(str::trim).filter(|t| !t.is_empty()) {
                Some(tag) => Ok(TagPolicy::Fixed(tag.to_owned())),
                None => Err(TagPolicyError::MissingFixedTag),
            },
            Some(other) => Err(TagPolicyError::Unknown {
                value: other.to_owned(),
            }),
        }
    }
}

/// An image to build: a logical name (what manifests refer to), a build
/// context, a Dockerfile (which may lie outside the context), build
/// arguments, a target stage and a platform; or a Go main package built
/// on the host into a static binary in a `FROM scratch` image.
///
/// Relative paths are relative to the suite package's directory when an
/// [`crate::Environment`] builds the image, else to the current directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSpec {
    pub(crate) name: String,
    pub(crate) context: PathBuf,
    pub(crate) dockerfile: Option<PathBuf>,
    pub(crate) build_args: BTreeMap<String, String>,
    pub(crate) target: Option<String>,
    pub(crate) platform: Option<String>,
    pub(crate) recipe: Recipe,
    /// Where kindling's own images go instead of `localhost/kindling`.
    pub(crate) namespace: Option<&'static str>,
}

/// How an image is made from its inputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Recipe {
    /// `docker build` of the context with its Dockerfile.
    Dockerfile,
    /// `go build` of the main package in the module (the context) on the
    /// host, then a `FROM scratch` image of the binary.
    GoBinary { package: String },
    /// A `FROM scratch` image of a static binary built elsewhere.
    StaticBinary { binary: PathBuf },
    /// A Debian root filesystem made by `mmdebstrap` on the host and
    /// imported as an image: a base for Dockerfiles on a machine that
    /// cannot pull one.
    DebianRootfs {
        release: String,
        variant: String,
        packages: Vec<String>,
    },
}

impl ImageSpec {
    /// An image named `name` built from `context` with `context/Dockerfile`.
    pub fn new(name: impl Into<String>, context: impl Into<PathBuf>) -> Self {
        ImageSpec {
            name: name.into(),
            context: context.into(),
            dockerfile: None,
            build_args: BTreeMap::new(),
            target: None,
            platform: None,
            recipe: Recipe::Dockerfile,
            namespace: None,
        }
    }

    /// The Go module in `module_dir` built on the host (`CGO_ENABLED=0 go
    /// build -trimpath`, package `.` unless [`ImageSpec::go_package`] says
    /// otherwise) into a static binary `/<name>`, the entrypoint of a
    /// `FROM scratch` image. Needs Go on the host, no registry. The content
    /// tag is a digest of everything the build reads: the module's files
    /// (after its `.dockerignore`); every other local module, each read the
    /// same way (the folders its `replace` directives name; when `go` finds
    /// a `go.work`, which `GOWORK` decides as for `go`, that file, its
    /// `go.work.sum`, every `use` member and the folders their `replace`
    /// directives name); the toolchain's version and the `go env` settings
    /// that change the binary (`GOFLAGS`, `GOOS`, `GOARCH` and its level such
    /// as `GOAMD64`, `GOEXPERIMENT`, `GOTOOLCHAIN`, ...). So an unchanged
    /// build is not even compiled again, and a changed one always is. A
    /// `replace` of a required module, or a `use`, naming a folder that is
    /// not there fails the plan naming the file, the line and the path.
    pub fn go_binary(name: impl Into<String>, module_dir: impl Into<PathBuf>) -> Self {
        let mut spec = ImageSpec::new(name, module_dir);
        spec.recipe = Recipe::GoBinary {
            package: ".".to_owned(),
        };
        spec
    }

    /// The main package of a [`ImageSpec::go_binary`] image, relative to
    /// its module, e.g. `./cmd/server`. Makes any spec a Go binary one.
    pub fn go_package(mut self, package: impl Into<String>) -> Self {
        self.recipe = Recipe::GoBinary {
            package: package.into(),
        };
        self
    }

    /// A `FROM scratch` image of the static binary at `binary` (built
    /// elsewhere), as `/<name>` and its entrypoint. The content tag is a
    /// digest of the binary.
    pub fn static_binary(name: impl Into<String>, binary: impl Into<PathBuf>) -> Self {
        let binary = binary.into();
        let mut spec = ImageSpec::new(
            name,
            binary.parent().map(Path::to_path_buf).unwrap_or_default(),
        );
        spec.recipe = Recipe::StaticBinary { binary };
        spec
    }

    /// A minimal Debian `release` (e.g. `bookworm`) with apt, made on the host
    /// by `mmdebstrap --variant=apt` from Debian's archive and imported as
    /// an image: the base a Dockerfile of the same build names as `FROM
    /// kindling:<name>` where no base image can be pulled. Needs
    /// `mmdebstrap` on `PATH` (installed with apt-get when missing, as root
    /// on Debian unless `KINDLING_INSTALL=never`). About 20 s and 70 MB the
    /// first time.
    pub fn debian(name: impl Into<String>, release: impl Into<String>) -> Self {
        let mut spec = ImageSpec::new(name, PathBuf::new());
        spec.recipe = Recipe::DebianRootfs {
            release: release.into(),
            variant: "apt".to_owned(),
            packages: Vec::new(),
        };
        spec
    }

    /// Debian packages to put into a [`ImageSpec::debian`] root filesystem.
    pub fn debian_packages<S: Into<String>>(
        mut self,
        packages: impl IntoIterator<Item = S>,
    ) -> Self {
        if let Recipe::DebianRootfs {
            packages: included, ..
        } = &mut self.recipe
        {
            included.extend(packages.into_iter().map(Into::into));
        }
        self
    }

    /// The Debian variant of a [`ImageSpec::debian`] root filesystem
    /// (mmdebstrap's `--variant`, `apt` unless set).
    #[cfg_attr(not(feature = "kind"), allow(dead_code))]
    pub(crate) fn debian_variant(mut self, name: &str) -> Self {
        if let Recipe::DebianRootfs { variant, .. } = &mut self.recipe {
            name.clone_into(variant);
        }
        self
    }

    /// This spec built into `<namespace>/<name>` instead of
    /// `localhost/kindling/<name>`: images kindling makes for itself keep
    /// out of the names a suite's images get.
    #[cfg_attr(not(feature = "kind"), allow(dead_code))]
    pub(crate) fn in_namespace(mut self, namespace: &'static str) -> Self {
        self.namespace = Some(namespace);
        self
    }

    /// This spec under another logical name.
    pub(crate) fn renamed(mut self, name: &str) -> ImageSpec {
        name.clone_into(&mut self.name);
        self
    }

    /// This spec with relative paths resolved against `base`.
    pub(crate) fn resolved_against(&self, base: &Path) -> ImageSpec {
        let mut spec = self.clone();
        spec.context = base.join(&self.context);
        spec.dockerfile = self.dockerfile.as_ref().map(|path| base.join(path));
        if let Recipe::StaticBinary { binary } = &mut spec.recipe {
            *binary = base.join(&*binary);
        }
        spec
    }

    /// A Dockerfile elsewhere (relative paths are relative to the current directory).
    pub fn dockerfile(mut self, path: impl Into<PathBuf>) -> Self {
        self.dockerfile = Some(path.into());
        self
    }

    /// Passes the build argument `key=value` to the Dockerfile build.
    pub fn build_arg(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.build_args.insert(key.into(), value.into());
        self
    }

    /// The stage to build in a multi-stage Dockerfile.
    pub fn target(mut self, stage: impl Into<String>) -> Self {
        self.target = Some(stage.into());
        self
    }

    /// e.g. `linux/amd64`.
    pub fn platform(mut self, platform: impl Into<String>) -> Self {
        self.platform = Some(platform.into());
        self
    }

    /// The logical name manifests refer to the image by (`kindling:<name>`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The build context directory: for a Go binary the module's, for a
    /// static binary the binary's, empty for a Debian root filesystem.
    pub fn context(&self) -> &Path {
        &self.context
    }

    /// The Dockerfile's path.
    pub fn dockerfile_path(&self) -> PathBuf {
        self.dockerfile
            .clone()
            .unwrap_or_else(|| self.context.join("Dockerfile"))
    }

    /// The repository kindling builds this image into: `localhost/kindling/<name>`.
    /// Kept with its `localhost/` prefix everywhere, as containerd keeps it.
    pub fn repository(&self) -> String {
        format!(
            "{}/{}",
            self.namespace.unwrap_or("localhost/kindling"),
            self.name
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_policies_from_values() {
        let content = TagPolicy::Content;
        assert_eq!(
            TagPolicy::from_values(None, None, content.clone()),
            Ok(TagPolicy::Content)
        );
        assert_eq!(
            TagPolicy::from_values(Some("unique"), None, content.clone()),
            Ok(TagPolicy::Unique)
        );
        assert_eq!(
            TagPolicy::from_values(Some("fixed"), Some("ci-7"), content.clone()),
            Ok(TagPolicy::Fixed("ci-7".to_owned()))
        );
        assert_eq!(
            TagPolicy::from_values(Some("fixed"), None, content.clone()),
            Err(TagPolicyError::MissingFixedTag)
        );
        let error = TagPolicy::from_values(Some("newest"), None, content).unwrap_err();
        assert!(error.to_string().contains(
            "`newest` in KINDLING_TAG_POLICY: expected one of `content`, `unique`, `fixed`"
        ));
    }

    #[test]
    fn dockerfile_defaults_to_the_context() {
        let spec = ImageSpec::new("api", "/src/api");
        assert_eq!(spec.dockerfile_path(), PathBuf::from("/src/api/Dockerfile"));
        assert_eq!(
            spec.clone()
                .dockerfile("/elsewhere/Dockerfile")
                .dockerfile_path(),
            PathBuf::from("/elsewhere/Dockerfile")
        );
        assert_eq!(spec.repository(), "localhost/kindling/api");
    }
}
