//! The local cluster as a [`crate::cluster::Provider`]: what a suite's
//! setup asks of it (bring it up, its node's store, deliver images, logs).

use std::path::Path;

use super::cluster::{ALREADY_UP, LocalCluster, LocalError};
use super::components::component_versions;
use crate::node::NodeStore;

impl crate::cluster::Provider for LocalCluster {
    fn kind(&self) -> &'static str {
        "local"
    }

    fn spec(&self) -> crate::cluster::ProviderSpec {
        crate::cluster::ProviderSpec::Local {
            cluster: self.name.clone(),
            state_root: self.state_root.clone(),
            cache: self.cache.clone(),
            ranges: self.network.ranges.clone(),
        }
    }

    fn requirement(&self) -> crate::Requirement {
        let binaries = self.binaries.clone();
        crate::Requirement::all(
            "the local provider",
            vec![
                crate::Requirement::root(),
                crate::Requirement::docker(),
                crate::Requirement::new("the local cluster's components", move || {
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
                crate::Requirement::new("the runtime packages", move || {
                    crate::apt::check(
                        &super::packages::runtime_pieces(&super::packages::default_cni_dirs()),
                        &crate::apt::SearchPath::from_env(),
                        crate::apt::InstallPolicy::from_env(),
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
    ) -> crate::BoxFuture<Result<crate::cluster::ClusterInfo, crate::cluster::ProviderError>> {
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
        scope: crate::cluster::PrepareScope,
    ) -> crate::BoxFuture<Result<String, crate::cluster::ProviderError>> {
        let cluster = self.clone();
        Box::pin(async move {
            let started = std::time::Instant::now();
            let packages_only = scope == crate::cluster::PrepareScope::RuntimePackagesOnly;
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
    ) -> crate::BoxFuture<Result<crate::cluster::UpReport, crate::cluster::ProviderError>> {
        let cluster = self.clone();
        Box::pin(async move {
            let phases = cluster
                .up()
                .await
                .map_err(|error| cluster.provider_error("bring the cluster up", error))?;
            Ok(crate::cluster::UpReport {
                info: cluster.info(&phases),
                phases,
            })
        })
    }

    fn take_down(
        &self,
    ) -> crate::BoxFuture<Result<crate::cluster::DownReport, crate::cluster::ProviderError>> {
        let cluster = self.clone();
        Box::pin(async move {
            let report = cluster
                .down_with_report()
                .await
                .map_err(|error| cluster.provider_error("take the cluster down", error))?;
            Ok(crate::cluster::DownReport {
                removed: if report.stopped.is_empty() {
                    crate::cluster::Removed::NotRunning
                } else {
                    crate::cluster::Removed::Stopped(report.stopped)
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
    ) -> crate::BoxFuture<Result<Vec<NodeStore>, crate::cluster::ProviderError>> {
        let store = self.node_store();
        Box::pin(async move { Ok(vec![store]) })
    }

    fn delete(&self) -> crate::BoxFuture<Result<(), crate::cluster::ProviderError>> {
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
    ) -> crate::BoxFuture<Result<(), crate::cluster::ProviderError>> {
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

    fn healthy(&self) -> crate::BoxFuture<Result<(), crate::cluster::ProviderError>> {
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
        images: Vec<crate::image::ImageRef>,
    ) -> crate::BoxFuture<Result<crate::cluster::Delivered, crate::cluster::ProviderError>> {
        let store = self.node_store();
        let name = self.name.clone();
        Box::pin(async move {
            crate::image::Loader::new(docker)
                .load(&images, &[store])
                .await
                .map_err(|error| crate::cluster::ProviderError::Local {
                    cluster: name.to_string(),
                    action: "load the images into the node".to_owned(),
                    source: Box::new(LocalError::Load(Box::new(error))),
                })?;
            Ok(crate::cluster::Delivered {
                images,
                pull_policy: crate::cluster::PullPolicy::Never,
            })
        })
    }
}

impl LocalCluster {
    /// The running cluster, created unless `up` found it up.
    fn info(&self, phases: &[(String, std::time::Duration)]) -> crate::cluster::ClusterInfo {
        crate::cluster::ClusterInfo {
            name: self.name.to_string(),
            kubeconfig: self.kubeconfig(),
            context: self.name.to_string(),
            fingerprint: format!("local {}", component_versions()),
            created: !phases.iter().any(|(phase, _)| phase == ALREADY_UP),
        }
    }

    fn provider_error(&self, action: &str, error: LocalError) -> crate::cluster::ProviderError {
        crate::cluster::ProviderError::Local {
            cluster: self.name.to_string(),
            action: action.to_owned(),
            source: Box::new(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::local::ComponentBinaries;

    #[test]
    fn the_provider_copies_component_logs_and_names_its_node_store() {
        use crate::cluster::Provider as _;
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
}
