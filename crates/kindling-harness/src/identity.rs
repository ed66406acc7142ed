//! Who this process is: which run, which test binary, which suite, and
//! where the Cargo target directory is. Read from the environment nextest
//! and cargo set, with fallbacks for a binary started by hand or by an IDE.

use std::path::{Path, PathBuf};

/// The identity of one run of one suite, as seen by one process.
#[derive(Debug, Clone)]
pub(crate) struct RunIdentity {
    /// Shared by every process of a nextest run; one per process under `cargo test`.
    pub run_id: String,
    /// `<package>::<target>`, the name nextest gives the binary.
    pub binary_id: String,
    /// The suite's name: state, JUnit and setup reports are keyed by it.
    pub suite: String,
    /// True when nextest runs this process (one process per test).
    pub under_nextest: bool,
    /// The Cargo target directory (`target/`), if it could be found.
    pub target_dir: Result<PathBuf, TargetDirError>,
    /// The suite package's directory: relative paths resolve against it.
    pub package_dir: PathBuf,
}

/// What the suite binary knew when it was compiled (through `kindling::main!`).
#[derive(Debug, Clone, Default)]
pub(crate) struct BuildFacts<'a> {
    pub package: Option<&'a str>,
    /// `CARGO_TARGET_TMPDIR`: `<target>/tmp`.
    pub target_tmpdir: Option<&'a Path>,
    pub manifest_dir: Option<&'a Path>,
}

impl RunIdentity {
    pub(crate) fn detect(suite_name: Option<&str>, built: BuildFacts<'_>) -> Self {
        let package_at_build = built.package;
        let exe = std::env::current_exe().ok();
        let target_name = exe
            .as_deref()
            .and_then(target_name_from_exe)
            .unwrap_or_else(|| "suite".to_owned());
        let package = std::env::var("CARGO_PKG_NAME")
            .ok()
            .or_else(|| package_at_build.map(str::to_owned))
            .unwrap_or_else(|| target_name.clone());
        let binary_id = std::env::var("NEXTEST_BINARY_ID")
            .unwrap_or_else(|_| format!("{package}::{target_name}"));
        let under_nextest = std::env::var("NEXTEST").as_deref() == Ok("1");
        let run_id = std::env::var("NEXTEST_RUN_ID")
            .ok()
            .filter(|id| !id.is_empty())
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        RunIdentity {
            run_id,
            binary_id,
            suite: suite_name.map(str::to_owned).unwrap_or(target_name),
            under_nextest,
            target_dir: target_dir(exe.as_deref(), built.target_tmpdir),
            package_dir: package_dir(built.manifest_dir),
        }
    }

    /// `target/kindling`.
    pub(crate) fn kindling_dir(&self) -> Result<PathBuf, TargetDirError> {
        self.target_dir.clone().map(|dir| dir.join("kindling"))
    }
}

/// Neither `CARGO_TARGET_DIR` nor the test binary's location tells the
/// Cargo target directory, where kindling keeps state, artifacts and JUnit.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "cannot find the Cargo target directory of {}: set CARGO_TARGET_DIR to the directory kindling should keep its state, artifacts and JUnit in (under `<dir>/kindling`)",
    exe.as_ref().map_or_else(|| "this test binary".to_owned(), |exe| format!("`{}`", exe.display()))
)]
pub(crate) struct TargetDirError {
    /// The test binary, if its path could be read.
    pub exe: Option<PathBuf>,
}

/// `basic-0123456789abcdef` (cargo's deps name) gives `basic`.
pub(crate) fn target_name_from_exe(exe: &Path) -> Option<String> {
    let stem = exe.file_stem()?.to_str()?;
    match stem.rsplit_once('-') {
        Some((name, hash)) if hash.len() == 16 && hash.chars().all(|c| c.is_ascii_hexdigit()) => {
            Some(name.to_owned())
        }
        _ => Some(stem.to_owned()),
    }
}

/// The suite package's directory: the one the binary was built from (as
/// `kindling::main!` tells it) while it exists, else `CARGO_MANIFEST_DIR`
/// as cargo and nextest set it for test processes (a nextest archive run
/// elsewhere), else the current directory. The first answer in a process
/// is kept, so `fingerprint_paths` agrees with the suite's setup.
pub(crate) fn package_dir(built: Option<&Path>) -> PathBuf {
    static PACKAGE_DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    PACKAGE_DIR
        .get_or_init(|| {
            built
                .filter(|dir| dir.join("Cargo.toml").is_file())
                .map(Path::to_path_buf)
                .or_else(|| {
                    std::env::var_os("CARGO_MANIFEST_DIR")
                        .filter(|dir| !dir.is_empty())
                        .map(PathBuf::from)
                })
                .or_else(|| std::env::current_dir().ok())
                .unwrap_or_default()
        })
        .clone()
}

/// The Cargo target directory: `CARGO_TARGET_DIR` if set; else the one the
/// binary was built into (its compile-time `CARGO_TARGET_TMPDIR`); else
/// found from the executable's path, `<target>/[<triple>/]<profile>/deps/`;
/// else an error.
pub(crate) fn target_dir(
    exe: Option<&Path>,
    built_tmpdir: Option<&Path>,
) -> Result<PathBuf, TargetDirError> {
    let base = std::env::var_os("NEXTEST_WORKSPACE_ROOT")
        .map(PathBuf::from)
        .or_else(|| std::env::current_dir().ok())
        .unwrap_or_default();
    resolve_target_dir(
        std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from),
        &base,
        exe,
        built_tmpdir,
    )
}

fn resolve_target_dir(
    configured: Option<PathBuf>,
    base: &Path,
    exe: Option<&Path>,
    built_tmpdir: Option<&Path>,
) -> Result<PathBuf, TargetDirError> {
    if let Some(dir) = configured.filter(|dir| !dir.as_os_str().is_empty()) {
        return Ok(base.join(dir));
    }
    if let Some(target) = built_tmpdir
        .filter(|tmpdir| tmpdir.file_name().is_some_and(|name| name == "tmp"))
        .and_then(Path::parent)
        .filter(|target| target.is_dir())
    {
        return Ok(target.to_owned());
    }
    // No fallback: a fixed folder under the shared temporary directory
    // (once `/tmp/kindling-target`) can be made first by another user of
    // the host, and a private one of a random name would differ in every
    // process, so nextest's processes of one run would each set up again
    // and no later run would find the environment to reuse. The state
    // must be somewhere stable that the user chose.
    exe.and_then(target_dir_of_exe)
        .ok_or_else(|| TargetDirError {
            exe: exe.map(Path::to_path_buf),
        })
}

/// `<target>` for an executable in `<target>/[<triple>/]<profile>/deps/`.
/// Cargo writes `CACHEDIR.TAG` only when it creates the target directory
/// (not when `cargo nextest` made it first) but `.rustc_info.json` on
/// every build, and `.fingerprint` into every profile directory.
fn target_dir_of_exe(exe: &Path) -> Option<PathBuf> {
    let marked =
        |dir: &Path| dir.join(".rustc_info.json").is_file() || dir.join("CACHEDIR.TAG").is_file();
    if let Some(found) = exe.ancestors().skip(1).find(|dir| marked(dir)) {
        return Some(found.to_owned());
    }
    let deps = exe
        .parent()
        .filter(|dir| dir.file_name().is_some_and(|name| name == "deps"));
    let profile = deps.unwrap_or(exe.parent()?).parent()?;
    profile
        .join(".fingerprint")
        .is_dir()
        .then(|| profile.parent().map(Path::to_path_buf))
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_name_strips_cargo_hash() {
        let table = [
            ("/t/debug/deps/basic-0123456789abcdef", "basic"),
            ("/t/debug/deps/two_words-fedcba9876543210", "two_words"),
            ("/t/debug/deps/no-hash-here", "no-hash-here"),
            ("/t/debug/datastorage", "datastorage"),
        ];
        for (path, expected) in table {
            assert_eq!(
                target_name_from_exe(Path::new(path)).as_deref(),
                Some(expected)
            );
        }
    }

    #[test]
    fn target_dir_is_found_by_what_cargo_writes_into_it() {
        for marker in ["CACHEDIR.TAG", ".rustc_info.json", "debug/.fingerprint"] {
            let root = tempfile::tempdir().unwrap();
            let deps = root.path().join("debug/deps");
            std::fs::create_dir_all(&deps).unwrap();
            if marker.ends_with(".fingerprint") {
                std::fs::create_dir_all(root.path().join(marker)).unwrap();
            } else {
                std::fs::write(root.path().join(marker), "").unwrap();
            }
            let exe = deps.join("x-0123456789abcdef");
            assert_eq!(
                resolve_target_dir(None, Path::new("/w"), Some(&exe), None).unwrap(),
                root.path(),
                "{marker}"
            );
        }
    }

    #[test]
    fn the_compile_time_target_tmpdir_names_the_target_dir() {
        let root = tempfile::tempdir().unwrap();
        let tmp = root.path().join("tmp");
        std::fs::create_dir_all(&tmp).unwrap();
        let exe = Path::new("/elsewhere/debug/deps/x");
        assert_eq!(
            resolve_target_dir(None, Path::new("/w"), Some(exe), Some(&tmp)).unwrap(),
            root.path()
        );
    }

    #[test]
    fn without_a_target_dir_the_error_names_the_variable_and_no_tmp_folder_is_used() {
        // What an older kindling fell back to, planted with other content
        // as another user of the host could.
        let planted = std::env::temp_dir().join("kindling-target");
        let planted_here = std::fs::create_dir(&planted).is_ok();
        let exe = Path::new("/elsewhere/debug/deps/x-0123456789abcdef");
        let resolved = resolve_target_dir(None, Path::new("/w"), Some(exe), None);
        if planted_here {
            let _ = std::fs::remove_dir(&planted);
        }
        let error = resolved.unwrap_err();
        assert_eq!(
            error.to_string(),
            "cannot find the Cargo target directory of `/elsewhere/debug/deps/x-0123456789abcdef`: set CARGO_TARGET_DIR to the directory kindling should keep its state, artifacts and JUnit in (under `<dir>/kindling`)"
        );
        let error = resolve_target_dir(None, Path::new("/w"), None, None).unwrap_err();
        assert!(error.to_string().starts_with(
            "cannot find the Cargo target directory of this test binary: set CARGO_TARGET_DIR"
        ));
    }

    #[test]
    fn configured_target_dir_wins_and_is_relative_to_the_workspace() {
        let exe = Path::new("/elsewhere/debug/deps/x");
        let table = [
            ("/abs/target", "/abs/target"),
            ("rel/target", "/w/rel/target"),
        ];
        for (configured, expected) in table {
            let found =
                resolve_target_dir(Some(configured.into()), Path::new("/w"), Some(exe), None)
                    .unwrap();
            assert_eq!(found, Path::new(expected));
        }
    }
}
