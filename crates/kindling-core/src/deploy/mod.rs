//! Deploying a suite's manifests: placeholders resolved from the run's
//! images, a preflight of every image, server-side apply in dependency
//! order, and a wait by diagnosis.

pub mod adoption;
pub mod apply;
pub mod changes;
pub mod images;
pub mod manifest;
pub mod namespace;
pub mod ownership;
pub mod scope;
pub mod webhook_failure;
pub mod webhook_probe;

pub use adoption::{CREATED_BY_ANNOTATION, Ownership};
pub use apply::{Applied, ApplyError, apply_manifests, delete_objects, dry_run_manifests};
pub use changes::{Changes, DeployedObject, ObjectKey, deployed_objects, plan_changes};
pub use images::{DeliveredImages, PLACEHOLDER_PREFIX, PreflightError, resolve_and_check};
pub use manifest::{Manifest, ManifestError, read_manifests};
pub use namespace::{GcPolicy, GcReport, NamespaceError, collect_garbage, suite_namespace};
pub use ownership::{collect_cluster_garbage, mark_cluster_objects};
pub use scope::scope_to_namespace;
