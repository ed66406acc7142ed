//! The run-wide setup: run lazily by the first test that needs it, once per
//! run across every process of that run, recorded so later processes reuse
//! it (or fail at once with its error). A later run either reuses it (a
//! custom setup whose declared fingerprints are unchanged and whose
//! liveness checks pass) or runs the setup again, handing it what the
//! earlier run left so it can redo only what changed.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::Instrument as _;

use crate::capture::Capture;
use crate::config::ReusePolicy;
use crate::error::{BoxError, render_chain};
use crate::progress::Progress;
use crate::state::{
    Decision, GoodSetup, PhaseRecord, Previous, SetupRecord, SetupStatus, StateError, StateStore,
    decide,
};

pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;
pub(crate) type SetupFn<E> =
    Box<dyn Fn(SetupContext) -> BoxFuture<Result<E, BoxError>> + Send + Sync>;
pub(crate) type FailureFn<E> = Box<dyn Fn(Arc<E>, PathBuf) -> BoxFuture<()> + Send + Sync>;
pub(crate) type AliveFn<E> = Box<dyn Fn(Arc<E>) -> BoxFuture<Result<(), BoxError>> + Send + Sync>;
pub(crate) type FingerprintFn = Box<dyn Fn() -> Result<String, BoxError> + Send + Sync>;

/// Handed to the setup function: runs and times named phases (also several
/// at once), and carries what the last finished setup of the suite left.
#[derive(Clone)]
pub struct SetupContext {
    inner: Arc<SetupShared>,
}

struct SetupShared {
    suite: String,
    run_id: String,
    artifacts_root: PathBuf,
    package_dir: PathBuf,
    progress: Arc<Progress>,
    phases: Mutex<Vec<PhaseRecord>>,
    running: Mutex<Vec<(u64, String, Instant)>>,
    next_phase: AtomicU64,
    previous: Option<Previous>,
    remembered: Mutex<BTreeMap<String, serde_json::Value>>,
    inputs: Mutex<BTreeMap<String, String>>,
    self_checking: AtomicBool,
    end_of_run: Option<crate::end_of_run::EndOfRun>,
}

/// Removes a phase from the running ones when it ends or is dropped.
struct RunningPhase<'a> {
    shared: &'a SetupShared,
    id: u64,
}

impl Drop for RunningPhase<'_> {
    fn drop(&mut self) {
        if let Ok(mut running) = self.shared.running.lock() {
            running.retain(|(running, _, _)| *running != self.id);
        }
    }
}

/// A setup phase returned an error.
#[derive(Debug, thiserror::Error)]
#[error("setup phase `{phase}` failed")]
pub struct PhaseError {
    pub phase: String,
    #[source]
    pub source: BoxError,
}

/// Where a suite's setup runs: its identity and what an earlier run left.
pub(crate) struct ContextOptions<'a> {
    pub suite: &'a str,
    pub run_id: &'a str,
    pub artifacts_root: &'a Path,
    pub package_dir: &'a Path,
    pub progress: Arc<Progress>,
    pub previous: Option<Previous>,
    /// Where the run's cleanups go, and what the run keeps.
    pub end_of_run: Option<crate::end_of_run::EndOfRun>,
}

impl SetupContext {
    pub(crate) fn new(options: ContextOptions<'_>) -> Self {
        SetupContext {
            inner: Arc::new(SetupShared {
                suite: options.suite.to_owned(),
                run_id: options.run_id.to_owned(),
                artifacts_root: options.artifacts_root.to_owned(),
                package_dir: options.package_dir.to_owned(),
                progress: options.progress,
                phases: Mutex::default(),
                running: Mutex::default(),
                next_phase: AtomicU64::new(0),
                previous: options.previous,
                remembered: Mutex::default(),
                inputs: Mutex::default(),
                self_checking: AtomicBool::new(false),
                end_of_run: options.end_of_run,
            }),
        }
    }

    /// A context outside any suite run, for tools and benchmarks that
    /// declare an environment to fingerprint it or bring it up by hand:
    /// suite `suite`, relative paths resolved against `package_dir`, a run
    /// of its own, no earlier setup, progress on stderr.
    pub fn standalone(suite: &str, package_dir: &Path) -> Self {
        let run_id = uuid::Uuid::new_v4().to_string();
        SetupContext::new(ContextOptions {
            suite,
            run_id: &run_id,
            artifacts_root: &std::env::temp_dir().join("kindling-artifacts"),
            package_dir,
            progress: Arc::new(Progress::new(suite, crate::config::ProgressMode::Plain)),
            previous: None,
            end_of_run: None,
        })
    }

    /// Where this run's artifacts of the setup go on failure:
    /// `target/kindling/artifacts/<run id>/<suite>/setup`.
    pub fn artifacts_dir(&self) -> PathBuf {
        self.inner
            .artifacts_root
            .join(&self.inner.run_id)
            .join(&self.inner.suite)
            .join("setup")
    }

    /// The suite being set up.
    pub fn suite(&self) -> &str {
        &self.inner.suite
    }

    /// The run this setup belongs to (nextest's run id under nextest).
    pub fn run_id(&self) -> &str {
        &self.inner.run_id
    }

    /// The suite package's directory (`CARGO_MANIFEST_DIR` when cargo or
    /// nextest runs the suite, else the current directory): relative paths
    /// of images and manifests are resolved against it.
    pub fn package_dir(&self) -> &Path {
        &self.inner.package_dir
    }

    /// `path` resolved against [`SetupContext::package_dir`].
    pub fn resolve(&self, path: &Path) -> PathBuf {
        if path.is_absolute() {
            path.to_owned()
        } else {
            self.inner.package_dir.join(path)
        }
    }

    /// The run whose finished setup this one may build on, if any. There is
    /// none on a first run, with `KINDLING_REUSE=never`, after a
    /// `Suite::fingerprint` changed, or when a liveness check failed.
    pub fn previous_run(&self) -> Option<&str> {
        self.inner
            .previous
            .as_ref()
            .map(|previous| previous.setup.run_id.as_str())
    }

    /// The environment that earlier setup produced, if it reads as `T`.
    /// A custom setup that has nothing to redo can return it as it is.
    pub fn previous_environment<T: DeserializeOwned>(&self) -> Option<T> {
        let previous = self.inner.previous.as_ref()?;
        serde_json::from_value(previous.setup.environment.clone()).ok()
    }

    /// What that earlier setup [remembered](SetupContext::remember) under `key`.
    pub fn recall<T: DeserializeOwned>(&self, key: &str) -> Option<T> {
        let previous = self.inner.previous.as_ref()?;
        serde_json::from_value(previous.setup.parts.get(key)?.clone()).ok()
    }

    /// True when a setup started from that earlier one and did not finish
    /// (killed, failed, timed out): what is deployed may be partly newer
    /// than what it recorded, so nothing of it should be taken as current.
    pub fn previous_interrupted(&self) -> bool {
        self.inner
            .previous
            .as_ref()
            .is_some_and(|previous| previous.interrupted)
    }

    /// Keeps `value` under `key` for the next run's setup
    /// ([`SetupContext::recall`]); recorded only if this setup finishes.
    pub fn remember<T: Serialize>(&self, key: &str, value: &T) -> Result<(), serde_json::Error> {
        let value = serde_json::to_value(value)?;
        self.inner
            .remembered
            .lock()
            .expect("remembered parts")
            .insert(key.to_owned(), value);
        Ok(())
    }

    /// Records the digest of an input the setup declared, for the setup's
    /// report (the `@setup` JUnit testsuite's properties). Reports only:
    /// whether to redo work is the setup's own decision.
    pub fn declare_input(&self, key: &str, digest: &str) {
        self.inner
            .inputs
            .lock()
            .expect("declared inputs")
            .insert(key.to_owned(), digest.to_owned());
    }

    /// Declares that this setup checks its own inputs on every run, as
    /// [`crate::Environment::builder`] does: later runs always call it
    /// (with [`SetupContext::previous_environment`]) instead of skipping it
    /// because the suite's fingerprints are unchanged.
    pub fn checks_inputs_itself(&self) {
        self.inner.self_checking.store(true, Ordering::Relaxed);
    }

    /// Names something this setup made that the end of the run removes
    /// when `KINDLING_KEEP` says so (`on-failure` after a passing run,
    /// `never` always): `describe` says what it is, `data` is what the
    /// end of the run hands the code that removes it. Does nothing
    /// in a standalone context or under `KINDLING_KEEP=always`.
    pub fn remove_at_end_of_run(&self, describe: &str, data: serde_json::Value) {
        if let Some(end) = &self.inner.end_of_run {
            end.record_cleanup(&self.inner.suite, describe, data);
        }
    }

    /// What this run keeps when it ends (`KINDLING_KEEP`).
    pub fn keep(&self) -> crate::config::KeepPolicy {
        self.inner
            .end_of_run
            .as_ref()
            .map(|end| end.keep())
            .unwrap_or(crate::config::KeepPolicy::Always)
    }

    /// Writes a line on the setup's progress (stderr).
    pub fn progress(&self, message: &str) {
        self.inner.progress.line(message);
    }

    /// Runs `work` as the phase `name`: timed, shown in progress, reported
    /// as its own JUnit case, and named in the error if it fails. Phases
    /// may run at the same time (`tokio::join!`); each keeps its own time.
    pub async fn phase<T, Er>(
        &self,
        name: &str,
        work: impl Future<Output = Result<T, Er>>,
    ) -> Result<T, PhaseError>
    where
        Er: Into<BoxError>,
    {
        let started = Instant::now();
        let id = self.inner.next_phase.fetch_add(1, Ordering::Relaxed);
        self.inner
            .running
            .lock()
            .expect("running phases")
            .push((id, name.to_owned(), started));
        // A phase cancelled by a failing sibling (`try_join!`) must not
        // stay listed as running.
        let running = RunningPhase {
            shared: &self.inner,
            id,
        };
        self.show_running();
        // A signal ends the phase like an error of its own, so the setup's
        // error path (artifacts, a failed record) runs as for any failure.
        let result = match crate::interrupt::or_interrupted(
            work.instrument(tracing::info_span!("phase", name)),
        )
        .await
        {
            Ok(result) => result.map_err(|source| PhaseError {
                phase: name.to_owned(),
                source: source.into(),
            }),
            Err(interrupted) => Err(PhaseError {
                phase: name.to_owned(),
                source: Box::new(interrupted),
            }),
        };
        let elapsed = started.elapsed();
        drop(running);
        let error = result.as_ref().err().map(|error| render_chain(error));
        self.inner.progress.line(&format!(
            "{name} {} in {}",
            if error.is_some() { "failed" } else { "done" },
            seconds(elapsed)
        ));
        self.show_running();
        self.inner
            .phases
            .lock()
            .expect("setup phases")
            .push(PhaseRecord {
                name: name.to_owned(),
                seconds: elapsed.as_secs_f64(),
                error,
            });
        result
    }

    fn show_running(&self) {
        let names: Vec<String> = self
            .running_phases()
            .into_iter()
            .map(|(name, _)| format!("{name}…"))
            .collect();
        if !names.is_empty() {
            self.inner.progress.working(&names.join(" ∥ "));
        }
    }

    fn phases(&self) -> Vec<PhaseRecord> {
        self.inner.phases.lock().expect("setup phases").clone()
    }

    /// The phases running now, with how long each has run, in start order.
    fn running_phases(&self) -> Vec<(String, Duration)> {
        self.inner
            .running
            .lock()
            .expect("running phases")
            .iter()
            .map(|(_, name, started)| (name.clone(), started.elapsed()))
            .collect()
    }

    fn remembered(&self) -> BTreeMap<String, serde_json::Value> {
        self.inner
            .remembered
            .lock()
            .expect("remembered parts")
            .clone()
    }

    fn inputs(&self) -> BTreeMap<String, String> {
        self.inner.inputs.lock().expect("declared inputs").clone()
    }

    fn self_checking(&self) -> bool {
        self.inner.self_checking.load(Ordering::Relaxed)
    }
}

/// Why a test could not get its environment.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("run-wide setup of suite `{suite}` failed:\n{message}")]
    Failed { suite: String, message: String },
    #[error(
        "run-wide setup of suite `{suite}` failed in another process of this run (pid {pid}):\n{message}"
    )]
    FailedElsewhere {
        suite: String,
        pid: u32,
        message: String,
    },
    #[error("run-wide setup of suite `{suite}` timed out after {}{}", humantime::format_duration(*.after), still_running(.phases))]
    TimedOut {
        suite: String,
        after: Duration,
        /// The phases still running, with how long each had run.
        phases: Vec<(String, Duration)>,
    },
    #[error("run-wide setup of suite `{suite}` panicked: {message}")]
    Panicked { suite: String, message: String },
    #[error("run-wide setup of suite `{suite}` was {interrupted}{}", still_running(.phases))]
    Interrupted {
        suite: String,
        interrupted: crate::interrupt::Interrupted,
        /// The phases still running when it gave up, with how long each had run.
        phases: Vec<(String, Duration)>,
    },
    #[error("failed to record the setup of suite `{suite}`")]
    State {
        suite: String,
        #[source]
        source: StateError,
    },
    #[error("the environment of suite `{suite}` cannot be serialised into its state file")]
    Serialise {
        suite: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("fingerprint `{key}` of suite `{suite}` cannot be computed")]
    Fingerprint {
        suite: String,
        key: String,
        #[source]
        source: BoxError,
    },
}

fn still_running(phases: &[(String, Duration)]) -> String {
    match phases {
        [] => " outside any phase".to_owned(),
        [(name, running)] => format!(
            " while phase `{name}` was still running (for {})",
            seconds(*running)
        ),
        many => format!(
            " while phases {} were still running",
            many.iter()
                .map(|(name, running)| format!("`{name}` (for {})", seconds(*running)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// How long an interrupted setup or test may take to end and collect its
/// artifacts: within nextest's default grace period of 10 s before SIGKILL.
pub(crate) const INTERRUPT_GRACE: Duration = Duration::from_secs(8);

pub(crate) fn seconds(duration: Duration) -> String {
    format!("{:.2}s", duration.as_secs_f64())
}

/// What the setup report (the `@setup:<suite>` JUnit suite) shows.
#[derive(Debug, Clone)]
pub(crate) struct SetupReport {
    pub run_id: String,
    pub reused_from: Option<String>,
    pub fingerprints: BTreeMap<String, String>,
    pub phases: Vec<PhaseRecord>,
    pub log: String,
    /// The setup's error, when it failed (also outside any phase).
    pub error: Option<String>,
    pub started: chrono::DateTime<chrono::FixedOffset>,
    pub elapsed: Duration,
}

pub(crate) struct SetupOptions {
    pub suite: String,
    pub run_id: String,
    pub store: StateStore,
    pub reuse: ReusePolicy,
    pub timeout: Duration,
    pub live_log: bool,
    pub progress: Arc<Progress>,
    /// `target/kindling/artifacts`.
    pub artifacts_root: PathBuf,
    /// Where relative paths of the suite resolve.
    pub package_dir: PathBuf,
    pub end_of_run: Option<crate::end_of_run::EndOfRun>,
}

/// Drives the setup for one process: at most once, shared by every test.
pub(crate) struct SetupDriver<E> {
    options: SetupOptions,
    setup: SetupFn<E>,
    alive: Vec<(String, AliveFn<E>)>,
    fingerprints: Vec<(String, FingerprintFn)>,
    result: tokio::sync::OnceCell<Result<Arc<E>, Arc<SetupError>>>,
    report: Mutex<Option<SetupReport>>,
}

impl<E> SetupDriver<E>
where
    E: Serialize + DeserializeOwned + Send + Sync + 'static,
{
    pub(crate) fn new(
        options: SetupOptions,
        setup: SetupFn<E>,
        alive: Vec<(String, AliveFn<E>)>,
        fingerprints: Vec<(String, FingerprintFn)>,
    ) -> Self {
        SetupDriver {
            options,
            setup,
            alive,
            fingerprints,
            result: tokio::sync::OnceCell::new(),
            report: Mutex::new(None),
        }
    }

    /// The environment, setting it up first if no process of this run has.
    pub(crate) async fn environment(&self) -> Result<Arc<E>, Arc<SetupError>> {
        self.result
            .get_or_init(|| async { self.establish().await.map_err(Arc::new) })
            .await
            .clone()
    }

    /// The report of the setup this process ran or reused, if it did.
    pub(crate) fn report(&self) -> Option<SetupReport> {
        self.report.lock().expect("setup report").clone()
    }

    fn context(&self, previous: Option<Previous>) -> SetupContext {
        SetupContext::new(ContextOptions {
            suite: &self.options.suite,
            run_id: &self.options.run_id,
            artifacts_root: &self.options.artifacts_root,
            package_dir: &self.options.package_dir,
            progress: self.options.progress.clone(),
            previous,
            end_of_run: self.options.end_of_run.clone(),
        })
    }

    fn compute_fingerprints(&self) -> Result<BTreeMap<String, String>, SetupError> {
        self.fingerprints
            .iter()
            .map(|(key, compute)| {
                compute()
                    .map(|value| (key.clone(), value))
                    .map_err(|source| SetupError::Fingerprint {
                        suite: self.options.suite.clone(),
                        key: key.clone(),
                        source,
                    })
            })
            .collect()
    }

    async fn establish(&self) -> Result<Arc<E>, SetupError> {
        let suite = self.options.suite.clone();
        let state_error = |source| SetupError::State {
            suite: suite.clone(),
            source,
        };
        let fingerprints = self.compute_fingerprints()?;
        let store = self.options.store.clone();
        let progress = self.options.progress.clone();
        let lock = crate::interrupt::or_interrupted(tokio::task::spawn_blocking(move || {
            store.lock(|| {
                progress.working("waiting for another process of this run to finish the setup")
            })
        }))
        .await
        .map_err(|interrupted| SetupError::Interrupted {
            suite: suite.clone(),
            interrupted,
            phases: Vec::new(),
        })?
        .expect("lock task")
        .map_err(state_error)?;
        let recorded = self.options.store.read().map_err(state_error)?;
        let decision = decide(
            recorded.as_ref(),
            &self.options.run_id,
            &fingerprints,
            self.options.reuse,
        );
        let result = match decision {
            Decision::UseRecorded => {
                let recorded = recorded.expect("decided from a record");
                match serde_json::from_value::<E>(recorded.environment.clone().unwrap_or_default())
                {
                    Ok(environment) => Ok(Arc::new(environment)),
                    Err(_) => self.set_up(fingerprints, None).await,
                }
            }
            Decision::FailRecorded(message) => Err(SetupError::FailedElsewhere {
                suite: suite.clone(),
                pid: recorded.map(|r| r.pid).unwrap_or_default(),
                message,
            }),
            Decision::CheckAlive => {
                let recorded = recorded.expect("decided from a record");
                match self.reuse(&recorded, &fingerprints).await {
                    Some(environment) => Ok(environment),
                    None => self.set_up(fingerprints, None).await,
                }
            }
            Decision::SetUp(previous) => {
                let capture = Capture::start("@setup", self.options.live_log);
                let previous = match previous {
                    Some(previous)
                        if self.still_alive(&previous.setup, &capture).await.is_some() =>
                    {
                        Some(previous)
                    }
                    _ => None,
                };
                drop(capture);
                self.set_up(fingerprints, previous).await
            }
        };
        self.options.progress.done();
        drop(lock);
        result
    }

    /// Runs every liveness check on an earlier environment; `None` (after
    /// saying why on the progress) if it does not deserialise or one fails.
    async fn still_alive(
        &self,
        good: &GoodSetup,
        capture: &Capture,
    ) -> Option<(Arc<E>, SetupContext)> {
        let environment: E = serde_json::from_value(good.environment.clone()).ok()?;
        let environment = Arc::new(environment);
        let context = self.context(None);
        for (name, check) in &self.alive {
            let check = check(environment.clone());
            let outcome = tokio::time::timeout(
                self.options.timeout,
                context
                    .phase(&format!("alive: {name}"), check)
                    .instrument(capture.span()),
            )
            .await;
            let reason = match outcome {
                Ok(Ok(())) => continue,
                Ok(Err(error)) => render_chain(error.source.as_ref()),
                Err(_elapsed) => format!(
                    "timed out after {}",
                    humantime::format_duration(self.options.timeout)
                ),
            };
            self.options.progress.line(&format!(
                "the environment of run {} is no longer usable: check `{name}` failed: {}; setting up again",
                good.run_id,
                reason.replace('\n', " ")
            ));
            return None;
        }
        Some((environment, context))
    }

    /// Checks that an earlier run's environment is alive and adopts it.
    async fn reuse(
        &self,
        recorded: &SetupRecord,
        fingerprints: &BTreeMap<String, String>,
    ) -> Option<Arc<E>> {
        let good = recorded.good()?;
        let started_wall = chrono::Local::now().fixed_offset();
        let started = Instant::now();
        let capture = Capture::start("@setup", self.options.live_log);
        let (environment, context) = self.still_alive(&good, &capture).await?;
        let from = good.run_id.clone();
        let record = SetupRecord {
            run_id: self.options.run_id.clone(),
            status: SetupStatus::Done,
            pid: std::process::id(),
            started_at: started_wall.to_rfc3339(),
            finished_at: Some(chrono::Local::now().fixed_offset().to_rfc3339()),
            fingerprints: fingerprints.clone(),
            phases: context.phases(),
            environment: Some(good.environment.clone()),
            error: None,
            reused_from: Some(from.clone()),
            parts: good.parts.clone(),
            inputs: recorded.inputs.clone(),
            self_checking: good.self_checking,
            last_good: None,
        };
        if let Err(error) = self.options.store.write(&record) {
            self.options.progress.line(&format!(
                "cannot record the reuse: {}",
                render_chain(&error)
            ));
            return None;
        }
        self.options
            .progress
            .line(&format!("reusing the environment of run {from}"));
        *self.report.lock().expect("setup report") = Some(SetupReport {
            run_id: self.options.run_id.clone(),
            reused_from: Some(from),
            fingerprints: fingerprints.clone(),
            phases: context.phases(),
            log: capture.text(),
            error: None,
            started: started_wall,
            elapsed: started.elapsed(),
        });
        Some(environment)
    }

    fn record(&self, record: &SetupRecord) -> Result<(), SetupError> {
        self.options
            .store
            .write(record)
            .map_err(|source| SetupError::State {
                suite: self.options.suite.clone(),
                source,
            })
    }

    async fn set_up(
        &self,
        fingerprints: BTreeMap<String, String>,
        previous: Option<Previous>,
    ) -> Result<Arc<E>, SetupError> {
        let suite = self.options.suite.clone();
        let started_wall = chrono::Local::now().fixed_offset();
        let started = Instant::now();
        let mut record = SetupRecord {
            run_id: self.options.run_id.clone(),
            status: SetupStatus::Running,
            pid: std::process::id(),
            started_at: started_wall.to_rfc3339(),
            finished_at: None,
            fingerprints: fingerprints.clone(),
            phases: vec![],
            environment: None,
            error: None,
            reused_from: None,
            parts: BTreeMap::new(),
            inputs: BTreeMap::new(),
            self_checking: false,
            // Until this setup finishes, the last finished one stays the
            // one to build on: a setup killed half way never claims its inputs.
            last_good: previous
                .as_ref()
                .map(|previous| Box::new(previous.setup.clone())),
        };
        self.record(&record)?;
        match &previous {
            Some(previous) => self.options.progress.line(&format!(
                "setting up for run {} on top of run {}{}",
                self.options.run_id,
                previous.setup.run_id,
                if previous.interrupted {
                    " (a setup after it did not finish)"
                } else {
                    ""
                }
            )),
            None => self
                .options
                .progress
                .line(&format!("setting up for run {}", self.options.run_id)),
        }

        let context = self.context(previous);
        let capture = Capture::start("@setup", self.options.live_log);
        let work = (self.setup)(context.clone()).instrument(capture.span());
        let mut task = tokio::spawn(work);
        // What ended the setup task: it finished, or a signal came and it
        // did not end within the grace period.
        let finished = tokio::time::timeout(self.options.timeout, async {
            tokio::select! {
                joined = &mut task => Ok(joined),
                signal = crate::interrupt::signalled() => {
                    // The running phases end with the interruption; the
                    // setup's own error path collects artifacts meanwhile.
                    match tokio::time::timeout(INTERRUPT_GRACE, &mut task).await {
                        Ok(joined) => Ok(joined),
                        Err(_) => Err(crate::interrupt::Interrupted(signal)),
                    }
                }
            }
        })
        .await;
        let outcome = match finished {
            Ok(Ok(Ok(Ok(environment)))) => match serde_json::to_value(&environment) {
                Ok(json) => Ok((environment, json)),
                Err(source) => Err(SetupError::Serialise {
                    suite: suite.clone(),
                    source,
                }),
            },
            Ok(Ok(Ok(Err(error)))) => Err(SetupError::Failed {
                suite: suite.clone(),
                message: render_chain(error.as_ref()),
            }),
            Ok(Ok(Err(join))) => Err(SetupError::Panicked {
                suite: suite.clone(),
                message: crate::harness::panic_message(join),
            }),
            Ok(Err(interrupted)) => {
                let phases = context.running_phases();
                task.abort();
                Err(SetupError::Interrupted {
                    suite: suite.clone(),
                    interrupted,
                    phases,
                })
            }
            Err(_elapsed) => {
                let phases = context.running_phases();
                task.abort();
                Err(SetupError::TimedOut {
                    suite: suite.clone(),
                    after: self.options.timeout,
                    phases,
                })
            }
        };

        let mut phases = context.phases();
        record.finished_at = Some(chrono::Local::now().fixed_offset().to_rfc3339());
        record.inputs = context.inputs();
        let result = match outcome {
            Ok((environment, json)) => {
                record.status = SetupStatus::Done;
                record.environment = Some(json);
                record.parts = context.remembered();
                record.self_checking = context.self_checking();
                record.last_good = None;
                Ok(Arc::new(environment))
            }
            Err(error) => {
                let message = render_chain(&error);
                if let SetupError::TimedOut {
                    phases: running, ..
                }
                | SetupError::Interrupted {
                    phases: running, ..
                } = &error
                {
                    phases.extend(running.iter().map(|(name, running)| PhaseRecord {
                        name: name.clone(),
                        seconds: running.as_secs_f64(),
                        error: Some(message.clone()),
                    }));
                }
                record.status = SetupStatus::Failed;
                record.error = Some(match &error {
                    SetupError::Failed { message, .. } => message.clone(),
                    _ => message.clone(),
                });
                eprintln!("error: {message}");
                Err(error)
            }
        };
        record.phases = phases.clone();
        self.record(&record)?;
        self.options.progress.line(&format!(
            "{} in {}",
            if result.is_ok() { "ready" } else { "failed" },
            seconds(started.elapsed())
        ));
        let mut reported = fingerprints;
        reported.extend(record.inputs.clone());
        *self.report.lock().expect("setup report") = Some(SetupReport {
            run_id: self.options.run_id.clone(),
            reused_from: None,
            fingerprints: reported,
            phases,
            log: capture.text(),
            error: record.error.clone(),
            started: started_wall,
            elapsed: started.elapsed(),
        });
        result
    }
}
