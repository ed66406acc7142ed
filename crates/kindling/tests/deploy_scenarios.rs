//! Deploying onto a real cluster: placeholders, preflight, apply errors,
//! waits by diagnosis (scoped to an environment's own pods), artifacts,
//! port-forwards and namespace collection, each scenario in a namespace of
//! its own on the `local` cluster; a Go service rolled out again for a
//! change in a local module its go.mod or go.work names (the `stack`
//! fixture suite, run twice).
//!
//! Written as a kindling suite: the setup brings the cluster up (or reuses
//! it) and delivers the toolbox image (`fixtures/toolbox`). Needs what the
//! local provider needs; without it the tests are reported as ignored, and
//! they fail when `CI` is set.

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kindling::cluster::Provider as _;
use kindling::deploy::namespace::{HEARTBEAT_ANNOTATION, RUN_LABEL, SUITE_LABEL, ensure_namespace};
use kindling::deploy::{GcPolicy, apply_manifests, collect_garbage, read_manifests};
use kindling::image::ImageSpec;
use kindling::wait::{WaitError, Workload};
use kindling::{BoxError, Environment, EnvironmentError, Suite, TestContext};
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use support::{Scratch, ensure};

const CLUSTER: &str = "kindling";
const SUITE: &str = "deploy-scenarios";

fn toolbox_sources() -> PathBuf {
    support::workspace_root().join("fixtures/toolbox")
}

/// A namespace and a folder of manifests for one scenario.
struct Scenario {
    client: Client,
    namespace: String,
    dir: PathBuf,
}

impl Scenario {
    async fn new(ctx: &TestContext<Environment>, name: &str) -> Result<Scenario, BoxError> {
        let client = ctx.client().await?;
        let namespace = ctx.unique_name(name);
        ensure_namespace(&client, &namespace, SUITE, ctx.run_id()).await?;
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(SUITE)
            .join(&namespace);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        Ok(Scenario {
            client,
            namespace,
            dir,
        })
    }

    fn manifest(&self, file: &str, yaml: &str) -> Result<PathBuf, BoxError> {
        let path = self.dir.join(file);
        std::fs::write(&path, yaml)?;
        Ok(path)
    }

    /// Deletes the namespace: scenarios leave broken pods behind.
    async fn finish(self) {
        let _ = Api::<Namespace>::all(self.client)
            .delete(&self.namespace, &DeleteParams::background())
            .await;
    }
}

fn web_deployment(name: &str, image: &str, policy: &str) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
spec:
  replicas: 1
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      containers:
        - name: web
          image: {image}
          {policy}
          args: [serve, "8080", {name}]
          ports: [{{name: http, containerPort: 8080}}]
          readinessProbe:
            httpGet: {{path: /healthz, port: http}}
            periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata:
  name: {name}
spec:
  selector: {{app: {name}}}
  ports: [{{port: 8080, targetPort: http}}]
"#
    )
}

fn toolbox_reference(ctx: &TestContext<Environment>) -> Result<String, BoxError> {
    Ok(ctx
        .image("toolbox")
        .ok_or("the setup delivered no toolbox image")?
        .to_owned())
}

async fn deploys_with_exact_returned_reference(
    ctx: TestContext<Environment>,
) -> Result<(), BoxError> {
    let scenario = Scenario::new(&ctx, "exact").await?;
    let path = scenario.manifest("web.yaml", &web_deployment("web", "kindling:toolbox", ""))?;
    ctx.deploy(&scenario.namespace, &[path], Duration::from_secs(90))
        .await?;
    let reference = toolbox_reference(&ctx)?;
    let pods = Api::<Pod>::namespaced(scenario.client.clone(), &scenario.namespace)
        .list(&ListParams::default().labels("app=web"))
        .await?;
    let pod = pods.items.first().ok_or("no pod for Deployment web")?;
    let spec = &pod.spec.as_ref().ok_or("pod without spec")?.containers[0];
    ensure(spec.image.as_deref() == Some(reference.as_str()), || {
        format!(
            "the pod asks for {:?}, the build returned {reference}",
            spec.image
        )
    })?;
    ensure(spec.image_pull_policy.as_deref() == Some("Never"), || {
        format!("pull policy {:?}, expected Never", spec.image_pull_policy)
    })?;
    // The container runs exactly what the node's store holds under that reference.
    let status = &pod
        .status
        .as_ref()
        .and_then(|status| status.container_statuses.clone())
        .ok_or("pod without container statuses")?[0];
    let stores = support::local_cluster(CLUSTER).node_stores().await?;
    let held = stores[0].list().await?;
    let stored = held
        .iter()
        .find(|image| image.reference == reference)
        .ok_or_else(|| format!("the node does not hold {reference}"))?;
    // The kubelet names the running image by one of its repo digests: when
    // the same image also came from a registry (the existing provider's
    // tests push it), that digest is the registry's manifest, of the same
    // image ID.
    let running_digest = status.image_id.rsplit('@').next().unwrap_or_default();
    let same_image = stored.manifest_digest == running_digest
        || held.iter().any(|image| {
            image.manifest_digest == running_digest
                && image.image_id.is_some()
                && image.image_id == stored.image_id
        });
    ensure(same_image, || {
        format!(
            "the container runs {}, the node holds {reference} as {} (image {:?}): {held:?}",
            status.image_id, stored.manifest_digest, stored.image_id
        )
    })?;
    scenario.finish().await;
    Ok(())
}

async fn wrong_tag_fails_fast_with_image_diagnosis(
    ctx: TestContext<Environment>,
) -> Result<(), BoxError> {
    let scenario = Scenario::new(&ctx, "wrongtag").await?;
    let reference = toolbox_reference(&ctx)?;
    let wrong = format!("{}0000", &reference[..reference.len() - 4]);
    let path = scenario.manifest(
        "wrong.yaml",
        &web_deployment("wrong", &wrong, "imagePullPolicy: Never"),
    )?;
    // The preflight refuses it before anything is applied...
    let error = ctx
        .deploy(
            &scenario.namespace,
            std::slice::from_ref(&path),
            Duration::from_secs(90),
        )
        .await
        .expect_err("a literal tag that was never loaded must fail")
        .to_string();
    for expected in [
        wrong.as_str(),
        &format!("nearest loaded reference is `{reference}`"),
        "Deployment/wrong",
    ] {
        ensure(error.contains(expected), || {
            format!("preflight message lacks {expected:?}:\n{error}")
        })?;
    }
    // ...and a pod that asks for it anyway (manifests applied without the
    // preflight) is diagnosed from the node's store within seconds.
    let mut manifests = read_manifests(&[path])?;
    let started = Instant::now();
    apply_manifests(
        &scenario.client,
        &scenario.namespace,
        &mut manifests,
        &kindling::deploy::Ownership::suite(&scenario.namespace),
    )
    .await?;
    let waiter = ctx.env().waiter(Duration::from_secs(120)).await?;
    let outcome = waiter
        .wait(&[Workload::new("Deployment", &scenario.namespace, "wrong")])
        .await;
    let elapsed = started.elapsed();
    let Err(WaitError::Diagnosed(diagnosis)) = outcome else {
        return Err(format!("expected a diagnosis, got {outcome:?}").into());
    };
    let text = diagnosis.to_string();
    tracing::info!("diagnosed in {:.1}s:\n{text}", elapsed.as_secs_f64());
    ensure(elapsed <= Duration::from_secs(15), || {
        format!("the diagnosis took {elapsed:?}, more than 15 s")
    })?;
    for expected in [
        "ErrImageNeverPull",
        "Deployment/wrong",
        &format!("image asked for: {wrong}"),
        &reference,
        "holds (nearest first)",
    ] {
        ensure(text.contains(expected), || {
            format!("the diagnosis lacks {expected:?}:\n{text}")
        })?;
    }
    scenario.finish().await;
    Ok(())
}

async fn unknown_placeholder_fails_before_apply(
    ctx: TestContext<Environment>,
) -> Result<(), BoxError> {
    let scenario = Scenario::new(&ctx, "placeholder").await?;
    let settings = scenario.manifest(
        "0-settings.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {mode: test}\n",
    )?;
    let web = scenario.manifest("1-web.yaml", &web_deployment("web", "kindling:toolbx", ""))?;
    let error = ctx
        .deploy(
            &scenario.namespace,
            &[settings, web],
            Duration::from_secs(30),
        )
        .await
        .expect_err("an unknown placeholder must fail");
    ensure(matches!(error, EnvironmentError::Preflight(_)), || {
        format!("expected a preflight error, got {error:?}")
    })?;
    let text = error.to_string();
    for expected in ["`kindling:toolbx`", "`kindling:toolbox`", "1-web.yaml"] {
        ensure(text.contains(expected), || {
            format!("the message lacks {expected:?}:\n{text}")
        })?;
    }
    let applied = Api::<ConfigMap>::namespaced(scenario.client.clone(), &scenario.namespace)
        .get_opt("settings")
        .await?;
    ensure(applied.is_none(), || {
        "the ConfigMap was applied although the preflight failed".to_owned()
    })?;
    scenario.finish().await;
    Ok(())
}

async fn crashloop_is_diagnosed_with_logs(ctx: TestContext<Environment>) -> Result<(), BoxError> {
    let scenario = Scenario::new(&ctx, "crash").await?;
    let path = scenario.manifest(
        "crasher.yaml",
        r#"apiVersion: apps/v1
kind: Deployment
metadata: {name: crasher}
spec:
  selector: {matchLabels: {app: crasher}}
  template:
    metadata: {labels: {app: crasher}}
    spec:
      containers:
        - name: main
          image: kindling:toolbox
          args: [crash, "fatal: DATABASE_URL is not set"]
"#,
    )?;
    let started = Instant::now();
    let error = ctx
        .deploy(&scenario.namespace, &[path], Duration::from_secs(120))
        .await
        .expect_err("a crashing container must fail the wait");
    let text = error.to_string();
    tracing::info!(
        "diagnosed in {:.1}s:\n{text}",
        started.elapsed().as_secs_f64()
    );
    for expected in [
        "CrashLoopBackOff",
        "Deployment/crasher",
        "container `main`",
        "fatal: DATABASE_URL is not set",
        "recent events",
    ] {
        ensure(text.contains(expected), || {
            format!("the diagnosis lacks {expected:?}:\n{text}")
        })?;
    }
    // A test's own wait on a condition is cut short by the same diagnosis.
    let waiter = ctx.env().waiter(Duration::from_secs(60)).await?;
    let started = Instant::now();
    let outcome = waiter
        .until("the crasher answers", &scenario.namespace, || async {
            false
        })
        .await;
    ensure(
        matches!(&outcome, Err(WaitError::Diagnosed(d)) if d.fatal.reason == "CrashLoopBackOff"),
        || format!("expected the crash loop's diagnosis, got {outcome:?}"),
    )?;
    ensure(started.elapsed() < Duration::from_secs(10), || {
        format!(
            "the wait took {:?} to notice the crash loop",
            started.elapsed()
        )
    })?;
    scenario.finish().await;
    Ok(())
}

async fn bad_yaml_names_file_and_line(ctx: TestContext<Environment>) -> Result<(), BoxError> {
    let scenario = Scenario::new(&ctx, "yaml").await?;
    let path = scenario.manifest(
        "broken.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: fine}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: broken\ndata: {key: [unclosed\n",
    )?;
    let error = ctx
        .deploy(
            &scenario.namespace,
            std::slice::from_ref(&path),
            Duration::from_secs(30),
        )
        .await
        .expect_err("broken YAML must fail");
    ensure(matches!(error, EnvironmentError::Manifest(_)), || {
        format!("expected a manifest error, got {error:?}")
    })?;
    let text = error.to_string();
    for expected in [
        path.display().to_string(),
        "document 1".to_owned(),
        "line ".to_owned(),
    ] {
        ensure(text.contains(&expected), || {
            format!("the message lacks {expected:?}: {text}")
        })?;
    }
    let line: u32 = text
        .split("line ")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|digits| digits.parse().ok())
        .ok_or_else(|| format!("no line number in {text}"))?;
    ensure((8..=10).contains(&line), || {
        format!("the error is on line 9 of the file, the message says {line}: {text}")
    })?;
    scenario.finish().await;
    Ok(())
}

async fn validation_error_names_object(ctx: TestContext<Environment>) -> Result<(), BoxError> {
    let scenario = Scenario::new(&ctx, "invalid").await?;
    let before = scenario.manifest(
        "0-settings.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\n",
    )?;
    // Container names must be DNS labels: the API server refuses `Web_1`.
    let invalid = scenario.manifest(
        "1-invalid.yaml",
        &web_deployment("invalid", "kindling:toolbox", "").replace("name: web", "name: Web_1"),
    )?;
    let error = ctx
        .deploy(
            &scenario.namespace,
            &[before, invalid.clone()],
            Duration::from_secs(30),
        )
        .await
        .expect_err("an invalid Deployment must be refused");
    let text = error.to_string();
    for expected in [
        "Deployment".to_owned(),
        format!("`{}/invalid`", scenario.namespace),
        invalid.display().to_string(),
        "Web_1".to_owned(),
    ] {
        ensure(text.contains(&expected), || {
            format!("the message lacks {expected:?}: {text}")
        })?;
    }
    let applied = Api::<ConfigMap>::namespaced(scenario.client.clone(), &scenario.namespace)
        .get_opt("settings")
        .await?;
    ensure(applied.is_none(), || {
        "the ConfigMap was applied although the dry run refused the Deployment".to_owned()
    })?;
    // A kind the cluster does not serve names the file and the object.
    let unknown = scenario.manifest(
        "2-unknown.yaml",
        "apiVersion: apps/v1\nkind: Deploymnet\nmetadata: {name: typo}\n",
    )?;
    let text = ctx
        .deploy(
            &scenario.namespace,
            std::slice::from_ref(&unknown),
            Duration::from_secs(30),
        )
        .await
        .expect_err("an unknown kind must be refused")
        .to_string();
    for expected in [
        "kind `Deploymnet`".to_owned(),
        "`typo`".to_owned(),
        unknown.display().to_string(),
    ] {
        ensure(text.contains(&expected), || {
            format!("the message lacks {expected:?}: {text}")
        })?;
    }
    scenario.finish().await;
    Ok(())
}

async fn crd_waits_until_established(ctx: TestContext<Environment>) -> Result<(), BoxError> {
    let scenario = Scenario::new(&ctx, "crd").await?;
    let group = format!("{}.kindling.test", scenario.namespace);
    let crd_name = format!("widgets.{group}");
    let path = scenario.manifest(
        "widgets.yaml",
        &format!(
            r#"apiVersion: {group}/v1
kind: Widget
metadata: {{name: first}}
spec: {{size: 3}}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {{name: {crd_name}}}
spec:
  group: {group}
  scope: Namespaced
  names: {{plural: widgets, singular: widget, kind: Widget}}
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              properties:
                size: {{type: integer}}
"#
        ),
    )?;
    // The custom resource comes first in the file: apply order puts the CRD first.
    let applied = ctx
        .deploy(&scenario.namespace, &[path], Duration::from_secs(30))
        .await?;
    let kinds: Vec<&str> = applied.iter().map(|a| a.kind.as_str()).collect();
    ensure(kinds == ["CustomResourceDefinition", "Widget"], || {
        format!("applied in the order {kinds:?}")
    })?;
    let crds = Api::<CustomResourceDefinition>::all(scenario.client.clone());
    let crd = crds.get(&crd_name).await?;
    let established = crd
        .status
        .and_then(|status| status.conditions)
        .unwrap_or_default()
        .iter()
        .any(|c| c.type_ == "Established" && c.status == "True");
    ensure(established, || format!("{crd_name} is not Established"))?;
    let resource = kube::discovery::ApiResource::from_gvk_with_plural(
        &kube::core::GroupVersionKind::gvk(&group, "v1", "Widget"),
        "widgets",
    );
    let widget = Api::<kube::api::DynamicObject>::namespaced_with(
        scenario.client.clone(),
        &scenario.namespace,
        &resource,
    )
    .get_opt("first")
    .await?;
    ensure(widget.is_some(), || "the Widget was not created".to_owned())?;
    let _ = crds.delete(&crd_name, &DeleteParams::background()).await;
    scenario.finish().await;
    Ok(())
}

async fn concurrent_endpoints_do_not_collide(
    ctx: TestContext<Environment>,
) -> Result<(), BoxError> {
    let scenario = Scenario::new(&ctx, "endpoints").await?;
    let alpha = scenario.manifest(
        "alpha.yaml",
        &web_deployment("alpha", "kindling:toolbox", ""),
    )?;
    let beta = scenario.manifest("beta.yaml", &web_deployment("beta", "kindling:toolbox", ""))?;
    ctx.deploy(&scenario.namespace, &[alpha, beta], Duration::from_secs(90))
        .await?;
    let opened = futures_util::future::try_join_all((0..6).map(|index| {
        let client = scenario.client.clone();
        let namespace = scenario.namespace.clone();
        async move {
            let service = if index % 2 == 0 { "alpha" } else { "beta" };
            let endpoint =
                kindling::access::port_forward(&client, &namespace, service, 8080).await?;
            Ok::<_, BoxError>((service, endpoint))
        }
    }))
    .await?;
    let mut ports: Vec<u16> = opened.iter().map(|(_, e)| e.address().port()).collect();
    ports.sort();
    ports.dedup();
    ensure(ports.len() == 6, || {
        format!("local ports collide: {ports:?}")
    })?;
    let answers =
        futures_util::future::try_join_all(opened.iter().flat_map(|(service, endpoint)| {
            (0..3).map(move |_| {
                let http = endpoint.http();
                async move {
                    let answer = http.get("/").await?;
                    Ok::<_, BoxError>((*service, answer))
                }
            })
        }))
        .await?;
    for (service, answer) in &answers {
        ensure(answer.status == 200 && answer.body == *service, || {
            format!("the {service} endpoint answered {answer:?}")
        })?;
    }
    scenario.finish().await;
    Ok(())
}

/// What a test calls fails with the error of its own kind, naming what is
/// missing: access with `AccessError`, Kubernetes helpers with `KubeError`,
/// waits with `WaitError`.
async fn test_helpers_fail_with_their_own_errors_naming_what_is_missing(
    ctx: TestContext<Environment>,
) -> Result<(), BoxError> {
    match ctx.http("no-such-service", 80).await.err() {
        Some(kindling::AccessError::NoService { service, namespace }) => ensure(
            service == "no-such-service" && namespace == ctx.namespace(),
            || format!("NoService named `{namespace}/{service}`"),
        )?,
        other => return Err(format!("http to a missing Service gave {other:?}").into()),
    }
    match ctx.objects("kindling.dev/v1", "NoSuchKind").await.err() {
        Some(error @ kindling::KubeError::Discovery { .. }) => ensure(
            error
                .to_string()
                .contains("kind `NoSuchKind` of `kindling.dev/v1`"),
            || format!("the discovery error reads: {error}"),
        )?,
        other => return Err(format!("objects of a missing kind gave {other:?}").into()),
    }
    match ctx.token("no-such-account").await.err() {
        Some(kindling::KubeError::Credential(kindling::CredentialError::Token {
            account, ..
        })) => ensure(account == "no-such-account", || {
            format!("the token error names account `{account}`")
        })?,
        other => return Err(format!("a token of a missing account gave {other:?}").into()),
    }
    let waited = ctx
        .wait_for(
            "a check that never passes",
            Duration::from_millis(500),
            || async { Err::<(), _>("still failing".to_owned()) },
        )
        .await;
    match waited.err() {
        Some(error @ kindling::WaitError::Timeout { .. }) => {
            ensure(error.to_string().contains("still failing"), || {
                format!("the wait's timeout reads: {error}")
            })?
        }
        other => return Err(format!("a wait that never passes gave {other:?}").into()),
    }
    Ok(())
}

/// Garbage collection judges heartbeats by the API server's clock and
/// deletes with a precondition: a namespace renewed by a writer whose clock
/// is 16 minutes ahead or behind is kept, one renewed between another
/// run's list and delete is kept, one abandoned past the grace period goes,
/// and one kindling did not make is never listed.
async fn gc_keeps_running_runs(ctx: TestContext<Environment>) -> Result<(), BoxError> {
    use kindling::deploy::namespace::{delete_stale, heartbeat, server_time, stale_namespaces};
    let client = ctx.client().await?;
    let suite = ctx.unique_name("gc-suite");
    let namespaces = Api::<Namespace>::all(client.clone());
    let run = |name: &str| format!("{name}-run");
    let skewed_ahead = ctx.unique_name("gc-ahead");
    let skewed_behind = ctx.unique_name("gc-behind");
    let abandoned = ctx.unique_name("gc-abandoned");
    let renewed = ctx.unique_name("gc-renewed");
    for name in [&skewed_ahead, &skewed_behind, &abandoned, &renewed] {
        ensure_namespace(&client, name, &suite, &run(name)).await?;
    }
    // Someone else's namespace with kindling's suite label but not its
    // managed-by label: never listed, whatever its age.
    let foreign = ctx.unique_name("gc-foreign");
    namespaces
        .patch(
            &foreign,
            &PatchParams::apply("someone-else"),
            &Patch::Apply(serde_json::json!({
                "apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": foreign, "labels": {SUITE_LABEL: suite, RUN_LABEL: "x"}}
            })),
        )
        .await?;
    // Writers whose clocks are 16 minutes off renew the two skewed ones:
    // their annotations say so, the server's stamp says now.
    let minutes = chrono::Duration::minutes;
    for (name, skew) in [(&skewed_ahead, minutes(16)), (&skewed_behind, minutes(-16))] {
        let written = (chrono::Utc::now() + skew).to_rfc3339();
        namespaces
            .patch(
                name,
                &PatchParams {
                    field_manager: Some(kindling::deploy::namespace::HEARTBEAT_MANAGER.to_owned()),
                    ..Default::default()
                },
                &Patch::Merge(serde_json::json!({
                    "metadata": {"annotations": {HEARTBEAT_ANNOTATION: written}}
                })),
            )
            .await?;
    }
    let policy = |grace: Duration| GcPolicy {
        grace,
        suite: Some(suite.clone()),
        keep: Vec::new(),
    };
    let report = collect_garbage(&client, &policy(Duration::from_secs(15 * 60))).await?;
    ensure(report.deleted.is_empty(), || {
        format!("deleted {:?} within the grace period", report.deleted)
    })?;
    let mut expected_kept = vec![
        abandoned.clone(),
        renewed.clone(),
        skewed_ahead.clone(),
        skewed_behind.clone(),
    ];
    expected_kept.sort();
    ensure(report.kept == expected_kept, || {
        format!("kept {:?}, expected {expected_kept:?}", report.kept)
    })?;

    // With a 3-second grace, wait until the server's clock has passed it
    // for `abandoned` and `renewed` (renewing the skewed ones meanwhile).
    let grace = Duration::from_secs(3);
    let started = server_time(&client).await?;
    loop {
        for name in [&skewed_ahead, &skewed_behind] {
            heartbeat(&client, name).await?;
        }
        let now = server_time(&client).await?;
        if now - started > chrono::Duration::seconds(6) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (stale, _) = stale_namespaces(&client, &policy(grace)).await?;
    let stale_names: Vec<&str> = stale.iter().map(|s| s.name.as_str()).collect();
    ensure(
        stale_names.contains(&abandoned.as_str()) && stale_names.contains(&renewed.as_str()),
        || format!("stale: {stale_names:?}"),
    )?;
    ensure(
        !stale_names.contains(&skewed_ahead.as_str()) && !stale_names.contains(&foreign.as_str()),
        || format!("stale: {stale_names:?}"),
    )?;
    // `renewed` is renewed between the decision and the delete.
    heartbeat(&client, &renewed).await?;
    let deleted = delete_stale(&client, &stale).await?;
    ensure(
        deleted.deleted == [abandoned.clone()] && deleted.kept == [renewed.clone()],
        || format!("deleted {:?}, kept {:?}", deleted.deleted, deleted.kept),
    )?;
    let alive =
        |found: Option<Namespace>| found.is_some_and(|ns| ns.metadata.deletion_timestamp.is_none());
    ensure(!alive(namespaces.get_opt(&abandoned).await?), || {
        format!("{abandoned} was not deleted")
    })?;
    for name in [&renewed, &skewed_ahead, &skewed_behind, &foreign] {
        ensure(alive(namespaces.get_opt(name).await?), || {
            format!("{name} was deleted")
        })?;
        let _ = namespaces.delete(name, &DeleteParams::background()).await;
    }
    Ok(())
}

/// Runs the `environment` fixture suite with `manifests`; returns its output.
async fn run_environment_fixture(manifests: &Path) -> Result<support::Ran, BoxError> {
    run_environment_fixture_with(manifests, &[]).await
}

async fn run_environment_fixture_with(
    manifests: &Path,
    variables: &[(&'static str, &'static str)],
) -> Result<support::Ran, BoxError> {
    let manifests = manifests.to_str().expect("UTF-8 path").to_owned();
    let variables = variables.to_vec();
    Ok(tokio::task::spawn_blocking(move || {
        let scratch = Scratch::new();
        let mut variables = variables;
        variables.push(("FIXTURE_MANIFESTS", &manifests));
        support::run_binary(&scratch, "environment", &[], &variables)
    })
    .await?)
}

/// The folder a failure message names after `artifacts: `.
fn artifacts_folder(output: &str) -> Result<PathBuf, BoxError> {
    output
        .lines()
        .find_map(|line| line.trim().strip_prefix("artifacts: "))
        .map(PathBuf::from)
        .ok_or_else(|| format!("no `artifacts:` line in the output:\n{output}").into())
}

async fn failed_job_fails_setup(ctx: TestContext<Environment>) -> Result<(), BoxError> {
    let scenario = Scenario::new(&ctx, "job").await?;
    scenario.manifest(
        "migrate.yaml",
        r#"apiVersion: batch/v1
kind: Job
metadata: {name: migrate}
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: migrate
          image: kindling:toolbox
          args: [fail, "migration failed: table items already exists"]
"#,
    )?;
    let ran = run_environment_fixture(&scenario.dir).await?;
    let text = ran.text();
    ensure(ran.code == Some(101), || {
        format!("expected test failures:\n{text}")
    })?;
    for expected in [
        "setup phase `deploy` failed",
        "Job/migrate",
        "failed",
        "migration failed: table items already exists",
    ] {
        ensure(text.contains(expected), || {
            format!("the output lacks {expected:?}:\n{text}")
        })?;
    }
    let folder = artifacts_folder(&text)?;
    ensure(folder.ends_with("setup"), || {
        format!(
            "setup artifacts should be in a `setup` folder: {}",
            folder.display()
        )
    })?;
    let logs = std::fs::read_dir(folder.join("logs"))?
        .flatten()
        .map(|entry| std::fs::read_to_string(entry.path()).unwrap_or_default())
        .collect::<String>();
    ensure(logs.contains("migration failed"), || {
        format!(
            "the Job's log is not among the artifacts in {}",
            folder.display()
        )
    })?;
    scenario.finish().await;
    Ok(())
}

async fn artifacts_written_on_failure(ctx: TestContext<Environment>) -> Result<(), BoxError> {
    let scenario = Scenario::new(&ctx, "artifacts").await?;
    scenario.manifest("web.yaml", &web_deployment("web", "kindling:toolbox", ""))?;
    let ran = run_environment_fixture_with(&scenario.dir, &[("FIXTURE_COPY", "1")]).await?;
    let text = ran.text();
    ensure(
        text.contains("failing on purpose after the service answered `web`"),
        || format!("the fixture's test did not fail as written:\n{text}"),
    )?;
    let folder = artifacts_folder(&text)?;
    ensure(folder.ends_with("service__fails_on_purpose"), || {
        format!(
            "a test's artifacts should be in a folder named after it: {}",
            folder.display()
        )
    })?;
    for file in ["pods.yaml", "workloads.yaml", "events.txt", "cluster"] {
        ensure(folder.join(file).exists(), || {
            format!("{} is missing from {}", file, folder.display())
        })?;
    }
    let pods = std::fs::read_to_string(folder.join("pods.yaml"))?;
    ensure(pods.contains("toolbox"), || {
        format!("pods.yaml lacks the web pod:\n{pods}")
    })?;
    let logs: Vec<String> = std::fs::read_dir(folder.join("logs"))?
        .flatten()
        .map(|entry| std::fs::read_to_string(entry.path()).unwrap_or_default())
        .collect();
    ensure(
        logs.iter().any(|log| log.contains("toolbox serving web")),
        || format!("the web container's log is missing: {logs:?}"),
    )?;
    let images = std::fs::read_dir(&folder)?
        .flatten()
        .filter(|entry| entry.file_name().to_string_lossy().starts_with("node-"))
        .map(|entry| std::fs::read_to_string(entry.path()).unwrap_or_default())
        .collect::<String>();
    ensure(images.contains("localhost/kindling/toolbox"), || {
        format!("no node image list names the toolbox image:\n{images}")
    })?;
    // A test that breaks something does it in a copy: the copy's pods and
    // logs are evidence too.
    let copy = text
        .split("the copy in namespace `")
        .nth(1)
        .and_then(|rest| rest.split('`').next())
        .ok_or_else(|| format!("the fixture made no copy:\n{text}"))?;
    let copy_folder = folder.join("copies").join(copy);
    let copy_pods = std::fs::read_to_string(copy_folder.join("pods.yaml"))
        .map_err(|error| format!("{}: {error}", copy_folder.join("pods.yaml").display()))?;
    ensure(
        copy_pods.contains(&format!("namespace: {copy}")) && copy_pods.contains("toolbox"),
        || format!("the copy's pods.yaml lacks its web pod:\n{copy_pods}"),
    )?;
    let copy_logs: Vec<String> = std::fs::read_dir(copy_folder.join("logs"))?
        .flatten()
        .map(|entry| std::fs::read_to_string(entry.path()).unwrap_or_default())
        .collect();
    ensure(
        copy_logs
            .iter()
            .any(|log| log.contains("toolbox serving web")),
        || format!("the copy's web container log is missing: {copy_logs:?}"),
    )?;
    // The fixture's namespace is its own; it is collected by a later run.
    scenario.finish().await;
    Ok(())
}

/// An environment of its own for a scenario, on the local cluster, with
/// the toolbox image and the given stages; the namespace it made is
/// deleted afterwards.
async fn scenario_environment(
    name: &str,
    stages: &[(&str, &str)],
    secret: Option<kindling::GeneratedSecret>,
) -> Result<(Result<Environment, kindling::PhaseError>, PathBuf), BoxError> {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(SUITE)
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let setup = kindling::SetupContext::standalone(name, &dir);
    let mut builder = Environment::builder(&setup)
        .provider(Box::new(support::local_cluster(CLUSTER)))
        .image(ImageSpec::go_binary("toolbox", toolbox_sources()))
        .wait_timeout(Duration::from_secs(90));
    for (stage, yaml) in stages {
        let file = dir.join(format!("{stage}.yaml"));
        std::fs::write(&file, yaml)?;
        builder = builder.stage(*stage, file);
    }
    if let Some(secret) = secret {
        builder = builder.secret(secret);
    }
    Ok((builder.up().await, dir))
}

async fn delete_suite_namespaces(client: &Client, suite: &str) {
    let api = Api::<Namespace>::all(client.clone());
    let selector = format!("{SUITE_LABEL}={suite}");
    if let Ok(list) = api.list(&ListParams::default().labels(&selector)).await {
        for namespace in list.items {
            let name = namespace.metadata.name.unwrap_or_default();
            let _ = api.delete(&name, &DeleteParams::background()).await;
        }
    }
}

async fn stages_run_in_order_and_a_failed_migration_stops_the_rest(
    ctx: TestContext<Environment>,
) -> Result<(), BoxError> {
    let suite = ctx.unique_name("stages");
    let database = web_deployment("db", "kindling:toolbox", "");
    let migration = r#"apiVersion: batch/v1
kind: Job
metadata: {name: migrate}
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers:
        - {name: migrate, image: kindling:toolbox, args: [fail, "migration 007 failed: column exists"]}
"#;
    let service =
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: service-config}\ndata: {ready: 'yes'}\n";
    let (result, _) = scenario_environment(
        &suite,
        &[
            ("database", &database),
            ("migrations", migration),
            ("service", service),
        ],
        None,
    )
    .await?;
    let client = ctx.client().await?;
    let error = match result {
        Ok(_) => {
            delete_suite_namespaces(&client, &suite).await;
            return Err("a failing migration did not fail the setup".into());
        }
        Err(error) => error,
    };
    let text = support::error_text(&error);
    let found = Api::<Namespace>::all(client.clone())
        .list(&ListParams::default().labels(&format!("{SUITE_LABEL}={suite}")))
        .await?;
    let namespace = found
        .items
        .first()
        .and_then(|found| found.metadata.name.clone())
        .ok_or("the failed setup made no namespace")?;
    let service_applied = Api::<ConfigMap>::namespaced(client.clone(), &namespace)
        .get_opt("service-config")
        .await?
        .is_some();
    let database_applied =
        Api::<k8s_openapi::api::apps::v1::Deployment>::namespaced(client.clone(), &namespace)
            .get_opt("db")
            .await?
            .is_some();
    delete_suite_namespaces(&client, &suite).await;
    ensure(error.phase == "migrations", || {
        format!("failed in phase `{}`: {text}", error.phase)
    })?;
    ensure(text.contains("migration 007 failed: column exists"), || {
        format!("the Job's log is not in the error: {text}")
    })?;
    ensure(database_applied && !service_applied, || {
        format!(
            "the database stage must be applied and the service stage not (database {database_applied}, service {service_applied})"
        )
    })?;
    Ok(())
}

async fn generated_secrets_reach_pods_and_never_artifacts(
    ctx: TestContext<Environment>,
) -> Result<(), BoxError> {
    let suite = ctx.unique_name("secrets");
    let web = r#"apiVersion: apps/v1
kind: Deployment
metadata: {name: talker}
spec:
  selector: {matchLabels: {app: talker}}
  template:
    metadata: {labels: {app: talker}}
    spec:
      containers:
        - name: web
          image: kindling:toolbox
          # The toolbox logs its identity: here, the password.
          args: [serve, "8080", "$(PASSWORD)"]
          env:
            - {name: PASSWORD, valueFrom: {secretKeyRef: {name: kt-credentials, key: password}}}
          readinessProbe: {httpGet: {path: /healthz, port: 8080}, periodSeconds: 1}
"#;
    let secret = kindling::GeneratedSecret::new("kt-credentials")
        .literal("username", "app")
        .random("password", 24);
    let (result, dir) = scenario_environment(&suite, &[("deploy", web)], Some(secret)).await?;
    let environment = result?;
    let password = environment.secret("kt-credentials", "password").await?;
    let artifacts = dir.join("artifacts");
    std::sync::Arc::new(environment.clone())
        .collect_artifacts(artifacts.clone())
        .await;
    environment.delete_namespace().await?;
    ensure(
        password.len() == 24 && password.chars().all(|c| c.is_ascii_alphanumeric()),
        || {
            format!(
                "a generated password of 24 letters and digits, got {} characters",
                password.len()
            )
        },
    )?;
    let mut texts = String::new();
    let mut pending = vec![artifacts.clone()];
    while let Some(path) = pending.pop() {
        if path.is_dir() {
            pending.extend(
                std::fs::read_dir(&path)?
                    .flatten()
                    .map(|entry| entry.path()),
            );
        } else {
            texts.push_str(&String::from_utf8_lossy(&std::fs::read(&path)?));
        }
    }
    ensure(!texts.contains(&password), || {
        "the password reached an artifact in clear".to_owned()
    })?;
    ensure(
        texts.contains("toolbox serving <redacted: Secret kt-credentials key password>"),
        || {
            format!(
                "the pod's log line is not there, redacted: {}",
                artifacts.display()
            )
        },
    )?;
    let listed = std::fs::read_to_string(artifacts.join("secrets.txt"))?;
    ensure(
        listed.contains("kt-credentials (Opaque): password (24 bytes), username (3 bytes)"),
        || listed.clone(),
    )?;
    Ok(())
}

/// The `secrets` fixture's basic-auth password (`fixture-suites/secrets.rs`).
const LEAKY_BASIC_PASSWORD: &str = r#"p@ss/w0rd "q" & <more>"#;

/// The forms a leaked value takes in logs and reports, made here apart
/// from kindling's redactor: as it is, base64 (standard and URL-safe, with
/// and without padding), URL-encoded (strict, with `+` for spaces, as Go
/// escapes user info), JSON-escaped (also as Go escapes `<>&`) and
/// XML-escaped (as JUnit holds it).
fn leaked_forms(value: &str) -> Vec<(&'static str, String)> {
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    let escape = |kept: &[u8], plus: bool| -> String {
        value
            .bytes()
            .map(|byte| {
                if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) || kept.contains(&byte) {
                    char::from(byte).to_string()
                } else if byte == b' ' && plus {
                    "+".to_owned()
                } else {
                    format!("%{byte:02X}")
                }
            })
            .collect()
    };
    let json = serde_json::to_string(value).expect("a string serialises");
    let json = json[1..json.len() - 1].to_owned();
    let mut forms = vec![
        ("as it is", value.to_owned()),
        ("base64", STANDARD.encode(value)),
        ("base64 without padding", STANDARD_NO_PAD.encode(value)),
        ("URL-safe base64", URL_SAFE.encode(value)),
        (
            "URL-safe base64 without padding",
            URL_SAFE_NO_PAD.encode(value),
        ),
        ("URL-encoded", escape(b"", false)),
        ("URL-encoded with +", escape(b"", true)),
        ("URL-encoded as user info", escape(b"$&+,;=", false)),
        (
            "JSON-escaped as Go does",
            json.replace('<', "\\u003c")
                .replace('>', "\\u003e")
                .replace('&', "\\u0026"),
        ),
        ("JSON-escaped", json),
        (
            "XML-escaped",
            value
                .replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
                .replace('"', "&quot;"),
        ),
    ];
    forms.sort_by(|a, b| a.1.cmp(&b.1));
    forms.dedup_by(|a, b| a.1 == b.1);
    forms
}

/// Every file under `root`, as text.
fn files_under(root: &Path) -> Result<Vec<(String, String)>, BoxError> {
    let mut files = Vec::new();
    let mut pending = vec![root.to_owned()];
    while let Some(path) = pending.pop() {
        let kind = std::fs::symlink_metadata(&path)?.file_type();
        if kind.is_dir() {
            pending.extend(
                std::fs::read_dir(&path)?
                    .flatten()
                    .map(|entry| entry.path()),
            );
        } else if kind.is_file() {
            let text = String::from_utf8_lossy(&std::fs::read(&path)?).into_owned();
            files.push((path.display().to_string(), text));
        }
    }
    Ok(files)
}

/// Fails naming the first place where a form of a value appears (never
/// the value itself).
fn ensure_nothing_leaked(
    values: &[(&str, &str)],
    places: &[(String, String)],
) -> Result<(), String> {
    for (what, value) in values {
        for (form, text) in leaked_forms(value) {
            for (place, content) in places {
                ensure(!content.contains(&text), || {
                    format!("{what} ({form}) appears in {place}")
                })?;
            }
        }
    }
    Ok(())
}

/// What a run of the `secrets` fixture left, and the values it leaked.
struct LeakyRun {
    runs: Vec<support::Ran>,
    scratch: Scratch,
    namespace: String,
    password: String,
    token: String,
}

impl LeakyRun {
    /// Runs the fixture's two tests in a process each, as nextest does (one
    /// run id, the setup in the first), leaking at `when`; then reads the
    /// values it leaked and deletes its namespace.
    async fn run(ctx: &TestContext<Environment>, when: &str) -> Result<LeakyRun, BoxError> {
        let run_id = uuid::Uuid::new_v4().to_string();
        let work = tempfile::tempdir()?;
        let scratch = Scratch::new();
        let target = scratch.root.path().join("target");
        let env = [
            ("NEXTEST", "1".to_owned()),
            ("NEXTEST_RUN_ID", run_id.clone()),
            ("CARGO_TARGET_DIR", target.display().to_string()),
            ("FIXTURE_LEAK", when.to_owned()),
            ("FIXTURE_WORK", work.path().display().to_string()),
        ];
        let (runs, scratch) = tokio::task::spawn_blocking(move || {
            let env: Vec<(&str, &str)> = env
                .iter()
                .map(|(key, value)| (*key, value.as_str()))
                .collect();
            let runs = ["first::leaks", "second::leaks"]
                .map(|test| support::run_binary(&scratch, "secrets", &["--exact", test], &env));
            (runs.into(), scratch)
        })
        .await?;
        let namespace = kindling::deploy::namespace::suite_namespace("secrets", &run_id);
        let client = ctx.client().await?;
        let password =
            Api::<k8s_openapi::api::core::v1::Secret>::namespaced(client.clone(), &namespace)
                .get_opt("leaky-db")
                .await;
        let leaker =
            Api::<k8s_openapi::api::apps::v1::Deployment>::namespaced(client.clone(), &namespace)
                .get_opt("leaker")
                .await;
        let _ = Api::<Namespace>::all(client)
            .delete(&namespace, &DeleteParams::background())
            .await;
        let token = leaker?
            .and_then(|leaker| leaker.spec?.template.spec?.containers.first()?.args.clone())
            .into_iter()
            .flatten()
            .find_map(|arg| arg.strip_prefix("token ").map(str::to_owned))
            .ok_or("the leaker Deployment names no token: the setup did not get that far")?;
        let password = password?
            .and_then(|secret| secret.data?.remove("password"))
            .map(|value| String::from_utf8_lossy(&value.0).into_owned())
            .ok_or("the setup made no Secret `leaky-db`")?;
        Ok(LeakyRun {
            runs,
            scratch,
            namespace,
            password,
            token,
        })
    }

    fn output(&self) -> String {
        self.runs
            .iter()
            .map(support::Ran::text)
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Fails if a value appears, in any form, in what the processes printed
    /// or in any file the run left (state, JUnit, artifacts).
    fn ensure_nothing_leaked(&self) -> Result<(), BoxError> {
        let header = {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD
                .encode(format!("leaky-user:{LEAKY_BASIC_PASSWORD}"))
        };
        let mut places = files_under(self.scratch.root.path())?;
        for (index, ran) in self.runs.iter().enumerate() {
            places.push((
                format!("the stdout of process {}", index + 1),
                ran.stdout.clone(),
            ));
            places.push((
                format!("the stderr of process {}", index + 1),
                ran.stderr.clone(),
            ));
        }
        ensure(places.len() > 4, || {
            format!("the run left no files:\n{}", self.output())
        })?;
        ensure_nothing_leaked(
            &[
                ("the generated password", &self.password),
                ("the minted token", &self.token),
                ("the basic-auth password", LEAKY_BASIC_PASSWORD),
                ("the Basic authorization header", &header),
            ],
            &places,
        )?;
        Ok(())
    }
}

async fn leaked_secrets_reach_no_output_when_the_setup_fails(
    ctx: TestContext<Environment>,
) -> Result<(), BoxError> {
    let run = LeakyRun::run(&ctx, "setup").await?;
    let output = run.output();
    let [first, second] = &run.runs[..] else {
        unreachable!("two processes ran");
    };
    ensure(first.code == Some(101) && second.code == Some(101), || {
        format!("both tests must fail with the setup:\n{output}")
    })?;
    // The leaks were there to redact: the crash's log is in the error,
    // every value in its place.
    for expected in [
        "CrashLoopBackOff",
        "generated password <redacted: Secret leaky-db key password>",
        "token <redacted: token of ServiceAccount",
        "Authorization: Basic <redacted: Secret leaky-basic",
        "url: https://<redacted: Secret leaky-basic key username>:<redacted: Secret leaky-basic key password, URL-encoded>@db.example/",
    ] {
        ensure(first.text().contains(expected), || {
            format!("the setup's error lacks {expected:?}:\n{output}")
        })?;
    }
    ensure(second.text().contains("failed in another process"), || {
        format!("the second process did not take the recorded failure:\n{output}")
    })?;
    let state = run.scratch.state("secrets");
    ensure(
        state["error"]
            .as_str()
            .is_some_and(|error| error.contains("<redacted: Secret leaky-db key password>")),
        || format!("the state's error lacks the redacted log: {state}"),
    )?;
    let kindling_dir = run.scratch.root.path().join("target/kindling");
    let junit = std::fs::read_dir(kindling_dir.join("junit"))?
        .flatten()
        .map(|entry| std::fs::read_to_string(entry.path()).unwrap_or_default())
        .collect::<String>();
    ensure(
        junit.contains("redacted: Secret leaky-db key password"),
        || format!("the setup's JUnit lacks the redacted log:\n{junit}"),
    )?;
    let artifacts = artifacts_folder(&first.text())?;
    let logs = files_under(&artifacts.join("logs"))?;
    ensure(
        logs.iter().any(|(_, log)| {
            log.contains("generated password <redacted: Secret leaky-db key password>")
        }),
        || {
            format!(
                "the leaker's log is not among the artifacts in {}",
                artifacts.display()
            )
        },
    )?;
    ensure(artifacts.join("cluster").is_dir(), || {
        format!("no cluster logs in {}", artifacts.display())
    })?;
    run.ensure_nothing_leaked()?;
    tracing::info!("namespace {} checked and deleted", run.namespace);
    Ok(())
}

/// The tests run in processes that never saw the setup mint its token:
/// each learns it from the cluster, and its artifacts hold it redacted.
async fn leaked_secrets_reach_no_output_from_tests_in_other_processes(
    ctx: TestContext<Environment>,
) -> Result<(), BoxError> {
    let run = LeakyRun::run(&ctx, "test").await?;
    let output = run.output();
    for (index, ran) in run.runs.iter().enumerate() {
        let text = ran.text();
        ensure(
            ran.code == Some(101)
                && text
                    .contains("failing on purpose with <redacted: Secret leaky-db key password>"),
            || format!("process {} did not fail as written:\n{output}", index + 1),
        )?;
        let artifacts = artifacts_folder(&text)?;
        let logs = files_under(&artifacts.join("logs"))?;
        // The second process learned the setup's token from the cluster.
        let token = if index == 0 {
            "token <redacted: token of ServiceAccount"
        } else {
            "token <redacted: a token kindling minted>"
        };
        ensure(logs.iter().any(|(_, log)| log.contains(token)), || {
            format!(
                "no leaker log with {token:?} in the artifacts of process {} ({})",
                index + 1,
                artifacts.display()
            )
        })?;
    }
    run.ensure_nothing_leaked()?;
    Ok(())
}

/// One test's broken pod must not fail another test's wait in the same
/// namespace: an environment's waits diagnose only its own workloads' pods.
async fn another_tests_broken_pod_does_not_fail_an_environments_wait(
    ctx: TestContext<Environment>,
) -> Result<(), BoxError> {
    let suite = ctx.unique_name("scoped");
    let steady = web_deployment("steady", "kindling:toolbox", "");
    let (result, _dir) = scenario_environment(&suite, &[("deploy", &steady)], None).await?;
    let environment = result?;
    let namespace = environment.namespace().to_owned();
    let pods = Api::<Pod>::namespaced(environment.client().await?, &namespace);
    let crasher: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "other-tests-crasher"},
        "spec": {"containers": [{
            "name": "main",
            "image": toolbox_reference(&ctx)?,
            "args": ["crash", "another test's pod"],
        }]},
    }))?;
    pods.create(&Default::default(), &crasher).await?;

    // The crasher goes into CrashLoopBackOff after its first exit and is
    // restarted a second time only after that back-off: a wait that looked
    // at every pod of the namespace would have failed in between.
    let restarts = || {
        let pods = pods.clone();
        async move {
            let pod = pods
                .get("other-tests-crasher")
                .await
                .map_err(|error| error.to_string())?;
            let restarts = pod
                .status
                .and_then(|status| status.container_statuses)
                .and_then(|statuses| statuses.first().map(|status| status.restart_count))
                .unwrap_or_default();
            if restarts >= 2 {
                Ok(restarts)
            } else {
                Err(format!("the crasher restarted {restarts} times"))
            }
        }
    };
    let scoped = environment
        .watching_waiter(Duration::from_secs(90))
        .await?
        .until_ok(
            "the other test's pod has crashed twice",
            &namespace,
            restarts,
        )
        .await;
    // A namespace-wide wait does see it, so the scoped one had it to ignore.
    let namespace_wide = environment
        .waiter(Duration::from_secs(30))
        .await?
        .until("nothing", &namespace, || async { false })
        .await;
    environment.delete_namespace().await?;
    ensure(scoped.is_ok(), || {
        format!("the environment's wait failed on a pod not its own: {scoped:?}")
    })?;
    ensure(
        matches!(&namespace_wide, Err(WaitError::Diagnosed(diagnosis))
            if diagnosis.pod == "other-tests-crasher"
                && diagnosis.fatal.reason == "CrashLoopBackOff"),
        || format!("a namespace-wide wait should diagnose the crasher, got {namespace_wide:?}"),
    )?;
    Ok(())
}

/// How a Go service reaches the local module `common` beside it.
#[derive(Clone, Copy)]
enum GoLayout {
    /// `replace example.com/common => ../common` in the service's go.mod.
    Replace,
    /// A go.work above both: `use (./web ./common)`.
    Workspace,
}

/// A monorepo of two Go modules: `web`, serving at `/version` the version
/// string of `common`, and `common`. `web` is what the `stack` fixture
/// suite builds (`FIXTURE_WEB_DIR`).
fn go_monorepo(layout: GoLayout, version: &str) -> Result<tempfile::TempDir, BoxError> {
    let dir = tempfile::tempdir()?;
    let write = |relative: &str, text: &str| -> Result<(), BoxError> {
        let path = dir.path().join(relative);
        std::fs::create_dir_all(path.parent().ok_or("a file in a folder")?)?;
        Ok(std::fs::write(path, text)?)
    };
    let web_mod = match layout {
        GoLayout::Replace => {
            "module example.com/web\n\ngo 1.22\n\nrequire example.com/common v0.0.0\n\nreplace example.com/common => ../common\n"
        }
        GoLayout::Workspace => {
            write("go.work", "go 1.22\n\nuse (\n\t./web\n\t./common\n)\n")?;
            "module example.com/web\n\ngo 1.22\n"
        }
    };
    write("web/go.mod", web_mod)?;
    write(
        "web/main.go",
        r#"// Command web serves the version of the module common it was built with.
package main

import (
	"fmt"
	"net/http"
	"os"

	"example.com/common"
)

func main() {
	http.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	http.HandleFunc("/version", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, common.Version) })
	if err := http.ListenAndServe(":8080", nil); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
"#,
    )?;
    write("common/go.mod", "module example.com/common\n\ngo 1.22\n")?;
    set_common_version(dir.path(), version)?;
    Ok(dir)
}

fn set_common_version(monorepo: &Path, version: &str) -> Result<(), BoxError> {
    Ok(std::fs::write(
        monorepo.join("common/version.go"),
        format!("package common\n\nconst Version = \"{version}\"\n"),
    )?)
}

/// Runs the `stack` fixture suite on `web` of `monorepo` and returns the
/// report of its test: the version `web` served, its image, its pod.
async fn run_stack_on(
    scratch: &std::sync::Arc<Scratch>,
    monorepo: &Path,
    keep: &str,
) -> Result<serde_json::Value, BoxError> {
    let scratch = scratch.clone();
    let web = monorepo.join("web").display().to_string();
    let keep = keep.to_owned();
    tokio::task::spawn_blocking(move || -> Result<serde_json::Value, BoxError> {
        let report = scratch.root.path().join("report.json");
        let _ = std::fs::remove_file(&report);
        let ran = support::run_binary(
            &scratch,
            "stack",
            &[],
            &[
                ("FIXTURE_WEB_DIR", &web),
                ("FIXTURE_REPORT", report.to_str().ok_or("a UTF-8 path")?),
                ("KINDLING_KEEP", &keep),
            ],
        );
        ensure(ran.code == Some(0), || ran.text())?;
        Ok(serde_json::from_str(&std::fs::read_to_string(&report)?)?)
    })
    .await?
}

/// A change in a local module the service's go.mod or go.work names, and
/// nowhere in the service's own folder, rebuilds the service and rolls it
/// out in the same namespace on the next run, the rest kept.
async fn a_change_in_a_local_go_module_rolls_out_the_service(
    ctx: &TestContext<Environment>,
    layout: GoLayout,
) -> Result<(), BoxError> {
    let first = ctx.unique_name("common");
    let second = format!("{first}-changed");
    let monorepo = go_monorepo(layout, &first)?;
    let scratch = std::sync::Arc::new(Scratch::new());
    let before = run_stack_on(&scratch, monorepo.path(), "always").await?;
    set_common_version(monorepo.path(), &second)?;
    // KINDLING_KEEP=never: the second run deletes the namespace at its end.
    let after = run_stack_on(&scratch, monorepo.path(), "never").await?;
    ensure(before["version"] == first.as_str(), || {
        format!("the first build served another version: {before}")
    })?;
    ensure(after["version"] == second.as_str(), || {
        format!("a change in common was not rolled out (expected {second:?}): {after}")
    })?;
    ensure(before["web_image"] != after["web_image"], || {
        format!("the image kept its tag: {before} then {after}")
    })?;
    ensure(
        before["namespace"] == after["namespace"]
            && before["web_pod"] != after["web_pod"]
            && before["store_pod"] == after["store_pod"],
        || format!("web was not rolled out alone in the same namespace: {before} then {after}"),
    )?;
    Ok(())
}

async fn a_change_in_a_replaced_go_module_rolls_out_the_service(
    ctx: TestContext<Environment>,
) -> Result<(), BoxError> {
    a_change_in_a_local_go_module_rolls_out_the_service(&ctx, GoLayout::Replace).await
}

async fn a_change_in_a_go_workspace_member_rolls_out_the_service(
    ctx: TestContext<Environment>,
) -> Result<(), BoxError> {
    a_change_in_a_local_go_module_rolls_out_the_service(&ctx, GoLayout::Workspace).await
}

fn main() -> std::process::ExitCode {
    let cluster = support::local_cluster(CLUSTER);
    let mut suite = Suite::with_setup(|setup| async move {
        let environment = Environment::builder(&setup)
            .provider(Box::new(support::local_cluster(CLUSTER)))
            .image(ImageSpec::go_binary("toolbox", toolbox_sources()))
            .up()
            .await?;
        Ok(environment)
    })
    .requires(cluster.requirement())
    .on_failure(Environment::collect_artifacts)
    .setup_timeout(Duration::from_secs(600));
    suite = suite.test(
        "deploys_with_exact_returned_reference",
        deploys_with_exact_returned_reference,
    );
    suite = suite.test(
        "wrong_tag_fails_fast_with_image_diagnosis",
        wrong_tag_fails_fast_with_image_diagnosis,
    );
    suite = suite.test(
        "unknown_placeholder_fails_before_apply",
        unknown_placeholder_fails_before_apply,
    );
    suite = suite.test(
        "crashloop_is_diagnosed_with_logs",
        crashloop_is_diagnosed_with_logs,
    );
    suite = suite.test("failed_job_fails_setup", failed_job_fails_setup);
    suite = suite.test("bad_yaml_names_file_and_line", bad_yaml_names_file_and_line);
    suite = suite.test(
        "validation_error_names_object",
        validation_error_names_object,
    );
    suite = suite.test("crd_waits_until_established", crd_waits_until_established);
    suite = suite.test(
        "concurrent_endpoints_do_not_collide",
        concurrent_endpoints_do_not_collide,
    );
    suite = suite.test("artifacts_written_on_failure", artifacts_written_on_failure);
    suite = suite.test("gc_keeps_running_runs", gc_keeps_running_runs);
    suite = suite.test(
        "test_helpers_fail_with_their_own_errors_naming_what_is_missing",
        test_helpers_fail_with_their_own_errors_naming_what_is_missing,
    );
    suite = suite.test(
        "stages_run_in_order_and_a_failed_migration_stops_the_rest",
        stages_run_in_order_and_a_failed_migration_stops_the_rest,
    );
    suite = suite.test(
        "generated_secrets_reach_pods_and_never_artifacts",
        generated_secrets_reach_pods_and_never_artifacts,
    );
    suite = suite.test(
        "another_tests_broken_pod_does_not_fail_an_environments_wait",
        another_tests_broken_pod_does_not_fail_an_environments_wait,
    );
    suite = suite.test(
        "a_change_in_a_replaced_go_module_rolls_out_the_service",
        a_change_in_a_replaced_go_module_rolls_out_the_service,
    );
    suite = suite.test(
        "a_change_in_a_go_workspace_member_rolls_out_the_service",
        a_change_in_a_go_workspace_member_rolls_out_the_service,
    );
    suite = suite.test(
        "leaked_secrets_reach_no_output_when_the_setup_fails",
        leaked_secrets_reach_no_output_when_the_setup_fails,
    );
    suite = suite.test(
        "leaked_secrets_reach_no_output_from_tests_in_other_processes",
        leaked_secrets_reach_no_output_from_tests_in_other_processes,
    );
    suite.run()
}
