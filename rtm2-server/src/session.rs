//! Sessions and the serving of one connection.
//!
//! A [`Session`] is a logged-in user; a [`Conn`] (see `conn.rs`) is one connection. Every event a session
//! sends gets the next sequence number and is kept in a bounded replay buffer, so that when the
//! connection drops the session can live on (detached) for the resume window and a client that
//! reconnects with `Login.resume` gets exactly the frames it missed. Connection-level frames
//! (handshake, login reply, pong, goodbye) carry seq 0.
//!
//! [`serve`] runs one connection: the handshake, then the read loop that hands requests to the
//! engine, while the connection's writer task (`conn.rs`) sends what the session queues.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::sync::Notify;

use rtm2_proto::enums::LinkStateChangeReason;
use rtm2_proto::fastpath::{self, PublishRef};
use rtm2_proto::frame::{self, FrameDecoder};
use rtm2_proto::pb::{self, client_frame, server_frame};
use rtm2_proto::{ErrorCode, limits, now_ms};

pub(crate) use crate::conn::Goodbye;
use crate::conn::{Conn, KEEP_IDLE_BUFFER, writer};
use crate::engine::{App, Engine, Reply, SubscribeOpts};

/// Room made for a `read()` while traffic is light; it doubles while reads fill it, up to
/// `MAX_READ_CHUNK`. Idle connections keep small buffers (memory per connection).
const MIN_READ_CHUNK: usize = 2 * 1024;
/// See [`MIN_READ_CHUNK`].
const MAX_READ_CHUNK: usize = 64 * 1024;

/// Token expiry bookkeeping of a session: "" is the login token, else a stream channel.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deadline {
    pub expires_at_s: u64,
    pub notified: bool,
}

struct SessionOut {
    /// Sequence number of the last event sent.
    seq: u64,
    replay: VecDeque<(u64, Bytes)>,
    replay_bytes: usize,
    conn: Option<Arc<Conn>>,
    /// Bumped on every detach; a detach timer only ends the session it was started for.
    detach_gen: u64,
}

/// A logged-in session.
pub(crate) struct Session {
    pub id: u64,
    pub user_id: Arc<str>,
    pub app: Arc<App>,
    pub receive_own: bool,
    pub heartbeat_s: u32,
    /// How long the user stays present after its connection drops (clamped at login).
    pub presence_timeout_s: u32,
    pub ended: AtomicBool,
    ended_notify: Notify,
    /// Message channels this session subscribed to, with options.
    pub subscriptions: Mutex<HashMap<String, SubscribeOpts>>,
    /// Stream channels this session joined.
    pub streams: Mutex<HashSet<String>>,
    /// Channels (message or stream) this session entered for presence, metadata and lock events.
    pub scopes: Mutex<std::collections::BTreeSet<crate::scope::ScopeKey>>,
    /// Users whose metadata this session subscribed to.
    pub user_meta_subs: Mutex<std::collections::BTreeSet<String>>,
    pub deadlines: Mutex<HashMap<String, Deadline>>,
    pub deadlines_changed: Notify,
    out: parking_lot::Mutex<SessionOut>,
    /// Highest request id processed: a request resent after a resume is not run twice.
    last_request_id: AtomicU64,
    replay_max_frames: usize,
    replay_max_bytes: usize,
    pub limiter: Mutex<crate::rate::Limiter>,
    /// Message-channel publishes are rate-limited (otherwise the limiter is not consulted).
    publishes_limited: bool,
    /// Why the server cut this session's last connection off (a slow consumer), until the
    /// client's next login reports it (`LoginResult.cut_reason`).
    cut_reason: Mutex<Option<String>>,
    /// When the session began (ms since the epoch): in a cluster, the newer of two sessions of
    /// one user on different nodes wins.
    pub(crate) login_ms: u64,
    /// A session of the server's own (the HTTP side's, `backend.rs`) has no connection: what it
    /// is sent goes here instead (dropped when full), and is not kept for a resume.
    sink: Option<tokio::sync::mpsc::Sender<Bytes>>,
}

pub(crate) struct SessionParams {
    pub id: u64,
    pub user_id: Arc<str>,
    pub app: Arc<App>,
    pub receive_own: bool,
    pub heartbeat_s: u32,
    pub presence_timeout_s: u32,
    pub replay_max_frames: usize,
    pub replay_max_bytes: usize,
    pub rate_limits: crate::rate::RateLimits,
    /// See `Session::sink`.
    pub sink: Option<tokio::sync::mpsc::Sender<Bytes>>,
}

impl Session {
    pub(crate) fn new(p: SessionParams) -> Arc<Session> {
        Arc::new(Session {
            id: p.id,
            user_id: p.user_id,
            app: p.app,
            receive_own: p.receive_own,
            heartbeat_s: p.heartbeat_s,
            presence_timeout_s: p.presence_timeout_s,
            ended: AtomicBool::new(false),
            ended_notify: Notify::new(),
            subscriptions: Mutex::new(HashMap::new()),
            streams: Mutex::new(HashSet::new()),
            scopes: Mutex::default(),
            user_meta_subs: Mutex::default(),
            deadlines: Mutex::new(HashMap::new()),
            deadlines_changed: Notify::new(),
            out: parking_lot::Mutex::new(SessionOut {
                seq: 0,
                replay: VecDeque::new(),
                replay_bytes: 0,
                conn: None,
                detach_gen: 0,
            }),
            last_request_id: AtomicU64::new(0),
            replay_max_frames: p.replay_max_frames.max(1),
            replay_max_bytes: p.replay_max_bytes,
            limiter: Mutex::new(crate::rate::Limiter::new(p.rate_limits)),
            publishes_limited: p.rate_limits.publish_per_s != 0,
            cut_reason: Mutex::new(None),
            login_ms: now_ms(),
            sink: p.sink,
        })
    }

    /// Sends an event (or a response): numbered, kept for resume, and queued to the current
    /// connection if there is one. A full connection queue closes that connection (slow
    /// consumer); the session itself lives on for a resume.
    pub(crate) fn send(&self, body: Bytes) {
        self.send_many(std::iter::once(body));
    }

    /// `send` for several frames, in order, under one lock of the session and one of its
    /// connection (a run of messages delivered together).
    pub(crate) fn send_many(&self, bodies: impl Iterator<Item = Bytes>) {
        if self.ended.load(Ordering::Relaxed) {
            return;
        }
        if let Some(sink) = &self.sink {
            for body in bodies {
                let _ = sink.try_send(body);
            }
            return;
        }
        let mut o = self.out.lock();
        let SessionOut { seq, replay, replay_bytes, conn, .. } = &mut *o;
        let mut q = conn.as_ref().map(|c| (c, c.out.lock()));
        let mut full = false;
        for body in bodies {
            *seq += 1;
            *replay_bytes += body.len();
            replay.push_back((*seq, body.clone()));
            while replay.len() > self.replay_max_frames || *replay_bytes > self.replay_max_bytes {
                match replay.pop_front() {
                    Some((_, b)) => *replay_bytes -= b.len(),
                    None => break,
                }
            }
            if let Some((c, q)) = &mut q
                && !full
            {
                full = !c.push_locked(q, *seq, body);
            }
        }
        if let Some((c, mut q)) = q {
            let wake = std::mem::take(&mut q.writer_waiting);
            drop(q);
            if wake {
                c.ready.notify_one();
            }
            if full {
                // The connection stays attached until its read loop ends and detaches it, so
                // that the session is then kept for a resume and ended when none comes.
                c.cut_slow_consumer();
                self.note_cut(c);
            }
        }
    }

    /// Logs a slow-consumer cut of `conn` (once) and remembers its reason for the client's
    /// next login: a client that was not reading cannot have read the goodbye.
    pub(crate) fn note_cut(&self, conn: &Conn) {
        if let Some(cut) = conn.take_cut_note() {
            tracing::warn!(
                app = %self.app.id,
                user = %self.user_id,
                session = self.id,
                frames = cut.frames,
                bytes = cut.bytes,
                "slow consumer cut off: its outbound queue was full (the session is kept for a resume)"
            );
            *self.cut_reason.lock().unwrap() = Some(cut.reason);
        }
    }

    /// The reason of the last slow-consumer cut not reported yet (see `note_cut`).
    pub(crate) fn take_cut_reason(&self) -> Option<String> {
        self.cut_reason.lock().unwrap().take()
    }

    /// Whether a client that received everything up to `last_seq` can resume without a gap.
    pub(crate) fn can_resume(&self, last_seq: u64) -> bool {
        let o = self.out.lock();
        let oldest_missing_kept = o.replay.front().map_or(o.seq + 1, |f| f.0);
        last_seq <= o.seq && last_seq + 1 >= oldest_missing_kept
    }

    /// Attaches a connection and queues every kept event after `after_seq` to it, in order.
    pub(crate) fn attach(&self, conn: Arc<Conn>, after_seq: u64) {
        let mut o = self.out.lock();
        // The replay is queued whatever the connection's caps (it is bounded by the replay
        // window): a resume of a large backlog is not a slow consumer.
        conn.push_replay(o.replay.iter().filter(|(seq, _)| *seq > after_seq).map(|(seq, body)| (*seq, body)));
        o.conn = Some(conn);
    }

    /// Detaches `conn` if it is the current connection; returns the detach generation.
    pub(crate) fn detach(&self, conn: &Arc<Conn>) -> Option<u64> {
        let mut o = self.out.lock();
        if o.conn.as_ref().is_some_and(|c| Arc::ptr_eq(c, conn)) {
            o.conn = None;
            o.detach_gen += 1;
            return Some(o.detach_gen);
        }
        None
    }

    /// Whether this is a session of the server's own (the HTTP side's), not a client's.
    pub(crate) fn is_backend(&self) -> bool {
        self.sink.is_some()
    }

    /// Whether a connection is attached now.
    pub(crate) fn is_attached(&self) -> bool {
        self.out.lock().conn.is_some()
    }

    /// Whether the session is still detached since detach generation `generation`.
    pub(crate) fn still_detached(&self, generation: u64) -> bool {
        let o = self.out.lock();
        o.conn.is_none() && o.detach_gen == generation
    }

    /// Closes the current connection (if any) with `goodbye`.
    pub(crate) fn close_conn(&self, goodbye: Goodbye) {
        if let Some(c) = self.out.lock().conn.clone() {
            c.close(goodbye);
        }
    }

    /// Marks the session ended (first caller wins) and wakes whoever waits for it.
    pub(crate) fn mark_ended(&self) -> bool {
        let first = !self.ended.swap(true, Ordering::AcqRel);
        if first {
            self.ended_notify.notify_waiters();
        }
        first
    }

    /// Resolves once the session ended.
    pub(crate) async fn wait_ended(&self) {
        let notified = self.ended_notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if self.ended.load(Ordering::Acquire) {
            return;
        }
        notified.await;
    }

    pub(crate) fn set_deadline(&self, key: &str, expires_at_s: Option<u64>) {
        let mut d = self.deadlines.lock().unwrap();
        match expires_at_s {
            Some(t) => {
                d.insert(key.to_string(), Deadline { expires_at_s: t, notified: false });
            }
            None => {
                d.remove(key);
            }
        }
        drop(d);
        self.deadlines_changed.notify_one();
    }
}

pub(crate) fn response(request_id: u64, reply: Reply) -> Bytes {
    let (code, reason, result) = match reply {
        Ok(result) => (0, String::new(), result),
        Err(v) => (v.code.code(), v.reason, None),
    };
    frame::encode_server_body(&server_frame::Body::Response(pb::Response {
        request_id,
        code,
        reason,
        server_time_ms: now_ms(),
        result,
    }))
}

/// Reads until `buf` starts with a complete frame and returns its body length (the frame stays
/// in `buf`; see [`FrameDecoder::peek`]), or `Err(reason)` when the connection is over.
async fn next_frame<R: AsyncRead + Unpin>(
    rd: &mut R,
    buf: &mut BytesMut,
    dec: &FrameDecoder,
    bytes_in: &prometheus::IntCounter,
) -> Result<usize, Option<Goodbye>> {
    loop {
        match dec.peek(buf) {
            Ok(Some(len)) => return Ok(len),
            Ok(None) => {}
            Err(e) => return Err(Some(protocol_error(e))),
        }
        if let Some(p) = buf.get(..frame::LEN_PREFIX) {
            // Room for the rest of the announced frame (already bounded by `peek`).
            let len = u32::from_le_bytes([p[0], p[1], p[2], p[3]]) as usize;
            buf.reserve(frame::LEN_PREFIX + len - buf.len());
        }
        let room = (buf.capacity() - buf.len()).clamp(MIN_READ_CHUNK, MAX_READ_CHUNK);
        buf.reserve(room);
        let n = match rd.read_buf(buf).await {
            Ok(0) | Err(_) => return Err(None),
            Ok(n) => n,
        };
        bytes_in.inc_by(n as u64);
        // A read that filled the room: traffic is heavy, read more at once next time.
        if n >= room {
            buf.reserve((room * 2).min(MAX_READ_CHUNK));
        }
    }
}

/// Takes the frame of body length `len` (from [`next_frame`]) off the front of `buf`.
fn take_frame(buf: &mut BytesMut, len: usize) -> Bytes {
    buf.advance(frame::LEN_PREFIX);
    buf.split_to(len).freeze()
}

fn protocol_error(msg: impl std::fmt::Display) -> Goodbye {
    Goodbye::new(
        ErrorCode::INVALID_PARAMETER.code(),
        LinkStateChangeReason::CONNECTION_ERROR,
        format!("protocol error: {msg}"),
    )
}

fn publish_ack(up_to: u64) -> Bytes {
    frame::encode_server_body(&server_frame::Body::PublishAck(pb::PublishAck { up_to, server_time_ms: now_ms() }))
}

fn pong(p: pb::Ping) -> Bytes {
    frame::encode_server_body(&server_frame::Body::Pong(pb::Pong {
        client_time_ms: p.client_time_ms,
        server_time_ms: now_ms(),
    }))
}

/// How a connection ended, from the session's point of view.
enum End {
    /// The session is over (protocol error): end it.
    Final(Option<Goodbye>),
    /// The client logged out (request `.0`; the session has ended): answer, and close.
    LoggedOut(u64),
    /// Only the connection is over: keep the session for a resume.
    Transient(Option<Goodbye>),
}

/// A request read from a logged-in connection.
enum Request<'a> {
    /// A plain `Publish`, borrowed from the read buffer (see `rtm2_proto::fastpath`).
    Publish(PublishRef<'a>),
    /// Any frame, decoded by prost.
    Frame(client_frame::Body),
}

/// The request side of one logged-in connection.
struct Requests<'a> {
    engine: &'a Arc<Engine>,
    session: &'a Arc<Session>,
    conn: &'a Arc<Conn>,
    batch_acks: bool,
    /// Highest successful publish not answered yet (answered by one PublishAck per read batch).
    ack_upto: u64,
    /// The timestamp of this read batch's messages: one clock read per batch, not per message.
    batch_ms: Option<u64>,
    /// Publishes to one message channel not delivered yet (see `PublishRun`).
    run: crate::publish::PublishRun,
}

impl Requests<'_> {
    /// Called when the frames read so far are handled: answers the batch's publishes.
    fn end_batch(&mut self) {
        // Delivered before they are acknowledged.
        self.run.deliver(self.session);
        // Stored messages on disk before they are acknowledged (one wait, often one fsync, for
        // the batch: `group_commit.rs`); if the write failed, each is answered with the failure
        // before the acknowledgement that covers it.
        if let Some((history, ticket, ids)) = self.run.take_durable() {
            for id in ids {
                if let Err(v) = crate::publish::durable(&history, ticket, Ok(None)) {
                    self.session.send(response(id, Err(v)));
                }
            }
        }
        if self.ack_upto != 0 {
            self.session.send(publish_ack(self.ack_upto));
            self.ack_upto = 0;
        }
        self.batch_ms = None;
    }

    /// Handles one request; `Some` when the connection is over.
    fn handle(&mut self, request_id: u64, request: Request<'_>) -> Option<End> {
        let session = self.session;
        match request {
            Request::Frame(client_frame::Body::Ping(p)) => {
                self.conn.send_unsequenced(pong(p));
                return None;
            }
            _ if request_id == 0 => return Some(End::Final(Some(protocol_error("request without a request_id")))),
            // Resent after a resume but already processed: its response is in the replay.
            _ if request_id <= session.last_request_id.load(Ordering::Relaxed) => return None,
            _ => session.last_request_id.store(request_id, Ordering::Relaxed),
        }
        let body = match request {
            Request::Publish(p) => {
                self.publish(request_id, p);
                return None;
            }
            Request::Frame(client_frame::Body::Publish(p)) => {
                self.publish(request_id, PublishRef::from(&p));
                return None;
            }
            Request::Frame(body) => body,
        };
        // Anything else comes after the delivery of the publishes before it.
        self.run.deliver(session);
        match body {
            client_frame::Body::Logout(_) => {
                self.end_batch();
                // Gone for everyone else before the client hears that it logged out (in a
                // cluster: once every node applied it, see `End::LoggedOut`).
                self.engine.end_session(session, crate::engine::Ending::Leave);
                return Some(End::LoggedOut(request_id));
            }
            client_frame::Body::Hello(_) | client_frame::Body::Login(_) => {
                let v = rtm2_proto::validate::Violation::new(
                    ErrorCode::DUPLICATE_OPERATION,
                    "this connection is already logged in",
                );
                session.send(response(request_id, Err(v)));
            }
            body => {
                let is_publish = matches!(body, client_frame::Body::PublishTopic(_));
                let admitted = {
                    let mut limiter = session.limiter.lock().unwrap();
                    match limiter.admit(&body) {
                        Ok(()) => match &body {
                            // Every subscribe attempt counts (11020 on too many per channel).
                            client_frame::Body::Subscribe(r) => limiter.admit_subscribe(&r.channel),
                            _ => Ok(()),
                        },
                        Err((what, rate)) => Err(rate_refusal(what, rate)),
                    }
                };
                let operation = crate::metrics::operation(&body);
                let metrics = &self.engine.metrics;
                let reply = match admitted {
                    // (Topic messages are counted, not timed: they are the stream channel's message path.)
                    Ok(()) if is_publish => self.engine.handle(session, request_id, body),
                    Ok(()) => {
                        let start = std::time::Instant::now();
                        let reply = self.engine.handle(session, request_id, body);
                        if let Some(r) = &reply {
                            metrics.request(operation, start.elapsed(), r.is_err());
                        }
                        reply
                    }
                    Err(v) => {
                        metrics.rate_limited.inc();
                        Some(Err(v))
                    }
                };
                self.answer(request_id, reply, is_publish);
            }
        }
        None
    }

    fn publish(&mut self, request_id: u64, p: PublishRef<'_>) {
        let admitted = match self.session.publishes_limited {
            true => self.session.limiter.lock().unwrap().admit_publish(),
            false => Ok(()),
        };
        let reply = match admitted {
            Ok(()) => {
                let now = *self.batch_ms.get_or_insert_with(now_ms);
                self.run.publish(self.session, request_id, p, now, self.batch_acks)
            }
            Err((what, rate)) => {
                self.engine.metrics.rate_limited.inc();
                Err(rate_refusal(what, rate))
            }
        };
        self.answer(request_id, Some(reply), true);
    }

    fn answer(&mut self, request_id: u64, reply: Option<Reply>, is_publish: bool) {
        match reply {
            Some(Ok(None)) if is_publish && self.batch_acks => self.ack_upto = request_id,
            Some(reply) => {
                // After the delivery of the publishes before it.
                self.run.deliver(self.session);
                self.session.send(response(request_id, reply));
            }
            // The handler answers later (a queued lock acquisition).
            None => {}
        }
    }
}

fn rate_refusal(what: &str, rate: usize) -> rtm2_proto::validate::Violation {
    rtm2_proto::validate::Violation::new(
        ErrorCode::OPERATION_RATE_EXCEED_LIMITATION,
        format!("more than {rate} {what} per second; slow down"),
    )
}

/// Serves one connection until it ends.
pub(crate) async fn serve<S>(engine: Arc<Engine>, stream: S)
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (mut rd, wr) = tokio::io::split(stream);
    let conn =
        Conn::new(engine.config.outbound_queue_frames, engine.config.outbound_queue_bytes, engine.metrics.clone());
    // (The read buffer starts empty and grows with traffic; see `next_frame`.)
    let _slot = match engine.connection_slot() {
        Some(slot) => slot,
        None => {
            conn.close(Goodbye::new(
                ErrorCode::LOGIN_NO_SERVER_RESOURCES.code(),
                LinkStateChangeReason::LOGIN_REJECTED,
                format!("the server has reached its limit of {} connections", engine.config.max_connections),
            ));
            writer(wr, conn).await;
            return;
        }
    };
    let writer_task = tokio::spawn(writer(wr, conn.clone()));
    let dec = FrameDecoder::new(engine.config.max_frame_len);
    let mut buf = BytesMut::new();

    // Phase 1: Hello then Login, within the pre-login deadline.
    let login =
        tokio::time::timeout(engine.config.prelogin_timeout, handshake(&engine, &mut rd, &mut buf, &dec, &conn)).await;
    let (session, resume_from, features) = match login {
        Ok(Ok(v)) => v,
        Ok(Err(goodbye)) => {
            conn.close(goodbye.unwrap_or_else(|| Goodbye::new(0, LinkStateChangeReason::UNKNOWN, "closed")));
            linger(&mut rd, writer_task).await;
            return;
        }
        Err(_) => {
            conn.close(Goodbye::new(
                ErrorCode::LOGIN_TIMEOUT.code(),
                LinkStateChangeReason::LOGIN_TIMEOUT,
                "no login within the pre-login timeout",
            ));
            linger(&mut rd, writer_task).await;
            return;
        }
    };
    session.attach(conn.clone(), resume_from.unwrap_or(0));
    // Back within its locks' ttl: the user keeps them.
    crate::locks::owner_back(&session.app, &session.user_id);
    if resume_from.is_none() {
        tokio::spawn(crate::engine::token_timer(engine.clone(), session.clone()));
    }

    // Phase 2: requests until the connection ends.
    let keepalive = Duration::from_secs(session.heartbeat_s as u64) + engine.config.keepalive_grace;
    let mut requests = Requests {
        engine: &engine,
        session: &session,
        conn: &conn,
        batch_acks: features & rtm2_proto::FEATURE_PUBLISH_ACK != 0,
        ack_upto: 0,
        batch_ms: None,
        run: Default::default(),
    };
    // Silence is measured in ticks of a quarter of the keepalive (no timer per frame): a tick
    // with no frame since the previous one adds its length.
    let tick_len = (keepalive / 4).max(Duration::from_millis(50));
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + tick_len, tick_len);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut frames, mut frames_at_tick, mut silent) = (0u64, 0u64, Duration::ZERO);
    let end = loop {
        if !dec.has_frame(&buf) {
            requests.end_batch();
        }
        // A frame already in the buffer is taken at once: no select per frame (each would
        // register and remove a waiter on the kill notification and poll the tick timer).
        let buffered = match conn.closing.load(Ordering::Acquire) {
            false => dec.peek(&buf).ok().flatten(),
            true => None,
        };
        let next = if let Some(len) = buffered {
            Ok(len)
        } else {
            tokio::select! {
                biased;
                _ = conn.killed() => break End::Transient(None),
                _ = ticks.tick() => {
                    silent = if frames == frames_at_tick { silent + tick_len } else { Duration::ZERO };
                    frames_at_tick = frames;
                    if silent > Duration::ZERO {
                        // Quiet for a tick: give a burst's memory back.
                        if buf.is_empty() && buf.capacity() > KEEP_IDLE_BUFFER {
                            buf = BytesMut::new();
                        }
                        requests.run.release_idle();
                    }
                    if silent >= keepalive {
                        break End::Transient(Some(Goodbye::new(
                            ErrorCode::NOT_CONNECTED.code(),
                            LinkStateChangeReason::KEEP_ALIVE_TIMEOUT,
                            format!("no frame from the client for {} ms", silent.as_millis()),
                        )));
                    }
                    continue;
                }
                // (Cancel-safe: bytes read stay in `buf`.)
                r = next_frame(&mut rd, &mut buf, &dec, &engine.metrics.bytes_in) => r,
            }
        };
        frames += 1;
        let len = match next {
            Err(Some(g)) => break End::Final(Some(g)),
            Err(None) => break End::Transient(None),
            Ok(len) => len,
        };
        // The hottest request, a plain Publish, is read in place without allocating; anything
        // else (or any unusual encoding of a publish) goes through prost.
        let body = &buf[frame::LEN_PREFIX..frame::LEN_PREFIX + len];
        let fast = fastpath::decode_publish_frame(body).map(|(id, p)| requests.handle(id, Request::Publish(p)));
        let step = match fast {
            Some(step) => {
                buf.advance(frame::LEN_PREFIX + len);
                step
            }
            None => match frame::decode_client(take_frame(&mut buf, len)) {
                Ok(f) => match f.body {
                    Some(body) => requests.handle(f.request_id, Request::Frame(body)),
                    None => Some(End::Final(Some(protocol_error("frame has no body")))),
                },
                Err(e) => Some(End::Final(Some(protocol_error(e)))),
            },
        };
        if let Some(end) = step {
            break end;
        }
    };
    // Publishes that ran: their answer belongs to the session (replayed on a resume).
    requests.end_batch();
    // A cut by a connection-level frame (a pong into a full queue) is noted here.
    session.note_cut(&conn);
    match end {
        End::LoggedOut(request_id) => {
            if let Some(c) = &engine.cluster {
                c.barrier(c.notes_sent()).await;
            }
            conn.send_unsequenced(response(request_id, Ok(None)));
            conn.close(Goodbye::new(0, LinkStateChangeReason::LOGOUT, "logged out"));
        }
        End::Final(goodbye) => {
            // Queue the goodbye before ending the session so queued replies go out first.
            conn.close(goodbye.unwrap_or_else(|| Goodbye::new(0, LinkStateChangeReason::UNKNOWN, "closed")));
            engine.end_session(&session, crate::engine::Ending::Leave);
        }
        End::Transient(goodbye) => {
            if let Some(g) = goodbye {
                conn.close(g);
            }
            conn.close(Goodbye::new(0, LinkStateChangeReason::CONNECTION_ERROR, "connection closed"));
            if session.ended.load(Ordering::Acquire) {
                // Ended elsewhere (takeover, token expiry): nothing to keep.
            } else if let Some(generation) = session.detach(&conn) {
                engine.keep_detached(session.clone(), generation);
                crate::locks::owner_away(&session.app, &session.user_id);
            }
        }
    }
    drop(session);
    linger(&mut rd, writer_task).await;
}

/// Longest a closing connection is kept to deliver its goodbye: the writer's last write and
/// shutdown ([`crate::conn::CLOSE_WRITE_WAIT`] each), then the client's close.
const CLOSE_LINGER: Duration = Duration::from_secs(5);

/// Ends a connection: waits (at most [`CLOSE_LINGER`]) for the writer to send the goodbye and
/// shut its side down and for the client to close its side, reading and discarding whatever
/// the client still sends meanwhile. A socket closed with unread input is reset, and a reset
/// destroys the goodbye in flight: the client would see "connection reset" instead of why.
async fn linger<R: AsyncRead + Unpin>(rd: &mut R, writer_task: tokio::task::JoinHandle<()>) {
    let drain = async {
        let mut sink = [0u8; 4096];
        while let Ok(n) = rd.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(CLOSE_LINGER, async {
        let _ = tokio::join!(writer_task, drain);
    })
    .await;
}

async fn handshake<R: AsyncRead + Unpin>(
    engine: &Arc<Engine>,
    rd: &mut R,
    buf: &mut BytesMut,
    dec: &FrameDecoder,
    conn: &Arc<Conn>,
) -> Result<(Arc<Session>, Option<u64>, u64), Option<Goodbye>> {
    // Hello.
    let len = next_frame(rd, buf, dec, &engine.metrics.bytes_in).await?;
    let hello = match frame::decode_client(take_frame(buf, len)).map_err(|e| Some(protocol_error(e)))?.body {
        Some(client_frame::Body::Hello(h)) => h,
        _ => return Err(Some(protocol_error("the first frame must be Hello"))),
    };
    if hello.protocol_version < limits::MIN_PROTOCOL_VERSION || hello.protocol_version > limits::PROTOCOL_VERSION {
        return Err(Some(Goodbye::new(
            ErrorCode::SERVICE_NOT_SUPPORTED.code(),
            LinkStateChangeReason::SERVICE_NOT_SUPPORTED,
            format!(
                "protocol version {} is not supported; this server speaks {}..={}",
                hello.protocol_version,
                limits::MIN_PROTOCOL_VERSION,
                limits::PROTOCOL_VERSION
            ),
        )));
    }
    let features = hello.features & rtm2_proto::FEATURES;
    conn.send_unsequenced(frame::encode_server_body(&server_frame::Body::HelloAck(pb::HelloAck {
        protocol_version: hello.protocol_version,
        features,
        server_name: engine.config.server_name.clone(),
        max_frame_len: engine.config.max_frame_len as u32,
        server_time_ms: now_ms(),
    })));

    // Login (repeatable until one succeeds; each failure is answered).
    loop {
        let len = next_frame(rd, buf, dec, &engine.metrics.bytes_in).await?;
        let frame = frame::decode_client(take_frame(buf, len)).map_err(|e| Some(protocol_error(e)))?;
        let request_id = frame.request_id;
        match frame.body {
            Some(client_frame::Body::Login(login)) => match engine.login(login) {
                Ok((session, result, resume_from)) => {
                    engine.metrics.logins_ok.inc();
                    // In a cluster: answered once every node knows the user is online here.
                    if let Some(c) = &engine.cluster {
                        c.barrier(c.notes_sent()).await;
                    }
                    conn.send_unsequenced(response(request_id, Ok(Some(pb::response::Result::Login(result)))));
                    return Ok((session, resume_from, features));
                }
                Err(v) => {
                    engine.metrics.logins_refused.inc();
                    conn.send_unsequenced(response(request_id, Err(v)))
                }
            },
            Some(client_frame::Body::Ping(p)) => conn.send_unsequenced(pong(p)),
            Some(_) => {
                let v = rtm2_proto::validate::Violation::new(ErrorCode::NOT_LOGIN, "log in before any other request");
                conn.send_unsequenced(response(request_id, Err(v)));
            }
            None => return Err(Some(protocol_error("frame has no body"))),
        }
    }
}
