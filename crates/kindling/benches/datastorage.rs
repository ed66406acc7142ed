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
//!   time and whether the database pod was kept. Target at most the build
//!   time + 5 s.
//!
//! Needs what the local provider needs; leaves the cluster up and the
//! sources as they were. Run with `cargo bench -p kindling --bench datastorage`.

#[path = "../tests/support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Instant;

use bollard::query_parameters::{ListImagesOptions, RemoveImageOptions};
use k8s_openapi::api::core::v1::Pod;
use kindling::BoxError;
use kindling::cluster::Provider as _;
use kindling::cluster::local::cluster::LocalCluster;
use kindling::image::{Builder, ImageSpec};
use kube::api::Api;
use support::{clean_command, fixture_target_dir, workspace_root};

/// The suite's test binary, built into the fixture target directory.
fn suite_binary() -> Result<PathBuf, BoxError> {
    let output = clean_command(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()))
        .current_dir(workspace_root())
        .args([
            "test",
            "--no-run",
            "--message-format=json",
            "-p",
            "e2e-datastorage",
        ])
        .env("CARGO_TARGET_DIR", fixture_target_dir())
        .stderr(Stdio::inherit())
        .output()?;
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find_map(|message| {
            (message["target"]["name"] == "datastorage")
                .then(|| message["executable"].as_str().map(PathBuf::from))
                .flatten()
        })
        .ok_or_else(|| "cargo built no datastorage suite".into())
}

/// One run of one test of the suite with its state in `state`: seconds.
fn run_one(binary: &Path, state: &Path) -> Result<f64, BoxError> {
    let started = Instant::now();
    let output = clean_command(binary)
        .current_dir(workspace_root().join("e2e/datastorage"))
        .args(["--exact", "events::writes_and_reads_one_event"])
        .env("KINDLING_STATE_DIR", state)
        .env("KINDLING_PROGRESS", "none")
        .output()?;
    let seconds = started.elapsed().as_secs_f64();
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() || !stdout.contains("1 passed") {
        return Err(format!(
            "the suite did not pass its test:\n{stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    Ok(seconds)
}

fn recorded(state: &Path) -> Result<serde_json::Value, BoxError> {
    Ok(serde_json::from_str(&std::fs::read_to_string(
        state.join("datastorage.json"),
    )?)?)
}

fn setup_seconds(state: &Path) -> Result<f64, BoxError> {
    let record = recorded(state)?;
    let at = |key: &str| -> Result<chrono::DateTime<chrono::FixedOffset>, BoxError> {
        Ok(chrono::DateTime::parse_from_rfc3339(
            record[key].as_str().ok_or("no time recorded")?,
        )?)
    };
    Ok((at("finished_at")? - at("started_at")?).as_seconds_f64())
}

fn phase(state: &Path, name: &str) -> f64 {
    recorded(state)
        .ok()
        .and_then(|record| {
            record["phases"]
                .as_array()?
                .iter()
                .filter(|phase| phase["name"] == name)
                .filter_map(|phase| phase["seconds"].as_f64())
                .reduce(f64::max)
        })
        .unwrap_or_default()
}

async fn remove_images(
    docker: &bollard::Docker,
    repository: &str,
) -> Result<Vec<String>, BoxError> {
    let images = docker
        .list_images(Some(ListImagesOptions {
            all: true,
            ..Default::default()
        }))
        .await?;
    let mut removed = Vec::new();
    for image in images {
        for tag in image
            .repo_tags
            .iter()
            .filter(|tag| tag.starts_with(&format!("{repository}:")))
        {
            docker
                .remove_image(
                    tag,
                    Some(RemoveImageOptions {
                        force: true,
                        ..Default::default()
                    }),
                    None,
                )
                .await?;
            removed.push(tag.clone());
        }
    }
    Ok(removed)
}

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
    let cluster = LocalCluster::with_defaults("kindling");
    if let Err(reason) = cluster.requirement().check() {
        println!("bench: skipped, {reason}");
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let binary = suite_binary()?;
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
        let store = cluster.node_store();
        let held: Vec<String> = store
            .list()
            .await?
            .into_iter()
            .map(|image| image.reference)
            .filter(|reference| {
                ["postgres", "redis", "datastorage"]
                    .iter()
                    .any(|name| reference.starts_with(&format!("localhost/kindling/{name}:")))
            })
            .collect();
        let held: Vec<&str> = held.iter().map(String::as_str).collect();
        store.remove(&held).await?;
        remove_images(&docker, "localhost/kindling/datastorage").await?;
        Ok::<_, BoxError>(())
    })?;

    let state = tempfile::tempdir()?;
    run_one(&binary, state.path())?;
    println!(
        "bench: datastorage_cold_setup_s = {:.1} s (target 45; build {:.1} s, images {:.1} s, database {:.1} s, migrations {:.1} s, service {:.1} s)",
        setup_seconds(state.path())?,
        phase(state.path(), "build"),
        phase(state.path(), "images"),
        phase(state.path(), "database"),
        phase(state.path(), "migrations"),
        phase(state.path(), "service"),
    );
    let warm = run_one(&binary, state.path())?;
    println!(
        "bench: datastorage_warm_rerun_s = {warm:.2} s (one test, process start to exit; target 2)"
    );

    let namespace = recorded(state.path())?["environment"]["namespace"]
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
    std::fs::write(
        &main,
        [
            restore.contents.as_slice(),
            b"\n// changed by the datastorage bench\n",
        ]
        .concat(),
    )?;
    let changed = run_one(&binary, state.path())?;
    drop(restore);
    let kept = postgres_uid()? == before;
    println!(
        "bench: datastorage_changed_service_rerun_s = {changed:.2} s (service build {:.2} s, target build + 5 s; migrations {:.2} s, service rollout {:.2} s; database pod kept: {kept})",
        phase(state.path(), "build"),
        phase(state.path(), "migrations"),
        phase(state.path(), "service"),
    );
    // Back to the sources as they are, for whoever runs next.
    run_one(&binary, state.path())?;
    Ok(())
}
