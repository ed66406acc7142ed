//! The pinned kind, built from the Go module proxy into the cache when no
//! kind is installed, so the kind provider needs only Go, as the node image
//! and the local provider's components do.

use std::path::{Path, PathBuf};

use crate::cluster::components::{self as local, ComponentBuildError};

use super::cli::{PINNED_VERSION, pinned_binary};

/// The module pinning kind and its dependencies (`kind-cli/`).
const MODULE: &[(&str, &str)] = &[
    ("go.mod", include_str!("../../../kind-cli/go.mod")),
    ("go.sum", include_str!("../../../kind-cli/go.sum")),
    ("tools.go", include_str!("../../../kind-cli/tools.go")),
];

/// Writes the pinned kind's module into `<cache>/src/kind-<pinned>` and
/// returns its folder: its go.sum verifies kind's module zip, whose
/// `images/base` files the node image is made from.
pub(crate) fn write_module(cache: &Path) -> Result<PathBuf, ComponentBuildError> {
    local::write_module(cache, &format!("kind-{PINNED_VERSION}"), MODULE)
}

/// kind's module line in the pinned go.sum (its content hash), for digests.
pub(crate) fn module_sum() -> &'static str {
    let (_, sums) = MODULE[1];
    sums.lines()
        .find(|line| line.starts_with(&format!("sigs.k8s.io/kind {PINNED_VERSION} h1:")))
        .unwrap_or_default()
}

/// Builds the pinned kind into `cache` unless it is there (one process at
/// a time per cache); `say` gets the progress lines. Returns its path.
pub async fn ensure_built(
    cache: &Path,
    say: &(dyn Fn(&str) + Send + Sync),
) -> Result<PathBuf, ComponentBuildError> {
    let binary = pinned_binary(cache);
    if binary.is_file() {
        return Ok(binary);
    }
    if kindling_harness::requirement::find_program("go").is_none() {
        return Err(ComponentBuildError::NoGo {
            what: format!("kind {PINNED_VERSION}"),
            cache: cache.to_owned(),
        });
    }
    local::create_dir(&cache.join("bin"))?;
    let _lock = crate::cluster::lock::exclusive(
        &cache.join("kind-build.lock"),
        "building the pinned kind",
        "waiting for another process to build the pinned kind",
    )
    .await?;
    if binary.is_file() {
        return Ok(binary);
    }
    let module = write_module(cache)?;
    let target = cache.join(format!("bin/kind-build-{PINNED_VERSION}"));
    local::build_into(
        &format!("kind {PINNED_VERSION}"),
        "about 20 s on two cores with Go's module cache warm, a minute or two without",
        &module,
        &target,
        |out| {
            (
                vec![
                    "build".to_owned(),
                    "-trimpath".to_owned(),
                    "-buildvcs=false".to_owned(),
                    "-o".to_owned(),
                    out.join("kind").display().to_string(),
                    "sigs.k8s.io/kind".to_owned(),
                ],
                Vec::new(),
            )
        },
        say,
    )
    .await?;
    std::fs::rename(target.join("kind"), &binary).map_err(|source| ComponentBuildError::Write {
        path: binary.clone(),
        source,
    })?;
    Ok(binary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_build_script_and_the_module_pin_the_same_kind() {
        let script = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/kind/build.sh"),
        )
        .unwrap();
        assert!(
            script.contains(&format!("KIND_VERSION={PINNED_VERSION}\n")),
            "fixtures/kind/build.sh pins another kind than {PINNED_VERSION}"
        );
        let (_, module) = MODULE[0];
        assert!(
            module.contains(&format!("sigs.k8s.io/kind {PINNED_VERSION}\n")),
            "kind-cli/go.mod requires another kind than {PINNED_VERSION}"
        );
        assert!(
            module_sum().contains(" h1:"),
            "kind-cli/go.sum has no hash of kind's module"
        );
    }
}
