//! The `local` provider's building blocks: upstream Kubernetes components
//! run directly on this host, as detached processes kindling supervises.

pub mod cluster;
pub mod components;
pub mod config;
pub mod images;
pub mod manifests;
pub mod packages;
pub mod ports;
pub mod process;
