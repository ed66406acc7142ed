//! Fingerprints of input files, for [`crate::Suite::fingerprint`].

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// A fingerprint's input could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FingerprintError {
    /// A path given to [`fingerprint_paths`] does not exist.
    #[error(
        "fingerprint input `{}` does not exist (relative paths are relative to the suite package, `{}`): fix the path given to `fingerprint_paths`",
        path.display(),
        base.display()
    )]
    Missing {
        /// The path as given.
        path: PathBuf,
        /// The suite package's directory, which relative paths are joined to.
        base: PathBuf,
    },
    /// A file, directory or link under an input exists but cannot be read.
    #[error("cannot read fingerprint input `{}`", path.display())]
    Read {
        /// The file, directory or link, joined to the suite package's directory.
        path: PathBuf,
        /// The I/O error reading it.
        #[source]
        source: std::io::Error,
    },
}

/// SHA-256 over the names and contents of `paths`: files, or directories
/// read recursively in name order. A symbolic link counts by its target's
/// name and is not followed, so a link loop is read once. Relative paths
/// are relative to the suite package's directory (`CARGO_MANIFEST_DIR`
/// when cargo or nextest runs the suite, else the current directory).
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// std::fs::write(dir.path().join("deployment.yaml"), "kind: Deployment").unwrap();
/// let fingerprint = kindling_harness::fingerprint_paths([dir.path()]).unwrap();
/// assert_eq!(fingerprint.len(), 64);
/// assert!(kindling_harness::fingerprint_paths(["/nonexistent/input"]).is_err());
/// ```
pub fn fingerprint_paths<P: AsRef<Path>>(
    paths: impl IntoIterator<Item = P>,
) -> Result<String, FingerprintError> {
    let base = crate::identity::package_dir(None);
    let mut hasher = Sha256::new();
    for path in paths {
        let path = path.as_ref();
        let absolute = base.join(path);
        if std::fs::symlink_metadata(&absolute).is_err() {
            return Err(FingerprintError::Missing {
                path: path.to_owned(),
                base,
            });
        }
        hasher.update(path.to_string_lossy().as_bytes());
        hasher.update([0]);
        add(&mut hasher, &absolute, Path::new(""))?;
    }
    Ok(hex::encode(hasher.finalize()))
}

fn add(hasher: &mut Sha256, path: &Path, relative: &Path) -> Result<(), FingerprintError> {
    let read_error = |source| FingerprintError::Read {
        path: path.to_owned(),
        source,
    };
    let meta = std::fs::symlink_metadata(path).map_err(read_error)?;
    hasher.update(relative.to_string_lossy().as_bytes());
    hasher.update([0]);
    if meta.file_type().is_symlink() {
        let target = std::fs::read_link(path).map_err(read_error)?;
        hasher.update(b"link:");
        hasher.update(target.to_string_lossy().as_bytes());
    } else if meta.is_dir() {
        hasher.update(b"dir:");
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(read_error)?
            .map(|entry| entry.map(|entry| entry.path()))
            .collect::<Result<_, _>>()
            .map_err(read_error)?;
        entries.sort();
        for entry in entries {
            let name = entry.file_name().map(PathBuf::from).unwrap_or_default();
            add(hasher, &entry, &relative.join(name))?;
        }
    } else {
        hasher.update(b"file:");
        let bytes = std::fs::read(path).map_err(read_error)?;
        hasher.update((bytes.len() as u64).to_le_bytes());
        hasher.update(&bytes);
    }
    hasher.update([0]);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_file_changes_the_fingerprint() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.yaml"), "one").unwrap();
        let before = fingerprint_paths([dir.path()]).unwrap();
        assert_eq!(before, fingerprint_paths([dir.path()]).unwrap());
        std::fs::write(dir.path().join("a.yaml"), "two").unwrap();
        assert_ne!(before, fingerprint_paths([dir.path()]).unwrap());
        std::fs::write(dir.path().join("b.yaml"), "").unwrap();
        let added = fingerprint_paths([dir.path()]).unwrap();
        std::fs::remove_file(dir.path().join("b.yaml")).unwrap();
        assert_ne!(added, fingerprint_paths([dir.path()]).unwrap());
    }

    #[test]
    fn a_missing_path_is_named_and_symlink_loops_are_read_once() {
        let error = fingerprint_paths(["/nonexistent/kindling-input"]).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("`/nonexistent/kindling-input` does not exist"),
            "{error}"
        );
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(dir.path(), dir.path().join("loop")).unwrap();
        std::fs::write(dir.path().join("file"), "x").unwrap();
        let first = fingerprint_paths([dir.path()]).unwrap();
        assert_eq!(first, fingerprint_paths([dir.path()]).unwrap());
    }

    #[test]
    fn relative_paths_resolve_against_the_package() {
        // Unit tests run with CARGO_MANIFEST_DIR = crates/kindling.
        assert!(fingerprint_paths(["src/fingerprint.rs"]).is_ok());
    }
}
