//! One connection to the Docker Engine API (or Podman's Docker-compatible
//! socket), with the API version negotiated: Debian's engine speaks 1.41,
//! current engines much newer ones.

use bollard::Docker;

/// No engine answered.
#[derive(Debug, thiserror::Error)]
#[error(
    "no Docker engine answers at `{host}`: {}",
    kindling_harness::engine::START_AN_ENGINE
)]
pub struct DockerUnavailable {
    /// The address tried, e.g. `unix:///var/run/docker.sock`.
    pub host: String,
    /// The Docker client's error from connecting, negotiating the version, or
    /// the ping.
    #[source]
    pub source: bollard::errors::Error,
}

pub use kindling_harness::engine::{engine_host, podman_host};

/// Connects to the engine, negotiates the API version and checks it answers.
pub async fn connect() -> Result<Docker, DockerUnavailable> {
    connect_to(&engine_host()).await
}

/// [`connect`] to an explicit host such as `unix:///run/podman/podman.sock`.
pub async fn connect_to(host: &str) -> Result<Docker, DockerUnavailable> {
    let unavailable = |source| DockerUnavailable {
        host: host.to_owned(),
        source,
    };
    let docker = Docker::connect_with_host(host).map_err(unavailable)?;
    let docker = docker.negotiate_version().await.map_err(unavailable)?;
    docker.ping().await.map_err(unavailable)?;
    Ok(docker)
}
