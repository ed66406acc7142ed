//! A local cluster's addresses and host-side names: the ranges (chosen by
//! variables, validated), the names of its links and chains (derived from
//! the cluster's name, so two clusters never share one), and the check of
//! the ranges against this host's routes before anything is changed.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use kindling_core::cluster::ClusterName;
pub use kindling_core::cluster::ranges::*;
use sha2::{Digest as _, Sha256};

/// Addresses of a local cluster and the names of what it adds to the host
/// (links, iptables chains, cgroups, the CNI network): each name carries
/// a digest of the cluster's name, so `down` of one cluster matches only
/// its own objects and never another's whose name it prefixes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalNetwork {
    /// The ranges it was made from.
    pub ranges: NetworkRanges,
    /// The link the node's address lives on (a dummy link, or ifb where
    /// the kernel has no dummy links): `kl-<10 hex>`.
    pub interface: String,
    /// The CNI bridge pods attach to: `kb-<10 hex>`.
    pub bridge: String,
    /// The CNI network's name (in the CNI configuration).
    pub cni_network: String,
    /// The prefix of this cluster's own iptables chains: `KINDLING-<10 hex>`.
    pub chain_prefix: String,
    /// The comment on every rule kindling adds outside its own chains.
    pub rule_comment: String,
    /// The cgroup the kubelet puts pods under, in every hierarchy.
    pub cgroup_root: String,
    /// The node's address: the kubelet's node IP, the API server's bind
    /// and advertised address, kube-proxy's bind address.
    pub node_ip: Ipv4Addr,
    /// The pod range, as a CIDR.
    pub pod_cidr: String,
    /// The CNI bridge's gateway, on the pod range.
    pub pod_gateway: Ipv4Addr,
    /// The Service range, as a CIDR.
    pub service_cidr: String,
    /// The `kubernetes` Service: the first address of the service range.
    pub api_service_ip: Ipv4Addr,
    /// The `kube-dns` Service, the kubelet's `clusterDNS`.
    pub dns_ip: Ipv4Addr,
}

impl LocalNetwork {
    /// The network of cluster `cluster` on `ranges`.
    pub fn new(cluster: &ClusterName, ranges: &NetworkRanges) -> Self {
        let digest = hex::encode(Sha256::digest(cluster.as_str().as_bytes()));
        let short = &digest[..10];
        let nth = |net: &Ipv4Net, n: u32| Ipv4Addr::from(u32::from(net.network()) + n);
        LocalNetwork {
            ranges: ranges.clone(),
            interface: format!("kl-{short}"),
            bridge: format!("kb-{short}"),
            cni_network: format!("kindling-{cluster}"),
            chain_prefix: format!("KINDLING-{}", short.to_uppercase()),
            rule_comment: format!("kindling cluster {cluster}"),
            cgroup_root: format!("kindling-{cluster}"),
            node_ip: ranges.node_ip,
            pod_cidr: ranges.pod_cidr.to_string(),
            pod_gateway: nth(&ranges.pod_cidr, 1),
            service_cidr: ranges.service_cidr.to_string(),
            api_service_ip: nth(&ranges.service_cidr, 1),
            dns_ip: nth(&ranges.service_cidr, 10),
        }
    }

    /// The cluster's own chain `suffix` (`FWD`, `IN`, `MASQ`): at most 28
    /// characters, as iptables allows.
    pub fn chain(&self, suffix: &str) -> String {
        format!("{}-{suffix}", self.chain_prefix)
    }

    /// Addresses and ranges components must reach directly, never through
    /// a proxy the caller's environment names: `NO_PROXY`'s value.
    pub fn no_proxy(&self) -> String {
        [
            "127.0.0.1",
            "localhost",
            &self.node_ip.to_string(),
            &self.pod_cidr,
            &self.service_cidr,
            ".svc",
            ".cluster.local",
        ]
        .join(",")
    }
}

/// A route of this host, as `ip -j route show table all` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRoute {
    /// Its destination.
    pub destination: Ipv4Net,
    /// The route as `ip route` would print it (destination, device,
    /// gateway, table).
    pub text: String,
    /// The device it goes through, if any.
    pub device: Option<String>,
}

/// Reads the host's IPv4 routes of every table from `ip -4 -j route show
/// table all`'s output. Entries without a destination range (the default
/// route) are left out: they cover everything and collide with nothing.
pub fn parse_routes(json: &str) -> Result<Vec<HostRoute>, serde_json::Error> {
    let entries: Vec<serde_json::Value> = serde_json::from_str(json)?;
    Ok(entries
        .iter()
        .filter_map(|entry| {
            let dst = entry.get("dst")?.as_str()?;
            if dst == "default" {
                return None;
            }
            let destination: Ipv4Net = dst
                .parse()
                .ok()
                .or_else(|| dst.parse::<Ipv4Addr>().ok().map(Ipv4Net::from))?;
            if destination.prefix_len() == 0 {
                return None;
            }
            let field = |name: &str| entry.get(name).and_then(|value| value.as_str());
            let device = field("dev").map(str::to_owned);
            let mut text = String::new();
            if let Some(kind) = field("type").filter(|kind| *kind != "unicast") {
                text.push_str(kind);
                text.push(' ');
            }
            text.push_str(dst);
            if let Some(gateway) = field("gateway") {
                text.push_str(&format!(" via {gateway}"));
            }
            if let Some(device) = &device {
                text.push_str(&format!(" dev {device}"));
            }
            text.push_str(&format!(" table {}", field("table").unwrap_or("main")));
            Some(HostRoute {
                destination,
                text,
                device,
            })
        })
        .collect())
}

/// A range of the cluster that a route of the host overlaps.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the local cluster's {what} {range} ({variable}) overlaps this host's route `{route}`: nothing was changed; choose free ranges with KINDLING_LOCAL_POD_CIDR, KINDLING_LOCAL_SERVICE_CIDR and KINDLING_LOCAL_NODE_IP (for example {variable}={suggestion})"
)]
pub struct RangeCollision {
    /// What the range is (`pod range`, `Service range`, `node address`).
    pub what: &'static str,
    /// The range.
    pub range: Ipv4Net,
    /// The variable choosing it.
    pub variable: &'static str,
    /// The host's route, as `ip route` prints it.
    pub route: String,
    /// A range of the same size that no route overlaps, to suggest.
    pub suggestion: String,
}

/// The first of `ranges` that a route of `routes` overlaps, ignoring the
/// routes through `own_devices` (this cluster's own link and bridge, left
/// by an earlier `up`).
pub fn first_collision(
    ranges: &NetworkRanges,
    routes: &[HostRoute],
    own_devices: &[&str],
) -> Option<RangeCollision> {
    let foreign: Vec<&HostRoute> = routes
        .iter()
        .filter(|route| {
            !route
                .device
                .as_deref()
                .is_some_and(|device| own_devices.contains(&device))
        })
        .collect();
    for (what, variable, range) in ranges.named() {
        if let Some(route) = foreign
            .iter()
            .find(|route| overlaps(&range, &route.destination))
        {
            return Some(RangeCollision {
                what,
                range,
                variable,
                route: route.text.clone(),
                suggestion: free_range_like(&range, &foreign, ranges),
            });
        }
    }
    None
}

/// A range of `range`'s size in 10.200.0.0/13 that neither a route nor the
/// cluster's other ranges overlap (only a suggestion in a message).
fn free_range_like(range: &Ipv4Net, routes: &[&HostRoute], ranges: &NetworkRanges) -> String {
    let pool: Ipv4Net = "10.200.0.0/13".parse().expect("a valid range");
    let taken: Vec<Ipv4Net> = routes
        .iter()
        .map(|route| route.destination)
        .chain(ranges.named().iter().map(|(_, _, net)| *net))
        .collect();
    pool.subnets(range.prefix_len().max(pool.prefix_len()))
        .ok()
        .and_then(|mut candidates| {
            candidates.find(|candidate| !taken.iter().any(|net| overlaps(candidate, net)))
        })
        .map(|candidate| {
            if range.prefix_len() == 32 {
                candidate.addr().to_string()
            } else {
                candidate.to_string()
            }
        })
        .unwrap_or_else(|| "another private range".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Result<NetworkRanges, NetworkRangeError> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect();
        NetworkRanges::from_vars(|name| {
            pairs
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.clone())
        })
    }

    #[test]
    fn ranges_come_from_the_variables_and_are_validated() {
        assert_eq!(vars(&[]).unwrap(), NetworkRanges::default());
        let chosen = vars(&[
            (POD_CIDR_VARIABLE, "10.223.0.0/24"),
            (SERVICE_CIDR_VARIABLE, "10.224.0.0/20"),
            (NODE_IP_VARIABLE, "10.225.0.1"),
        ])
        .unwrap();
        assert_eq!(chosen.service_cidr.to_string(), "10.224.0.0/20");
        let table: &[(&str, &str, &str)] = &[
            (POD_CIDR_VARIABLE, "10.223.0.0", "prefix length"),
            (POD_CIDR_VARIABLE, "10.223.0.5/24", "prefix length"),
            (POD_CIDR_VARIABLE, "10.0.0.0/8", "from 12 to 28"),
            (SERVICE_CIDR_VARIABLE, "10.224.0.0/30", "from 12 to 28"),
            (SERVICE_CIDR_VARIABLE, "fd00::/64", "IPv4"),
            (NODE_IP_VARIABLE, "127.0.0.1", "not loopback"),
            (NODE_IP_VARIABLE, "ten", "IPv4 address"),
        ];
        for (variable, value, expected) in table {
            let error = vars(&[(variable, value)]).unwrap_err().to_string();
            assert!(error.contains(variable) && error.contains(value), "{error}");
            assert!(error.contains(expected), "{error}");
        }
        let overlap = vars(&[(SERVICE_CIDR_VARIABLE, "10.213.0.0/16")])
            .unwrap_err()
            .to_string();
        assert!(
            overlap.contains("pod range 10.213.0.0/24")
                && overlap.contains("Service range 10.213.0.0/16"),
            "{overlap}"
        );
        let node_inside = vars(&[(NODE_IP_VARIABLE, "10.214.0.7")])
            .unwrap_err()
            .to_string();
        assert!(node_inside.contains(NODE_IP_VARIABLE), "{node_inside}");
    }

    #[test]
    fn names_are_per_cluster_and_fit_the_kernels_limits() {
        let ranges = NetworkRanges::default();
        let one = LocalNetwork::new(&"kindling".parse().unwrap(), &ranges);
        let two = LocalNetwork::new(&"kindling-2".parse().unwrap(), &ranges);
        assert_ne!(one.interface, two.interface);
        assert_ne!(one.bridge, two.bridge);
        assert_ne!(one.chain_prefix, two.chain_prefix);
        assert!(!two.chain_prefix.starts_with(&one.chain_prefix));
        let long = LocalNetwork::new(&"a".repeat(63).parse().unwrap(), &ranges);
        assert!(long.interface.len() <= 15 && long.bridge.len() <= 15);
        for suffix in ["FWD", "IN", "MASQ"] {
            assert!(long.chain(suffix).len() <= 28, "{}", long.chain(suffix));
        }
        assert_eq!(one.pod_gateway.to_string(), "10.213.0.1");
        assert_eq!(one.api_service_ip.to_string(), "10.214.0.1");
        assert_eq!(one.dns_ip.to_string(), "10.214.0.10");
        assert!(one.no_proxy().contains("10.214.0.0/24"));
    }

    #[test]
    fn a_route_in_a_range_is_a_collision_naming_it_and_the_variables() {
        let json = r#"[
            {"dst":"default","gateway":"10.0.0.1","dev":"eth0","protocol":"dhcp","flags":[]},
            {"dst":"172.17.0.0/16","dev":"docker0","protocol":"kernel","scope":"link","prefsrc":"172.17.0.1","flags":[]},
            {"dst":"10.214.0.0/24","dev":"kl-0123456789","scope":"link","flags":[]},
            {"type":"local","dst":"10.215.0.1","table":"local","dev":"kl-0123456789","flags":[]},
            {"dst":"10.213.0.128/25","gateway":"192.168.1.9","dev":"wg0","table":"51820","flags":[]}
        ]"#;
        let routes = parse_routes(json).unwrap();
        assert_eq!(routes.len(), 4, "{routes:?}");
        let ranges = NetworkRanges::default();
        let collision = first_collision(&ranges, &routes, &["kl-0123456789"]).unwrap();
        assert_eq!(collision.variable, POD_CIDR_VARIABLE);
        let text = collision.to_string();
        assert!(
            text.contains("10.213.0.128/25 via 192.168.1.9 dev wg0 table 51820"),
            "{text}"
        );
        assert!(
            text.contains("KINDLING_LOCAL_POD_CIDR=10.200.0.0/24"),
            "{text}"
        );
        assert!(first_collision(&ranges, &routes[..3], &["kl-0123456789"]).is_none());
        let foreign_link = first_collision(&ranges, &routes[..3], &[]).unwrap();
        assert_eq!(foreign_link.variable, SERVICE_CIDR_VARIABLE);
    }
}
