//! Images a local cluster needs and no registry can give: the pod sandbox
//! (`pause`), CoreDNS and the smoke workload, each a static binary in a
//! `FROM scratch` image built here.

use std::path::{Path, PathBuf};

use bollard::Docker;

use crate::image::{BuildError, Builder, ImageRef, ImageSpec};

/// Building a component image failed.
#[derive(Debug, thiserror::Error)]
pub enum ComponentImageError {
    #[error("failed to run `go build` for `{package}`: is Go installed?")]
    GoMissing {
        package: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`go build` of `{package}` failed:\n{stderr}")]
    GoBuild { package: String, stderr: String },
    #[error("failed to prepare the build context `{path}`")]
    Context {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to build the `{image}` image")]
    Build {
        image: String,
        #[source]
        source: Box<BuildError>,
    },
}

/// The Go sources of the pause and smoke images, compiled into kindling
/// so the provider works from any directory.
const IMAGE_SOURCES: &[(&str, &str)] = &[
    (
        "go.mod",
        include_str!("../../../../../fixtures/local-cluster/images/go.mod"),
    ),
    (
        "pause/main.go",
        include_str!("../../../../../fixtures/local-cluster/images/pause/main.go"),
    ),
    (
        "smoke/main.go",
        include_str!("../../../../../fixtures/local-cluster/images/smoke/main.go"),
    ),
];

/// Writes the pause and smoke sources into `dir` (a Go module) and returns it.
pub fn write_image_sources(dir: &Path) -> Result<PathBuf, ComponentImageError> {
    for (relative, contents) in IMAGE_SOURCES {
        let path = dir.join(relative);
        create_dir(path.parent().expect("nested"))?;
        std::fs::write(&path, contents).map_err(|source| ComponentImageError::Context {
            path: path.clone(),
            source,
        })?;
    }
    Ok(dir.to_owned())
}

/// Builds the Go main package `package` of the module in `module_dir` as
/// a static binary and wraps it in an image named `name`.
pub async fn go_binary_image(
    docker: &Docker,
    name: &str,
    module_dir: &Path,
    package: &str,
    work: &Path,
) -> Result<ImageRef, ComponentImageError> {
    let context = work.join(name);
    create_dir(&context)?;
    let binary = context.join(name);
    let output = tokio::process::Command::new("go")
        .args(["build", "-trimpath", "-o"])
        .arg(&binary)
        .arg(package)
        .current_dir(module_dir)
        .env("CGO_ENABLED", "0")
        .output()
        .await
        .map_err(|source| ComponentImageError::GoMissing {
            package: package.to_owned(),
            source,
        })?;
    if !output.status.success() {
        return Err(ComponentImageError::GoBuild {
            package: package.to_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        });
    }
    scratch_image(docker, name, &context).await
}

/// Wraps an existing static binary (e.g. CoreDNS from the component cache)
/// in an image named `name`.
pub async fn binary_image(
    docker: &Docker,
    name: &str,
    binary: &Path,
    work: &Path,
) -> Result<ImageRef, ComponentImageError> {
    let context = work.join(name);
    create_dir(&context)?;
    let target = context.join(name);
    std::fs::copy(binary, &target).map_err(|source| ComponentImageError::Context {
        path: binary.to_owned(),
        source,
    })?;
    scratch_image(docker, name, &context).await
}

fn create_dir(path: &Path) -> Result<(), ComponentImageError> {
    std::fs::create_dir_all(path).map_err(|source| ComponentImageError::Context {
        path: path.to_owned(),
        source,
    })
}

async fn scratch_image(
    docker: &Docker,
    name: &str,
    context: &Path,
) -> Result<ImageRef, ComponentImageError> {
    let dockerfile = context.join("Dockerfile");
    std::fs::write(
        &dockerfile,
        format!("FROM scratch\nCOPY {name} /{name}\nENTRYPOINT [\"/{name}\"]\n"),
    )
    .map_err(|source| ComponentImageError::Context {
        path: dockerfile.clone(),
        source,
    })?;
    let built = Builder::new(docker.clone())
        .build(&ImageSpec::new(name, context))
        .await
        .map_err(|source| ComponentImageError::Build {
            image: name.to_owned(),
            source: Box::new(source),
        })?;
    Ok(built.image)
}
