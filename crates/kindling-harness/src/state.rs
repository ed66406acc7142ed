//! The per-suite state file and its lock: what the run-wide setup did,
//! for which run, from which inputs.
//!
//! Writes are atomic (temporary file, fsync, rename), and a setup is
//! recorded as `running` before any work starts, so a process killed half
//! way leaves `running`, which nothing treats as done.

use crate::util::{create_private_dir_all, open_private, write_atomically};
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::ReusePolicy;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum SetupStatus {
    Running,
    Done,
    Failed,
}

/// One phase of a setup as it ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct PhaseRecord {
    pub name: String,
    pub seconds: f64,
    pub error: Option<String>,
}

/// The last setup of a suite.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct SetupRecord {
    pub run_id: String,
    pub status: SetupStatus,
    pub pid: u32,
    pub started_at: String,
    pub finished_at: Option<String>,
    /// The suite's own fingerprints (`Suite::fingerprint`).
    pub fingerprints: BTreeMap<String, String>,
    pub phases: Vec<PhaseRecord>,
    pub environment: Option<serde_json::Value>,
    pub error: Option<String>,
    /// The run whose environment this run reuses, if it did not set up itself.
    pub reused_from: Option<String>,
    /// What the setup remembered for the next run (`SetupContext::remember`).
    #[serde(default)]
    pub parts: BTreeMap<String, serde_json::Value>,
    /// Digests of the inputs the setup declared, for reports only.
    #[serde(default)]
    pub inputs: BTreeMap<String, String>,
    /// The setup checks its own inputs on every run (an `Environment` does):
    /// it is never skipped because the suite's fingerprints are unchanged.
    #[serde(default)]
    pub self_checking: bool,
    /// The last setup that finished, kept while a newer one runs or after it
    /// failed, so the next run can redo that one's work in place.
    #[serde(default)]
    pub last_good: Option<Box<GoodSetup>>,
}

/// A setup that finished, as the next run may build on it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct GoodSetup {
    pub run_id: String,
    pub fingerprints: BTreeMap<String, String>,
    pub environment: serde_json::Value,
    #[serde(default)]
    pub parts: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    pub self_checking: bool,
}

impl SetupRecord {
    /// The finished setup a new one builds on: this record if it finished,
    /// else the one it was building on.
    pub(crate) fn good(&self) -> Option<GoodSetup> {
        match (&self.status, &self.environment) {
            (SetupStatus::Done, Some(environment)) => Some(GoodSetup {
                run_id: self
                    .reused_from
                    .clone()
                    .unwrap_or_else(|| self.run_id.clone()),
                fingerprints: self.fingerprints.clone(),
                environment: environment.clone(),
                parts: self.parts.clone(),
                self_checking: self.self_checking,
            }),
            _ => self.last_good.as_deref().cloned(),
        }
    }
}

/// What an earlier run left that this run's setup may build on.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Previous {
    pub setup: GoodSetup,
    /// A later setup started from it and did not finish: what is deployed
    /// may be partly newer than what `setup` describes.
    pub interrupted: bool,
}

/// What a process must do, given the recorded state.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Decision {
    /// This run already set up: use the recorded environment.
    UseRecorded,
    /// This run's setup failed: fail with the recorded error.
    FailRecorded(String),
    /// An earlier run set up from the same declared fingerprints, and its
    /// setup does not check its inputs itself: reuse it if still alive.
    CheckAlive,
    /// Run the setup, offering it what an earlier run left, if anything.
    SetUp(Option<Previous>),
}

pub(crate) fn decide(
    record: Option<&SetupRecord>,
    run_id: &str,
    fingerprints: &BTreeMap<String, String>,
    reuse: ReusePolicy,
) -> Decision {
    let Some(record) = record else {
        return Decision::SetUp(None);
    };
    if record.run_id == run_id {
        match record.status {
            SetupStatus::Done if record.environment.is_some() => return Decision::UseRecorded,
            SetupStatus::Failed => {
                return Decision::FailRecorded(
                    record
                        .error
                        .clone()
                        .unwrap_or_else(|| "setup failed without an error message".to_owned()),
                );
            }
            // `running` while we hold the lock: its process died half way.
            SetupStatus::Running | SetupStatus::Done => {}
        }
    }
    if reuse == ReusePolicy::Never {
        return Decision::SetUp(None);
    }
    let finished = record.status == SetupStatus::Done && record.environment.is_some();
    let Some(good) = record.good() else {
        return Decision::SetUp(None);
    };
    if &good.fingerprints != fingerprints {
        return Decision::SetUp(None);
    }
    if finished && !good.self_checking && !fingerprints.is_empty() {
        return Decision::CheckAlive;
    }
    Decision::SetUp(Some(Previous {
        setup: good,
        interrupted: !finished,
    }))
}

/// Reading or writing the state failed.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The state directory could not be created.
    #[error("failed to create the state directory `{path}`")]
    CreateDir {
        /// The state directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The suite's lock file could not be opened or locked.
    #[error("failed to lock `{path}`")]
    Lock {
        /// The lock file, `<suite>.lock` in the state directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The state directory could not be listed, or a state file could not
    /// be read (a missing file is no error).
    #[error("failed to read `{path}`")]
    Read {
        /// The directory or file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A suite's state file could not be written or removed.
    #[error("failed to write `{path}`")]
    Write {
        /// The state file, `<suite>.json` in the state directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// The files of one suite in the state directory.
#[derive(Debug, Clone)]
pub(crate) struct StateStore {
    dir: PathBuf,
    suite: String,
}

impl StateStore {
    pub(crate) fn new(dir: PathBuf, suite: &str) -> Self {
        StateStore {
            dir,
            suite: suite.to_owned(),
        }
    }

    pub(crate) fn state_path(&self) -> PathBuf {
        self.dir.join(format!("{}.json", self.suite))
    }

    fn lock_path(&self) -> PathBuf {
        self.dir.join(format!("{}.lock", self.suite))
    }

    /// Takes the suite's exclusive lock, calling `on_wait` first if another
    /// process holds it. The lock is released when the file is dropped,
    /// also when the process dies.
    pub(crate) fn lock(&self, on_wait: impl FnOnce()) -> Result<File, StateError> {
        create_private_dir_all(&self.dir).map_err(|source| StateError::CreateDir {
            path: self.dir.clone(),
            source,
        })?;
        let path = self.lock_path();
        let lock_error = |source| StateError::Lock {
            path: path.clone(),
            source,
        };
        let file = open_private(
            &path,
            OpenOptions::new().create(true).truncate(false).write(true),
        )
        .map_err(lock_error)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                on_wait();
                file.lock().map_err(lock_error)?;
            }
            Err(TryLockError::Error(source)) => return Err(lock_error(source)),
        }
        Ok(file)
    }

    /// The recorded setup; a missing or unreadable record reads as none.
    pub(crate) fn read(&self) -> Result<Option<SetupRecord>, StateError> {
        read_record(&self.state_path())
    }

    /// Writes `record` with its errors redacted ([`crate::redaction`]): a
    /// failed setup's error quotes what pods logged. The environment and
    /// what the setup remembered are written as they are: they are the
    /// setup's to choose, and the next run needs them intact.
    pub(crate) fn write(&self, record: &SetupRecord) -> Result<(), StateError> {
        let path = self.state_path();
        let mut record = record.clone();
        record.error = record.error.map(crate::redaction::redact_owned);
        for phase in &mut record.phases {
            phase.error = phase.error.take().map(crate::redaction::redact_owned);
        }
        let json = serde_json::to_vec_pretty(&record).expect("state serialises");
        write_atomically(&path, &json).map_err(|source| StateError::Write { path, source })
    }
}

pub(crate) fn read_record(path: &Path) -> Result<Option<SetupRecord>, StateError> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(serde_json::from_slice(&bytes).ok()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(StateError::Read {
            path: path.to_owned(),
            source,
        }),
    }
}

/// A suite's recorded setup, as `kindling status` shows it.
#[derive(Debug, Clone)]
pub struct RecordedSetup {
    /// The suite, named by its state file.
    pub suite: String,
    /// The run that made or reused this setup.
    pub run_id: String,
    /// `running`, `done` or `failed`.
    pub status: String,
    /// The process id of the process that recorded it.
    pub pid: u32,
    /// When the setup started, RFC 3339.
    pub started_at: String,
    /// When it finished, RFC 3339; `None` if it has not finished.
    pub finished_at: Option<String>,
    /// Each phase: name, seconds, error.
    pub phases: Vec<(String, f64, Option<String>)>,
    /// The run whose environment this one reused, if it did not set up itself.
    pub reused_from: Option<String>,
    /// Why the setup failed, if it did.
    pub error: Option<String>,
    /// The namespace its environment deployed into, if it records one.
    pub namespace: Option<String>,
}

/// The setups recorded in `state_dir`, sorted by suite. Unreadable records are skipped.
pub fn recorded_setups(state_dir: &Path) -> Result<Vec<RecordedSetup>, StateError> {
    let entries = match std::fs::read_dir(state_dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(StateError::Read {
                path: state_dir.to_owned(),
                source,
            });
        }
    };
    let mut setups = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(suite) = path
            .file_name()
            .and_then(|name| name.to_str())
            .and_then(|name| name.strip_suffix(".json"))
        else {
            continue;
        };
        if let Some(record) = read_record(&path)? {
            setups.push(RecordedSetup {
                suite: suite.to_owned(),
                run_id: record.run_id,
                status: serde_json::to_value(record.status)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                pid: record.pid,
                started_at: record.started_at,
                finished_at: record.finished_at,
                phases: record
                    .phases
                    .into_iter()
                    .map(|phase| (phase.name, phase.seconds, phase.error))
                    .collect(),
                reused_from: record.reused_from,
                error: record.error,
                namespace: record
                    .environment
                    .as_ref()
                    .and_then(|environment| environment["namespace"].as_str())
                    .map(str::to_owned),
            });
        }
    }
    setups.sort_by(|a, b| a.suite.cmp(&b.suite));
    Ok(setups)
}

/// Forgets a suite's recorded setup (under its lock), so the next run sets
/// up again. Returns false if nothing was recorded.
pub fn forget_setup(state_dir: &Path, suite: &str) -> Result<bool, StateError> {
    let store = StateStore::new(state_dir.to_owned(), suite);
    let _lock =
        store.lock(|| eprintln!("waiting for a running setup of suite `{suite}` to finish"))?;
    let path = store.state_path();
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(true),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(StateError::Write { path, source }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(run_id: &str, status: SetupStatus, fingerprint: &str) -> SetupRecord {
        SetupRecord {
            run_id: run_id.to_owned(),
            status,
            pid: 1,
            started_at: String::new(),
            finished_at: None,
            fingerprints: prints(fingerprint),
            phases: vec![],
            environment: (status == SetupStatus::Done)
                .then(|| serde_json::json!({"namespace": "ns"})),
            error: (status == SetupStatus::Failed).then(|| "boom".to_owned()),
            reused_from: None,
            parts: BTreeMap::new(),
            inputs: BTreeMap::new(),
            self_checking: false,
            last_good: None,
        }
    }

    fn prints(value: &str) -> BTreeMap<String, String> {
        if value.is_empty() {
            return BTreeMap::new();
        }
        BTreeMap::from([("images".to_owned(), value.to_owned())])
    }

    fn self_checking(mut record: SetupRecord) -> SetupRecord {
        record.self_checking = true;
        record
    }

    /// A record of a setup that did not finish, started from a good `r0`.
    fn after_good(mut record: SetupRecord, fingerprint: &str) -> SetupRecord {
        let good = self_checking(record_done("r0", fingerprint));
        record.last_good = good.good().map(Box::new);
        record
    }

    fn record_done(run_id: &str, fingerprint: &str) -> SetupRecord {
        record(run_id, SetupStatus::Done, fingerprint)
    }

    fn previous(run_id: &str, interrupted: bool, self_checking: bool, print: &str) -> Decision {
        Decision::SetUp(Some(Previous {
            setup: GoodSetup {
                run_id: run_id.to_owned(),
                fingerprints: prints(print),
                environment: serde_json::json!({"namespace": "ns"}),
                parts: BTreeMap::new(),
                self_checking,
            },
            interrupted,
        }))
    }

    #[test]
    fn decisions() {
        use Decision::*;
        use ReusePolicy::{Auto, Never};
        use SetupStatus::*;
        let table: Vec<(Option<SetupRecord>, &str, &str, ReusePolicy, Decision)> = vec![
            (None, "r1", "a", Auto, SetUp(None)),
            // The same run: use what it recorded, or its error.
            (Some(record_done("r1", "a")), "r1", "a", Auto, UseRecorded),
            (Some(record_done("r1", "a")), "r1", "b", Auto, UseRecorded),
            (
                Some(record("r1", Failed, "a")),
                "r1",
                "a",
                Auto,
                FailRecorded("boom".into()),
            ),
            (
                Some(record("r1", Running, "a")),
                "r1",
                "a",
                Auto,
                SetUp(None),
            ),
            // A process of this run died setting up on top of r0.
            (
                Some(after_good(record("r1", Running, "a"), "a")),
                "r1",
                "a",
                Auto,
                previous("r0", true, true, "a"),
            ),
            // A custom setup with declared fingerprints: reuse when unchanged.
            (Some(record_done("r0", "a")), "r1", "a", Auto, CheckAlive),
            (Some(record_done("r0", "a")), "r1", "a", Never, SetUp(None)),
            (Some(record_done("r0", "a")), "r1", "b", Auto, SetUp(None)),
            // A custom setup that declared nothing is never skipped.
            (
                Some(record_done("r0", "")),
                "r1",
                "",
                Auto,
                previous("r0", false, false, ""),
            ),
            // A setup that checks its inputs itself always runs, given r0.
            (
                Some(self_checking(record_done("r0", "a"))),
                "r1",
                "a",
                Auto,
                previous("r0", false, true, "a"),
            ),
            (
                Some(self_checking(record_done("r0", "a"))),
                "r1",
                "b",
                Auto,
                SetUp(None),
            ),
            (
                Some(self_checking(record_done("r0", "a"))),
                "r1",
                "a",
                Never,
                SetUp(None),
            ),
            // Runs that did not finish build on the last good one, marked interrupted.
            (
                Some(record("r0", Running, "a")),
                "r1",
                "a",
                Auto,
                SetUp(None),
            ),
            (
                Some(record("r0", Failed, "a")),
                "r1",
                "a",
                Auto,
                SetUp(None),
            ),
            (
                Some(after_good(record("r5", Failed, "a"), "a")),
                "r6",
                "a",
                Auto,
                previous("r0", true, true, "a"),
            ),
            (
                Some(after_good(record("r5", Running, "a"), "a")),
                "r6",
                "b",
                Auto,
                SetUp(None),
            ),
        ];
        for (index, (recorded, run, print, reuse, expected)) in table.into_iter().enumerate() {
            let found = decide(recorded.as_ref(), run, &prints(print), reuse);
            assert_eq!(found, expected, "row {index}");
        }
    }

    #[test]
    fn recorded_setups_are_listed_and_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::new(dir.path().to_owned(), "orders");
        store
            .write(&record("r1", SetupStatus::Failed, "a"))
            .unwrap();
        let listed = recorded_setups(dir.path()).unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(
            (listed[0].suite.as_str(), listed[0].status.as_str()),
            ("orders", "failed")
        );
        assert_eq!(listed[0].error.as_deref(), Some("boom"));
        assert!(forget_setup(dir.path(), "orders").unwrap());
        assert!(!forget_setup(dir.path(), "orders").unwrap());
        assert!(recorded_setups(dir.path()).unwrap().is_empty());
        assert!(
            recorded_setups(&dir.path().join("missing"))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn a_state_folder_and_files_an_older_kindling_left_open_become_private() {
        use crate::util::tests::{mode, plant_mode};
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("state");
        std::fs::create_dir(&dir).unwrap();
        plant_mode(&dir, 0o755);
        let store = StateStore::new(dir.clone(), "suite");
        for path in [store.state_path(), store.lock_path()] {
            std::fs::write(&path, "").unwrap();
            plant_mode(&path, 0o644);
        }
        let _lock = store.lock(|| panic!("nobody else holds it")).unwrap();
        store.write(&record("r1", SetupStatus::Done, "a")).unwrap();
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&store.state_path()), 0o600);
        assert_eq!(mode(&store.lock_path()), 0o600);

        let fresh = StateStore::new(root.path().join("new/state"), "other");
        let _lock = fresh.lock(|| panic!("nobody else holds it")).unwrap();
        fresh.write(&record("r2", SetupStatus::Done, "a")).unwrap();
        assert_eq!(mode(&root.path().join("new/state")), 0o700);
        assert_eq!(mode(&fresh.state_path()), 0o600);
        assert_eq!(mode(&fresh.lock_path()), 0o600);
    }

    #[test]
    fn errors_are_written_redacted() {
        crate::redaction::learn_value("state-leak-91c2", "Secret db key password");
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::new(dir.path().to_owned(), "suite");
        let mut failed = record("r1", SetupStatus::Failed, "a");
        failed.error = Some("the pod printed state-leak-91c2".to_owned());
        failed.phases = vec![PhaseRecord {
            name: "deploy".to_owned(),
            seconds: 1.0,
            error: Some("state-leak-91c2".to_owned()),
        }];
        store.write(&failed).unwrap();
        let text = std::fs::read_to_string(store.state_path()).unwrap();
        assert!(!text.contains("state-leak-91c2"), "{text}");
        let read = store.read().unwrap().unwrap();
        assert_eq!(
            read.error.as_deref(),
            Some("the pod printed <redacted: Secret db key password>")
        );
        assert_eq!(
            read.phases[0].error.as_deref(),
            Some("<redacted: Secret db key password>")
        );
    }

    #[test]
    fn records_round_trip_and_garbage_reads_as_none() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::new(dir.path().join("state"), "suite");
        assert_eq!(store.read().unwrap(), None);
        let _lock = store.lock(|| panic!("nobody else holds it")).unwrap();
        let written = record("r1", SetupStatus::Done, "a");
        store.write(&written).unwrap();
        assert_eq!(store.read().unwrap(), Some(written));
        std::fs::write(store.state_path(), b"{ half a rec").unwrap();
        assert_eq!(store.read().unwrap(), None);
    }
}
