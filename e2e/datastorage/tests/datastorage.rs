//! E2E suite of the datastorage service: the run-wide setup brings the
//! local cluster up (or reuses it), builds the service image, loads it
//! into the node and deploys it with the exact reference the build
//! returned; the tests talk to its Service.
//!
//! Run with `cargo nextest run -p e2e-datastorage`. Needs what the local
//! provider needs (README, "The `local` provider"); without it the tests
//! are reported as ignored, and fail when `CI` is set.

use std::path::Path;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Service};
use kindling::cluster::local::cluster::LocalCluster;
use kindling::cluster::local::images::go_binary_image;
use kindling::image::{ImageRef, Loader};
use kindling::{BoxError, SetupContext, Suite, TestContext, TestOptions};
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const CLUSTER: &str = "kindling";
const NAMESPACE: &str = "e2e-datastorage";

/// What the tests need: where the service answers, and what was deployed.
#[derive(Serialize, Deserialize)]
struct Env {
    address: String,
    image: String,
}

async fn setup(setup: SetupContext) -> Result<Env, BoxError> {
    let cluster = LocalCluster::with_defaults(CLUSTER);
    setup.phase("cluster", cluster.up()).await?;
    let docker = kindling::docker::connect().await?;
    let sources = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/datastorage");
    let work = Path::new(env!("CARGO_TARGET_TMPDIR")).join("e2e-datastorage");
    let image = setup
        .phase(
            "image",
            go_binary_image(&docker, "datastorage", &sources, ".", &work),
        )
        .await?;
    setup
        .phase(
            "load",
            Loader::new(docker).load(std::slice::from_ref(&image), &[cluster.node_store()]),
        )
        .await?;
    let client = cluster.admin_client().await?;
    let address = setup.phase("deploy", deploy(&client, &image)).await?;
    Ok(Env {
        address,
        image: image.reference().to_string(),
    })
}

/// Applies the namespace, Deployment and Service, waits until the
/// Deployment is available, and returns the Service's address.
async fn deploy(client: &Client, image: &ImageRef) -> Result<String, BoxError> {
    let apply = PatchParams::apply("kindling").force();
    let namespace: Namespace = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}
    }))?;
    Api::<Namespace>::all(client.clone())
        .patch(NAMESPACE, &apply, &Patch::Apply(&namespace))
        .await?;
    let labels = serde_json::json!({"app": "datastorage"});
    let deployment: Deployment = serde_json::from_value(serde_json::json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "datastorage", "namespace": NAMESPACE},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{
                    "name": "datastorage",
                    "image": image.reference().as_str(),
                    "imagePullPolicy": "Never",
                    "ports": [{"containerPort": 8080}],
                    "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 1}
                }]}
            }
        }
    }))?;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NAMESPACE);
    deployments
        .patch("datastorage", &apply, &Patch::Apply(&deployment))
        .await?;
    let service: Service = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "datastorage", "namespace": NAMESPACE},
        "spec": {"selector": labels, "ports": [{"port": 8080, "targetPort": 8080}]}
    }))?;
    let services: Api<Service> = Api::namespaced(client.clone(), NAMESPACE);
    let service = services
        .patch("datastorage", &apply, &Patch::Apply(&service))
        .await?;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let status = deployments
            .get("datastorage")
            .await?
            .status
            .unwrap_or_default();
        let updated = status.updated_replicas.unwrap_or(0) >= 1
            && status.unavailable_replicas.unwrap_or(0) == 0;
        if updated && status.available_replicas.unwrap_or(0) >= 1 {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!(
                "Deployment `{NAMESPACE}/datastorage` not available after 120s: {status:?}"
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let ip = service
        .spec
        .and_then(|spec| spec.cluster_ip)
        .ok_or("the Service has no cluster IP")?;
    let address = format!("{ip}:8080");
    // Available pods are not yet a routed Service: wait until kube-proxy
    // has its rules and the Service answers, several times in a row.
    let mut last = String::new();
    let mut answered = 0;
    while Instant::now() < deadline {
        match http(&address, "GET", "/healthz", "").await {
            Ok((200, _)) => answered += 1,
            Ok((status, body)) => (answered, last) = (0, format!("{status} {body}")),
            Err(error) => (answered, last) = (0, error.to_string()),
        }
        if answered == 3 {
            return Ok(address);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(format!("Service `{NAMESPACE}/datastorage` at {address} did not answer: {last}").into())
}

/// One HTTP/1.1 request to `address`; returns the status and the body.
async fn http(
    address: &str,
    method: &str,
    path: &str,
    body: &str,
) -> Result<(u16, String), BoxError> {
    let mut stream = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::net::TcpStream::connect(address),
    )
    .await??;
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: datastorage\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut response)).await??;
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("not an HTTP response: {response:?}"))?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

async fn put_then_get_returns_the_value(ctx: TestContext<Env>) -> Result<(), BoxError> {
    let key = ctx.unique_name("key");
    let (status, _) = http(&ctx.env().address, "PUT", &format!("/items/{key}"), "hello").await?;
    assert_eq!(status, 204, "PUT answered {status}");
    let (status, body) = http(&ctx.env().address, "GET", &format!("/items/{key}"), "").await?;
    tracing::info!(status, body, image = ctx.env().image, "GET");
    assert_eq!((status, body.as_str()), (200, "hello"));
    Ok(())
}

async fn a_missing_key_is_not_found(ctx: TestContext<Env>) -> Result<(), BoxError> {
    let (status, _) = http(
        &ctx.env().address,
        "GET",
        &format!("/items/{}", ctx.unique_name("absent")),
        "",
    )
    .await?;
    assert_eq!(status, 404);
    Ok(())
}

async fn answers_health_checks(ctx: TestContext<Env>) -> Result<(), BoxError> {
    let (status, body) = http(&ctx.env().address, "GET", "/healthz", "").await?;
    assert_eq!((status, body.trim()), (200, "ok"));
    Ok(())
}

fn main() -> std::process::ExitCode {
    let in_ci = std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false");
    let options = match LocalCluster::with_defaults(CLUSTER).missing_prerequisite() {
        Some(reason) if !in_ci => {
            eprintln!(
                "WARNING: the datastorage E2E tests cannot run and are reported as ignored (skipped): {reason}"
            );
            TestOptions::new().ignored()
        }
        _ => TestOptions::new(),
    };
    Suite::with_setup(setup)
        .alive("cluster", |_env| async {
            LocalCluster::with_defaults(CLUSTER)
                .healthy()
                .await
                .map_err(Into::into)
        })
        .fingerprint("service", || {
            let source =
                Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/datastorage/main.go");
            format!(
                "{:?}",
                std::fs::metadata(source).and_then(|m| m.modified()).ok()
            )
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
