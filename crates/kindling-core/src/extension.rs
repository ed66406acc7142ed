//! What kindling adds to the harness in every suite linked with it: the
//! `KINDLING_*` variables of images, providers and clusters (their values
//! checked when a suite starts), entering an environment in each process
//! (the cluster's users lock, the namespace's heartbeat) and the end-of-run
//! removal of environments.
//! Registered before `main`, so the end-of-run watcher (the suite binary
//! started again, running no setup) has them too.

use kindling_harness::Variable;
use kindling_harness::extension::{self, Extension};

/// The name environments' cleanups are recorded under.
pub(crate) const NAME: &str = "kindling";

/// Every variable kindling reads beyond the harness's own
/// ([`crate::harness::KNOWN_VARIABLES`]), with what it means.
pub const VARIABLES: &[Variable] = &[
    Variable {
        name: "KINDLING_TAG_POLICY",
        description: "image tags: content (digest of the build inputs), unique (per run), fixed",
        choices: &["content", "unique", "fixed"],
        check: None,
    },
    Variable {
        name: "KINDLING_IMAGE_TAG",
        description: "the prebuilt tag used by KINDLING_TAG_POLICY=fixed",
        choices: &[],
        check: None,
    },
    Variable {
        name: "KINDLING_PROVIDER",
        description: "cluster provider: local (upstream components on this host), kind (the kind CLI), existing (a kubeconfig context; images pushed to KINDLING_REGISTRY); unset: kind where an engine can run Kind nodes, else local as root on Linux",
        choices: &["local", "kind", "existing"],
        check: None,
    },
    Variable {
        name: "KINDLING_KUBECONFIG",
        description: "existing provider: the cluster's kubeconfig (default KUBECONFIG, then ~/.kube/config)",
        choices: &[],
        check: None,
    },
    Variable {
        name: "KINDLING_CONTEXT",
        description: "existing provider: the kubeconfig context (default its current context)",
        choices: &[],
        check: None,
    },
    Variable {
        name: "KINDLING_REGISTRY",
        description: "existing provider: the registry images are pushed to, e.g. `127.0.0.1:5000` (required)",
        choices: &[],
        check: None,
    },
    Variable {
        name: "KINDLING_REGISTRY_USERNAME",
        description: "existing provider: registry user name, with KINDLING_REGISTRY_PASSWORD",
        choices: &[],
        check: None,
    },
    Variable {
        name: "KINDLING_REGISTRY_PASSWORD",
        description: "existing provider: registry password, with KINDLING_REGISTRY_USERNAME",
        choices: &[],
        check: None,
    },
    Variable {
        name: "KINDLING_KIND_BINARY",
        description: "the kind binary (default ~/.cache/kindling/bin/kind-<pinned>, else kind on PATH)",
        choices: &[],
        check: None,
    },
    Variable {
        name: "KINDLING_KIND_CONFIG",
        description: "the kind cluster configuration file (default: one control-plane node)",
        choices: &[],
        check: None,
    },
    Variable {
        name: "KINDLING_KIND_RECREATE",
        description: "1: delete and recreate a kind cluster whose configuration changed (default: refuse it)",
        choices: &["1", "true", "0", "false"],
        check: None,
    },
    Variable {
        name: "KINDLING_KIND_NODE_IMAGE",
        description: "the node image of kind nodes whose configuration names none, e.g. a pulled `kindest/node:v1.34.0` (default: kindling's own, localhost/kindling-kind/node, built on first use)",
        choices: &[],
        check: KIND_NODE_IMAGE_CHECK,
    },
    Variable {
        name: "KINDLING_CLUSTER",
        description: "cluster name, a DNS-1123 label (default `kindling`)",
        choices: &[],
        check: Some(crate::cluster::check_cluster_variable),
    },
    Variable {
        name: "KINDLING_INSTALL",
        description: "auto: as root on Debian, install with apt-get (never removing a package) the local provider's runtime pieces missing from PATH and /usr/lib/cni or /opt/cni/bin, and mmdebstrap for ImageSpec::debian; never: install nothing",
        choices: &["auto", "never"],
        check: None,
    },
    Variable {
        name: "KINDLING_LOCAL_NODE_IP",
        description: "local provider: the node's address (default 10.215.0.1), outside both ranges",
        choices: &[],
        check: Some(crate::cluster::ranges::check_node_ip_variable),
    },
    Variable {
        name: "KINDLING_LOCAL_POD_CIDR",
        description: "local provider: the pod range (default 10.213.0.0/24)",
        choices: &[],
        check: Some(crate::cluster::ranges::check_range_variable),
    },
    Variable {
        name: "KINDLING_LOCAL_SERVICE_CIDR",
        description: "local provider: the Service range (default 10.214.0.0/24)",
        choices: &[],
        check: Some(crate::cluster::ranges::check_range_variable),
    },
    Variable {
        name: "KINDLING_LOCK_TIMEOUT",
        description: "how long to wait for a cluster's lock held by another process, e.g. `5m` (default: until it is free, saying who holds it every 10 s)",
        choices: &[],
        check: Some(crate::cluster::lock::check_timeout_variable),
    },
    Variable {
        name: "KINDLING_CACHE_DIR",
        description: "where built cluster components are cached (default ~/.cache/kindling)",
        choices: &[],
        check: None,
    },
    Variable {
        name: "KINDLING_HOME",
        description: "per-host cluster state (default ~/.local/state/kindling)",
        choices: &[],
        check: None,
    },
    Variable {
        name: "KINDLING_CLUSTER_READY",
        description: "set by `kindling nextest-setup` for the tests: the cluster it brought up (JSON)",
        choices: &[],
        check: None,
    },
];

#[cfg(feature = "kind")]
const KIND_NODE_IMAGE_CHECK: Option<kindling_harness::config::ValueCheck> =
    Some(crate::cluster::kind::node_image::check_variable);
#[cfg(not(feature = "kind"))]
const KIND_NODE_IMAGE_CHECK: Option<kindling_harness::config::ValueCheck> = None;

static KINDLING: Extension = Extension {
    name: NAME,
    variables: VARIABLES,
    enter: Some(crate::environment::enter_recorded),
    finish: Some(crate::environment::finish_cleanups),
};

ctor::declarative::ctor! {
    #[ctor(unsafe, anonymous)]
    fn register_with_the_harness() {
        // Only stores a pointer under an uncontended lock.
        extension::register(&KINDLING);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kindling_harness::config::EnvConfig;

    fn parse(pairs: &[(&str, &str)]) -> Result<EnvConfig, kindling_harness::ConfigError> {
        EnvConfig::from_vars(
            pairs
                .iter()
                .map(|(key, value)| (key.to_string(), value.to_string())),
            VARIABLES,
        )
    }

    #[test]
    fn invalid_values_name_the_variable_and_the_accepted_forms() {
        let table: &[(&str, &str, &str)] = &[
            (
                "KINDLING_TAG_POLICY",
                "latest",
                "one of `content`, `unique`, `fixed`",
            ),
            (
                "KINDLING_KIND_RECREATE",
                "yes",
                "one of `1`, `true`, `0`, `false`",
            ),
            ("KINDLING_INSTALL", "always", "one of `auto`, `never`"),
            (
                "KINDLING_CLUSTER",
                "/",
                "a cluster name (it has a character",
            ),
            (
                "KINDLING_CLUSTER",
                "../x",
                "a cluster name (it has a character",
            ),
            (
                "KINDLING_CLUSTER",
                "a-",
                "a cluster name (it starts or ends",
            ),
            ("KINDLING_LOCAL_POD_CIDR", "10.0.0.0/8", "an IPv4 range"),
            ("KINDLING_LOCAL_NODE_IP", "localhost", "an IPv4 address"),
            ("KINDLING_LOCK_TIMEOUT", "soon", "a positive duration"),
            (
                "KINDLING_KIND_NODE_IMAGE",
                "kindest/Node:v1",
                "an image reference such as `kindest/node:v1.34.0` (image reference `kindest/Node:v1`",
            ),
            (
                "KINDLING_KIND_NODE_IMAGE",
                "kindest/node:v1 extra",
                "an image reference such as",
            ),
        ];
        for (key, value, expected) in table {
            let error = parse(&[(key, value)]).unwrap_err();
            assert_eq!(error.variable, *key);
            assert_eq!(error.value, *value);
            assert!(error.expected.starts_with(expected), "{}", error.expected);
        }
    }

    #[test]
    fn a_node_image_reference_is_accepted() {
        let config = parse(&[
            ("KINDLING_KIND_NODE_IMAGE", "kindest/node:v1.34.0@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"),
            ("KINDLING_PROVIDER", "kind"),
        ])
        .unwrap();
        assert!(config.unknown_variables.is_empty(), "{config:?}");
        parse(&[("KINDLING_KIND_NODE_IMAGE", "")]).unwrap();
    }

    #[test]
    fn the_existing_provider_and_its_variables_are_known() {
        let config = parse(&[
            ("KINDLING_PROVIDER", "existing"),
            ("KINDLING_KUBECONFIG", "/k/config"),
            ("KINDLING_CONTEXT", "staging"),
            ("KINDLING_REGISTRY", "127.0.0.1:5000"),
            ("KINDLING_REGISTRY_USERNAME", "ci"),
            ("KINDLING_REGISTRY_PASSWORD", "secret"),
        ])
        .unwrap();
        assert!(config.unknown_variables.is_empty(), "{config:?}");
        let error = parse(&[("KINDLING_PROVIDER", "remote")]).unwrap_err();
        assert!(error.expected.contains("`existing`"), "{error}");
    }

    #[test]
    fn kindling_registers_itself_before_main() {
        assert!(
            extension::registered()
                .iter()
                .any(|registered| registered.name == NAME && registered.finish.is_some())
        );
    }
}
