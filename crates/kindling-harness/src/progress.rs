//! Setup progress on stderr, never stdout (stdout belongs to the test list
//! and libtest's output): a spinner on a terminal, timestamped lines
//! otherwise, so CI logs read top to bottom.

use std::io::IsTerminal as _;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use crate::config::ProgressMode;

pub(crate) struct Progress {
    suite: String,
    bar: Option<Mutex<Option<ProgressBar>>>,
    quiet: bool,
}

impl Progress {
    pub(crate) fn new(suite: &str, mode: ProgressMode) -> Self {
        let use_bar = match mode {
            ProgressMode::Auto => std::io::stderr().is_terminal(),
            ProgressMode::Bar => true,
            ProgressMode::Plain | ProgressMode::None => false,
        };
        Progress {
            suite: suite.to_owned(),
            bar: use_bar.then(|| Mutex::new(None)),
            quiet: mode == ProgressMode::None,
        }
    }

    /// A state change that stays on screen.
    pub(crate) fn line(&self, message: &str) {
        if self.quiet {
            return;
        }
        let message = crate::redaction::redact(message);
        let text = format!("setup `{}`: {message}", self.suite);
        match &self.bar {
            Some(slot) => match slot.lock().expect("progress bar").as_ref() {
                Some(bar) => bar.println(format!("kindling: {text}")),
                None => eprintln!("kindling: {text}"),
            },
            None => eprintln!(
                "[kindling {}] {text}",
                chrono::Local::now().format("%Y-%m-%dT%H:%M:%S%.3f%:z")
            ),
        }
    }

    /// Something is running: a spinner on a terminal, a line otherwise.
    pub(crate) fn working(&self, message: &str) {
        if self.quiet {
            return;
        }
        match &self.bar {
            Some(slot) => {
                let mut slot = slot.lock().expect("progress bar");
                let bar = slot.get_or_insert_with(|| {
                    let bar = ProgressBar::new_spinner();
                    bar.set_style(
                        ProgressStyle::with_template("{spinner} kindling: {msg} ({elapsed})")
                            .expect("static template"),
                    );
                    bar.enable_steady_tick(Duration::from_millis(120));
                    bar
                });
                bar.set_message(format!(
                    "setup `{}`: {}",
                    self.suite,
                    crate::redaction::redact(message)
                ));
            }
            None => self.line(message),
        }
    }

    /// Clears the spinner, if any.
    pub(crate) fn done(&self) {
        if let Some(slot) = &self.bar
            && let Some(bar) = slot.lock().expect("progress bar").take()
        {
            bar.finish_and_clear();
        }
    }
}
