//! What a setup function is handed: named, timed phases and what the
//! last finished setup of the suite left.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::Instrument as _;

use crate::error::{BoxError, render_chain};
use crate::progress::Progress;
use crate::state::{PhaseRecord, Previous};
use crate::util::{BoxFuture, seconds};

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
    /// The phase's name.
    pub phase: String,
    /// The phase's error, or the interruption that ended it.
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

/// Where a standalone context's artifacts go: beside a suite's when the
/// target directory is known. Else, unlike a suite (whose state must be
/// found by every process of its run), nothing needs a stable folder: the
/// artifacts' path is in the error that reports them. So a folder of a
/// random name no other user can have made first, created `0700` only
/// when something is written there (most contexts never fail).
fn standalone_artifacts_root(target_dir: Option<PathBuf>) -> PathBuf {
    match target_dir {
        Some(target) => target.join("kindling").join("artifacts"),
        None => std::env::temp_dir().join(format!("kindling-artifacts-{}", uuid::Uuid::new_v4())),
    }
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
    /// of its own, no earlier setup, progress on stderr. Artifacts go under
    /// `target/kindling/artifacts` when this binary is in a Cargo target
    /// directory, else into a private folder of a random name in the
    /// temporary directory.
    pub fn standalone(suite: &str, package_dir: &Path) -> Self {
        let run_id = uuid::Uuid::new_v4().to_string();
        let exe = std::env::current_exe().ok();
        let artifacts_root =
            standalone_artifacts_root(crate::identity::target_dir(exe.as_deref(), None).ok());
        SetupContext::new(ContextOptions {
            suite,
            run_id: &run_id,
            artifacts_root: &artifacts_root,
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
    /// kindling's `Environment::builder` does: later runs always call it
    /// (with [`SetupContext::previous_environment`]) instead of skipping it
    /// because the suite's fingerprints are unchanged.
    pub fn checks_inputs_itself(&self) {
        self.inner.self_checking.store(true, Ordering::Relaxed);
    }

    /// Names something this setup made that the end of the run removes
    /// when `KINDLING_KEEP` says so (`on-failure` after a passing run,
    /// `never` always): `describe` says what it is, `data` is what the
    /// end of the run hands the finisher of the [`crate::extension::Extension`]
    /// named `finisher`, which removes it. Does nothing in a standalone
    /// context or under `KINDLING_KEEP=always`.
    pub fn remove_at_end_of_run(&self, finisher: &str, describe: &str, data: serde_json::Value) {
        if let Some(end) = &self.inner.end_of_run {
            end.record_cleanup(&self.inner.suite, finisher, describe, data);
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

    pub(super) fn phases(&self) -> Vec<PhaseRecord> {
        self.inner.phases.lock().expect("setup phases").clone()
    }

    /// The phases running now, with how long each has run, in start order.
    pub(super) fn running_phases(&self) -> Vec<(String, Duration)> {
        self.inner
            .running
            .lock()
            .expect("running phases")
            .iter()
            .map(|(_, name, started)| (name.clone(), started.elapsed()))
            .collect()
    }

    pub(super) fn remembered(&self) -> BTreeMap<String, serde_json::Value> {
        self.inner
            .remembered
            .lock()
            .expect("remembered parts")
            .clone()
    }

    pub(super) fn inputs(&self) -> BTreeMap<String, String> {
        self.inner.inputs.lock().expect("declared inputs").clone()
    }

    pub(super) fn self_checking(&self) -> bool {
        self.inner.self_checking.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standalone_artifacts_go_beside_a_suites_or_into_a_private_folder_of_their_own() {
        assert_eq!(
            standalone_artifacts_root(Some(PathBuf::from("/w/target"))),
            Path::new("/w/target/kindling/artifacts")
        );
        // What an older kindling used, made first by someone else.
        let planted = std::env::temp_dir().join("kindling-artifacts");
        let planted_here = std::fs::create_dir(&planted).is_ok();
        let first = standalone_artifacts_root(None);
        let second = standalone_artifacts_root(None);
        if planted_here {
            let _ = std::fs::remove_dir(&planted);
        }
        for root in [&first, &second] {
            assert_eq!(root.parent(), Some(std::env::temp_dir().as_path()));
            assert!(!root.starts_with(&planted), "{}", root.display());
            assert!(!root.exists(), "{} is created before use", root.display());
        }
        assert_ne!(first, second, "the folder's name is not random");
    }
}
