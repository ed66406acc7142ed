//! Fingerprints of input files, for [`crate::Suite::fingerprint`].

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// SHA-256 over the names and contents of `paths` (files, or directories
/// read recursively in name order). A path that cannot be read counts by
/// its error, so a fingerprint never silently ignores an input.
pub fn fingerprint_paths(paths: &[PathBuf]) -> String {
    let mut hasher = Sha256::new();
    for path in paths {
        add(&mut hasher, path);
    }
    hex::encode(hasher.finalize())
}

fn add(hasher: &mut Sha256, path: &Path) {
    hasher.update(path.to_string_lossy().as_bytes());
    hasher.update([0]);
    if path.is_dir() {
        let mut entries: Vec<PathBuf> = match std::fs::read_dir(path) {
            Ok(entries) => entries.flatten().map(|entry| entry.path()).collect(),
            Err(error) => return hasher.update(error.to_string().as_bytes()),
        };
        entries.sort();
        for entry in entries {
            add(hasher, &entry);
        }
    } else {
        match std::fs::read(path) {
            Ok(bytes) => hasher.update(&bytes),
            Err(error) => hasher.update(error.to_string().as_bytes()),
        }
    }
    hasher.update([0]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_file_changes_the_fingerprint() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.yaml"), "one").unwrap();
        let before = fingerprint_paths(&[dir.path().to_owned()]);
        assert_eq!(before, fingerprint_paths(&[dir.path().to_owned()]));
        std::fs::write(dir.path().join("a.yaml"), "two").unwrap();
        assert_ne!(before, fingerprint_paths(&[dir.path().to_owned()]));
    }
}
