//! Five tests sharing one run-wide setup, and one ignored test.

use kindling_harness::{BoxError, Suite, TestOptions};
use kindling_harness_fixtures::{millis_from_env, record, stamp_body_start};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Env {
    token: String,
}

fn suite() -> Suite<Env> {
    let mut suite = Suite::with_setup(|setup| async move {
        record("setup-started");
        if let Some(pause) = millis_from_env("FIXTURE_SETUP_SLEEP_MS") {
            setup
                .phase("slow", async move {
                    tokio::time::sleep(pause).await;
                    Ok::<_, BoxError>(())
                })
                .await?;
        }
        let token = setup
            .phase("token", async {
                tracing::info!("making the token");
                Ok::<_, BoxError>(format!("token-{}", std::process::id()))
            })
            .await?;
        record("setup-done");
        Ok(Env { token })
    })
    .fingerprint("fixture", || {
        std::env::var("FIXTURE_FINGERPRINT").unwrap_or_default()
    })
    .alive("token", |_env| async {
        match std::env::var("FIXTURE_DEAD") {
            Ok(_) => Err("the token expired".into()),
            Err(_) => Ok(()),
        }
    });
    for name in [
        "api::create",
        "api::read",
        "api::update",
        "api::delete",
        "health::ready",
    ] {
        suite = suite.test(name, |ctx| async move {
            stamp_body_start();
            if let Some(pause) = millis_from_env("FIXTURE_TEST_SLEEP_MS") {
                tokio::time::sleep(pause).await;
            }
            tracing::info!(test = ctx.test_name(), "using {}", ctx.env().token);
            record("test-ran");
            assert!(ctx.env().token.starts_with("token-"));
        });
    }
    suite.test_with("slow::soak", TestOptions::new().ignored(), |_ctx| async {})
}

kindling_harness::main!(suite());
