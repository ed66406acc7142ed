//! Small helpers every layer of the harness uses; this module imports no
//! other module of the crate.

use std::fs::{File, OpenOptions};
use std::future::Future;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;
use std::pin::Pin;
use std::time::Duration;
/// A boxed future that can move between threads: what setups, hooks and
/// test bodies return.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;
/// The message a panicking task left, or why it ended otherwise.
pub fn panic_message(error: tokio::task::JoinError) -> String {
    match error.try_into_panic() {
        Ok(payload) => payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_else(|| "a non-string payload".to_owned()),
        Err(error) => error.to_string(),
    }
}

/// Group and other permission bits: none of kindling's own files and
/// directories keeps any (state, artifacts and logs hold tokens, Secrets'
/// names and whatever a service logged).
const SHARED_BITS: u32 = 0o077;

/// Creates `dir` and its missing parents, each new one `0700`; an existing
/// `dir` (from an older kindling, which left it `0755`) loses its group
/// and other permissions. Existing parents are left as they are: they may
/// not be kindling's.
pub fn create_private_dir_all(dir: &Path) -> std::io::Result<()> {
    create_missing_dirs(dir)?;
    restrict(dir, &std::fs::metadata(dir)?.permissions())
}

/// [`create_private_dir_all`] for `root` and for every folder from it down
/// to `dir`: for a tree that is kindling's from `root` on (the state
/// home). A `dir` outside `root` is only [`create_private_dir_all`]'d.
pub fn create_private_tree(root: &Path, dir: &Path) -> std::io::Result<()> {
    let Ok(below) = dir.strip_prefix(root) else {
        return create_private_dir_all(dir);
    };
    let mut current = root.to_path_buf();
    create_private_dir_all(&current)?;
    for component in below.components() {
        current.push(component);
        create_private_dir_all(&current)?;
    }
    Ok(())
}

/// Creates `dir` and its missing parents, each new one `0700`, changing
/// none that exists.
fn create_missing_dirs(dir: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Opens `path` with `options`, a new file `0600`; an existing one loses
/// its group and other permissions.
pub fn open_private(path: &Path, options: &mut OpenOptions) -> std::io::Result<File> {
    let file = options.mode(0o600).open(path)?;
    let permissions = file.metadata()?.permissions();
    if permissions.mode() & SHARED_BITS != 0 {
        file.set_permissions(std::fs::Permissions::from_mode(
            permissions.mode() & !SHARED_BITS,
        ))?;
    }
    Ok(file)
}

/// Writes `bytes` to `path` as `std::fs::write` does, the file `0600`
/// (an existing file's group and other permissions are removed first).
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    open_private(
        path,
        OpenOptions::new().write(true).create(true).truncate(true),
    )?
    .write_all(bytes)
}

/// Writes `bytes` to `path` so a reader sees the old or the new content,
/// never a mix. The file is `0600`, missing parents `0700`; an existing
/// parent is left as it is (`KINDLING_JUNIT` may name a folder of the
/// user's): a caller that owns it makes it private with
/// [`create_private_dir_all`].
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(parent) = path
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
    {
        create_missing_dirs(parent)?;
    }
    // Unique per write: two writers of one process never share it.
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let write = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let temporary = path.with_extension(format!("tmp-{}-{write}", std::process::id()));
    // Left by a crash, or planted: a new file, never one that exists (a
    // symbolic link there would send the write elsewhere).
    match std::fs::remove_file(&temporary) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => return Err(error),
        _ => {}
    }
    let mut file = open_private(&temporary, OpenOptions::new().write(true).create_new(true))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&temporary, path)
}

fn restrict(path: &Path, permissions: &std::fs::Permissions) -> std::io::Result<()> {
    if permissions.mode() & SHARED_BITS == 0 {
        return Ok(());
    }
    std::fs::set_permissions(
        path,
        std::fs::Permissions::from_mode(permissions.mode() & !SHARED_BITS),
    )
}

/// A duration as seconds with two decimals, as reports print it.
pub(crate) fn seconds(duration: Duration) -> String {
    format!("{:.2}s", duration.as_secs_f64())
}

/// The first 8 letters and digits of a run id, lower case: the run's part
/// of a Kubernetes object name.
pub fn run_name_part(run_id: &str) -> String {
    run_id
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(8)
        .collect::<String>()
        .to_ascii_lowercase()
}

/// `text` lower case with every character other than a letter or digit
/// made `-`, at most `limit` characters: usable in a Kubernetes object name
/// once its ends are trimmed of `-`.
pub fn name_part(text: &str, limit: usize) -> String {
    text.to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(limit)
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The permission bits of `path` (not following a last symbolic link).
    pub(crate) fn mode(path: &Path) -> u32 {
        std::fs::symlink_metadata(path)
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    }

    /// Sets the permission bits of `path`, as an older kindling left them.
    pub(crate) fn plant_mode(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn new_folders_are_0700_and_an_existing_one_is_repaired() {
        let root = tempfile::tempdir().unwrap();
        let parent = root.path().join("existing");
        std::fs::create_dir(&parent).unwrap();
        plant_mode(&parent, 0o755);
        let leaf = parent.join("a/b");
        create_private_dir_all(&leaf).unwrap();
        assert_eq!(mode(&parent.join("a")), 0o700);
        assert_eq!(mode(&leaf), 0o700);
        assert_eq!(mode(&parent), 0o755, "a parent that may not be kindling's");

        plant_mode(&leaf, 0o775);
        create_private_dir_all(&leaf).unwrap();
        assert_eq!(mode(&leaf), 0o700);
        create_private_dir_all(&parent).unwrap();
        assert_eq!(mode(&parent), 0o700);
    }

    #[test]
    fn a_tree_of_kindlings_is_private_from_its_root_down() {
        let root = tempfile::tempdir().unwrap();
        let home = root.path().join("home");
        std::fs::create_dir_all(home.join("kind/a")).unwrap();
        for dir in [root.path(), &home, &home.join("kind"), &home.join("kind/a")] {
            plant_mode(dir, 0o755);
        }
        create_private_tree(&home, &home.join("kind/a/logs")).unwrap();
        for dir in ["kind", "kind/a", "kind/a/logs"] {
            assert_eq!(mode(&home.join(dir)), 0o700, "{dir}");
        }
        assert_eq!(mode(&home), 0o700);
        assert_eq!(mode(root.path()), 0o755, "above the root");

        let elsewhere = root.path().join("elsewhere/x");
        create_private_tree(&home, &elsewhere).unwrap();
        assert_eq!(mode(&elsewhere), 0o700);
    }

    #[test]
    fn written_files_are_0600_also_over_a_wider_existing_one() {
        let root = tempfile::tempdir().unwrap();
        let written = root.path().join("written");
        write_private(&written, b"one").unwrap();
        assert_eq!(mode(&written), 0o600);
        plant_mode(&written, 0o644);
        write_private(&written, b"two").unwrap();
        assert_eq!(mode(&written), 0o600);
        assert_eq!(std::fs::read(&written).unwrap(), b"two");

        let appended = root.path().join("appended");
        std::fs::write(&appended, "old\n").unwrap();
        plant_mode(&appended, 0o666);
        let mut file = open_private(&appended, OpenOptions::new().append(true)).unwrap();
        file.write_all(b"new\n").unwrap();
        assert_eq!(mode(&appended), 0o600);
        assert_eq!(std::fs::read_to_string(&appended).unwrap(), "old\nnew\n");
    }

    #[test]
    fn atomic_writes_are_0600_in_new_0700_folders_and_replace_a_wider_file() {
        let root = tempfile::tempdir().unwrap();
        plant_mode(root.path(), 0o755);
        let path = root.path().join("new/state.json");
        write_atomically(&path, b"{}").unwrap();
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&root.path().join("new")), 0o700);
        assert_eq!(mode(root.path()), 0o755, "a folder that may be the user's");

        std::fs::write(&path, "old").unwrap();
        plant_mode(&path, 0o644);
        write_atomically(&path, b"{\"new\":1}").unwrap();
        assert_eq!(mode(&path), 0o600);
        assert_eq!(std::fs::read(&path).unwrap(), b"{\"new\":1}");
    }

    #[test]
    fn an_atomic_write_never_follows_a_link_planted_at_its_temporary_name() {
        let root = tempfile::tempdir().unwrap();
        let victim = root.path().join("victim");
        std::fs::write(&victim, "untouched").unwrap();
        let path = root.path().join("state.json");
        // At every name the next writes of this process may use.
        for write in 0..1000 {
            let temporary = path.with_extension(format!("tmp-{}-{write}", std::process::id()));
            std::os::unix::fs::symlink(&victim, &temporary).unwrap();
        }
        write_atomically(&path, b"{}").unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched");
        assert_eq!(std::fs::read(&path).unwrap(), b"{}");
        assert_eq!(mode(&path), 0o600);
    }
}
