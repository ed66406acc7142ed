//! The binaries of kindling's Kind node image, built from the Go module
//! proxy into the cache once per version, beside the local provider's
//! (whose Kubernetes, etcd and CoreDNS binaries the node image reuses).
//!
//! Each component is pinned by the go.mod/go.sum of its module in
//! `crates/kindling-core/kind-node/go/`; kubeadm and kubectl come from the local
//! provider's Kubernetes module, whose `tool` lines name them too.

use std::path::{Path, PathBuf};

use crate::cluster::components::{
    self as local, ComponentBinaries, ComponentBuildError, KUBERNETES_MODULE, KUBERNETES_VERSION,
};

use super::sources;

/// The pinned containerd (kind v0.33.0 ships 2.3; 2.2 is the newest the
/// module proxy here serves that runs on cgroup v1 without a flag).
pub const CONTAINERD_VERSION: &str = "v2.2.10";
/// The pinned runc (linked statically: it runs whatever the node's libc).
pub const RUNC_VERSION: &str = "v1.3.7";
/// The pinned crictl, of the Kubernetes minor.
pub const CRICTL_VERSION: &str = "v1.34.0";
/// The pinned CNI plugins (kind v0.33.0's).
pub const CNI_PLUGINS_VERSION: &str = "v1.9.1";
/// The pinned local-path-provisioner (the one version the module proxy
/// serves; kind v0.33.0 ships v0.0.34).
pub const LOCAL_PATH_PROVISIONER_VERSION: &str = "v0.0.30";
/// The pause image's tag, as kubeadm 1.34 and containerd's
/// `sandbox_image` name it (the binary is kindling's own pause).
pub const PAUSE_VERSION: &str = "3.10.1";

/// The version of kindling's own CNI daemon (`go/kindling-cni`, in place
/// of kind's kindnetd): the first 12 hex digits of a digest of its
/// module's files, so the cached binary and the image's tag change with
/// its source.
pub fn kindling_cni_version() -> String {
    use sha2::{Digest as _, Sha256};
    let mut hasher = Sha256::new();
    for (path, contents) in module("kindling-cni") {
        hasher.update((path.len() as u64).to_le_bytes());
        hasher.update(path.as_bytes());
        hasher.update((contents.len() as u64).to_le_bytes());
        hasher.update(contents.as_bytes());
    }
    hex::encode(hasher.finalize())[..12].to_owned()
}

/// One Go build: its module, what it builds and where to.
struct Component {
    /// The folder under `<cache>/bin/`.
    dir: String,
    /// For progress lines, e.g. `containerd v2.2.10`.
    what: String,
    /// The expected time, for progress lines.
    expected: &'static str,
    /// The folder under `<cache>/src/` the module is written into.
    module_dir: String,
    /// The module's files.
    module: Vec<(&'static str, &'static str)>,
    /// The packages built.
    packages: Vec<&'static str>,
    /// The binaries they make.
    binaries: Vec<&'static str>,
    /// `-tags`.
    tags: &'static str,
    /// `-ldflags`.
    ldflags: String,
    /// Built with cgo (runc's nsenter).
    cgo: bool,
}

/// The files of `kind-node/go/<name>/`, relative to it.
fn module(name: &str) -> Vec<(&'static str, &'static str)> {
    let prefix = format!("go/{name}/");
    sources::MODULES
        .iter()
        .filter_map(|&(path, contents)| Some((path.strip_prefix(prefix.as_str())?, contents)))
        .collect()
}

/// The folders under `<cache>/bin/` of the node's own components.
mod dirs {
    use super::*;

    pub(super) fn kubernetes_tools() -> String {
        format!("kubernetes-tools-{KUBERNETES_VERSION}")
    }
    pub(super) fn containerd() -> String {
        format!("containerd-{CONTAINERD_VERSION}")
    }
    pub(super) fn runc() -> String {
        format!("runc-{RUNC_VERSION}")
    }
    pub(super) fn crictl() -> String {
        format!("crictl-{CRICTL_VERSION}")
    }
    pub(super) fn cni_plugins() -> String {
        format!("cni-plugins-{CNI_PLUGINS_VERSION}")
    }
    pub(super) fn local_path_provisioner() -> String {
        format!("local-path-provisioner-{LOCAL_PATH_PROVISIONER_VERSION}")
    }
    pub(super) fn kindling_cni() -> String {
        format!("kindling-cni-{}", kindling_cni_version())
    }
    pub(super) fn pause() -> String {
        format!("pause-{PAUSE_VERSION}")
    }
}

/// The CNI plugins the node gets (kind's default CNI config uses ptp,
/// host-local, loopback and portmap; bridge is for users' own).
pub const CNI_PLUGINS: &[&str] = &["host-local", "bridge", "loopback", "ptp", "portmap"];

/// The node's own components, in the order they are built. Kept whole:
/// it is one table, a [`Component`] per build, that reads best side by
/// side.
fn components() -> Vec<Component> {
    let stripped = "-s -w";
    vec![
        Component {
            dir: dirs::kubernetes_tools(),
            what: format!("kubeadm and kubectl {KUBERNETES_VERSION}"),
            expected: "about 4 min on two cores after the local provider's Kubernetes build",
            module_dir: format!("kubernetes-{KUBERNETES_VERSION}"),
            module: KUBERNETES_MODULE.to_vec(),
            packages: vec![
                "k8s.io/kubernetes/cmd/kubeadm",
                "k8s.io/kubernetes/cmd/kubectl",
            ],
            binaries: vec!["kubeadm", "kubectl"],
            tags: "",
            ldflags: format!("{stripped}{}", local::kubernetes_ldflags()),
            cgo: false,
        },
        Component {
            dir: dirs::containerd(),
            what: format!("containerd {CONTAINERD_VERSION} (containerd, its runc shim, ctr)"),
            expected: "about 5 min on two cores",
            module_dir: dirs::containerd(),
            module: module("containerd"),
            packages: vec![
                "github.com/containerd/containerd/v2/cmd/containerd",
                "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2",
                "github.com/containerd/containerd/v2/cmd/ctr",
            ],
            binaries: vec!["containerd", "containerd-shim-runc-v2", "ctr"],
            tags: "no_aufs no_zfs no_btrfs no_devmapper urfave_cli_no_docs",
            ldflags: format!(
                "{stripped} -X github.com/containerd/containerd/v2/version.Version={CONTAINERD_VERSION} -X github.com/containerd/containerd/v2/version.Package=github.com/containerd/containerd/v2"
            ),
            cgo: false,
        },
        Component {
            dir: dirs::runc(),
            what: format!("runc {RUNC_VERSION}"),
            expected: "about 1.5 min on two cores",
            module_dir: dirs::runc(),
            module: module("runc"),
            packages: vec!["github.com/opencontainers/runc"],
            binaries: vec!["runc"],
            // As runc's `make static`: no libc at run time, whatever the node's.
            tags: "seccomp netgo osusergo urfave_cli_no_docs",
            ldflags: format!(
                "{stripped} -X main.version={} -extldflags -static",
                RUNC_VERSION.trim_start_matches('v')
            ),
            cgo: true,
        },
        Component {
            dir: dirs::crictl(),
            what: format!("crictl {CRICTL_VERSION}"),
            expected: "about 3 min on two cores",
            module_dir: dirs::crictl(),
            module: module("crictl"),
            packages: vec!["sigs.k8s.io/cri-tools/cmd/crictl"],
            binaries: vec!["crictl"],
            tags: "",
            ldflags: format!(
                "{stripped} -X sigs.k8s.io/cri-tools/pkg/version.Version={CRICTL_VERSION}"
            ),
            cgo: false,
        },
        Component {
            dir: dirs::cni_plugins(),
            what: format!("the CNI plugins {CNI_PLUGINS_VERSION}"),
            expected: "about 30 s on two cores",
            module_dir: dirs::cni_plugins(),
            module: module("cni"),
            packages: vec![
                "github.com/containernetworking/plugins/plugins/ipam/host-local",
                "github.com/containernetworking/plugins/plugins/main/bridge",
                "github.com/containernetworking/plugins/plugins/main/loopback",
                "github.com/containernetworking/plugins/plugins/main/ptp",
                "github.com/containernetworking/plugins/plugins/meta/portmap",
            ],
            binaries: CNI_PLUGINS.to_vec(),
            tags: "",
            ldflags: format!(
                "{stripped} -X github.com/containernetworking/plugins/pkg/utils/buildversion.BuildVersion={CNI_PLUGINS_VERSION}"
            ),
            cgo: false,
        },
        Component {
            dir: dirs::local_path_provisioner(),
            what: format!("local-path-provisioner {LOCAL_PATH_PROVISIONER_VERSION}"),
            expected: "about 5 min on two cores",
            module_dir: dirs::local_path_provisioner(),
            module: module("local-path"),
            packages: vec!["github.com/rancher/local-path-provisioner"],
            binaries: vec!["local-path-provisioner"],
            tags: "",
            ldflags: format!("{stripped} -X main.VERSION={LOCAL_PATH_PROVISIONER_VERSION}"),
            cgo: false,
        },
        Component {
            dir: dirs::kindling_cni(),
            what: "kindling's CNI daemon (kindling-cni)".to_owned(),
            expected: "about 2 min on two cores",
            module_dir: dirs::kindling_cni(),
            module: module("kindling-cni"),
            packages: vec!["."],
            binaries: vec!["kindling-cni"],
            tags: "",
            ldflags: stripped.to_owned(),
            cgo: false,
        },
        Component {
            dir: dirs::pause(),
            what: "kindling's pause".to_owned(),
            expected: "about 10 s",
            module_dir: "kind-node-pause".to_owned(),
            module: crate::cluster::components::images::IMAGE_SOURCES.to_vec(),
            packages: vec!["./pause"],
            binaries: vec!["pause"],
            tags: "",
            ldflags: stripped.to_owned(),
            cgo: false,
        },
    ]
}

/// Where the node image's binaries are.
#[derive(Debug, Clone)]
pub struct NodeBinaries {
    /// The local provider's: kube-apiserver, kube-controller-manager,
    /// kube-scheduler, kubelet, kube-proxy, etcd and CoreDNS.
    pub local: ComponentBinaries,
    /// `<cache>/bin/`, where the node's own components are, each in
    /// `<name>-<version>/`.
    pub bin: PathBuf,
}

impl NodeBinaries {
    /// The layout of the cache.
    pub fn in_cache(cache: &Path) -> Self {
        NodeBinaries {
            local: ComponentBinaries::in_cache(cache),
            bin: cache.join("bin"),
        }
    }

    fn own(&self, dir: String, binary: &str) -> PathBuf {
        self.bin.join(dir).join(binary)
    }

    /// kubeadm or kubectl.
    pub fn kubernetes_tool(&self, name: &str) -> PathBuf {
        self.own(dirs::kubernetes_tools(), name)
    }

    /// containerd, containerd-shim-runc-v2 or ctr.
    pub fn containerd(&self, name: &str) -> PathBuf {
        self.own(dirs::containerd(), name)
    }

    /// runc.
    pub fn runc(&self) -> PathBuf {
        self.own(dirs::runc(), "runc")
    }

    /// crictl.
    pub fn crictl(&self) -> PathBuf {
        self.own(dirs::crictl(), "crictl")
    }

    /// A CNI plugin of [`CNI_PLUGINS`].
    pub fn cni_plugin(&self, name: &str) -> PathBuf {
        self.own(dirs::cni_plugins(), name)
    }

    /// local-path-provisioner.
    pub fn local_path_provisioner(&self) -> PathBuf {
        self.own(dirs::local_path_provisioner(), "local-path-provisioner")
    }

    /// kindling-cni, the node's CNI daemon.
    pub fn kindling_cni(&self) -> PathBuf {
        self.own(dirs::kindling_cni(), "kindling-cni")
    }

    /// pause.
    pub fn pause(&self) -> PathBuf {
        self.own(dirs::pause(), "pause")
    }

    /// Every binary of the node's own components (not the local provider's).
    fn all_own(&self) -> Vec<PathBuf> {
        components()
            .iter()
            .flat_map(|component| {
                component
                    .binaries
                    .iter()
                    .map(|binary| self.bin.join(&component.dir).join(binary))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// The first binary, of the local provider's or the node's own, that is
    /// missing (cheap: nothing is read).
    pub fn first_missing(&self) -> Option<PathBuf> {
        self.local
            .missing()
            .or_else(|| self.all_own().into_iter().find(|path| !path.is_file()))
    }

    /// The first binary, of the local provider's or the node's own, that is
    /// missing or does not match the digest recorded at its build.
    pub fn first_unverified(&self) -> Option<local::Unverified> {
        self.local.first_unverified().or_else(|| {
            self.all_own()
                .into_iter()
                .find_map(|path| local::verify(&path).err())
        })
    }
}

/// The host pieces runc's build needs: a C compiler and linker, pkg-config,
/// and the static libraries of libc and libseccomp.
fn runc_build_pieces() -> Vec<crate::apt::Piece> {
    let multiarch = format!("{}-linux-gnu", std::env::consts::ARCH);
    let libraries = [
        PathBuf::from(format!("/usr/lib/{multiarch}")),
        PathBuf::from("/usr/lib64"),
        PathBuf::from("/usr/lib"),
    ];
    vec![
        crate::apt::Piece::program("gcc", "gcc"),
        crate::apt::Piece::program("pkg-config", "pkg-config"),
        crate::apt::Piece::data(
            "libc's static library",
            &libraries,
            &["libc.a"],
            "libc6-dev",
        ),
        crate::apt::Piece::data(
            "libseccomp's static library",
            &libraries,
            &["libseccomp.a"],
            "libseccomp-dev",
        ),
    ]
}

/// Building the node image's binaries failed.
#[derive(Debug, thiserror::Error)]
pub enum NodeComponentsError {
    /// Building a component (or one of the local provider's) failed.
    #[error(transparent)]
    Build(#[from] ComponentBuildError),
    /// The host pieces runc's build needs could not be obtained.
    #[error("cannot obtain what building runc {RUNC_VERSION} needs on this host")]
    Tools(#[source] Box<crate::apt::PackageError>),
    /// A build succeeded but did not make a binary it should have.
    #[error(
        "building {what} made no `{}`: the module in `{}` builds other binaries than kindling expects",
        binary.display(), module.display()
    )]
    NotMade {
        /// The component, e.g. `containerd v2.2.10`.
        what: String,
        /// The binary expected.
        binary: PathBuf,
        /// The module built.
        module: PathBuf,
    },
}

/// Builds whatever of the node image's binaries is missing from `cache`
/// (the local provider's Kubernetes, etcd and CoreDNS included), one
/// process at a time per cache; `say` gets a line per step with the
/// expected time.
pub async fn ensure_built(
    cache: &Path,
    say: &(dyn Fn(&str) + Send + Sync),
) -> Result<NodeBinaries, NodeComponentsError> {
    local::ensure_built(cache, say).await?;
    let binaries = NodeBinaries::in_cache(cache);
    let stale = |component: &Component| {
        component
            .binaries
            .iter()
            .any(|binary| local::verify(&binaries.bin.join(&component.dir).join(binary)).is_err())
    };
    if !components().iter().any(stale) {
        return Ok(binaries);
    }
    if kindling_harness::requirement::find_program("go").is_none() {
        return Err(ComponentBuildError::NoGo {
            what: "kindling's Kind node image".to_owned(),
            cache: cache.to_owned(),
        }
        .into());
    }
    let _lock = crate::cluster::lock::exclusive(
        &cache.join("kind-node-build.lock"),
        "building the Kind node image's components",
        "waiting for another process to build the Kind node image's components",
    )
    .await
    .map_err(ComponentBuildError::from)?;
    for component in components() {
        if stale(&component) {
            build_component(&component, cache, &binaries.bin, say).await?;
        }
    }
    Ok(binaries)
}

/// Builds `component` into its folder under `bin`, with its module
/// written under `cache` (and, for a cgo build, the host pieces it needs
/// installed first); fails when a binary it should make is missing.
async fn build_component(
    component: &Component,
    cache: &Path,
    bin: &Path,
    say: &(dyn Fn(&str) + Send + Sync),
) -> Result<(), NodeComponentsError> {
    if component.cgo {
        crate::apt::ensure_installed(
            &runc_build_pieces(),
            &crate::apt::SearchPath::from_env(),
            crate::apt::InstallPolicy::from_env(),
            cache,
            say,
        )
        .await
        .map_err(|error| NodeComponentsError::Tools(Box::new(error)))?;
    }
    let module = local::write_module(cache, &component.module_dir, &component.module)?;
    let target = bin.join(&component.dir);
    local::build_into(
        &component.what,
        component.expected,
        &module,
        &target,
        |out| component.go_build(out),
        say,
    )
    .await?;
    for binary in &component.binaries {
        let path = target.join(binary);
        if !path.is_file() {
            return Err(NodeComponentsError::NotMade {
                what: component.what.clone(),
                binary: path,
                module,
            });
        }
    }
    Ok(())
}

impl Component {
    /// The `go build` arguments and environment that make the binaries
    /// into `out`.
    fn go_build(&self, out: &Path) -> local::GoCommand {
        let mut args = vec![
            "build".to_owned(),
            "-trimpath".to_owned(),
            "-buildvcs=false".to_owned(),
        ];
        if !self.tags.is_empty() {
            args.extend(["-tags".to_owned(), self.tags.to_owned()]);
        }
        args.extend(["-ldflags".to_owned(), self.ldflags.clone()]);
        args.push("-o".to_owned());
        match self.binaries.as_slice() {
            [one] => args.push(out.join(one).display().to_string()),
            _ => args.push(format!("{}/", out.display())),
        }
        args.extend(self.packages.iter().map(|package| (*package).to_owned()));
        let env = if self.cgo {
            vec![("CGO_ENABLED".to_owned(), "1".to_owned())]
        } else {
            Vec::new()
        };
        (args, env)
    }
}

/// The versions, and every input of the builds, for the node image's
/// input digest.
pub(crate) fn feed_digest(hasher: &mut impl FnMut(&[u8])) {
    for component in components() {
        hasher(component.dir.as_bytes());
        hasher(component.tags.as_bytes());
        hasher(component.ldflags.as_bytes());
        for package in &component.packages {
            hasher(package.as_bytes());
        }
        for (path, contents) in &component.module {
            hasher(path.as_bytes());
            hasher(contents.as_bytes());
        }
    }
    hasher(local::component_versions().as_bytes());
    for (path, contents) in local::ETCD_MODULE {
        hasher(path.as_bytes());
        hasher(contents.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_component_has_its_module_and_a_binary_per_package() {
        for component in components() {
            assert!(
                component.module.iter().any(|(path, _)| *path == "go.mod"),
                "{} has no go.mod",
                component.what
            );
            assert!(
                component.binaries.len() == component.packages.len(),
                "{}",
                component.what
            );
        }
        let binaries = NodeBinaries::in_cache(Path::new("/c"));
        assert_eq!(binaries.runc(), Path::new("/c/bin/runc-v1.3.7/runc"));
        assert_eq!(
            binaries.cni_plugin("bridge"),
            Path::new("/c/bin/cni-plugins-v1.9.1/bridge")
        );
        assert_eq!(
            binaries.kubernetes_tool("kubeadm"),
            Path::new("/c/bin/kubernetes-tools-v1.34.12/kubeadm")
        );
        let cni: Vec<_> = module("kindling-cni")
            .iter()
            .map(|(path, _)| *path)
            .collect();
        assert_eq!(
            cni,
            [
                "go.mod",
                "go.sum",
                "cni.go",
                "cni_test.go",
                "main.go",
                "masq.go",
                "masq_test.go",
                "routes.go",
                "routes_test.go"
            ]
        );
        let version = kindling_cni_version();
        assert_eq!(version.len(), 12);
        assert_eq!(
            binaries.kindling_cni(),
            Path::new(&format!("/c/bin/kindling-cni-{version}/kindling-cni"))
        );
    }

    #[test]
    fn the_kubernetes_module_names_kubeadm_and_kubectl_for_the_node_image() {
        let go_mod = KUBERNETES_MODULE
            .iter()
            .find(|(path, _)| *path == "go.mod")
            .unwrap()
            .1;
        for tool in ["kubeadm", "kubectl", "kubelet", "kube-apiserver"] {
            assert!(
                go_mod.contains(&format!("\tk8s.io/kubernetes/cmd/{tool}\n")),
                "{tool}"
            );
        }
    }
}
