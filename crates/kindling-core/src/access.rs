//! Reaching a Service from a test without fixed host ports: a port-forward
//! through the API server to a ready pod behind the Service, on a local
//! port of its own, and an HTTP client (reqwest) for it.

use std::net::SocketAddr;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::Client;
use kube::api::{Api, ListParams};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Reaching a Service failed.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    /// No client for the cluster: its kubeconfig or context cannot be used.
    #[error(transparent)]
    Client(#[from] crate::kubeconfig::KubeconfigError),
    /// The Service to forward to is not in the cluster.
    #[error(
        "Service `{namespace}/{service}` does not exist: check the name, or that the suite's manifests define it"
    )]
    NoService {
        /// The namespace looked in.
        namespace: String,
        /// The Service's name, as the test gave it.
        service: String,
    },
    /// The Service exists but none of its ports is the port asked for.
    #[error("Service `{namespace}/{service}` has no port {port}; its ports are: {ports}")]
    NoPort {
        /// The Service's namespace.
        namespace: String,
        /// The Service's name.
        service: String,
        /// The Service port the test asked for.
        port: u16,
        /// The ports the Service does have, comma-separated.
        ports: String,
    },
    /// The Service has no (or an empty) selector, so there are no pods to
    /// forward to.
    #[error(
        "Service `{namespace}/{service}` has no selector: kindling forwards to the pods a selector picks"
    )]
    NoSelector {
        /// The Service's namespace.
        namespace: String,
        /// The Service's name.
        service: String,
    },
    /// No live pod the Service selects is ready, nor even running.
    #[error("no ready or running pod behind Service `{namespace}/{service}` ({selector}): {pods}")]
    NoReadyPod {
        /// The Service's namespace.
        namespace: String,
        /// The Service's name.
        service: String,
        /// The Service's selector, as `key=value` pairs joined by commas.
        selector: String,
        /// The pods it selects with their readiness, or `no pods match`.
        pods: String,
    },
    /// The Service's target port is a port name that no container of the
    /// chosen pod declares.
    #[error("target port `{name}` of Service `{namespace}/{service}` is not a port of pod `{pod}`")]
    NamedPortMissing {
        /// The Service's namespace.
        namespace: String,
        /// The Service's name.
        service: String,
        /// The pod chosen to forward to.
        pod: String,
        /// The target port's name, as the Service gives it.
        name: String,
    },
    /// A request to the API server (reading the Service or pod, listing
    /// pods, opening a port-forward) failed.
    #[error("failed to {action}")]
    Kube {
        /// What was being done, e.g. ``read Service `ns/name` ``.
        action: String,
        /// The API client's error.
        #[source]
        source: kube::Error,
    },
    /// A local socket operation failed: binding the forward's port, or
    /// copying bytes through it.
    #[error("failed to {action}")]
    Io {
        /// What was being done, e.g. `bind a local port for a port-forward`.
        action: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// An HTTP request could not be built, sent, or its response read
    /// (any status received is a [`Response`], not this).
    #[error("HTTP {method} {url} failed")]
    Http {
        /// The request's method (`?` when the request could not be built).
        method: String,
        /// The request's URL.
        url: String,
        /// The HTTP client's error.
        #[source]
        source: crate::BoxError,
    },
    /// An HTTP request got no whole response within the client's timeout.
    #[error("HTTP {method} {url}: no response within {}s", timeout.as_secs())]
    HttpTimeout {
        /// The request's method.
        method: String,
        /// The request's URL.
        url: String,
        /// The timeout that ran out (see [`HttpClient::timeout`]).
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

    /// An HTTP client for this endpoint (which must outlive it).
    pub fn http(&self) -> HttpClient {
        HttpClient::new(self.address, None)
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// A listener on a free loopback port (never another interface: the
/// forward is for this host's tests only) and its address.
async fn bind_loopback() -> Result<(TcpListener, SocketAddr), AccessError> {
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
    Ok((listener, address))
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
    let (listener, address) = bind_loopback().await?;
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
                        kindling_harness::render_chain(&error)
                    );
                }
            });
        }
    });
    Ok(Endpoint { address, accept })
}

/// Forwards a local port to `port` of pod `pod` itself (ready or not):
/// for a test that asks one replica, or an unready one, directly.
pub async fn port_forward_pod(
    client: &Client,
    namespace: &str,
    pod: &str,
    port: u16,
) -> Result<Endpoint, AccessError> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    pods.get(pod).await.map_err(|source| AccessError::Kube {
        action: format!("read pod `{namespace}/{pod}`"),
        source,
    })?;
    let (listener, address) = bind_loopback().await?;
    let (namespace, pod) = (namespace.to_owned(), pod.to_owned());
    let accept = tokio::spawn(async move {
        while let Ok((mut connection, _)) = listener.accept().await {
            let (pods, namespace, pod) = (pods.clone(), namespace.clone(), pod.clone());
            tokio::spawn(async move {
                let forwarded = async {
                    let mut forwarder = pods
                        .portforward(&pod, &[port])
                        .await
                        .map_err(crate::BoxError::from)?;
                    let mut upstream = forwarder
                        .take_stream(port)
                        .expect("the forwarded port's stream");
                    let copied =
                        tokio::io::copy_bidirectional(&mut connection, &mut upstream).await;
                    drop(upstream);
                    let _ = forwarder.join().await;
                    copied.map(drop).map_err(crate::BoxError::from)
                };
                if let Err(error) = forwarded.await {
                    tracing::warn!("port-forward to pod {namespace}/{pod}:{port}: {error}");
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

    /// A ready pod behind the Service, else a running one (a test may ask
    /// an unready pod why it is not ready), and the container port to
    /// reach on it.
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
        let live = |pod: &&Pod| pod.metadata.deletion_timestamp.is_none();
        let ready = pods
            .iter()
            .filter(live)
            .find(|pod| crate::wait::readiness::pod(pod) == crate::wait::Readiness::Ready);
        let running = || {
            pods.iter().filter(live).find(|pod| {
                pod.status
                    .as_ref()
                    .and_then(|status| status.phase.as_deref())
                    == Some("Running")
            })
        };
        let Some(pod) = ready.or_else(running) else {
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

/// An HTTP response, read whole.
#[derive(Debug, Clone)]
pub struct Response {
    /// The HTTP status code, e.g. `200`.
    pub status: u16,
    /// The response's headers.
    pub headers: http::HeaderMap,
    /// The whole body, as text.
    pub body: String,
}

impl Response {
    /// The body as JSON of type `T`.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(&self.body)
    }

    /// A header's value, if present and text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)?.to_str().ok()
    }
}

/// An HTTP client (reqwest) for an [`Endpoint`], with the forward's base
/// URL, a timeout, and optionally a bearer token on every request. Every
/// request opens a connection of its own (see [`port_forward`]).
#[derive(Clone)]
pub struct HttpClient {
    client: reqwest::Client,
    address: SocketAddr,
    timeout: Duration,
    bearer: Option<String>,
    /// Keeps the forward open as long as a client holding it lives.
    _forward: Option<std::sync::Arc<Endpoint>>,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient")
            .field("address", &self.address)
            .field("bearer", &self.bearer.as_ref().map(|_| "<token>"))
            .finish()
    }
}

impl HttpClient {
    fn new(address: SocketAddr, forward: Option<std::sync::Arc<Endpoint>>) -> Self {
        // No kept-alive connections: each request opens its own, so each
        // goes through the forward to a pod that is ready now, not to one a
        // rollout has replaced since.
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .unwrap_or_default();
        HttpClient {
            client,
            address,
            timeout: Duration::from_secs(10),
            bearer: None,
            _forward: forward,
        }
    }

    /// A client that owns `endpoint`: the forward lives as long as it.
    pub fn through(endpoint: Endpoint) -> Self {
        let address = endpoint.address;
        HttpClient::new(address, Some(std::sync::Arc::new(endpoint)))
    }

    /// The address requests go to.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// The time a request may take, 10 s unless set.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sends `Authorization: Bearer <token>` with every request.
    pub fn bearer(mut self, token: impl Into<String>) -> Self {
        self.bearer = Some(token.into());
        self
    }

    /// A request to `path` with the client's timeout and token, to add
    /// headers, a JSON body or a query to, then [`HttpClient::send`].
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let builder = self
            .client
            .request(method, self.url(path))
            .timeout(self.timeout);
        match &self.bearer {
            Some(token) => builder.bearer_auth(token),
            None => builder,
        }
    }

    /// Sends a request made by [`HttpClient::request`] and reads the whole
    /// response. Any status is a response; only a failure to exchange is
    /// an error (naming the method and URL).
    pub async fn send(&self, request: reqwest::RequestBuilder) -> Result<Response, AccessError> {
        let (client, request) = request.build_split();
        let request = request.map_err(|source| AccessError::Http {
            method: "?".to_owned(),
            url: self.url(""),
            source: source.into(),
        })?;
        let (method, url) = (request.method().to_string(), request.url().to_string());
        let failed = |source: reqwest::Error| {
            if source.is_timeout() {
                AccessError::HttpTimeout {
                    method: method.clone(),
                    url: url.clone(),
                    timeout: self.timeout,
                }
            } else {
                AccessError::Http {
                    method: method.clone(),
                    url: url.clone(),
                    source: source.into(),
                }
            }
        };
        let response = client.execute(request).await.map_err(failed)?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.text().await.map_err(failed)?;
        Ok(Response {
            status,
            headers,
            body,
        })
    }

    /// `GET` of `path`.
    pub async fn get(&self, path: &str) -> Result<Response, AccessError> {
        self.send(self.request(reqwest::Method::GET, path)).await
    }

    /// `PUT` of `body` (sent as is) to `path`.
    pub async fn put(&self, path: &str, body: impl Into<String>) -> Result<Response, AccessError> {
        self.send(self.request(reqwest::Method::PUT, path).body(body.into()))
            .await
    }

    /// `POST` of `body` (sent as is) to `path`.
    pub async fn post(&self, path: &str, body: impl Into<String>) -> Result<Response, AccessError> {
        self.send(self.request(reqwest::Method::POST, path).body(body.into()))
            .await
    }

    /// `POST` of `body` as JSON.
    pub async fn post_json<T: serde::Serialize + ?Sized>(
        &self,
        path: &str,
        body: &T,
    ) -> Result<Response, AccessError> {
        self.send(self.request(reqwest::Method::POST, path).json(body))
            .await
    }

    /// `DELETE` of `path`.
    pub async fn delete(&self, path: &str) -> Result<Response, AccessError> {
        self.send(self.request(reqwest::Method::DELETE, path)).await
    }
}
