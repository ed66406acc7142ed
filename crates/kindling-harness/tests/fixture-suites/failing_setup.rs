//! A setup that fails: every test must fail with its error, and the setup
//! must run once per run.

use kindling_harness::Suite;
use kindling_harness_fixtures::record;

#[derive(Debug, thiserror::Error)]
#[error("cannot reach the cluster at `127.0.0.1:6443`")]
struct Unreachable(#[source] std::io::Error);

fn suite() -> Suite<String> {
    let mut suite = Suite::with_setup(|setup| async move {
        record("setup-started");
        let address = setup
            .phase("connect", async {
                Err::<String, _>(Unreachable(std::io::Error::new(
                    std::io::ErrorKind::ConnectionRefused,
                    "connection refused",
                )))
            })
            .await?;
        Ok(address)
    });
    for name in ["first", "second", "third"] {
        suite = suite.test(name, |_ctx| async {
            record("test-ran");
        });
    }
    suite
}

kindling_harness::main!(suite());
