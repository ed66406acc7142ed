//! The iptables side of a local cluster. Its own chains carry the
//! cluster's prefix (`KINDLING-<10 hex>-*`) and its jumps into built-in
//! chains a comment naming the cluster, so `down` removes exactly those.
//! The `KUBE-*` chains kube-proxy and the kubelet make have fixed names:
//! `up` refuses to start when such chains (or kube-proxy's nftables tables
//! or IPVS link) exist that this cluster did not make, because its
//! kube-proxy would take them over; `down` removes them only when the
//! host record says this cluster made them.

use super::cluster::LocalError;
use super::host::run_host;
use super::network::LocalNetwork;

/// The tables kube-proxy and the kubelet write.
const TABLES: &[&str] = &["nat", "filter", "mangle"];

/// The chain names of `table` in `iptables-save` output.
fn chains(saved: &str) -> Vec<&str> {
    saved
        .lines()
        .filter_map(|line| line.strip_prefix(':')?.split_whitespace().next())
        .collect()
}

/// `KUBE-*` chains on the host, as `family table chain`, and kube-proxy's
/// other modes' objects (nftables tables, the IPVS link): what another
/// Kubernetes on this host would own.
pub(super) fn kubernetes_objects() -> Vec<String> {
    let mut found = Vec::new();
    for family in ["iptables", "ip6tables"] {
        for table in TABLES {
            let Ok(saved) = run_host(&[&format!("{family}-save"), "-t", table]) else {
                continue;
            };
            found.extend(
                chains(&saved)
                    .into_iter()
                    .filter(|chain| chain.starts_with("KUBE-"))
                    .map(|chain| format!("{family} {table} {chain}")),
            );
        }
    }
    if let Ok(tables) = run_host(&["nft", "list", "tables"]) {
        found.extend(
            tables
                .lines()
                .map(str::trim)
                .filter(|line| line.ends_with(" kube-proxy"))
                .map(|line| format!("nftables {line}")),
        );
    }
    if std::path::Path::new("/sys/class/net/kube-ipvs0").exists() {
        found.push("IPVS link kube-ipvs0".to_owned());
    }
    found
}

/// Removes the `KUBE-*` chains (and the rules jumping to them) that
/// kube-proxy and the kubelet made, in both address families. Only called
/// when the host record says this cluster made them.
pub(super) fn remove_kubernetes_chains() -> Vec<String> {
    remove_chains(&["iptables", "ip6tables"], |chain| {
        chain.starts_with("KUBE-")
    })
}

/// Removes this cluster's own chains and every rule jumping to them.
pub(super) fn remove_own_chains(network: &LocalNetwork) -> Vec<String> {
    let prefix = format!("{}-", network.chain_prefix);
    remove_chains(&["iptables"], |chain| chain.starts_with(&prefix))
}

/// Deletes the rules of other chains that jump to a chain `ours` matches,
/// then flushes and deletes those chains. Returns what it could not remove.
fn remove_chains(families: &[&str], ours: impl Fn(&str) -> bool) -> Vec<String> {
    let mut left = Vec::new();
    for family in families {
        for table in TABLES {
            let Ok(saved) = run_host(&[&format!("{family}-save"), "-t", table]) else {
                continue;
            };
            for rule in saved.lines().filter_map(|line| line.strip_prefix("-A ")) {
                let words = rule_words(rule);
                let chain = words.first().map(String::as_str).unwrap_or_default();
                let target = words
                    .iter()
                    .position(|word| word == "-j" || word == "-g")
                    .and_then(|index| words.get(index + 1));
                if target.is_some_and(|target| ours(target)) && !ours(chain) {
                    let mut argv = vec![*family, "-t", table, "-D"];
                    argv.extend(words.iter().map(String::as_str));
                    if let Err(error) = run_host(&argv) {
                        left.push(format!("the {family} {table} rule `-A {rule}` ({error})"));
                    }
                }
            }
            let own: Vec<&str> = chains(&saved).into_iter().filter(|c| ours(c)).collect();
            for chain in &own {
                let _ = run_host(&[family, "-t", table, "-F", chain]);
            }
            for chain in &own {
                if let Err(error) = run_host(&[family, "-t", table, "-X", chain]) {
                    left.push(format!("the {family} {table} chain `{chain}` ({error})"));
                }
            }
        }
    }
    left
}

/// Adds the cluster's own chains: pod traffic accepted in FORWARD (Docker
/// sets its policy to DROP), the node's address reachable only from this
/// host and the cluster's pods (not from Docker's containers or the
/// network), and pod traffic leaving the pod range masqueraded.
pub(super) fn add_own_chains(network: &LocalNetwork) -> Result<(), LocalError> {
    let forward = network.chain("FWD");
    let input = network.chain("IN");
    let masquerade = network.chain("MASQ");
    let comment = network.rule_comment.as_str();
    let pods = network.pod_cidr.as_str();
    let node = format!("{}/32", network.node_ip);
    let commands: Vec<Vec<&str>> = vec![
        vec!["-t", "filter", "-N", &forward],
        vec!["-t", "filter", "-A", &forward, "-s", pods, "-j", "ACCEPT"],
        vec!["-t", "filter", "-A", &forward, "-d", pods, "-j", "ACCEPT"],
        vec!["-t", "filter", "-N", &input],
        vec!["-t", "filter", "-A", &input, "-i", "lo", "-j", "RETURN"],
        vec![
            "-t",
            "filter",
            "-A",
            &input,
            "-i",
            &network.bridge,
            "-j",
            "RETURN",
        ],
        vec!["-t", "filter", "-A", &input, "-j", "DROP"],
        vec!["-t", "nat", "-N", &masquerade],
        vec!["-t", "nat", "-A", &masquerade, "-j", "MASQUERADE"],
        vec![
            "-t",
            "filter",
            "-I",
            "FORWARD",
            "1",
            "-m",
            "comment",
            "--comment",
            comment,
            "-j",
            &forward,
        ],
        vec![
            "-t",
            "filter",
            "-I",
            "INPUT",
            "1",
            "-d",
            &node,
            "-m",
            "comment",
            "--comment",
            comment,
            "-j",
            &input,
        ],
        vec![
            "-t",
            "nat",
            "-I",
            "POSTROUTING",
            "1",
            "-s",
            pods,
            "!",
            "-d",
            pods,
            "-m",
            "comment",
            "--comment",
            comment,
            "-j",
            &masquerade,
        ],
    ];
    for args in commands {
        let mut argv = vec!["iptables"];
        argv.extend(args);
        run_host(&argv)?;
    }
    Ok(())
}

/// Splits an `iptables-save` rule into arguments: words, and double-quoted
/// strings with `\"` escapes (comments).
pub(super) fn rule_words(rule: &str) -> Vec<String> {
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
            rule_words(r#"FORWARD -m comment --comment "kindling cluster a" -j KINDLING-X-FWD"#)
                .len(),
            7
        );
    }

    #[test]
    fn chains_are_read_from_iptables_save() {
        let saved = "*filter\n:INPUT ACCEPT [0:0]\n:KUBE-FIREWALL - [0:0]\n:CNI-foreign - [0:0]\n-A INPUT -j KUBE-FIREWALL\nCOMMIT\n";
        assert_eq!(chains(saved), ["INPUT", "KUBE-FIREWALL", "CNI-foreign"]);
    }
}
