//! The loader's default transfer: each node that lacks an image gets only
//! the layers its content store lacks, as an OCI image layout
//! ([`super::layout`]) of blobs read from the engine's own storage
//! ([`super::engine_storage`]) or, failing that, from one spooled
//! `docker save`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::future::join_all;

use super::ImageRef;
use super::engine_storage::EngineStorage;
use super::layout::SavedImages;
use super::loader::{Loader, Plan, Sent};
use super::transfer::{
    LoadError, counted, export_stream, is_content_digest_error, is_stalled, quoted, snapshotter_of,
};
use crate::node::{NodeError, NodeStore};

impl Loader {
    /// One `docker save` of every image some node lacks, spooled once; each
    /// such node gets an image layout of only the layers its content store
    /// lacks. Results are by node index.
    pub(super) async fn send_missing_layers(
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
            held_digests(nodes, &importing)
        );
        let mut pending = Vec::with_capacity(importing.len());
        let mut results: BTreeMap<usize, Result<Sent, LoadError>> = BTreeMap::new();
        for (&index, held) in importing.iter().zip(held) {
            match held {
                Ok(held) => pending.push((index, held)),
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
        if let Some(engine) = engine {
            pending = self
                .send_from_engine(engine, images, nodes, plans, pending, &mut results)
                .await;
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
            let references = references_to_import(images, &plans[*index]);
            self.import_layout(&nodes[*index], &saved, references, held.clone())
        });
        for ((index, _), result) in pending.iter().zip(join_all(sends).await) {
            results.insert(*index, result);
        }
        Ok(results.into_iter().collect())
    }

    /// Sends each `pending` node (by index, with the digests its content
    /// store holds) a layout of the blobs in the engine's storage
    /// `engine`, into `results`; the nodes to send again from a `docker
    /// save`.
    async fn send_from_engine(
        &self,
        engine: SavedImages,
        images: &[ImageRef],
        nodes: &[NodeStore],
        plans: &[Plan],
        pending: Vec<(usize, BTreeSet<String>)>,
        results: &mut BTreeMap<usize, Result<Sent, LoadError>>,
    ) -> Vec<(usize, BTreeSet<String>)> {
        let engine = Arc::new(engine);
        let sends = pending.iter().map(|(index, held)| {
            let references = references_to_import(images, &plans[*index]);
            self.import_layout(&nodes[*index], &engine, references, held.clone())
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
                // A node that stopped taking bytes would stall again.
                Err(error) if is_stalled(&error) => {
                    results.insert(index, Err(error));
                }
                Err(error) => {
                    tracing::warn!(
                        node = nodes[index].name(),
                        error = %kindling_harness::render_chain(&error),
                        "importing layers read from the engine's storage failed: retrying from `docker save`"
                    );
                    retry.push((index, held));
                }
            }
        }
        retry
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
                Err(source) if !held.is_empty() && !matches!(source, NodeError::Stalled { .. }) => {
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
}

/// What the content store of each node of `nodes` at `importing` holds,
/// in that order; each node's snapshotter is asked meanwhile (and cached
/// for the import).
async fn held_digests(
    nodes: &[NodeStore],
    importing: &[usize],
) -> Vec<Result<BTreeSet<String>, NodeError>> {
    join_all(importing.iter().map(|&index| async move {
        let (held, _) = tokio::join!(nodes[index].content_digests(), nodes[index].snapshotter());
        held
    }))
    .await
}

/// `(image ID, reference)` of each of `images` that `plan` imports.
fn references_to_import(images: &[ImageRef], plan: &Plan) -> Vec<(String, String)> {
    images
        .iter()
        .filter(|image| plan.import.contains(image.reference().as_str()))
        .map(|image| (image.id().to_owned(), image.reference().to_string()))
        .collect()
}
