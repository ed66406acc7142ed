//! Engines that refuse `--privileged`: kind starts every node with it and
//! runs every command in a node with `docker exec --privileged`, which an
//! engine lacking a capability itself (CAP_SYS_RESOURCE, on some CI and
//! sandboxed machines) refuses with `unable to apply caps: operation not
//! permitted`. kindling tries once per engine, records the answer in the
//! state home, and where the engine refuses, runs kind with a `docker`
//! shim first on its `PATH` that asks for the most the engine allows
//! instead. kindling's node image does the rest of what `--privileged`
//! did (read-write cgroups, `/dev/kmsg`, containerd's oom_score_adj).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptions, RemoveContainerOptionsBuilder,
};
use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};

use super::node_image::{NAMESPACE, sources};

/// The capability the shim leaves out of `--cap-add ALL`.
pub const DROPPED_CAPABILITY: &str = "SYS_RESOURCE";

/// What the shim passes instead of `--privileged`, as `docker run` flags.
pub const UNPRIVILEGED_FLAGS: &[&str] = &[
    "--cap-add",
    "ALL",
    "--cap-drop",
    DROPPED_CAPABILITY,
    "--security-opt",
    "seccomp=unconfined",
    "--security-opt",
    "apparmor=unconfined",
    "--security-opt",
    "systempaths=unconfined",
    "--device-cgroup-rule",
    "a *:* rwm",
];

/// The empty image the probes start (with Docker's init as their process).
fn probe_image() -> String {
    format!("{NAMESPACE}/probe:empty")
}

/// What an engine answered, recorded once per engine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineRecord {
    /// The engine's ID (`docker info`).
    pub engine: String,
    /// Its version.
    pub version: String,
    /// `None` when it starts privileged containers; else its answer to one.
    pub refusal: Option<String>,
}

/// How kind reaches this engine's nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Privileges {
    /// What the engine answered.
    pub record: EngineRecord,
    /// Where it is recorded.
    pub record_path: PathBuf,
    /// Whether this call asked the engine (rather than read the record).
    pub probed: bool,
}

impl Privileges {
    /// True when the engine refuses privileged containers.
    pub fn refused(&self) -> bool {
        self.record.refusal.is_some()
    }
}

/// Finding out what the engine allows, or writing the shim, failed.
#[derive(Debug, thiserror::Error)]
pub enum PrivilegedError {
    /// The engine could not be asked (info, the probe image, a container).
    #[error("cannot {step} to find out whether the engine starts privileged containers")]
    Engine {
        /// What failed, e.g. `import the probe image `...``.
        step: String,
        /// The Docker client's error.
        #[source]
        source: bollard::errors::Error,
    },
    /// The engine refuses `--privileged` and the shim's flags alike.
    #[error(
        "the engine refuses privileged containers (`{privileged}`) and also containers with every capability but CAP_{DROPPED_CAPABILITY} (`{unprivileged}`): kind nodes cannot run on it; use an engine that allows one of them, or the `local` provider"
    )]
    Refused {
        /// Its answer to `--privileged`.
        privileged: String,
        /// Its answer to the shim's flags.
        unprivileged: String,
    },
    /// The record or the shim could not be written.
    #[error("cannot write `{}`", path.display())]
    Write {
        /// The file or folder.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// No `docker` CLI for the shim to run.
    #[error(
        "the engine refuses privileged containers and kind needs the `docker` CLI, which is not on PATH: install it"
    )]
    NoDocker,
}

/// Where the answers of engines are recorded: `<state home>/kind/_engines/`
/// (no cluster name has an underscore).
fn records_dir(state_home: &Path) -> PathBuf {
    state_home.join("kind").join("_engines")
}

/// Where kindling writes the shim: `<state home>/kind/_shim/docker`.
pub fn shim_dir(state_home: &Path) -> PathBuf {
    state_home.join("kind").join("_shim")
}

/// Whether the engine `docker` reaches starts privileged containers: the
/// recorded answer, or one probe (an empty image, Docker's init as its
/// process) with `--privileged`, then, if refused, one with the shim's
/// flags.
pub async fn check(docker: &Docker, state_home: &Path) -> Result<Privileges, PrivilegedError> {
    let info = docker
        .info()
        .await
        .map_err(|source| PrivilegedError::Engine {
            step: "read the engine's information".to_owned(),
            source,
        })?;
    let engine = info.id.filter(|id| !id.is_empty()).unwrap_or_else(|| {
        use sha2::Digest as _;
        hex::encode(sha2::Sha256::digest(
            crate::docker::engine_host().as_bytes(),
        ))[..16]
            .to_owned()
    });
    let record_path = records_dir(state_home).join(format!(
        "{}.json",
        engine.replace(|c: char| !c.is_ascii_alphanumeric(), "-")
    ));
    if let Some(record) = std::fs::read(&record_path)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<EngineRecord>(&bytes).ok())
        .filter(|record| record.engine == engine)
    {
        return Ok(Privileges {
            record,
            record_path,
            probed: false,
        });
    }
    let refusal = probe_privileges(docker).await?;
    let record = EngineRecord {
        engine,
        version: info.server_version.unwrap_or_default(),
        refusal,
    };
    write_record(state_home, &record_path, &record)?;
    Ok(Privileges {
        record,
        record_path,
        probed: true,
    })
}

/// The engine's refusal of a privileged container, `None` when it starts
/// one; an error when it refuses the shim's flags too.
async fn probe_privileges(docker: &Docker) -> Result<Option<String>, PrivilegedError> {
    ensure_probe_image(docker).await?;
    let privileged = HostConfig {
        privileged: Some(true),
        ..Default::default()
    };
    let refused = match probe(docker, privileged).await? {
        Ok(()) => return Ok(None),
        Err(refused) => refused,
    };
    let shimmed = HostConfig {
        cap_add: Some(vec!["ALL".to_owned()]),
        cap_drop: Some(vec![DROPPED_CAPABILITY.to_owned()]),
        security_opt: Some(vec![
            "seccomp=unconfined".to_owned(),
            "apparmor=unconfined".to_owned(),
        ]),
        // What the CLI's `--security-opt systempaths=unconfined` sends.
        masked_paths: Some(Vec::new()),
        readonly_paths: Some(Vec::new()),
        device_cgroup_rules: Some(vec!["a *:* rwm".to_owned()]),
        ..Default::default()
    };
    if let Err(unprivileged) = probe(docker, shimmed).await? {
        return Err(PrivilegedError::Refused {
            privileged: refused,
            unprivileged,
        });
    }
    Ok(Some(refused))
}

/// Writes `record` at `record_path`, making its private folder under
/// `state_home`.
fn write_record(
    state_home: &Path,
    record_path: &Path,
    record: &EngineRecord,
) -> Result<(), PrivilegedError> {
    let write_error = |path: &Path| {
        let path = path.to_owned();
        move |source| PrivilegedError::Write { path, source }
    };
    let dir = records_dir(state_home);
    kindling_harness::util::create_private_tree(state_home, &dir).map_err(write_error(&dir))?;
    kindling_harness::util::write_atomically(
        record_path,
        &serde_json::to_vec_pretty(record).expect("a record serialises"),
    )
    .map_err(write_error(record_path))
}

/// Imports the empty probe image unless the engine has it.
async fn ensure_probe_image(docker: &Docker) -> Result<(), PrivilegedError> {
    let image = probe_image();
    if docker.inspect_image(&image).await.is_ok() {
        return Ok(());
    }
    let (repository, tag) = image.rsplit_once(':').expect("the probe image has a tag");
    // An archive of nothing: two zero blocks, padded to a tar record.
    let empty = vec![0u8; 10240];
    let options = CreateImageOptions {
        from_src: Some("-".to_owned()),
        repo: Some(repository.to_owned()),
        tag: Some(tag.to_owned()),
        ..Default::default()
    };
    let mut import =
        docker.create_image(Some(options), Some(bollard::body_full(empty.into())), None);
    while let Some(item) = import.next().await {
        item.map_err(|source| PrivilegedError::Engine {
            step: format!("import the probe image `{image}`"),
            source,
        })?;
    }
    Ok(())
}

/// Starts a container of the probe image with `host_config`: `Ok(Ok)`
/// when it started, `Ok(Err(answer))` when the engine refused to start it.
async fn probe(
    docker: &Docker,
    host_config: HostConfig,
) -> Result<Result<(), String>, PrivilegedError> {
    let name = format!(
        "kindling-privileged-probe-{}-{}",
        std::process::id(),
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let body = ContainerCreateBody {
        image: Some(probe_image()),
        // Docker's init starts, then fails to run the missing program: the
        // engine applied the container's privileges before.
        cmd: Some(vec!["/kindling-probe".to_owned()]),
        labels: Some(HashMap::from([(
            "io.kindling.probe".to_owned(),
            "privileged".to_owned(),
        )])),
        host_config: Some(HostConfig {
            init: Some(true),
            ..host_config
        }),
        ..Default::default()
    };
    docker
        .create_container(
            Some(CreateContainerOptionsBuilder::default().name(&name).build()),
            body,
        )
        .await
        .map_err(|source| PrivilegedError::Engine {
            step: format!("create the probe container `{name}`"),
            source,
        })?;
    let started = docker.start_container(&name, None).await;
    let _ = docker
        .remove_container(
            &name,
            Some(RemoveContainerOptionsBuilder::default().force(true).build()),
        )
        .await;
    match started {
        Ok(()) => Ok(Ok(())),
        Err(bollard::errors::Error::DockerResponseServerError { message, .. }) => {
            Ok(Err(message.trim().to_owned()))
        }
        Err(source) => Err(PrivilegedError::Engine {
            step: format!("start the probe container `{name}`"),
            source,
        }),
    }
}

/// Writes the shim into [`shim_dir`] (`0700`, the shim `0700`), for the
/// `docker` found on `path` outside that folder; returns the folder, to go
/// first on kind's `PATH`.
pub fn write_shim(
    state_home: &Path,
    path: Option<&std::ffi::OsStr>,
) -> Result<PathBuf, PrivilegedError> {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = shim_dir(state_home);
    let real = std::env::split_paths(path.unwrap_or_default())
        .filter(|entry| entry.is_absolute() && *entry != dir)
        .map(|entry| entry.join("docker"))
        .find(|candidate| {
            candidate
                .metadata()
                .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
        })
        .ok_or(PrivilegedError::NoDocker)?;
    let text = shim_text(&real);
    let write_error = |path: &Path| {
        let path = path.to_owned();
        move |source| PrivilegedError::Write { path, source }
    };
    kindling_harness::util::create_private_tree(state_home, &dir).map_err(write_error(&dir))?;
    let shim = dir.join("docker");
    if std::fs::read_to_string(&shim).ok().as_deref() != Some(text.as_str()) {
        kindling_harness::util::write_atomically(&shim, text.as_bytes())
            .map_err(write_error(&shim))?;
    }
    std::fs::set_permissions(&shim, std::fs::Permissions::from_mode(0o700))
        .map_err(write_error(&shim))?;
    Ok(dir)
}

/// The shim's text, running `real`.
fn shim_text(real: &Path) -> String {
    let flags: Vec<String> = UNPRIVILEGED_FLAGS.iter().map(|flag| quote(flag)).collect();
    sources::DOCKER_SHIM
        .replace("@REAL_DOCKER@", &quote(&real.to_string_lossy()))
        .replace("@UNPRIVILEGED@", &flags.join(" "))
}

/// `text` in single quotes for a shell.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// `PATH` for kind: the shim's folder, then `path`.
pub fn path_with_shim(dir: &Path, path: Option<&std::ffi::OsStr>) -> std::ffi::OsString {
    let mut entries = vec![dir.to_owned()];
    entries.extend(std::env::split_paths(path.unwrap_or_default()).filter(|entry| entry != dir));
    std::env::join_paths(entries).expect("PATH entries hold no separator")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shim_replaces_privileged_in_run_and_drops_it_from_exec() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        // A `docker` that prints its arguments, one a line.
        let bin = dir.path().join("bin with 'quote");
        std::fs::create_dir_all(&bin).unwrap();
        let fake = bin.join("docker");
        std::fs::write(
            &fake,
            "#!/bin/sh\nfor arg do printf '%s\\n' \"$arg\"; done\n",
        )
        .unwrap();
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        let state = dir.path().join("state");
        // The fake docker first; bash where the system has it.
        let path = std::env::join_paths([bin.clone(), "/usr/bin".into(), "/bin".into()]).unwrap();
        let shim_dir = write_shim(&state, Some(&path)).unwrap();
        let shim = shim_dir.join("docker");
        let mode = std::fs::metadata(&shim).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        assert_eq!(
            std::fs::metadata(&shim_dir).unwrap().permissions().mode() & 0o777,
            0o700
        );
        let run = |args: &[&str]| -> Vec<String> {
            let output = std::process::Command::new(&shim)
                .args(args)
                .env("PATH", path_with_shim(&shim_dir, Some(&path)))
                .output()
                .unwrap();
            assert!(output.status.success(), "{output:?}");
            String::from_utf8(output.stdout)
                .unwrap()
                .lines()
                .map(str::to_owned)
                .collect()
        };
        let mut expected = vec!["run", "--name", "n"];
        expected.extend(UNPRIVILEGED_FLAGS);
        expected.extend(["--security-opt", "seccomp=unconfined", "image"]);
        assert_eq!(
            run(&[
                "run",
                "--name",
                "n",
                "--privileged",
                "--security-opt",
                "seccomp=unconfined",
                "image"
            ]),
            expected
        );
        assert_eq!(
            run(&[
                "exec",
                "--privileged",
                "-i",
                "node",
                "cat",
                "/etc/kubernetes/admin.conf"
            ]),
            ["exec", "-i", "node", "cat", "/etc/kubernetes/admin.conf"]
        );
        assert_eq!(
            run(&["inspect", "--privileged", "a b"]),
            ["inspect", "--privileged", "a b"],
            "other commands pass through unchanged"
        );
        // Written again only when it changes; its folder is never its own docker.
        let again = write_shim(&state, Some(&path_with_shim(&shim_dir, Some(&path)))).unwrap();
        assert_eq!(again, shim_dir);
        assert!(
            std::fs::read_to_string(&shim)
                .unwrap()
                .contains(&quote(&fake.to_string_lossy()))
        );
    }

    #[test]
    fn without_docker_on_path_the_shim_cannot_be_written() {
        let dir = tempfile::tempdir().unwrap();
        let error = write_shim(dir.path(), Some(std::ffi::OsStr::new("/nonexistent"))).unwrap_err();
        assert!(matches!(error, PrivilegedError::NoDocker), "{error:?}");
        assert!(
            error
                .to_string()
                .contains("`docker` CLI, which is not on PATH")
        );
    }

    #[test]
    fn kinds_path_has_the_shim_first_once() {
        let path = path_with_shim(
            Path::new("/s"),
            Some(std::ffi::OsStr::new("/usr/bin:/s:/bin")),
        );
        assert_eq!(path, "/s:/usr/bin:/bin");
    }
}
