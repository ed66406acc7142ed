//! A suite to interrupt. Its setup hangs in phase `boot` while
//! `FIXTURE_HANG_SETUP` is set, and its test `hangs` hangs; each records
//! when it hangs, so a harness test can send the signal then. The
//! artifacts of a failed test are a file naming the test's folder.

use kindling_harness::Suite;
use kindling_harness_fixtures::record;

fn main() -> std::process::ExitCode {
    Suite::with_setup(|setup| async move {
        record("setup-started");
        setup
            .phase("boot", async {
                if std::env::var_os("FIXTURE_HANG_SETUP").is_some() {
                    record("setup-hanging");
                    std::future::pending::<()>().await;
                }
                Ok::<_, std::io::Error>(())
            })
            .await?;
        record("setup-done");
        Ok("ready".to_owned())
    })
    .on_failure(|environment: std::sync::Arc<String>, dir| async move {
        std::fs::create_dir_all(&dir).expect("artifacts folder");
        std::fs::write(dir.join("collected.txt"), environment.as_bytes()).expect("artifact");
        record("artifacts-collected");
    })
    .test("quick", |_ctx| async {
        record("quick-ran");
    })
    .test("hangs", |_ctx| async {
        record("test-hanging");
        std::future::pending::<()>().await;
    })
    .run()
}
