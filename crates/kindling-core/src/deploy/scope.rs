//! Cluster-scoped objects that belong to one suite's namespace, made to
//! stay there: a suite's namespace differs per suite and run, and suites
//! side by side must neither overwrite each other's cluster-scoped objects
//! nor intercept each other's requests.
//!
//! - A ClusterRoleBinding's ServiceAccount subjects without a namespace
//!   get the suite's, and the binding's name gets `-<namespace>`.
//! - A Mutating or Validating webhook configuration gets `-<namespace>` in
//!   its name; each webhook a `namespaceSelector` for the suite's namespace
//!   only, its Service the suite's namespace when it names none, and
//!   `caBundle: kindling:ca` the environment's CA. A webhook calling a
//!   Service of the suite with no `caBundle` at all is refused.
//! - A CustomResourceDefinition's conversion webhook gets the same Service
//!   namespace and `caBundle` handling (CRDs are shared, not renamed).

use serde_json::{Value, json};

use super::manifest::Manifest;
use crate::tls::CA_BUNDLE_PLACEHOLDER;

/// The label every namespace carries with its own name.
const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// A cluster-scoped object cannot be tied to the suite's namespace.
#[derive(Debug, thiserror::Error)]
pub enum ScopeError {
    /// A webhook's `caBundle` is the placeholder `kindling:ca` but the
    /// environment makes no CA.
    #[error(
        "{origin}: webhook `{webhook}` of {kind} `{name}` uses `caBundle: {CA_BUNDLE_PLACEHOLDER}`, but the environment makes no TLS certificate: add `EnvironmentBuilder::tls(TlsSecret::for_service(\"{service}\"))`"
    )]
    NoCertificateAuthority {
        /// Where the object was read: file, document and line.
        origin: String,
        /// The object's kind.
        kind: String,
        /// The object's name, as the manifest gives it.
        name: String,
        /// The webhook's name (`conversion` for a CRD's conversion webhook).
        webhook: String,
        /// The Service the webhook calls, or `(a URL)` when it calls a URL.
        service: String,
    },
    /// A webhook calls a Service in the suite's namespace but has no
    /// `caBundle`, so the API server could not trust it.
    #[error(
        "{origin}: webhook `{webhook}` of {kind} `{name}` calls Service `{service}` of the suite with no `caBundle`: the API server could not trust it; set `caBundle: {CA_BUNDLE_PLACEHOLDER}`"
    )]
    NoCaBundle {
        /// Where the object was read: file, document and line.
        origin: String,
        /// The object's kind.
        kind: String,
        /// The object's name, as the manifest gives it.
        name: String,
        /// The webhook's name (`conversion` for a CRD's conversion webhook).
        webhook: String,
        /// The Service the webhook calls.
        service: String,
    },
}

/// Ties `manifests` to `namespace` (see the module's documentation);
/// `ca_bundle` is the environment's CA as a `caBundle` wants it, if it
/// made one.
pub fn scope_to_namespace(
    manifests: &mut [Manifest],
    namespace: &str,
    ca_bundle: Option<&str>,
) -> Result<(), ScopeError> {
    for manifest in manifests.iter_mut() {
        match manifest.kind() {
            "ClusterRoleBinding" => scope_binding(manifest, namespace),
            "MutatingWebhookConfiguration" | "ValidatingWebhookConfiguration" => {
                scope_webhooks(manifest, namespace, ca_bundle)?
            }
            "CustomResourceDefinition" => scope_conversion(manifest, namespace, ca_bundle)?,
            _ => {}
        }
    }
    Ok(())
}

fn rename(manifest: &mut Manifest, namespace: &str) {
    let name = format!("{}-{namespace}", manifest.name());
    manifest.object["metadata"]["name"] = Value::from(name);
}

fn scope_binding(manifest: &mut Manifest, namespace: &str) {
    let mut scoped = false;
    // `pointer_mut`, not indexing: indexing would add the fields it looks for.
    if let Some(subjects) = manifest
        .object
        .pointer_mut("/subjects")
        .and_then(Value::as_array_mut)
    {
        for subject in subjects {
            if subject["kind"] == "ServiceAccount" && subject["namespace"].as_str().is_none() {
                subject["namespace"] = Value::from(namespace);
                scoped = true;
            }
        }
    }
    if scoped {
        rename(manifest, namespace);
    }
}

/// A webhook client's Service and `caBundle`, resolved for the suite.
struct Client<'a> {
    origin: String,
    kind: String,
    name: String,
    webhook: String,
    namespace: &'a str,
    ca_bundle: Option<&'a str>,
}

impl Client<'_> {
    fn resolve(&self, config: &mut Value) -> Result<(), ScopeError> {
        let Some(service) = config
            .get_mut("service")
            .filter(|service| service.is_object())
        else {
            // A URL: the caller handles its own trust.
            if config["caBundle"] == CA_BUNDLE_PLACEHOLDER {
                return self.bundle(config, "(a URL)");
            }
            return Ok(());
        };
        if service["namespace"].as_str().is_none() {
            service["namespace"] = Value::from(self.namespace);
        }
        let ours = service["namespace"] == self.namespace;
        let service_name = service["name"].as_str().unwrap_or_default().to_owned();
        match config["caBundle"].as_str() {
            Some(CA_BUNDLE_PLACEHOLDER) => self.bundle(config, &service_name),
            None | Some("") if ours => Err(ScopeError::NoCaBundle {
                origin: self.origin.clone(),
                kind: self.kind.clone(),
                name: self.name.clone(),
                webhook: self.webhook.clone(),
                service: service_name,
            }),
            _ => Ok(()),
        }
    }

    fn bundle(&self, config: &mut Value, service: &str) -> Result<(), ScopeError> {
        match self.ca_bundle {
            Some(bundle) => {
                config["caBundle"] = Value::from(bundle);
                Ok(())
            }
            None => Err(ScopeError::NoCertificateAuthority {
                origin: self.origin.clone(),
                kind: self.kind.clone(),
                name: self.name.clone(),
                webhook: self.webhook.clone(),
                service: service.to_owned(),
            }),
        }
    }
}

fn scope_webhooks(
    manifest: &mut Manifest,
    namespace: &str,
    ca_bundle: Option<&str>,
) -> Result<(), ScopeError> {
    let origin = manifest.origin().to_string();
    let (kind, name) = (manifest.kind().to_owned(), manifest.name().to_owned());
    if let Some(webhooks) = manifest
        .object
        .pointer_mut("/webhooks")
        .and_then(Value::as_array_mut)
    {
        for webhook in webhooks {
            let client = Client {
                origin: origin.clone(),
                kind: kind.clone(),
                name: name.clone(),
                webhook: webhook["name"].as_str().unwrap_or_default().to_owned(),
                namespace,
                ca_bundle,
            };
            if webhook["clientConfig"].is_object() {
                client.resolve(&mut webhook["clientConfig"])?;
            }
            only_in(&mut webhook["namespaceSelector"], namespace);
        }
    }
    rename(manifest, namespace);
    Ok(())
}

/// Narrows a namespace selector to `namespace`, keeping what it selected.
fn only_in(selector: &mut Value, namespace: &str) {
    if !selector.is_object() {
        *selector = json!({});
    }
    let expression = json!({"key": NAMESPACE_NAME_LABEL, "operator": "In", "values": [namespace]});
    match selector["matchExpressions"].as_array_mut() {
        Some(expressions) => expressions.push(expression),
        None => selector["matchExpressions"] = json!([expression]),
    }
}

fn scope_conversion(
    manifest: &mut Manifest,
    namespace: &str,
    ca_bundle: Option<&str>,
) -> Result<(), ScopeError> {
    let origin = manifest.origin().to_string();
    let name = manifest.name().to_owned();
    let Some(config) = manifest
        .object
        .pointer_mut("/spec/conversion/webhook/clientConfig")
        .filter(|config| config.is_object())
    else {
        return Ok(());
    };
    Client {
        origin,
        kind: "CustomResourceDefinition".to_owned(),
        name,
        webhook: "conversion".to_owned(),
        namespace,
        ca_bundle,
    }
    .resolve(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::manifest::parse_manifests;
    use std::path::Path;

    fn parse(text: &str) -> Vec<Manifest> {
        parse_manifests(Path::new("objects.yaml"), text).unwrap()
    }

    #[test]
    fn service_account_bindings_are_tied_to_the_namespace() {
        let mut manifests = parse(
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: reviewer}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: system:auth-delegator}\nsubjects: [{kind: ServiceAccount, name: api}, {kind: User, name: alice}]\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: fixed}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: view}\nsubjects: [{kind: ServiceAccount, name: api, namespace: elsewhere}]\n",
        );
        scope_to_namespace(&mut manifests, "suite-1", None).unwrap();
        assert_eq!(manifests[0].name(), "reviewer-suite-1");
        assert_eq!(manifests[0].object["subjects"][0]["namespace"], "suite-1");
        assert!(manifests[0].object["subjects"][1]["namespace"].is_null());
        assert_eq!(
            manifests[1].name(),
            "fixed",
            "an explicit namespace is kept"
        );
    }

    const WEBHOOKS: &str = "apiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingWebhookConfiguration\nmetadata: {name: guard}\nwebhooks:\n- name: a.guard.dev\n  clientConfig: {service: {name: hook, path: /a}, caBundle: kindling:ca}\n- name: b.guard.dev\n  namespaceSelector: {matchLabels: {team: x}}\n  clientConfig: {service: {name: hook, path: /b}, caBundle: kindling:ca}\n- name: c.guard.dev\n  clientConfig: {url: 'https://example.invalid/c'}\n";

    #[test]
    fn every_webhook_gets_the_bundle_and_only_the_suites_namespace() {
        let mut manifests = parse(WEBHOOKS);
        scope_to_namespace(&mut manifests, "suite-1", Some("Q0E=")).unwrap();
        let object = &manifests[0].object;
        assert_eq!(manifests[0].name(), "guard-suite-1");
        for index in 0..2 {
            let webhook = &object["webhooks"][index];
            assert_eq!(webhook["clientConfig"]["caBundle"], "Q0E=", "{webhook}");
            assert_eq!(webhook["clientConfig"]["service"]["namespace"], "suite-1");
        }
        for index in 0..3 {
            let selector = &object["webhooks"][index]["namespaceSelector"];
            assert_eq!(
                selector["matchExpressions"][0],
                json!({"key": NAMESPACE_NAME_LABEL, "operator": "In", "values": ["suite-1"]}),
                "{selector}"
            );
        }
        assert_eq!(
            object["webhooks"][1]["namespaceSelector"]["matchLabels"]["team"],
            "x"
        );
    }

    #[test]
    fn objects_without_the_fields_looked_for_are_left_as_they_are() {
        let text = "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {name: a.b.dev}\nspec: {group: b.dev}\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: empty}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: view}\n";
        let mut manifests = parse(text);
        let before: Vec<Value> = manifests.iter().map(|m| m.object.clone()).collect();
        scope_to_namespace(&mut manifests, "suite-1", None).unwrap();
        let after: Vec<Value> = manifests.iter().map(|m| m.object.clone()).collect();
        assert_eq!(before, after);
    }

    #[test]
    fn a_missing_bundle_or_certificate_authority_is_named() {
        let mut manifests = parse(WEBHOOKS);
        let error = scope_to_namespace(&mut manifests, "suite-1", None).unwrap_err();
        let text = error.to_string();
        assert!(
            text.contains("webhook `a.guard.dev`")
                && text.contains("TlsSecret::for_service(\"hook\")"),
            "{text}"
        );
        let mut manifests = parse(&WEBHOOKS.replacen(", caBundle: kindling:ca", "", 1));
        let error = scope_to_namespace(&mut manifests, "suite-1", Some("Q0E=")).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("calls Service `hook` of the suite with no `caBundle`"),
            "{error}"
        );
    }
}
