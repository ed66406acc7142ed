//! The harness's own `KINDLING_*` environment variables, parsed into types
//! once at startup.
//!
//! Every variable the harness reads is listed in [`KNOWN_VARIABLES`], and a
//! library built on it registers its own ([`crate::extension`]); an
//! unknown `KINDLING_*` name is a warning (a typo should not go unnoticed),
//! an unknown value is an error that names the variable and what it accepts.

use std::path::PathBuf;
use std::time::Duration;

/// Built-in per-test timeout when neither the suite nor the environment sets one.
pub const DEFAULT_TEST_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// Built-in setup timeout: a cold setup builds images and creates a
/// cluster, and the local provider's first one builds its components.
pub const DEFAULT_SETUP_TIMEOUT: Duration = Duration::from_secs(60 * 60);

/// A `KINDLING_*` variable: its name, what it means (for docs and the
/// unknown-variable warning) and, when it takes one of a few words, those
/// words (its value is then checked at startup).
#[derive(Debug, Clone, Copy)]
pub struct Variable {
    /// The variable's name, `KINDLING_` and upper case.
    pub name: &'static str,
    /// What it sets, with its default.
    pub description: &'static str,
    /// The accepted values, lower case; empty when any value is accepted
    /// here (the reader checks it).
    pub choices: &'static [&'static str],
    /// A check of the value beyond `choices`, run when a suite starts:
    /// `Err` says what is expected (e.g. "a cluster name (it is empty)").
    pub check: Option<ValueCheck>,
}

/// A check of a variable's value: `Err` says what is expected.
pub type ValueCheck = fn(&str) -> Result<(), String>;

/// Every variable the harness itself reads. Libraries built on the harness
/// add theirs with [`crate::extension::register`].
pub const KNOWN_VARIABLES: &[Variable] = &[
    Variable {
        name: "KINDLING_TEST_TIMEOUT",
        description: "per-test timeout, e.g. `90s`, `5m` (default 5m)",
        choices: &[],
        check: None,
    },
    Variable {
        name: "KINDLING_SETUP_TIMEOUT",
        description: "run-wide setup timeout, e.g. `20m` (default 60m)",
        choices: &[],
        check: None,
    },
    Variable {
        name: "KINDLING_JUNIT",
        description: "JUnit path under `cargo test` (default target/kindling/junit/<suite>.xml)",
        choices: &[],
        check: None,
    },
    Variable {
        name: "KINDLING_PROGRESS",
        description: "setup progress on stderr: auto, bar, plain, none",
        choices: &[],
        check: None,
    },
    Variable {
        name: "KINDLING_REUSE",
        description: "reuse an earlier run's environment: auto (if alive and unchanged), never",
        choices: &[],
        check: None,
    },
    Variable {
        name: "KINDLING_LOG",
        description: "captured log level: error, warn, info (default), debug, trace",
        choices: &[],
        check: None,
    },
    Variable {
        name: "KINDLING_STATE_DIR",
        description: "where suite state lives (default target/kindling/state)",
        choices: &[],
        check: None,
    },
    Variable {
        name: "KINDLING_WATCH_LEDGER",
        description: "internal: set in the process that waits for the end of a nextest run",
        choices: &[],
        check: None,
    },
    Variable {
        name: "KINDLING_WATCH_PID",
        description: "internal: set in the process that waits for the end of a nextest run",
        choices: &[],
        check: None,
    },
    Variable {
        name: "KINDLING_KEEP",
        description: "what outlives a run: always (default: cluster and namespaces, for fast re-runs), on-failure (delete the suites' namespaces after a passing run), never (delete them after every run, and the cluster if the run created it)",
        choices: &[],
        check: None,
    },
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
    /// Only error events are captured.
    Error,
    /// Warnings and errors are captured.
    Warn,
    /// Info events and above are captured (the default).
    Info,
    /// Debug events and above are captured.
    Debug,
    /// Every event is captured.
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
    /// Per-test timeout from `KINDLING_TEST_TIMEOUT`, if set.
    pub test_timeout: Option<Duration>,
    /// Run-wide setup timeout from `KINDLING_SETUP_TIMEOUT`, if set.
    pub setup_timeout: Option<Duration>,
    /// Where the JUnit report is written under `cargo test`, from
    /// `KINDLING_JUNIT`, if set.
    pub junit_path: Option<PathBuf>,
    /// How setup progress is shown, from `KINDLING_PROGRESS` (default `auto`).
    pub progress: ProgressMode,
    /// Whether an earlier run's environment may be reused, from
    /// `KINDLING_REUSE` (default `auto`).
    pub reuse: ReusePolicy,
    /// The most verbose level captured into test logs, from `KINDLING_LOG`
    /// (default `info`).
    pub log_level: LogLevel,
    /// The directory holding suite state, from `KINDLING_STATE_DIR`, if set.
    pub state_dir: Option<PathBuf>,
    /// What outlives the run, from `KINDLING_KEEP` (default `always`).
    pub keep: KeepPolicy,
    /// `KINDLING_*` names that are set but mean nothing to kindling.
    pub unknown_variables: Vec<String>,
}

/// A `KINDLING_*` variable holds a value kindling does not accept.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid value `{value}` in {variable}: expected {expected}")]
pub struct ConfigError {
    /// The variable's name.
    pub variable: String,
    /// The value it holds, as given.
    pub value: String,
    /// What it accepts, e.g. ``one of `auto`, `never` ``.
    pub expected: String,
}

impl EnvConfig {
    /// Reads the process environment, knowing the harness's variables and
    /// `extra` ones (a library's).
    pub fn from_env(extra: &[Variable]) -> Result<Self, ConfigError> {
        Self::from_vars(
            std::env::vars_os().filter_map(|(key, value)| {
                Some((key.into_string().ok()?, value.into_string().ok()?))
            }),
            extra,
        )
    }

    /// Parses `(name, value)` pairs; names not starting with `KINDLING_`
    /// are ignored. A value of one of `extra` with choices is checked.
    pub fn from_vars(
        vars: impl IntoIterator<Item = (String, String)>,
        extra: &[Variable],
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
            config.read_variable(key, &value, extra)?;
        }
        Ok(config)
    }

    /// Takes one `KINDLING_*` variable in: the harness's are parsed into
    /// their field, a library's checked, an unknown one noted.
    fn read_variable(
        &mut self,
        key: String,
        value: &str,
        extra: &[Variable],
    ) -> Result<(), ConfigError> {
        match key.as_str() {
            "KINDLING_TEST_TIMEOUT" => self.test_timeout = Some(parse_duration(&key, value)?),
            "KINDLING_SETUP_TIMEOUT" => self.setup_timeout = Some(parse_duration(&key, value)?),
            "KINDLING_JUNIT" => self.junit_path = Some(parse_path(&key, value)?),
            "KINDLING_STATE_DIR" => self.state_dir = Some(parse_path(&key, value)?),
            "KINDLING_PROGRESS" => self.progress = parse_choice(&key, value, PROGRESS_CHOICES)?,
            "KINDLING_REUSE" => self.reuse = parse_choice(&key, value, REUSE_CHOICES)?,
            "KINDLING_KEEP" => self.keep = parse_choice(&key, value, KEEP_CHOICES)?,
            "KINDLING_LOG" => self.log_level = parse_choice(&key, value, LOG_CHOICES)?,
            _ if is_known(&key) => {}
            _ => match extra.iter().find(|variable| variable.name == key) {
                Some(variable) => check_library_variable(variable, &key, value)?,
                None => self.unknown_variables.push(key),
            },
        }
        Ok(())
    }

    /// One warning line per unknown variable, naming the known ones
    /// (the harness's and `extra`).
    pub fn warnings(&self, extra: &[Variable]) -> Vec<String> {
        self.unknown_variables
            .iter()
            .map(|name| {
                let known: Vec<&str> = KNOWN_VARIABLES
                    .iter()
                    .chain(extra)
                    .map(|variable| variable.name)
                    .collect();
                format!(
                    "warning: {name} is not a kindling variable this suite knows, and is ignored (known: {})",
                    known.join(", ")
                )
            })
            .collect()
    }
}

/// `KINDLING_PROGRESS`'s values.
const PROGRESS_CHOICES: &[(&str, ProgressMode)] = &[
    ("auto", ProgressMode::Auto),
    ("bar", ProgressMode::Bar),
    ("plain", ProgressMode::Plain),
    ("none", ProgressMode::None),
];

/// `KINDLING_REUSE`'s values.
const REUSE_CHOICES: &[(&str, ReusePolicy)] =
    &[("auto", ReusePolicy::Auto), ("never", ReusePolicy::Never)];

/// `KINDLING_KEEP`'s values.
const KEEP_CHOICES: &[(&str, KeepPolicy)] = &[
    ("always", KeepPolicy::Always),
    ("on-failure", KeepPolicy::OnFailure),
    ("never", KeepPolicy::Never),
];

/// `KINDLING_LOG`'s values.
const LOG_CHOICES: &[(&str, LogLevel)] = &[
    ("error", LogLevel::Error),
    ("warn", LogLevel::Warn),
    ("info", LogLevel::Info),
    ("debug", LogLevel::Debug),
    ("trace", LogLevel::Trace),
];

/// Checks the value of a library's variable against its choices, if it
/// has any, and its check, if it has one.
fn check_library_variable(variable: &Variable, key: &str, value: &str) -> Result<(), ConfigError> {
    if !variable.choices.is_empty() {
        let choices: Vec<(&str, ())> = variable
            .choices
            .iter()
            .map(|choice| (*choice, ()))
            .collect();
        parse_choice(key, value, &choices)?;
    }
    if let Some(check) = variable.check {
        check(value).map_err(|expected| ConfigError {
            variable: key.to_owned(),
            value: value.to_owned(),
            expected,
        })?;
    }
    Ok(())
}

fn is_known(name: &str) -> bool {
    KNOWN_VARIABLES.iter().any(|known| known.name == name)
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
            &[],
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
    fn a_librarys_variables_are_known_and_their_choices_checked() {
        const EXTRA: &[Variable] = &[
            Variable {
                name: "KINDLING_FLAVOUR",
                description: "a library's variable with choices",
                choices: &["sweet", "sour"],
                check: None,
            },
            Variable {
                name: "KINDLING_ANYTHING",
                description: "a library's variable taking any value",
                choices: &[],
                check: None,
            },
        ];
        let pairs = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(key, value)| (key.to_string(), value.to_string()))
                .collect()
        };
        let config = EnvConfig::from_vars(
            pairs(&[("KINDLING_FLAVOUR", "Sour"), ("KINDLING_ANYTHING", "x")]),
            EXTRA,
        )
        .unwrap();
        assert!(config.unknown_variables.is_empty(), "{config:?}");
        let error =
            EnvConfig::from_vars(pairs(&[("KINDLING_FLAVOUR", "bitter")]), EXTRA).unwrap_err();
        assert_eq!(error.variable, "KINDLING_FLAVOUR");
        assert!(error.expected.contains("`sweet`, `sour`"), "{error}");
        let unknown = EnvConfig::from_vars(pairs(&[("KINDLING_FLAVOR", "sweet")]), EXTRA).unwrap();
        let warnings = unknown.warnings(EXTRA);
        assert!(warnings[0].contains("KINDLING_FLAVOUR"), "{warnings:?}");
        assert!(warnings[0].contains("KINDLING_KEEP"), "{warnings:?}");
    }

    #[test]
    fn unknown_variable_is_a_warning_naming_it() {
        let config = parse(&[("KINDLING_TEST_TIMOUT", "5s")]).unwrap();
        assert_eq!(
            config.unknown_variables,
            vec!["KINDLING_TEST_TIMOUT".replace("TIMEOUT", "TIMOUT")]
        );
        let warnings = config.warnings(&[]);
        assert!(warnings[0].contains("KINDLING_TEST_TIMOUT"));
        assert!(warnings[0].contains("KINDLING_TEST_TIMEOUT"));
    }
}
