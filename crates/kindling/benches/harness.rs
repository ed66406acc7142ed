//! Harness overheads, printed as `bench: <metric> = <value> <unit>`:
//!
//! - `per_test_process_overhead_ms`: from spawning a suite process the way
//!   nextest does (`--exact NAME --nocapture`, setup already recorded for
//!   the run) to the test body starting. Target: at most 50 ms.
//! - `list_1000_tests_ms`: `--list --format terse` of a 1000-test suite.
//!   Target: at most 100 ms.
//!
//! Medians of several runs of the fixture suites (debug builds, as tests
//! are usually built). Run with `cargo bench -p kindling --bench harness`.

#[path = "../tests/support/mod.rs"]
mod support;

use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use support::{Scratch, clean_command, fixture, median};

const ROUNDS: usize = 21;

fn nanos_now() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos()
}

fn per_test_process_overhead_ms() -> f64 {
    let scratch = Scratch::new();
    let run_id = "6a6e7c1e-0000-4000-8000-0000000be4c4";
    let stamp = scratch.root.path().join("body-start");
    let run = |record_stamp: bool| {
        let mut command = clean_command(fixture(support::bench_targets::BASIC_CREATE.target));
        scratch
            .apply(&mut command)
            .args([
                "--exact",
                support::bench_targets::BASIC_CREATE.test,
                "--nocapture",
            ])
            .env("NEXTEST", "1")
            .env("NEXTEST_RUN_ID", run_id)
            .env("NEXTEST_EXECUTION_MODE", "process-per-test")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if record_stamp {
            command.env("FIXTURE_BODY_STAMP", &stamp);
        }
        let spawned_at = nanos_now();
        let status = command.status().expect("fixture runs");
        assert!(status.success(), "fixture failed");
        spawned_at
    };
    run(false); // records the setup for this run
    let samples = (0..ROUNDS)
        .map(|_| {
            let spawned_at = run(true);
            let body_at: u128 = std::fs::read_to_string(&stamp)
                .expect("stamp")
                .trim()
                .parse()
                .expect("nanos");
            (body_at - spawned_at) as f64 / 1e6
        })
        .collect();
    assert_eq!(
        scratch.count("setup-started"),
        1,
        "the setup must be recorded once and reused"
    );
    median(samples)
}

fn list_1000_tests_ms() -> f64 {
    let samples = (0..ROUNDS)
        .map(|_| {
            let started = Instant::now();
            let output = clean_command(fixture("many"))
                .args(["--list", "--format", "terse"])
                .output()
                .expect("fixture lists");
            let elapsed = started.elapsed();
            assert!(output.status.success());
            assert_eq!(output.stdout.iter().filter(|b| **b == b'\n').count(), 1000);
            elapsed
        })
        .map(|elapsed: Duration| elapsed.as_secs_f64() * 1e3)
        .collect();
    median(samples)
}

fn main() {
    support::fixture_binaries();
    println!(
        "bench: per_test_process_overhead_ms = {:.1} ms",
        per_test_process_overhead_ms()
    );
    println!("bench: list_1000_tests_ms = {:.1} ms", list_1000_tests_ms());
}
