//! The per-client dispatcher: the one SDK-owned thread on which every callback of a client
//! runs (completions and events), the pending-operation table that makes every completion
//! fire exactly once, and the event pump that moves the core's event batches to it.
//!
//! ```text
//!  core runtime task ──finish(id)──┐                         ┌─> completion callbacks
//!                                  ├─> queue ─> dispatcher ──┤
//!  core EventReceiver ─> pump ─────┘    (one lock)           └─> listener callbacks
//! ```
//!
//! The pump thread blocks in `EventReceiver::blocking_recv_batch` (one crossing per batch)
//! and hands whole batches over, one batch at a time: while the dispatcher is behind, events
//! wait in the core's bounded queue, which reports what it had to drop as an overflow event.
//! A separate pump is needed because the core's blocking receive cannot be woken for
//! completions.

use std::collections::{HashMap, VecDeque};
use std::ffi::c_void;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use futures::FutureExt;
use rtm2_core::{ErrorCode, Event, EventReceiver};
use tokio::task::AbortHandle;

use crate::error::{FfiError, FfiResult, panic_message};
use crate::listener::Listener;
use crate::ptr::{Out, UserData};
use crate::results::{ResultData, rtm2_result, with_c_result};
use crate::status::{RTM2_ERR_CANCELED, RTM2_ERR_INTERNAL, RTM2_ERR_PANIC, RTM2_OK};

/// The completion callback of an asynchronous operation: called exactly once per started
/// operation (status `RTM2_OK` or an error code), on the client's dispatcher thread.
/// `result` is never NULL and is borrowed: valid only until the callback returns.
pub type rtm2_completion_cb =
    Option<unsafe extern "C" fn(user_data: *mut c_void, request_id: u64, status: i32, result: *const rtm2_result)>;

/// Events the pump takes per crossing.
const PUMP_BATCH: usize = 256;
/// How often an idle pump checks whether its client was freed.
const PUMP_POLL: Duration = Duration::from_millis(100);

static NEXT_REQUEST_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// Set on every dispatcher thread (of any client) for its whole life.
    static ON_A_DISPATCHER: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether the caller runs on a dispatcher thread of some client (inside a callback).
fn on_a_dispatcher_thread() -> bool {
    ON_A_DISPATCHER.with(|f| f.get())
}

/// A completion callback and its user data.
#[derive(Clone, Copy)]
pub(crate) struct Completion {
    cb: rtm2_completion_cb,
    user_data: UserData,
}

impl Completion {
    pub(crate) fn new(cb: rtm2_completion_cb, user_data: *mut c_void) -> Self {
        Completion { cb, user_data: UserData::new(user_data) }
    }
}

struct Pending {
    op: &'static str,
    completion: Completion,
    abort: Option<AbortHandle>,
}

struct Done {
    id: u64,
    op: &'static str,
    completion: Completion,
    status: i32,
    reason: String,
    data: ResultData,
}

impl Done {
    fn deliver(self) {
        let Some(cb) = self.completion.cb else { return };
        let ud = self.completion.user_data.ptr();
        let mut called = false;
        let r = catch_unwind(AssertUnwindSafe(|| {
            with_c_result(self.op, &self.reason, &self.data, |res| {
                called = true;
                unsafe { cb(ud, self.id, self.status, res) }
            })
        }));
        if let Err(p) = r {
            eprintln!("rtm2: internal error (panic) while delivering a completion: {}", panic_message(&*p));
            if !called {
                // Exactly once, even then: a minimal result with the panic status.
                let res = rtm2_result::empty(c"".as_ptr(), c"internal error (panic) in rtm2".as_ptr());
                let _ = catch_unwind(AssertUnwindSafe(|| unsafe { cb(ud, self.id, RTM2_ERR_PANIC, &res) }));
            }
        }
    }
}

enum Item {
    Events(Vec<Event>),
    Done(Done),
}

#[derive(Default)]
struct State {
    pending: HashMap<u64, Pending>,
    queue: VecDeque<Item>,
    queued_events: usize,
    closing: bool,
}

/// The shared part of a client's dispatcher (also held by its stream channels).
pub(crate) struct Dispatcher {
    state: Mutex<State>,
    wake: Condvar,
    space: Condvar,
    closed: AtomicBool,
}

/// The threads of a dispatcher, owned by the client handle.
pub(crate) struct Threads {
    dispatcher: Option<JoinHandle<()>>,
    pump: Option<JoinHandle<()>>,
}

impl Dispatcher {
    /// Starts the dispatcher thread (and the pump, when there is a listener).
    pub(crate) fn start(listener: Option<Listener>, events: Option<EventReceiver>) -> FfiResult<(Arc<Self>, Threads)> {
        let d = Arc::new(Dispatcher {
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
            space: Condvar::new(),
            closed: AtomicBool::new(false),
        });
        let spawn_err = |e: std::io::Error| FfiError::new(RTM2_ERR_INTERNAL, format!("cannot start a thread: {e}"));
        let pump = match events {
            Some(rx) => {
                let d2 = d.clone();
                Some(
                    std::thread::Builder::new()
                        .name("rtm2-events".into())
                        .spawn(move || d2.pump(rx))
                        .map_err(spawn_err)?,
                )
            }
            None => None,
        };
        let d2 = d.clone();
        let dispatcher = match std::thread::Builder::new().name("rtm2-dispatch".into()).spawn(move || d2.run(listener))
        {
            Ok(h) => h,
            Err(e) => {
                d.close();
                if let Some(p) = pump {
                    let _ = p.join();
                }
                return Err(spawn_err(e));
            }
        };
        Ok((d, Threads { dispatcher: Some(dispatcher), pump }))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the client was freed.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    fn released() -> FfiError {
        FfiError::rtm(ErrorCode::INSTANCE_ALREADY_RELEASED, "the client was freed")
    }

    /// Registers an operation; from now on it completes exactly once.
    fn begin(&self, op: &'static str, completion: Completion) -> FfiResult<u64> {
        let mut st = self.lock();
        if st.closing {
            return Err(Self::released());
        }
        let id = NEXT_REQUEST_ID.fetch_add(1, Ordering::Relaxed);
        st.pending.insert(id, Pending { op, completion, abort: None });
        Ok(id)
    }

    /// Completes an operation if it is still pending (else it was completed by `close`).
    fn finish(&self, id: u64, status: i32, reason: String, data: ResultData) {
        let mut st = self.lock();
        if let Some(p) = st.pending.remove(&id) {
            st.queue.push_back(Item::Done(Done { id, op: p.op, completion: p.completion, status, reason, data }));
            self.wake.notify_one();
        }
    }

    /// Cancels a pending operation: its task is dropped (as a dropped future is in the core:
    /// what was already sent stays sent) and its completion is queued with `RTM2_ERR_CANCELED`.
    /// False when `id` is not pending here (completed already, or never started by this client).
    pub(crate) fn cancel(&self, id: u64) -> bool {
        let mut st = self.lock();
        let Some(p) = st.pending.remove(&id) else { return false };
        if let Some(task) = p.abort {
            task.abort();
        }
        st.queue.push_back(Item::Done(Done {
            id,
            op: p.op,
            completion: p.completion,
            status: RTM2_ERR_CANCELED,
            reason: format!("{} was canceled by rtm2_cancel", p.op),
            data: ResultData::None,
        }));
        self.wake.notify_one();
        true
    }

    /// Starts an operation on the core runtime: registers it, writes its id to `out`, and
    /// queues its completion when `fut` ends (or `close` completes it first).
    pub(crate) fn spawn_op<T, F, M>(
        self: &Arc<Self>,
        op: &'static str,
        completion: Completion,
        out: Option<Out<u64>>,
        fut: F,
        map: M,
    ) -> FfiResult<()>
    where
        T: Send + 'static,
        F: Future<Output = rtm2_core::Result<T>> + Send + 'static,
        M: FnOnce(T) -> ResultData + Send + 'static,
    {
        let runtime = rtm2_core::runtime();
        let id = self.begin(op, completion)?;
        if let Some(out) = out {
            unsafe { out.write(id) };
        }
        let d = self.clone();
        let task = runtime.spawn(async move {
            let (status, reason, data) = match AssertUnwindSafe(fut).catch_unwind().await {
                Ok(Ok(v)) => (RTM2_OK, String::new(), map(v)),
                Ok(Err(e)) => (e.code.code() as i32, e.reason, ResultData::None),
                Err(p) => (
                    RTM2_ERR_PANIC,
                    format!("internal error (panic) in rtm2: {}", panic_message(&*p)),
                    ResultData::None,
                ),
            };
            d.finish(id, status, reason, data);
        });
        match self.lock().pending.get_mut(&id) {
            Some(p) => p.abort = Some(task.abort_handle()),
            // Canceled (or freed) before the handle was stored; aborting a task that finished
            // is harmless.
            None => task.abort(),
        }
        Ok(())
    }

    /// Completes an operation whose result is known at once (still delivered on the
    /// dispatcher thread, like every completion).
    pub(crate) fn complete_now(
        &self,
        op: &'static str,
        completion: Completion,
        out: Option<Out<u64>>,
        result: rtm2_core::Result<ResultData>,
    ) -> FfiResult<()> {
        let id = self.begin(op, completion)?;
        if let Some(out) = out {
            unsafe { out.write(id) };
        }
        match result {
            Ok(data) => self.finish(id, RTM2_OK, String::new(), data),
            Err(e) => self.finish(id, e.code.code() as i32, e.reason, ResultData::None),
        }
        Ok(())
    }

    /// Refuses an operation whose length or count alone breaks a limit (`check`, one of the
    /// size checks of `rtm2_proto::validate`), before the memory behind it is read: a wrong
    /// length must not make the SDK read past the caller's buffer. The operation then completes
    /// at once with the limit's code, as the core would have completed it. True when refused.
    pub(crate) fn refuse_size(
        &self,
        op: &'static str,
        completion: Completion,
        out: Option<Out<u64>>,
        check: rtm2_proto::validate::Check,
    ) -> FfiResult<bool> {
        let Err(v) = check else { return Ok(false) };
        self.complete_now(op, completion, out, Err(rtm2_core::Error::new(v.code, op, v.reason)))?;
        Ok(true)
    }

    /// Stops the dispatcher: no new operations; every pending one is completed with 10018
    /// INSTANCE_ALREADY_RELEASED; queued events are discarded; the dispatcher thread delivers
    /// the remaining completions, calls the listener's destroy and ends. Returns the tasks to
    /// abort.
    pub(crate) fn close(&self) -> Vec<AbortHandle> {
        let mut st = self.lock();
        st.closing = true;
        self.closed.store(true, Ordering::Release);
        let mut aborts = Vec::new();
        let mut ids: Vec<u64> = st.pending.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            if let Some(p) = st.pending.remove(&id) {
                aborts.extend(p.abort);
                st.queue.push_back(Item::Done(Done {
                    id,
                    op: p.op,
                    completion: p.completion,
                    status: ErrorCode::INSTANCE_ALREADY_RELEASED.code() as i32,
                    reason: "the client was freed before the operation completed".into(),
                    data: ResultData::None,
                }));
            }
        }
        self.wake.notify_all();
        self.space.notify_all();
        aborts
    }

    /// Hands a batch of events to the dispatcher, waiting while it is behind. False once the
    /// client was freed.
    fn push_events(&self, events: Vec<Event>) -> bool {
        let mut st = self.lock();
        // One batch in hand at a time: while the dispatcher is behind, events stay in the core's
        // bounded queue, whose capacity (event_queue_capacity) then decides what overflows.
        while !st.closing && st.queued_events > 0 {
            st = self.space.wait(st).unwrap_or_else(|e| e.into_inner());
        }
        if st.closing {
            return false;
        }
        st.queued_events += events.len();
        st.queue.push_back(Item::Events(events));
        self.wake.notify_one();
        true
    }

    fn pump(&self, mut rx: EventReceiver) {
        while !self.is_closed() {
            match rx.blocking_recv_batch(PUMP_BATCH, PUMP_POLL) {
                None => break,
                Some(batch) if batch.is_empty() => continue,
                Some(batch) => {
                    if !self.push_events(batch) {
                        break;
                    }
                }
            }
        }
    }

    fn run(&self, listener: Option<Listener>) {
        ON_A_DISPATCHER.with(|f| f.set(true));
        loop {
            let items = {
                let mut st = self.lock();
                while st.queue.is_empty() && !st.closing {
                    st = self.wake.wait(st).unwrap_or_else(|e| e.into_inner());
                }
                if st.queue.is_empty() {
                    break;
                }
                st.queued_events = 0;
                self.space.notify_all();
                std::mem::take(&mut st.queue)
            };
            for item in items {
                match item {
                    Item::Events(events) => {
                        if let Some(l) = &listener {
                            l.deliver(&events, &|| !self.is_closed());
                        }
                    }
                    Item::Done(done) => done.deliver(),
                }
            }
        }
        if let Some(l) = listener {
            l.destroy();
        }
    }
}

impl Threads {
    /// Waits for the threads to end after `Dispatcher::close` — unless called on a dispatcher
    /// thread (from inside a callback of this client or of any other): then it waits for
    /// nothing and lets them finish by themselves. Waiting there could deadlock: the thread
    /// waited for may itself be in a callback that frees the caller's client and waits for the
    /// caller's thread. A closed dispatcher still delivers every queued completion (10018 for
    /// those in flight) and then calls the listener's destroy, right after its current
    /// callback returns; the pump ends within `PUMP_POLL` once it sees the close.
    pub(crate) fn join(mut self) {
        if on_a_dispatcher_thread() {
            // Dropping the handles detaches the threads.
            return;
        }
        if let Some(p) = self.pump.take() {
            let _ = p.join();
        }
        if let Some(t) = self.dispatcher.take() {
            let _ = t.join();
        }
    }
}
