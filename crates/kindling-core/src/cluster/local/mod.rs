//! The `local` provider's building blocks: upstream Kubernetes components
//! run directly on this host, as detached processes kindling supervises.
//!
//! [`LocalCluster`] (`cluster`) is the cluster and its files; `bootstrap`
//! brings it up as a table of named steps, `teardown` takes it down,
//! `host` is what it changes on this host (links, sysctls, iptables,
//! mounts, cgroups) as `host_record` records it, `network` its addresses
//! and per-cluster names, and `provider` is its [`crate::cluster::Provider`].

mod bootstrap;
mod cluster;
pub mod components;
pub mod config;
mod host;
pub mod host_record;
pub mod images;
mod iptables;
pub mod manifests;
pub mod network;
pub mod packages;
pub mod ports;
pub mod process;
mod provider;
mod teardown;

pub use cluster::{
    ALREADY_UP, DownReport, LocalCluster, LocalError, RESTART_LIMIT, RESTARTED_ON_EXIT,
};
pub use components::{
    COREDNS_VERSION, ComponentBinaries, ETCD_VERSION, KUBERNETES_VERSION, component_versions,
};
