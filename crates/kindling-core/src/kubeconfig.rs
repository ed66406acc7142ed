//! The one way from a kubeconfig file to a Kubernetes client: read the
//! file, pick the context, bound the time to connect. Callers adjust the
//! [`kube::Config`] before making the client where they must (a fixed
//! loopback address, a ServiceAccount token, a shorter read timeout).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};

/// How long a client waits to connect to the API server: an address that
/// does not answer fails in seconds, not after the operating system's
/// minutes-long TCP timeout.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A kubeconfig could not give a client.
#[derive(Debug, thiserror::Error)]
pub enum KubeconfigError {
    /// The kubeconfig file could not be read or parsed.
    #[error("cannot read kubeconfig `{}`", path.display())]
    Read {
        /// The kubeconfig file.
        path: PathBuf,
        /// The kubeconfig reader's error.
        #[source]
        source: kube::config::KubeconfigError,
    },
    /// The context (or, without one, the current context) is not in the
    /// kubeconfig, or its cluster, user or credentials cannot be loaded.
    #[error("cannot use context `{}` of kubeconfig `{}`", context.as_deref().unwrap_or("(current)"), path.display())]
    Context {
        /// The kubeconfig file.
        path: PathBuf,
        /// The context asked for; `None` for the file's current context.
        context: Option<String>,
        /// The kubeconfig reader's error.
        #[source]
        source: kube::config::KubeconfigError,
    },
    /// A client could not be made from the configuration the kubeconfig
    /// gave.
    #[error("cannot create a Kubernetes client from kubeconfig `{}`", path.display())]
    Client {
        /// The kubeconfig file the configuration was read from.
        path: PathBuf,
        /// The Kubernetes client's error.
        #[source]
        source: kube::Error,
    },
}

/// A client for `context` of `kubeconfig`, shared: one per kubeconfig and
/// context in a process (each test of a process reuses its connections).
pub async fn client_for(kubeconfig: &Path, context: &str) -> Result<kube::Client, KubeconfigError> {
    type Clients = HashMap<(PathBuf, String), kube::Client>;
    static CLIENTS: OnceLock<Mutex<Clients>> = OnceLock::new();
    let key = (kubeconfig.to_owned(), context.to_owned());
    let clients = CLIENTS.get_or_init(Mutex::default);
    if let Some(client) = clients.lock().expect("clients").get(&key) {
        return Ok(client.clone());
    }
    let client = client(kubeconfig, Some(context)).await?;
    clients.lock().expect("clients").insert(key, client.clone());
    Ok(client)
}

/// The parsed file, for callers that look at its contexts first.
pub fn read(path: &Path) -> Result<Kubeconfig, KubeconfigError> {
    Kubeconfig::read_from(path).map_err(|source| KubeconfigError::Read {
        path: path.to_owned(),
        source,
    })
}

/// The configuration of `context` (the current one when `None`) in the
/// parsed kubeconfig from `path`, with [`CONNECT_TIMEOUT`].
pub async fn config_from(
    kubeconfig: Kubeconfig,
    path: &Path,
    context: Option<&str>,
) -> Result<kube::Config, KubeconfigError> {
    let options = KubeConfigOptions {
        context: context.map(str::to_owned),
        ..KubeConfigOptions::default()
    };
    let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .map_err(|source| KubeconfigError::Context {
            path: path.to_owned(),
            context: context.map(str::to_owned),
            source,
        })?;
    config.connect_timeout = Some(CONNECT_TIMEOUT);
    if config.cluster_url.host().is_some_and(is_this_host) {
        // A proxy from `HTTPS_PROXY` cannot reach an API server on this
        // machine (a local cluster's node address, a kind cluster's
        // published loopback port), as Go's clients never proxy loopback.
        config.proxy_url = None;
    }
    Ok(config)
}

/// Whether `host` (a URL's host) is this machine: `localhost`, or an
/// address of one of its interfaces (binding it succeeds).
pub fn is_this_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    host.parse::<std::net::IpAddr>().is_ok_and(|address| {
        address.is_loopback() || std::net::UdpSocket::bind((address, 0)).is_ok()
    })
}

/// [`config_from`] the file at `path`.
pub async fn config(path: &Path, context: Option<&str>) -> Result<kube::Config, KubeconfigError> {
    config_from(read(path)?, path, context).await
}

/// A client from `config`, read from `path` (for the message).
pub fn client_from(config: kube::Config, path: &Path) -> Result<kube::Client, KubeconfigError> {
    kube::Client::try_from(config).map_err(|source| KubeconfigError::Client {
        path: path.to_owned(),
        source,
    })
}

/// A client for `context` of the kubeconfig at `path`.
pub async fn client(path: &Path, context: Option<&str>) -> Result<kube::Client, KubeconfigError> {
    client_from(config(path, context).await?, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_on_this_host_are_told_from_remote_ones() {
        assert!(is_this_host("127.0.0.1"));
        assert!(is_this_host("localhost"));
        assert!(is_this_host("[::1]"));
        assert!(!is_this_host("192.0.2.1"), "TEST-NET-1 is nobody's");
        assert!(!is_this_host("kubernetes.example.com"));
    }
}
