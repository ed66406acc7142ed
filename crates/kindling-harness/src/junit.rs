//! JUnit reports in the shape nextest writes (through quick-junit, the
//! crate nextest uses), plus the `@setup:<suite>` testsuite with one case
//! per setup phase. Failures and captured output are redacted
//! ([`crate::redaction`]) as the report is made.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, FixedOffset};
use quick_junit::{NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestSuite};

use crate::error::first_line;
use crate::identity::RunIdentity;
use crate::redaction::redact;
use crate::state::PhaseRecord;

/// What the setup report (the `@setup:<suite>` JUnit suite) shows.
#[derive(Debug, Clone)]
pub(crate) struct SetupReport {
    pub run_id: String,
    pub reused_from: Option<String>,
    pub fingerprints: BTreeMap<String, String>,
    pub phases: Vec<PhaseRecord>,
    pub log: String,
    /// The setup's error, when it failed (also outside any phase).
    pub error: Option<String>,
    pub started: chrono::DateTime<chrono::FixedOffset>,
    pub elapsed: Duration,
}

/// The outcome of one test as the harness saw it.
#[derive(Debug, Clone)]
pub(crate) struct TestRecord {
    pub name: String,
    pub outcome: TestOutcome,
    pub started: DateTime<FixedOffset>,
    pub elapsed: Duration,
    pub log: String,
}

#[derive(Debug, Clone)]
pub(crate) enum TestOutcome {
    Passed,
    Failed { message: String },
    Skipped,
}

/// Writing a report failed.
#[derive(Debug, thiserror::Error)]
#[error("failed to write the JUnit report `{path}`")]
pub struct JunitError {
    /// The report file.
    pub path: PathBuf,
    /// The I/O error writing it.
    #[source]
    pub source: std::io::Error,
}

fn new_report(identity: &RunIdentity, started: DateTime<FixedOffset>, elapsed: Duration) -> Report {
    let mut report = Report::new("kindling-run");
    if let Ok(uuid) = uuid::Uuid::parse_str(&identity.run_id) {
        report.set_uuid(uuid);
    }
    report.set_timestamp(started);
    report.set_time(elapsed);
    report
}

/// The report of a whole `cargo test` run: the tests, then the setup.
pub(crate) fn run_report(
    identity: &RunIdentity,
    started: DateTime<FixedOffset>,
    elapsed: Duration,
    records: &[TestRecord],
    setup: Option<&SetupReport>,
) -> Report {
    let mut report = new_report(identity, started, elapsed);
    let mut suite = TestSuite::new(identity.binary_id.as_str());
    for record in records {
        let status = match &record.outcome {
            TestOutcome::Passed => TestCaseStatus::success(),
            TestOutcome::Failed { message } => failure(message),
            TestOutcome::Skipped => TestCaseStatus::skipped(),
        };
        let mut case = TestCase::new(record.name.as_str(), status);
        case.set_classname(identity.binary_id.as_str())
            .set_timestamp(record.started)
            .set_time(record.elapsed);
        if !record.log.is_empty() {
            case.set_system_out(&*redact(&record.log));
        }
        suite.add_test_case(case);
    }
    report.add_test_suite(suite);
    if let Some(setup) = setup {
        report.add_test_suite(setup_suite(identity, setup));
    }
    report
}

/// The report of the setup alone (under nextest, which reports the tests).
pub(crate) fn setup_report(identity: &RunIdentity, setup: &SetupReport) -> Report {
    let mut report = new_report(identity, setup.started, setup.elapsed);
    report.add_test_suite(setup_suite(identity, setup));
    report
}

fn failure(message: &str) -> TestCaseStatus {
    let message = redact(message);
    let message = &*message;
    let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
    status
        .set_type("test failure")
        .set_message(first_line(message))
        .set_description(message);
    status
}

fn setup_suite(identity: &RunIdentity, setup: &SetupReport) -> TestSuite {
    let name = format!("@setup:{}", identity.suite);
    let mut suite = TestSuite::new(name.as_str());
    suite.add_property(Property::new("run-id", setup.run_id.as_str()));
    if let Some(from) = &setup.reused_from {
        suite.add_property(Property::new("reused-from", from.as_str()));
    }
    for (key, value) in &setup.fingerprints {
        suite.add_property(Property::new(format!("fingerprint.{key}"), value.as_str()));
    }
    let mut any_phase_failed = false;
    for phase in &setup.phases {
        let status = match &phase.error {
            Some(error) => {
                any_phase_failed = true;
                failure(error)
            }
            None => TestCaseStatus::success(),
        };
        let mut case = TestCase::new(phase.name.as_str(), status);
        case.set_classname(name.as_str())
            .set_time(Duration::from_secs_f64(phase.seconds));
        suite.add_test_case(case);
    }
    if let Some(error) = setup.error.as_deref().filter(|_| !any_phase_failed) {
        let mut case = TestCase::new("setup", failure(error));
        case.set_classname(name.as_str()).set_time(setup.elapsed);
        suite.add_test_case(case);
    }
    if !setup.log.is_empty() {
        suite.set_system_out(&*redact(&setup.log));
    }
    suite
}

/// Writes `report` to `path`, `0600`; with `in_own_folder` (kindling's
/// `target/kindling/junit`, not a folder `KINDLING_JUNIT` chose) the folder
/// is made `0700` too.
pub(crate) fn write(report: &Report, path: &Path, in_own_folder: bool) -> Result<(), JunitError> {
    let text = report.to_string().expect("JUnit serialises to a string");
    let folder = path.parent().filter(|_| in_own_folder);
    folder
        .map_or(Ok(()), crate::util::create_private_dir_all)
        .and_then(|()| crate::util::write_atomically(path, text.as_bytes()))
        .map_err(|source| JunitError {
            path: path.to_owned(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::tests::{mode, plant_mode};

    #[test]
    fn learned_values_reach_no_report() {
        crate::redaction::learn_value("junit-leak-7f3a", "Secret db key password");
        let identity = RunIdentity {
            run_id: "r1".to_owned(),
            binary_id: "pkg::suite".to_owned(),
            suite: "suite".to_owned(),
            under_nextest: false,
            target_dir: Ok(PathBuf::from("/t")),
            package_dir: PathBuf::from("/p"),
        };
        let started = chrono::Local::now().fixed_offset();
        let record = TestRecord {
            name: "leaks".to_owned(),
            outcome: TestOutcome::Failed {
                message: "failed with junit-leak-7f3a\nsecond line".to_owned(),
            },
            started,
            elapsed: Duration::ZERO,
            log: "logged junit-leak-7f3a\n".to_owned(),
        };
        let setup = SetupReport {
            run_id: "r1".to_owned(),
            reused_from: None,
            fingerprints: BTreeMap::new(),
            phases: vec![PhaseRecord {
                name: "deploy".to_owned(),
                seconds: 1.0,
                error: Some("pod printed junit-leak-7f3a".to_owned()),
            }],
            log: "setup saw junit-leak-7f3a\n".to_owned(),
            error: Some("junit-leak-7f3a".to_owned()),
            started,
            elapsed: Duration::ZERO,
        };
        let text = run_report(&identity, started, Duration::ZERO, &[record], Some(&setup))
            .to_string()
            .unwrap();
        assert!(!text.contains("junit-leak-7f3a"), "{text}");
        assert_eq!(
            text.matches("redacted: Secret db key password").count(),
            // The failure's message and description, its log; the phase's
            // message and description, the setup's log.
            6,
            "{text}"
        );
    }

    #[test]
    fn reports_are_0600_and_kindlings_own_folder_0700_also_over_older_ones() {
        let root = tempfile::tempdir().unwrap();
        let report = Report::new("run");
        let own = root.path().join("kindling/junit");
        let path = own.join("suite.xml");
        std::fs::create_dir_all(&own).unwrap();
        plant_mode(&own, 0o755);
        std::fs::write(&path, "<old/>").unwrap();
        plant_mode(&path, 0o644);
        write(&report, &path, true).unwrap();
        assert_eq!(mode(&own), 0o700);
        assert_eq!(mode(&path), 0o600);
        assert!(
            std::fs::read_to_string(&path)
                .unwrap()
                .contains("<testsuites")
        );

        // A folder `KINDLING_JUNIT` names is the user's: only the file is private.
        let chosen = root.path().join("reports");
        std::fs::create_dir(&chosen).unwrap();
        plant_mode(&chosen, 0o755);
        write(&report, &chosen.join("junit.xml"), false).unwrap();
        assert_eq!(mode(&chosen), 0o755);
        assert_eq!(mode(&chosen.join("junit.xml")), 0o600);
        let created = root.path().join("new/junit.xml");
        write(&report, &created, false).unwrap();
        assert_eq!(mode(&root.path().join("new")), 0o700);
    }
}
