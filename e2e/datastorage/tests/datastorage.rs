//! E2E suite of the datastorage service. The run-wide setup brings the
//! cluster up (or reuses it), builds the service image, delivers it to the
//! nodes and applies `manifests/`, where `image: kindling:datastorage`
//! becomes the exact reference the build returned; the tests reach the
//! Service through a port-forward of their own.
//!
//! Run with `cargo nextest run -p e2e-datastorage`. Needs what the local
//! provider needs (README, "The `local` provider"); without it the tests
//! are reported as ignored, and fail when `CI` is set.

use std::path::{Path, PathBuf};
use std::time::Duration;

use kindling::cluster::local::cluster::LocalCluster;
use kindling::cluster::local::images::go_binary_image;
use kindling::{BoxError, Environment, SetupContext, Suite, TestContext, TestOptions};

const CLUSTER: &str = "kindling";

fn service_sources() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/datastorage")
}

fn manifests() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests")
}

async fn setup(setup: SetupContext) -> Result<Environment, BoxError> {
    let docker = kindling::docker::connect().await?;
    let work = Path::new(env!("CARGO_TARGET_TMPDIR")).join("e2e-datastorage");
    let image = setup
        .phase(
            "build",
            go_binary_image(&docker, "datastorage", &service_sources(), ".", &work),
        )
        .await?;
    let environment = Environment::builder(&setup, kindling::cluster::from_env(CLUSTER)?)
        .image(image)
        .manifests(manifests())
        .up()
        .await?;
    Ok(environment)
}

async fn put_then_get_returns_the_value(ctx: TestContext<Environment>) -> Result<(), BoxError> {
    let http = ctx.http("datastorage", 8080).await?;
    let key = ctx.unique_name("key");
    let put = http.put(&format!("/items/{key}"), "hello").await?;
    assert_eq!(put.status, 204, "PUT answered {put:?}");
    let get = http.get(&format!("/items/{key}")).await?;
    tracing::info!(?get, image = ctx.image("datastorage"), "GET");
    assert_eq!((get.status, get.body.as_str()), (200, "hello"));
    Ok(())
}

async fn a_missing_key_is_not_found(ctx: TestContext<Environment>) -> Result<(), BoxError> {
    let http = ctx.http("datastorage", 8080).await?;
    let get = http
        .get(&format!("/items/{}", ctx.unique_name("absent")))
        .await?;
    assert_eq!(get.status, 404, "{get:?}");
    Ok(())
}

async fn answers_health_checks(ctx: TestContext<Environment>) -> Result<(), BoxError> {
    let http = ctx.http("datastorage", 8080).await?;
    let health = http.get("/healthz").await?;
    assert_eq!((health.status, health.body.trim()), (200, "ok"));
    Ok(())
}

fn main() -> std::process::ExitCode {
    let in_ci = std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false");
    let local = std::env::var("KINDLING_PROVIDER").map_or(true, |provider| provider == "local");
    let options = match LocalCluster::with_defaults(CLUSTER).missing_prerequisite() {
        Some(reason) if local && !in_ci => {
            eprintln!(
                "WARNING: the datastorage E2E tests cannot run and are reported as ignored (skipped): {reason}"
            );
            TestOptions::new().ignored()
        }
        _ => TestOptions::new(),
    };
    Suite::with_setup(setup)
        .alive("environment", Environment::alive)
        .on_failure(Environment::collect_artifacts)
        .fingerprint("inputs", || {
            kindling::fingerprint_paths(&[service_sources(), manifests()])
        })
        .setup_timeout(Duration::from_secs(600))
        .test_with(
            "api::put_then_get_returns_the_value",
            options.clone(),
            put_then_get_returns_the_value,
        )
        .test_with(
            "api::a_missing_key_is_not_found",
            options.clone(),
            a_missing_key_is_not_found,
        )
        .test_with(
            "health::answers_health_checks",
            options,
            answers_health_checks,
        )
        .run()
}
