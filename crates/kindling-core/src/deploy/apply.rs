//! Server-side apply of manifests through discovery, in dependency order:
//! namespaces, CRDs (then Established), RBAC, configuration, Services,
//! workloads, webhook configurations last. Every object is checked with a
//! server-side dry run before the first one (past namespaces) is applied.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::GroupVersion;
use kube::discovery::{ApiCapabilities, ApiResource, Scope, pinned_group};

use super::adoption::{self, Ownership};
use super::changes::ObjectKey;
use super::manifest::Manifest;

/// The field manager of every apply.
pub const FIELD_MANAGER: &str = "kindling";

/// How long a CRD may take to become Established.
const CRD_TIMEOUT: Duration = Duration::from_secs(60);

/// Applying manifests failed.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// An object's kind is neither served by the cluster nor defined by a
    /// CustomResourceDefinition among the manifests.
    #[error(
        "{origin}: kind `{kind}` (apiVersion `{api_version}`) of object `{name}` is not served by the cluster: check the kind and apiVersion, or add the CustomResourceDefinition that defines it to the manifests"
    )]
    UnknownKind {
        /// Where the object was read: file, document and line.
        origin: String,
        /// The object's kind.
        kind: String,
        /// The object's `apiVersion`.
        api_version: String,
        /// The object's name.
        name: String,
    },
    /// The API server refused the object (in the dry run or the apply) for a
    /// reason other than an admission webhook it could not call.
    #[error("{origin}: the API server refused {kind} `{object}`: {message}")]
    Rejected {
        /// Where the object was read: file, document and line.
        origin: String,
        /// The object's kind.
        kind: String,
        /// `namespace/name`, or `name` for a cluster-scoped object.
        object: String,
        /// The API server's message.
        message: String,
    },
    /// The API server refused the object because it could not call an admission
    /// webhook.
    #[error("{origin}: {kind} `{object}` was refused because {failure}")]
    Webhook {
        /// Where the object was read: file, document and line.
        origin: String,
        /// The object's kind.
        kind: String,
        /// `namespace/name`, or `name` for a cluster-scoped object.
        object: String,
        /// Which webhook, which Service and why, as read from the API server's
        /// message.
        failure: Box<super::webhook_failure::WebhookFailure>,
    },
    /// A request to the API server failed other than by refusing an object:
    /// discovery, an apply that got no answer, reading or deleting an object.
    #[error("failed to {action}")]
    Request {
        /// What was being done, in words, e.g. discovering the resources of
        /// an `apiVersion`.
        action: String,
        /// The API client's error.
        #[source]
        source: kube::Error,
    },
    /// Watching an object for a condition failed.
    #[error("failed to {action}")]
    Watch {
        /// What was being watched, in words.
        action: String,
        /// The watcher's error.
        #[source]
        source: kube::runtime::wait::Error,
    },
    /// An object outside the suite's namespace exists, kindling did not
    /// create it, and the manifest would change it.
    #[error(transparent)]
    NotOurs(Box<NotOurs>),
    /// A CustomResourceDefinition applied was not Established within a minute.
    #[error(
        "CustomResourceDefinition `{name}` was not Established within {seconds}s: {conditions}",
        seconds = CRD_TIMEOUT.as_secs()
    )]
    CrdNotEstablished {
        /// The CustomResourceDefinition's name.
        name: String,
        /// Its conditions when the wait gave up, as `type=status (message)`
        /// joined by `; `.
        conditions: String,
    },
}

/// An object outside the suite's namespace exists, kindling did not
/// create it, and the manifest would change it.
#[derive(Debug, thiserror::Error)]
#[error(
    "{origin}: {kind} `{object}` exists and kindling did not create it (its field managers: {}), and the manifest differs from it: {}. kindling never changes or deletes an object it did not create: give the manifest's object another name, or use the existing one as it is with `EnvironmentBuilder::accept_existing(\"{kind}\", \"{name}\")`",
    if managers.is_empty() { "none recorded".to_owned() } else { managers.join(", ") },
    differences.join("; ")
)]
pub struct NotOurs {
    /// Where the object was read: file, document and line.
    pub origin: String,
    /// The object's kind.
    pub kind: String,
    /// The object's name.
    pub name: String,
    /// `namespace/name`, or `name` for a cluster-scoped object.
    pub object: String,
    /// The field managers of the existing object.
    pub managers: Vec<String>,
    /// What the manifest would change: JSON paths, before → after.
    pub differences: Vec<String>,
}

/// What was applied, in order.
#[derive(Debug, Clone)]
pub struct Applied {
    /// The object's kind.
    pub kind: String,
    /// The namespace it was applied in; `None` for a cluster-scoped object.
    pub namespace: Option<String>,
    /// The object's name.
    pub name: String,
    /// Whether an existing object kindling did not create was used as it
    /// is (nothing was written to it).
    pub used_as_is: bool,
}

/// Where a kind of object goes in the apply order.
fn rank(kind: &str) -> u8 {
    match kind {
        "Namespace" => 0,
        "CustomResourceDefinition" => 1,
        "ServiceAccount" | "Role" | "ClusterRole" | "RoleBinding" | "ClusterRoleBinding"
        | "PriorityClass" | "ResourceQuota" | "LimitRange" | "StorageClass" => 2,
        "ConfigMap" | "Secret" | "PersistentVolume" | "PersistentVolumeClaim" => 3,
        "Service" => 4,
        "MutatingWebhookConfiguration"
        | "ValidatingWebhookConfiguration"
        | "ValidatingAdmissionPolicy"
        | "ValidatingAdmissionPolicyBinding" => 6,
        _ => 5,
    }
}

/// Resolves kinds through discovery, one request per group version.
struct Kinds {
    client: Client,
    groups: BTreeMap<String, Vec<(ApiResource, ApiCapabilities)>>,
}

impl Kinds {
    async fn resolve(
        &mut self,
        manifest: &Manifest,
    ) -> Result<Option<(ApiResource, Scope)>, ApplyError> {
        self.resolve_kind(manifest.api_version(), manifest.kind())
            .await
    }

    async fn resolve_kind(
        &mut self,
        api_version: &str,
        kind: &str,
    ) -> Result<Option<(ApiResource, Scope)>, ApplyError> {
        let api_version = api_version.to_owned();
        if !self.groups.contains_key(&api_version) {
            let resources = match api_version.parse::<GroupVersion>() {
                Ok(version) => match pinned_group(&self.client, &version).await {
                    Ok(group) => group.versioned_resources(&version.version),
                    Err(kube::Error::Api(response)) if response.code == 404 => Vec::new(),
                    Err(source) => {
                        return Err(ApplyError::Request {
                            action: format!("discover the resources of `{api_version}`"),
                            source,
                        });
                    }
                },
                Err(_) => Vec::new(),
            };
            self.groups.insert(api_version.clone(), resources);
        }
        Ok(self.groups[&api_version]
            .iter()
            .find(|(resource, _)| resource.kind == kind)
            .map(|(resource, capabilities)| (resource.clone(), capabilities.scope.clone())))
    }

    fn forget(&mut self, api_version: &str) {
        self.groups.remove(api_version);
    }
}

/// Checks `manifests` without applying anything: every kind is served (or
/// defined by a CRD among them) and every object passes a server-side dry
/// run in `namespace` (objects in namespaces not made yet are judged when
/// applied).
pub async fn dry_run_manifests(
    client: &Client,
    namespace: &str,
    manifests: &[Manifest],
    ownership: &Ownership,
) -> Result<(), ApplyError> {
    let mut manifests = manifests.to_vec();
    let defined_by_crds: Vec<(String, String)> = manifests
        .iter()
        .filter(|manifest| manifest.kind() == "CustomResourceDefinition")
        .flat_map(crd_kinds)
        .collect();
    let mut kinds = Kinds {
        client: client.clone(),
        groups: BTreeMap::new(),
    };
    for manifest in &mut manifests {
        let known = kinds.resolve(manifest).await?;
        let from_crd = defined_by_crds.iter().any(|(api_version, kind)| {
            api_version == manifest.api_version() && kind == manifest.kind()
        });
        match known {
            None if from_crd => {}
            None => {
                return Err(unknown_kind(manifest));
            }
            Some((resource, scope)) => {
                if scope == Scope::Namespaced && manifest.namespace().is_none() {
                    manifest.object["metadata"]["namespace"] = namespace.into();
                }
                apply_one(client, manifest, &resource, &scope, true, ownership).await?;
            }
        }
    }
    Ok(())
}

/// Applies `manifests`, putting namespaced objects without a namespace
/// into `namespace`. Kinds are all resolved, and every object passes a
/// server-side dry run, before anything but namespaces is applied. Objects
/// outside the suite's namespace follow `ownership` (see
/// [`super::adoption`]).
pub async fn apply_manifests(
    client: &Client,
    namespace: &str,
    manifests: &mut [Manifest],
    ownership: &Ownership,
) -> Result<Vec<Applied>, ApplyError> {
    manifests.sort_by_key(|manifest| rank(manifest.kind()));
    let defined_by_crds: Vec<(String, String)> = manifests
        .iter()
        .filter(|manifest| manifest.kind() == "CustomResourceDefinition")
        .flat_map(crd_kinds)
        .collect();
    let mut kinds = Kinds {
        client: client.clone(),
        groups: BTreeMap::new(),
    };
    // Resolve every kind first: an unknown one fails before anything is applied.
    let resolved = resolve_all(&mut kinds, manifests, &defined_by_crds).await?;
    for (manifest, known) in manifests.iter_mut().zip(&resolved) {
        if let Some((_, Scope::Namespaced)) = known
            && manifest.namespace().is_none()
        {
            manifest.object["metadata"]["namespace"] = namespace.into();
        }
    }

    let mut applied = Vec::new();
    // Namespaces first, for real: the dry run of their objects needs them.
    for (manifest, known) in manifests.iter().zip(&resolved) {
        if manifest.kind() == "Namespace"
            && let Some((resource, scope)) = known
        {
            applied.push(apply_one(client, manifest, resource, scope, false, ownership).await?);
        }
    }
    for (manifest, known) in manifests.iter().zip(&resolved) {
        if manifest.kind() != "Namespace"
            && let Some((resource, scope)) = known
        {
            apply_one(client, manifest, resource, scope, true, ownership).await?;
        }
    }
    applied.extend(
        apply_past_namespaces(
            client, namespace, manifests, resolved, &mut kinds, ownership,
        )
        .await?,
    );
    Ok(applied)
}

/// Applies every object of `manifests` but the namespaces, in order, of
/// the kinds `resolved` (a kind a CRD of this apply defines is resolved
/// once served), after the CRDs are Established.
async fn apply_past_namespaces(
    client: &Client,
    namespace: &str,
    manifests: &[Manifest],
    resolved: Vec<Option<(ApiResource, Scope)>>,
    kinds: &mut Kinds,
    ownership: &Ownership,
) -> Result<Vec<Applied>, ApplyError> {
    let mut applied = Vec::new();
    let mut crds_established = false;
    for (manifest, known) in manifests.iter().zip(resolved) {
        if manifest.kind() == "Namespace" {
            continue;
        }
        if rank(manifest.kind()) > 1 && !crds_established {
            wait_for_crds(
                client,
                manifests_of_kind(manifests, "CustomResourceDefinition"),
            )
            .await?;
            crds_established = true;
        }
        let (resource, scope) = match known {
            Some(known) => known,
            None => {
                kinds.forget(manifest.api_version());
                resolve_after_crd(kinds, manifest).await?
            }
        };
        let mut manifest = manifest.clone();
        if scope == Scope::Namespaced && manifest.namespace().is_none() {
            manifest.object["metadata"]["namespace"] = namespace.into();
        }
        applied.push(apply_one(client, &manifest, &resource, &scope, false, ownership).await?);
    }
    if !crds_established {
        wait_for_crds(
            client,
            manifests_of_kind(manifests, "CustomResourceDefinition"),
        )
        .await?;
    }
    Ok(applied)
}

/// The kind of each of `manifests`, in order: `None` for a kind a CRD
/// among them defines (`defined_by_crds`) that is not served yet; fails on
/// a kind neither served nor so defined.
async fn resolve_all(
    kinds: &mut Kinds,
    manifests: &[Manifest],
    defined_by_crds: &[(String, String)],
) -> Result<Vec<Option<(ApiResource, Scope)>>, ApplyError> {
    let mut resolved = Vec::with_capacity(manifests.len());
    for manifest in manifests {
        let known = kinds.resolve(manifest).await?;
        let from_crd = defined_by_crds.iter().any(|(api_version, kind)| {
            api_version == manifest.api_version() && kind == manifest.kind()
        });
        if known.is_none() && !from_crd {
            return Err(unknown_kind(manifest));
        }
        resolved.push(known);
    }
    Ok(resolved)
}

/// A manifest's kind is neither served nor defined by a CRD among them.
fn unknown_kind(manifest: &Manifest) -> ApplyError {
    ApplyError::UnknownKind {
        origin: manifest.origin().to_string(),
        kind: manifest.kind().to_owned(),
        api_version: manifest.api_version().to_owned(),
        name: manifest.name().to_owned(),
    }
}

/// Deletes objects an earlier setup applied that the manifests no longer
/// hold (a key without namespace is in `namespace` when its kind is
/// namespaced). Objects already gone, kinds no longer served, and objects
/// outside `namespace` that kindling did not create are skipped. Returns
/// what it deleted.
pub async fn delete_objects(
    client: &Client,
    namespace: &str,
    keys: &[ObjectKey],
) -> Result<Vec<ObjectKey>, ApplyError> {
    let mut kinds = Kinds {
        client: client.clone(),
        groups: BTreeMap::new(),
    };
    let mut deleted = Vec::new();
    for key in keys {
        let Some((resource, scope)) = kinds.resolve_kind(&key.api_version, &key.kind).await? else {
            continue;
        };
        let object_namespace = match scope {
            Scope::Namespaced => Some(key.namespace.as_deref().unwrap_or(namespace)),
            Scope::Cluster => None,
        };
        let api: Api<DynamicObject> = match object_namespace {
            Some(object_namespace) => {
                Api::namespaced_with(client.clone(), object_namespace, &resource)
            }
            None => Api::all_with(client.clone(), &resource),
        };
        if object_namespace != Some(namespace) {
            let live = api
                .get_opt(&key.name)
                .await
                .map_err(|source| ApplyError::Request {
                    action: format!("read {key} before deleting it"),
                    source,
                })?;
            let ours = live
                .and_then(|live| serde_json::to_value(live).ok())
                .is_some_and(|live| adoption::created_by_kindling(&live));
            if !ours {
                continue;
            }
        }
        match api.delete(&key.name, &DeleteParams::background()).await {
            Ok(_) => deleted.push(key.clone()),
            Err(kube::Error::Api(response)) if response.code == 404 => {}
            Err(source) => {
                return Err(ApplyError::Request {
                    action: format!("delete {key}, which the manifests no longer hold"),
                    source,
                });
            }
        }
    }
    Ok(deleted)
}

fn manifests_of_kind<'a>(
    manifests: &'a [Manifest],
    kind: &'a str,
) -> impl Iterator<Item = &'a Manifest> {
    manifests
        .iter()
        .filter(move |manifest| manifest.kind() == kind)
}

/// The (apiVersion, kind) pairs a CRD manifest defines.
fn crd_kinds(manifest: &Manifest) -> Vec<(String, String)> {
    let spec = &manifest.object["spec"];
    let group = spec["group"].as_str().unwrap_or_default();
    let kind = spec["names"]["kind"].as_str().unwrap_or_default();
    spec["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|version| version["name"].as_str())
        .map(|version| (format!("{group}/{version}"), kind.to_owned()))
        .collect()
}

/// A kind a CRD of this apply defines: discovery may lag the Established
/// condition by a moment.
async fn resolve_after_crd(
    kinds: &mut Kinds,
    manifest: &Manifest,
) -> Result<(ApiResource, Scope), ApplyError> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(found) = kinds.resolve(manifest).await? {
            return Ok(found);
        }
        if Instant::now() > deadline {
            return Err(unknown_kind(manifest));
        }
        kinds.forget(manifest.api_version());
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// How long an apply retries a webhook whose Service does not answer: the
/// Service's endpoints and the node's proxy rules follow a pod's readiness
/// by up to a few seconds.
const WEBHOOK_CATCH_UP: Duration = Duration::from_secs(10);

async fn apply_one(
    client: &Client,
    manifest: &Manifest,
    resource: &ApiResource,
    scope: &Scope,
    dry_run: bool,
    ownership: &Ownership,
) -> Result<Applied, ApplyError> {
    let namespace = match scope {
        Scope::Namespaced => manifest.namespace().map(str::to_owned),
        Scope::Cluster => None,
    };
    let api: Api<DynamicObject> = match &namespace {
        Some(namespace) => Api::namespaced_with(client.clone(), namespace, resource),
        None => Api::all_with(client.clone(), resource),
    };
    if ownership.outside(namespace.as_deref()) {
        let adopted = adopt(&api, manifest, namespace.as_deref(), dry_run, ownership).await?;
        if !matches!(adopted, Adopted::Ours) {
            return Ok(Applied {
                kind: manifest.kind().to_owned(),
                namespace,
                name: manifest.name().to_owned(),
                used_as_is: matches!(adopted, Adopted::AsIs | Adopted::Foreign),
            });
        }
    }
    let mut params = PatchParams::apply(&field_manager(manifest, namespace.as_deref()))
        .force()
        .validation_strict();
    if dry_run {
        params = params.dry_run();
    }
    let outcome = patch_retrying_unreachable_webhooks(&api, manifest, &params).await;
    judge_apply(outcome, manifest, namespace.as_deref(), dry_run)?;
    Ok(Applied {
        kind: manifest.kind().to_owned(),
        namespace,
        name: manifest.name().to_owned(),
        used_as_is: false,
    })
}

/// The field manager that applies `manifest` (in `namespace`, `None` when
/// cluster-scoped).
fn field_manager(manifest: &Manifest, namespace: Option<&str>) -> String {
    // A cluster-scoped object marked by a suite's namespace is applied by
    // that namespace's field manager, so each suite's mark is kept.
    match super::ownership::marked_by(manifest) {
        Some(owner) if namespace.is_none() => super::ownership::field_manager(owner),
        _ => FIELD_MANAGER.to_owned(),
    }
}

/// The server-side apply of `manifest` with `params`, tried again for up
/// to [`WEBHOOK_CATCH_UP`] while an admission webhook it needs does not
/// answer.
async fn patch_retrying_unreachable_webhooks(
    api: &Api<DynamicObject>,
    manifest: &Manifest,
    params: &PatchParams,
) -> Result<DynamicObject, kube::Error> {
    let unreachable_until = Instant::now() + WEBHOOK_CATCH_UP;
    loop {
        let outcome = api
            .patch(manifest.name(), params, &Patch::Apply(&manifest.object))
            .await;
        let unreachable = matches!(&outcome, Err(kube::Error::Api(response))
            if super::webhook_failure::WebhookFailure::parse(&response.message)
                .is_some_and(|failure| failure.is_unreachable()));
        if !unreachable || Instant::now() > unreachable_until {
            break outcome;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The error, if any, the apply `outcome` of `manifest` (in `namespace`)
/// is.
fn judge_apply(
    outcome: Result<DynamicObject, kube::Error>,
    manifest: &Manifest,
    namespace: Option<&str>,
    dry_run: bool,
) -> Result<(), ApplyError> {
    let object = match namespace {
        Some(namespace) => format!("{namespace}/{}", manifest.name()),
        None => manifest.name().to_owned(),
    };
    match outcome {
        Ok(_) => Ok(()),
        // A dry run only judges the object itself: references to objects
        // not applied yet (a ServiceAccount, a namespace) are for the real apply.
        Err(kube::Error::Api(response)) if dry_run && !matches!(response.code, 400 | 422) => Ok(()),
        Err(kube::Error::Api(response)) => {
            if let Some(failure) = super::webhook_failure::WebhookFailure::parse(&response.message)
            {
                return Err(ApplyError::Webhook {
                    origin: manifest.origin().to_string(),
                    kind: manifest.kind().to_owned(),
                    object,
                    failure: Box::new(failure),
                });
            }
            Err(ApplyError::Rejected {
                origin: manifest.origin().to_string(),
                kind: manifest.kind().to_owned(),
                object,
                message: response.message,
            })
        }
        Err(source) => Err(ApplyError::Request {
            action: format!(
                "apply {} `{object}` from {}",
                manifest.kind(),
                manifest.origin()
            ),
            source,
        }),
    }
}

/// What ownership by creation made of an object outside the suite's namespace.
enum Adopted {
    /// It did not exist: kindling created it, with its creation record.
    Created,
    /// kindling created it earlier: applied as usual.
    Ours,
    /// Someone else made it and the manifest matches it: used as it is.
    AsIs,
    /// Someone else made it, the manifest differs, and the suite accepts it.
    Foreign,
}

/// Creates `manifest`'s object if it does not exist (a create that fails
/// if it does: finding it there is not a creation), or decides whether an
/// existing one is kindling's.
async fn adopt(
    api: &Api<DynamicObject>,
    manifest: &Manifest,
    namespace: Option<&str>,
    dry_run: bool,
    ownership: &Ownership,
) -> Result<Adopted, ApplyError> {
    let object = match namespace {
        Some(namespace) => format!("{namespace}/{}", manifest.name()),
        None => manifest.name().to_owned(),
    };
    let live = api
        .get_opt(manifest.name())
        .await
        .map_err(request_error(format!(
            "read {} `{object}`",
            manifest.kind()
        )))?;
    let live = match live {
        Some(live) => live,
        None => match create_with_record(api, manifest, &object, dry_run, ownership).await? {
            Some(found) => found,
            None => return Ok(Adopted::Created),
        },
    };
    let live = serde_json::to_value(&live).unwrap_or_default();
    if adoption::created_by_kindling(&live) {
        return Ok(Adopted::Ours);
    }
    judge_foreign(api, manifest, object, &live, ownership).await
}

/// Creates `manifest`'s object (`object` in messages) with its creation
/// record: `None` once created, or the object someone else made meanwhile.
async fn create_with_record(
    api: &Api<DynamicObject>,
    manifest: &Manifest,
    object: &str,
    dry_run: bool,
    ownership: &Ownership,
) -> Result<Option<DynamicObject>, ApplyError> {
    let created = adoption::with_creation_record(&manifest.object, ownership.creator());
    let created: DynamicObject =
        serde_json::from_value(created).map_err(|error| ApplyError::Rejected {
            origin: manifest.origin().to_string(),
            kind: manifest.kind().to_owned(),
            object: object.to_owned(),
            message: error.to_string(),
        })?;
    let params = PostParams {
        dry_run,
        field_manager: Some(FIELD_MANAGER.to_owned()),
    };
    match api.create(&params, &created).await {
        Ok(_) => Ok(None),
        // Made by someone else meanwhile: judged as found.
        Err(kube::Error::Api(response)) if response.code == 409 => api
            .get(manifest.name())
            .await
            .map(Some)
            .map_err(request_error(format!(
                "read {} `{object}`",
                manifest.kind()
            ))),
        Err(kube::Error::Api(response)) => Err(ApplyError::Rejected {
            origin: manifest.origin().to_string(),
            kind: manifest.kind().to_owned(),
            object: object.to_owned(),
            message: response.message,
        }),
        Err(source) => Err(request_error(format!(
            "create {} `{object}` from {}",
            manifest.kind(),
            manifest.origin()
        ))(source)),
    }
}

/// Whether someone else's `live` object (`object` in messages) may be used
/// as it is: when the manifest would change nothing, or the suite accepts
/// it.
async fn judge_foreign(
    api: &Api<DynamicObject>,
    manifest: &Manifest,
    object: String,
    live: &serde_json::Value,
    ownership: &Ownership,
) -> Result<Adopted, ApplyError> {
    // What would the manifest change? The server's dry run of the apply
    // says, with its defaults filled in as on the live object.
    let plain = adoption::without_marks(&manifest.object);
    let params = PatchParams::apply("kindling-comparison").force().dry_run();
    let would_be = api
        .patch(manifest.name(), &params, &Patch::Apply(&plain))
        .await
        .map_err(request_error(format!(
            "compare {} `{object}` with {}",
            manifest.kind(),
            manifest.origin()
        )))?;
    let would_be = serde_json::to_value(&would_be).unwrap_or_default();
    let differences = adoption::differences(live, &would_be);
    if differences.is_empty() {
        return Ok(Adopted::AsIs);
    }
    if ownership.accepts(manifest.kind(), manifest.name()) {
        tracing::warn!(
            "{} `{object}` exists and kindling did not create it: used as it is, as the suite accepts, although the manifest differs ({})",
            manifest.kind(),
            differences.join("; ")
        );
        return Ok(Adopted::Foreign);
    }
    Err(ApplyError::NotOurs(Box::new(NotOurs {
        origin: manifest.origin().to_string(),
        kind: manifest.kind().to_owned(),
        name: manifest.name().to_owned(),
        object,
        managers: adoption::managers(live),
        differences,
    })))
}

/// The error of a request that failed other than by refusing an object.
fn request_error(action: String) -> impl FnOnce(kube::Error) -> ApplyError {
    move |source| ApplyError::Request { action, source }
}

async fn wait_for_crds(
    client: &Client,
    crds: impl Iterator<Item = &Manifest>,
) -> Result<(), ApplyError> {
    let api = Api::<CustomResourceDefinition>::all(client.clone());
    for crd in crds {
        let established = kube::runtime::wait::await_condition(
            api.clone(),
            crd.name(),
            kube::runtime::conditions::is_crd_established(),
        );
        match tokio::time::timeout(CRD_TIMEOUT, established).await {
            Ok(Ok(_)) => {}
            Ok(Err(source)) => {
                return Err(ApplyError::Watch {
                    action: format!("watch CustomResourceDefinition `{}`", crd.name()),
                    source,
                });
            }
            Err(_elapsed) => {
                let current = api
                    .get(crd.name())
                    .await
                    .map_err(|source| ApplyError::Request {
                        action: format!("read CustomResourceDefinition `{}`", crd.name()),
                        source,
                    })?;
                let conditions = current
                    .status
                    .and_then(|status| status.conditions)
                    .unwrap_or_default();
                return Err(ApplyError::CrdNotEstablished {
                    name: crd.name().to_owned(),
                    conditions: conditions
                        .iter()
                        .map(|c| {
                            format!(
                                "{}={} ({})",
                                c.type_,
                                c.status,
                                c.message.clone().unwrap_or_default()
                            )
                        })
                        .collect::<Vec<_>>()
                        .join("; "),
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apply_order_puts_dependencies_first_and_webhooks_last() {
        let mut kinds = [
            "ValidatingWebhookConfiguration",
            "Deployment",
            "Service",
            "ConfigMap",
            "RoleBinding",
            "CustomResourceDefinition",
            "Namespace",
            "Widget",
        ];
        kinds.sort_by_key(|kind| rank(kind));
        assert_eq!(
            kinds,
            [
                "Namespace",
                "CustomResourceDefinition",
                "RoleBinding",
                "ConfigMap",
                "Service",
                "Deployment",
                "Widget",
                "ValidatingWebhookConfiguration"
            ]
        );
    }
}
