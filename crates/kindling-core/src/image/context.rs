//! The build context of an image: the entries of a context directory that
//! `.dockerignore` keeps, selected the way the docker CLI selects them
//! (moby's `patternmatcher` and `TarWithOptions`). The context feeds the
//! content digest behind image tags and becomes the tar body of
//! `POST /build`.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use super::dockerignore::{DOCKERIGNORE, Ignore, IgnoreError, go_clean};
use sha2::{Digest as _, Sha256};

/// Prefixed to every digest; bump the version when the framing changes so
/// that old tags are not reused for a different reading of the context.
const DIGEST_DOMAIN: &[u8] = b"kindling build context v1\0";

/// One included entry of a build context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ContextEntry {
    /// Path relative to the context root, with forward slashes and no
    /// leading `./`.
    pub relative: String,
    pub absolute: PathBuf,
    /// Permission bits of `st_mode` (`mode & 0o7777`).
    pub mode: u32,
    pub kind: EntryKind,
}

/// What a [`ContextEntry`] is. Symlinks are never followed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum EntryKind {
    File { size: u64 },
    Directory,
    Symlink { target: String },
}

/// A build context after `.dockerignore`, entries sorted by `relative`.
#[derive(Debug, Clone)]
pub(crate) struct BuildContext {
    pub root: PathBuf,
    pub entries: Vec<ContextEntry>,
}

/// Reading the context failed.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    /// The spec's context path is not a directory.
    #[error(
        "build context `{path}` does not exist or is not a directory: check the ImageSpec's context path"
    )]
    MissingContext {
        /// The context path given.
        path: PathBuf,
    },
    /// A file of the context could not be read (or changed while it was
    /// sent).
    #[error("failed to read `{path}` in the build context")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// A `.dockerignore` line is not a valid pattern.
    #[error("invalid pattern `{pattern}` in `{file}` line {line}")]
    BadPattern {
        /// The `.dockerignore` file.
        file: PathBuf,
        /// Its line, from 1.
        line: usize,
        /// The pattern as written.
        pattern: String,
        /// Why it is invalid.
        #[source]
        source: globset::Error,
    },
}

impl BuildContext {
    /// A context with nothing in it.
    pub(crate) fn empty() -> Self {
        BuildContext {
            root: PathBuf::new(),
            entries: Vec::new(),
        }
    }

    /// Scans `root`. `dockerfile` is the Dockerfile's path relative to root
    /// when it lies inside the context (always included), else `None`.
    pub(crate) fn scan(
        root: &Path,
        dockerfile: Option<&str>,
    ) -> Result<BuildContext, ContextError> {
        match fs::metadata(root) {
            Ok(metadata) if metadata.is_dir() => {}
            Ok(_) => {
                return Err(ContextError::MissingContext {
                    path: root.to_path_buf(),
                });
            }
            Err(error)
                if matches!(
                    error.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                ) =>
            {
                return Err(ContextError::MissingContext {
                    path: root.to_path_buf(),
                });
            }
            Err(source) => return Err(read_error(root, source)),
        }

        let mut ignore = Ignore::load(root).map_err(|error| match error {
            IgnoreError::Read { file, source } => read_error(&file, source),
            IgnoreError::BadPattern {
                file,
                line,
                pattern,
                source,
            } => ContextError::BadPattern {
                file,
                line,
                pattern,
                source,
            },
        })?;
        ignore.keep(DOCKERIGNORE);
        if let Some(dockerfile) = dockerfile.and_then(context_relative) {
            ignore.keep(&dockerfile);
        }
        let mut walker = Walker {
            ignore,
            entries: Vec::new(),
        };
        walker.walk(root, "", &[], false)?;
        let mut entries = walker.entries;
        entries.sort_by(|a, b| a.relative.cmp(&b.relative));
        Ok(BuildContext {
            root: root.to_path_buf(),
            entries,
        })
    }

    /// Feeds path, kind, mode and contents (or link target) of every entry
    /// into `hasher`. Every variable-length field is length-prefixed, so
    /// distinct contexts cannot produce the same byte stream.
    pub(crate) fn feed_digest(&self, hasher: &mut Sha256) -> Result<(), ContextError> {
        hasher.update(DIGEST_DOMAIN);
        hasher.update((self.entries.len() as u64).to_le_bytes());
        let mut buffer = vec![0_u8; 64 * 1024];
        for entry in &self.entries {
            let tag: u8 = match entry.kind {
                EntryKind::File { .. } => b'f',
                EntryKind::Directory => b'd',
                EntryKind::Symlink { .. } => b'l',
            };
            hasher.update([tag]);
            feed_bytes(hasher, entry.relative.as_bytes());
            hasher.update(entry.mode.to_le_bytes());
            match &entry.kind {
                EntryKind::Directory => {}
                EntryKind::Symlink { target } => feed_bytes(hasher, target.as_bytes()),
                EntryKind::File { size } => {
                    hasher.update(size.to_le_bytes());
                    let mut reader = SizedReader::open(&entry.absolute, *size)
                        .map_err(|source| read_error(&entry.absolute, source))?;
                    loop {
                        let read = reader
                            .read(&mut buffer)
                            .map_err(|source| read_error(&entry.absolute, source))?;
                        if read == 0 {
                            break;
                        }
                        hasher.update(&buffer[..read]);
                    }
                }
            }
        }
        Ok(())
    }
}

pub(super) fn read_error(path: &Path, source: io::Error) -> ContextError {
    ContextError::Read {
        path: path.to_path_buf(),
        source,
    }
}
fn feed_bytes(hasher: &mut Sha256, bytes: &[u8]) {
    hasher.update((bytes.len() as u64).to_le_bytes());
    hasher.update(bytes);
}
/// Streams a file whose size was recorded by the scan and fails if the file
/// no longer has that size: a tar header announcing the wrong size corrupts
/// the archive, and a digest over a half-written file names nothing.
pub(super) struct SizedReader {
    file: File,
    remaining: u64,
}

impl SizedReader {
    pub(super) fn open(path: &Path, size: u64) -> io::Result<SizedReader> {
        Ok(SizedReader {
            file: File::open(path)?,
            remaining: size,
        })
    }
}

fn changed_while_reading() -> io::Error {
    io::Error::other(
        "the file changed size while the build context was read: run again once nothing writes to it",
    )
}

impl Read for SizedReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 {
            let mut probe = [0_u8; 1];
            return match self.file.read(&mut probe)? {
                0 => Ok(0),
                _ => Err(changed_while_reading()),
            };
        }
        if buf.is_empty() {
            return Ok(0);
        }
        let limit = usize::try_from(self.remaining).map_or(buf.len(), |left| left.min(buf.len()));
        let read = self.file.read(&mut buf[..limit])?;
        if read == 0 {
            return Err(changed_while_reading());
        }
        self.remaining -= read as u64;
        Ok(read)
    }
}

/// The Dockerfile path as a cleaned context-relative path, or `None` when
/// it does not name something inside the context.
fn context_relative(dockerfile: &str) -> Option<String> {
    let cleaned = go_clean(dockerfile);
    let outside =
        cleaned == "." || cleaned == ".." || cleaned.starts_with("../") || cleaned.starts_with('/');
    (!outside).then_some(cleaned)
}

struct Walker {
    ignore: Ignore,
    entries: Vec<ContextEntry>,
}

impl Walker {
    /// Walks `dir` (`relative` to the root, empty for the root). `parent`
    /// holds the pattern matches of `dir` itself; `excluded` says `dir` is
    /// excluded and is only walked because something below it may be
    /// re-included.
    fn walk(
        &mut self,
        dir: &Path,
        relative: &str,
        parent: &[bool],
        excluded: bool,
    ) -> Result<(), ContextError> {
        let items = match fs::read_dir(dir) {
            Ok(items) => items,
            // Excluded directories are often unreadable (a database volume
            // owned by root); the docker CLI logs walk errors and goes on.
            Err(_) if excluded => return Ok(()),
            Err(source) => return Err(read_error(dir, source)),
        };
        for item in items {
            let item = item.map_err(|source| read_error(dir, source))?;
            let absolute = item.path();
            let name = item.file_name();
            let lossy = name.to_string_lossy();
            let child = if relative.is_empty() {
                lossy.into_owned()
            } else {
                format!("{relative}/{lossy}")
            };
            let metadata =
                fs::symlink_metadata(&absolute).map_err(|source| read_error(&absolute, source))?;
            let file_type = metadata.file_type();
            let (excluded_here, info) = self.ignore.matches(&child, parent);

            if file_type.is_dir() {
                if !excluded_here {
                    self.push(
                        child.clone(),
                        absolute.clone(),
                        &metadata,
                        EntryKind::Directory,
                    )?;
                    self.walk(&absolute, &child, &info, false)?;
                } else if self.ignore.exceptions_may_match_below(&format!("{child}/")) {
                    self.walk(&absolute, &child, &info, true)?;
                }
                continue;
            }
            if excluded_here {
                continue;
            }
            let kind = if file_type.is_symlink() {
                let target =
                    fs::read_link(&absolute).map_err(|source| read_error(&absolute, source))?;
                let target = target.to_str().ok_or_else(|| {
                    read_error(
                        &absolute,
                        io::Error::new(
                            io::ErrorKind::InvalidData,
                            "the symlink target is not valid UTF-8: change it or exclude the link in .dockerignore",
                        ),
                    )
                })?;
                EntryKind::Symlink {
                    target: target.to_owned(),
                }
            } else if file_type.is_file() {
                EntryKind::File {
                    size: metadata.len(),
                }
            } else {
                // Sockets, FIFOs and devices are no build input.
                continue;
            };
            self.push(child, absolute, &metadata, kind)?;
        }
        Ok(())
    }

    fn push(
        &mut self,
        relative: String,
        absolute: PathBuf,
        metadata: &fs::Metadata,
        kind: EntryKind,
    ) -> Result<(), ContextError> {
        let name_is_utf8 = absolute
            .file_name()
            .is_some_and(|name| name.to_str().is_some());
        if !name_is_utf8 {
            return Err(read_error(
                &absolute,
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    "the file name is not valid UTF-8: rename it or exclude it in .dockerignore",
                ),
            ));
        }
        self.entries.push(ContextEntry {
            relative,
            absolute,
            mode: permission_bits(metadata),
            kind,
        });
        Ok(())
    }
}

#[cfg(unix)]
fn permission_bits(metadata: &fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    metadata.permissions().mode() & 0o7777
}

#[cfg(not(unix))]
fn permission_bits(_metadata: &fs::Metadata) -> u32 {
    // What the docker CLI sends from Windows for every entry.
    0o755
}
#[cfg(test)]
mod tests {
    use super::*;

    use crate::image::test_tree::{TREE, relatives, tree, write};

    fn digest(root: &Path, dockerfile: Option<&str>) -> String {
        let context = BuildContext::scan(root, dockerfile).unwrap();
        let mut hasher = Sha256::new();
        context.feed_digest(&mut hasher).unwrap();
        hex::encode(hasher.finalize())
    }

    #[test]
    fn entries_carry_kind_size_and_absolute_path() {
        let dir = tree("");
        let context = BuildContext::scan(dir.path(), Some("Dockerfile")).unwrap();
        let readme = context
            .entries
            .iter()
            .find(|entry| entry.relative == "README.md")
            .unwrap();
        assert_eq!(readme.kind, EntryKind::File { size: 9 });
        assert_eq!(readme.absolute, dir.path().join("README.md"));
        let src = context
            .entries
            .iter()
            .find(|entry| entry.relative == "src")
            .unwrap();
        assert_eq!(src.kind, EntryKind::Directory);
    }

    #[test]
    fn bad_pattern_names_file_and_line() {
        let dir = tree("# fine\n*.log\n[unclosed\n");
        let error = BuildContext::scan(dir.path(), None).unwrap_err();
        match &error {
            ContextError::BadPattern {
                file,
                line,
                pattern,
                ..
            } => {
                assert_eq!(file, &dir.path().join(DOCKERIGNORE));
                assert_eq!(*line, 3);
                assert_eq!(pattern, "[unclosed");
            }
            other => panic!("expected BadPattern, got {other:?}"),
        }
        assert!(error.to_string().contains("`[unclosed`"), "{error}");
    }

    #[test]
    fn missing_context_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let error = BuildContext::scan(&missing, None).unwrap_err();
        assert!(
            matches!(&error, ContextError::MissingContext { path } if path == &missing),
            "{error:?}"
        );
        assert!(
            error
                .to_string()
                .contains(&format!("`{}`", missing.display())),
            "{error}"
        );

        let file = dir.path().join("file");
        fs::write(&file, b"x").unwrap();
        let error = BuildContext::scan(&file, None).unwrap_err();
        assert!(
            matches!(error, ContextError::MissingContext { .. }),
            "{error:?}"
        );
    }

    #[test]
    fn digest_is_stable_and_independent_of_creation_order_and_mtime() {
        let first = tree("*.log\n");
        let second = tempfile::tempdir().unwrap();
        write(second.path(), DOCKERIGNORE, b"*.log\n");
        for relative in TREE.iter().rev() {
            write(second.path(), relative, relative.as_bytes());
        }
        let before = digest(first.path(), Some("Dockerfile"));
        assert_eq!(before, digest(first.path(), Some("Dockerfile")));
        assert_eq!(before, digest(second.path(), Some("Dockerfile")));

        let file = File::options()
            .write(true)
            .open(first.path().join("README.md"))
            .unwrap();
        file.set_modified(std::time::SystemTime::UNIX_EPOCH)
            .unwrap();
        drop(file);
        assert_eq!(before, digest(first.path(), Some("Dockerfile")));
    }

    #[test]
    fn digest_changes_with_contents_and_additions() {
        let dir = tree("*.log\n");
        let original = digest(dir.path(), Some("Dockerfile"));

        write(dir.path(), "src/main.rs", b"fn main() {}");
        let edited = digest(dir.path(), Some("Dockerfile"));
        assert_ne!(original, edited);

        write(dir.path(), "src/new.rs", b"");
        let added = digest(dir.path(), Some("Dockerfile"));
        assert_ne!(edited, added);

        fs::create_dir(dir.path().join("empty")).unwrap();
        assert_ne!(added, digest(dir.path(), Some("Dockerfile")));
    }

    #[test]
    fn digest_ignores_excluded_files() {
        let dir = tree("*.log\nbuild\n");
        let original = digest(dir.path(), Some("Dockerfile"));
        write(dir.path(), "app.log", b"another line");
        write(dir.path(), "build/out.bin", b"rebuilt");
        write(dir.path(), "build/new.bin", b"new");
        assert_eq!(original, digest(dir.path(), Some("Dockerfile")));
    }

    #[test]
    fn digest_separates_path_and_contents() {
        let one = tempfile::tempdir().unwrap();
        write(one.path(), "ab", b"c");
        let two = tempfile::tempdir().unwrap();
        write(two.path(), "a", b"bc");
        assert_ne!(digest(one.path(), None), digest(two.path(), None));
    }

    #[cfg(unix)]
    #[test]
    fn digest_changes_with_mode() {
        use std::os::unix::fs::PermissionsExt as _;

        let dir = tree("");
        let original = digest(dir.path(), Some("Dockerfile"));
        let script = dir.path().join("src/main.rs");
        fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
        let context = BuildContext::scan(dir.path(), Some("Dockerfile")).unwrap();
        let entry = context
            .entries
            .iter()
            .find(|entry| entry.relative == "src/main.rs")
            .unwrap();
        assert_eq!(entry.mode, 0o755);
        assert_ne!(original, digest(dir.path(), Some("Dockerfile")));
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_are_recorded_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "real/file", b"data");
        std::os::unix::fs::symlink("real", dir.path().join("link")).unwrap();
        let context = BuildContext::scan(dir.path(), None).unwrap();
        assert_eq!(relatives(&context), ["link", "real", "real/file"]);
        assert_eq!(
            context.entries[0].kind,
            EntryKind::Symlink {
                target: "real".to_owned()
            }
        );
        let before = digest(dir.path(), None);
        fs::remove_file(dir.path().join("link")).unwrap();
        std::os::unix::fs::symlink("elsewhere", dir.path().join("link")).unwrap();
        assert_ne!(before, digest(dir.path(), None));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn non_utf8_names_fail_only_when_included() {
        use std::os::unix::ffi::OsStrExt as _;

        let dir = tempfile::tempdir().unwrap();
        let name = std::ffi::OsStr::from_bytes(b"bad\xffname.tmp");
        fs::write(dir.path().join(name), b"x").unwrap();
        write(dir.path(), DOCKERIGNORE, b"*.tmp\n");
        BuildContext::scan(dir.path(), None).unwrap();

        write(dir.path(), DOCKERIGNORE, b"");
        let error = BuildContext::scan(dir.path(), None).unwrap_err();
        assert!(matches!(error, ContextError::Read { .. }), "{error:?}");
    }
}
