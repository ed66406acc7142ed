//! One local cluster, re-used and shared as a team uses it: suites with no
//! hand-written fingerprint that serve each new build and reuse an
//! unchanged one, a re-setup that rolls out only the changed service, four
//! suites started at once on a stopped cluster, what each `KINDLING_KEEP`
//! leaves, `kindling nextest-setup` bringing the cluster up as a nextest
//! setup script, `kindling down` waiting for a suite that sets up, and
//! components left running without a record.
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
use kindling::{BoxError, Requirement, Suite};
use support::{Ran, Scratch, await_event, ensure, finish, run_binary, spawn_binary, spawn_nextest};

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

#[kindling::test(requires = nextest())]
async fn a_suite_without_fingerprints_serves_each_new_build_and_reuses_an_unchanged_one() -> Outcome
{
    let _turn = support::cluster_turn();
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

#[kindling::test(requires = nextest())]
async fn a_changed_service_rolls_out_alone_and_the_stateful_pod_keeps_its_data() -> Outcome {
    let _turn = support::cluster_turn();
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

#[kindling::test(requires = nextest())]
async fn four_suites_started_at_once_on_a_stopped_cluster_bring_it_up_once() -> Outcome {
    let _turn = support::cluster_turn();
    let _turn = ONE_AT_A_TIME.lock().await;
    support::local_cluster(CLUSTER).down().await?;
    let web = Web::new()?;
    let suites = ["stack", "stack_twin", "stack_third", "stack_fourth"];
    let scratches: Vec<Scratch> = suites.iter().map(|_| Scratch::new()).collect();
    let started: Vec<std::process::Child> = suites
        .iter()
        .zip(&scratches)
        .map(|(suite, scratch)| start_stack(scratch, suite, &web, None))
        .collect();
    let finished: Vec<Ran> = started.into_iter().map(finish).collect();
    let mut seen = Vec::new();
    for (scratch, ran) in scratches.iter().zip(finished) {
        seen.push(read_stack(scratch, ran)?);
    }
    let all = || {
        seen.iter()
            .map(|seen| seen.ran.text())
            .collect::<Vec<_>>()
            .join("\n")
    };
    // Each `up` that starts the cluster says `prepare in`; one that finds
    // it running says `already up`.
    let brought_up = seen
        .iter()
        .filter(|seen| seen.ran.stderr.contains("kindling up: prepare in"))
        .count();
    let found_up = seen
        .iter()
        .filter(|seen| seen.ran.stderr.contains("kindling up: already up"))
        .count();
    ensure(brought_up == 1 && found_up == 3, || {
        format!(
            "expected one of four suites to bring the cluster up and three to find it up:\n{}",
            all()
        )
    })?;
    ensure(
        seen.iter().any(|seen| {
            seen.ran
                .stderr
                .contains("waiting for local cluster `kindling`")
        }),
        || "no suite said what it waited for".to_owned(),
    )?;
    let mut namespaces: Vec<&str> = seen.iter().map(|seen| seen.get("namespace")).collect();
    namespaces.sort();
    namespaces.dedup();
    ensure(namespaces.len() == 4, || {
        format!("the suites shared namespaces: {namespaces:?}")
    })?;
    Ok(())
}

/// A nextest profile whose setup script is `kindling nextest-setup`.
fn setup_script_config(dir: &std::path::Path) -> Result<PathBuf, BoxError> {
    let config = dir.join("nextest.toml");
    let cli = support::cli_binary().display().to_string();
    std::fs::write(
        &config,
        format!(
            "experimental = [\"setup-scripts\"]\n\n\
             [scripts.setup.kindling-cluster]\n\
             command = [{cli:?}, \"nextest-setup\"]\n\
             slow-timeout = {{ period = \"60s\", terminate-after = 20 }}\n\n\
             [[profile.with-setup.scripts]]\n\
             filter = \"binary(stack)\"\n\
             setup = \"kindling-cluster\"\n"
        ),
    )?;
    Ok(config)
}

#[kindling::test(requires = nextest())]
async fn the_nextest_setup_script_brings_the_cluster_up_before_the_tests() -> Outcome {
    let _turn = support::cluster_turn();
    let _turn = ONE_AT_A_TIME.lock().await;
    support::local_cluster(CLUSTER).down().await?;
    let scratch = Scratch::new();
    let config = setup_script_config(scratch.root.path())?;
    let config = config.display().to_string();
    let web = Web::new()?;
    let report = report_path(&scratch).display().to_string();
    let web_dir = web.path();
    let env = [
        ("FIXTURE_WEB_DIR", web_dir.as_str()),
        ("FIXTURE_REPORT", report.as_str()),
    ];
    let args = ["--config-file", config.as_str(), "--profile", "with-setup"];
    let seen = read_stack(
        &scratch,
        finish(support::spawn_nextest_with(&scratch, "stack", &env, &args)),
    )?;
    let text = seen.ran.text();
    ensure(
        text.contains("local cluster `kindling` is up") && text.contains("brought up now"),
        || format!("the setup script did not bring the cluster up:\n{text}"),
    )?;
    ensure(
        seen.ran
            .stderr
            .contains("cluster `kindling` was brought up by the nextest setup script"),
        || format!("the suite did not use the cluster the script brought up:\n{text}"),
    )?;
    // The script's own `up` prints before nextest reports it passed; the
    // tests after it must not bring the cluster up again.
    let after_script = seen
        .ran
        .stderr
        .split_once("SETUP PASS")
        .map(|(_, after)| after)
        .unwrap_or_default();
    ensure(
        !after_script.is_empty() && !after_script.contains("kindling up:"),
        || format!("the suite brought the cluster up itself:\n{text}"),
    )?;

    // Outside a setup script the command refuses and says what to use.
    let outside = support::cli(&["nextest-setup"]).output()?;
    let refusal = String::from_utf8_lossy(&outside.stderr);
    ensure(
        !outside.status.success() && refusal.contains("NEXTEST_ENV is not set"),
        || format!("`kindling nextest-setup` outside nextest: {refusal}"),
    )?;
    Ok(())
}

/// A ClusterRole only this run's suite applies, in a manifest folder of its own.
fn own_cluster_role(dir: &std::path::Path) -> Result<String, BoxError> {
    let name = format!("keep-{}", &uuid_like());
    std::fs::write(
        dir.join("clusterrole.yaml"),
        format!(
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {{name: {name}}}\nrules: [{{apiGroups: [\"\"], resources: [pods], verbs: [get]}}]\n"
        ),
    )?;
    Ok(name)
}

fn uuid_like() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|since| since.as_nanos())
        .unwrap_or_default();
    format!("{:x}", nanos & 0xffff_ffff_ffff)
}

/// The end-of-run report of the one run in `scratch`, once it is written.
async fn end_of_run(scratch: &Scratch) -> Result<serde_json::Value, BoxError> {
    let runs = scratch.state_dir().join("runs");
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let ends: Vec<PathBuf> = std::fs::read_dir(&runs)
            .into_iter()
            .flatten()
            .flatten()
            .map(|run| run.path().join("end.json"))
            .filter(|end| end.is_file())
            .collect();
        if let [end] = ends.as_slice() {
            return Ok(serde_json::from_str(&std::fs::read_to_string(end)?)?);
        }
        ensure(Instant::now() < deadline, || {
            format!("no end-of-run report under {} after 240 s", runs.display())
        })?;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// What is left of a run's namespace and ClusterRole.
async fn left(namespace: &str, role: &str) -> Result<(bool, bool), BoxError> {
    use k8s_openapi::api::core::v1::Namespace;
    use k8s_openapi::api::rbac::v1::ClusterRole;
    let client = support::local_cluster(CLUSTER).admin_client().await?;
    let namespace = kube::Api::<Namespace>::all(client.clone())
        .get_opt(namespace)
        .await?
        .is_some_and(|found| found.metadata.deletion_timestamp.is_none());
    let role = kube::Api::<ClusterRole>::all(client)
        .get_opt(role)
        .await?
        .is_some_and(|found| found.metadata.deletion_timestamp.is_none());
    Ok((namespace, role))
}

/// One run of `stack` under `KINDLING_KEEP=keep`, passing or failing.
async fn run_kept(keep: &str, fail: bool) -> Result<(Scratch, Ran, String, String), BoxError> {
    let scratch = Scratch::new();
    let extra = scratch.root.path().join("extra");
    std::fs::create_dir_all(&extra)?;
    let role = own_cluster_role(&extra)?;
    let web = Web::new()?;
    let report = report_path(&scratch).display().to_string();
    let web_dir = web.path();
    let extra_dir = extra.display().to_string();
    let mut env = vec![
        ("FIXTURE_WEB_DIR", web_dir.as_str()),
        ("FIXTURE_REPORT", report.as_str()),
        ("FIXTURE_EXTRA_MANIFESTS", extra_dir.as_str()),
        ("KINDLING_KEEP", keep),
    ];
    if fail {
        env.push(("FIXTURE_FAIL", "1"));
    }
    let ran = finish(spawn_nextest(&scratch, "stack", &env));
    ensure(ran.code == Some(if fail { 100 } else { 0 }), || ran.text())?;
    let text = std::fs::read_to_string(report_path(&scratch))
        .map_err(|error| format!("no report ({error}):\n{}", ran.text()))?;
    let report: serde_json::Value = serde_json::from_str(&text)?;
    let namespace = report["namespace"].as_str().unwrap_or_default().to_owned();
    Ok((scratch, ran, namespace, role))
}

#[kindling::test(requires = nextest())]
async fn each_keep_policy_leaves_what_it_says_after_passing_and_failing_runs() -> Outcome {
    let _turn = support::cluster_turn();
    let _turn = ONE_AT_A_TIME.lock().await;
    let cluster = support::local_cluster(CLUSTER);
    cluster.up().await?;

    // always: everything stays, and nothing is even recorded.
    let (scratch, ran, namespace, role) = run_kept("always", false).await?;
    ensure(left(&namespace, &role).await? == (true, true), || {
        ran.text()
    })?;
    ensure(!scratch.state_dir().join("runs").exists(), || {
        "KINDLING_KEEP=always wrote a run ledger".to_owned()
    })?;

    // on-failure, passing: the namespace and its ClusterRole go, and the
    // setup is forgotten.
    let (scratch, ran, namespace, role) = run_kept("on-failure", false).await?;
    let end = end_of_run(&scratch).await?;
    ensure(left(&namespace, &role).await? == (false, false), || {
        format!("{end}\n{}", ran.text())
    })?;
    let removed = end["removed"].to_string();
    ensure(
        removed.contains(&namespace) && removed.contains(&format!("ClusterRole/{role}")),
        || end.to_string(),
    )?;
    ensure(!scratch.state_dir().join("stack.json").exists(), || {
        "the setup of a removed environment is still recorded".to_owned()
    })?;

    // on-failure, failing: everything stays, and the failure says where.
    let (scratch, ran, namespace, role) = run_kept("on-failure", true).await?;
    let end = end_of_run(&scratch).await?;
    ensure(left(&namespace, &role).await? == (true, true), || {
        end.to_string()
    })?;
    ensure(
        ran.stdout.contains(&format!(
            "kept for a look (KINDLING_KEEP=on-failure, a test failed): namespace `{namespace}` on cluster `kindling`"
        )),
        || ran.text(),
    )?;
    let client = cluster.admin_client().await?;
    kube::Api::<k8s_openapi::api::core::v1::Namespace>::all(client.clone())
        .delete(&namespace, &Default::default())
        .await?;

    // never, failing, on a cluster this run brings up: the artifacts are
    // collected, then the namespace, its ClusterRole and the cluster go.
    cluster.down().await?;
    let (scratch, ran, _namespace, _role) = run_kept("never", true).await?;
    let end = end_of_run(&scratch).await?;
    let removed = end["removed"].to_string();
    ensure(
        removed.contains("cluster `kindling`, created by this run"),
        || format!("{end}\n{}", ran.text()),
    )?;
    ensure(!port_taken(6443), || {
        format!("the cluster this run created still runs: {end}")
    })?;
    ensure(
        ran.stdout
            .contains("removed at the end of the run (KINDLING_KEEP=never)"),
        || ran.text(),
    )?;
    let artifacts = ran
        .stdout
        .lines()
        .find_map(|line| line.trim().strip_prefix("artifacts: "))
        .map(PathBuf::from)
        .ok_or_else(|| format!("no artifacts named:\n{}", ran.text()))?;
    ensure(artifacts.join("pods.yaml").is_file(), || {
        format!("{} holds no pods.yaml", artifacts.display())
    })?;
    let _ = scratch;
    cluster.up().await?;
    Ok(())
}

#[kindling::test(requires = nextest())]
async fn kindling_down_waits_for_a_suite_that_is_setting_up() -> Outcome {
    let _turn = support::cluster_turn();
    let _turn = ONE_AT_A_TIME.lock().await;
    support::local_cluster(CLUSTER).down().await?;
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

/// Whether process `pid` holds a lock on `path` (`/proc/locks` names the
/// holder of each `flock` lock by pid and the file by inode).
fn holds_lock(pid: u32, path: &std::path::Path) -> Result<bool, BoxError> {
    use std::os::unix::fs::MetadataExt as _;
    let inode = std::fs::metadata(path)?.ino();
    let locks = std::fs::read_to_string("/proc/locks")?;
    Ok(locks.lines().any(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let holder = fields.get(4).and_then(|field| field.parse::<u32>().ok());
        let file = fields.get(5).and_then(|field| field.rsplit(':').next());
        holder == Some(pid) && file == Some(inode.to_string().as_str())
    }))
}

/// What a process that sets up prints first.
const SETTING_UP: &str = "setting up for run";

/// A process that reads its run's recorded environment (no setup of its
/// own) holds the cluster's users lock before its first test touches the
/// environment, so `kindling down` waits for it from its start.
#[kindling::test]
async fn a_process_that_reads_the_record_holds_the_cluster_before_its_first_test() -> Outcome {
    let _turn = support::cluster_turn();
    let _turn = ONE_AT_A_TIME.lock().await;
    let scratch = Scratch::new();
    let web = Web::new()?;
    let report = report_path(&scratch).display().to_string();
    let web_dir = web.path();
    let run_id = format!("holds-{}", std::process::id());
    let env = [
        ("FIXTURE_WEB_DIR", web_dir.as_str()),
        ("FIXTURE_REPORT", report.as_str()),
        ("NEXTEST_RUN_ID", run_id.as_str()),
    ];
    // The first process sets up and keeps the environment for the second,
    // which reads the record and removes it at its end.
    let mut first_env = env.to_vec();
    first_env.push(("KINDLING_KEEP", "always"));
    let first = run_binary(&scratch, "stack", &[], &first_env);
    ensure(
        first.code == Some(0) && first.stderr.contains(SETTING_UP),
        || first.text(),
    )?;
    let hold = scratch.root.path().join("go-on");
    let hold_path = hold.display().to_string();
    let mut held_env = env.to_vec();
    held_env.extend([
        ("KINDLING_KEEP", "never"),
        ("FIXTURE_HOLD", hold_path.as_str()),
    ]);
    let second = spawn_binary(&scratch, "stack", &[], &held_env);
    let started = await_event(&scratch, "body-started", Duration::from_secs(120));
    let users = kindling::cluster::users_lock_path("local", CLUSTER);
    let held = holds_lock(second.id(), &users);
    let released = std::fs::write(&hold, "");
    let second = finish(second);
    released?;
    ensure(started && second.code == Some(0), || second.text())?;
    ensure(held?, || {
        format!(
            "the test process held no lock on {} when its test started:\n{}",
            users.display(),
            second.text()
        )
    })?;
    ensure(!second.stderr.contains(SETTING_UP), || {
        format!("the second process set up again:\n{}", second.text())
    })?;
    Ok(())
}

#[kindling::test]
async fn a_component_left_without_its_record_is_stopped_by_down_and_up_succeeds() -> Outcome {
    let _turn = support::cluster_turn();
    let _turn = ONE_AT_A_TIME.lock().await;
    let cluster = support::local_cluster(CLUSTER);
    cluster.down().await?;
    let pids = cluster.layout().root.join("pids");
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

/// The tests run suites through `cargo nextest run`.
fn nextest() -> Requirement {
    Requirement::new("cargo-nextest", || {
        if support::nextest_available() {
            Ok(())
        } else {
            Err("cargo-nextest is not installed: `cargo install --locked cargo-nextest`".to_owned())
        }
    })
}

// Each test takes the cluster for itself (`support::cluster_turn`): they
// stop, restart or share it in ways that other tests must not see.
fn main() -> ExitCode {
    Suite::new()
        .requires(support::local_cluster(CLUSTER).requirement())
        .test_timeout(Duration::from_secs(900))
        .run()
}
