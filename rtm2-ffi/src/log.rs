//! Log routing: the SDK's log records to an application callback, on a dedicated SDK thread.

use std::collections::VecDeque;
use std::ffi::{c_char, c_void};
use std::sync::{Arc, Condvar, LazyLock, Mutex, MutexGuard, OnceLock};
use std::thread::ThreadId;

use rtm2_core::ErrorCode;
use rtm2_core::logging::{LogLevel, LogRecord, set_log_handler};

use crate::constants::*;
use crate::error::{FfiError, contain, ffi_status};
use crate::ptr::{UserData, cstring};
use crate::status::RTM2_ERR_INTERNAL;

/// Receives one log record: `level` is `RTM2_LOG_*`, `target` the module (e.g.
/// `"rtm2_core::client"`), `message` the text with its fields. Both strings are borrowed:
/// valid only during the call.
pub type rtm2_log_cb =
    Option<unsafe extern "C" fn(user_data: *mut c_void, level: i32, target: *const c_char, message: *const c_char)>;

/// Records waiting for the log thread; more are counted and reported as dropped.
const MAX_QUEUED: usize = 1024;

#[derive(Clone, Copy)]
struct Sink {
    cb: unsafe extern "C" fn(*mut c_void, i32, *const c_char, *const c_char),
    user_data: UserData,
}

#[derive(Default)]
struct State {
    sink: Option<Sink>,
    queue: VecDeque<LogRecord>,
    dropped: u64,
    calling: bool,
}

struct Router {
    state: Mutex<State>,
    work: Condvar,
    idle: Condvar,
    thread: OnceLock<ThreadId>,
}

static ROUTER: LazyLock<Router> = LazyLock::new(|| Router {
    state: Mutex::new(State::default()),
    work: Condvar::new(),
    idle: Condvar::new(),
    thread: OnceLock::new(),
});

impl Router {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Called by the core on whatever thread logged: queue only, never call C here.
    fn push(&self, r: &LogRecord) {
        let mut st = self.lock();
        if st.sink.is_none() {
            return;
        }
        if st.queue.len() >= MAX_QUEUED {
            st.dropped += 1;
            return;
        }
        st.queue.push_back(r.clone());
        self.work.notify_one();
    }

    fn run(&self) {
        let _ = self.thread.set(std::thread::current().id());
        loop {
            let (sink, records) = {
                let mut st = self.lock();
                while st.queue.is_empty() || st.sink.is_none() {
                    if st.sink.is_none() {
                        st.queue.clear();
                    }
                    st = self.work.wait(st).unwrap_or_else(|e| e.into_inner());
                }
                let mut records: Vec<LogRecord> = st.queue.drain(..).collect();
                if st.dropped > 0 {
                    records.insert(
                        0,
                        LogRecord {
                            level: LogLevel::Warn,
                            target: "rtm2_ffi::log".into(),
                            message: format!("{} log records were dropped (the log callback is too slow)", st.dropped),
                        },
                    );
                    st.dropped = 0;
                }
                st.calling = true;
                (st.sink, records)
            };
            if let Some(sink) = sink {
                for r in &records {
                    contain("a log record", || {
                        let target = cstring(&r.target);
                        let message = cstring(&r.message);
                        unsafe { (sink.cb)(sink.user_data.ptr(), r.level as i32, target.as_ptr(), message.as_ptr()) }
                    });
                }
            }
            self.lock().calling = false;
            self.idle.notify_all();
        }
    }
}

static LOG_THREAD: OnceLock<Result<(), String>> = OnceLock::new();

fn level(l: i32) -> Option<LogLevel> {
    Some(match l {
        RTM2_LOG_TRACE => LogLevel::Trace,
        RTM2_LOG_DEBUG => LogLevel::Debug,
        RTM2_LOG_INFO => LogLevel::Info,
        RTM2_LOG_WARN => LogLevel::Warn,
        RTM2_LOG_ERROR => LogLevel::Error,
        _ => return None,
    })
}

/// Routes the SDK's log records at `min_level` (`RTM2_LOG_*`) and above to `cb`, replacing an
/// earlier callback; `cb = NULL` stops routing. Process-wide (not per client). 10014 for a
/// level outside `RTM2_LOG_TRACE..RTM2_LOG_ERROR`.
///
/// Threading: `cb` runs on one SDK-owned log thread (never a network thread), one record at a
/// time; it should be quick. Records beyond 1024 waiting are dropped and counted (a WARN
/// record reports the count). When this function returns — unless it is called from inside
/// the log callback — the previous callback is not running and will not be called again, so
/// its `user_data` may be released.
///
/// # Safety
/// `cb` is NULL or a function that may be called with `user_data` from the log thread until
/// it is replaced.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rtm2_set_log_callback(min_level: i32, cb: rtm2_log_cb, user_data: *mut c_void) -> i32 {
    ffi_status(|| {
        let min = level(min_level).ok_or_else(|| {
            FfiError::rtm(
                ErrorCode::INVALID_PARAMETER,
                format!("log level {min_level} is not RTM2_LOG_TRACE..RTM2_LOG_ERROR"),
            )
        })?;
        let router = &*ROUTER;
        if cb.is_some() {
            // Started once, even when several threads get here at the same time.
            LOG_THREAD
                .get_or_init(|| {
                    std::thread::Builder::new()
                        .name("rtm2-log".into())
                        .spawn(|| ROUTER.run())
                        .map(drop)
                        .map_err(|e| e.to_string())
                })
                .as_ref()
                .map_err(|e| FfiError::new(RTM2_ERR_INTERNAL, format!("cannot start the log thread: {e}")))?;
        }
        // The core's handler is swapped outside our lock (the core calls `push` while holding
        // its own lock, so taking them in the other order could deadlock).
        match cb {
            Some(_) => set_log_handler(min, Some(Arc::new(|r: &LogRecord| ROUTER.push(r)))),
            None => set_log_handler(min, None),
        }
        let mut st = router.lock();
        st.sink = cb.map(|cb| Sink { cb, user_data: UserData::new(user_data) });
        st.queue.clear();
        st.dropped = 0;
        if router.thread.get() != Some(&std::thread::current().id()) {
            while st.calling {
                st = router.idle.wait(st).unwrap_or_else(|e| e.into_inner());
            }
        }
        Ok(())
    })
}
