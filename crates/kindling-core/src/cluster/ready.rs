//! A cluster brought up before the tests start, by `kindling nextest-setup`
//! as a nextest setup script: it hands the test processes the cluster's
//! coordinates in [`READY_VARIABLE`], so their setups check that it answers
//! instead of each taking the cluster's lock and bringing it up.

use serde::{Deserialize, Serialize};

use super::{ClusterInfo, Provider, ProviderError, ProviderSpec};

/// The variable a setup script sets for the tests: a [`ReadyCluster`] as JSON.
pub const READY_VARIABLE: &str = "KINDLING_CLUSTER_READY";

/// A cluster that is up, and the provider it is up with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadyCluster {
    /// The provider the cluster is up with, as data.
    pub spec: ProviderSpec,
    /// What the provider's `ensure` returned for it.
    pub info: ClusterInfo,
}

impl ReadyCluster {
    /// Brings `provider`'s cluster up (or checks that it runs).
    pub async fn ensure(provider: &dyn Provider) -> Result<ReadyCluster, ProviderError> {
        Ok(ReadyCluster {
            spec: provider.spec(),
            info: provider.ensure().await?,
        })
    }

    /// `KINDLING_CLUSTER_READY=<json>`, a line for `$NEXTEST_ENV`.
    pub fn env_line(&self) -> String {
        format!(
            "{READY_VARIABLE}={}",
            serde_json::to_string(self).expect("a ready cluster serialises")
        )
    }

    /// The ready cluster this process was handed, if any and if it is the
    /// one of `provider` (a test process that chose another provider or
    /// cluster brings its own up).
    pub fn handed_to(provider: &dyn Provider) -> Option<ReadyCluster> {
        let ready: ReadyCluster =
            serde_json::from_str(&crate::config::Config::current().var(READY_VARIABLE)?).ok()?;
        (ready.spec == provider.spec()).then_some(ready)
    }
}
