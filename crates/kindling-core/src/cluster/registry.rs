//! Providers linked in from crates of their own. The `local` provider lives
//! in `kindling-local`, which depends on this crate and registers itself
//! here before `main` (as kindling's harness extension registers with the
//! harness), so this crate names it without depending on it, and a build
//! without it (`kindling` without its `local` feature) has none of its code.

use std::path::Path;
use std::sync::OnceLock;

use super::ranges::NetworkRanges;
use super::{ClusterName, Provider};

/// What a linked `local` provider gives this crate.
pub struct LocalProviderSupport {
    /// The provider for `cluster` with its state under `state_root`, its
    /// components in `cache`, on `ranges`.
    pub provider: fn(
        cluster: &ClusterName,
        state_root: &Path,
        cache: &Path,
        ranges: &NetworkRanges,
    ) -> Box<dyn Provider>,
}

static LOCAL: OnceLock<&'static LocalProviderSupport> = OnceLock::new();

/// Registers the `local` provider; the first registration stays.
pub fn register_local(support: &'static LocalProviderSupport) {
    let _ = LOCAL.set(support);
}

/// The registered `local` provider, if one is linked.
pub(crate) fn local() -> Option<&'static LocalProviderSupport> {
    LOCAL.get().copied()
}
