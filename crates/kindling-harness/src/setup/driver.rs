//! Running the setup once per process, and once per run across processes:
//! the suite's lock, the recorded state, reuse or a fresh setup.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::Instrument as _;

use crate::capture::Capture;
use crate::config::ReusePolicy;
use crate::error::{BoxError, render_chain};
use crate::junit::SetupReport;
use crate::progress::Progress;
use crate::state::{
    Decision, GoodSetup, PhaseRecord, Previous, SetupRecord, SetupStatus, StateError, StateStore,
    decide,
};
use crate::util::{panic_message, seconds};

use super::context::{AliveFn, ContextOptions, FingerprintFn, SetupContext, SetupFn};

/// Why a test could not get its environment.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The setup returned an error.
    #[error("run-wide setup of suite `{suite}` failed:\n{message}")]
    Failed {
        /// The suite whose setup it was.
        suite: String,
        /// The error and its causes, rendered.
        message: String,
    },
    /// The setup of this run already failed, as the state file records.
    #[error(
        "run-wide setup of suite `{suite}` failed in another process of this run (pid {pid}):\n{message}"
    )]
    FailedElsewhere {
        /// The suite whose setup it was.
        suite: String,
        /// The id of the process that recorded the failure.
        pid: u32,
        /// The error it recorded.
        message: String,
    },
    /// The setup did not finish within the setup timeout.
    #[error("run-wide setup of suite `{suite}` timed out after {}{}", humantime::format_duration(*.after), still_running(.phases))]
    TimedOut {
        /// The suite whose setup it was.
        suite: String,
        /// The setup timeout that ran out.
        after: Duration,
        /// The phases still running, with how long each had run.
        phases: Vec<(String, Duration)>,
    },
    /// The setup panicked.
    #[error("run-wide setup of suite `{suite}` panicked: {message}")]
    Panicked {
        /// The suite whose setup it was.
        suite: String,
        /// The panic's message.
        message: String,
    },
    /// A signal came while waiting for another process's setup, or the
    /// setup did not end within the grace period after one.
    #[error("run-wide setup of suite `{suite}` was {interrupted}{}", still_running(.phases))]
    Interrupted {
        /// The suite whose setup it was.
        suite: String,
        /// The signal that came.
        interrupted: crate::interrupt::Interrupted,
        /// The phases still running when it gave up, with how long each had run.
        phases: Vec<(String, Duration)>,
    },
    /// The suite's state could not be locked, read or written.
    #[error("failed to record the setup of suite `{suite}`")]
    State {
        /// The suite whose setup it was.
        suite: String,
        /// What failed in the state directory.
        #[source]
        source: StateError,
    },
    /// The environment the setup returned cannot be turned into JSON.
    #[error("the environment of suite `{suite}` cannot be serialised into its state file")]
    Serialise {
        /// The suite whose setup it was.
        suite: String,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// A fingerprint closure given to [`crate::Suite::fingerprint`]
    /// returned an error.
    #[error("fingerprint `{key}` of suite `{suite}` cannot be computed")]
    Fingerprint {
        /// The suite whose setup it was.
        suite: String,
        /// The fingerprint's key.
        key: String,
        /// The closure's error.
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

    /// The environment, setting it up first if no process of this run has;
    /// the first time, the extensions enter it.
    pub(crate) async fn environment(&self) -> Result<Arc<E>, Arc<SetupError>> {
        self.result
            .get_or_init(|| async {
                let environment = self.establish().await.map_err(Arc::new)?;
                if let Ok(recorded) = serde_json::to_value(&*environment) {
                    crate::extension::enter(recorded).await;
                }
                Ok(environment)
            })
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
        let started_wall = chrono::Local::now().fixed_offset();
        let started = Instant::now();
        let mut record = self.running_record(&fingerprints, previous.as_ref(), started_wall);
        self.record(&record)?;
        self.announce_setting_up(previous.as_ref());

        let context = self.context(previous);
        let capture = Capture::start("@setup", self.options.live_log);
        let outcome = self.run_setup(&context, &capture).await;

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
                record_failure(&mut record, &mut phases, &error);
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

    /// The state record of a setup of this run that has just started.
    fn running_record(
        &self,
        fingerprints: &BTreeMap<String, String>,
        previous: Option<&Previous>,
        started_wall: chrono::DateTime<chrono::FixedOffset>,
    ) -> SetupRecord {
        SetupRecord {
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
            last_good: previous.map(|previous| Box::new(previous.setup.clone())),
        }
    }

    /// Says on the progress that a setup starts, and what it builds on.
    fn announce_setting_up(&self, previous: Option<&Previous>) {
        match previous {
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
    }

    /// Runs the suite's setup function until it ends, the setup timeout
    /// runs out or a signal's grace period does: the environment, with
    /// its JSON for the state file, or why there is none.
    async fn run_setup(
        &self,
        context: &SetupContext,
        capture: &Capture,
    ) -> Result<(E, serde_json::Value), SetupError> {
        let suite = self.options.suite.clone();
        let work = (self.setup)(context.clone()).instrument(capture.span());
        let mut task = tokio::spawn(work);
        let finished =
            tokio::time::timeout(self.options.timeout, joined_or_interrupted(&mut task)).await;
        if !matches!(finished, Ok(Ok(Ok(Ok(_))))) {
            // What the setup's sources know now is redacted from its error
            // everywhere it goes: state, JUnit, stderr, the tests' failures.
            crate::redaction::refresh().await;
        }
        match finished {
            Ok(Ok(Ok(Ok(environment)))) => match serde_json::to_value(&environment) {
                Ok(json) => Ok((environment, json)),
                Err(source) => Err(SetupError::Serialise {
                    suite: suite.clone(),
                    source,
                }),
            },
            Ok(Ok(Ok(Err(error)))) => Err(SetupError::Failed {
                suite: suite.clone(),
                message: crate::redaction::redact_owned(render_chain(error.as_ref())),
            }),
            Ok(Ok(Err(join))) => Err(SetupError::Panicked {
                suite: suite.clone(),
                message: panic_message(join),
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
        }
    }
}

/// What ended the setup task: it finished, or a signal came and it did
/// not end within the grace period.
async fn joined_or_interrupted<T>(
    task: &mut tokio::task::JoinHandle<T>,
) -> Result<Result<T, tokio::task::JoinError>, crate::interrupt::Interrupted> {
    tokio::select! {
        joined = &mut *task => Ok(joined),
        signal = crate::interrupt::signalled() => {
            // The running phases end with the interruption; the
            // setup's own error path collects artifacts meanwhile.
            match tokio::time::timeout(INTERRUPT_GRACE, &mut *task).await {
                Ok(joined) => Ok(joined),
                Err(_) => Err(crate::interrupt::Interrupted(signal)),
            }
        }
    }
}

/// Records a failed setup: its (redacted) error, and the phases still
/// running as failed with it; the error goes to stderr as well.
fn record_failure(record: &mut SetupRecord, phases: &mut Vec<PhaseRecord>, error: &SetupError) {
    let message = crate::redaction::redact_owned(render_chain(error));
    if let SetupError::TimedOut {
        phases: running, ..
    }
    | SetupError::Interrupted {
        phases: running, ..
    } = error
    {
        phases.extend(running.iter().map(|(name, running)| PhaseRecord {
            name: name.clone(),
            seconds: running.as_secs_f64(),
            error: Some(message.clone()),
        }));
    }
    record.status = SetupStatus::Failed;
    record.error = Some(match error {
        SetupError::Failed { message, .. } => message.clone(),
        _ => message.clone(),
    });
    eprintln!("error: {message}");
}
