//! Kind figures beside the local provider's, printed as
//! `bench: <metric> = <value> <unit>`, all from one run:
//!
//! - `kind_node_image_build_s`: kindling's Kind node image made again with
//!   its components cached (the image is removed first).
//! - `kind_create_s`: a two-node Kind cluster (control-plane and worker)
//!   from that image, to every node Ready and CoreDNS available.
//! - `local_up_s`: the local cluster's `up` from the component cache, and
//!   `kind_create_vs_local_up_ratio`.
//!
//! Needs Docker, the pinned kind (`bash fixtures/kind/build.sh`), root and
//! the local components. Run with `cargo bench -p kindling --bench kind`;
//! it leaves both clusters down.

use std::time::Instant;

use kindling::cluster::Provider as _;
use kindling::cluster::kind::{KindCluster, cli::pinned_binary, node_image};
use kindling::cluster::local::{ComponentBinaries, LocalCluster};
use kindling::cluster::{ClusterName, state_home};

const TWO_NODES: &str = "kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
nodes:
- role: control-plane
- role: worker
";

fn main() -> Result<(), kindling::BoxError> {
    let cache = ComponentBinaries::default_cache();
    let kind = pinned_binary(&cache);
    if !kind.is_file() {
        println!(
            "bench: skipped, no `{}`: run `bash fixtures/kind/build.sh`",
            kind.display()
        );
        return Ok(());
    }
    let local = LocalCluster::with_defaults(&ClusterName::default())?;
    if let Some(reason) = local.missing_prerequisite() {
        println!("bench: skipped, {reason}");
        return Ok(());
    }
    let scratch = tempfile::tempdir()?;
    let config = scratch.path().join("two-nodes.yaml");
    std::fs::write(&config, TWO_NODES)?;
    let cluster = KindCluster::new(&"kind-bench".parse()?, &state_home(), &cache)
        .binary(&kind)
        .config_file(&config);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let removed = std::process::Command::new("docker")
            .args(["image", "rm", &node_image::reference()])
            .output()?;
        if !removed.status.success() {
            eprintln!(
                "the node image was not removed: {}",
                String::from_utf8_lossy(&removed.stderr).trim()
            );
        }
        let started = Instant::now();
        cluster.prepare().await?;
        println!(
            "bench: kind_node_image_build_s = {:.1} s",
            started.elapsed().as_secs_f64()
        );

        cluster.delete_cluster().await?;
        let started = Instant::now();
        cluster.ensure().await?;
        let kind_create = started.elapsed().as_secs_f64();
        println!("bench: kind_create_s = {kind_create:.1} s (two nodes, readiness included)");
        cluster.delete_cluster().await?;

        local.down().await?;
        let started = Instant::now();
        local.up().await?;
        let local_up = started.elapsed().as_secs_f64();
        println!("bench: local_up_s = {local_up:.1} s");
        println!(
            "bench: kind_create_vs_local_up_ratio = {:.2}",
            kind_create / local_up
        );
        local.down().await?;
        Ok::<(), kindling::BoxError>(())
    })
}
