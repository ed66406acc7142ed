//! Where a Docker-compatible engine is expected, and whether one answers
//! there: what [`crate::Requirement::docker`] checks before a suite starts.
//! The ping is a plain HTTP/1.0 request on the socket, so the harness needs
//! no Docker client crate; the libraries that drive the engine connect with
//! their own client to the same [`engine_host`].

use std::io::Read as _;
use std::path::Path;
use std::time::Duration;

/// What to do when no engine answers, for every message that says so.
pub const START_AN_ENGINE: &str = "start one (`dockerd &`, `systemctl start docker`, or `systemctl --user start podman.socket` for Podman) or point DOCKER_HOST at a running engine";

/// How long the engine may take to answer the ping.
const PING_TIMEOUT: Duration = Duration::from_secs(5);

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

/// `Ok` when the engine at `host` (`unix://…`, `tcp://…` or `http://…`)
/// answers `GET /_ping` with 200; otherwise what went wrong.
pub fn ping(host: &str) -> Result<(), String> {
    let request = b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n";
    let answer = if let Some(path) = host.strip_prefix("unix://") {
        let mut stream =
            std::os::unix::net::UnixStream::connect(path).map_err(|error| error.to_string())?;
        stream.set_read_timeout(Some(PING_TIMEOUT)).ok();
        stream.set_write_timeout(Some(PING_TIMEOUT)).ok();
        exchange(&mut stream, request)?
    } else if let Some(address) = host
        .strip_prefix("tcp://")
        .or_else(|| host.strip_prefix("http://"))
    {
        let address = address.trim_end_matches('/');
        let socket = std::net::ToSocketAddrs::to_socket_addrs(address)
            .map_err(|error| error.to_string())?
            .next()
            .ok_or_else(|| format!("`{address}` resolves to no address"))?;
        let mut stream = std::net::TcpStream::connect_timeout(&socket, PING_TIMEOUT)
            .map_err(|error| error.to_string())?;
        stream.set_read_timeout(Some(PING_TIMEOUT)).ok();
        stream.set_write_timeout(Some(PING_TIMEOUT)).ok();
        exchange(&mut stream, request)?
    } else {
        return Err(format!(
            "`{host}` is not a unix://, tcp:// or http:// address"
        ));
    };
    let status = answer.lines().next().unwrap_or_default();
    if status.split_whitespace().nth(1) == Some("200") {
        Ok(())
    } else {
        Err(format!("the engine answered `{status}` to a ping"))
    }
}

fn exchange(
    stream: &mut (impl std::io::Read + std::io::Write),
    request: &[u8],
) -> Result<String, String> {
    stream
        .write_all(request)
        .map_err(|error| error.to_string())?;
    let mut answer = Vec::new();
    stream
        .take(4096)
        .read_to_end(&mut answer)
        .map_err(|error| error.to_string())?;
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    #[test]
    fn a_socket_answering_200_is_an_engine_and_anything_else_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("engine.sock");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let answers = [
            "HTTP/1.1 200 OK\r\n\r\nOK",
            "HTTP/1.1 404 Not Found\r\n\r\n",
        ];
        let server = std::thread::spawn(move || {
            for answer in answers {
                let (mut stream, _) = listener.accept().unwrap();
                let mut request = [0u8; 256];
                let _ = stream.read(&mut request).unwrap();
                stream.write_all(answer.as_bytes()).unwrap();
            }
        });
        let host = format!("unix://{}", path.display());
        assert_eq!(ping(&host), Ok(()));
        let refused = ping(&host).unwrap_err();
        assert!(refused.contains("404"), "{refused}");
        server.join().unwrap();
        let missing = ping(&format!("unix://{}", dir.path().join("none").display()));
        assert!(missing.is_err());
        assert!(
            ping("ssh://somewhere")
                .unwrap_err()
                .contains("not a unix://")
        );
    }
}
