//! Helpers the fixture suites share: they leave traces the harness tests read.

use std::io::Write as _;
use std::time::Duration;

/// Appends this process's id to `$FIXTURE_COUNTER_DIR/<event>`, so a test
/// can count how often (and in which processes) something happened.
pub fn record(event: &str) {
    let Some(dir) = std::env::var_os("FIXTURE_COUNTER_DIR") else {
        return;
    };
    let path = std::path::Path::new(&dir).join(event);
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .unwrap_or_else(|error| panic!("cannot open {}: {error}", path.display()));
    writeln!(file, "{}", std::process::id()).expect("counter write");
}

/// Writes the current time (nanoseconds since the epoch) to
/// `$FIXTURE_BODY_STAMP`, for the process-overhead benchmark.
pub fn stamp_body_start() {
    if let Some(path) = std::env::var_os("FIXTURE_BODY_STAMP") {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock after 1970")
            .as_nanos();
        std::fs::write(path, now.to_string()).expect("stamp write");
    }
}

/// `$name` as milliseconds, if set.
pub fn millis_from_env(name: &str) -> Option<Duration> {
    let value = std::env::var(name).ok()?;
    Some(Duration::from_millis(
        value
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be milliseconds")),
    ))
}
