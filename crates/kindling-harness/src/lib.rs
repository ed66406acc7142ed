//! kindling-harness: a custom test harness (`harness = false`) for suites
//! whose tests share an expensive setup, that works the same under
//! `cargo test`, `cargo nextest run` (one process per test), an IDE and CI
//! reading JUnit.
//!
//! ```no_run
//! use kindling_harness::{SetupContext, Suite, TestContext, TestResult};
//!
//! fn suite() -> Suite<String> {
//!     Suite::with_setup(|setup: SetupContext| async move {
//!         let greeting = setup
//!             .phase("greet", async { Ok::<_, std::io::Error>("hello") })
//!             .await?;
//!         Ok::<_, kindling_harness::BoxError>(greeting.to_owned())
//!     })
//!     .test("greets", |ctx: TestContext<String>| async move {
//!         assert_eq!(ctx.env(), "hello");
//!     })
//! }
//!
//! #[kindling_harness::test]
//! async fn arithmetic_still_works() -> TestResult {
//!     assert_eq!(2 + 2, 4);
//!     Ok(())
//! }
//!
//! kindling_harness::main!(suite());
//! ```
//!
//! - **Once per run, across processes.** A suite's setup runs once per
//!   run, even when nextest starts a process per test: the first process
//!   does it under a file lock and records the environment; the others
//!   read it. A later run reuses it while its fingerprints are unchanged
//!   and its liveness checks pass.
//! - **The libtest command line and the nextest contract**, through
//!   libtest-mimic: `--list`, `--exact`, `--ignored`, filters; a missing
//!   [`Requirement`] is SKIP under nextest (ignored already in the list)
//!   and fails in CI.
//! - **Reports.** Each test's logs are captured into its own JUnit case;
//!   the setup is a `@setup:<suite>` test suite with a case per phase.
//! - **The end of the run.** What setups named is removed as
//!   `KINDLING_KEEP` says, once the whole run (every nextest process) ends.
//! - **Redaction.** Every text it writes (JUnit, state, stderr, a failed
//!   test's message and artifacts) passes the [`redaction`] registry, which
//!   whoever learns a secret value feeds.
//!
//! Modules, lowest first; each imports only those before it:
//! [`util`] and [`error`]; [`redaction`]; `config`, `identity`, `capture`, `progress`,
//! [`interrupt`], [`engine`], [`requirement`], [`fingerprint`]; `state`,
//! `run_ledger`; `junit`; [`end_of_run`]; [`extension`]; `setup`; `suite`;
//! `registry`; `harness` (`Suite::run`).

#![warn(missing_docs)]

pub mod util;

pub mod error;

pub mod redaction;

mod capture;
pub mod config;
pub mod engine;
pub mod fingerprint;
mod identity;
pub mod interrupt;
mod progress;
pub mod requirement;

pub mod run_ledger;
mod state;

mod junit;

pub mod end_of_run;

pub mod extension;

mod setup;

mod suite;

mod registry;

mod harness;

pub use config::{ConfigError, KNOWN_VARIABLES, KeepPolicy, Variable};
pub use end_of_run::{EndOfRun, FinishFn};
pub use error::{BoxError, TestResult, render_chain};
pub use fingerprint::{FingerprintError, fingerprint_paths};
pub use junit::JunitError;
pub use kindling_macros::test;
pub use registry::RegistryError;
pub use requirement::{Requirement, in_ci};
pub use run_ledger::{Cleanup, EndReport, RunLedger};
pub use setup::{PhaseError, SetupContext, SetupError};
pub use state::{RecordedSetup, StateError, forget_setup, recorded_setups};
pub use suite::{
    CurrentTest, IntoFingerprint, IntoTestResult, Suite, TestContext, TestOptions, current_test,
};
pub use util::BoxFuture;

/// Defines `main` for a suite: `main!()` for a suite of `#[test]`
/// functions without setup, or `main!(expr)` with an expression giving the
/// [`Suite`] (its registered tests are added).
#[macro_export]
macro_rules! main {
    () => {
        fn main() -> ::std::process::ExitCode {
            $crate::Suite::new()
                .__package(env!("CARGO_PKG_NAME"))
                .__built_in(
                    option_env!("CARGO_TARGET_TMPDIR"),
                    env!("CARGO_MANIFEST_DIR"),
                )
                .run()
        }
    };
    ($suite:expr) => {
        fn main() -> ::std::process::ExitCode {
            $crate::Suite::__package($suite, env!("CARGO_PKG_NAME"))
                .__built_in(
                    option_env!("CARGO_TARGET_TMPDIR"),
                    env!("CARGO_MANIFEST_DIR"),
                )
                .run()
        }
    };
}

#[doc(hidden)]
pub mod __private {
    pub use crate::registry::{RegisteredBody, Registration, register};
    pub use crate::util::BoxFuture;
    pub use ctor;
}
