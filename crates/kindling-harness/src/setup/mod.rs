//! The run-wide setup: run lazily by the first test that needs it, once per
//! run across every process of that run, recorded so later processes reuse
//! it (or fail at once with its error). A later run either reuses it (a
//! custom setup whose declared fingerprints are unchanged and whose
//! liveness checks pass) or runs the setup again, handing it what the
//! earlier run left so it can redo only what changed.
//!
//! `context` is what a setup function is handed ([`SetupContext`]);
//! `driver` runs the setup once per process and decides, under the
//! suite's lock, whether to reuse the recorded one.

mod context;
mod driver;

pub(crate) use context::{AliveFn, FailureFn, FingerprintFn, SetupFn};
pub use context::{PhaseError, SetupContext};
pub use driver::SetupError;
pub(crate) use driver::{INTERRUPT_GRACE, SetupDriver, SetupOptions};
