//! `down`: what taking a local cluster down stops and removes, in order,
//! and what it reports it could not remove.

use std::path::PathBuf;
use std::time::Duration;

use super::cluster::{COMPONENTS, DownReport, LocalCluster, LocalError};
use super::host;
use super::process::Supervisor;

impl LocalCluster {
    /// Stops exactly the recorded processes, removes pod sandboxes, CNI
    /// state, kube-proxy's rules, kubelet mounts, the node interface and
    /// the cluster's data.
    /// Nothing running is not an error. Returns the components stopped;
    /// what could not be removed is logged as a warning naming it
    /// ([`LocalCluster::down_with_report`] returns it).
    pub async fn down(&self) -> Result<Vec<String>, LocalError> {
        let report = self.down_with_report().await?;
        for left in &report.left {
            tracing::warn!(cluster = %self.name, "`down` left {left}");
        }
        Ok(report.stopped)
    }

    /// [`LocalCluster::down`], with what it could not remove.
    pub async fn down_with_report(&self) -> Result<DownReport, LocalError> {
        let _users =
            kindling_core::cluster::lock::delete_cluster_lock("local", self.name.as_str()).await?;
        let _lock = self
            .lifecycle_lock(&format!("taking cluster `{}` down", self.name))
            .await?;
        let grace = Duration::from_secs(10);
        let mut stopped = Vec::new();
        let mut left = Vec::new();
        // Read before the sandboxes go: their bundles name their namespaces.
        let netns = self.sandbox_network_namespaces();
        for name in ["kube-proxy", "kubelet"] {
            if self.supervisor.stop(name, grace)? {
                stopped.push(name.to_owned());
            }
        }
        if self
            .supervisor
            .record("containerd")
            .as_ref()
            .is_some_and(Supervisor::is_running)
        {
            self.remove_pod_containers().await;
        }
        for name in COMPONENTS.iter().rev() {
            if self.supervisor.stop(name, grace)? {
                stopped.push((*name).to_owned());
            }
        }
        stopped.extend(self.stop_unrecorded(grace)?);
        self.kill_leftover_shims();
        left.extend(host::give_back(&self.layout, &self.network, &netns));
        // The next `up` is a new cluster (as after `kind delete`): no stale
        // objects or statuses. Certificates and the image store are kept.
        // The volumes of a cluster that no longer exists go too.
        for dir in [
            self.layout.run.clone(),
            self.layout.etcd_data(),
            self.layout.kubelet_root(),
            self.layout.volumes(),
        ] {
            if !self.layout.owns(&dir) {
                left.push(format!(
                    "`{}` (not inside the cluster's own folders: left alone)",
                    dir.display()
                ));
                continue;
            }
            match std::fs::remove_dir_all(&dir) {
                Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                    left.push(format!("`{}` ({error})", dir.display()));
                }
                _ => {}
            }
        }
        Ok(DownReport { stopped, left })
    }

    /// The network namespaces of this cluster's pod sandboxes, as the OCI
    /// bundles in its containerd's state name them (the CRI plugin makes
    /// them under `/var/run/netns`): the only ones `down` removes.
    fn sandbox_network_namespaces(&self) -> Vec<PathBuf> {
        let tasks = self
            .layout
            .containerd_state()
            .join("io.containerd.runtime.v2.task/k8s.io");
        let Ok(bundles) = std::fs::read_dir(tasks) else {
            return Vec::new();
        };
        let mut found: Vec<PathBuf> = bundles
            .flatten()
            .filter_map(|bundle| {
                let spec: serde_json::Value =
                    serde_json::from_slice(&std::fs::read(bundle.path().join("config.json")).ok()?)
                        .ok()?;
                spec["linux"]["namespaces"]
                    .as_array()?
                    .iter()
                    .find(|namespace| namespace["type"] == "network")?["path"]
                    .as_str()
                    .map(PathBuf::from)
            })
            .collect();
        found.sort();
        found.dedup();
        found
    }

    /// Stops this cluster's components that run without a record (their
    /// recording process was killed during `up`): processes of the
    /// component binaries whose command line names this cluster's state
    /// directory. SIGTERM, then SIGKILL after `grace`. Returns what it stopped.
    pub(super) fn stop_unrecorded(&self, grace: Duration) -> Result<Vec<String>, LocalError> {
        let mut programs: Vec<(String, PathBuf)> =
            kindling_core::cluster::components::KUBERNETES_BINARIES
                .iter()
                .map(|name| ((*name).to_owned(), self.binaries.kubernetes(name)))
                .collect();
        programs.push(("etcd".to_owned(), self.binaries.etcd.clone()));
        programs.push(("containerd".to_owned(), self.containerd.clone()));
        let dirs = [self.layout.root.clone(), self.layout.run.clone()];
        let mut stopped = Vec::new();
        for (component, pid) in super::process::unrecorded(&programs, &dirs) {
            if !super::process::terminate(pid, grace) {
                return Err(LocalError::Unstoppable {
                    cluster: self.name.to_string(),
                    component,
                    pid,
                });
            }
            eprintln!(
                "kindling: stopped {component} (pid {pid}) of cluster `{}`, left running without a record",
                self.name
            );
            stopped.push(format!("{component} (unrecorded)"));
        }
        Ok(stopped)
    }

    /// containerd 1.6 shims outlive a containerd that stops before its
    /// tasks: find ours by the socket they were started for.
    fn kill_leftover_shims(&self) {
        for pid in self.shim_processes() {
            if let Some(pid) = rustix::process::Pid::from_raw(pid as i32) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            }
        }
    }

    /// Kills and deletes every container of the CRI namespace, so no shim outlives containerd.
    async fn remove_pod_containers(&self) {
        let store_ctr = |args: &[&str]| {
            let mut command = tokio::process::Command::new(&self.ctr);
            command
                .arg("--address")
                .arg(self.layout.containerd_socket())
                .arg("--namespace=k8s.io")
                .args(args);
            command
        };
        let Ok(listed) = store_ctr(&["tasks", "ls", "-q"]).output().await else {
            return;
        };
        for task in String::from_utf8_lossy(&listed.stdout).split_whitespace() {
            let _ = store_ctr(&["tasks", "kill", "-s", "SIGKILL", task])
                .output()
                .await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        for task in String::from_utf8_lossy(&listed.stdout).split_whitespace() {
            let _ = store_ctr(&["tasks", "delete", "-f", task]).output().await;
        }
        if let Ok(containers) = store_ctr(&["containers", "ls", "-q"]).output().await {
            for container in String::from_utf8_lossy(&containers.stdout).split_whitespace() {
                let _ = store_ctr(&["containers", "delete", container])
                    .output()
                    .await;
            }
        }
    }
}
