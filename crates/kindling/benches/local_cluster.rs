//! Local cluster figures, printed as `bench: <metric> = <value> <unit>`:
//!
//! - `local_cold_build_s`: the first build of the components, as
//!   the component build (`kindling prepare`) recorded it in the cache.
//! - `local_up_s`: `up` from the component cache to a Ready node with
//!   working cluster DNS and a smoke workload answering by its Service
//!   name (target at most 30 s, about what `kind create cluster --wait` takes).
//! - `smoke_pod_ready_s`: the smoke phase of that `up`, from applying its
//!   Deployment to the probe fetching it by name.
//!
//! Needs root and the built components. Run with
//! `cargo bench -p kindling --bench local_cluster`; it leaves the cluster down.

use std::time::Instant;

use kindling::cluster::local::{ComponentBinaries, LocalCluster};

fn main() -> Result<(), kindling::BoxError> {
    let cluster = LocalCluster::with_defaults(&kindling::cluster::ClusterName::default())
        .expect("the KINDLING_LOCAL_* variables are valid");
    if let Some(reason) = cluster.missing_prerequisite() {
        println!("bench: skipped, {reason}");
        return Ok(());
    }
    let recorded =
        std::fs::read_to_string(ComponentBinaries::default_cache().join("bin/build-seconds"))
            .unwrap_or_default();
    let cold: u64 = recorded
        .lines()
        .filter_map(|line| line.rsplit_once(' ')?.1.parse::<u64>().ok())
        .sum();
    if cold > 0 {
        println!(
            "bench: local_cold_build_s = {cold} s ({})",
            recorded.lines().collect::<Vec<_>>().join(", ")
        );
    } else {
        println!(
            "bench: local_cold_build_s = not recorded (the cache was built before build.sh recorded times)"
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        cluster.down().await?;
        let started = Instant::now();
        let phases = cluster.up().await?;
        println!(
            "bench: local_up_s = {:.1} s",
            started.elapsed().as_secs_f64()
        );
        for (phase, time) in &phases {
            println!(
                "bench: local_up_phase_{}_s = {:.2} s",
                phase.replace(' ', "_"),
                time.as_secs_f64()
            );
        }
        let smoke = phases
            .iter()
            .find(|(phase, _)| phase == "smoke workload")
            .map(|(_, time)| time.as_secs_f64());
        println!(
            "bench: smoke_pod_ready_s = {:.1} s",
            smoke.unwrap_or(f64::NAN)
        );
        cluster.down().await?;
        Ok::<(), kindling::BoxError>(())
    })
}
