//! `kindling load`: the suites' loader for the nodes of any Kind cluster
//! (found by kind's labels, through Docker or Podman) or of the local
//! cluster, with what it did on each node.

use std::time::Instant;

use kindling::cluster::ClusterName;
use kindling::cluster::kind::{KindCluster, KindError};
use kindling::cluster::local::{LocalCluster, LocalError};
use kindling::image::{ImageError, ImageRef, LoadError, LoadReport, Loader, NodeLoad};
use kindling::node::NodeStore;

/// Where to load.
#[derive(Debug, Clone, Copy)]
pub enum Target {
    Kind,
    Local,
}

/// `kindling load` failed.
#[derive(Debug, thiserror::Error)]
pub enum LoadCommandError {
    #[error(transparent)]
    Docker(#[from] kindling::docker::DockerUnavailable),
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error("cannot find the nodes of kind cluster `{cluster}`")]
    Kind {
        cluster: String,
        #[source]
        source: KindError,
    },
    #[error("local cluster `{cluster}`: invalid configuration")]
    LocalConfig {
        cluster: String,
        #[source]
        source: LocalError,
    },
    #[error("local cluster `{cluster}` is not running: start it with `kindling up`")]
    LocalDown {
        cluster: String,
        #[source]
        source: LocalError,
    },
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("the existing provider has no nodes kindling can reach: push to its registry instead")]
    Existing,
}

/// Loads `images` from the local engine into every node of `cluster`.
pub async fn load(
    target: Target,
    cluster: &ClusterName,
    images: &[String],
    whole_archives: bool,
) -> Result<(), LoadCommandError> {
    let started = Instant::now();
    let docker = kindling::docker::connect().await?;
    let mut refs = Vec::with_capacity(images.len());
    for image in images {
        refs.push(ImageRef::existing(&docker, image.as_str(), image).await?);
    }
    let nodes = nodes(target, cluster).await?;
    let mut loader = Loader::new(docker);
    if whole_archives {
        loader = loader.whole_archives();
    }
    let report = loader.load(&refs, &nodes).await?;
    print_report(&report);
    println!(
        "loaded {} image{} into {} node{} in {:.2}s, {} sent",
        refs.len(),
        plural(refs.len()),
        nodes.len(),
        plural(nodes.len()),
        started.elapsed().as_secs_f64(),
        megabytes(report.bytes_streamed())
    );
    Ok(())
}

async fn nodes(target: Target, cluster: &ClusterName) -> Result<Vec<NodeStore>, LoadCommandError> {
    match target {
        Target::Kind => KindCluster::with_defaults(cluster)
            .stores()
            .await
            .map_err(|source| LoadCommandError::Kind {
                cluster: cluster.to_string(),
                source,
            }),
        Target::Local => {
            let local = LocalCluster::with_defaults(cluster).map_err(|source| {
                LoadCommandError::LocalConfig {
                    cluster: cluster.to_string(),
                    source,
                }
            })?;
            local
                .healthy()
                .await
                .map_err(|source| LoadCommandError::LocalDown {
                    cluster: cluster.to_string(),
                    source,
                })?;
            Ok(vec![local.node_store()])
        }
    }
}

fn print_report(report: &LoadReport) {
    for node in &report.nodes {
        println!("node `{}`:", node.node);
        for line in node_lines(node) {
            println!("  {line}");
        }
    }
}

/// What a node got, one line per kind of action.
fn node_lines(node: &NodeLoad) -> Vec<String> {
    let mut lines = Vec::new();
    if !node.present.is_empty() {
        lines.push(format!("skipped {} (present)", quoted(&node.present)));
    }
    if !node.tagged.is_empty() {
        lines.push(format!(
            "re-tagged {} (the image was there under another name; no bytes)",
            quoted(&node.tagged)
        ));
    }
    if !node.imported.is_empty() {
        let layers = if node.layers_sent + node.layers_skipped > 0 {
            format!(
                "{} layer{} sent, {} already held, read from {}; ",
                node.layers_sent,
                plural(node.layers_sent),
                node.layers_skipped,
                if node.from_engine_storage {
                    "the engine's storage"
                } else {
                    "docker save"
                }
            )
        } else {
            "whole archive; ".to_owned()
        };
        lines.push(format!(
            "sent {} ({layers}{} in {:.2}s{})",
            quoted(&node.imported),
            megabytes(node.bytes),
            node.seconds,
            if node.single_platform_retry {
                ", single-platform import after a missing content digest"
            } else {
                ""
            }
        ));
    }
    lines
}

fn quoted(references: &[String]) -> String {
    references
        .iter()
        .map(|reference| format!("`{reference}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn megabytes(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1_000_000.0)
}

fn plural(count: usize) -> &'static str {
    if count == 1 { "" } else { "s" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_says_what_it_skipped_retagged_and_sent() {
        let node = NodeLoad {
            node: "n".into(),
            present: vec!["a:1".into()],
            tagged: vec!["a:2".into()],
            imported: vec!["b:1".into()],
            bytes: 5_200_000,
            layers_sent: 1,
            layers_skipped: 3,
            from_engine_storage: true,
            seconds: 0.5,
            ..NodeLoad::default()
        };
        assert_eq!(
            node_lines(&node),
            [
                "skipped `a:1` (present)",
                "re-tagged `a:2` (the image was there under another name; no bytes)",
                "sent `b:1` (1 layer sent, 3 already held, read from the engine's storage; 5.2 MB in 0.50s)",
            ]
        );
    }
}
