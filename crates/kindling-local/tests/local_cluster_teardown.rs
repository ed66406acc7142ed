//! `down` leaves nothing behind, a taken port fails `up` naming it, `up`
//! from the component cache builds nothing, and a controller that exited
//! is started again by the next `up` without restarting the cluster. Runs after the
//! `local_cluster` suite (one test group in .config/nextest.toml).
//!
//! Without what the local provider needs the test is reported as ignored,
//! and fails when `CI` is set.

#[path = "../../kindling/tests/support/mod.rs"]
mod support;

use std::net::TcpListener;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime};

use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{Api, DeleteParams, PostParams};
use rustix::process::{Pid, Signal, kill_process};

use kindling::cluster::Provider as _;
use kindling::cluster::local::process::Supervisor;
use kindling::cluster::local::{LocalCluster, LocalError, RESTART_LIMIT};
use kindling::{BoxError, Suite};
use support::ensure;

type Outcome = Result<(), BoxError>;

fn binary_times(cluster: &LocalCluster) -> Vec<(String, SystemTime)> {
    let mut paths: Vec<std::path::PathBuf> = [
        "kube-apiserver",
        "kubelet",
        "kube-proxy",
        "kube-scheduler",
        "kube-controller-manager",
    ]
    .iter()
    .map(|name| cluster.binaries().kubernetes_dir.join(name))
    .collect();
    paths.extend([
        cluster.binaries().etcd.clone(),
        cluster.binaries().coredns.clone(),
    ]);
    paths
        .into_iter()
        .filter_map(|path| {
            Some((
                path.display().to_string(),
                std::fs::metadata(&path).ok()?.modified().ok()?,
            ))
        })
        .collect()
}

fn leftovers(
    cluster: &LocalCluster,
    pids: &[kindling::cluster::local::process::ProcessRecord],
) -> Vec<String> {
    let mut found = Vec::new();
    for record in pids.iter().filter(|record| Supervisor::is_running(record)) {
        found.push(format!("{} (pid {}) still runs", record.name, record.pid));
    }
    for (component, port) in cluster.ports().all() {
        if TcpListener::bind(("0.0.0.0", port)).is_err() {
            found.push(format!("port {port} ({component}) is still taken"));
        }
    }
    for pid in cluster.shim_processes() {
        found.push(format!("a containerd shim (pid {pid}) still runs"));
    }
    if let Ok(entries) = std::fs::read_dir("/run/netns") {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("cni-") {
                found.push(format!("pod network namespace {name} remains"));
            }
        }
    }
    for family in ["iptables-save", "ip6tables-save"] {
        let saved = std::process::Command::new(family)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
        let chains: Vec<String> = saved
            .unwrap_or_default()
            .lines()
            .filter(|line| line.starts_with(":KUBE-") || line.starts_with(":CNI-"))
            .map(str::to_owned)
            .collect();
        if !chains.is_empty() {
            found.push(format!("{family} still has {chains:?}"));
        }
    }
    found
}

/// Kills kube-controller-manager, and checks the next `up` starts it again
/// (and only it) and that it works: its service-account controller gives a
/// new namespace its `default` ServiceAccount.
#[kindling::test]
async fn a_killed_controller_is_restarted_by_the_next_up() -> Outcome {
    let _turn = support::cluster_turn();
    let cluster = &support::local_cluster("kindling");
    cluster.up().await.map_err(|error| format!("up: {error}"))?;
    let record = |name: &str| {
        cluster
            .recorded_processes()
            .into_iter()
            .find(|record| record.name == name)
            .ok_or_else(|| format!("{name} is not recorded"))
    };
    if record("kube-controller-manager")?.restarts >= RESTART_LIMIT {
        // Left by earlier runs of this test: a fresh start resets the count.
        cluster.down().await?;
        cluster.up().await?;
    }
    let killed = record("kube-controller-manager")?;
    let apiserver = record("kube-apiserver")?;
    let pid = Pid::from_raw(killed.pid as i32).ok_or("a recorded pid of 0")?;
    kill_process(pid, Signal::KILL)?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while Supervisor::is_running(&killed) {
        ensure(Instant::now() < deadline, || {
            "kube-controller-manager outlived SIGKILL".to_owned()
        })?;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let phases = cluster
        .up()
        .await
        .map_err(|error| format!("up after the kill: {error}"))?;
    let names: Vec<&str> = phases.iter().map(|(name, _)| name.as_str()).collect();
    ensure(names == ["restarted kube-controller-manager"], || {
        format!("up after killing kube-controller-manager did {names:?}")
    })?;
    let restarted = record("kube-controller-manager")?;
    ensure(
        Supervisor::is_running(&restarted)
            && restarted.pid != killed.pid
            && restarted.restarts == killed.restarts + 1,
        || format!("after up: {restarted:?}"),
    )?;
    ensure(record("kube-apiserver")? == apiserver, || {
        "up restarted the API server too".to_owned()
    })?;

    let client = cluster.admin_client().await?;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let name = format!("restart-probe-{}", std::process::id());
    let namespace: Namespace = serde_json::from_value(serde_json::json!({
        "metadata": { "name": name }
    }))?;
    namespaces
        .create(&PostParams::default(), &namespace)
        .await?;
    let accounts: Api<ServiceAccount> = Api::namespaced(client, &name);
    let deadline = Instant::now() + Duration::from_secs(60);
    while accounts.get_opt("default").await?.is_none() {
        ensure(Instant::now() < deadline, || {
            format!(
                "the restarted kube-controller-manager gave namespace `{name}` no `default` ServiceAccount in 60s"
            )
        })?;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    namespaces.delete(&name, &DeleteParams::default()).await?;
    Ok(())
}

#[kindling::test]
async fn down_leaves_nothing_and_up_reuses_the_cache() -> Outcome {
    let _turn = support::cluster_turn();
    let cluster = support::local_cluster("kindling");
    {
        cluster.up().await.map_err(|error| format!("up: {error}"))?;
        let started = cluster.recorded_processes();
        ensure(started.len() == 7, || {
            format!("{} components recorded", started.len())
        })?;
        let stopped = cluster
            .down()
            .await
            .map_err(|error| format!("down: {error}"))?;
        ensure(stopped.len() == 7, || {
            format!("down stopped only {stopped:?}")
        })?;
        let left = leftovers(&cluster, &started);
        ensure(left.is_empty(), || format!("down left: {left:#?}"))?;
        match cluster.healthy().await {
            Err(error @ LocalError::NotRunning { .. }) => ensure(
                error
                    .to_string()
                    .contains("`etcd` of this cluster is not running")
                    && error.to_string().contains("kindling up"),
                || error.to_string(),
            )?,
            other => return Err(format!("healthy after down gave {other:?}").into()),
        }
        let again = cluster
            .down()
            .await
            .map_err(|error| format!("a second down: {error}"))?;
        ensure(again.is_empty(), || {
            format!("a second down stopped {again:?}")
        })?;

        let scheduler_port = cluster.ports().scheduler;
        let taken = TcpListener::bind(("0.0.0.0", scheduler_port))?;
        let refused = cluster.up().await;
        drop(taken);
        match refused {
            Err(LocalError::PortInUse(error)) => ensure(
                error.port == scheduler_port
                    && error
                        .to_string()
                        .contains(&format!("port {scheduler_port}")),
                || error.to_string(),
            )?,
            other => {
                return Err(format!("up with port {scheduler_port} taken gave {other:?}").into());
            }
        }
        let left = leftovers(&cluster, &[]);
        ensure(left.is_empty(), || format!("a refused up left: {left:#?}"))?;

        let before = binary_times(&cluster);
        let timer = Instant::now();
        let phases = cluster
            .up()
            .await
            .map_err(|error| format!("up from the cache: {error}"))?;
        let seconds = timer.elapsed().as_secs_f64();
        ensure(binary_times(&cluster) == before, || {
            "up rebuilt a component".to_owned()
        })?;
        eprintln!("up from the component cache took {seconds:.1}s: {phases:?}");
        cluster
            .down()
            .await
            .map_err(|error| format!("final down: {error}"))?;
        Ok(())
    }
}

fn main() -> ExitCode {
    Suite::new()
        .requires(support::local_cluster("kindling").requirement())
        .run()
}
