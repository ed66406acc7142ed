//! The `local` provider against real upstream components on this host,
//! written as a kindling suite: the run-wide setup brings the cluster up
//! once (nextest's processes share it), the tests deploy into it.
//!
//! Needs what the local provider needs (root, a Docker engine, Go to build
//! the components the first time); without it the tests are reported as
//! ignored, and they fail when `CI` is set.

#[path = "../../kindling/tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kindling::cluster::Provider as _;
use kindling::cluster::local::LocalCluster;
use kindling::cluster::local::images::write_image_sources;
use kindling::cluster::local::manifests::{self, SMOKE_NAMESPACE};
use kindling::image::Loader;
use kindling::{BoxError, Suite, TestContext};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde::{Deserialize, Serialize};

const CLUSTER: &str = "kindling";

#[derive(Serialize, Deserialize)]
struct Env {
    cluster: String,
}

fn cluster(ctx: &TestContext<Env>) -> LocalCluster {
    support::local_cluster(&ctx.env().cluster)
}

fn deployment(name: &str, image: &str) -> Result<Deployment, BoxError> {
    Ok(serde_json::from_value(serde_json::json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{
                    "name": "app",
                    "image": image,
                    "imagePullPolicy": "Never",
                    "args": ["serve", ":8080"]
                }]}
            }
        }
    }))?)
}

async fn poll<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<T, BoxError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>, BoxError>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(found) = check().await? {
            return Ok(found);
        }
        if Instant::now() > deadline {
            return Err(format!("{what} did not happen within {}s", timeout.as_secs()).into());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn deploys_the_exact_returned_reference(ctx: TestContext<Env>) -> Result<(), BoxError> {
    let cluster = cluster(&ctx);
    let docker = kindling::docker::connect().await?;
    let work = tempfile::tempdir()?;
    let sources = write_image_sources(&work.path().join("src"))?;
    let image = support::go_image(&docker, "e2e-app", &sources, "./smoke").await?;
    Loader::new(docker)
        .load(std::slice::from_ref(&image), &[cluster.node_store()])
        .await?;
    let client = cluster.admin_client().await?;
    let name = ctx.unique_name("exact");
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    deployments
        .create(
            &PostParams::default(),
            &deployment(&name, image.reference().as_str())?,
        )
        .await?;
    let available = poll(
        "the Deployment to become Available",
        Duration::from_secs(90),
        || {
            let (deployments, name) = (deployments.clone(), name.clone());
            async move {
                let found = deployments.get(&name).await?;
                let conditions = found
                    .status
                    .and_then(|status| status.conditions)
                    .unwrap_or_default();
                Ok(conditions
                    .iter()
                    .any(|c| c.type_ == "Available" && c.status == "True")
                    .then_some(()))
            }
        },
    )
    .await;
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let listed = pods
        .list(&ListParams::default().labels(&format!("app={name}")))
        .await?;
    let images: Vec<String> = listed
        .items
        .iter()
        .flat_map(|pod| {
            pod.spec
                .iter()
                .flat_map(|spec| spec.containers.iter().filter_map(|c| c.image.clone()))
        })
        .collect();
    deployments.delete(&name, &DeleteParams::default()).await?;
    available?;
    if images != [image.reference().to_string()] {
        return Err(format!("pods run {images:?}, not {}", image.reference()).into());
    }
    tracing::info!(reference = %image.reference(), "available");
    Ok(())
}

async fn a_never_loaded_reference_shows_err_image_never_pull(
    ctx: TestContext<Env>,
) -> Result<(), BoxError> {
    let client = cluster(&ctx).admin_client().await?;
    let name = ctx.unique_name("never");
    let missing = format!("localhost/kindling/never-loaded:{name}");
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    deployments
        .create(&PostParams::default(), &deployment(&name, &missing)?)
        .await?;
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let started = Instant::now();
    let reason = poll(
        "the kubelet to report the image",
        Duration::from_secs(60),
        || {
            let (pods, name) = (pods.clone(), name.clone());
            async move {
                let listed = pods
                    .list(&ListParams::default().labels(&format!("app={name}")))
                    .await?;
                Ok(listed.items.iter().find_map(|pod| {
                    let waiting = pod
                        .status
                        .as_ref()?
                        .container_statuses
                        .as_ref()?
                        .first()?
                        .state
                        .as_ref()?
                        .waiting
                        .as_ref()?;
                    waiting
                        .reason
                        .clone()
                        .filter(|reason| reason != "ContainerCreating")
                        .map(|reason| (reason, waiting.message.clone()))
                }))
            }
        },
    )
    .await;
    deployments.delete(&name, &DeleteParams::default()).await?;
    let (reason, message) = reason?;
    tracing::info!(
        seconds = started.elapsed().as_secs_f64(),
        reason,
        "kubelet status"
    );
    if reason != "ErrImageNeverPull" || !message.unwrap_or_default().contains(&missing) {
        return Err(
            format!("the kubelet reported {reason}, not ErrImageNeverPull for {missing}").into(),
        );
    }
    Ok(())
}

async fn a_service_name_resolves_from_a_pod(ctx: TestContext<Env>) -> Result<(), BoxError> {
    let cluster = cluster(&ctx);
    let client = cluster.admin_client().await?;
    let smoke: Api<Deployment> = Api::namespaced(client.clone(), SMOKE_NAMESPACE);
    let image = smoke
        .get("smoke")
        .await?
        .spec
        .and_then(|spec| spec.template.spec)
        .and_then(|spec| spec.containers.first().and_then(|c| c.image.clone()))
        .ok_or("the smoke Deployment has no image")?;
    let name = ctx.unique_name("probe");
    let jobs: Api<Job> = Api::namespaced(client, SMOKE_NAMESPACE);
    jobs.create(
        &PostParams::default(),
        &serde_json::from_value(manifests::smoke_probe(&image, &name))?,
    )
    .await?;
    poll(
        "the probe to fetch smoke.kindling-smoke.svc.cluster.local",
        Duration::from_secs(90),
        || {
            let (jobs, name) = (jobs.clone(), name.clone());
            async move {
                let status = jobs.get(&name).await?.status.unwrap_or_default();
                Ok((status.succeeded.unwrap_or(0) > 0).then_some(()))
            }
        },
    )
    .await
}

async fn up_again_reuses_the_running_cluster(ctx: TestContext<Env>) -> Result<(), BoxError> {
    let phases = cluster(&ctx).up().await?;
    let names: Vec<&str> = phases.iter().map(|(name, _)| name.as_str()).collect();
    if names != ["already up"] {
        return Err(format!("a second `up` did {names:?}").into());
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    Suite::with_setup(|setup| async move {
        setup
            .phase("up", async { support::local_cluster(CLUSTER).up().await })
            .await?;
        Ok(Env {
            cluster: CLUSTER.to_owned(),
        })
    })
    .requires(support::local_cluster(CLUSTER).requirement())
    .setup_timeout(Duration::from_secs(600))
    .test(
        "deploys_the_exact_returned_reference",
        deploys_the_exact_returned_reference,
    )
    .test(
        "a_never_loaded_reference_shows_err_image_never_pull",
        a_never_loaded_reference_shows_err_image_never_pull,
    )
    .test(
        "a_service_name_resolves_from_a_pod",
        a_service_name_resolves_from_a_pod,
    )
    .test("up_again_reuses_the_running_cluster", |ctx| {
        up_again_reuses_the_running_cluster(ctx)
    })
    .run()
}
