//! The `stack` suite under a third name: a suite of its own (state,
//! namespace), for the tests that run several suites at once on one cluster.

#[path = "stack/suite.rs"]
mod suite;

fn main() -> std::process::ExitCode {
    suite::main()
}
