//! The `local` provider's building blocks: upstream Kubernetes components
//! run directly on this host, as detached processes kindling supervises.

mod cluster;
pub mod components;
pub mod config;
pub mod images;
pub mod manifests;
pub mod packages;
pub mod ports;
pub mod process;

pub use cluster::{ALREADY_UP, DownReport, LocalCluster, LocalError};
pub use components::{
    COREDNS_VERSION, ComponentBinaries, ETCD_VERSION, KUBERNETES_VERSION, component_versions,
};
