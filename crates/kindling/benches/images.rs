//! Image build and load figures, printed as `bench: <metric> = <value> <unit>`,
//! each ratio measured in the same run against kind's own mechanism done
//! by hand (`docker save -o <file>`, then `ctr images import` from that
//! file into each node concurrently), on kind-like node containers.
//!
//! `loader_peak_rss_mb` is the benchmark process's peak resident size while
//! it streams a 500 MB image into two nodes (reset just before the load).
//!
//! Run with `cargo bench -p kindling --bench images` (needs a Docker engine).

#[path = "../tests/support/mod.rs"]
mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use bollard::Docker;
use kindling::image::{Builder, ImageRef, ImageSpec, Loader};
use support::kind_like::{KindLikeCluster, write_data_image};
use support::median;

type BenchResult<T> = Result<T, kindling::BoxError>;

const IMAGE_MB: usize = 50;
const COLD_ROUNDS: usize = 3;

/// kind's loader, by hand: one `docker save` of every requested image into
/// a file, then `ctr import` of that file into each node at once.
fn kind_mechanism(references: &[&str], nodes: &[String], scratch: &Path) -> BenchResult<f64> {
    let started = Instant::now();
    let archive = scratch.join("images.tar");
    let saved = Command::new("docker")
        .arg("save")
        .arg("-o")
        .arg(&archive)
        .args(references)
        .status()?;
    if !saved.success() {
        return Err("docker save failed".into());
    }
    let imports: Vec<_> = nodes
        .iter()
        .map(|node| {
            Command::new("docker")
                .args([
                    "exec",
                    "-i",
                    node,
                    "ctr",
                    "--namespace=k8s.io",
                    "images",
                    "import",
                ])
                .args([
                    "--all-platforms",
                    "--digests",
                    "--snapshotter=overlayfs",
                    "-",
                ])
                .stdin(std::fs::File::open(&archive).expect("archive"))
                .stdout(Stdio::null())
                .spawn()
        })
        .collect::<Result<_, _>>()?;
    for mut import in imports {
        if !import.wait()?.success() {
            return Err("ctr import failed".into());
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    std::fs::remove_file(&archive)?;
    Ok(elapsed)
}

async fn build_images(
    docker: &Docker,
    root: &Path,
    count: usize,
    marker: &str,
) -> BenchResult<Vec<ImageRef>> {
    let specs: Vec<ImageSpec> = (0..count)
        .map(|index| {
            let context = write_data_image(
                &root.join(format!("image{index}")),
                100 + index as u64,
                IMAGE_MB,
                marker,
            )?;
            Ok(ImageSpec::new(format!("bench{index}"), context))
        })
        .collect::<std::io::Result<_>>()?;
    let built = Builder::new(docker.clone()).build_all(&specs).await?;
    Ok(built.into_iter().map(|outcome| outcome.image).collect())
}

async fn fresh_cluster(
    docker: &Docker,
    tag: &str,
) -> BenchResult<(KindLikeCluster, Vec<kindling::node::NodeStore>)> {
    let cluster =
        KindLikeCluster::start(docker, &format!("kb-{tag}-{}", std::process::id()), 1).await?;
    let stores = cluster.stores().await?;
    Ok((cluster, stores))
}

async fn cold_ratio(docker: &Docker, image: &ImageRef, scratch: &Path) -> BenchResult<f64> {
    let loader = Loader::new(docker.clone());
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for round in 0..COLD_ROUNDS {
        let (cluster, stores) = fresh_cluster(docker, &format!("cold-ours{round}")).await?;
        let started = Instant::now();
        loader.load(std::slice::from_ref(image), &stores).await?;
        ours.push(started.elapsed().as_secs_f64());
        drop(cluster);
        let (cluster, _) = fresh_cluster(docker, &format!("cold-kind{round}")).await?;
        theirs.push(kind_mechanism(
            &[image.reference().as_str()],
            &cluster.node_names,
            scratch,
        )?);
        drop(cluster);
    }
    println!(
        "bench: load_cold_s = {:.2} s (kind mechanism {:.2} s)",
        median(ours.clone()),
        median(theirs.clone())
    );
    Ok(median(ours) / median(theirs))
}

async fn one_changed_of_four_ratio(
    docker: &Docker,
    root: &Path,
    scratch: &Path,
) -> BenchResult<f64> {
    let before = build_images(docker, root, 4, "v1").await?;
    std::fs::write(root.join("image0/marker"), "v2")?;
    let mut after = before.clone();
    after[0] = Builder::new(docker.clone())
        .build(&ImageSpec::new("bench0", root.join("image0")))
        .await?
        .image;
    std::fs::write(root.join("image0/marker"), "v1")?;
    let loader = Loader::new(docker.clone());

    let (cluster, stores) = fresh_cluster(docker, "four-ours").await?;
    loader.load(&before, &stores).await?;
    let started = Instant::now();
    loader.load(&after, &stores).await?;
    let ours = started.elapsed().as_secs_f64();
    drop(cluster);

    let (cluster, stores) = fresh_cluster(docker, "four-kind").await?;
    loader.load(&before, &stores).await?;
    let references: Vec<&str> = after
        .iter()
        .map(|image| image.reference().as_str())
        .collect();
    let theirs = kind_mechanism(&references, &cluster.node_names, scratch)?;
    drop(cluster);
    println!("bench: load_one_changed_of_four_s = {ours:.2} s (kind mechanism {theirs:.2} s)");
    Ok(ours / theirs)
}

async fn warm_figures(docker: &Docker, root: &Path) -> BenchResult<(f64, f64)> {
    let images = build_images(docker, root, 4, "v1").await?;
    let specs: Vec<ImageSpec> = (0..4)
        .map(|index| ImageSpec::new(format!("bench{index}"), root.join(format!("image{index}"))))
        .collect();
    let builder = Builder::new(docker.clone());
    let mut builds = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let outcomes = builder.build_all(&specs).await?;
        assert!(
            outcomes.iter().all(|outcome| !outcome.built),
            "an unchanged image was rebuilt"
        );
        builds.push(started.elapsed().as_secs_f64() * 1e3);
    }
    let (_cluster, stores) = fresh_cluster(docker, "warm").await?;
    let loader = Loader::new(docker.clone());
    loader.load(&images, &stores).await?;
    let mut loads = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let report = loader.load(&images, &stores).await?;
        assert_eq!(report.bytes_streamed(), 0, "a warm load streamed bytes");
        loads.push(started.elapsed().as_secs_f64() * 1e3);
    }
    Ok((median(loads), median(builds)))
}

fn peak_rss_mb() -> f64 {
    support::peak_rss_mb().unwrap_or(f64::NAN)
}

async fn loader_peak_rss(docker: &Docker, root: &Path) -> BenchResult<f64> {
    let context = write_data_image(&root.join("big"), 500, 500, "v1")?;
    let image = Builder::new(docker.clone())
        .build(&ImageSpec::new("bench-big", &context))
        .await?
        .image;
    let (_cluster, stores) = fresh_cluster(docker, "rss").await?;
    let baseline = {
        support::reset_peak_rss()?;
        peak_rss_mb()
    };
    Loader::new(docker.clone())
        .load(std::slice::from_ref(&image), &stores)
        .await?;
    let peak = peak_rss_mb();
    println!(
        "bench: loader_rss_growth_mb = {:.1} MB (process size before the load: {baseline:.1} MB)",
        peak - baseline
    );
    Ok(peak)
}

fn main() -> BenchResult<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let docker = match kindling::docker::connect().await {
            Ok(docker) => docker,
            Err(error) => {
                println!("bench: skipped, {error}");
                return Ok(());
            }
        };
        let root = tempfile::tempdir()?;
        let scratch = tempfile::tempdir()?;
        let single = build_images(&docker, &root.path().join("single"), 1, "cold").await?;
        println!(
            "bench: load_cold_ratio_vs_kind_mechanism = {:.2}",
            cold_ratio(&docker, &single[0], scratch.path()).await?
        );
        println!(
            "bench: load_one_changed_of_four_ratio_vs_kind_mechanism = {:.2}",
            one_changed_of_four_ratio(&docker, &root.path().join("four"), scratch.path()).await?
        );
        let (load_warm, build_warm) = warm_figures(&docker, &root.path().join("four")).await?;
        println!("bench: load_warm_ms = {load_warm:.0} ms");
        println!("bench: build_warm_ms = {build_warm:.0} ms");
        println!(
            "bench: loader_peak_rss_mb = {:.1} MB",
            loader_peak_rss(&docker, &root.path().join("rss")).await?
        );
        Ok(())
    })
}
