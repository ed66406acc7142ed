//! How commands reach a node: `docker exec` through the API, or a local process.

use std::pin::Pin;

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

    /// Runs `argv` with `stdin` streamed in, and waits for it to exit.
    fn exec(
        &self,
        argv: Vec<String>,
        stdin: Option<ByteStream>,
    ) -> BoxFuture<Result<ExecOutput, NodeError>>;
}

fn exec_error(node: &str, argv: &[String], source: impl Into<crate::BoxError>) -> NodeError {
    NodeError::Exec {
        node: node.to_owned(),
        command: argv.join(" "),
        source: source.into(),
    }
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
    ) -> BoxFuture<Result<ExecOutput, NodeError>> {
        let run = self.run_exec(argv.clone(), stdin);
        let watch = watch_container(self.docker.clone(), self.container.clone());
        let container = self.container.clone();
        Box::pin(async move {
            // A removed container does not always end the attached streams:
            // stop waiting as soon as the node is gone.
            tokio::select! {
                result = run => result,
                gone = watch => Err(exec_error(&container, &argv, gone)),
            }
        })
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
    fn run_exec(
        &self,
        argv: Vec<String>,
        stdin: Option<ByteStream>,
    ) -> BoxFuture<Result<ExecOutput, NodeError>> {
        let docker = self.docker.clone();
        let container = self.container.clone();
        Box::pin(async move {
            let fail = |source: bollard::errors::Error| exec_error(&container, &argv, source);
            let created = docker
                .create_exec(
                    &container,
                    ExecConfig {
                        attach_stdin: Some(stdin.is_some()),
                        attach_stdout: Some(true),
                        attach_stderr: Some(true),
                        cmd: Some(argv.clone()),
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
                let mut fed = Ok(());
                if let Some(mut stdin) = stdin {
                    while let Some(chunk) = stdin.next().await {
                        let written = match chunk {
                            Ok(chunk) => input.write_all(&chunk).await,
                            Err(error) => Err(error),
                        };
                        if let Err(error) = written {
                            fed = Err(error);
                            break;
                        }
                    }
                }
                // Always close stdin, also after an error: the command sees
                // a truncated stream and fails instead of waiting forever.
                let _ = input.shutdown().await;
                fed
            };
            let collect = async {
                let mut result = ExecOutput::default();
                while let Some(frame) = output.next().await {
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
                Ok::<_, bollard::errors::Error>(result)
            };
            let (fed, collected) = tokio::join!(feed, collect);
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
    ) -> BoxFuture<Result<ExecOutput, NodeError>> {
        let name = self.name.clone();
        let line = self.command_line(&argv);
        Box::pin(async move {
            let fail = |source: std::io::Error| exec_error(&name, &line, source);
            let mut command = tokio::process::Command::new(&line[0]);
            command
                .args(&line[1..])
                .stdin(if stdin.is_some() {
                    std::process::Stdio::piped()
                } else {
                    std::process::Stdio::null()
                })
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .kill_on_drop(true);
            let mut child = command.spawn().map_err(fail)?;
            let mut child_stdin = child.stdin.take();
            let mut child_stdout = child.stdout.take().expect("piped stdout");
            let mut child_stderr = child.stderr.take().expect("piped stderr");
            let feed = async {
                let mut fed = Ok(());
                if let (Some(mut stream), Some(pipe)) = (stdin, child_stdin.as_mut()) {
                    while let Some(chunk) = stream.next().await {
                        let written = match chunk {
                            Ok(chunk) => pipe.write_all(&chunk).await,
                            Err(error) => Err(error),
                        };
                        if let Err(error) = written {
                            fed = Err(error);
                            break;
                        }
                    }
                }
                drop(child_stdin.take());
                fed
            };
            let mut stdout = Vec::new();
            let mut stderr = Vec::new();
            let (fed, out, err) = tokio::join!(
                feed,
                child_stdout.read_to_end(&mut stdout),
                child_stderr.read_to_end(&mut stderr)
            );
            out.map_err(fail)?;
            err.map_err(fail)?;
            let status = child.wait().await.map_err(fail)?;
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
