//! Builds fixture suites once and runs them as a user would: the binary
//! directly, `cargo test`, `cargo nextest run`. Shared by the harness's
//! tests and kindling's (which include this file); the including module
//! names the fixture packages as `PACKAGES`.
//!
//! Fixtures build into their own target directory: a `cargo` started from
//! inside a `cargo test` must not wait on the outer build's lock.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

/// `Ok` if `condition` holds, else `message()` as the error (`?` turns it
/// into a test failure or a `BoxError`).
pub fn ensure(condition: bool, message: impl FnOnce() -> String) -> Result<(), String> {
    if condition { Ok(()) } else { Err(message()) }
}

/// A package of fixture suites: its name, its folder (relative to the
/// workspace) and its suites. The module including this runner lists its
/// packages as `super::PACKAGES`.
pub struct FixturePackage {
    pub name: &'static str,
    pub dir: &'static str,
    pub suites: &'static [&'static str],
    /// Its suites link kindling and run on the local provider whatever this
    /// machine would default to.
    pub local_provider: bool,
}

/// The fixture suites of the harness alone.
pub const HARNESS_FIXTURES: FixturePackage = FixturePackage {
    name: "kindling-harness-fixtures",
    dir: "crates/kindling-harness/tests/fixture-suites",
    suites: &[
        "basic",
        "outcomes",
        "failing_setup",
        "duplicates",
        "many",
        "requirements",
        "interrupts",
    ],
    local_provider: false,
};

fn package_of(suite: &str) -> &'static FixturePackage {
    super::PACKAGES
        .iter()
        .find(|package| package.suites.contains(&suite))
        .unwrap_or_else(|| panic!("no fixture package has a suite `{suite}`"))
}

/// The package a fixture suite is a target of.
pub fn fixture_package(suite: &str) -> &'static str {
    package_of(suite).name
}

/// The folder of the package a fixture suite is a target of.
pub fn fixture_package_dir(suite: &str) -> PathBuf {
    workspace_root().join(package_of(suite).dir)
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}

/// `target/fixture-suites`, beside the outer build's own directories.
pub fn fixture_target_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("CARGO_TARGET_TMPDIR is target/tmp")
        .join("fixture-suites")
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned())
}

/// A command with none of the outer run's nextest, kindling or fixture
/// variables, nor `CI`, so a nested run is a run of its own (a test sets
/// `CI` itself where that is what it checks). Nested cargo runs get the
/// fixture target directory through `CARGO_TARGET_DIR`.
pub fn clean_command(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut command = Command::new(program);
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy().into_owned();
        if key.starts_with("NEXTEST")
            || key.starts_with("KINDLING_")
            || key.starts_with("FIXTURE_")
            || key == "CARGO_TARGET_DIR"
            || key == "RUST_BACKTRACE"
            || key == "CI"
        {
            command.env_remove(key);
        }
    }
    command.env("KINDLING_PROGRESS", "plain");
    command
}

/// Runs a kindling fixture suite on the local provider, whatever this
/// machine would default to (a test of another provider, or of the default
/// choice, sets or removes it); a harness-only suite knows no such variable.
pub fn on_local_provider(command: &mut Command, suite: &str) {
    if package_of(suite).local_provider {
        command.env("KINDLING_PROVIDER", "local");
    }
}

/// Every fixture suite's target name.
pub fn fixture_suites() -> impl Iterator<Item = &'static str> {
    super::PACKAGES
        .iter()
        .flat_map(|package| package.suites.iter().copied())
}

/// Paths of the built fixture suite binaries, by target name.
pub fn fixture_binaries() -> &'static BTreeMap<String, PathBuf> {
    static BINARIES: OnceLock<BTreeMap<String, PathBuf>> = OnceLock::new();
    BINARIES.get_or_init(|| {
        let mut args = vec!["test", "--no-run"];
        for package in super::PACKAGES {
            args.extend(["-p", package.name]);
        }
        for suite in fixture_suites() {
            args.extend(["--test", suite]);
        }
        let binaries: BTreeMap<String, PathBuf> = cargo_executables(&args)
            .unwrap_or_else(|error| panic!("building the fixture suites failed: {error}"))
            .into_iter()
            .filter(|(name, _)| fixture_suites().any(|suite| suite == name))
            .collect();
        assert_eq!(
            binaries.len(),
            fixture_suites().count(),
            "missing fixture binaries: {binaries:?}"
        );
        binaries
    })
}

/// Runs `cargo <args>` in the workspace with the fixture target directory
/// and returns each built executable by target name. Compiler errors are
/// rendered to stderr as they come and, on failure, their text is the
/// error: with plain `--message-format=json` they would only be JSON on
/// stdout, and a failed build would say nothing of why.
pub fn cargo_executables(args: &[&str]) -> Result<Vec<(String, PathBuf)>, String> {
    use std::io::BufRead;
    let mut child = clean_command(cargo())
        .current_dir(workspace_root())
        .args(args)
        .arg("--message-format=json-render-diagnostics")
        .env("CARGO_TARGET_DIR", fixture_target_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|error| format!("`cargo {}` did not start: {error}", args.join(" ")))?;
    let stderr = child.stderr.take().expect("stderr is piped");
    let echo = std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            eprintln!("{line}");
            lines.push(line);
        }
        lines
    });
    let mut stdout = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().expect("stdout is piped"), &mut stdout)
        .map_err(|error| format!("reading cargo's output: {error}"))?;
    let status = child
        .wait()
        .map_err(|error| format!("waiting for cargo: {error}"))?;
    let stderr = echo.join().unwrap_or_default();
    if !status.success() {
        return Err(format!(
            "`cargo {}` exited with {status} (target directory {}):\n{}",
            args.join(" "),
            fixture_target_dir().display(),
            build_failure_excerpt(&stderr)
        ));
    }
    Ok(stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter_map(|message| {
            let name = message["target"]["name"].as_str()?.to_owned();
            let executable = message["executable"].as_str()?;
            Some((name, PathBuf::from(executable)))
        })
        .collect())
}

/// The executable cargo built for the target `name`.
pub fn cargo_executable(args: &[&str], name: &str) -> Result<PathBuf, String> {
    cargo_executables(args)?
        .into_iter()
        .find_map(|(built, executable)| (built == name).then_some(executable))
        .ok_or_else(|| format!("`cargo {}` built no `{name}` executable", args.join(" ")))
}

/// From the first error of a failed build on (at most 60 lines), else its
/// last 30 lines: the part that says why, without the `Compiling` lines.
fn build_failure_excerpt(stderr: &[String]) -> String {
    let first_error = stderr
        .iter()
        .position(|line| line.starts_with("error") || line.contains("No space left"));
    let lines = match first_error {
        Some(start) => &stderr[start..stderr.len().min(start + 60)],
        None => &stderr[stderr.len().saturating_sub(30)..],
    };
    lines.join("\n")
}

pub fn fixture(name: &str) -> PathBuf {
    fixture_binaries()[name].clone()
}

/// What one fixture run leaves behind, in directories of its own.
pub struct Scratch {
    pub root: tempfile::TempDir,
}

impl Scratch {
    pub fn new() -> Self {
        let root = tempfile::tempdir().expect("temporary directory");
        for sub in ["counters", "state", "target"] {
            std::fs::create_dir_all(root.path().join(sub)).expect("scratch dirs");
        }
        Scratch { root }
    }

    pub fn counters(&self) -> PathBuf {
        self.root.path().join("counters")
    }

    pub fn state_dir(&self) -> PathBuf {
        self.root.path().join("state")
    }

    pub fn junit(&self) -> PathBuf {
        self.root.path().join("junit.xml")
    }

    /// How many times `event` was recorded by the fixtures.
    pub fn count(&self, event: &str) -> usize {
        self.pids(event).len()
    }

    /// The process ids that recorded `event`, one per record.
    pub fn pids(&self, event: &str) -> Vec<String> {
        std::fs::read_to_string(self.counters().join(event))
            .map(|text| text.lines().map(str::to_owned).collect())
            .unwrap_or_default()
    }

    /// Applies the scratch directories to a command.
    pub fn apply<'a>(&self, command: &'a mut Command) -> &'a mut Command {
        command
            .env("FIXTURE_COUNTER_DIR", self.counters())
            .env("KINDLING_STATE_DIR", self.state_dir())
            .env("KINDLING_JUNIT", self.junit())
    }

    /// The recorded state of a suite, as JSON.
    pub fn state(&self, suite: &str) -> serde_json::Value {
        let text = std::fs::read_to_string(self.state_dir().join(format!("{suite}.json")))
            .expect("state file");
        serde_json::from_str(&text).expect("state is JSON")
    }
}

pub struct Ran {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Ran {
    pub fn from(output: Output) -> Self {
        Ran {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    pub fn text(&self) -> String {
        format!(
            "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Waits until a fixture recorded `event` (a file it appends to), for at
/// most `within`; false if it never did.
pub fn await_event(scratch: &Scratch, event: &str, within: std::time::Duration) -> bool {
    let deadline = std::time::Instant::now() + within;
    while scratch.count(event) == 0 {
        if std::time::Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    true
}

/// Sends `signal` (`-INT`, `-TERM`) to a process.
pub fn send_signal(child: &std::process::Child, signal: &str) {
    let sent = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(sent.success(), "kill {signal} {} failed", child.id());
}

/// Runs a fixture binary directly with `args`.
pub fn run_binary(scratch: &Scratch, suite: &str, args: &[&str], env: &[(&str, &str)]) -> Ran {
    Ran::from(
        binary_command(scratch, suite, args, env)
            .output()
            .expect("fixture runs"),
    )
}

/// [`run_binary`], started and not waited for (its output piped).
pub fn spawn_binary(
    scratch: &Scratch,
    suite: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> std::process::Child {
    binary_command(scratch, suite, args, env)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("fixture starts")
}

fn binary_command(scratch: &Scratch, suite: &str, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut command = clean_command(fixture(suite));
    on_local_provider(&mut command, suite);
    // As cargo and nextest run it: relative paths of the suite resolve
    // against its own package, not the calling test's.
    command.env("CARGO_MANIFEST_DIR", fixture_package_dir(suite));
    scratch
        .apply(&mut command)
        .args(args)
        .envs(env.iter().copied());
    command
}

/// `cargo test -p <its fixture package> --test <suite>`.
pub fn cargo_test(scratch: &Scratch, suite: &str, env: &[(&str, &str)]) -> Ran {
    fixture_binaries();
    let mut command = clean_command(cargo());
    command
        .current_dir(workspace_root())
        .args(["test", "-q", "-p", fixture_package(suite), "--test", suite])
        .env("CARGO_TARGET_DIR", fixture_target_dir());
    on_local_provider(&mut command, suite);
    scratch.apply(&mut command).envs(env.iter().copied());
    Ran::from(command.output().expect("cargo test runs"))
}

pub fn nextest_available() -> bool {
    clean_command(cargo())
        .args(["nextest", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// `cargo nextest run --profile ci` of one fixture suite, returning its
/// output and the JUnit nextest wrote. The nested runs use
/// `fixture-suites/nextest.toml`, whose store is the workspace's
/// `target/fixture-suites/nextest`,
/// and share its JUnit path, so they take turns.
pub fn nextest_run(scratch: &Scratch, suite: &str, env: &[(&str, &str)]) -> (Ran, String) {
    fixture_binaries();
    let lock_path = fixture_target_dir().join("nextest-run.lock");
    let lock = File::create(&lock_path).expect("nextest lock file");
    lock.lock().expect("nextest lock");
    // The store is relative to the workspace (nextest.toml), wherever
    // CARGO_TARGET_DIR puts the builds.
    let junit_path = workspace_root().join("target/fixture-suites/nextest/ci/junit.xml");
    let _ = std::fs::remove_file(&junit_path);
    let mut command = clean_command(cargo());
    command
        .current_dir(workspace_root())
        .args([
            "nextest",
            "run",
            "--profile",
            "ci",
            "--no-fail-fast",
            "--config-file",
        ])
        .arg(workspace_root().join("crates/kindling-harness/tests/fixture-suites/nextest.toml"))
        .args(["-p", fixture_package(suite), "--test", suite])
        .env("CARGO_TARGET_DIR", fixture_target_dir());
    on_local_provider(&mut command, suite);
    scratch.apply(&mut command).envs(env.iter().copied());
    let ran = Ran::from(command.output().expect("cargo nextest runs"));
    let junit = std::fs::read_to_string(&junit_path).unwrap_or_default();
    drop(lock);
    (ran, junit)
}
/// An error and its causes on one line, `outer: cause: root`.
pub fn error_text(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// `cargo nextest run --no-capture` of one fixture suite (default profile,
/// no JUnit), started and not waited for: several may run at once.
pub fn spawn_nextest(scratch: &Scratch, suite: &str, env: &[(&str, &str)]) -> std::process::Child {
    spawn_nextest_with(scratch, suite, env, &[])
}

/// [`spawn_nextest`] with more arguments to `cargo nextest run`.
pub fn spawn_nextest_with(
    scratch: &Scratch,
    suite: &str,
    env: &[(&str, &str)],
    nextest_args: &[&str],
) -> std::process::Child {
    fixture_binaries();
    let mut command = clean_command(cargo());
    command
        .current_dir(workspace_root())
        .args(["nextest", "run", "--no-capture", "--no-fail-fast"])
        .args(nextest_args)
        .args(["-p", fixture_package(suite), "--test", suite])
        .env("CARGO_TARGET_DIR", fixture_target_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    on_local_provider(&mut command, suite);
    scratch.apply(&mut command).envs(env.iter().copied());
    command.spawn().expect("cargo nextest starts")
}

/// Waits for a started run and returns what it printed.
pub fn finish(child: std::process::Child) -> Ran {
    Ran::from(child.wait_with_output().expect("the run ends"))
}

/// This process's peak resident size in MB (`VmHWM`), where /proc tells it.
pub fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse::<f64>()
        .ok()?;
    Some(kb / 1024.0)
}

/// Resets this process's peak resident size to its current size (Linux
/// `clear_refs` value 5).
pub fn reset_peak_rss() -> std::io::Result<()> {
    std::fs::write("/proc/self/clear_refs", "5")
}
