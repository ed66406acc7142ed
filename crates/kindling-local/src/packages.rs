//! The runtime pieces a local cluster takes from the host: containerd, ctr,
//! runc and iptables on `PATH`, the CNI plugins in `/usr/lib/cni` (Debian)
//! or `/opt/cni/bin` (the CNI project's convention). Docker's
//! `containerd.io` (containerd, ctr and runc in `/usr/bin`) serves as well
//! as Debian's `containerd` and `runc`. See [`kindling_core::apt`] for how missing
//! ones are installed.

use std::path::PathBuf;

use kindling_core::apt::{Piece, SearchPath};

/// The CNI plugins the cluster's network configuration chains.
pub const CNI_PLUGINS: &[&str] = &["bridge", "host-local", "loopback", "portmap", "firewall"];

/// Where the CNI plugins are looked for, in order: Debian's
/// `containernetworking-plugins`, then the CNI project's convention.
pub const CNI_DIRS: &[&str] = &["/usr/lib/cni", "/opt/cni/bin"];

const DOCKER: &str = "Docker's containerd.io";

/// The runtime pieces, in the order of [`RuntimePaths::from_found`], the
/// CNI plugins looked for in `cni_dirs`.
pub fn runtime_pieces(cni_dirs: &[PathBuf]) -> Vec<Piece> {
    vec![
        Piece::program("containerd", "containerd").also_from(DOCKER),
        Piece::program("ctr", "containerd").also_from(DOCKER),
        Piece::program("runc", "runc").also_from(DOCKER),
        Piece::program("iptables", "iptables"),
        Piece::files(
            "the CNI plugins",
            cni_dirs,
            CNI_PLUGINS,
            "containernetworking-plugins",
        ),
    ]
}

/// [`CNI_DIRS`] as paths.
pub fn default_cni_dirs() -> Vec<PathBuf> {
    CNI_DIRS.iter().map(PathBuf::from).collect()
}

/// Where the cluster's runtime pieces are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimePaths {
    /// containerd.
    pub containerd: PathBuf,
    /// containerd's `ctr`.
    pub ctr: PathBuf,
    /// runc, named to containerd as the runc runtime's `BinaryName`.
    pub runc: PathBuf,
    /// iptables.
    pub iptables: PathBuf,
    /// The directory holding the CNI plugins.
    pub cni_bin_dir: PathBuf,
}

impl RuntimePaths {
    /// Where Debian's packages put them.
    pub fn debian() -> Self {
        RuntimePaths {
            containerd: PathBuf::from("/usr/bin/containerd"),
            ctr: PathBuf::from("/usr/bin/ctr"),
            runc: PathBuf::from("/usr/sbin/runc"),
            iptables: PathBuf::from("/usr/sbin/iptables"),
            cni_bin_dir: PathBuf::from(CNI_DIRS[0]),
        }
    }

    /// From the paths of [`runtime_pieces`], in their order.
    pub fn from_found(paths: &[PathBuf]) -> Option<Self> {
        let [containerd, ctr, runc, iptables, cni_bin_dir] = paths else {
            return None;
        };
        Some(RuntimePaths {
            containerd: containerd.clone(),
            ctr: ctr.clone(),
            runc: runc.clone(),
            iptables: iptables.clone(),
            cni_bin_dir: cni_bin_dir.clone(),
        })
    }

    /// Each piece where `search` (and `cni_dirs`) finds it, else where
    /// Debian's package puts it, which is where `prepare` installs it.
    pub fn find_or_debian(search: &SearchPath, cni_dirs: &[PathBuf]) -> Self {
        let debian = RuntimePaths::debian();
        let defaults = [
            debian.containerd,
            debian.ctr,
            debian.runc,
            debian.iptables,
            debian.cni_bin_dir,
        ];
        let paths: Vec<PathBuf> = search
            .look_up(&runtime_pieces(cni_dirs))
            .pieces
            .into_iter()
            .zip(defaults)
            .map(|((_, found), default)| found.unwrap_or(default))
            .collect();
        RuntimePaths::from_found(&paths).expect("one path per runtime piece")
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn stub(path: &Path) {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// A host's directories under `root`: `PATH` = usr/local/bin,
    /// usr/sbin, usr/bin; the CNI plugins in usr/lib/cni or opt/cni/bin.
    struct Host {
        root: tempfile::TempDir,
    }

    impl Host {
        fn new(files: &[&str]) -> Self {
            let root = tempfile::tempdir().unwrap();
            for file in files {
                stub(&root.path().join(file));
            }
            Host { root }
        }
        fn path(&self, relative: &str) -> PathBuf {
            self.root.path().join(relative)
        }
        fn search(&self) -> SearchPath {
            SearchPath::new(["usr/local/bin", "usr/sbin", "usr/bin"].map(|dir| self.path(dir)))
        }
        fn cni_dirs(&self) -> Vec<PathBuf> {
            vec![self.path("usr/lib/cni"), self.path("opt/cni/bin")]
        }
        fn missing_packages(&self) -> Vec<String> {
            let mut packages: Vec<String> = self
                .search()
                .look_up(&runtime_pieces(&self.cni_dirs()))
                .missing()
                .into_iter()
                .map(|piece| piece.package)
                .collect();
            packages.dedup();
            packages
        }
    }

    fn plugins_in(dir: &str) -> Vec<String> {
        CNI_PLUGINS
            .iter()
            .map(|plugin| format!("{dir}/{plugin}"))
            .collect()
    }

    #[test]
    fn dockers_containerd_io_provides_containerd_ctr_and_runc() {
        // containerd.io's files; iptables from Debian; no CNI plugins.
        let host = Host::new(&[
            "usr/bin/containerd",
            "usr/bin/ctr",
            "usr/bin/runc",
            "usr/sbin/iptables",
        ]);
        let lookup = host.search().look_up(&runtime_pieces(&host.cni_dirs()));
        let found: Vec<(String, PathBuf)> = lookup
            .found()
            .into_iter()
            .map(|(piece, path)| (piece.name, path))
            .collect();
        assert_eq!(
            found,
            [
                ("containerd".to_owned(), host.path("usr/bin/containerd")),
                ("ctr".to_owned(), host.path("usr/bin/ctr")),
                ("runc".to_owned(), host.path("usr/bin/runc")),
                ("iptables".to_owned(), host.path("usr/sbin/iptables")),
            ]
        );
        // Neither Debian's runc (which would remove containerd.io) nor its containerd.
        assert_eq!(host.missing_packages(), ["containernetworking-plugins"]);

        let paths = RuntimePaths::find_or_debian(&host.search(), &host.cni_dirs());
        assert_eq!(paths.runc, host.path("usr/bin/runc"));
        assert_eq!(
            paths.cni_bin_dir,
            Path::new("/usr/lib/cni"),
            "Debian's, once installed"
        );
    }

    #[test]
    fn debians_packages_put_runc_and_iptables_in_sbin_and_the_plugins_in_usr_lib_cni() {
        let mut files = vec![
            "usr/bin/containerd".to_owned(),
            "usr/bin/ctr".to_owned(),
            "usr/sbin/runc".to_owned(),
            "usr/sbin/iptables".to_owned(),
        ];
        files.extend(plugins_in("usr/lib/cni"));
        let host = Host::new(&files.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(host.missing_packages(), Vec::<String>::new());
        assert_eq!(
            RuntimePaths::find_or_debian(&host.search(), &host.cni_dirs()),
            RuntimePaths {
                containerd: host.path("usr/bin/containerd"),
                ctr: host.path("usr/bin/ctr"),
                runc: host.path("usr/sbin/runc"),
                iptables: host.path("usr/sbin/iptables"),
                cni_bin_dir: host.path("usr/lib/cni"),
            }
        );
    }

    #[test]
    fn the_first_on_path_wins_and_plugins_may_be_in_opt_cni_bin() {
        let mut files = vec![
            "usr/local/bin/containerd".to_owned(),
            "usr/bin/containerd".to_owned(),
            "usr/bin/ctr".to_owned(),
            "usr/bin/runc".to_owned(),
            "usr/sbin/iptables".to_owned(),
            // An incomplete Debian directory does not count.
            "usr/lib/cni/bridge".to_owned(),
        ];
        files.extend(plugins_in("opt/cni/bin"));
        let host = Host::new(&files.iter().map(String::as_str).collect::<Vec<_>>());
        let paths = RuntimePaths::find_or_debian(&host.search(), &host.cni_dirs());
        assert_eq!(paths.containerd, host.path("usr/local/bin/containerd"));
        assert_eq!(paths.cni_bin_dir, host.path("opt/cni/bin"));
    }

    #[test]
    fn an_empty_host_misses_every_package_and_defaults_to_debians_paths() {
        let host = Host::new(&[]);
        assert_eq!(
            host.missing_packages(),
            [
                "containerd",
                "runc",
                "iptables",
                "containernetworking-plugins"
            ]
        );
        assert_eq!(
            RuntimePaths::find_or_debian(&host.search(), &host.cni_dirs()),
            RuntimePaths::debian()
        );
    }
}
