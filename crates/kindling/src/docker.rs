//! One connection to the Docker Engine API (or Podman's Docker-compatible
//! socket), with the API version negotiated: Debian's engine speaks 1.41,
//! current engines much newer ones.

use std::path::Path;

use bollard::Docker;

/// No engine answered.
#[derive(Debug, thiserror::Error)]
#[error(
    "no Docker engine answers at `{host}`: start one (`dockerd &`, `systemctl start docker`, or `systemctl --user start podman.socket` for Podman) or point DOCKER_HOST at a running engine"
)]
pub struct DockerUnavailable {
    pub host: String,
    #[source]
    pub source: bollard::errors::Error,
}

/// Where the engine is expected: `DOCKER_HOST`, else Docker's socket, else
/// Podman's rootless or rootful socket when only those exist.
pub fn engine_host() -> String {
    if let Ok(host) = std::env::var("DOCKER_HOST")
        && !host.is_empty()
    {
        return host;
    }
    let docker = "/var/run/docker.sock";
    if Path::new(docker).exists() {
        return format!("unix://{docker}");
    }
    existing_podman_socket().unwrap_or_else(|| format!("unix://{docker}"))
}

/// Podman's socket, for tools that drive Podman itself (kind with
/// `KIND_EXPERIMENTAL_PROVIDER=podman`): `CONTAINER_HOST`, else the
/// rootless socket, else the rootful one.
pub fn podman_host() -> String {
    if let Ok(host) = std::env::var("CONTAINER_HOST")
        && !host.is_empty()
    {
        return host;
    }
    existing_podman_socket().unwrap_or_else(|| "unix:///run/podman/podman.sock".to_owned())
}

fn existing_podman_socket() -> Option<String> {
    let candidates = [
        std::env::var("XDG_RUNTIME_DIR")
            .map(|dir| format!("{dir}/podman/podman.sock"))
            .unwrap_or_default(),
        "/run/podman/podman.sock".to_owned(),
    ];
    candidates
        .into_iter()
        .find(|path| !path.is_empty() && Path::new(path).exists())
        .map(|path| format!("unix://{path}"))
}

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
