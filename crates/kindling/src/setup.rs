//! The run-wide setup: run lazily by the first test that needs it, once per
//! run across every process of that run, recorded so later processes reuse
//! it (or fail at once with its error), and reused by later runs whose
//! inputs did not change once each liveness check passes.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
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
    Decision, PhaseRecord, SetupRecord, SetupStatus, StateError, StateStore, decide,
};

pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;
pub(crate) type SetupFn<E> =
    Box<dyn Fn(SetupContext) -> BoxFuture<Result<E, BoxError>> + Send + Sync>;
pub(crate) type FailureFn<E> = Box<dyn Fn(Arc<E>, PathBuf) -> BoxFuture<()> + Send + Sync>;
pub(crate) type AliveFn<E> = Box<dyn Fn(Arc<E>) -> BoxFuture<Result<(), BoxError>> + Send + Sync>;
pub(crate) type FingerprintFn = Box<dyn Fn() -> String + Send + Sync>;

/// Handed to the setup function: runs and times named phases.
#[derive(Clone)]
pub struct SetupContext {
    inner: Arc<SetupShared>,
}

struct SetupShared {
    suite: String,
    run_id: String,
    artifacts_root: PathBuf,
    progress: Arc<Progress>,
    phases: Mutex<Vec<PhaseRecord>>,
    current: Mutex<Option<(String, Instant)>>,
}

/// A setup phase returned an error.
#[derive(Debug, thiserror::Error)]
#[error("setup phase `{phase}` failed")]
pub struct PhaseError {
    pub phase: String,
    #[source]
    pub source: BoxError,
}

impl SetupContext {
    fn new(suite: &str, run_id: &str, artifacts_root: &Path, progress: Arc<Progress>) -> Self {
        SetupContext {
            inner: Arc::new(SetupShared {
                suite: suite.to_owned(),
                run_id: run_id.to_owned(),
                artifacts_root: artifacts_root.to_owned(),
                progress,
                phases: Mutex::default(),
                current: Mutex::default(),
            }),
        }
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

    /// Runs `work` as the phase `name`: timed, shown in progress, reported
    /// as its own JUnit case, and named in the error if it fails.
    pub async fn phase<T, Er>(
        &self,
        name: &str,
        work: impl Future<Output = Result<T, Er>>,
    ) -> Result<T, PhaseError>
    where
        Er: Into<BoxError>,
    {
        let started = Instant::now();
        *self.inner.current.lock().expect("setup phase") = Some((name.to_owned(), started));
        self.inner.progress.working(&format!("{name}…"));
        let result = work
            .instrument(tracing::info_span!("phase", name))
            .await
            .map_err(|source| PhaseError {
                phase: name.to_owned(),
                source: source.into(),
            });
        let elapsed = started.elapsed();
        *self.inner.current.lock().expect("setup phase") = None;
        let error = result.as_ref().err().map(|error| render_chain(error));
        self.inner.progress.line(&format!(
            "{name} {} in {}",
            if error.is_some() { "failed" } else { "done" },
            seconds(elapsed)
        ));
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

    fn phases(&self) -> Vec<PhaseRecord> {
        self.inner.phases.lock().expect("setup phases").clone()
    }

    fn current_phase(&self) -> Option<(String, Duration)> {
        self.inner
            .current
            .lock()
            .expect("setup phase")
            .as_ref()
            .map(|(name, started)| (name.clone(), started.elapsed()))
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
    #[error("run-wide setup of suite `{suite}` timed out after {}{}", humantime::format_duration(*.after), still_running(.phase))]
    TimedOut {
        suite: String,
        after: Duration,
        phase: Option<(String, Duration)>,
    },
    #[error("run-wide setup of suite `{suite}` panicked: {message}")]
    Panicked { suite: String, message: String },
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
}

fn still_running(phase: &Option<(String, Duration)>) -> String {
    match phase {
        Some((name, running)) => format!(
            " while phase `{name}` was still running (for {})",
            seconds(*running)
        ),
        None => " outside any phase".to_owned(),
    }
}

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

    async fn establish(&self) -> Result<Arc<E>, SetupError> {
        let suite = self.options.suite.clone();
        let state_error = |source| SetupError::State {
            suite: suite.clone(),
            source,
        };
        let fingerprints: BTreeMap<String, String> = self
            .fingerprints
            .iter()
            .map(|(key, compute)| (key.clone(), compute()))
            .collect();
        let store = self.options.store.clone();
        let progress = self.options.progress.clone();
        let lock = tokio::task::spawn_blocking(move || {
            store.lock(|| {
                progress.working("waiting for another process of this run to finish the setup")
            })
        })
        .await
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
                    Err(_) => self.set_up(fingerprints).await,
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
                    None => self.set_up(fingerprints).await,
                }
            }
            Decision::SetUp => self.set_up(fingerprints).await,
        };
        self.options.progress.done();
        drop(lock);
        result
    }

    /// Checks that an earlier run's environment is alive and adopts it.
    async fn reuse(
        &self,
        recorded: &SetupRecord,
        fingerprints: &BTreeMap<String, String>,
    ) -> Option<Arc<E>> {
        let environment: E = serde_json::from_value(recorded.environment.clone()?).ok()?;
        let environment = Arc::new(environment);
        let context = SetupContext::new(
            &self.options.suite,
            &self.options.run_id,
            &self.options.artifacts_root,
            self.options.progress.clone(),
        );
        let capture = Capture::start("@setup", self.options.live_log);
        let started_wall = chrono::Local::now().fixed_offset();
        let started = Instant::now();
        let from = recorded
            .reused_from
            .clone()
            .unwrap_or_else(|| recorded.run_id.clone());
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
                "the environment of run {from} is no longer usable: check `{name}` failed: {}; setting up again",
                reason.replace('\n', " ")
            ));
            return None;
        }
        let record = SetupRecord {
            run_id: self.options.run_id.clone(),
            status: SetupStatus::Done,
            pid: std::process::id(),
            started_at: started_wall.to_rfc3339(),
            finished_at: Some(chrono::Local::now().fixed_offset().to_rfc3339()),
            fingerprints: fingerprints.clone(),
            phases: context.phases(),
            environment: recorded.environment.clone(),
            error: None,
            reused_from: Some(from.clone()),
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

    async fn set_up(&self, fingerprints: BTreeMap<String, String>) -> Result<Arc<E>, SetupError> {
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
        };
        self.record(&record)?;
        self.options
            .progress
            .line(&format!("setting up for run {}", self.options.run_id));

        let context = SetupContext::new(
            &suite,
            &self.options.run_id,
            &self.options.artifacts_root,
            self.options.progress.clone(),
        );
        let capture = Capture::start("@setup", self.options.live_log);
        let work = (self.setup)(context.clone()).instrument(capture.span());
        let mut task = tokio::spawn(work);
        let outcome = match tokio::time::timeout(self.options.timeout, &mut task).await {
            Ok(Ok(Ok(environment))) => match serde_json::to_value(&environment) {
                Ok(json) => Ok((environment, json)),
                Err(source) => Err(SetupError::Serialise {
                    suite: suite.clone(),
                    source,
                }),
            },
            Ok(Ok(Err(error))) => Err(SetupError::Failed {
                suite: suite.clone(),
                message: render_chain(error.as_ref()),
            }),
            Ok(Err(join)) => Err(SetupError::Panicked {
                suite: suite.clone(),
                message: crate::harness::panic_message(join),
            }),
            Err(_elapsed) => {
                let phase = context.current_phase();
                task.abort();
                Err(SetupError::TimedOut {
                    suite: suite.clone(),
                    after: self.options.timeout,
                    phase,
                })
            }
        };

        let mut phases = context.phases();
        record.finished_at = Some(chrono::Local::now().fixed_offset().to_rfc3339());
        let result = match outcome {
            Ok((environment, json)) => {
                record.status = SetupStatus::Done;
                record.environment = Some(json);
                Ok(Arc::new(environment))
            }
            Err(error) => {
                let message = render_chain(&error);
                if let SetupError::TimedOut {
                    phase: Some((name, running)),
                    ..
                } = &error
                {
                    phases.push(PhaseRecord {
                        name: name.clone(),
                        seconds: running.as_secs_f64(),
                        error: Some(message.clone()),
                    });
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
        *self.report.lock().expect("setup report") = Some(SetupReport {
            run_id: self.options.run_id.clone(),
            reused_from: None,
            fingerprints,
            phases,
            log: capture.text(),
            error: record.error.clone(),
            started: started_wall,
            elapsed: started.elapsed(),
        });
        result
    }
}
