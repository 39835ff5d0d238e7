//! The SDK's own tokio runtime, shared by every client (and the embedded server) of a process.

use std::future::Future;
use std::sync::OnceLock;

use tokio::runtime::Runtime;

static RUNTIME: OnceLock<Runtime> = OnceLock::new();
/// The process that started the runtime (0 = not started yet).
static OWNER_PID: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// Whether this process is a `fork()` child of the one that started the SDK: the runtime's
/// threads do not exist here, so the SDK must not be used (it would wait forever).
pub(crate) fn forked() -> bool {
    // Set in the child by a fork handler: no getpid() call per operation.
    #[cfg(unix)]
    if FORKED.load(std::sync::atomic::Ordering::Relaxed) {
        return true;
    }
    #[cfg(test)]
    {
        let owner = OWNER_PID.load(std::sync::atomic::Ordering::Relaxed);
        return owner != 0 && owner != std::process::id();
    }
    #[allow(unreachable_code)]
    false
}

/// Set in a forked child of the process that started the runtime.
#[cfg(unix)]
static FORKED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

#[cfg(unix)]
extern "C" fn mark_forked() {
    FORKED.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// The error of any use of the SDK in a forked child.
pub(crate) fn forked_error(op: &'static str) -> crate::Error {
    crate::Error::new(
        rtm2_proto::ErrorCode::NOT_INITIALIZED,
        op,
        "the SDK was started in the parent process and cannot be used after fork(); create clients in the child before using it there, or exec",
    )
}

#[cfg(test)]
pub(crate) fn pretend_forked(on: bool) {
    let pid = if on { std::process::id().wrapping_add(1) } else { std::process::id() };
    OWNER_PID.store(pid, std::sync::atomic::Ordering::Relaxed);
}

/// The runtime every client runs on: two worker threads named `rtm2-core`.
pub fn runtime() -> &'static Runtime {
    RUNTIME.get_or_init(|| {
        OWNER_PID.store(std::process::id(), std::sync::atomic::Ordering::Relaxed);
        // SAFETY: registers a handler that only stores to an atomic (async-signal-safe).
        #[cfg(unix)]
        unsafe {
            libc::pthread_atfork(None, None, Some(mark_forked));
        }
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("rtm2-core")
            .enable_all()
            .build()
            .expect("the rtm2 runtime could not start")
    })
}

/// The runtime, if it was started.
pub(crate) fn started() -> Option<&'static Runtime> {
    RUNTIME.get()
}

/// Aborts the task it guards when dropped before completion.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// An SDK operation in progress. It was started (and its request queued, in call order) when
/// the method returned; await it from any executor, or from none with [`block_on`].
/// Dropping it cancels the operation (a request already sent is not recalled; its reply is
/// ignored).
#[must_use = "an operation's outcome should be awaited"]
pub struct Op<T> {
    state: OpState<T>,
}

type BoxFuture<T> = std::pin::Pin<Box<dyn Future<Output = T> + Send>>;

enum OpState<T> {
    Ready(Option<T>),
    Running {
        handle: tokio::task::JoinHandle<T>,
        _abort: AbortOnDrop,
    },
    /// Not polled yet: at the first poll it runs in place when the caller is inside a tokio
    /// runtime (no task, no cross-thread wake-up), else it is spawned on the SDK runtime.
    Lazy(Option<BoxFuture<T>>),
    Direct(BoxFuture<T>),
    /// A publish sent on the fast path: waits on the session's acknowledgements in place (no
    /// task, no box); the function maps its outcome to `T`.
    Published(crate::link::PubWait, fn(crate::Result<u64>) -> T),
}

impl Op<crate::Result<crate::Ack>> {
    /// Waits for the outcome of a publish already sent.
    pub(crate) fn published(wait: crate::link::PubWait) -> Self {
        Op { state: OpState::Published(wait, |r| r.map(crate::Ack::at)) }
    }
}

impl<T: Send + 'static> Op<T> {
    /// An operation that already has its outcome (e.g. it failed validation).
    pub(crate) fn ready(v: T) -> Self {
        Op { state: OpState::Ready(Some(v)) }
    }

    /// Waits for `fut`, whose work was already started (e.g. a request already queued): polled
    /// in place from a tokio runtime, otherwise on the SDK runtime.
    pub(crate) fn lazy(fut: impl Future<Output = T> + Send + 'static) -> Self {
        Op { state: OpState::Lazy(Some(Box::pin(fut))) }
    }

    /// Runs `fut` on the SDK runtime.
    pub(crate) fn spawn(fut: impl Future<Output = T> + Send + 'static) -> Self {
        let handle = runtime().spawn(fut);
        let guard = AbortOnDrop(handle.abort_handle());
        Op { state: OpState::Running { handle, _abort: guard } }
    }
}

// Nothing in an Op is structurally pinned: the value is only moved out once, by `poll`.
impl<T> Unpin for Op<T> {}

impl<T: Send + 'static> Future for Op<T> {
    type Output = T;

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<T> {
        use std::task::Poll;
        let this = self.get_mut();
        if let OpState::Lazy(fut) = &mut this.state {
            let fut = fut.take().expect("a lazy Op holds its future until the first poll");
            this.state = if tokio::runtime::Handle::try_current().is_ok() {
                OpState::Direct(fut)
            } else {
                let handle = runtime().spawn(fut);
                let guard = AbortOnDrop(handle.abort_handle());
                OpState::Running { handle, _abort: guard }
            };
        }
        match &mut this.state {
            OpState::Lazy(_) => unreachable!("decided above"),
            OpState::Direct(fut) => fut.as_mut().poll(cx),
            OpState::Published(wait, map) => std::pin::Pin::new(wait).poll(cx).map(*map),
            OpState::Ready(v) => Poll::Ready(v.take().expect("Op polled after completion")),
            OpState::Running { handle, .. } => match std::pin::Pin::new(handle).poll(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(Ok(v)) => Poll::Ready(v),
                Poll::Ready(Err(e)) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Poll::Ready(Err(_)) => unreachable!("the task is only aborted after the Op is dropped"),
            },
        }
    }
}

/// Runs `fut` on the SDK runtime and waits for it from any executor (or none); dropping the
/// returned future cancels the work.
pub(crate) async fn run<T: Send + 'static>(fut: impl Future<Output = T> + Send + 'static) -> T {
    Op::spawn(fut).await
}

/// Blocks the calling thread until `fut` completes. For code outside any async runtime; must
/// not be called on an SDK runtime thread (it would deadlock), which it refuses with a panic.
pub fn block_on<T: Send + 'static>(fut: impl Future<Output = T> + Send + 'static) -> T {
    assert!(
        tokio::runtime::Handle::try_current().is_err(),
        "rtm2_core::block_on must not be called from inside an async runtime; await the future instead"
    );
    runtime().block_on(run(fut))
}

/// Polls `fut` to completion on this thread without any runtime (tests of paths that must not
/// need one).
#[cfg(test)]
pub(crate) fn block_on_unchecked<T>(fut: impl Future<Output = T>) -> T {
    futures::executor::block_on(fut)
}
