//! Connections: the outbound side of one connection and its writer task.
//!
//! A [`Conn`] is a bounded queue of (seq, frame body) that one writer task drains into a
//! buffer and writes in batches, so a burst of small frames costs few `write()` calls. A queue
//! that fills up marks a slow consumer: the connection is closed with a [`Goodbye`] saying so.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::Notify;

use rtm2_proto::ErrorCode;
use rtm2_proto::enums::LinkStateChangeReason;
use rtm2_proto::frame;
use rtm2_proto::pb::{self, server_frame};

/// Bytes gathered before a write is issued, at most.
const WRITE_BATCH_BYTES: usize = 256 * 1024;
/// Bytes a frame adds to its body on the wire at most: length prefix, `seq` key and varint.
const MAX_FRAME_OVERHEAD: usize = frame::LEN_PREFIX + 1 + 10;
/// Outbound queue slots (40 bytes each) a connection keeps while idle; a burst's larger
/// queue is released (memory per connection).
const IDLE_QUEUE_FRAMES: usize = 256;
/// Buffers larger than this are released when their connection goes quiet: its reader saw no
/// frame for a keepalive tick, or its writer had nothing to write for `WRITER_IDLE_RELEASE`.
/// Not as soon as a buffer is empty: within a burst a buffer empties between reads or writes
/// all the time, and one released then is regrown (copied, its pages faulted in anew) at once.
pub(crate) const KEEP_IDLE_BUFFER: usize = 16 * 1024;
const WRITER_IDLE_RELEASE: Duration = Duration::from_millis(500);
/// How long a closing connection's last write (the goodbye) and its shutdown may each wait
/// for a peer that does not read.
pub(crate) const CLOSE_WRITE_WAIT: Duration = Duration::from_secs(2);

/// Why a connection ends, sent to the client as a Goodbye frame.
#[derive(Debug, Clone)]
pub(crate) struct Goodbye {
    pub code: u32,
    pub link_reason: LinkStateChangeReason,
    pub reason: String,
}

impl Goodbye {
    pub(crate) fn new(code: u32, link_reason: LinkStateChangeReason, reason: impl Into<String>) -> Self {
        Goodbye { code, link_reason, reason: reason.into() }
    }

    fn encode(&self) -> Bytes {
        frame::encode_server_body(&server_frame::Body::Goodbye(pb::Goodbye {
            code: self.code,
            link_reason: self.link_reason as u32,
            reason: self.reason.clone(),
        }))
    }
}

/// What a slow consumer had queued when it was cut off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SlowCut {
    pub frames: usize,
    pub bytes: usize,
    /// The goodbye's reason text.
    pub reason: String,
}

/// One connection's outbound side: a bounded queue of (seq, frame body) to its writer.
pub(crate) struct Conn {
    pub(crate) out: parking_lot::Mutex<Outbox>,
    /// Frames that may wait in `out` (the writer takes them a write batch at a time).
    pub(crate) cap: usize,
    /// Body bytes that may wait in `out` (a frame is accepted into an empty queue whatever its
    /// size).
    pub(crate) cap_bytes: usize,
    /// Set when the connection was cut off as a slow consumer.
    slow_cut: Mutex<Option<SlowCut>>,
    /// The cut was noted by the session (logged, remembered for the next login).
    cut_noted: AtomicBool,
    /// The server's numbers (slow-consumer cuts, bytes sent).
    metrics: Arc<crate::metrics::Metrics>,
    /// Wakes the writer when it waits for frames.
    pub(crate) ready: Notify,
    pub(crate) closing: AtomicBool,
    goodbye: Mutex<Option<Goodbye>>,
    kill: Notify,
}

/// What waits for a connection's writer. A plain queue under a mutex rather than a channel:
/// one short lock per frame, and a wake only when the writer is waiting, not per frame.
#[derive(Default)]
pub(crate) struct Outbox {
    queue: VecDeque<(u64, Bytes)>,
    /// Body bytes in `queue`, to take a write batch without walking it.
    bytes: usize,
    /// The writer found the queue empty and waits for `ready`.
    pub(crate) writer_waiting: bool,
    /// The writer has ended: nothing queued now would be sent.
    writer_gone: bool,
    /// Room beyond the caps for a resume's replay (see [`Conn::push_replay`]), in frames and
    /// bytes; it shrinks as the writer takes frames.
    grace_frames: usize,
    grace_bytes: usize,
}

impl Conn {
    /// A connection queueing at most `cap` frames and `cap_bytes` bytes; its slow-consumer
    /// cut adds one to the server's `slow_consumer_cuts`.
    pub(crate) fn new(cap: usize, cap_bytes: usize, metrics: Arc<crate::metrics::Metrics>) -> Arc<Conn> {
        Arc::new(Conn {
            out: parking_lot::Mutex::default(),
            cap: cap.max(16),
            cap_bytes,
            slow_cut: Mutex::new(None),
            cut_noted: AtomicBool::new(false),
            metrics,
            ready: Notify::new(),
            closing: AtomicBool::new(false),
            goodbye: Mutex::new(None),
            kill: Notify::new(),
        })
    }

    /// Queues a frame for the writer; `false` if `cap` frames or `cap_bytes` bytes wait already
    /// (or the writer ended).
    pub(crate) fn push(&self, seq: u64, body: Bytes) -> bool {
        let mut o = self.out.lock();
        if !self.push_locked(&mut o, seq, body) {
            return false;
        }
        let wake = std::mem::take(&mut o.writer_waiting);
        drop(o);
        if wake {
            self.ready.notify_one();
        }
        true
    }

    /// `push` under the caller's lock of `out`, without waking the writer (the caller does,
    /// if `writer_waiting`).
    pub(crate) fn push_locked(&self, o: &mut Outbox, seq: u64, body: Bytes) -> bool {
        if o.writer_gone
            || o.queue.len() >= self.cap + o.grace_frames
            || (!o.queue.is_empty() && o.bytes + body.len() > self.cap_bytes + o.grace_bytes)
        {
            return false;
        }
        o.bytes += body.len();
        o.queue.push_back((seq, body));
        true
    }

    /// Queues the frames a resume replays (already bounded by the session's replay window)
    /// whatever the caps, and makes that much extra room: a client resuming a large backlog is
    /// not cut off for it, while one that stalls again is, once the caps' worth of new frames
    /// waits on top of what is left of the backlog. `false` if the writer ended.
    pub(crate) fn push_replay<'a>(&self, frames: impl Iterator<Item = (u64, &'a Bytes)>) -> bool {
        let mut o = self.out.lock();
        if o.writer_gone {
            return false;
        }
        for (seq, body) in frames {
            o.grace_frames += 1;
            o.grace_bytes += body.len();
            o.bytes += body.len();
            o.queue.push_back((seq, body.clone()));
        }
        let wake = std::mem::take(&mut o.writer_waiting);
        drop(o);
        if wake {
            self.ready.notify_one();
        }
        true
    }

    /// Moves the frames of one write batch (about `WRITE_BATCH_BYTES`, at least one frame) into
    /// the empty `batch`. With nothing queued it returns `false` and marks the writer waiting
    /// (the next [`Conn::push`] wakes it).
    fn take_batch(&self, batch: &mut VecDeque<(u64, Bytes)>) -> bool {
        let mut o = self.out.lock();
        if o.queue.is_empty() {
            o.writer_waiting = true;
            return false;
        }
        if o.grace_frames != 0 {
            // Whatever is taken shrinks the replay's extra room first.
            let (frames, bytes) = o.take_batch_from(batch);
            o.grace_frames = o.grace_frames.saturating_sub(frames);
            o.grace_bytes = o.grace_bytes.saturating_sub(bytes);
            return true;
        }
        o.take_batch_from(batch);
        true
    }
}

impl Outbox {
    /// `Conn::take_batch` without the lock; returns the frames and body bytes taken.
    fn take_batch_from(&mut self, batch: &mut VecDeque<(u64, Bytes)>) -> (usize, usize) {
        let o = self;
        if o.bytes + o.queue.len() * MAX_FRAME_OVERHEAD <= WRITE_BATCH_BYTES {
            std::mem::swap(&mut o.queue, batch);
            let taken = (batch.len(), o.bytes);
            o.bytes = 0;
            taken
        } else {
            let mut size = 0;
            let mut bytes = 0;
            while size < WRITE_BATCH_BYTES
                && let Some((seq, body)) = o.queue.pop_front()
            {
                size += body.len() + MAX_FRAME_OVERHEAD;
                bytes += body.len();
                o.bytes -= body.len();
                batch.push_back((seq, body));
            }
            (batch.len(), bytes)
        }
    }
}

impl Conn {
    /// Releases a burst's queue if nothing is queued (the writer has been idle a while).
    fn release_idle_queue(&self) {
        let mut o = self.out.lock();
        if o.queue.is_empty() && o.queue.capacity() > IDLE_QUEUE_FRAMES {
            o.queue = VecDeque::new();
        }
    }

    fn queue_capacity(&self) -> usize {
        self.out.lock().queue.capacity()
    }

    /// Everything queued, for the last write after a close; no frame is accepted afterwards.
    fn take_rest(&self, gone: bool) -> VecDeque<(u64, Bytes)> {
        let mut o = self.out.lock();
        o.writer_gone |= gone;
        o.bytes = 0;
        std::mem::take(&mut o.queue)
    }

    /// Queues a connection-level frame (seq 0).
    pub(crate) fn send_unsequenced(&self, body: Bytes) {
        if !self.closing.load(Ordering::Relaxed) && !self.push(0, body) {
            self.cut_slow_consumer();
        }
    }

    /// Cuts the connection off as a slow consumer (its queue is full): the frames not yet
    /// taken by the writer are dropped (events stay in the session's replay window for a
    /// resume), so that the goodbye saying why follows at once instead of queueing behind
    /// megabytes the client is not reading. First caller wins, as for [`Conn::close`].
    pub(crate) fn cut_slow_consumer(&self) {
        // (Held throughout: one cut, and the first one's counts.)
        let mut cut = self.slow_cut.lock().unwrap();
        if cut.is_some() || self.closing.load(Ordering::Acquire) {
            return;
        }
        let (frames, bytes) = {
            let mut o = self.out.lock();
            let queued = (o.queue.len(), o.bytes);
            // Connection-level frames (seq 0: a login reply, pongs) are kept: they are not in
            // the replay window, and a client must not miss its login reply.
            o.queue.retain(|(seq, _)| *seq == 0);
            o.bytes = o.queue.iter().map(|(_, body)| body.len()).sum();
            (o.grace_frames, o.grace_bytes) = (0, 0);
            // Nothing queued from now on would be sent before the goodbye.
            o.writer_gone = true;
            queued
        };
        let reason = format!(
            "slow consumer: {frames} frames ({bytes} bytes) were waiting to be sent (at most {} frames or {} bytes \
             may wait); the connection was closed",
            self.cap, self.cap_bytes
        );
        *cut = Some(SlowCut { frames, bytes, reason: reason.clone() });
        drop(cut);
        self.metrics.slow_consumer_cuts.inc();
        self.close(Goodbye::new(ErrorCode::NOT_CONNECTED.code(), LinkStateChangeReason::CONNECTION_ERROR, reason));
    }

    /// What was queued when the connection was cut off as a slow consumer, if it was.
    pub(crate) fn slow_cut(&self) -> Option<SlowCut> {
        self.slow_cut.lock().unwrap().clone()
    }

    /// [`Conn::slow_cut`], once: for whoever notes the cut (logs it, remembers it).
    pub(crate) fn take_cut_note(&self) -> Option<SlowCut> {
        let cut = self.slow_cut()?;
        (!self.cut_noted.swap(true, Ordering::AcqRel)).then_some(cut)
    }

    /// Closes the connection after sending `goodbye` (first caller wins).
    pub(crate) fn close(&self, goodbye: Goodbye) {
        if self.closing.swap(true, Ordering::AcqRel) {
            return;
        }
        *self.goodbye.lock().unwrap() = Some(goodbye);
        self.kill.notify_waiters();
    }

    /// Resolves once `close` was called.
    pub(crate) async fn killed(&self) {
        let notified = self.kill.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if self.closing.load(Ordering::Acquire) {
            return;
        }
        notified.await;
    }
}

/// Writes all of `buf` unless the connection is killed first; returns how much was written.
/// (A `write` that is cancelled while pending has written nothing, so no frame is torn.)
async fn write_killable<W: AsyncWrite + Unpin>(wr: &mut W, buf: &[u8], conn: &Conn) -> std::io::Result<usize> {
    let mut pos = 0;
    while pos < buf.len() {
        tokio::select! {
            r = wr.write(&buf[pos..]) => match r? {
                0 => return Err(std::io::ErrorKind::WriteZero.into()),
                n => {
                    pos += n;
                    conn.metrics.bytes_out.inc_by(n as u64);
                }
            },
            _ = conn.killed() => return Ok(pos),
        }
    }
    Ok(pos)
}

pub(crate) async fn writer<W: AsyncWrite + Unpin>(mut wr: W, conn: Arc<Conn>) {
    let mut buf = BytesMut::new();
    let mut batch = VecDeque::new();
    // Where each frame of `buf` ends.
    let mut ends = Vec::new();
    loop {
        if conn.closing.load(Ordering::Acquire) {
            break;
        }
        if !conn.take_batch(&mut batch) {
            let big = buf.capacity() > KEEP_IDLE_BUFFER
                || batch.capacity() > IDLE_QUEUE_FRAMES
                || conn.queue_capacity() > IDLE_QUEUE_FRAMES;
            // Only a connection that grew its buffers arms a timer to give them back.
            let release = async {
                if big { tokio::time::sleep(WRITER_IDLE_RELEASE).await } else { std::future::pending().await }
            };
            tokio::select! {
                biased;
                _ = conn.killed() => break,
                _ = conn.ready.notified() => continue,
                _ = release => {
                    // Idle since the burst that grew them: give the memory back.
                    buf = BytesMut::new();
                    batch = VecDeque::new();
                    conn.release_idle_queue();
                    // `notified()` was not waited on above: look at the queue again.
                    continue;
                }
            }
        }
        ends.clear();
        for (seq, body) in batch.drain(..) {
            frame::write_server_frame(&mut buf, seq, &body);
            ends.push(buf.len());
        }
        match write_killable(&mut wr, &buf, &conn).await {
            Ok(n) if n == buf.len() => buf.clear(),
            // Killed mid-write: keep the rest for a last attempt. A slow consumer gets only the
            // rest of the frame being written (so the goodbye follows a whole frame): the
            // frames not begun stay in the session's replay window.
            Ok(n) => {
                if conn.slow_cut.lock().unwrap().is_some() {
                    let end = if n == 0 { 0 } else { ends.iter().copied().find(|&e| e >= n).unwrap_or(buf.len()) };
                    buf.truncate(end);
                }
                let _ = buf.split_to(n);
                break;
            }
            Err(_) => {
                conn.close(Goodbye::new(0, LinkStateChangeReason::CONNECTION_ERROR, "write failed"));
                conn.take_rest(true);
                return;
            }
        }
    }
    // Closed: frames queued before the goodbye (e.g. a logout reply) go first, then the
    // goodbye, with a bounded wait for a peer that does not read.
    let goodbye = conn.goodbye.lock().unwrap().take();
    if let Some(g) = goodbye {
        for (seq, body) in conn.take_rest(false) {
            frame::write_server_frame(&mut buf, seq, &body);
        }
        frame::write_server_frame(&mut buf, 0, &g.encode());
    }
    if !buf.is_empty() {
        let _ = tokio::time::timeout(CLOSE_WRITE_WAIT, wr.write_all(&buf)).await;
    }
    // A FIN after the goodbye (the reader side keeps reading meanwhile, see
    // `session::linger`, so that the close is not a reset that would destroy it in flight).
    let _ = tokio::time::timeout(CLOSE_WRITE_WAIT, wr.shutdown()).await;
    conn.take_rest(true);
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtm2_proto::frame::FrameDecoder;
    use rtm2_proto::pb::ServerFrame;
    use tokio::io::AsyncReadExt;

    fn body(n: usize) -> Bytes {
        Bytes::from(vec![b'x'; n])
    }

    #[test]
    fn the_queue_holds_cap_frames_and_batches_stay_near_the_write_size() {
        let conn = Conn::new(16, usize::MAX, crate::metrics::Metrics::new());
        for seq in 1..=16 {
            assert!(conn.push(seq, body(100 * 1024)));
        }
        // Full: the 17th frame is refused (a slow consumer), nothing was dropped silently.
        assert!(!conn.push(17, body(1)));
        let mut batch = VecDeque::new();
        let mut taken = Vec::new();
        while conn.take_batch(&mut batch) {
            // 100 KiB frames: a batch stops at the first frame that reaches 256 KiB.
            assert_eq!(batch.len(), if taken.len() < 18 { 3 } else { 1 });
            taken.extend(batch.drain(..).map(|(seq, _)| seq));
            if taken.len() == 3 {
                // Frames taken by the writer free their slots.
                for seq in 17..=19 {
                    assert!(conn.push(seq, body(100 * 1024)));
                }
                assert!(!conn.push(20, body(1)));
            }
        }
        assert_eq!(taken, (1..=19).collect::<Vec<_>>());
        // Small frames go in one batch (the queue is swapped, not walked).
        let conn = Conn::new(1000, usize::MAX, crate::metrics::Metrics::new());
        for seq in 1..=1000 {
            assert!(conn.push(seq, body(10)));
        }
        assert!(conn.take_batch(&mut batch));
        assert_eq!(batch.len(), 1000);
        assert!(batch.iter().map(|f| f.0).eq(1..=1000));
        // Empty: the writer is marked waiting, and the next push wakes it exactly then.
        batch.clear();
        assert!(!conn.take_batch(&mut batch));
        assert!(conn.out.lock().writer_waiting);
        assert!(conn.push(1, body(1)));
        assert!(!conn.out.lock().writer_waiting);
        // After the writer ended nothing is accepted.
        conn.take_rest(true);
        assert!(!conn.push(2, body(1)));
    }

    #[test]
    fn an_unsequenced_frame_into_a_full_queue_closes_as_slow_consumer() {
        let conn = Conn::new(16, usize::MAX, crate::metrics::Metrics::new());
        for _ in 0..16 {
            conn.send_unsequenced(body(1));
        }
        assert!(!conn.closing.load(Ordering::Acquire));
        conn.send_unsequenced(body(1));
        assert!(conn.closing.load(Ordering::Acquire));
        let g = conn.goodbye.lock().unwrap().clone().unwrap();
        assert!(g.reason.contains("slow consumer: 16 frames"), "{}", g.reason);
    }

    /// The writer sends every frame in order, through a pipe far smaller than the traffic and
    /// with a producer racing it, and after a close the queued frames and then the goodbye.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_writer_keeps_order_and_ends_with_the_goodbye() {
        let (client, server) = tokio::io::duplex(4096);
        let conn = Conn::new(1 << 20, usize::MAX, crate::metrics::Metrics::new());
        let writer = tokio::spawn(writer(server, conn.clone()));
        const N: u64 = 20_000;
        let producer = {
            let conn = conn.clone();
            tokio::spawn(async move {
                for seq in 1..=N {
                    let b = frame::encode_server_body(&server_frame::Body::PublishAck(pb::PublishAck {
                        up_to: seq,
                        server_time_ms: 0,
                    }));
                    assert!(conn.push(seq, b));
                    if seq % 1000 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
                conn.close(Goodbye::new(0, LinkStateChangeReason::LOGOUT, "bye"));
            })
        };
        let mut rd = client;
        let mut wire = Vec::new();
        // (A lost wake-up would leave the writer waiting: fail instead of hanging.)
        tokio::time::timeout(Duration::from_secs(60), rd.read_to_end(&mut wire)).await.unwrap().unwrap();
        producer.await.unwrap();
        writer.await.unwrap();
        let dec = FrameDecoder::new(1 << 20);
        let mut buf = BytesMut::from(&wire[..]);
        let mut frames = Vec::new();
        while let Some(b) = dec.decode(&mut buf).unwrap() {
            frames.push(frame::decode_server(b).unwrap());
        }
        assert!(buf.is_empty());
        let (last, events) = frames.split_last().unwrap();
        assert!(matches!(&last.body, Some(server_frame::Body::Goodbye(g)) if g.reason == "bye"));
        let seqs: Vec<u64> = events.iter().map(|f: &ServerFrame| f.seq).collect();
        // Everything pushed before the close is written, in order, before the goodbye.
        assert_eq!(seqs, (1..=N).collect::<Vec<_>>());
        assert!(!conn.push(N + 1, body(1)), "the writer ended");
    }

    /// A queue grown by a burst is kept while the writer merely catches up (it empties again
    /// and again within a burst; releasing it each time meant regrowing it, copies and fresh
    /// pages, at full speed) and given back once the writer has been idle a while.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_burst_queue_is_kept_while_draining_and_released_when_idle() {
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let conn = Conn::new(1 << 20, usize::MAX, crate::metrics::Metrics::new());
        // More than one write batch, so that the queue itself is walked (not swapped).
        const N: u64 = 40_000;
        let varint_len = |v: u64| (64 - (v | 1).leading_zeros()).div_ceil(7) as usize;
        let frame_len = |seq: u64| frame::LEN_PREFIX + 1 + varint_len(seq) + 10;
        let total: usize = (1..=N).map(frame_len).sum();
        for seq in 1..=N {
            assert!(conn.push(seq, body(10)));
        }
        assert!(conn.queue_capacity() >= N as usize);
        let writer = tokio::spawn(writer(server, conn.clone()));
        let mut wire = vec![0u8; total];
        tokio::time::timeout(Duration::from_secs(30), client.read_exact(&mut wire)).await.unwrap().unwrap();
        // Everything was written; the writer waits for more with the queue it grew.
        let start = std::time::Instant::now();
        while !conn.out.lock().writer_waiting {
            assert!(start.elapsed() < Duration::from_secs(5), "the writer did not finish");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert!(conn.queue_capacity() > IDLE_QUEUE_FRAMES, "released as soon as it was drained");
        tokio::time::sleep(WRITER_IDLE_RELEASE + Duration::from_millis(300)).await;
        assert!(conn.queue_capacity() <= IDLE_QUEUE_FRAMES, "not released after {WRITER_IDLE_RELEASE:?} idle");
        // It still writes what comes next.
        assert!(conn.push(N + 1, body(10)));
        let mut more = vec![0u8; frame_len(N + 1)];
        tokio::time::timeout(Duration::from_secs(5), client.read_exact(&mut more)).await.unwrap().unwrap();
        conn.close(Goodbye::new(0, LinkStateChangeReason::LOGOUT, "bye"));
        writer.await.unwrap();
    }
}
