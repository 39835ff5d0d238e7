//! Unit tests of the link: pending requests, the replay, publish waits, the writer's batching.

use super::io::writer;
use super::session::*;
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
    s.ack_publishes(ids[2], 7);
    assert!(matches!(s.pub_outcome(ids[0], None), Some(Ok(7))));
    let e = s.pub_outcome(ids[1], None).unwrap().unwrap_err();
    assert_eq!((e.code, e.operation), (ErrorCode::CHANNEL_RECEIVER_OFFLINE, "publish"));
    assert!(matches!(s.pub_outcome(ids[2], None), Some(Ok(7))));
    assert!(is_clean(&s) && is_empty(&s));
}

/// A publish's answer time is that of the first acknowledgement that covered it, however late
/// it is read; one older than the ring kept gets the oldest time kept.
#[test]
fn each_publish_gets_the_time_of_the_ack_that_covered_it() {
    let t = AckTimes::default();
    t.push(10, 100);
    t.push(20, 200);
    t.push(30, 300);
    assert_eq!([1, 10, 11, 20, 21, 30].map(|id| t.time_of(id)), [100, 100, 200, 200, 300, 300]);
    for k in 4..=100u64 {
        t.push(k * 10, k * 100);
    }
    assert_eq!(t.time_of(1000), 10_000);
    assert_eq!(t.time_of(991), 10_000);
    assert_eq!(t.time_of(990), 9_900);
    // Covered by an acknowledgement the ring no longer holds: the oldest it holds.
    assert_eq!(t.time_of(15), (100 - 63) * 100);
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
    assert!(matches!(s.pub_outcome(answered, None), Some(Ok(_))));
    assert!(is_clean(&s));
    assert!(s.unanswered().is_empty(), "answered publishes are not resent");
    // The next ack watermark releases the tombstones and their bytes.
    s.ack_publishes(answered, 0);
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
    let wait =
        |id, ms| PubWait::new(&s, id, "publish", ErrorCode::CHANNEL_PUBLISH_MESSAGE_TIMEOUT, Duration::from_millis(ms));
    let acked = s.register_pub_into(&mut out, &publish_body(1));
    let task = tokio::spawn(wait(acked, 10_000));
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(!task.is_finished());
    s.ack_publishes(acked, 0);
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
            assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}; writes {:?}", self.writes());
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
        login_time_ms: 0,
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
