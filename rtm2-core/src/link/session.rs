//! The client's side of a server session: requests awaiting their answer (resent after a
//! resume), fast-path publishes and their replay, and waiting for a publish's outcome.

use super::*;

pub(super) struct Pending {
    pub(super) op: &'static str,
    pub(super) reply: Reply,
    pub(super) frame: Bytes,
    /// A publish: answered by a `PublishAck` covering its id (or by a failure Response).
    publish: bool,
}

/// A publish sent on the fast path: its caller waits on a [`PubWait`] (no channel per publish),
/// and its frame is kept in `PendingSet::replay` to be resent after a resume.
pub(super) struct PendingPub {
    pub(super) id: u64,
    /// Bytes of its frame in `PendingSet::replay` (frames are kept in id order).
    pub(super) len: u32,
    pub(super) topic: bool,
    /// Nobody waits for it any more (the caller gave up, or it was answered on its own): not
    /// resent; its bytes stay until the ack watermark passes it.
    pub(super) gone: bool,
}

/// The frames of unacknowledged fast-path publishes, in order, in fixed-size blocks: appending
/// never moves what is there (a single growing buffer would be copied each time it is
/// compacted or grown, which with tens of thousands of publishes in flight meant megabytes),
/// and acknowledged blocks are reused. A frame never spans two blocks.
#[derive(Default)]
pub(super) struct Replay {
    pub(super) blocks: VecDeque<BytesMut>,
    /// Bytes of the first block already acknowledged.
    pub(super) front: usize,
    /// Emptied blocks kept for the next ones needed (at most `REPLAY_SPARES`): an ack frees
    /// several blocks at once, and blocks given back to the allocator as they are acknowledged
    /// came back as fresh pages to fault in while publishing at full speed.
    pub(super) spare: Vec<BytesMut>,
}

pub(super) const REPLAY_BLOCK: usize = 64 * 1024;
pub(super) const REPLAY_SPARES: usize = 64;

impl Replay {
    pub(super) fn push(&mut self, frame: &[u8]) {
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
    pub(super) fn advance(&mut self, mut len: usize) {
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
    pub(super) fn frames<'a>(&'a self, lens: impl Iterator<Item = usize> + 'a) -> impl Iterator<Item = &'a [u8]> + 'a {
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
    pub(super) fn is_empty(&self) -> bool {
        self.blocks.iter().enumerate().all(|(i, b)| b.len() == if i == 0 { self.front } else { 0 })
    }
}

/// Requests awaiting their answer.
#[derive(Default)]
pub(super) struct PendingSet {
    /// Requests answered by a Response, and publishes sent through the queue (with a reply
    /// channel); by id.
    pub(super) map: std::collections::BTreeMap<u64, Pending>,
    /// How many entries of `map` are publishes (an ack scans `map` only when there are some).
    pub(super) map_publishes: usize,
    /// Fast-path publishes, in id order.
    pub(super) pubs: VecDeque<PendingPub>,
    /// Their frames, in the same order.
    pub(super) replay: Replay,
    /// Outcomes of fast-path publishes answered by their own Response (failures, mostly) or
    /// failed by a reset, until their waiter takes them.
    pub(super) answered: HashMap<u64, Result<u64>>,
    /// Wakers of fast-path publishes being awaited.
    pub(super) waiters: Vec<(u64, Waker)>,
}

/// Acknowledgements kept for the answer times of the publishes they covered.
const ACK_TIMES: usize = 64;

/// The last `ACK_TIMES` publish acknowledgements, as (up_to, server time) in a ring written by
/// the connection's reader alone and read without a lock: a publish's answer time is that of
/// the first acknowledgement covering it (found from the newest backwards; one or two steps for
/// a publish whose caller waits). One older than the ring gets the oldest time it holds.
pub(crate) struct AckTimes {
    /// Acknowledgements pushed so far; entry `n % ACK_TIMES` is the n-th (from 0).
    pushed: AtomicU64,
    up_to: [AtomicU64; ACK_TIMES],
    time: [AtomicU64; ACK_TIMES],
}

impl Default for AckTimes {
    fn default() -> Self {
        AckTimes {
            pushed: AtomicU64::new(0),
            up_to: std::array::from_fn(|_| AtomicU64::new(0)),
            time: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

impl AckTimes {
    pub(super) fn push(&self, up_to: u64, time_ms: u64) {
        let n = self.pushed.load(Ordering::Relaxed);
        let i = (n % ACK_TIMES as u64) as usize;
        // (A reader meeting the entry mid-write may take the time of a neighbour: a few ms off.)
        self.time[i].store(time_ms, Ordering::Relaxed);
        self.up_to[i].store(up_to, Ordering::Release);
        self.pushed.store(n + 1, Ordering::Release);
    }

    /// The time of the first acknowledgement covering publish `id` (it is covered).
    pub(super) fn time_of(&self, id: u64) -> u64 {
        let n = self.pushed.load(Ordering::Acquire);
        let mut found = 0;
        for k in (n.saturating_sub(ACK_TIMES as u64)..n).rev() {
            let i = (k % ACK_TIMES as u64) as usize;
            if self.up_to[i].load(Ordering::Acquire) < id {
                break;
            }
            found = self.time[i].load(Ordering::Relaxed);
        }
        found
    }
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
    pub(super) next_id: AtomicU64,
    /// Every fast-path publish with an id up to this one is answered: acknowledged, unless its
    /// id is in `PendingSet::answered`.
    pub(super) pubs_answered: AtomicU64,
    /// The last publish acknowledgements: their `up_to` and the server's time (see
    /// `AckTimes`), for each publish's answer time.
    pub(super) ack_times: AckTimes,
    /// `PendingSet::answered` is not empty (the fast check then takes the lock).
    pub(super) any_answered: AtomicBool,
    pub(super) pending: Mutex<PendingSet>,
    /// The connection's writer holds a burst's frames back for a fuller write (see
    /// `hold_for_batch`): the push that fills a batch or is not a publish ends the hold, and so
    /// does a publish whose caller waits for its reply. Raised and lowered under the link's
    /// queue lock, which orders it against pushes.
    pub(super) writer_holding: AtomicBool,
    pub(super) flush_wanted: Notify,
}

impl SessionState {
    /// Records event `seq` as received; false if it was received before (resent after a
    /// resume). Unsequenced frames (0) are always accepted.
    pub(super) fn accept_seq(&self, seq: u64) -> bool {
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

    pub(super) fn next_request_id(&self) -> u64 {
        // Request id 1 is the login, which is not part of the session.
        self.next_id.fetch_add(1, Ordering::Relaxed) + 2
    }

    /// Encodes a request into `out` and registers it (the caller holds the queue lock, so ids
    /// reach the server in increasing order).
    pub(super) fn register_into(&self, out: &mut BytesMut, op: &'static str, body: client_frame::Body, reply: Reply) {
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
    pub(super) fn register_unsent(&self, op: &'static str, body: client_frame::Body, reply: Reply) {
        let mut scratch = BytesMut::new();
        self.register_into(&mut scratch, op, body, reply);
    }

    /// Encodes a fast-path publish into `out` and registers it; returns its id.
    pub(super) fn register_pub_into(&self, out: &mut BytesMut, body: &client_frame::Body) -> u64 {
        let topic = matches!(body, client_frame::Body::PublishTopic(_));
        self.register_pub_with(out, topic, |out, request_id| frame::write_client_frame_parts(out, request_id, body))
    }

    /// Writes a publish to a message or user channel straight from its parts (no `pb::Publish`
    /// built) and registers it; returns its id.
    pub(super) fn register_pub_ref_into(&self, out: &mut BytesMut, p: &PublishRef<'_>) -> u64 {
        self.register_pub_with(out, false, |out, request_id| {
            rtm2_proto::fastpath_client::write_publish_frame(out, request_id, p)
        })
    }

    pub(super) fn register_pub_with(
        &self,
        out: &mut BytesMut,
        topic: bool,
        write: impl FnOnce(&mut BytesMut, u64),
    ) -> u64 {
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
    /// answered by their own Response before), answered at the server's `time_ms`.
    pub(super) fn ack_publishes(&self, up_to: u64, time_ms: u64) {
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
                self.ack_times.push(up_to, time_ms);
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
            let _ = e.reply.send(Ok(pb::Response { server_time_ms: time_ms, ..Default::default() }));
        }
    }

    pub(super) fn complete(&self, r: pb::Response) {
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
                0 => Ok(r.server_time_ms),
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
    pub(super) fn pub_outcome(&self, id: u64, waker: Option<&Waker>) -> Option<Result<u64>> {
        if !self.any_answered.load(Ordering::Acquire) && self.pubs_answered.load(Ordering::Acquire) >= id {
            return Some(Ok(self.ack_times.time_of(id)));
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
            return Some(Ok(self.ack_times.time_of(id)));
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
    pub(super) fn abandon_pub(&self, id: u64) {
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

pub(super) fn take_waiter(waiters: &mut Vec<(u64, Waker)>, id: u64) -> Option<Waker> {
    let i = waiters.iter().position(|(w, _)| *w == id)?;
    Some(waiters.swap_remove(i).1)
}

/// The outcome of a publish sent on the fast path: acknowledged (by a `PublishAck` covering its
/// id), failed (its own Response, or the session was lost), or timed out.
pub(crate) struct PubWait {
    pub(super) session: Arc<SessionState>,
    pub(super) id: u64,
    pub(super) op: &'static str,
    pub(super) timeout_code: ErrorCode,
    pub(super) timeout: Duration,
    pub(super) sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    pub(super) done: bool,
}

impl PubWait {
    pub(super) fn new(
        session: &Arc<SessionState>,
        id: u64,
        op: &'static str,
        timeout_code: ErrorCode,
        timeout: Duration,
    ) -> Self {
        PubWait { session: session.clone(), id, op, timeout_code, timeout, sleep: None, done: false }
    }
}

/// The server's time of the answer, ms.
impl Future for PubWait {
    type Output = Result<u64>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<u64>> {
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
