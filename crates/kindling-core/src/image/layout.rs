//! Sending a node only the layers it lacks.
//!
//! The images' blobs come from the engine's own storage when it can be
//! read ([`super::engine_storage`]), otherwise from one `docker save`
//! spooled to a folder, every file of it named by its SHA-256 (a layer's
//! is its diff ID, as containerd keys the layers it imported before). For
//! each node an OCI image layout is
//! then written on the fly: `oci-layout`, an `index.json` naming each
//! reference, a Docker schema 2 manifest and config per image, and only
//! the layer blobs absent from the node's content store. `ctr images
//! import` of that layout writes the blobs it carries, takes the others
//! from the content store, and unpacks the image from both; containerd
//! 1.6's importer reads only the manifests and configs it names, so the
//! layers it already holds are never asked for. Both the Docker (legacy)
//! and the OCI form of `docker save` carry a `manifest.json`, which names
//! each image's config and layers in order: that is all this reads.
//!
//! One file: the spool and the layouts share the blob table of [`SavedImages`].

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use super::engine_storage::{EngineImage, EngineLayer};
use crate::node::ByteStream;

const MANIFEST_MEDIA_TYPE: &str = "application/vnd.docker.distribution.manifest.v2+json";
const CONFIG_MEDIA_TYPE: &str = "application/vnd.docker.container.image.v1+json";
const LAYER_MEDIA_TYPE: &str = "application/vnd.docker.image.rootfs.diff.tar";
const GZIP_LAYER_MEDIA_TYPE: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
const ZSTD_LAYER_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
/// The annotation `ctr images import` names an image by.
const IMAGE_NAME_ANNOTATION: &str = "io.containerd.image.name";
const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";

/// Chunks of the layout sent to a node: fewer, larger writes into its exec stream.
const CHUNK_BYTES: usize = 512 * 1024;
/// Chunks buffered per node: bounds memory to a few MiB whatever the image size.
const CHUNKS_IN_FLIGHT: usize = 4;

/// Reading or spooling an export failed.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    /// Reading the `docker save` stream from the local engine failed.
    #[error("failed to read the export of {references} from the local engine")]
    Export {
        /// The references exported, quoted and comma-separated.
        references: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The export holds no `manifest.json`.
    #[error(
        "the export of {references} has no manifest.json: the engine's `docker save` is in neither the Docker nor the OCI form"
    )]
    NoManifest {
        /// The references exported, quoted and comma-separated.
        references: String,
    },
    /// The export's `manifest.json` does not parse.
    #[error("manifest.json of the export of {references} is not valid")]
    Manifest {
        /// The references exported, quoted and comma-separated.
        references: String,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// `manifest.json` names a file (a config or layer) the export does not
    /// hold.
    #[error(
        "manifest.json of the export of {references} names `{path}`, which the export does not hold"
    )]
    MissingEntry {
        /// The references exported, quoted and comma-separated.
        references: String,
        /// The file's path in the export.
        path: String,
    },
    /// An image's config in the export is not valid JSON.
    #[error("the config `{path}` in the export of {references} is not valid JSON")]
    Config {
        /// The references exported, quoted and comma-separated.
        references: String,
        /// The config's path in the export.
        path: String,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// Writing the export to the temporary spool folder, or reading it back,
    /// failed.
    #[error("failed to spool the export of {references} under {dir}")]
    Spool {
        /// The references exported, quoted and comma-separated.
        references: String,
        /// The spool folder (or the temporary directory it was to be made in).
        dir: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The task spooling the export ended without a result (it panicked or was
    /// cancelled).
    #[error("the spooling of the export of {references} stopped: {reason}")]
    Stopped {
        /// The references exported, quoted and comma-separated.
        references: String,
        /// Why it ended, as the task's error says.
        reason: String,
    },
}

/// A blob of an image: its digest (`sha256:…`), size and media type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    pub digest: String,
    pub size: u64,
    pub media_type: &'static str,
}

/// One image of the export.
#[derive(Debug, Clone)]
pub struct SavedImage {
    /// The image ID: the config's digest.
    pub id: String,
    pub config: Blob,
    /// In order, base first.
    pub layers: Vec<Blob>,
    platform: Option<serde_json::Value>,
}

impl SavedImage {
    /// The Docker schema 2 manifest of the image, as bytes.
    fn manifest(&self) -> Vec<u8> {
        let descriptor = |blob: &Blob| {
            serde_json::json!({
                "mediaType": blob.media_type,
                "digest": blob.digest,
                "size": blob.size,
            })
        };
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST_MEDIA_TYPE,
            "config": descriptor(&self.config),
            "layers": self.layers.iter().map(descriptor).collect::<Vec<_>>(),
        }))
        .expect("a manifest serialises")
    }
}

/// What one layout carried.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LayoutStats {
    pub layers_sent: usize,
    pub layers_skipped: usize,
}

/// Where a blob's bytes are.
#[derive(Debug, Clone)]
enum Source {
    /// A file holding exactly the blob: an entry of a spooled export.
    File(PathBuf),
    /// In memory: a config read from the engine's storage.
    Bytes(Arc<Vec<u8>>),
    /// A layer in the engine's storage, reassembled as it is sent.
    Engine(Arc<EngineLayer>),
}

/// The blobs of some images, by digest: a spooled export (its folder
/// removed on drop) or the engine's storage.
pub struct SavedImages {
    _spool: Option<tempfile::TempDir>,
    images: BTreeMap<String, SavedImage>,
    sources: BTreeMap<String, Source>,
}

#[derive(Deserialize)]
struct ArchiveEntry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

/// A regular file of the export, spooled under its digest.
struct Spooled {
    digest_hex: String,
    size: u64,
    media_type: &'static str,
}

/// A `docker save` archive spooled into a folder: its regular files by
/// path (each in the folder under its digest), its links by path with
/// their targets, and its `manifest.json`.
struct SpooledArchive {
    files: BTreeMap<String, Spooled>,
    links: BTreeMap<String, String>,
    manifest: Option<Vec<u8>>,
}

impl SpooledArchive {
    /// Reads the archive `reader`, the export of `references` (for
    /// messages), spooling its files into `dir`.
    fn read(reader: impl Read, dir: &Path, references: &str) -> Result<Self, LayoutError> {
        let spool_error = |source| LayoutError::Spool {
            references: references.to_owned(),
            dir: dir.to_owned(),
            source,
        };
        let export_error = |source| LayoutError::Export {
            references: references.to_owned(),
            source,
        };
        let mut files: BTreeMap<String, Spooled> = BTreeMap::new();
        let mut links: BTreeMap<String, String> = BTreeMap::new();
        let mut manifest = None;
        let mut archive = tar::Archive::new(reader);
        for (index, entry) in archive.entries().map_err(export_error)?.enumerate() {
            let mut entry = entry.map_err(export_error)?;
            let path = entry
                .path()
                .map_err(export_error)?
                .to_string_lossy()
                .trim_start_matches("./")
                .to_owned();
            let kind = entry.header().entry_type();
            if kind.is_symlink() || kind.is_hard_link() {
                if let Some(target) = entry.link_name().map_err(export_error)? {
                    let target = target.to_string_lossy().into_owned();
                    let resolved = if kind.is_symlink() {
                        resolve_relative(&path, &target)
                    } else {
                        target
                    };
                    links.insert(path, resolved);
                }
                continue;
            }
            if !kind.is_file() {
                continue;
            }
            if path == "manifest.json" {
                let mut text = Vec::new();
                entry.read_to_end(&mut text).map_err(export_error)?;
                manifest = Some(text);
                continue;
            }
            let part = dir.join(format!("{index}.part"));
            let spooled = spool_file(&mut entry, &part).map_err(spool_error)?;
            let blob = dir.join(&spooled.digest_hex);
            if blob.exists() {
                std::fs::remove_file(&part).map_err(spool_error)?;
            } else {
                std::fs::rename(&part, &blob).map_err(spool_error)?;
            }
            files.insert(path, spooled);
        }
        Ok(SpooledArchive {
            files,
            links,
            manifest,
        })
    }

    /// The file at `path`, following links (at most 8 deep).
    fn find(&self, path: &str, references: &str) -> Result<&Spooled, LayoutError> {
        let mut path = path.trim_start_matches("./").to_owned();
        for _ in 0..8 {
            match self.links.get(&path) {
                Some(target) => path = target.clone(),
                None => break,
            }
        }
        self.files
            .get(&path)
            .ok_or_else(|| LayoutError::MissingEntry {
                references: references.to_owned(),
                path: path.clone(),
            })
    }

    /// The image of the manifest's `entry`: its config (read from `dir` for
    /// its platform) and its layers.
    fn saved_image(
        &self,
        entry: &ArchiveEntry,
        dir: &Path,
        references: &str,
    ) -> Result<SavedImage, LayoutError> {
        let config = self.find(&entry.config, references)?;
        let config_bytes =
            std::fs::read(dir.join(&config.digest_hex)).map_err(|source| LayoutError::Spool {
                references: references.to_owned(),
                dir: dir.to_owned(),
                source,
            })?;
        let parsed: serde_json::Value =
            serde_json::from_slice(&config_bytes).map_err(|source| LayoutError::Config {
                references: references.to_owned(),
                path: entry.config.clone(),
                source,
            })?;
        let layers = entry
            .layers
            .iter()
            .map(|layer| {
                self.find(layer, references)
                    .map(|spooled| blob_of(spooled, None))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(SavedImage {
            id: format!("sha256:{}", config.digest_hex),
            config: blob_of(config, Some(CONFIG_MEDIA_TYPE)),
            layers,
            platform: platform_of(&parsed),
        })
    }
}

impl SavedImages {
    /// The images `(ID, image)` as the engine's storage holds them.
    pub fn from_engine(found: Vec<(String, EngineImage)>) -> SavedImages {
        let mut images = BTreeMap::new();
        let mut sources = BTreeMap::new();
        for (id, image) in found {
            let platform = serde_json::from_slice(&image.config)
                .ok()
                .and_then(|config| platform_of(&config));
            let config = Blob {
                digest: id.clone(),
                size: image.config.len() as u64,
                media_type: CONFIG_MEDIA_TYPE,
            };
            sources.insert(id.clone(), Source::Bytes(Arc::new(image.config)));
            let layers = image
                .layers
                .into_iter()
                .map(|layer| {
                    let blob = Blob {
                        digest: layer.diff_id.clone(),
                        size: layer.size,
                        media_type: LAYER_MEDIA_TYPE,
                    };
                    sources.insert(layer.diff_id.clone(), Source::Engine(layer));
                    blob
                })
                .collect();
            images.insert(
                id.clone(),
                SavedImage {
                    id,
                    config,
                    layers,
                    platform,
                },
            );
        }
        SavedImages {
            _spool: None,
            images,
            sources,
        }
    }

    /// Spools `export`, the `docker save` of `references` (for messages),
    /// into a new temporary folder.
    pub async fn spool(export: ByteStream, references: &str) -> Result<SavedImages, LayoutError> {
        let reader = tokio_util::io::SyncIoBridge::new(tokio_util::io::StreamReader::new(export));
        let references = references.to_owned();
        let stopped = references.clone();
        tokio::task::spawn_blocking(move || Self::spool_blocking(reader, &references))
            .await
            .map_err(|error| LayoutError::Stopped {
                references: stopped,
                reason: error.to_string(),
            })?
    }

    fn spool_blocking(reader: impl Read, references: &str) -> Result<SavedImages, LayoutError> {
        let dir = tempfile::Builder::new()
            .prefix("kindling-load-")
            .tempdir()
            .map_err(|source| LayoutError::Spool {
                references: references.to_owned(),
                dir: std::env::temp_dir(),
                source,
            })?;
        let archive = SpooledArchive::read(reader, dir.path(), references)?;
        let manifest = archive
            .manifest
            .as_deref()
            .ok_or_else(|| LayoutError::NoManifest {
                references: references.to_owned(),
            })?;
        let entries: Vec<ArchiveEntry> =
            serde_json::from_slice(manifest).map_err(|source| LayoutError::Manifest {
                references: references.to_owned(),
                source,
            })?;
        let mut images = BTreeMap::new();
        let mut sources = BTreeMap::new();
        for spooled in archive.files.values() {
            sources.insert(
                format!("sha256:{}", spooled.digest_hex),
                Source::File(dir.path().join(&spooled.digest_hex)),
            );
        }
        for entry in entries {
            let image = archive.saved_image(&entry, dir.path(), references)?;
            images.insert(image.id.clone(), image);
        }
        Ok(SavedImages {
            _spool: Some(dir),
            images,
            sources,
        })
    }

    /// The image with ID `id`, if the export held it.
    pub fn image(&self, id: &str) -> Option<&SavedImage> {
        self.images.get(id)
    }

    /// An OCI image layout naming each `(image ID, reference)`, with every
    /// manifest and config and the layers whose digests are not in
    /// `held`, streamed as it is written. The handle gives what it carried.
    pub fn layout(
        self: &Arc<Self>,
        references: Vec<(String, String)>,
        held: Arc<BTreeSet<String>>,
    ) -> (
        ByteStream,
        tokio::task::JoinHandle<std::io::Result<LayoutStats>>,
    ) {
        let (sender, receiver) =
            tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(CHUNKS_IN_FLIGHT);
        let saved = Arc::clone(self);
        let writing = tokio::task::spawn_blocking(move || {
            let mut out = ChannelWriter {
                sender: sender.clone(),
                pending: BytesMut::with_capacity(CHUNK_BYTES),
            };
            let written = saved.write_layout(&references, &held, &mut out);
            let written = written.and_then(|stats| out.send_pending().map(|()| stats));
            if let Err(error) = &written {
                let _ =
                    sender.blocking_send(Err(std::io::Error::new(error.kind(), error.to_string())));
            }
            written
        });
        let stream = Box::pin(futures_util::stream::unfold(
            receiver,
            |mut receiver| async move { receiver.recv().await.map(|item| (item, receiver)) },
        ));
        (stream, writing)
    }

    fn write_layout(
        &self,
        references: &[(String, String)],
        held: &BTreeSet<String>,
        out: impl Write,
    ) -> std::io::Result<LayoutStats> {
        let mut archive = tar::Builder::new(out);
        append_bytes(
            &mut archive,
            "oci-layout",
            br#"{"imageLayoutVersion":"1.0.0"}"#,
        )?;
        let mut stats = LayoutStats::default();
        let mut written: BTreeSet<String> = BTreeSet::new();
        let mut descriptors = Vec::new();
        for (id, reference) in references {
            let image = self.images.get(id).ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("the export holds no image {id} for `{reference}`"),
                )
            })?;
            if written.insert(image.id.clone()) {
                self.append_blob(&mut archive, &image.config)?;
                for layer in &image.layers {
                    if held.contains(&layer.digest) {
                        stats.layers_skipped += 1;
                    } else if written.insert(layer.digest.clone()) {
                        self.append_blob(&mut archive, layer)?;
                        stats.layers_sent += 1;
                    }
                }
            }
            let manifest = image.manifest();
            let digest = format!("sha256:{}", hex::encode(Sha256::digest(&manifest)));
            if written.insert(digest.clone()) {
                append_bytes(&mut archive, &blob_path(&digest), &manifest)?;
            }
            let mut descriptor = serde_json::json!({
                "mediaType": MANIFEST_MEDIA_TYPE,
                "digest": digest,
                "size": manifest.len(),
                "annotations": {
                    IMAGE_NAME_ANNOTATION: reference,
                    REF_NAME_ANNOTATION: reference.rsplit_once(':').map_or(reference.as_str(), |(_, tag)| tag),
                },
            });
            if let Some(platform) = &image.platform {
                descriptor["platform"] = platform.clone();
            }
            descriptors.push(descriptor);
        }
        let index = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": descriptors,
        }))
        .expect("an index serialises");
        append_bytes(&mut archive, "index.json", &index)?;
        archive.into_inner()?.flush()?;
        Ok(stats)
    }

    fn append_blob<W: Write>(
        &self,
        archive: &mut tar::Builder<W>,
        blob: &Blob,
    ) -> std::io::Result<()> {
        let mut header = tar_header(blob.size);
        let path = blob_path(&blob.digest);
        match self.sources.get(&blob.digest) {
            Some(Source::File(file)) => {
                archive.append_data(&mut header, path, std::fs::File::open(file)?)
            }
            Some(Source::Bytes(bytes)) => archive.append_data(&mut header, path, bytes.as_slice()),
            Some(Source::Engine(layer)) => archive.append_data(&mut header, path, layer.reader()?),
            None => Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("no bytes for blob {}", blob.digest),
            )),
        }
    }
}

fn blob_path(digest: &str) -> String {
    format!("blobs/sha256/{}", digest.trim_start_matches("sha256:"))
}

fn tar_header(size: u64) -> tar::Header {
    let mut header = tar::Header::new_ustar();
    header.set_size(size);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::Regular);
    header
}

fn append_bytes<W: Write>(
    archive: &mut tar::Builder<W>,
    path: &str,
    bytes: &[u8],
) -> std::io::Result<()> {
    let mut header = tar_header(bytes.len() as u64);
    archive.append_data(&mut header, path, bytes)
}

/// Copies `entry` to `part`, hashing it and noting its compression.
fn spool_file(entry: &mut impl Read, part: &Path) -> std::io::Result<Spooled> {
    let file = kindling_harness::util::open_private(
        part,
        std::fs::OpenOptions::new().write(true).create_new(true),
    )?;
    let mut file = std::io::BufWriter::with_capacity(CHUNK_BYTES, file);
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 256 * 1024];
    let mut size = 0u64;
    let mut head = Vec::with_capacity(4);
    loop {
        let read = entry.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        if head.len() < 4 {
            let wanted = (4 - head.len()).min(read);
            head.extend_from_slice(&buffer[..wanted]);
        }
        hasher.update(&buffer[..read]);
        file.write_all(&buffer[..read])?;
        size += read as u64;
    }
    file.flush()?;
    let media_type = match head.as_slice() {
        [0x1f, 0x8b, ..] => GZIP_LAYER_MEDIA_TYPE,
        [0x28, 0xb5, 0x2f, 0xfd] => ZSTD_LAYER_MEDIA_TYPE,
        _ => LAYER_MEDIA_TYPE,
    };
    Ok(Spooled {
        digest_hex: hex::encode(hasher.finalize()),
        size,
        media_type,
    })
}

fn blob_of(spooled: &Spooled, media_type: Option<&'static str>) -> Blob {
    Blob {
        digest: format!("sha256:{}", spooled.digest_hex),
        size: spooled.size,
        media_type: media_type.unwrap_or(spooled.media_type),
    }
}

/// `{architecture, os[, variant]}` of an image config.
fn platform_of(config: &serde_json::Value) -> Option<serde_json::Value> {
    let architecture = config["architecture"].as_str()?;
    let os = config["os"].as_str()?;
    let mut platform = serde_json::json!({"architecture": architecture, "os": os});
    if let Some(variant) = config["variant"].as_str() {
        platform["variant"] = variant.into();
    }
    Some(platform)
}

/// The archive path a symbolic link at `path` points at.
fn resolve_relative(path: &str, target: &str) -> String {
    let mut parts: Vec<&str> = path.split('/').collect();
    parts.pop();
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            part => parts.push(part),
        }
    }
    parts.join("/")
}

/// Writes into a node's stream from a blocking thread, in chunks.
struct ChannelWriter {
    sender: tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
    pending: BytesMut,
}

impl ChannelWriter {
    fn send_pending(&mut self) -> std::io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let chunk = self.pending.split().freeze();
        self.sender.blocking_send(Ok(chunk)).map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                "the node's import stopped reading",
            )
        })
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.pending.extend_from_slice(buf);
        if self.pending.len() >= CHUNK_BYTES {
            self.send_pending()?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `docker save` in the legacy form: two images sharing a base
    /// layer, the second one's copy of it a symbolic link.
    fn legacy_export() -> (Vec<u8>, [Vec<u8>; 3]) {
        let base = b"base layer bytes".to_vec();
        let top = b"top layer bytes".to_vec();
        let config = br#"{"architecture":"amd64","os":"linux","rootfs":{}}"#.to_vec();
        let mut archive = tar::Builder::new(Vec::new());
        append_bytes(&mut archive, "aaa/layer.tar", &base).unwrap();
        append_bytes(&mut archive, "bbb/layer.tar", &top).unwrap();
        let mut link = tar::Header::new_ustar();
        link.set_entry_type(tar::EntryType::Symlink);
        link.set_size(0);
        archive
            .append_link(&mut link, "ccc/layer.tar", "../aaa/layer.tar")
            .unwrap();
        append_bytes(&mut archive, "cfg.json", &config).unwrap();
        let manifest = br#"[{"Config":"cfg.json","RepoTags":["x:1"],"Layers":["ccc/layer.tar","bbb/layer.tar"]}]"#;
        append_bytes(&mut archive, "manifest.json", manifest).unwrap();
        (archive.into_inner().unwrap(), [base, top, config])
    }

    fn sha(bytes: &[u8]) -> String {
        format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
    }

    #[test]
    fn a_legacy_export_gives_each_image_its_layers_in_order() {
        let (export, [base, top, config]) = legacy_export();
        let saved = SavedImages::spool_blocking(export.as_slice(), "`x:1`").unwrap();
        let image = saved.image(&sha(&config)).expect("the image by its ID");
        let digests: Vec<&str> = image.layers.iter().map(|l| l.digest.as_str()).collect();
        assert_eq!(digests, [sha(&base), sha(&top)]);
        assert_eq!(image.layers[0].media_type, LAYER_MEDIA_TYPE);
        assert_eq!(image.layers[1].size, top.len() as u64);
    }

    #[test]
    fn a_layout_carries_only_the_layers_not_held() {
        let (export, [base, top, config]) = legacy_export();
        let saved = SavedImages::spool_blocking(export.as_slice(), "`x:1`").unwrap();
        let held = BTreeSet::from([sha(&base)]);
        let mut layout = Vec::new();
        let stats = saved
            .write_layout(
                &[(sha(&config), "localhost/x:1".to_owned())],
                &held,
                &mut layout,
            )
            .unwrap();
        assert_eq!(
            stats,
            LayoutStats {
                layers_sent: 1,
                layers_skipped: 1
            }
        );
        let mut names = Vec::new();
        let mut index = String::new();
        for entry in tar::Archive::new(layout.as_slice()).entries().unwrap() {
            let mut entry = entry.unwrap();
            let name = entry.path().unwrap().to_string_lossy().into_owned();
            if name == "index.json" {
                entry.read_to_string(&mut index).unwrap();
            }
            names.push(name);
        }
        assert!(names.contains(&blob_path(&sha(&top))));
        assert!(!names.contains(&blob_path(&sha(&base))));
        assert!(names.contains(&blob_path(&sha(&config))));
        let index: serde_json::Value = serde_json::from_str(&index).unwrap();
        let manifest = &index["manifests"][0];
        assert_eq!(
            manifest["annotations"][IMAGE_NAME_ANNOTATION],
            "localhost/x:1"
        );
        assert_eq!(manifest["platform"]["architecture"], "amd64");
    }

    #[test]
    fn an_export_without_a_manifest_is_refused() {
        let mut archive = tar::Builder::new(Vec::new());
        append_bytes(&mut archive, "index.json", b"{}").unwrap();
        let export = archive.into_inner().unwrap();
        let error = SavedImages::spool_blocking(export.as_slice(), "`x:1`")
            .err()
            .expect("no manifest.json");
        assert!(matches!(error, LayoutError::NoManifest { .. }), "{error}");
    }
}
