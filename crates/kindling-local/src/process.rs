//! Detached component processes: started in a session of their own (so
//! they outlive the command that started them), with their PID, start time
//! and log recorded in the cluster's state directory, and stopped by that
//! exact PID, never by name.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process};
use serde::{Deserialize, Serialize};

/// A component to start.
#[derive(Debug, Clone)]
pub struct ProcessSpec {
    /// The component's name, which names its record and its log.
    pub name: String,
    /// The executable to run.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// Its whole environment: nothing else of the caller's is passed on.
    pub env: Vec<(String, String)>,
}

/// How long a process is waited for after SIGKILL before it is reported
/// as unstoppable.
const KILL_DEADLINE: Duration = Duration::from_secs(5);

/// A started component, as recorded on disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessRecord {
    /// The component's name.
    pub name: String,
    /// The process's id.
    pub pid: u32,
    /// Start time in clock ticks after boot (`/proc/<pid>/stat` field 22):
    /// tells the recorded process from a later one that reuses its PID.
    pub start_ticks: u64,
    /// The log file its stdout and stderr go to.
    pub log: PathBuf,
    /// The program and its arguments, as started.
    pub command: Vec<String>,
    /// How many times it was started again after it exited (see
    /// [`Supervisor::restart_if_exited`]); 0 for a fresh start.
    #[serde(default)]
    pub restarts: u32,
    /// Its whole environment, as started.
    #[serde(default)]
    pub env: Vec<(String, String)>,
}

/// A component that had exited and was started again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restarted {
    /// The component's name.
    pub name: String,
    /// Which restart this was, from 1.
    pub attempt: u32,
    /// The last line its log had when it exited (usually why).
    pub last_line: String,
}

/// Starting, finding or stopping a process failed.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// The component's log could not be set up, or `setsid` could not
    /// start it.
    #[error("failed to start {name} (`{program}`)")]
    Start {
        /// The component's name.
        name: String,
        /// The executable it runs.
        program: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The started process's record could not be written.
    #[error("failed to record {name} in `{path}`")]
    Record {
        /// The component's name.
        name: String,
        /// The record file, `<dir>/pids/<name>.json`.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The component does not run (it exited, or was never recorded).
    #[error("{name} exited{}; the last lines of `{log}`:\n{tail}", restarted_times(*.restarts))]
    Exited {
        /// The component's name.
        name: String,
        /// How many times it had been started again before this exit.
        restarts: u32,
        /// Its log file.
        log: PathBuf,
        /// The last lines of the log.
        tail: String,
    },
    /// The recorded process was still running after SIGTERM, SIGKILL and
    /// the deadline (a process in uninterruptible sleep, a hung mount).
    #[error(
        "{name} (pid {pid}) still runs {}s after SIGTERM and SIGKILL: see `cat /proc/{pid}/stack` and `ps -o stat,wchan -p {pid}` for what it waits on",
        waited.as_secs()
    )]
    Unstoppable {
        /// The component's name.
        name: String,
        /// The process id.
        pid: u32,
        /// How long it was waited for.
        waited: Duration,
    },
    /// Sending SIGTERM or SIGKILL to the recorded process failed.
    #[error("failed to stop {name} (pid {pid})")]
    Stop {
        /// The component's name.
        name: String,
        /// The recorded process id.
        pid: u32,
        /// The error from `kill`.
        #[source]
        source: std::io::Error,
    },
}

fn restarted_times(restarts: u32) -> String {
    match restarts {
        0 => String::new(),
        1 => " after being restarted once".to_owned(),
        n => format!(" after being restarted {n} times"),
    }
}

/// The processes of one cluster: records in `<dir>/pids`, logs in `<dir>/logs`.
#[derive(Debug, Clone)]
pub struct Supervisor {
    dir: PathBuf,
}

impl Supervisor {
    /// The supervisor of the processes recorded under `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Supervisor { dir: dir.into() }
    }

    fn record_path(&self, name: &str) -> PathBuf {
        self.dir.join("pids").join(format!("{name}.json"))
    }

    /// The log file of a component.
    pub fn log_path(&self, name: &str) -> PathBuf {
        self.dir.join("logs").join(format!("{name}.log"))
    }

    /// Starts `spec` in a new session (`setsid`), output appended to its log.
    pub fn start(&self, spec: &ProcessSpec) -> Result<ProcessRecord, ProcessError> {
        self.start_counting(spec, 0)
    }

    /// Starts `name` again with the command it was last started with if it
    /// was started and has exited, as a kubelet restarts a crashed static
    /// pod: at most `limit` times, then the exit is
    /// [`ProcessError::Exited`] with the last `lines` lines of its log.
    /// `Ok(None)` when it runs or was never started.
    pub fn restart_if_exited(
        &self,
        name: &str,
        limit: u32,
        lines: usize,
    ) -> Result<Option<Restarted>, ProcessError> {
        let Some(record) = self.record(name) else {
            return Ok(None);
        };
        if Self::is_running(&record) {
            return Ok(None);
        }
        let log = self.log_path(name);
        let Some((program, args)) = record
            .command
            .split_first()
            .filter(|_| record.restarts < limit)
        else {
            return Err(ProcessError::Exited {
                name: name.to_owned(),
                restarts: record.restarts,
                tail: log_tail(&log, lines),
                log,
            });
        };
        let last_line = log_tail(&log, 1);
        let spec = ProcessSpec {
            name: name.to_owned(),
            program: PathBuf::from(program),
            args: args.to_vec(),
            env: record.env.clone(),
        };
        let attempt = record.restarts + 1;
        self.start_counting(&spec, attempt)?;
        Ok(Some(Restarted {
            name: name.to_owned(),
            attempt,
            last_line,
        }))
    }

    fn start_counting(
        &self,
        spec: &ProcessSpec,
        restarts: u32,
    ) -> Result<ProcessRecord, ProcessError> {
        let start_error = |source| ProcessError::Start {
            name: spec.name.clone(),
            program: spec.program.clone(),
            source,
        };
        let log = self.log_path(&spec.name);
        kindling_harness::util::create_private_dir_all(log.parent().expect("logs dir"))
            .map_err(start_error)?;
        // One log per start: a failure quotes this start's lines only; the
        // last start's log stays beside it.
        if log.exists() {
            std::fs::rename(&log, log.with_extension("previous.log")).map_err(start_error)?;
        }
        let output = {
            use std::os::unix::fs::OpenOptionsExt as _;
            std::fs::OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(true)
                .mode(0o600)
                .open(&log)
                .map_err(start_error)?
        };
        // `setsid` execs the program in place when the caller is not a
        // process-group leader, so the PID we get is the component's own.
        let child = Command::new("/usr/bin/setsid")
            .arg(&spec.program)
            .args(&spec.args)
            .env_clear()
            .envs(spec.env.iter().map(|(key, value)| (key, value)))
            .stdin(Stdio::null())
            .stdout(output.try_clone().map_err(start_error)?)
            .stderr(output)
            .spawn()
            .map_err(start_error)?;
        let pid = child.id();
        // The child is not waited for: it belongs to its own session.
        drop(child);
        let start_ticks = wait_for_exec(pid, &spec.program).unwrap_or_default();
        let mut command = vec![spec.program.display().to_string()];
        command.extend(spec.args.iter().cloned());
        let record = ProcessRecord {
            name: spec.name.clone(),
            pid,
            start_ticks,
            log,
            command,
            restarts,
            env: spec.env.clone(),
        };
        let path = self.record_path(&spec.name);
        let record_error = |source| ProcessError::Record {
            name: spec.name.clone(),
            path: path.clone(),
            source,
        };
        kindling_harness::util::create_private_dir_all(path.parent().expect("pids dir"))
            .map_err(record_error)?;
        let json = serde_json::to_vec_pretty(&record).expect("record serialises");
        kindling_harness::util::write_atomically(&path, &json).map_err(record_error)?;
        Ok(record)
    }

    /// Every recorded process, in start order.
    pub fn records(&self) -> Vec<ProcessRecord> {
        let Ok(entries) = std::fs::read_dir(self.dir.join("pids")) else {
            return Vec::new();
        };
        let mut records: Vec<ProcessRecord> = entries
            .flatten()
            .filter_map(|entry| serde_json::from_slice(&std::fs::read(entry.path()).ok()?).ok())
            .collect();
        records.sort_by_key(|record| (record.start_ticks, record.pid));
        records
    }

    /// The record of `name`, if it was started.
    pub fn record(&self, name: &str) -> Option<ProcessRecord> {
        serde_json::from_slice(&std::fs::read(self.record_path(name)).ok()?).ok()
    }

    /// Whether the recorded process still runs (same PID and start time, not a zombie).
    pub fn is_running(record: &ProcessRecord) -> bool {
        match proc_stat(record.pid) {
            Some((_, ticks)) => {
                (record.start_ticks == 0 || ticks == record.start_ticks)
                    && any_thread_alive(record.pid)
            }
            None => false,
        }
    }

    /// Fails with the last `lines` lines of its log if `name` no longer runs.
    pub fn ensure_running(&self, name: &str, lines: usize) -> Result<(), ProcessError> {
        let record = self.record(name);
        if record.as_ref().is_some_and(Self::is_running) {
            return Ok(());
        }
        let log = self.log_path(name);
        Err(ProcessError::Exited {
            name: name.to_owned(),
            restarts: record.map_or(0, |record| record.restarts),
            tail: log_tail(&log, lines),
            log,
        })
    }

    /// Stops `name`: SIGTERM, then SIGKILL after `grace`. Returns whether it was running.
    pub fn stop(&self, name: &str, grace: Duration) -> Result<bool, ProcessError> {
        let Some(record) = self.record(name) else {
            return Ok(false);
        };
        // A record naming no valid PID (a corrupt file) names nothing running.
        let pid = i32::try_from(record.pid).ok().and_then(Pid::from_raw);
        let was_running = pid.is_some() && Self::is_running(&record);
        if let Some(pid) = pid.filter(|_| was_running) {
            let stop_error = |source: rustix::io::Errno| ProcessError::Stop {
                name: name.to_owned(),
                pid: record.pid,
                source: source.into(),
            };
            kill_process(pid, Signal::TERM).map_err(stop_error)?;
            let deadline = Instant::now() + grace;
            while Self::is_running(&record) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            if Self::is_running(&record) {
                kill_process(pid, Signal::KILL).map_err(stop_error)?;
                let deadline = Instant::now() + KILL_DEADLINE;
                while Self::is_running(&record) {
                    if Instant::now() >= deadline {
                        return Err(ProcessError::Unstoppable {
                            name: name.to_owned(),
                            pid: record.pid,
                            waited: grace + KILL_DEADLINE,
                        });
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
        let _ = std::fs::remove_file(self.record_path(name));
        Ok(was_running)
    }

    /// Stops every recorded process, last started first.
    pub fn stop_all(&self, grace: Duration) -> Result<Vec<String>, ProcessError> {
        let mut stopped = Vec::new();
        for record in self.records().into_iter().rev() {
            if self.stop(&record.name, grace)? {
                stopped.push(record.name);
            }
        }
        Ok(stopped)
    }
}

/// Processes running one of `programs` (by their executable's path) whose
/// command line names a path under one of `dirs`, as `(name, pid)`.
pub fn unrecorded(programs: &[(String, PathBuf)], dirs: &[PathBuf]) -> Vec<(String, u32)> {
    let programs: Vec<(String, PathBuf)> = programs
        .iter()
        .map(|(name, path)| {
            (
                name.clone(),
                std::fs::canonicalize(path).unwrap_or_else(|_| path.clone()),
            )
        })
        .collect();
    let dirs: Vec<String> = dirs.iter().map(|dir| dir.display().to_string()).collect();
    let own = std::process::id();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == own || matches!(proc_stat(pid), None | Some(('Z' | 'X', _))) {
            continue;
        }
        let Ok(exe) = std::fs::read_link(entry.path().join("exe")) else {
            continue;
        };
        // A binary replaced since it started reads as `<path> (deleted)`.
        let exe = exe.display().to_string();
        let Some((name, _)) = programs
            .iter()
            .find(|(_, path)| exe.trim_end_matches(" (deleted)") == path.display().to_string())
        else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let names_our_dir = cmdline
            .split(|byte| *byte == 0)
            .map(String::from_utf8_lossy)
            .any(|arg| dirs.iter().any(|dir| names_path(&arg, dir)));
        if names_our_dir {
            found.push((name.clone(), pid));
        }
    }
    found
}

/// Whether `arg` names `dir` or a path below it: `dir` followed by `/` or
/// the end, never a longer name it prefixes (`/c/kindling` is not in
/// `--data-dir=/c/kindling-2/etcd`).
fn names_path(arg: &str, dir: &str) -> bool {
    arg.match_indices(dir)
        .any(|(at, _)| matches!(arg[at + dir.len()..].chars().next(), None | Some('/')))
}

/// SIGTERM, then SIGKILL after `grace`; true once `pid` is gone.
pub fn terminate(pid: u32, grace: Duration) -> bool {
    let Some(target) = Pid::from_raw(pid as i32) else {
        return true;
    };
    let started = proc_stat(pid).map(|(_, ticks)| ticks);
    let alive = || match proc_stat(pid) {
        Some((_, ticks)) => Some(ticks) == started && any_thread_alive(pid),
        None => false,
    };
    let _ = kill_process(target, Signal::TERM);
    let deadline = Instant::now() + grace;
    while alive() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    if alive() {
        let _ = kill_process(target, Signal::KILL);
        let deadline = Instant::now() + Duration::from_secs(5);
        while alive() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    !alive()
}

/// Waits until `pid` runs `program` (after `setsid` exec'd it) and returns its start time.
fn wait_for_exec(pid: u32, program: &Path) -> Option<u64> {
    let wanted = std::fs::canonicalize(program).ok();
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok();
        if exe.is_some() && (wanted.is_none() || exe == wanted) {
            return proc_stat(pid).map(|(_, ticks)| ticks);
        }
        match proc_stat(pid) {
            None => return None,
            Some(('Z', ticks)) => return Some(ticks),
            Some(_) => {}
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    proc_stat(pid).map(|(_, ticks)| ticks)
}

/// Whether any thread of `pid` has not exited. A process whose main thread
/// is a zombie may still have threads exiting, and they hold its open
/// files, its listening sockets among them, until the last one is gone.
fn any_thread_alive(pid: u32) -> bool {
    let alive = |state: char| state != 'Z' && state != 'X';
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return proc_stat(pid).is_some_and(|(state, _)| alive(state));
    };
    tasks.flatten().any(|task| {
        std::fs::read_to_string(task.path().join("stat"))
            .ok()
            .and_then(|text| stat_fields(&text))
            .is_some_and(|(state, _)| alive(state))
    })
}

/// State letter and start time of a process, from `/proc/<pid>/stat`.
fn proc_stat(pid: u32) -> Option<(char, u64)> {
    stat_fields(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// State letter and start time from the text of a `stat` file.
fn stat_fields(text: &str) -> Option<(char, u64)> {
    // The command name may contain spaces: fields start after its closing parenthesis.
    let rest = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    let start = fields.get(19)?.parse().ok()?;
    Some((state, start))
}

/// The last `lines` lines of a log file.
pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn test_env() -> Vec<(String, String)> {
        vec![("PATH".to_owned(), "/usr/bin:/bin".to_owned())]
    }

    fn sleeper(name: &str, seconds: &str) -> ProcessSpec {
        ProcessSpec {
            name: name.to_owned(),
            program: PathBuf::from("/bin/sleep"),
            args: vec![seconds.to_owned()],
            env: test_env(),
        }
    }

    #[test]
    fn a_component_gets_its_own_environment_and_nothing_of_the_callers() {
        let dir = tempfile::tempdir().unwrap();
        let supervisor = Supervisor::new(dir.path());
        let mut spec = sleeper("env", "60");
        spec.env
            .push(("NO_PROXY".to_owned(), "10.0.0.0/8".to_owned()));
        let record = supervisor.start(&spec).unwrap();
        let environ = std::fs::read(format!("/proc/{}/environ", record.pid)).unwrap();
        let mut seen: Vec<String> = environ
            .split(|byte| *byte == 0)
            .filter(|entry| !entry.is_empty())
            .map(|entry| String::from_utf8_lossy(entry).into_owned())
            .collect();
        seen.sort();
        assert!(std::env::var_os("HOME").is_some() || std::env::var_os("PATH").is_some());
        assert_eq!(seen, ["NO_PROXY=10.0.0.0/8", "PATH=/usr/bin:/bin"]);
        assert_eq!(supervisor.record("env").unwrap().env, spec.env);
        supervisor.stop("env", Duration::from_secs(5)).unwrap();
    }

    #[test]
    fn started_processes_are_recorded_and_stopped_by_pid() {
        let dir = tempfile::tempdir().unwrap();
        let supervisor = Supervisor::new(dir.path());
        let first = supervisor.start(&sleeper("first", "60")).unwrap();
        let second = supervisor.start(&sleeper("second", "60")).unwrap();
        assert!(Supervisor::is_running(&first) && Supervisor::is_running(&second));
        assert_ne!(first.start_ticks, 0);
        let session = std::fs::read_to_string(format!("/proc/{}/stat", first.pid)).unwrap();
        let own_session = session[session.rfind(')').unwrap() + 2..]
            .split_whitespace()
            .nth(3)
            .unwrap()
            .to_owned();
        assert_eq!(
            own_session,
            first.pid.to_string(),
            "not the leader of its own session"
        );
        assert_eq!(supervisor.records().len(), 2);
        let stopped = supervisor.stop_all(Duration::from_secs(5)).unwrap();
        assert_eq!(stopped, vec!["second".to_owned(), "first".to_owned()]);
        assert!(!Supervisor::is_running(&first) && !Supervisor::is_running(&second));
        assert!(supervisor.records().is_empty());
        assert!(
            !supervisor.stop("first", Duration::from_secs(1)).unwrap(),
            "stopping nothing is not an error"
        );
    }

    #[test]
    fn an_exited_component_is_reported_with_its_log_tail() {
        let dir = tempfile::tempdir().unwrap();
        let supervisor = Supervisor::new(dir.path());
        let spec = ProcessSpec {
            name: "broken".to_owned(),
            program: PathBuf::from("/bin/sh"),
            env: test_env(),
            args: vec![
                "-c".to_owned(),
                "for i in 1 2 3 4 5; do echo line $i; done; echo fatal: bad flag >&2; exit 3"
                    .to_owned(),
            ],
        };
        supervisor.start(&spec).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while supervisor.ensure_running("broken", 3).is_ok() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let error = supervisor.ensure_running("broken", 3).unwrap_err();
        let text = error.to_string();
        assert!(
            text.starts_with("broken exited; the last lines of"),
            "{text}"
        );
        assert!(text.ends_with("line 4\nline 5\nfatal: bad flag"), "{text}");
    }

    /// Calls `restart_if_exited` until the component has exited once more.
    fn next_exit(supervisor: &Supervisor, limit: u32) -> Result<Restarted, ProcessError> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(restarted) = supervisor.restart_if_exited("crashing", limit, 2)? {
                return Ok(restarted);
            }
            assert!(Instant::now() < deadline, "the component never exited");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn an_exited_component_is_restarted_with_its_command_up_to_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let supervisor = Supervisor::new(dir.path());
        let starts = dir.path().join("starts");
        let spec = ProcessSpec {
            name: "crashing".to_owned(),
            program: PathBuf::from("/bin/sh"),
            env: test_env(),
            args: vec![
                "-c".to_owned(),
                format!(
                    "echo start >> '{0}'; echo \"fatal: request timed out (start $(wc -l < '{0}'))\"; exit 1",
                    starts.display()
                ),
            ],
        };
        supervisor.start(&spec).unwrap();
        for attempt in 1..=2 {
            let restarted = next_exit(&supervisor, 2).unwrap();
            assert_eq!(restarted.attempt, attempt);
            assert_eq!(
                restarted.last_line,
                format!("fatal: request timed out (start {attempt})")
            );
            assert_eq!(supervisor.record("crashing").unwrap().restarts, attempt);
        }
        let error = next_exit(&supervisor, 2).unwrap_err().to_string();
        assert!(
            error.starts_with("crashing exited after being restarted 2 times; the last lines of"),
            "{error}"
        );
        assert!(
            error.ends_with("fatal: request timed out (start 3)"),
            "{error}"
        );
        assert_eq!(std::fs::read_to_string(&starts).unwrap().lines().count(), 3);
        assert_eq!(
            supervisor.restart_if_exited("never-started", 2, 2).unwrap(),
            None
        );
    }

    #[test]
    fn unrecorded_processes_are_found_by_binary_and_state_dir_and_terminated() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("cluster");
        std::fs::create_dir_all(&state).unwrap();
        // A shell that ignores SIGTERM shows the kill. It blocks opening a
        // FIFO no one writes: a loop of `sleep` would fork, and a forked
        // child is the same shell with the same command line until it execs.
        let fifo = dir.path().join("never-written");
        assert!(
            Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap()
                .success()
        );
        let program = PathBuf::from("/bin/sh");
        let mut child = Command::new(&program)
            .args([
                "-c",
                &format!(
                    "trap '' TERM; read line < '{}' # {}",
                    fifo.display(),
                    state.display()
                ),
            ])
            .spawn()
            .unwrap();
        let programs = vec![("shell".to_owned(), program)];
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut found = Vec::new();
        while found.is_empty() && Instant::now() < deadline {
            found = unrecorded(&programs, std::slice::from_ref(&state));
        }
        assert_eq!(found, vec![("shell".to_owned(), child.id())]);
        assert!(unrecorded(&programs, &[dir.path().join("other")]).is_empty());
        assert!(terminate(child.id(), Duration::from_millis(300)));
        let status = child.wait().unwrap();
        assert!(!status.success(), "{status:?}");
    }

    #[test]
    fn a_directory_is_named_only_by_itself_and_paths_below_it() {
        assert!(names_path("--data-dir=/c/kindling/etcd", "/c/kindling"));
        assert!(names_path("/c/kindling", "/c/kindling"));
        assert!(!names_path("--data-dir=/c/kindling-2/etcd", "/c/kindling"));
        assert!(!names_path("/c/kindlingx", "/c/kindling"));
        assert!(names_path("/c/kindling-2/x:/c/kindling/y", "/c/kindling"));
    }

    #[test]
    fn each_start_gets_a_log_of_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let supervisor = Supervisor::new(dir.path());
        let say = |text: &str| ProcessSpec {
            name: "echo".to_owned(),
            program: PathBuf::from("/bin/echo"),
            args: vec![text.to_owned()],
            env: test_env(),
        };
        supervisor.start(&say("first start")).unwrap();
        let log = supervisor.log_path("echo");
        let deadline = Instant::now() + Duration::from_secs(5);
        while log_tail(&log, 5).is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        supervisor.start(&say("second start")).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while log_tail(&log, 5).is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(log_tail(&log, 5), "second start");
        assert_eq!(
            log_tail(&log.with_extension("previous.log"), 5),
            "first start"
        );
    }

    #[test]
    fn a_process_whose_main_thread_exited_runs_while_another_thread_does() {
        let dir = tempfile::tempdir().unwrap();
        let supervisor = Supervisor::new(dir.path());
        let release = dir.path().join("release");
        // The main thread ends with the `exit` system call (60 on x86-64,
        // 93 on arm64), which ends that thread only: a zombie main thread
        // while the other one waits for the file `release`.
        let script = format!(
            "import ctypes, os, platform, threading, time\n\
             def wait():\n    while not os.path.exists('{}'): time.sleep(0.01)\n\
             threading.Thread(target=wait).start()\n\
             ctypes.CDLL(None).syscall(93 if platform.machine() == 'aarch64' else 60, 0)\n",
            release.display()
        );
        let record = supervisor
            .start(&ProcessSpec {
                name: "threads".to_owned(),
                program: PathBuf::from("/usr/bin/python3"),
                args: vec!["-c".to_owned(), script],
                env: test_env(),
            })
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while proc_stat(record.pid).map(|(state, _)| state) != Some('Z') {
            assert!(Instant::now() < deadline, "the main thread never exited");
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(
            Supervisor::is_running(&record),
            "taken for gone while a thread runs"
        );
        std::fs::write(&release, "").unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Supervisor::is_running(&record) {
            assert!(
                Instant::now() < deadline,
                "still running after its last thread ended"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn a_reused_pid_is_not_taken_for_the_recorded_process() {
        let record = ProcessRecord {
            name: "ghost".to_owned(),
            pid: std::process::id(),
            start_ticks: 1,
            log: PathBuf::from("/nonexistent"),
            command: vec![],
            restarts: 0,
            env: vec![],
        };
        assert!(!Supervisor::is_running(&record));
    }
}
