//! What every way of loading shares: the load error, and the byte streams
//! from the engine to the nodes (`docker save` exports, counted).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bollard::Docker;
use futures_util::StreamExt as _;

use super::layout::LayoutError;
use crate::node::{ByteStream, NodeError, NodeStore};

/// Loading failed.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Listing the images a node holds failed (before loading, or when
    /// verifying after).
    #[error("failed to list the images on node `{node}`")]
    List {
        /// The node's name.
        node: String,
        /// The node command's error.
        #[source]
        source: NodeError,
    },
    /// Reading which snapshotter a node's CRI plugin uses failed.
    #[error("failed to read the snapshotter of node `{node}`")]
    Snapshotter {
        /// The node's name.
        node: String,
        /// The node command's error.
        #[source]
        source: NodeError,
    },
    /// Adding a reference to an image a node held under another name failed.
    #[error("failed to tag `{reference}` on node `{node}`")]
    Tag {
        /// The node's name.
        node: String,
        /// The reference being added.
        reference: String,
        /// The node command's error.
        #[source]
        source: NodeError,
    },
    /// `ctr images import` on a node failed.
    #[error("failed to import {references} into node `{node}`")]
    Import {
        /// The node's name.
        node: String,
        /// The references being imported, quoted and comma-separated.
        references: String,
        /// The node command's error.
        #[source]
        source: NodeError,
    },
    /// The local engine's `docker save` of the images failed.
    #[error("failed to export {references} from the local engine")]
    Export {
        /// The references exported, quoted and comma-separated.
        references: String,
        /// The Docker client's error.
        #[source]
        source: bollard::errors::Error,
    },
    /// Listing the blobs in a node's content store failed.
    #[error("failed to list the content store of node `{node}`")]
    Content {
        /// The node's name.
        node: String,
        /// The node command's error.
        #[source]
        source: NodeError,
    },
    /// Reading or spooling the export into image layouts failed.
    #[error("failed to prepare the images for the nodes")]
    Layout(#[from] LayoutError),
    /// Writing an image layout into a node's import failed.
    #[error("failed to write the images for node `{node}`")]
    Send {
        /// The node's name.
        node: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// After the load, a node does not hold every image under its exact
    /// reference with the right image ID.
    #[error("node `{node}` does not hold {missing} after loading; it holds: {held}")]
    Missing {
        /// The node's name.
        node: String,
        /// The references (with image IDs) it does not hold.
        missing: String,
        /// What it does hold, nearest the first missing repository first, up to
        /// ten.
        held: String,
    },
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

/// The load failed on a node command that made no progress.
pub(super) fn is_stalled(error: &LoadError) -> bool {
    matches!(
        error,
        LoadError::Import {
            source: NodeError::Stalled { .. },
            ..
        }
    )
}

pub(crate) fn is_content_digest_error(error: &NodeError) -> bool {
    let text = match error {
        NodeError::Failed { stderr, .. } => stderr.as_str(),
        _ => return false,
    };
    text.contains("content digest") && text.contains("not found")
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
