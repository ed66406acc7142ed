//! Two tests that need something the machine may lack (`FIXTURE_MISSING`
//! set: the requirement says it is missing, and how to get it), one given
//! it by `TestOptions` and one by `#[kindling_harness::test(requires =
//! ...)]`, and one that needs nothing: the harness tests check SKIP under nextest, ignored
//! under `cargo test`, and a failure naming the reason when `CI` is set.

use kindling_harness::{Requirement, Suite, TestOptions};
use kindling_harness_fixtures::record;

fn fixture_requirement() -> Requirement {
    Requirement::new("the fixture's tool", || {
        match std::env::var_os("FIXTURE_MISSING") {
            Some(_) => Err("the fixture's tool is not installed: unset FIXTURE_MISSING".to_owned()),
            None => Ok(()),
        }
    })
}

mod needs {
    #[kindling_harness::test(requires = super::fixture_requirement())]
    async fn the_tool_too() {
        kindling_harness_fixtures::record("needs-ran");
    }
}

fn main() -> std::process::ExitCode {
    Suite::new()
        .standalone(
            "needs::the_tool",
            TestOptions::new().requires(fixture_requirement()),
            || async {
                record("needs-ran");
            },
        )
        .standalone("free::runs_anywhere", TestOptions::new(), || async {
            record("free-ran");
        })
        .run()
}
