//! The `stack` suite's setup and test (see `stack.rs`).

use std::path::PathBuf;

use k8s_openapi::api::core::v1::Pod;
use kindling::image::ImageSpec;
use kindling::{BoxError, Environment, Suite, TestContext};
use kube::api::{Api, ListParams};

fn fixture(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(relative)
}

fn web_dir() -> PathBuf {
    std::env::var_os("FIXTURE_WEB_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| fixture("stack/web"))
}

async fn pod_uid(ctx: &TestContext<Environment>, app: &str) -> Result<String, BoxError> {
    let pods: Api<Pod> = Api::namespaced(ctx.client().await?, ctx.namespace());
    let listed = pods
        .list(&ListParams::default().labels(&format!("app={app}")))
        .await?;
    let running: Vec<String> = listed
        .items
        .iter()
        .filter(|pod| pod.metadata.deletion_timestamp.is_none())
        .filter_map(|pod| pod.metadata.uid.clone())
        .collect();
    match running.as_slice() {
        [uid] => Ok(uid.clone()),
        other => Err(format!("expected one pod of `{app}`, found {other:?}").into()),
    }
}

async fn reports(ctx: TestContext<Environment>) -> Result<(), BoxError> {
    kindling_harness_fixtures::stamp_body_start();
    if let Some(hold) = std::env::var_os("FIXTURE_HOLD") {
        // Waits, before touching the environment, until the calling test
        // has looked at this process and creates the file.
        kindling_harness_fixtures::record("body-started");
        while !std::path::Path::new(&hold).exists() {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
    let web = ctx.http("web", 8080).await?;
    let version = web.get("/version").await?;
    let store = ctx.http("store", 8080).await?;
    let key = std::env::var("FIXTURE_KEY").unwrap_or_else(|_| "datum".to_owned());
    if let Ok(value) = std::env::var("FIXTURE_WRITE") {
        let put = store.put(&format!("/items/{key}"), value).await?;
        if put.status != 204 {
            return Err(format!("the store refused the item: {put:?}").into());
        }
    }
    let item = store.get(&format!("/items/{key}")).await?;
    let report = serde_json::json!({
        "version": version.body,
        "web_pod": pod_uid(&ctx, "web").await?,
        "store_pod": pod_uid(&ctx, "store").await?,
        "item": (item.status == 200).then_some(item.body),
        "namespace": ctx.namespace(),
        "web_image": ctx.image("web"),
        "secret": ctx.secret("stack-secret", "token").await?,
    });
    if let Some(path) = std::env::var_os("FIXTURE_REPORT") {
        std::fs::write(path, report.to_string())?;
    }
    if std::env::var_os("FIXTURE_FAIL").is_some() {
        return Err("failing on purpose (FIXTURE_FAIL is set)".into());
    }
    Ok(())
}

pub fn main() -> std::process::ExitCode {
    Suite::with_setup(|setup| async move {
        let mut builder = Environment::builder(&setup);
        if let Some(extra) = std::env::var_os("FIXTURE_EXTRA_MANIFESTS") {
            builder = builder.stage("extra", PathBuf::from(extra));
        }
        Ok(builder
            .image(ImageSpec::go_binary("web", web_dir()))
            .image(ImageSpec::go_binary(
                "toolbox",
                fixture("../../../../fixtures/toolbox"),
            ))
            .manifests("stack/manifests")
            .secret(kindling::GeneratedSecret::new("stack-secret").random("token", 16))
            .wait_timeout(std::time::Duration::from_secs(120))
            .up()
            .await?)
    })
    .requires(kindling::cluster::requirement())
    .on_failure(Environment::collect_artifacts)
    .test("stack::reports", reports)
    .run()
}
