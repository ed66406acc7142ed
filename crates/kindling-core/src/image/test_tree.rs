//! A small context directory for the tests of the build context, its
//! archive and `.dockerignore`.

use std::fs;
use std::path::Path;

use super::context::BuildContext;
use super::dockerignore::DOCKERIGNORE;

pub(super) const TREE: &[&str] = &[
    "Dockerfile",
    "README.md",
    "app.log",
    "rooted",
    "sub/rooted",
    "src/main.rs",
    "src/debug.log",
    "src/cache/x.tmp",
    "build/out.bin",
    "build/keep.txt",
    "docs/guide.md",
    "docker/api.Dockerfile",
    "docker/other.txt",
];

pub(super) fn write(root: &Path, relative: &str, contents: &[u8]) {
    let path = root.join(relative);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, contents).unwrap();
}

pub(super) fn tree(dockerignore: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for relative in TREE {
        write(dir.path(), relative, relative.as_bytes());
    }
    write(dir.path(), DOCKERIGNORE, dockerignore.as_bytes());
    dir
}

pub(super) fn relatives(context: &BuildContext) -> Vec<&str> {
    context
        .entries
        .iter()
        .map(|entry| entry.relative.as_str())
        .collect()
}
