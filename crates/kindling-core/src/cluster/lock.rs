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
use std::time::{Duration, Instant};

use kindling_harness::util::{create_private_tree, open_private};

/// The variable bounding how long a lock is waited for.
pub const LOCK_TIMEOUT_VARIABLE: &str = "KINDLING_LOCK_TIMEOUT";

/// How often a waiting process says again what it waits for.
const REPORT_EVERY: Duration = Duration::from_secs(10);

/// Taking a lock failed, or its wait ran out.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Creating, opening or locking the file failed.
    #[error("failed to lock `{}`", path.display())]
    Io {
        /// The lock file.
        path: PathBuf,
        /// The error creating, opening or locking it.
        #[source]
        source: std::io::Error,
    },
    /// The lock was still held when `KINDLING_LOCK_TIMEOUT` ran out.
    #[error(
        "{what}: gave up after {}s: `{}` is held by {}; stop it, or wait longer (KINDLING_LOCK_TIMEOUT)",
        waited.as_secs(),
        path.display(),
        describe(holders)
    )]
    Timeout {
        /// What the wait was for, e.g. "waiting to take down cluster `kindling`".
        what: String,
        /// The lock file.
        path: PathBuf,
        /// How long it was waited for.
        waited: Duration,
        /// The processes holding it when the wait ended.
        holders: Vec<Holder>,
    },
    /// `KINDLING_LOCK_TIMEOUT` holds no duration.
    #[error(
        "KINDLING_LOCK_TIMEOUT=`{value}` is not valid: expected a positive duration such as `30s` or `5m`"
    )]
    InvalidTimeout {
        /// The value given.
        value: String,
    },
}

impl LockError {
    /// The lock file.
    pub fn path(&self) -> Option<&Path> {
        match self {
            LockError::Io { path, .. } | LockError::Timeout { path, .. } => Some(path),
            LockError::InvalidTimeout { .. } => None,
        }
    }
}

/// A process holding a lock, as `/proc/locks` and `/proc/<pid>` tell it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// The process id.
    pub pid: u32,
    /// Its command line (empty when it could not be read).
    pub command: String,
    /// What it wrote into the lock file (exclusive holders only).
    pub purpose: String,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pid {}", self.pid)?;
        if !self.command.is_empty() {
            write!(f, " (`{}`)", self.command)?;
        }
        if !self.purpose.is_empty() {
            write!(f, ": {}", self.purpose)?;
        }
        Ok(())
    }
}

fn describe(holders: &[Holder]) -> String {
    match holders {
        [] => "a process this user cannot see".to_owned(),
        holders => holders
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// `KINDLING_LOCK_TIMEOUT`: how long a lock is waited for (`None`: until
/// it is free).
pub fn lock_timeout() -> Result<Option<Duration>, LockError> {
    crate::config::Config::current().lock_timeout()
}

pub(crate) fn parse_timeout(value: &str) -> Result<Duration, LockError> {
    match humantime::parse_duration(value.trim()) {
        Ok(duration) if !duration.is_zero() => Ok(duration),
        _ => Err(LockError::InvalidTimeout {
            value: value.to_owned(),
        }),
    }
}

/// The check of `KINDLING_LOCK_TIMEOUT`'s value, for the harness's variable table.
pub(crate) fn check_timeout_variable(value: &str) -> Result<(), String> {
    if value.trim().is_empty() {
        return Ok(());
    }
    parse_timeout(value)
        .map(drop)
        .map_err(|_| "a positive duration such as `30s` or `5m`".to_owned())
}

fn open(path: &Path) -> Result<File, LockError> {
    let error = |source| LockError::Io {
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

/// What an exclusive holder wrote into the lock file.
fn purpose(file: &mut File) -> String {
    let mut text = String::new();
    let _ = file.rewind();
    let _ = file.read_to_string(&mut text);
    text.trim().to_owned()
}

/// The other processes holding a `flock` on `file`, from `/proc/locks`.
fn holders(file: &mut File) -> Vec<Holder> {
    use std::os::unix::fs::MetadataExt as _;
    let Ok(metadata) = file.metadata() else {
        return Vec::new();
    };
    let dev = metadata.dev();
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    let id = format!("{major:02x}:{minor:02x}:{}", metadata.ino());
    let written = purpose(file);
    let own = std::process::id();
    let mut found: Vec<Holder> = std::fs::read_to_string("/proc/locks")
        .unwrap_or_default()
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (kind, mode, pid, inode) = (
                fields.get(1)?,
                fields.get(3)?,
                fields.get(4)?,
                fields.get(5)?,
            );
            if *kind != "FLOCK" || *inode != id {
                return None;
            }
            let pid: u32 = pid.parse().ok()?;
            let command = std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|bytes| {
                    String::from_utf8_lossy(&bytes)
                        .split('\0')
                        .filter(|part| !part.is_empty())
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .unwrap_or_default();
            Some(Holder {
                pid,
                command,
                purpose: if *mode == "WRITE" {
                    written.clone()
                } else {
                    String::new()
                },
            })
        })
        .filter(|holder| holder.pid != own)
        .collect();
    found.sort_by_key(|holder| holder.pid);
    found.dedup_by_key(|holder| holder.pid);
    found
}

/// Waits until `try_lock` takes the lock on `file`: saying at once and
/// every [`REPORT_EVERY`] what it waits for (`what`) and who holds it,
/// and failing once `timeout` has passed.
fn wait_for(
    file: &mut File,
    path: &Path,
    what: &str,
    timeout: Option<Duration>,
    try_lock: impl Fn(&File) -> Result<(), TryLockError>,
) -> Result<(), LockError> {
    let started = Instant::now();
    let mut next_report = started;
    let mut pause = Duration::from_millis(20);
    loop {
        match try_lock(file) {
            Ok(()) => return Ok(()),
            Err(TryLockError::Error(source)) => {
                return Err(LockError::Io {
                    path: path.to_owned(),
                    source,
                });
            }
            Err(TryLockError::WouldBlock) => {}
        }
        let waited = started.elapsed();
        if timeout.is_some_and(|timeout| waited >= timeout) {
            return Err(LockError::Timeout {
                what: what.to_owned(),
                path: path.to_owned(),
                waited,
                holders: holders(file),
            });
        }
        if Instant::now() >= next_report {
            let held_by = describe(&holders(file));
            if waited < Duration::from_millis(1) {
                eprintln!(
                    "kindling: {what}: `{}` is held by {held_by}",
                    path.display()
                );
            } else {
                eprintln!(
                    "kindling: still {what} after {}s: `{}` is held by {held_by}",
                    waited.as_secs(),
                    path.display()
                );
            }
            next_report += REPORT_EVERY;
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(250));
    }
}

/// An exclusive lock, held until dropped.
#[derive(Debug)]
pub struct Exclusive {
    _file: File,
}

/// Takes the exclusive lock `path`, writing `purpose` into it for whoever
/// waits next. While another process holds it, says what it waits for
/// (`waiting`, e.g. "waiting to take down cluster `kindling`") and who
/// holds it, at once and every 10 s; gives up after `KINDLING_LOCK_TIMEOUT`.
pub async fn exclusive(path: &Path, purpose: &str, waiting: &str) -> Result<Exclusive, LockError> {
    let path = path.to_owned();
    let purpose = format!("pid {}: {purpose}", std::process::id());
    let waiting = waiting.to_owned();
    let timeout = lock_timeout()?;
    tokio::task::spawn_blocking(move || {
        let mut file = match held_shared(&path) {
            Some(file) => file,
            None => open(&path)?,
        };
        wait_for(&mut file, &path, &waiting, timeout, File::try_lock)?;
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
/// does nothing. While an exclusive holder has it, says what it waits for
/// (`waiting`) and who holds it, at once and every 10 s; gives up after
/// `KINDLING_LOCK_TIMEOUT`.
pub(crate) async fn hold_shared(path: &Path, waiting: &str) -> Result<(), LockError> {
    if shared_files()
        .lock()
        .expect("shared locks")
        .contains_key(path)
    {
        return Ok(());
    }
    let path = path.to_owned();
    let waiting = waiting.to_owned();
    let timeout = lock_timeout()?;
    tokio::task::spawn_blocking(move || {
        let mut file = open(&path)?;
        wait_for(&mut file, &path, &waiting, timeout, File::try_lock_shared)?;
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
    hold_shared(
        &users_lock_path(provider, cluster),
        &format!("waiting for cluster `{cluster}`: it is being taken down"),
    )
    .await
}

/// Waits until no other process sets up or runs tests on the cluster, and
/// keeps them out until dropped: for deleting it.
pub async fn delete_cluster_lock(provider: &str, cluster: &str) -> Result<Exclusive, LockError> {
    exclusive(
        &users_lock_path(provider, cluster),
        &format!("taking down cluster `{cluster}`"),
        &format!(
            "waiting to take down cluster `{cluster}`: suites are setting up or running tests on it"
        ),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Another process holding `path` with `flock` (`-s` shared, `-x`
    /// exclusive) until [`release`]d; its `sleep` does not inherit the lock.
    fn held_by_another_process(path: &Path, mode: &str) -> std::process::Child {
        use std::os::unix::process::CommandExt as _;
        let child = std::process::Command::new("flock")
            .args(["-o", mode])
            .arg(path)
            .args(["sleep", "600"])
            .process_group(0)
            .spawn()
            .expect("flock runs");
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut probe = open(path).unwrap();
        while holders(&mut probe)
            .iter()
            .all(|holder| holder.pid != child.id())
        {
            assert!(Instant::now() < deadline, "flock never took the lock");
            std::thread::sleep(Duration::from_millis(10));
        }
        child
    }

    /// Ends `flock` and its `sleep` (one process group).
    fn release(mut holder: std::process::Child) {
        let group = rustix::process::Pid::from_raw(holder.id() as i32).expect("a pid");
        let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
        holder.wait().unwrap();
    }

    #[test]
    fn a_wait_names_the_holder_and_gives_up_after_its_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.lock");
        std::fs::write(&path, "pid 1: bringing cluster `x` up").unwrap();
        let holder = held_by_another_process(&path, "-x");
        let mut file = open(&path).unwrap();
        let started = Instant::now();
        let error = wait_for(
            &mut file,
            &path,
            "waiting to take it down",
            Some(Duration::from_millis(600)),
            File::try_lock,
        )
        .unwrap_err();
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(600) && waited < Duration::from_secs(5));
        let text = error.to_string();
        assert!(
            text.contains(&format!("pid {} (`flock -o -x", holder.id()))
                && text.contains("bringing cluster `x` up")
                && text.contains("KINDLING_LOCK_TIMEOUT")
                && text.starts_with("waiting to take it down: gave up after 0s"),
            "{text}"
        );
        release(holder);
        wait_for(
            &mut file,
            &path,
            "taking it",
            Some(Duration::from_secs(10)),
            File::try_lock,
        )
        .expect("a free lock is taken");
    }

    #[test]
    fn shared_holders_are_named_too_and_timeouts_are_validated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.lock");
        let reader = held_by_another_process(&path, "-s");
        let mut file = open(&path).unwrap();
        let error = wait_for(
            &mut file,
            &path,
            "waiting to take down cluster `kindling`",
            Some(Duration::from_millis(100)),
            File::try_lock,
        )
        .unwrap_err();
        match &error {
            LockError::Timeout { holders, .. } => {
                assert_eq!(holders.len(), 1, "{holders:?}");
                assert_eq!(holders[0].pid, reader.id());
                assert!(holders[0].command.starts_with("flock -o -s"), "{holders:?}");
            }
            other => panic!("{other:?}"),
        }
        release(reader);
        assert!(check_timeout_variable("5s").is_ok());
        assert!(check_timeout_variable("").is_ok());
        for bad in ["0s", "soon", "-5s"] {
            assert!(check_timeout_variable(bad).is_err(), "{bad}");
        }
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
            .block_on(hold_shared(&path, "nobody holds it"))
            .unwrap();
        runtime
            .block_on(hold_shared(&path, "held already"))
            .unwrap();
        let other = open(&path).unwrap();
        assert!(other.try_lock().is_err(), "the shared lock is not held");
        let exclusive = runtime
            .block_on(exclusive(&path, "delete", "only we hold it"))
            .unwrap();
        assert!(other.try_lock_shared().is_err());
        drop(exclusive);
        // A command another test of this process spawns holds a copy of the
        // lock's descriptor from its fork to its exec: wait for the lock
        // (a signal, bounded) rather than try it once.
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || sender.send(other.lock().is_ok()));
        assert_eq!(
            receiver.recv_timeout(std::time::Duration::from_secs(10)),
            Ok(true),
            "the lock is still held after the exclusive one was dropped"
        );
    }
}
