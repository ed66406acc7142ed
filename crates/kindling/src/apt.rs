//! Host programs kindling runs and takes from Debian's packages (the local
//! cluster's containerd, runc, CNI plugins and iptables; `mmdebstrap` for
//! Debian base images), installed with apt when they are missing and
//! kindling runs as root on Debian, unless `KINDLING_INSTALL=never`.

use std::path::{Path, PathBuf};

/// Whether kindling may install missing packages (`KINDLING_INSTALL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstallPolicy {
    /// Install when running as root on Debian (the default).
    Auto,
    /// Never install: a missing package is an error saying what to install.
    Never,
}

impl InstallPolicy {
    /// From `KINDLING_INSTALL` (`auto` when unset; the harness has already
    /// refused other values).
    pub fn from_env() -> Self {
        match std::env::var("KINDLING_INSTALL").as_deref().map(str::trim) {
            Ok("never") => InstallPolicy::Never,
            _ => InstallPolicy::Auto,
        }
    }
}

/// Installing the runtime packages failed, or is not possible.
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    /// A program kindling needs is missing and kindling will not or cannot
    /// install its package.
    #[error(
        "`{}` is missing: install Debian's {} (`apt-get install -y {}`){}",
        path.display(),
        packages.join(", "),
        packages.join(" "),
        why_not_installed(.reason)
    )]
    Missing {
        /// The first missing file, e.g. `/usr/bin/containerd`.
        path: PathBuf,
        /// The Debian packages that bring the missing files, sorted, without
        /// duplicates.
        packages: Vec<String>,
        /// Why kindling did not install them itself.
        reason: NotInstalled,
    },
    /// `apt-get install` failed, or could not be started.
    #[error("`apt-get install -y {}` failed:\n{stderr}", packages.join(" "))]
    Apt {
        /// The packages it was asked to install.
        packages: Vec<String>,
        /// What `apt-get update` and `apt-get install` wrote to stderr, or why
        /// `apt-get` could not be started.
        stderr: String,
    },
    /// Taking the lock that makes installs take turns (`apt.lock`) failed.
    #[error(transparent)]
    Lock(#[from] crate::cluster::lock::LockError),
}

/// Why kindling did not install a missing package itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotInstalled {
    /// `KINDLING_INSTALL=never`.
    TurnedOff,
    /// Not root, not Debian, or no apt-get.
    CannotInstall,
}

fn why_not_installed(reason: &NotInstalled) -> &'static str {
    match reason {
        NotInstalled::TurnedOff => " (KINDLING_INSTALL=never: kindling installs nothing itself)",
        NotInstalled::CannotInstall => {
            " (kindling installs it itself only as root on Debian with apt-get)"
        }
    }
}

/// The first missing file of `files` (each with the package that brings
/// it), and the packages of all missing ones, sorted, deduplicated.
pub fn missing(files: &[(PathBuf, &str)]) -> Option<(PathBuf, Vec<String>)> {
    let absent: Vec<&(PathBuf, &str)> = files.iter().filter(|(path, _)| !path.exists()).collect();
    let first = absent.first()?.0.clone();
    let mut packages: Vec<String> = absent
        .iter()
        .map(|(_, package)| (*package).to_owned())
        .collect();
    packages.sort();
    packages.dedup();
    Some((first, packages))
}

/// Whether missing packages would be installed here.
pub fn can_install(policy: InstallPolicy) -> Result<(), NotInstalled> {
    if policy == InstallPolicy::Never {
        return Err(NotInstalled::TurnedOff);
    }
    let debian = Path::new("/etc/debian_version").is_file();
    let root = rustix::process::geteuid().is_root();
    if debian && root && kindling_harness::requirement::find_program("apt-get").is_some() {
        Ok(())
    } else {
        Err(NotInstalled::CannotInstall)
    }
}

/// Installs what of `files` is missing (saying so through `say`), or
/// fails naming it. Installs take turns through `lock_dir/apt.lock`.
pub async fn ensure_installed(
    files: &[(PathBuf, &str)],
    policy: InstallPolicy,
    lock_dir: &Path,
    say: &(dyn Fn(&str) + Send + Sync),
) -> Result<(), PackageError> {
    let Some((path, packages)) = missing(files) else {
        return Ok(());
    };
    if let Err(reason) = can_install(policy) {
        return Err(PackageError::Missing {
            path,
            packages,
            reason,
        });
    }
    // apt refuses a second apt running: take turns with other suites.
    let _lock = crate::cluster::lock::exclusive(
        &lock_dir.join("apt.lock"),
        "installing Debian packages",
        |holder| eprintln!("kindling: waiting for another process to install packages ({holder})"),
    )
    .await?;
    let Some((_, packages)) = missing(files) else {
        return Ok(());
    };
    say(&format!(
        "installing Debian's {} with apt-get (set KINDLING_INSTALL=never to install them yourself)",
        packages.join(", ")
    ));
    let apt = |args: Vec<String>| {
        let mut command = tokio::process::Command::new("apt-get");
        command
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .kill_on_drop(true);
        command
    };
    let update = apt(vec!["update".to_owned(), "-qq".to_owned()])
        .output()
        .await;
    let mut install_args = vec!["install".to_owned(), "-y".to_owned(), "-qq".to_owned()];
    install_args.extend(packages.iter().cloned());
    let installed = apt(install_args).output().await;
    match installed {
        Ok(output) if output.status.success() => Ok(()),
        Ok(output) => Err(PackageError::Apt {
            packages,
            stderr: format!(
                "{}{}",
                update
                    .ok()
                    .map(|update| String::from_utf8_lossy(&update.stderr).into_owned())
                    .unwrap_or_default(),
                String::from_utf8_lossy(&output.stderr)
            )
            .trim()
            .to_owned(),
        }),
        Err(error) => Err(PackageError::Apt {
            packages,
            stderr: error.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_files_name_their_packages_once() {
        let dir = tempfile::tempdir().unwrap();
        let files = [
            (dir.path().join("bridge"), "containernetworking-plugins"),
            (dir.path().join("loopback"), "containernetworking-plugins"),
            (dir.path().to_owned(), "present"),
        ];
        let (first, packages) = missing(&files).expect("an empty folder lacks plugins");
        assert_eq!(first, dir.path().join("bridge"));
        assert_eq!(packages, ["containernetworking-plugins"]);
        let error = PackageError::Missing {
            path: first,
            packages: vec!["containerd".to_owned(), "runc".to_owned()],
            reason: NotInstalled::TurnedOff,
        };
        let text = error.to_string();
        assert!(
            text.contains("apt-get install -y containerd runc"),
            "{text}"
        );
        assert!(text.contains("KINDLING_INSTALL=never"), "{text}");
    }
}
