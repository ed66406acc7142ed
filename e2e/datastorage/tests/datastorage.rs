//! E2E suite of the datastorage service. The environment declares the
//! service's image (a Go module built into a `FROM scratch` image) and
//! `manifests/`, where `image: kindling:datastorage` becomes the exact
//! reference the build returned; kindling fingerprints both, so a changed
//! source is rebuilt and rolled out on the next run and an unchanged one
//! reuses everything. The tests reach the Service through port-forwards.
//!
//! Run with `cargo nextest run -p e2e-datastorage`. The provider is the
//! one `KINDLING_PROVIDER` names (`local` by default); what it needs and
//! lacks makes the tests SKIP, or fail when `CI` is set.

use kindling::image::ImageSpec;
use kindling::{BoxError, Environment, SetupContext, Suite, TestContext, TestResult};

async fn setup(setup: SetupContext) -> Result<Environment, BoxError> {
    Ok(Environment::builder(&setup)
        .image(ImageSpec::go_binary(
            "datastorage",
            "../../fixtures/datastorage",
        ))
        .manifests("manifests")
        .up()
        .await?)
}

mod api {
    use super::*;

    #[kindling::test(timeout = "60s")]
    async fn put_then_get_returns_the_value(ctx: TestContext<Environment>) -> TestResult {
        let http = ctx.http("datastorage", 8080).await?;
        let key = ctx.unique_name("key");
        let put = http.put(&format!("/items/{key}"), "hello").await?;
        assert_eq!(put.status, 204, "PUT answered {put:?}");
        let get = http.get(&format!("/items/{key}")).await?;
        tracing::info!(?get, image = ctx.image("datastorage"), "GET");
        assert_eq!((get.status, get.body.as_str()), (200, "hello"));
        Ok(())
    }

    #[kindling::test(timeout = "60s")]
    async fn a_missing_key_is_not_found(ctx: TestContext<Environment>) -> TestResult {
        let http = ctx.http("datastorage", 8080).await?;
        let get = http
            .get(&format!("/items/{}", ctx.unique_name("absent")))
            .await?;
        assert_eq!(get.status, 404, "{get:?}");
        Ok(())
    }
}

mod health {
    use super::*;

    #[kindling::test(timeout = "60s")]
    async fn answers_health_checks(ctx: TestContext<Environment>) -> TestResult {
        let http = ctx.http("datastorage", 8080).await?;
        let health = http.get("/healthz").await?;
        assert_eq!((health.status, health.body.trim()), (200, "ok"));
        Ok(())
    }
}

kindling::main!(
    Suite::with_setup(setup)
        .requires(kindling::cluster::requirement())
        .on_failure(Environment::collect_artifacts)
);
