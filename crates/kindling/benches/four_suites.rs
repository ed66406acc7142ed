//! The four E2E suites (DataStorage, Gateway, Notification, AuthWebhook)
//! on the one local cluster, one after another and all at once, in one
//! bench run on the same machine, printed as
//! `bench: four_suites_sequential_s`, `four_suites_concurrent_s` and their
//! ratio (target ≤ 0.6 on two cores). The two forms alternate for three
//! rounds and the figures are the medians: one form alone varies by a
//! third between runs on two cores.
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
//!
//! `-- kind` instead runs the four suites in one `cargo nextest run` on a
//! fresh two-node Kind cluster and on a fresh local cluster (each created
//! outside the time; the images built in the engine, none of kindling's
//! in the nodes),
//! printed as `four_suites_kind_s` beside `four_suites_local_s`, with each
//! suite's recorded cold setup on both.
//!
//! Run with `cargo bench -p kindling --bench four_suites [-- kind]`.

#[path = "../tests/support/mod.rs"]
mod support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kindling::BoxError;
use kindling::cluster::Provider as _;
use support::{clean_command, fixture_target_dir, median, workspace_root};

const SUITES: &[&str] = &[
    "e2e-datastorage",
    "e2e-gateway",
    "e2e-notification",
    "e2e-authwebhook",
];

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned())
}

/// `cargo nextest run -p <packages>` with the bench's state in `state`, on
/// the local provider.
fn nextest(packages: &[&str], state: &Path, extra: &[&str]) -> Command {
    on_provider(packages, state, extra, &[("KINDLING_PROVIDER", "local")])
}

/// [`nextest`] with the provider's variables `provider`.
fn on_provider(
    packages: &[&str],
    state: &Path,
    extra: &[&str],
    provider: &[(&str, &str)],
) -> Command {
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
        .env(
            "KINDLING_JUNIT",
            state.join(format!("{}.xml", packages.join("+"))),
        )
        .env("KINDLING_KEEP", "never")
        .envs(provider.iter().copied())
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

/// Rounds of both forms; the figures are their medians.
const ROUNDS: usize = 3;

/// One form's time, each suite's and how busy the CPUs were meanwhile.
struct Form {
    seconds: f64,
    each: Vec<String>,
    busy: f64,
}

/// One suite after the other, each its own `cargo nextest run`, with its
/// end-of-run cleanup waited for outside the time.
fn sequential() -> Result<Form, BoxError> {
    let state = tempfile::tempdir()?;
    let mut form = Form {
        seconds: 0.0,
        each: Vec::new(),
        busy: 0.0,
    };
    let mut busy_seconds = 0.0;
    for suite in SUITES {
        let started = Instant::now();
        let ticks = cpu_ticks();
        finish(&[suite], nextest(&[suite], state.path(), &[]).spawn()?)?;
        let seconds = started.elapsed().as_secs_f64();
        busy_seconds += busy_since(ticks) * seconds;
        form.seconds += seconds;
        form.each.push(format!("{suite} {seconds:.1} s"));
        await_cleanups(state.path(), form.each.len())?;
    }
    form.busy = busy_seconds / form.seconds;
    Ok(form)
}

/// The machine's CPU time so far, busy and in all, from `/proc/stat`.
fn cpu_ticks() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let fields: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|field| field.parse().ok())
        .collect();
    let total: u64 = fields.iter().sum();
    // idle and iowait
    let idle = fields.get(3).copied().unwrap_or(0) + fields.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

/// How busy the CPUs were since `since` (from [`cpu_ticks`]), in percent.
fn busy_since(since: (u64, u64)) -> f64 {
    let now = cpu_ticks();
    100.0 * (now.0 - since.0) as f64 / (now.1 - since.1).max(1) as f64
}

/// Every suite at once, each its own `cargo nextest run`: the time until
/// the last has finished, each suite's own time and how busy the CPUs were.
fn concurrent(state: &Path) -> Result<Form, BoxError> {
    let started = Instant::now();
    let ticks = cpu_ticks();
    let children: Vec<(&str, Child)> = SUITES
        .iter()
        .map(|suite| Ok((*suite, nextest(&[suite], state, &[]).spawn()?)))
        .collect::<Result<_, BoxError>>()?;
    // One thread each, so every suite's end is seen when it happens.
    let waits: Vec<_> = children
        .into_iter()
        .map(|(suite, child)| {
            std::thread::spawn(move || {
                finish(&[suite], child)
                    .map(|()| format!("{suite} {:.1} s", started.elapsed().as_secs_f64()))
                    .map_err(|error| error.to_string())
            })
        })
        .collect();
    let mut each = Vec::new();
    for wait in waits {
        each.push(wait.join().map_err(|_| "a suite's wait panicked")??);
    }
    let seconds = started.elapsed().as_secs_f64();
    let busy = busy_since(ticks);
    await_cleanups(state, SUITES.len())?;
    Ok(Form {
        seconds,
        each,
        busy,
    })
}

/// Each suite's recorded setup in `state`, start to finish.
fn setups(state: &Path) -> Result<Vec<(&'static str, f64)>, BoxError> {
    SUITES
        .iter()
        .filter(|package| {
            state
                .join(format!("{}.json", package.trim_start_matches("e2e-")))
                .is_file()
        })
        .map(|package| {
            let target = package.trim_start_matches("e2e-");
            let record: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(
                state.join(format!("{target}.json")),
            )?)?;
            let at = |key: &str| -> Result<chrono::DateTime<chrono::FixedOffset>, BoxError> {
                Ok(chrono::DateTime::parse_from_rfc3339(
                    record[key].as_str().ok_or("no time recorded")?,
                )?)
            };
            Ok((
                target,
                (at("finished_at")? - at("started_at")?).as_seconds_f64(),
            ))
        })
        .collect()
}

/// The exact references of every image the suites' environments in
/// `state` were deployed with.
fn suite_images(state: &Path) -> Result<Vec<String>, BoxError> {
    let mut references = Vec::new();
    for package in SUITES {
        let target = package.trim_start_matches("e2e-");
        let record: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(
            state.join(format!("{target}.json")),
        )?)?;
        references.extend(
            record["environment"]["images"]
                .as_object()
                .into_iter()
                .flatten()
                .filter_map(|(_, reference)| reference.as_str().map(str::to_owned)),
        );
    }
    references.sort();
    references.dedup();
    Ok(references)
}

/// The four suites in one nextest run on a fresh two-node Kind cluster
/// and on a fresh local cluster.
fn kind_beside_local(local: &kindling::cluster::local::LocalCluster) -> Result<(), BoxError> {
    use kindling::cluster::kind::KindCluster;
    let kind_config = support::workspace_root().join("fixtures/kind/two-nodes.yaml");
    let kind = KindCluster::with_defaults(&"kindling-bench".parse()?).config_file(&kind_config);
    if let Err(reason) = kind.requirement().check() {
        println!("bench: skipped, {reason}");
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    // The Kind run keeps its namespaces and so its setup records (the
    // cluster is deleted right after); the local run's are removed at its end.
    let kind_env = [
        ("KINDLING_KEEP", "always"),
        ("KINDLING_PROVIDER", "kind"),
        ("KINDLING_CLUSTER", "kindling-bench"),
        ("KINDLING_KIND_CONFIG", kind_config.to_str().ok_or("path")?),
    ];
    // Builds the suites and their images once, on the local cluster.
    runtime.block_on(local.up())?;
    let warm = tempfile::tempdir()?;
    finish(SUITES, nextest(SUITES, warm.path(), &[]).spawn()?)?;
    await_cleanups(warm.path(), 1)?;

    runtime.block_on(async {
        kind.delete_cluster().await?;
        kind.ensure().await?;
        Ok::<(), BoxError>(())
    })?;
    let kind_state = tempfile::tempdir()?;
    let started = Instant::now();
    finish(
        SUITES,
        on_provider(SUITES, kind_state.path(), &[], &kind_env).spawn()?,
    )?;
    let on_kind = started.elapsed().as_secs_f64();
    // Kept (KINDLING_KEEP=always): no end-of-run cleanup to wait for.
    runtime.block_on(kind.delete_cluster())?;
    let describe = |setups: Vec<(&str, f64)>| {
        setups
            .iter()
            .map(|(suite, seconds)| format!("{suite} {seconds:.1} s"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "bench: four_suites_kind_s = {on_kind:.1} s (two nodes, created beforehand; cold setups: {})",
        describe(setups(kind_state.path())?)
    );

    // As on the fresh Kind nodes: none of the suites' images in the node
    // (a local `down` keeps the node's image store; the cluster's own
    // images, such as its pause image, stay).
    let suite_images = suite_images(kind_state.path())?;
    runtime.block_on(async {
        local.down().await?;
        local.up().await?;
        let references: Vec<&str> = suite_images.iter().map(String::as_str).collect();
        local.node_store().remove(&references).await?;
        Ok::<(), BoxError>(())
    })?;
    let local_state = tempfile::tempdir()?;
    let started = Instant::now();
    finish(SUITES, nextest(SUITES, local_state.path(), &[]).spawn()?)?;
    let on_local = started.elapsed().as_secs_f64();
    await_cleanups(local_state.path(), 1)?;

    println!(
        "bench: four_suites_local_s = {on_local:.1} s (brought up beforehand; cold setups: {})",
        describe(setups(local_state.path())?)
    );
    println!(
        "bench: four_suites_kind_vs_local_ratio = {:.2}",
        on_kind / on_local
    );
    Ok(())
}

fn main() -> Result<(), BoxError> {
    let cluster = support::local_cluster("kindling");
    if let Err(reason) = cluster.requirement().check() {
        println!("bench: skipped, {reason}");
        return Ok(());
    }
    if std::env::args().skip(1).any(|arg| arg == "kind") {
        return kind_beside_local(&cluster);
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

    // The two forms alternate, so a slow spell of the machine falls on
    // both; the ratio is the median of the rounds' own ratios.
    let mut rounds = Vec::new();
    for round in 1..=ROUNDS {
        let sequential = sequential()?;
        let concurrent = concurrent(tempfile::tempdir()?.path())?;
        println!(
            "round {round}: one after the other {:.1} s ({}; CPUs {:.0} % busy), at once {:.1} s (each ended after: {}; CPUs {:.0} % busy): ratio {:.2}",
            sequential.seconds,
            sequential.each.join(", "),
            sequential.busy,
            concurrent.seconds,
            concurrent.each.join(", "),
            concurrent.busy,
            concurrent.seconds / sequential.seconds
        );
        rounds.push((sequential.seconds, concurrent.seconds));
    }
    let one_run_state = tempfile::tempdir()?;
    let started = Instant::now();
    finish(SUITES, nextest(SUITES, one_run_state.path(), &[]).spawn()?)?;
    let one_run = started.elapsed().as_secs_f64();
    await_cleanups(one_run_state.path(), 1)?;

    let sequential = median(rounds.iter().map(|round| round.0).collect());
    let ratios: Vec<f64> = rounds.iter().map(|(seq, conc)| conc / seq).collect();
    println!("bench: four_suites_sequential_s = {sequential:.1} s (median of {ROUNDS})");
    println!(
        "bench: four_suites_concurrent_s = {:.1} s (median of {ROUNDS})",
        median(rounds.iter().map(|round| round.1).collect())
    );
    println!(
        "bench: four_suites_concurrent_ratio = {:.2} (median of {ROUNDS}: {ratios:.2?}; target <= 0.6)",
        median(ratios.clone())
    );
    println!("bench: four_suites_one_nextest_run_s = {one_run:.1} s");
    println!(
        "bench: four_suites_one_nextest_run_ratio = {:.2} (over the median one after the other)",
        one_run / sequential
    );
    Ok(())
}
