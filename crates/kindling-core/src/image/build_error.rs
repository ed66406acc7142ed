//! How building an image fails: one error for planning, making recipes
//! and running builds, so those parts need not import each other.

use std::path::PathBuf;

use super::ImageError;
use super::context::ContextError;
use super::go_inputs::GoInputsError;
use super::reference::ReferenceError;
use super::spec::TagPolicyError;

/// Lines of build output kept for an error.
pub(super) const TAIL_LINES: usize = 50;

/// Building an image failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The Dockerfile the spec names is not there.
    #[error(
        "Dockerfile `{path}` of image `{image}` does not exist: fix the ImageSpec's dockerfile path"
    )]
    MissingDockerfile {
        /// The image's name in its spec.
        image: String,
        /// The path in question.
        path: PathBuf,
    },
    /// The Dockerfile exists but could not be read.
    #[error("failed to read Dockerfile `{path}` of image `{image}`")]
    ReadDockerfile {
        /// The image's name in its spec.
        image: String,
        /// The path in question.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The build context could not be read or streamed.
    #[error("cannot read the build context of image `{image}`")]
    Context {
        /// The image's name in its spec.
        image: String,
        /// The underlying error.
        #[source]
        source: Box<ContextError>,
    },
    /// The name and tag make no valid image reference.
    #[error("image `{image}` gets an invalid reference")]
    Reference {
        /// The image's name in its spec.
        image: String,
        /// The underlying error.
        #[source]
        source: ReferenceError,
    },
    /// The engine ran the build and a step failed.
    #[error("image `{image}` failed to build{}: {message}\n--- last {} lines of build output ---\n{tail}", step.as_ref().map(|s| format!(" at `{s}`")).unwrap_or_default(), TAIL_LINES)]
    Failed {
        /// The image's name in its spec.
        image: String,
        /// The Dockerfile step that failed, when the output names one.
        step: Option<String>,
        /// The engine's error message.
        message: String,
        /// The last lines of the build output.
        tail: String,
    },
    /// The engine failed (not a build step): the connection, the request.
    #[error("the engine failed while building image `{image}`")]
    Engine {
        /// The image's name in its spec.
        image: String,
        /// The underlying error.
        #[source]
        source: bollard::errors::Error,
    },
    /// Under `KINDLING_TAG_POLICY=fixed` the prebuilt image is not in the engine.
    #[error(
        "image `{reference}` (KINDLING_TAG_POLICY=fixed) is not in the local engine: build it in the pipeline before the tests, or unset KINDLING_TAG_POLICY"
    )]
    FixedMissing {
        /// The image reference.
        reference: String,
        /// The underlying error.
        #[source]
        source: ImageError,
    },
    /// The image just built could not be inspected.
    #[error("cannot look up image `{reference}` after building it")]
    Lookup {
        /// The image reference.
        reference: String,
        /// The underlying error.
        #[source]
        source: ImageError,
    },
    /// `KINDLING_TAG_POLICY` or `KINDLING_IMAGE_TAG` holds a bad value.
    #[error(transparent)]
    Policy(TagPolicyError),
    /// A Go-binary image's directory is not a Go module.
    #[error(
        "image `{image}` is a Go binary but `{}` holds no go.mod: point ImageSpec::go_binary at the module's directory",
        path.display()
    )]
    NotAGoModule {
        /// The image's name in its spec.
        image: String,
        /// The path in question.
        path: PathBuf,
    },
    /// `go` could not be run.
    #[error("failed to run `go build` for image `{image}`: is Go installed and on PATH?")]
    GoMissing {
        /// The image's name in its spec.
        image: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// What a Go binary's build reads outside its module could not be read.
    #[error("cannot read the Go toolchain and the local modules image `{image}` is built from")]
    GoInputs {
        /// The image's name in its spec.
        image: String,
        /// The underlying error.
        #[source]
        source: Box<GoInputsError>,
    },
    /// `go build` failed.
    #[error("`go build {package}` in `{}` failed for image `{image}`:\n{stderr}", module.display())]
    GoBuild {
        /// The image's name in its spec.
        image: String,
        /// The Go module's directory.
        module: PathBuf,
        /// The package built.
        package: String,
        /// What the command wrote to stderr.
        stderr: String,
    },
    /// The binary of a static-binary image could not be read.
    #[error("cannot read the binary `{}` of image `{image}`", path.display())]
    ReadBinary {
        /// The image's name in its spec.
        image: String,
        /// The path in question.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A Dockerfile starts `FROM kindling:<name>` for a name this build lacks.
    #[error(
        "the Dockerfile of image `{image}` starts `FROM kindling:{base}`, but this build has no image `{base}` (it has {}): declare it, or name a real image",
        if known.is_empty() { "none".to_owned() } else { known.iter().map(|name| format!("`{name}`")).collect::<Vec<_>>().join(", ") }
    )]
    UnknownBase {
        /// The image's name in its spec.
        image: String,
        /// The `kindling:<name>` base named.
        base: String,
        /// The names this build has.
        known: Vec<String>,
    },
    /// Images start from each other in a cycle.
    #[error(
        "the images {} start from each other (`FROM kindling:<name>`) in a cycle: one of them must start from a real image",
        images.iter().map(|name| format!("`{name}`")).collect::<Vec<_>>().join(", ")
    )]
    BaseCycle {
        /// The images in the cycle.
        images: Vec<String>,
    },
    /// The Debian tools a recipe image needs could not be obtained.
    #[error("cannot obtain the tools image `{image}` needs")]
    Tool {
        /// The image's name in its spec.
        image: String,
        /// The underlying error.
        #[source]
        source: Box<crate::apt::PackageError>,
    },
    /// `mmdebstrap` failed to make a Debian root filesystem.
    #[error("mmdebstrap failed to make the root filesystem of image `{image}`:\n{stderr}")]
    Rootfs {
        /// The image's name in its spec.
        image: String,
        /// What the command wrote to stderr.
        stderr: String,
    },
    /// No work directory could be made for the build.
    #[error("cannot make a work directory to build image `{image}`")]
    WorkDir {
        /// The image's name in its spec.
        image: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}
