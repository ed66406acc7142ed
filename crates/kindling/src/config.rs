//! `KINDLING_*` environment variables, parsed into types once at startup.
//!
//! Every variable the project reads is listed in [`KNOWN_VARIABLES`]; an
//! unknown `KINDLING_*` name is a warning (a typo should not go unnoticed),
//! an unknown value is an error that names the variable and what it accepts.

use std::path::PathBuf;
use std::time::Duration;

/// Built-in per-test timeout when neither the suite nor the environment sets one.
pub const DEFAULT_TEST_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// Built-in setup timeout: a cold setup builds images and creates a
/// cluster, and the local provider's first one builds its components.
pub const DEFAULT_SETUP_TIMEOUT: Duration = Duration::from_secs(60 * 60);

/// Every variable kindling reads, with what it means, for docs and warnings.
pub const KNOWN_VARIABLES: &[(&str, &str)] = &[
    (
        "KINDLING_TEST_TIMEOUT",
        "per-test timeout, e.g. `90s`, `5m` (default 5m)",
    ),
    (
        "KINDLING_SETUP_TIMEOUT",
        "run-wide setup timeout, e.g. `20m` (default 60m)",
    ),
    (
        "KINDLING_JUNIT",
        "JUnit path under `cargo test` (default target/kindling/junit/<suite>.xml)",
    ),
    (
        "KINDLING_PROGRESS",
        "setup progress on stderr: auto, bar, plain, none",
    ),
    (
        "KINDLING_REUSE",
        "reuse an earlier run's environment: auto (if alive and unchanged), never",
    ),
    (
        "KINDLING_LOG",
        "captured log level: error, warn, info (default), debug, trace",
    ),
    (
        "KINDLING_TAG_POLICY",
        "image tags: content (digest of the build inputs), unique (per run), fixed",
    ),
    (
        "KINDLING_IMAGE_TAG",
        "the prebuilt tag used by KINDLING_TAG_POLICY=fixed",
    ),
    (
        "KINDLING_PROVIDER",
        "cluster provider: local (upstream components on this host), kind (the kind CLI), existing (a kubeconfig context; images pushed to KINDLING_REGISTRY)",
    ),
    (
        "KINDLING_KUBECONFIG",
        "existing provider: the cluster's kubeconfig (default KUBECONFIG, then ~/.kube/config)",
    ),
    (
        "KINDLING_CONTEXT",
        "existing provider: the kubeconfig context (default its current context)",
    ),
    (
        "KINDLING_REGISTRY",
        "existing provider: the registry images are pushed to, e.g. `127.0.0.1:5000` (required)",
    ),
    (
        "KINDLING_REGISTRY_USERNAME",
        "existing provider: registry user name, with KINDLING_REGISTRY_PASSWORD",
    ),
    (
        "KINDLING_REGISTRY_PASSWORD",
        "existing provider: registry password, with KINDLING_REGISTRY_USERNAME",
    ),
    (
        "KINDLING_KIND_BINARY",
        "the kind binary (default ~/.cache/kindling/bin/kind-<pinned>, else kind on PATH)",
    ),
    (
        "KINDLING_KIND_CONFIG",
        "the kind cluster configuration file (default: one control-plane node)",
    ),
    (
        "KINDLING_KIND_RECREATE",
        "1: delete and recreate a kind cluster whose configuration changed (default: refuse it)",
    ),
    ("KINDLING_CLUSTER", "cluster name (default `kindling`)"),
    (
        "KINDLING_INSTALL",
        "local provider: auto (install missing Debian runtime packages as root on Debian), never",
    ),
    (
        "KINDLING_CACHE_DIR",
        "where built cluster components are cached (default ~/.cache/kindling)",
    ),
    (
        "KINDLING_HOME",
        "per-host cluster state (default ~/.local/state/kindling)",
    ),
    (
        "KINDLING_STATE_DIR",
        "where suite state lives (default target/kindling/state)",
    ),
    (
        "KINDLING_CLUSTER_READY",
        "set by `kindling nextest-setup` for the tests: the cluster it brought up (JSON)",
    ),
    (
        "KINDLING_WATCH_LEDGER",
        "internal: set in the process that waits for the end of a nextest run",
    ),
    (
        "KINDLING_WATCH_PID",
        "internal: set in the process that waits for the end of a nextest run",
    ),
    (
        "KINDLING_KEEP",
        "what outlives a run: always (default: cluster and namespaces, for fast re-runs), on-failure (delete the suites' namespaces after a passing run), never (delete them after every run, and the cluster if the run created it)",
    ),
];

/// How setup progress is shown on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressMode {
    /// A progress bar on a terminal, plain lines otherwise.
    Auto,
    /// Always a progress bar.
    Bar,
    /// Timestamped lines, one per event.
    Plain,
    /// Nothing.
    None,
}

/// Whether an environment set up by an earlier run may be reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReusePolicy {
    /// Reuse when the fingerprints match and every liveness check passes.
    Auto,
    /// Always set up again.
    Never,
}

/// What a run leaves behind for the next one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeepPolicy {
    /// The cluster and the suites' namespaces stay, for fast re-runs.
    Always,
    /// After a run whose tests all passed, each suite's namespace and the
    /// cluster-scoped objects only it used are deleted; after a failing
    /// run everything stays and the failure says where.
    OnFailure,
    /// After every run, pass or fail, once the artifacts are collected,
    /// the namespaces are deleted, and the cluster if this run created it.
    Never,
}

/// Captured log verbosity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    pub(crate) fn as_tracing(self) -> tracing::Level {
        match self {
            LogLevel::Error => tracing::Level::ERROR,
            LogLevel::Warn => tracing::Level::WARN,
            LogLevel::Info => tracing::Level::INFO,
            LogLevel::Debug => tracing::Level::DEBUG,
            LogLevel::Trace => tracing::Level::TRACE,
        }
    }
}

/// The environment's settings. Fields left `None` fall back to the suite's
/// own value and then to the built-in default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvConfig {
    pub test_timeout: Option<Duration>,
    pub setup_timeout: Option<Duration>,
    pub junit_path: Option<PathBuf>,
    pub progress: ProgressMode,
    pub reuse: ReusePolicy,
    pub log_level: LogLevel,
    pub state_dir: Option<PathBuf>,
    pub keep: KeepPolicy,
    /// `KINDLING_*` names that are set but mean nothing to kindling.
    pub unknown_variables: Vec<String>,
}

/// A `KINDLING_*` variable holds a value kindling does not accept.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid value `{value}` in {variable}: expected {expected}")]
pub struct ConfigError {
    pub variable: String,
    pub value: String,
    pub expected: String,
}

impl EnvConfig {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(
            std::env::vars_os().filter_map(|(key, value)| {
                Some((key.into_string().ok()?, value.into_string().ok()?))
            }),
        )
    }

    /// Parses `(name, value)` pairs; names not starting with `KINDLING_` are ignored.
    pub fn from_vars(
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut config = EnvConfig {
            test_timeout: None,
            setup_timeout: None,
            junit_path: None,
            progress: ProgressMode::Auto,
            reuse: ReusePolicy::Auto,
            log_level: LogLevel::Info,
            state_dir: None,
            keep: KeepPolicy::Always,
            unknown_variables: Vec::new(),
        };
        let mut vars: Vec<(String, String)> = vars
            .into_iter()
            .filter(|(key, _)| key.starts_with("KINDLING_"))
            .collect();
        vars.sort();
        for (key, value) in vars {
            match key.as_str() {
                "KINDLING_TEST_TIMEOUT" => {
                    config.test_timeout = Some(parse_duration(&key, &value)?)
                }
                "KINDLING_SETUP_TIMEOUT" => {
                    config.setup_timeout = Some(parse_duration(&key, &value)?)
                }
                "KINDLING_JUNIT" => config.junit_path = Some(parse_path(&key, &value)?),
                "KINDLING_STATE_DIR" => config.state_dir = Some(parse_path(&key, &value)?),
                "KINDLING_PROGRESS" => {
                    config.progress = parse_choice(
                        &key,
                        &value,
                        &[
                            ("auto", ProgressMode::Auto),
                            ("bar", ProgressMode::Bar),
                            ("plain", ProgressMode::Plain),
                            ("none", ProgressMode::None),
                        ],
                    )?
                }
                "KINDLING_REUSE" => {
                    config.reuse = parse_choice(
                        &key,
                        &value,
                        &[("auto", ReusePolicy::Auto), ("never", ReusePolicy::Never)],
                    )?
                }
                "KINDLING_KEEP" => {
                    config.keep = parse_choice(
                        &key,
                        &value,
                        &[
                            ("always", KeepPolicy::Always),
                            ("on-failure", KeepPolicy::OnFailure),
                            ("never", KeepPolicy::Never),
                        ],
                    )?
                }
                "KINDLING_TAG_POLICY" => {
                    parse_choice(
                        &key,
                        &value,
                        &[("content", ()), ("unique", ()), ("fixed", ())],
                    )?;
                }
                "KINDLING_PROVIDER" => {
                    parse_choice(
                        &key,
                        &value,
                        &[("local", ()), ("kind", ()), ("existing", ())],
                    )?;
                }
                "KINDLING_INSTALL" => {
                    parse_choice(&key, &value, &[("auto", ()), ("never", ())])?;
                }
                "KINDLING_KIND_RECREATE" => {
                    parse_choice(
                        &key,
                        &value,
                        &[("1", ()), ("true", ()), ("0", ()), ("false", ())],
                    )?;
                }
                "KINDLING_LOG" => {
                    config.log_level = parse_choice(
                        &key,
                        &value,
                        &[
                            ("error", LogLevel::Error),
                            ("warn", LogLevel::Warn),
                            ("info", LogLevel::Info),
                            ("debug", LogLevel::Debug),
                            ("trace", LogLevel::Trace),
                        ],
                    )?
                }
                _ if is_known(&key) => {}
                _ => config.unknown_variables.push(key),
            }
        }
        Ok(config)
    }

    /// One warning line per unknown variable, naming the known ones.
    pub fn warnings(&self) -> Vec<String> {
        self.unknown_variables
            .iter()
            .map(|name| {
                let known: Vec<&str> = KNOWN_VARIABLES.iter().map(|(name, _)| *name).collect();
                format!(
                    "warning: {name} is not a kindling variable and is ignored (known: {})",
                    known.join(", ")
                )
            })
            .collect()
    }
}

fn is_known(name: &str) -> bool {
    KNOWN_VARIABLES.iter().any(|(known, _)| *known == name)
}

fn parse_duration(variable: &str, value: &str) -> Result<Duration, ConfigError> {
    match humantime::parse_duration(value.trim()) {
        Ok(duration) if !duration.is_zero() => Ok(duration),
        _ => Err(ConfigError {
            variable: variable.to_owned(),
            value: value.to_owned(),
            expected: "a positive duration such as `90s`, `5m` or `1h 30m`".to_owned(),
        }),
    }
}

fn parse_path(variable: &str, value: &str) -> Result<PathBuf, ConfigError> {
    if value.trim().is_empty() {
        return Err(ConfigError {
            variable: variable.to_owned(),
            value: value.to_owned(),
            expected: "a non-empty path".to_owned(),
        });
    }
    Ok(PathBuf::from(value))
}

fn parse_choice<T: Copy>(
    variable: &str,
    value: &str,
    choices: &[(&str, T)],
) -> Result<T, ConfigError> {
    let wanted = value.trim().to_ascii_lowercase();
    choices
        .iter()
        .find(|(name, _)| *name == wanted)
        .map(|(_, choice)| *choice)
        .ok_or_else(|| ConfigError {
            variable: variable.to_owned(),
            value: value.to_owned(),
            expected: format!(
                "one of {}",
                choices
                    .iter()
                    .map(|(name, _)| format!("`{name}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &[(&str, &str)]) -> Result<EnvConfig, ConfigError> {
        EnvConfig::from_vars(
            pairs
                .iter()
                .map(|(key, value)| (key.to_string(), value.to_string())),
        )
    }

    #[test]
    fn defaults_when_nothing_is_set() {
        let config = parse(&[("PATH", "/bin")]).unwrap();
        assert_eq!(config.test_timeout, None);
        assert_eq!(config.progress, ProgressMode::Auto);
        assert_eq!(config.reuse, ReusePolicy::Auto);
        assert_eq!(config.log_level, LogLevel::Info);
        assert!(config.unknown_variables.is_empty());
    }

    #[test]
    fn valid_values() {
        type Check = fn(&EnvConfig) -> bool;
        let table: &[(&str, &str, Check)] = &[
            ("KINDLING_TEST_TIMEOUT", "90s", |c| {
                c.test_timeout == Some(Duration::from_secs(90))
            }),
            ("KINDLING_TEST_TIMEOUT", "1h 30m", |c| {
                c.test_timeout == Some(Duration::from_secs(5400))
            }),
            ("KINDLING_SETUP_TIMEOUT", "20m", |c| {
                c.setup_timeout == Some(Duration::from_secs(1200))
            }),
            ("KINDLING_PROGRESS", "plain", |c| {
                c.progress == ProgressMode::Plain
            }),
            ("KINDLING_PROGRESS", "BAR", |c| {
                c.progress == ProgressMode::Bar
            }),
            ("KINDLING_PROGRESS", "none", |c| {
                c.progress == ProgressMode::None
            }),
            ("KINDLING_REUSE", "never", |c| c.reuse == ReusePolicy::Never),
            ("KINDLING_KEEP", "on-failure", |c| {
                c.keep == KeepPolicy::OnFailure
            }),
            ("KINDLING_KEEP", "NEVER", |c| c.keep == KeepPolicy::Never),
            ("KINDLING_LOG", "debug", |c| c.log_level == LogLevel::Debug),
            ("KINDLING_JUNIT", "out/j.xml", |c| {
                c.junit_path == Some(PathBuf::from("out/j.xml"))
            }),
        ];
        for (key, value, check) in table {
            let config = parse(&[(key, value)]).unwrap_or_else(|e| panic!("{key}={value}: {e}"));
            assert!(check(&config), "{key}={value} gave {config:?}");
        }
    }

    #[test]
    fn invalid_values_name_the_variable_and_the_accepted_forms() {
        let table: &[(&str, &str, &str)] = &[
            ("KINDLING_TEST_TIMEOUT", "soon", "a positive duration"),
            ("KINDLING_TEST_TIMEOUT", "0s", "a positive duration"),
            ("KINDLING_SETUP_TIMEOUT", "-5m", "a positive duration"),
            (
                "KINDLING_PROGRESS",
                "fancy",
                "one of `auto`, `bar`, `plain`, `none`",
            ),
            ("KINDLING_REUSE", "always", "one of `auto`, `never`"),
            (
                "KINDLING_LOG",
                "loud",
                "one of `error`, `warn`, `info`, `debug`, `trace`",
            ),
            ("KINDLING_JUNIT", "", "a non-empty path"),
            (
                "KINDLING_TAG_POLICY",
                "latest",
                "one of `content`, `unique`, `fixed`",
            ),
            (
                "KINDLING_KIND_RECREATE",
                "yes",
                "one of `1`, `true`, `0`, `false`",
            ),
            ("KINDLING_INSTALL", "always", "one of `auto`, `never`"),
            (
                "KINDLING_KEEP",
                "sometimes",
                "one of `always`, `on-failure`, `never`",
            ),
        ];
        for (key, value, expected) in table {
            let error = parse(&[(key, value)]).unwrap_err();
            assert_eq!(error.variable, *key);
            assert_eq!(error.value, *value);
            assert!(error.expected.starts_with(expected), "{}", error.expected);
            let text = error.to_string();
            assert!(text.contains(key) && text.contains(expected), "{text}");
        }
    }

    #[test]
    fn unknown_variable_is_a_warning_naming_it() {
        let config = parse(&[("KINDLING_TEST_TIMOUT", "5s")]).unwrap();
        assert_eq!(
            config.unknown_variables,
            vec!["KINDLING_TEST_TIMOUT".replace("TIMEOUT", "TIMOUT")]
        );
        let warnings = config.warnings();
        assert!(warnings[0].contains("KINDLING_TEST_TIMOUT"));
        assert!(warnings[0].contains("KINDLING_TEST_TIMEOUT"));
    }

    #[test]
    fn the_existing_provider_and_its_variables_are_known() {
        let config = parse(&[
            ("KINDLING_PROVIDER", "existing"),
            ("KINDLING_KUBECONFIG", "/k/config"),
            ("KINDLING_CONTEXT", "staging"),
            ("KINDLING_REGISTRY", "127.0.0.1:5000"),
            ("KINDLING_REGISTRY_USERNAME", "ci"),
            ("KINDLING_REGISTRY_PASSWORD", "secret"),
        ])
        .unwrap();
        assert!(config.unknown_variables.is_empty(), "{config:?}");
        let error = parse(&[("KINDLING_PROVIDER", "remote")]).unwrap_err();
        assert!(error.expected.contains("`existing`"), "{error}");
    }
}
