//! One redactor for every text the harness writes or returns: JUnit
//! (failures and captured output), the state file's errors, stderr
//! (progress, errors, `--nocapture` lines), a failed test's message and
//! everything under its artifacts folder.
//!
//! The harness knows no Secrets: whoever learns a secret value (kindling,
//! from the Secrets of an environment's namespaces, the tokens it mints and
//! registry credentials) hands it to the process-wide registry with
//! [`learn`], and may add a [`Source`](add_source) the harness
//! [refreshes](refresh) before it writes a failure, so values another
//! process made are known too.
//!
//! Each value is replaced in every form it commonly takes in a log: as it
//! is; trimmed of surrounding whitespace; base64 (standard and URL-safe,
//! with and without padding, and the part of it that stays the same when
//! the value is encoded inside a longer text, as in a Basic authorization
//! header of `user:value`); URL-encoded (strict, with `+` for spaces, and as
//! Go escapes user info and path segments); and JSON-escaped (also with
//! `<`, `>` and `&` escaped, as Go does). [`Redactions::add_basic_auth`]
//! adds `base64(user:password)` for a pair known to go together. Where
//! forms of several values overlap, the whole overlapping stretch is
//! replaced.
//!
//! Values shorter than [`SHORTEST`] bytes (4) are not redacted: they would
//! mangle ordinary words everywhere.
//!
//! Every form of every value is one pattern of one Aho-Corasick automaton,
//! so redacting a text takes one pass over it whatever the number of
//! values; files are redacted as streams, never read whole.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::path::Path;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};

use crate::util::{BoxFuture, open_private};

/// Values shorter than this many bytes are not redacted.
pub const SHORTEST: usize = 4;

/// How long [`refresh`] waits for its sources.
pub const REFRESH_TIMEOUT: Duration = Duration::from_secs(10);

/// Base64 shorter than this is not searched for inside longer base64 text:
/// a few characters of a value's encoding are too likely to occur by chance.
const SHORTEST_CORE: usize = 8;

/// How much of a stream is redacted at a time.
const CHUNK: usize = 1 << 20;

/// Secret values, each with the forms it is searched in and a label that
/// says what it is (`Secret db key password`), never the value itself.
#[derive(Clone, Default)]
pub struct Redactions {
    /// Each form → the label of what it is a form of.
    patterns: BTreeMap<Vec<u8>, String>,
}

impl fmt::Debug for Redactions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Redactions({} forms)", self.patterns.len())
    }
}

impl Redactions {
    /// No values.
    pub fn new() -> Self {
        Redactions::default()
    }

    /// `value` and its encoded forms, shown as `<redacted: {label}>` (a
    /// form other than the value itself names itself after the label).
    /// Values shorter than [`SHORTEST`] bytes are ignored.
    pub fn add(&mut self, value: impl AsRef<[u8]>, label: &str) -> &mut Self {
        let value = value.as_ref();
        let trimmed = value.trim_ascii();
        if trimmed.len() < SHORTEST {
            return self;
        }
        self.add_forms(value, label);
        if trimmed.len() != value.len() {
            self.add_forms(trimmed, label);
        }
        self
    }

    /// `base64(username:password)` (the credentials of a Basic
    /// authorization header) and `username:password` in their forms, for a
    /// pair known to go together. The password alone is not added: add it
    /// with [`Redactions::add`].
    pub fn add_basic_auth(&mut self, username: &str, password: &str, label: &str) -> &mut Self {
        if password.len() >= SHORTEST {
            self.add_forms(
                format!("{username}:{password}").as_bytes(),
                &format!("{label}, as user:password"),
            );
        }
        self
    }

    /// Adds every value of `other`.
    pub fn extend(&mut self, other: Redactions) {
        for (form, label) in other.patterns {
            self.patterns.entry(form).or_insert(label);
        }
    }

    /// True when nothing would be redacted.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// A redactor of these values.
    pub fn redactor(&self) -> Redactor {
        Redactor::of(self)
    }

    fn insert(&mut self, form: Vec<u8>, label: String) {
        self.patterns.entry(form).or_insert(label);
    }

    fn add_forms(&mut self, value: &[u8], label: &str) {
        if value.len() < SHORTEST {
            return;
        }
        self.insert(value.to_vec(), label.to_owned());
        let base64 = format!("{label}, base64");
        for engine in [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD] {
            self.insert(engine.encode(value).into_bytes(), base64.clone());
        }
        // Inside a longer encoded text the value starts 0, 1 or 2 bytes into
        // a 3-byte group; from its first whole group to its last, its
        // encoding is the same whatever surrounds it.
        let inside = format!("{label}, inside base64");
        for first in 0..3 {
            let Some(rest) = value.get(first..) else {
                continue;
            };
            let whole = &rest[..rest.len() / 3 * 3];
            if whole.len() / 3 * 4 >= SHORTEST_CORE {
                for engine in [&STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
                    self.insert(engine.encode(whole).into_bytes(), inside.clone());
                }
            }
        }
        let url = format!("{label}, URL-encoded");
        for kept in [UrlKept::Unreserved, UrlKept::UserInfo, UrlKept::PathSegment] {
            let encoded = url_encode(value, kept, false);
            if encoded.as_bytes() != value {
                self.insert(encoded.into_bytes(), url.clone());
            }
        }
        if value.contains(&b' ') {
            self.insert(
                url_encode(value, UrlKept::Unreserved, true).into_bytes(),
                url.clone(),
            );
        }
        if let Ok(text) = std::str::from_utf8(value) {
            let json = serde_json::to_string(text).expect("a string serialises");
            let json = &json[1..json.len() - 1];
            let label = format!("{label}, JSON-escaped");
            if json != text {
                self.insert(json.as_bytes().to_vec(), label.clone());
            }
            let html_safe = json
                .replace('<', "\\u003c")
                .replace('>', "\\u003e")
                .replace('&', "\\u0026")
                .replace('\u{2028}', "\\u2028")
                .replace('\u{2029}', "\\u2029");
            if html_safe != json {
                self.insert(html_safe.into_bytes(), label);
            }
        }
    }
}

/// Which characters URL encoding leaves as they are.
#[derive(Clone, Copy)]
enum UrlKept {
    /// Letters, digits and `-._~` (RFC 3986's unreserved characters).
    Unreserved,
    /// Those and `$&+,;=`, as Go escapes a URL's user info.
    UserInfo,
    /// Those and `$&+,;=:@`, as Go escapes a path segment.
    PathSegment,
}

fn url_encode(value: &[u8], kept: UrlKept, plus_for_space: bool) -> String {
    let mut text = String::with_capacity(value.len() * 3);
    for &byte in value {
        let keep = byte.is_ascii_alphanumeric()
            || b"-._~".contains(&byte)
            || match kept {
                UrlKept::Unreserved => false,
                UrlKept::UserInfo => b"$&+,;=".contains(&byte),
                UrlKept::PathSegment => b"$&+,;=:@".contains(&byte),
            };
        if keep {
            text.push(char::from(byte));
        } else if byte == b' ' && plus_for_space {
            text.push('+');
        } else {
            text.push_str(&format!("%{byte:02X}"));
        }
    }
    text
}

/// Replaces every form of a set of values in texts, bytes, streams and
/// files, in one pass over each.
pub struct Redactor {
    automaton: Option<AhoCorasick>,
    /// The label of each pattern, by pattern index.
    labels: Vec<String>,
    /// The longest pattern's length, in bytes.
    longest: usize,
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Redactor({} forms)", self.labels.len())
    }
}

/// A stretch of text to replace, and the labels of the forms found in it.
struct Span {
    start: usize,
    end: usize,
    labels: Vec<usize>,
}

impl Redactor {
    fn of(redactions: &Redactions) -> Self {
        let (patterns, labels): (Vec<&Vec<u8>>, Vec<String>) = redactions
            .patterns
            .iter()
            .map(|(form, label)| (form, label.clone()))
            .unzip();
        let automaton = (!patterns.is_empty()).then(|| {
            AhoCorasickBuilder::new()
                .match_kind(MatchKind::Standard)
                .build(&patterns)
                .expect("patterns of at most a few MB build an automaton")
        });
        Redactor {
            automaton,
            longest: patterns.iter().map(|form| form.len()).max().unwrap_or(0),
            labels,
        }
    }

    /// A redactor that changes nothing.
    pub fn empty() -> Self {
        Redactor::of(&Redactions::new())
    }

    /// True when it changes nothing.
    pub fn is_empty(&self) -> bool {
        self.automaton.is_none()
    }

    /// `text` with every form of every value replaced.
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        match self.redact_bytes(text.as_bytes()) {
            Cow::Borrowed(_) => Cow::Borrowed(text),
            // A value that is not UTF-8 may have matched inside a character.
            Cow::Owned(bytes) => Cow::Owned(
                String::from_utf8(bytes)
                    .unwrap_or_else(|error| String::from_utf8_lossy(error.as_bytes()).into_owned()),
            ),
        }
    }

    /// [`Redactor::redact`] of an owned text, reusing it when nothing changes.
    pub fn redact_owned(&self, text: String) -> String {
        match self.redact(&text) {
            Cow::Borrowed(_) => text,
            Cow::Owned(redacted) => redacted,
        }
    }

    /// `bytes` with every form of every value replaced.
    pub fn redact_bytes<'a>(&self, bytes: &'a [u8]) -> Cow<'a, [u8]> {
        let spans = self.spans(bytes);
        if spans.is_empty() {
            return Cow::Borrowed(bytes);
        }
        let mut out = Vec::with_capacity(bytes.len());
        self.replace(bytes, &spans, &mut out);
        Cow::Owned(out)
    }

    /// Copies `reader` to `writer` with every form of every value replaced,
    /// a chunk at a time; returns how many stretches it replaced.
    pub fn redact_stream(
        &self,
        mut reader: impl Read,
        mut writer: impl Write,
    ) -> std::io::Result<usize> {
        let mut replaced = 0;
        let mut buffer: Vec<u8> = Vec::with_capacity(CHUNK + self.longest);
        let mut ended = false;
        while !ended {
            let before = buffer.len();
            buffer.resize(before + CHUNK, 0);
            let mut filled = before;
            while filled < buffer.len() {
                match reader.read(&mut buffer[filled..]) {
                    Ok(0) => {
                        ended = true;
                        break;
                    }
                    Ok(read) => filled += read,
                    Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(error) => return Err(error),
                }
            }
            buffer.truncate(filled);
            let spans = self.spans(&buffer);
            // A form not found yet ends past the buffer, so starts within
            // its last `longest - 1` bytes: everything before is final,
            // unless a stretch found there reaches into them.
            let mut cut = if ended {
                buffer.len()
            } else {
                buffer.len().saturating_sub(self.longest.saturating_sub(1))
            };
            if let Some(crossing) = spans.iter().find(|span| span.start < cut && span.end > cut) {
                cut = if crossing.start > 0 {
                    crossing.start
                } else {
                    crossing.end
                };
            }
            let done: Vec<Span> = spans.into_iter().filter(|span| span.end <= cut).collect();
            replaced += done.len();
            let mut out = Vec::with_capacity(cut);
            self.replace(&buffer[..cut], &done, &mut out);
            writer.write_all(&out)?;
            buffer.drain(..cut);
        }
        writer.flush()?;
        Ok(replaced)
    }

    /// Redacts the file at `path` in place (through a new private file
    /// renamed over it); true if anything was replaced. A symbolic link
    /// is left alone.
    pub fn redact_file(&self, path: &Path) -> std::io::Result<bool> {
        if self.is_empty() || !std::fs::symlink_metadata(path)?.is_file() {
            return Ok(false);
        }
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let temporary = path.with_file_name(format!(
            ".{name}.redacting-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        let source = std::fs::File::open(path)?;
        let target = open_private(&temporary, OpenOptions::new().write(true).create_new(true))?;
        let result = self.redact_stream(
            std::io::BufReader::new(source),
            std::io::BufWriter::new(target),
        );
        match result {
            Ok(0) => {
                std::fs::remove_file(&temporary)?;
                Ok(false)
            }
            Ok(_) => {
                std::fs::rename(&temporary, path)?;
                Ok(true)
            }
            Err(error) => {
                let _ = std::fs::remove_file(&temporary);
                Err(error)
            }
        }
    }

    /// Redacts every file under `dir` (symbolic links are not followed);
    /// returns the files it could not redact, with why.
    pub fn redact_tree(&self, dir: &Path) -> Vec<(std::path::PathBuf, std::io::Error)> {
        let mut failed = Vec::new();
        if self.is_empty() {
            return failed;
        }
        let mut pending = vec![dir.to_owned()];
        while let Some(folder) = pending.pop() {
            let entries = match std::fs::read_dir(&folder) {
                Ok(entries) => entries,
                Err(error) => {
                    failed.push((folder, error));
                    continue;
                }
            };
            for entry in entries.flatten() {
                let path = entry.path();
                match entry.file_type() {
                    Ok(kind) if kind.is_dir() => pending.push(path),
                    Ok(kind) if kind.is_file() => {
                        if let Err(error) = self.redact_file(&path) {
                            failed.push((path, error));
                        }
                    }
                    _ => {}
                }
            }
        }
        failed
    }

    /// Every stretch of `bytes` covered by a form, overlapping ones merged,
    /// in order; each with the labels of the forms found in it that no
    /// other form found there contains (a password inside the Basic header
    /// it is part of is not named again).
    fn spans(&self, bytes: &[u8]) -> Vec<Span> {
        let Some(automaton) = &self.automaton else {
            return Vec::new();
        };
        let mut found: Vec<(usize, std::cmp::Reverse<usize>, usize)> = automaton
            .find_overlapping_iter(bytes)
            .map(|found| {
                (
                    found.start(),
                    std::cmp::Reverse(found.end()),
                    found.pattern().as_usize(),
                )
            })
            .collect();
        // By start, the longest first: a form is inside an earlier one
        // exactly when it ends no later than the stretch so far.
        found.sort_unstable();
        let mut spans: Vec<Span> = Vec::new();
        for (start, std::cmp::Reverse(end), pattern) in found {
            match spans.last_mut() {
                Some(last) if start < last.end => {
                    if end > last.end {
                        last.end = end;
                        last.labels.push(pattern);
                    }
                }
                _ => spans.push(Span {
                    start,
                    end,
                    labels: vec![pattern],
                }),
            }
        }
        spans
    }

    fn replace(&self, bytes: &[u8], spans: &[Span], out: &mut Vec<u8>) {
        let mut at = 0;
        for span in spans {
            out.extend_from_slice(&bytes[at..span.start]);
            let mut labels: Vec<&str> = Vec::new();
            for pattern in &span.labels {
                let label = self.labels[*pattern].as_str();
                if !labels.contains(&label) {
                    labels.push(label);
                }
            }
            out.extend_from_slice(format!("<redacted: {}>", labels.join("; ")).as_bytes());
            at = span.end;
        }
        out.extend_from_slice(&bytes[at..]);
    }
}

/// What this process has learned, and the redactor made of it (`None`
/// once something new was learned).
struct Registry {
    learned: Redactions,
    current: Option<Arc<Redactor>>,
}

static REGISTRY: LazyLock<Mutex<Registry>> = LazyLock::new(|| {
    Mutex::new(Registry {
        learned: Redactions::new(),
        current: None,
    })
});

/// Something that learns values when asked ([`refresh`]): kindling lists
/// the Secrets of a namespace this process uses.
pub type Source = Arc<dyn Fn() -> BoxFuture<()> + Send + Sync>;

static SOURCES: LazyLock<Mutex<BTreeMap<String, Source>>> = LazyLock::new(Default::default);

/// Adds `redactions` to what this process redacts everywhere.
pub fn learn(redactions: Redactions) {
    if redactions.is_empty() {
        return;
    }
    let mut registry = REGISTRY.lock().expect("redaction registry");
    let before = registry.learned.patterns.len();
    registry.learned.extend(redactions);
    if registry.learned.patterns.len() != before {
        registry.current = None;
    }
}

/// [`learn`] of one value ([`Redactions::add`]).
pub fn learn_value(value: impl AsRef<[u8]>, label: &str) {
    let mut redactions = Redactions::new();
    redactions.add(value, label);
    learn(redactions);
}

/// The redactor of everything this process has learned.
pub fn redactor() -> Arc<Redactor> {
    let mut registry = REGISTRY.lock().expect("redaction registry");
    if let Some(current) = &registry.current {
        return current.clone();
    }
    let current = Arc::new(registry.learned.redactor());
    registry.current = Some(current.clone());
    current
}

/// `text` with every value this process has learned replaced.
pub fn redact(text: &str) -> Cow<'_, str> {
    let redactor = redactor();
    match redactor.redact(text) {
        Cow::Borrowed(_) => Cow::Borrowed(text),
        Cow::Owned(redacted) => Cow::Owned(redacted),
    }
}

/// [`redact`] of an owned text.
pub fn redact_owned(text: String) -> String {
    redactor().redact_owned(text)
}

/// Registers `source` under `key` (a second one under the same key is
/// ignored): [`refresh`] calls it.
pub fn add_source(key: &str, source: impl Fn() -> BoxFuture<()> + Send + Sync + 'static) {
    SOURCES
        .lock()
        .expect("redaction sources")
        .entry(key.to_owned())
        .or_insert_with(|| Arc::new(source));
}

/// Calls every source at once, for at most [`REFRESH_TIMEOUT`]: what they
/// learn by then is redacted from what is written next.
pub async fn refresh() {
    let sources: Vec<Source> = SOURCES
        .lock()
        .expect("redaction sources")
        .values()
        .cloned()
        .collect();
    if sources.is_empty() {
        return;
    }
    let mut tasks = tokio::task::JoinSet::new();
    for source in sources {
        tasks.spawn(source());
    }
    let _ = tokio::time::timeout(REFRESH_TIMEOUT, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redactor(values: &[(&str, &str)]) -> Redactor {
        let mut redactions = Redactions::new();
        for (value, label) in values {
            redactions.add(value, label);
        }
        redactions.redactor()
    }

    #[test]
    fn a_value_is_replaced_by_its_label() {
        let redactor = redactor(&[("s3cr3t-Pa55", "Secret db key password")]);
        assert_eq!(
            redactor.redact("connecting as app with s3cr3t-Pa55 to db"),
            "connecting as app with <redacted: Secret db key password> to db"
        );
        assert!(matches!(
            redactor.redact("nothing to hide"),
            Cow::Borrowed("nothing to hide")
        ));
    }

    #[test]
    fn each_encoded_form_is_replaced() {
        let value = "p@ss/w0rd \"q\" & <more>";
        let redactor = redactor(&[(value, "pw")]);
        let strict: String = value
            .bytes()
            .map(|byte| {
                if byte.is_ascii_alphanumeric() {
                    char::from(byte).to_string()
                } else {
                    format!("%{byte:02X}")
                }
            })
            .collect();
        let forms = [
            STANDARD.encode(value),
            STANDARD_NO_PAD.encode(value),
            URL_SAFE.encode(value),
            URL_SAFE_NO_PAD.encode(value),
            strict.clone(),
            strict.replace("%20", "+"),
            // Go's url.UserPassword: `&` stays, the rest is escaped.
            strict.replace("%26", "&"),
            serde_json::to_string(value)
                .unwrap()
                .trim_matches('"')
                .to_owned(),
            // Go's encoding/json.
            r#"p@ss/w0rd \"q\" \u0026 \u003cmore\u003e"#.to_owned(),
        ];
        for form in forms {
            let text = format!("before {form} after");
            let redacted = redactor.redact(&text);
            assert!(
                redacted.starts_with("before <redacted: pw") && redacted.ends_with("> after"),
                "{form}: {redacted}"
            );
        }
        assert!(
            redactor
                .redact(&format!("x{value}\n"))
                .contains("<redacted: pw>")
        );
    }

    #[test]
    fn a_value_inside_longer_base64_is_replaced() {
        let mut redactions = Redactions::new();
        redactions.add("Zq81xPw0aB7k", "password");
        let redactor = redactions.redactor();
        for user in ["a", "ab", "abc", "admin"] {
            let header = format!(
                "Authorization: Basic {}",
                STANDARD.encode(format!("{user}:Zq81xPw0aB7k"))
            );
            let redacted = redactor.redact(&header);
            // Left: the user's part and at most the value's first and last
            // two bytes, mixed into groups with the text around them.
            let rest = redacted.strip_prefix("Authorization: Basic ").unwrap();
            let (before, after) = rest
                .split_once("<redacted: password, ")
                .unwrap_or_else(|| panic!("{user}: {redacted}"));
            let after = after.split_once('>').unwrap().1;
            assert!(before.len() <= 8 && after.len() <= 4, "{user}: {redacted}");
        }
        // Known as a pair, the whole header value goes.
        redactions.add_basic_auth("admin", "Zq81xPw0aB7k", "Secret basic");
        let header = format!(
            "Authorization: Basic {}",
            STANDARD.encode("admin:Zq81xPw0aB7k")
        );
        assert_eq!(
            redactions.redactor().redact(&header),
            "Authorization: Basic <redacted: Secret basic, as user:password, base64>"
        );
    }

    #[test]
    fn overlapping_values_are_replaced_as_one_stretch() {
        let redactor = redactor(&[("abcdef", "first"), ("defghi", "second"), ("cd", "short")]);
        assert_eq!(
            redactor.redact("xx abcdefghi yy"),
            "xx <redacted: first; second> yy"
        );
        assert_eq!(
            redactor.redact("a value: bcdefg"),
            "a value: bcdefg",
            "parts of values are not values"
        );
        let nested = self::redactor(&[("token-abc-123", "long"), ("abc-", "inner")]);
        assert_eq!(nested.redact("t=token-abc-123;"), "t=<redacted: long>;");
    }

    #[test]
    fn short_values_are_left_alone() {
        let redactor = redactor(&[("abc", "short"), ("", "empty"), ("  ab \n", "padded")]);
        assert!(redactor.is_empty());
        assert_eq!(redactor.redact("abc ab"), "abc ab");
    }

    #[test]
    fn streams_are_redacted_also_across_chunks() {
        let value = "Zq81xPw0aB7kLm22";
        let redactor = redactor(&[(value, "pw")]);
        let mut text = String::new();
        // Values at every offset around the chunk boundaries.
        while text.len() < 3 * CHUNK {
            text.push_str("line with ");
            text.push_str(value);
            text.push_str(" in it\n");
            text.push_str(&"-".repeat(text.len() % 17));
        }
        let mut out = Vec::new();
        let replaced = redactor.redact_stream(text.as_bytes(), &mut out).unwrap();
        let out = String::from_utf8(out).unwrap();
        assert!(!out.contains(value));
        assert_eq!(replaced, text.matches(value).count());
        assert_eq!(out, redactor.redact(&text));
    }

    #[test]
    fn ten_megabytes_take_one_pass_whatever_the_number_of_values() {
        let redactor_of = |count: usize| {
            let mut redactions = Redactions::new();
            for index in 0..count {
                redactions.add(
                    format!("secret-value-{index:04}-{}", "x".repeat(index % 40)),
                    "v",
                );
            }
            redactions.redactor()
        };
        let (one, thousand) = (redactor_of(1), redactor_of(1000));
        let line = "2025-01-01T00:00:00Z INFO request served in 3ms from 10.0.0.1 to /api/v1/items?page=2\n";
        let mut text = line.repeat(10 * 1024 * 1024 / line.len());
        text.push_str("secret-value-0007-xxxxxxx\n");
        // The quickest of three, against a machine other work slows down.
        let time = |redactor: &Redactor| {
            (0..3)
                .map(|_| {
                    let started = std::time::Instant::now();
                    let redacted = redactor.redact(&text);
                    (started.elapsed(), redacted.len())
                })
                .min()
                .unwrap()
        };
        let (alone, _) = time(&one);
        let (all, _) = time(&thousand);
        let redacted = thousand.redact(&text);
        assert!(
            redacted.ends_with("<redacted: v>\n"),
            "{}",
            &redacted[redacted.len() - 60..]
        );
        // A loop over the values would take about a thousand times as long.
        assert!(
            all < alone * 10 + Duration::from_millis(500),
            "1000 values took {all:?}, one value {alone:?}"
        );
        assert!(all < Duration::from_secs(20), "10 MB took {all:?}");
    }

    #[test]
    fn files_and_trees_are_redacted_in_place_and_private() {
        use crate::util::tests::mode;
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("logs/deep")).unwrap();
        let leaky = root.path().join("logs/deep/app.log");
        std::fs::write(&leaky, "password=s3cr3t-Pa55\n").unwrap();
        let clean = root.path().join("clean.txt");
        std::fs::write(&clean, "nothing\n").unwrap();
        let outside = root.path().join("outside");
        std::fs::write(&outside, "s3cr3t-Pa55").unwrap();
        std::os::unix::fs::symlink(&outside, root.path().join("logs/link")).unwrap();
        let redactor = redactor(&[("s3cr3t-Pa55", "pw")]);
        assert!(redactor.redact_tree(&root.path().join("logs")).is_empty());
        assert_eq!(
            std::fs::read_to_string(&leaky).unwrap(),
            "password=<redacted: pw>\n"
        );
        assert_eq!(mode(&leaky), 0o600);
        assert_eq!(std::fs::read_to_string(&outside).unwrap(), "s3cr3t-Pa55");
        assert!(!redactor.redact_file(&clean).unwrap());
        let left: Vec<_> = std::fs::read_dir(root.path().join("logs/deep"))
            .unwrap()
            .flatten()
            .map(|entry| entry.file_name())
            .collect();
        assert_eq!(left, ["app.log"], "no temporary file is left");
    }

    #[test]
    fn the_registry_redacts_what_was_learned_and_refreshes_its_sources() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        learn_value("registry-learned-1", "first");
        assert_eq!(redact("a registry-learned-1 b"), "a <redacted: first> b");
        add_source("test", || {
            Box::pin(async { learn_value("registry-learned-2", "second") })
        });
        assert_eq!(redact("registry-learned-2"), "registry-learned-2");
        runtime.block_on(refresh());
        assert_eq!(redact("registry-learned-2"), "<redacted: second>");
    }
}
