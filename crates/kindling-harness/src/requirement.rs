//! What tests need from the machine (a Docker engine, root, a program),
//! checked the same way when listing and when running, so a test whose
//! requirement is missing is listed as ignored (SKIP under nextest,
//! ignored under `cargo test`) and fails instead when `CI` is set.

use std::path::{Path, PathBuf};
use std::sync::Arc;

type Check = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

/// Something a test needs from the machine, with a cheap check that says
/// what is missing and how to get it.
///
/// ```
/// use kindling_harness::Requirement;
///
/// let go = Requirement::program("go", "install Go from https://go.dev/dl");
/// let always = Requirement::new("nothing", || Ok(()));
/// assert!(always.check().is_ok());
/// # let _ = go;
/// ```
#[derive(Clone)]
pub struct Requirement {
    name: String,
    check: Check,
}

impl std::fmt::Debug for Requirement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Requirement")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Requirement {
    /// A requirement named `name` (shown in the skip or failure message)
    /// whose `check` returns what is missing and how to get it. It runs in
    /// every process of a run, listing included, so it must be cheap and
    /// change nothing.
    pub fn new(
        name: impl Into<String>,
        check: impl Fn() -> Result<(), String> + Send + Sync + 'static,
    ) -> Self {
        Requirement {
            name: name.into(),
            check: Arc::new(check),
        }
    }

    /// Every one of `requirements`, under one name: the first one missing
    /// is the reason.
    pub fn all(name: impl Into<String>, requirements: Vec<Requirement>) -> Self {
        Requirement::new(name, move || {
            requirements
                .iter()
                .try_for_each(|requirement| requirement.check())
        })
    }

    /// The name shown in messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `Err(what is missing and how to get it)` when the machine lacks it.
    pub fn check(&self) -> Result<(), String> {
        (self.check)()
    }

    /// A Docker engine (or Podman's Docker-compatible socket) answers at
    /// [`crate::engine::engine_host`].
    pub fn docker() -> Self {
        Requirement::new("docker", || {
            let host = crate::engine::engine_host();
            crate::engine::ping(&host).map_err(|error| {
                format!(
                    "no Docker engine answers at `{host}`: {}: {error}",
                    crate::engine::START_AN_ENGINE
                )
            })
        })
    }

    /// The process runs as root.
    pub fn root() -> Self {
        Requirement::new("root", || {
            if rustix::process::geteuid().is_root() {
                Ok(())
            } else {
                Err("this needs root: run the tests as root (for example with sudo -E)".to_owned())
            }
        })
    }

    /// `program` is on `PATH`; `hint` says how to install it.
    pub fn program(program: &str, hint: &str) -> Self {
        let program = program.to_owned();
        let hint = hint.to_owned();
        Requirement::new(program.clone(), move || match find_program(&program) {
            Some(_) => Ok(()),
            None => Err(format!("`{program}` is not on PATH: {hint}")),
        })
    }

    /// The file `path` exists; `hint` says how to make it.
    pub fn file(path: impl Into<PathBuf>, hint: &str) -> Self {
        let path = path.into();
        let hint = hint.to_owned();
        Requirement::new(path.display().to_string(), move || {
            if path.exists() {
                Ok(())
            } else {
                Err(format!("`{}` is missing: {hint}", path.display()))
            }
        })
    }
}

/// The first executable named `program` on `PATH` (or `program` itself
/// when it is a path).
pub fn find_program(program: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt as _;
    let executable = |path: &Path| {
        std::fs::metadata(path)
            .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
    };
    if program.contains('/') {
        let path = PathBuf::from(program);
        return executable(&path).then_some(path);
    }
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|dir| dir.join(program))
        .find(|path| executable(path))
}

/// True when `CI` is set (to anything but empty or `false`): a missing
/// requirement then fails its tests instead of skipping them.
pub fn in_ci() -> bool {
    std::env::var_os("CI").is_some_and(|value| !value.is_empty() && value != "false")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_name_what_is_missing() {
        let missing = Requirement::program("surely-not-a-program-kindling", "install it");
        let error = missing.check().unwrap_err();
        assert!(
            error.contains("`surely-not-a-program-kindling` is not on PATH: install it"),
            "{error}"
        );
        assert!(Requirement::program("sh", "").check().is_ok());
        let file = Requirement::file("/nonexistent/kindling", "build it");
        assert_eq!(
            file.check().unwrap_err(),
            "`/nonexistent/kindling` is missing: build it"
        );
        let all = Requirement::all("both", vec![Requirement::program("sh", ""), file]);
        assert_eq!(all.name(), "both");
        assert!(all.check().unwrap_err().contains("/nonexistent/kindling"));
    }
}
