//! Reuse and setup figures on the local cluster, printed as
//! `bench: <metric> = <value> <unit>`:
//!
//! - `fingerprint_ms`: computing the fingerprint of `e2e-datastorage`'s
//!   environment (the DataStorage stack of `e2e/stacks`: its images' build
//!   inputs or references, its stages' manifests, the provider), warm;
//!   median of 21. Target at most 50 ms. Needs Docker (the third-party
//!   images are looked up), not the cluster.
//! - `changed_service_rerun_s`: the `stack` fixture suite (two images, a
//!   Deployment and a StatefulSet) after one source file of its `web`
//!   service changed, from starting `cargo nextest run` to its test body
//!   starting, the StatefulSet's pod kept; printed with that image's build
//!   time. Target at most the build time + 3 s.
//! - `cold_setup_overlap_ratio`: a cold setup of the same suite (cluster
//!   down, `web` never built) divided by max(cluster, build) + images +
//!   deploy, each phase's own time from the same setup. Target at most 1.1.
//!
//! The other two need what the local provider needs; they take the cluster
//! down once and leave it up. Run with `cargo bench -p kindling --bench
//! reuse`; `cargo bench -p kindling --bench reuse -- fingerprint_ms` runs
//! only the figures whose names contain the words given.

#[path = "../tests/support/mod.rs"]
mod support;

use std::path::Path;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use kindling::cluster::Provider as _;
use kindling::{BoxError, Environment, SetupContext};
use support::{Scratch, finish, median, spawn_nextest, workspace_root};

fn nanos_now() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos()
}

async fn fingerprint_ms() -> Result<f64, BoxError> {
    let package = workspace_root().join("e2e/datastorage");
    let setup = SetupContext::standalone("datastorage", &package);
    // What the suite's own setup declares (e2e/datastorage/tests/datastorage/main.rs).
    let mut builder = Environment::builder(&setup).stack(e2e_stacks::datastorage());
    builder.fingerprint().await?;
    let mut samples = Vec::new();
    for _ in 0..21 {
        let started = Instant::now();
        builder.fingerprint().await?;
        samples.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(median(samples))
}

/// A copy of the stack suite's `web` service, at `version`.
fn web_at(dir: &Path, version: &str) -> Result<(), BoxError> {
    let sources = workspace_root().join("crates/kindling/tests/fixture-suites/stack/web");
    std::fs::create_dir_all(dir)?;
    std::fs::copy(sources.join("go.mod"), dir.join("go.mod"))?;
    let main = std::fs::read_to_string(sources.join("main.go"))?;
    std::fs::write(
        dir.join("main.go"),
        main.replace(
            "const version = \"v1\"",
            &format!("const version = \"{version}\""),
        ),
    )?;
    Ok(())
}

/// One run of the stack suite: seconds from the command to the test body,
/// and the report its test wrote.
fn run_stack(scratch: &Scratch, web: &Path) -> Result<(f64, serde_json::Value), BoxError> {
    let report = scratch.root.path().join("report.json");
    let stamp = scratch.root.path().join("body-start");
    let (report_path, stamp_path, web_dir) = (
        report.display().to_string(),
        stamp.display().to_string(),
        web.display().to_string(),
    );
    let started = nanos_now();
    let child = spawn_nextest(
        scratch,
        "stack",
        &[
            ("FIXTURE_WEB_DIR", web_dir.as_str()),
            ("FIXTURE_REPORT", report_path.as_str()),
            ("FIXTURE_BODY_STAMP", stamp_path.as_str()),
        ],
    );
    let ran = finish(child);
    if ran.code != Some(0) {
        return Err(format!("the stack suite failed:\n{}", ran.text()).into());
    }
    let body: u128 = std::fs::read_to_string(&stamp)?.trim().parse()?;
    let report = serde_json::from_str(&std::fs::read_to_string(&report)?)?;
    Ok(((body - started) as f64 / 1e9, report))
}

/// Each phase's seconds in the suite's recorded setup.
fn phase_seconds(scratch: &Scratch, phase: &str) -> f64 {
    scratch.state("stack")["phases"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|recorded| recorded["name"] == phase)
        .filter_map(|recorded| recorded["seconds"].as_f64())
        .sum()
}

fn setup_seconds(scratch: &Scratch) -> Result<f64, BoxError> {
    let state = scratch.state("stack");
    let at = |key: &str| -> Result<chrono::DateTime<chrono::FixedOffset>, BoxError> {
        Ok(chrono::DateTime::parse_from_rfc3339(
            state[key].as_str().ok_or("no time recorded")?,
        )?)
    };
    Ok((at("finished_at")? - at("started_at")?).as_seconds_f64())
}

fn main() -> Result<(), BoxError> {
    // `cargo bench` passes `--bench`; other arguments select figures by name.
    let words: Vec<String> = std::env::args()
        .skip(1)
        .filter(|arg| !arg.starts_with("--"))
        .collect();
    let wanted = |figure: &str| words.is_empty() || words.iter().any(|word| figure.contains(word));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if wanted("fingerprint_ms") {
        let fingerprint = runtime.block_on(fingerprint_ms())?;
        println!("bench: fingerprint_ms = {fingerprint:.1} ms (median of 21, warm; target 50)");
    }
    if !wanted("cold_setup_overlap_ratio") && !wanted("changed_service_rerun_s") {
        return Ok(());
    }
    let cluster = support::local_cluster("kindling");
    if let Err(reason) = cluster.requirement().check() {
        println!("bench: skipped, {reason}");
        return Ok(());
    }

    // A cold setup: the cluster down, a `web` whose build is new.
    runtime.block_on(cluster.down())?;
    let scratch = Scratch::new();
    let work = tempfile::tempdir()?;
    let web = work.path().join("web");
    let unique = format!("cold-{}", nanos_now());
    web_at(&web, &unique)?;
    run_stack(&scratch, &web)?;
    let total = setup_seconds(&scratch)?;
    let (cluster_up, build, images, deploy) = (
        phase_seconds(&scratch, "cluster"),
        phase_seconds(&scratch, "build"),
        phase_seconds(&scratch, "images"),
        phase_seconds(&scratch, "deploy"),
    );
    let ideal = cluster_up.max(build) + images + deploy;
    println!(
        "bench: cold_setup_overlap_ratio = {:.2} (setup {total:.1} s; cluster {cluster_up:.1} s, build {build:.1} s, images {images:.1} s, deploy {deploy:.1} s; target 1.1)",
        total / ideal
    );

    // One source file of `web` changed; the StatefulSet must stay.
    let (_, before) = run_stack(&scratch, &web)?;
    web_at(&web, &format!("{unique}-changed"))?;
    let (rerun, after) = run_stack(&scratch, &web)?;
    let build = phase_seconds(&scratch, "build");
    let kept = before["store_pod"] == after["store_pod"];
    println!(
        "bench: changed_service_rerun_s = {rerun:.2} s (web build {build:.2} s, target build + 3 s; store pod kept: {kept})"
    );
    if !kept || after["version"] != format!("{unique}-changed") {
        return Err(format!("the re-run did not roll out only web: {before} then {after}").into());
    }
    Ok(())
}
