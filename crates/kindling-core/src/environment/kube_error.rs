//! The error of an environment's Kubernetes helpers (a token, a Secret,
//! objects through discovery, a client as a ServiceAccount, scaling): what
//! a test calls beside access ([`crate::access::AccessError`]) and waits
//! ([`crate::wait::WaitError`]).

use super::{CredentialError, ScaleError};
use crate::kubeconfig::KubeconfigError;
use crate::wait::WaitError;

/// A request of a test helper to the cluster failed.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    /// No client for the cluster: its kubeconfig or context cannot be used.
    #[error(transparent)]
    Client(#[from] KubeconfigError),
    /// A ServiceAccount token could not be minted, or a Secret's key read.
    #[error(transparent)]
    Credential(#[from] CredentialError),
    /// The API server does not serve the kind asked for.
    #[error(
        "cannot discover kind `{kind}` of `{api_version}`: check the kind and version, or that its CustomResourceDefinition is applied"
    )]
    Discovery {
        /// The `apiVersion` asked for, e.g. `kindling.dev/v1`.
        api_version: String,
        /// The kind asked for.
        kind: String,
        /// The API client's error.
        #[source]
        source: kube::Error,
    },
    /// A workload could not be scaled.
    #[error(transparent)]
    Scale(#[from] Box<ScaleError>),
    /// A scaled workload did not reach its replicas.
    #[error(transparent)]
    Wait(#[from] WaitError),
}
