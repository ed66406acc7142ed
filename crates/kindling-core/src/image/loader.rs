//! Loads images into node image stores: skip what a node holds, tag what
//! it holds under another name, send each node that lacks an image only
//! the layers missing from its content store (one `docker save` of the
//! missing images, spooled once; see [`super::layout`]), then verify every
//! node holds every exact reference. [`Loader::whole_archives`] streams the
//! whole `docker save` instead, as kind does.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use bollard::Docker;
use futures_util::future::join_all;

use super::ImageRef;
use super::layout::LayoutStats;
pub use super::transfer::LoadError;
use crate::node::{NodeStore, StoredImage};

/// What a load did on one node.
#[derive(Debug, Clone, Default)]
pub struct NodeLoad {
    /// The node's name.
    pub node: String,
    /// References the node already held with the right image ID.
    pub present: Vec<String>,
    /// References added to an image the node held under another name.
    pub tagged: Vec<String>,
    /// References streamed to the node.
    pub imported: Vec<String>,
    /// Bytes streamed to the node (an image layout, or `docker save` output).
    pub bytes: u64,
    /// Layers sent to the node.
    pub layers_sent: usize,
    /// Layers not sent because the node's content store already held them.
    pub layers_skipped: usize,
    /// True if the import had to fall back to a single-platform import.
    pub single_platform_retry: bool,
    /// True if the layers were read from the engine's own storage rather
    /// than a `docker save`.
    pub from_engine_storage: bool,
    /// Seconds from the start of the load until this node was done.
    pub seconds: f64,
}

/// What a load did.
#[derive(Debug, Clone, Default)]
pub struct LoadReport {
    /// One entry per node, in the order the nodes were given.
    pub nodes: Vec<NodeLoad>,
}

impl LoadReport {
    /// Bytes streamed to all nodes together.
    pub fn bytes_streamed(&self) -> u64 {
        self.nodes.iter().map(|node| node.bytes).sum()
    }
}

/// What one node needs.
#[derive(Debug, Default)]
pub(super) struct Plan {
    present: Vec<String>,
    /// (reference held for the same image, reference to add)
    tag: Vec<(String, String)>,
    pub(super) import: BTreeSet<String>,
}

fn plan(images: &[ImageRef], held: &[StoredImage]) -> Plan {
    let mut plan = Plan::default();
    for image in images {
        let wanted = image.reference().as_str();
        let same_id = |stored: &&StoredImage| stored.image_id.as_deref() == Some(image.id());
        if held
            .iter()
            .filter(same_id)
            .any(|stored| stored.reference == wanted)
        {
            plan.present.push(wanted.to_owned());
        } else if let Some(source) = held.iter().find(same_id) {
            plan.tag.push((source.reference.clone(), wanted.to_owned()));
        } else {
            plan.import.insert(wanted.to_owned());
        }
    }
    plan
}

/// How the bytes of a missing image reach a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transfer {
    /// Only the layers absent from the node's content store.
    MissingLayers,
    /// The whole `docker save`, as kind does.
    WholeArchives,
}

/// What one node's import sent.
#[derive(Debug, Default)]
pub(super) struct Sent {
    pub(super) bytes: u64,
    pub(super) stats: LayoutStats,
    pub(super) single_platform_retry: bool,
    pub(super) from_engine_storage: bool,
}

/// Loads images into nodes through the local engine.
#[derive(Clone)]
pub struct Loader {
    pub(super) docker: Docker,
    transfer: Transfer,
}

impl Loader {
    /// A loader that reads images from the local engine `docker` and sends each
    /// node only the layers it lacks.
    pub fn new(docker: Docker) -> Self {
        Loader {
            docker,
            transfer: Transfer::MissingLayers,
        }
    }

    /// Streams the whole `docker save` of the missing images to each node,
    /// every platform the engine exports included, as `kind load` does.
    pub fn whole_archives(mut self) -> Self {
        self.transfer = Transfer::WholeArchives;
        self
    }

    /// Makes every node hold every image under its exact reference, then verifies it.
    pub async fn load(
        &self,
        images: &[ImageRef],
        nodes: &[NodeStore],
    ) -> Result<LoadReport, LoadError> {
        let started = Instant::now();
        let (mut reports, plans) = plan_nodes(images, nodes).await?;
        tag_all(nodes, &plans).await?;
        let sent = match self.transfer {
            Transfer::MissingLayers => self.send_missing_layers(images, nodes, &plans).await?,
            Transfer::WholeArchives => self.send_whole_archives(nodes, &plans).await,
        };
        if let Some(error) = record_sent(&mut reports, &plans, sent, started) {
            return Err(error);
        }
        for (report, plan) in reports.iter_mut().zip(&plans) {
            report.tagged = plan.tag.iter().map(|(_, target)| target.clone()).collect();
        }

        // Nodes that only held what they needed were verified by their listing.
        let changed: Vec<NodeStore> = nodes
            .iter()
            .zip(&plans)
            .filter(|(_, plan)| !plan.tag.is_empty() || !plan.import.is_empty())
            .map(|(node, _)| node.clone())
            .collect();
        self.verify(images, &changed).await?;
        for report in reports
            .iter_mut()
            .filter(|report| report.imported.is_empty())
        {
            report.seconds = started.elapsed().as_secs_f64();
        }
        Ok(LoadReport { nodes: reports })
    }

    /// Nodes lacking the same set of images share one `docker save` stream.
    pub(super) async fn send_whole_archives(
        &self,
        nodes: &[NodeStore],
        plans: &[Plan],
    ) -> Vec<(usize, Result<Sent, LoadError>)> {
        let mut groups: BTreeMap<&BTreeSet<String>, Vec<usize>> = BTreeMap::new();
        for (index, plan) in plans
            .iter()
            .enumerate()
            .filter(|(_, plan)| !plan.import.is_empty())
        {
            groups.entry(&plan.import).or_default().push(index);
        }
        let streams = groups.iter().map(|(references, members)| async move {
            let stores: Vec<NodeStore> =
                members.iter().map(|&index| nodes[index].clone()).collect();
            let results = super::whole_archive::stream_to(&self.docker, references, &stores).await;
            members.iter().copied().zip(results).collect::<Vec<_>>()
        });
        join_all(streams)
            .await
            .into_iter()
            .flatten()
            .map(|(index, result)| {
                let sent = result.map(|(bytes, retried)| Sent {
                    bytes,
                    single_platform_retry: retried,
                    ..Sent::default()
                });
                (index, sent)
            })
            .collect()
    }

    /// Checks that every node holds every image under its exact reference
    /// with the same image ID; the error lists what the node does hold.
    pub async fn verify(&self, images: &[ImageRef], nodes: &[NodeStore]) -> Result<(), LoadError> {
        let names = names_of(images);
        let listings = join_all(nodes.iter().map(|node| node.list_named(&names))).await;
        for (node, listing) in nodes.iter().zip(listings) {
            let list_error = |source| LoadError::List {
                node: node.name().to_owned(),
                source,
            };
            let held = listing.map_err(list_error)?;
            let missing: Vec<&ImageRef> = images
                .iter()
                .filter(|image| {
                    !held.iter().any(|stored| {
                        stored.reference == image.reference().as_str()
                            && stored.image_id.as_deref() == Some(image.id())
                    })
                })
                .collect();
            if !missing.is_empty() {
                // What the node holds at all, to say what it has instead.
                let held = node.list().await.map_err(list_error)?;
                return Err(LoadError::Missing {
                    node: node.name().to_owned(),
                    missing: missing
                        .iter()
                        .map(|image| format!("`{}` (image {})", image.reference(), image.id()))
                        .collect::<Vec<_>>()
                        .join(", "),
                    held: describe_held(&held, missing[0]),
                });
            }
        }
        Ok(())
    }
}

/// What each of `nodes` lists, planned against `images`: a report per node
/// (with what it held already) and its plan, in order.
async fn plan_nodes(
    images: &[ImageRef],
    nodes: &[NodeStore],
) -> Result<(Vec<NodeLoad>, Vec<Plan>), LoadError> {
    let names = names_of(images);
    let names = &names;
    let listings = join_all(nodes.iter().map(|node| async move {
        node.list_named(names)
            .await
            .map_err(|source| LoadError::List {
                node: node.name().to_owned(),
                source,
            })
    }))
    .await;
    let mut reports: Vec<NodeLoad> = Vec::with_capacity(nodes.len());
    let mut plans = Vec::with_capacity(nodes.len());
    for (node, listing) in nodes.iter().zip(listings) {
        let plan = plan(images, &listing?);
        reports.push(NodeLoad {
            node: node.name().to_owned(),
            present: plan.present.clone(),
            ..Default::default()
        });
        plans.push(plan);
    }
    Ok((reports, plans))
}

/// What a node's listing must hold for a plan about `images`: each one's
/// reference, and its image ID (the CRI plugin's name for the image,
/// whatever else it is called), to find it held under another name.
fn names_of(images: &[ImageRef]) -> Vec<&str> {
    let mut names: Vec<&str> = images
        .iter()
        .flat_map(|image| [image.reference().as_str(), image.id()])
        .collect();
    names.sort_unstable();
    names.dedup();
    names
}

/// Adds the tags of `plans` in their nodes, all nodes at once: tags need
/// no bytes.
async fn tag_all(nodes: &[NodeStore], plans: &[Plan]) -> Result<(), LoadError> {
    let tagging = nodes.iter().zip(plans).map(|(node, plan)| async move {
        for (source, target) in &plan.tag {
            node.tag(source, target)
                .await
                .map_err(|error| LoadError::Tag {
                    node: node.name().to_owned(),
                    reference: target.clone(),
                    source: error,
                })?;
        }
        Ok::<_, LoadError>(())
    });
    for result in join_all(tagging).await {
        result?;
    }
    Ok(())
}

/// Writes what was `sent` to each node (by index) into its report; the
/// first failure, if any.
fn record_sent(
    reports: &mut [NodeLoad],
    plans: &[Plan],
    sent: Vec<(usize, Result<Sent, LoadError>)>,
    started: Instant,
) -> Option<LoadError> {
    let mut first_error = None;
    for (index, result) in sent {
        match result {
            Ok(sent) => {
                let report = &mut reports[index];
                report.bytes = sent.bytes;
                report.layers_sent = sent.stats.layers_sent;
                report.layers_skipped = sent.stats.layers_skipped;
                report.single_platform_retry = sent.single_platform_retry;
                report.from_engine_storage = sent.from_engine_storage;
                report.imported = plans[index].import.iter().cloned().collect();
                report.seconds = started.elapsed().as_secs_f64();
            }
            Err(error) => {
                first_error.get_or_insert(error);
            }
        }
    }
    first_error
}

/// What a node holds, references of the missing image's repository first.
fn describe_held(held: &[StoredImage], missing: &ImageRef) -> String {
    let repository = missing.reference().repository();
    let mut named: Vec<&StoredImage> = held
        .iter()
        .filter(|stored| {
            !stored.reference.starts_with("sha256:") && !stored.reference.starts_with("import-")
        })
        .collect();
    named.sort_by_key(|stored| {
        (
            !stored.reference.starts_with(repository),
            stored.reference.clone(),
        )
    });
    if named.is_empty() {
        return "no images".to_owned();
    }
    let shown: Vec<String> = named
        .iter()
        .take(10)
        .map(|stored| match &stored.image_id {
            Some(id) => format!("`{}` (image {id})", stored.reference),
            None => format!("`{}`", stored.reference),
        })
        .collect();
    let more = named.len().saturating_sub(shown.len());
    if more > 0 {
        format!("{} and {more} more", shown.join(", "))
    } else {
        shown.join(", ")
    }
}
