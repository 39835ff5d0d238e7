//! SDK logs → Python `logging` (loggers `rtm2.core.client`, `rtm2.server.…`, children of
//! `rtm2`).
//!
//! The core calls the handler on its own threads, where waiting for the GIL would stall the
//! network. So the handler only queues the record (bounded; an overflow is counted and
//! reported), and one `rtm2-log` thread hands batches to `rtm2._logging._emit` with one GIL
//! acquisition per batch. The native level filter follows the effective level of the `rtm2`
//! logger, refreshed by `set_log_level` (the Python layer calls it when a Client is made).
//!
//! At interpreter exit (an `atexit` hook, before finalization) `stop_logging` stops and joins
//! that thread, so no SDK thread tries to take the GIL while the interpreter is finalizing.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

use pyo3::intern;
use pyo3::prelude::*;

use rtm2_core::logging::{LogHandler, LogLevel, LogRecord, set_log_handler};

const QUEUE: usize = 8192;
const BATCH: usize = 256;

struct Bridge {
    handler: LogHandler,
}

static BRIDGE: OnceLock<Bridge> = OnceLock::new();
static DROPPED: AtomicU64 = AtomicU64::new(0);
static STOP: AtomicBool = AtomicBool::new(false);
/// The log thread and the process it runs in (a forked child has no such thread).
static THREAD: Mutex<Option<(JoinHandle<()>, u32)>> = Mutex::new(None);

/// Python's numeric level for a core level (TRACE is 5).
fn py_level(l: LogLevel) -> u8 {
    match l {
        LogLevel::Trace => 5,
        LogLevel::Debug => 10,
        LogLevel::Info => 20,
        LogLevel::Warn => 30,
        LogLevel::Error => 40,
    }
}

fn core_level(py_level: i64) -> LogLevel {
    match py_level {
        ..=5 => LogLevel::Trace,
        6..=10 => LogLevel::Debug,
        11..=20 => LogLevel::Info,
        21..=30 => LogLevel::Warn,
        _ => LogLevel::Error,
    }
}

fn bridge() -> &'static Bridge {
    BRIDGE.get_or_init(|| {
        let (tx, rx): (SyncSender<LogRecord>, Receiver<LogRecord>) = sync_channel(QUEUE);
        if let Ok(handle) = std::thread::Builder::new().name("rtm2-log".into()).spawn(move || forward(rx)) {
            *THREAD.lock().unwrap() = Some((handle, std::process::id()));
        }
        let handler: LogHandler = Arc::new(move |r: &LogRecord| {
            if let Err(TrySendError::Full(_)) = tx.try_send(r.clone()) {
                DROPPED.fetch_add(1, Ordering::Relaxed);
            }
        });
        Bridge { handler }
    })
}

fn forward(rx: Receiver<LogRecord>) {
    loop {
        let first = match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(r) => r,
            Err(RecvTimeoutError::Timeout) if !STOP.load(Ordering::Acquire) => continue,
            Err(_) => return,
        };
        if STOP.load(Ordering::Acquire) {
            return;
        }
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        let dropped = DROPPED.swap(0, Ordering::Relaxed);
        let items: Vec<(u8, String, String)> = batch
            .into_iter()
            .map(|r| (py_level(r.level), r.target, r.message))
            .chain((dropped > 0).then(|| (30, "rtm2".to_string(), format!("{dropped} log records were dropped"))))
            .collect();
        // Not while the interpreter is shutting down: the records are then discarded.
        let attached = Python::try_attach(|py| {
            let emitted = py
                .import(intern!(py, "rtm2._logging"))
                .and_then(|m| m.getattr(intern!(py, "_emit")))
                .and_then(|f| f.call1((items,)));
            if let Err(e) = emitted {
                e.write_unraisable(py, None);
            }
        });
        if attached.is_none() {
            return;
        }
    }
}

/// Routes SDK records at `level` (a Python logging level) and above to Python logging.
#[pyfunction]
pub fn set_log_level(level: i64) {
    if STOP.load(Ordering::Acquire) {
        return;
    }
    set_log_handler(core_level(level), Some(bridge().handler.clone()));
}

/// Stops forwarding (records are dropped from now on) and waits for the log thread to end.
#[pyfunction]
pub fn stop_logging(py: Python<'_>) {
    STOP.store(true, Ordering::Release);
    let thread = THREAD.lock().unwrap().take();
    match thread {
        Some((h, pid)) if pid == std::process::id() => py.detach(move || {
            let _ = h.join();
        }),
        Some(other) => std::mem::forget(other),
        None => {}
    }
}
