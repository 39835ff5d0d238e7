//! Requests that timed out (or whose caller stopped waiting) but that the server may still
//! carry out: a stalled server, a slow link. Their late replies are not dropped. A request
//! that leaves state on the server is, when it succeeds late, either
//!
//! * **withdrawn** — a message-channel subscribe or a user-metadata subscribe is undone (or a
//!   re-subscribe's options reverted), unless the application made a newer request on the same
//!   target meanwhile, whose outcome then decides (the server runs a session's requests in
//!   order); or
//! * **adopted** — a stream-channel join, a topic join or a topic subscribe becomes the
//!   client's state (a join says so with the stream channel's CONNECTED / JOIN_SUCCESS event),
//!   because the server refuses a second join while the first stands.
//!
//! Either way client and server agree afterwards, and a WARN log line names the request.
//! (Lock acquisitions have their own withdrawal, see `lock.rs`.)

use super::*;

/// What a request with lasting server-side state is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Target {
    /// A message channel (subscribe / unsubscribe).
    Channel(String),
    /// A stream channel (join / leave).
    Stream(String),
    /// A topic of a stream channel (join_topic / leave_topic).
    Topic(String, String),
    /// The publishers subscribed in a topic (subscribe_topic / unsubscribe_topic).
    TopicUsers(String, String),
    /// A user's metadata (subscribe / unsubscribe).
    UserMetadata(String),
}

/// Called with the late success of a request and whether a newer request on the same target
/// was made meanwhile.
type OnLate = Box<dyn FnOnce(&Arc<Inner>, pb::Response, bool) + Send>;

/// What to do if a request succeeds after its caller stopped waiting.
pub(crate) struct Late {
    target: Target,
    on_late: OnLate,
}

impl Late {
    pub(crate) fn new(target: Target, on_late: impl FnOnce(&Arc<Inner>, pb::Response, bool) + Send + 'static) -> Self {
        Late { target, on_late: Box::new(on_late) }
    }
}

/// Counts a request as in flight for its target until dropped.
pub(super) struct Counted {
    inner: Weak<Inner>,
    target: Target,
}

impl Counted {
    pub(super) fn new(inner: &Arc<Inner>, late: &Late) -> Self {
        let target = late.target.clone();
        *inner.in_flight.lock().unwrap().entry(target.clone()).or_insert(0) += 1;
        Counted { inner: Arc::downgrade(inner), target }
    }

    /// Whether another request on the same target is in flight (it was made after this one:
    /// earlier ones were answered before this reply, the server answering in order).
    fn superseded(&self, inner: &Inner) -> bool {
        inner.in_flight.lock().unwrap().get(&self.target).is_some_and(|n| *n > 1)
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        let Some(inner) = self.inner.upgrade() else { return };
        let mut map = inner.in_flight.lock().unwrap();
        if let Some(n) = map.get_mut(&self.target) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.target);
            }
        }
    }
}

/// The wait for the reply of a request with a [`Late`] action. Dropped before the reply came
/// (the caller's timeout, or its cancellation), it hands the wait to a task that applies the
/// action if the reply is a success.
pub(super) struct LateWatch {
    armed: Option<(oneshot::Receiver<Result<pb::Response>>, Counted, Late, &'static str)>,
}

impl LateWatch {
    pub(super) fn new(
        counted: Counted,
        op: &'static str,
        rx: oneshot::Receiver<Result<pb::Response>>,
        late: Late,
    ) -> Self {
        LateWatch { armed: Some((rx, counted, late, op)) }
    }

    pub(super) fn rx(&mut self) -> &mut oneshot::Receiver<Result<pb::Response>> {
        &mut self.armed.as_mut().expect("armed until the reply or the drop").0
    }

    /// The reply came in time: nothing to do later.
    pub(super) fn disarm(&mut self) {
        self.armed = None;
    }
}

impl Drop for LateWatch {
    fn drop(&mut self) {
        let Some((rx, counted, late, op)) = self.armed.take() else { return };
        runtime().spawn(async move {
            // Resolves when the reply comes, or with an error when the request was never sent
            // or its session ended (then the server holds nothing of it).
            let Ok(Ok(resp)) = rx.await else { return };
            let Some(inner) = counted.inner.upgrade() else { return };
            let superseded = counted.superseded(&inner);
            tracing::warn!(target: LOG_TARGET,
                op,
                target = ?late.target,
                superseded,
                "the server carried out a request after its caller stopped waiting; applying it to the client's state"
            );
            (late.on_late)(&inner, resp, superseded);
        });
    }
}

impl Inner {
    /// Sends a request made by the client itself to undo or redo state (no caller awaits it):
    /// its outcome is only logged.
    pub(crate) fn send_corrective(&self, op: &'static str, timeout_code: ErrorCode, body: client_frame::Body) {
        let reply = self.submit(op, timeout_code, body, self.request_timeout());
        runtime().spawn(async move {
            match reply.await {
                Ok(_) => tracing::info!(target: LOG_TARGET, op, "corrected the state left by a late reply"),
                Err(e) => tracing::warn!(target: LOG_TARGET, op, error = %e, "could not correct the state left by a late reply"),
            }
        });
    }
}
