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

#[doc(inline)]
pub use kindling_core::*;

/// Clusters: the [`Provider`](cluster::Provider) trait, the providers and
/// the rule that chooses one. The `local` provider is the `kindling-local`
/// crate, built in with this crate's `local` feature (on by default).
pub mod cluster {
    #[doc(inline)]
    pub use kindling_core::cluster::*;
    /// The `local` provider: upstream components on this host.
    #[cfg(feature = "local")]
    #[doc(inline)]
    pub use kindling_local as local;
}

/// The README's examples, compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;

/// The guide's examples (every page under docs/src), compiled as doctests.
#[cfg(doctest)]
mod guide_doctests {
    #[doc = include_str!("../../../docs/src/SUMMARY.md")]
    pub struct Summary;

    #[doc = include_str!("../../../docs/src/design/architecture.md")]
    pub struct DesignArchitecture;

    #[doc = include_str!("../../../docs/src/design/how-a-run-works.md")]
    pub struct DesignHowARunWorks;

    #[doc = include_str!("../../../docs/src/design/layout.md")]
    pub struct DesignLayout;

    #[doc = include_str!("../../../docs/src/guide/evidence.md")]
    pub struct GuideEvidence;

    #[doc = include_str!("../../../docs/src/guide/images.md")]
    pub struct GuideImages;

    #[doc = include_str!("../../../docs/src/guide/keeping.md")]
    pub struct GuideKeeping;

    #[doc = include_str!("../../../docs/src/guide/reruns.md")]
    pub struct GuideReruns;

    #[doc = include_str!("../../../docs/src/guide/running-together.md")]
    pub struct GuideRunningTogether;

    #[doc = include_str!("../../../docs/src/guide/stacks.md")]
    pub struct GuideStacks;

    #[doc = include_str!("../../../docs/src/guide/writing-a-suite.md")]
    pub struct GuideWritingASuite;

    #[doc = include_str!("../../../docs/src/introduction.md")]
    pub struct Introduction;

    #[doc = include_str!("../../../docs/src/proof.md")]
    pub struct Proof;

    #[doc = include_str!("../../../docs/src/reference/cli.md")]
    pub struct ReferenceCli;

    #[doc = include_str!("../../../docs/src/reference/nextest.md")]
    pub struct ReferenceNextest;

    #[doc = include_str!("../../../docs/src/reference/providers.md")]
    pub struct ReferenceProviders;

    #[doc = include_str!("../../../docs/src/reference/variables.md")]
    pub struct ReferenceVariables;
}
