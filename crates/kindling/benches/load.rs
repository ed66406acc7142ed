//! `kindling load` against the real pinned `kind load docker-image`, in one
//! run, on the same machine, into fresh kind-like two-node clusters (real
//! containerd in node containers found by kind's labels), each tool as a
//! process from start to exit. Printed as `bench: <metric> = <value>`:
//!
//! - `load_cold_ratio_vs_kind_load_<size>mb`: nodes that hold nothing, a
//!   50 MB and a 500 MB image (median of rounds);
//! - `load_one_layer_changed_ratio_vs_kind_load`: a 200 MB image whose top
//!   5 MB layer changed, into nodes that hold the previous version
//!   (median of 3 rounds);
//! - `load_present_ms`: every image already present.
//!
//! Run with `cargo bench -p kindling --bench load` (needs a Docker engine
//! and the pinned kind: `bash fixtures/kind/build.sh`).

#[path = "../tests/support/mod.rs"]
mod support;

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use bollard::Docker;
use kindling::BoxError;
use support::kind_like::{KindLikeCluster, data_image, kind_wrapper, layered_image, pinned_kind};

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

/// Runs `command` to success and returns its seconds.
fn timed(mut command: Command, what: &str) -> Result<f64, BoxError> {
    let started = Instant::now();
    let output = command.output()?;
    let seconds = started.elapsed().as_secs_f64();
    if !output.status.success() {
        return Err(format!(
            "{what} failed:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    Ok(seconds)
}

/// The `kindling` CLI built with optimisations, as `cargo install` builds it.
fn release_cli() -> &'static std::path::PathBuf {
    static BINARY: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    BINARY.get_or_init(|| {
        support::cargo_executable(&["build", "--release", "-p", "kindling-cli"], "kindling")
            .unwrap_or_else(|error| panic!("building the kindling CLI failed: {error}"))
    })
}

fn kindling_load(cluster: &str, images: &[&str]) -> Command {
    let mut command = support::clean_command(release_cli());
    command
        .args(["load", "--provider", "kind", "--cluster", cluster])
        .args(images);
    command
}

fn kind_load(kind: &Path, cluster: &str, images: &[&str]) -> Command {
    let mut command = Command::new(kind);
    command
        .args(["load", "docker-image", "--name", cluster])
        .args(images);
    command
}

struct Bench {
    docker: Docker,
    kind: std::path::PathBuf,
    round: usize,
}

impl Bench {
    async fn fresh_cluster(&mut self) -> Result<KindLikeCluster, BoxError> {
        self.round += 1;
        let name = format!("kb-load{}-{}", self.round, std::process::id());
        KindLikeCluster::start(&self.docker, &name, 1).await
    }

    /// Medians of `rounds` cold loads of `reference` by each tool.
    async fn cold(&mut self, reference: &str, rounds: usize) -> Result<(f64, f64), BoxError> {
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            let cluster = self.fresh_cluster().await?;
            ours.push(timed(
                kindling_load(&cluster.name, &[reference]),
                "kindling load",
            )?);
            drop(cluster);
            let cluster = self.fresh_cluster().await?;
            theirs.push(timed(
                kind_load(&self.kind, &cluster.name, &[reference]),
                "kind load",
            )?);
            drop(cluster);
        }
        eprintln!("cold loads of {reference}: kindling {ours:.2?} s, kind {theirs:.2?} s");
        Ok((median(ours), median(theirs)))
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let docker = match kindling::docker::connect().await {
        Ok(docker) => docker,
        Err(error) => {
            println!("bench: skipped, {error}");
            return Ok(());
        }
    };
    if !pinned_kind().is_file() {
        println!("bench: skipped, no pinned kind: run `bash fixtures/kind/build.sh`");
        return Ok(());
    }
    let scratch = tempfile::tempdir()?;
    let home = scratch.path().join("home");
    std::fs::create_dir_all(&home)?;
    let kind = kind_wrapper(scratch.path(), &home, &scratch.path().join("kubeconfig"))?;
    let mut bench = Bench {
        docker: docker.clone(),
        kind,
        round: 0,
    };
    let tag = std::process::id();

    for (megabytes, rounds) in [(50, 3), (500, 3)] {
        let reference = format!("localhost/load-bench:cold{megabytes}-{tag}");
        data_image(
            &docker,
            &scratch.path().join(format!("cold{megabytes}")),
            megabytes as u64,
            megabytes,
            &reference,
        )
        .await?;
        let (ours, theirs) = bench.cold(&reference, rounds).await?;
        println!(
            "bench: load_cold_ratio_vs_kind_load_{megabytes}mb = {:.2} (kindling load {ours:.2} s, kind load {theirs:.2} s; target <= 1.0)",
            ours / theirs
        );
    }

    let base = format!("localhost/load-bench:base-{tag}");
    data_image(&docker, &scratch.path().join("base"), 7, 195, &base).await?;
    let previous = format!("localhost/load-bench:v1-{tag}");
    let changed = format!("localhost/load-bench:v2-{tag}");
    layered_image(&docker, &scratch.path().join("v1"), &base, 8, 5, &previous).await?;
    layered_image(&docker, &scratch.path().join("v2"), &base, 9, 5, &changed).await?;

    let (mut ours, mut theirs, mut present, mut kind_present) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..3 {
        let cluster = bench.fresh_cluster().await?;
        timed(kindling_load(&cluster.name, &[&previous]), "kindling load")?;
        ours.push(timed(
            kindling_load(&cluster.name, &[&changed]),
            "kindling load",
        )?);
        for _ in 0..3 {
            present.push(timed(
                kindling_load(&cluster.name, &[&changed]),
                "kindling load",
            )?);
        }
        drop(cluster);
        let cluster = bench.fresh_cluster().await?;
        timed(
            kind_load(&bench.kind, &cluster.name, &[&previous]),
            "kind load",
        )?;
        theirs.push(timed(
            kind_load(&bench.kind, &cluster.name, &[&changed]),
            "kind load",
        )?);
        kind_present.push(timed(
            kind_load(&bench.kind, &cluster.name, &[&changed]),
            "kind load",
        )?);
        drop(cluster);
    }
    eprintln!("one changed layer: kindling {ours:.2?} s, kind {theirs:.2?} s");
    let (ours, theirs) = (median(ours), median(theirs));
    let kind_present = median(kind_present);
    println!(
        "bench: load_one_layer_changed_ratio_vs_kind_load = {:.3} (kindling load {ours:.2} s, kind load {theirs:.2} s; target <= 0.1)",
        ours / theirs
    );
    println!(
        "bench: load_present_ms = {:.0} ms (median of 9; kind load {:.0} ms on these nodes; target <= 150)",
        median(present) * 1000.0,
        kind_present * 1000.0
    );
    Ok(())
}
