//! The harness contract, tested from outside: fixture suites built and run
//! by the binary itself, `cargo test` and `cargo nextest run`.
//!
//! Tests that need cargo-nextest (or a Docker engine) are reported as
//! ignored (skipped, never passed) when it is missing, and fail when `CI`
//! is set.

mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use kindling_harness::{BoxError, Requirement};
use quick_junit::{Report, TestCaseStatus};
use support::*;

type Outcome = Result<(), BoxError>;

/// Runs a test that blocks (nested cargo runs) off the async runtime.
async fn blocking(test: impl FnOnce() -> Outcome + Send + 'static) -> Outcome {
    tokio::task::spawn_blocking(test).await?
}

fn nextest() -> Requirement {
    Requirement::new("cargo-nextest", || {
        if nextest_available() {
            Ok(())
        } else {
            Err("cargo-nextest is not installed: `cargo install --locked cargo-nextest`".to_owned())
        }
    })
}

#[kindling_harness::test(requires = nextest())]
async fn missing_requirements_skip_under_nextest_are_ignored_under_cargo_test_and_fail_in_ci()
-> Outcome {
    blocking(|| {
    let scratch = Scratch::new();
    let missing = [("FIXTURE_MISSING", "1")];
    // Listing: every test, and the ones missing the requirement among the
    // ignored ones (nextest asks both); nothing but the list.
    let everything = list_lines(&[
        "free::runs_anywhere",
        "needs::the_tool",
        "needs::the_tool_too",
    ]);
    let listed = run_binary(
        &scratch,
        "requirements",
        &["--list", "--format", "terse"],
        &missing,
    );
    ensure(listed.code == Some(0) && listed.stderr.is_empty(), || {
        listed.text()
    })?;
    ensure(listed.stdout == everything, || listed.text())?;
    let ignored = run_binary(
        &scratch,
        "requirements",
        &["--list", "--format", "terse", "--ignored"],
        &missing,
    );
    ensure(
        ignored.stdout == list_lines(&["needs::the_tool", "needs::the_tool_too"])
            && ignored.stderr.is_empty(),
        || ignored.text(),
    )?;
    let present = run_binary(
        &scratch,
        "requirements",
        &["--list", "--format", "terse", "--ignored"],
        &[],
    );
    ensure(present.stdout.is_empty(), || present.text())?;

    // nextest: SKIP, never PASS.
    let (ran, _) = nextest_run(&scratch, "requirements", &missing);
    ensure(ran.code == Some(0), || ran.text())?;
    let summary = format!("{}{}", ran.stdout, ran.stderr);
    ensure(summary.contains("1 test run: 1 passed, 2 skipped"), || {
        format!("nextest did not report two skips:\n{summary}")
    })?;
    ensure(scratch.count("needs-ran") == 0, || {
        "a skipped test ran".to_owned()
    })?;

    // cargo test: ignored, with the reason on stderr.
    let ran = cargo_test(&scratch, "requirements", &missing);
    ensure(ran.code == Some(0), || ran.text())?;
    ensure(ran.stdout.contains("1 passed; 0 failed; 2 ignored"), || {
        ran.text()
    })?;
    ensure(
        ran.stderr.contains("requirement `the fixture's tool` is missing: the fixture's tool is not installed: unset FIXTURE_MISSING"),
        || ran.text(),
    )?;

    // CI: they run and fail with the reason.
    let mut in_ci = missing.to_vec();
    in_ci.push(("CI", "true"));
    let ran = run_binary(&scratch, "requirements", &[], &in_ci);
    ensure(ran.code == Some(101), || ran.text())?;
    ensure(ran.stdout.contains("1 passed; 2 failed"), || ran.text())?;
    ensure(
        ran.stdout.contains("the fixture's tool is not installed")
            && ran.stdout.contains("CI is set"),
        || ran.text(),
    )?;
    ensure(scratch.count("needs-ran") == 0, || {
        "a test ran without its requirement".to_owned()
    })?;
    Ok(())
    })
    .await
}

fn list_lines(names: &[&str]) -> String {
    names.iter().map(|name| format!("{name}: test\n")).collect()
}

fn dir_is_empty(path: &std::path::Path) -> bool {
    std::fs::read_dir(path)
        .map(|mut entries| entries.next().is_none())
        .unwrap_or(true)
}

#[kindling_harness::test]
async fn listing_is_pure_and_side_effect_free() -> Outcome {
    blocking(|| {
        let cases: &[(&str, &[&str], &[&str])] = &[
            (
                "basic",
                &[
                    "api::create",
                    "api::delete",
                    "api::read",
                    "api::update",
                    "health::ready",
                    "slow::soak",
                ],
                &["slow::soak"],
            ),
            (
                "outcomes",
                &[
                    "api::fails_with_chain",
                    "api::passes",
                    "panics",
                    "slow::ignored",
                    "slow::times_out",
                ],
                &["slow::ignored"],
            ),
        ];
        for (suite, all, ignored) in cases {
            for (args, expected) in [
                (&["--list", "--format", "terse"][..], all),
                (&["--list", "--format", "terse", "--ignored"][..], ignored),
            ] {
                let scratch = Scratch::new();
                let target = scratch.root.path().join("target");
                let mut command = clean_command(fixture(suite));
                command
                    .args(args)
                    .env("FIXTURE_COUNTER_DIR", scratch.counters())
                    .env("CARGO_TARGET_DIR", &target)
                    .env("NEXTEST_RUN_ID", "5f0c7d0e-0000-4000-8000-000000000001");
                let ran = Ran::from(command.output()?);
                ensure(ran.code == Some(0), || {
                    format!("{suite} {args:?}: {}", ran.text())
                })?;
                ensure(ran.stdout == list_lines(expected), || {
                    format!(
                        "{suite} {args:?}: stdout is not exactly the list:\n{}",
                        ran.text()
                    )
                })?;
                ensure(ran.stderr.is_empty(), || {
                    format!("{suite} {args:?}: listing wrote to stderr:\n{}", ran.text())
                })?;
                ensure(
                    dir_is_empty(&target) && dir_is_empty(&scratch.counters()),
                    || format!("{suite} {args:?}: listing wrote files or ran the setup"),
                )?;
            }
        }
        Ok(())
    })
    .await
}

#[kindling_harness::test(requires = nextest())]
async fn setup_runs_once_per_run_under_nextest_and_is_reused_while_alive() -> Outcome {
    blocking(|| {
        let scratch = Scratch::new();
        let (ran, junit) = nextest_run(&scratch, "basic", &[]);
        ensure(ran.code == Some(0), || ran.text())?;
        ensure(scratch.count("setup-started") == 1, || {
            format!(
                "setup ran {} times in one nextest run\n{}",
                scratch.count("setup-started"),
                ran.text()
            )
        })?;
        let test_pids: BTreeSet<String> = scratch.pids("test-ran").into_iter().collect();
        ensure(
            scratch.count("test-ran") == 5 && test_pids.len() == 5,
            || format!("expected 5 tests in 5 processes, got pids {test_pids:?}"),
        )?;
        let report = Report::deserialize_from_str(&junit)?;
        ensure(report.tests == 5 && report.failures == 0, || {
            format!("nextest JUnit:\n{junit}")
        })?;
        let first_run = scratch.state("basic")["run_id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();

        // A later run with the same fingerprints reuses the environment.
        let (ran, _) = nextest_run(&scratch, "basic", &[]);
        ensure(ran.code == Some(0), || ran.text())?;
        ensure(scratch.count("setup-started") == 1, || {
            format!("setup was redone although nothing changed\n{}", ran.text())
        })?;
        let state = scratch.state("basic");
        ensure(
            state["reused_from"].as_str() == Some(first_run.as_str()),
            || format!("state: {state}"),
        )?;

        // A failed liveness check sets up again.
        let (ran, junit) = nextest_run(&scratch, "basic", &[("FIXTURE_DEAD", "1")]);
        ensure(ran.code == Some(0), || ran.text())?;
        ensure(scratch.count("setup-started") == 2, || {
            format!("dead environment was reused\n{}", ran.text())
        })?;
        let report = Report::deserialize_from_str(&junit)?;
        let reason_shown = report.test_suites[0].test_cases.iter().any(|case| {
            case.system_err.as_ref().is_some_and(|err| {
                err.as_str().contains(
                    "no longer usable: check `token` failed: the token expired; setting up again",
                )
            })
        });
        ensure(reason_shown, || {
            format!("no test's stderr says why the environment was not reused:\n{junit}")
        })?;

        // A changed fingerprint sets up again.
        let (ran, _) = nextest_run(&scratch, "basic", &[("FIXTURE_FINGERPRINT", "changed")]);
        ensure(ran.code == Some(0), || ran.text())?;
        ensure(scratch.count("setup-started") == 3, || {
            format!("changed inputs were not set up\n{}", ran.text())
        })?;
        Ok(())
    })
    .await
}

#[kindling_harness::test]
async fn setup_runs_once_under_cargo_test_and_is_reported() -> Outcome {
    blocking(|| {
        let scratch = Scratch::new();
        let ran = cargo_test(&scratch, "basic", &[]);
        ensure(ran.code == Some(0), || ran.text())?;
        ensure(
            scratch.count("setup-started") == 1 && scratch.count("test-ran") == 5,
            || ran.text(),
        )?;
        let report = Report::deserialize_from_str(&std::fs::read_to_string(scratch.junit())?)?;
        let suites: Vec<&str> = report.test_suites.iter().map(|s| s.name.as_str()).collect();
        ensure(
            suites == ["kindling-harness-fixtures::basic", "@setup:basic"],
            || format!("{suites:?}"),
        )?;
        let setup = &report.test_suites[1];
        let phases: Vec<&str> = setup.test_cases.iter().map(|c| c.name.as_str()).collect();
        ensure(phases == ["token"], || format!("setup phases {phases:?}"))?;
        ensure(
            setup
                .system_out
                .as_ref()
                .is_some_and(|out| out.as_str().contains("making the token")),
            || "setup log missing from the setup report".to_owned(),
        )?;
        Ok(())
    })
    .await
}

#[kindling_harness::test(requires = nextest())]
async fn failing_setup_fails_every_test_with_the_same_message() -> Outcome {
    blocking(|| {
        let expected = "cannot reach the cluster at `127.0.0.1:6443`";
        let scratch = Scratch::new();
        let ran = cargo_test(&scratch, "failing_setup", &[]);
        ensure(ran.code == Some(101), || ran.text())?;
        ensure(
            scratch.count("setup-started") == 1 && scratch.count("test-ran") == 0,
            || ran.text(),
        )?;
        let report = Report::deserialize_from_str(&std::fs::read_to_string(scratch.junit())?)?;
        let tests = &report.test_suites[0];
        ensure(tests.failures == 3, || {
            format!("{} failures", tests.failures)
        })?;
        for case in &tests.test_cases {
            let TestCaseStatus::NonSuccess { description, .. } = &case.status else {
                return Err(format!("{} did not fail", case.name.as_str()).into());
            };
            let text = description.as_ref().map(|d| d.as_str()).unwrap_or_default();
            ensure(
                text.contains(expected) && text.contains("connection refused"),
                || format!("{}: {text}", case.name.as_str()),
            )?;
        }
        let setup = &report.test_suites[1];
        ensure(
            setup.name.as_str() == "@setup:failing_setup" && setup.failures == 1,
            || {
                format!(
                    "setup suite {:?} with {} failures",
                    setup.name, setup.failures
                )
            },
        )?;

        if !nextest_available() {
            return Ok(()); // the nextest half is its own test below
        }
        let scratch = Scratch::new();
        let (ran, junit) = nextest_run(&scratch, "failing_setup", &[]);
        ensure(ran.code != Some(0), || ran.text())?;
        ensure(scratch.count("setup-started") == 1, || {
            format!(
                "setup ran {} times in one nextest run\n{}",
                scratch.count("setup-started"),
                ran.text()
            )
        })?;
        let report = Report::deserialize_from_str(&junit)?;
        ensure(report.failures == 3, || junit.clone())?;
        for case in &report.test_suites[0].test_cases {
            let output = case
                .system_out
                .as_ref()
                .map(|o| o.as_str())
                .unwrap_or_default();
            ensure(
                output.contains(expected) && output.contains("connection refused"),
                || {
                    format!(
                        "{} output lacks the setup error:\n{output}",
                        case.name.as_str()
                    )
                },
            )?;
        }
        Ok(())
    })
    .await
}

#[kindling_harness::test]
async fn killed_setup_is_never_recorded_done() -> Outcome {
    blocking(|| {
        let scratch = Scratch::new();
        let run_id = "0d3c5a4e-0000-4000-8000-00000000dead";
        let mut command = clean_command(fixture("basic"));
        scratch
            .apply(&mut command)
            .args(["--exact", "api::create", "--nocapture"])
            .env("NEXTEST_RUN_ID", run_id)
            .env("FIXTURE_SETUP_SLEEP_MS", "60000")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let mut child = command.spawn()?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while scratch.count("setup-started") == 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        child.kill()?;
        child.wait()?;
        ensure(scratch.count("setup-started") == 1, || {
            "the setup never started".to_owned()
        })?;
        let state = scratch.state("basic");
        ensure(
            state["status"] == "running" && state["environment"].is_null(),
            || format!("a killed setup was recorded as {state}"),
        )?;

        let ran = run_binary(
            &scratch,
            "basic",
            &["--exact", "api::create"],
            &[("NEXTEST_RUN_ID", run_id)],
        );
        ensure(ran.code == Some(0), || ran.text())?;
        ensure(
            scratch.count("setup-started") == 2 && scratch.count("setup-done") == 1,
            || format!("the half-done setup was not redone\n{}", ran.text()),
        )?;
        ensure(scratch.state("basic")["status"] == "done", || {
            "setup not recorded done".to_owned()
        })?;
        Ok(())
    })
    .await
}

#[kindling_harness::test]
async fn an_interrupted_setup_is_recorded_failed_and_the_next_run_passes() -> Outcome {
    blocking(|| {
        let scratch = Scratch::new();
        let mut command = clean_command(fixture("interrupts"));
        scratch
            .apply(&mut command)
            .args(["--exact", "quick"])
            .env("FIXTURE_HANG_SETUP", "1")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let child = command.spawn()?;
        ensure(
            await_event(&scratch, "setup-hanging", Duration::from_secs(30)),
            || "the setup never reached its hanging phase".to_owned(),
        )?;
        send_signal(&child, "-INT");
        let interrupted = Ran::from(child.wait_with_output()?);
        ensure(interrupted.code == Some(130), || interrupted.text())?;
        ensure(
            interrupted.stdout.contains("setup phase `boot` failed")
                && interrupted.stdout.contains("interrupted by SIGINT"),
            || interrupted.text(),
        )?;
        let state = scratch.state("interrupts");
        ensure(
            state["status"] == "failed"
                && state["error"]
                    .as_str()
                    .is_some_and(|error| error.contains("interrupted by SIGINT")),
            || format!("an interrupted setup was recorded as {state}"),
        )?;
        let junit = std::fs::read_to_string(scratch.junit())?;
        ensure(junit.contains("interrupted by SIGINT"), || junit.clone())?;

        let ran = run_binary(&scratch, "interrupts", &["--exact", "quick"], &[]);
        ensure(
            ran.code == Some(0) && scratch.count("quick-ran") == 1,
            || ran.text(),
        )?;
        ensure(scratch.state("interrupts")["status"] == "done", || {
            "the re-run's setup is not recorded done".to_owned()
        })?;
        Ok(())
    })
    .await
}

fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::symlink_metadata(path)
        .map(|meta| meta.permissions().mode() & 0o7777)
        .unwrap_or(0)
}

fn plant_mode(path: &std::path::Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

/// Every folder under `root` (itself included) that is not `0700` and
/// every file that is not `0600`.
fn shared_under(root: &std::path::Path) -> Vec<String> {
    let mut shared = Vec::new();
    let mut folders = vec![root.to_path_buf()];
    while let Some(folder) = folders.pop() {
        if mode(&folder) != 0o700 {
            shared.push(format!("{} {:o}", folder.display(), mode(&folder)));
        }
        for entry in std::fs::read_dir(&folder).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                folders.push(path);
            } else if mode(&path) != 0o600 {
                shared.push(format!("{} {:o}", path.display(), mode(&path)));
            }
        }
    }
    shared
}

#[kindling_harness::test]
async fn a_test_ended_by_sigterm_leaves_its_artifacts() -> Outcome {
    blocking(|| {
        let scratch = Scratch::new();
        // As an older kindling left them: all readable by other users.
        let kindling_dir = fixture_target_dir().join("kindling");
        std::fs::create_dir_all(&kindling_dir)?;
        plant_mode(&kindling_dir, 0o755)?;
        plant_mode(&scratch.state_dir(), 0o755)?;
        std::fs::write(scratch.junit(), "")?;
        plant_mode(&scratch.junit(), 0o644)?;
        let mut command = clean_command(fixture("interrupts"));
        scratch
            .apply(&mut command)
            .args(["--exact", "hangs"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let child = command.spawn()?;
        ensure(
            await_event(&scratch, "test-hanging", Duration::from_secs(30)),
            || "the test never started".to_owned(),
        )?;
        send_signal(&child, "-TERM");
        let ran = Ran::from(child.wait_with_output()?);
        ensure(ran.code == Some(143), || ran.text())?;
        ensure(
            ran.stdout
                .contains("interrupted by SIGTERM: the test body was stopped"),
            || ran.text(),
        )?;
        ensure(scratch.count("artifacts-collected") == 1, || ran.text())?;
        let folder = ran
            .stdout
            .lines()
            .find_map(|line| line.trim().strip_prefix("artifacts: "))
            .map(std::path::PathBuf::from)
            .ok_or_else(|| format!("no artifacts folder named\n{}", ran.text()))?;
        ensure(
            std::fs::read_to_string(folder.join("collected.txt"))
                .ok()
                .as_deref()
                == Some("ready"),
            || format!("{} holds no artifact", folder.display()),
        )?;
        let junit = std::fs::read_to_string(scratch.junit())?;
        ensure(junit.contains("interrupted by SIGTERM"), || junit.clone())?;

        // What the run left is private: its state, JUnit and artifacts folder.
        let shared = shared_under(&scratch.state_dir());
        ensure(shared.is_empty(), || {
            format!("state open to others: {shared:?}")
        })?;
        ensure(mode(&scratch.junit()) == 0o600, || {
            format!("JUnit is {:o}", mode(&scratch.junit()))
        })?;
        for dir in [&kindling_dir, &folder] {
            ensure(mode(dir) == 0o700, || {
                format!("{} is {:o}", dir.display(), mode(dir))
            })?;
        }
        ensure(folder.starts_with(&kindling_dir), || {
            format!(
                "artifacts outside {}: {}",
                kindling_dir.display(),
                folder.display()
            )
        })?;
        Ok(())
    })
    .await
}

#[kindling_harness::test(requires = nextest())]
async fn junit_of_cargo_test_and_nextest_agree() -> Outcome {
    blocking(|| {
        let scratch = Scratch::new();
        let ran = cargo_test(&scratch, "outcomes", &[]);
        ensure(ran.code == Some(101), || ran.text())?;
        let ours = Report::deserialize_from_str(&std::fs::read_to_string(scratch.junit())?)?;
        let (ran, junit) = nextest_run(&scratch, "outcomes", &[]);
        ensure(ran.code != Some(0), || ran.text())?;
        let theirs = Report::deserialize_from_str(&junit)?;

        let names = |report: &Report, with_skipped: bool| -> BTreeSet<(String, String)> {
            report
                .test_suites
                .iter()
                .flat_map(|suite| {
                    suite
                        .test_cases
                        .iter()
                        .filter(move |case| {
                            with_skipped || !matches!(case.status, TestCaseStatus::Skipped { .. })
                        })
                        .map(move |case| {
                            (
                                suite.name.as_str().to_owned(),
                                case.name.as_str().to_owned(),
                            )
                        })
                })
                .collect()
        };
        ensure(names(&ours, false) == names(&theirs, true), || {
            format!(
                "ours: {:?}\nnextest: {:?}",
                names(&ours, false),
                names(&theirs, true)
            )
        })?;
        let suite = &ours.test_suites[0];
        let case = |name: &str| {
            suite
                .test_cases
                .iter()
                .find(|case| case.name.as_str() == name)
        };
        ensure(
            matches!(
                case("slow::ignored").map(|c| &c.status),
                Some(TestCaseStatus::Skipped { .. })
            ),
            || "the ignored test is not skipped in our JUnit".to_owned(),
        )?;
        for case in &suite.test_cases {
            ensure(
                case.classname.as_ref().map(|c| c.as_str()) == Some(suite.name.as_str()),
                || format!("{}: classname is not the binary id", case.name.as_str()),
            )?;
        }
        let failed = case("api::fails_with_chain").ok_or("missing api::fails_with_chain")?;
        let TestCaseStatus::NonSuccess {
            message,
            description,
            ..
        } = &failed.status
        else {
            return Err("api::fails_with_chain did not fail".into());
        };
        ensure(
            message.as_ref().map(|m| m.as_str()) == Some("failed to read `ConfigMap/settings`"),
            || format!("message: {message:?}"),
        )?;
        ensure(
            description
                .as_ref()
                .is_some_and(|d| d.as_str().contains("connection reset by peer")),
            || format!("description: {description:?}"),
        )?;
        ensure(
            failed
                .system_out
                .as_ref()
                .is_some_and(|o| o.as_str().contains("about to fail")),
            || "the test's log is not in its system-out".to_owned(),
        )?;
        let passed = case("api::passes").ok_or("missing api::passes")?;
        ensure(
            passed.system_out.as_ref().is_some_and(|o| {
                o.as_str().contains("hello from passes") && !o.as_str().contains("about to fail")
            }),
            || "logs of concurrent tests mixed or missing".to_owned(),
        )?;
        Ok(())
    })
    .await
}

#[kindling_harness::test]
async fn timeouts_fire_and_say_what_was_running() -> Outcome {
    blocking(|| {
        let scratch = Scratch::new();
        let ran = run_binary(&scratch, "outcomes", &["--exact", "slow::times_out"], &[]);
        ensure(ran.code == Some(101), || ran.text())?;
        ensure(
            ran.stdout.contains("test timed out after 1s")
                && ran
                    .stdout
                    .contains("still running: waiting_for{object=\"Deployment/api\"}"),
            || ran.text(),
        )?;

        let started = Instant::now();
        let ran = run_binary(
            &scratch,
            "basic",
            &["--exact", "api::create"],
            &[
                ("FIXTURE_SETUP_SLEEP_MS", "60000"),
                ("KINDLING_SETUP_TIMEOUT", "1s"),
            ],
        );
        ensure(
            ran.code == Some(101) && started.elapsed() < Duration::from_secs(30),
            || ran.text(),
        )?;
        ensure(
            ran.stdout
                .contains("timed out after 1s while phase `slow` was still running"),
            || ran.text(),
        )?;
        ensure(scratch.state("basic")["status"] == "failed", || {
            "timeout not recorded as failed".to_owned()
        })?;

        let ran = run_binary(
            &scratch,
            "basic",
            &["--exact", "api::read"],
            &[
                ("KINDLING_TEST_TIMEOUT", "200ms"),
                ("FIXTURE_TEST_SLEEP_MS", "30000"),
            ],
        );
        ensure(
            ran.code == Some(101) && ran.stdout.contains("test timed out after 200ms"),
            || ran.text(),
        )?;
        Ok(())
    })
    .await
}

#[kindling_harness::test]
async fn duplicate_names_are_refused_also_when_listing() -> Outcome {
    blocking(|| {
        let scratch = Scratch::new();
        for args in [&["--list", "--format", "terse"][..], &[][..]] {
            let ran = run_binary(&scratch, "duplicates", args, &[]);
            ensure(ran.code == Some(2) && ran.stdout.is_empty(), || ran.text())?;
            ensure(
                ran.stderr
                    .contains("duplicate test names: `same::name` (2 times)"),
                || ran.text(),
            )?;
            ensure(!ran.stderr.contains("panicked"), || ran.text())?;
        }
        Ok(())
    })
    .await
}

#[kindling_harness::test]
async fn bad_variables_are_errors_naming_the_variable() -> Outcome {
    blocking(|| {
    let scratch = Scratch::new();
    let cases = [
        (
            "KINDLING_PROGRESS",
            "fancy",
            "invalid value `fancy` in KINDLING_PROGRESS: expected one of `auto`, `bar`, `plain`, `none`",
        ),
        (
            "KINDLING_TEST_TIMEOUT",
            "soon",
            "invalid value `soon` in KINDLING_TEST_TIMEOUT: expected a positive duration",
        ),
        (
            "KINDLING_REUSE",
            "sometimes",
            "invalid value `sometimes` in KINDLING_REUSE: expected one of `auto`, `never`",
        ),
        (
            "KINDLING_KEEP",
            "forever",
            "invalid value `forever` in KINDLING_KEEP: expected one of `always`, `on-failure`, `never`",
        ),
    ];
    let list = &["--list", "--format", "terse"][..];
    for (variable, value, expected) in cases {
        for args in [list, &[][..]] {
            refused(&scratch, "basic", args, &[(variable, value)], expected)?;
        }
    }
    warned(
        &scratch,
        "basic",
        &[("KINDLING_TEST_TIMOUT", "5s")],
        "warning: KINDLING_TEST_TIMOUT is not a kindling variable this suite knows",
    )?;
    ensure(scratch.count("setup-started") == 0, || {
        "setup ran".to_owned()
    })?;
    // A library's variables (kindling's KINDLING_TAG_POLICY) are known
    // only to suites linked with it.
    warned(
        &scratch,
        "basic",
        &[("KINDLING_TAG_POLICY", "newest")],
        "warning: KINDLING_TAG_POLICY is not a kindling variable this suite knows",
    )?;
    Ok(())
    })
    .await
}

/// `suite` run with `args` and `env` exits 2 before any test, saying `expected`.
fn refused(
    scratch: &Scratch,
    suite: &str,
    args: &[&str],
    env: &[(&str, &str)],
    expected: &str,
) -> Result<(), String> {
    let ran = run_binary(scratch, suite, args, env);
    ensure(ran.code == Some(2) && ran.stdout.is_empty(), || ran.text())?;
    ensure(
        ran.stderr.contains(expected) && !ran.stderr.contains("panicked"),
        || ran.text(),
    )
}

/// `suite` lists its tests with `env`, warning `expected`.
fn warned(
    scratch: &Scratch,
    suite: &str,
    env: &[(&str, &str)],
    expected: &str,
) -> Result<(), String> {
    let ran = run_binary(scratch, suite, &["--list", "--format", "terse"], env);
    ensure(ran.code == Some(0), || ran.text())?;
    ensure(ran.stderr.contains(expected), || ran.text())
}

#[kindling_harness::test]
async fn filters_select_like_libtest() -> Outcome {
    blocking(|| {
        let scratch = Scratch::new();
        let ran = run_binary(
            &scratch,
            "basic",
            &["api::", "--skip", "delete", "--test-threads", "1"],
            &[],
        );
        ensure(ran.code == Some(0), || ran.text())?;
        ensure(
            scratch.count("test-ran") == 3
                && ran
                    .stdout
                    .contains("3 passed; 0 failed; 0 ignored; 0 measured; 3 filtered out"),
            || ran.text(),
        )?;
        let ran = run_binary(&scratch, "basic", &["--ignored"], &[]);
        ensure(
            ran.code == Some(0)
                && ran.stdout.contains("1 passed")
                && scratch.count("test-ran") == 3,
            || ran.text(),
        )?;
        let ran = run_binary(&scratch, "basic", &["--include-ignored", "health"], &[]);
        ensure(
            ran.code == Some(0)
                && ran.stdout.contains("1 passed")
                && scratch.count("test-ran") == 4,
            || ran.text(),
        )?;
        // A test that needs no environment does not trigger the setup.
        let ran = run_binary(&scratch, "outcomes", &["--exact", "panics"], &[]);
        ensure(
            ran.code == Some(101) && ran.stdout.contains("test panicked: kaboom"),
            || ran.text(),
        )?;
        Ok(())
    })
    .await
}

kindling_harness::main!();
