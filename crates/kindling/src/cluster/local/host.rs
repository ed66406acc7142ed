//! What a local cluster changes on this host, and gives back at `down`:
//! the node's link and routes, kernel settings, and what the kubelet,
//! kube-proxy and the CNI plugins leave (iptables chains, mounts, network
//! namespaces, cgroups).

use std::path::Path;

use super::cluster::LocalError;
use super::config::{LocalLayout, LocalNetwork};

/// Kernel settings the kubelet and pod networking need, as `/proc/sys` paths.
const HOST_SYSCTLS: &[(&str, &str)] = &[
    ("vm/overcommit_memory", "1"),
    ("vm/panic_on_oom", "0"),
    ("kernel/panic", "10"),
    ("kernel/panic_on_oops", "1"),
    ("kernel/keys/root_maxkeys", "1000000"),
    ("kernel/keys/root_maxbytes", "25000000"),
    ("net/ipv4/ip_forward", "1"),
    ("net/bridge/bridge-nf-call-iptables", "1"),
];

/// Gives the node its link, address and routes, and sets the kernel
/// settings the kubelet needs (recording the host's values first).
pub(super) fn prepare(layout: &LocalLayout, network: &LocalNetwork) -> Result<(), LocalError> {
    let interface = &network.interface;
    if run_host(&["ip", "link", "show", interface]).is_err()
        && run_host(&["ip", "link", "add", interface, "type", "dummy"]).is_err()
    {
        // Kernels without CONFIG_DUMMY: an ifb link holds a local address just as well.
        run_host(&["ip", "link", "add", interface, "type", "ifb"])?;
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
    // Cluster addresses must never follow the default route off the
    // machine: service addresses without kube-proxy rules yet, and pod
    // addresses before the CNI bridge exists, go to the node's own link.
    run_host(&[
        "ip",
        "route",
        "replace",
        &network.service_cidr,
        "dev",
        interface,
    ])?;
    run_host(&[
        "ip",
        "route",
        "replace",
        &network.pod_cidr,
        "dev",
        interface,
        "metric",
        "1000",
    ])?;
    // The kubelet sets these itself; record the host's values first so
    // `down` can give them back.
    let saved = layout.saved_sysctls();
    if !saved.exists() {
        let values: std::collections::BTreeMap<&str, String> = HOST_SYSCTLS
            .iter()
            .map(|(key, _)| {
                (
                    *key,
                    std::fs::read_to_string(Path::new("/proc/sys").join(key))
                        .unwrap_or_default()
                        .trim()
                        .to_owned(),
                )
            })
            .collect();
        std::fs::create_dir_all(&layout.root).map_err(|source| LocalError::Write {
            path: layout.root.clone(),
            source,
        })?;
        std::fs::write(
            &saved,
            serde_json::to_vec_pretty(&values).expect("map serialises"),
        )
        .map_err(|source| LocalError::Write {
            path: saved.clone(),
            source,
        })?;
    }
    for (key, value) in HOST_SYSCTLS {
        write_sysctl(key, value)?;
    }
    Ok(())
}

/// Gives back the kernel settings [`prepare`] recorded.
pub(super) fn restore_sysctls(layout: &LocalLayout) {
    let saved = layout.saved_sysctls();
    let Ok(bytes) = std::fs::read(&saved) else {
        return;
    };
    let values: std::collections::BTreeMap<String, String> =
        serde_json::from_slice(&bytes).unwrap_or_default();
    for (key, value) in values {
        if !value.is_empty() {
            let _ = write_sysctl(&key, &value);
        }
    }
    let _ = std::fs::remove_file(saved);
}

fn write_sysctl(key: &str, value: &str) -> Result<(), LocalError> {
    let path = Path::new("/proc/sys").join(key);
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    if current.trim() != value {
        std::fs::write(&path, value).map_err(|source| LocalError::Write { path, source })?;
    }
    Ok(())
}

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

/// Unmounts everything mounted below `root` (kubelet volumes), deepest first.
pub(super) fn unmount_below(root: &Path) {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let root = root.display().to_string();
    let mut targets: Vec<&str> = mounts
        .lines()
        .filter_map(|line| line.split_whitespace().nth(1))
        .filter(|target| target.starts_with(&root))
        .collect();
    targets.sort_by_key(|target| std::cmp::Reverse(target.len()));
    for target in targets {
        let _ = std::process::Command::new("umount")
            .args(["-l", target])
            .output();
    }
}

/// Removes the `KUBE-*` and `CNI-*` chains (and the rules jumping to them)
/// that kube-proxy, the kubelet and the CNI plugins created, in both
/// address families: `kube-proxy --cleanup` leaves the kubelet's.
pub(super) fn remove_kubernetes_chains() {
    for family in ["iptables", "ip6tables"] {
        for table in ["nat", "filter", "mangle"] {
            let Ok(saved) = run_host(&[&format!("{family}-save"), "-t", table]) else {
                continue;
            };
            let ours = |chain: &str| chain.starts_with("KUBE-") || chain.starts_with("CNI-");
            for rule in saved.lines().filter_map(|line| line.strip_prefix("-A ")) {
                let mut words = rule.split_whitespace();
                let chain = words.next().unwrap_or_default();
                let jumps_to_ours = rule.split(" -j ").nth(1).is_some_and(|target| {
                    ours(target.split_whitespace().next().unwrap_or_default())
                });
                if jumps_to_ours && !ours(chain) {
                    let words = rule_words(rule);
                    let mut argv = vec![family, "-t", table, "-D"];
                    argv.extend(words.iter().map(String::as_str));
                    let _ = run_host(&argv);
                }
            }
            let chains: Vec<&str> = saved
                .lines()
                .filter_map(|line| line.strip_prefix(':')?.split_whitespace().next())
                .filter(|chain| ours(chain))
                .collect();
            for chain in &chains {
                let _ = run_host(&[family, "-t", table, "-F", chain]);
            }
            for chain in &chains {
                let _ = run_host(&[family, "-t", table, "-X", chain]);
            }
        }
    }
}

/// Splits an `iptables-save` rule into arguments: words, and double-quoted
/// strings with `\"` escapes (comments).
fn rule_words(rule: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut in_word = false;
    let mut chars = rule.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' if quoted => {
                if let Some(next) = chars.next() {
                    current.push(next);
                }
            }
            '"' => {
                quoted = !quoted;
                in_word = true;
            }
            c if c.is_whitespace() && !quoted => {
                if in_word {
                    words.push(std::mem::take(&mut current));
                    in_word = false;
                }
            }
            c => {
                current.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(current);
    }
    words
}

/// Removes the (empty) `kubepods` cgroups the kubelet created.
pub(super) fn remove_kubepods_cgroups() {
    let Ok(hierarchies) = std::fs::read_dir("/sys/fs/cgroup") else {
        return;
    };
    for hierarchy in hierarchies.flatten() {
        let root = hierarchy.path().join("kubepods");
        if !root.is_dir() {
            continue;
        }
        let mut directories = Vec::new();
        let mut pending = vec![root];
        while let Some(directory) = pending.pop() {
            if let Ok(children) = std::fs::read_dir(&directory) {
                pending.extend(
                    children
                        .flatten()
                        .map(|child| child.path())
                        .filter(|path| path.is_dir()),
                );
            }
            directories.push(directory);
        }
        for directory in directories.into_iter().rev() {
            let _ = std::fs::remove_dir(directory);
        }
    }
}

/// Removes the pods' network namespaces, the CNI bridge and the node's
/// link; returns what could not be removed, naming it.
pub(super) fn remove_network(network: &LocalNetwork) -> Vec<String> {
    let mut left = Vec::new();
    for netns in cni_network_namespaces() {
        if let Err(error) = run_host(&["ip", "netns", "delete", &netns]) {
            left.push(format!("network namespace `{netns}` ({error})"));
        }
    }
    for link in ["kindling-br0", network.interface.as_str()] {
        if Path::new("/sys/class/net").join(link).exists()
            && let Err(error) = run_host(&["ip", "link", "delete", link])
        {
            left.push(format!("network interface `{link}` ({error})"));
        }
    }
    left
}

/// Network namespaces the CRI plugin created for pod sandboxes.
fn cni_network_namespaces() -> Vec<String> {
    std::fs::read_dir("/var/run/netns")
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|entry| entry.file_name().into_string().ok())
                .filter(|name| name.starts_with("cni-"))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iptables_rules_split_like_a_shell() {
        let rule = r#"POSTROUTING -s 10.213.0.2/32 -m comment --comment "name: \"kindling\" id: \"2d38\"" -j CNI-562c"#;
        assert_eq!(
            rule_words(rule),
            [
                "POSTROUTING",
                "-s",
                "10.213.0.2/32",
                "-m",
                "comment",
                "--comment",
                "name: \"kindling\" id: \"2d38\"",
                "-j",
                "CNI-562c"
            ]
        );
        assert_eq!(
            rule_words(
                r#"FORWARD -m comment --comment "CNI firewall plugin rules" -j CNI-FORWARD"#
            )
            .len(),
            7
        );
    }
}
