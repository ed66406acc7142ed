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

#![warn(missing_docs)]

pub mod access;
pub mod apt;
pub mod artifacts;
pub mod cluster;
pub mod deploy;
pub mod docker;
mod environment;
mod extension;
pub mod image;
pub mod kubeconfig;
pub mod node;
pub mod redaction;
pub mod tls;
pub mod wait;

pub use access::{Endpoint, HttpClient, Response};
pub use environment::{
    DEFAULT_WAIT_TIMEOUT, Environment, EnvironmentBuilder, EnvironmentError,
    EnvironmentFingerprint, GeneratedSecret, ImageInput, ScaleError, SecretError, Stack,
    ThirdParty, apply_and_wait, client_for,
};
pub use extension::VARIABLES;
/// The harness kindling's suites run on, whole; its items are also
/// kindling's own (`kindling::Suite` is [`kindling_harness::Suite`]).
pub use kindling_harness as harness;
#[doc(inline)]
pub use kindling_harness::{
    BoxError, BoxFuture, ConfigError, CurrentTest, EndReport, FingerprintError, IntoFingerprint,
    IntoTestResult, JunitError, KNOWN_VARIABLES, KeepPolicy, PhaseError, RecordedSetup,
    RegistryError, Requirement, RunLedger, SetupContext, SetupError, StateError, Suite,
    TestContext, TestOptions, TestResult, current_test, fingerprint_paths, forget_setup, in_ci,
    interrupt, main, recorded_setups, test,
};
/// The HTTP client [`HttpClient::request`] builds requests with.
pub use reqwest;

#[doc(hidden)]
pub use kindling_harness::__private;

/// The README's examples, compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
