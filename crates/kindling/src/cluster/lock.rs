//! Per-host locks on a cluster, so that concurrent suites, `kindling up`
//! and `kindling down` take turns.
//!
//! - The lifecycle lock (exclusive) guards bringing a cluster up and taking
//!   it down: two suites starting on a stopped cluster bring it up once.
//! - The users lock is held shared by every process that sets up or runs
//!   tests on the cluster (until it exits), and exclusively by whoever
//!   deletes it: `kindling down` waits for running setups and tests.
//!
//! Both are `flock` locks on files in the per-host state directory: the
//! kernel releases them when a process dies, so a killed holder never
//! leaves a lock behind.

use std::collections::HashMap;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read as _, Seek as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use kindling_harness::util::{create_private_tree, open_private};

/// Taking a lock failed (not: had to wait).
#[derive(Debug, thiserror::Error)]
#[error("failed to lock `{}`", path.display())]
pub struct LockError {
    /// The lock file.
    pub path: PathBuf,
    /// The error creating, opening or locking it.
    #[source]
    pub source: std::io::Error,
}

fn open(path: &Path) -> Result<File, LockError> {
    let error = |source| LockError {
        path: path.to_owned(),
        source,
    };
    if let Some(parent) = path.parent() {
        create_private_tree(&super::state_home(), parent).map_err(error)?;
    }
    open_private(
        path,
        OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true),
    )
    .map_err(error)
}

/// Who holds an exclusive lock, as its holder wrote it into the file.
fn holder(file: &mut File) -> String {
    let mut text = String::new();
    let _ = file.rewind();
    let _ = file.read_to_string(&mut text);
    text.trim().to_owned()
}

/// An exclusive lock, held until dropped.
#[derive(Debug)]
pub struct Exclusive {
    _file: File,
}

/// Takes the exclusive lock `path`, writing `purpose` into it for whoever
/// waits next. When another process holds it, `on_wait` is called first
/// with what that holder wrote (empty when it wrote nothing).
pub(crate) async fn exclusive(
    path: &Path,
    purpose: &str,
    on_wait: impl FnOnce(&str) + Send + 'static,
) -> Result<Exclusive, LockError> {
    let path = path.to_owned();
    let purpose = format!("pid {}: {purpose}", std::process::id());
    tokio::task::spawn_blocking(move || {
        let mut file = match held_shared(&path) {
            Some(file) => file,
            None => open(&path)?,
        };
        let error = |source| LockError {
            path: path.clone(),
            source,
        };
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                on_wait(&holder(&mut file));
                file.lock().map_err(error)?;
            }
            Err(TryLockError::Error(source)) => return Err(error(source)),
        }
        let _ = file.set_len(0);
        let _ = file.rewind();
        let _ = file.write_all(purpose.as_bytes());
        Ok(Exclusive { _file: file })
    })
    .await
    .expect("the lock task does not panic")
}

/// Files this process holds shared, by path: held until the process exits.
fn shared_files() -> &'static Mutex<HashMap<PathBuf, File>> {
    static FILES: OnceLock<Mutex<HashMap<PathBuf, File>>> = OnceLock::new();
    FILES.get_or_init(Mutex::default)
}

/// The shared lock this process holds on `path`, taken back from the
/// process-wide table so an exclusive lock can replace it (a second
/// descriptor would wait on this process's own shared lock forever).
fn held_shared(path: &Path) -> Option<File> {
    shared_files().lock().expect("shared locks").remove(path)
}

/// Holds the shared lock `path` until this process exits; taking it again
/// does nothing. When an exclusive holder has it, `on_wait` is called
/// first with what that holder wrote.
pub(crate) async fn hold_shared(
    path: &Path,
    on_wait: impl FnOnce(&str) + Send + 'static,
) -> Result<(), LockError> {
    if shared_files()
        .lock()
        .expect("shared locks")
        .contains_key(path)
    {
        return Ok(());
    }
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut file = open(&path)?;
        let error = |source| LockError {
            path: path.clone(),
            source,
        };
        match file.try_lock_shared() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                on_wait(&holder(&mut file));
                file.lock_shared().map_err(error)?;
            }
            Err(TryLockError::Error(source)) => return Err(error(source)),
        }
        shared_files()
            .lock()
            .expect("shared locks")
            .insert(path, file);
        Ok(())
    })
    .await
    .expect("the lock task does not panic")
}

/// The users lock of cluster `cluster` of provider `provider`: held
/// shared by every process setting up or testing on it, exclusively by
/// whoever deletes it.
pub fn users_lock_path(provider: &str, cluster: &str) -> PathBuf {
    super::state_home()
        .join("locks")
        .join(format!("{provider}-{cluster}.users.lock"))
}

/// Holds the users lock of a cluster for this process (a setup or tests
/// on it), saying on stderr what it waits for if the cluster is being
/// deleted.
pub(crate) async fn use_cluster(provider: &str, cluster: &str) -> Result<(), LockError> {
    let name = cluster.to_owned();
    hold_shared(&users_lock_path(provider, cluster), move |holder| {
        eprintln!(
            "kindling: waiting for cluster `{name}`: it is being taken down ({})",
            if holder.is_empty() {
                "by another process"
            } else {
                holder
            }
        );
    })
    .await
}

/// Waits until no other process sets up or runs tests on the cluster, and
/// keeps them out until dropped: for deleting it.
pub(crate) async fn delete_cluster_lock(
    provider: &str,
    cluster: &str,
) -> Result<Exclusive, LockError> {
    let name = cluster.to_owned();
    exclusive(
        &users_lock_path(provider, cluster),
        &format!("taking down cluster `{cluster}`"),
        move |_| {
            eprintln!(
                "kindling: waiting to take down cluster `{name}`: suites are setting up or running tests on it"
            );
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[test]
    fn an_exclusive_lock_waits_for_another_holder_and_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.lock");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        // Another process's lock: a second descriptor, as flock sees it.
        let other = open(&path).unwrap();
        other.lock().unwrap();
        std::fs::write(&path, "pid 1: bringing cluster `x` up").unwrap();
        let waited = Arc::new(Mutex::new(String::new()));
        let seen = waited.clone();
        let taken = Arc::new(AtomicBool::new(false));
        let flag = taken.clone();
        let task = runtime.spawn({
            let path = path.clone();
            async move {
                let lock = exclusive(&path, "taking it down", move |holder| {
                    *seen.lock().unwrap() = holder.to_owned();
                })
                .await
                .unwrap();
                flag.store(true, Ordering::SeqCst);
                lock
            }
        });
        // The holder is reported once the lock was found held: from then on
        // the task waits, and must not have taken it.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while waited.lock().unwrap().is_empty() {
            assert!(std::time::Instant::now() < deadline, "never waited");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(!taken.load(Ordering::SeqCst), "took a held lock");
        drop(other);
        let _lock = runtime.block_on(task).unwrap();
        assert_eq!(*waited.lock().unwrap(), "pid 1: bringing cluster `x` up");
        let written = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            written,
            format!("pid {}: taking it down", std::process::id())
        );
    }

    #[test]
    fn a_process_holding_the_shared_lock_can_take_it_exclusively() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.lock");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime
            .block_on(hold_shared(&path, |_| panic!("nobody holds it")))
            .unwrap();
        runtime
            .block_on(hold_shared(&path, |_| panic!("held already")))
            .unwrap();
        let other = open(&path).unwrap();
        assert!(other.try_lock().is_err(), "the shared lock is not held");
        let exclusive = runtime
            .block_on(exclusive(&path, "delete", |_| panic!("only we hold it")))
            .unwrap();
        assert!(other.try_lock_shared().is_err());
        drop(exclusive);
        assert!(other.try_lock().is_ok());
    }
}
