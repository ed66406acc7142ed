//! Attribute-style tests with every outcome: pass, error, panic, timeout,
//! ignored, and a test that needs no environment.

use std::time::Duration;

use kindling_harness::{TestContext, TestResult};
use tracing::Instrument as _;

mod api {
    use super::*;

    #[kindling_harness::test]
    async fn passes(ctx: TestContext) -> TestResult {
        tracing::info!(test = ctx.test_name(), "hello from passes");
        Ok(())
    }

    #[derive(Debug, thiserror::Error)]
    #[error("failed to read `ConfigMap/settings`")]
    struct ReadFailed(#[source] std::io::Error);

    #[kindling_harness::test]
    async fn fails_with_chain() -> Result<(), ReadFailed> {
        tracing::warn!("about to fail");
        Err(ReadFailed(std::io::Error::other(
            "connection reset by peer",
        )))
    }
}

mod slow {
    use super::*;

    #[kindling_harness::test(timeout = "1s")]
    async fn times_out() {
        async { tokio::time::sleep(Duration::from_secs(30)).await }
            .instrument(tracing::info_span!(
                "waiting_for",
                object = "Deployment/api"
            ))
            .await
    }

    #[kindling_harness::test(ignore)]
    async fn ignored() {}
}

#[kindling_harness::test]
async fn panics() {
    panic!("kaboom");
}

kindling_harness::main!();
