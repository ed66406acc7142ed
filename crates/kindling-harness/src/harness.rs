//! `Suite::run`: the libtest command line (through libtest-mimic), the
//! nextest contract, per-test timing, capture and timeouts, and reports.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use libtest_mimic::{Arguments, Failed, Trial};
use quick_junit::Report;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::Instrument as _;

use crate::capture::{self, Capture};
use crate::config::{DEFAULT_SETUP_TIMEOUT, DEFAULT_TEST_TIMEOUT, EnvConfig, KeepPolicy};
use crate::end_of_run::EndOfRun;
use crate::error::TestResult;
use crate::error::render_chain;
use crate::identity::{BuildFacts, RunIdentity};
use crate::junit::{self, SetupReport, TestOutcome, TestRecord};
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

fn run<E>(mut suite: Suite<E>) -> ExitCode
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
    let identity = run_identity(&suite);
    let tests = match all_tests(std::mem::take(&mut suite.tests), &identity.suite) {
        Ok(tests) => tests,
        Err(exit) => return exit,
    };
    let missing = MissingRequirements::check(&args, &suite.requirements, &tests);
    if args.list {
        return list_tests(&args, &tests, &missing);
    }
    if !missing.ci && !args.ignored && !args.include_ignored {
        for line in skip_warnings(&missing.unmet_by_test, &identity.suite) {
            eprintln!("{line}");
        }
    }
    let site = match RunSite::open(identity, &config) {
        Ok(site) => site,
        Err(exit) => return exit,
    };
    run_tests(site, suite, tests, &missing, &args, &config)
}

/// The run's identity, from the suite's name and what its build said.
fn run_identity<E>(suite: &Suite<E>) -> RunIdentity {
    RunIdentity::detect(
        suite.name.as_deref(),
        BuildFacts {
            package: suite.package.as_deref(),
            target_tmpdir: suite.build_target_tmpdir.as_deref(),
            manifest_dir: suite.build_manifest_dir.as_deref(),
        },
    )
}

/// The suite's tests and the registered (`#[kindling::test]`) ones, sorted
/// by name; no test at all, or a name used twice, is a usage error.
fn all_tests<E>(mut tests: Vec<Test<E>>, suite: &str) -> Result<Vec<Test<E>>, ExitCode>
where
    E: Send + Sync + 'static,
{
    match crate::registry::collect::<E>() {
        Ok(registered) => tests.extend(registered),
        Err(error) => return Err(usage_error(error)),
    }
    if tests.is_empty() {
        return Err(usage_error(format_args!(
            "suite `{suite}` has no tests: add them with `Suite::test` or `#[kindling::test]`"
        )));
    }
    tests.sort_by(|a, b| a.name.cmp(&b.name));
    if let Some(message) = duplicate_names(&tests) {
        return Err(usage_error(message));
    }
    Ok(tests)
}

/// The `--list` answer: every test, the ignored ones marked so.
fn list_tests<E>(args: &Arguments, tests: &[Test<E>], missing: &MissingRequirements) -> ExitCode {
    let trials = tests
        .iter()
        .map(|test| {
            Trial::test(test.name.clone(), || Ok(()))
                .with_ignored_flag(test.options.ignored || missing.ignores(test))
        })
        .collect();
    libtest_mimic::run(args, trials).exit_code()
}

/// The multi-threaded runtime the tests run on, with SIGINT and SIGTERM
/// handled on it.
fn start_runtime() -> Result<Arc<tokio::runtime::Runtime>, ExitCode> {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => Arc::new(runtime),
        Err(error) => {
            return Err(usage_error(format_args!(
                "cannot start the async runtime: {error}"
            )));
        }
    };
    {
        let _entered = runtime.enter();
        if !crate::interrupt::listen() {
            eprintln!(
                "warning: cannot handle SIGINT and SIGTERM: an interrupted run loses its artifacts"
            );
        }
    }
    Ok(runtime)
}

/// `target/kindling`, made private (mode 0700).
fn private_kindling_dir(identity: &RunIdentity) -> Result<PathBuf, ExitCode> {
    let kindling_dir = identity.kindling_dir().map_err(usage_error)?;
    // An older kindling left it `0755`: everything under it becomes
    // unreachable to other users at once.
    if let Err(source) = create_private_dir_all(&kindling_dir) {
        return Err(usage_error(render_chain(&PrivateDirError {
            path: kindling_dir,
            source,
        })));
    }
    Ok(kindling_dir)
}

/// Runs the tests, writes the reports and, under `cargo test`, ends the run.
fn run_tests<E>(
    site: RunSite,
    suite: Suite<E>,
    tests: Vec<Test<E>>,
    missing: &MissingRequirements,
    args: &Arguments,
    config: &EnvConfig,
) -> ExitCode
where
    E: Serialize + DeserializeOwned + Send + Sync + 'static,
{
    let Suite {
        setup,
        alive,
        fingerprints,
        test_timeout,
        setup_timeout,
        on_failure,
        ..
    } = suite;
    let on_failure = on_failure.map(Arc::new);
    let environment = match setup {
        None => Environment::Fixed(Arc::new(
            serde_json::from_value::<E>(serde_json::Value::Null)
                .expect("a suite without setup has the environment ()"),
        )),
        Some(setup) => Environment::Setup(Arc::new(SetupDriver::new(
            site.setup_options(config, setup_timeout, args.nocapture),
            setup,
            alive,
            fingerprints,
        ))),
    };
    let default_timeout = config
        .test_timeout
        .or(test_timeout)
        .unwrap_or(DEFAULT_TEST_TIMEOUT);
    let started = chrono::Local::now().fixed_offset();
    let clock = Instant::now();
    let records: Arc<Mutex<Vec<TestRecord>>> = Arc::default();
    let runner_for = |test: &Test<E>| TestRunner {
        runtime: site.runtime.clone(),
        environment: environment.clone(),
        identity: site.identity.clone(),
        kindling_dir: site.kindling_dir.clone(),
        records: records.clone(),
        timeout: test.options.timeout.unwrap_or(default_timeout),
        live_log: args.nocapture,
        on_failure: on_failure.clone(),
        unmet: missing.unmet_by_test.get(&test.name).cloned(),
        end_of_run: site.end_of_run.clone(),
    };
    let (trials, skipped) = trials(tests, args, missing, runner_for);
    let ran = RanTests {
        conclusion: libtest_mimic::run(args, trials),
        records,
        skipped,
        started,
        clock,
    };
    let setup_report = match &environment {
        Environment::Setup(driver) => driver.report(),
        Environment::Fixed(_) => None,
    };
    let exit = site.conclude(config, setup_report, ran);
    drop(environment);
    site.shut_down();
    exit
}

/// A trial per test, and the names of the ignored tests the filters
/// select (JUnit lists them as skipped).
fn trials<E>(
    tests: Vec<Test<E>>,
    args: &Arguments,
    missing: &MissingRequirements,
    runner_for: impl Fn(&Test<E>) -> TestRunner<E>,
) -> (Vec<Trial>, Vec<String>)
where
    E: Serialize + DeserializeOwned + Send + Sync + 'static,
{
    let mut skipped = Vec::new();
    let mut trials = Vec::with_capacity(tests.len());
    for test in tests {
        let name = test.name.clone();
        let ignored = test.options.ignored || missing.ignores(&test);
        let runner = runner_for(&test);
        let trial = Trial::test(name.clone(), move || runner.run(test)).with_ignored_flag(ignored);
        if args.is_ignored(&trial) && !args.is_filtered_out(&trial) {
            skipped.push(name);
        }
        trials.push(trial);
    }
    (trials, skipped)
}

/// Where a run keeps its state, artifacts and JUnit, and the runtime its
/// tests run on.
struct RunSite {
    identity: RunIdentity,
    runtime: Arc<tokio::runtime::Runtime>,
    /// `target/kindling`.
    kindling_dir: PathBuf,
    state_dir: PathBuf,
    end_of_run: EndOfRun,
}

impl RunSite {
    /// Installs log capture, starts the runtime and makes kindling's
    /// folder private; what fails is a usage error.
    fn open(identity: RunIdentity, config: &EnvConfig) -> Result<Self, ExitCode> {
        if !capture::install(config.log_level.as_tracing()) {
            eprintln!(
                "warning: another tracing subscriber is installed; kindling cannot capture test logs"
            );
        }
        let runtime = start_runtime()?;
        let kindling_dir = private_kindling_dir(&identity)?;
        let state_dir = config
            .state_dir
            .clone()
            .unwrap_or_else(|| kindling_dir.join("state"));
        let end_of_run = EndOfRun::new(
            RunLedger::new(&state_dir, &identity.run_id),
            config.keep,
            identity.under_nextest,
        );
        Ok(RunSite {
            identity,
            runtime,
            kindling_dir,
            state_dir,
            end_of_run,
        })
    }

    /// How the setup driver runs the suite's setup in this run.
    fn setup_options(
        &self,
        config: &EnvConfig,
        suite_timeout: Option<Duration>,
        live_log: bool,
    ) -> SetupOptions {
        SetupOptions {
            suite: self.identity.suite.clone(),
            run_id: self.identity.run_id.clone(),
            store: StateStore::new(self.state_dir.clone(), &self.identity.suite),
            reuse: config.reuse,
            timeout: config
                .setup_timeout
                .or(suite_timeout)
                .unwrap_or(DEFAULT_SETUP_TIMEOUT),
            live_log,
            progress: Arc::new(Progress::new(&self.identity.suite, config.progress)),
            artifacts_root: self.kindling_dir.join("artifacts"),
            package_dir: self.identity.package_dir.clone(),
            end_of_run: Some(self.end_of_run.clone()),
        }
    }

    /// Writes the JUnit report and, under `cargo test`, ends the run; the
    /// exit code is the tests' (or the signal's), or a failure if either fails.
    fn conclude(
        &self,
        config: &EnvConfig,
        setup_report: Option<SetupReport>,
        mut ran: RanTests,
    ) -> ExitCode {
        let writes_junit = !self.identity.under_nextest || setup_report.is_some();
        if writes_junit {
            self.runtime.block_on(crate::redaction::refresh());
        }
        let records = ran.take_records();
        let junit_dir = self.kindling_dir.join("junit");
        let written = self.junit_report(config, &junit_dir, setup_report, &records, &ran);
        let mut exit = match crate::interrupt::received() {
            Some(signal) => ExitCode::from(signal.exit_code()),
            None => ran.conclusion.exit_code(),
        };
        if let Some((report, path)) = written
            && let Err(error) = junit::write(&report, &path, path.starts_with(&junit_dir))
        {
            eprintln!("error: {}", render_chain(&error));
            exit = ExitCode::FAILURE;
        }
        // Under `cargo test` this process is the whole run: its end is here.
        if !self.identity.under_nextest
            && config.keep != KeepPolicy::Always
            && !self.end_run(config.keep)
        {
            exit = ExitCode::FAILURE;
        }
        exit
    }

    /// The JUnit report to write, and where: under nextest only the
    /// setup's (if this process ran one), under `cargo test` the whole run's.
    fn junit_report(
        &self,
        config: &EnvConfig,
        junit_dir: &Path,
        setup_report: Option<SetupReport>,
        records: &[TestRecord],
        ran: &RanTests,
    ) -> Option<(Report, PathBuf)> {
        let identity = &self.identity;
        if identity.under_nextest {
            setup_report.as_ref().map(|setup| {
                let path =
                    junit_dir.join(format!("setup-{}-{}.xml", identity.suite, identity.run_id));
                (junit::setup_report(identity, setup), path)
            })
        } else {
            let path = config
                .junit_path
                .clone()
                .unwrap_or_else(|| junit_dir.join(format!("{}.xml", identity.suite)));
            let report = junit::run_report(
                identity,
                ran.started,
                ran.clock.elapsed(),
                records,
                setup_report.as_ref(),
            );
            Some((report, path))
        }
    }

    /// Removes what `keep` says at the end of a `cargo test` run, saying
    /// what it removed and kept; `false` if something could not be removed.
    fn end_run(&self, keep: KeepPolicy) -> bool {
        let report = self.runtime.block_on(crate::end_of_run::finish_run(
            self.end_of_run.ledger(),
            &self.state_dir,
            keep,
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
        }
        report.failed.is_empty()
    }

    /// Gives the runtime's remaining tasks a second to end.
    fn shut_down(self) {
        if let Ok(runtime) = Arc::try_unwrap(self.runtime) {
            runtime.shutdown_timeout(Duration::from_secs(1));
        }
    }
}

/// What running the tests leaves for the reports.
struct RanTests {
    conclusion: libtest_mimic::Conclusion,
    records: Arc<Mutex<Vec<TestRecord>>>,
    /// The ignored tests the filters selected.
    skipped: Vec<String>,
    started: chrono::DateTime<chrono::FixedOffset>,
    clock: Instant,
}

impl RanTests {
    /// Every test's record, the skipped ones' included, by name.
    fn take_records(&mut self) -> Vec<TestRecord> {
        let mut records = std::mem::take(&mut *self.records.lock().expect("test records"));
        records.extend(
            std::mem::take(&mut self.skipped)
                .into_iter()
                .map(|name| TestRecord {
                    name,
                    outcome: TestOutcome::Skipped,
                    started: self.started,
                    elapsed: Duration::ZERO,
                    log: String::new(),
                }),
        );
        records.sort_by(|a, b| a.name.cmp(&b.name));
        records
    }
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

/// The first requirement each test the name filters select lacks.
struct MissingRequirements {
    ci: bool,
    /// By test name.
    unmet_by_test: BTreeMap<String, Unmet>,
}

impl MissingRequirements {
    /// Checks the requirements of the suite and of each selected test,
    /// each requirement once.
    fn check<E>(args: &Arguments, requirements: &[Requirement], tests: &[Test<E>]) -> Self {
        let ci = in_ci();
        let mut checked = Requirements::default();
        let mut unmet_by_test = BTreeMap::new();
        for test in tests {
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
        MissingRequirements { ci, unmet_by_test }
    }

    /// Without CI a test whose requirement is missing is ignored, in the
    /// list answer as in the run; with CI it runs and fails with the reason.
    fn ignores<E>(&self, test: &Test<E>) -> bool {
        !self.ci && self.unmet_by_test.contains_key(&test.name)
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
        let (future, failure_hook) = self.start_body(&name, body).await?;
        let artifacts = self.artifacts_dir(&name);
        let current = CurrentTest {
            test_name: name.clone(),
            run_id: self.identity.run_id.clone(),
            suite: self.identity.suite.clone(),
        };
        let future = Box::pin(as_current_test(current, future));
        let outcome = self.run_body(future, capture).await;
        match (outcome, failure_hook) {
            (Err(failure), Some(hook)) => {
                collect_artifacts(hook, &artifacts, capture).await;
                Err(TestFailure::WithArtifacts {
                    failure: Box::new(failure),
                    artifacts,
                })
            }
            (outcome, _) => outcome,
        }
    }

    /// The test body's future and, for a body that needs the environment
    /// (which gets it, setting it up first if need be), the suite's hook
    /// to run if it fails.
    async fn start_body(
        &self,
        name: &str,
        body: TestBody<E>,
    ) -> Result<(BoxFuture<TestResult>, Option<FailureHook<E>>), TestFailure> {
        match body {
            TestBody::Standalone(body) => Ok((body(), None)),
            TestBody::WithEnv(body) => {
                let environment = self.environment.get().await.map_err(TestFailure::Setup)?;
                let context_environment = environment.clone();
                let artifacts_root = self.kindling_dir.join("artifacts");
                let failure_hook = self
                    .on_failure
                    .as_ref()
                    .map(|hook| (hook.clone(), environment));
                let future = body(TestContext {
                    environment: context_environment,
                    test_name: name.to_owned(),
                    run_id: self.identity.run_id.clone(),
                    suite: self.identity.suite.clone(),
                    artifacts_root,
                });
                Ok((future, failure_hook))
            }
        }
    }

    /// `artifacts/<run id>/<suite>/<test>`, where a failed test's hook writes.
    fn artifacts_dir(&self, name: &str) -> PathBuf {
        self.kindling_dir
            .join("artifacts")
            .join(&self.identity.run_id)
            .join(&self.identity.suite)
            .join(name.replace("::", "__"))
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

/// A failed test's hook that collects artifacts, and the environment it
/// is handed.
type FailureHook<E> = (Arc<FailureFn<E>>, Arc<E>);

/// Runs the suite's failure hook into `artifacts` within its time budget,
/// then redacts whatever it wrote there.
async fn collect_artifacts<E>(
    (hook, environment): FailureHook<E>,
    artifacts: &Path,
    capture: &Capture,
) {
    // After a signal, the grace period before SIGKILL bounds it.
    let budget = if crate::interrupt::received().is_some() {
        crate::setup::INTERRUPT_GRACE
    } else {
        ARTIFACTS_TIMEOUT
    };
    // The hook may write with any mode: the folder keeps it private.
    if let Err(error) = create_private_dir_all(artifacts) {
        tracing::warn!(
            "cannot create the artifacts folder {}: {error}",
            artifacts.display()
        );
    }
    let collected = tokio::time::timeout(
        budget,
        hook(environment, artifacts.to_path_buf()).instrument(capture.span()),
    )
    .await;
    if collected.is_err() {
        tracing::warn!("collecting artifacts took over {}s", budget.as_secs());
    }
    // The hook is the suite's: whatever it wrote is redacted
    // with every value known once it is done.
    crate::redaction::refresh().await;
    let redactor = crate::redaction::redactor();
    let folder = artifacts.to_path_buf();
    let failed = tokio::task::spawn_blocking(move || redactor.redact_tree(&folder)).await;
    for (path, error) in failed.unwrap_or_default() {
        tracing::warn!("cannot redact {}: {error}", path.display());
    }
}
