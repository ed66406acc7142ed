//! kindling's Kind node image, made on this machine where no `kindest/node`
//! can be pulled: the pinned Kubernetes (the local provider's binaries,
//! plus kubeadm and kubectl), containerd, runc, crictl and the CNI plugins
//! in a Debian root filesystem made by mmdebstrap, laid out as kind v0.33.0's
//! `images/base` lays a node out, with the control-plane images, kindling's
//! CNI daemon (`kindling-cni`, in place of kind's kindnetd)
//! and local-path-provisioner built from those binaries and preloaded into
//! the node's containerd as `kind build node-image` preloads them.
//!
//! Every step goes through the engine's API with the legacy builder (no
//! BuildKit needed). The image is tagged with a digest of its inputs (the
//! pinned modules and versions, the files under `crates/kindling-core/kind-node/`)
//! and is built again only when they change; its components are cached in
//! `~/.cache/kindling/bin/` with digests, like the local provider's.

mod components;
pub(crate) mod sources;
mod upstream;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use bollard::Docker;
use bollard::models::{ContainerConfig, ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    CommitContainerOptions, CreateContainerOptionsBuilder, RemoveContainerOptionsBuilder,
    UploadToContainerOptionsBuilder,
};
use futures_util::StreamExt as _;
use sha2::{Digest as _, Sha256};

pub use components::{
    CNI_PLUGINS, CNI_PLUGINS_VERSION, CONTAINERD_VERSION, CRICTL_VERSION,
    LOCAL_PATH_PROVISIONER_VERSION, NodeBinaries, NodeComponentsError, PAUSE_VERSION, RUNC_VERSION,
    ensure_built as ensure_components, kindling_cni_version,
};

use crate::cluster::components::{COREDNS_VERSION, ETCD_VERSION, KUBERNETES_VERSION};
use crate::image::{BuildError, Builder, ImageRef, ImageSpec, TagPolicy};
use crate::node::{DockerExec, NodeError, NodeTransport as _};

/// Where kindling's Kind node image and the images it is made from go in
/// the engine: beside, never among, the `localhost/kindling/*` names of a
/// suite's images.
pub const NAMESPACE: &str = "localhost/kindling-kind";

/// The repository of kindling's Kind node image.
pub const REPOSITORY: &str = "localhost/kindling-kind/node";

/// The Debian release of the node's root filesystem and of the images'.
pub const DEBIAN_RELEASE: &str = "bookworm";

/// The node's Debian packages (kind's `images/base` installs the same,
/// less fuse-overlayfs, nfs-common and open-iscsi).
const NODE_PACKAGES: &[&str] = &[
    "systemd",
    "systemd-sysv",
    "conntrack",
    "iptables",
    "nftables",
    "iproute2",
    "ethtool",
    "util-linux",
    "mount",
    "kmod",
    "libseccomp2",
    "pigz",
    "e2fsprogs",
    "bash",
    "ca-certificates",
    "curl",
    "jq",
    "procps",
    "iputils-ping",
    "socat",
    "findutils",
];

/// The Debian packages under kube-proxy, the CNI daemon and the local-path
/// helper. Their `iptables` is Debian's default, the nft backend, and so is
/// the node's (see `images/iptables-base/Dockerfile` and the entrypoint's
/// `select_iptables`).
const IPTABLES_PACKAGES: &[&str] = &["iptables", "nftables", "conntrack", "kmod", "ipset"];

/// Bump when the way the image is put together changes.
const RECIPE: &str = "kindling kind node image v1";

/// The CoreDNS image: the local provider's CoreDNS, whose version is not
/// the one kubeadm 1.34 names by default (v1.12.1): kindling's kind
/// configuration tells kubeadm (see [`config_patches`]).
fn coredns_image() -> String {
    format!("registry.k8s.io/coredns/coredns:{COREDNS_VERSION}")
}

/// The CNI daemon's name in the node and in the default CNI manifest.
fn cni_image() -> String {
    format!("{NAMESPACE}/kindling-cni:{}", kindling_cni_version())
}

/// local-path-provisioner's name in the node and the storage manifest.
fn local_path_provisioner_image() -> String {
    format!("{NAMESPACE}/local-path-provisioner:{LOCAL_PATH_PROVISIONER_VERSION}")
}

/// The local-path helper's name in the node and the storage manifest.
fn local_path_helper_image() -> String {
    format!("{NAMESPACE}/local-path-helper:{DEBIAN_RELEASE}")
}

/// The images preloaded into the node: each component image's name in
/// this build and its name in the node's containerd.
fn preloaded() -> Vec<(&'static str, String)> {
    let kubernetes = |name: &str| format!("registry.k8s.io/{name}:{KUBERNETES_VERSION}");
    vec![
        ("kube-apiserver", kubernetes("kube-apiserver")),
        (
            "kube-controller-manager",
            kubernetes("kube-controller-manager"),
        ),
        ("kube-scheduler", kubernetes("kube-scheduler")),
        ("kube-proxy", kubernetes("kube-proxy")),
        (
            "etcd",
            format!(
                "registry.k8s.io/etcd:{}-0",
                ETCD_VERSION.trim_start_matches('v')
            ),
        ),
        ("coredns", coredns_image()),
        ("pause", format!("registry.k8s.io/pause:{PAUSE_VERSION}")),
        ("kindling-cni", cni_image()),
        ("local-path-provisioner", local_path_provisioner_image()),
        ("local-path-helper", local_path_helper_image()),
    ]
}

/// The kubeadm patches a cluster of kindling's node image needs, for the
/// `kubeadmConfigPatches` of its kind configuration: the CoreDNS the node
/// holds, and the kubelet running on cgroup v1 hosts (1.34's default,
/// written out so it holds should the default move).
pub fn config_patches() -> Vec<String> {
    vec![
        format!("kind: ClusterConfiguration\ndns:\n  imageTag: {COREDNS_VERSION}\n"),
        "kind: KubeletConfiguration\nfailCgroupV1: false\n".to_owned(),
    ]
}

/// The reference kindling's node image has: `localhost/kindling-kind/node:
/// <Kubernetes version>-<digest of its inputs>`. Cheap: nothing is built
/// or read but what is compiled in.
pub fn reference() -> String {
    let mut hasher = Sha256::new();
    let mut feed = |bytes: &[u8]| {
        hasher.update((bytes.len() as u64).to_le_bytes());
        hasher.update(bytes);
    };
    feed(RECIPE.as_bytes());
    feed(std::env::consts::ARCH.as_bytes());
    feed(DEBIAN_RELEASE.as_bytes());
    for package in NODE_PACKAGES.iter().chain(IPTABLES_PACKAGES) {
        feed(package.as_bytes());
    }
    for (name, node_name) in preloaded() {
        feed(name.as_bytes());
        feed(node_name.as_bytes());
    }
    for patch in config_patches() {
        feed(patch.as_bytes());
    }
    for (path, contents) in sources::all() {
        feed(path.as_bytes());
        feed(contents.as_bytes());
    }
    // kind's own node files: the module's hash pins their contents.
    feed(crate::cluster::kind::pinned::module_sum().as_bytes());
    for file in upstream::BASE_FILES {
        feed(file.as_bytes());
    }
    components::feed_digest(&mut feed);
    let digest = hex::encode(hasher.finalize());
    format!("{REPOSITORY}:{KUBERNETES_VERSION}-{}", &digest[..12])
}

/// The check of `KINDLING_KIND_NODE_IMAGE`'s value, for the harness's
/// variable table: an image reference (empty is unset).
pub(crate) fn check_variable(value: &str) -> Result<(), String> {
    if value.trim().is_empty() {
        return Ok(());
    }
    crate::image::normalize(value.trim())
        .map(drop)
        .map_err(|error| format!("an image reference such as `kindest/node:v1.34.0` ({error})"))
}

/// kindling's node image in the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeImage {
    /// Its reference, [`reference()`].
    pub reference: String,
    /// Its image ID.
    pub id: String,
    /// Whether this call built it.
    pub built: bool,
}

/// Making kindling's Kind node image failed.
#[derive(Debug, thiserror::Error)]
pub enum NodeImageError {
    /// Building the binaries it holds failed.
    #[error(transparent)]
    Components(#[from] NodeComponentsError),
    /// A build context could not be written.
    #[error("cannot write `{}`, part of the build of the Kind node image `{image}`", path.display())]
    Stage {
        /// The node image.
        image: String,
        /// The file or folder.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// kind's own node files could not be obtained from its module.
    #[error("cannot obtain kind's node files for the Kind node image `{image}`")]
    KindFiles {
        /// The node image.
        image: String,
        /// Why.
        #[source]
        source: Box<upstream::UpstreamError>,
    },
    /// A component image or the base image failed to build.
    #[error("cannot build the images the Kind node image `{image}` is made of")]
    Images {
        /// The node image.
        image: String,
        /// The build's error, naming the image.
        #[source]
        source: Box<BuildError>,
    },
    /// The engine refused a step of the node's assembly.
    #[error("the engine failed to {step} for the Kind node image `{image}`")]
    Engine {
        /// The node image.
        image: String,
        /// The step, e.g. `commit the build container`.
        step: String,
        /// The Docker client's error.
        #[source]
        source: bollard::errors::Error,
    },
    /// A command in the build container could not run.
    #[error("cannot run a command in the build container of the Kind node image `{image}`")]
    Exec {
        /// The node image.
        image: String,
        /// The exec's error, naming the command.
        #[source]
        source: NodeError,
    },
    /// A command in the build container failed.
    #[error(
        "`{command}` failed in the build container of the Kind node image `{image}` (exit code {code}):\n{output}"
    )]
    Command {
        /// The node image.
        image: String,
        /// The command line.
        command: String,
        /// Its exit code.
        code: i64,
        /// What it printed, stdout then stderr, trimmed.
        output: String,
    },
    /// After the preload, images kubeadm or kind's manifests name are not
    /// in the node's containerd.
    #[error(
        "the Kind node image `{image}` would lack {}, which kubeadm or kind's manifests name: its containerd holds {}",
        missing.join(", "),
        held.join(", ")
    )]
    Missing {
        /// The node image.
        image: String,
        /// The images missing.
        missing: Vec<String>,
        /// What the node's containerd holds.
        held: Vec<String>,
    },
    /// Taking the lock that makes builds of the node image take turns failed.
    #[error(transparent)]
    Lock(#[from] crate::cluster::lock::LockError),
}

/// kindling's node image: found in the engine under [`reference()`], or
/// built now (its components first, when missing from `cache`), one
/// process at a time per cache. `say` gets a line per step with the
/// expected time.
pub async fn ensure(
    docker: &Docker,
    cache: &Path,
    say: &(dyn Fn(&str) + Send + Sync),
) -> Result<NodeImage, NodeImageError> {
    let image = reference();
    if let Some(found) = existing(docker, &image).await {
        return Ok(found);
    }
    let _lock = crate::cluster::lock::exclusive(
        &cache.join("kind-node-image.lock"),
        "building the Kind node image",
        "waiting for another process to build the Kind node image",
    )
    .await?;
    if let Some(found) = existing(docker, &image).await {
        return Ok(found);
    }
    let started = Instant::now();
    say(&format!(
        "making the Kind node image `{image}` (Kubernetes {KUBERNETES_VERSION}): its components first, when not built yet"
    ));
    let id = build(docker, cache, &image, say).await?;
    say(&format!(
        "made the Kind node image `{image}` in {:.0} s",
        started.elapsed().as_secs_f64()
    ));
    Ok(NodeImage {
        reference: image,
        id,
        built: true,
    })
}

/// The node image `image` when the engine has it already.
async fn existing(docker: &Docker, image: &str) -> Option<NodeImage> {
    let found = ImageRef::existing(docker, "kind-node", image).await.ok()?;
    Some(NodeImage {
        reference: image.to_owned(),
        id: found.id().to_owned(),
        built: false,
    })
}

/// Builds the node image `image`: its components (when missing from
/// `cache`), the images it is made of, then its assembly; its image ID.
async fn build(
    docker: &Docker,
    cache: &Path,
    image: &str,
    say: &(dyn Fn(&str) + Send + Sync),
) -> Result<String, NodeImageError> {
    let binaries = components::ensure_built(cache, say).await?;
    let kind_files =
        upstream::base_files(cache)
            .await
            .map_err(|source| NodeImageError::KindFiles {
                image: image.to_owned(),
                source: Box::new(source),
            })?;
    crate::cluster::components::create_dir(cache)
        .map_err(|error| NodeImageError::Components(error.into()))?;
    let work = tempfile::Builder::new()
        .prefix("kind-node-build-")
        .tempdir_in(cache)
        .map_err(|source| NodeImageError::Stage {
            image: image.to_owned(),
            path: cache.to_owned(),
            source,
        })?;
    say(&format!(
        "building the node's base image and its {} preloaded images from those components (first time about 2 min, more when the Debian root filesystems are new: about 2 min each)",
        preloaded().len()
    ));
    let specs = {
        let work = work.path().to_owned();
        let binaries = binaries.clone();
        stage_off_thread(image, move || stage_specs(&work, &binaries, &kind_files)).await?
    };
    let images = build_images(docker, image, &specs).await?;
    say(&format!(
        "preloading {} images into the node's containerd and committing the node image (about 1 min)",
        preloaded().len()
    ));
    let node_files = work.path().join("node-root");
    {
        let node_files = node_files.clone();
        stage_off_thread(image, move || stage_node_files(&node_files, &binaries)).await?;
    }
    // Uploading, importing and committing a gigabyte take longer than the
    // client's usual two minutes on a busy machine.
    let patient = docker.clone().with_timeout(ASSEMBLY_TIMEOUT);
    let id = Assembly::new(&patient, image)
        .run(&images, &node_files)
        .await?;
    drop(work);
    Ok(id)
}

/// Runs the staging `stage` on a blocking thread; its failure names the
/// node image `image`.
async fn stage_off_thread<T: Send + 'static>(
    image: &str,
    stage: impl FnOnce() -> StageResult<T> + Send + 'static,
) -> Result<T, NodeImageError> {
    tokio::task::spawn_blocking(stage)
        .await
        .expect("staging does not panic")
        .map_err(|(path, source)| NodeImageError::Stage {
            image: image.to_owned(),
            path,
            source,
        })
}

/// Builds the images the node image `image` is made of, from `specs`;
/// each by its name.
async fn build_images(
    docker: &Docker,
    image: &str,
    specs: &[ImageSpec],
) -> Result<BTreeMap<String, ImageRef>, NodeImageError> {
    let built = Builder::new(docker.clone())
        .policy(TagPolicy::Content)
        .build_all(specs)
        .await
        .map_err(|source| NodeImageError::Images {
            image: image.to_owned(),
            source: Box::new(source),
        })?;
    Ok(built
        .into_iter()
        .map(|outcome| (outcome.image.name().to_owned(), outcome.image))
        .collect())
}

type StageResult<T> = Result<T, (PathBuf, std::io::Error)>;

/// Writes `contents` at `dir/relative` with `mode`, making its folders.
fn write_file(dir: &Path, relative: &str, contents: &[u8], mode: u32) -> StageResult<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let path = dir.join(relative);
    let write = || -> std::io::Result<()> {
        create_dirs(path.parent().expect("a file has a folder"))?;
        std::fs::write(&path, contents)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
    };
    write().map_err(|error| (path.clone(), error))
}

/// Makes `dir` and its missing parents `0755`: they become folders of images.
fn create_dirs(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
}

/// Copies the binary `from` to `dir/relative` (0755), without its symbols
/// and debug information when `strip` is on `PATH` (the local provider's
/// Kubernetes binaries keep theirs: 30 % of their size).
fn stage_binary(from: &Path, dir: &Path, relative: &str) -> StageResult<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let to = dir.join(relative);
    let copy = || -> std::io::Result<()> {
        create_dirs(to.parent().expect("a file has a folder"))?;
        let stripped = kindling_harness::requirement::find_program("strip").is_some_and(|strip| {
            std::process::Command::new(strip)
                .arg("-o")
                .arg(&to)
                .arg(from)
                .status()
                .is_ok_and(|status| status.success())
        });
        if !stripped {
            std::fs::copy(from, &to)?;
        }
        std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o755))
    };
    copy().map_err(|error| (from.to_owned(), error))
}

/// The build contexts of every image the node is made of, under `work`,
/// and their specs.
fn stage_specs(
    work: &Path,
    binaries: &NodeBinaries,
    kind_files: &[(String, String)],
) -> StageResult<Vec<ImageSpec>> {
    let mut specs = vec![
        ImageSpec::debian("node-rootfs", DEBIAN_RELEASE)
            .debian_packages(NODE_PACKAGES.iter().copied())
            .in_namespace(NAMESPACE),
        ImageSpec::debian("iptables-rootfs", DEBIAN_RELEASE)
            .debian_variant("essential")
            .debian_packages(IPTABLES_PACKAGES.iter().copied())
            .in_namespace(NAMESPACE),
    ];
    for (name, folder, files) in component_images(binaries) {
        let context = stage_component_image(work, name, folder, &files)?;
        specs.push(ImageSpec::new(name, &context).in_namespace(NAMESPACE));
    }
    let base = stage_base(work, binaries, kind_files)?;
    specs.push(ImageSpec::new("base", &base).in_namespace(NAMESPACE));
    Ok(specs)
}

/// The images built from kindling's Dockerfiles before the base: each
/// image's name, its Dockerfile's folder under `kind-node/images/`, and
/// the binaries it holds.
fn component_images(binaries: &NodeBinaries) -> Vec<(&'static str, &'static str, Vec<PathBuf>)> {
    let local = &binaries.local;
    let kubernetes = |name: &str| local.kubernetes(name);
    vec![
        ("static-base", "static-base", vec![]),
        ("iptables-base", "iptables-base", vec![]),
        (
            "kube-apiserver",
            "k8s-static",
            vec![kubernetes("kube-apiserver")],
        ),
        (
            "kube-controller-manager",
            "k8s-static",
            vec![kubernetes("kube-controller-manager")],
        ),
        (
            "kube-scheduler",
            "k8s-static",
            vec![kubernetes("kube-scheduler")],
        ),
        ("kube-proxy", "k8s-iptables", vec![kubernetes("kube-proxy")]),
        ("etcd", "k8s-static", vec![local.etcd.clone()]),
        ("coredns", "coredns", vec![local.coredns.clone()]),
        ("pause", "pause", vec![binaries.pause()]),
        (
            "kindling-cni",
            "kindling-cni",
            vec![binaries.kindling_cni()],
        ),
        (
            "local-path-provisioner",
            "local-path-provisioner",
            vec![binaries.local_path_provisioner()],
        ),
        ("local-path-helper", "local-path-helper", vec![]),
    ]
}

/// The build context of the component image `name` under `work`: the
/// files of `kind-node/images/<folder>/` and the binaries `files` in its
/// `bin/`.
fn stage_component_image(
    work: &Path,
    name: &str,
    folder: &str,
    files: &[PathBuf],
) -> StageResult<PathBuf> {
    let context = work.join(name);
    for (relative, contents, mode) in sources::under(sources::IMAGES, &format!("images/{folder}/"))
    {
        // The static base's own files go under rootfs/, the context's
        // Dockerfile at its root.
        let relative = if relative == "Dockerfile" {
            relative.to_owned()
        } else {
            format!("rootfs/{relative}")
        };
        write_file(&context, &relative, contents.as_bytes(), mode)?;
    }
    if name == "static-base" {
        use std::os::unix::fs::PermissionsExt as _;
        let tmp = context.join("rootfs/tmp");
        create_dirs(&tmp)
            .and_then(|()| std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o1777)))
            .map_err(|error| (tmp.clone(), error))?;
    }
    for file in files {
        let file_name = file
            .file_name()
            .expect("a binary has a name")
            .to_string_lossy()
            .into_owned();
        stage_binary(file, &context, &format!("bin/{file_name}"))?;
    }
    Ok(context)
}

/// The base image's build context under `work`: kindling's `base/` files
/// (less its patches), kind's node files, containerd, runc, crictl and the
/// CNI plugins.
fn stage_base(
    work: &Path,
    binaries: &NodeBinaries,
    kind_files: &[(String, String)],
) -> StageResult<PathBuf> {
    let base = work.join("base");
    for (relative, contents, mode) in sources::under(sources::BASE, "base/") {
        if !relative.starts_with("patches/") {
            write_file(&base, relative, contents.as_bytes(), mode)?;
        }
    }
    for (file, contents) in kind_files {
        let relative = format!("files/{file}");
        let mode = if sources::executable(&format!("base/{relative}")) {
            0o755
        } else {
            0o644
        };
        write_file(&base, &relative, contents.as_bytes(), mode)?;
    }
    for name in ["containerd", "containerd-shim-runc-v2", "ctr"] {
        stage_binary(
            &binaries.containerd(name),
            &base,
            &format!("bin/containerd/{name}"),
        )?;
    }
    stage_binary(&binaries.runc(), &base, "bin/runc/runc")?;
    stage_binary(&binaries.crictl(), &base, "bin/crictl/crictl")?;
    for plugin in CNI_PLUGINS {
        stage_binary(
            &binaries.cni_plugin(plugin),
            &base,
            &format!("bin/cni/{plugin}"),
        )?;
    }
    Ok(base)
}

/// What the build container gets before its images are preloaded:
/// kubeadm, kubelet and kubectl in `/usr/bin`, `/kind/version` and kind's
/// default manifests, under `dir` as they go under `/`.
fn stage_node_files(dir: &Path, binaries: &NodeBinaries) -> StageResult<()> {
    stage_binary(&binaries.kubernetes_tool("kubeadm"), dir, "usr/bin/kubeadm")?;
    stage_binary(
        &binaries.local.kubernetes("kubelet"),
        dir,
        "usr/bin/kubelet",
    )?;
    stage_binary(&binaries.kubernetes_tool("kubectl"), dir, "usr/bin/kubectl")?;
    write_file(dir, "kind/version", KUBERNETES_VERSION.as_bytes(), 0o644)?;
    for (relative, contents, _) in sources::under(sources::MANIFESTS, "manifests/") {
        let filled = contents
            .replace("@CNI_IMAGE@", &cni_image())
            .replace(
                "@LOCAL_PATH_PROVISIONER_IMAGE@",
                &local_path_provisioner_image(),
            )
            .replace("@LOCAL_PATH_HELPER_IMAGE@", &local_path_helper_image());
        write_file(
            dir,
            &format!("kind/manifests/{relative}"),
            filled.as_bytes(),
            0o644,
        )?;
    }
    Ok(())
}

/// The node image put together as `kind build node-image` does: a
/// container of the base image gets the node's files, a containerd
/// started in it imports the component images, and the container is
/// committed.
struct Assembly<'a> {
    docker: &'a Docker,
    image: &'a str,
    container: String,
}

/// How long one request of the assembly may wait for the engine's answer.
const ASSEMBLY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30 * 60);

/// How long a command in the build container may go without taking input
/// or printing before it counts as stuck.
const EXEC_IDLE: std::time::Duration = std::time::Duration::from_secs(300);

impl<'a> Assembly<'a> {
    fn new(docker: &'a Docker, image: &'a str) -> Self {
        Assembly {
            docker,
            image,
            container: format!(
                "kindling-kind-node-build-{}-{}",
                std::process::id(),
                &uuid::Uuid::new_v4().simple().to_string()[..8]
            ),
        }
    }

    fn engine(&self, step: &str) -> impl FnOnce(bollard::errors::Error) -> NodeImageError {
        let image = self.image.to_owned();
        let step = step.to_owned();
        move |source| NodeImageError::Engine {
            image,
            step,
            source,
        }
    }

    /// Assembles and commits the node image; its ID. The build container is
    /// removed whatever happened.
    async fn run(
        &self,
        images: &BTreeMap<String, ImageRef>,
        node_files: &Path,
    ) -> Result<String, NodeImageError> {
        let result = self.assemble(images, node_files).await;
        let _ = self
            .docker
            .remove_container(
                &self.container,
                Some(
                    RemoveContainerOptionsBuilder::default()
                        .force(true)
                        .v(true)
                        .build(),
                ),
            )
            .await;
        result
    }

    async fn assemble(
        &self,
        images: &BTreeMap<String, ImageRef>,
        node_files: &Path,
    ) -> Result<String, NodeImageError> {
        let base = &images["base"];
        self.start_container(base).await?;
        self.upload_node_files(node_files).await?;
        self.shell(
            "nohup containerd >/tmp/containerd.log 2>&1 & \
             for _ in $(seq 300); do ctr version >/dev/null 2>&1 && exit 0; sleep 0.2; done; \
             cat /tmp/containerd.log; exit 1",
        )
        .await?;
        self.preload(images).await?;
        self.check_preloaded().await?;
        // `sleep`, the container's first process, reaps nothing: a stopped
        // containerd stays a zombie.
        self.shell(
            "pkill containerd; \
             for _ in $(seq 150); do ps -C containerd -o stat= | grep -qv Z || exit 0; sleep 0.2; done; \
             echo containerd did not stop; exit 1",
        )
        .await?;
        self.shell("rm -rf /tmp/containerd.log /run/containerd")
            .await?;
        self.commit(base).await
    }

    /// Creates and starts the build container, of the image `base`, idle.
    async fn start_container(&self, base: &ImageRef) -> Result<(), NodeImageError> {
        let body = ContainerCreateBody {
            image: Some(base.reference().to_string()),
            entrypoint: Some(vec!["sleep".to_owned(), "infinity".to_owned()]),
            labels: Some(std::collections::HashMap::from([(
                "io.kindling.kind-node-build".to_owned(),
                self.image.to_owned(),
            )])),
            host_config: Some(HostConfig {
                security_opt: Some(vec!["seccomp=unconfined".to_owned()]),
                ..Default::default()
            }),
            ..Default::default()
        };
        self.docker
            .create_container(
                Some(
                    CreateContainerOptionsBuilder::default()
                        .name(&self.container)
                        .build(),
                ),
                body,
            )
            .await
            .map_err(self.engine("create the build container"))?;
        self.docker
            .start_container(&self.container, None)
            .await
            .map_err(self.engine("start the build container"))
    }

    /// Copies the files under `node_files` to the build container's `/`.
    async fn upload_node_files(&self, node_files: &Path) -> Result<(), NodeImageError> {
        let stage_error = |source| NodeImageError::Stage {
            image: self.image.to_owned(),
            path: node_files.to_owned(),
            source: std::io::Error::other(source),
        };
        let root = node_files.to_owned();
        let archive = tokio::task::spawn_blocking(move || crate::image::tar_of(&root))
            .await
            .expect("the scan does not panic")
            .map_err(stage_error)?;
        let crate::image::TarStream { body, writer } = archive;
        self.docker
            .upload_to_container(
                &self.container,
                Some(UploadToContainerOptionsBuilder::default().path("/").build()),
                bollard::body_try_stream(body),
            )
            .await
            .map_err(
                self.engine("copy kubeadm, kubelet, kubectl and /kind into the build container"),
            )?;
        writer
            .await
            .expect("the archive task does not panic")
            .map_err(stage_error)
    }

    /// Imports the preloaded images from `images` into the build
    /// container's containerd (started), pinned, under their names in the
    /// node.
    async fn preload(&self, images: &BTreeMap<String, ImageRef>) -> Result<(), NodeImageError> {
        let names: Vec<(String, String)> = preloaded()
            .into_iter()
            .map(|(name, node_name)| (images[name].reference().to_string(), node_name))
            .collect();
        let references: Vec<&str> = names.iter().map(|(built, _)| built.as_str()).collect();
        let archive = self
            .docker
            .export_images(&references)
            .map(|chunk| chunk.map_err(std::io::Error::other));
        self.run_checked(
            [
                "ctr",
                "--namespace=k8s.io",
                "images",
                "import",
                "--label=io.cri-containerd.pinned=pinned",
                "--all-platforms",
                "--no-unpack",
                "-",
            ],
            Some(Box::pin(archive)),
        )
        .await?;
        for (built, node_name) in &names {
            self.run_checked(
                [
                    "ctr",
                    "--namespace=k8s.io",
                    "images",
                    "tag",
                    "--force",
                    built,
                    node_name,
                ],
                None,
            )
            .await?;
            self.run_checked(["ctr", "--namespace=k8s.io", "images", "rm", built], None)
                .await?;
        }
        Ok(())
    }

    /// Fails when the build container's containerd lacks an image
    /// [`wanted`] names.
    async fn check_preloaded(&self) -> Result<(), NodeImageError> {
        let held = self
            .run_checked(["ctr", "--namespace=k8s.io", "images", "list", "-q"], None)
            .await?;
        let held: Vec<String> = held.lines().map(str::to_owned).collect();
        let kubeadm = self
            .run_checked(
                [
                    "kubeadm",
                    "config",
                    "images",
                    "list",
                    "--kubernetes-version",
                    KUBERNETES_VERSION,
                ],
                None,
            )
            .await?;
        let missing = wanted(&kubeadm)
            .into_iter()
            .filter(|want| !held.contains(want))
            .collect::<Vec<_>>();
        if !missing.is_empty() {
            return Err(NodeImageError::Missing {
                image: self.image.to_owned(),
                missing,
                held,
            });
        }
        Ok(())
    }

    /// Commits the build container as the node image, made from `base`,
    /// with kind's entrypoint; its ID.
    async fn commit(&self, base: &ImageRef) -> Result<String, NodeImageError> {
        let (repository, tag) = self
            .image
            .rsplit_once(':')
            .expect("the reference has a tag");
        let changes = [
            r#"ENTRYPOINT [ "/usr/local/bin/entrypoint", "/sbin/init" ]"#.to_owned(),
            "CMD []".to_owned(),
            r#"ENV HTTP_PROXY="" HTTPS_PROXY="" NO_PROXY="""#.to_owned(),
            format!("LABEL io.x-k8s.kind.kubernetes-version={KUBERNETES_VERSION}"),
            format!(r#"LABEL io.kindling.kind-node.base="{}""#, base.reference()),
        ]
        .join("\n");
        let committed = self
            .docker
            .commit_container(
                CommitContainerOptions {
                    container: Some(self.container.clone()),
                    repo: Some(repository.to_owned()),
                    tag: Some(tag.to_owned()),
                    pause: true,
                    changes: Some(changes),
                    ..Default::default()
                },
                ContainerConfig::default(),
            )
            .await
            .map_err(self.engine("commit the build container"))?;
        Ok(committed.id)
    }

    /// Runs `bash -c script`; fails unless it exits 0.
    async fn shell(&self, script: &str) -> Result<String, NodeImageError> {
        self.run_checked(["bash", "-c", script], None).await
    }

    /// Runs `argv`, with `stdin` streamed in; its stdout, unless it exits
    /// other than 0.
    async fn run_checked<const N: usize>(
        &self,
        argv: [&str; N],
        stdin: Option<crate::node::ByteStream>,
    ) -> Result<String, NodeImageError> {
        let argv: Vec<String> = argv.iter().map(|word| (*word).to_owned()).collect();
        let output = DockerExec::new(self.docker.clone(), &self.container)
            .exec(argv.clone(), stdin, EXEC_IDLE)
            .await
            .map_err(|source| NodeImageError::Exec {
                image: self.image.to_owned(),
                source,
            })?;
        if output.exit_code != 0 {
            return Err(NodeImageError::Command {
                image: self.image.to_owned(),
                command: argv.join(" "),
                code: output.exit_code,
                output: format!("{}\n{}", output.stdout.trim(), output.stderr.trim())
                    .trim()
                    .to_owned(),
            });
        }
        Ok(output.stdout)
    }
}

/// What the node's containerd must hold: every image `kubeadm config
/// images list` names (`kubeadm_list`), with the CoreDNS kindling's
/// configuration asks for in place of kubeadm's default, and the images of
/// kind's default manifests.
fn wanted(kubeadm_list: &str) -> Vec<String> {
    let mut wanted: Vec<String> = kubeadm_list
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(|line| {
            if line.starts_with("registry.k8s.io/coredns/coredns:") {
                coredns_image()
            } else {
                line.to_owned()
            }
        })
        .collect();
    wanted.extend([
        cni_image(),
        local_path_provisioner_image(),
        local_path_helper_image(),
    ]);
    wanted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reference_is_kindlings_name_with_a_digest_of_the_inputs() {
        let reference = reference();
        assert_eq!(reference, self::reference(), "stable");
        let (repository, tag) = reference.rsplit_once(':').unwrap();
        assert_eq!(repository, "localhost/kindling-kind/node");
        let digest = tag.strip_prefix("v1.34.12-").unwrap();
        assert_eq!(digest.len(), 12);
        assert!(digest.chars().all(|c| c.is_ascii_hexdigit()), "{tag}");
        assert!(crate::image::normalize(&reference).is_ok());
    }

    #[test]
    fn the_node_must_hold_what_kubeadm_lists_with_kindlings_coredns_and_kinds_manifests_images() {
        let kubeadm = "registry.k8s.io/kube-apiserver:v1.34.12
registry.k8s.io/kube-controller-manager:v1.34.12
registry.k8s.io/kube-scheduler:v1.34.12
registry.k8s.io/kube-proxy:v1.34.12
registry.k8s.io/coredns/coredns:v1.12.1
registry.k8s.io/pause:3.10.1
registry.k8s.io/etcd:3.6.5-0
";
        let wanted = wanted(kubeadm);
        let preloaded: Vec<String> = preloaded().into_iter().map(|(_, name)| name).collect();
        let mut sorted_wanted = wanted.clone();
        sorted_wanted.sort();
        let mut sorted_preloaded = preloaded.clone();
        sorted_preloaded.sort();
        assert_eq!(
            sorted_wanted, sorted_preloaded,
            "every image preloaded is wanted, and every image wanted is preloaded"
        );
        assert!(wanted.contains(&"registry.k8s.io/coredns/coredns:v1.12.4".to_owned()));
    }

    #[test]
    fn the_default_manifests_name_the_preloaded_images_by_placeholder() {
        for (path, contents) in sources::MANIFESTS {
            for line in contents.lines().filter(|line| line.contains("image:")) {
                assert!(
                    line.contains('@'),
                    "{path}: `{line}` names an image kindling does not preload"
                );
            }
        }
    }
}
