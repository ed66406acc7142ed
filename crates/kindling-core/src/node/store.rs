//! Operations on a node's containerd image store, with the flags kind uses.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::{ByteStream, ExecOutput, NodeError, NodeTransport};

/// The namespace the kubelet's CRI uses.
const NAMESPACE: &str = "--namespace=k8s.io";

/// One reference a node's store holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredImage {
    /// As containerd names it (`docker.io/library/nginx:latest`).
    pub reference: String,
    /// The manifest (or index) digest the reference points at.
    pub manifest_digest: String,
    /// The image ID (config digest), as `docker image inspect` reports it.
    pub image_id: Option<String>,
}

/// How long a node command may go without progress (taking input,
/// printing) before it is killed. The longest quiet stretch of a healthy
/// one is `ctr images import` unpacking one image after its stream ended,
/// at the speed of the node's disk: three minutes cover an image of many
/// gigabytes.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(180);

/// A node's `k8s.io` image store.
#[derive(Clone)]
pub struct NodeStore {
    transport: Arc<dyn NodeTransport>,
    snapshotter: Arc<tokio::sync::OnceCell<String>>,
    idle_timeout: Duration,
}

impl NodeStore {
    /// The image store of the node `transport` runs commands on; each
    /// command is killed after [`DEFAULT_IDLE_TIMEOUT`] without progress.
    pub fn new(transport: Arc<dyn NodeTransport>) -> Self {
        NodeStore {
            transport,
            snapshotter: Arc::default(),
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
        }
    }

    /// Kills each command after `idle` without progress instead.
    pub fn with_idle_timeout(mut self, idle: Duration) -> Self {
        self.idle_timeout = idle;
        self
    }

    /// The node's name, as its transport gives it.
    pub fn name(&self) -> &str {
        self.transport.node_name()
    }

    async fn run(&self, argv: &[&str], stdin: Option<ByteStream>) -> Result<ExecOutput, NodeError> {
        let argv: Vec<String> = argv.iter().map(|arg| (*arg).to_owned()).collect();
        let output = self
            .transport
            .exec(argv.clone(), stdin, self.idle_timeout)
            .await?;
        if output.exit_code != 0 {
            return Err(NodeError::Failed {
                node: self.name().to_owned(),
                command: argv.join(" "),
                code: output.exit_code,
                stderr: output.stderr.trim().to_owned(),
            });
        }
        Ok(output)
    }

    /// The snapshotter the CRI plugin unpacks images with (asked once per store).
    pub async fn snapshotter(&self) -> Result<String, NodeError> {
        self.snapshotter
            .get_or_try_init(|| async {
                let output = self.run(&["containerd", "config", "dump"], None).await?;
                parse_snapshotter(&output.stdout).ok_or_else(|| NodeError::NoSnapshotter {
                    node: self.name().to_owned(),
                })
            })
            .await
            .cloned()
    }

    /// Every reference in the store, with its image ID where it can be told.
    pub async fn list(&self) -> Result<Vec<StoredImage>, NodeError> {
        self.list_filtered(&[]).await
    }

    /// The references of the store named `names` (references, or image IDs
    /// `sha256:<config digest>`, which the CRI plugin names each image it
    /// manages by), with their image IDs. Much cheaper than [`Self::list`]
    /// on a node holding many images: `ctr images ls` sizes every image it
    /// lists. No name lists nothing.
    pub async fn list_named(&self, names: &[&str]) -> Result<Vec<StoredImage>, NodeError> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let filters: Vec<String> = names.iter().map(|name| name_filter(name)).collect();
        self.list_filtered(&filters).await
    }

    /// `ctr images ls` with `filters` (any of them matching; none: every image).
    async fn list_filtered(&self, filters: &[String]) -> Result<Vec<StoredImage>, NodeError> {
        let mut argv = vec!["ctr", NAMESPACE, "images", "ls"];
        argv.extend(filters.iter().map(String::as_str));
        let output = self.run(&argv, None).await?;
        let listed = parse_image_list(&output.stdout);
        // The CRI plugin names every image it manages by its ID too
        // (`sha256:<config digest>`): that gives the ID of each manifest.
        let mut ids: BTreeMap<String, String> = listed
            .iter()
            .filter(|(reference, _)| is_image_id(reference))
            .map(|(reference, digest)| (digest.clone(), reference.clone()))
            .collect();
        let unresolved: Vec<String> = listed
            .iter()
            .filter(|(_, digest)| !ids.contains_key(digest))
            .map(|(_, digest)| digest.clone())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        for digest in unresolved {
            if let Some(id) = self.config_digest(&digest).await? {
                ids.insert(digest, id);
            }
        }
        Ok(listed
            .into_iter()
            .map(|(reference, manifest_digest)| StoredImage {
                image_id: ids.get(&manifest_digest).cloned(),
                reference,
                manifest_digest,
            })
            .collect())
    }

    /// The digests of every blob in the node's content store (layers,
    /// configs, manifests), for a load to send only what is absent.
    pub async fn content_digests(&self) -> Result<std::collections::BTreeSet<String>, NodeError> {
        let output = self
            .run(&["ctr", NAMESPACE, "content", "ls", "--quiet"], None)
            .await?;
        Ok(output
            .stdout
            .lines()
            .map(str::trim)
            .filter(|line| line.starts_with("sha256:"))
            .map(str::to_owned)
            .collect())
    }

    /// The config digest of a single-platform manifest; `None` for an index.
    async fn config_digest(&self, manifest_digest: &str) -> Result<Option<String>, NodeError> {
        let output = self
            .run(&["ctr", NAMESPACE, "content", "get", manifest_digest], None)
            .await?;
        let manifest: serde_json::Value = serde_json::from_str(&output.stdout).unwrap_or_default();
        Ok(manifest["config"]["digest"].as_str().map(str::to_owned))
    }

    /// Imports a `docker save` stream, or an OCI image layout, with kind's flags. Without
    /// `all_platforms` only the node's own platform is imported.
    pub async fn import(
        &self,
        snapshotter: &str,
        all_platforms: bool,
        archive: ByteStream,
    ) -> Result<(), NodeError> {
        let snapshotter = format!("--snapshotter={snapshotter}");
        let mut argv = vec!["ctr", NAMESPACE, "images", "import"];
        if all_platforms {
            argv.push("--all-platforms");
        }
        argv.extend(["--digests", snapshotter.as_str(), "-"]);
        self.run(&argv, Some(archive)).await.map(drop)
    }

    /// Names the image `source` points at as `target` too (no bytes sent).
    pub async fn tag(&self, source: &str, target: &str) -> Result<(), NodeError> {
        self.run(
            &["ctr", NAMESPACE, "images", "tag", "--force", source, target],
            None,
        )
        .await
        .map(drop)
    }

    /// Removes references (their content stays until garbage-collected).
    pub async fn remove(&self, references: &[&str]) -> Result<(), NodeError> {
        let mut argv = vec!["ctr", NAMESPACE, "images", "rm"];
        argv.extend(references);
        self.run(&argv, None).await.map(drop)
    }
}

/// A containerd filter matching the image named `name` exactly; the value
/// quoted, as references hold `/`, `:` and `@`.
fn name_filter(name: &str) -> String {
    let escaped = name.replace('\\', "\\\\").replace('"', "\\\"");
    format!("name==\"{escaped}\"")
}

fn is_image_id(reference: &str) -> bool {
    reference.starts_with("sha256:") && !reference.contains('/')
}

/// `(reference, digest)` pairs of `ctr images ls` output.
pub(crate) fn parse_image_list(text: &str) -> Vec<(String, String)> {
    text.lines()
        .skip_while(|line| !line.starts_with("REF"))
        .skip(1)
        .filter_map(|line| {
            let mut columns = line.split_whitespace();
            let reference = columns.next()?;
            let _media_type = columns.next()?;
            let digest = columns.next()?;
            digest
                .starts_with("sha256:")
                .then(|| (reference.to_owned(), digest.to_owned()))
        })
        .collect()
}

/// The CRI snapshotter in `containerd config dump` (1.x and 2.x layouts),
/// else the first snapshotter setting.
pub(crate) fn parse_snapshotter(config: &str) -> Option<String> {
    let mut section = String::new();
    let mut first = None;
    for line in config.lines().map(str::trim) {
        if line.starts_with('[') {
            section = line.to_owned();
            continue;
        }
        let Some(value) = line.strip_prefix("snapshotter").map(str::trim_start) else {
            continue;
        };
        let Some(value) = value.strip_prefix('=') else {
            continue;
        };
        let value = value.trim().trim_matches(|c| c == '"' || c == '\'');
        if value.is_empty() {
            continue;
        }
        if section.contains("cri") {
            return Some(value.to_owned());
        }
        first.get_or_insert_with(|| value.to_owned());
    }
    first
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_list_is_parsed() {
        let text = "REF TYPE DIGEST SIZE PLATFORMS LABELS\n\
            import-2026-11-26@sha256:eace application/vnd.docker.distribution.manifest.v2+json sha256:eace 4.8 MiB linux/amd64 io.cri-containerd.image=managed\n\
            localhost/kindling/test:abc application/vnd.docker.distribution.manifest.v2+json sha256:eace 4.8 MiB linux/amd64 io.cri-containerd.image=managed\n\
            sha256:7d5c application/vnd.docker.distribution.manifest.v2+json sha256:eace 4.8 MiB linux/amd64 -\n";
        let parsed = parse_image_list(text);
        assert_eq!(parsed.len(), 3);
        assert_eq!(
            parsed[1],
            (
                "localhost/kindling/test:abc".to_owned(),
                "sha256:eace".to_owned()
            )
        );
        assert!(is_image_id(&parsed[2].0) && !is_image_id(&parsed[1].0));
        assert!(parse_image_list("REF TYPE DIGEST SIZE PLATFORMS LABELS\n").is_empty());
    }

    #[test]
    fn a_name_filter_quotes_the_reference() {
        assert_eq!(
            name_filter("localhost/kindling/api:c-1@sha256:ab"),
            r#"name=="localhost/kindling/api:c-1@sha256:ab""#
        );
        assert_eq!(name_filter(r#"a"b\c"#), r#"name=="a\"b\\c""#);
    }

    #[test]
    fn snapshotter_comes_from_the_cri_section() {
        let v1 = "[plugins.\"io.containerd.grpc.v1.cri\".containerd]\n  default_runtime_name = \"runc\"\n  snapshotter = \"overlayfs\"\n[plugins.\"io.containerd.snapshotter.v1.native\"]\n  root_path = \"\"\n";
        assert_eq!(parse_snapshotter(v1).as_deref(), Some("overlayfs"));
        let v2 = "[plugins.'io.containerd.transfer.v1.local']\n  snapshotter = 'native'\n[plugins.'io.containerd.cri.v1.images']\n  snapshotter = 'overlayfs'\n";
        assert_eq!(parse_snapshotter(v2).as_deref(), Some("overlayfs"));
        assert_eq!(
            parse_snapshotter("[x]\n  snapshotter = \"native\"\n").as_deref(),
            Some("native")
        );
        assert_eq!(parse_snapshotter("version = 2\n"), None);
    }
}
