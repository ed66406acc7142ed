//! Loads images into node image stores: skip what a node holds, tag what
//! it holds under another name, send each node that lacks an image only
//! the layers missing from its content store (one `docker save` of the
//! missing images, spooled once; see [`super::layout`]), then verify every
//! node holds every exact reference. [`Loader::whole_archives`] streams the
//! whole `docker save` instead, as kind does.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bollard::Docker;
use futures_util::StreamExt as _;
use futures_util::future::join_all;

use super::ImageRef;
use super::engine_storage::EngineStorage;
use super::layout::{LayoutError, LayoutStats, SavedImages};
use crate::node::{ByteStream, NodeError, NodeStore, StoredImage};

/// What a load did on one node.
#[derive(Debug, Clone, Default)]
pub struct NodeLoad {
    pub node: String,
    /// References the node already held with the right image ID.
    pub present: Vec<String>,
    /// References added to an image the node held under another name.
    pub tagged: Vec<String>,
    /// References streamed to the node.
    pub imported: Vec<String>,
    /// Bytes streamed to the node (an image layout, or `docker save` output).
    pub bytes: u64,
    /// Layers sent, and layers the node's content store already held.
    pub layers_sent: usize,
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
    pub nodes: Vec<NodeLoad>,
}

impl LoadReport {
    /// Bytes streamed to all nodes together.
    pub fn bytes_streamed(&self) -> u64 {
        self.nodes.iter().map(|node| node.bytes).sum()
    }
}

/// Loading failed.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("failed to list the images on node `{node}`")]
    List {
        node: String,
        #[source]
        source: NodeError,
    },
    #[error("failed to read the snapshotter of node `{node}`")]
    Snapshotter {
        node: String,
        #[source]
        source: NodeError,
    },
    #[error("failed to tag `{reference}` on node `{node}`")]
    Tag {
        node: String,
        reference: String,
        #[source]
        source: NodeError,
    },
    #[error("failed to import {references} into node `{node}`")]
    Import {
        node: String,
        references: String,
        #[source]
        source: NodeError,
    },
    #[error("failed to export {references} from the local engine")]
    Export {
        references: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error("failed to list the content store of node `{node}`")]
    Content {
        node: String,
        #[source]
        source: NodeError,
    },
    #[error("failed to prepare the images for the nodes")]
    Layout(#[from] LayoutError),
    #[error("failed to write the images for node `{node}`")]
    Send {
        node: String,
        #[source]
        source: std::io::Error,
    },
    #[error("node `{node}` does not hold {missing} after loading; it holds: {held}")]
    Missing {
        node: String,
        missing: String,
        held: String,
    },
}

/// What one node needs.
#[derive(Debug, Default)]
struct Plan {
    present: Vec<String>,
    /// (reference held for the same image, reference to add)
    tag: Vec<(String, String)>,
    import: BTreeSet<String>,
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
struct Sent {
    bytes: u64,
    stats: LayoutStats,
    single_platform_retry: bool,
    from_engine_storage: bool,
}

/// Loads images into nodes through the local engine.
#[derive(Clone)]
pub struct Loader {
    docker: Docker,
    transfer: Transfer,
}

impl Loader {
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
        let listings = join_all(nodes.iter().map(|node| async move {
            node.list().await.map_err(|source| LoadError::List {
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

        // Tags need no bytes.
        let tagging = nodes.iter().zip(&plans).map(|(node, plan)| async move {
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

        let sent = match self.transfer {
            Transfer::MissingLayers => self.send_missing_layers(images, nodes, &plans).await?,
            Transfer::WholeArchives => self.send_whole_archives(nodes, &plans).await,
        };
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
        if let Some(error) = first_error {
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

    /// One `docker save` of every image some node lacks, spooled once; each
    /// such node gets an image layout of only the layers its content store
    /// lacks. Results are by node index.
    async fn send_missing_layers(
        &self,
        images: &[ImageRef],
        nodes: &[NodeStore],
        plans: &[Plan],
    ) -> Result<Vec<(usize, Result<Sent, LoadError>)>, LoadError> {
        let importing: Vec<usize> = (0..plans.len())
            .filter(|&index| !plans[index].import.is_empty())
            .collect();
        if importing.is_empty() {
            return Ok(Vec::new());
        }
        let wanted: BTreeSet<&str> = importing
            .iter()
            .flat_map(|&index| plans[index].import.iter().map(String::as_str))
            .collect();
        let names: Vec<&str> = wanted.iter().copied().collect();
        let listed = quoted(&names);
        let wanted_images: Vec<&ImageRef> = images
            .iter()
            .filter(|image| wanted.contains(image.reference().as_str()))
            .collect();
        // While the blobs are found, each node is asked what its content
        // store holds, and its snapshotter (cached for the import).
        let (engine, held) = tokio::join!(
            self.engine_blobs(&wanted_images),
            join_all(importing.iter().map(|&index| async move {
                let (held, _) =
                    tokio::join!(nodes[index].content_digests(), nodes[index].snapshotter());
                held
            }))
        );
        let mut held_by_node = Vec::with_capacity(importing.len());
        let mut results: BTreeMap<usize, Result<Sent, LoadError>> = BTreeMap::new();
        for (&index, held) in importing.iter().zip(held) {
            match held {
                Ok(held) => held_by_node.push((index, held)),
                Err(source) => {
                    results.insert(
                        index,
                        Err(LoadError::Content {
                            node: nodes[index].name().to_owned(),
                            source,
                        }),
                    );
                }
            }
        }
        let references_of = |index: usize| -> Vec<(String, String)> {
            images
                .iter()
                .filter(|image| plans[index].import.contains(image.reference().as_str()))
                .map(|image| (image.id().to_owned(), image.reference().to_string()))
                .collect()
        };
        let mut pending = held_by_node;
        if let Some(engine) = engine {
            let engine = Arc::new(engine);
            let sends = pending.iter().map(|(index, held)| {
                self.import_layout(&nodes[*index], &engine, references_of(*index), held.clone())
            });
            let sent = join_all(sends).await;
            let mut retry = Vec::new();
            for ((index, held), result) in pending.into_iter().zip(sent) {
                match result {
                    Ok(sent) => {
                        let sent = Sent {
                            from_engine_storage: true,
                            ..sent
                        };
                        results.insert(index, Ok(sent));
                    }
                    Err(error) => {
                        tracing::warn!(
                            node = nodes[index].name(),
                            error = %crate::error::render_chain(&error),
                            "importing layers read from the engine's storage failed: retrying from `docker save`"
                        );
                        retry.push((index, held));
                    }
                }
            }
            pending = retry;
        }
        if pending.is_empty() {
            return Ok(results.into_iter().collect());
        }
        let saved =
            Arc::new(SavedImages::spool(export_stream(&self.docker, &names), &listed).await?);
        // An engine whose image IDs are not config digests (the containerd
        // image store) cannot be matched to the export: send it whole.
        if wanted_images
            .iter()
            .any(|image| saved.image(image.id()).is_none())
        {
            tracing::warn!(
                "the export's images are not keyed by the engine's image IDs: sending whole archives"
            );
            return Ok(self.send_whole_archives(nodes, plans).await);
        }
        let sends = pending.iter().map(|(index, held)| {
            self.import_layout(&nodes[*index], &saved, references_of(*index), held.clone())
        });
        for ((index, _), result) in pending.iter().zip(join_all(sends).await) {
            results.insert(*index, result);
        }
        Ok(results.into_iter().collect())
    }

    /// The blobs of `images` in the engine's own storage, if it holds all
    /// of them there (see [`super::engine_storage`]).
    async fn engine_blobs(&self, images: &[&ImageRef]) -> Option<SavedImages> {
        let storage = EngineStorage::locate(&self.docker).await?;
        let mut wanted = Vec::with_capacity(images.len());
        for image in images {
            let inspected = self
                .docker
                .inspect_image(image.reference().as_str())
                .await
                .ok()?;
            let diff_ids = inspected.root_fs?.layers?;
            wanted.push((image.id().to_owned(), diff_ids));
        }
        tokio::task::spawn_blocking(move || {
            let found = wanted
                .into_iter()
                .map(|(id, diff_ids)| storage.image(&id, &diff_ids).map(|image| (id, image)))
                .collect::<Option<Vec<_>>>()?;
            Some(SavedImages::from_engine(found))
        })
        .await
        .ok()?
    }

    /// Imports one node's layout; if the node lacks a layer its content
    /// store listed (collected since), sends every layer; if the
    /// multi-platform import misses a digest, imports its platform only.
    async fn import_layout(
        &self,
        store: &NodeStore,
        saved: &Arc<SavedImages>,
        references: Vec<(String, String)>,
        held: BTreeSet<String>,
    ) -> Result<Sent, LoadError> {
        let listed = quoted(
            &references
                .iter()
                .map(|(_, r)| r.as_str())
                .collect::<Vec<_>>(),
        );
        let snapshotter = snapshotter_of(store).await?;
        let counter = Arc::new(AtomicU64::new(0));
        let mut held = Arc::new(held);
        let mut all_platforms = true;
        loop {
            let (stream, writing) = saved.layout(references.clone(), Arc::clone(&held));
            let imported = store
                .import(
                    &snapshotter,
                    all_platforms,
                    counted(stream, counter.clone()),
                )
                .await;
            let written = writing
                .await
                .map_err(std::io::Error::other)
                .and_then(|written| written);
            match imported {
                Ok(()) => {
                    let stats = written.map_err(|source| LoadError::Send {
                        node: store.name().to_owned(),
                        source,
                    })?;
                    return Ok(Sent {
                        bytes: counter.load(Ordering::Relaxed),
                        stats,
                        single_platform_retry: !all_platforms,
                        from_engine_storage: false,
                    });
                }
                Err(source) if !held.is_empty() => {
                    tracing::warn!(
                        node = store.name(),
                        error = %source,
                        "importing only the missing layers failed: sending every layer"
                    );
                    held = Arc::default();
                }
                Err(source) if all_platforms && is_content_digest_error(&source) => {
                    tracing::warn!(
                        node = store.name(),
                        "content digest missing in a multi-platform import: retrying with a single-platform import"
                    );
                    all_platforms = false;
                }
                Err(source) => {
                    return Err(LoadError::Import {
                        node: store.name().to_owned(),
                        references: listed,
                        source,
                    });
                }
            }
        }
    }

    /// Nodes lacking the same set of images share one `docker save` stream.
    async fn send_whole_archives(
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
        let listings = join_all(nodes.iter().map(|node| node.list())).await;
        for (node, listing) in nodes.iter().zip(listings) {
            let held = listing.map_err(|source| LoadError::List {
                node: node.name().to_owned(),
                source,
            })?;
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

/// `` `a`, `b` `` for messages.
pub(super) fn quoted(references: &[&str]) -> String {
    references
        .iter()
        .map(|reference| format!("`{reference}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(super) async fn snapshotter_of(store: &NodeStore) -> Result<String, LoadError> {
    store
        .snapshotter()
        .await
        .map_err(|source| LoadError::Snapshotter {
            node: store.name().to_owned(),
            source,
        })
}

/// `docker save` of `references`, as a stream.
pub(super) fn export_stream(docker: &Docker, references: &[&str]) -> ByteStream {
    Box::pin(
        docker
            .export_images(references)
            .map(|chunk| chunk.map_err(|error| std::io::Error::other(error.to_string()))),
    )
}

pub(super) fn counted(stream: ByteStream, counter: Arc<AtomicU64>) -> ByteStream {
    Box::pin(stream.inspect(move |chunk| {
        if let Ok(chunk) = chunk {
            counter.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        }
    }))
}

pub(crate) fn is_content_digest_error(error: &NodeError) -> bool {
    let text = match error {
        NodeError::Failed { stderr, .. } => stderr.as_str(),
        _ => return false,
    };
    text.contains("content digest") && text.contains("not found")
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_digest_errors_are_recognised() {
        let failed = |stderr: &str| NodeError::Failed {
            node: "n".into(),
            command: "ctr".into(),
            code: 1,
            stderr: stderr.into(),
        };
        assert!(is_content_digest_error(&failed(
            "ctr: content digest sha256:1234: not found"
        )));
        assert!(!is_content_digest_error(&failed(
            "ctr: no space left on device"
        )));
        assert!(!is_content_digest_error(&NodeError::NoSnapshotter {
            node: "n".into()
        }));
    }
}
