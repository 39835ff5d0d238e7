//! One live connection to the server: handshake, login, request/response matching, keepalive,
//! a batching writer and a reader that routes events.

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

struct Pending {
    op: &'static str,
    reply: Reply,
    frame: Bytes,
    /// A publish: answered by a `PublishAck` covering its id (or by a failure Response).
    publish: bool,
}

/// A publish sent on the fast path: its caller waits on a [`PubWait`] (no channel per publish),
/// and its frame is kept in `PendingSet::replay` to be resent after a resume.
struct PendingPub {
    id: u64,
    /// Bytes of its frame in `PendingSet::replay` (frames are kept in id order).
    len: u32,
    topic: bool,
    /// Nobody waits for it any more (the caller gave up, or it was answered on its own): not
    /// resent; its bytes stay until the ack watermark passes it.
    gone: bool,
}

/// The frames of unacknowledged fast-path publishes, in order, in fixed-size blocks: appending
/// never moves what is there (a single growing buffer would be copied each time it is
/// compacted or grown, which with tens of thousands of publishes in flight meant megabytes),
/// and acknowledged blocks are reused. A frame never spans two blocks.
#[derive(Default)]
struct Replay {
    blocks: VecDeque<BytesMut>,
    /// Bytes of the first block already acknowledged.
    front: usize,
    /// Emptied blocks kept for the next ones needed (at most `REPLAY_SPARES`): an ack frees
    /// several blocks at once, and blocks given back to the allocator as they are acknowledged
    /// came back as fresh pages to fault in while publishing at full speed.
    spare: Vec<BytesMut>,
}

const REPLAY_BLOCK: usize = 64 * 1024;
const REPLAY_SPARES: usize = 64;

impl Replay {
    fn push(&mut self, frame: &[u8]) {
        if let Some(b) = self.blocks.back_mut()
            && b.capacity() - b.len() >= frame.len()
        {
            b.extend_from_slice(frame);
            return;
        }
        let mut b = match self.spare.pop() {
            Some(b) if b.capacity() >= frame.len() => b,
            _ => BytesMut::with_capacity(REPLAY_BLOCK.max(frame.len())),
        };
        b.extend_from_slice(frame);
        self.blocks.push_back(b);
    }

    /// Drops the first `len` bytes (whole frames).
    fn advance(&mut self, mut len: usize) {
        while len > 0 {
            let Some(first) = self.blocks.front() else { return };
            let left = first.len() - self.front;
            if len < left {
                self.front += len;
                return;
            }
            len -= left;
            let mut b = self.blocks.pop_front().expect("checked");
            self.front = 0;
            if b.capacity() == REPLAY_BLOCK && self.spare.len() < REPLAY_SPARES {
                b.clear();
                self.spare.push(b);
            }
        }
    }

    /// The frames, given their lengths in order.
    fn frames<'a>(&'a self, lens: impl Iterator<Item = usize> + 'a) -> impl Iterator<Item = &'a [u8]> + 'a {
        let (mut block, mut at) = (0, self.front);
        lens.map(move |len| {
            if at >= self.blocks[block].len() {
                block += 1;
                at = 0;
            }
            let f = &self.blocks[block][at..at + len];
            at += len;
            f
        })
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.blocks.iter().enumerate().all(|(i, b)| b.len() == if i == 0 { self.front } else { 0 })
    }
}

/// Requests awaiting their answer.
#[derive(Default)]
struct PendingSet {
    /// Requests answered by a Response, and publishes sent through the queue (with a reply
    /// channel); by id.
    map: std::collections::BTreeMap<u64, Pending>,
    /// How many entries of `map` are publishes (an ack scans `map` only when there are some).
    map_publishes: usize,
    /// Fast-path publishes, in id order.
    pubs: VecDeque<PendingPub>,
    /// Their frames, in the same order.
    replay: Replay,
    /// Outcomes of fast-path publishes answered by their own Response (failures, mostly) or
    /// failed by a reset, until their waiter takes them.
    answered: HashMap<u64, Result<()>>,
    /// Wakers of fast-path publishes being awaited.
    waiters: Vec<(u64, Waker)>,
}

/// The client's view of its server session. It outlives connections: requests stay pending
/// across a drop and are resent (same ids, so the server runs each once) when the session is
/// resumed, and `last_seq` tells the server where to resume.
#[derive(Default)]
pub(crate) struct SessionState {
    /// Server session id (0 = none yet).
    pub id: AtomicU64,
    /// Sequence number of the last event received.
    pub last_seq: AtomicU64,
    next_id: AtomicU64,
    /// Every fast-path publish with an id up to this one is answered: acknowledged, unless its
    /// id is in `PendingSet::answered`.
    pubs_answered: AtomicU64,
    /// `PendingSet::answered` is not empty (the fast check then takes the lock).
    any_answered: AtomicBool,
    pending: Mutex<PendingSet>,
    /// The connection's writer holds a burst's frames back for a fuller write (see
    /// `hold_for_batch`): the push that fills a batch or is not a publish ends the hold, and so
    /// does a publish whose caller waits for its reply. Raised and lowered under the link's
    /// queue lock, which orders it against pushes.
    writer_holding: AtomicBool,
    flush_wanted: Notify,
}

impl SessionState {
    /// Records event `seq` as received; false if it was received before (resent after a
    /// resume). Unsequenced frames (0) are always accepted.
    fn accept_seq(&self, seq: u64) -> bool {
        if seq == 0 {
            return true;
        }
        let last = self.last_seq.load(Ordering::Relaxed);
        if seq <= last {
            return false;
        }
        if seq != last + 1 {
            tracing::warn!(expected = last + 1, got = seq, "gap in the server's sequence numbers");
        }
        self.last_seq.store(seq, Ordering::Relaxed);
        true
    }

    fn next_request_id(&self) -> u64 {
        // Request id 1 is the login, which is not part of the session.
        self.next_id.fetch_add(1, Ordering::Relaxed) + 2
    }

    /// Encodes a request into `out` and registers it (the caller holds the queue lock, so ids
    /// reach the server in increasing order).
    fn register_into(&self, out: &mut BytesMut, op: &'static str, body: client_frame::Body, reply: Reply) {
        let id = self.next_request_id();
        let publish = matches!(body, client_frame::Body::Publish(_) | client_frame::Body::PublishTopic(_));
        let start = out.len();
        frame::write_client_frame(out, &pb::ClientFrame { request_id: id, body: Some(body) });
        let frame = Bytes::copy_from_slice(&out[start..]);
        let mut p = self.pending.lock().unwrap();
        p.map_publishes += publish as usize;
        p.map.insert(id, Pending { op, reply, frame, publish });
    }

    /// Registers a request that cannot be sent now (the link is down): it is resent after a
    /// resume, or failed by `reset`.
    fn register_unsent(&self, op: &'static str, body: client_frame::Body, reply: Reply) {
        let mut scratch = BytesMut::new();
        self.register_into(&mut scratch, op, body, reply);
    }

    /// Encodes a fast-path publish into `out` and registers it; returns its id.
    fn register_pub_into(&self, out: &mut BytesMut, body: &client_frame::Body) -> u64 {
        let topic = matches!(body, client_frame::Body::PublishTopic(_));
        self.register_pub_with(out, topic, |out, request_id| frame::write_client_frame_parts(out, request_id, body))
    }

    /// Writes a publish to a message or user channel straight from its parts (no `pb::Publish`
    /// built) and registers it; returns its id.
    fn register_pub_ref_into(&self, out: &mut BytesMut, p: &PublishRef<'_>) -> u64 {
        self.register_pub_with(out, false, |out, request_id| {
            rtm2_proto::fastpath_client::write_publish_frame(out, request_id, p)
        })
    }

    fn register_pub_with(&self, out: &mut BytesMut, topic: bool, write: impl FnOnce(&mut BytesMut, u64)) -> u64 {
        let id = self.next_request_id();
        let start = out.len();
        write(out, id);
        let frame = &out[start..];
        let mut p = self.pending.lock().unwrap();
        p.replay.push(frame);
        p.pubs.push_back(PendingPub { id, len: frame.len() as u32, topic, gone: false });
        id
    }

    /// Completes every pending publish with an id up to `up_to` (successful: failures were
    /// answered by their own Response before).
    fn ack_publishes(&self, up_to: u64) {
        let mut done: Vec<Pending> = Vec::new();
        let mut wake: Vec<Waker> = Vec::new();
        {
            let mut p = self.pending.lock().unwrap();
            let mut acked_bytes = 0;
            while p.pubs.front().is_some_and(|f| f.id <= up_to) {
                acked_bytes += p.pubs.pop_front().expect("checked").len as usize;
            }
            p.replay.advance(acked_bytes);
            if up_to > self.pubs_answered.load(Ordering::Relaxed) {
                self.pubs_answered.store(up_to, Ordering::Release);
            }
            if !p.waiters.is_empty() {
                p.waiters.retain(|(id, w)| {
                    if *id <= up_to {
                        wake.push(w.clone());
                        false
                    } else {
                        true
                    }
                });
            }
            if p.map_publishes > 0 {
                let ids: Vec<u64> = p.map.range(..=up_to).filter(|(_, e)| e.publish).map(|(id, _)| *id).collect();
                for id in ids {
                    if let Some(e) = p.map.remove(&id) {
                        done.push(e);
                    }
                }
                p.map_publishes -= done.len();
            }
        }
        for w in wake {
            w.wake();
        }
        for e in done {
            let _ = e.reply.send(Ok(pb::Response::default()));
        }
    }

    fn complete(&self, r: pb::Response) {
        let mut p = self.pending.lock().unwrap();
        if let Some(e) = p.map.remove(&r.request_id) {
            p.map_publishes -= e.publish as usize;
            drop(p);
            let outcome = if r.code == 0 {
                Ok(r)
            } else {
                let code = ErrorCode::from_u32(r.code).unwrap_or(ErrorCode::INVALID_PARAMETER);
                Err(Error::new(code, e.op, r.reason))
            };
            let _ = e.reply.send(outcome);
            return;
        }
        // A fast-path publish answered on its own: a failure (a success would come as an ack).
        let Ok(i) = p.pubs.binary_search_by_key(&r.request_id, |e| e.id) else { return };
        let e = &mut p.pubs[i];
        let (id, was_gone, op) = (e.id, e.gone, if e.topic { "publish_topic" } else { "publish" });
        e.gone = true;
        if !was_gone {
            // (A success comes this way only from a server that does not batch publish acks.)
            let outcome = match r.code {
                0 => Ok(()),
                c => Err(Error::new(ErrorCode::from_u32(c).unwrap_or(ErrorCode::INVALID_PARAMETER), op, r.reason)),
            };
            p.answered.insert(id, outcome);
            self.any_answered.store(true, Ordering::Release);
        }
        let wake = take_waiter(&mut p.waiters, id);
        drop(p);
        if let Some(w) = wake {
            w.wake();
        }
    }

    /// Frames of the requests still awaited, in id order (requests whose caller gave up are
    /// dropped instead).
    pub(crate) fn unanswered(&self) -> Vec<Bytes> {
        let mut p = self.pending.lock().unwrap();
        let mut dropped_publishes = 0;
        p.map.retain(|_, e| {
            let keep = !e.reply.is_closed();
            dropped_publishes += (!keep && e.publish) as usize;
            keep
        });
        p.map_publishes -= dropped_publishes;
        let mut frames: Vec<(u64, Bytes)> = p.map.iter().map(|(id, e)| (*id, e.frame.clone())).collect();
        let lens = p.pubs.iter().map(|e| e.len as usize);
        for (e, f) in p.pubs.iter().zip(p.replay.frames(lens)) {
            if !e.gone {
                frames.push((e.id, Bytes::copy_from_slice(f)));
            }
        }
        frames.sort_by_key(|(id, _)| *id);
        frames.into_iter().map(|(_, f)| f).collect()
    }

    /// Fails every pending request and forgets the session (it cannot be resumed).
    pub(crate) fn reset(&self, detail: &str) {
        let (map, wake) = {
            let mut p = self.pending.lock().unwrap();
            let map = std::mem::take(&mut p.map);
            p.map_publishes = 0;
            let pubs = std::mem::take(&mut p.pubs);
            p.replay = Replay::default();
            for e in pubs.into_iter().filter(|e| !e.gone) {
                let op = if e.topic { "publish_topic" } else { "publish" };
                p.answered.insert(e.id, Err(lost(op, detail)));
            }
            if !p.answered.is_empty() {
                self.any_answered.store(true, Ordering::Release);
            }
            (map, std::mem::take(&mut p.waiters))
        };
        for (_, w) in wake {
            w.wake();
        }
        for e in map.into_values() {
            let _ = e.reply.send(Err(lost(e.op, detail)));
        }
        self.id.store(0, Ordering::Relaxed);
        self.last_seq.store(0, Ordering::Relaxed);
    }

    /// The outcome of fast-path publish `id`, if it has one; otherwise registers `waker`.
    fn pub_outcome(&self, id: u64, waker: Option<&Waker>) -> Option<Result<()>> {
        if !self.any_answered.load(Ordering::Acquire) && self.pubs_answered.load(Ordering::Acquire) >= id {
            return Some(Ok(()));
        }
        let mut p = self.pending.lock().unwrap();
        if let Some(outcome) = p.answered.remove(&id) {
            if p.answered.is_empty() {
                self.any_answered.store(false, Ordering::Release);
            }
            take_waiter(&mut p.waiters, id);
            return Some(outcome);
        }
        if self.pubs_answered.load(Ordering::Acquire) >= id {
            take_waiter(&mut p.waiters, id);
            return Some(Ok(()));
        }
        if let Some(w) = waker {
            match p.waiters.iter_mut().find(|(i, _)| *i == id) {
                Some((_, old)) => old.clone_from(w),
                None => p.waiters.push((id, w.clone())),
            }
            drop(p);
            // Its caller waits: frames held back for a fuller write go out now. (The waiter is
            // registered before this check, and the writer checks for waiters after raising the
            // flag: one of the two sees the other.)
            if self.writer_holding.load(Ordering::SeqCst) {
                self.flush_wanted.notify_one();
            }
        }
        None
    }

    /// The waiter of publish `id` went away before its outcome.
    fn abandon_pub(&self, id: u64) {
        let mut p = self.pending.lock().unwrap();
        take_waiter(&mut p.waiters, id);
        if p.answered.remove(&id).is_some() && p.answered.is_empty() {
            self.any_answered.store(false, Ordering::Release);
        }
        if let Ok(i) = p.pubs.binary_search_by_key(&id, |e| e.id) {
            p.pubs[i].gone = true;
        }
    }
}

fn take_waiter(waiters: &mut Vec<(u64, Waker)>, id: u64) -> Option<Waker> {
    let i = waiters.iter().position(|(w, _)| *w == id)?;
    Some(waiters.swap_remove(i).1)
}

/// The outcome of a publish sent on the fast path: acknowledged (by a `PublishAck` covering its
/// id), failed (its own Response, or the session was lost), or timed out.
pub(crate) struct PubWait {
    session: Arc<SessionState>,
    id: u64,
    op: &'static str,
    timeout_code: ErrorCode,
    timeout: Duration,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    done: bool,
}

impl PubWait {
    fn new(session: &Arc<SessionState>, id: u64, op: &'static str, timeout_code: ErrorCode, timeout: Duration) -> Self {
        PubWait { session: session.clone(), id, op, timeout_code, timeout, sleep: None, done: false }
    }
}

impl Future for PubWait {
    type Output = Result<()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let this = &mut *self;
        if this.done {
            panic!("PubWait polled after completion");
        }
        if let Some(r) = this.session.pub_outcome(this.id, Some(cx.waker())) {
            this.done = true;
            return Poll::Ready(r);
        }
        let timeout = this.timeout;
        let sleep = this.sleep.get_or_insert_with(|| {
            // The timeout runs from the first wait (the clock is not read per publish: most are
            // answered before anyone waits). The timer needs a runtime context: the caller's,
            // or the SDK's.
            let _guard = tokio::runtime::Handle::try_current().is_err().then(|| crate::runtime::runtime().enter());
            Box::pin(tokio::time::sleep(timeout))
        });
        if sleep.as_mut().poll(cx).is_ready() {
            // The outcome may have landed just now.
            if let Some(r) = this.session.pub_outcome(this.id, None) {
                this.done = true;
                return Poll::Ready(r);
            }
            this.done = true;
            this.session.abandon_pub(this.id);
            return Poll::Ready(Err(Error::timeout(
                this.timeout_code,
                this.op,
                format!("no reply within {} ms", this.timeout.as_millis()),
            )));
        }
        Poll::Pending
    }
}

impl Drop for PubWait {
    fn drop(&mut self) {
        if !self.done {
            self.session.abandon_pub(self.id);
        }
    }
}

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

    /// Sends Logout and waits briefly for the reply, then closes.
    pub(crate) async fn logout(&self) {
        let _ = tokio::time::timeout(
            Duration::from_secs(2),
            self.request("logout", client_frame::Body::Logout(pb::Logout {})),
        )
        .await;
        self.close("logged out");
    }
}

fn tls_connector(config: &ClientConfig) -> std::io::Result<tokio_rustls::TlsConnector> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    match &config.tls_ca_file {
        Some(path) => {
            let bad = |e: &dyn std::fmt::Display| {
                std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("TLS CA file {}: {e}", path.display()))
            };
            for cert in CertificateDer::pem_file_iter(path).map_err(|e| bad(&e))? {
                roots.add(cert.map_err(|e| bad(&e))?).map_err(|e| bad(&e))?;
            }
        }
        None => {
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
        }
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| std::io::Error::other(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(tls)))
}

/// Connects; also whether callers may write to the connection directly (not through TLS).
async fn open(config: &ClientConfig) -> std::io::Result<(Pin<Box<dyn Io>>, bool)> {
    let endpoint = &config.endpoint;
    Ok(match endpoint {
        Endpoint::Tls(addr) => {
            let connector = tls_connector(config)?;
            let host = addr.rsplit_once(':').map_or(addr.as_str(), |(h, _)| h).trim_matches(['[', ']']);
            let name = rustls_pki_types::ServerName::try_from(host.to_string()).map_err(|e| {
                std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("server name {host:?}: {e}"))
            })?;
            let s = tokio::net::TcpStream::connect(addr.as_str()).await?;
            s.set_nodelay(true)?;
            (Box::pin(connector.connect(name, s).await?), false)
        }
        Endpoint::Embedded => (Box::pin(crate::embedded::server().connect_in_memory()), true),
        Endpoint::Server(s) => (Box::pin(s.connect_in_memory()), true),
        Endpoint::Tcp(addr) => {
            let s = tokio::net::TcpStream::connect(addr.as_str()).await?;
            s.set_nodelay(true)?;
            (Box::pin(s), true)
        }
    })
}

/// A login failure: `fatal` ones are not retried (bad token, version, ...).
pub(crate) struct ConnectError {
    pub error: Error,
    pub fatal: bool,
    pub reason: LinkStateChangeReason,
}

fn transient(detail: String) -> ConnectError {
    ConnectError {
        error: Error::new(ErrorCode::LOGIN_TIMEOUT, "login", detail),
        fatal: false,
        reason: LinkStateChangeReason::CONNECTION_ERROR,
    }
}

fn reason_for_code(code: ErrorCode) -> LinkStateChangeReason {
    match code {
        ErrorCode::TOKEN_EXPIRED => LinkStateChangeReason::TOKEN_EXPIRED,
        ErrorCode::INVALID_TOKEN => LinkStateChangeReason::INVALID_TOKEN,
        ErrorCode::INCONSISTENT_APPID | ErrorCode::INVALID_APP_ID => LinkStateChangeReason::INCONSISTENT_APP_ID,
        ErrorCode::INVALID_USER_ID => LinkStateChangeReason::INVALID_USER_ID,
        ErrorCode::SERVICE_NOT_SUPPORTED => LinkStateChangeReason::SERVICE_NOT_SUPPORTED,
        _ => LinkStateChangeReason::LOGIN_REJECTED,
    }
}

/// Connects, says Hello, logs in, and starts the reader, writer and keepalive tasks.
pub(crate) async fn establish(
    config: &ClientConfig,
    token: &str,
    inbound: OnInbound,
    session: Arc<SessionState>,
) -> std::result::Result<Arc<Link>, ConnectError> {
    let resume = match session.id.load(Ordering::Relaxed) {
        0 => None,
        id => Some(pb::Resume { session_id: id, last_seq: session.last_seq.load(Ordering::Relaxed) }),
    };
    let (io, direct_ok) = open(config).await.map_err(|e| match e.kind() {
        // A certificate that does not verify, or a bad TLS configuration, will not fix itself.
        std::io::ErrorKind::InvalidData | std::io::ErrorKind::InvalidInput => ConnectError {
            error: Error::new(
                ErrorCode::INIT_SERVICE_FAILED,
                "login",
                format!("secure connection to {:?} failed: {e}", config.endpoint),
            ),
            fatal: true,
            reason: LinkStateChangeReason::CONNECTION_ERROR,
        },
        _ => transient(format!("could not connect to {:?}: {e}", config.endpoint)),
    })?;
    let (mut rd, mut wr) = tokio::io::split(io);
    let dec = FrameDecoder::new(limits::MAX_SERVER_FRAME_LEN);
    let mut buf = BytesMut::with_capacity(16 * 1024);

    // Hello + Login are written together; the server answers HelloAck then the login reply.
    let mut hello = BytesMut::new();
    frame::write_client_frame(
        &mut hello,
        &pb::ClientFrame {
            request_id: 0,
            body: Some(client_frame::Body::Hello(pb::Hello {
                protocol_version: limits::PROTOCOL_VERSION,
                features: rtm2_proto::FEATURES,
                client_name: format!("rtm2-core/{}", env!("CARGO_PKG_VERSION")),
            })),
        },
    );
    frame::write_client_frame(
        &mut hello,
        &pb::ClientFrame {
            request_id: 1,
            body: Some(client_frame::Body::Login(pb::Login {
                app_id: config.app_id.clone(),
                user_id: config.user_id.clone(),
                token: token.to_string(),
                presence_timeout_s: config.presence_timeout_s,
                heartbeat_interval_s: config.heartbeat_interval_s,
                receive_own_messages: config.receive_own_messages,
                resume,
            })),
        },
    );
    wr.write_all(&hello).await.map_err(|e| transient(format!("connection failed during handshake: {e}")))?;

    let login = loop {
        let body = read_frame(&mut rd, &mut buf, &dec)
            .await
            .map_err(|e| transient(format!("connection failed during handshake: {e}")))?;
        let f = frame::decode_server(body).map_err(|e| transient(format!("bad frame from server: {e}")))?;
        match f.body {
            Some(server_frame::Body::HelloAck(_)) => continue,
            Some(server_frame::Body::Goodbye(g)) => {
                let code = ErrorCode::from_u32(g.code).unwrap_or(ErrorCode::LOGIN_REJECTED);
                return Err(ConnectError {
                    error: Error::new(code, "login", g.reason),
                    fatal: true,
                    reason: reason_for_code(code),
                });
            }
            Some(server_frame::Body::Response(r)) if r.request_id == 1 => {
                if r.code != 0 {
                    let code = ErrorCode::from_u32(r.code).unwrap_or(ErrorCode::LOGIN_REJECTED);
                    return Err(ConnectError {
                        error: Error::new(code, "login", r.reason),
                        fatal: true,
                        reason: reason_for_code(code),
                    });
                }
                match r.result {
                    Some(pb::response::Result::Login(l)) => break l,
                    _ => return Err(transient("login reply without a result".into())),
                }
            }
            _ => continue,
        }
    };

    if !login.resumed {
        // A new server session: requests of an earlier one fail, numbering starts over.
        session.reset("the connection was lost and the session could not be resumed");
    }
    session.id.store(login.session_id, Ordering::Relaxed);
    let (end, _) = watch::channel(None);
    let wr: SharedWriter = Arc::new(tokio::sync::Mutex::new(wr));
    let link = Arc::new(Link {
        out: Mutex::new(OutQueue::default()),
        out_ready: Notify::new(),
        out_room: Notify::new(),
        direct: direct_ok.then(|| wr.clone()),
        session,
        end,
        ended: AtomicBool::new(false),
        login,
        tasks: Mutex::new(Vec::new()),
        hold_max: WRITER_HOLD_MAX,
    });
    // Frames received so far; the keepalive watches it change (no clock read per frame).
    let last_rx = Arc::new(AtomicU64::new(0));
    let w = tokio::spawn(writer(wr, link.clone()));
    let r = tokio::spawn(reader(rd, buf, dec, link.clone(), inbound, last_rx.clone()));
    let k = tokio::spawn(keepalive(
        link.clone(),
        Duration::from_secs(config.heartbeat_interval_s.max(1) as u64),
        config.pong_timeout,
        last_rx,
    ));
    link.tasks.lock().unwrap().extend([w.abort_handle(), r.abort_handle(), k.abort_handle()]);
    Ok(link)
}

async fn read_frame<R: AsyncRead + Unpin>(
    rd: &mut R,
    buf: &mut BytesMut,
    dec: &FrameDecoder,
) -> std::io::Result<Bytes> {
    loop {
        if let Some(body) = dec.decode(buf).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))? {
            return Ok(body);
        }
        buf.reserve(64 * 1024);
        if rd.read_buf(buf).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
    }
}

async fn writer(wr: SharedWriter, link: Arc<Link>) {
    let mut local = BytesMut::new();
    let mut after_write = false;
    loop {
        let queued = link.out.lock().unwrap().buf.len();
        if queued < WRITER_COALESCE_BYTES {
            if after_write && queued >= WRITER_BURST_BYTES {
                hold_for_batch(&link).await;
            } else {
                // Let the tasks that are ready on this thread run before taking a small batch:
                // callers on other threads go on queueing meanwhile, so the next write is larger.
                tokio::task::yield_now().await;
            }
        }
        after_write = false;
        let room_wanted = {
            let mut q = link.out.lock().unwrap();
            if q.buf.is_empty() {
                q.writer_idle = true;
                false
            } else {
                // Take everything queued; callers go on filling the other buffer meanwhile.
                q.writer_idle = false;
                std::mem::swap(&mut q.buf, &mut local);
                std::mem::take(&mut q.room_wanted)
            }
        };
        if local.is_empty() {
            // `notify_one` keeps a permit if it comes before this wait: no lost wake-up.
            if local.capacity() > WRITER_KEEP_BYTES || holds_burst_memory(&link) {
                if tokio::time::timeout(WRITER_RELEASE_AFTER, link.out_ready.notified()).await.is_err() {
                    // Idle since the burst that grew them: give the memory back.
                    local = BytesMut::new();
                    {
                        let mut q = link.out.lock().unwrap();
                        if q.buf.is_empty() && q.buf.capacity() > WRITER_KEEP_BYTES {
                            q.buf = BytesMut::new();
                        }
                    }
                    link.session.pending.lock().unwrap().replay.spare = Vec::new();
                }
            } else {
                link.out_ready.notified().await;
            }
            continue;
        }
        if room_wanted {
            link.out_room.notify_waiters();
        }
        // Locked while writing: a caller may write itself only while the writer is asleep.
        let written = wr.lock().await.write_all(&local).await;
        if let Err(e) = written {
            link.finish(LinkEnd { goodbye: None, detail: format!("write failed: {e}"), keepalive_timeout: false });
            link.out_room.notify_waiters();
            return;
        }
        local.clear();
        after_write = true;
    }
}

/// In a burst: waits until `WRITER_COALESCE_BYTES` are queued, a caller waits for the reply to
/// a publish (`SessionState::flush_wanted`), or `WRITER_HOLD_MAX` has passed.
async fn hold_for_batch(link: &Link) {
    let session = &link.session;
    {
        let q = link.out.lock().unwrap();
        if q.buf.len() >= WRITER_COALESCE_BYTES {
            return;
        }
        session.writer_holding.store(true, Ordering::SeqCst);
    }
    let end_hold = || {
        let _q = link.out.lock().unwrap();
        session.writer_holding.store(false, Ordering::SeqCst);
    };
    // A caller that began waiting for a publish before the flag was up saw no hold to end.
    if !session.pending.lock().unwrap().waiters.is_empty() {
        end_hold();
        return;
    }
    // A wake-up that came before these waits is kept as a permit by `notify_one`: not lost.
    tokio::select! {
        _ = link.out_ready.notified() => {}
        _ = session.flush_wanted.notified() => {}
        _ = tokio::time::sleep(link.hold_max) => {}
        _ = link.ended() => {}
    }
    end_hold();
}

/// Whether the link keeps memory a burst grew: a large queue buffer, or spare replay blocks.
fn holds_burst_memory(link: &Link) -> bool {
    link.out.lock().unwrap().buf.capacity() > WRITER_KEEP_BYTES
        || link.session.pending.lock().unwrap().replay.spare.len() > 1
}

async fn reader<R: AsyncRead + Unpin>(
    mut rd: R,
    mut buf: BytesMut,
    dec: FrameDecoder,
    link: Arc<Link>,
    inbound: OnInbound,
    last_rx: Arc<AtomicU64>,
) {
    // Messages that arrived together are handed over as one batch: it goes out before anything
    // else is handled, and before the reader waits for more bytes.
    let mut batch: Vec<crate::Event> = Vec::new();
    let mut last_strings = crate::types::LastStrings::default();
    let end = loop {
        if !batch.is_empty() && (batch.len() >= MESSAGE_BATCH || !dec.has_frame(&buf)) {
            flush_messages(&inbound, &mut batch);
        }
        // A message is read where it lies; only its payload is split off the read buffer (one
        // reference count update, not one for the frame and one for the payload).
        if let Ok(Some(len)) = dec.peek(&buf)
            && let Some((seq, m)) =
                rtm2_proto::fastpath_client::decode_message_frame(&buf[frame::LEN_PREFIX..frame::LEN_PREFIX + len])
        {
            let frame_len = frame::LEN_PREFIX + len;
            if !link.session.accept_seq(seq) {
                buf.advance(frame_len);
                continue;
            }
            let (start, payload_len) = (m.payload.as_ptr() as usize - buf.as_ptr() as usize, m.payload.len());
            let mut ev = crate::types::MessageEvent::from_ref(m, &mut last_strings);
            if payload_len > 0 {
                buf.advance(start);
                ev.payload = buf.split_to(payload_len).freeze();
                buf.advance(frame_len - start - payload_len);
            } else {
                buf.advance(frame_len);
            }
            batch.push(crate::Event::Message(ev));
            continue;
        }
        // Any other frame is decoded; without a complete frame, more bytes are read (the batch
        // went out above).
        let closed = |e: &dyn std::fmt::Display| LinkEnd {
            goodbye: None,
            detail: format!("connection closed: {e}"),
            keepalive_timeout: false,
        };
        let body = match dec.decode(&mut buf) {
            Ok(Some(body)) => body,
            Ok(None) => {
                buf.reserve(64 * 1024);
                match rd.read_buf(&mut buf).await {
                    Ok(0) => break closed(&std::io::Error::from(std::io::ErrorKind::UnexpectedEof)),
                    Ok(_) => {
                        // Bytes arrived: the connection is alive (for the keepalive; counted
                        // per read, not per frame).
                        last_rx.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    Err(e) => break closed(&e),
                }
            }
            Err(e) => break closed(&e),
        };
        flush_messages(&inbound, &mut batch);
        let f = match frame::decode_server(body) {
            Ok(f) => f,
            Err(e) => {
                break LinkEnd {
                    goodbye: None,
                    detail: format!("bad frame from server: {e}"),
                    keepalive_timeout: false,
                };
            }
        };
        if !link.session.accept_seq(f.seq) {
            continue; // already received before a resume
        }
        match f.body {
            Some(server_frame::Body::Response(r)) => link.session.complete(r),
            Some(server_frame::Body::PublishAck(a)) => link.session.ack_publishes(a.up_to),
            Some(server_frame::Body::Message(m)) => {
                inbound(Inbound::Message(crate::types::MessageEvent::from_pb(m)));
            }
            Some(server_frame::Body::TopicEvent(t)) => {
                inbound(Inbound::Topic(t));
            }
            Some(server_frame::Body::TokenWillExpire(t)) => {
                inbound(Inbound::TokenWillExpire(t));
            }
            Some(server_frame::Body::StreamChannelClosed(c)) => {
                inbound(Inbound::StreamClosed(c));
            }
            Some(server_frame::Body::Presence(p)) => inbound(Inbound::Presence(p)),
            Some(server_frame::Body::Storage(e)) => inbound(Inbound::Storage(e)),
            Some(server_frame::Body::Lock(e)) => inbound(Inbound::Lock(e)),
            Some(server_frame::Body::Goodbye(g)) => {
                let reason = LinkStateChangeReason::from_u32(g.link_reason).unwrap_or(LinkStateChangeReason::UNKNOWN);
                break LinkEnd {
                    detail: g.reason.clone(),
                    goodbye: Some((g.code, reason, g.reason)),
                    keepalive_timeout: false,
                };
            }
            Some(server_frame::Body::Pong(_)) | Some(server_frame::Body::HelloAck(_)) | None => {}
        }
    };
    // What arrived before the end is delivered (it counts as received for a resume).
    flush_messages(&inbound, &mut batch);
    link.close_with(end);
}

/// Most messages handed over in one batch.
const MESSAGE_BATCH: usize = 1024;

fn flush_messages(inbound: &OnInbound, batch: &mut Vec<crate::Event>) {
    if !batch.is_empty() {
        // The batch is handed over whole (see `EventQueue::push_owned`); the next one starts
        // with room for as many events, so that it is not regrown (and copied) event by event.
        let room = batch.len();
        inbound(Inbound::Messages(std::mem::replace(batch, Vec::with_capacity(room))));
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

async fn keepalive(link: Arc<Link>, interval: Duration, pong_timeout: Duration, last_rx: Arc<AtomicU64>) {
    let start = Instant::now();
    let mut tick = tokio::time::interval_at(tokio::time::Instant::from_std(start) + interval, interval);
    let check = pong_timeout.min(interval).max(Duration::from_millis(50));
    let mut check_tick = tokio::time::interval(check);
    let (mut seen, mut heard_at) = (last_rx.load(Ordering::Relaxed), now_ms());
    loop {
        tokio::select! {
            _ = tick.tick() => link.send_nowait(client_frame::Body::Ping(pb::Ping { client_time_ms: now_ms() })),
            _ = check_tick.tick() => {
                let count = last_rx.load(Ordering::Relaxed);
                if count != seen {
                    (seen, heard_at) = (count, now_ms());
                }
                let silent = now_ms().saturating_sub(heard_at);
                if silent > pong_timeout.as_millis() as u64 + interval.as_millis() as u64 {
                    link.close_with(LinkEnd {
                        goodbye: None,
                        detail: format!("no frame from the server for {silent} ms"),
                        keepalive_timeout: true,
                    });
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn publish_body(n: u32) -> client_frame::Body {
        client_frame::Body::Publish(pb::Publish {
            channel: "c".into(),
            channel_type: 1,
            payload: Bytes::from(n.to_string()),
            ..Default::default()
        })
    }

    fn ids_in(mut wire: BytesMut) -> Vec<u64> {
        let dec = FrameDecoder::new(limits::MAX_CLIENT_FRAME_LEN);
        let mut ids = Vec::new();
        while let Some(body) = dec.decode(&mut wire).unwrap() {
            ids.push(frame::decode_client(body).unwrap().request_id);
        }
        assert!(wire.is_empty(), "a partial frame was left");
        ids
    }

    fn failure(id: u64, code: ErrorCode) -> pb::Response {
        pb::Response { request_id: id, code: code.code(), reason: "refused".into(), ..Default::default() }
    }

    /// Nothing is kept for anyone: no outcome, no waiter, no publish to resend (answered ones
    /// may stay as tombstones until the ack watermark passes them).
    fn is_clean(s: &SessionState) -> bool {
        let p = s.pending.lock().unwrap();
        p.pubs.iter().all(|e| e.gone)
            && p.answered.is_empty()
            && p.waiters.is_empty()
            && !s.any_answered.load(Ordering::Relaxed)
    }

    fn is_empty(s: &SessionState) -> bool {
        let p = s.pending.lock().unwrap();
        p.pubs.is_empty() && p.replay.is_empty()
    }

    #[test]
    fn fast_publishes_are_acked_or_failed_each_once_and_leave_nothing_behind() {
        let s = SessionState::default();
        let mut out = BytesMut::new();
        let ids: Vec<u64> = (0..3).map(|n| s.register_pub_into(&mut out, &publish_body(n))).collect();
        assert_eq!(ids_in(out), ids, "frames carry their ids, in order");
        assert!(s.pub_outcome(ids[0], None).is_none(), "nothing answered yet");

        s.complete(failure(ids[1], ErrorCode::CHANNEL_RECEIVER_OFFLINE));
        assert!(s.pub_outcome(ids[0], None).is_none(), "a failure of a later publish answers only that one");
        s.ack_publishes(ids[2]);
        assert!(matches!(s.pub_outcome(ids[0], None), Some(Ok(()))));
        let e = s.pub_outcome(ids[1], None).unwrap().unwrap_err();
        assert_eq!((e.code, e.operation), (ErrorCode::CHANNEL_RECEIVER_OFFLINE, "publish"));
        assert!(matches!(s.pub_outcome(ids[2], None), Some(Ok(()))));
        assert!(is_clean(&s) && is_empty(&s));
    }

    #[test]
    fn a_lost_session_fails_waiting_publishes_and_forgets_abandoned_ones() {
        let s = SessionState::default();
        let mut out = BytesMut::new();
        let gone = s.register_pub_into(&mut out, &publish_body(0));
        let kept = s.register_pub_into(&mut out, &publish_body(1));
        s.abandon_pub(gone);
        s.reset("server restarted");
        let e = s.pub_outcome(kept, None).unwrap().unwrap_err();
        assert_eq!(e.code, ErrorCode::NOT_CONNECTED);
        assert!(e.reason.contains("server restarted"), "{}", e.reason);
        assert!(is_clean(&s), "no outcome kept for a publish nobody waits for");

        // A failure answered but never collected is dropped with its waiter.
        let later = s.register_pub_into(&mut out, &publish_body(2));
        s.complete(failure(later, ErrorCode::CHANNEL_INVALID_MESSAGE));
        s.abandon_pub(later);
        assert!(is_clean(&s));

        // A server without batched acks answers each publish: a success counts at once.
        let answered = s.register_pub_into(&mut out, &publish_body(3));
        s.complete(pb::Response { request_id: answered, ..Default::default() });
        assert!(matches!(s.pub_outcome(answered, None), Some(Ok(()))));
        assert!(is_clean(&s));
        assert!(s.unanswered().is_empty(), "answered publishes are not resent");
        // The next ack watermark releases the tombstones and their bytes.
        s.ack_publishes(answered);
        assert!(is_empty(&s));
    }

    /// The replay keeps every frame intact across block boundaries, drops acknowledged ones in
    /// order, and reuses emptied blocks.
    #[test]
    fn the_replay_returns_what_it_kept_in_order() {
        let mut r = Replay::default();
        let mut kept: VecDeque<Vec<u8>> = VecDeque::new();
        let mut n = 0u32;
        let mut next = |len: usize| {
            n += 1;
            (0..len).map(|i| (n as usize * 31 + i) as u8).collect::<Vec<u8>>()
        };
        for round in 0..40 {
            for len in [1, 170, 3000, REPLAY_BLOCK - 5, 64, REPLAY_BLOCK + 10, 170] {
                let f = next(len);
                r.push(&f);
                kept.push_back(f);
            }
            // Acknowledge a varying number of the oldest frames.
            for _ in 0..(round % 5 + 3).min(kept.len()) {
                let f = kept.pop_front().unwrap();
                r.advance(f.len());
            }
            let got: Vec<&[u8]> = r.frames(kept.iter().map(Vec::len)).collect();
            assert_eq!(got.len(), kept.len());
            assert!(got.iter().zip(&kept).all(|(a, b)| a == &b.as_slice()), "round {round}");
        }
        while let Some(f) = kept.pop_front() {
            r.advance(f.len());
        }
        assert!(r.is_empty() && r.blocks.is_empty());
        assert!(!r.spare.is_empty(), "blocks are kept for reuse");
        assert!(r.spare.len() <= REPLAY_SPARES && r.spare.iter().all(|b| b.capacity() == REPLAY_BLOCK && b.is_empty()));
    }

    #[test]
    fn resent_frames_are_the_awaited_requests_in_id_order() {
        let s = SessionState::default();
        let mut out = BytesMut::new();
        let p1 = s.register_pub_into(&mut out, &publish_body(1));
        let (tx, _rx) = oneshot::channel();
        s.register_into(
            &mut out,
            "subscribe",
            client_frame::Body::Unsubscribe(pb::Unsubscribe { channel: "c".into() }),
            tx,
        );
        let (gone_tx, gone_rx) = oneshot::channel();
        s.register_into(
            &mut out,
            "subscribe",
            client_frame::Body::Unsubscribe(pb::Unsubscribe { channel: "d".into() }),
            gone_tx,
        );
        drop(gone_rx);
        let p2 = s.register_pub_into(&mut out, &publish_body(2));
        let three = match publish_body(3) {
            client_frame::Body::Publish(p) => p,
            _ => unreachable!(),
        };
        let p3 = s.register_pub_ref_into(&mut out, &PublishRef::from(&three));
        s.abandon_pub(p2);
        let all = ids_in(out);
        let mut wire = BytesMut::new();
        for f in s.unanswered() {
            wire.extend_from_slice(&f);
        }
        assert_eq!(ids_in(wire.clone()), vec![p1, all[1], p3], "the given-up request and publish are not resent");
        // The resent publish is the one written from its parts.
        let dec = FrameDecoder::new(limits::MAX_CLIENT_FRAME_LEN);
        let last = std::iter::from_fn(|| dec.decode(&mut wire).unwrap()).last().unwrap();
        assert_eq!(frame::decode_client(last).unwrap().body, Some(client_frame::Body::Publish(three)));
    }

    #[tokio::test]
    async fn a_publish_wait_wakes_on_the_ack_or_times_out() {
        let s = Arc::new(SessionState::default());
        let mut out = BytesMut::new();
        let wait = |id, ms| {
            PubWait::new(&s, id, "publish", ErrorCode::CHANNEL_PUBLISH_MESSAGE_TIMEOUT, Duration::from_millis(ms))
        };
        let acked = s.register_pub_into(&mut out, &publish_body(1));
        let task = tokio::spawn(wait(acked, 10_000));
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!task.is_finished());
        s.ack_publishes(acked);
        tokio::time::timeout(Duration::from_secs(5), task).await.expect("woken by the ack").unwrap().unwrap();

        let silent = s.register_pub_into(&mut out, &publish_body(2));
        let e = wait(silent, 50).await.unwrap_err();
        assert_eq!(e.code, ErrorCode::CHANNEL_PUBLISH_MESSAGE_TIMEOUT);
        assert!(s.pending.lock().unwrap().waiters.is_empty());
        assert!(s.unanswered().is_empty(), "a timed-out publish is not resent");
    }

    /// A connection whose writes complete only while its gate is open; it records the size of
    /// every write and counts attempts made while closed.
    #[derive(Clone, Default)]
    struct GatedSink {
        open: Arc<AtomicBool>,
        writes: Arc<Mutex<Vec<usize>>>,
        blocked_attempts: Arc<AtomicU64>,
        waker: Arc<Mutex<Option<Waker>>>,
    }

    impl GatedSink {
        fn set_open(&self, open: bool) {
            self.open.store(open, Ordering::SeqCst);
            if let Some(w) = self.waker.lock().unwrap().take() {
                w.wake();
            }
        }

        fn writes(&self) -> Vec<usize> {
            self.writes.lock().unwrap().clone()
        }

        /// Waits (bounded) until `cond` holds.
        async fn until(&self, what: &str, cond: impl Fn(&Self) -> bool) {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
            while !cond(self) {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "timed out waiting for {what}; writes {:?}",
                    self.writes()
                );
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
    }

    impl AsyncRead for GatedSink {
        fn poll_read(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            _: &mut tokio::io::ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            Poll::Pending
        }
    }

    impl tokio::io::AsyncWrite for GatedSink {
        fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
            if !self.open.load(Ordering::SeqCst) {
                *self.waker.lock().unwrap() = Some(cx.waker().clone());
                self.blocked_attempts.fetch_add(1, Ordering::SeqCst);
                // Re-check: an opening between the load and storing the waker is not missed.
                if !self.open.load(Ordering::SeqCst) {
                    return Poll::Pending;
                }
            }
            self.writes.lock().unwrap().push(buf.len());
            Poll::Ready(Ok(buf.len()))
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    /// A link over `sink` with only its writer running (no direct writes by callers).
    fn writer_only_link(sink: &GatedSink, hold_max: Duration) -> Arc<Link> {
        let io: Pin<Box<dyn Io>> = Box::pin(sink.clone());
        let (_, wr) = tokio::io::split(io);
        let wr: SharedWriter = Arc::new(tokio::sync::Mutex::new(wr));
        let link = Arc::new(Link {
            out: Mutex::new(OutQueue::default()),
            out_ready: Notify::new(),
            out_room: Notify::new(),
            direct: None,
            session: Arc::new(SessionState::default()),
            end: watch::channel(None).0,
            ended: AtomicBool::new(false),
            login: pb::LoginResult::default(),
            tasks: Mutex::new(Vec::new()),
            hold_max,
        });
        let w = tokio::spawn(writer(wr, link.clone()));
        link.tasks.lock().unwrap().push(w.abort_handle());
        link
    }

    fn publish_bytes(link: &Link, n: &mut u32, bytes: usize) -> PubWait {
        let start = link.out.lock().unwrap().buf.len();
        loop {
            *n += 1;
            let body = client_frame::Body::Publish(pb::Publish {
                channel: "c".into(),
                channel_type: 1,
                payload: Bytes::from(vec![b'x'; 200]),
                ..Default::default()
            });
            let wait = link
                .try_publish("publish", body, ErrorCode::CHANNEL_PUBLISH_MESSAGE_TIMEOUT, Duration::from_secs(60))
                .unwrap_or_else(|_| panic!("queue full"));
            if link.out.lock().unwrap().buf.len() - start >= bytes {
                return wait;
            }
        }
    }

    /// Frames queued while the writer was writing make a burst: the writer then waits for a
    /// full batch instead of writing each few kilobytes as they come (one system call and one
    /// round of network processing per write). A caller that awaits a publish does not wait
    /// for the batch to fill, nor does any request other than a publish: what is held is
    /// written at once.
    #[tokio::test]
    async fn a_burst_is_written_in_full_batches_and_an_awaited_publish_is_not_held() {
        let sink = GatedSink::default();
        let link = writer_only_link(&sink, Duration::from_secs(30));
        let mut n = 0;

        // The writer is stuck writing one frame while 8 KB more are queued.
        drop(publish_bytes(&link, &mut n, 1));
        sink.until("the first write", |s| s.blocked_attempts.load(Ordering::SeqCst) > 0).await;
        drop(publish_bytes(&link, &mut n, 2 * WRITER_BURST_BYTES));
        sink.set_open(true);
        sink.until("the first write to complete", |s| !s.writes().is_empty()).await;
        // A burst: the 8 KB are held for more.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(sink.writes().len(), 1, "a burst's first few kilobytes were written on their own");
        // Once a full batch is queued it is written, in one write.
        drop(publish_bytes(&link, &mut n, WRITER_COALESCE_BYTES));
        sink.until("the full batch", |s| s.writes().len() == 2).await;
        assert!(sink.writes()[1] >= WRITER_COALESCE_BYTES, "writes {:?}", sink.writes());

        // Again a burst held back; this time a caller awaits its publish.
        sink.set_open(false);
        let before = sink.blocked_attempts.load(Ordering::SeqCst);
        drop(publish_bytes(&link, &mut n, 1));
        sink.until("a write", |s| s.blocked_attempts.load(Ordering::SeqCst) > before).await;
        let last = publish_bytes(&link, &mut n, 2 * WRITER_BURST_BYTES);
        sink.set_open(true);
        sink.until("that write to complete", |s| s.writes().len() >= 3).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(sink.writes().len(), 3, "held");
        // Awaiting the publish (it is never answered here) has the held frames written.
        let waited = tokio::spawn(last);
        sink.until("the held frames after the await", |s| s.writes().len() == 4).await;
        assert!(sink.writes()[3] >= 2 * WRITER_BURST_BYTES, "writes {:?}", sink.writes());
        waited.abort();

        // Held once more; a request other than a publish is not held behind the burst.
        sink.set_open(false);
        let before = sink.blocked_attempts.load(Ordering::SeqCst);
        drop(publish_bytes(&link, &mut n, 1));
        sink.until("a write", |s| s.blocked_attempts.load(Ordering::SeqCst) > before).await;
        drop(publish_bytes(&link, &mut n, 2 * WRITER_BURST_BYTES));
        sink.set_open(true);
        sink.until("that write to complete", |s| s.writes().len() >= 5).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(sink.writes().len(), 5, "held");
        let (reply, _answer) = oneshot::channel();
        let subscribe = client_frame::Body::Subscribe(pb::Subscribe { channel: "c".into(), ..Default::default() });
        assert!(link.try_submit("subscribe", subscribe, reply).is_ok());
        sink.until("the held frames with the request", |s| s.writes().len() == 6).await;
        link.close("test over");
    }
}
