//! Sending requests: the queue that keeps call order while (re)connecting, the fast paths
//! that skip it when the link is up, and the wait for a reply within the request timeout.

use super::late::{Counted, Late, LateWatch};
use super::*;

/// A request waiting to be sent, in call order.
pub(super) struct Outgoing {
    op: &'static str,
    body: client_frame::Body,
    reply: link::Reply,
    deadline: tokio::time::Instant,
}

/// Sends queued requests in order over whichever link is up; waits while (re)connecting.
pub(super) async fn pump(
    mut rx: mpsc::UnboundedReceiver<Outgoing>,
    mut slot: watch::Receiver<Slot>,
    queued: Arc<AtomicUsize>,
) {
    while let Some(out) = rx.recv().await {
        // Counted as waiting until it is handed to a link (or given up), not just dequeued.
        let _waiting = Dequeued(&queued);
        if out.reply.is_closed() || tokio::time::Instant::now() >= out.deadline {
            continue; // the caller gave up, or timed out: it must not be carried out now
        }
        loop {
            let current = slot.borrow_and_update().clone();
            match current {
                Slot::Down(e) => {
                    let _ = out.reply.send(Err(e.with_op(out.op)));
                    break;
                }
                Slot::Up(l) if !l.is_ended() => {
                    l.submit(out.op, out.body, out.reply).await;
                    break;
                }
                _ => {}
            }
            tokio::select! {
                changed = slot.changed() => if changed.is_err() { return },
                // The caller's own timeout reports it; stop holding up the queue.
                _ = tokio::time::sleep_until(out.deadline) => break,
            }
        }
    }
}

/// Decrements the count of requests waiting to be sent when dropped.
struct Dequeued<'a>(&'a AtomicUsize);

impl Drop for Dequeued<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Inner {
    /// Queues a request now (so requests go out in call order) and returns the future of its
    /// response: the request waits (within `timeout`) for a connected link; `timeout_code` is
    /// the operation's RTM timeout code.
    pub(crate) fn submit(
        &self,
        op: &'static str,
        timeout_code: ErrorCode,
        body: client_frame::Body,
        timeout: Duration,
    ) -> impl Future<Output = Result<pb::Response>> + Send + 'static {
        match self.enqueue(op, body, timeout) {
            Ok((rx, deadline)) => Either::Left(Self::await_reply(op, timeout_code, timeout, deadline, rx)),
            Err(e) => Either::Right(std::future::ready(Err(e))),
        }
    }

    /// `submit` for a request that leaves state on the server: if it succeeds after its caller
    /// stopped waiting (timeout or cancellation), `late` withdraws or adopts it (see `late.rs`).
    pub(crate) fn submit_stateful(
        self: &Arc<Self>,
        op: &'static str,
        timeout_code: ErrorCode,
        body: client_frame::Body,
        timeout: Duration,
        late: Late,
    ) -> impl Future<Output = Result<pb::Response>> + Send + 'static {
        // Counted before it is queued: a newer request on the same target is counted after it.
        let counted = Counted::new(self, &late);
        match self.enqueue(op, body, timeout) {
            Ok((rx, deadline)) => {
                let watch = LateWatch::new(counted, op, rx, late);
                Either::Left(Self::await_watched(op, timeout_code, timeout, deadline, watch))
            }
            Err(e) => Either::Right(std::future::ready(Err(e))),
        }
    }

    /// Queues a request (or sends it at once when nothing waits before it); the receiver of
    /// its outcome and its deadline.
    fn enqueue(
        &self,
        op: &'static str,
        body: client_frame::Body,
        timeout: Duration,
    ) -> Result<(oneshot::Receiver<Result<pb::Response>>, tokio::time::Instant)> {
        if crate::runtime::forked() {
            return Err(crate::runtime::forked_error(op));
        }
        let (reply, rx) = oneshot::channel();
        let deadline = tokio::time::Instant::now() + timeout;
        // Fast path: connected and nothing waiting in the queue, so sending now keeps the call
        // order; otherwise the request joins the queue behind the others.
        let (body, reply) = match self.send_now(op, body, reply) {
            Ok(()) => return Ok((rx, deadline)),
            Err(back) => back,
        };
        let max = self.config.lock().unwrap().max_queued_requests;
        let waiting = self.queued.fetch_add(1, Ordering::AcqRel);
        if waiting >= max {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            return Err(Error::new(
                ErrorCode::NOT_CONNECTED,
                op,
                format!("{waiting} requests are already waiting to be sent (the limit is {max}); not connected?"),
            ));
        }
        if self.outbox.send(Outgoing { op, body, reply, deadline }).is_err() {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            return Err(Error::new(ErrorCode::INSTANCE_ALREADY_RELEASED, op, "the client was dropped"));
        }
        Ok((rx, deadline))
    }

    /// Sends a publish (or topic publish) and returns the wait for its acknowledgement. When the
    /// link is up and nothing is queued it goes straight to the connection and is awaited on
    /// the session's acknowledgements (no channel or task per publish); otherwise it takes the
    /// queue like any request.
    pub(crate) fn publish(
        &self,
        op: &'static str,
        timeout_code: ErrorCode,
        body: client_frame::Body,
        timeout: Duration,
    ) -> Op<Result<Ack>> {
        let mut body = Some(body);
        let fast = self.try_publish_now(op, |link| {
            match link.try_publish(op, body.take().expect("once"), timeout_code, timeout) {
                Ok(wait) => Some(wait),
                Err(back) => {
                    body = Some(back);
                    None
                }
            }
        });
        if let Some(op) = fast {
            return op;
        }
        let reply = self.submit(op, timeout_code, body.take().expect("handed back"), timeout);
        Op::lazy(async move { reply.await.map(|r| Ack::of(&r)) })
    }

    /// Runs `send` on the link if it is up and nothing is queued before it; the wait for the
    /// acknowledgement of what it sent, if it sent it. A forked child gets its error at once.
    pub(crate) fn try_publish_now(
        &self,
        op: &'static str,
        send: impl FnOnce(&Link) -> Option<link::PubWait>,
    ) -> Option<Op<Result<Ack>>> {
        if crate::runtime::forked() {
            return Some(Op::ready(Err(crate::runtime::forked_error(op))));
        }
        if self.queued.load(Ordering::Acquire) != 0 {
            return None;
        }
        let slot = self.slot.borrow();
        let Slot::Up(link) = &*slot else { return None };
        send(link).map(Op::published)
    }

    /// Sends a request at once if the link is up and no earlier request is waiting.
    // The "error" is the request handed back to take the queue instead; no boxing on the hot path.
    #[allow(clippy::result_large_err)]
    fn send_now(
        &self,
        op: &'static str,
        body: client_frame::Body,
        reply: link::Reply,
    ) -> std::result::Result<(), (client_frame::Body, link::Reply)> {
        if self.queued.load(Ordering::Acquire) != 0 {
            return Err((body, reply));
        }
        let link = match &*self.slot.borrow() {
            Slot::Up(l) => l.clone(),
            _ => return Err((body, reply)),
        };
        link.try_submit(op, body, reply)
    }

    async fn await_watched(
        op: &'static str,
        timeout_code: ErrorCode,
        timeout: Duration,
        deadline: tokio::time::Instant,
        mut watch: LateWatch,
    ) -> Result<pb::Response> {
        match tokio::time::timeout_at(deadline, watch.rx()).await {
            Ok(Ok(outcome)) => {
                watch.disarm();
                outcome
            }
            Ok(Err(_)) => {
                watch.disarm();
                Err(Error::new(ErrorCode::NOT_CONNECTED, op, "the request was dropped before it was sent"))
            }
            // Dropping `watch` hands the wait for a late reply to a task.
            Err(_) => Err(Error::timeout(timeout_code, op, format!("no reply within {} ms", timeout.as_millis()))),
        }
    }

    async fn await_reply(
        op: &'static str,
        timeout_code: ErrorCode,
        timeout: Duration,
        deadline: tokio::time::Instant,
        rx: oneshot::Receiver<Result<pb::Response>>,
    ) -> Result<pb::Response> {
        match tokio::time::timeout_at(deadline, rx).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_)) => Err(Error::new(ErrorCode::NOT_CONNECTED, op, "the request was dropped before it was sent")),
            Err(_) => Err(Error::timeout(timeout_code, op, format!("no reply within {} ms", timeout.as_millis()))),
        }
    }
}
