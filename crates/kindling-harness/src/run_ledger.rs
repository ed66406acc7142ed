//! What the processes of one run write down together beyond the setup:
//! every test's outcome, and what to clean up at the end of the run
//! (`KINDLING_KEEP`). A folder per run, `<state dir>/runs/<run id>/`,
//! holding append-only JSON lines, so processes of several suites write
//! to it at once without a lock.
//!
//! The end of a run is where those are read: the end of the process under
//! `cargo test` (one process is one run), and under nextest the moment the
//! nextest process exits, which a process started by the run's first
//! setup waits for (see `end_of_run`): nextest has no teardown hook, and
//! no test process can know it is the last one.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::util::{create_private_dir_all, open_private, write_atomically};

/// A test's outcome in a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestEntry {
    /// The suite the test belongs to.
    pub suite: String,
    /// The test's name.
    pub test: String,
    /// Whether the test passed.
    pub passed: bool,
}

/// Something a suite's setup made that the end of the run may remove:
/// what it is in words, and what removing it needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cleanup {
    /// The suite whose setup recorded it.
    pub suite: String,
    /// The [`crate::extension::Extension`] whose finisher removes it.
    pub finisher: String,
    /// For people: "namespace `x` on cluster `kindling`".
    pub describe: String,
    /// For the code that removes it.
    pub data: serde_json::Value,
}

/// What the end of a run did, written once as `end.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndReport {
    /// The `KINDLING_KEEP` policy the end of the run applied.
    pub keep: crate::config::KeepPolicy,
    /// Per suite: whether every test of it in this run passed.
    pub passed: Vec<(String, bool)>,
    /// What was removed, in words.
    pub removed: Vec<String>,
    /// What was kept, in words.
    pub kept: Vec<String>,
    /// What could not be removed, and why.
    pub failed: Vec<String>,
}

/// The ledger of one run.
#[derive(Debug, Clone)]
pub struct RunLedger {
    dir: PathBuf,
}

const TESTS: &str = "tests.jsonl";
const CLEANUPS: &str = "cleanups.jsonl";
const END: &str = "end.json";
const WATCHER: &str = "watcher.pid";

impl RunLedger {
    /// The ledger of run `run_id` under `state_dir`.
    pub fn new(state_dir: &Path, run_id: &str) -> Self {
        RunLedger {
            dir: state_dir.join("runs").join(run_id),
        }
    }

    /// The ledger in `dir` (a path `RunLedger::dir` gave).
    pub fn at(dir: PathBuf) -> Self {
        RunLedger { dir }
    }

    /// The run's folder, `<state dir>/runs/<run id>`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The state folder the ledger lives in (`<state dir>/runs/<run id>`).
    pub fn state_dir(&self) -> Option<PathBuf> {
        Some(self.dir.parent()?.parent()?.to_owned())
    }

    /// The run's folder, `0700`, and the state folder and `runs` above
    /// it, which an older kindling left `0755`.
    fn create_dir(&self) -> std::io::Result<()> {
        if let Some(runs) = self.dir.parent() {
            if let Some(state) = runs.parent() {
                create_private_dir_all(state)?;
            }
            create_private_dir_all(runs)?;
        }
        create_private_dir_all(&self.dir)
    }

    fn append<T: Serialize>(&self, file: &str, entry: &T) -> std::io::Result<()> {
        self.create_dir()?;
        let mut line = serde_json::to_vec(entry)?;
        line.push(b'\n');
        // One write of one line: appends of several processes never mix.
        open_private(
            &self.dir.join(file),
            std::fs::OpenOptions::new().create(true).append(true),
        )?
        .write_all(&line)
    }

    fn read<T: for<'de> Deserialize<'de>>(&self, file: &str) -> Vec<T> {
        std::fs::read_to_string(self.dir.join(file))
            .map(|text| {
                text.lines()
                    .filter_map(|line| serde_json::from_str(line).ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Appends a test's outcome to `tests.jsonl`.
    pub fn record_test(&self, entry: &TestEntry) -> std::io::Result<()> {
        self.append(TESTS, entry)
    }

    /// Appends something to clean up to `cleanups.jsonl`.
    pub fn record_cleanup(&self, cleanup: &Cleanup) -> std::io::Result<()> {
        self.append(CLEANUPS, cleanup)
    }

    /// Every test outcome recorded so far; unreadable lines are skipped.
    pub fn tests(&self) -> Vec<TestEntry> {
        self.read(TESTS)
    }

    /// Each cleanup once, in the order first recorded.
    pub fn cleanups(&self) -> Vec<Cleanup> {
        let mut unique: Vec<Cleanup> = Vec::new();
        for cleanup in self.read::<Cleanup>(CLEANUPS) {
            if !unique.contains(&cleanup) {
                unique.push(cleanup);
            }
        }
        unique
    }

    /// Whether every test of `suite` recorded in this run passed (and at
    /// least one was recorded).
    pub fn suite_passed(&self, suite: &str) -> bool {
        let tests: Vec<TestEntry> = self
            .tests()
            .into_iter()
            .filter(|entry| entry.suite == suite)
            .collect();
        !tests.is_empty() && tests.iter().all(|entry| entry.passed)
    }

    /// Claims the right to watch for the end of the run: true for exactly
    /// one caller per run.
    pub fn claim_watcher(&self) -> std::io::Result<bool> {
        self.create_dir()?;
        match open_private(
            &self.dir.join(WATCHER),
            std::fs::OpenOptions::new().write(true).create_new(true),
        ) {
            Ok(mut file) => {
                writeln!(file, "{}", std::process::id())?;
                Ok(true)
            }
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// Writes `end.json`, through a temporary file renamed into place.
    pub fn write_end(&self, report: &EndReport) -> std::io::Result<()> {
        self.create_dir()?;
        write_atomically(&self.dir.join(END), &serde_json::to_vec_pretty(report)?)
    }

    /// What the end of the run did, once it has run.
    pub fn end(&self) -> Option<EndReport> {
        serde_json::from_slice(&std::fs::read(self.dir.join(END)).ok()?).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_of_several_writers_are_read_back_and_judged_per_suite() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = RunLedger::new(dir.path(), "run-1");
        for (suite, test, passed) in [("a", "x", true), ("a", "y", true), ("b", "x", false)] {
            let writer = RunLedger::new(dir.path(), "run-1");
            writer
                .record_test(&TestEntry {
                    suite: suite.to_owned(),
                    test: test.to_owned(),
                    passed,
                })
                .unwrap();
        }
        assert!(ledger.suite_passed("a"));
        assert!(!ledger.suite_passed("b"));
        assert!(
            !ledger.suite_passed("c"),
            "a suite without tests did not pass"
        );
        let cleanup = Cleanup {
            suite: "a".to_owned(),
            finisher: "test".to_owned(),
            describe: "namespace `a-1`".to_owned(),
            data: serde_json::json!({"namespace": "a-1"}),
        };
        ledger.record_cleanup(&cleanup).unwrap();
        ledger.record_cleanup(&cleanup).unwrap();
        assert_eq!(ledger.cleanups(), vec![cleanup]);
        assert!(ledger.claim_watcher().unwrap());
        assert!(!RunLedger::new(dir.path(), "run-1").claim_watcher().unwrap());
        assert!(ledger.end().is_none());
    }

    #[test]
    fn a_ledger_an_older_kindling_left_open_becomes_private() {
        use crate::util::tests::{mode, plant_mode};
        let dir = tempfile::tempdir().unwrap();
        let ledger = RunLedger::new(dir.path(), "run-1");
        std::fs::create_dir_all(ledger.dir()).unwrap();
        for folder in [dir.path(), &dir.path().join("runs"), ledger.dir()] {
            plant_mode(folder, 0o755);
        }
        std::fs::write(ledger.dir().join(TESTS), "").unwrap();
        plant_mode(&ledger.dir().join(TESTS), 0o644);
        let entry = TestEntry {
            suite: "a".to_owned(),
            test: "x".to_owned(),
            passed: true,
        };
        ledger.record_test(&entry).unwrap();
        ledger
            .record_cleanup(&Cleanup {
                suite: "a".to_owned(),
                finisher: "test".to_owned(),
                describe: "namespace `a-1`".to_owned(),
                data: serde_json::json!({}),
            })
            .unwrap();
        assert!(ledger.claim_watcher().unwrap());
        ledger
            .write_end(&EndReport {
                keep: crate::config::KeepPolicy::Always,
                passed: Vec::new(),
                removed: Vec::new(),
                kept: Vec::new(),
                failed: Vec::new(),
            })
            .unwrap();
        for folder in [dir.path(), &dir.path().join("runs"), ledger.dir()] {
            assert_eq!(mode(folder), 0o700, "{}", folder.display());
        }
        for file in [TESTS, CLEANUPS, WATCHER, END] {
            assert_eq!(mode(&ledger.dir().join(file)), 0o600, "{file}");
        }
    }
}
