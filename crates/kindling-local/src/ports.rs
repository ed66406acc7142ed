//! Ports a local cluster listens on must be free before anything starts.

use std::net::{IpAddr, TcpListener};

/// A port is already taken.
#[derive(Debug, thiserror::Error)]
#[error(
    "port {port} on {address} is already in use, and {component} needs it: stop what listens there (`ss -ltnp 'sport = :{port}'` shows it) or run `kindling down` if it is an earlier cluster"
)]
pub struct PortInUse {
    /// What needs the port, e.g. `etcd (peer)`.
    pub component: String,
    /// The address the bind was tried on.
    pub address: IpAddr,
    /// The TCP port the component listens on.
    pub port: u16,
    /// The error binding it.
    #[source]
    pub source: std::io::Error,
}

/// Checks that each `(component, address, port)` can be bound now.
pub fn ensure_free(ports: &[(&str, IpAddr, u16)]) -> Result<(), PortInUse> {
    for &(component, address, port) in ports {
        if let Err(source) = TcpListener::bind((address, port)) {
            return Err(PortInUse {
                component: component.to_owned(),
                address,
                port,
                source,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_taken_port_is_named_with_its_component() {
        let taken = TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let port = taken.local_addr().unwrap().port();
        let loopback: IpAddr = "127.0.0.1".parse().unwrap();
        let error = ensure_free(&[("etcd", loopback, port)]).unwrap_err();
        assert_eq!(error.port, port);
        let text = error.to_string();
        assert!(
            text.contains(&format!(
                "port {port} on 127.0.0.1 is already in use, and etcd needs it"
            )),
            "{text}"
        );
        drop(taken);
        assert!(ensure_free(&[("etcd", loopback, port)]).is_ok());
    }
}
