//! Kind-like clusters for tests: node containers built here from Debian's
//! containerd (`FROM scratch`: containerd, ctr, their libraries), labelled
//! and named exactly as kind labels and names its nodes, so discovery and
//! loading run as against a real Kind cluster. They need `--cap-add
//! SYS_ADMIN` with seccomp and apparmor unconfined for containerd to
//! unpack images; they run no kubelet and no API server. The control plane
//! publishes its port 6443 on a random loopback port as kind's does, so
//! `kind export kubeconfig` finds an endpoint.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig, PortBinding};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, RemoveContainerOptionsBuilder, UploadToContainerOptionsBuilder,
};
use kindling::image::{Builder, ImageSpec};
use kindling::node::{KIND_CLUSTER_LABEL, KIND_ROLE_LABEL, NodeStore, discover_kind_nodes};

/// Host files copied into the node image, with their place in it.
const NODE_FILES: &[(&str, &str)] = &[
    ("/usr/bin/containerd", "usr/bin/containerd"),
    ("/usr/bin/ctr", "usr/bin/ctr"),
    // kind reads the control plane's /etc/kubernetes/admin.conf with `cat`.
    ("/usr/bin/cat", "usr/bin/cat"),
    (
        "/lib/x86_64-linux-gnu/libc.so.6",
        "lib/x86_64-linux-gnu/libc.so.6",
    ),
    ("/lib64/ld-linux-x86-64.so.2", "lib64/ld-linux-x86-64.so.2"),
];

const CONTAINERD_CONFIG: &str = r#"version = 2
root = "/var/lib/containerd"
state = "/run/containerd"
[grpc]
  address = "/run/containerd/containerd.sock"
[plugins."io.containerd.grpc.v1.cri".containerd]
  snapshotter = "overlayfs"
"#;

const NODE_DOCKERFILE: &str = "FROM scratch
COPY usr /usr
COPY lib /lib
COPY lib64 /lib64
COPY etc /etc
VOLUME /var/lib/containerd
ENTRYPOINT [\"/usr/bin/containerd\", \"--config\", \"/etc/containerd/config.toml\"]
";

/// Writes the node image's build context into `dir`.
pub fn write_node_context(dir: &Path) -> std::io::Result<()> {
    for (source, target) in NODE_FILES {
        let target = dir.join(target);
        std::fs::create_dir_all(target.parent().expect("nested"))?;
        std::fs::copy(source, &target).map_err(|error| {
            std::io::Error::new(
                error.kind(),
                format!("cannot copy {source} (install Debian's containerd package): {error}"),
            )
        })?;
    }
    std::fs::create_dir_all(dir.join("etc/containerd"))?;
    std::fs::write(dir.join("etc/containerd/config.toml"), CONTAINERD_CONFIG)?;
    std::fs::write(dir.join("Dockerfile"), NODE_DOCKERFILE)
}

/// The node image reference, built once (its content tag makes later calls cheap).
pub async fn node_image(docker: &Docker) -> Result<String, kindling::BoxError> {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("kind-like-node");
    let lock =
        std::fs::File::create(Path::new(env!("CARGO_TARGET_TMPDIR")).join("kind-like-node.lock"))?;
    lock.lock()?;
    write_node_context(&dir)?;
    let built = Builder::new(docker.clone())
        .build(&ImageSpec::new("kind-like-node", &dir))
        .await?;
    Ok(built.image.reference().to_string())
}

/// A running kind-like cluster; dropping it removes its containers and volumes.
pub struct KindLikeCluster {
    pub name: String,
    pub node_names: Vec<String>,
    docker: Docker,
}

impl KindLikeCluster {
    /// Starts `<name>-control-plane` and `workers` workers (`<name>-worker`, `<name>-worker2`, ...).
    pub async fn start(
        docker: &Docker,
        name: &str,
        workers: usize,
    ) -> Result<Self, kindling::BoxError> {
        remove_cluster_containers(name);
        let image = node_image(docker).await?;
        let mut node_names = vec![format!("{name}-control-plane")];
        for index in 0..workers {
            node_names.push(match index {
                0 => format!("{name}-worker"),
                n => format!("{name}-worker{}", n + 1),
            });
        }
        let cluster = KindLikeCluster {
            name: name.to_owned(),
            node_names: node_names.clone(),
            docker: docker.clone(),
        };
        for node in &node_names {
            let role = if node.ends_with("control-plane") {
                "control-plane"
            } else {
                "worker"
            };
            let labels = HashMap::from([
                (KIND_CLUSTER_LABEL.to_owned(), name.to_owned()),
                (KIND_ROLE_LABEL.to_owned(), role.to_owned()),
            ]);
            let api_server = (role == "control-plane").then(|| {
                HashMap::from([(
                    "6443/tcp".to_owned(),
                    Some(vec![PortBinding {
                        host_ip: Some("127.0.0.1".to_owned()),
                        host_port: Some(String::new()),
                    }]),
                )])
            });
            let body = ContainerCreateBody {
                image: Some(image.clone()),
                labels: Some(labels),
                hostname: Some(node.clone()),
                exposed_ports: api_server.is_some().then(|| vec!["6443/tcp".to_owned()]),
                host_config: Some(HostConfig {
                    port_bindings: api_server,
                    cap_add: Some(vec!["SYS_ADMIN".to_owned()]),
                    security_opt: Some(vec![
                        "seccomp=unconfined".to_owned(),
                        "apparmor=unconfined".to_owned(),
                    ]),
                    tmpfs: Some(HashMap::from([
                        ("/run".to_owned(), String::new()),
                        ("/tmp".to_owned(), String::new()),
                    ])),
                    ..Default::default()
                }),
                ..Default::default()
            };
            docker
                .create_container(
                    Some(CreateContainerOptionsBuilder::default().name(node).build()),
                    body,
                )
                .await?;
            docker.start_container(node, None).await?;
        }
        for store in cluster.stores().await? {
            wait_for_containerd(&store).await?;
        }
        Ok(cluster)
    }

    /// The nodes' image stores, found by their labels as for a real Kind cluster.
    pub async fn stores(&self) -> Result<Vec<NodeStore>, kindling::BoxError> {
        let nodes = discover_kind_nodes(&self.docker, &self.name).await?;
        Ok(nodes.into_iter().map(|node| node.store).collect())
    }

    /// Writes `contents` to `path` (absolute) in `node`, creating its directories.
    pub async fn write_file(
        &self,
        node: &str,
        path: &str,
        contents: &[u8],
    ) -> Result<(), kindling::BoxError> {
        let mut archive = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(contents.len() as u64);
        header.set_mode(0o600);
        header.set_cksum();
        archive.append_data(&mut header, path.trim_start_matches('/'), contents)?;
        let archive = archive.into_inner()?;
        self.docker
            .upload_to_container(
                node,
                Some(UploadToContainerOptionsBuilder::default().path("/").build()),
                bollard::body_full(archive.into()),
            )
            .await?;
        Ok(())
    }

    /// Removes one node container (a node that disappears).
    /// Waits until a process whose command line contains `needle` runs in
    /// `node`, as `docker top` lists it.
    pub async fn await_process(
        &self,
        node: &str,
        needle: &str,
        timeout: Duration,
    ) -> Result<(), kindling::BoxError> {
        let deadline = Instant::now() + timeout;
        loop {
            let top = self.docker.top_processes(node, None).await?;
            let running = top
                .processes
                .unwrap_or_default()
                .iter()
                .any(|row| row.iter().any(|cell| cell.contains(needle)));
            if running {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!("no `{needle}` ran in node {node} within {timeout:?}").into());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub async fn remove_node(&self, node: &str) -> Result<(), kindling::BoxError> {
        self.docker
            .remove_container(
                node,
                Some(
                    RemoveContainerOptionsBuilder::default()
                        .force(true)
                        .v(true)
                        .build(),
                ),
            )
            .await?;
        Ok(())
    }
}

impl Drop for KindLikeCluster {
    fn drop(&mut self) {
        remove_cluster_containers(&self.name);
    }
}

/// Removes every container labelled for `cluster`, with its volumes (through the CLI: works from Drop).
pub fn remove_cluster_containers(cluster: &str) {
    let listed = std::process::Command::new("docker")
        .args([
            "ps",
            "-aq",
            "--filter",
            &format!("label={KIND_CLUSTER_LABEL}={cluster}"),
        ])
        .output();
    if let Ok(listed) = listed {
        let ids: Vec<String> = String::from_utf8_lossy(&listed.stdout)
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        if !ids.is_empty() {
            let _ = std::process::Command::new("docker")
                .args(["rm", "-fv"])
                .args(&ids)
                .output();
        }
    }
}

async fn wait_for_containerd(store: &NodeStore) -> Result<(), kindling::BoxError> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match store.list().await {
            Ok(_) => return Ok(()),
            Err(error) if Instant::now() > deadline => {
                return Err(format!(
                    "containerd in node `{}` did not start: {error}",
                    store.name()
                )
                .into());
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// A build context of an image of about `megabytes` MB: `FROM scratch`,
/// deterministic pseudo-random data (so its content tag is stable) and a
/// marker file the caller may change.
pub fn write_data_image(
    dir: &Path,
    seed: u64,
    megabytes: usize,
    marker: &str,
) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut data = Vec::with_capacity(megabytes * 1024 * 1024);
    while data.len() < megabytes * 1024 * 1024 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        data.extend_from_slice(&state.to_le_bytes());
    }
    std::fs::write(dir.join("data"), &data)?;
    std::fs::write(dir.join("marker"), marker)?;
    std::fs::write(
        dir.join("Dockerfile"),
        "FROM scratch\nCOPY data /data\nCOPY marker /marker\n",
    )?;
    Ok(dir.to_owned())
}

/// Builds a data image of about `megabytes` MB ([`write_data_image`] in
/// `dir`) and tags it `reference` in the engine.
pub async fn data_image(
    docker: &Docker,
    dir: &Path,
    seed: u64,
    megabytes: usize,
    reference: &str,
) -> Result<(), kindling::BoxError> {
    let context = write_data_image(dir, seed, megabytes, reference)?;
    let built = kindling::image::Builder::new(docker.clone())
        .build(&kindling::image::ImageSpec::new("load-data", &context))
        .await?;
    tag_image(docker, built.image.reference().as_str(), reference).await
}

/// An image of `base` plus a top layer of about `megabytes` MB of data
/// from `seed` and a marker (two new layers), tagged `reference`.
pub async fn layered_image(
    docker: &Docker,
    dir: &Path,
    base: &str,
    seed: u64,
    megabytes: usize,
    reference: &str,
) -> Result<(), kindling::BoxError> {
    let context = write_data_image(dir, seed, megabytes, reference)?;
    std::fs::write(
        context.join("Dockerfile"),
        format!("FROM {base}\nCOPY data /top\nCOPY marker /marker\n"),
    )?;
    let built = kindling::image::Builder::new(docker.clone())
        .build(&kindling::image::ImageSpec::new("load-data-top", &context))
        .await?;
    tag_image(docker, built.image.reference().as_str(), reference).await
}

/// Fails unless every store holds `image` under its exact reference and ID.
pub async fn ensure_nodes_hold(
    stores: &[NodeStore],
    image: &kindling::image::ImageRef,
) -> Result<(), kindling::BoxError> {
    for store in stores {
        let held = store.list().await?;
        super::ensure(
            held.iter().any(|stored| {
                stored.reference == image.reference().as_str()
                    && stored.image_id.as_deref() == Some(image.id())
            }),
            || format!("node {} lacks {image}: {held:?}", store.name()),
        )?;
    }
    Ok(())
}

/// The pinned kind that `fixtures/kind/build.sh` builds.
pub fn pinned_kind() -> PathBuf {
    kindling::cluster::kind::cli::pinned_binary(
        &kindling::cluster::local::ComponentBinaries::default_cache(),
    )
}

/// Writes, in `dir`, a `kind` wrapper that runs the pinned kind with HOME
/// and KUBECONFIG as given, and returns its path.
///
/// kind runs every command in a node with `docker exec --privileged`,
/// which these hosts refuse ("unable to apply caps"); the wrapper puts a
/// `docker` first on kind's PATH that drops that one flag from `exec` and
/// runs the real docker CLI for everything else.
pub fn kind_wrapper(dir: &Path, home: &Path, kubeconfig: &Path) -> std::io::Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt as _;
    let docker = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|dir| dir.join("docker"))
        .find(|path| path.is_file())
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "kind drives the `docker` CLI, which is not on PATH",
            )
        })?;
    let shims = dir.join("shims");
    std::fs::create_dir_all(&shims)?;
    let executable = |path: &Path, text: String| -> std::io::Result<()> {
        std::fs::write(path, text)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
    };
    executable(
        &shims.join("docker"),
        format!(
            "#!/bin/sh\nif [ \"$1\" = exec ]; then\n  for arg do\n    shift\n    [ \"$arg\" = --privileged ] || set -- \"$@\" \"$arg\"\n  done\nfi\nexec '{}' \"$@\"\n",
            docker.display()
        ),
    )?;
    let kind = dir.join("kind");
    executable(
        &kind,
        format!(
            "#!/bin/sh\nexport HOME='{}'\nexport KUBECONFIG='{}'\nexport PATH='{}':\"$PATH\"\nexec '{}' \"$@\"\n",
            home.display(),
            kubeconfig.display(),
            shims.display(),
            pinned_kind().display()
        ),
    )?;
    Ok(kind)
}

/// The references each of `stores` holds whose repository starts with
/// `prefix`, node by node.
pub async fn references_held(
    stores: &[NodeStore],
    prefix: &str,
) -> Result<Vec<Vec<String>>, kindling::BoxError> {
    let mut nodes = Vec::new();
    for store in stores {
        let mut held: Vec<String> = store
            .list()
            .await?
            .into_iter()
            .map(|stored| stored.reference)
            .filter(|reference| reference.starts_with(prefix))
            .collect();
        held.sort();
        nodes.push(held);
    }
    Ok(nodes)
}

/// Tags the engine's image `source` as `target` (`repo:tag`).
pub async fn tag_image(
    docker: &Docker,
    source: &str,
    target: &str,
) -> Result<(), kindling::BoxError> {
    let (repo, tag) = target.rsplit_once(':').ok_or("a tag")?;
    docker
        .tag_image(
            source,
            Some(
                bollard::query_parameters::TagImageOptionsBuilder::default()
                    .repo(repo)
                    .tag(tag)
                    .build(),
            ),
        )
        .await?;
    Ok(())
}
