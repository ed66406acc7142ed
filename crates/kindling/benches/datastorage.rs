//! The DataStorage suite's setup on the local cluster, printed as
//! `bench: <metric> = <value> <unit>`:
//!
//! - `third_party_images_first_build_s`: making the Debian base, PostgreSQL
//!   and Redis images from nothing (what a machine without a registry does
//!   once instead of `docker pull`).
//! - `datastorage_cold_setup_s`: the cluster up, PostgreSQL and Redis in
//!   the local engine but not in the node, the service not built: the
//!   suite's setup from start to ready. Target at most 45 s on two cores
//!   (the infrastructure kindling replaces took 3.6 minutes).
//! - `datastorage_warm_rerun_s`: the suite's binary run again for one test,
//!   nothing changed, start to exit. Target at most 2 s.
//! - `datastorage_changed_service_rerun_s`: one source file of the service
//!   changed: the run of one test, start to exit, with the service's build
//!   time and whether the database pod was kept; the median of three
//!   changes by the time over the build. Target at most the build time +
//!   5 s.
//!
//! Needs what the local provider needs; leaves the cluster up and the
//! sources as they were. Run with `cargo bench -p kindling --bench datastorage`.

#[path = "../tests/support/mod.rs"]
mod support;

mod common;

use std::path::PathBuf;
use std::time::Instant;

use common::{SuiteUnderBench, remove_from_node, remove_images};
use k8s_openapi::api::core::v1::Pod;
use kindling::BoxError;
use kindling::cluster::Provider as _;
use kindling::image::{Builder, ImageSpec};
use kube::api::Api;
use support::workspace_root;

/// Puts a file back as it was, also when the bench fails half way.
struct Restore {
    path: PathBuf,
    contents: Vec<u8>,
}

impl Drop for Restore {
    fn drop(&mut self) {
        let _ = std::fs::write(&self.path, &self.contents);
    }
}

fn main() -> Result<(), BoxError> {
    let cluster = support::local_cluster("kindling");
    if let Err(reason) = cluster.requirement().check() {
        println!("bench: skipped, {reason}");
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let suite = SuiteUnderBench::build(support::bench_targets::DATASTORAGE_ONE_EVENT)?;
    let fixtures = workspace_root().join("fixtures");
    runtime.block_on(async {
        cluster.up().await?;
        let docker = kindling::docker::connect().await?;
        for repository in ["debian", "postgres", "redis"] {
            remove_images(&docker, &format!("localhost/kindling/{repository}")).await?;
        }
        let started = Instant::now();
        Builder::new(docker.clone())
            .build_all(&[
                ImageSpec::debian("debian", "bookworm"),
                ImageSpec::new("postgres", fixtures.join("postgres")),
                ImageSpec::new("redis", fixtures.join("redis")),
            ])
            .await?;
        println!(
            "bench: third_party_images_first_build_s = {:.1} s (Debian base by mmdebstrap, PostgreSQL 15 and Redis 7 from Debian's packages)",
            started.elapsed().as_secs_f64()
        );
        // In the engine (as after a pull), not in the node; the service not built.
        remove_from_node(&cluster, &["postgres", "redis", "datastorage"]).await?;
        remove_images(&docker, "localhost/kindling/datastorage").await?;
        Ok::<_, BoxError>(())
    })?;

    let state = tempfile::tempdir()?;
    suite.run_one(state.path())?;
    println!(
        "bench: datastorage_cold_setup_s = {:.1} s (target 45; build {:.1} s, images {:.1} s, database {:.1} s, migrations {:.1} s, service {:.1} s)",
        suite.setup_seconds(state.path())?,
        suite.phase(state.path(), "build"),
        suite.phase(state.path(), "images"),
        suite.phase(state.path(), "database"),
        suite.phase(state.path(), "migrations"),
        suite.phase(state.path(), "datastorage"),
    );
    let warm = suite.run_one(state.path())?;
    println!(
        "bench: datastorage_warm_rerun_s = {warm:.2} s (one test, process start to exit; target 2)"
    );

    let namespace = suite.recorded(state.path())?["environment"]["namespace"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let postgres_uid = || -> Result<Option<String>, BoxError> {
        runtime.block_on(async {
            let client = cluster.admin_client().await?;
            Ok(Api::<Pod>::namespaced(client, &namespace)
                .get("postgres-0")
                .await?
                .metadata
                .uid)
        })
    };
    let before = postgres_uid()?;
    let main = fixtures.join("datastorage/main.go");
    let restore = Restore {
        contents: std::fs::read(&main)?,
        path: main.clone(),
    };
    // Three changes, each a new build: the rerun's waits end at kubelet
    // ticks (a container's start and exit are seen within 1 s, a
    // readiness probe every 1 s), so one figure alone is mostly luck.
    let mut runs = Vec::new();
    for change in 1..=3 {
        std::fs::write(
            &main,
            [
                restore.contents.as_slice(),
                format!("\n// changed by the datastorage bench ({change})\n").as_bytes(),
            ]
            .concat(),
        )?;
        let seconds = suite.run_one(state.path())?;
        let build = suite.phase(state.path(), "build");
        println!(
            "datastorage: changed service rerun {change}: {seconds:.2} s (build {build:.2} s, images {:.2} s, migrations {:.2} s, rollout {:.2} s, {:.2} s over the build)",
            suite.phase(state.path(), "images"),
            suite.phase(state.path(), "migrations"),
            suite.phase(state.path(), "datastorage"),
            seconds - build,
        );
        runs.push((seconds, build));
    }
    drop(restore);
    let kept = postgres_uid()? == before;
    runs.sort_by(|a, b| (a.0 - a.1).total_cmp(&(b.0 - b.1)));
    let (changed, build) = runs[runs.len() / 2];
    println!(
        "bench: datastorage_changed_service_rerun_s = {changed:.2} s (the median of 3 by time over the build; service build {build:.2} s, target build + 5 s: {:.2} s over it; database pod kept: {kept})",
        changed - build,
    );
    // Back to the sources as they are, for whoever runs next.
    suite.run_one(state.path())?;
    Ok(())
}
