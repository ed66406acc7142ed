//! Wakes a wait when something it judges by changes: the pods, the
//! EndpointSlices and the waited kinds of its namespaces are watched, so a
//! transition (a container exited, a pod became ready, an endpoint listed)
//! is looked at when the API server reports it instead of at the next poll.
//! The poll stays as the fallback: a watch that fails only makes the wait
//! as slow as it was without one. While every watch is listed and
//! healthy the poll slows down, and looks come at most every
//! [`MIN_GAP`]: a pod becoming ready is a burst of changes (its status,
//! the EndpointSlice, the ReplicaSet, the Deployment), and each look
//! reads every waited workload and lists the namespace's pods, which on
//! a busy machine costs the API server more than the wait saves.

use std::collections::BTreeSet;
use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

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

/// How often a wait looks when a watch is missing or failing.
pub(super) const POLL: Duration = Duration::from_millis(250);

/// How often a wait looks when every watch is healthy: a safety net only.
const WATCHED_POLL: Duration = Duration::from_secs(2);

/// The least time between two looks of one wait.
const MIN_GAP: Duration = Duration::from_millis(100);

/// The watches of one wait; dropping it stops them.
pub(super) struct Changes {
    changed: Arc<Notify>,
    watches: Vec<Watch>,
}

/// One watch task and whether its list is complete and it has not failed
/// since.
struct Watch {
    task: AbortHandle,
    healthy: Arc<AtomicBool>,
}

impl Changes {
    /// Watches what judging `workloads` reads, in their namespaces.
    pub(super) fn of(client: &Client, workloads: &[Workload]) -> Self {
        let changed = Arc::new(Notify::new());
        let namespaces: BTreeSet<&str> = workloads.iter().map(|w| w.namespace.as_str()).collect();
        let kinds: BTreeSet<&str> = workloads.iter().map(|w| w.kind.as_str()).collect();
        let mut watches = Vec::new();
        for namespace in namespaces {
            let mut watch = |spawned: Option<Watch>| watches.extend(spawned);
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

    /// Returns at the next change (one since the last call counts), at
    /// the poll, or after `at_most`, and not before [`MIN_GAP`] since
    /// `last_look`.
    pub(super) async fn next(&self, last_look: Instant, at_most: Option<Duration>) {
        let poll = if self.all_healthy() {
            WATCHED_POLL
        } else {
            POLL
        };
        let wait = at_most.map_or(poll, |at_most| at_most.min(poll));
        let _ = tokio::time::timeout(wait, self.changed.notified()).await;
        tokio::time::sleep_until((last_look + MIN_GAP).into()).await;
    }

    fn all_healthy(&self) -> bool {
        !self.watches.is_empty()
            && self
                .watches
                .iter()
                .all(|watch| watch.healthy.load(Ordering::Relaxed))
    }
}

impl Drop for Changes {
    fn drop(&mut self) {
        for watch in &self.watches {
            watch.task.abort();
        }
    }
}

/// A task telling `changed` of every change to a `K` of `namespace`; none
/// outside a runtime.
fn spawn<K>(client: &Client, namespace: &str, changed: &Arc<Notify>) -> Option<Watch>
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
    let healthy = Arc::new(AtomicBool::new(false));
    let watch_healthy = Arc::clone(&healthy);
    let task = runtime.spawn(async move {
        let mut events = watcher(api, watcher::Config::default())
            .default_backoff()
            .boxed();
        while let Some(event) = events.next().await {
            match event {
                Ok(watcher::Event::Apply(_) | watcher::Event::Delete(_)) => changed.notify_one(),
                // A (re)list is complete: what it found may be news.
                Ok(watcher::Event::InitDone) => {
                    watch_healthy.store(true, Ordering::Relaxed);
                    changed.notify_one();
                }
                Ok(watcher::Event::Init | watcher::Event::InitApply(_)) => {}
                Err(_) => watch_healthy.store(false, Ordering::Relaxed),
            }
        }
        watch_healthy.store(false, Ordering::Relaxed);
    });
    Some(Watch {
        task: task.abort_handle(),
        healthy,
    })
}
