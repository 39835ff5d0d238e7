//! Completing asyncio futures without taking the GIL on SDK threads.
//!
//! An operation runs on the core runtime. When it ends, its task queues the outcome in the
//! `LoopBridge` of the event loop that awaits it and writes one byte to a socket pair that the
//! loop watches (`loop.add_reader`). The loop thread then drains the queue: it converts the
//! outcomes to Python objects and resolves the futures — one GIL acquisition (the loop's own)
//! per batch of completions, and SDK threads never wait for, or take, the GIL.
//!
//! (pyo3-async-runtimes completes futures by taking the GIL on a tokio thread; at interpreter
//! exit such a thread can be killed inside CPython while it holds the GIL, which crashed the
//! process — see docs/python.md.)
//!
//! Cancelling the asyncio future aborts the task, which drops (and so cancels) the operation.

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::{IntoPyObjectExt, intern};

use crate::errors::to_py;

type Convert = Box<dyn FnOnce(Python<'_>) -> PyResult<Py<PyAny>> + Send>;

struct Done {
    future: Py<PyAny>,
    outcome: Convert,
}

struct Inner {
    queue: Mutex<Vec<Done>>,
    wake_tx: UnixStream,
    wake_rx: UnixStream,
}

impl Inner {
    fn complete(&self, done: Done) {
        let was_empty = {
            let mut q = self.queue.lock().unwrap();
            let e = q.is_empty();
            q.push(done);
            e
        };
        if was_empty {
            // Non-blocking: a full socket buffer means a wake-up is pending anyway.
            let _ = (&self.wake_tx).write(&[1]);
        }
    }
}

/// The completion queue of one event loop (made and registered by `rtm2._loop`).
#[pyclass(module = "rtm2._rtm2", frozen)]
pub struct LoopBridge {
    inner: Arc<Inner>,
    event_loop: Py<PyAny>,
}

#[pymethods]
impl LoopBridge {
    #[new]
    fn new(event_loop: Py<PyAny>) -> PyResult<Self> {
        let (wake_tx, wake_rx) = UnixStream::pair()?;
        wake_tx.set_nonblocking(true)?;
        wake_rx.set_nonblocking(true)?;
        Ok(LoopBridge { inner: Arc::new(Inner { queue: Mutex::new(Vec::new()), wake_tx, wake_rx }), event_loop })
    }

    /// The descriptor the loop watches.
    fn fileno(&self) -> i32 {
        self.inner.wake_rx.as_raw_fd()
    }

    /// Resolves every completed operation (called by the loop when the descriptor is readable).
    fn drain(&self, py: Python<'_>) {
        let mut buf = [0u8; 64];
        while matches!((&self.inner.wake_rx).read(&mut buf), Ok(n) if n > 0) {}
        let done = std::mem::take(&mut *self.inner.queue.lock().unwrap());
        for d in done {
            let fut = d.future.bind(py);
            let resolved = (|| -> PyResult<()> {
                if fut.call_method0(intern!(py, "done"))?.is_truthy()? {
                    return Ok(()); // cancelled meanwhile
                }
                match (d.outcome)(py) {
                    Ok(v) => fut.call_method1(intern!(py, "set_result"), (v,))?,
                    Err(e) => fut.call_method1(intern!(py, "set_exception"), (e.into_value(py),))?,
                };
                Ok(())
            })();
            if let Err(e) = resolved {
                e.write_unraisable(py, Some(fut));
            }
        }
    }
}

/// Aborts the operation's task when its asyncio future is cancelled.
#[pyclass(module = "rtm2._rtm2", frozen)]
struct AbortOnCancel(tokio::task::AbortHandle);

#[pymethods]
impl AbortOnCancel {
    fn __call__(&self, future: &Bound<'_, PyAny>) -> PyResult<()> {
        if future.call_method0(intern!(future.py(), "cancelled"))?.is_truthy()? {
            self.0.abort();
        }
        Ok(())
    }
}

static GET_BRIDGE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// An SDK operation as an asyncio future of the running loop.
pub fn future<'py, T>(
    py: Python<'py>,
    fut: impl Future<Output = rtm2_core::Result<T>> + Send + 'static,
) -> PyResult<Bound<'py, PyAny>>
where
    T: for<'a> IntoPyObject<'a> + Send + 'static,
{
    future_map(py, fut, |py, v| v.into_py_any(py))
}

/// An SDK operation as an asyncio future of the running loop, its value made into a Python
/// object by `convert` (on the loop's thread, once the operation has completed).
pub fn future_map<'py, T>(
    py: Python<'py>,
    fut: impl Future<Output = rtm2_core::Result<T>> + Send + 'static,
    convert: impl FnOnce(Python<'_>, T) -> PyResult<Py<PyAny>> + Send + 'static,
) -> PyResult<Bound<'py, PyAny>>
where
    T: Send + 'static,
{
    let get = GET_BRIDGE.get_or_try_init(py, || -> PyResult<Py<PyAny>> {
        Ok(py.import(intern!(py, "rtm2._loop"))?.getattr(intern!(py, "_bridge"))?.unbind())
    })?;
    let bridge = get.call0(py)?;
    let bridge = bridge.bind(py).cast::<LoopBridge>()?.get();
    let py_future = bridge.event_loop.bind(py).call_method0(intern!(py, "create_future"))?;
    let inner = bridge.inner.clone();
    let future_ref = py_future.clone().unbind();
    let task = rtm2_core::runtime().spawn(async move {
        let out = fut.await;
        let outcome: Convert = Box::new(move |py| match out {
            Ok(v) => convert(py, v),
            Err(e) => Err(to_py(e)),
        });
        inner.complete(Done { future: future_ref, outcome });
    });
    py_future.call_method1(intern!(py, "add_done_callback"), (AbortOnCancel(task.abort_handle()),))?;
    Ok(py_future)
}
