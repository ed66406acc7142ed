//! kindling: end-to-end tests of services on Kubernetes as plain Cargo test
//! targets (`harness = false`), run by `cargo test`, `cargo nextest run`,
//! an IDE, or CI reading JUnit.
//!
//! A suite is a [`Suite`]: a run-wide setup done once per run (across all
//! processes nextest starts) and tests that receive its environment through
//! a [`TestContext`]. Tests are added with [`Suite::test`] or with the
//! [`test`] attribute and the [`main!`] macro:
//!
//! ```no_run
//! #[kindling::test]
//! async fn arithmetic_still_works() -> kindling::TestResult {
//!     assert_eq!(2 + 2, 4);
//!     Ok(())
//! }
//!
//! kindling::main!();
//! ```

pub mod access;
pub mod apt;
pub mod artifacts;
mod capture;
pub mod cluster;
mod config;
pub mod deploy;
pub mod docker;
mod end_of_run;
mod environment;
mod error;
mod fingerprint;
mod harness;
mod identity;
pub mod image;
pub mod interrupt;
mod junit;
pub mod kubeconfig;
pub mod node;
mod progress;
mod registry;
mod requirement;
mod run_ledger;
mod setup;
mod state;
mod suite;
pub mod tls;
pub mod wait;

pub use access::{Endpoint, HttpClient, Response};
pub use config::{ConfigError, KNOWN_VARIABLES, KeepPolicy};
pub use environment::{
    DEFAULT_WAIT_TIMEOUT, Environment, EnvironmentBuilder, EnvironmentError,
    EnvironmentFingerprint, GeneratedSecret, ImageInput, ScaleError, SecretError, Stack,
    ThirdParty, apply_and_wait, client_for,
};
pub use error::{BoxError, TestResult};
pub use fingerprint::{FingerprintError, fingerprint_paths};
pub use junit::JunitError;
pub use kindling_macros::test;
pub use registry::RegistryError;
pub use requirement::{Requirement, in_ci};
/// The HTTP client [`HttpClient::request`] builds requests with.
pub use reqwest;
pub use run_ledger::{EndReport, RunLedger};
pub use setup::{PhaseError, SetupContext, SetupError};
pub use state::{RecordedSetup, StateError, forget_setup, recorded_setups};
pub use suite::{IntoFingerprint, IntoTestResult, Suite, TestContext, TestOptions};

/// Defines `main` for a suite: `kindling::main!()` for a suite of
/// `#[kindling::test]` functions without setup, or `kindling::main!(expr)`
/// with an expression giving the [`Suite`] (its registered tests are added).
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
    pub use crate::setup::BoxFuture;
    pub use ctor;
}

/// The README's examples, compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
