//! `Suite::run`: the libtest command line (through libtest-mimic), the
//! nextest contract, per-test timing, capture and timeouts, and reports.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use libtest_mimic::{Arguments, Failed, Trial};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::Instrument as _;

use crate::capture::{self, Capture};
use crate::config::{DEFAULT_SETUP_TIMEOUT, DEFAULT_TEST_TIMEOUT, EnvConfig, KeepPolicy};
use crate::end_of_run::EndOfRun;
use crate::error::TestResult;
use crate::error::render_chain;
use crate::identity::{BuildFacts, RunIdentity};
use crate::junit::{self, TestOutcome, TestRecord};
use crate::progress::Progress;
use crate::requirement::{Requirement, in_ci};
use crate::run_ledger::RunLedger;
use crate::setup::{FailureFn, SetupDriver, SetupError, SetupOptions};
use crate::state::StateStore;
use crate::suite::{CurrentTest, Suite, Test, TestBody, TestContext, as_current_test};
use crate::util::{BoxFuture, create_private_dir_all, panic_message, seconds};

/// Exit code for a suite that cannot run at all (bad configuration,
/// duplicate names, no tests), as libtest uses for bad arguments.
const EXIT_USAGE: u8 = 2;

/// Where tests get their environment from.
enum Environment<E> {
    /// A suite without setup.
    Fixed(Arc<E>),
    /// The run-wide setup.
    Setup(Arc<SetupDriver<E>>),
}

impl<E> Clone for Environment<E> {
    fn clone(&self) -> Self {
        match self {
            Environment::Fixed(env) => Environment::Fixed(env.clone()),
            Environment::Setup(driver) => Environment::Setup(driver.clone()),
        }
    }
}

impl<E> Environment<E>
where
    E: Serialize + DeserializeOwned + Send + Sync + 'static,
{
    async fn get(&self) -> Result<Arc<E>, Arc<SetupError>> {
        match self {
            Environment::Fixed(env) => Ok(env.clone()),
            Environment::Setup(driver) => driver.environment().await,
        }
    }
}

/// Why a test failed.
#[derive(Debug, thiserror::Error)]
enum TestFailure {
    #[error("{}", render_chain(.0.as_ref()))]
    Setup(Arc<SetupError>),
    #[error("{0}")]
    Returned(String),
    #[error("test panicked: {0}")]
    Panicked(String),
    #[error("test timed out after {}{}", humantime::format_duration(*.after), running_text(.still_running, .last_line))]
    TimedOut {
        after: Duration,
        still_running: Vec<String>,
        last_line: Option<String>,
    },
    #[error("{failure}\nartifacts: {}", artifacts.display())]
    WithArtifacts {
        failure: Box<TestFailure>,
        artifacts: PathBuf,
    },
    #[error("{0}: the test body was stopped")]
    Interrupted(crate::interrupt::Interrupted),
    #[error("not run: the run was {0}")]
    NotRun(crate::interrupt::Interrupted),
    #[error(
        "requirement `{}` is missing: {}{}",
        .0.requirement,
        .0.reason,
        if in_ci() { "\n(CI is set: a missing requirement fails the test instead of skipping it)" } else { "" }
    )]
    Unmet(Unmet),
}

/// kindling's folder in the target directory cannot be made private.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot make `{}` private (mode 0700), the folder of kindling's state, artifacts and JUnit: give it to this user or remove it",
    path.display()
)]
struct PrivateDirError {
    path: PathBuf,
    #[source]
    source: std::io::Error,
}

/// How long collecting a failed test's artifacts may take.
const ARTIFACTS_TIMEOUT: Duration = Duration::from_secs(60);

fn running_text(still_running: &[String], last_line: &Option<String>) -> String {
    let mut text = String::new();
    if still_running.is_empty() {
        text.push_str("\nstill running: the test body (no span open inside it)");
    } else {
        text.push_str(&format!("\nstill running: {}", still_running.join(" > ")));
    }
    if let Some(line) = last_line {
        text.push_str(&format!("\nlast log line: {line}"));
    }
    text
}

fn usage_error(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(EXIT_USAGE)
}

impl<E> Suite<E>
where
    E: Serialize + DeserializeOwned + Send + Sync + 'static,
{
    /// Runs the suite with the libtest command line and returns the exit code.
    pub fn run(self) -> ExitCode {
        run(self)
    }
}

fn run<E>(suite: Suite<E>) -> ExitCode
where
    E: Serialize + DeserializeOwned + Send + Sync + 'static,
{
    let args = Arguments::from_args();
    let variables = crate::extension::variables();
    let config = match EnvConfig::from_env(&variables) {
        Ok(config) => config,
        Err(error) => return usage_error(error),
    };
    for warning in config.warnings(&variables) {
        eprintln!("{warning}");
    }
    if let Some((ledger, pid)) = crate::end_of_run::watching() {
        return crate::end_of_run::watch(ledger, pid, config.keep, crate::extension::finisher);
    }
    let Suite {
        name,
        package,
        build_target_tmpdir,
        build_manifest_dir,
        requirements,
        setup,
        alive,
        fingerprints,
        mut tests,
        test_timeout,
        setup_timeout,
        on_failure,
    } = suite;
    let on_failure = on_failure.map(Arc::new);
    let identity = RunIdentity::detect(
        name.as_deref(),
        BuildFacts {
            package: package.as_deref(),
            target_tmpdir: build_target_tmpdir.as_deref(),
            manifest_dir: build_manifest_dir.as_deref(),
        },
    );

    match crate::registry::collect::<E>() {
        Ok(registered) => tests.extend(registered),
        Err(error) => return usage_error(error),
    }
    if tests.is_empty() {
        return usage_error(format_args!(
            "suite `{}` has no tests: add them with `Suite::test` or `#[kindling::test]`",
            identity.suite
        ));
    }
    tests.sort_by(|a, b| a.name.cmp(&b.name));
    if let Some(message) = duplicate_names(&tests) {
        return usage_error(message);
    }

    let ci = in_ci();
    let mut checked = Requirements::default();
    let mut unmet_by_test = BTreeMap::new();
    for test in &tests {
        // Only name filters decide here (a probe marked ignored passes `--ignored`).
        let probe = Trial::test(test.name.clone(), || Ok(())).with_ignored_flag(true);
        if args.is_filtered_out(&probe) {
            continue;
        }
        let needed = requirements.iter().chain(&test.options.requirements);
        if let Some(unmet) = checked.first_unmet(needed) {
            unmet_by_test.insert(test.name.clone(), unmet);
        }
    }
    // Without CI a test whose requirement is missing is ignored, in the
    // list answer as in the run; with CI it runs and fails with the reason.
    let skipped_for = |test: &Test<E>| !ci && unmet_by_test.contains_key(&test.name);

    if args.list {
        let trials = tests
            .iter()
            .map(|test| {
                Trial::test(test.name.clone(), || Ok(()))
                    .with_ignored_flag(test.options.ignored || skipped_for(test))
            })
            .collect();
        return libtest_mimic::run(&args, trials).exit_code();
    }
    if !ci && !args.ignored && !args.include_ignored {
        for line in skip_warnings(&unmet_by_test, &identity.suite) {
            eprintln!("{line}");
        }
    }

    if !capture::install(config.log_level.as_tracing()) {
        eprintln!(
            "warning: another tracing subscriber is installed; kindling cannot capture test logs"
        );
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => Arc::new(runtime),
        Err(error) => return usage_error(format_args!("cannot start the async runtime: {error}")),
    };
    {
        let _entered = runtime.enter();
        if !crate::interrupt::listen() {
            eprintln!(
                "warning: cannot handle SIGINT and SIGTERM: an interrupted run loses its artifacts"
            );
        }
    }
    let kindling_dir = match identity.kindling_dir() {
        Ok(dir) => dir,
        Err(error) => return usage_error(error),
    };
    // An older kindling left it `0755`: everything under it becomes
    // unreachable to other users at once.
    if let Err(source) = create_private_dir_all(&kindling_dir) {
        return usage_error(render_chain(&PrivateDirError {
            path: kindling_dir,
            source,
        }));
    }
    let progress = Arc::new(Progress::new(&identity.suite, config.progress));
    let state_dir = config
        .state_dir
        .clone()
        .unwrap_or_else(|| kindling_dir.join("state"));
    let end_of_run = EndOfRun::new(
        RunLedger::new(&state_dir, &identity.run_id),
        config.keep,
        identity.under_nextest,
    );
    let environment = match setup {
        None => Environment::Fixed(Arc::new(
            serde_json::from_value::<E>(serde_json::Value::Null)
                .expect("a suite without setup has the environment ()"),
        )),
        Some(setup) => Environment::Setup(Arc::new(SetupDriver::new(
            SetupOptions {
                suite: identity.suite.clone(),
                run_id: identity.run_id.clone(),
                store: StateStore::new(state_dir.clone(), &identity.suite),
                reuse: config.reuse,
                timeout: config
                    .setup_timeout
                    .or(setup_timeout)
                    .unwrap_or(DEFAULT_SETUP_TIMEOUT),
                live_log: args.nocapture,
                progress,
                artifacts_root: kindling_dir.join("artifacts"),
                package_dir: identity.package_dir.clone(),
                end_of_run: Some(end_of_run.clone()),
            },
            setup,
            alive,
            fingerprints,
        ))),
    };
    let default_timeout = config
        .test_timeout
        .or(test_timeout)
        .unwrap_or(DEFAULT_TEST_TIMEOUT);

    let run_started = chrono::Local::now().fixed_offset();
    let run_clock = Instant::now();
    let records: Arc<Mutex<Vec<TestRecord>>> = Arc::default();
    let mut skipped = Vec::new();
    let mut trials = Vec::with_capacity(tests.len());
    for test in tests {
        let name = test.name.clone();
        let ignored = test.options.ignored || skipped_for(&test);
        let unmet = unmet_by_test.get(&name).cloned();
        let runner = TestRunner {
            runtime: runtime.clone(),
            environment: environment.clone(),
            identity: identity.clone(),
            kindling_dir: kindling_dir.clone(),
            records: records.clone(),
            timeout: test.options.timeout.unwrap_or(default_timeout),
            live_log: args.nocapture,
            on_failure: on_failure.clone(),
            unmet,
            end_of_run: end_of_run.clone(),
        };
        let trial = Trial::test(name.clone(), move || runner.run(test)).with_ignored_flag(ignored);
        if args.is_ignored(&trial) && !args.is_filtered_out(&trial) {
            skipped.push(name);
        }
        trials.push(trial);
    }

    let conclusion = libtest_mimic::run(&args, trials);

    let setup_report = match &environment {
        Environment::Setup(driver) => driver.report(),
        Environment::Fixed(_) => None,
    };
    let writes_junit = !identity.under_nextest || setup_report.is_some();
    if writes_junit {
        runtime.block_on(crate::redaction::refresh());
    }
    let mut records = std::mem::take(&mut *records.lock().expect("test records"));
    records.extend(skipped.into_iter().map(|name| TestRecord {
        name,
        outcome: TestOutcome::Skipped,
        started: run_started,
        elapsed: Duration::ZERO,
        log: String::new(),
    }));
    records.sort_by(|a, b| a.name.cmp(&b.name));
    let junit_dir = kindling_dir.join("junit");
    let written = if identity.under_nextest {
        setup_report.as_ref().map(|setup| {
            let path = junit_dir.join(format!("setup-{}-{}.xml", identity.suite, identity.run_id));
            (junit::setup_report(&identity, setup), path)
        })
    } else {
        let path = config
            .junit_path
            .clone()
            .unwrap_or_else(|| junit_dir.join(format!("{}.xml", identity.suite)));
        let report = junit::run_report(
            &identity,
            run_started,
            run_clock.elapsed(),
            &records,
            setup_report.as_ref(),
        );
        Some((report, path))
    };
    let mut exit = match crate::interrupt::received() {
        Some(signal) => ExitCode::from(signal.exit_code()),
        None => conclusion.exit_code(),
    };
    if let Some((report, path)) = written
        && let Err(error) = junit::write(&report, &path, path.starts_with(&junit_dir))
    {
        eprintln!("error: {}", render_chain(&error));
        exit = ExitCode::FAILURE;
    }
    // Under `cargo test` this process is the whole run: its end is here.
    if !identity.under_nextest && config.keep != KeepPolicy::Always {
        let report = runtime.block_on(crate::end_of_run::finish_run(
            end_of_run.ledger(),
            &state_dir,
            config.keep,
            crate::extension::finisher,
        ));
        for removed in &report.removed {
            eprintln!("kindling: removed {removed} (KINDLING_KEEP)");
        }
        for kept in &report.kept {
            eprintln!("kindling: kept {kept} (KINDLING_KEEP=on-failure, a test failed)");
        }
        for failed in &report.failed {
            eprintln!("error: the end of the run could not remove {failed}");
            exit = ExitCode::FAILURE;
        }
    }
    drop(environment);
    if let Ok(runtime) = Arc::try_unwrap(runtime) {
        runtime.shutdown_timeout(Duration::from_secs(1));
    }
    exit
}

fn duplicate_names<E>(tests: &[Test<E>]) -> Option<String> {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for test in tests {
        *counts.entry(test.name.as_str()).or_default() += 1;
    }
    let duplicates: Vec<String> = counts
        .into_iter()
        .filter(|(_, count)| *count > 1)
        .map(|(name, count)| format!("`{name}` ({count} times)"))
        .collect();
    (!duplicates.is_empty()).then(|| {
        format!(
            "duplicate test names: {}; every test needs a unique `::`-separated name (rename the functions or the `Test::new` names)",
            duplicates.join(", ")
        )
    })
}

/// Requirements checked once per process, by name.
#[derive(Default)]
struct Requirements {
    results: BTreeMap<String, Result<(), String>>,
}

/// A requirement a test lacks: its name and what is missing.
#[derive(Debug, Clone)]
struct Unmet {
    requirement: String,
    reason: String,
}

impl Requirements {
    fn first_unmet<'a>(
        &mut self,
        requirements: impl IntoIterator<Item = &'a Requirement>,
    ) -> Option<Unmet> {
        requirements.into_iter().find_map(|requirement| {
            let result = self
                .results
                .entry(requirement.name().to_owned())
                .or_insert_with(|| requirement.check());
            result.clone().err().map(|reason| Unmet {
                requirement: requirement.name().to_owned(),
                reason,
            })
        })
    }
}

/// One line per missing requirement, with how many tests it skips.
fn skip_warnings(unmet: &BTreeMap<String, Unmet>, suite: &str) -> Vec<String> {
    let mut by_requirement: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for missing in unmet.values() {
        *by_requirement
            .entry((&missing.requirement, &missing.reason))
            .or_default() += 1;
    }
    by_requirement
        .into_iter()
        .map(|((requirement, reason), count)| {
            format!(
                "warning: suite `{suite}`: {count} test(s) skipped: requirement `{requirement}` is missing: {reason} (with CI set they fail instead)"
            )
        })
        .collect()
}

struct TestRunner<E> {
    runtime: Arc<tokio::runtime::Runtime>,
    environment: Environment<E>,
    identity: RunIdentity,
    /// `target/kindling`.
    kindling_dir: PathBuf,
    records: Arc<Mutex<Vec<TestRecord>>>,
    timeout: Duration,
    live_log: bool,
    on_failure: Option<Arc<FailureFn<E>>>,
    /// A requirement this test lacks (it runs only with CI set, or when
    /// asked for by `--ignored`, and then fails with the reason).
    unmet: Option<Unmet>,
    end_of_run: EndOfRun,
}

impl<E> TestRunner<E>
where
    E: Serialize + DeserializeOwned + Send + Sync + 'static,
{
    fn run(self, test: Test<E>) -> Result<(), Failed> {
        let started = chrono::Local::now().fixed_offset();
        let clock = Instant::now();
        let capture = Capture::start(&test.name, self.live_log);
        let uses_environment = matches!(test.body, TestBody::WithEnv(_));
        let result = self.runtime.block_on(async {
            let result = self.execute(test.name.clone(), test.body, &capture).await;
            if result.is_err() {
                crate::redaction::refresh().await;
            }
            result
        });
        let elapsed = clock.elapsed();
        let log = capture.text();
        drop(capture);
        let outcome = match &result {
            Ok(()) => TestOutcome::Passed,
            Err(failure) => TestOutcome::Failed {
                message: failure.to_string(),
            },
        };
        let test_name = test.name.clone();
        self.records.lock().expect("test records").push(TestRecord {
            name: test.name,
            outcome,
            started,
            elapsed,
            log: log.clone(),
        });
        if uses_environment {
            self.end_of_run
                .record_test(&self.identity.suite, &test_name, result.is_ok());
        }
        result.map_err(|failure| {
            let mut message = crate::redaction::redact_owned(failure.to_string());
            if uses_environment && let Some(fate) = self.end_of_run.fate_of(&self.identity.suite) {
                message.push('\n');
                message.push_str(&fate);
            }
            if !self.live_log && !log.is_empty() {
                message.push_str("\n\n---- captured log ----\n");
                message.push_str(&crate::redaction::redact(&log));
            }
            Failed::from(message)
        })
    }

    async fn execute(
        &self,
        name: String,
        body: TestBody<E>,
        capture: &Capture,
    ) -> Result<(), TestFailure> {
        if let Some(unmet) = &self.unmet {
            return Err(TestFailure::Unmet(unmet.clone()));
        }
        if let Some(signal) = crate::interrupt::received() {
            return Err(TestFailure::NotRun(crate::interrupt::Interrupted(signal)));
        }
        let mut failure_hook = None;
        let future = match body {
            TestBody::Standalone(body) => body(),
            TestBody::WithEnv(body) => {
                let environment = self.environment.get().await.map_err(TestFailure::Setup)?;
                let context_environment = environment.clone();
                let artifacts_root = self.kindling_dir.join("artifacts");
                if let Some(hook) = &self.on_failure {
                    failure_hook = Some((hook.clone(), environment));
                }
                body(TestContext {
                    environment: context_environment,
                    test_name: name.clone(),
                    run_id: self.identity.run_id.clone(),
                    suite: self.identity.suite.clone(),
                    artifacts_root,
                })
            }
        };
        let artifacts = self
            .kindling_dir
            .join("artifacts")
            .join(&self.identity.run_id)
            .join(&self.identity.suite)
            .join(name.replace("::", "__"));
        let current = CurrentTest {
            test_name: name.clone(),
            run_id: self.identity.run_id.clone(),
            suite: self.identity.suite.clone(),
        };
        let future = Box::pin(as_current_test(current, future));
        let outcome = self.run_body(future, capture).await;
        match (outcome, failure_hook) {
            (Err(failure), Some((hook, environment))) => {
                // After a signal, the grace period before SIGKILL bounds it.
                let budget = if crate::interrupt::received().is_some() {
                    crate::setup::INTERRUPT_GRACE
                } else {
                    ARTIFACTS_TIMEOUT
                };
                // The hook may write with any mode: the folder keeps it private.
                if let Err(error) = create_private_dir_all(&artifacts) {
                    tracing::warn!(
                        "cannot create the artifacts folder {}: {error}",
                        artifacts.display()
                    );
                }
                let collected = tokio::time::timeout(
                    budget,
                    hook(environment, artifacts.clone()).instrument(capture.span()),
                )
                .await;
                if collected.is_err() {
                    tracing::warn!("collecting artifacts took over {}s", budget.as_secs());
                }
                // The hook is the suite's: whatever it wrote is redacted
                // with every value known once it is done.
                crate::redaction::refresh().await;
                let redactor = crate::redaction::redactor();
                let folder = artifacts.clone();
                let failed =
                    tokio::task::spawn_blocking(move || redactor.redact_tree(&folder)).await;
                for (path, error) in failed.unwrap_or_default() {
                    tracing::warn!("cannot redact {}: {error}", path.display());
                }
                Err(TestFailure::WithArtifacts {
                    failure: Box::new(failure),
                    artifacts,
                })
            }
            (outcome, _) => outcome,
        }
    }

    async fn run_body(
        &self,
        future: BoxFuture<TestResult>,
        capture: &Capture,
    ) -> Result<(), TestFailure> {
        let mut task = tokio::spawn(future.instrument(capture.span()));
        let finished =
            crate::interrupt::or_interrupted(tokio::time::timeout(self.timeout, &mut task));
        match finished.await {
            Err(interrupted) => {
                task.abort();
                Err(TestFailure::Interrupted(interrupted))
            }
            Ok(Ok(Ok(Ok(())))) => Ok(()),
            Ok(Ok(Ok(Err(error)))) => Err(TestFailure::Returned(render_chain(error.as_ref()))),
            Ok(Ok(Err(join))) => Err(TestFailure::Panicked(panic_message(join))),
            Ok(Err(_elapsed)) => {
                let failure = TestFailure::TimedOut {
                    after: self.timeout,
                    still_running: capture.open_spans(),
                    last_line: capture.last_line(),
                };
                task.abort();
                tracing::debug!("aborted after {}", seconds(self.timeout));
                Err(failure)
            }
        }
    }
}
