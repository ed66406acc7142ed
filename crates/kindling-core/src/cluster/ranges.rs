//! The address ranges of a `local` cluster as variables choose them
//! (`KINDLING_LOCAL_*`), validated: data of the provider's recorded
//! [`ProviderSpec`](super::ProviderSpec), read with the rest of the
//! configuration. The host side (links, chains, routes) is `kindling-local`'s.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

/// The variable choosing the node's address.
pub const NODE_IP_VARIABLE: &str = "KINDLING_LOCAL_NODE_IP";
/// The variable choosing the pod range.
pub const POD_CIDR_VARIABLE: &str = "KINDLING_LOCAL_POD_CIDR";
/// The variable choosing the Service range.
pub const SERVICE_CIDR_VARIABLE: &str = "KINDLING_LOCAL_SERVICE_CIDR";

/// The address ranges of a local cluster, as chosen (by default, or by
/// `KINDLING_LOCAL_NODE_IP`, `KINDLING_LOCAL_POD_CIDR`,
/// `KINDLING_LOCAL_SERVICE_CIDR`): checked not to overlap each other here,
/// and against the host's routes by `up`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkRanges {
    /// The node's address (kubelet, API server, kube-proxy), outside both ranges.
    pub node_ip: Ipv4Addr,
    /// The pod range: the node's `podCIDR` and the CNI bridge's subnet.
    pub pod_cidr: Ipv4Net,
    /// The Service range; its first address is the `kubernetes` Service,
    /// its tenth `kube-dns`.
    pub service_cidr: Ipv4Net,
}

impl Default for NetworkRanges {
    /// Away from Docker's 172.17.0.0/16 and the usual home networks.
    fn default() -> Self {
        NetworkRanges {
            node_ip: Ipv4Addr::new(10, 215, 0, 1),
            pod_cidr: "10.213.0.0/24".parse().expect("a valid range"),
            service_cidr: "10.214.0.0/24".parse().expect("a valid range"),
        }
    }
}

/// A range variable holds no valid value, or the ranges overlap.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetworkRangeError {
    /// A variable's value is not of its form.
    #[error("{variable}=`{value}` is not valid: expected {expected}")]
    Invalid {
        /// The variable.
        variable: &'static str,
        /// Its value.
        value: String,
        /// What it accepts.
        expected: String,
    },
    /// Two of the cluster's own ranges overlap.
    #[error(
        "the local cluster's {first} ({first_variable}) and {second} ({second_variable}) overlap: choose ranges apart"
    )]
    Overlap {
        /// The first range and what it is.
        first: String,
        /// The variable choosing it.
        first_variable: &'static str,
        /// The second.
        second: String,
        /// The variable choosing it.
        second_variable: &'static str,
    },
}

/// What a range variable accepts.
const RANGE_FORM: &str =
    "an IPv4 range such as `10.213.0.0/24`, with a prefix length from 12 to 28";

impl NetworkRanges {
    /// From the process environment (unset variables take the defaults).
    pub fn from_env() -> Result<Self, NetworkRangeError> {
        crate::config::Config::current().network_ranges()
    }

    /// From variables looked up through `var`.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self, NetworkRangeError> {
        let defaults = NetworkRanges::default();
        let set = |name: &str| var(name).filter(|value| !value.trim().is_empty());
        let ranges = NetworkRanges {
            node_ip: match set(NODE_IP_VARIABLE) {
                Some(value) => parse_node_ip(&value)?,
                None => defaults.node_ip,
            },
            pod_cidr: match set(POD_CIDR_VARIABLE) {
                Some(value) => parse_range(POD_CIDR_VARIABLE, &value)?,
                None => defaults.pod_cidr,
            },
            service_cidr: match set(SERVICE_CIDR_VARIABLE) {
                Some(value) => parse_range(SERVICE_CIDR_VARIABLE, &value)?,
                None => defaults.service_cidr,
            },
        };
        ranges.check()?;
        Ok(ranges)
    }

    /// Refuses ranges that overlap each other or hold the node's address.
    pub fn check(&self) -> Result<(), NetworkRangeError> {
        let node = Ipv4Net::from(self.node_ip);
        let named = [
            ("pod range", POD_CIDR_VARIABLE, self.pod_cidr),
            ("Service range", SERVICE_CIDR_VARIABLE, self.service_cidr),
            ("node address", NODE_IP_VARIABLE, node),
        ];
        for (index, (what, variable, range)) in named.iter().enumerate() {
            for (other_what, other_variable, other) in &named[index + 1..] {
                if overlaps(range, other) {
                    return Err(NetworkRangeError::Overlap {
                        first: format!("{what} {range}"),
                        first_variable: variable,
                        second: format!("{other_what} {other}"),
                        second_variable: other_variable,
                    });
                }
            }
        }
        Ok(())
    }

    /// Each range with its name and variable, for the route check.
    pub fn named(&self) -> [(&'static str, &'static str, Ipv4Net); 3] {
        [
            ("pod range", POD_CIDR_VARIABLE, self.pod_cidr),
            ("Service range", SERVICE_CIDR_VARIABLE, self.service_cidr),
            (
                "node address",
                NODE_IP_VARIABLE,
                Ipv4Net::from(self.node_ip),
            ),
        ]
    }
}

fn parse_node_ip(value: &str) -> Result<Ipv4Addr, NetworkRangeError> {
    match value.trim().parse::<Ipv4Addr>() {
        Ok(ip) if !ip.is_loopback() && !ip.is_unspecified() && !ip.is_multicast() => Ok(ip),
        _ => Err(NetworkRangeError::Invalid {
            variable: NODE_IP_VARIABLE,
            value: value.to_owned(),
            expected: "an IPv4 address that is not loopback, unspecified or multicast, such as `10.215.0.1`"
                .to_owned(),
        }),
    }
}

fn parse_range(variable: &'static str, value: &str) -> Result<Ipv4Net, NetworkRangeError> {
    match value.trim().parse::<Ipv4Net>() {
        Ok(net) if (12..=28).contains(&net.prefix_len()) && net.network() == net.addr() => Ok(net),
        _ => Err(NetworkRangeError::Invalid {
            variable,
            value: value.to_owned(),
            expected: RANGE_FORM.to_owned(),
        }),
    }
}

/// The check of a range variable's value, for the harness's variable table.
pub(crate) fn check_range_variable(value: &str) -> Result<(), String> {
    if value.trim().is_empty() {
        return Ok(());
    }
    parse_range(POD_CIDR_VARIABLE, value)
        .map(drop)
        .map_err(|_| RANGE_FORM.to_owned())
}

/// The check of `KINDLING_LOCAL_NODE_IP`'s value, for the harness's variable table.
pub(crate) fn check_node_ip_variable(value: &str) -> Result<(), String> {
    if value.trim().is_empty() {
        return Ok(());
    }
    parse_node_ip(value).map(drop).map_err(|error| match error {
        NetworkRangeError::Invalid { expected, .. } => expected,
        other => other.to_string(),
    })
}

/// Whether two ranges share an address.
pub fn overlaps(a: &Ipv4Net, b: &Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}
