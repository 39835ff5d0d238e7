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

/// Runs `fut` on the SDK runtime and waits for it from any executor (or none). Dropping the
/// returned future does not cancel the work.
pub(crate) async fn run<T: Send + 'static>(fut: impl Future<Output = T> + Send + 'static) -> T {
    match runtime().spawn(fut).await {
        Ok(v) => v,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => unreachable!("the SDK runtime never cancels its tasks"),
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
