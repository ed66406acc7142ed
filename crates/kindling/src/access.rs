//! Reaching a Service from a test without fixed host ports: a port-forward
//! through the API server to a ready pod behind the Service, on a local
//! port of its own, and a small HTTP client for it.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::Client;
use kube::api::{Api, ListParams};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Reaching a Service failed.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error(
        "Service `{namespace}/{service}` does not exist: check the name, or that the suite's manifests define it"
    )]
    NoService { namespace: String, service: String },
    #[error("Service `{namespace}/{service}` has no port {port}; its ports are: {ports}")]
    NoPort {
        namespace: String,
        service: String,
        port: u16,
        ports: String,
    },
    #[error(
        "Service `{namespace}/{service}` has no selector: kindling forwards to the pods a selector picks"
    )]
    NoSelector { namespace: String, service: String },
    #[error("no ready pod behind Service `{namespace}/{service}` ({selector}): {pods}")]
    NoReadyPod {
        namespace: String,
        service: String,
        selector: String,
        pods: String,
    },
    #[error("target port `{name}` of Service `{namespace}/{service}` is not a port of pod `{pod}`")]
    NamedPortMissing {
        namespace: String,
        service: String,
        pod: String,
        name: String,
    },
    #[error("failed to {action}")]
    Kube {
        action: String,
        #[source]
        source: kube::Error,
    },
    #[error("failed to {action}")]
    Io {
        action: String,
        #[source]
        source: std::io::Error,
    },
    #[error("HTTP {method} {url} failed")]
    Http {
        method: String,
        url: String,
        #[source]
        source: crate::BoxError,
    },
    #[error("HTTP {method} {url}: no response within {}s", timeout.as_secs())]
    HttpTimeout {
        method: String,
        url: String,
        timeout: Duration,
    },
}

/// A local address forwarded to a Service's port; the forward stops when
/// this is dropped. Each endpoint has a port of its own, so concurrent
/// tests and suites never collide.
pub struct Endpoint {
    address: SocketAddr,
    accept: JoinHandle<()>,
}

impl Endpoint {
    /// `127.0.0.1:<port>`.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// An HTTP client for this endpoint.
    pub fn http(&self) -> HttpClient {
        HttpClient {
            address: self.address,
            timeout: Duration::from_secs(10),
            _forward: None,
        }
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Forwards a local port to `port` of Service `service`: each connection
/// goes, through the API server, to a ready pod the Service selects.
pub async fn port_forward(
    client: &Client,
    namespace: &str,
    service: &str,
    port: u16,
) -> Result<Endpoint, AccessError> {
    let target = Target::resolve(client, namespace, service, port).await?;
    // Fail now, not at the first connection, when nothing is behind it.
    target.pick_pod().await?;
    let listener = TcpListener::bind(("127.0.0.1", 0))
        .await
        .map_err(|source| AccessError::Io {
            action: "bind a local port for a port-forward".to_owned(),
            source,
        })?;
    let address = listener.local_addr().map_err(|source| AccessError::Io {
        action: "read the port-forward's local address".to_owned(),
        source,
    })?;
    let accept = tokio::spawn(async move {
        while let Ok((connection, _)) = listener.accept().await {
            let target = target.clone();
            tokio::spawn(async move {
                if let Err(error) = target.forward(connection).await {
                    tracing::warn!(
                        "port-forward to {}/{}:{}: {}",
                        target.namespace,
                        target.service,
                        target.port,
                        crate::error::render_chain(&error)
                    );
                }
            });
        }
    });
    Ok(Endpoint { address, accept })
}

#[derive(Clone)]
struct Target {
    pods: Api<Pod>,
    namespace: String,
    service: String,
    port: u16,
    selector: String,
    target_port: IntOrString,
}

impl Target {
    async fn resolve(
        client: &Client,
        namespace: &str,
        service: &str,
        port: u16,
    ) -> Result<Target, AccessError> {
        let found = Api::<Service>::namespaced(client.clone(), namespace)
            .get_opt(service)
            .await
            .map_err(|source| AccessError::Kube {
                action: format!("read Service `{namespace}/{service}`"),
                source,
            })?
            .ok_or_else(|| AccessError::NoService {
                namespace: namespace.to_owned(),
                service: service.to_owned(),
            })?;
        let spec = found.spec.unwrap_or_default();
        let ports = spec.ports.unwrap_or_default();
        let service_port = ports
            .iter()
            .find(|candidate| candidate.port == i32::from(port))
            .ok_or_else(|| AccessError::NoPort {
                namespace: namespace.to_owned(),
                service: service.to_owned(),
                port,
                ports: ports
                    .iter()
                    .map(|p| p.port.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
        let selector = spec
            .selector
            .filter(|selector| !selector.is_empty())
            .ok_or_else(|| AccessError::NoSelector {
                namespace: namespace.to_owned(),
                service: service.to_owned(),
            })?;
        Ok(Target {
            pods: Api::namespaced(client.clone(), namespace),
            namespace: namespace.to_owned(),
            service: service.to_owned(),
            port,
            selector: selector
                .iter()
                .map(|(key, value)| format!("{key}={value}"))
                .collect::<Vec<_>>()
                .join(","),
            target_port: service_port
                .target_port
                .clone()
                .unwrap_or(IntOrString::Int(i32::from(port))),
        })
    }

    /// A ready pod behind the Service and the container port to reach on it.
    async fn pick_pod(&self) -> Result<(String, u16), AccessError> {
        let pods = self
            .pods
            .list(&ListParams::default().labels(&self.selector))
            .await
            .map_err(|source| AccessError::Kube {
                action: format!(
                    "list the pods of Service `{}/{}`",
                    self.namespace, self.service
                ),
                source,
            })?
            .items;
        let ready = pods.iter().find(|pod| {
            pod.metadata.deletion_timestamp.is_none()
                && crate::wait::readiness::pod(pod) == crate::wait::Readiness::Ready
        });
        let Some(pod) = ready else {
            return Err(AccessError::NoReadyPod {
                namespace: self.namespace.clone(),
                service: self.service.clone(),
                selector: self.selector.clone(),
                pods: if pods.is_empty() {
                    "no pods match".to_owned()
                } else {
                    pods.iter()
                        .map(|pod| {
                            format!(
                                "{} ({:?})",
                                pod.metadata.name.clone().unwrap_or_default(),
                                crate::wait::readiness::pod(pod)
                            )
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                },
            });
        };
        let name = pod.metadata.name.clone().unwrap_or_default();
        let port = match &self.target_port {
            IntOrString::Int(port) => u16::try_from(*port).unwrap_or(self.port),
            IntOrString::String(port_name) => pod
                .spec
                .iter()
                .flat_map(|spec| spec.containers.iter())
                .flat_map(|container| container.ports.iter().flatten())
                .find(|port| port.name.as_deref() == Some(port_name))
                .and_then(|port| u16::try_from(port.container_port).ok())
                .ok_or_else(|| AccessError::NamedPortMissing {
                    namespace: self.namespace.clone(),
                    service: self.service.clone(),
                    pod: name.clone(),
                    name: port_name.clone(),
                })?,
        };
        Ok((name, port))
    }

    async fn forward(&self, mut connection: TcpStream) -> Result<(), AccessError> {
        let (pod, port) = self.pick_pod().await?;
        let mut forwarder = self
            .pods
            .portforward(&pod, &[port])
            .await
            .map_err(|source| AccessError::Kube {
                action: format!(
                    "open a port-forward to pod `{}/{pod}` port {port}",
                    self.namespace
                ),
                source,
            })?;
        let mut upstream = forwarder
            .take_stream(port)
            .expect("the forwarded port's stream");
        let copied = tokio::io::copy_bidirectional(&mut connection, &mut upstream).await;
        drop(upstream);
        let _ = forwarder.join().await;
        copied.map(drop).map_err(|source| AccessError::Io {
            action: format!(
                "copy through the port-forward to pod `{}/{pod}`",
                self.namespace
            ),
            source,
        })
    }
}

/// An HTTP/1.1 response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub body: String,
}

/// A small HTTP/1.1 client for an [`Endpoint`]: one connection per request.
#[derive(Clone)]
pub struct HttpClient {
    address: SocketAddr,
    timeout: Duration,
    /// Keeps the forward open as long as a client holding it lives.
    _forward: Option<std::sync::Arc<Endpoint>>,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient")
            .field("address", &self.address)
            .finish()
    }
}

impl HttpClient {
    /// A client that owns `endpoint`: the forward lives as long as it.
    pub fn through(endpoint: Endpoint) -> Self {
        HttpClient {
            address: endpoint.address,
            timeout: Duration::from_secs(10),
            _forward: Some(std::sync::Arc::new(endpoint)),
        }
    }

    /// The address requests go to.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The time a request may take, 10 s unless set.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub async fn get(&self, path: &str) -> Result<Response, AccessError> {
        self.request("GET", path, "").await
    }

    pub async fn put(&self, path: &str, body: impl Into<String>) -> Result<Response, AccessError> {
        self.request("PUT", path, body).await
    }

    pub async fn post(&self, path: &str, body: impl Into<String>) -> Result<Response, AccessError> {
        self.request("POST", path, body).await
    }

    pub async fn delete(&self, path: &str) -> Result<Response, AccessError> {
        self.request("DELETE", path, "").await
    }

    pub async fn request(
        &self,
        method: &str,
        path: &str,
        body: impl Into<String>,
    ) -> Result<Response, AccessError> {
        let url = format!("http://{}{path}", self.address);
        let failed = |source: crate::BoxError| AccessError::Http {
            method: method.to_owned(),
            url: url.clone(),
            source,
        };
        let exchange = async {
            let stream = TcpStream::connect(self.address)
                .await
                .map_err(|error| failed(error.into()))?;
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                    .await
                    .map_err(|error| failed(error.into()))?;
            tokio::spawn(connection);
            let request = http::Request::builder()
                .method(method)
                .uri(path)
                .header(http::header::HOST, self.address.to_string())
                .body(Full::new(Bytes::from(body.into())))
                .map_err(|error| failed(error.into()))?;
            let response = sender
                .send_request(request)
                .await
                .map_err(|error| failed(error.into()))?;
            let status = response.status().as_u16();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|error| failed(error.into()))?
                .to_bytes();
            Ok(Response {
                status,
                body: String::from_utf8_lossy(&body).into_owned(),
            })
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| AccessError::HttpTimeout {
                method: method.to_owned(),
                url: url.clone(),
                timeout: self.timeout,
            })?
    }
}
