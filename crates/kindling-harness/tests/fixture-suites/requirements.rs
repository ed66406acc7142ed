//! Two tests that need something the machine may lack (`FIXTURE_MISSING`
//! set: the requirement says it is missing, and how to get it) and one
//! that needs nothing: the harness tests check SKIP under nextest, ignored
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

fn main() -> std::process::ExitCode {
    Suite::new()
        .standalone(
            "needs::the_tool",
            TestOptions::new().requires(fixture_requirement()),
            || async {
                record("needs-ran");
            },
        )
        .standalone(
            "needs::the_tool_too",
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
