//! After a setup, each admission webhook the environment applied is called
//! once through the API server, so the first test does not meet a webhook
//! the API server cannot reach yet: a Deployment is ready before the node
//! that runs the API server routes its Service (kube-proxy syncs after
//! the endpoints change). The call is a server-side dry run of an empty
//! object of the webhook's first rule, in the suite's namespace.

use std::time::{Duration, Instant};

use kube::Client;
use kube::api::{Api, DynamicObject, PostParams};
use kube::core::GroupVersion;
use kube::discovery::{ApiResource, Scope, pinned_group};
use serde_json::Value;

use super::Manifest;
use super::apply::ApplyError;
use super::webhook_failure::WebhookFailure;

/// How long a webhook may stay unreachable after its workload is ready.
const REACHABLE_WITHIN: Duration = Duration::from_secs(60);

/// A resource a webhook intercepts on CREATE: `(apiVersion, plural)`.
fn intercepted(webhook: &Value) -> Option<(String, String)> {
    webhook["clientConfig"]["service"].as_object()?;
    webhook["rules"].as_array()?.iter().find_map(|rule| {
        let creates = rule["operations"]
            .as_array()?
            .iter()
            .any(|operation| operation == "CREATE" || operation == "*");
        let group = rule["apiGroups"].as_array()?.first()?.as_str()?;
        let version = rule["apiVersions"].as_array()?.first()?.as_str()?;
        let resource = rule["resources"]
            .as_array()?
            .iter()
            .filter_map(Value::as_str)
            .find(|resource| !resource.contains('/') && !resource.contains('*'))?;
        if !creates || group.contains('*') || version.contains('*') {
            return None;
        }
        let api_version = if group.is_empty() {
            version.to_owned()
        } else {
            format!("{group}/{version}")
        };
        Some((api_version, resource.to_owned()))
    })
}

/// The webhooks of `manifests` that can be probed: `(configuration, webhook
/// name, apiVersion, plural)`.
fn probes(manifests: &[Manifest]) -> Vec<(String, String, String, String)> {
    manifests
        .iter()
        .filter(|manifest| {
            matches!(
                manifest.kind(),
                "MutatingWebhookConfiguration" | "ValidatingWebhookConfiguration"
            )
        })
        .flat_map(|manifest| {
            manifest.object["webhooks"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|webhook| {
                    let (api_version, plural) = intercepted(webhook)?;
                    Some((
                        manifest.name().to_owned(),
                        webhook["name"].as_str().unwrap_or_default().to_owned(),
                        api_version,
                        plural,
                    ))
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The served resource `plural` of `api_version`, if any.
async fn resource(
    client: &Client,
    api_version: &str,
    plural: &str,
) -> Result<Option<(ApiResource, Scope)>, ApplyError> {
    let Ok(version) = api_version.parse::<GroupVersion>() else {
        return Ok(None);
    };
    let group = pinned_group(client, &version)
        .await
        .map_err(|source| ApplyError::Request {
            action: format!("discover the resources of `{api_version}`"),
            source,
        })?;
    Ok(group
        .versioned_resources(&version.version)
        .into_iter()
        .find(|(resource, _)| resource.plural == plural)
        .map(|(resource, capabilities)| (resource, capabilities.scope)))
}

/// Calls every webhook of `manifests` once through the API server, waiting
/// while it answers that the webhook cannot be reached; fails naming the
/// webhook, its Service and why when it stays so. A webhook whose rules
/// give nothing to create, or whose call the object's own validation
/// stops first, is taken as it is.
pub async fn await_reachable(
    client: &Client,
    manifests: &[Manifest],
    namespace: &str,
) -> Result<(), ApplyError> {
    for (configuration, webhook, api_version, plural) in probes(manifests) {
        let Some((resource, scope)) = resource(client, &api_version, &plural).await? else {
            continue;
        };
        let api: Api<DynamicObject> = match scope {
            Scope::Namespaced => Api::namespaced_with(client.clone(), namespace, &resource),
            Scope::Cluster => Api::all_with(client.clone(), &resource),
        };
        let mut probe = DynamicObject::new("", &resource);
        probe.metadata.name = None;
        probe.metadata.generate_name = Some("kindling-webhook-probe-".to_owned());
        if matches!(scope, Scope::Namespaced) {
            probe.metadata.namespace = Some(namespace.to_owned());
        }
        let params = PostParams {
            dry_run: true,
            ..PostParams::default()
        };
        let deadline = Instant::now() + REACHABLE_WITHIN;
        loop {
            let unreachable = match api.create(&params, &probe).await {
                Err(kube::Error::Api(response)) => WebhookFailure::parse(&response.message)
                    .filter(|failure| failure.is_unreachable()),
                _ => None,
            };
            match unreachable {
                None => break,
                Some(failure) if Instant::now() > deadline => {
                    return Err(ApplyError::Webhook {
                        origin: format!("webhook `{webhook}` of `{configuration}`"),
                        kind: resource.kind.clone(),
                        object: format!("{namespace}/<dry-run probe>"),
                        failure: Box::new(failure),
                    });
                }
                Some(_) => tokio::time::sleep(Duration::from_millis(250)).await,
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(object: Value) -> Manifest {
        Manifest {
            file: "webhooks.yaml".into(),
            index: 0,
            line: 1,
            object,
        }
    }

    #[test]
    fn the_first_created_resource_of_each_service_webhook_is_probed() {
        let manifests = [manifest(serde_json::json!({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "MutatingWebhookConfiguration",
            "metadata": {"name": "team"},
            "webhooks": [
                {"name": "a.team.dev", "clientConfig": {"service": {"name": "hook", "namespace": "ns"}},
                 "rules": [
                    {"operations": ["UPDATE"], "apiGroups": ["x.dev"], "apiVersions": ["v1"], "resources": ["things"]},
                    {"operations": ["CREATE", "UPDATE"], "apiGroups": ["team.dev"], "apiVersions": ["v1alpha1"], "resources": ["widgets/status", "widgets"]}
                 ]},
                {"name": "url.team.dev", "clientConfig": {"url": "https://example.com"},
                 "rules": [{"operations": ["*"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}]},
                {"name": "core.team.dev", "clientConfig": {"service": {"name": "hook", "namespace": "ns"}},
                 "rules": [{"operations": ["*"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["configmaps"]}]},
                {"name": "any.team.dev", "clientConfig": {"service": {"name": "hook", "namespace": "ns"}},
                 "rules": [{"operations": ["CREATE"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*"]}]}
            ]
        }))];
        assert_eq!(
            probes(&manifests),
            vec![
                (
                    "team".to_owned(),
                    "a.team.dev".to_owned(),
                    "team.dev/v1alpha1".to_owned(),
                    "widgets".to_owned()
                ),
                (
                    "team".to_owned(),
                    "core.team.dev".to_owned(),
                    "v1".to_owned(),
                    "configmaps".to_owned()
                ),
            ]
        );
    }
}
