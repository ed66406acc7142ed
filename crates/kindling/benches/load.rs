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
//! Then the same on a real two-node Kind cluster made from kindling's node
//! image (containerd 2.x, kubelet), where a fresh cluster per round would
//! cost 45 s: each round loads images no node holds yet, the tools taking
//! turns with images of the same size:
//! `load_cold_ratio_vs_kind_load_real_nodes` (200 MB),
//! `load_one_layer_changed_ratio_vs_kind_load_real_nodes` (a 5 MB top layer
//! changed on a held 195 MB base) and `load_present_ms_real_nodes`.
//!
//! Run with `cargo bench -p kindling --bench load` (needs a Docker engine
//! and the pinned kind: `bash fixtures/kind/build.sh`; the real-node part
//! kindling's node image: `kindling prepare --provider kind`); `-- kind-like`
//! or `-- real-nodes` runs one part.

#[path = "../tests/support/mod.rs"]
mod support;

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use bollard::Docker;
use kindling::BoxError;
use kindling::cluster::Provider as _;
use kindling::cluster::kind::{KindCluster, node_image};
use kindling::cluster::local::ComponentBinaries;
use support::kind_like::{
    KindLikeCluster, data_image, kind_wrapper, layered_image, pinned_kind,
    remove_cluster_containers,
};
use support::median;

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

/// [`kindling_load`] with kindling's state in `state_home`.
fn kindling_load_with_state(cluster: &str, images: &[&str], state_home: &Path) -> Command {
    let mut command = kindling_load(cluster, images);
    command.env("KINDLING_HOME", state_home);
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
    let part = std::env::args().skip(1).find(|arg| !arg.starts_with('-'));
    let scratch = tempfile::tempdir()?;
    let home = scratch.path().join("home");
    std::fs::create_dir_all(&home)?;
    let kind = kind_wrapper(scratch.path(), &home, &scratch.path().join("kubeconfig"))?;
    if part.as_deref() != Some("real-nodes") {
        kind_like_nodes(&docker, scratch.path(), &kind).await?;
    }
    if part.as_deref() != Some("kind-like") {
        real_nodes(&docker, scratch.path(), &kind).await?;
    }
    Ok(())
}

/// The figures on fresh kind-like clusters.
async fn kind_like_nodes(docker: &Docker, scratch: &Path, kind: &Path) -> Result<(), BoxError> {
    let mut bench = Bench {
        docker: docker.clone(),
        kind: kind.to_owned(),
        round: 0,
    };
    let tag = std::process::id();

    for (megabytes, rounds) in [(50, 3), (500, 3)] {
        let reference = format!("localhost/load-bench:cold{megabytes}-{tag}");
        data_image(
            docker,
            &scratch.join(format!("cold{megabytes}")),
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
    data_image(docker, &scratch.join("base"), 7, 195, &base).await?;
    let previous = format!("localhost/load-bench:v1-{tag}");
    let changed = format!("localhost/load-bench:v2-{tag}");
    layered_image(docker, &scratch.join("v1"), &base, 8, 5, &previous).await?;
    layered_image(docker, &scratch.join("v2"), &base, 9, 5, &changed).await?;

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

/// Removes a real cluster's node containers when dropped.
struct RemoveNodes(String);

impl Drop for RemoveNodes {
    fn drop(&mut self) {
        remove_cluster_containers(&self.0);
    }
}

/// The figures on a real two-node Kind cluster from kindling's node image.
async fn real_nodes(docker: &Docker, scratch: &Path, kind: &Path) -> Result<(), BoxError> {
    let reference = node_image::reference();
    if docker.inspect_image(&reference).await.is_err() {
        println!(
            "bench: real nodes skipped, the engine has no `{reference}`: run `kindling prepare --provider kind`"
        );
        return Ok(());
    }
    let name = format!("kb-real-{}", std::process::id());
    let _remove = RemoveNodes(name.clone());
    let state_home = scratch.join("real-state");
    let config = scratch.join("two-nodes.yaml");
    std::fs::write(
        &config,
        "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n- role: control-plane\n- role: worker\n",
    )?;
    let cluster = KindCluster::new(
        &name.parse()?,
        &state_home,
        &ComponentBinaries::default_cache(),
    )
    .binary(pinned_kind())
    .config_file(&config);
    cluster.ensure().await?;
    let ours = |images: &[&str]| kindling_load_with_state(&name, images, &state_home);
    let theirs = |images: &[&str]| kind_load(kind, &name, images);
    let tag = std::process::id();

    let (mut cold_ours, mut cold_theirs) = (Vec::new(), Vec::new());
    for round in 0..3u64 {
        let mine = format!("localhost/load-real:cold-k{round}-{tag}");
        let kinds = format!("localhost/load-real:cold-d{round}-{tag}");
        data_image(
            docker,
            &scratch.join(format!("real-k{round}")),
            40 + round,
            200,
            &mine,
        )
        .await?;
        data_image(
            docker,
            &scratch.join(format!("real-d{round}")),
            50 + round,
            200,
            &kinds,
        )
        .await?;
        cold_ours.push(timed(ours(&[&mine]), "kindling load")?);
        cold_theirs.push(timed(theirs(&[&kinds]), "kind load")?);
    }
    eprintln!("cold loads into real nodes: kindling {cold_ours:.2?} s, kind {cold_theirs:.2?} s");
    let (cold_ours, cold_theirs) = (median(cold_ours), median(cold_theirs));
    println!(
        "bench: load_cold_ratio_vs_kind_load_real_nodes = {:.2} (200 MB into two real nodes; kindling load {cold_ours:.2} s, kind load {cold_theirs:.2} s; target <= 1.0)",
        cold_ours / cold_theirs
    );

    let (mut changed_ours, mut changed_theirs, mut present, mut kind_present) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (tool, seed) in [("k", 60u64), ("d", 70)] {
        let base = format!("localhost/load-real:base-{tool}-{tag}");
        data_image(
            docker,
            &scratch.join(format!("real-base-{tool}")),
            seed,
            195,
            &base,
        )
        .await?;
        let previous = format!("localhost/load-real:top-{tool}0-{tag}");
        layered_image(
            docker,
            &scratch.join(format!("real-{tool}-top0")),
            &base,
            seed + 1,
            5,
            &previous,
        )
        .await?;
        if tool == "k" {
            timed(ours(&[&previous]), "kindling load")?;
        } else {
            timed(theirs(&[&previous]), "kind load")?;
        }
        for round in 1..=3u64 {
            let changed = format!("localhost/load-real:top-{tool}{round}-{tag}");
            layered_image(
                docker,
                &scratch.join(format!("real-{tool}-top{round}")),
                &base,
                seed + 1 + round,
                5,
                &changed,
            )
            .await?;
            if tool == "k" {
                changed_ours.push(timed(ours(&[&changed]), "kindling load")?);
                present.push(timed(ours(&[&changed]), "kindling load")?);
            } else {
                changed_theirs.push(timed(theirs(&[&changed]), "kind load")?);
                kind_present.push(timed(theirs(&[&changed]), "kind load")?);
            }
        }
    }
    eprintln!(
        "one changed layer into real nodes: kindling {changed_ours:.2?} s, kind {changed_theirs:.2?} s"
    );
    let (changed_ours, changed_theirs) = (median(changed_ours), median(changed_theirs));
    println!(
        "bench: load_one_layer_changed_ratio_vs_kind_load_real_nodes = {:.3} (kindling load {changed_ours:.2} s, kind load {changed_theirs:.2} s; target <= 0.1)",
        changed_ours / changed_theirs
    );
    println!(
        "bench: load_present_ms_real_nodes = {:.0} ms (median of 3; kind load {:.0} ms on these nodes; target <= 150)",
        median(present) * 1000.0,
        median(kind_present) * 1000.0
    );
    cluster.delete_cluster().await?;
    Ok(())
}
