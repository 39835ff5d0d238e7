//! Where the SDK's `tracing` output goes: an optional log file, and/or a handler that a
//! binding installs to route records to its host (C callback, Python `logging`, Node).

use std::fmt::Write as _;
use std::sync::{Arc, Once, OnceLock, RwLock};

use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::ClientConfig;

/// Severity of a log record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// Very detailed.
    Trace = 0,
    /// Debugging.
    Debug = 1,
    /// Normal operation.
    Info = 2,
    /// Something unexpected that the SDK handled.
    Warn = 3,
    /// An error.
    Error = 4,
}

/// One log record handed to a [`LogHandler`].
#[derive(Debug, Clone)]
pub struct LogRecord {
    /// Severity.
    pub level: LogLevel,
    /// Module path, e.g. `rtm2_core::client`.
    pub target: String,
    /// The message with its fields, e.g. `connection lost; reconnecting reason=...`.
    pub message: String,
}

/// Receives log records; called on SDK threads, so it must be quick and must not block.
pub type LogHandler = Arc<dyn Fn(&LogRecord) + Send + Sync>;

struct Sink {
    min: LogLevel,
    handler: LogHandler,
}

static SINK: OnceLock<RwLock<Option<Sink>>> = OnceLock::new();
static FILE: OnceLock<std::sync::Mutex<Option<(LogLevel, std::fs::File)>>> = OnceLock::new();
static INSTALL: Once = Once::new();

fn file_sink() -> &'static std::sync::Mutex<Option<(LogLevel, std::fs::File)>> {
    FILE.get_or_init(|| std::sync::Mutex::new(None))
}

/// Installs the process-wide subscriber that feeds both the handler and the log file, unless
/// the application installed its own `tracing` subscriber first (that one then gets the
/// records).
fn install() {
    INSTALL.call_once(|| {
        let _ = tracing_subscriber::registry().with(HandlerLayer).try_init();
    });
}

fn sink() -> &'static RwLock<Option<Sink>> {
    SINK.get_or_init(|| RwLock::new(None))
}

fn level_of(l: &tracing::Level) -> LogLevel {
    match *l {
        tracing::Level::TRACE => LogLevel::Trace,
        tracing::Level::DEBUG => LogLevel::Debug,
        tracing::Level::INFO => LogLevel::Info,
        tracing::Level::WARN => LogLevel::Warn,
        tracing::Level::ERROR => LogLevel::Error,
    }
}

/// Parses `trace`, `debug`, `info`, `warn`, `error` (any case).
pub fn parse_level(s: &str) -> Option<LogLevel> {
    Some(match s.to_ascii_lowercase().as_str() {
        "trace" => LogLevel::Trace,
        "debug" => LogLevel::Debug,
        "info" => LogLevel::Info,
        "warn" | "warning" => LogLevel::Warn,
        "error" => LogLevel::Error,
        _ => return None,
    })
}

struct MessageVisitor(String);

impl Visit for MessageVisitor {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.push_str(value);
        } else {
            let _ = write!(self.0, " {}={value}", field.name());
        }
    }
}

struct HandlerLayer;

impl<S: tracing::Subscriber> Layer<S> for HandlerLayer {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        let target = event.metadata().target();
        if !target.starts_with("rtm2") {
            return;
        }
        let level = level_of(event.metadata().level());
        let guard = sink().read().unwrap();
        let to_handler = guard.as_ref().filter(|s| level >= s.min);
        let mut file = file_sink().lock().unwrap();
        let to_file = file.as_mut().filter(|(min, _)| level >= *min);
        if to_handler.is_none() && to_file.is_none() {
            return;
        }
        let mut v = MessageVisitor(String::new());
        event.record(&mut v);
        let record = LogRecord { level, target: target.to_string(), message: v.0 };
        if let Some((_, f)) = to_file {
            use std::io::Write as _;
            let _ = writeln!(f, "{} {:?} {}: {}", crate::now_rfc3339(), record.level, record.target, record.message);
        }
        drop(file);
        if let Some(sink) = to_handler {
            (sink.handler)(&record);
        }
    }
}

/// Routes the SDK's log records at `min` and above to `handler` (replacing an earlier
/// handler), or stops routing with `None`. Installs a process-wide `tracing` subscriber the
/// first time, unless the application already installed one (then that one gets the records).
pub fn set_log_handler(min: LogLevel, handler: Option<LogHandler>) {
    *sink().write().unwrap() = handler.map(|handler| Sink { min, handler });
    install();
}

/// Appends the SDK's records at `config.log_level` and above to `config.log_file`, if one is
/// configured (the last client that configures a file decides). Works together with a log
/// handler (both get the records).
pub(crate) fn init(config: &ClientConfig) {
    let Some(path) = config.log_file.clone() else { return };
    let level = parse_level(&config.log_level).unwrap_or(LogLevel::Info);
    match std::fs::OpenOptions::new().create(true).append(true).open(&path) {
        Ok(f) => *file_sink().lock().unwrap() = Some((level, f)),
        Err(e) => eprintln!("rtm2: cannot open log file {}: {e}", path.display()),
    }
    install();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn records_reach_the_handler_above_the_level() {
        let got: Arc<Mutex<Vec<LogRecord>>> = Arc::default();
        let g = got.clone();
        set_log_handler(LogLevel::Info, Some(Arc::new(move |r: &LogRecord| g.lock().unwrap().push(r.clone()))));
        tracing::debug!(target: "rtm2_core::test", "hidden");
        tracing::warn!(target: "rtm2_core::test", user = "alice", "visible");
        tracing::warn!(target: "other_crate", "not ours");
        set_log_handler(LogLevel::Info, None);
        tracing::error!(target: "rtm2_core::test", "after removal");
        // A log file gets the records too, alongside (or without) a handler.
        let path = std::env::temp_dir().join(format!("rtm2-log-test-{}.log", std::process::id()));
        let mut cfg = ClientConfig::new("0123456789abcdef0123456789abcdef", "u");
        cfg.log_file = Some(path.clone());
        cfg.log_level = "warn".into();
        init(&cfg);
        tracing::info!(target: "rtm2_core::test", "too low for the file");
        tracing::warn!(target: "rtm2_core::test", n = 7, "into the file");
        let text = std::fs::read_to_string(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        assert!(text.contains("Warn rtm2_core::test: into the file n=7"), "{text}");
        assert!(!text.contains("too low"), "{text}");
        let got = got.lock().unwrap();
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].level, LogLevel::Warn);
        assert_eq!(got[0].message, "visible user=alice");
        assert_eq!(got[0].target, "rtm2_core::test");
        assert_eq!(parse_level("WARN"), Some(LogLevel::Warn));
        assert_eq!(parse_level("loud"), None);
    }
}
