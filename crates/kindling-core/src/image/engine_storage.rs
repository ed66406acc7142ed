//! An image's layers read from the local Docker engine's own storage, so a
//! load needs no `docker save` (which spends seconds exporting every layer
//! of an image to send one).
//!
//! With the `overlay2` driver the engine keeps, per layer, its files
//! (`overlay2/<cache id>/diff`) and its tar-split record
//! (`image/overlay2/layerdb/sha256/<chain id>/tar-split.json.gz`): every
//! header and padding byte of the layer's original tar, and the names and
//! sizes of the file contents between them. Writing the segments and the
//! files in that order gives the layer's tar byte for byte, which is what
//! the engine itself does for `docker save`; its digest is the layer's
//! diff ID. Anything missing or unreadable (another driver, Podman, an
//! engine on another host, no permission) makes [`EngineStorage::image`]
//! answer `None`, and the load falls back to `docker save`. containerd
//! checks every blob's digest on import, so a wrong byte cannot go unseen.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use bollard::Docker;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

/// tar-split's entry types.
const FILE_ENTRY: u8 = 1;
const SEGMENT_ENTRY: u8 = 2;

/// The local engine's `overlay2` storage.
#[derive(Debug, Clone)]
pub struct EngineStorage {
    root: PathBuf,
}

/// An image found in the engine's storage.
#[derive(Debug)]
pub struct EngineImage {
    /// The config's bytes, whose digest is the image ID.
    pub config: Vec<u8>,
    /// In order, base first.
    pub layers: Vec<Arc<EngineLayer>>,
}

/// One layer: where its files and its tar-split record are.
#[derive(Debug)]
pub struct EngineLayer {
    pub diff_id: String,
    /// The size of the layer's tar.
    pub size: u64,
    files: PathBuf,
    split: PathBuf,
}

#[derive(Deserialize)]
struct SplitEntry {
    #[serde(rename = "type")]
    kind: u8,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    name_raw: Option<String>,
    #[serde(default)]
    size: u64,
    #[serde(default)]
    payload: Option<String>,
}

impl SplitEntry {
    fn payload(&self) -> std::io::Result<Vec<u8>> {
        base64::engine::general_purpose::STANDARD
            .decode(self.payload.as_deref().unwrap_or_default())
            .map_err(std::io::Error::other)
    }

    fn path(&self) -> std::io::Result<PathBuf> {
        use std::os::unix::ffi::OsStringExt as _;
        match &self.name_raw {
            Some(raw) => Ok(PathBuf::from(std::ffi::OsString::from_vec(
                base64::engine::general_purpose::STANDARD
                    .decode(raw)
                    .map_err(std::io::Error::other)?,
            ))),
            None => Ok(PathBuf::from(self.name.clone().unwrap_or_default())),
        }
    }
}

/// The lines of a tar-split record, parsed one at a time.
fn split_entries(
    split: &Path,
) -> std::io::Result<impl Iterator<Item = std::io::Result<SplitEntry>> + Send + use<>> {
    let file = std::fs::File::open(split)?;
    let lines = BufReader::new(flate2::read::GzDecoder::new(file)).lines();
    Ok(lines
        .filter(|line| !matches!(line, Ok(line) if line.trim().is_empty()))
        .map(|line| {
            line.and_then(|line| serde_json::from_str(&line).map_err(std::io::Error::other))
        }))
}

fn hex_of(digest: &str) -> &str {
    digest.trim_start_matches("sha256:")
}

impl EngineStorage {
    /// The engine's storage, if it uses `overlay2` and its root is readable here.
    pub async fn locate(docker: &Docker) -> Option<EngineStorage> {
        let info = docker.info().await.ok()?;
        if info.driver.as_deref() != Some("overlay2") {
            return None;
        }
        let root = PathBuf::from(info.docker_root_dir?);
        std::fs::read_dir(root.join("image/overlay2/layerdb/sha256")).ok()?;
        Some(EngineStorage { root })
    }

    /// The image with ID `id` and layers `diff_ids` (as `docker image
    /// inspect` gives them), if the storage holds all of it.
    pub fn image(&self, id: &str, diff_ids: &[String]) -> Option<EngineImage> {
        let config = std::fs::read(
            self.root
                .join("image/overlay2/imagedb/content/sha256")
                .join(hex_of(id)),
        )
        .ok()?;
        if hex::encode(Sha256::digest(&config)) != hex_of(id) {
            return None;
        }
        let mut layers = Vec::with_capacity(diff_ids.len());
        let mut chain = String::new();
        for diff_id in diff_ids {
            chain = if chain.is_empty() {
                diff_id.clone()
            } else {
                format!(
                    "sha256:{}",
                    hex::encode(Sha256::digest(format!("{chain} {diff_id}")))
                )
            };
            layers.push(Arc::new(self.layer(&chain, diff_id).ok()??));
        }
        Some(EngineImage { config, layers })
    }

    fn layer(&self, chain: &str, diff_id: &str) -> std::io::Result<Option<EngineLayer>> {
        let record = self
            .root
            .join("image/overlay2/layerdb/sha256")
            .join(hex_of(chain));
        let recorded_diff = std::fs::read_to_string(record.join("diff"))?;
        if recorded_diff.trim() != diff_id {
            return Ok(None);
        }
        let cache_id = std::fs::read_to_string(record.join("cache-id"))?;
        let files = self
            .root
            .join("overlay2")
            .join(cache_id.trim())
            .join("diff");
        if !files.is_dir() {
            return Ok(None);
        }
        let split = record.join("tar-split.json.gz");
        let mut size = 0;
        for entry in split_entries(&split)? {
            let entry = entry?;
            size += match entry.kind {
                SEGMENT_ENTRY => entry.payload()?.len() as u64,
                FILE_ENTRY => entry.size,
                _ => 0,
            };
        }
        Ok(Some(EngineLayer {
            diff_id: diff_id.to_owned(),
            size,
            files,
            split,
        }))
    }
}

impl EngineLayer {
    /// The layer's tar, reassembled as it is read.
    pub fn reader(&self) -> std::io::Result<impl Read + Send + use<>> {
        Ok(LayerReader {
            files: self.files.clone(),
            entries: Box::new(split_entries(&self.split)?),
            current: None,
        })
    }
}

struct LayerReader {
    files: PathBuf,
    entries: Box<dyn Iterator<Item = std::io::Result<SplitEntry>> + Send>,
    current: Option<Box<dyn Read + Send>>,
}

impl Read for LayerReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if let Some(current) = &mut self.current {
                let read = current.read(buf)?;
                if read > 0 {
                    return Ok(read);
                }
                self.current = None;
            }
            let Some(entry) = self.entries.next() else {
                return Ok(0);
            };
            let entry = entry?;
            self.current = match entry.kind {
                SEGMENT_ENTRY => Some(Box::new(std::io::Cursor::new(entry.payload()?))),
                FILE_ENTRY if entry.size > 0 => Some(Box::new(
                    std::fs::File::open(self.files.join(entry.path()?))?.take(entry.size),
                )),
                _ => None,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    /// A layer record as the engine writes it: one file between segments.
    fn record(dir: &Path, header: &[u8], contents: &[u8], trailer: &[u8]) -> EngineLayer {
        let files = dir.join("diff");
        std::fs::create_dir_all(files.join("etc")).unwrap();
        std::fs::write(files.join("etc/hostname"), contents).unwrap();
        let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
        let lines = [
            serde_json::json!({"type": 2, "payload": b64(header), "position": 0}),
            serde_json::json!({"type": 1, "name": "etc/hostname", "size": contents.len(), "payload": "AAAAAAAAAAA=", "position": 1}),
            serde_json::json!({"type": 2, "payload": b64(trailer), "position": 2}),
        ];
        let split = dir.join("tar-split.json.gz");
        let mut gz = flate2::write::GzEncoder::new(
            std::fs::File::create(&split).unwrap(),
            flate2::Compression::fast(),
        );
        for line in lines {
            writeln!(gz, "{line}").unwrap();
        }
        gz.finish().unwrap();
        EngineLayer {
            diff_id: String::new(),
            size: (header.len() + contents.len() + trailer.len()) as u64,
            files,
            split,
        }
    }

    #[test]
    fn a_layer_is_its_segments_and_files_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let layer = record(dir.path(), b"HEADER", b"kindling-node\n", b"PADDING");
        let mut tar = Vec::new();
        layer.reader().unwrap().read_to_end(&mut tar).unwrap();
        assert_eq!(tar, b"HEADERkindling-node\nPADDING");
        assert_eq!(tar.len() as u64, layer.size);
    }

    #[test]
    fn a_missing_file_is_an_error_not_a_short_layer() {
        let dir = tempfile::tempdir().unwrap();
        let layer = record(dir.path(), b"H", b"x", b"P");
        std::fs::remove_file(dir.path().join("diff/etc/hostname")).unwrap();
        let mut tar = Vec::new();
        assert!(layer.reader().unwrap().read_to_end(&mut tar).is_err());
    }
}
