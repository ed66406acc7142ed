//! Every variable kindling reads from its process's environment, read once.
//!
//! kindling never sets a variable, so a process's environment is taken at
//! first use and every reader — the tag policy, the provider and cluster a
//! run uses, each provider's settings, the cache and state homes — parses
//! its values from this one record. The harness checks the values when a
//! suite starts ([`crate::extension`] lists them); the readers here turn
//! them into kindling's types, so a variable has one reader and one
//! default.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use crate::apt::{InstallPolicy, SearchPath};
#[cfg(feature = "kind")]
use crate::cluster::kind::KindEngine;
use crate::cluster::lock::LockError;
use crate::cluster::ranges::{NetworkRangeError, NetworkRanges};
use crate::cluster::{ClusterName, InvalidClusterName, ProviderKind};
use crate::image::{RegistryCredentials, TagPolicy, TagPolicyError};

/// The variables kindling reads that are not its own.
const HOST_VARIABLES: &[&str] = &[
    "HOME",
    "PATH",
    "USER",
    "KUBECONFIG",
    "KIND_EXPERIMENTAL_PROVIDER",
];

/// The values of the variables kindling reads: this process's, or given.
#[derive(Debug, Clone, Default)]
pub(crate) struct Config {
    values: BTreeMap<String, OsString>,
}

impl Config {
    /// This process's, read on first use.
    pub(crate) fn current() -> &'static Config {
        static CURRENT: OnceLock<Config> = OnceLock::new();
        CURRENT.get_or_init(|| {
            let names = crate::extension::VARIABLES
                .iter()
                .map(|variable| variable.name)
                .chain(HOST_VARIABLES.iter().copied());
            Config::from_pairs(
                names.filter_map(|name| std::env::var_os(name).map(|value| (name, value))),
            )
        })
    }

    /// Exactly the variables given (for tests, and readers of a recorded
    /// environment).
    pub(crate) fn from_pairs<K, V>(pairs: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: Into<String>,
        V: Into<OsString>,
    {
        Config {
            values: pairs
                .into_iter()
                .map(|(name, value)| (name.into(), value.into()))
                .collect(),
        }
    }

    /// The value of `name`, `None` when unset, empty or not UTF-8.
    pub(crate) fn var(&self, name: &str) -> Option<String> {
        self.var_os(name)?.to_str().map(str::to_owned)
    }

    /// The value of `name` trimmed, `None` when unset or blank.
    pub(crate) fn trimmed(&self, name: &str) -> Option<String> {
        self.var(name)
            .map(|value| value.trim().to_owned())
            .filter(|value| !value.is_empty())
    }

    /// The value of `name`, `None` when unset or empty.
    pub(crate) fn var_os(&self, name: &str) -> Option<&OsStr> {
        self.values
            .get(name)
            .map(OsString::as_os_str)
            .filter(|value| !value.is_empty())
    }

    fn home(&self) -> PathBuf {
        self.var_os("HOME").map(PathBuf::from).unwrap_or_default()
    }

    /// What every provider builds once per host: `KINDLING_CACHE_DIR`,
    /// default `~/.cache/kindling`.
    pub(crate) fn cache_home(&self) -> PathBuf {
        self.var_os("KINDLING_CACHE_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| self.home().join(".cache/kindling"))
    }

    /// Per-host cluster state: `KINDLING_HOME`, default
    /// `~/.local/state/kindling`.
    pub(crate) fn state_home(&self) -> PathBuf {
        self.var_os("KINDLING_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| self.home().join(".local/state/kindling"))
    }

    /// `KINDLING_TAG_POLICY` with `KINDLING_IMAGE_TAG`, `default` when unset.
    pub(crate) fn tag_policy(&self, default: TagPolicy) -> Result<TagPolicy, TagPolicyError> {
        TagPolicy::from_values(
            self.var("KINDLING_TAG_POLICY").as_deref(),
            self.var("KINDLING_IMAGE_TAG").as_deref(),
            default,
        )
    }

    /// The cluster `KINDLING_CLUSTER` names, else `default`.
    pub(crate) fn cluster(&self, default: ClusterName) -> Result<ClusterName, InvalidClusterName> {
        self.trimmed("KINDLING_CLUSTER")
            .map_or(Ok(default), |name| ClusterName::new(&name))
    }

    /// The provider `KINDLING_PROVIDER` names: `Ok(None)` when unset,
    /// `Err` with the value when it names none of kindling's.
    pub(crate) fn provider(&self) -> Result<Option<ProviderKind>, String> {
        self.trimmed("KINDLING_PROVIDER")
            .map(|name| name.parse::<ProviderKind>().map_err(|_| name))
            .transpose()
    }

    /// `KINDLING_INSTALL`: `never`, else `auto` (the harness has already
    /// refused other values).
    pub(crate) fn install_policy(&self) -> InstallPolicy {
        match self.trimmed("KINDLING_INSTALL").as_deref() {
            Some("never") => InstallPolicy::Never,
            _ => InstallPolicy::Auto,
        }
    }

    /// `PATH`, then the system directories (see [`SearchPath`]).
    pub(crate) fn search_path(&self) -> SearchPath {
        SearchPath::from_path(self.var_os("PATH"))
    }

    /// `KINDLING_LOCK_TIMEOUT`: how long a lock is waited for (`None`:
    /// until it is free).
    pub(crate) fn lock_timeout(&self) -> Result<Option<Duration>, LockError> {
        self.var(crate::cluster::lock::LOCK_TIMEOUT_VARIABLE)
            .filter(|value| !value.trim().is_empty())
            .map(|value| crate::cluster::lock::parse_timeout(&value))
            .transpose()
    }

    /// The local provider's ranges (`KINDLING_LOCAL_*`), defaults for those unset.
    pub(crate) fn network_ranges(&self) -> Result<NetworkRanges, NetworkRangeError> {
        NetworkRanges::from_vars(|name| self.var(name))
    }

    /// `KINDLING_REGISTRY_USERNAME` with `KINDLING_REGISTRY_PASSWORD`,
    /// when both are set.
    pub(crate) fn registry_credentials(&self) -> Option<RegistryCredentials> {
        Some(RegistryCredentials {
            username: self.var("KINDLING_REGISTRY_USERNAME")?,
            password: self.var("KINDLING_REGISTRY_PASSWORD")?,
        })
    }

    /// The engine `KIND_EXPERIMENTAL_PROVIDER` names; `None` when unset
    /// (kind picks).
    #[cfg(feature = "kind")]
    pub(crate) fn kind_engine(&self) -> Option<KindEngine> {
        self.trimmed("KIND_EXPERIMENTAL_PROVIDER")
            .map(|name| KindEngine::named(&name))
    }

    /// `KINDLING_KIND_RECREATE` is `1` or `true`.
    #[cfg(feature = "kind")]
    pub(crate) fn kind_recreate(&self) -> bool {
        matches!(
            self.trimmed("KINDLING_KIND_RECREATE").as_deref(),
            Some("1" | "true")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Config {
        Config::from_pairs(pairs.iter().copied())
    }

    #[test]
    fn homes_follow_their_variables_and_fall_back_under_home() {
        let set = config(&[
            ("HOME", "/home/a"),
            ("KINDLING_CACHE_DIR", "/c"),
            ("KINDLING_HOME", "/s"),
        ]);
        assert_eq!(set.cache_home(), PathBuf::from("/c"));
        assert_eq!(set.state_home(), PathBuf::from("/s"));
        let unset = config(&[("HOME", "/home/a"), ("KINDLING_HOME", "")]);
        assert_eq!(unset.cache_home(), PathBuf::from("/home/a/.cache/kindling"));
        assert_eq!(
            unset.state_home(),
            PathBuf::from("/home/a/.local/state/kindling"),
            "an empty KINDLING_HOME is unset, never the working directory"
        );
    }

    #[test]
    fn the_provider_and_cluster_are_parsed_with_their_values_named() {
        assert_eq!(config(&[]).provider(), Ok(None));
        assert_eq!(
            config(&[("KINDLING_PROVIDER", " kind ")]).provider(),
            Ok(Some(ProviderKind::Kind))
        );
        assert_eq!(
            config(&[("KINDLING_PROVIDER", "minikube")]).provider(),
            Err("minikube".to_owned())
        );
        let default = ClusterName::default();
        assert_eq!(config(&[]).cluster(default.clone()).unwrap(), default);
        assert_eq!(
            config(&[("KINDLING_CLUSTER", " team-a ")])
                .cluster(default.clone())
                .unwrap()
                .to_string(),
            "team-a"
        );
        assert!(
            config(&[("KINDLING_CLUSTER", "../x")])
                .cluster(default)
                .is_err()
        );
    }

    #[test]
    fn typed_settings_take_their_defaults_when_unset() {
        let unset = config(&[]);
        assert_eq!(unset.install_policy(), InstallPolicy::Auto);
        assert_eq!(unset.lock_timeout().unwrap(), None);
        assert_eq!(unset.tag_policy(TagPolicy::Content), Ok(TagPolicy::Content));
        assert!(unset.registry_credentials().is_none());
        assert!(unset.kind_engine().is_none());
        assert!(!unset.kind_recreate());
        assert_eq!(unset.network_ranges().unwrap(), NetworkRanges::default());

        let set = config(&[
            ("KINDLING_INSTALL", "never"),
            ("KINDLING_LOCK_TIMEOUT", "5m"),
            ("KINDLING_TAG_POLICY", "fixed"),
            ("KINDLING_IMAGE_TAG", "ci-1"),
            ("KINDLING_REGISTRY_USERNAME", "u"),
            ("KINDLING_REGISTRY_PASSWORD", "p"),
            ("KIND_EXPERIMENTAL_PROVIDER", "podman"),
            ("KINDLING_KIND_RECREATE", "true"),
        ]);
        assert_eq!(set.install_policy(), InstallPolicy::Never);
        assert_eq!(
            set.lock_timeout().unwrap(),
            Some(Duration::from_secs(5 * 60))
        );
        assert_eq!(
            set.tag_policy(TagPolicy::Content),
            Ok(TagPolicy::Fixed("ci-1".to_owned()))
        );
        assert_eq!(set.registry_credentials().unwrap().username, "u");
        assert_eq!(set.kind_engine(), Some(KindEngine::Podman));
        assert!(set.kind_recreate());
        assert!(
            config(&[("KINDLING_LOCK_TIMEOUT", "soon")])
                .lock_timeout()
                .is_err()
        );
    }

    #[test]
    fn the_process_record_holds_only_the_variables_kindling_reads() {
        let current = Config::current();
        assert!(
            current.values.keys().all(
                |name| name.starts_with("KINDLING_") || HOST_VARIABLES.contains(&name.as_str())
            ),
            "{:?}",
            current.values.keys().collect::<Vec<_>>()
        );
    }
}
