//! Host programs kindling runs and can take from Debian's packages: the
//! local cluster's containerd, ctr, runc, iptables and CNI plugins, and
//! `mmdebstrap` for [`ImageSpec::debian`](crate::image::ImageSpec::debian).
//!
//! Each piece is looked for where it may be, whatever package brought it:
//! programs on `PATH` (then the usual system directories), the CNI plugins
//! in `/usr/lib/cni` (Debian) or `/opt/cni/bin` (the CNI project's
//! convention). Docker's `containerd.io` counts as much as Debian's
//! `containerd`. Only what is missing is installed, and only as root on
//! Debian with apt-get, unless `KINDLING_INSTALL=never`. apt is asked for
//! its plan first and never allowed to remove a package (`--no-remove`):
//! Debian's `runc` conflicts with Docker's `containerd.io`, and installing
//! it would remove Docker. An install that needs a removal stops with what
//! apt would remove and how to provide the pieces by hand.

use std::path::{Path, PathBuf};

/// Whether kindling may install missing packages (`KINDLING_INSTALL`).
///
/// It applies to the pieces kindling takes from Debian's packages when
/// they are missing: the local provider's containerd, ctr, runc, iptables
/// and CNI plugins (when it brings a cluster up, and `kindling prepare`),
/// and `mmdebstrap` when an [`ImageSpec::debian`](crate::image::ImageSpec::debian)
/// base is built. Nothing else is installed, and nothing is ever removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstallPolicy {
    /// Install what is missing when running as root on Debian with
    /// apt-get (the default); elsewhere a missing piece is an error saying
    /// what to install.
    Auto,
    /// Never install: a missing piece is an error saying what to install.
    Never,
}

impl InstallPolicy {
    /// From `KINDLING_INSTALL` (`auto` when unset; the harness has already
    /// refused other values).
    pub fn from_env() -> Self {
        crate::config::Config::current().install_policy()
    }
}

/// Something kindling runs from the host: where it is looked for, and the
/// packages that provide it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    /// How messages name it: `runc`, `the CNI plugins`.
    pub name: String,
    /// Where it is looked for.
    pub find: Find,
    /// The Debian package kindling installs when it is missing.
    pub package: String,
    /// Other packages known to provide it, as messages name them, e.g.
    /// `Docker's containerd.io`.
    pub also_from: Vec<String>,
}

/// Where a [`Piece`] is looked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Find {
    /// An executable file of this name in a directory of the [`SearchPath`].
    Program(String),
    /// Executable files that must all be in one directory: the first of
    /// `dirs` that holds every one of `files`.
    Files {
        /// The directories, in the order they are tried.
        dirs: Vec<PathBuf>,
        /// The files' names.
        files: Vec<String>,
    },
    /// Files, executable or not (a static library, a header), that must
    /// all be in one directory: the first of `dirs` that holds every one
    /// of `files`.
    Data {
        /// The directories, in the order they are tried.
        dirs: Vec<PathBuf>,
        /// The files' names.
        files: Vec<String>,
    },
}

impl Piece {
    /// The program `program`, found on the [`SearchPath`], from Debian's
    /// `package`.
    pub fn program(program: &str, package: &str) -> Self {
        Piece {
            name: program.to_owned(),
            find: Find::Program(program.to_owned()),
            package: package.to_owned(),
            also_from: Vec::new(),
        }
    }

    /// `files`, all in one of `dirs`, from Debian's `package`; messages
    /// call them `name`.
    pub fn files(name: &str, dirs: &[PathBuf], files: &[&str], package: &str) -> Self {
        Piece {
            name: name.to_owned(),
            find: Find::Files {
                dirs: dirs.to_vec(),
                files: files.iter().map(|file| (*file).to_owned()).collect(),
            },
            package: package.to_owned(),
            also_from: Vec::new(),
        }
    }

    /// `files` (executable or not), all in one of `dirs`, from Debian's
    /// `package`; messages call them `name`.
    pub fn data(name: &str, dirs: &[PathBuf], files: &[&str], package: &str) -> Self {
        Piece {
            name: name.to_owned(),
            find: Find::Data {
                dirs: dirs.to_vec(),
                files: files.iter().map(|file| (*file).to_owned()).collect(),
            },
            package: package.to_owned(),
            also_from: Vec::new(),
        }
    }

    /// Another package that provides it, e.g. `Docker's containerd.io`.
    #[must_use]
    pub fn also_from(mut self, provider: &str) -> Self {
        self.also_from.push(provider.to_owned());
        self
    }

    /// What was looked for, and where: "`runc` on PATH", "the CNI plugins
    /// (bridge, loopback) in /usr/lib/cni or /opt/cni/bin".
    fn looked_for(&self) -> String {
        match &self.find {
            Find::Program(program) => format!("`{program}` on PATH"),
            Find::Files { dirs, files } | Find::Data { dirs, files } => format!(
                "{} ({}) in {}",
                self.name,
                files.join(", "),
                or_list(
                    &dirs
                        .iter()
                        .map(|dir| dir.display().to_string())
                        .collect::<Vec<_>>()
                )
            ),
        }
    }

    /// Every package that provides it: "Debian's runc or Docker's containerd.io".
    fn providers(&self) -> String {
        let mut providers = vec![format!("Debian's {}", self.package)];
        providers.extend(self.also_from.iter().cloned());
        or_list(&providers)
    }
}

/// `a`, `a or b`, `a, b or c`.
fn or_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} or {last}", rest.join(", ")),
    }
}

/// `a`, `a and b`, `a, b and c`.
fn and_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

/// The directories programs are looked for in: `PATH`'s absolute entries,
/// then the usual system directories, since `PATH` under `sudo`, cron or a
/// CI runner may lack `/usr/sbin`, where Debian puts runc and iptables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchPath {
    dirs: Vec<PathBuf>,
}

/// Where programs are looked for after `PATH`'s own directories.
pub const SYSTEM_DIRS: &[&str] = &[
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
];

impl SearchPath {
    /// This process's `PATH`, then [`SYSTEM_DIRS`]. Relative entries are
    /// left out: kindling runs what it finds as root.
    pub fn from_env() -> Self {
        crate::config::Config::current().search_path()
    }

    /// `path` (a `PATH` value), then [`SYSTEM_DIRS`].
    pub(crate) fn from_path(path: Option<&std::ffi::OsStr>) -> Self {
        let path = path.unwrap_or_default();
        SearchPath::new(std::env::split_paths(path).chain(SYSTEM_DIRS.iter().map(PathBuf::from)))
    }

    /// Exactly `dirs`, in order (relative ones and repeats left out).
    pub fn new(dirs: impl IntoIterator<Item = PathBuf>) -> Self {
        let mut kept: Vec<PathBuf> = Vec::new();
        for dir in dirs {
            if dir.is_absolute() && !kept.contains(&dir) {
                kept.push(dir);
            }
        }
        SearchPath { dirs: kept }
    }

    /// The directories, in the order they are searched.
    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    /// Where `piece` is: the program's path, or the directory holding all
    /// its files.
    pub fn find(&self, piece: &Piece) -> Option<PathBuf> {
        match &piece.find {
            Find::Program(program) => self
                .dirs
                .iter()
                .map(|dir| dir.join(program))
                .find(|path| executable(path)),
            Find::Files { dirs, files } => dirs
                .iter()
                .find(|dir| files.iter().all(|file| executable(&dir.join(file))))
                .cloned(),
            Find::Data { dirs, files } => dirs
                .iter()
                .find(|dir| files.iter().all(|file| dir.join(file).is_file()))
                .cloned(),
        }
    }

    /// Each of `pieces` with where it was found, in order.
    pub fn look_up(&self, pieces: &[Piece]) -> Lookup {
        Lookup {
            pieces: pieces
                .iter()
                .map(|piece| (piece.clone(), self.find(piece)))
                .collect(),
        }
    }
}

fn executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path)
        .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

/// Pieces and where each was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lookup {
    /// Each piece, with its path when found, in the order asked.
    pub pieces: Vec<(Piece, Option<PathBuf>)>,
}

impl Lookup {
    /// The pieces not found, in order.
    pub fn missing(&self) -> Vec<Piece> {
        self.pieces
            .iter()
            .filter(|(_, path)| path.is_none())
            .map(|(piece, _)| piece.clone())
            .collect()
    }

    /// The pieces found, with their paths, in order.
    pub fn found(&self) -> Vec<(Piece, PathBuf)> {
        self.pieces
            .iter()
            .filter_map(|(piece, path)| Some((piece.clone(), path.clone()?)))
            .collect()
    }

    /// Every piece's path, in order, when all were found.
    pub fn paths(&self) -> Option<Vec<PathBuf>> {
        self.pieces.iter().map(|(_, path)| path.clone()).collect()
    }
}

/// The Debian packages of `pieces`, sorted, without duplicates.
fn packages_of(pieces: &[Piece]) -> Vec<String> {
    let mut packages: Vec<String> = pieces.iter().map(|piece| piece.package.clone()).collect();
    packages.sort();
    packages.dedup();
    packages
}

/// What `apt-get install -s` says it would do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AptPlan {
    /// Packages it would install or upgrade (`Inst` lines), in its order.
    pub installs: Vec<String>,
    /// Packages it would remove or purge (`Remv`, `Purg` lines), in its order.
    pub removes: Vec<String>,
}

impl AptPlan {
    /// Reads the `Inst`, `Remv` and `Purg` lines of `apt-get -s` output
    /// (`Conf` lines and apt's other text are not part of the plan).
    pub fn parse(output: &str) -> Self {
        let mut plan = AptPlan::default();
        for line in output.lines() {
            let mut words = line.split_whitespace();
            let (Some(action), Some(package)) = (words.next(), words.next()) else {
                continue;
            };
            let list = match action {
                "Inst" => &mut plan.installs,
                "Remv" | "Purg" => &mut plan.removes,
                _ => continue,
            };
            if !list.iter().any(|known| known == package) {
                list.push(package.to_owned());
            }
        }
        plan
    }
}

/// A piece found on the host, with the package that installed it, if dpkg knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundPiece {
    /// The piece's name, e.g. `containerd`.
    pub name: String,
    /// Where it was found.
    pub path: PathBuf,
    /// The package that installed it (`dpkg-query -S`), e.g. `containerd.io`.
    pub package: Option<String>,
}

/// Installing the pieces kindling takes from Debian failed, or is not possible.
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    /// Pieces kindling needs are missing and kindling will not or cannot
    /// install their packages.
    #[error("{}", missing_message(.missing, .reason))]
    Missing {
        /// The pieces not found, in the order kindling needs them.
        missing: Vec<Piece>,
        /// Why kindling did not install them itself.
        reason: NotInstalled,
    },
    /// apt-get cannot install the missing pieces' packages without removing
    /// installed ones, which kindling never lets it do.
    #[error("{0}")]
    WouldRemove(Box<WouldRemove>),
    /// An apt-get command failed, or could not be started.
    #[error("`{command}` failed:\n{output}")]
    Apt {
        /// The command line, e.g. `apt-get install -y --no-remove runc`.
        command: String,
        /// What it and the `apt-get update` before it printed, or why it
        /// could not be started.
        output: String,
    },
    /// apt-get installed the packages, yet pieces are still missing (a
    /// package installed with files deleted since, or a `PATH` without
    /// their directory).
    #[error(
        "apt-get installed {}, yet kindling still cannot find {}: reinstall them (`apt-get install --reinstall {}`) or put them in place yourself",
        .packages.join(", "),
        or_list(&missing.iter().map(Piece::looked_for).collect::<Vec<_>>()),
        packages_of(missing).join(" ")
    )]
    StillMissing {
        /// The packages apt-get was asked to install.
        packages: Vec<String>,
        /// The pieces still not found.
        missing: Vec<Piece>,
    },
    /// Taking the lock that makes installs take turns (`apt.lock`) failed.
    #[error(transparent)]
    Lock(#[from] crate::cluster::lock::LockError),
}

/// What apt-get would remove to install the missing pieces' packages, and
/// what the host already has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WouldRemove {
    /// The Debian packages kindling would have installed.
    pub packages: Vec<String>,
    /// The installed packages apt-get would remove, in its order.
    pub removes: Vec<String>,
    /// The pieces not found.
    pub missing: Vec<Piece>,
    /// The pieces found, with the packages that installed them.
    pub found: Vec<FoundPiece>,
    /// What `apt-get install -s` printed (the message shows it without
    /// its `Inst` and `Conf` lines).
    pub plan: String,
}

impl std::fmt::Display for WouldRemove {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&would_remove_message(
            &self.packages,
            &self.removes,
            &self.missing,
            &self.found,
            &self.plan,
        ))
    }
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
            " (kindling installs them itself only as root on Debian with apt-get)"
        }
    }
}

fn missing_message(missing: &[Piece], reason: &NotInstalled) -> String {
    let packages = packages_of(missing);
    let mut text = format!(
        "cannot find {}: install Debian's {} (`apt-get install --no-remove {}`)",
        or_list(&missing.iter().map(Piece::looked_for).collect::<Vec<_>>()),
        and_list(&packages),
        packages.join(" ")
    );
    for piece in missing {
        for provider in &piece.also_from {
            text.push_str(&format!("; {provider} also provides {}", piece.name));
        }
    }
    text + why_not_installed(reason)
}

fn would_remove_message(
    packages: &[String],
    removes: &[String],
    missing: &[Piece],
    found: &[FoundPiece],
    plan: &str,
) -> String {
    let mut text = format!(
        "installing Debian's {} would make apt-get remove {}, and kindling never removes a package",
        and_list(packages),
        and_list(removes)
    );
    let mut owners: Vec<(String, Vec<String>)> = Vec::new();
    for piece in found {
        match &piece.package {
            Some(package) => match owners.iter_mut().find(|(owner, _)| owner == package) {
                Some((_, names)) => names.push(piece.name.clone()),
                None => owners.push((package.clone(), vec![piece.name.clone()])),
            },
            None => text.push_str(&format!("; {} is at {}", piece.name, piece.path.display())),
        }
    }
    for (owner, names) in owners {
        text.push_str(&format!("; {owner} already provides {}", and_list(&names)));
    }
    let by_hand: Vec<String> = missing
        .iter()
        .map(|piece| {
            let mut hint = format!("{} (from {}", piece.looked_for(), piece.providers());
            if let Find::Files { dirs, .. } | Find::Data { dirs, .. } = &piece.find
                && let Some(dir) = dirs.last()
            {
                hint.push_str(&format!(", or put them in {}", dir.display()));
            }
            hint.push(')');
            hint
        })
        .collect();
    // apt's summary and its `Remv` lines; the `Inst` and `Conf` lines
    // repeat the summary one package at a time.
    let summary: Vec<&str> = plan
        .trim()
        .lines()
        .filter(|line| !line.starts_with("Inst ") && !line.starts_with("Conf "))
        .collect();
    text.push_str(&format!(
        "; provide what is missing by hand, then run again: {}\n`apt-get install -s {}` printed:\n{}",
        by_hand.join("; "),
        packages.join(" "),
        summary.join("\n")
    ));
    text
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

/// `Ok` when every piece is found, or kindling may install what is
/// missing; else the error naming what to install (cheap: no process runs).
pub fn check(
    pieces: &[Piece],
    search: &SearchPath,
    policy: InstallPolicy,
) -> Result<(), PackageError> {
    let missing = search.look_up(pieces).missing();
    if missing.is_empty() {
        return Ok(());
    }
    can_install(policy).map_err(|reason| PackageError::Missing { missing, reason })
}

/// Finds `pieces` on `search`, installs the Debian packages of those
/// missing (saying so, with apt's plan, through `say`), and returns every
/// piece's path, in order; or fails naming what is missing and what to do.
/// apt-get never removes a package: an install that needs it is refused
/// before anything is installed. Installs take turns through
/// `lock_dir/apt.lock`.
pub async fn ensure_installed(
    pieces: &[Piece],
    search: &SearchPath,
    policy: InstallPolicy,
    lock_dir: &Path,
    say: &(dyn Fn(&str) + Send + Sync),
) -> Result<Vec<PathBuf>, PackageError> {
    if let Some(paths) = search.look_up(pieces).paths() {
        return Ok(paths);
    }
    check(pieces, search, policy)?;
    // apt refuses a second apt running: take turns with other suites.
    let _lock = crate::cluster::lock::exclusive(
        &lock_dir.join("apt.lock"),
        "installing Debian packages",
        "waiting for another process to install packages",
    )
    .await?;
    let lookup = search.look_up(pieces);
    if let Some(paths) = lookup.paths() {
        return Ok(paths);
    }
    let missing = lookup.missing();
    let packages = packages_of(&missing);
    let update = apt_get(&["update", "-qq"]).await?;
    let simulated = apt_get_packages(&["install", "-s"], &packages, &update).await?;
    let plan = AptPlan::parse(&simulated.output);
    if !plan.removes.is_empty() {
        return Err(PackageError::WouldRemove(Box::new(WouldRemove {
            packages,
            removes: plan.removes,
            missing,
            found: found_pieces(&lookup).await,
            plan: simulated.output,
        })));
    }
    say(&format!(
        "installing Debian's {} with apt-get: installs {} (set KINDLING_INSTALL=never to install them yourself)",
        packages.join(", "),
        if plan.installs.is_empty() {
            "nothing new".to_owned()
        } else {
            plan.installs.join(", ")
        }
    ));
    // `--no-remove` again: should the archive have changed since the
    // simulation, apt refuses rather than removes.
    apt_get_packages(&["install", "-y", "-qq", "--no-remove"], &packages, &update).await?;
    let lookup = search.look_up(pieces);
    lookup.paths().ok_or_else(|| PackageError::StillMissing {
        packages,
        missing: lookup.missing(),
    })
}

/// The pieces `lookup` found, with the packages that installed them.
async fn found_pieces(lookup: &Lookup) -> Vec<FoundPiece> {
    let mut found = Vec::new();
    for (piece, path) in lookup.found() {
        found.push(FoundPiece {
            name: piece.name,
            package: owner(&path).await,
            path,
        });
    }
    found
}

/// Runs `apt-get <args> <packages>`; fails unless it succeeds, with what
/// `apt-get update` (`update`) and it printed.
async fn apt_get_packages(
    args: &[&str],
    packages: &[String],
    update: &AptRun,
) -> Result<AptRun, PackageError> {
    let argv: Vec<&str> = args
        .iter()
        .copied()
        .chain(packages.iter().map(String::as_str))
        .collect();
    let run = apt_get(&argv).await?;
    if !run.success {
        return Err(PackageError::Apt {
            command: run.command,
            output: format!("{}{}", update.output, run.output).trim().to_owned(),
        });
    }
    Ok(run)
}

/// What an apt-get command did.
struct AptRun {
    command: String,
    success: bool,
    /// stdout then stderr.
    output: String,
}

async fn apt_get(args: &[&str]) -> Result<AptRun, PackageError> {
    let command = format!("apt-get {}", args.join(" "));
    let output = tokio::process::Command::new("apt-get")
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|error| PackageError::Apt {
            command: command.clone(),
            output: error.to_string(),
        })?;
    Ok(AptRun {
        command,
        success: output.status.success(),
        output: format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    })
}

/// The package that installed `path`, if dpkg knows (`dpkg-query -S`
/// prints `package: path`; with a merged /usr the database may name the
/// other spelling of the path).
async fn owner(path: &Path) -> Option<String> {
    let canonical = std::fs::canonicalize(path).ok();
    for candidate in std::iter::once(path).chain(canonical.as_deref()) {
        let output = tokio::process::Command::new("dpkg-query")
            .arg("-S")
            .arg(candidate)
            .kill_on_drop(true)
            .output()
            .await
            .ok()?;
        if output.status.success() {
            let text = String::from_utf8_lossy(&output.stdout);
            let line = text.lines().next()?;
            return line.split_once(": ").map(|(package, _)| package.to_owned());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_files_count_whatever_their_mode_and_programs_only_when_executable() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("libseccomp.a"), b"!<arch>\n").unwrap();
        let dirs = [PathBuf::from("/nonexistent"), dir.path().to_owned()];
        let search = SearchPath::new(Vec::new());
        let library = Piece::data("libseccomp", &dirs, &["libseccomp.a"], "libseccomp-dev");
        assert_eq!(search.find(&library), Some(dir.path().to_owned()));
        let as_program = Piece::files("libseccomp", &dirs, &["libseccomp.a"], "libseccomp-dev");
        assert_eq!(search.find(&as_program), None, "not executable");
        let missing = Piece::data("libc", &dirs, &["libc.a"], "libc6-dev");
        assert_eq!(search.find(&missing), None);
        assert!(
            missing
                .looked_for()
                .starts_with("libc (libc.a) in /nonexistent or "),
            "{}",
            missing.looked_for()
        );
    }

    /// An `apt-get install -s runc containernetworking-plugins` on a host
    /// with Docker's packages, as bookworm's apt 2.6 prints it.
    const DOCKER_HOST_PLAN: &str = "\
NOTE: This is only a simulation!
      apt-get needs root privileges for real execution.
      Keep also in mind that locking is deactivated,
      so don't depend on the relevance to the real current situation!
Reading package lists...
Building dependency tree...
Reading state information...
The following packages will be REMOVED:
  containerd.io docker-ce
The following NEW packages will be installed:
  containernetworking-plugins runc
0 upgraded, 2 newly installed, 2 to remove and 0 not upgraded.
Remv docker-ce [5:27.3.1-1~debian.12~bookworm]
Remv containerd.io [1.7.22-1]
Inst runc (1.1.5+ds1-1+deb12u1 Debian:12.11/stable [amd64])
Inst containernetworking-plugins (1.1.1+ds1-3+b7 Debian:12.11/stable [amd64])
Conf runc (1.1.5+ds1-1+deb12u1 Debian:12.11/stable [amd64])
Conf containernetworking-plugins (1.1.1+ds1-3+b7 Debian:12.11/stable [amd64])
";

    #[test]
    fn a_plan_lists_installs_and_removals_and_ignores_configuration() {
        let plan = AptPlan::parse(DOCKER_HOST_PLAN);
        assert_eq!(plan.removes, ["docker-ce", "containerd.io"]);
        assert_eq!(plan.installs, ["runc", "containernetworking-plugins"]);
    }

    #[test]
    fn a_plan_counts_upgrades_and_purges_and_nothing_else() {
        let plan = AptPlan::parse(
            "Inst libc6 [2.36-9] (2.36-9+deb12u9 Debian:12.11/stable [amd64])\n\
             Purg old-tool [1.0]\n\
             Conf libc6 (2.36-9+deb12u9 Debian:12.11/stable [amd64])\n\
             Inst\n\
             The following packages will be REMOVED:\n",
        );
        assert_eq!(plan.installs, ["libc6"]);
        assert_eq!(plan.removes, ["old-tool"]);
        assert_eq!(
            AptPlan::parse("runc is already the newest version (1.1.5+ds1-1+deb12u1).\n"),
            AptPlan::default()
        );
    }

    fn stub(path: &Path) {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[test]
    fn a_program_is_the_first_executable_on_the_search_path() {
        let root = tempfile::tempdir().unwrap();
        let (first, second) = (root.path().join("a"), root.path().join("b"));
        stub(&second.join("tool"));
        std::fs::create_dir_all(&first).unwrap();
        // Not executable, and a directory: neither counts.
        std::fs::write(first.join("tool"), "").unwrap();
        std::fs::create_dir_all(second.join("dir-tool")).unwrap();
        let search = SearchPath::new([
            PathBuf::from("relative"),
            first.clone(),
            second.clone(),
            first.clone(),
        ]);
        assert_eq!(search.dirs(), [first, second.clone()]);
        assert_eq!(
            search.find(&Piece::program("tool", "tool")),
            Some(second.join("tool"))
        );
        assert_eq!(search.find(&Piece::program("dir-tool", "x")), None);
    }

    #[test]
    fn files_are_found_only_in_a_directory_holding_them_all() {
        let root = tempfile::tempdir().unwrap();
        let (partial, whole) = (root.path().join("partial"), root.path().join("whole"));
        stub(&partial.join("bridge"));
        stub(&whole.join("bridge"));
        stub(&whole.join("loopback"));
        let piece = Piece::files(
            "the CNI plugins",
            &[partial.clone(), whole.clone()],
            &["bridge", "loopback"],
            "containernetworking-plugins",
        );
        assert_eq!(SearchPath::new([]).find(&piece), Some(whole));
        let only_partial =
            Piece::files("the CNI plugins", &[partial], &["bridge", "loopback"], "p");
        assert_eq!(SearchPath::new([]).find(&only_partial), None);
    }

    fn runtime_like() -> Vec<Piece> {
        vec![
            Piece::program("runc", "runc").also_from("Docker's containerd.io"),
            Piece::files(
                "the CNI plugins",
                &[PathBuf::from("/usr/lib/cni"), PathBuf::from("/opt/cni/bin")],
                &["bridge", "loopback"],
                "containernetworking-plugins",
            ),
        ]
    }

    #[test]
    fn a_missing_piece_names_where_it_was_looked_for_and_a_command_that_removes_nothing() {
        let text = PackageError::Missing {
            missing: runtime_like(),
            reason: NotInstalled::TurnedOff,
        }
        .to_string();
        assert_eq!(
            text,
            "cannot find `runc` on PATH or the CNI plugins (bridge, loopback) in /usr/lib/cni or \
             /opt/cni/bin: install Debian's containernetworking-plugins and runc (`apt-get install \
             --no-remove containernetworking-plugins runc`); Docker's containerd.io also provides \
             runc (KINDLING_INSTALL=never: kindling installs nothing itself)"
        );
    }

    #[test]
    fn a_refused_removal_names_what_apt_would_remove_what_is_there_and_what_to_do() {
        let text = PackageError::WouldRemove(Box::new(WouldRemove {
            packages: vec!["containernetworking-plugins".to_owned(), "runc".to_owned()],
            removes: AptPlan::parse(DOCKER_HOST_PLAN).removes,
            missing: runtime_like(),
            found: vec![
                FoundPiece {
                    name: "containerd".to_owned(),
                    path: PathBuf::from("/usr/bin/containerd"),
                    package: Some("containerd.io".to_owned()),
                },
                FoundPiece {
                    name: "ctr".to_owned(),
                    path: PathBuf::from("/usr/bin/ctr"),
                    package: Some("containerd.io".to_owned()),
                },
                FoundPiece {
                    name: "iptables".to_owned(),
                    path: PathBuf::from("/usr/local/sbin/iptables"),
                    package: None,
                },
            ],
            plan: DOCKER_HOST_PLAN.to_owned(),
        }))
        .to_string();
        let first = text.lines().next().unwrap();
        assert_eq!(
            first,
            "installing Debian's containernetworking-plugins and runc would make apt-get remove \
             docker-ce and containerd.io, and kindling never removes a package; iptables is at \
             /usr/local/sbin/iptables; containerd.io already provides containerd and ctr; provide \
             what is missing by hand, then run again: `runc` on PATH (from Debian's runc or \
             Docker's containerd.io); the CNI plugins (bridge, loopback) in /usr/lib/cni or \
             /opt/cni/bin (from Debian's containernetworking-plugins, or put them in /opt/cni/bin)"
        );
        assert!(
            text.contains("The following packages will be REMOVED:\n  containerd.io docker-ce\n")
                && text.contains("Remv containerd.io [1.7.22-1]"),
            "apt's plan is part of the message:\n{text}"
        );
        assert!(!text.contains("Conf runc"), "{text}");
    }

    #[test]
    fn nothing_missing_needs_no_install_whatever_the_policy() {
        let root = tempfile::tempdir().unwrap();
        stub(&root.path().join("runc"));
        let search = SearchPath::new([root.path().to_owned()]);
        let pieces = [Piece::program("runc", "runc")];
        assert!(check(&pieces, &search, InstallPolicy::Never).is_ok());
        let missing = [Piece::program("containerd", "containerd")];
        assert!(matches!(
            check(&missing, &search, InstallPolicy::Never),
            Err(PackageError::Missing {
                reason: NotInstalled::TurnedOff,
                ..
            })
        ));
    }
}
