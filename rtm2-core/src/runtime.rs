//! The SDK's own tokio runtime, shared by every client (and the embedded server) of a process.

use std::future::Future;
use std::sync::OnceLock;

use tokio::runtime::Runtime;

static RUNTIME: OnceLock<Runtime> = OnceLock::new();

/// The runtime every client runs on: two worker threads named `rtm2-core`.
pub fn runtime() -> &'static Runtime {
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("rtm2-core")
            .enable_all()
            .build()
            .expect("the rtm2 runtime could not start")
    })
}

/// Aborts the task it guards when dropped before completion.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs `fut` on the SDK runtime and waits for it from any executor (or none). Dropping the
/// returned future cancels the work (a request already sent is not recalled; its reply is
/// ignored).
pub(crate) async fn run<T: Send + 'static>(fut: impl Future<Output = T> + Send + 'static) -> T {
    let handle = runtime().spawn(fut);
    let _guard = AbortOnDrop(handle.abort_handle());
    match handle.await {
        Ok(v) => v,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => unreachable!("the task is only aborted after this future is dropped"),
    }
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
