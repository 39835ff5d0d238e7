//! Event receivers for Python: `wait()` is an awaitable that completes when a batch is ready;
//! `take()` converts that batch on the caller's (event-loop) thread. One GIL acquisition per
//! batch, no per-message crossing, and cancelling `wait()` never loses events: a batch taken
//! from the core queue is parked here until `take()` collects it.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use pyo3::prelude::*;
use pyo3::types::PyList;
use tokio::sync::Notify;

use rtm2_core::{Event, EventReceiver, Subscription};

use crate::bridge::future;
use crate::runtime;
use crate::types;

/// What the receivers have in common.
pub trait Source: Send + 'static {
    fn recv_batch(&mut self, max: usize) -> impl Future<Output = Option<Vec<Event>>> + Send;
}

impl Source for EventReceiver {
    fn recv_batch(&mut self, max: usize) -> impl Future<Output = Option<Vec<Event>>> + Send {
        EventReceiver::recv_batch(self, max)
    }
}

impl Source for Subscription {
    fn recv_batch(&mut self, max: usize) -> impl Future<Output = Option<Vec<Event>>> + Send {
        Subscription::recv_batch(self, max)
    }
}

struct Shared<R> {
    source: tokio::sync::Mutex<Option<R>>,
    pending: Mutex<VecDeque<Event>>,
    closed: AtomicBool,
    close_signal: Notify,
}

/// Waits until events are parked for `take`: true, or false once the source has ended.
async fn wait_batch<R: Source>(sh: Arc<Shared<R>>, max: usize) -> bool {
    if !sh.pending.lock().unwrap().is_empty() {
        return true;
    }
    // Registered before the check, so a close in between still wakes this wait.
    let closing = sh.close_signal.notified();
    if sh.closed.load(Ordering::Acquire) {
        return false;
    }
    let mut guard = sh.source.lock().await;
    if !sh.pending.lock().unwrap().is_empty() {
        return true;
    }
    let Some(source) = guard.as_mut() else { return false };
    tokio::select! {
        got = source.recv_batch(max.max(1)) => match got {
            // No await between receiving and parking: a cancelled wait loses nothing.
            Some(batch) => {
                sh.pending.lock().unwrap().extend(batch);
                true
            }
            None => !sh.pending.lock().unwrap().is_empty(),
        },
        _ = closing => !sh.pending.lock().unwrap().is_empty(),
    }
}

/// The part shared by both receiver classes.
pub struct Rx<R: Source> {
    shared: Arc<Shared<R>>,
}

impl<R: Source> Rx<R> {
    pub fn new(source: R) -> Self {
        Rx {
            shared: Arc::new(Shared {
                source: tokio::sync::Mutex::new(Some(source)),
                pending: Mutex::new(VecDeque::new()),
                closed: AtomicBool::new(false),
                close_signal: Notify::new(),
            }),
        }
    }

    fn wait<'py>(&self, py: Python<'py>, max: usize) -> PyResult<Bound<'py, PyAny>> {
        runtime::check("wait")?;
        let sh = self.shared.clone();
        future(py, async move { Ok::<_, rtm2_core::Error>(wait_batch(sh, max).await) })
    }

    fn take<'py>(&self, py: Python<'py>, max: usize) -> PyResult<Bound<'py, PyList>> {
        let batch: Vec<Event> = {
            let mut p = self.shared.pending.lock().unwrap();
            let n = p.len().min(max.max(1));
            p.drain(..n).collect()
        };
        let mut strings = types::BatchStrings::default();
        let items = batch.iter().map(|ev| types::event(py, ev, &mut strings)).collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, items)
    }

    fn close(&self) {
        let sh = &self.shared;
        if sh.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        if runtime::forked() {
            return;
        }
        sh.close_signal.notify_waiters();
        match sh.source.try_lock() {
            Ok(mut g) => drop(g.take()),
            Err(_) => {
                // A wait is in flight; it ends on the close signal, then the source is dropped.
                let sh = sh.clone();
                rtm2_core::runtime().spawn(async move { drop(sh.source.lock().await.take()) });
            }
        }
    }

    fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire)
    }
}

impl<R: Source> Drop for Rx<R> {
    fn drop(&mut self) {
        if runtime::forked() {
            // See runtime::forked: leak the parent's receiver instead of touching its locks.
            std::mem::forget(self.shared.clone());
        }
    }
}

/// Every event of a client (made by NativeClient.events()).
#[pyclass(module = "rtm2._rtm2", frozen)]
pub struct NativeEventReceiver {
    rx: Rx<EventReceiver>,
}

impl NativeEventReceiver {
    pub fn new(r: EventReceiver) -> Self {
        NativeEventReceiver { rx: Rx::new(r) }
    }
}

#[pymethods]
impl NativeEventReceiver {
    /// Awaitable: True when events can be taken, False once the receiver has ended.
    fn wait<'py>(&self, py: Python<'py>, max: usize) -> PyResult<Bound<'py, PyAny>> {
        self.rx.wait(py, max)
    }

    /// Up to `max` events received so far, as Python objects.
    fn take<'py>(&self, py: Python<'py>, max: usize) -> PyResult<Bound<'py, PyList>> {
        self.rx.take(py, max)
    }

    /// Stops receiving (a pending wait returns).
    fn close(&self) {
        self.rx.close()
    }

    #[getter]
    fn closed(&self) -> bool {
        self.rx.is_closed()
    }
}

/// The messages of one subscribed message channel (made by NativeClient.subscribe()).
#[pyclass(module = "rtm2._rtm2", frozen)]
pub struct NativeSubscription {
    rx: Rx<Subscription>,
    channel: String,
    timestamp: u64,
}

impl NativeSubscription {
    pub fn new(s: Subscription) -> Self {
        NativeSubscription { channel: s.channel().to_string(), timestamp: s.timestamp_ms(), rx: Rx::new(s) }
    }
}

#[pymethods]
impl NativeSubscription {
    /// Awaitable: True when messages can be taken, False once the subscription has ended.
    fn wait<'py>(&self, py: Python<'py>, max: usize) -> PyResult<Bound<'py, PyAny>> {
        self.rx.wait(py, max)
    }

    /// Up to `max` messages (or overflow notices) received so far.
    fn take<'py>(&self, py: Python<'py>, max: usize) -> PyResult<Bound<'py, PyList>> {
        self.rx.take(py, max)
    }

    /// Stops local delivery (the server subscription stays until unsubscribe).
    fn close(&self) {
        self.rx.close()
    }

    #[getter]
    fn closed(&self) -> bool {
        self.rx.is_closed()
    }

    #[getter]
    fn channel(&self) -> &str {
        &self.channel
    }

    /// The server's time of the subscribe's answer, ms since the epoch.
    #[getter]
    fn timestamp(&self) -> u64 {
        self.timestamp
    }
}
