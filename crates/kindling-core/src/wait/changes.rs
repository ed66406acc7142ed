//! Wakes a wait when something it judges by changes: the pods, the
//! EndpointSlices and the waited kinds of its namespaces are watched, so a
//! transition (a container exited, a pod became ready, an endpoint listed)
//! is looked at when the API server reports it instead of at the next poll.
//! The poll stays as the fallback: a watch that fails only makes the wait
//! as slow as it was without one.

use std::collections::BTreeSet;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Client;
use kube::api::Api;
use kube::runtime::{WatchStreamExt as _, watcher};
use serde::de::DeserializeOwned;
use tokio::sync::Notify;
use tokio::task::AbortHandle;

use super::Workload;

/// The watches of one wait; dropping it stops them.
pub(super) struct Changes {
    changed: Arc<Notify>,
    watches: Vec<AbortHandle>,
}

impl Changes {
    /// Watches what judging `workloads` reads, in their namespaces.
    pub(super) fn of(client: &Client, workloads: &[Workload]) -> Self {
        let changed = Arc::new(Notify::new());
        let namespaces: BTreeSet<&str> = workloads.iter().map(|w| w.namespace.as_str()).collect();
        let kinds: BTreeSet<&str> = workloads.iter().map(|w| w.kind.as_str()).collect();
        let mut watches = Vec::new();
        for namespace in namespaces {
            let mut watch = |spawned: Option<AbortHandle>| watches.extend(spawned);
            watch(spawn::<Pod>(client, namespace, &changed));
            if kinds.contains("Service") {
                watch(spawn::<EndpointSlice>(client, namespace, &changed));
            }
            if kinds.contains("Deployment") {
                watch(spawn::<Deployment>(client, namespace, &changed));
            }
            if kinds.contains("StatefulSet") {
                watch(spawn::<StatefulSet>(client, namespace, &changed));
            }
            if kinds.contains("DaemonSet") {
                watch(spawn::<DaemonSet>(client, namespace, &changed));
            }
            if kinds.contains("Job") {
                watch(spawn::<Job>(client, namespace, &changed));
            }
        }
        Changes { changed, watches }
    }

    /// Returns at the next change (one since the last call counts), or
    /// after `at_most`.
    pub(super) async fn next(&self, at_most: Duration) {
        let _ = tokio::time::timeout(at_most, self.changed.notified()).await;
    }
}

impl Drop for Changes {
    fn drop(&mut self) {
        for watch in &self.watches {
            watch.abort();
        }
    }
}

/// A task telling `changed` of every change to a `K` of `namespace`; none
/// outside a runtime.
fn spawn<K>(client: &Client, namespace: &str, changed: &Arc<Notify>) -> Option<AbortHandle>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Debug
        + Send
        + 'static,
    K::DynamicType: Default,
{
    let runtime = tokio::runtime::Handle::try_current().ok()?;
    let api = Api::<K>::namespaced(client.clone(), namespace);
    let changed = Arc::clone(changed);
    let task = runtime.spawn(async move {
        let mut events = watcher(api, watcher::Config::default())
            .default_backoff()
            .boxed();
        while let Some(event) = events.next().await {
            if let Ok(watcher::Event::Apply(_) | watcher::Event::Delete(_)) = event {
                changed.notify_one();
            }
        }
    });
    Some(task.abort_handle())
}
