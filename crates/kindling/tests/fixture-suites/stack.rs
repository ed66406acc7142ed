//! A whole environment on the cluster with no hand-written fingerprint: a
//! `web` service built from `$FIXTURE_WEB_DIR` (default `stack/web`) and a
//! `store` StatefulSet holding data in memory, from `stack/manifests`. Its
//! one test writes what it saw into `$FIXTURE_REPORT` (JSON): the version
//! `web` serves, the UIDs of the pods, the item `$FIXTURE_KEY` of the
//! store, which it first writes when `$FIXTURE_WRITE` is set, and the value
//! of a Secret the environment generates. `$FIXTURE_EXTRA_MANIFESTS`
//! adds a stage of its own; with `$FIXTURE_FAIL` set the test fails after
//! writing its report.
//!
//! The reuse tests run it as the suites `stack` and `stack_twin`.

#[path = "stack/suite.rs"]
mod suite;

fn main() -> std::process::ExitCode {
    suite::main()
}
