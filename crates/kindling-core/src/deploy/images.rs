//! Image placeholders (`image: kindling:<name>`) resolved from the run's
//! delivered images, and the preflight that refuses any image a pod could
//! not start with, before anything is applied.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value;

use super::manifest::Manifest;
use crate::cluster::PullPolicy;
use crate::image::{ImageRef, normalize};

/// The prefix that marks an image placeholder in a manifest.
pub const PLACEHOLDER_PREFIX: &str = "kindling:";

/// The images a run delivered, by logical name, and how pods get them.
#[derive(Debug, Clone)]
pub struct DeliveredImages {
    references: BTreeMap<String, String>,
    pull_policy: PullPolicy,
}

impl DeliveredImages {
    /// The images `images`, by logical name, delivered with `pull_policy`.
    pub fn new(images: &[ImageRef], pull_policy: PullPolicy) -> Self {
        DeliveredImages {
            references: images
                .iter()
                .map(|image| (image.name().to_owned(), image.reference().to_string()))
                .collect(),
            pull_policy,
        }
    }

    /// Logical name → exact reference.
    pub fn references(&self) -> &BTreeMap<String, String> {
        &self.references
    }

    fn holds(&self, reference: &str) -> bool {
        self.references.values().any(|known| known == reference)
    }
}

/// One image a pod could not start with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageProblem {
    /// `deploy/app.yaml document 1 (line 20)`.
    pub origin: String,
    /// `Deployment/api`.
    pub object: String,
    /// The container's name (`?` when it has none; `image` for an image field
    /// outside a pod spec).
    pub container: String,
    /// What is wrong with its image.
    pub kind: ImageProblemKind,
}

/// What is wrong with a container's image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageProblemKind {
    /// A placeholder `kindling:<name>` names no image this run delivered.
    UnknownPlaceholder {
        /// The logical name after `kindling:`.
        name: String,
        /// The logical names of the images the run did deliver.
        known: Vec<String>,
    },
    /// A `latest` (or untagged) reference with `imagePullPolicy: Never`: a
    /// mutable tag cannot name what was loaded.
    LatestWithNever {
        /// The reference as the manifest writes it.
        image: String,
    },
    /// A literal reference this run did not deliver, where a pod would need it:
    /// its pull policy is `Never`, or it is of a repository the run delivered
    /// another tag of.
    NotDelivered {
        /// The reference as the manifest writes it.
        image: String,
        /// The delivered references, most similar first.
        nearest: Vec<String>,
    },
    /// An image loaded into the nodes (not pushed to a registry) with
    /// `imagePullPolicy: Always`, so the kubelet would try to pull it.
    AlwaysPullsLoadedImage {
        /// The reference as the manifest writes it.
        image: String,
    },
    /// The image is not a valid reference.
    Invalid {
        /// The reference as the manifest writes it.
        image: String,
        /// Why it is not valid.
        message: String,
    },
}

impl fmt::Display for ImageProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} container `{}`: ",
            self.origin, self.object, self.container
        )?;
        match &self.kind {
            ImageProblemKind::UnknownPlaceholder { name, known } => write!(
                f,
                "unknown image placeholder `{PLACEHOLDER_PREFIX}{name}`; the suite's images are: {}",
                if known.is_empty() {
                    "none (deliver images before deploying)".to_owned()
                } else {
                    known
                        .iter()
                        .map(|name| format!("`{PLACEHOLDER_PREFIX}{name}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            ),
            ImageProblemKind::LatestWithNever { image } => write!(
                f,
                "`{image}` is a `latest` tag with imagePullPolicy Never: a mutable tag cannot name what was loaded; use a placeholder `{PLACEHOLDER_PREFIX}<name>`"
            ),
            ImageProblemKind::NotDelivered { image, nearest } => {
                write!(f, "`{image}` was not loaded by this run")?;
                match nearest.first() {
                    Some(nearest) => write!(
                        f,
                        "; the nearest loaded reference is `{nearest}`: use its placeholder instead of a literal tag"
                    ),
                    None => write!(f, "; this run loaded no images"),
                }
            }
            ImageProblemKind::AlwaysPullsLoadedImage { image } => write!(
                f,
                "`{image}` was loaded into the nodes, not pushed to a registry, but imagePullPolicy Always makes the kubelet pull it: remove the policy or use the placeholder"
            ),
            ImageProblemKind::Invalid { image, message } => {
                write!(f, "`{image}` is not a valid image reference: {message}")
            }
        }
    }
}

/// Images a pod could not start with; nothing was applied.
#[derive(Debug, thiserror::Error)]
#[error("image preflight failed before anything was applied:\n  {}", problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n  "))]
pub struct PreflightError {
    /// Every problem found, across all the manifests.
    pub problems: Vec<ImageProblem>,
}

/// Replaces every placeholder with its exact reference (and the pull
/// policy of the delivery), then checks every container image. Problems
/// of all manifests are reported together.
pub fn resolve_and_check(
    manifests: &mut [Manifest],
    images: &DeliveredImages,
) -> Result<(), PreflightError> {
    let mut problems = Vec::new();
    for manifest in manifests.iter_mut() {
        let origin = manifest.origin().to_string();
        let object = format!("{}/{}", manifest.kind(), manifest.name());
        let kind = manifest.kind().to_owned();
        let mut report = |container: &str, kind: ImageProblemKind| {
            problems.push(ImageProblem {
                origin: origin.clone(),
                object: object.clone(),
                container: container.to_owned(),
                kind,
            })
        };
        if let Some(spec) = pod_spec_mut(&kind, &mut manifest.object) {
            for container in containers_mut(spec) {
                check_container(container, images, &mut report);
            }
        } else {
            // A custom resource naming an image gets it resolved too,
            // without a pull policy to set.
            replace_placeholders(&mut manifest.object, images, &mut |name, known| {
                report(
                    "image",
                    ImageProblemKind::UnknownPlaceholder {
                        name: name.to_owned(),
                        known,
                    },
                )
            });
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(PreflightError { problems })
    }
}

fn check_container(
    container: &mut Value,
    images: &DeliveredImages,
    report: &mut impl FnMut(&str, ImageProblemKind),
) {
    let name = container["name"].as_str().unwrap_or("?").to_owned();
    let Some(image) = container["image"].as_str().map(str::to_owned) else {
        return;
    };
    if let Some(logical) = image.strip_prefix(PLACEHOLDER_PREFIX) {
        match images.references.get(logical) {
            Some(reference) => {
                container["image"] = Value::from(reference.as_str());
                container["imagePullPolicy"] = Value::from(images.pull_policy.as_str());
            }
            None => report(
                &name,
                ImageProblemKind::UnknownPlaceholder {
                    name: logical.to_owned(),
                    known: images.references.keys().cloned().collect(),
                },
            ),
        }
        return;
    }
    let normalized = match normalize(&image) {
        Ok(normalized) => normalized.to_string(),
        Err(error) => {
            return report(
                &name,
                ImageProblemKind::Invalid {
                    image,
                    message: error.to_string(),
                },
            );
        }
    };
    let latest = is_latest(&image);
    let policy = container["imagePullPolicy"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| if latest { "Always" } else { "IfNotPresent" }.to_owned());
    let delivered = images.holds(&normalized);
    let loaded = images.pull_policy == PullPolicy::Never;
    let nearest = || nearest(&normalized, images.references.values());
    let same_repository = images
        .references
        .values()
        .any(|known| repository(known) == repository(&normalized));
    if policy == "Never" && latest {
        report(&name, ImageProblemKind::LatestWithNever { image });
    } else if !delivered && (policy == "Never" || same_repository) {
        report(
            &name,
            ImageProblemKind::NotDelivered {
                image,
                nearest: nearest(),
            },
        );
    } else if delivered && loaded && policy == "Always" {
        report(&name, ImageProblemKind::AlwaysPullsLoadedImage { image });
    }
}

fn replace_placeholders(
    value: &mut Value,
    images: &DeliveredImages,
    unknown: &mut impl FnMut(&str, Vec<String>),
) {
    match value {
        Value::Object(map) => {
            for (key, field) in map.iter_mut() {
                if key == "image"
                    && let Some(logical) = field
                        .as_str()
                        .and_then(|s| s.strip_prefix(PLACEHOLDER_PREFIX))
                {
                    match images.references.get(logical) {
                        Some(reference) => *field = Value::from(reference.as_str()),
                        None => unknown(logical, images.references.keys().cloned().collect()),
                    }
                } else {
                    replace_placeholders(field, images, unknown);
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                replace_placeholders(item, images, unknown);
            }
        }
        _ => {}
    }
}

/// The pod spec inside an object of a kind that runs pods.
pub(crate) fn pod_spec_mut<'a>(kind: &str, object: &'a mut Value) -> Option<&'a mut Value> {
    let spec = match kind {
        "Pod" => object.get_mut("spec"),
        "Deployment"
        | "StatefulSet"
        | "DaemonSet"
        | "ReplicaSet"
        | "Job"
        | "ReplicationController" => object.pointer_mut("/spec/template/spec"),
        "CronJob" => object.pointer_mut("/spec/jobTemplate/spec/template/spec"),
        _ => None,
    }?;
    spec.is_object().then_some(spec)
}

fn containers_mut(spec: &mut Value) -> impl Iterator<Item = &mut Value> {
    let spec = spec.as_object_mut().expect("a pod spec is an object");
    spec.iter_mut()
        .filter(|(key, _)| {
            matches!(
                key.as_str(),
                "initContainers" | "containers" | "ephemeralContainers"
            )
        })
        .filter_map(|(_, list)| list.as_array_mut())
        .flatten()
}

fn is_latest(image: &str) -> bool {
    let without_digest = image.split('@').next().unwrap_or(image);
    if image.contains('@') {
        return false;
    }
    let last = without_digest.rsplit('/').next().unwrap_or(without_digest);
    match last.split_once(':') {
        Some((_, tag)) => tag == "latest",
        None => true,
    }
}

fn repository(reference: &str) -> &str {
    let without_digest = reference.split('@').next().unwrap_or(reference);
    match without_digest.rfind(':') {
        Some(colon) if !without_digest[colon..].contains('/') => &without_digest[..colon],
        _ => without_digest,
    }
}

/// `candidates`, most similar to `asked` first.
pub fn nearest<'a>(asked: &str, candidates: impl IntoIterator<Item = &'a String>) -> Vec<String> {
    let mut scored: Vec<(f64, &String)> = candidates
        .into_iter()
        .map(|candidate| (strsim::normalized_levenshtein(asked, candidate), candidate))
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(b.1)));
    scored.into_iter().map(|(_, c)| c.clone()).collect()
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn images() -> DeliveredImages {
        DeliveredImages {
            references: BTreeMap::from([
                (
                    "api".to_owned(),
                    "localhost/kindling/api:c-0123456789abcdef0123".to_owned(),
                ),
                (
                    "worker".to_owned(),
                    "localhost/kindling/worker:c-aaaaaaaaaaaaaaaaaaaa".to_owned(),
                ),
            ]),
            pull_policy: PullPolicy::Never,
        }
    }

    fn deployment(image: &str, policy: Option<&str>) -> Manifest {
        let mut container = serde_json::json!({"name": "main", "image": image});
        if let Some(policy) = policy {
            container["imagePullPolicy"] = Value::from(policy);
        }
        Manifest {
            file: PathBuf::from("deploy/app.yaml"),
            index: 1,
            line: 7,
            object: serde_json::json!({
                "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "api"},
                "spec": {"template": {"spec": {"initContainers": [], "containers": [container]}}}
            }),
        }
    }

    fn check(image: &str, policy: Option<&str>) -> Result<Manifest, PreflightError> {
        let mut manifests = [deployment(image, policy)];
        resolve_and_check(&mut manifests, &images())?;
        let [manifest] = manifests;
        Ok(manifest)
    }

    #[test]
    fn a_placeholder_becomes_the_exact_reference_with_the_delivery_policy() {
        let manifest = check("kindling:api", Some("Always")).unwrap();
        let container = &manifest.object["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(
            container["image"],
            "localhost/kindling/api:c-0123456789abcdef0123"
        );
        assert_eq!(container["imagePullPolicy"], "Never");
    }

    #[test]
    fn an_unknown_placeholder_lists_the_known_names_and_the_origin() {
        let error = check("kindling:apl", None).unwrap_err().to_string();
        for expected in [
            "deploy/app.yaml document 1 (line 7)",
            "Deployment/api",
            "`main`",
            "`kindling:apl`",
            "`kindling:api`, `kindling:worker`",
        ] {
            assert!(error.contains(expected), "missing {expected:?} in {error}");
        }
    }

    #[test]
    fn a_literal_tag_never_loaded_names_the_nearest_reference() {
        let error = check(
            "localhost/kindling/api:c-0123456789abcdef9999",
            Some("Never"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.contains(
                "nearest loaded reference is `localhost/kindling/api:c-0123456789abcdef0123`"
            ),
            "{error}"
        );
        // Our own repository with another tag fails whatever the policy.
        assert!(check("localhost/kindling/worker:v2", None).is_err());
    }

    #[test]
    fn latest_with_never_is_refused_and_loaded_images_must_not_be_pulled() {
        let error = check("redis", Some("Never")).unwrap_err().to_string();
        assert!(error.contains("`latest` tag"), "{error}");
        let error = check(
            "localhost/kindling/api:c-0123456789abcdef0123",
            Some("Always"),
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("imagePullPolicy Always"), "{error}");
    }

    #[test]
    fn third_party_images_that_can_be_pulled_and_exact_literals_pass() {
        check("docker.io/library/postgres:16", None).unwrap();
        check(
            "localhost/kindling/api:c-0123456789abcdef0123",
            Some("Never"),
        )
        .unwrap();
    }

    #[test]
    fn latest_detection_follows_reference_syntax() {
        assert!(is_latest("redis"));
        assert!(is_latest("localhost:5000/redis"));
        assert!(is_latest("redis:latest"));
        assert!(!is_latest("localhost:5000/redis:7"));
        assert!(!is_latest("redis@sha256:abcd"));
        assert_eq!(repository("localhost:5000/redis:7"), "localhost:5000/redis");
        assert_eq!(repository("localhost:5000/redis"), "localhost:5000/redis");
    }
}
