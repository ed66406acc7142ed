//! What the `kindling` command asks of every provider through the
//! [`super::Provider`] trait: obtain what a cluster needs, bring it up
//! with its phases timed, take it down saying what went. The provider is
//! named once ([`ProviderKind`]) or chosen by what the machine offers.

use std::str::FromStr;
use std::time::Duration;

use super::ClusterInfo;

/// The providers kindling has, as `KINDLING_PROVIDER` and `--provider`
/// name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProviderKind {
    /// Upstream Kubernetes components run directly on this host.
    Local,
    /// A Kind cluster, through the `kind` CLI.
    Kind,
    /// A cluster kindling does not own, reached through a kubeconfig.
    Existing,
}

impl ProviderKind {
    /// Every provider, in the order errors list them.
    pub const ALL: [ProviderKind; 3] = [
        ProviderKind::Local,
        ProviderKind::Kind,
        ProviderKind::Existing,
    ];

    /// `local`, `kind` or `existing`.
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Local => "local",
            ProviderKind::Kind => "kind",
            ProviderKind::Existing => "existing",
        }
    }
}

impl std::fmt::Display for ProviderKind {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// A provider name that is none of kindling's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown provider `{0}`: expected local, kind or existing")]
pub struct UnknownProviderKind(pub String);

impl FromStr for ProviderKind {
    type Err = UnknownProviderKind;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        ProviderKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == name.trim())
            .ok_or_else(|| UnknownProviderKind(name.to_owned()))
    }
}

/// How much [`super::Provider::prepare_host`] obtains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PrepareScope {
    /// Everything the cluster needs before it starts.
    #[default]
    Everything,
    /// Only the runtime packages the host lacks (the `local` provider's
    /// containerd, runc, CNI plugins, iptables).
    RuntimePackagesOnly,
}

/// What bringing a cluster up did.
#[derive(Debug, Clone)]
pub struct UpReport {
    /// The running cluster.
    pub info: ClusterInfo,
    /// Each phase and its time, where the provider times them.
    pub phases: Vec<(String, Duration)>,
}

/// What taking a cluster down removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removed {
    /// The cluster is deleted (or did not exist).
    Deleted,
    /// These components were stopped.
    Stopped(Vec<String>),
    /// Nothing ran.
    NotRunning,
    /// kindling does not own the cluster and left it as it is.
    NotOwned,
}

/// What taking a cluster down did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownReport {
    /// What went.
    pub removed: Removed,
    /// What could not be removed, each naming the object and why.
    pub left: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_names_parse_to_their_kind_and_others_are_refused() {
        for kind in ProviderKind::ALL {
            assert_eq!(kind.as_str().parse::<ProviderKind>(), Ok(kind));
            assert_eq!(format!(" {kind} ").parse::<ProviderKind>(), Ok(kind));
        }
        let refused = "remote".parse::<ProviderKind>().unwrap_err();
        assert_eq!(
            refused.to_string(),
            "unknown provider `remote`: expected local, kind or existing"
        );
    }

    #[test]
    fn a_named_provider_is_made_without_asking_the_machine() {
        let cluster = "lifecycle-test".parse().unwrap();
        let (provider, choice) =
            crate::cluster::choose(Some(ProviderKind::Kind), &cluster).unwrap();
        assert_eq!(
            (provider.kind(), provider.cluster()),
            ("kind", "lifecycle-test")
        );
        assert!(choice.is_none());
    }
}
