//! The files of `crates/kindling-core/kind-node/`, compiled into kindling-core so a
//! published crate builds the node image from any directory.

/// Includes `kind-node/<path>` as `(path, contents)`.
macro_rules! kind_node {
    ($($path:literal),* $(,)?) => {
        &[$(($path, include_str!(concat!("../../../../kind-node/", $path)))),*]
    };
}

/// A file and its contents.
pub(crate) type Source = (&'static str, &'static str);

/// The Go modules, each under `go/<component>/`.
pub(crate) const MODULES: &[Source] = kind_node![
    "go/cni/go.mod",
    "go/cni/go.sum",
    "go/containerd/go.mod",
    "go/containerd/go.sum",
    "go/crictl/go.mod",
    "go/crictl/go.sum",
    "go/kindling-cni/go.mod",
    "go/kindling-cni/go.sum",
    "go/kindling-cni/cni.go",
    "go/kindling-cni/cni_test.go",
    "go/kindling-cni/main.go",
    "go/kindling-cni/masq.go",
    "go/kindling-cni/masq_test.go",
    "go/kindling-cni/routes.go",
    "go/kindling-cni/routes_test.go",
    "go/local-path/go.mod",
    "go/local-path/go.sum",
    "go/runc/go.mod",
    "go/runc/go.sum",
];

/// The node base image's Dockerfile and kindling's patches of the kind
/// files it copies (`base/`; the files come from kind's module, see
/// [`super::upstream`]).
pub(crate) const BASE: &[Source] = kind_node![
    "base/Dockerfile",
    "base/patches/config.toml.patch",
    "base/patches/entrypoint.patch",
];

/// The component images' Dockerfiles and files (`images/<image>/`).
pub(crate) const IMAGES: &[Source] = kind_node![
    "images/coredns/Dockerfile",
    "images/iptables-base/Dockerfile",
    "images/k8s-iptables/Dockerfile",
    "images/k8s-static/Dockerfile",
    "images/kindling-cni/Dockerfile",
    "images/local-path-helper/Dockerfile",
    "images/local-path-provisioner/Dockerfile",
    "images/pause/Dockerfile",
    "images/static-base/Dockerfile",
    "images/static-base/etc/group",
    "images/static-base/etc/nsswitch.conf",
    "images/static-base/etc/passwd",
];

/// The default CNI (kindling-cni, after kind's kindnetd manifest) and kind's
/// storage (local-path-provisioner) manifests, with `@CNI_IMAGE@`, `@LOCAL_PATH_PROVISIONER_IMAGE@` and
/// `@LOCAL_PATH_HELPER_IMAGE@` for the images' names.
pub(crate) const MANIFESTS: &[Source] = kind_node![
    "manifests/default-cni.yaml",
    "manifests/default-storage.yaml",
];

/// The `docker` shim kind runs where the engine refuses `--privileged`,
/// with `@REAL_DOCKER@` and `@UNPRIVILEGED@` to fill in.
pub(crate) const DOCKER_SHIM: &str = include_str!("../../../../kind-node/docker-shim.sh");

/// Files that are programs (mode 0755 in the images; the rest 0644).
pub(crate) fn executable(path: &str) -> bool {
    path.starts_with("base/files/kind/bin/") || path.starts_with("base/files/usr/local/bin/")
}

/// The files under `prefix` (which ends in `/`), with paths relative to it.
pub(crate) fn under<'a>(
    sources: &'a [Source],
    prefix: &'a str,
) -> impl Iterator<Item = (&'a str, &'a str, u32)> + 'a {
    sources.iter().filter_map(move |(path, contents)| {
        let relative = path.strip_prefix(prefix)?;
        Some((
            relative,
            *contents,
            if executable(path) { 0o755 } else { 0o644 },
        ))
    })
}

/// Every source, for the node image's input digest.
pub(crate) fn all() -> impl Iterator<Item = &'static Source> {
    MODULES.iter().chain(BASE).chain(IMAGES).chain(MANIFESTS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// Files beside the sources that document them and are not built.
    fn documentation(path: &str) -> bool {
        path.ends_with("README.md") || path.ends_with("/LICENSE") || path.ends_with("/PROVENANCE")
    }

    #[test]
    fn every_file_of_kind_node_is_compiled_in() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("kind-node");
        let mut on_disk = Vec::new();
        let mut stack = vec![root.clone()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    let relative = path
                        .strip_prefix(&root)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned();
                    if !documentation(&relative) && relative != "docker-shim.sh" {
                        on_disk.push(relative);
                    }
                }
            }
        }
        on_disk.sort();
        let mut embedded: Vec<String> = all().map(|(path, _)| (*path).to_owned()).collect();
        embedded.sort();
        assert_eq!(
            embedded, on_disk,
            "kind-node/ and sources.rs list different files"
        );
    }

    #[test]
    fn programs_keep_their_mode_and_the_rest_are_plain_files() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("kind-node");
        use std::os::unix::fs::PermissionsExt as _;
        for (path, _) in BASE {
            let mode = std::fs::metadata(root.join(path))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o100 != 0, executable(path), "{path}");
        }
    }
}
