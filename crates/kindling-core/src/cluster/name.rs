//! Cluster names, checked once: a name becomes paths (state folders, lock
//! files), container and link names and process matches, so one that is
//! not a plain label (`/`, `..`, `a/b`) could make kindling act on files
//! and processes that are not its own.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The longest cluster name: a DNS-1123 label's limit.
pub const MAX_CLUSTER_NAME: usize = 63;

/// A cluster's name: a DNS-1123 label (1 to 63 lower-case letters, digits
/// and `-`, starting and ending with a letter or digit), as Kubernetes
/// names namespaces and kind names clusters.
///
/// ```
/// use kindling::cluster::ClusterName;
///
/// let name: ClusterName = "team-a".parse()?;
/// assert_eq!(name.as_str(), "team-a");
/// assert!("../etc".parse::<ClusterName>().is_err());
/// # Ok::<(), kindling::cluster::InvalidClusterName>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ClusterName(String);

/// A cluster name that is not a DNS-1123 label.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "cluster name `{value}` is not allowed: {rule}; a cluster name is 1 to {MAX_CLUSTER_NAME} lower-case letters, digits and `-`, starting and ending with a letter or digit (e.g. `kindling`, `team-a`): set --cluster or KINDLING_CLUSTER to such a name"
)]
pub struct InvalidClusterName {
    /// The value given.
    pub value: String,
    /// The rule it breaks.
    pub rule: &'static str,
}

impl ClusterName {
    /// `name`, if it is a DNS-1123 label.
    pub fn new(name: &str) -> Result<Self, InvalidClusterName> {
        let broken = |rule| {
            Err(InvalidClusterName {
                value: name.to_owned(),
                rule,
            })
        };
        if name.is_empty() {
            return broken("it is empty");
        }
        if name.len() > MAX_CLUSTER_NAME {
            return broken("it is longer than 63 characters");
        }
        if !name
            .bytes()
            .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-')
        {
            return broken("it has a character other than a-z, 0-9 and `-`");
        }
        if name.starts_with('-') || name.ends_with('-') {
            return broken("it starts or ends with `-`");
        }
        Ok(ClusterName(name.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for ClusterName {
    /// [`super::DEFAULT_CLUSTER`], `kindling`.
    fn default() -> Self {
        ClusterName(super::DEFAULT_CLUSTER.to_owned())
    }
}

impl FromStr for ClusterName {
    type Err = InvalidClusterName;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        ClusterName::new(name)
    }
}

impl TryFrom<String> for ClusterName {
    type Error = InvalidClusterName;

    fn try_from(name: String) -> Result<Self, Self::Error> {
        ClusterName::new(&name)
    }
}

impl TryFrom<&str> for ClusterName {
    type Error = InvalidClusterName;

    fn try_from(name: &str) -> Result<Self, Self::Error> {
        ClusterName::new(name)
    }
}

impl From<ClusterName> for String {
    fn from(name: ClusterName) -> Self {
        name.0
    }
}

impl AsRef<str> for ClusterName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl AsRef<std::path::Path> for ClusterName {
    fn as_ref(&self) -> &std::path::Path {
        std::path::Path::new(&self.0)
    }
}

impl fmt::Display for ClusterName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<str> for ClusterName {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for ClusterName {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

/// The check of `KINDLING_CLUSTER`'s value, for the harness's variable
/// table; empty is unset, as [`super::from_env`] reads it.
pub(crate) fn check_variable(value: &str) -> Result<(), String> {
    if value.trim().is_empty() {
        return Ok(());
    }
    ClusterName::new(value.trim())
        .map(drop)
        .map_err(|error| format!("a cluster name ({})", error.rule))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_are_not_labels_are_refused_naming_the_rule() {
        let long = "a".repeat(64);
        let table: &[(&str, &str)] = &[
            ("/", "a character other than"),
            ("..", "a character other than"),
            ("../x", "a character other than"),
            ("a/b", "a character other than"),
            ("", "empty"),
            (&long, "longer than 63"),
            ("Kindling", "a character other than"),
            ("-a", "starts or ends with"),
            ("a-", "starts or ends with"),
            ("a b", "a character other than"),
            ("a.b", "a character other than"),
        ];
        for (value, rule) in table {
            let error = ClusterName::new(value).unwrap_err();
            let text = error.to_string();
            assert!(text.contains(rule), "{value:?}: {text}");
            assert!(text.contains(&format!("`{value}`")), "{text}");
            assert!(text.contains("KINDLING_CLUSTER"), "{text}");
        }
    }

    #[test]
    fn labels_are_accepted_and_round_trip_through_serde() {
        for value in ["kindling", "a", "kindling-2", "0", &"a".repeat(63)] {
            let name = ClusterName::new(value).unwrap();
            assert_eq!(name.as_str(), value);
            let json = serde_json::to_string(&name).unwrap();
            assert_eq!(serde_json::from_str::<ClusterName>(&json).unwrap(), name);
        }
        assert!(serde_json::from_str::<ClusterName>("\"../x\"").is_err());
        assert_eq!(ClusterName::default().as_str(), "kindling");
    }
}
