//! Deploy figures on the local cluster, printed as `bench: <metric> = <value> <unit>`:
//!
//! - `warm_rerun_to_first_test_s`: a second run of the `e2e-datastorage`
//!   suite with the cluster up and images and manifests unchanged, from
//!   starting its process to the end of its one test (an upper bound of
//!   the time to the first test; target at most 2 s).
//! - `err_image_never_pull_detect_s`: from applying a Deployment whose
//!   image was never loaded (the preflight skipped) to the wait failing
//!   with its diagnosis (target at most 10 s); median of 3.
//! - `deploy_ready_s`: a 3-workload suite (Deployment, StatefulSet, Job,
//!   two Services) from reading its manifests to every workload ready;
//!   median of 3.
//!
//! Needs what the local provider needs; brings the cluster up if it is
//! down and leaves it up. Run with `cargo bench -p kindling --bench deploy`.

#[path = "../tests/support/mod.rs"]
mod support;

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kindling::cluster::local::LocalCluster;
use kindling::cluster::{Provider as _, PullPolicy};
use kindling::deploy::namespace::ensure_namespace;
use kindling::deploy::{DeliveredImages, apply_manifests, read_manifests, resolve_and_check};
use kindling::wait::{WaitError, Waiter, Workload};
use kindling::{BoxError, apply_and_wait};
use kube::Client;
use kube::api::{Api, DeleteParams};

use common::SuiteUnderBench;
use support::bench_targets::DATASTORAGE_ONE_EVENT;
use support::fixture_target_dir;
use support::median;

const RUNS: usize = 3;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

const THREE_WORKLOADS: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: web
          image: kindling:toolbox
          args: [serve, "8080", web]
          readinessProbe: {httpGet: {path: /healthz, port: 8080}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 8080}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: store}
spec:
  serviceName: store
  selector: {matchLabels: {app: store}}
  template:
    metadata: {labels: {app: store}}
    spec:
      containers:
        - name: store
          image: kindling:toolbox
          args: [serve, "8080", store]
          readinessProbe: {httpGet: {path: /healthz, port: 8080}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata: {name: store}
spec:
  clusterIP: None
  selector: {app: store}
  ports: [{port: 8080}]
---
apiVersion: batch/v1
kind: Job
metadata: {name: migrate}
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: migrate
          image: kindling:toolbox
          args: [succeed]
"#;

fn never_loaded(reference: &str) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata: {{name: wrong}}
spec:
  selector: {{matchLabels: {{app: wrong}}}}
  template:
    metadata: {{labels: {{app: wrong}}}}
    spec:
      containers:
        - name: wrong
          image: {reference}
          imagePullPolicy: Never
"#
    )
}

struct Bench {
    client: Client,
    images: DeliveredImages,
    cluster: LocalCluster,
    dir: PathBuf,
}

impl Bench {
    async fn namespace(&self, name: &str) -> Result<String, BoxError> {
        let namespace = format!("bench-{name}-{}", std::process::id());
        ensure_namespace(&self.client, &namespace, "bench", "bench").await?;
        Ok(namespace)
    }

    async fn drop_namespace(&self, namespace: &str) {
        let _ = Api::<k8s_openapi::api::core::v1::Namespace>::all(self.client.clone())
            .delete(namespace, &DeleteParams::background())
            .await;
    }

    fn manifest(&self, name: &str, text: &str) -> Result<PathBuf, BoxError> {
        let path = self.dir.join(format!("{name}.yaml"));
        std::fs::write(&path, text)?;
        Ok(path)
    }

    async fn deploy_ready(&self, run: usize) -> Result<f64, BoxError> {
        let namespace = self.namespace(&format!("ready{run}")).await?;
        let path = self.manifest("three", THREE_WORKLOADS)?;
        let started = Instant::now();
        let mut manifests = read_manifests(&[path])?;
        resolve_and_check(&mut manifests, &self.images)?;
        let stores = self.cluster.node_stores().await?;
        let waiter = Waiter::new(self.client.clone(), stores, Duration::from_secs(120));
        apply_and_wait(&self.client, &namespace, &mut manifests, &waiter).await?;
        let seconds = started.elapsed().as_secs_f64();
        self.drop_namespace(&namespace).await;
        Ok(seconds)
    }

    async fn never_pull_detected(&self, run: usize, reference: &str) -> Result<f64, BoxError> {
        let namespace = self.namespace(&format!("never{run}")).await?;
        let wrong = format!("{}0000", &reference[..reference.len() - 4]);
        let path = self.manifest("wrong", &never_loaded(&wrong))?;
        let mut manifests = read_manifests(&[path])?;
        let stores = self.cluster.node_stores().await?;
        let waiter = Waiter::new(self.client.clone(), stores, Duration::from_secs(120));
        let started = Instant::now();
        apply_manifests(
            &self.client,
            &namespace,
            &mut manifests,
            &kindling::deploy::Ownership::suite(&namespace),
        )
        .await?;
        let outcome = waiter
            .wait(&[Workload::new("Deployment", &namespace, "wrong")])
            .await;
        let seconds = started.elapsed().as_secs_f64();
        self.drop_namespace(&namespace).await;
        match outcome {
            Err(WaitError::Diagnosed(_)) => Ok(seconds),
            other => Err(format!("expected an ErrImageNeverPull diagnosis, got {other:?}").into()),
        }
    }
}

/// Runs of one DataStorage test with a state directory kept between
/// bench runs: the first sets up (or reuses an earlier bench's
/// environment), the others are warm.
fn warm_rerun() -> Result<f64, BoxError> {
    let suite = SuiteUnderBench::build(DATASTORAGE_ONE_EVENT)?;
    let state = fixture_target_dir().join("bench-deploy-state");
    std::fs::create_dir_all(&state)?;
    let first = suite.run_one(&state)?;
    println!("bench: first_run_s = {first:.2} s (sets up, or reuses an earlier run's environment)");
    Ok(median(
        (0..RUNS)
            .map(|_| suite.run_one(&state))
            .collect::<Result<_, _>>()?,
    ))
}

fn main() -> Result<(), BoxError> {
    let cluster = LocalCluster::with_defaults(&kindling::cluster::ClusterName::default())
        .expect("the KINDLING_LOCAL_* variables are valid");
    if let Some(reason) = cluster.missing_prerequisite() {
        println!("bench: skipped, {reason}");
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let bench = runtime.block_on(async {
        cluster.up().await?;
        let docker = kindling::docker::connect().await?;
        let dir = std::env::temp_dir().join("kindling-bench-deploy");
        std::fs::create_dir_all(&dir)?;
        let image = kindling::image::Builder::new(docker.clone())
            .build(&kindling::image::ImageSpec::go_binary(
                "toolbox",
                workspace().join("fixtures/toolbox"),
            ))
            .await?
            .image;
        let delivered = cluster.deliver(docker, vec![image]).await?;
        Ok::<_, BoxError>(Bench {
            client: cluster.admin_client().await?,
            images: DeliveredImages::new(&delivered.images, PullPolicy::Never),
            cluster: cluster.clone(),
            dir,
        })
    })?;
    let reference = bench.images.references()["toolbox"].clone();

    let warm = warm_rerun()?;
    println!("bench: warm_rerun_to_first_test_s = {warm:.2} s (target 2)");
    let detect: Vec<f64> = (0..RUNS)
        .map(|run| runtime.block_on(bench.never_pull_detected(run, &reference)))
        .collect::<Result<_, _>>()?;
    println!(
        "bench: err_image_never_pull_detect_s = {:.2} s (median of {RUNS}: {detect:.2?}; target 10)",
        median(detect.clone())
    );
    let ready: Vec<f64> = (0..RUNS)
        .map(|run| runtime.block_on(bench.deploy_ready(run)))
        .collect::<Result<_, _>>()?;
    println!(
        "bench: deploy_ready_s = {:.2} s (median of {RUNS}: {ready:.2?}; Deployment, StatefulSet, Job)",
        median(ready.clone())
    );
    Ok(())
}
