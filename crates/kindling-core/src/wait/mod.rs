//! Waiting for workloads by diagnosis: while waiting, the pods are
//! watched, and a container in a state that will not resolve fails the
//! wait within seconds with one readable diagnosis instead of a timeout.
//!
//! Hand-written: kube-runtime's `await_condition` waits for one object's
//! condition, and cannot fail a wait on another object (a pod of the
//! workload in CrashLoopBackOff) nor say why; plain conditions (a CRD
//! Established, a namespace gone) use it. Its selector is kube's
//! `Selector`. One file, with its tests: the waits share the pod polling
//! and the settle window.

mod changes;
pub mod diagnosis;
pub mod readiness;

use std::fmt;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::Client;
use kube::api::{Api, ListParams};
use kube::core::{Selector, SelectorExt as _};
use serde::de::DeserializeOwned;

pub use diagnosis::{Diagnosis, FATAL_REASONS};
pub use readiness::Readiness;

use crate::node::NodeStore;

use changes::POLL;

/// A workload to wait for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workload {
    /// The workload's kind, e.g. `Deployment` ([`Workload::is_waitable`]
    /// says which kinds a wait knows).
    pub kind: String,
    /// The namespace it is in.
    pub namespace: String,
    /// The workload's `metadata.name`.
    pub name: String,
}

impl Workload {
    /// The workload of kind `kind` named `name` in `namespace`.
    pub fn new(kind: &str, namespace: &str, name: &str) -> Self {
        Workload {
            kind: kind.to_owned(),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        }
    }

    /// Whether kindling knows when this kind is ready.
    pub fn is_waitable(kind: &str) -> bool {
        matches!(
            kind,
            "Deployment" | "StatefulSet" | "DaemonSet" | "Job" | "Pod" | "Service"
        )
    }
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{} in `{}`", self.kind, self.name, self.namespace)
    }
}

/// A wait ended without every workload ready.
#[derive(Debug, thiserror::Error)]
pub enum WaitError {
    /// No client for the cluster: its kubeconfig or context cannot be used.
    #[error(transparent)]
    Client(#[from] crate::kubeconfig::KubeconfigError),
    /// A pod of the wait has a container in a state that will not resolve by
    /// waiting (see [`diagnosis::fatal_container`]).
    #[error("{0}")]
    Diagnosed(Box<Diagnosis>),
    /// A workload will never be ready: a Deployment past its progress deadline,
    /// a failed Job, a failed Pod.
    #[error("{workload} failed: {reason}{}", diagnosis.as_ref().map(|d| format!("\n{d}")).unwrap_or_default())]
    Failed {
        /// The workload that failed.
        workload: Workload,
        /// Why, from its status.
        reason: String,
        /// The last failed pod of the workload, when there is one.
        diagnosis: Option<Box<Diagnosis>>,
    },
    /// The timeout ran out with workloads (or the condition waited for) not
    /// ready.
    #[error(
        "not ready after {}s:\n{}",
        after.as_secs(),
        pending.iter().map(|line| format!("  {line}")).collect::<Vec<_>>().join("\n")
    )]
    Timeout {
        /// The wait's timeout.
        after: Duration,
        /// One line per workload or pod not ready, with why.
        pending: Vec<String>,
    },
    /// Reading a workload, the pods or a Service's EndpointSlices failed.
    #[error("failed to read {what}")]
    Request {
        /// What was being read, e.g. ``the pods of namespace `ns` ``.
        what: String,
        /// The API client's error.
        #[source]
        source: kube::Error,
    },
}

/// Waits for workloads, diagnosing pods that will not recover.
#[derive(Clone)]
pub struct Waiter {
    client: Client,
    stores: Vec<NodeStore>,
    timeout: Duration,
    settle: Duration,
    watching: Option<Vec<Workload>>,
    /// Set when this host routes Service addresses: since when each
    /// Service's endpoints have listed its ready pods.
    probing: Option<std::sync::Arc<std::sync::Mutex<std::collections::BTreeMap<String, Instant>>>>,
}

/// How long a Service whose endpoints are listed may refuse connections
/// before the wait stops probing it (its pods may simply not listen on
/// any of its ports).
const PROBE_WINDOW: Duration = Duration::from_secs(10);

/// How long workloads must stay ready, with no container restarting,
/// before a wait ends: a container without a readiness probe that crashes
/// at once is Ready for a moment, and the kubelet reports the crash about a
/// second later.
pub const DEFAULT_SETTLE: Duration = Duration::from_secs(2);

/// The settle window when every container of the waited pods has a
/// readiness probe: Ready then means the process answered it, so only a
/// short look for a restart remains.
pub const PROBED_SETTLE: Duration = Duration::from_millis(500);

impl Waiter {
    /// A waiter through `client` that gives each wait `timeout`, listing what
    /// `stores` hold when a diagnosis is about an image.
    pub fn new(client: Client, stores: Vec<NodeStore>, timeout: Duration) -> Self {
        Waiter {
            client,
            stores,
            timeout,
            settle: DEFAULT_SETTLE,
            watching: None,
            probing: None,
        }
    }

    /// Makes a Service ready only once one of its ports accepts a TCP
    /// connection at its cluster IP from this host, for clusters whose
    /// routing this host goes through
    /// ([`crate::cluster::Provider::routes_service_addresses`]): listed
    /// endpoints do not mean the proxy routes to them yet. A Service that
    /// still refuses 10 s after its endpoints were listed is
    /// taken as ready.
    pub fn probe_services(mut self, probe: bool) -> Self {
        self.probing = probe.then(Default::default);
        self
    }

    /// Makes [`Waiter::until`] and [`Waiter::until_ok`] diagnose only the
    /// pods of `workloads` (a Deployment's, a Job's, one Pod) instead of
    /// every pod of the namespace: another test's broken pod is not this
    /// wait's failure.
    pub fn watching(mut self, workloads: Vec<Workload>) -> Self {
        self.watching = Some(workloads);
        self
    }

    /// How long everything must stay ready (default 2 s; at most 0.5 s when
    /// every container of the waited pods has a readiness probe).
    pub fn settle(mut self, settle: Duration) -> Self {
        self.settle = settle;
        self
    }

    /// Returns once every workload is ready; fails at the first pod in
    /// a fatal state, at a failed Job, or at the timeout.
    pub async fn wait(&self, workloads: &[Workload]) -> Result<(), WaitError> {
        let deadline = Instant::now() + self.timeout;
        let mut namespaces: Vec<&str> = workloads.iter().map(|w| w.namespace.as_str()).collect();
        namespaces.sort();
        namespaces.dedup();
        // Since when everything has been ready, and the restart counts then.
        let mut ready_since: Option<(Instant, Vec<(String, i32)>)> = None;
        let changes = changes::Changes::of(&self.client, workloads);
        loop {
            let looked_at = Instant::now();
            let mut pending = Vec::new();
            let mut selectors = Vec::new();
            for workload in workloads {
                let (readiness, selector) = self.readiness(workload).await?;
                match readiness {
                    Readiness::Ready => {}
                    Readiness::Pending(why) => pending.push(format!("{workload}: {why}")),
                    Readiness::Failed(reason) => {
                        return Err(self.failed(workload, &selector, reason).await);
                    }
                }
                selectors.push((workload.namespace.as_str(), selector));
            }
            let pods = self.pods_of(&namespaces, &selectors).await?;
            if let Some((pod, fatal)) = pods
                .iter()
                .find_map(|pod| diagnosis::fatal_container(pod).map(|fatal| (pod, fatal)))
            {
                let diagnosis = diagnosis::diagnose(&self.client, &self.stores, pod, fatal).await;
                return Err(WaitError::Diagnosed(Box::new(diagnosis)));
            }
            pending.extend(earlier_rollouts_stopping(workloads, &selectors, &pods));
            // Until the next look: a change, the poll, or the settle's end.
            let mut settle_left = None;
            if pending.is_empty() {
                let restarts = restart_counts(&pods);
                let settle = self.settle_for(&pods);
                match &ready_since {
                    Some((since, before)) if *before == restarts => {
                        if since.elapsed() >= settle {
                            return Ok(());
                        }
                        settle_left = Some(settle.saturating_sub(since.elapsed()));
                    }
                    _ => {
                        if settle.is_zero() {
                            return Ok(());
                        }
                        ready_since = Some((Instant::now(), restarts));
                        settle_left = Some(settle);
                    }
                }
            } else {
                ready_since = None;
            }
            if Instant::now() >= deadline {
                if pending.is_empty() {
                    // Ready, though not yet for the whole settle window.
                    return Ok(());
                }
                pending.extend(pods.iter().filter_map(describe_unready_pod));
                return Err(WaitError::Timeout {
                    after: self.timeout,
                    pending,
                });
            }
            changes.next(looked_at, settle_left).await;
        }
    }

    /// The failure of `workload`, with the diagnosis of its last pod whose
    /// container failed, when there is one.
    async fn failed(
        &self,
        workload: &Workload,
        selector: &PodSelector,
        reason: String,
    ) -> WaitError {
        let pods = match self.pods(&workload.namespace).await {
            Ok(pods) => pods,
            Err(error) => return error,
        };
        let failed = pods
            .iter()
            .rev()
            .filter(|pod| selector.matches(pod))
            .find_map(|pod| diagnosis::failed_container(pod).map(|fatal| (pod, fatal)));
        let diagnosis = match failed {
            Some((pod, fatal)) => Some(Box::new(
                diagnosis::diagnose(&self.client, &self.stores, pod, fatal).await,
            )),
            None => None,
        };
        WaitError::Failed {
            workload: workload.clone(),
            reason,
            diagnosis,
        }
    }

    /// The pods of `namespaces` the workloads' `selectors` pick: other pods
    /// of the namespace (a test's deliberately broken one) are not theirs
    /// to fail.
    async fn pods_of(
        &self,
        namespaces: &[&str],
        selectors: &[(&str, PodSelector)],
    ) -> Result<Vec<Pod>, WaitError> {
        let mut pods = Vec::new();
        for namespace in namespaces {
            pods.extend(self.pods(namespace).await?.into_iter().filter(|pod| {
                selectors.iter().any(|(in_namespace, selector)| {
                    pod.metadata.namespace.as_deref() == Some(in_namespace) && selector.matches(pod)
                })
            }));
        }
        Ok(pods)
    }

    /// How long everything must have stayed ready: nothing for finished
    /// pods only (a Job's cannot crash any more), less when every running
    /// container has a readiness probe.
    fn settle_for(&self, pods: &[Pod]) -> Duration {
        let running: Vec<&Pod> = pods.iter().filter(|pod| !finished(pod)).collect();
        if running.is_empty() {
            Duration::ZERO
        } else if running.iter().all(|pod| every_container_probed(pod)) {
            self.settle.min(PROBED_SETTLE)
        } else {
            self.settle
        }
    }

    /// Polls `condition` until it holds; at the timeout, fails with what
    /// `what` names and the state of the namespace's pods. A pod in a fatal
    /// state fails the wait at once with its diagnosis.
    pub async fn until<F, Fut>(
        &self,
        what: &str,
        namespace: &str,
        mut condition: F,
    ) -> Result<(), WaitError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = bool>,
    {
        self.until_ok(what, namespace, || {
            let holds = condition();
            async move {
                if holds.await {
                    Ok(())
                } else {
                    Err("the condition never held".to_owned())
                }
            }
        })
        .await
    }

    /// Polls `check` until it returns `Ok`, which is returned; `Err` says
    /// what was seen instead, and the last one is named at the timeout. A
    /// pod of `namespace` in a fatal state fails the wait at once with its
    /// diagnosis.
    pub async fn until_ok<T, F, Fut>(
        &self,
        what: &str,
        namespace: &str,
        mut check: F,
    ) -> Result<T, WaitError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, String>>,
    {
        let deadline = Instant::now() + self.timeout;
        let watched = self.watched_selectors().await?;
        loop {
            let seen = match check().await {
                Ok(value) => return Ok(value),
                Err(seen) => seen,
            };
            let mut pods = self.pods(namespace).await?;
            if let Some(watched) = &watched {
                pods.retain(|pod| {
                    watched.iter().any(|(in_namespace, selector)| {
                        pod.metadata.namespace.as_deref() == Some(in_namespace.as_str())
                            && selector.matches(pod)
                    })
                });
            }
            if let Some((pod, fatal)) = pods
                .iter()
                .find_map(|pod| diagnosis::fatal_container(pod).map(|fatal| (pod, fatal)))
            {
                let diagnosis = diagnosis::diagnose(&self.client, &self.stores, pod, fatal).await;
                return Err(WaitError::Diagnosed(Box::new(diagnosis)));
            }
            if Instant::now() >= deadline {
                let mut pending = vec![format!("{what}: last seen: {seen}")];
                pending.extend(pods.iter().filter_map(describe_unready_pod));
                return Err(WaitError::Timeout {
                    after: self.timeout,
                    pending,
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The workloads that are not ready at this moment (missing ones
    /// included), without waiting: one request per workload.
    pub async fn not_ready(&self, workloads: &[Workload]) -> Result<Vec<Workload>, WaitError> {
        let mut not_ready = Vec::new();
        for workload in workloads {
            match self.readiness(workload).await {
                Ok((Readiness::Ready, _)) => {}
                Ok(_) => not_ready.push(workload.clone()),
                Err(WaitError::Request {
                    source: kube::Error::Api(response),
                    ..
                }) if response.code == 404 => not_ready.push(workload.clone()),
                Err(error) => return Err(error),
            }
        }
        Ok(not_ready)
    }

    async fn readiness(&self, workload: &Workload) -> Result<(Readiness, PodSelector), WaitError> {
        fn labels(selector: Option<&LabelSelector>) -> PodSelector {
            // matchLabels and matchExpressions, as the controllers select;
            // a selector the API server would have refused selects nothing.
            selector
                .cloned()
                .and_then(|selector| Selector::try_from(selector).ok())
                .map_or(PodSelector::Name(String::new()), PodSelector::Labels)
        }
        Ok(match workload.kind.as_str() {
            "Deployment" => {
                let object = self.get::<Deployment>(workload).await?;
                let selector = labels(object.spec.as_ref().map(|spec| &spec.selector));
                (readiness::deployment(&object), selector)
            }
            "StatefulSet" => {
                let object = self.get::<StatefulSet>(workload).await?;
                let selector = labels(object.spec.as_ref().map(|spec| &spec.selector));
                (readiness::stateful_set(&object), selector)
            }
            "DaemonSet" => {
                let object = self.get::<DaemonSet>(workload).await?;
                let selector = labels(object.spec.as_ref().map(|spec| &spec.selector));
                (readiness::daemon_set(&object), selector)
            }
            "Job" => {
                let object = self.get::<Job>(workload).await?;
                let selector = labels(object.spec.as_ref().and_then(|spec| spec.selector.as_ref()));
                let mut state = readiness::job(&object);
                if let Readiness::Pending(_) = state {
                    // A pod's containers exit seconds before the Job
                    // controller marks the Job Complete: enough succeeded
                    // pods already make it done.
                    let succeeded = self
                        .pods(&workload.namespace)
                        .await?
                        .iter()
                        .filter(|pod| selector.matches(pod) && readiness::pod_succeeded(pod))
                        .count();
                    if readiness::job_done_by_pods(&object, succeeded) {
                        state = Readiness::Ready;
                    }
                }
                (state, selector)
            }
            "Pod" => {
                let object = self.get::<Pod>(workload).await?;
                (
                    readiness::pod(&object),
                    PodSelector::Name(workload.name.clone()),
                )
            }
            "Service" => {
                let object = self.get::<Service>(workload).await?;
                let selector = object
                    .spec
                    .as_ref()
                    .and_then(|spec| spec.selector.clone())
                    .unwrap_or_default();
                if selector.is_empty() {
                    // Endpoints of its own (or none): nothing to route to.
                    (Readiness::Ready, PodSelector::Name(String::new()))
                } else {
                    let selector = PodSelector::Labels(selector.into_iter().collect());
                    let mut state = self.service_routes(workload, &selector).await?;
                    if matches!(state, Readiness::Ready) {
                        state = self.service_accepts(workload, &object).await;
                    }
                    (state, selector)
                }
            }
            _ => (Readiness::Ready, PodSelector::Name(String::new())),
        })
    }

    /// A Service is ready once its EndpointSlices list every ready pod it
    /// selects: before that, a request to it right after the rollout can
    /// find no route. One selecting no ready pod (yet) has nothing to list.
    async fn service_routes(
        &self,
        service: &Workload,
        selector: &PodSelector,
    ) -> Result<Readiness, WaitError> {
        let pods = self.pods(&service.namespace).await?;
        let name_and_ip = |pod: &Pod| {
            let ip = pod.status.as_ref()?.pod_ip.clone()?;
            Some((pod.metadata.name.clone()?, ip))
        };
        let ready_pods: Vec<(String, String)> = pods
            .iter()
            .filter(|pod| selector.matches(pod) && pod.metadata.deletion_timestamp.is_none())
            .filter(|pod| matches!(readiness::pod(pod), Readiness::Ready))
            .filter_map(name_and_ip)
            .collect();
        let stopping_pods: Vec<(String, String)> = pods
            .iter()
            .filter(|pod| selector.matches(pod) && pod.metadata.deletion_timestamp.is_some())
            .filter_map(name_and_ip)
            .collect();
        if ready_pods.is_empty() && stopping_pods.is_empty() {
            return Ok(Readiness::Ready);
        }
        let slices = Api::<EndpointSlice>::namespaced(self.client.clone(), &service.namespace)
            .list(
                &ListParams::default()
                    .labels(&format!("kubernetes.io/service-name={}", service.name)),
            )
            .await
            .map_err(|source| WaitError::Request {
                what: format!("the EndpointSlices of {service}"),
                source,
            })?;
        let routed: std::collections::BTreeSet<&str> = slices
            .items
            .iter()
            .flat_map(|slice| &slice.endpoints)
            .filter(|endpoint| {
                endpoint
                    .conditions
                    .as_ref()
                    .and_then(|conditions| conditions.ready)
                    .unwrap_or(true)
            })
            .flat_map(|endpoint| endpoint.addresses.iter().map(String::as_str))
            .collect();
        let unrouted: Vec<&str> = ready_pods
            .iter()
            .filter(|(_, ip)| !routed.contains(ip.as_str()))
            .map(|(name, _)| name.as_str())
            .collect();
        let still_routed: Vec<&str> = stopping_pods
            .iter()
            .filter(|(_, ip)| routed.contains(ip.as_str()))
            .map(|(name, _)| name.as_str())
            .collect();
        Ok(if !unrouted.is_empty() {
            Readiness::Pending(format!(
                "its endpoints do not list the ready pod(s) {} yet",
                unrouted.join(", ")
            ))
        } else if !still_routed.is_empty() {
            Readiness::Pending(format!(
                "its endpoints still list the stopping pod(s) {}",
                still_routed.join(", ")
            ))
        } else {
            Readiness::Ready
        })
    }

    /// Whether one TCP port of the Service accepts a connection at its
    /// cluster IP (when probing; see [`Waiter::probe_services`]).
    async fn service_accepts(&self, workload: &Workload, service: &Service) -> Readiness {
        let Some(probing) = &self.probing else {
            return Readiness::Ready;
        };
        let spec = service.spec.as_ref();
        let Some(ip) = spec
            .and_then(|spec| spec.cluster_ip.as_deref())
            .and_then(|ip| ip.parse::<std::net::IpAddr>().ok())
        else {
            return Readiness::Ready; // headless: no address to route
        };
        let ports: Vec<u16> = spec
            .and_then(|spec| spec.ports.as_ref())
            .into_iter()
            .flatten()
            .filter(|port| port.protocol.as_deref().unwrap_or("TCP") == "TCP")
            .filter_map(|port| u16::try_from(port.port).ok())
            .collect();
        if ports.is_empty() {
            return Readiness::Ready;
        }
        let since = *probing
            .lock()
            .expect("the probe map is not poisoned")
            .entry(workload.to_string())
            .or_insert_with(Instant::now);
        for port in &ports {
            let connect = tokio::net::TcpStream::connect((ip, *port));
            if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(1), connect).await {
                return Readiness::Ready;
            }
        }
        if since.elapsed() >= PROBE_WINDOW {
            tracing::warn!(
                service = %workload,
                "no port of the Service accepted a connection {}s after its endpoints were listed: taking it as ready",
                PROBE_WINDOW.as_secs()
            );
            return Readiness::Ready;
        }
        Readiness::Pending(format!(
            "{ip} refuses connections on {}: its endpoints are listed but not routed yet",
            ports
                .iter()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ))
    }

    async fn get<K>(&self, workload: &Workload) -> Result<K, WaitError>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + fmt::Debug,
        K::DynamicType: Default,
    {
        Api::<K>::namespaced(self.client.clone(), &workload.namespace)
            .get(&workload.name)
            .await
            .map_err(|source| WaitError::Request {
                what: workload.to_string(),
                source,
            })
    }

    /// The pods [`Waiter::watching`] named, as selectors; `None` for all.
    async fn watched_selectors(&self) -> Result<Option<Vec<(String, PodSelector)>>, WaitError> {
        let Some(workloads) = &self.watching else {
            return Ok(None);
        };
        let mut selectors = Vec::new();
        for workload in workloads {
            match self.readiness(workload).await {
                Ok((_, selector)) => selectors.push((workload.namespace.clone(), selector)),
                // A workload a test deleted has no pods to diagnose.
                Err(WaitError::Request {
                    source: kube::Error::Api(response),
                    ..
                }) if response.code == 404 => {}
                Err(error) => return Err(error),
            }
        }
        Ok(Some(selectors))
    }

    async fn pods(&self, namespace: &str) -> Result<Vec<Pod>, WaitError> {
        Api::<Pod>::namespaced(self.client.clone(), namespace)
            .list(&ListParams::default())
            .await
            .map(|list| list.items)
            .map_err(|source| WaitError::Request {
                what: format!("the pods of namespace `{namespace}`"),
                source,
            })
    }
}

/// Whether `pod` ran to its end (succeeded, or Failed).
fn finished(pod: &Pod) -> bool {
    readiness::pod_succeeded(pod)
        || pod
            .status
            .as_ref()
            .and_then(|status| status.phase.as_deref())
            == Some("Failed")
}

/// Whether every container of `pod` has a readiness probe.
fn every_container_probed(pod: &Pod) -> bool {
    pod.spec.as_ref().is_some_and(|spec| {
        spec.containers
            .iter()
            .all(|container| container.readiness_probe.is_some())
    })
}

/// The Deployments among `workloads` whose earlier rollout still has pods
/// stopping that could still act: until they are gone a request may reach
/// one, or it may still work a queue, and a test would see the previous
/// build. A stopping pod that a waited Service selects is done once that
/// Service's endpoints no longer list it ([`Waiter::service_routes`] waits
/// for that): new requests no longer reach it, however long its `preStop`
/// sleeps while the proxies catch up.
fn earlier_rollouts_stopping(
    workloads: &[Workload],
    selectors: &[(&str, PodSelector)],
    pods: &[Pod],
) -> Vec<String> {
    let behind_a_waited_service = |pod: &Pod| {
        workloads
            .iter()
            .zip(selectors)
            .any(|(workload, (namespace, selector))| {
                workload.kind == "Service"
                    && pod.metadata.namespace.as_deref() == Some(namespace)
                    && selector.matches(pod)
            })
    };
    workloads
        .iter()
        .zip(selectors)
        .filter(|(workload, _)| workload.kind == "Deployment")
        .filter_map(|(workload, (namespace, selector))| {
            let stopping: Vec<&str> = pods
                .iter()
                .filter(|pod| {
                    pod.metadata.namespace.as_deref() == Some(namespace)
                        && selector.matches(pod)
                        && pod.metadata.deletion_timestamp.is_some()
                        && !behind_a_waited_service(pod)
                })
                .filter_map(|pod| pod.metadata.name.as_deref())
                .collect();
            (!stopping.is_empty()).then(|| {
                format!(
                    "{workload}: pods of an earlier rollout still stopping: {}",
                    stopping.join(", ")
                )
            })
        })
        .collect()
}

/// Every container's restart count, by pod and container.
fn restart_counts(pods: &[Pod]) -> Vec<(String, i32)> {
    let mut counts: Vec<(String, i32)> = pods
        .iter()
        .flat_map(|pod| {
            let name = pod.metadata.name.clone().unwrap_or_default();
            pod.status
                .iter()
                .flat_map(|status| status.container_statuses.iter().flatten())
                .map(move |container| {
                    (
                        format!("{name}/{}", container.name),
                        container.restart_count,
                    )
                })
        })
        .collect();
    counts.sort();
    counts
}

/// Which pods belong to a workload.
enum PodSelector {
    Labels(Selector),
    Name(String),
}

impl PodSelector {
    fn matches(&self, pod: &Pod) -> bool {
        match self {
            PodSelector::Name(name) => pod.metadata.name.as_ref() == Some(name),
            // An empty selector would match everything: it selects nothing here.
            PodSelector::Labels(selector) if selector.selects_all() => false,
            PodSelector::Labels(selector) => {
                selector.matches(pod.metadata.labels.as_ref().unwrap_or(&Default::default()))
            }
        }
    }
}

/// `pod api-7c9 (Pending): api: waiting (ContainerCreating)`, or the
/// scheduler's reason for a pod not scheduled.
fn describe_unready_pod(pod: &Pod) -> Option<String> {
    let why = match readiness::pod(pod) {
        Readiness::Ready => return None,
        Readiness::Pending(why) | Readiness::Failed(why) => why,
    };
    let status = pod.status.as_ref();
    let unscheduled = status
        .and_then(|status| status.conditions.as_ref())
        .and_then(|conditions| {
            conditions
                .iter()
                .find(|c| c.type_ == "PodScheduled" && c.status == "False")
        })
        .map(|c| format!("not scheduled: {}", c.message.clone().unwrap_or_default()));
    Some(format!(
        "pod {} ({}): {}",
        pod.metadata.name.clone().unwrap_or_default(),
        status
            .and_then(|status| status.phase.clone())
            .unwrap_or_default(),
        unscheduled.unwrap_or(why)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(labels: &[(&str, &str)]) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {
                "name": "p",
                "labels": labels.iter().copied().collect::<std::collections::BTreeMap<_, _>>(),
            },
        }))
        .unwrap()
    }

    fn workload_selector(selector: serde_json::Value) -> PodSelector {
        let selector: LabelSelector = serde_json::from_value(selector).unwrap();
        PodSelector::Labels(Selector::try_from(selector).unwrap())
    }

    #[test]
    fn match_expressions_select_as_the_controllers_do() {
        let selector = workload_selector(serde_json::json!({
            "matchLabels": {"app": "api"},
            "matchExpressions": [{"key": "track", "operator": "In", "values": ["stable"]}],
        }));
        assert!(selector.matches(&pod(&[("app", "api"), ("track", "stable")])));
        assert!(!selector.matches(&pod(&[("app", "api"), ("track", "canary")])));
        assert!(!selector.matches(&pod(&[("app", "api")])));
    }

    #[test]
    fn an_empty_selector_selects_no_pod() {
        let selector = workload_selector(serde_json::json!({}));
        assert!(!selector.matches(&pod(&[("app", "api")])));
    }

    fn stopping_pod(name: &str, app: &str) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {
                "name": name,
                "namespace": "ns",
                "labels": {"app": app},
                "deletionTimestamp": "2026-12-07T00:00:00Z",
            },
        }))
        .unwrap()
    }

    #[test]
    fn a_stopping_pod_holds_the_rollout_unless_a_waited_service_unroutes_it() {
        let web = workload_selector(serde_json::json!({"matchLabels": {"app": "web"}}));
        let worker = workload_selector(serde_json::json!({"matchLabels": {"app": "worker"}}));
        let service = workload_selector(serde_json::json!({"matchLabels": {"app": "web"}}));
        let pods = [
            stopping_pod("web-old", "web"),
            stopping_pod("worker-old", "worker"),
        ];
        let deployments = [
            Workload::new("Deployment", "ns", "web"),
            Workload::new("Deployment", "ns", "worker"),
        ];

        // Without the Service: both earlier rollouts hold the wait.
        let selectors = [("ns", web), ("ns", worker)];
        let pending = earlier_rollouts_stopping(&deployments, &selectors, &pods);
        assert_eq!(pending.len(), 2, "{pending:?}");

        // With the Service selecting `web` waited too: its routes decide for
        // `web-old`; the worker, which no Service fronts, still holds it.
        let mut workloads = deployments.to_vec();
        workloads.push(Workload::new("Service", "ns", "web"));
        let [(_, web), (_, worker)] = selectors;
        let selectors = [("ns", web), ("ns", worker), ("ns", service)];
        let pending = earlier_rollouts_stopping(&workloads, &selectors, &pods);
        assert_eq!(pending.len(), 1, "{pending:?}");
        assert!(pending[0].contains("worker-old"), "{pending:?}");
    }
}
