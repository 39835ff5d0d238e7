//! One live connection to the server: the link (its queue, request submission, ending). Its
//! parts: `connect` (dial, handshake, login), `io` (writer, reader, keepalive) and `session`
//! (what outlives a connection: pending requests, publish replay).

use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{Notify, oneshot, watch};

use rtm2_proto::enums::LinkStateChangeReason;
use rtm2_proto::fastpath::PublishRef;
use rtm2_proto::frame::{self, FrameDecoder};
use rtm2_proto::pb::{self, client_frame, server_frame};
use rtm2_proto::{ErrorCode, limits, now_ms};

use crate::config::{ClientConfig, Endpoint};
use crate::error::{Error, Result};

mod connect;
mod io;
mod session;
#[cfg(test)]
mod tests;

pub(crate) use connect::{ConnectError, establish};
use io::*;
pub(crate) use session::{PubWait, SessionState};

trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// Bytes queued to the writer, at most (a sender waits, or takes the slow path, beyond this).
const OUT_QUEUE_BYTES: usize = 1024 * 1024;
/// The same for publishes on the fast path. Larger: a publisher that outruns the connection
/// would otherwise move onto the queued path, which holds as much (up to
/// `max_queued_requests` requests) at several times the CPU per publish.
const PUBLISH_QUEUE_BYTES: usize = 16 * 1024 * 1024;
/// The writer lets other ready tasks run before taking less than this (see `writer`), and in a
/// burst it waits for this much (see `WRITER_BURST_BYTES`).
const WRITER_COALESCE_BYTES: usize = 64 * 1024;
/// Bytes queued while the writer was writing that make a burst: the writer then waits for
/// `WRITER_COALESCE_BYTES` (or for a caller waiting on a publish's reply, a request other than
/// a publish, or `WRITER_HOLD_MAX`) before the next write. A write costs the same system call
/// and loopback/network processing whether it carries 10 KB or 60 KB: at millions of publishes
/// a second, writing as fast as the writer can go meant 13 KB writes and three times the
/// system calls of full ones. Slower streams never queue this much during one write and are
/// written at once, as before.
const WRITER_BURST_BYTES: usize = 4 * 1024;
/// The longest a burst's last frames wait for more to come (when nobody waits for their reply:
/// a caller that awaits a publish has it written at once).
const WRITER_HOLD_MAX: Duration = Duration::from_millis(1);
/// Writer buffers grown above this are released once the writer has had nothing to write for
/// `WRITER_RELEASE_AFTER`. Not sooner: during a burst the two buffers are refilled at once, and
/// a buffer released after each write would be regrown (copied, and its new pages faulted in)
/// for the next one.
const WRITER_KEEP_BYTES: usize = 256 * 1024;
const WRITER_RELEASE_AFTER: Duration = Duration::from_millis(500);

/// Why a link ended.
#[derive(Debug, Clone)]
pub(crate) struct LinkEnd {
    /// Goodbye sent by the server, if any: (RTM code, link reason, text).
    pub goodbye: Option<(u32, LinkStateChangeReason, String)>,
    /// Local description when there was no goodbye.
    pub detail: String,
    /// The local keepalive gave up.
    pub keepalive_timeout: bool,
}

/// Frames the reader hands to the client (everything but responses and pongs).
pub(crate) enum Inbound {
    Message(crate::types::MessageEvent),
    /// Consecutive messages that arrived together (each an `Event::Message`), handed over as
    /// one batch.
    Messages(Vec<crate::Event>),
    Topic(pb::TopicEvent),
    TokenWillExpire(pb::TokenWillExpire),
    StreamClosed(pb::StreamChannelClosed),
    Presence(pb::PresenceEvent),
    Storage(pb::StorageEvent),
    Lock(pb::LockEvent),
}

/// Where the reader hands inbound frames (called on the reader task; must not block).
pub(crate) type OnInbound = Arc<dyn Fn(Inbound) + Send + Sync>;

/// Encoded frames waiting for the connection's writer task.
#[derive(Default)]
struct OutQueue {
    buf: BytesMut,
    /// The writer found nothing to send and waits for `Link::out_ready`.
    writer_idle: bool,
    /// Someone waits for room (`Link::out_room`).
    room_wanted: bool,
    /// When a caller last wrote to the connection itself (see `Link::push_at`).
    last_direct: Option<tokio::time::Instant>,
}

/// A publish that finds the writer asleep and comes at least this long after the previous
/// direct write is written to the socket by its caller: sparse traffic then costs no thread
/// wake-up (latency); dense traffic still goes through the writer, in batches (throughput).
const DIRECT_WRITE_GAP: Duration = Duration::from_micros(50);

/// Largest queue a caller writes itself.
const DIRECT_WRITE_MAX: usize = 16 * 1024;

/// The connection's write half. The writer task holds the lock while it writes; a caller that
/// finds the writer asleep (so the lock free) may write a sparse frame itself.
type SharedWriter = Arc<tokio::sync::Mutex<tokio::io::WriteHalf<Pin<Box<dyn Io>>>>>;

/// Bytes `w` takes now without waiting (0 when it would wait or failed: the writer retries
/// and reports errors). A would-wait leaves no waker of ours behind that matters: the writer,
/// asleep, registers its own when it next writes.
fn write_now(w: &SharedWriter, b: &[u8]) -> usize {
    let Ok(mut w) = w.try_lock() else { return 0 };
    let mut cx = Context::from_waker(Waker::noop());
    match Pin::new(&mut *w).poll_write(&mut cx, b) {
        Poll::Ready(Ok(n)) => n,
        _ => 0,
    }
}

pub(crate) struct Link {
    /// Frames for the writer. Request ids are assigned under this lock, so they reach the
    /// server in increasing order (it skips an id not above the last one it processed).
    out: Mutex<OutQueue>,
    out_ready: Notify,
    out_room: Notify,
    /// The write half, for callers' direct writes (plain TCP and in-memory connections: TLS
    /// buffers inside its stream and needs the writer to flush).
    direct: Option<SharedWriter>,
    session: Arc<SessionState>,
    end: watch::Sender<Option<LinkEnd>>,
    /// `end` is set (set before it, so that whoever sees `end` set sees this too).
    ended: AtomicBool,
    pub login: pb::LoginResult,
    /// The server's time when it logged this connection in, ms.
    pub login_time_ms: u64,
    tasks: Mutex<Vec<tokio::task::AbortHandle>>,
    /// `WRITER_HOLD_MAX` (longer in tests, to tell a hold from its end).
    hold_max: Duration,
}

fn lost(op: &'static str, detail: &str) -> Error {
    Error::new(ErrorCode::NOT_CONNECTED, op, format!("the connection was lost before a reply arrived ({detail})"))
}

/// Where a request's outcome goes: the operation name and the caller's reply channel.
pub(crate) type Reply = oneshot::Sender<Result<pb::Response>>;

impl Link {
    /// Appends under the queue lock if there is room (an empty queue always takes a frame),
    /// then wakes the writer if it was idle. `None` when full.
    fn push<R>(&self, write: impl FnOnce(&mut BytesMut) -> R) -> Option<R> {
        self.push_at(false, write)
    }

    /// `push` for a publish (`direct`): its queue limit is `PUBLISH_QUEUE_BYTES`, and a sparse
    /// frame (see `DIRECT_WRITE_GAP`) that finds the writer asleep may be written to the socket
    /// here, without waking it.
    fn push_at<R>(&self, direct: bool, write: impl FnOnce(&mut BytesMut) -> R) -> Option<R> {
        let mut q = self.out.lock().unwrap();
        if q.buf.len() >= if direct { PUBLISH_QUEUE_BYTES } else { OUT_QUEUE_BYTES } {
            q.room_wanted = true;
            return None;
        }
        let r = write(&mut q.buf);
        if !q.writer_idle {
            // A full batch ends a burst's hold, and so does any other request (a subscribe, a
            // lock...): those are not to wait behind a burst of publishes.
            if (q.buf.len() >= WRITER_COALESCE_BYTES || !direct) && self.session.writer_holding.load(Ordering::SeqCst) {
                self.session.writer_holding.store(false, Ordering::SeqCst);
                drop(q);
                self.out_ready.notify_one();
            }
            return Some(r);
        }
        // The writer is asleep, so nothing else writes to the socket while this lock is held.
        if let (true, Some(d)) = (direct, &self.direct)
            && q.buf.len() <= DIRECT_WRITE_MAX
            && let now = tokio::time::Instant::now()
            && q.last_direct.is_none_or(|t| now.saturating_duration_since(t) >= DIRECT_WRITE_GAP)
        {
            q.last_direct = Some(now);
            let sent = write_now(d, &q.buf);
            if sent == q.buf.len() {
                q.buf.clear();
                return Some(r);
            }
            q.buf.advance(sent);
        }
        q.writer_idle = false;
        drop(q);
        self.out_ready.notify_one();
        Some(r)
    }

    /// Registers a request and queues its frame (waiting only for room in the writer queue).
    /// The outcome — the response (non-zero codes mapped to errors) or a lost-link error —
    /// goes to `reply` exactly once.
    pub(crate) async fn submit(&self, op: &'static str, body: client_frame::Body, reply: Reply) {
        let mut job = Some((body, reply));
        loop {
            let room = self.out_room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            if self.is_ended() {
                // The request stays pending: it is resent when the session is resumed, or
                // failed when it cannot be.
                let (body, reply) = job.take().expect("still ours");
                self.session.register_unsent(op, body, reply);
                return;
            }
            let session = &self.session;
            let pushed = self.push(|buf| {
                let (body, reply) = job.take().expect("still ours");
                session.register_into(buf, op, body, reply)
            });
            if pushed.is_some() {
                return;
            }
            tokio::select! {
                _ = room => {}
                _ = self.ended() => {}
            }
        }
    }

    /// Queues a request if there is room right now; otherwise hands it back.
    // The "error" is the request handed back to take the queue instead; no boxing on the hot path.
    #[allow(clippy::result_large_err)]
    pub(crate) fn try_submit(
        &self,
        op: &'static str,
        body: client_frame::Body,
        reply: Reply,
    ) -> std::result::Result<(), (client_frame::Body, Reply)> {
        if self.is_ended() {
            return Err((body, reply));
        }
        let mut job = Some((body, reply));
        let session = &self.session;
        self.push(|buf| {
            let (body, reply) = job.take().expect("still ours");
            session.register_into(buf, op, body, reply)
        })
        .ok_or_else(|| job.take().expect("not taken when full"))
    }

    /// Sends a publish if there is room right now (its outcome is awaited with the returned
    /// [`PubWait`]); otherwise hands it back.
    #[allow(clippy::result_large_err)]
    pub(crate) fn try_publish(
        &self,
        op: &'static str,
        body: client_frame::Body,
        timeout_code: ErrorCode,
        timeout: Duration,
    ) -> std::result::Result<PubWait, client_frame::Body> {
        if self.is_ended() {
            return Err(body);
        }
        let session = &self.session;
        match self.push_at(true, |buf| session.register_pub_into(buf, &body)) {
            Some(id) => Ok(PubWait::new(&self.session, id, op, timeout_code, timeout)),
            None => Err(body),
        }
    }

    /// Sends a publish to a message or user channel, written from its parts, if there is room
    /// right now; `None` otherwise (nothing was sent).
    pub(crate) fn try_publish_ref(
        &self,
        op: &'static str,
        p: &PublishRef<'_>,
        timeout_code: ErrorCode,
        timeout: Duration,
    ) -> Option<PubWait> {
        if self.is_ended() {
            return None;
        }
        let session = &self.session;
        let id = self.push_at(true, |buf| session.register_pub_ref_into(buf, p))?;
        Some(PubWait::new(&self.session, id, op, timeout_code, timeout))
    }

    /// Queues already-encoded frames (requests resent after a resume) in order.
    pub(crate) async fn resend(&self, frames: Vec<Bytes>) {
        for f in frames {
            loop {
                let room = self.out_room.notified();
                tokio::pin!(room);
                room.as_mut().enable();
                if self.is_ended() || self.push(|buf| buf.extend_from_slice(&f)).is_some() {
                    break;
                }
                tokio::select! {
                    _ = room => {}
                    _ = self.ended() => {}
                }
            }
        }
    }

    /// Sends a request and waits for its response (no timeout here: callers apply theirs).
    pub(crate) async fn request(&self, op: &'static str, body: client_frame::Body) -> Result<pb::Response> {
        let (tx, rx) = oneshot::channel();
        self.submit(op, body, tx).await;
        rx.await.unwrap_or_else(|_| Err(lost(op, "link closed")))
    }

    /// Sends a frame without a reply (dropped when the queue is full).
    fn send_nowait(&self, body: client_frame::Body) {
        let f = pb::ClientFrame { request_id: 0, body: Some(body) };
        let _ = self.push(|buf| frame::write_client_frame(buf, &f));
    }

    /// Resolves when the link ended, with why.
    pub(crate) async fn ended(&self) -> LinkEnd {
        let mut rx = self.end.subscribe();
        let r = rx.wait_for(|e| e.is_some()).await.map(|e| e.clone());
        match r {
            Ok(Some(e)) => e,
            _ => LinkEnd { goodbye: None, detail: "link dropped".into(), keepalive_timeout: false },
        }
    }

    pub(crate) fn is_ended(&self) -> bool {
        // A plain load: this is asked on every publish, and a read lock of `end` writes to
        // memory that other threads read too.
        self.ended.load(Ordering::Acquire)
    }

    fn finish(&self, end: LinkEnd) {
        self.ended.store(true, Ordering::Release);
        let first = self.end.send_if_modified(|e| {
            if e.is_none() {
                *e = Some(end.clone());
                true
            } else {
                false
            }
        });
        if first {
            tracing::debug!(detail = %end.detail, "link ended");
        }
    }

    /// Closes the connection from this side.
    pub(crate) fn close(&self, detail: &str) {
        self.finish(LinkEnd { goodbye: None, detail: detail.into(), keepalive_timeout: false });
        for t in self.tasks.lock().unwrap().drain(..) {
            t.abort();
        }
    }

    /// Sends Logout and waits briefly for the reply, then closes; the server's time of its
    /// reply, if it answered.
    pub(crate) async fn logout(&self) -> Option<u64> {
        let reply = tokio::time::timeout(
            Duration::from_secs(2),
            self.request("logout", client_frame::Body::Logout(pb::Logout {})),
        )
        .await;
        self.close("logged out");
        match reply {
            Ok(Ok(r)) => Some(r.server_time_ms),
            _ => None,
        }
    }
}

impl Link {
    fn close_with(&self, end: LinkEnd) {
        self.finish(end);
        for t in self.tasks.lock().unwrap().drain(..) {
            t.abort();
        }
    }
}
