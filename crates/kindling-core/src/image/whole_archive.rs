//! The whole `docker save` of the missing images streamed into every node
//! that needs them at once, as `kind load docker-image` sends it (every
//! platform the engine exports): [`super::Loader::whole_archives`], and the
//! fallback when an export cannot be matched to the engine's image IDs.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bollard::Docker;
use bytes::Bytes;
use futures_util::StreamExt as _;
use futures_util::future::join_all;

use super::transfer::{
    LoadError, counted, export_stream, is_content_digest_error, quoted, snapshotter_of,
};
use crate::node::{ByteStream, NodeStore};

/// Export chunks are coalesced to this size before they are sent: fewer,
/// larger writes into each node's exec stream.
const CHUNK_BYTES: usize = 512 * 1024;
/// Chunks buffered per node while streaming: bounds memory to a few MiB
/// whatever the image size.
const CHUNKS_IN_FLIGHT: usize = 4;

/// Streams one export of `references` into every store at once;
/// returns per store the bytes sent and whether it needed the
/// single-platform retry.
pub(super) async fn stream_to(
    docker: &Docker,
    references: &BTreeSet<String>,
    stores: &[NodeStore],
) -> Vec<Result<(u64, bool), LoadError>> {
    let listed = quoted(&references.iter().map(String::as_str).collect::<Vec<_>>());
    let mut senders = Vec::new();
    let mut imports = Vec::new();
    let counters: Vec<Arc<AtomicU64>> =
        stores.iter().map(|_| Arc::new(AtomicU64::new(0))).collect();
    for (store, counter) in stores.iter().zip(&counters) {
        let (sender, receiver) =
            tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(CHUNKS_IN_FLIGHT);
        senders.push(sender);
        let stream = counted(receiver_stream(receiver), counter.clone());
        let listed = listed.clone();
        imports.push(async move {
            let snapshotter = snapshotter_of(store).await?;
            store
                .import(&snapshotter, true, stream)
                .await
                .map_err(|source| LoadError::Import {
                    node: store.name().to_owned(),
                    references: listed,
                    source,
                })
        });
    }
    let names: Vec<&str> = references.iter().map(String::as_str).collect();
    let pump = pump_export(docker, &names, senders);
    let (pumped, imported) = tokio::join!(pump, join_all(imports));
    let mut results = Vec::with_capacity(stores.len());
    for ((store, import), counter) in stores.iter().zip(imported).zip(&counters) {
        let result = match (&pumped, import) {
            (Err(error), _) => Err(LoadError::Export {
                references: listed.clone(),
                source: clone_bollard_error(error),
            }),
            (Ok(()), Ok(_)) => Ok((counter.load(Ordering::Relaxed), false)),
            (Ok(()), Err(LoadError::Import { source, .. })) if is_content_digest_error(&source) => {
                retry_single_platform(docker, references, store, &listed, counter).await
            }
            (Ok(()), Err(error)) => Err(error),
        };
        results.push(result);
    }
    results
}

/// Streams the export of `names` to every one of `senders`, in chunks of
/// [`CHUNK_BYTES`]; an export error goes to each, then ends the stream.
/// Dropping the senders at the end ends every node's stdin.
async fn pump_export(
    docker: &Docker,
    names: &[&str],
    senders: Vec<tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>>,
) -> Result<(), bollard::errors::Error> {
    let mut export = docker.export_images(names);
    let mut pending = bytes::BytesMut::with_capacity(CHUNK_BYTES);
    let mut result = Ok(());
    loop {
        let next = export.next().await;
        let finished = next.is_none();
        match next {
            Some(Ok(chunk)) => pending.extend_from_slice(&chunk),
            Some(Err(error)) => {
                for sender in &senders {
                    let _ = sender
                        .send(Err(std::io::Error::other(error.to_string())))
                        .await;
                }
                result = Err(error);
                break;
            }
            None => {}
        }
        if pending.len() >= CHUNK_BYTES || (finished && !pending.is_empty()) {
            let chunk = pending.split().freeze();
            for sender in &senders {
                // A node whose import failed has dropped its receiver.
                let _ = sender.send(Ok(chunk.clone())).await;
            }
        }
        if finished {
            break;
        }
    }
    // Dropping the senders ends every node's stdin.
    drop(senders);
    result
}

/// Engines using the containerd image store may export an index whose
/// other platforms' blobs are absent, which `--all-platforms` rejects
/// ("content digest ... not found"): import the node's platform only.
async fn retry_single_platform(
    docker: &Docker,
    references: &BTreeSet<String>,
    store: &NodeStore,
    listed: &str,
    counter: &Arc<AtomicU64>,
) -> Result<(u64, bool), LoadError> {
    tracing::warn!(
        node = store.name(),
        "content digest missing in a multi-platform export: retrying with a single-platform import"
    );
    let snapshotter = snapshotter_of(store).await?;
    let names: Vec<&str> = references.iter().map(String::as_str).collect();
    let export = export_stream(docker, &names);
    store
        .import(&snapshotter, false, counted(export, counter.clone()))
        .await
        .map_err(|source| LoadError::Import {
            node: store.name().to_owned(),
            references: listed.to_owned(),
            source,
        })?;
    Ok((counter.load(Ordering::Relaxed), true))
}

fn receiver_stream(
    receiver: tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>,
) -> ByteStream {
    Box::pin(futures_util::stream::unfold(
        receiver,
        |mut receiver| async move { receiver.recv().await.map(|item| (item, receiver)) },
    ))
}

fn clone_bollard_error(error: &bollard::errors::Error) -> bollard::errors::Error {
    bollard::errors::Error::DockerStreamError {
        error: error.to_string(),
    }
}
