//! Per-test capture of `tracing` output.
//!
//! Each test body runs inside a root span that carries a capture id; every
//! event under that span (including in tasks spawned with
//! `.in_current_span()`) lands in that test's buffer, so concurrent tests
//! never mix. With `--nocapture` lines are also printed live to stderr.
//! Spans opened under a test are tracked so a timeout can say what was
//! still running. Lines are kept as logged and redacted where they are
//! written (with every value learned by then); lines printed live are
//! redacted with what is known at that moment.

use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, OnceLock};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt as _};
use tracing_subscriber::registry::LookupSpan;

const CAPTURE_SPAN: &str = "kindling_capture";
const CAPTURE_FIELD: &str = "kindling_capture_id";

static SINKS: LazyLock<Mutex<HashMap<u64, Arc<Sink>>>> = LazyLock::new(Default::default);
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Where one test's (or the setup's) log lines go.
struct Sink {
    label: String,
    live: bool,
    lines: Mutex<Vec<String>>,
    open_spans: Mutex<Vec<(Id, String)>>,
}

/// A capture in progress; dropping it stops routing lines to it.
pub(crate) struct Capture {
    id: u64,
    sink: Arc<Sink>,
}

impl Capture {
    /// Starts capturing for `label` (a test name or `@setup`).
    pub(crate) fn start(label: &str, live: bool) -> Self {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let sink = Arc::new(Sink {
            label: label.to_owned(),
            live,
            lines: Mutex::default(),
            open_spans: Mutex::default(),
        });
        SINKS
            .lock()
            .expect("capture registry")
            .insert(id, sink.clone());
        Capture { id, sink }
    }

    /// The root span to run the captured work in.
    pub(crate) fn span(&self) -> tracing::Span {
        tracing::span!(Level::ERROR, CAPTURE_SPAN, kindling_capture_id = self.id)
    }

    /// Everything captured so far, one line per event.
    pub(crate) fn text(&self) -> String {
        let lines = self.sink.lines.lock().expect("capture lines");
        let mut text = lines.join("\n");
        if !text.is_empty() {
            text.push('\n');
        }
        text
    }

    /// The spans opened under the capture and not yet closed, outermost first.
    pub(crate) fn open_spans(&self) -> Vec<String> {
        let open = self.sink.open_spans.lock().expect("capture spans");
        open.iter()
            .map(|(_, description)| description.clone())
            .collect()
    }

    /// The last captured line, if any.
    pub(crate) fn last_line(&self) -> Option<String> {
        self.sink
            .lines
            .lock()
            .expect("capture lines")
            .last()
            .cloned()
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        SINKS.lock().expect("capture registry").remove(&self.id);
    }
}

/// Installs the capturing subscriber once per process. Returns false when
/// another global subscriber was installed first (then nothing is captured).
pub(crate) fn install(max_level: Level) -> bool {
    static INSTALLED: OnceLock<bool> = OnceLock::new();
    *INSTALLED.get_or_init(|| {
        let subscriber = tracing_subscriber::registry().with(CaptureLayer { max_level });
        tracing::subscriber::set_global_default(subscriber).is_ok()
    })
}

struct SinkRef(Arc<Sink>);

struct CaptureLayer {
    max_level: Level,
}

impl<S> Layer<S> for CaptureLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn enabled(&self, metadata: &Metadata<'_>, _ctx: Context<'_, S>) -> bool {
        metadata.name() == CAPTURE_SPAN || *metadata.level() <= self.max_level
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        if attrs.metadata().name() == CAPTURE_SPAN {
            let mut visitor = CaptureIdVisitor(None);
            attrs.record(&mut visitor);
            let sink = visitor
                .0
                .and_then(|capture_id| SINKS.lock().ok()?.get(&capture_id).cloned());
            if let Some(sink) = sink {
                span.extensions_mut().insert(SinkRef(sink));
            }
            return;
        }
        let parent_sink = span.parent().and_then(|parent| {
            parent
                .extensions()
                .get::<SinkRef>()
                .map(|sink| sink.0.clone())
        });
        if let Some(sink) = parent_sink {
            let mut fields = FieldText::default();
            attrs.record(&mut fields);
            let description = format!("{}{}", attrs.metadata().name(), fields.braced());
            sink.open_spans
                .lock()
                .expect("capture spans")
                .push((id.clone(), description));
            span.extensions_mut().insert(SinkRef(sink));
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        if let Some(sink) = span.extensions().get::<SinkRef>() {
            sink.0
                .open_spans
                .lock()
                .expect("capture spans")
                .retain(|(open, _)| *open != id);
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut fields = FieldText::default();
        event.record(&mut fields);
        let metadata = event.metadata();
        let line = format!(
            "{} {:>5} {}: {}",
            chrono::Local::now().format("%H:%M:%S%.3f"),
            metadata.level(),
            metadata.target(),
            fields.line()
        );
        let sink = ctx
            .event_span(event)
            .and_then(|span| span.extensions().get::<SinkRef>().map(|s| s.0.clone()));
        match sink {
            Some(sink) => {
                if sink.live {
                    eprintln!("[{}] {}", sink.label, crate::redaction::redact(&line));
                }
                sink.lines.lock().expect("capture lines").push(line);
            }
            None => eprintln!("{}", crate::redaction::redact(&line)),
        }
    }
}

struct CaptureIdVisitor(Option<u64>);

impl Visit for CaptureIdVisitor {
    fn record_u64(&mut self, field: &Field, value: u64) {
        if field.name() == CAPTURE_FIELD {
            self.0 = Some(value);
        }
    }

    fn record_debug(&mut self, _field: &Field, _value: &dyn fmt::Debug) {}
}

/// An event's message and its other fields as `key=value`.
#[derive(Default)]
struct FieldText {
    message: String,
    pairs: String,
}

impl FieldText {
    fn line(&self) -> String {
        match (self.message.is_empty(), self.pairs.is_empty()) {
            (_, true) => self.message.clone(),
            (true, false) => self.pairs.trim_start().to_owned(),
            (false, false) => format!("{}{}", self.message, self.pairs),
        }
    }

    fn braced(&self) -> String {
        if self.pairs.is_empty() {
            String::new()
        } else {
            format!("{{{}}}", self.pairs.trim_start())
        }
    }
}

impl Visit for FieldText {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.pairs, " {}={value:?}", field.name());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.pairs, " {}={value:?}", field.name());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Instrument as _;

    #[test]
    fn concurrent_captures_do_not_mix_and_track_open_spans() {
        install(Level::INFO);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let first = Capture::start("first", false);
        let second = Capture::start("second", false);
        runtime.block_on(async {
            let a = tokio::spawn(
                async {
                    for i in 0..20 {
                        tracing::info!(i, "from first");
                        tokio::task::yield_now().await;
                    }
                }
                .instrument(first.span()),
            );
            let b = tokio::spawn(
                async {
                    let _guard =
                        tracing::info_span!("waiting", object = "Deployment/api").entered();
                    for _ in 0..20 {
                        tracing::info!("from second");
                    }
                    tracing::debug!("not captured at info");
                }
                .instrument(second.span()),
            );
            a.await.unwrap();
            b.await.unwrap();
        });
        let first_text = first.text();
        let second_text = second.text();
        assert_eq!(first_text.lines().count(), 20, "{first_text}");
        assert_eq!(second_text.lines().count(), 20, "{second_text}");
        assert!(
            first_text
                .lines()
                .all(|l| l.contains("from first") && l.contains("i="))
        );
        assert!(second_text.lines().all(|l| l.contains("from second")));
        assert!(second.open_spans().is_empty(), "closed span still listed");

        let third = Capture::start("third", false);
        let span = third.span();
        let _outer = span.enter();
        let _inner = tracing::info_span!("apply", object = "Job/migrate").entered();
        assert_eq!(
            third.open_spans(),
            vec!["apply{object=\"Job/migrate\"}".to_owned()]
        );
    }
}
