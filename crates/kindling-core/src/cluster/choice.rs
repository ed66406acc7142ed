//! The provider a run uses when `KINDLING_PROVIDER` is unset: Kind when a
//! Docker or Podman engine answers and can run Kind nodes (a Kind cluster
//! is what a team's suites share), `local` when none can and the process is
//! root on Linux, and none otherwise, naming both ways.

use super::ClusterName;
use crate::Requirement;

/// The provider chosen for a run whose `KINDLING_PROVIDER` is unset, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultProvider {
    /// `kind` or `local`.
    pub name: &'static str,
    /// Why, in words, for the line a run prints and its record.
    pub reason: String,
}

impl DefaultProvider {
    /// The provider chosen.
    pub fn kind(&self) -> super::ProviderKind {
        self.name
            .parse()
            .expect("a default provider is one of kindling's")
    }
}

impl std::fmt::Display for DefaultProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "provider `{}`: {}", self.name, self.reason)
    }
}

/// Neither provider can run here and `KINDLING_PROVIDER` names none.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "no cluster provider can run here: KINDLING_PROVIDER is unset, no engine can run Kind nodes ({kind}), and the local provider needs root on Linux ({local}): start Docker or Podman (and install Go) for a Kind cluster, or run the tests as root on Linux for the local one, or set KINDLING_PROVIDER"
)]
pub struct NoProvider {
    /// Why the kind provider cannot run.
    pub kind: String,
    /// Why the local provider cannot run.
    pub local: String,
}

/// What this machine offers each provider: `Ok`, or why not.
#[derive(Debug, Clone)]
pub struct MachineOffer {
    /// An engine answers and the kind provider has, or can make, what it
    /// needs (kind, a node image).
    pub kind: Result<(), String>,
    /// The process is root on Linux.
    pub local: Result<(), String>,
}

/// Whether the kind provider can run here.
#[cfg(feature = "kind")]
fn kind_offer(cluster: &ClusterName) -> Result<(), String> {
    use crate::cluster::Provider as _;
    super::kind::KindCluster::with_defaults(cluster)
        .requirement()
        .check()
}

/// Whether the kind provider can run here: not in this build.
#[cfg(not(feature = "kind"))]
fn kind_offer(_cluster: &ClusterName) -> Result<(), String> {
    Err("this build of kindling has no `kind` feature".to_owned())
}

impl MachineOffer {
    /// Asks this machine, for `cluster`: pings the engine, looks for kind
    /// and the node image's components (or Go), and checks the user.
    pub fn of_this_machine(cluster: &ClusterName) -> Self {
        MachineOffer {
            kind: kind_offer(cluster),
            local: Requirement::all(
                "the local provider's user",
                vec![
                    Requirement::new("Linux", || {
                        if cfg!(target_os = "linux") {
                            Ok(())
                        } else {
                            Err(format!("this is {}", std::env::consts::OS))
                        }
                    }),
                    Requirement::root(),
                    Requirement::new("the local provider built in", || {
                        super::registry::local().map(drop).ok_or_else(|| {
                            "this build of kindling has no `local` feature".to_owned()
                        })
                    }),
                ],
            )
            .check(),
        }
    }

    /// The provider this offer gives a run whose `KINDLING_PROVIDER` is unset.
    pub fn choose(&self) -> Result<DefaultProvider, NoProvider> {
        match (&self.kind, &self.local) {
            (Ok(()), _) => Ok(DefaultProvider {
                name: "kind",
                reason: "KINDLING_PROVIDER is unset and a container engine answers that can run Kind nodes (set KINDLING_PROVIDER=local for the local provider)".to_owned(),
            }),
            (Err(kind), Ok(())) => Ok(DefaultProvider {
                name: "local",
                reason: format!(
                    "KINDLING_PROVIDER is unset, no engine can run Kind nodes ({kind}), and this process is root on Linux"
                ),
            }),
            (Err(kind), Err(local)) => Err(NoProvider {
                kind: kind.clone(),
                local: local.clone(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(kind: Result<(), &str>, local: Result<(), &str>) -> MachineOffer {
        MachineOffer {
            kind: kind.map_err(str::to_owned),
            local: local.map_err(str::to_owned),
        }
    }

    #[test]
    fn kind_wins_where_an_engine_can_run_its_nodes_then_local_as_root_else_none() {
        let kind = offer(Ok(()), Ok(())).choose().unwrap();
        assert_eq!(kind.name, "kind");
        assert!(kind.reason.contains("KINDLING_PROVIDER is unset"), "{kind}");
        assert_eq!(
            offer(Ok(()), Err("not root")).choose().unwrap().name,
            "kind"
        );

        let local = offer(Err("no Docker engine answers at `unix:///x`"), Ok(()))
            .choose()
            .unwrap();
        assert_eq!(local.name, "local");
        assert!(
            local
                .reason
                .contains("no Docker engine answers at `unix:///x`")
                && local.reason.contains("root on Linux"),
            "{local}"
        );

        let none = offer(Err("no Docker engine answers"), Err("this needs root"))
            .choose()
            .unwrap_err();
        let text = none.to_string();
        assert!(
            text.contains("no Docker engine answers")
                && text.contains("this needs root")
                && text.contains("start Docker or Podman")
                && text.contains("run the tests as root")
                && text.contains("KINDLING_PROVIDER"),
            "{text}"
        );
    }
}
