//! The `kind` binary: where it is, which version it is, and running it.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

use super::KindError;

/// The kind release kindling is tested with (`fixtures/kind/build.sh`).
pub const PINNED_VERSION: KindVersion = KindVersion::new(0, 33, 0);

/// The oldest kind accepted. kind itself supports only its newest release;
/// kindling refuses releases older than this rather than fail late in ways
/// nobody tested.
pub const MINIMUM_VERSION: KindVersion = KindVersion::new(0, 20, 0);

/// A kind release, as `kind version` prints it (`kind v0.33.0 go1.26.8 linux/amd64`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct KindVersion {
    /// The major version, `0` in `v0.33.0`.
    pub major: u32,
    /// The minor version, `33` in `v0.33.0`.
    pub minor: u32,
    /// The patch version, `0` in `v0.33.0`.
    pub patch: u32,
}

impl KindVersion {
    /// The release `v<major>.<minor>.<patch>`.
    pub const fn new(major: u32, minor: u32, patch: u32) -> Self {
        KindVersion {
            major,
            minor,
            patch,
        }
    }

    /// Parses the output of `kind version`; a pre-release or build suffix
    /// (`v0.34.0-alpha+1a2b`) counts as its release.
    pub fn parse(output: &str) -> Option<Self> {
        let word = output.split_whitespace().find(|word| {
            word.starts_with('v') && word[1..].starts_with(|c: char| c.is_ascii_digit())
        })?;
        let core = word[1..].split(['-', '+']).next()?;
        let mut numbers = core.split('.').map(|part| part.parse::<u32>().ok());
        let version = KindVersion::new(numbers.next()??, numbers.next()??, numbers.next()??);
        numbers.next().is_none().then_some(version)
    }
}

impl fmt::Display for KindVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// What a successful kind command printed.
#[derive(Debug, Clone)]
pub struct KindOutput {
    /// What it wrote to stdout, as is.
    pub stdout: String,
    /// What it wrote to stderr, trimmed.
    pub stderr: String,
}

/// A located `kind` binary and the environment it runs with.
#[derive(Debug, Clone)]
pub struct KindCli {
    binary: PathBuf,
    env: Vec<(String, String)>,
}

impl KindCli {
    /// A specific binary.
    pub fn new(binary: impl Into<PathBuf>) -> Self {
        KindCli {
            binary: binary.into(),
            env: Vec::new(),
        }
    }

    /// `KINDLING_KIND_BINARY`, else the pinned build in the cache
    /// (`<cache>/bin/kind-<pinned>`), else `kind` on `PATH`. The kind
    /// provider builds the pinned one when none is found and Go is there.
    pub fn locate(cache: &Path) -> Result<Self, KindError> {
        let config = crate::config::Config::current();
        Self::locate_from(
            config.var_os("KINDLING_KIND_BINARY").map(OsString::from),
            cache,
            config.var_os("PATH").map(OsString::from),
        )
    }

    /// [`KindCli::locate`] with the variables given.
    pub fn locate_from(
        explicit: Option<OsString>,
        cache: &Path,
        path: Option<OsString>,
    ) -> Result<Self, KindError> {
        if let Some(binary) = explicit.filter(|value| !value.is_empty()) {
            return Self::explicit(PathBuf::from(binary), "KINDLING_KIND_BINARY");
        }
        let cached = pinned_binary(cache);
        if is_executable(&cached) {
            return Ok(KindCli::new(cached));
        }
        let on_path = path.and_then(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join("kind"))
                .find(|candidate| is_executable(candidate))
        });
        match on_path {
            Some(found) => Ok(KindCli::new(found)),
            None => Err(KindError::BinaryMissing {
                searched: format!("`{}`, then `kind` on PATH", cached.display()),
            }),
        }
    }

    /// A binary the user named (`what` says where): it must exist, since
    /// falling back to another kind would hide the mistake.
    pub fn explicit(binary: PathBuf, what: &str) -> Result<Self, KindError> {
        if is_executable(&binary) {
            Ok(KindCli::new(binary))
        } else {
            Err(KindError::BinaryMissing {
                searched: format!("{what} `{}`, not an executable file", binary.display()),
            })
        }
    }

    /// Sets a variable for every kind command (e.g. `KIND_EXPERIMENTAL_PROVIDER`).
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// The path of the `kind` binary run.
    pub fn binary(&self) -> &Path {
        &self.binary
    }

    /// `kind version`, checked against [`MINIMUM_VERSION`].
    pub async fn checked_version(&self) -> Result<KindVersion, KindError> {
        let output = self.run(&["version"]).await?;
        let version =
            KindVersion::parse(&output.stdout).ok_or_else(|| KindError::UnknownVersion {
                binary: self.binary.clone(),
                output: output.stdout.trim().to_owned(),
            })?;
        if version < MINIMUM_VERSION {
            return Err(KindError::TooOld {
                binary: self.binary.clone(),
                found: version,
            });
        }
        Ok(version)
    }

    /// Names of the clusters kind sees on its container engine.
    pub async fn clusters(&self) -> Result<Vec<String>, KindError> {
        let output = self.run(&["get", "clusters"]).await?;
        Ok(output
            .stdout
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .map(str::to_owned)
            .collect())
    }

    /// Runs `kind args...`; a non-zero exit is an error carrying kind's stderr.
    pub async fn run<S: AsRef<std::ffi::OsStr>>(
        &self,
        args: &[S],
    ) -> Result<KindOutput, KindError> {
        let args: Vec<OsString> = args.iter().map(|arg| arg.as_ref().to_owned()).collect();
        let command = self.command_line(&args);
        let output = tokio::process::Command::new(&self.binary)
            .args(&args)
            .envs(self.env.iter().map(|(key, value)| (key, value)))
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output()
            .await
            .map_err(|source| KindError::Spawn {
                command: command.clone(),
                source,
            })?;
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
        if !output.status.success() {
            return Err(KindError::Command {
                command,
                status: output.status.to_string(),
                stderr,
            });
        }
        Ok(KindOutput { stdout, stderr })
    }

    fn command_line(&self, args: &[OsString]) -> String {
        let mut words = vec![self.binary.display().to_string()];
        words.extend(args.iter().map(|arg| arg.to_string_lossy().into_owned()));
        words.join(" ")
    }
}

/// Where kindling builds the pinned kind ([`super::pinned`]), as
/// `fixtures/kind/build.sh` does.
pub fn pinned_binary(cache: &Path) -> PathBuf {
    cache.join(format!("bin/kind-{PINNED_VERSION}"))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    path.metadata()
        .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_as_kind_prints_them() {
        let table = [
            (
                "kind v0.33.0 go1.26.8 linux/amd64\n",
                Some(KindVersion::new(0, 33, 0)),
            ),
            (
                "kind v0.20.0 go1.20.4 darwin/arm64",
                Some(KindVersion::new(0, 20, 0)),
            ),
            (
                "kind v0.34.0-alpha+1a2b3c go1.26.0 linux/amd64",
                Some(KindVersion::new(0, 34, 0)),
            ),
            ("kind v1.2.3", Some(KindVersion::new(1, 2, 3))),
            ("kind version unknown", None),
            ("kind v0.x.0", None),
            ("", None),
        ];
        for (output, expected) in table {
            assert_eq!(KindVersion::parse(output), expected, "{output:?}");
        }
    }

    #[test]
    fn versions_order_numerically() {
        assert!(KindVersion::new(0, 9, 0) < KindVersion::new(0, 10, 0));
        assert!(KindVersion::new(0, 19, 9) < MINIMUM_VERSION);
        assert!(PINNED_VERSION >= MINIMUM_VERSION);
        assert_eq!(PINNED_VERSION.to_string(), "v0.33.0");
    }

    #[test]
    fn kind_is_found_in_order_and_a_missing_one_says_how_to_install_it() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let missing = KindCli::locate_from(None, &cache, Some(bin.clone().into())).unwrap_err();
        let text = missing.to_string();
        assert!(
            text.contains("kind is not installed")
                && text.contains(&format!("go install sigs.k8s.io/kind@{PINNED_VERSION}"))
                && text.contains("install Go")
                && text.contains(&pinned_binary(&cache).display().to_string()),
            "{text}"
        );
        let executable = |path: &Path| {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, "#!/bin/sh\n").unwrap();
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
        };
        executable(&bin.join("kind"));
        let found = KindCli::locate_from(None, &cache, Some(bin.clone().into())).unwrap();
        assert_eq!(found.binary(), bin.join("kind"));
        executable(&pinned_binary(&cache));
        let found = KindCli::locate_from(None, &cache, Some(bin.clone().into())).unwrap();
        assert_eq!(
            found.binary(),
            pinned_binary(&cache),
            "the pinned build wins over PATH"
        );
        let named = KindCli::locate_from(Some("/nowhere/kind".into()), &cache, None).unwrap_err();
        assert!(
            named
                .to_string()
                .contains("KINDLING_KIND_BINARY `/nowhere/kind`"),
            "{named}"
        );
    }
}
