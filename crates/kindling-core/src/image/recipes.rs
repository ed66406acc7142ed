//! Images made without a Dockerfile of the suite's: a Go binary built on
//! the host or a static binary, each in a `FROM scratch` image, and a
//! Debian root filesystem made by `mmdebstrap` and imported.

use std::path::Path;
use std::process::Stdio;

use bollard::Docker;
use bollard::query_parameters::CreateImageOptions;
use bytes::Bytes;
use futures_util::StreamExt as _;
use tokio::io::AsyncReadExt as _;

use super::archive::TarStream;
use super::build_error::BuildError;
use super::context::BuildContext;
use super::go_inputs::GoEnv;
use super::plan::{BuildPlan, SLIM};

/// The name of the generated Dockerfile inside a build's archive.
pub(crate) const GENERATED_DOCKERFILE: &str = ".kindling.Dockerfile";

/// A fresh folder a build's inputs are put together in.
pub(crate) fn work_dir(image: &str) -> Result<tempfile::TempDir, BuildError> {
    tempfile::Builder::new()
        .prefix("kindling-binary-")
        .tempdir()
        .map_err(|source| BuildError::WorkDir {
            image: image.to_owned(),
            source,
        })
}

/// `CGO_ENABLED=0 go build -trimpath -o <out> <package>` in the module,
/// in `env`: the environment its content tag was computed in.
pub(crate) async fn go_build(
    image: &str,
    module: &Path,
    package: &str,
    out: &Path,
    env: &GoEnv,
) -> Result<(), BuildError> {
    tracing::info!(image, package, "go build");
    let mut command = tokio::process::Command::from(env.command("go"));
    let output = command
        .args(["build", "-trimpath", "-o"])
        .arg(out)
        .arg(package)
        .current_dir(module)
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|source| BuildError::GoMissing {
            image: image.to_owned(),
            source,
        })?;
    if output.status.success() {
        return Ok(());
    }
    Err(BuildError::GoBuild {
        image: image.to_owned(),
        module: module.to_owned(),
        package: package.to_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
    })
}

/// Copies a static binary to `out`.
pub(crate) fn copy_binary(image: &str, binary: &Path, out: &Path) -> Result<(), BuildError> {
    std::fs::copy(binary, out)
        .map(drop)
        .map_err(|source| BuildError::ReadBinary {
            image: image.to_owned(),
            path: binary.to_owned(),
            source,
        })
}

/// The archive of `work` (holding the binary `<name>`) with a Dockerfile
/// making it the entrypoint of a `FROM scratch` image.
pub(crate) async fn scratch_archive(image: &str, work: &Path) -> Result<TarStream, BuildError> {
    let dockerfile = format!("FROM scratch\nCOPY {image} /{image}\nENTRYPOINT [\"/{image}\"]\n");
    let root = work.to_owned();
    let context = tokio::task::spawn_blocking(move || BuildContext::scan(&root, None))
        .await
        .expect("scan task")
        .map_err(|source| BuildError::Context {
            image: image.to_owned(),
            source: Box::new(source),
        })?;
    Ok(context.stream_tar(Some((GENERATED_DOCKERFILE, dockerfile.into_bytes()))))
}

/// How long an import may wait for the engine's answer (from the start of
/// mmdebstrap).
const IMPORT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60 * 60);

/// How much of mmdebstrap's stderr an error keeps: its end, where the reason is.
const STDERR_TAIL: usize = 64 * 1024;

/// Makes the Debian root filesystem of `plan` with `mmdebstrap` and
/// imports it into the engine under the plan's reference. The tar streams
/// from mmdebstrap into the engine; nothing is written to disk on the way.
pub(crate) async fn import_debian(
    docker: &Docker,
    plan: &BuildPlan,
    release: &str,
    variant: &str,
    packages: &[String],
) -> Result<(), BuildError> {
    let image = plan.spec().name().to_owned();
    let say = |line: &str| eprintln!("kindling: image `{image}`: {line}");
    let found = crate::apt::ensure_installed(
        &[crate::apt::Piece::program("mmdebstrap", "mmdebstrap")],
        &crate::apt::SearchPath::from_env(),
        crate::apt::InstallPolicy::from_env(),
        &crate::cluster::cache_home(),
        &say,
    )
    .await
    .map_err(|source| BuildError::Tool {
        image: image.clone(),
        source: Box::new(source),
    })?;
    say(&format!(
        "making a Debian {release} root filesystem with mmdebstrap (first build only, about 20 s, 70 MB)"
    ));
    let mut command = mmdebstrap(&found[0], release, variant, packages);
    let Streaming {
        mut child,
        stdout,
        stderr,
    } = spawn_streaming(&mut command, STDERR_TAIL).map_err(|source| BuildError::Rootfs {
        image: image.clone(),
        stderr: source.to_string(),
    })?;
    let failure = import_tar(docker, plan, stdout).await;
    let status = child.wait().await.map_err(|source| BuildError::Rootfs {
        image: image.clone(),
        stderr: source.to_string(),
    })?;
    if !status.success() {
        return Err(BuildError::Rootfs {
            image,
            stderr: stderr.await.unwrap_or_default().trim().to_owned(),
        });
    }
    match failure {
        Some(message) => Err(BuildError::Failed {
            image,
            step: Some("docker import".to_owned()),
            message,
            tail: String::new(),
        }),
        None => Ok(()),
    }
}

/// The `program` (mmdebstrap) command writing to its stdout the tar of a
/// Debian `release` root filesystem of `variant` with `packages`.
fn mmdebstrap(
    program: &Path,
    release: &str,
    variant: &str,
    packages: &[String],
) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(program);
    command
        .arg(format!("--variant={variant}"))
        .arg("--format=tar")
        .arg("--quiet")
        .args(SLIM);
    if !packages.is_empty() {
        command.arg(format!("--include={}", packages.join(",")));
    }
    command.arg(release).arg("-");
    command
}

/// Imports the tar read from `stdout` into the engine under `plan`'s
/// reference; the engine's error, if any. `stdout` is closed on return.
async fn import_tar(
    docker: &Docker,
    plan: &BuildPlan,
    stdout: tokio::process::ChildStdout,
) -> Option<String> {
    let chunks = futures_util::stream::unfold(stdout, |mut stdout| async move {
        let mut buffer = vec![0; 1 << 20];
        match stdout.read(&mut buffer).await {
            Ok(0) => None,
            Ok(read) => {
                buffer.truncate(read);
                Some((Ok(Bytes::from(buffer)), stdout))
            }
            Err(error) => Some((Err(error), stdout)),
        }
    });
    let reference = plan.reference();
    let options = CreateImageOptions {
        from_src: Some("-".to_owned()),
        repo: Some(reference.repository().to_owned()),
        tag: Some(reference.tag().unwrap_or("latest").to_owned()),
        ..Default::default()
    };
    // The engine answers once the whole tar is in, and mmdebstrap starts
    // writing it only when the root filesystem is complete: minutes on a
    // busy machine, past the client's usual two-minute timeout.
    let docker = docker.clone().with_timeout(IMPORT_TIMEOUT);
    let mut import =
        docker.create_image(Some(options), Some(bollard::body_try_stream(chunks)), None);
    let mut failure = None;
    while let Some(item) = import.next().await {
        if let Err(error) = item {
            failure = Some(error.to_string());
        }
    }
    // Closes mmdebstrap's stdout should the engine have stopped reading it,
    // so it ends rather than blocks.
    drop(import);
    failure
}

/// A child whose stdout the caller reads while a task drains its stderr,
/// so a child that writes more to stderr than a pipe holds (64 KiB on
/// Linux) before its stdout ends does not block on it.
pub(crate) struct Streaming {
    /// The child; kill on drop.
    pub(crate) child: tokio::process::Child,
    /// Its stdout, for the caller to read to the end.
    pub(crate) stdout: tokio::process::ChildStdout,
    /// The last `tail` bytes of its stderr once it is closed, marked when
    /// earlier ones were cut.
    pub(crate) stderr: tokio::task::JoinHandle<String>,
}

/// Starts `command` with stdin closed, stdout piped to the caller and
/// stderr drained by a task keeping its last `tail` bytes.
pub(crate) fn spawn_streaming(
    command: &mut tokio::process::Command,
    tail: usize,
) -> std::io::Result<Streaming> {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let stderr = child.stderr.take().expect("stderr is piped");
    let stderr = tokio::spawn(read_tail(stderr, tail));
    Ok(Streaming {
        child,
        stdout,
        stderr,
    })
}

/// Reads `reader` to its end and returns its last `limit` bytes (lossy
/// UTF-8), led by how many were cut when there were more.
async fn read_tail(mut reader: impl tokio::io::AsyncRead + Unpin, limit: usize) -> String {
    let mut kept: Vec<u8> = Vec::new();
    let mut cut = 0;
    let mut buffer = vec![0; 16 * 1024];
    while let Ok(read) = reader.read(&mut buffer).await
        && read > 0
    {
        kept.extend_from_slice(&buffer[..read]);
        if kept.len() > limit {
            let excess = kept.len() - limit;
            kept.drain(..excess);
            cut += excess;
        }
    }
    let text = String::from_utf8_lossy(&kept);
    if cut > 0 {
        format!("[{cut} earlier bytes cut]\n{text}")
    } else {
        text.into_owned()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn stderr_beyond_a_pipe_is_drained_while_stdout_is_read() {
        // 300 KB to stderr before anything reaches stdout: with stderr read
        // only after stdout ends, the child blocks on a full pipe and
        // stdout never ends.
        let mut command = tokio::process::Command::new("sh");
        command.args([
            "-c",
            "head -c 300000 /dev/zero | tr '\\0' e >&2; echo the-end >&2; echo stdout-done",
        ]);
        let Streaming {
            mut child,
            mut stdout,
            stderr,
        } = spawn_streaming(&mut command, 1000).expect("sh starts");
        let mut out = String::new();
        tokio::time::timeout(Duration::from_secs(60), stdout.read_to_string(&mut out))
            .await
            .expect("stdout ends although stderr outgrew its pipe")
            .expect("stdout reads");
        assert_eq!(out, "stdout-done\n");
        assert!(child.wait().await.expect("sh ends").success());
        let tail = stderr.await.expect("the drain task ends");
        let (cut, kept) = tail.split_once('\n').expect("a cut is marked");
        assert_eq!(cut, "[299008 earlier bytes cut]");
        assert_eq!(kept.len(), 1000, "{kept}");
        assert!(kept.ends_with("eeethe-end\n"), "{kept}");
    }

    #[tokio::test]
    async fn a_short_stderr_is_kept_whole() {
        let tail = read_tail(&b"E: no such release\n"[..], 1000).await;
        assert_eq!(tail, "E: no such release\n");
    }
}
