//! The four E2E suites (DataStorage, Gateway, Notification, AuthWebhook)
//! on the one local cluster, one after another and all at once, in one
//! bench run on the same machine, printed as
//! `bench: four_suites_sequential_s`, `four_suites_concurrent_s` and their
//! ratio (target ≤ 0.6 on two cores).
//!
//! Each form runs every test of the four suites with `cargo nextest run`,
//! nextest's default test threads, `KINDLING_KEEP=never` and a state
//! directory of its own, so every suite deploys its namespace from scratch
//! (images built and in the node, as on a team's machine during the day):
//!
//! - sequential: `cargo nextest run -p e2e-<service>` for one suite after
//!   the other;
//! - concurrent: the four commands started at the same moment, as from
//!   parallel terminals or CI jobs;
//! - one run: `cargo nextest run -p …` naming all four, as `--workspace`.
//!
//! The end-of-run cleanup of each form is waited for outside its time.
//! Run with `cargo bench -p kindling --bench four_suites`.

#[path = "../tests/support/mod.rs"]
mod support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kindling::BoxError;
use kindling::cluster::Provider as _;
use support::{clean_command, fixture_target_dir, workspace_root};

const SUITES: &[&str] = &[
    "e2e-datastorage",
    "e2e-gateway",
    "e2e-notification",
    "e2e-authwebhook",
];

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned())
}

/// `cargo nextest run -p <packages>` with the bench's state in `state`.
fn nextest(packages: &[&str], state: &Path, extra: &[&str]) -> Command {
    let mut command = clean_command(cargo());
    command
        .current_dir(workspace_root())
        .args(["nextest", "run"])
        .args(if extra.is_empty() {
            &["--no-fail-fast"][..]
        } else {
            extra
        })
        .args(packages.iter().flat_map(|package| ["-p", package]))
        .env("CARGO_TARGET_DIR", fixture_target_dir())
        .env("KINDLING_STATE_DIR", state)
        .env("KINDLING_PROVIDER", "local")
        .env(
            "KINDLING_JUNIT",
            state.join(format!("{}.xml", packages.join("+"))),
        )
        .env("KINDLING_KEEP", "never")
        .env("KINDLING_PROGRESS", "none")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

fn finish(packages: &[&str], child: Child) -> Result<(), BoxError> {
    let output = child.wait_with_output()?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let tail: Vec<&str> = stderr.lines().rev().take(60).collect();
    Err(format!(
        "`cargo nextest run -p {}` failed:\n{}",
        packages.join(" -p "),
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    )
    .into())
}

/// Waits, untimed, until the `runs` nextest runs recorded in `state` have
/// finished their end-of-run cleanup.
fn await_cleanups(state: &Path, runs: usize) -> Result<(), BoxError> {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let ended = std::fs::read_dir(state.join("runs"))
            .into_iter()
            .flatten()
            .flatten()
            .filter(|run| run.path().join("end.json").is_file())
            .count();
        if ended >= runs {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "{ended} of {runs} runs in {} finished their cleanup in 300 s",
                state.display()
            )
            .into());
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Every suite at once, each its own `cargo nextest run`.
fn concurrent(state: &Path) -> Result<f64, BoxError> {
    let started = Instant::now();
    let children: Vec<(&str, Child)> = SUITES
        .iter()
        .map(|suite| Ok((*suite, nextest(&[suite], state, &[]).spawn()?)))
        .collect::<Result<_, BoxError>>()?;
    for (suite, child) in children {
        finish(&[suite], child)?;
    }
    let seconds = started.elapsed().as_secs_f64();
    await_cleanups(state, SUITES.len())?;
    Ok(seconds)
}

fn main() -> Result<(), BoxError> {
    let cluster = support::local_cluster("kindling");
    if let Err(reason) = cluster.requirement().check() {
        println!("bench: skipped, {reason}");
        return Ok(());
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(cluster.up())?;
    let build = tempfile::tempdir()?;
    let status = nextest(SUITES, build.path(), &["--no-run"])
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .status()?;
    if !status.success() {
        return Err("building the four suites failed".into());
    }
    // Builds every image once and loads it, so each form below only deploys.
    let warm = tempfile::tempdir()?;
    concurrent(warm.path())?;

    let sequential_state = tempfile::tempdir()?;
    let mut each = Vec::new();
    let mut sequential = 0.0;
    for suite in SUITES {
        let started = Instant::now();
        finish(
            &[suite],
            nextest(&[suite], sequential_state.path(), &[]).spawn()?,
        )?;
        let seconds = started.elapsed().as_secs_f64();
        sequential += seconds;
        each.push(format!("{suite} {seconds:.1} s"));
        await_cleanups(sequential_state.path(), each.len())?;
    }
    let concurrent_state = tempfile::tempdir()?;
    let concurrent = concurrent(concurrent_state.path())?;
    let one_run_state = tempfile::tempdir()?;
    let started = Instant::now();
    finish(SUITES, nextest(SUITES, one_run_state.path(), &[]).spawn()?)?;
    let one_run = started.elapsed().as_secs_f64();
    await_cleanups(one_run_state.path(), 1)?;

    println!(
        "bench: four_suites_sequential_s = {sequential:.1} s ({})",
        each.join(", ")
    );
    println!("bench: four_suites_concurrent_s = {concurrent:.1} s");
    println!(
        "bench: four_suites_concurrent_ratio = {:.2} (target <= 0.6)",
        concurrent / sequential
    );
    println!("bench: four_suites_one_nextest_run_s = {one_run:.1} s");
    println!(
        "bench: four_suites_one_nextest_run_ratio = {:.2}",
        one_run / sequential
    );
    Ok(())
}
