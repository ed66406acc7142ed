//! The local cluster as a [`kindling_core::cluster::Provider`]: what a suite's
//! setup asks of it (bring it up, its node's store, deliver images, logs).

use std::path::Path;

use super::cluster::{ALREADY_UP, LocalCluster, LocalError};
use kindling_core::cluster::components::component_versions;
use kindling_core::node::NodeStore;

impl kindling_core::cluster::Provider for LocalCluster {
    fn kind(&self) -> &'static str {
        "local"
    }

    fn spec(&self) -> kindling_core::cluster::ProviderSpec {
        kindling_core::cluster::ProviderSpec::Local {
            cluster: self.name.clone(),
            state_root: self.state_root.clone(),
            cache: self.cache.clone(),
            ranges: self.network.ranges.clone(),
        }
    }

    fn requirement(&self) -> kindling_core::Requirement {
        let binaries = self.binaries.clone();
        kindling_core::Requirement::all(
            "the local provider",
            vec![
                kindling_core::Requirement::root(),
                kindling_core::Requirement::docker(),
                kindling_core::Requirement::new("the local cluster's components", move || {
                    match binaries.missing() {
                        Some(path)
                            if kindling_harness::requirement::find_program("go").is_none() =>
                        {
                            Err(format!(
                                "`{}` is not built and Go is not installed to build it: install Go (https://go.dev/dl)",
                                path.display()
                            ))
                        }
                        _ => Ok(()),
                    }
                }),
                kindling_core::Requirement::new("the runtime packages", move || {
                    kindling_core::apt::check(
                        &super::packages::runtime_pieces(&super::packages::default_cni_dirs()),
                        &kindling_core::apt::SearchPath::from_env(),
                        kindling_core::apt::InstallPolicy::from_env(),
                    )
                    .map_err(|error| error.to_string())
                }),
            ],
        )
    }

    fn cluster(&self) -> &str {
        self.name.as_str()
    }

    fn ensure(
        &self,
    ) -> kindling_core::BoxFuture<
        Result<kindling_core::cluster::ClusterInfo, kindling_core::cluster::ProviderError>,
    > {
        let cluster = self.clone();
        Box::pin(async move {
            let phases = cluster
                .up()
                .await
                .map_err(|error| cluster.provider_error("bring the cluster up", error))?;
            Ok(cluster.info(&phases))
        })
    }

    fn routes_service_addresses(&self) -> bool {
        true
    }

    fn prepare_host(
        &self,
        scope: kindling_core::cluster::PrepareScope,
    ) -> kindling_core::BoxFuture<Result<String, kindling_core::cluster::ProviderError>> {
        let cluster = self.clone();
        Box::pin(async move {
            let started = std::time::Instant::now();
            let packages_only = scope == kindling_core::cluster::PrepareScope::RuntimePackagesOnly;
            let runtime = cluster
                .ensure_packages()
                .await
                .map_err(|error| cluster.provider_error("install its runtime packages", error))?;
            if !packages_only {
                LocalCluster::prepare(&cluster)
                    .await
                    .map_err(|error| cluster.provider_error("build its components", error))?;
            }
            Ok(format!(
                "the local cluster's {} in place ({:.2}s): containerd {}, ctr {}, runc {}, iptables {}, CNI plugins in {}",
                if packages_only {
                    "runtime pieces are"
                } else {
                    "components and runtime pieces are"
                },
                started.elapsed().as_secs_f64(),
                runtime.containerd.display(),
                runtime.ctr.display(),
                runtime.runc.display(),
                runtime.iptables.display(),
                runtime.cni_bin_dir.display(),
            ))
        })
    }

    fn bring_up(
        &self,
    ) -> kindling_core::BoxFuture<
        Result<kindling_core::cluster::UpReport, kindling_core::cluster::ProviderError>,
    > {
        let cluster = self.clone();
        Box::pin(async move {
            let phases = cluster
                .up()
                .await
                .map_err(|error| cluster.provider_error("bring the cluster up", error))?;
            Ok(kindling_core::cluster::UpReport {
                info: cluster.info(&phases),
                phases,
            })
        })
    }

    fn take_down(
        &self,
    ) -> kindling_core::BoxFuture<
        Result<kindling_core::cluster::DownReport, kindling_core::cluster::ProviderError>,
    > {
        let cluster = self.clone();
        Box::pin(async move {
            let report = cluster
                .down_with_report()
                .await
                .map_err(|error| cluster.provider_error("take the cluster down", error))?;
            Ok(kindling_core::cluster::DownReport {
                removed: if report.stopped.is_empty() {
                    kindling_core::cluster::Removed::NotRunning
                } else {
                    kindling_core::cluster::Removed::Stopped(report.stopped)
                },
                left: report.left,
            })
        })
    }

    fn kubeconfig_path(&self) -> Option<std::path::PathBuf> {
        Some(self.kubeconfig())
    }

    fn node_stores(
        &self,
    ) -> kindling_core::BoxFuture<Result<Vec<NodeStore>, kindling_core::cluster::ProviderError>>
    {
        let store = self.node_store();
        Box::pin(async move { Ok(vec![store]) })
    }

    fn delete(
        &self,
    ) -> kindling_core::BoxFuture<Result<(), kindling_core::cluster::ProviderError>> {
        let cluster = self.clone();
        Box::pin(async move {
            cluster
                .down()
                .await
                .map(drop)
                .map_err(|error| cluster.provider_error("take the cluster down", error))
        })
    }

    fn collect_logs(
        &self,
        dir: &Path,
    ) -> kindling_core::BoxFuture<Result<(), kindling_core::cluster::ProviderError>> {
        let cluster = self.clone();
        let dir = dir.to_owned();
        Box::pin(async move {
            let logs = cluster.layout.root.join("logs");
            let copy = || -> std::io::Result<()> {
                std::fs::create_dir_all(&dir)?;
                for entry in std::fs::read_dir(&logs)?.flatten() {
                    std::fs::copy(entry.path(), dir.join(entry.file_name()))?;
                }
                Ok(())
            };
            copy().map_err(|error| {
                cluster.provider_error(
                    "copy the component logs",
                    LocalError::Write {
                        path: dir.clone(),
                        source: error,
                    },
                )
            })
        })
    }

    fn healthy(
        &self,
    ) -> kindling_core::BoxFuture<Result<(), kindling_core::cluster::ProviderError>> {
        let cluster = self.clone();
        Box::pin(async move {
            cluster
                .healthy()
                .await
                .map_err(|error| cluster.provider_error("check the cluster", error))
        })
    }

    fn deliver(
        &self,
        docker: bollard::Docker,
        images: Vec<kindling_core::image::ImageRef>,
    ) -> kindling_core::BoxFuture<
        Result<kindling_core::cluster::Delivered, kindling_core::cluster::ProviderError>,
    > {
        let store = self.node_store();
        let name = self.name.clone();
        Box::pin(async move {
            kindling_core::image::Loader::new(docker)
                .load(&images, &[store])
                .await
                .map_err(|error| kindling_core::cluster::ProviderError::Local {
                    cluster: name.to_string(),
                    action: "load the images into the node".to_owned(),
                    source: Box::new(LocalError::Load(Box::new(error))),
                })?;
            Ok(kindling_core::cluster::Delivered {
                images,
                pull_policy: kindling_core::cluster::PullPolicy::Never,
            })
        })
    }
}

impl LocalCluster {
    /// The running cluster, created unless `up` found it up.
    fn info(
        &self,
        phases: &[(String, std::time::Duration)],
    ) -> kindling_core::cluster::ClusterInfo {
        kindling_core::cluster::ClusterInfo {
            name: self.name.to_string(),
            kubeconfig: self.kubeconfig(),
            context: self.name.to_string(),
            fingerprint: format!("local {}", component_versions()),
            created: !phases.iter().any(|(phase, _)| phase == ALREADY_UP),
        }
    }

    fn provider_error(
        &self,
        action: &str,
        error: LocalError,
    ) -> kindling_core::cluster::ProviderError {
        kindling_core::cluster::ProviderError::Local {
            cluster: self.name.to_string(),
            action: action.to_owned(),
            source: Box::new(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ComponentBinaries;

    #[test]
    fn the_provider_copies_component_logs_and_names_its_node_store() {
        use kindling_core::cluster::Provider as _;
        let home = tempfile::tempdir().unwrap();
        let cluster = LocalCluster::new(
            &"logs".parse().unwrap(),
            home.path(),
            ComponentBinaries::in_cache(home.path()),
        );
        let logs = cluster.layout.root.join("logs");
        std::fs::create_dir_all(&logs).unwrap();
        std::fs::write(logs.join("kubelet.log"), "E0101 something failed\n").unwrap();
        let target = home.path().join("artifacts");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(cluster.collect_logs(&target)).unwrap();
        assert_eq!(
            std::fs::read_to_string(target.join("kubelet.log")).unwrap(),
            "E0101 something failed\n"
        );
        let stores = runtime.block_on(cluster.node_stores()).unwrap();
        assert_eq!(stores.len(), 1);
        assert_eq!(stores[0].name(), "logs-node");
        assert_eq!((cluster.kind(), cluster.cluster()), ("local", "logs"));
    }

    #[test]
    fn a_recorded_local_spec_makes_this_provider_once_it_is_linked() {
        // Registered before `main` by this crate, as in every suite
        // linking `kindling` with its `local` feature.
        let home = tempfile::tempdir().unwrap();
        let spec = kindling_core::cluster::ProviderSpec::Local {
            cluster: "a".parse().unwrap(),
            state_root: home.path().join("clusters"),
            cache: home.path().join("cache"),
            ranges: crate::network::NetworkRanges::default(),
        };
        let json = serde_json::to_value(&spec).unwrap();
        let spec: kindling_core::cluster::ProviderSpec = serde_json::from_value(json).unwrap();
        let provider = spec.provider().unwrap();
        assert_eq!((provider.kind(), provider.cluster()), ("local", "a"));
        assert_eq!(provider.spec(), spec);
    }
}
