//! The stacks of the team's services, declared once: each suite deploys
//! the stacks it needs beside its own (the Gateway suite deploys the
//! DataStorage stack it writes audit events to) from these values, never
//! from a copy of their YAML. Paths are relative to this crate.
//!
//! ```no_run
//! # async fn setup(setup: kindling::SetupContext) -> Result<kindling::Environment, kindling::BoxError> {
//! Ok(kindling::Environment::builder(&setup)
//!     .stack(e2e_stacks::datastorage())
//!     .stack(e2e_stacks::gateway())
//!     .up()
//!     .await?)
//! # }
//! ```

mod audit;

pub use audit::AuditLog;

use kindling::image::ImageSpec;
use kindling::tls::TlsSecret;
use kindling::{GeneratedSecret, Stack, ThirdParty};

/// Where this crate is: the stacks' paths are relative to it.
const HERE: &str = env!("CARGO_MANIFEST_DIR");

/// The images Debian-based third-party images start from (`FROM
/// kindling:debian`), built only when one of them is.
fn debian() -> ImageSpec {
    ImageSpec::debian("debian", "bookworm")
}

/// DataStorage, the audit-event store: PostgreSQL on a PersistentVolumeClaim
/// and Redis (stage `database`, with generated credentials), its
/// migrations Job (`migrations`), then the service (`datastorage`, two
/// replicas, authenticating callers by TokenReview; the `tester`
/// ServiceAccount is the identity tests call it as).
pub fn datastorage() -> Stack {
    Stack::new("datastorage", HERE)
        .base_image(debian())
        .image(
            ThirdParty::new("postgres", "postgres:16")
                .or_build(ImageSpec::new("postgres", "../../fixtures/postgres")),
        )
        .image(
            ThirdParty::new("redis", "redis:7")
                .or_build(ImageSpec::new("redis", "../../fixtures/redis")),
        )
        .image(ImageSpec::go_binary(
            "datastorage",
            "../../fixtures/datastorage",
        ))
        .secret(
            GeneratedSecret::new("postgres-credentials")
                .literal("username", "datastorage")
                .literal("database", "audit")
                .random("password", 32),
        )
        .stage("database", "datastorage/database")
        .stage("migrations", "datastorage/migrations")
        .stage("datastorage", "datastorage/service")
}

/// The `RemediationRequest` CRD (stage `remediation-crds`), which the
/// Gateway creates objects of and the AuthWebhook admits.
pub fn remediation_crds() -> Stack {
    Stack::new("remediation-crds", HERE).stage(
        "remediation-crds",
        "../../fixtures/crds/remediationrequest.yaml",
    )
}

/// The `NotificationRequest` CRD (stage `notification-crds`).
pub fn notification_crds() -> Stack {
    Stack::new("notification-crds", HERE).stage(
        "notification-crds",
        "../../fixtures/crds/notificationrequest.yaml",
    )
}

/// The Gateway (stage `gateway`): ingests Alertmanager and generic events,
/// creates one RemediationRequest per new signal, audits to DataStorage.
/// Needs [`datastorage`] and [`remediation_crds`] before it.
pub fn gateway() -> Stack {
    Stack::new("gateway", HERE)
        .image(ImageSpec::go_binary("gateway", "../../fixtures/gateway"))
        .stage("gateway", "gateway")
}

/// The Notification controller and a mock receiver (stage `notification`):
/// delivers NotificationRequests, retries, sets their phase, audits to
/// DataStorage. Needs [`datastorage`] and [`notification_crds`] before it.
pub fn notification() -> Stack {
    Stack::new("notification", HERE)
        .image(ImageSpec::go_binary(
            "notification",
            "../../fixtures/notification",
        ))
        .image(ImageSpec::go_binary(
            "mock-receiver",
            "../../fixtures/mock-receiver",
        ))
        .stage("notification", "notification")
}

/// The AuthWebhook over TLS (stage `authwebhook`) and its webhook
/// configurations (stage `admission`, after its pods are ready), for
/// RemediationRequests and NotificationRequests of the suite's namespace;
/// with the `tester` ServiceAccount tests act as. Needs
/// [`remediation_crds`] and [`notification_crds`] before it, and
/// [`datastorage`], where it audits its denials.
pub fn authwebhook() -> Stack {
    authwebhook_service().stage("admission", "authwebhook/admission")
}

/// [`authwebhook`] without its webhook configurations: the server and its
/// certificate, for a suite that configures admission its own way.
pub fn authwebhook_service() -> Stack {
    Stack::new("authwebhook", HERE)
        .image(ImageSpec::go_binary(
            "authwebhook",
            "../../fixtures/authwebhook",
        ))
        .tls(TlsSecret::for_service("authwebhook"))
        .stage("authwebhook", "authwebhook/service")
}
