//! One local cluster, re-used and shared as a team uses it: suites with no
//! hand-written fingerprint that serve each new build and reuse an
//! unchanged one, a re-setup that rolls out only the changed service, two
//! suites started at once on a stopped cluster, `kindling down` waiting
//! for a suite that sets up, and components left running without a record.
//!
//! Each test runs the `stack` fixture suites (`tests/fixture-suites/stack`)
//! as `cargo nextest run` would on a real machine, against the real local
//! cluster; some take the cluster down. They run one at a time (a lock in
//! this process, and the `local-cluster` test group under nextest), and
//! leave the cluster up. Without what the local provider needs they are
//! reported as ignored, and fail when `CI` is set.

mod support;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use kindling::cluster::Provider as _;
use kindling::cluster::local::cluster::LocalCluster;
use kindling::{BoxError, Requirement, Suite, TestOptions};
use support::{Ran, Scratch, ensure, finish, spawn_nextest};

const CLUSTER: &str = "kindling";

type Outcome = Result<(), BoxError>;

/// These tests take the shared cluster down and up: never two at once.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A copy of the `web` service's sources that a test may change.
struct Web {
    dir: tempfile::TempDir,
}

impl Web {
    fn new() -> Result<Web, BoxError> {
        let dir = tempfile::tempdir()?;
        let sources =
            support::workspace_root().join("crates/kindling/tests/fixture-suites/stack/web");
        for file in ["go.mod", "main.go"] {
            std::fs::copy(sources.join(file), dir.path().join(file))?;
        }
        Ok(Web { dir })
    }

    fn path(&self) -> String {
        self.dir.path().display().to_string()
    }

    /// Changes one source file: the version the service reports.
    fn set_version(&self, version: &str) -> Result<(), BoxError> {
        let main = self.dir.path().join("main.go");
        let source = std::fs::read_to_string(&main)?;
        let start = source
            .find("const version = \"")
            .ok_or("no version constant")?;
        let end = start + source[start..].find('\n').ok_or("no end of line")?;
        let changed = format!(
            "{}const version = \"{version}\"{}",
            &source[..start],
            &source[end..]
        );
        std::fs::write(&main, changed)?;
        Ok(())
    }
}

/// What one run of a `stack` suite saw (its test's report).
struct Seen {
    ran: Ran,
    report: serde_json::Value,
}

impl Seen {
    fn get(&self, key: &str) -> &str {
        self.report[key].as_str().unwrap_or_default()
    }
}

fn run_stack(
    scratch: &Scratch,
    suite: &str,
    web: &Web,
    write: Option<&str>,
) -> Result<Seen, BoxError> {
    let child = start_stack(scratch, suite, web, write);
    read_stack(scratch, finish(child))
}

fn report_path(scratch: &Scratch) -> PathBuf {
    scratch.root.path().join("report.json")
}

fn start_stack(
    scratch: &Scratch,
    suite: &str,
    web: &Web,
    write: Option<&str>,
) -> std::process::Child {
    let _ = std::fs::remove_file(report_path(scratch));
    let report = report_path(scratch).display().to_string();
    let web_dir = web.path();
    let mut env = vec![
        ("FIXTURE_WEB_DIR", web_dir.as_str()),
        ("FIXTURE_REPORT", report.as_str()),
    ];
    if let Some(value) = write {
        env.push(("FIXTURE_WRITE", value));
    }
    spawn_nextest(scratch, suite, &env)
}

fn read_stack(scratch: &Scratch, ran: Ran) -> Result<Seen, BoxError> {
    ensure(ran.code == Some(0), || ran.text())?;
    let text = std::fs::read_to_string(report_path(scratch))
        .map_err(|error| format!("no report ({error}):\n{}", ran.text()))?;
    Ok(Seen {
        ran,
        report: serde_json::from_str(&text)?,
    })
}

fn port_taken(port: u16) -> bool {
    TcpListener::bind(("0.0.0.0", port)).is_err()
}

async fn a_suite_without_fingerprints_serves_each_new_build_and_reuses_an_unchanged_one() -> Outcome
{
    let _turn = ONE_AT_A_TIME.lock().await;
    let scratch = Scratch::new();
    let web = Web::new()?;
    let first = run_stack(&scratch, "stack", &web, Some("kept"))?;
    ensure(first.get("version") == "v1", || first.report.to_string())?;

    let started = Instant::now();
    let again = run_stack(&scratch, "stack", &web, None)?;
    eprintln!(
        "an unchanged re-run took {:.2}s, cargo and nextest included",
        started.elapsed().as_secs_f64()
    );
    ensure(again.ran.stderr.contains("0 object(s) changed"), || {
        format!(
            "an unchanged re-run applied something:\n{}",
            again.ran.text()
        )
    })?;
    for key in ["web_image", "web_pod", "store_pod", "namespace", "secret"] {
        ensure(again.get(key) == first.get(key), || {
            format!(
                "`{key}` changed although nothing did: {} then {}",
                first.report, again.report
            )
        })?;
    }

    web.set_version("v2")?;
    let changed = run_stack(&scratch, "stack", &web, None)?;
    ensure(changed.get("version") == "v2", || {
        format!(
            "the pod does not serve the new build: {}\n{}",
            changed.report,
            changed.ran.text()
        )
    })?;
    ensure(changed.get("web_image") != first.get("web_image"), || {
        changed.report.to_string()
    })?;
    ensure(
        changed.get("secret") == first.get("secret") && first.get("secret").len() == 16,
        || {
            format!(
                "the generated secret was not kept: {} then {}",
                first.report, changed.report
            )
        },
    )?;
    Ok(())
}

async fn a_changed_service_rolls_out_alone_and_the_stateful_pod_keeps_its_data() -> Outcome {
    let _turn = ONE_AT_A_TIME.lock().await;
    let scratch = Scratch::new();
    let web = Web::new()?;
    let before = run_stack(&scratch, "stack_twin", &web, Some("kept across re-setups"))?;
    ensure(before.report["item"] == "kept across re-setups", || {
        before.report.to_string()
    })?;
    web.set_version("v2-stateful")?;
    let after = run_stack(&scratch, "stack_twin", &web, None)?;
    ensure(
        after
            .ran
            .stderr
            .contains("1 object(s) changed (Deployment/web)"),
        || {
            format!(
                "the re-setup did more than roll out `web`:\n{}",
                after.ran.text()
            )
        },
    )?;
    ensure(after.get("version") == "v2-stateful", || {
        after.report.to_string()
    })?;
    ensure(after.get("web_pod") != before.get("web_pod"), || {
        format!("`web` was not rolled out: {}", after.report)
    })?;
    ensure(
        after.get("store_pod") == before.get("store_pod")
            && after.report["item"] == "kept across re-setups"
            && after.get("namespace") == before.get("namespace"),
        || {
            format!(
                "the stateful pod or its data did not survive: {} then {}",
                before.report, after.report
            )
        },
    )?;
    Ok(())
}

async fn two_suites_started_at_once_on_a_stopped_cluster_bring_it_up_once() -> Outcome {
    let _turn = ONE_AT_A_TIME.lock().await;
    LocalCluster::with_defaults(CLUSTER).down().await?;
    let (one, two) = (Scratch::new(), Scratch::new());
    let web = Web::new()?;
    let first = start_stack(&one, "stack", &web, None);
    let second = start_stack(&two, "stack_twin", &web, None);
    let (first, second) = (finish(first), finish(second));
    let first = read_stack(&one, first)?;
    let second = read_stack(&two, second)?;
    let brought_up = [&first, &second]
        .iter()
        .filter(|seen| seen.ran.stderr.contains("kindling up: prepare in"))
        .count();
    let found_up = [&first, &second]
        .iter()
        .filter(|seen| seen.ran.stderr.contains("kindling up: already up"))
        .count();
    ensure(brought_up == 1 && found_up == 1, || {
        format!(
            "expected one suite to bring the cluster up and the other to find it up:\n{}\n{}",
            first.ran.text(),
            second.ran.text()
        )
    })?;
    ensure(
        [&first, &second].iter().any(|seen| {
            seen.ran
                .stderr
                .contains("waiting for local cluster `kindling`")
        }),
        || "neither suite said what it waited for".to_owned(),
    )?;
    Ok(())
}

async fn kindling_down_waits_for_a_suite_that_is_setting_up() -> Outcome {
    let _turn = ONE_AT_A_TIME.lock().await;
    LocalCluster::with_defaults(CLUSTER).down().await?;
    let scratch = Scratch::new();
    let web = Web::new()?;
    let mut suite = start_stack(&scratch, "stack", &web, None);
    // The suite holds the cluster's users lock from the start of its setup.
    let users = kindling::cluster::users_lock_path("local", CLUSTER);
    let deadline = Instant::now() + Duration::from_secs(120);
    let held = || std::fs::File::open(&users).is_ok_and(|file| file.try_lock().is_err());
    while !held() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if !held() {
        let _ = suite.kill();
        let ran = finish(suite);
        return Err(format!("the suite never started setting up:\n{}", ran.text()).into());
    }
    let down = support::cli(&["down"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let suite = finish(suite);
    let down = down?;
    let suite = read_stack(&scratch, suite)?;
    let suite_done = Instant::now();
    let down = finish(down);
    ensure(down.code == Some(0), || down.text())?;
    ensure(
        down.stderr
            .contains("waiting to take down cluster `kindling`"),
        || format!("`kindling down` did not say it waited:\n{}", down.text()),
    )?;
    ensure(suite_done.elapsed() < Duration::from_secs(60), || {
        "`kindling down` took longer than a minute after the suite".to_owned()
    })?;
    ensure(suite.get("version") == "v1", || suite.report.to_string())?;
    ensure(!port_taken(6443), || {
        "the cluster still runs after down".to_owned()
    })?;
    Ok(())
}

async fn a_component_left_without_its_record_is_stopped_by_down_and_up_succeeds() -> Outcome {
    let _turn = ONE_AT_A_TIME.lock().await;
    let cluster = LocalCluster::with_defaults(CLUSTER);
    cluster.down().await?;
    let pids = cluster.layout.root.join("pids");
    let mut up = support::cli(&["up"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let deadline = Instant::now() + Duration::from_secs(120);
    while !(pids.join("kube-apiserver.json").is_file() && port_taken(6443)) {
        ensure(Instant::now() < deadline, || {
            "`kindling up` never started the API server".to_owned()
        })?;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The recording process dies half way, and its records with it.
    up.kill()?;
    up.wait()?;
    std::fs::remove_dir_all(&pids)?;
    ensure(port_taken(6443) && port_taken(2379), || {
        "the API server and etcd should outlive the killed `up`".to_owned()
    })?;

    let down = support::cli(&["down"]).output()?;
    let down = Ran::from(down);
    ensure(down.code == Some(0), || down.text())?;
    ensure(
        down.stderr.contains("left running without a record"),
        || down.text(),
    )?;
    for port in [6443, 2379, 2380] {
        ensure(!port_taken(port), || {
            format!("port {port} is still taken after down:\n{}", down.text())
        })?;
    }
    let up = Ran::from(support::cli(&["up"]).output()?);
    ensure(up.code == Some(0), || up.text())?;
    Ok(())
}

fn main() -> ExitCode {
    let local = LocalCluster::with_defaults(CLUSTER).requirement();
    let nextest = Requirement::new("cargo-nextest", || {
        if support::nextest_available() {
            Ok(())
        } else {
            Err("cargo-nextest is not installed: `cargo install --locked cargo-nextest`".to_owned())
        }
    });
    let options = TestOptions::new().requires(nextest);
    Suite::new()
        .requires(local)
        .standalone(
            "a_suite_without_fingerprints_serves_each_new_build_and_reuses_an_unchanged_one",
            options.clone(),
            a_suite_without_fingerprints_serves_each_new_build_and_reuses_an_unchanged_one,
        )
        .standalone(
            "a_changed_service_rolls_out_alone_and_the_stateful_pod_keeps_its_data",
            options.clone(),
            a_changed_service_rolls_out_alone_and_the_stateful_pod_keeps_its_data,
        )
        .standalone(
            "two_suites_started_at_once_on_a_stopped_cluster_bring_it_up_once",
            options.clone(),
            two_suites_started_at_once_on_a_stopped_cluster_bring_it_up_once,
        )
        .standalone(
            "kindling_down_waits_for_a_suite_that_is_setting_up",
            options,
            kindling_down_waits_for_a_suite_that_is_setting_up,
        )
        .standalone(
            "a_component_left_without_its_record_is_stopped_by_down_and_up_succeeds",
            TestOptions::new(),
            a_component_left_without_its_record_is_stopped_by_down_and_up_succeeds,
        )
        .test_timeout(Duration::from_secs(900))
        .run()
}
