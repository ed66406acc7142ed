//! What the harness's tests share: the fixture runner over the harness's
//! own fixture suites.

#![allow(dead_code)]

mod runner;

pub use runner::*;

/// The harness's fixture suites (tests/fixture-suites).
pub const PACKAGES: &[FixturePackage] = &[HARNESS_FIXTURES];
