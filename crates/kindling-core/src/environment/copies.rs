//! A copy of the suite's whole stack in a namespace of its own, for a test
//! that breaks something (scales a database to zero, say) without
//! disturbing the tests that run beside it on the suite's namespace.

use std::collections::BTreeSet;
use std::sync::Mutex;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams};

use super::{DEFAULT_WAIT_TIMEOUT, Environment, EnvironmentError};
use crate::deploy::namespace::{self, NamespaceError};
use crate::deploy::{read_manifests, resolve_and_check, scope_to_namespace};
use crate::wait::Waiter;

impl Environment {
    /// The same stack (every stage, the same images, fresh secrets)
    /// deployed into `namespace`, made for it and labelled with `suite` and
    /// `run_id`; returns an environment for that namespace. Objects whose
    /// manifests name a namespace of their own are applied as written.
    /// Delete it with [`Environment::delete_namespace`] (garbage collection
    /// takes it otherwise, once its heartbeat is older than the grace).
    pub async fn copy_into(
        &self,
        namespace: &str,
        suite: &str,
        run_id: &str,
    ) -> Result<Environment, EnvironmentError> {
        let client = self.client().await?;
        namespace::ensure_namespace(&client, namespace, suite, run_id).await?;
        super::session::enter(
            self.provider.kind(),
            self.provider.cluster(),
            &client,
            namespace,
        )
        .await;
        remember_copy(&self.namespace, namespace);
        let mut copy = self.clone();
        copy.namespace = namespace.to_owned();
        for (_, in_namespace, _) in &mut copy.workloads {
            if *in_namespace == self.namespace {
                *in_namespace = namespace.to_owned();
            }
        }
        let labels = namespace::object_labels(suite, run_id);
        let ca =
            super::prepare_namespace(&client, namespace, &labels, &self.secrets, &self.tls).await?;
        let bundle = ca.as_ref().map(|ca| ca.ca_bundle());
        let images = self.delivered_images();
        let probe = copy
            .provider()
            .is_ok_and(|provider| provider.routes_service_addresses());
        let waiter = Waiter::new(
            client.clone(),
            copy.node_stores().await,
            DEFAULT_WAIT_TIMEOUT,
        )
        .probe_services(probe);
        for stage in &self.stages {
            let mut manifests = read_manifests(&stage.paths)?;
            resolve_and_check(&mut manifests, &images)?;
            scope_to_namespace(&mut manifests, namespace, bundle.as_deref()).map_err(Box::new)?;
            crate::deploy::mark_cluster_objects(&mut manifests, namespace, suite);
            super::apply_and_wait(&client, namespace, &mut manifests, &waiter).await?;
        }
        Ok(copy)
    }

    /// Deletes this environment's namespace and everything in it (not
    /// waiting for it to go). For copies made by [`Environment::copy_into`].
    pub async fn delete_namespace(&self) -> Result<(), EnvironmentError> {
        let client = self.client().await?;
        match Api::<Namespace>::all(client.clone())
            .delete(&self.namespace, &DeleteParams::background())
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(response)) if response.code == 404 => {}
            Err(source) => {
                return Err(NamespaceError {
                    action: "delete",
                    namespace: self.namespace.clone(),
                    source,
                }
                .into());
            }
        }
        // Its webhook configurations and bindings go with it.
        crate::deploy::collect_cluster_garbage(&client).await?;
        Ok(())
    }
}

/// The copies this process made: (namespace copied, the copy's namespace).
/// A failing test's artifacts cover its copies too: a test that breaks
/// something does it in a copy, so that is where the evidence is.
static COPIES: Mutex<BTreeSet<(String, String)>> = Mutex::new(BTreeSet::new());

fn remember_copy(original: &str, copy: &str) {
    COPIES
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .insert((original.to_owned(), copy.to_owned()));
}

/// The namespaces of the copies of `original` made by this process.
pub(super) fn copies_of(original: &str) -> Vec<String> {
    COPIES
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .iter()
        .filter(|(from, _)| from == original)
        .map(|(_, copy)| copy.clone())
        .collect()
}

impl Environment {
    /// The suite's stack copied into a namespace of the calling test's own
    /// (`<prefix>-<run>-<test hash>`, [`crate::TestContext::unique_name`]),
    /// for a test that breaks something on purpose; see
    /// [`Environment::copy_into`]. Call it from the test's body (the harness
    /// knows the test there, not on tasks the test spawned).
    pub async fn isolated_copy(&self, prefix: &str) -> Result<Environment, EnvironmentError> {
        let Some(test) = crate::current_test() else {
            return Err(EnvironmentError::NotInATest {
                what: "isolated_copy",
            });
        };
        let namespace = test.unique_name(prefix);
        self.copy_into(&namespace, &test.suite, &test.run_id).await
    }
}
