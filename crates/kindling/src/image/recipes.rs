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
use super::build::BuildError;
use super::context::BuildContext;
use super::plan::BuildPlan;

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

/// `CGO_ENABLED=0 go build -trimpath -o <out> <package>` in the module.
pub(crate) async fn go_build(
    image: &str,
    module: &Path,
    package: &str,
    out: &Path,
) -> Result<(), BuildError> {
    tracing::info!(image, package, "go build");
    let output = tokio::process::Command::new("go")
        .args(["build", "-trimpath", "-o"])
        .arg(out)
        .arg(package)
        .current_dir(module)
        .env("CGO_ENABLED", "0")
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

/// What keeps a base small (70 MB instead of 159 MB, measured): bookworm's
/// merged /usr set up by mmdebstrap's hook instead of the `usrmerge`
/// package (which pulls in perl), and no manuals, translations or
/// documentation but copyrights, for this and every later `apt-get install`.
pub(crate) const SLIM: &[&str] = &[
    "--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr",
    "--dpkgopt=path-exclude=/usr/share/man/*",
    "--dpkgopt=path-exclude=/usr/share/locale/*",
    "--dpkgopt=path-include=/usr/share/locale/locale.alias",
    "--dpkgopt=path-exclude=/usr/share/doc/*",
    "--dpkgopt=path-include=/usr/share/doc/*/copyright",
    "--dpkgopt=path-exclude=/usr/share/info/*",
];

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
        &crate::cluster::local::ComponentBinaries::default_cache(),
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
    let mut command = tokio::process::Command::new(&found[0]);
    command
        .arg(format!("--variant={variant}"))
        .arg("--format=tar")
        .arg("--quiet")
        .args(SLIM);
    if !packages.is_empty() {
        command.arg(format!("--include={}", packages.join(",")));
    }
    let mut child = command
        .arg(release)
        .arg("-")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| BuildError::Rootfs {
            image: image.clone(),
            stderr: source.to_string(),
        })?;
    let stdout = child.stdout.take().expect("stdout is piped");
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
    let mut import =
        docker.create_image(Some(options), Some(bollard::body_try_stream(chunks)), None);
    let mut failure = None;
    while let Some(item) = import.next().await {
        if let Err(error) = item {
            failure = Some(error.to_string());
        }
    }
    let output = child
        .wait_with_output()
        .await
        .map_err(|source| BuildError::Rootfs {
            image: image.clone(),
            stderr: source.to_string(),
        })?;
    if !output.status.success() {
        return Err(BuildError::Rootfs {
            image,
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
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
