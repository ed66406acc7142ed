//! A whole E2E environment on the local cluster: the toolbox image and the
//! manifests in `$FIXTURE_MANIFESTS`. Its one test fails on purpose, so the
//! scenario tests can check what a failure leaves: the setup's failure (a
//! failed Job) or a test's, with artifacts either way. With
//! `FIXTURE_COPY=1` the test first makes an isolated copy of the stack and
//! calls its service too, so the artifacts must cover the copy.

use std::path::{Path, PathBuf};

use kindling::image::ImageSpec;
use kindling::{BoxError, Environment, Suite, TestContext};

fn toolbox_sources() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../../fixtures/toolbox")
}

async fn fails_on_purpose(ctx: TestContext<Environment>) -> Result<(), BoxError> {
    if std::env::var_os("FIXTURE_COPY").is_some() {
        let copy = ctx.isolated_copy("evidence").await?;
        let answer = copy.http("web", 8080).await?.get("/").await?;
        println!(
            "the copy in namespace `{}` answered `{}`",
            copy.namespace(),
            answer.body
        );
    }
    let http = ctx.http("web", 8080).await?;
    let answer = http.get("/").await?;
    Err(format!(
        "failing on purpose after the service answered `{}`",
        answer.body
    )
    .into())
}

fn main() -> std::process::ExitCode {
    let manifests = PathBuf::from(
        std::env::var_os("FIXTURE_MANIFESTS").expect("FIXTURE_MANIFESTS names the manifests"),
    );
    Suite::with_setup(move |setup| {
        let manifests = manifests.clone();
        async move {
            let environment = Environment::builder(&setup)
                .image(ImageSpec::go_binary("toolbox", toolbox_sources()))
                .manifests(manifests)
                .wait_timeout(std::time::Duration::from_secs(90))
                .up()
                .await?;
            Ok(environment)
        }
    })
    .on_failure(Environment::collect_artifacts)
    .test("service::fails_on_purpose", fails_on_purpose)
    .run()
}
