//! What a local cluster changes on this host, and gives back at `down`:
//! the node's link and routes, kernel settings, its own iptables chains,
//! the kubelet's cgroup root, the volumes folder, and what the kubelet,
//! kube-proxy and the CNI bridge leave (mounts, network namespaces,
//! `KUBE-*` chains, the bridge).
//!
//! Ownership is by creation: every change is written to the host record
//! ([`HostRecord`]) before it is made, objects carry names derived from the
//! cluster's name, and `down` removes only those, so another cluster's,
//! podman's or a second Kubernetes' objects on the same host are never
//! touched. Before changing anything, `up` checks the cluster's ranges
//! against the host's routes and refuses objects it would take over.

use std::path::{Path, PathBuf};

use super::cluster::LocalError;
use super::config::LocalLayout;
use super::host_record::HostRecord;
use super::iptables;
use super::manifests::HOSTPATH_VOLUMES;
use super::network::{LocalNetwork, first_collision, parse_routes};

/// Kernel settings the kubelet and pod networking need, as `/proc/sys` paths.
pub(crate) const HOST_SYSCTLS: &[(&str, &str)] = &[
    ("vm/overcommit_memory", "1"),
    ("vm/panic_on_oom", "0"),
    ("kernel/panic", "10"),
    ("kernel/panic_on_oops", "1"),
    ("kernel/keys/root_maxkeys", "1000000"),
    ("kernel/keys/root_maxbytes", "25000000"),
    ("net/ipv4/ip_forward", "1"),
    ("net/bridge/bridge-nf-call-iptables", "1"),
];

/// The links an older kindling made (before names carried the cluster's).
const LEGACY_LINKS: &[&str] = &["kindling0", "kindling-br0"];

/// Checks the host, then gives the node its link, address and routes, sets
/// the kernel settings the kubelet needs, adds the cluster's iptables
/// chains, the kubelet's cgroup root and the volumes folder, each recorded
/// before it is made. Nothing is changed when a check fails.
pub(super) fn prepare(layout: &LocalLayout, network: &LocalNetwork) -> Result<(), LocalError> {
    let path = layout.host_record();
    let mut record = HostRecord::load(&path)?;
    private_dir(&layout.root)?;
    migrate_legacy(layout, &mut record)?;
    check(layout, network, &record)?;
    let save = |record: &HostRecord| record.save(&path).map_err(LocalError::from);

    add_node_link(network, &mut record, &save)?;
    add_routes(network, &mut record, &save)?;
    set_sysctls(&mut record, &save)?;
    record.own_chains = true;
    save(&record)?;
    iptables::remove_own_chains(network);
    iptables::add_own_chains(network)?;
    add_cgroup_roots(network, &mut record, &save)?;
    link_volumes(layout, &mut record, &save)?;
    // No KUBE-* chain existed (checked above), so the ones the kubelet and
    // kube-proxy are about to make are this cluster's.
    record.kubernetes_chains = true;
    save(&record)
}

/// Saves the host record, for the steps of [`prepare`].
type Save<'a> = dyn Fn(&HostRecord) -> Result<(), LocalError> + 'a;

/// Gives the node its link (made unless it exists, recorded first), its
/// address, and brings the link up.
fn add_node_link(
    network: &LocalNetwork,
    record: &mut HostRecord,
    save: &Save<'_>,
) -> Result<(), LocalError> {
    let interface = network.interface.as_str();
    if !link_exists(interface) {
        if !record.links.iter().any(|link| link == interface) {
            record.links.push(interface.to_owned());
            save(record)?;
        }
        if run_host(&["ip", "link", "add", interface, "type", "dummy"]).is_err() {
            // Kernels without CONFIG_DUMMY: an ifb link holds a local address just as well.
            run_host(&["ip", "link", "add", interface, "type", "ifb"])?;
        }
        let _ = run_host(&[
            "ip",
            "link",
            "set",
            interface,
            "alias",
            &network.rule_comment,
        ]);
    }
    run_host(&[
        "ip",
        "addr",
        "replace",
        &format!("{}/32", network.node_ip),
        "dev",
        interface,
    ])?;
    run_host(&["ip", "link", "set", interface, "up"])?;
    Ok(())
}

/// Routes the cluster's service and pod ranges to the node's link, each
/// recorded first.
fn add_routes(
    network: &LocalNetwork,
    record: &mut HostRecord,
    save: &Save<'_>,
) -> Result<(), LocalError> {
    let interface = network.interface.as_str();
    // Cluster addresses must never follow the default route off the
    // machine: service addresses without kube-proxy rules yet, and pod
    // addresses before the CNI bridge exists, go to the node's own link.
    // (`check` found no route of the host overlapping them.)
    for (range, metric) in [
        (&network.service_cidr, None),
        (&network.pod_cidr, Some("1000")),
    ] {
        if !record.routes.contains(range) {
            record.routes.push(range.clone());
            save(record)?;
        }
        let mut argv = vec!["ip", "route", "replace", range, "dev", interface];
        if let Some(metric) = metric {
            argv.extend(["metric", metric]);
        }
        run_host(&argv)?;
    }
    Ok(())
}

/// Sets [`HOST_SYSCTLS`], the host's values recorded first.
fn set_sysctls(record: &mut HostRecord, save: &Save<'_>) -> Result<(), LocalError> {
    // The kubelet sets these itself: record the host's values first so
    // `down` can give them back.
    for (key, _) in HOST_SYSCTLS {
        if !record.sysctls.contains_key(*key) {
            let current = std::fs::read_to_string(Path::new("/proc/sys").join(key))
                .unwrap_or_default()
                .trim()
                .to_owned();
            record.sysctls.insert((*key).to_owned(), current);
        }
    }
    save(record)?;
    for (key, value) in HOST_SYSCTLS {
        write_sysctl(key, value)?;
    }
    Ok(())
}

/// Makes the kubelet's cgroup root in each hierarchy that lacks it, each
/// recorded first.
fn add_cgroup_roots(
    network: &LocalNetwork,
    record: &mut HostRecord,
    save: &Save<'_>,
) -> Result<(), LocalError> {
    for hierarchy in cgroup_hierarchies() {
        let own = hierarchy.join(&network.cgroup_root);
        if own.is_dir() {
            continue;
        }
        if !record.cgroups.contains(&own) {
            record.cgroups.push(own.clone());
            save(record)?;
        }
        std::fs::create_dir(&own).map_err(|source| LocalError::Write {
            path: own.clone(),
            source,
        })?;
        copy_cpuset(&hierarchy, &own);
    }
    Ok(())
}

/// Makes the volumes folder, and [`HOSTPATH_VOLUMES`] a link to it unless
/// the path exists (recorded first).
fn link_volumes(
    layout: &LocalLayout,
    record: &mut HostRecord,
    save: &Save<'_>,
) -> Result<(), LocalError> {
    let volumes = layout.volumes();
    private_dir(&volumes)?;
    let link = Path::new(HOSTPATH_VOLUMES);
    if std::fs::symlink_metadata(link).is_err() {
        record.volumes_link = Some(link.to_owned());
        save(record)?;
        // Fails, rather than follows, if someone made the path meanwhile.
        std::os::unix::fs::symlink(&volumes, link).map_err(|source| {
            LocalError::ForeignVolumes {
                path: link.to_owned(),
                found: format!("created by someone else while kindling made it ({source})"),
            }
        })?;
    }
    Ok(())
}

/// What `up` refuses before it changes anything: a host route in one of
/// the cluster's ranges, another Kubernetes' chains, a node link or
/// volumes path that is not this cluster's.
fn check(
    layout: &LocalLayout,
    network: &LocalNetwork,
    record: &HostRecord,
) -> Result<(), LocalError> {
    let listed = run_host(&["ip", "-4", "-j", "route", "show", "table", "all"])?;
    let routes = parse_routes(&listed).map_err(|error| LocalError::Host {
        command: "ip -4 -j route show table all".to_owned(),
        stderr: format!("unreadable output ({error})"),
    })?;
    let own = [network.interface.as_str(), network.bridge.as_str()];
    if let Some(collision) = first_collision(&network.ranges, &routes, &own) {
        return Err(LocalError::RangeCollision(Box::new(collision)));
    }
    if !record.kubernetes_chains {
        let found = iptables::kubernetes_objects();
        if !found.is_empty() {
            return Err(LocalError::ForeignKubernetes { objects: found });
        }
    }
    if link_exists(&network.interface) && !record.links.contains(&network.interface) {
        return Err(LocalError::ForeignLink {
            link: network.interface.clone(),
        });
    }
    let link = Path::new(HOSTPATH_VOLUMES);
    if let Ok(metadata) = std::fs::symlink_metadata(link) {
        let target = std::fs::read_link(link).ok();
        if !(metadata.file_type().is_symlink() && target.as_deref() == Some(&layout.volumes())) {
            use std::os::unix::fs::MetadataExt as _;
            let found = match target {
                Some(target) => format!("a link to `{}`", target.display()),
                None => format!(
                    "a {} owned by uid {}",
                    if metadata.is_dir() { "folder" } else { "file" },
                    metadata.uid()
                ),
            };
            return Err(LocalError::ForeignVolumes {
                path: link.to_owned(),
                found,
            });
        }
    }
    Ok(())
}

/// A cluster brought up by a kindling older than the host record: its
/// saved kernel settings become the record's, its `KUBE-*` chains are its
/// own, and its fixed-name links go (the next steps make the new ones).
fn migrate_legacy(layout: &LocalLayout, record: &mut HostRecord) -> Result<(), LocalError> {
    let legacy = layout.legacy_saved_sysctls();
    let Ok(bytes) = std::fs::read(&legacy) else {
        return Ok(());
    };
    if let Ok(values) = serde_json::from_slice::<std::collections::BTreeMap<String, String>>(&bytes)
    {
        for (key, value) in values {
            record.sysctls.entry(key).or_insert(value);
        }
    }
    record.kubernetes_chains = true;
    record.save(&layout.host_record())?;
    for link in LEGACY_LINKS {
        if link_exists(link) {
            let _ = run_host(&["ip", "link", "delete", link]);
        }
    }
    let _ = std::fs::remove_file(legacy);
    Ok(())
}

/// Gives back what [`prepare`] and the cluster changed: this cluster's
/// chains (and `KUBE-*` chains when the record says they are its own), the
/// network namespaces `netns` of its sandboxes, mounts below its folders,
/// its links, cgroups, kernel settings and volumes link. Returns what it
/// could not give back, each naming the object (an unreadable record among
/// them); the record goes last.
pub(super) fn give_back(
    layout: &LocalLayout,
    network: &LocalNetwork,
    netns: &[PathBuf],
) -> Vec<String> {
    let mut left = Vec::new();
    let path = layout.host_record();
    let mut record = match HostRecord::load(&path) {
        Ok(record) => record,
        Err(error) => {
            left.push(format!(
                "kernel settings and `KUBE-*` chains unrestored: {}",
                kindling_harness::render_chain(&error).replace('\n', " ")
            ));
            HostRecord::default()
        }
    };
    let _ = migrate_legacy(layout, &mut record);
    if record.kubernetes_chains {
        left.extend(iptables::remove_kubernetes_chains());
    }
    left.extend(iptables::remove_own_chains(network));
    for namespace in netns {
        left.extend(remove_network_namespace(namespace));
    }
    unmount_below(layout, &layout.root);
    unmount_below(layout, &layout.run);
    for link in [network.bridge.as_str(), network.interface.as_str()] {
        if link_exists(link)
            && let Err(error) = run_host(&["ip", "link", "delete", link])
        {
            left.push(format!("network interface `{link}` ({error})"));
        }
    }
    for hierarchy in cgroup_hierarchies() {
        left.extend(remove_cgroup_tree(&hierarchy.join(&network.cgroup_root)));
    }
    for (key, value) in &record.sysctls {
        if !value.is_empty()
            && let Err(error) = write_sysctl(key, value)
        {
            left.push(format!("kernel setting `{key}` ({error})"));
        }
    }
    let link = Path::new(HOSTPATH_VOLUMES);
    if std::fs::read_link(link).ok().as_deref() == Some(&layout.volumes())
        && let Err(error) = std::fs::remove_file(link)
    {
        left.push(format!("link `{}` ({error})", link.display()));
    }
    if let Err(error) = std::fs::remove_file(&path)
        && error.kind() != std::io::ErrorKind::NotFound
    {
        left.push(format!("record `{}` ({error})", path.display()));
    }
    left
}

fn write_sysctl(key: &str, value: &str) -> Result<(), LocalError> {
    let path = Path::new("/proc/sys").join(key);
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    if current.trim() != value {
        std::fs::write(&path, value).map_err(|source| LocalError::Write { path, source })?;
    }
    Ok(())
}

fn link_exists(link: &str) -> bool {
    Path::new("/sys/class/net").join(link).exists()
}

/// Creates `dir` (and its missing parents) root's only (0700).
pub(super) fn private_dir(dir: &Path) -> Result<(), LocalError> {
    kindling_harness::util::create_private_dir_all(dir).map_err(|source| LocalError::Write {
        path: dir.to_owned(),
        source,
    })
}

/// Runs a host command; its stderr is the error.
pub(super) fn run_host(argv: &[&str]) -> Result<String, LocalError> {
    let output = std::process::Command::new(argv[0])
        .args(&argv[1..])
        .output()
        .map_err(|error| LocalError::Host {
            command: argv.join(" "),
            stderr: error.to_string(),
        })?;
    if !output.status.success() {
        return Err(LocalError::Host {
            command: argv.join(" "),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Unmounts everything mounted at or below `root` (kubelet volumes,
/// containerd's snapshots), deepest first; never a path outside the
/// cluster's own folders.
fn unmount_below(layout: &LocalLayout, root: &Path) {
    if !layout.owns(root) {
        return;
    }
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let mut targets: Vec<PathBuf> = mounts
        .lines()
        .filter_map(|line| line.split_whitespace().nth(1))
        .map(unescape_mount_path)
        .filter(|target| target.starts_with(root) && layout.owns(target))
        .collect();
    targets.sort_by_key(|target| std::cmp::Reverse(target.components().count()));
    for target in targets {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&target)
            .output();
    }
}

/// `/proc/self/mounts` escapes spaces, tabs, newlines and backslashes as
/// octal.
fn unescape_mount_path(field: &str) -> PathBuf {
    let mut out = String::new();
    let mut chars = field.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            let digits: String = chars.clone().take(3).collect();
            if let Ok(byte) = u8::from_str_radix(&digits, 8)
                && digits.len() == 3
            {
                out.push(byte as char);
                for _ in 0..3 {
                    chars.next();
                }
                continue;
            }
        }
        out.push(c);
    }
    PathBuf::from(out)
}

/// Removes a pod sandbox's network namespace (containerd's
/// `/var/run/netns/cni-*` bind mount), only under the netns folders.
fn remove_network_namespace(path: &Path) -> Option<String> {
    let parent = path.parent()?;
    let allowed = [Path::new("/var/run/netns"), Path::new("/run/netns")];
    let name = path.file_name()?.to_str()?;
    if !allowed.contains(&parent) || !path.exists() {
        return None;
    }
    run_host(&["ip", "netns", "delete", name])
        .err()
        .map(|error| format!("network namespace `{name}` ({error})"))
}

/// The cgroup v1 hierarchies mounted under `/sys/fs/cgroup` (or the
/// unified hierarchy itself on cgroup v2).
fn cgroup_hierarchies() -> Vec<PathBuf> {
    let root = Path::new("/sys/fs/cgroup");
    if root.join("cgroup.controllers").exists() {
        return vec![root.to_owned()];
    }
    let Ok(entries) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    let mut hierarchies: Vec<PathBuf> = entries
        .flatten()
        .filter(|entry| entry.file_type().is_ok_and(|kind| kind.is_dir()))
        .map(|entry| entry.path())
        .collect();
    hierarchies.sort();
    hierarchies
}

/// A new cpuset cgroup has no CPUs or memory nodes until given its
/// parent's.
fn copy_cpuset(hierarchy: &Path, own: &Path) {
    for file in ["cpuset.cpus", "cpuset.mems"] {
        if let Ok(value) = std::fs::read_to_string(hierarchy.join(file)) {
            let _ = std::fs::write(own.join(file), value.trim());
        }
    }
}

/// Removes the (empty) cgroup `root` and everything below it, deepest
/// first; returns what it could not remove.
fn remove_cgroup_tree(root: &Path) -> Vec<String> {
    if !root.is_dir() {
        return Vec::new();
    }
    let mut directories = Vec::new();
    let mut pending = vec![root.to_owned()];
    while let Some(directory) = pending.pop() {
        if let Ok(children) = std::fs::read_dir(&directory) {
            pending.extend(
                children
                    .flatten()
                    .filter(|child| child.file_type().is_ok_and(|kind| kind.is_dir()))
                    .map(|child| child.path()),
            );
        }
        directories.push(directory);
    }
    let mut left = Vec::new();
    for directory in directories.into_iter().rev() {
        if let Err(error) = std::fs::remove_dir(&directory) {
            left.push(format!("cgroup `{}` ({error})", directory.display()));
        }
    }
    left
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_paths_are_unescaped() {
        assert_eq!(
            unescape_mount_path(r"/state/a\040b/c"),
            PathBuf::from("/state/a b/c")
        );
        assert_eq!(unescape_mount_path("/plain"), PathBuf::from("/plain"));
    }

    #[test]
    fn teardown_acts_only_inside_the_clusters_own_folders() {
        let layout = LocalLayout::new("/root/.local/state/kindling/clusters/a", "/run/kindling/a");
        assert!(layout.owns(Path::new("/run/kindling/a/runc")));
        assert!(layout.owns(Path::new("/root/.local/state/kindling/clusters/a/etcd")));
        assert!(!layout.owns(Path::new("/run/kindling/a-2/runc")));
        assert!(!layout.owns(Path::new("/run/kindling/a/../b")));
        assert!(!layout.owns(Path::new("/")));
        // A layout whose root is `/` (a name that was a path) owns nothing.
        let broken = LocalLayout::new("/", "/run");
        assert!(!broken.owns(Path::new("/etc")));
        assert!(!broken.owns(Path::new("/run/x")));
    }

    #[test]
    fn only_the_netns_folders_are_touched() {
        assert_eq!(remove_network_namespace(Path::new("/etc/passwd")), None);
        assert_eq!(remove_network_namespace(Path::new("/")), None);
    }
}
