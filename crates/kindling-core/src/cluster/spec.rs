//! What a provider is, as data: recorded in an environment so that every
//! test process reaches the very cluster the setup used (whatever
//! `KINDLING_PROVIDER` says in that process), and fingerprinted so that a
//! changed provider or cluster configuration sets up from scratch.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::existing::ExistingCluster;
#[cfg(feature = "kind")]
use super::kind::{KindCluster, KindEngine};
use super::ranges::NetworkRanges;
use super::{ClusterName, Provider, ProviderError};
use crate::image::Registry;

/// A provider and its configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "provider", rename_all = "snake_case")]
pub enum ProviderSpec {
    /// Upstream components on this host.
    Local {
        /// The cluster's name.
        cluster: ClusterName,
        /// Where the cluster's state lives (`<KINDLING_HOME>/clusters`).
        state_root: PathBuf,
        /// Where its built components are (`KINDLING_CACHE_DIR`).
        cache: PathBuf,
        /// Its address ranges (`KINDLING_LOCAL_*`).
        #[serde(default)]
        ranges: NetworkRanges,
    },
    /// A Kind cluster through the kind CLI.
    Kind {
        /// The cluster's name.
        cluster: ClusterName,
        /// The state home; the cluster's state is in
        /// `<state_home>/kind/<cluster>`.
        state_home: PathBuf,
        /// The cache the pinned kind build is looked for in (`<cache>/bin/`).
        cache: PathBuf,
        /// The kind configuration file it is created from; `None` for
        /// `kind`'s default configuration of one control-plane node.
        config_file: Option<PathBuf>,
        /// The `kind` binary to run; `None` to look it up
        /// (`KINDLING_KIND_BINARY`, the cache, `PATH`).
        binary: Option<PathBuf>,
        /// `KIND_EXPERIMENTAL_PROVIDER` for kind (`docker`, `podman`); `None`
        /// to leave it unset.
        engine: Option<String>,
        /// Whether a cluster with another fingerprint is deleted and created
        /// again, rather than refused.
        recreate_on_change: bool,
        /// The node image of nodes whose configuration names none
        /// (`KINDLING_KIND_NODE_IMAGE`); `None` for kindling's own.
        #[serde(default)]
        node_image: Option<String>,
    },
    /// A cluster kindling does not own; images pushed to `registry`.
    Existing {
        /// The name the cluster goes by in messages and state.
        cluster: ClusterName,
        /// The kubeconfig file that reaches it.
        kubeconfig: PathBuf,
        /// The context to use in it; `None` for its current context.
        context: Option<String>,
        /// The registry address images are pushed to, e.g. `127.0.0.1:5000`.
        registry: String,
    },
}

impl ProviderSpec {
    /// `local`, `kind` or `existing`.
    pub fn kind(&self) -> &'static str {
        match self {
            ProviderSpec::Local { .. } => "local",
            ProviderSpec::Kind { .. } => "kind",
            ProviderSpec::Existing { .. } => "existing",
        }
    }

    /// The cluster's name.
    pub fn cluster(&self) -> &str {
        match self {
            ProviderSpec::Local { cluster, .. }
            | ProviderSpec::Kind { cluster, .. }
            | ProviderSpec::Existing { cluster, .. } => cluster.as_str(),
        }
    }

    /// The provider this describes. Registry credentials are not recorded:
    /// an `existing` provider made here reads them from the environment.
    pub fn provider(&self) -> Result<Box<dyn Provider>, ProviderError> {
        Ok(match self {
            ProviderSpec::Local {
                cluster,
                state_root,
                cache,
                ranges,
            } => {
                let local = super::registry::local().ok_or_else(|| ProviderError::NotBuiltIn {
                    cluster: cluster.to_string(),
                    name: "local",
                })?;
                (local.provider)(cluster, state_root, cache, ranges)
            }
            #[cfg(not(feature = "kind"))]
            ProviderSpec::Kind { cluster, .. } => {
                return Err(ProviderError::NotBuiltIn {
                    cluster: cluster.to_string(),
                    name: "kind",
                });
            }
            #[cfg(feature = "kind")]
            ProviderSpec::Kind {
                cluster,
                state_home,
                cache,
                config_file,
                binary,
                engine,
                recreate_on_change,
                node_image,
            } => {
                let mut kind = KindCluster::new(cluster, state_home, cache)
                    .recreate_on_change(*recreate_on_change);
                if let Some(image) = node_image {
                    kind = kind.node_image(image);
                }
                if let Some(config) = config_file {
                    kind = kind.config_file(config);
                }
                if let Some(binary) = binary {
                    kind = kind.binary(binary);
                }
                if let Some(engine) = engine {
                    kind = kind.engine(KindEngine::named(engine));
                }
                Box::new(kind)
            }
            ProviderSpec::Existing {
                cluster,
                kubeconfig,
                context,
                registry,
            } => {
                let mut registry =
                    Registry::new(registry).map_err(|error| ProviderError::Existing {
                        cluster: cluster.to_string(),
                        action: "read its recorded registry".to_owned(),
                        source: Box::new(error.into()),
                    })?;
                if let Some(credentials) = crate::config::Config::current().registry_credentials() {
                    registry = registry.with_credentials(credentials);
                }
                Box::new(ExistingCluster::new(
                    cluster,
                    kubeconfig,
                    context.clone(),
                    registry,
                ))
            }
        })
    }

    /// A digest of the provider and its configuration: everything here,
    /// the kind configuration file's contents, and kindling's version.
    /// Reading a missing configuration file counts by its absence (the
    /// provider itself fails on it with a clear error).
    pub fn fingerprint(&self) -> String {
        let mut hasher = Sha256::new();
        hasher.update(b"kindling provider v1\0");
        hasher.update(env!("CARGO_PKG_VERSION").as_bytes());
        hasher.update([0]);
        hasher.update(serde_json::to_vec(self).expect("a spec serialises"));
        if let ProviderSpec::Kind {
            config_file: Some(path),
            ..
        } = self
        {
            hasher.update([0]);
            hasher.update(std::fs::read(path).unwrap_or_default());
        }
        #[cfg(feature = "kind")]
        if let ProviderSpec::Kind {
            node_image: None, ..
        } = self
        {
            hasher.update([0]);
            hasher.update(super::kind::node_image::reference().as_bytes());
        }
        if let ProviderSpec::Local { .. } = self {
            hasher.update([0]);
            hasher.update(super::components::component_versions().as_bytes());
        }
        hex::encode(hasher.finalize())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local(cluster: &str) -> ProviderSpec {
        ProviderSpec::Local {
            cluster: cluster.parse().unwrap(),
            state_root: "/state".into(),
            cache: "/cache".into(),
            ranges: NetworkRanges::default(),
        }
    }

    #[test]
    fn fingerprints_change_with_the_configuration() {
        assert_eq!(local("a").fingerprint(), local("a").fingerprint());
        assert_ne!(local("a").fingerprint(), local("b").fingerprint());
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("kind.yaml");
        std::fs::write(&config, "kind: Cluster\n").unwrap();
        let kind = ProviderSpec::Kind {
            cluster: "k".parse().unwrap(),
            state_home: "/state".into(),
            cache: "/cache".into(),
            config_file: Some(config.clone()),
            binary: None,
            engine: None,
            recreate_on_change: false,
            node_image: None,
        };
        let before = kind.fingerprint();
        std::fs::write(&config, "kind: Cluster\nnodes: [{role: worker}]\n").unwrap();
        assert_ne!(before, kind.fingerprint());
    }

    #[test]
    fn specs_round_trip_and_make_their_provider() {
        let specs = [ProviderSpec::Existing {
            cluster: "staging".parse().unwrap(),
            kubeconfig: "/k/config".into(),
            context: Some("ctx".to_owned()),
            registry: "127.0.0.1:5000".to_owned(),
        }];
        for spec in specs {
            let json = serde_json::to_value(&spec).unwrap();
            assert_eq!(serde_json::from_value::<ProviderSpec>(json).unwrap(), spec);
            let provider = spec.provider().unwrap();
            assert_eq!(
                (provider.kind(), provider.cluster()),
                (spec.kind(), spec.cluster())
            );
            assert_eq!(provider.spec(), spec);
        }
        let json = serde_json::to_value(local("a")).unwrap();
        assert_eq!(
            serde_json::from_value::<ProviderSpec>(json).unwrap(),
            local("a")
        );
    }

    #[test]
    fn a_local_spec_without_the_local_provider_linked_names_the_feature() {
        // This crate's tests link no `kindling-local`: nothing registers it.
        let error = local("a").provider().err().expect("no local provider");
        assert!(
            matches!(error, ProviderError::NotBuiltIn { name: "local", .. }),
            "{error:?}"
        );
        assert!(
            error
                .to_string()
                .contains("enable the `local` feature of the `kindling` crate"),
            "{error}"
        );
    }
}
