//! How commands reach a node: `docker exec` through the API, or a local process.
//!
//! Every command has a deadline, counted from its last progress: the input
//! it took (a write into its stdin completes only as it reads) or the
//! output it printed. Not a total deadline, nor one scaled to the bytes
//! sent: an import's length follows the archive's size (unknown up front,
//! `docker save` is streamed) and the speed of the node's disk, which a
//! loaded CI machine cannot promise; a command that keeps taking bytes is
//! working, one that takes and prints nothing for the limit is stuck.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::exec::{StartExecOptions, StartExecResults};
use bollard::models::ExecConfig;
use bytes::Bytes;
use futures_util::{Stream, StreamExt as _};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::NodeError;
use crate::BoxFuture;

/// Bytes streamed into a command's stdin.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, std::io::Error>> + Send>>;

/// What a command printed and how it exited.
#[derive(Debug, Clone, Default)]
pub struct ExecOutput {
    /// The command's exit code (`-1` when there is none, e.g. killed by a
    /// signal).
    pub exit_code: i64,
    /// What it wrote to stdout.
    pub stdout: String,
    /// What it wrote to stderr.
    pub stderr: String,
}

/// Runs commands on one node. `argv[0]` is `ctr` or `containerd`; a
/// transport may map it to a binary and flags of its own.
pub trait NodeTransport: Send + Sync {
    /// The node's name, for messages.
    fn node_name(&self) -> &str;

    /// Runs `argv` with `stdin` streamed in, and waits for it to exit. A
    /// command that goes `idle` without progress (taking input, printing)
    /// is killed, and fails with [`NodeError::Stalled`].
    fn exec(
        &self,
        argv: Vec<String>,
        stdin: Option<ByteStream>,
        idle: Duration,
    ) -> BoxFuture<Result<ExecOutput, NodeError>>;
}

fn exec_error(node: &str, argv: &[String], source: impl Into<crate::BoxError>) -> NodeError {
    NodeError::Exec {
        node: node.to_owned(),
        command: argv.join(" "),
        source: source.into(),
    }
}

fn stalled(node: &str, argv: &[String], idle: Duration) -> NodeError {
    NodeError::Stalled {
        node: node.to_owned(),
        command: argv.join(" "),
        waited: idle,
    }
}

/// When a command last made progress.
#[derive(Clone)]
struct Progress(Arc<Mutex<Instant>>);

impl Progress {
    fn new() -> Self {
        Progress(Arc::new(Mutex::new(Instant::now())))
    }

    fn made(&self) {
        *self.0.lock().expect("progress clock") = Instant::now();
    }

    /// Resolves once no progress was made for `idle`.
    async fn stalled(&self, idle: Duration) {
        loop {
            let quiet = self.0.lock().expect("progress clock").elapsed();
            match idle.checked_sub(quiet) {
                Some(left) if !left.is_zero() => tokio::time::sleep(left).await,
                _ => return,
            }
        }
    }
}

/// Everything `reader` yields, noting progress at each read.
async fn read_all(
    mut reader: impl tokio::io::AsyncRead + Unpin,
    progress: &Progress,
) -> std::io::Result<Vec<u8>> {
    let mut all = Vec::new();
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let read = reader.read(&mut buffer).await?;
        if read == 0 {
            return Ok(all);
        }
        progress.made();
        all.extend_from_slice(&buffer[..read]);
    }
}

/// Writes each chunk of `stream` into `pipe`, calling `made_progress`
/// after each; stops at the first error, the stream's or the pipe's.
async fn write_stream(
    mut stream: ByteStream,
    pipe: &mut (impl tokio::io::AsyncWrite + Unpin),
    made_progress: impl Fn(),
) -> std::io::Result<()> {
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(chunk) => pipe.write_all(&chunk).await?,
            Err(error) => return Err(error),
        }
        made_progress();
    }
    Ok(())
}

/// What an exec's attached `output` carries, stdout and stderr apart,
/// calling `made_progress` at each frame.
async fn collect_output<Frames>(
    output: &mut Frames,
    made_progress: impl Fn(),
) -> Result<ExecOutput, bollard::errors::Error>
where
    Frames: Stream<Item = Result<bollard::container::LogOutput, bollard::errors::Error>> + Unpin,
{
    let mut result = ExecOutput::default();
    while let Some(frame) = output.next().await {
        made_progress();
        match frame? {
            bollard::container::LogOutput::StdOut { message } => {
                result.stdout.push_str(&String::from_utf8_lossy(&message))
            }
            bollard::container::LogOutput::StdErr { message } => {
                result.stderr.push_str(&String::from_utf8_lossy(&message))
            }
            _ => {}
        }
    }
    Ok(result)
}

/// Spawns the command line `line`, killed on drop, its stdout and stderr
/// piped, and its stdin when `with_stdin`.
fn spawn_piped(line: &[String], with_stdin: bool) -> std::io::Result<tokio::process::Child> {
    let mut command = tokio::process::Command::new(&line[0]);
    command
        .args(&line[1..])
        .stdin(if with_stdin {
            std::process::Stdio::piped()
        } else {
            std::process::Stdio::null()
        })
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    command.spawn()
}

/// The variable that marks the processes of one `docker exec`, so they can
/// be found and killed: the Docker API has no way to stop an exec.
const EXEC_MARKER: &str = "KINDLING_NODE_EXEC";

/// Kills, in a node, every process whose environment holds `$1`: what a
/// node with a shell runs when the engine is not on this host.
const KILL_MARKED: &str = r#"for p in /proc/[0-9]*; do if { tr '\0' '\n' < "$p/environ"; } 2>/dev/null | grep -qxF "$1"; then kill -9 "${p#/proc/}"; fi; done"#;

/// Kills every process of this host whose environment holds `marker` (the
/// processes of a node container are among them when the engine runs
/// here and this process may signal them); how many.
fn kill_marked_on_host(marker: &str) -> usize {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let mut killed = 0;
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<i32>().ok())
            .and_then(rustix::process::Pid::from_raw)
        else {
            continue;
        };
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        if environ
            .split(|byte| *byte == 0)
            .any(|variable| variable == marker.as_bytes())
            && rustix::process::kill_process(pid, rustix::process::Signal::KILL).is_ok()
        {
            killed += 1;
        }
    }
    killed
}

/// `docker exec` in a node container (how kind reaches its nodes).
#[derive(Clone)]
pub struct DockerExec {
    docker: Docker,
    container: String,
}

impl DockerExec {
    /// Runs commands in the container `container` of `docker`'s engine.
    pub fn new(docker: Docker, container: impl Into<String>) -> Self {
        DockerExec {
            docker,
            container: container.into(),
        }
    }
}

impl NodeTransport for DockerExec {
    fn node_name(&self) -> &str {
        &self.container
    }

    fn exec(
        &self,
        argv: Vec<String>,
        stdin: Option<ByteStream>,
        idle: Duration,
    ) -> BoxFuture<Result<ExecOutput, NodeError>> {
        let marker = format!("{EXEC_MARKER}={}", uuid::Uuid::new_v4());
        let progress = Progress::new();
        let run = self.run_exec(
            argv.clone(),
            stdin,
            vec![marker.clone()],
            Some(progress.clone()),
        );
        let watch = watch_container(self.docker.clone(), self.container.clone());
        let this = self.clone();
        Box::pin(async move {
            // A removed container does not always end the attached streams:
            // stop waiting as soon as the node is gone.
            tokio::select! {
                result = run => result,
                gone = watch => Err(exec_error(&this.container, &argv, gone)),
                () = progress.stalled(idle) => {
                    this.kill_marked(&marker, &argv).await;
                    Err(stalled(&this.container, &argv, idle))
                }
            }
        })
    }
}

impl DockerExec {
    /// Kills the processes of the exec marked `marker`: through this
    /// host's `/proc` when the engine runs here, else with a shell in the
    /// node. Ending the exec's connection would not: the engine leaves the
    /// process running.
    async fn kill_marked(&self, marker: &str, argv: &[String]) {
        let host_marker = marker.to_owned();
        let on_host = tokio::task::spawn_blocking(move || kill_marked_on_host(&host_marker))
            .await
            .unwrap_or(0);
        if on_host > 0 {
            return;
        }
        let script = vec![
            "sh".to_owned(),
            "-c".to_owned(),
            KILL_MARKED.to_owned(),
            "sh".to_owned(),
            marker.to_owned(),
        ];
        let killed = tokio::time::timeout(
            Duration::from_secs(10),
            self.run_exec(script, None, Vec::new(), None),
        )
        .await;
        if !matches!(killed, Ok(Ok(ExecOutput { exit_code: 0, .. }))) {
            tracing::warn!(
                node = %self.container,
                "cannot kill `{}`, which made no progress: it may still run on the node",
                argv.join(" ")
            );
        }
    }
}

/// Resolves when the container no longer runs, with the reason.
async fn watch_container(docker: Docker, container: String) -> String {
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        match docker.inspect_container(&container, None).await {
            Ok(inspected)
                if inspected.state.as_ref().and_then(|state| state.running) == Some(true) => {}
            Ok(_) => return "the node container stopped".to_owned(),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => {
                return "the node container no longer exists".to_owned();
            }
            Err(_) => {}
        }
    }
}

impl DockerExec {
    /// Runs `argv` with `env` added, noting each chunk of input taken and
    /// of output read in `progress`.
    fn run_exec(
        &self,
        argv: Vec<String>,
        stdin: Option<ByteStream>,
        env: Vec<String>,
        progress: Option<Progress>,
    ) -> BoxFuture<Result<ExecOutput, NodeError>> {
        let docker = self.docker.clone();
        let container = self.container.clone();
        Box::pin(async move {
            let fail = |source: bollard::errors::Error| exec_error(&container, &argv, source);
            let made_progress = || {
                if let Some(progress) = &progress {
                    progress.made();
                }
            };
            let created = docker
                .create_exec(
                    &container,
                    ExecConfig {
                        attach_stdin: Some(stdin.is_some()),
                        attach_stdout: Some(true),
                        attach_stderr: Some(true),
                        cmd: Some(argv.clone()),
                        env: Some(env),
                        ..Default::default()
                    },
                )
                .await
                .map_err(fail)?;
            let started = docker
                .start_exec(&created.id, Some(StartExecOptions::default()))
                .await
                .map_err(fail)?;
            let StartExecResults::Attached {
                mut output,
                mut input,
            } = started
            else {
                return Err(exec_error(&container, &argv, "exec started detached"));
            };
            let feed = async {
                let fed = match stdin {
                    Some(stdin) => write_stream(stdin, &mut input, made_progress).await,
                    None => Ok(()),
                };
                // Always close stdin, also after an error: the command sees
                // a truncated stream and fails instead of waiting forever.
                let _ = input.shutdown().await;
                fed
            };
            let (fed, collected) = tokio::join!(feed, collect_output(&mut output, made_progress));
            let mut result = collected.map_err(fail)?;
            let inspected = docker.inspect_exec(&created.id).await.map_err(fail)?;
            result.exit_code = inspected.exit_code.unwrap_or(-1);
            if let Err(error) = fed
                && result.exit_code == 0
            {
                return Err(exec_error(&container, &argv, error));
            }
            Ok(result)
        })
    }
}

/// A local process (a containerd on this host): `ctr` and `containerd`
/// are replaced by the configured command prefixes.
#[derive(Clone)]
pub struct LocalProcess {
    name: String,
    ctr: Vec<String>,
    containerd: Vec<String>,
}

impl LocalProcess {
    /// `ctr` is e.g. `["/usr/bin/ctr", "--address", "/run/x/containerd.sock"]`,
    /// `containerd` e.g. `["/usr/bin/containerd", "--config", "/etc/x/config.toml"]`.
    pub fn new(name: impl Into<String>, ctr: Vec<String>, containerd: Vec<String>) -> Self {
        LocalProcess {
            name: name.into(),
            ctr,
            containerd,
        }
    }

    fn command_line(&self, argv: &[String]) -> Vec<String> {
        let prefix = match argv.first().map(String::as_str) {
            Some("ctr") => &self.ctr,
            Some("containerd") => &self.containerd,
            _ => return argv.to_vec(),
        };
        prefix.iter().chain(&argv[1..]).cloned().collect()
    }
}

impl NodeTransport for LocalProcess {
    fn node_name(&self) -> &str {
        &self.name
    }

    fn exec(
        &self,
        argv: Vec<String>,
        stdin: Option<ByteStream>,
        idle: Duration,
    ) -> BoxFuture<Result<ExecOutput, NodeError>> {
        let name = self.name.clone();
        let line = self.command_line(&argv);
        Box::pin(async move {
            let fail = |source: std::io::Error| exec_error(&name, &line, source);
            let mut child = spawn_piped(&line, stdin.is_some()).map_err(fail)?;
            let mut child_stdin = child.stdin.take();
            let child_stdout = child.stdout.take().expect("piped stdout");
            let child_stderr = child.stderr.take().expect("piped stderr");
            let progress = Progress::new();
            let feed = async {
                let mut fed = Ok(());
                if let (Some(stream), Some(pipe)) = (stdin, child_stdin.as_mut()) {
                    fed = write_stream(stream, pipe, || progress.made()).await;
                }
                drop(child_stdin.take());
                fed
            };
            let talk = async {
                tokio::join!(
                    feed,
                    read_all(child_stdout, &progress),
                    read_all(child_stderr, &progress)
                )
            };
            let talked = tokio::select! {
                talked = talk => Some(talked),
                () = progress.stalled(idle) => None,
            };
            let status = match talked {
                Some(_) => tokio::select! {
                    status = child.wait() => Some(status),
                    () = progress.stalled(idle) => None,
                },
                None => None,
            };
            let (Some((fed, out, err)), Some(status)) = (talked, status) else {
                // Killed and reaped here rather than on drop: once this
                // returns, the process is gone.
                let _ = child.kill().await;
                return Err(stalled(&name, &line, idle));
            };
            let stdout = out.map_err(fail)?;
            let stderr = err.map_err(fail)?;
            let status = status.map_err(fail)?;
            let result = ExecOutput {
                exit_code: status.code().map(i64::from).unwrap_or(-1),
                stdout: String::from_utf8_lossy(&stdout).into_owned(),
                stderr: String::from_utf8_lossy(&stderr).into_owned(),
            };
            if let Err(error) = fed
                && result.exit_code == 0
            {
                return Err(fail(error));
            }
            Ok(result)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_running(pid: i32) -> bool {
        rustix::process::Pid::from_raw(pid)
            .is_some_and(|pid| rustix::process::test_kill_process(pid).is_ok())
    }

    #[tokio::test]
    async fn a_command_without_progress_is_killed_and_named_after_its_deadline() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        let node = LocalProcess::new("node-a", vec!["sh".to_owned(), "-c".to_owned()], Vec::new());
        let script = format!("echo $$ > {}; exec sleep 1000", pid_file.display());
        let idle = Duration::from_millis(300);
        let started = Instant::now();
        let error = node
            .exec(vec!["ctr".to_owned(), script.clone()], None, idle)
            .await
            .unwrap_err();
        let waited = started.elapsed();
        let NodeError::Stalled {
            node: named,
            command,
            waited: reported,
        } = &error
        else {
            panic!("not a stall: {error:?}");
        };
        assert_eq!(named, "node-a");
        assert_eq!(command, &format!("sh -c {script}"));
        assert_eq!(*reported, idle);
        assert!(
            waited >= idle && waited < Duration::from_secs(30),
            "{waited:?}"
        );
        assert!(error.to_string().starts_with(&format!(
            "`sh -c {script}` on node `node-a` made no progress for 300ms, and was killed"
        )));
        let pid: i32 = std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(!is_running(pid), "`sleep 1000` (pid {pid}) still runs");
    }

    #[tokio::test]
    async fn a_command_that_keeps_printing_or_reading_outlives_its_idle_limit() {
        let idle = Duration::from_secs(1);
        let node = LocalProcess::new("node-a", vec!["sh".to_owned(), "-c".to_owned()], Vec::new());
        let started = Instant::now();
        let printed = node
            .exec(
                vec![
                    "ctr".to_owned(),
                    "for i in 1 2 3 4 5 6 7 8; do echo $i; sleep 0.25; done".to_owned(),
                ],
                None,
                idle,
            )
            .await
            .unwrap();
        assert!(started.elapsed() > idle);
        assert_eq!(printed.stdout.lines().count(), 8);

        // Input taken counts as progress: a slow stream is not cut off.
        let chunks = futures_util::stream::unfold(0, |sent| async move {
            (sent < 15).then_some(())?;
            tokio::time::sleep(Duration::from_millis(100)).await;
            Some((Ok(Bytes::from_static(b"0123456789")), sent + 1))
        });
        let started = Instant::now();
        let read = node
            .exec(
                vec!["ctr".to_owned(), "wc -c".to_owned()],
                Some(Box::pin(chunks)),
                idle,
            )
            .await
            .unwrap();
        assert!(started.elapsed() > idle);
        assert_eq!(read.stdout.trim(), "150");
    }

    /// A `sleep 1000` whose environment holds `marker`.
    fn marked_sleep(marker: &str) -> tokio::process::Child {
        let (name, value) = marker.split_once('=').unwrap();
        tokio::process::Command::new("sleep")
            .arg("1000")
            .env(name, value)
            .kill_on_drop(true)
            .spawn()
            .unwrap()
    }

    async fn killed(child: &mut tokio::process::Child) -> bool {
        use std::os::unix::process::ExitStatusExt as _;
        match tokio::time::timeout(Duration::from_secs(10), child.wait()).await {
            Ok(status) => status.unwrap().signal() == Some(9),
            Err(_) => false,
        }
    }

    #[tokio::test]
    async fn marked_processes_are_killed_on_the_host_and_by_the_nodes_shell() {
        let marker = format!("{EXEC_MARKER}={}", uuid::Uuid::new_v4());
        let other = format!("{EXEC_MARKER}={}", uuid::Uuid::new_v4());
        let mut target = marked_sleep(&marker);
        let mut bystander = marked_sleep(&other);
        assert_eq!(kill_marked_on_host(&marker), 1);
        assert!(killed(&mut target).await, "the marked process survived");
        assert!(is_running(bystander.id().unwrap() as i32));

        // The script a node's shell runs, here on this host's.
        let mut target = marked_sleep(&marker);
        let status = tokio::process::Command::new("sh")
            .args(["-c", KILL_MARKED, "sh", &marker])
            .status()
            .await
            .unwrap();
        assert!(status.success());
        assert!(killed(&mut target).await, "the script left it running");
        assert!(is_running(bystander.id().unwrap() as i32));
        bystander.kill().await.unwrap();
    }
}
