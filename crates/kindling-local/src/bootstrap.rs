//! `up`: bringing a local cluster up as a table of named steps, each
//! reported with its time (`kindling up: <step> in 1.23s`). A step that
//! waits fails at once with the last lines of a component's log if one of
//! the components it depends on exits.

use std::future::Future;
use std::net::IpAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::{Duration, Instant};

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Node;
use kube::Client;
use kube::api::Api;

use super::cluster::{
    ALREADY_UP, COMPONENTS, LOG_TAIL, LocalCluster, LocalError, RESTART_LIMIT, RESTARTED_ON_EXIT,
};
use super::config::PAUSE_IMAGE;
use super::host;
use super::manifests;
use super::ports::ensure_free;
use crate::pki::{self, PkiFiles};
use kindling_core::cluster::components::images::{component_image, write_image_sources};
use kindling_core::deploy::{Manifest, apply_manifests};
use kindling_core::image::{ImageRef, ImageSpec, Loader};
use kindling_core::wait::{Waiter, Workload};

/// What the steps hand on to the later ones.
struct Bootstrap {
    pki: PkiFiles,
    client: Client,
    /// Set by the `runtime and images` step.
    images: Option<ComponentImages>,
}

/// The images the cluster itself runs, as loaded into its node.
struct ComponentImages {
    smoke: ImageRef,
    coredns: ImageRef,
}

impl Bootstrap {
    fn images(&self) -> &ComponentImages {
        self.images
            .as_ref()
            .expect("STEPS runs `runtime and images` before the steps that use its images")
    }
}

type StepFuture<'a> = Pin<Box<dyn Future<Output = Result<(), LocalError>> + Send + 'a>>;

/// One start-up step: its name (as reported) and what it does.
struct Step {
    name: &'static str,
    run: for<'a> fn(&'a LocalCluster, &'a mut Bootstrap) -> StepFuture<'a>,
}

/// The start-up steps after `prepare`, in order.
const STEPS: &[Step] = &[
    Step {
        name: "control plane",
        run: |cluster, bootstrap| Box::pin(control_plane(cluster, bootstrap)),
    },
    Step {
        name: "runtime and images",
        run: |cluster, bootstrap| Box::pin(runtime_and_images(cluster, bootstrap)),
    },
    Step {
        name: "node ready",
        run: |cluster, bootstrap| Box::pin(node_ready(cluster, bootstrap)),
    },
    Step {
        name: "cluster DNS",
        run: |cluster, bootstrap| Box::pin(cluster_dns(cluster, bootstrap)),
    },
    Step {
        name: "smoke workload",
        run: |cluster, bootstrap| Box::pin(smoke_workload(cluster, bootstrap)),
    },
];

impl LocalCluster {
    /// Brings the cluster up, or returns at once if it already runs and is
    /// healthy (then its one phase is [`ALREADY_UP`]). Returns each phase's
    /// name and time.
    pub async fn up(&self) -> Result<Vec<(String, Duration)>, LocalError> {
        let mut phases = Vec::new();
        let mut phase = |name: &str, started: Instant| {
            let elapsed = started.elapsed();
            eprintln!("kindling up: {name} in {:.2}s", elapsed.as_secs_f64());
            phases.push((name.to_owned(), elapsed));
        };
        let started = Instant::now();
        let _lock = self
            .lifecycle_lock(&format!("bringing cluster `{}` up", self.name))
            .await?;
        // A controller that exited since the last `up` is started again
        // rather than the whole cluster; one that keeps exiting leaves the
        // cluster to the full start below.
        let restarted = self.restart_exited(RESTARTED_ON_EXIT).unwrap_or_default();
        if self.healthy().await.is_ok() {
            let recorded = std::fs::read_to_string(self.digest_path()).unwrap_or_default();
            if recorded.trim() == self.configuration_digest() {
                match restarted.as_slice() {
                    [] => phase(ALREADY_UP, started),
                    names => phase(&format!("restarted {}", names.join(", ")), started),
                }
                return Ok(phases);
            }
            eprintln!(
                "kindling up: cluster `{}` runs with another configuration (kindling changed how it runs its components): restarting them, its data kept",
                self.name
            );
        }
        let mut bootstrap = self.prepare_start().await?;
        phase("prepare", started);
        for step in STEPS {
            let started = Instant::now();
            (step.run)(self, &mut bootstrap).await?;
            phase(step.name, started);
        }
        let digest = self.digest_path();
        std::fs::write(&digest, self.configuration_digest()).map_err(|source| {
            LocalError::Write {
                path: digest,
                source,
            }
        })?;
        Ok(phases)
    }

    /// The `prepare` step: what the components need, a clean start (a
    /// partial cluster, or components an interrupted `up` left running
    /// without a record, start over), free ports, the host, certificates
    /// and configuration files.
    async fn prepare_start(&self) -> Result<Bootstrap, LocalError> {
        self.prepare().await?;
        self.supervisor.stop_all(Duration::from_secs(10))?;
        self.stop_unrecorded(Duration::from_secs(10))?;
        let ports: Vec<(&str, IpAddr, u16)> = self
            .ports
            .all()
            .into_iter()
            .map(|(component, port)| (component, IpAddr::from([0, 0, 0, 0]), port))
            .collect();
        ensure_free(&ports)?;
        host::prepare(&self.layout, &self.network)?;
        let pki = pki::ensure_pki(&self.pki_spec(), &self.layout.pki())?;
        self.write_configs(&pki)?;
        let client = self.client().await?;
        Ok(Bootstrap {
            pki,
            client,
            images: None,
        })
    }

    /// Server-side applies the cluster's own `objects` through
    /// [`apply_manifests`], named `what` in errors.
    async fn apply_objects(
        &self,
        client: &Client,
        what: &str,
        objects: Vec<serde_json::Value>,
    ) -> Result<(), LocalError> {
        let mut manifests: Vec<Manifest> = objects
            .into_iter()
            .enumerate()
            .map(|(index, object)| Manifest {
                file: PathBuf::from(format!("<local cluster `{}`: {what}>", self.name)),
                index,
                line: 1,
                object,
            })
            .collect();
        apply_manifests(
            client,
            "kube-system",
            &mut manifests,
            &kindling_core::deploy::Ownership::Cluster,
        )
        .await
        .map_err(|source| LocalError::Apply {
            what: what.to_owned(),
            source: Box::new(source),
        })?;
        Ok(())
    }

    /// Waits for Deployment `namespace/name` with the diagnosing
    /// [`Waiter`], failing at once if a component exits.
    async fn wait_deployment(
        &self,
        client: &Client,
        namespace: &str,
        name: &str,
        timeout: Duration,
    ) -> Result<(), LocalError> {
        let waiter = Waiter::new(client.clone(), vec![self.node_store()], timeout);
        let workloads = [Workload::new("Deployment", namespace, name)];
        tokio::select! {
            waited = waiter.wait(&workloads) => waited.map_err(|source| LocalError::Wait {
                what: format!("Deployment `{namespace}/{name}`"),
                source: Box::new(source),
            }),
            exited = self.watch_components(COMPONENTS) => exited,
        }
    }

    /// Returns (with its log's last lines) once one of `components` that
    /// was started has exited; never returns otherwise.
    async fn watch_components(&self, components: &[&str]) -> Result<(), LocalError> {
        loop {
            self.ensure_components_run(components)?;
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Fails with its log's last lines if one of `components` that was
    /// started has exited, except that one of [`RESTARTED_ON_EXIT`] is
    /// started again, up to [`RESTART_LIMIT`] times.
    fn ensure_components_run(&self, components: &[&str]) -> Result<(), LocalError> {
        let (restartable, others): (Vec<&str>, Vec<&str>) = components
            .iter()
            .partition(|component| RESTARTED_ON_EXIT.contains(component));
        for component in others {
            if self.supervisor.record(component).is_some() {
                self.supervisor.ensure_running(component, LOG_TAIL)?;
            }
        }
        self.restart_exited(&restartable)?;
        Ok(())
    }

    /// Starts each of `components` that has exited again (see
    /// [`Supervisor::restart_if_exited`](super::process::Supervisor::restart_if_exited)),
    /// saying so; returns the names of those restarted.
    fn restart_exited(&self, components: &[&str]) -> Result<Vec<String>, LocalError> {
        let mut restarted = Vec::new();
        for component in components {
            if let Some(record) = self.supervisor.record(component)
                && !super::process::Supervisor::is_running(&record)
                && let Some(program) = record.command.first()
                && let Err(source) =
                    kindling_core::cluster::components::verify(std::path::Path::new(program))
            {
                return Err(LocalError::Unverified {
                    component: (*component).to_owned(),
                    source,
                });
            }
            if let Some(restart) =
                self.supervisor
                    .restart_if_exited(component, RESTART_LIMIT, LOG_TAIL)?
            {
                eprintln!(
                    "kindling up: {} exited ({}); started it again ({} of {RESTART_LIMIT} restarts), as a kubelet restarts a crashed control-plane pod",
                    restart.name,
                    restart.last_line.trim(),
                    restart.attempt,
                );
                restarted.push(restart.name);
            }
        }
        Ok(restarted)
    }

    /// Polls `check` until it returns `Ok`, failing at once if one of
    /// `components` exits, and at `timeout` with the last state seen.
    /// (What is polled here are components, not workloads: the
    /// [`Waiter`] needs an API server and a node to look at.)
    async fn wait_for_components<F, Fut>(
        &self,
        what: &str,
        timeout: Duration,
        components: &[&str],
        check: F,
    ) -> Result<(), LocalError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<(), String>>,
    {
        let deadline = Instant::now() + timeout;
        let mut last;
        loop {
            self.ensure_components_run(components)?;
            match check().await {
                Ok(()) => return Ok(()),
                Err(seen) => last = seen,
            }
            if Instant::now() >= deadline {
                return Err(LocalError::Timeout {
                    what: what.to_owned(),
                    after: timeout,
                    last,
                });
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

async fn control_plane(
    cluster: &LocalCluster,
    bootstrap: &mut Bootstrap,
) -> Result<(), LocalError> {
    cluster.start_component("etcd", &bootstrap.pki)?;
    cluster.start_component("kube-apiserver", &bootstrap.pki)?;
    let client = bootstrap.client.clone();
    cluster
        .wait_for_components(
            "the API server to be ready",
            Duration::from_secs(90),
            &["etcd", "kube-apiserver"],
            || {
                let client = client.clone();
                async move {
                    let request = http::Request::get("/readyz")
                        .body(Vec::new())
                        .map_err(|error| error.to_string())?;
                    match client.request_text(request).await {
                        Ok(text) if text.trim() == "ok" => Ok(()),
                        Ok(text) => Err(text),
                        Err(error) => Err(error.to_string()),
                    }
                }
            },
        )
        .await?;
    cluster
        .apply_objects(
            &bootstrap.client,
            "the API server's kubelet binding",
            vec![manifests::apiserver_kubelet_binding()],
        )
        .await?;
    cluster.start_component("kube-controller-manager", &bootstrap.pki)?;
    cluster.start_component("kube-scheduler", &bootstrap.pki)?;
    Ok(())
}

async fn runtime_and_images(
    cluster: &LocalCluster,
    bootstrap: &mut Bootstrap,
) -> Result<(), LocalError> {
    cluster.start_component("containerd", &bootstrap.pki)?;
    let store = cluster.node_store();
    cluster
        .wait_for_components(
            "containerd to answer",
            Duration::from_secs(30),
            &["containerd"],
            || {
                let store = store.clone();
                async move {
                    store
                        .list()
                        .await
                        .map(drop)
                        .map_err(|error| error.to_string())
                }
            },
        )
        .await?;
    let docker = kindling_core::docker::connect().await?;
    let work = cluster.layout.root.join("images");
    let sources = write_image_sources(&work.join("src"))?;
    let go = |name: &str| ImageSpec::go_binary(name, &sources).go_package(format!("./{name}"));
    let pause = component_image(&docker, go("pause")).await?;
    let smoke = component_image(&docker, go("smoke")).await?;
    let coredns = component_image(
        &docker,
        ImageSpec::static_binary("coredns", &cluster.binaries.coredns),
    )
    .await?;
    let images = [pause.clone(), smoke.clone(), coredns.clone()];
    Loader::new(docker)
        .load(&images, std::slice::from_ref(&store))
        .await
        .map_err(|error| LocalError::Load(Box::new(error)))?;
    store
        .tag(pause.reference().as_str(), PAUSE_IMAGE)
        .await
        .map_err(|error| LocalError::Host {
            command: format!("ctr images tag {} {PAUSE_IMAGE}", pause.reference()),
            stderr: error.to_string(),
        })?;
    bootstrap.images = Some(ComponentImages { smoke, coredns });
    Ok(())
}

async fn node_ready(cluster: &LocalCluster, bootstrap: &mut Bootstrap) -> Result<(), LocalError> {
    cluster.start_component("kubelet", &bootstrap.pki)?;
    let nodes: Api<Node> = Api::all(bootstrap.client.clone());
    let node_name = cluster.node_name.clone();
    cluster
        .wait_for_components(
            "the node to be Ready",
            Duration::from_secs(120),
            &["containerd", "kubelet"],
            || {
                let nodes = nodes.clone();
                let node_name = node_name.clone();
                async move {
                    let node = nodes
                        .get_opt(&node_name)
                        .await
                        .map_err(|error| error.to_string())?;
                    let ready = node.as_ref().and_then(|node| {
                        node.status
                            .as_ref()?
                            .conditions
                            .as_ref()?
                            .iter()
                            .find(|c| c.type_ == "Ready")
                            .cloned()
                    });
                    match ready {
                        Some(condition) if condition.status == "True" => Ok(()),
                        Some(condition) => Err(format!(
                            "Ready={}: {}",
                            condition.status,
                            condition.message.unwrap_or_default()
                        )),
                        None => Err("the node has not registered".to_owned()),
                    }
                }
            },
        )
        .await?;
    cluster.start_component("kube-proxy", &bootstrap.pki)?;
    Ok(())
}

async fn cluster_dns(cluster: &LocalCluster, bootstrap: &mut Bootstrap) -> Result<(), LocalError> {
    let mut objects = vec![manifests::storage_class()];
    objects.extend(manifests::coredns(
        &cluster.network,
        bootstrap.images().coredns.reference().as_str(),
    ));
    cluster
        .apply_objects(&bootstrap.client, "cluster DNS", objects)
        .await?;
    cluster
        .wait_deployment(
            &bootstrap.client,
            "kube-system",
            "coredns",
            Duration::from_secs(120),
        )
        .await
}

async fn smoke_workload(
    cluster: &LocalCluster,
    bootstrap: &mut Bootstrap,
) -> Result<(), LocalError> {
    let smoke = bootstrap.images().smoke.reference().as_str().to_owned();
    cluster
        .apply_objects(
            &bootstrap.client,
            "the smoke workload",
            manifests::smoke(&smoke),
        )
        .await?;
    cluster
        .wait_deployment(
            &bootstrap.client,
            manifests::SMOKE_NAMESPACE,
            "smoke",
            Duration::from_secs(120),
        )
        .await?;
    let job = format!("probe-{}", std::process::id());
    cluster
        .apply_objects(
            &bootstrap.client,
            "the smoke probe",
            vec![manifests::smoke_probe(&smoke, &job)],
        )
        .await?;
    let jobs: Api<Job> = Api::namespaced(bootstrap.client.clone(), manifests::SMOKE_NAMESPACE);
    // The probe's Job retries until DNS answers: its failed attempts are
    // not a failure here, so this is a poll, not the diagnosing Waiter.
    cluster
        .wait_for_components(
            "the smoke Service to answer by its DNS name",
            Duration::from_secs(120),
            COMPONENTS,
            || {
                let jobs = jobs.clone();
                let job = job.clone();
                async move {
                    let found = jobs.get(&job).await.map_err(|error| error.to_string())?;
                    let status = found.status.unwrap_or_default();
                    match (status.succeeded.unwrap_or(0), status.failed.unwrap_or(0)) {
                        (succeeded, _) if succeeded > 0 => Ok(()),
                        (_, failed) => Err(format!("{failed} failed attempts")),
                    }
                }
            },
        )
        .await
}
