//! The `local` provider's building blocks: upstream Kubernetes components
//! run directly on this host, as detached processes kindling supervises.
//!
//! [`LocalCluster`] (`cluster`) is the cluster and its files; `bootstrap`
//! brings it up as a table of named steps, `teardown` takes it down,
//! `host` is what it changes on this host (links, sysctls, iptables,
//! mounts, cgroups) as `host_record` records it, `network` its addresses
//! and per-cluster names, and `provider` is its [`kindling_core::cluster::Provider`].

#![warn(missing_docs)]

mod bootstrap;
mod cluster;
pub mod config;
mod host;
pub mod host_record;
mod iptables;
pub mod manifests;
pub mod network;
pub mod packages;
pub mod pki;
pub mod ports;
pub mod process;
mod provider;
mod teardown;

pub use cluster::{
    ALREADY_UP, DownReport, LocalCluster, LocalError, RESTART_LIMIT, RESTARTED_ON_EXIT,
};
pub use kindling_core::cluster::components::{self, images};
pub use kindling_core::cluster::components::{
    COREDNS_VERSION, ComponentBinaries, ETCD_VERSION, KUBERNETES_VERSION, component_versions,
};

/// How kindling-core makes this provider for a spec.
static LOCAL: kindling_core::cluster::LocalProviderSupport =
    kindling_core::cluster::LocalProviderSupport {
        provider: |cluster, state_root, cache, ranges| {
            Box::new(LocalCluster::in_dirs(cluster, state_root, cache).with_ranges(ranges.clone()))
        },
    };

ctor::declarative::ctor! {
    #[ctor(unsafe, anonymous)]
    fn register_with_kindling() {
        // Only stores a pointer in a `OnceLock`.
        kindling_core::cluster::register_local(&LOCAL);
    }
}
