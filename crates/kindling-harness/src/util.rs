//! Small helpers every layer of the harness uses; this module imports no
//! other module of the crate.

use std::fs::File;
use std::future::Future;
use std::io::Write as _;
use std::path::Path;
use std::pin::Pin;
use std::time::Duration;
/// A boxed future that can move between threads: what setups, hooks and
/// test bodies return.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;
/// The message a panicking task left, or why it ended otherwise.
pub fn panic_message(error: tokio::task::JoinError) -> String {
    match error.try_into_panic() {
        Ok(payload) => payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_else(|| "a non-string payload".to_owned()),
        Err(error) => error.to_string(),
    }
}

/// Writes `bytes` to `path` so a reader sees the old or the new content, never a mix.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let temporary = path.with_extension(format!("tmp-{}", std::process::id()));
    let mut file = File::create(&temporary)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&temporary, path)
}
/// A duration as seconds with two decimals, as reports print it.
pub(crate) fn seconds(duration: Duration) -> String {
    format!("{:.2}s", duration.as_secs_f64())
}

/// The first 8 letters and digits of a run id, lower case: the run's part
/// of a Kubernetes object name.
pub fn run_name_part(run_id: &str) -> String {
    run_id
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(8)
        .collect::<String>()
        .to_ascii_lowercase()
}

/// `text` lower case with every character other than a letter or digit
/// made `-`, at most `limit` characters: usable in a Kubernetes object name
/// once its ends are trimmed of `-`.
pub fn name_part(text: &str, limit: usize) -> String {
    text.to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(limit)
        .collect()
}
