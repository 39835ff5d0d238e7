//! Asynchronous operations: each returns a Promise settled from the SDK runtime through a
//! napi Deferred, and can be cancelled through a [`CancelToken`] (the JS layer's AbortSignal).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use napi::bindgen_prelude::{Object, ToNapiValue};
use napi::{Env, Status};
use napi_derive::napi;
use tokio::sync::Notify;

use crate::error;

#[derive(Default)]
pub(crate) struct Cancel {
    flag: AtomicBool,
    notify: Notify,
}

impl Cancel {
    /// Cancels (idempotent).
    pub(crate) fn cancel(&self) {
        self.flag.store(true, Ordering::Release);
        self.notify.notify_waiters();
    }

    /// Completes once cancelled.
    pub(crate) async fn cancelled(&self) {
        loop {
            let notified = self.notify.notified();
            if self.flag.load(Ordering::Acquire) {
                return;
            }
            notified.await;
        }
    }
}

/// Cancels the native side of operations it was passed to: the operation's future is dropped
/// (a request already sent is not recalled; its reply is ignored).
#[napi]
pub struct CancelToken {
    inner: Arc<Cancel>,
}

#[napi]
impl CancelToken {
    #[napi(constructor)]
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        CancelToken { inner: Arc::default() }
    }

    /// Cancels every operation that was given this token (idempotent).
    #[napi]
    pub fn cancel(&self) {
        self.inner.cancel();
    }
}

/// The per-call timeout of an operation (`timeoutMs`), if given.
pub(crate) fn timeout(ms: Option<u32>) -> Option<Duration> {
    ms.map(|ms| Duration::from_millis(ms as u64))
}

/// Runs `fut` on the SDK runtime and returns a Promise of its result. An SDK error rejects the
/// promise with a JS error carrying the RTM code; a cancelled operation rejects with a plain
/// "aborted" error once its future is dropped (the JS layer then rejects with the signal's
/// reason).
pub(crate) fn promise<'e, T, F>(env: &'e Env, cancel: Option<&CancelToken>, fut: F) -> napi::Result<Object<'e>>
where
    T: ToNapiValue + Send + 'static,
    F: Future<Output = rtm2_core::Result<T>> + Send + 'static,
{
    promise_then(env, cancel, fut, async {})
}

/// [`promise`] of an operation that answers with an [`rtm2_core::Ack`]: resolves with the
/// server's time of the answer (ms since the epoch, a number). The JS layer builds the
/// agora-rtm-sdk response object around it (it knows the channel, topic, ...), which is much
/// cheaper than building the object here through napi, property by property.
pub(crate) fn ack<'e, F>(env: &'e Env, cancel: Option<&CancelToken>, fut: F) -> napi::Result<Object<'e>>
where
    F: Future<Output = rtm2_core::Result<rtm2_core::Ack>> + Send + 'static,
{
    promise(env, cancel, async move { fut.await.map(|a| a.timestamp_ms as f64) })
}

/// [`promise`] whose cancellation first runs `on_cancel` (after dropping `fut`) and settles the
/// promise only when it has completed: e.g. the withdrawal of a lock acquisition, so that an
/// aborted acquisition can no longer be granted once its promise has settled.
pub(crate) fn promise_then<'e, T, F, C>(
    env: &'e Env,
    cancel: Option<&CancelToken>,
    fut: F,
    on_cancel: C,
) -> napi::Result<Object<'e>>
where
    T: ToNapiValue + Send + 'static,
    F: Future<Output = rtm2_core::Result<T>> + Send + 'static,
    C: Future<Output = ()> + Send + 'static,
{
    let (deferred, promise) = env.create_deferred()?;
    let cancel = cancel.map(|c| c.inner.clone());
    rtm2_core::runtime().spawn(async move {
        let res = match cancel {
            Some(c) => {
                let cancelled = tokio::select! {
                    r = fut => Some(r),
                    _ = c.cancelled() => None,
                };
                match cancelled {
                    Some(r) => r.map_err(Some),
                    None => {
                        on_cancel.await;
                        Err(None)
                    }
                }
            }
            None => fut.await.map_err(Some),
        };
        deferred.resolve(move |env: Env| match res {
            Ok(v) => Ok(v),
            Err(Some(e)) => Err(error::to_js(&env, &e)),
            Err(None) => Err(napi::Error::new(Status::Cancelled, "the operation was aborted")),
        });
    });
    Ok(promise)
}

/// A Promise already rejected with `e` (for argument errors found before any work starts, so
/// that every failure of an async method arrives the same way).
pub(crate) fn rejected<'e>(env: &'e Env, e: rtm2_core::Error) -> napi::Result<Object<'e>> {
    promise::<(), _>(env, None, async move { Err(e) })
}
