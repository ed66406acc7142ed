//! The `existing` provider: a cluster kindling does not own, reached through
//! a kubeconfig context. Images are pushed to a registry the cluster pulls
//! from; nothing assumes a node on this machine, and the cluster is never
//! created or deleted.

use std::path::{Path, PathBuf};

use bollard::Docker;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams};
use kube::config::Kubeconfig;
use kube::{Client, Config};

use super::{
    ClusterInfo, ClusterName, Delivered, Provider, ProviderError, ProviderSpec, PullPolicy,
};
use crate::BoxFuture;
use crate::Requirement;
use crate::image::{ImageRef, PushError, Pusher, Registry, RegistryCredentials};
use crate::node::NodeStore;

const PROVIDER: &str = "existing";

/// The `existing` provider failed.
#[derive(Debug, thiserror::Error)]
pub enum ExistingError {
    /// The kubeconfig file does not exist.
    #[error(
        "kubeconfig `{path}` does not exist: point KINDLING_KUBECONFIG (or KUBECONFIG) at the cluster's kubeconfig"
    )]
    MissingKubeconfig {
        /// The path looked at (from `KINDLING_KUBECONFIG`, `KUBECONFIG` or
        /// `~/.kube/config`).
        path: PathBuf,
    },
    /// The kubeconfig file exists but cannot be read or parsed.
    #[error("cannot read kubeconfig `{path}`: check that it is a readable kubeconfig file")]
    ReadKubeconfig {
        /// The kubeconfig file.
        path: PathBuf,
        /// The kubeconfig reader's error.
        #[source]
        source: kube::config::KubeconfigError,
    },
    /// The context asked for is not in the kubeconfig.
    #[error(
        "kubeconfig `{path}` has no context `{context}`: set KINDLING_CONTEXT to one it has ({})",
        list(.available)
    )]
    UnknownContext {
        /// The kubeconfig file.
        path: PathBuf,
        /// The context asked for (`KINDLING_CONTEXT`, or the file's
        /// current-context).
        context: String,
        /// The contexts the file has.
        available: Vec<String>,
    },
    /// No context was asked for and the kubeconfig has no current-context.
    #[error(
        "kubeconfig `{path}` has no current-context: set KINDLING_CONTEXT to one it has ({})",
        list(.available)
    )]
    NoCurrentContext {
        /// The kubeconfig file.
        path: PathBuf,
        /// The contexts the file has.
        available: Vec<String>,
    },
    /// The context is in the kubeconfig but its configuration cannot be loaded.
    #[error("cannot use context `{context}` of the kubeconfig")]
    Config {
        /// The context.
        context: String,
        /// Why its configuration cannot be loaded.
        #[source]
        source: Box<crate::kubeconfig::KubeconfigError>,
    },
    /// A client could not be made from the context's configuration.
    #[error("cannot create a Kubernetes client for context `{context}` ({server})")]
    Client {
        /// The context.
        context: String,
        /// The API server's URL, as the context gives it.
        server: String,
        /// The Kubernetes client's error.
        #[source]
        source: kube::Error,
    },
    /// The context's API server did not answer a version request.
    #[error(
        "the API server of context `{context}` at {server} does not answer: check that the cluster runs and that this machine reaches it with the kubeconfig's credentials (`kubectl --context {context} version`)"
    )]
    Unreachable {
        /// The context.
        context: String,
        /// The API server's URL, as the context gives it.
        server: String,
        /// The Kubernetes client's error.
        #[source]
        source: kube::Error,
    },
    /// `KINDLING_REGISTRY` is not set: the provider has nowhere to push images
    /// to.
    #[error(
        "the existing provider needs a registry the cluster pulls from: set KINDLING_REGISTRY (e.g. `127.0.0.1:5000` or `registry.example.com/team`)"
    )]
    MissingRegistry,
    /// Only one of `KINDLING_REGISTRY_USERNAME` and
    /// `KINDLING_REGISTRY_PASSWORD` is set.
    #[error(
        "{variable} is set but {missing} is not: set both, or neither for a registry without credentials"
    )]
    HalfCredentials {
        /// The variable that is set.
        variable: &'static str,
        /// The variable that is not.
        missing: &'static str,
    },
    /// `KUBECONFIG` lists several files and `KINDLING_KUBECONFIG` does not pick
    /// one.
    #[error(
        "KUBECONFIG lists several files (`{value}`): set KINDLING_KUBECONFIG to the one that holds the cluster's context"
    )]
    SeveralKubeconfigs {
        /// `KUBECONFIG` as set.
        value: String,
    },
    /// Reading the registry address, or pushing the images to the registry,
    /// failed.
    #[error(transparent)]
    Push(Box<PushError>),
    /// Writing the cluster's state into the artifacts (`cluster.json`) failed.
    #[error("failed to write `{path}`")]
    Write {
        /// The file being written.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

impl From<PushError> for ExistingError {
    fn from(error: PushError) -> Self {
        ExistingError::Push(Box::new(error))
    }
}

fn list(names: &[String]) -> String {
    if names.is_empty() {
        "it has none".to_owned()
    } else {
        names
            .iter()
            .map(|name| format!("`{name}`"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A cluster reached through `context` of `kubeconfig`, with images pushed
/// to `registry`.
#[derive(Debug, Clone)]
pub struct ExistingCluster {
    name: ClusterName,
    kubeconfig: PathBuf,
    /// `None`: the kubeconfig's current context.
    context: Option<String>,
    registry: Registry,
}

/// The context a kubeconfig resolved to, and its API server.
#[derive(Debug, Clone)]
struct Resolved {
    context: String,
    server: String,
    config: Config,
}

impl ExistingCluster {
    /// The cluster called `name` (a label for messages and state) in
    /// `context` of `kubeconfig` (`None`: its current context).
    pub fn new(
        name: &ClusterName,
        kubeconfig: impl Into<PathBuf>,
        context: Option<String>,
        registry: Registry,
    ) -> Self {
        ExistingCluster {
            name: name.clone(),
            kubeconfig: kubeconfig.into(),
            context,
            registry,
        }
    }

    /// From `KINDLING_KUBECONFIG` (default `KUBECONFIG`, then
    /// `~/.kube/config`), `KINDLING_CONTEXT` (default the current context),
    /// `KINDLING_REGISTRY` (required), and optionally
    /// `KINDLING_REGISTRY_USERNAME` with `KINDLING_REGISTRY_PASSWORD`.
    pub fn from_env(name: &ClusterName) -> Result<Self, ExistingError> {
        let config = crate::config::Config::current();
        Self::from_vars(name, |variable| config.var(variable))
    }

    /// [`Self::from_env`] with the variables looked up through `var`.
    pub fn from_vars(
        name: &ClusterName,
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ExistingError> {
        let kubeconfig = match (var("KINDLING_KUBECONFIG"), var("KUBECONFIG")) {
            (Some(path), _) => PathBuf::from(path),
            (None, Some(value)) => {
                let mut paths = std::env::split_paths(&value).filter(|p| !p.as_os_str().is_empty());
                match (paths.next(), paths.next()) {
                    (Some(path), None) => path,
                    (None, _) => default_kubeconfig(&var),
                    (Some(_), Some(_)) => return Err(ExistingError::SeveralKubeconfigs { value }),
                }
            }
            (None, None) => default_kubeconfig(&var),
        };
        let address = var("KINDLING_REGISTRY").ok_or(ExistingError::MissingRegistry)?;
        let mut registry = Registry::new(&address)?;
        match (
            var("KINDLING_REGISTRY_USERNAME"),
            var("KINDLING_REGISTRY_PASSWORD"),
        ) {
            (Some(username), Some(password)) => {
                registry = registry.with_credentials(RegistryCredentials { username, password })
            }
            (None, None) => {}
            (Some(_), None) => {
                return Err(ExistingError::HalfCredentials {
                    variable: "KINDLING_REGISTRY_USERNAME",
                    missing: "KINDLING_REGISTRY_PASSWORD",
                });
            }
            (None, Some(_)) => {
                return Err(ExistingError::HalfCredentials {
                    variable: "KINDLING_REGISTRY_PASSWORD",
                    missing: "KINDLING_REGISTRY_USERNAME",
                });
            }
        }
        Ok(ExistingCluster::new(
            name,
            kubeconfig,
            var("KINDLING_CONTEXT"),
            registry,
        ))
    }

    /// The kubeconfig file the cluster is reached through.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// The registry images are pushed to.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// A client for the context, once its API server has answered.
    pub async fn client(&self) -> Result<Client, ExistingError> {
        let resolved = self.resolve().await?;
        Ok(self.connect(&resolved).await?.0)
    }

    /// Reads the kubeconfig and picks the context, failing with what the
    /// file does offer.
    async fn resolve(&self) -> Result<Resolved, ExistingError> {
        let path = self.kubeconfig.clone();
        if !path.exists() {
            return Err(ExistingError::MissingKubeconfig { path });
        }
        let kubeconfig =
            Kubeconfig::read_from(&path).map_err(|source| ExistingError::ReadKubeconfig {
                path: path.clone(),
                source,
            })?;
        let available: Vec<String> = kubeconfig
            .contexts
            .iter()
            .map(|named| named.name.clone())
            .collect();
        let context = match self
            .context
            .clone()
            .or_else(|| kubeconfig.current_context.clone())
            .filter(|context| !context.is_empty())
        {
            Some(context) if available.contains(&context) => context,
            Some(context) => {
                return Err(ExistingError::UnknownContext {
                    path,
                    context,
                    available,
                });
            }
            None => return Err(ExistingError::NoCurrentContext { path, available }),
        };
        let config = crate::kubeconfig::config_from(kubeconfig, &path, Some(&context))
            .await
            .map_err(|source| ExistingError::Config {
                context: context.clone(),
                source: Box::new(source),
            })?;
        Ok(Resolved {
            server: config.cluster_url.to_string(),
            context,
            config,
        })
    }

    /// A client, and the server's version once it answered.
    async fn connect(&self, resolved: &Resolved) -> Result<(Client, String), ExistingError> {
        let client =
            Client::try_from(resolved.config.clone()).map_err(|source| ExistingError::Client {
                context: resolved.context.clone(),
                server: resolved.server.clone(),
                source,
            })?;
        let version =
            client
                .apiserver_version()
                .await
                .map_err(|source| ExistingError::Unreachable {
                    context: resolved.context.clone(),
                    server: resolved.server.clone(),
                    source,
                })?;
        Ok((client, version.git_version))
    }

    fn provider_error(&self, action: &str, error: ExistingError) -> ProviderError {
        ProviderError::Existing {
            cluster: self.name.to_string(),
            action: action.to_owned(),
            source: Box::new(error),
        }
    }
}

fn default_kubeconfig(var: &impl Fn(&str) -> Option<String>) -> PathBuf {
    PathBuf::from(var("HOME").unwrap_or_default()).join(".kube/config")
}

impl Provider for ExistingCluster {
    fn kind(&self) -> &'static str {
        PROVIDER
    }

    fn spec(&self) -> ProviderSpec {
        ProviderSpec::Existing {
            cluster: self.name.clone(),
            kubeconfig: self.kubeconfig.clone(),
            context: self.context.clone(),
            registry: self.registry.address().to_owned(),
        }
    }

    fn requirement(&self) -> Requirement {
        let kubeconfig = self.kubeconfig.clone();
        Requirement::all(
            "the existing provider",
            vec![
                Requirement::file(
                    kubeconfig,
                    "point KINDLING_KUBECONFIG (or KUBECONFIG) at the cluster's kubeconfig",
                ),
                Requirement::docker(),
            ],
        )
    }

    fn cluster(&self) -> &str {
        self.name.as_str()
    }

    /// Never creates anything: checks that the context's API server answers.
    fn ensure(&self) -> BoxFuture<Result<ClusterInfo, ProviderError>> {
        let cluster = self.clone();
        Box::pin(async move {
            let check = async {
                let resolved = cluster.resolve().await?;
                cluster.connect(&resolved).await?;
                Ok::<_, ExistingError>(resolved)
            };
            let resolved = check
                .await
                .map_err(|error| cluster.provider_error("reach the cluster", error))?;
            Ok(ClusterInfo {
                name: cluster.name.to_string(),
                kubeconfig: cluster.kubeconfig.clone(),
                fingerprint: format!("existing {} {}", resolved.server, resolved.context),
                context: resolved.context,
                created: false,
            })
        })
    }

    /// None: the nodes may be anywhere, and they pull from the registry.
    fn node_stores(&self) -> BoxFuture<Result<Vec<NodeStore>, ProviderError>> {
        Box::pin(async { Ok(Vec::new()) })
    }

    /// Does nothing: kindling never deletes a cluster it does not own. It
    /// succeeds (with a warning) so that a teardown written for disposable
    /// clusters does not fail on a shared one.
    fn delete(&self) -> BoxFuture<Result<(), ProviderError>> {
        let name = self.name.clone();
        Box::pin(async move {
            tracing::warn!(
                cluster = %name,
                "the existing provider never deletes a cluster kindling does not own; left as it is"
            );
            Ok(())
        })
    }

    /// Writes `cluster.json`: the context, server, version and the nodes
    /// as the API reports them (or why it would not list them). Node and
    /// component logs stay with whoever runs the cluster.
    fn collect_logs(&self, dir: &Path) -> BoxFuture<Result<(), ProviderError>> {
        let cluster = self.clone();
        let dir = dir.to_owned();
        Box::pin(async move {
            let collect = async {
                let resolved = cluster.resolve().await?;
                let (client, version) = cluster.connect(&resolved).await?;
                let nodes = match Api::<Node>::all(client).list(&ListParams::default()).await {
                    Ok(nodes) => serde_json::json!(nodes.items),
                    Err(error) => serde_json::json!({ "error": error.to_string() }),
                };
                let report = serde_json::json!({
                    "context": resolved.context,
                    "server": resolved.server,
                    "version": version,
                    "nodes": nodes,
                });
                let path = dir.join("cluster.json");
                let text = serde_json::to_string_pretty(&report).expect("JSON values serialize");
                kindling_harness::util::create_private_dir_all(&dir)
                    .and_then(|()| kindling_harness::util::write_private(&path, text.as_bytes()))
                    .map_err(|source| ExistingError::Write { path, source })
            };
            collect
                .await
                .map_err(|error| cluster.provider_error("collect the cluster's state", error))
        })
    }

    fn prepare_host(
        &self,
        _scope: crate::cluster::PrepareScope,
    ) -> BoxFuture<Result<String, ProviderError>> {
        let said = format!(
            "existing cluster `{}`: nothing to prepare, kindling does not own it",
            self.name
        );
        Box::pin(async move { Ok(said) })
    }

    fn take_down(&self) -> BoxFuture<Result<crate::cluster::DownReport, ProviderError>> {
        Box::pin(async move {
            Ok(crate::cluster::DownReport {
                removed: crate::cluster::Removed::NotOwned,
                left: Vec::new(),
            })
        })
    }

    fn kubeconfig_path(&self) -> Option<std::path::PathBuf> {
        Some(self.kubeconfig.clone())
    }

    fn healthy(&self) -> BoxFuture<Result<(), ProviderError>> {
        let cluster = self.clone();
        Box::pin(async move {
            cluster
                .client()
                .await
                .map(drop)
                .map_err(|error| cluster.provider_error("check the cluster", error))
        })
    }

    /// Pushes the images; pods pull them once, by digest.
    fn deliver(
        &self,
        docker: Docker,
        images: Vec<ImageRef>,
    ) -> BoxFuture<Result<Delivered, ProviderError>> {
        let cluster = self.clone();
        Box::pin(async move {
            let pushed = Pusher::new(docker, cluster.registry.clone())
                .push_all(&images)
                .await
                .map_err(|error| {
                    cluster.provider_error("push the images to the registry", error.into())
                })?;
            Ok(Delivered {
                images: pushed,
                pull_policy: PullPolicy::IfNotPresent,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn team() -> ClusterName {
        "team".parse().unwrap()
    }

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect();
        move |key| map.get(key).cloned()
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn variables_pick_kubeconfig_context_and_registry() {
        let cluster = ExistingCluster::from_vars(
            &team(),
            vars(&[
                ("KINDLING_KUBECONFIG", "/k/a.yaml"),
                ("KUBECONFIG", "/k/b.yaml"),
                ("KINDLING_CONTEXT", "prod-eu"),
                ("KINDLING_REGISTRY", "127.0.0.1:5000"),
            ]),
        )
        .unwrap();
        assert_eq!(cluster.kubeconfig(), Path::new("/k/a.yaml"));
        assert_eq!(cluster.context.as_deref(), Some("prod-eu"));
        assert_eq!(cluster.registry().address(), "127.0.0.1:5000");

        let defaults = ExistingCluster::from_vars(
            &team(),
            vars(&[("HOME", "/home/u"), ("KINDLING_REGISTRY", "reg.io/t")]),
        )
        .unwrap();
        assert_eq!(defaults.kubeconfig(), Path::new("/home/u/.kube/config"));
        assert_eq!(defaults.context, None);

        let from_kubeconfig = ExistingCluster::from_vars(
            &team(),
            vars(&[("KUBECONFIG", "/k/b.yaml"), ("KINDLING_REGISTRY", "reg.io")]),
        )
        .unwrap();
        assert_eq!(from_kubeconfig.kubeconfig(), Path::new("/k/b.yaml"));
    }

    #[test]
    fn missing_or_partial_settings_name_the_variable() {
        let error = ExistingCluster::from_vars(&team(), vars(&[])).unwrap_err();
        assert!(
            error.to_string().contains("set KINDLING_REGISTRY"),
            "{error}"
        );

        let error = ExistingCluster::from_vars(
            &team(),
            vars(&[
                ("KINDLING_REGISTRY", "reg.io"),
                ("KINDLING_REGISTRY_USERNAME", "ci"),
            ]),
        )
        .unwrap_err();
        assert!(
            error.to_string().contains("KINDLING_REGISTRY_PASSWORD"),
            "{error}"
        );

        let error = ExistingCluster::from_vars(&team(), vars(&[("KINDLING_REGISTRY", "team/e2e")]))
            .unwrap_err();
        assert!(error.to_string().contains("`team/e2e`"), "{error}");

        let error = ExistingCluster::from_vars(
            &team(),
            vars(&[
                ("KUBECONFIG", "/k/a.yaml:/k/b.yaml"),
                ("KINDLING_REGISTRY", "reg.io"),
            ]),
        )
        .unwrap_err();
        assert!(error.to_string().contains("KINDLING_KUBECONFIG"), "{error}");
    }

    #[test]
    fn kubeconfig_problems_name_the_file_and_the_contexts() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::new("127.0.0.1:5000").unwrap();
        let missing = dir.path().join("absent.yaml");
        let cluster = ExistingCluster::new(&team(), &missing, None, registry.clone());
        let error = runtime().block_on(cluster.resolve()).unwrap_err();
        assert!(
            error.to_string().contains(&missing.display().to_string()),
            "{error}"
        );

        let path = dir.path().join("config.yaml");
        std::fs::write(
            &path,
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:1\ncontexts:\n- name: one\n  context:\n    cluster: c\n- name: two\n  context:\n    cluster: c\nusers: []\n",
        )
        .unwrap();
        let cluster = ExistingCluster::new(&team(), &path, Some("three".into()), registry.clone());
        let message = runtime()
            .block_on(cluster.resolve())
            .unwrap_err()
            .to_string();
        for part in ["`three`", "`one`, `two`", &path.display().to_string()] {
            assert!(message.contains(part), "{message}");
        }
        let cluster = ExistingCluster::new(&team(), &path, None, registry);
        let message = runtime()
            .block_on(cluster.resolve())
            .unwrap_err()
            .to_string();
        assert!(message.contains("no current-context"), "{message}");
        assert!(message.contains("KINDLING_CONTEXT"), "{message}");
    }

    #[test]
    fn it_offers_no_node_stores_and_never_deletes() {
        let registry = Registry::new("127.0.0.1:5000").unwrap();
        let cluster = ExistingCluster::new(&team(), "/nonexistent", None, registry);
        assert_eq!((cluster.kind(), cluster.cluster()), ("existing", "team"));
        let runtime = runtime();
        assert!(runtime.block_on(cluster.node_stores()).unwrap().is_empty());
        runtime.block_on(cluster.delete()).unwrap();
    }
}
