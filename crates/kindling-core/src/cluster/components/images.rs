//! Images a local cluster needs and no registry can give: the pod sandbox
//! (`pause`), CoreDNS and the smoke workload, each a static binary in a
//! `FROM scratch` image built here (see [`crate::image::ImageSpec::go_binary`]).

use std::path::{Path, PathBuf};

use bollard::Docker;

use crate::image::{BuildError, Builder, ImageRef, ImageSpec, TagPolicy};

/// Building a component image failed.
#[derive(Debug, thiserror::Error)]
pub enum ComponentImageError {
    /// A source file of the pause or smoke image could not be written.
    #[error("failed to write the image sources `{path}`")]
    Sources {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Building a component image failed.
    #[error("failed to build the `{image}` image")]
    Build {
        /// The image's name, e.g. `pause`.
        image: String,
        /// The build's error.
        #[source]
        source: Box<BuildError>,
    },
}

/// The Go sources of the pause and smoke images, compiled into kindling
/// so the provider works from any directory.
pub(crate) const IMAGE_SOURCES: &[(&str, &str)] = &[
    (
        "go.mod",
        include_str!("../../../local-cluster/images/go.mod"),
    ),
    (
        "pause/main.go",
        include_str!("../../../local-cluster/images/pause/main.go"),
    ),
    (
        "smoke/main.go",
        include_str!("../../../local-cluster/images/smoke/main.go"),
    ),
];

/// Writes the pause and smoke sources into `dir` (a Go module) and returns it.
pub fn write_image_sources(dir: &Path) -> Result<PathBuf, ComponentImageError> {
    for (relative, contents) in IMAGE_SOURCES {
        let path = dir.join(relative);
        let write = || -> std::io::Result<()> {
            std::fs::create_dir_all(path.parent().expect("nested"))?;
            // Rewritten only when different, so the content tag's input is stable.
            if std::fs::read(&path).ok().as_deref() != Some(contents.as_bytes()) {
                std::fs::write(&path, contents)?;
            }
            Ok(())
        };
        write().map_err(|source| ComponentImageError::Sources {
            path: path.clone(),
            source,
        })?;
    }
    Ok(dir.to_owned())
}

/// Builds `spec` with content tags, whatever `KINDLING_TAG_POLICY` says:
/// the cluster's own images are not the suite's.
pub async fn component_image(
    docker: &Docker,
    spec: ImageSpec,
) -> Result<ImageRef, ComponentImageError> {
    let image = spec.name().to_owned();
    Builder::new(docker.clone())
        .policy(TagPolicy::Content)
        .build(&spec)
        .await
        .map(|outcome| outcome.image)
        .map_err(|source| ComponentImageError::Build {
            image,
            source: Box::new(source),
        })
}
