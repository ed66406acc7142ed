//! The library behind [kindling](https://docs.rs/kindling): environments,
//! images, deployment, waits and the `kind` and `existing` providers.
//! Suites depend on `kindling`, which re-exports all of this and adds the
//! `local` provider (the `kindling-local` crate) behind its `local` feature.

#![warn(missing_docs)]

pub mod access;
pub mod apt;
pub mod artifacts;
pub mod cluster;
mod config;
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

pub use access::{AccessError, Endpoint, HttpClient, Response};
pub use environment::{
    CredentialError, DEFAULT_WAIT_TIMEOUT, Environment, EnvironmentBuilder, EnvironmentError,
    EnvironmentFingerprint, GeneratedSecret, ImageInput, KubeError, ScaleError, SecretError, Stack,
    ThirdParty, apply_and_wait,
};
pub use extension::VARIABLES;
pub use image::{ImageRef, ImageSpec};
/// The harness kindling's suites run on, whole; its items are also
/// kindling's own (`kindling::Suite` is [`kindling_harness::Suite`]).
pub use kindling_harness as harness;
#[doc(inline)]
pub use kindling_harness::{
    BoxError, BoxFuture, CurrentTest, IntoFingerprint, IntoTestResult, KeepPolicy, PhaseError,
    Requirement, SetupContext, Suite, TestContext, TestOptions, TestResult, current_test,
    fingerprint_paths, in_ci, main, test,
};
/// The HTTP client [`HttpClient::request`] builds requests with.
pub use reqwest;
pub use tls::TlsSecret;
pub use wait::WaitError;

#[doc(hidden)]
pub use kindling_harness::__private;
