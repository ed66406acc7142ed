//! Error plumbing shared by the harness: a boxed error for test and setup
//! bodies, and rendering of a cause chain the way the CLI prints it.

use std::error::Error as StdError;
use std::fmt::Write as _;

/// The error a test or setup body returns. Anything that converts into it
/// (`std::io::Error`, `anyhow::Error`, a `String`, ...) works with `?`.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// What a test body returns.
pub type TestResult = Result<(), BoxError>;

/// Renders an error and its sources as `message` followed by a
/// `Caused by:` list, skipping sources whose text the parent already shows.
pub fn render_chain(error: &(dyn StdError + 'static)) -> String {
    let mut text = error.to_string();
    let mut shown = text.clone();
    let mut causes = Vec::new();
    let mut source = error.source();
    while let Some(cause) = source {
        let line = cause.to_string();
        if !shown.contains(&line) {
            causes.push(line.clone());
            shown.push_str(&line);
        }
        source = cause.source();
    }
    if !causes.is_empty() {
        text.push_str("\n\nCaused by:");
        for (index, cause) in causes.iter().enumerate() {
            let _ = write!(text, "\n  {index}: {cause}");
        }
    }
    text
}

/// The first line of a rendered error: JUnit's `message` attribute.
pub(crate) fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("failed to apply `Deployment/api`")]
    struct Outer(#[source] Inner);

    #[derive(Debug, thiserror::Error)]
    #[error("connection refused")]
    struct Inner;

    #[test]
    fn chain_lists_each_cause_once() {
        let text = render_chain(&Outer(Inner));
        assert_eq!(
            text,
            "failed to apply `Deployment/api`\n\nCaused by:\n  0: connection refused"
        );
    }

    #[test]
    fn error_without_source_is_its_message() {
        assert_eq!(render_chain(&Inner), "connection refused");
        assert_eq!(first_line("a\nb"), "a");
    }
}
