//! The end of a run, and what `KINDLING_KEEP` removes there.
//!
//! - `always` (the default): nothing; nothing is even recorded.
//! - `on-failure`: each suite whose tests all passed in this run has what
//!   its setup named with [`crate::SetupContext::remove_at_end_of_run`]
//!   removed; a suite with a failure keeps everything, and its failures
//!   say where it is.
//! - `never`: every suite's is removed, pass or fail (the artifacts of
//!   failures are collected before, by the failing processes).
//!
//! Under `cargo test` one process is the run: its end is the end of the
//! harness. Under nextest each test is a process of its own and nextest has
//! no teardown hook, so the first setup of a run that records something to
//! remove starts a watcher: this same binary again, in a process group of
//! its own (a Ctrl-C of the terminal does not reach it) and without the
//! test's output pipes (nextest would count it as a leak), which waits
//! until the nextest process (the parent of every test process) exits,
//! then finishes the run and writes `end.json` beside the ledger.

use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::Duration;

use crate::config::KeepPolicy;
use crate::run_ledger::{Cleanup, EndReport, RunLedger, TestEntry};
use crate::util::BoxFuture;

/// Set in the watcher process: the ledger folder of the run it finishes.
const WATCH_LEDGER: &str = "KINDLING_WATCH_LEDGER";
/// Set in the watcher process: the process whose exit ends the run.
const WATCH_PID: &str = "KINDLING_WATCH_PID";

/// Removes what the setups of a run named, once every suite is done, as
/// `keep` says: for each cleanup, what it removed in words, or why not.
pub type FinishFn = fn(Vec<Cleanup>, KeepPolicy) -> BoxFuture<Vec<Result<Vec<String>, String>>>;

/// A run's `KINDLING_KEEP` and its ledger, for the processes of the run.
#[derive(Debug, Clone)]
pub struct EndOfRun {
    ledger: RunLedger,
    keep: KeepPolicy,
    under_nextest: bool,
}

impl EndOfRun {
    pub(crate) fn new(ledger: RunLedger, keep: KeepPolicy, under_nextest: bool) -> Self {
        EndOfRun {
            ledger,
            keep,
            under_nextest,
        }
    }

    /// The run's `KINDLING_KEEP` policy.
    pub fn keep(&self) -> KeepPolicy {
        self.keep
    }

    /// The run's ledger.
    pub fn ledger(&self) -> &RunLedger {
        &self.ledger
    }

    pub(crate) fn record_cleanup(
        &self,
        suite: &str,
        finisher: &str,
        describe: &str,
        data: serde_json::Value,
    ) {
        if self.keep == KeepPolicy::Always {
            return;
        }
        let cleanup = Cleanup {
            suite: suite.to_owned(),
            finisher: finisher.to_owned(),
            describe: describe.to_owned(),
            data,
        };
        if let Err(error) = self.ledger.record_cleanup(&cleanup) {
            eprintln!(
                "warning: cannot record in {} that {describe} is to be removed at the end of the run: {error}",
                self.ledger.dir().display()
            );
            return;
        }
        if self.under_nextest {
            self.start_watcher();
        }
    }

    pub(crate) fn record_test(&self, suite: &str, test: &str, passed: bool) {
        if self.keep == KeepPolicy::Always {
            return;
        }
        let entry = TestEntry {
            suite: suite.to_owned(),
            test: test.to_owned(),
            passed,
        };
        if let Err(error) = self.ledger.record_test(&entry) {
            eprintln!(
                "warning: cannot record the outcome of `{test}` in {}: {error}",
                self.ledger.dir().display()
            );
        }
    }

    /// What becomes of `suite`'s environment, for a failed test's message.
    pub(crate) fn fate_of(&self, suite: &str) -> Option<String> {
        let what: Vec<String> = self
            .ledger
            .cleanups()
            .into_iter()
            .filter(|cleanup| cleanup.suite == suite)
            .map(|cleanup| cleanup.describe)
            .collect();
        if what.is_empty() {
            return None;
        }
        Some(match self.keep {
            KeepPolicy::Always => return None,
            KeepPolicy::OnFailure => format!(
                "kept for a look (KINDLING_KEEP=on-failure, a test failed): {}",
                what.join(", ")
            ),
            KeepPolicy::Never => format!(
                "removed at the end of the run (KINDLING_KEEP=never): {}",
                what.join(", ")
            ),
        })
    }

    fn start_watcher(&self) {
        match self.ledger.claim_watcher() {
            Ok(true) => {}
            Ok(false) => return,
            Err(error) => {
                eprintln!(
                    "warning: cannot start watching for the end of the run in {}: {error}; KINDLING_KEEP={} will not act",
                    self.ledger.dir().display(),
                    keep_name(self.keep)
                );
                return;
            }
        }
        if let Err(error) = self.spawn_watcher() {
            eprintln!(
                "warning: cannot start the end-of-run watcher: {error}; KINDLING_KEEP={} will not act",
                keep_name(self.keep)
            );
        }
    }

    fn spawn_watcher(&self) -> std::io::Result<()> {
        use std::os::unix::process::CommandExt as _;
        let log = crate::util::open_private(
            &self.ledger.dir().join("end.log"),
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true),
        )?;
        std::process::Command::new(std::env::current_exe()?)
            .env(WATCH_LEDGER, self.ledger.dir())
            .env(WATCH_PID, std::os::unix::process::parent_id().to_string())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .spawn()
            .map(drop)
    }
}

fn keep_name(keep: KeepPolicy) -> &'static str {
    match keep {
        KeepPolicy::Always => "always",
        KeepPolicy::OnFailure => "on-failure",
        KeepPolicy::Never => "never",
    }
}

/// In a watcher process: the ledger and the process to outlive.
pub(crate) fn watching() -> Option<(PathBuf, u32)> {
    let ledger = std::env::var_os(WATCH_LEDGER)?;
    let pid = std::env::var(WATCH_PID).ok()?.parse().ok()?;
    Some((PathBuf::from(ledger), pid))
}

/// The watcher's whole life: waits for `pid` to exit, then finishes the
/// run recorded in `ledger`.
pub(crate) fn watch(
    ledger: PathBuf,
    pid: u32,
    keep: KeepPolicy,
    finisher: impl Fn(&str) -> Option<FinishFn>,
) -> ExitCode {
    let Some(watched) = rustix::process::Pid::from_raw(pid as i32) else {
        eprintln!("no process {pid} to watch");
        return ExitCode::FAILURE;
    };
    // Polled: a process that is not our child gives no other signal of
    // its exit that works everywhere.
    while rustix::process::test_kill_process(watched).is_ok() {
        std::thread::sleep(Duration::from_millis(200));
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let ledger = RunLedger::at(ledger);
    let Some(state_dir) = ledger.state_dir() else {
        eprintln!("{} is not a run ledger folder", ledger.dir().display());
        return ExitCode::FAILURE;
    };
    let report = runtime.block_on(finish_run(&ledger, &state_dir, keep, finisher));
    eprintln!("{report:?}");
    if report.failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// What a finisher says of one cleanup: what it removed, or why not.
type Outcome = Result<Vec<String>, String>;

/// Finishes a run: removes what `keep` says of what its setups named,
/// forgets the setups whose environment is gone (the next run sets up
/// afresh), records what it did in `end.json`, and returns it. Each
/// cleanup goes to the finisher its name gives.
pub(crate) async fn finish_run(
    ledger: &RunLedger,
    state_dir: &Path,
    keep: KeepPolicy,
    finisher: impl Fn(&str) -> Option<FinishFn>,
) -> EndReport {
    let cleanups = ledger.cleanups();
    let passed = suites_passed(ledger, &cleanups);
    let (remove, keep_these): (Vec<Cleanup>, Vec<Cleanup>) = cleanups
        .into_iter()
        .partition(|cleanup| is_removed(cleanup, keep, &passed));
    let mut report = EndReport {
        keep,
        passed,
        removed: Vec::new(),
        kept: keep_these
            .into_iter()
            .map(|cleanup| cleanup.describe)
            .collect(),
        failed: Vec::new(),
    };
    let outcomes = run_finishers(remove, keep, &finisher).await;
    let gone = tally_outcomes(&mut report, outcomes);
    forget_setups(&mut report, state_dir, gone);
    if let Err(error) = ledger.write_end(&report) {
        eprintln!(
            "warning: cannot write what the end of the run did into {}: {error}",
            ledger.dir().display()
        );
    }
    report
}

/// Adds what each cleanup removed, or why it could not, to `report`; the
/// suites something was removed of, in order.
fn tally_outcomes(
    report: &mut EndReport,
    outcomes: Vec<((String, String), Outcome)>,
) -> Vec<String> {
    let mut gone: Vec<String> = Vec::new();
    for ((suite, describe), outcome) in outcomes {
        match outcome {
            Ok(removed) => {
                report.removed.extend(removed);
                if !gone.contains(&suite) {
                    gone.push(suite);
                }
            }
            Err(error) => report.failed.push(format!("{describe}: {error}")),
        }
    }
    gone
}

/// Forgets the setups of `suites`, whose environment is gone, so that the
/// next run sets up afresh; what cannot be forgotten goes to `report`.
fn forget_setups(report: &mut EndReport, state_dir: &Path, suites: Vec<String>) {
    for suite in suites {
        if let Err(error) = crate::state::forget_setup(state_dir, &suite) {
            report.failed.push(format!(
                "the setup record of suite `{suite}`: {}",
                crate::error::render_chain(&error)
            ));
        }
    }
}

/// Whether each suite that named a cleanup had all its tests pass.
fn suites_passed(ledger: &RunLedger, cleanups: &[Cleanup]) -> Vec<(String, bool)> {
    let mut suites: Vec<String> = cleanups
        .iter()
        .map(|cleanup| cleanup.suite.clone())
        .collect();
    suites.dedup();
    suites
        .iter()
        .map(|suite| (suite.clone(), ledger.suite_passed(suite)))
        .collect()
}

/// Whether `keep` removes `cleanup`, given which suites passed.
fn is_removed(cleanup: &Cleanup, keep: KeepPolicy, passed: &[(String, bool)]) -> bool {
    match keep {
        KeepPolicy::Always => false,
        KeepPolicy::Never => true,
        KeepPolicy::OnFailure => passed
            .iter()
            .any(|(suite, passed)| *passed && *suite == cleanup.suite),
    }
}

/// Hands the cleanups to remove to their finishers, a finisher at a time
/// in the order of their names: for each cleanup, (suite, what) and what
/// removing it gave.
async fn run_finishers(
    remove: Vec<Cleanup>,
    keep: KeepPolicy,
    finisher: &impl Fn(&str) -> Option<FinishFn>,
) -> Vec<((String, String), Outcome)> {
    let mut outcomes: Vec<((String, String), Outcome)> = Vec::new();
    let mut names: Vec<String> = remove
        .iter()
        .map(|cleanup| cleanup.finisher.clone())
        .collect();
    names.sort();
    names.dedup();
    for name in names {
        let (mine, _): (Vec<Cleanup>, Vec<Cleanup>) = remove
            .iter()
            .cloned()
            .partition(|cleanup| cleanup.finisher == name);
        let removing: Vec<(String, String)> = mine
            .iter()
            .map(|cleanup| (cleanup.suite.clone(), cleanup.describe.clone()))
            .collect();
        match finisher(&name) {
            Some(finish) => outcomes.extend(removing.into_iter().zip(finish(mine, keep).await)),
            None => outcomes.extend(removing.into_iter().map(|removing| {
                (
                    removing,
                    Err(format!(
                        "no library linked into this suite finishes `{name}` cleanups"
                    )),
                )
            })),
        }
    }
    outcomes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finish_all(
        cleanups: Vec<Cleanup>,
        _keep: KeepPolicy,
    ) -> BoxFuture<Vec<Result<Vec<String>, String>>> {
        Box::pin(async move {
            cleanups
                .into_iter()
                .map(|cleanup| {
                    if cleanup.data["broken"] == true {
                        Err("refused".to_owned())
                    } else {
                        Ok(vec![format!("removed {}", cleanup.describe)])
                    }
                })
                .collect()
        })
    }

    fn finish_all_of_test(name: &str) -> Option<FinishFn> {
        (name == "test").then_some(finish_all as FinishFn)
    }

    fn ledger_with(dir: &std::path::Path, run: &str) -> RunLedger {
        let ledger = RunLedger::new(dir, run);
        for (suite, passed) in [("green", true), ("red", false)] {
            ledger
                .record_test(&TestEntry {
                    suite: suite.to_owned(),
                    test: "t".to_owned(),
                    passed,
                })
                .unwrap();
            ledger
                .record_cleanup(&Cleanup {
                    suite: suite.to_owned(),
                    finisher: "test".to_owned(),
                    describe: format!("namespace `{suite}-1`"),
                    data: serde_json::json!({}),
                })
                .unwrap();
        }
        ledger
    }

    #[tokio::test]
    async fn each_policy_removes_what_it_says() {
        let dir = tempfile::tempdir().unwrap();
        let on_failure = finish_run(
            &ledger_with(dir.path(), "a"),
            dir.path(),
            KeepPolicy::OnFailure,
            finish_all_of_test,
        )
        .await;
        assert_eq!(on_failure.removed, vec!["removed namespace `green-1`"]);
        assert_eq!(on_failure.kept, vec!["namespace `red-1`"]);
        let never = finish_run(
            &ledger_with(dir.path(), "b"),
            dir.path(),
            KeepPolicy::Never,
            finish_all_of_test,
        )
        .await;
        assert_eq!(never.removed.len(), 2, "{never:?}");
        assert!(never.kept.is_empty());
        let ledger = ledger_with(dir.path(), "c");
        let always = finish_run(&ledger, dir.path(), KeepPolicy::Always, finish_all_of_test).await;
        assert!(always.removed.is_empty() && always.kept.len() == 2);
        assert_eq!(ledger.end(), Some(always));
    }

    #[tokio::test]
    async fn a_cleanup_no_linked_library_finishes_is_a_failure_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let report = finish_run(
            &ledger_with(dir.path(), "d"),
            dir.path(),
            KeepPolicy::Never,
            |_| None,
        )
        .await;
        assert!(report.removed.is_empty(), "{report:?}");
        assert_eq!(report.failed.len(), 2, "{report:?}");
        assert!(
            report.failed[0].contains("namespace `green-1`")
                && report.failed[0].contains("finishes `test` cleanups"),
            "{report:?}"
        );
    }
}
