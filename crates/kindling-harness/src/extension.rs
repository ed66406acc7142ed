//! What a library built on the harness adds to every suite linked with it:
//! the `KINDLING_*` variables it reads (their values checked at startup,
//! their names known to the unknown-variable warning), what it does when a
//! process starts using a suite's environment, and the finisher of the
//! cleanups its setups record for the end of the run.
//!
//! A library registers once per process before `main` runs (kindling does
//! it from a constructor function), because the end-of-run watcher is the
//! suite's binary started again and runs no setup that could register.

use std::sync::Mutex;

use crate::config::Variable;
use crate::end_of_run::FinishFn;
use crate::util::BoxFuture;

/// What a library does when a process starts using a suite's environment,
/// given the environment as recorded (JSON).
pub type EnterFn = fn(serde_json::Value) -> BoxFuture<()>;

/// One library's additions.
#[derive(Debug)]
pub struct Extension {
    /// The library's name; cleanups recorded with it (see
    /// [`crate::SetupContext::remove_at_end_of_run`]) go to `finish`.
    pub name: &'static str,
    /// The variables it reads.
    pub variables: &'static [Variable],
    /// Runs once per process and suite when the process first has the
    /// suite's environment (set up here, reused or read from the record),
    /// before any of its tests: kindling marks the cluster as in use and
    /// renews the namespace's heartbeat from there. It cannot fail a test;
    /// it logs what went wrong.
    pub enter: Option<EnterFn>,
    /// Removes what its setups named, at the end of the run.
    pub finish: Option<FinishFn>,
}

static REGISTERED: Mutex<Vec<&'static Extension>> = Mutex::new(Vec::new());

/// Adds `extension` to this process (a second registration of the same
/// name is ignored).
pub fn register(extension: &'static Extension) {
    let mut registered = REGISTERED
        .lock()
        .unwrap_or_else(|poison| poison.into_inner());
    if !registered.iter().any(|known| known.name == extension.name) {
        registered.push(extension);
    }
}

/// The extensions registered in this process.
pub fn registered() -> Vec<&'static Extension> {
    REGISTERED
        .lock()
        .unwrap_or_else(|poison| poison.into_inner())
        .clone()
}

/// Every registered extension's variables.
pub(crate) fn variables() -> Vec<Variable> {
    registered()
        .iter()
        .flat_map(|extension| extension.variables.iter().copied())
        .collect()
}

/// Every registered extension's [`Extension::enter`], with `environment`.
pub(crate) async fn enter(environment: serde_json::Value) {
    for enter in registered().iter().filter_map(|extension| extension.enter) {
        enter(environment.clone()).await;
    }
}

/// The finisher of the cleanups recorded under `name`.
pub(crate) fn finisher(name: &str) -> Option<FinishFn> {
    registered()
        .iter()
        .find(|extension| extension.name == name)
        .and_then(|extension| extension.finish)
}
