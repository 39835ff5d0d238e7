//! One client connection: the handshake, the request loop, keepalive, and the writer that
//! batches outbound frames into few `write()` calls.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{Notify, mpsc};

use rtm2_proto::enums::LinkStateChangeReason;
use rtm2_proto::frame::{self, FrameDecoder};
use rtm2_proto::pb::{self, client_frame, server_frame};
use rtm2_proto::{ErrorCode, limits, now_ms};

use crate::engine::{App, Engine, Reply, SubscribeOpts};

/// Bytes gathered before a write is issued, at most.
const WRITE_BATCH_BYTES: usize = 256 * 1024;
/// Bytes read per `read()` call, at most.
const READ_CHUNK: usize = 64 * 1024;

/// Why a session ends, sent to the client as a Goodbye frame.
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

/// The outbound side of a connection, shared by everything that sends to it.
pub(crate) struct Outbound {
    tx: mpsc::Sender<Bytes>,
    closing: AtomicBool,
    goodbye: Mutex<Option<Goodbye>>,
    kill: Notify,
}

impl Outbound {
    /// Queues an encoded frame body. A full queue marks a slow consumer: the connection is
    /// closed with an explicit reason instead of stalling the sender.
    pub(crate) fn send(&self, body: Bytes) {
        if self.closing.load(Ordering::Relaxed) {
            return;
        }
        match self.tx.try_send(body) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => self.close(Goodbye::new(
                ErrorCode::NOT_CONNECTED.code(),
                LinkStateChangeReason::CONNECTION_ERROR,
                format!(
                    "slow consumer: {} frames were waiting to be sent; the connection was closed",
                    self.tx.max_capacity()
                ),
            )),
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
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

/// Token expiry bookkeeping of a session: "" is the login token, else a stream channel.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deadline {
    pub expires_at_s: u64,
    pub notified: bool,
}

/// A logged-in session.
pub(crate) struct Session {
    pub id: u64,
    pub user_id: Arc<str>,
    pub app: Arc<App>,
    pub out: Arc<Outbound>,
    pub receive_own: bool,
    pub heartbeat_s: u32,
    /// Accepted and clamped at login; presence (a later service) gives it meaning.
    #[allow(dead_code)]
    pub presence_timeout_s: u32,
    pub ended: AtomicBool,
    /// Message channels this session subscribed to, with options.
    pub subscriptions: Mutex<HashMap<String, SubscribeOpts>>,
    /// Stream channels this session joined.
    pub streams: Mutex<HashSet<String>>,
    pub deadlines: Mutex<HashMap<String, Deadline>>,
    pub deadlines_changed: Notify,
}

impl Session {
    pub(crate) fn send(&self, body: Bytes) {
        self.out.send(body);
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

fn response(request_id: u64, reply: Reply) -> Bytes {
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

async fn writer<W: AsyncWrite + Unpin>(mut wr: W, mut rx: mpsc::Receiver<Bytes>, out: Arc<Outbound>) {
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut seq: u64 = 0;
    loop {
        let first = tokio::select! {
            biased;
            _ = out.killed() => None,
            m = rx.recv() => m,
        };
        let Some(first) = first else { break };
        seq += 1;
        frame::write_server_frame(&mut buf, seq, &first);
        while buf.len() < WRITE_BATCH_BYTES {
            match rx.try_recv() {
                Ok(body) => {
                    seq += 1;
                    frame::write_server_frame(&mut buf, seq, &body);
                }
                Err(_) => break,
            }
        }
        if wr.write_all(&buf).await.is_err() {
            out.closing.store(true, Ordering::Release);
            return;
        }
        buf.clear();
    }
    // Killed or all senders gone: say goodbye if there is a reason, then close.
    let goodbye = out.goodbye.lock().unwrap().take();
    if let Some(g) = goodbye {
        // Frames already queued before the goodbye (e.g. a logout reply) go first.
        while let Ok(body) = rx.try_recv() {
            seq += 1;
            frame::write_server_frame(&mut buf, seq, &body);
        }
        seq += 1;
        frame::write_server_frame(&mut buf, seq, &g.encode());
    }
    if !buf.is_empty() {
        let _ = tokio::time::timeout(Duration::from_secs(2), wr.write_all(&buf)).await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), wr.shutdown()).await;
}

/// Reads the next frame body, or `Err(reason)` when the connection is over.
async fn next_frame<R: AsyncRead + Unpin>(
    rd: &mut R,
    buf: &mut BytesMut,
    dec: &FrameDecoder,
) -> Result<Bytes, Option<Goodbye>> {
    loop {
        match dec.decode(buf) {
            Ok(Some(body)) => return Ok(body),
            Ok(None) => {}
            Err(e) => {
                return Err(Some(Goodbye::new(
                    ErrorCode::INVALID_PARAMETER.code(),
                    LinkStateChangeReason::CONNECTION_ERROR,
                    format!("protocol error: {e}"),
                )));
            }
        }
        buf.reserve(READ_CHUNK);
        match rd.read_buf(buf).await {
            Ok(0) | Err(_) => return Err(None),
            Ok(_) => {}
        }
    }
}

fn protocol_error(msg: impl std::fmt::Display) -> Goodbye {
    Goodbye::new(
        ErrorCode::INVALID_PARAMETER.code(),
        LinkStateChangeReason::CONNECTION_ERROR,
        format!("protocol error: {msg}"),
    )
}

/// Serves one connection until it ends.
pub(crate) async fn serve<S>(engine: Arc<Engine>, stream: S)
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (mut rd, wr) = tokio::io::split(stream);
    let (tx, rx) = mpsc::channel(engine.config.outbound_queue_frames.max(16));
    let out =
        Arc::new(Outbound { tx, closing: AtomicBool::new(false), goodbye: Mutex::new(None), kill: Notify::new() });
    let writer_task = tokio::spawn(writer(wr, rx, out.clone()));
    let dec = FrameDecoder::new(engine.config.max_frame_len);
    let mut buf = BytesMut::with_capacity(8 * 1024);

    // Phase 1: Hello then Login, within the pre-login deadline.
    let login =
        tokio::time::timeout(engine.config.prelogin_timeout, handshake(&engine, &mut rd, &mut buf, &dec, &out)).await;
    let session = match login {
        Ok(Ok(session)) => session,
        Ok(Err(goodbye)) => {
            if let Some(g) = goodbye {
                out.close(g);
            }
            drop(out);
            let _ = writer_task.await;
            return;
        }
        Err(_) => {
            out.close(Goodbye::new(
                ErrorCode::LOGIN_TIMEOUT.code(),
                LinkStateChangeReason::LOGIN_TIMEOUT,
                "no login within the pre-login timeout",
            ));
            drop(out);
            let _ = writer_task.await;
            return;
        }
    };

    tokio::spawn(crate::engine::token_timer(engine.clone(), session.clone()));

    // Phase 2: requests until the connection ends.
    let keepalive = session_keepalive(&engine, &session);
    let end: Option<Goodbye> = loop {
        let next = tokio::select! {
            biased;
            _ = session.out.killed() => break None,
            r = tokio::time::timeout(keepalive, next_frame(&mut rd, &mut buf, &dec)) => r,
        };
        let body = match next {
            Err(_) => {
                break Some(Goodbye::new(
                    ErrorCode::NOT_CONNECTED.code(),
                    LinkStateChangeReason::KEEP_ALIVE_TIMEOUT,
                    format!("no frame from the client for {} ms", keepalive.as_millis()),
                ));
            }
            Ok(Err(g)) => break g,
            Ok(Ok(body)) => body,
        };
        let frame = match frame::decode_client(body) {
            Ok(f) => f,
            Err(e) => break Some(protocol_error(e)),
        };
        let request_id = frame.request_id;
        match frame.body {
            Some(client_frame::Body::Ping(p)) => {
                session.send(frame::encode_server_body(&server_frame::Body::Pong(pb::Pong {
                    client_time_ms: p.client_time_ms,
                    server_time_ms: now_ms(),
                })));
            }
            Some(client_frame::Body::Logout(_)) => {
                engine.end_session(&session);
                session.send(response(request_id, Ok(None)));
                break Some(Goodbye::new(0, LinkStateChangeReason::LOGOUT, "logged out"));
            }
            Some(client_frame::Body::Hello(_)) | Some(client_frame::Body::Login(_)) => {
                session.send(response(
                    request_id,
                    Err(rtm2_proto::validate::Violation::new(
                        ErrorCode::DUPLICATE_OPERATION,
                        "this connection is already logged in",
                    )),
                ));
            }
            Some(body) => {
                if request_id == 0 {
                    break Some(protocol_error("request without a request_id"));
                }
                let reply = engine.handle(&session, body);
                session.send(response(request_id, reply));
            }
            None => break Some(protocol_error("frame has no body")),
        }
    };
    engine.end_session(&session);
    if let Some(g) = end {
        session.out.close(g);
    } else {
        session.out.close(Goodbye::new(0, LinkStateChangeReason::UNKNOWN, "closed"));
    }
    drop(session);
    drop(out);
    let _ = writer_task.await;
}

fn session_keepalive(engine: &Engine, session: &Session) -> Duration {
    Duration::from_secs(session.heartbeat_s as u64) + engine.config.keepalive_grace
}

async fn handshake<R: AsyncRead + Unpin>(
    engine: &Arc<Engine>,
    rd: &mut R,
    buf: &mut BytesMut,
    dec: &FrameDecoder,
    out: &Arc<Outbound>,
) -> Result<Arc<Session>, Option<Goodbye>> {
    // Hello.
    let body = next_frame(rd, buf, dec).await?;
    let hello = match frame::decode_client(body).map_err(|e| Some(protocol_error(e)))?.body {
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
    out.send(frame::encode_server_body(&server_frame::Body::HelloAck(pb::HelloAck {
        protocol_version: hello.protocol_version,
        features: hello.features & rtm2_proto::FEATURES,
        server_name: engine.config.server_name.clone(),
        max_frame_len: engine.config.max_frame_len as u32,
        server_time_ms: now_ms(),
    })));

    // Login (repeatable until one succeeds; each failure is answered).
    loop {
        let body = next_frame(rd, buf, dec).await?;
        let frame = frame::decode_client(body).map_err(|e| Some(protocol_error(e)))?;
        let request_id = frame.request_id;
        match frame.body {
            Some(client_frame::Body::Login(login)) => match engine.login(login, out.clone()) {
                Ok((session, result)) => {
                    out.send(response(request_id, Ok(Some(pb::response::Result::Login(result)))));
                    return Ok(session);
                }
                Err(v) => out.send(response(request_id, Err(v))),
            },
            Some(client_frame::Body::Ping(p)) => {
                out.send(frame::encode_server_body(&server_frame::Body::Pong(pb::Pong {
                    client_time_ms: p.client_time_ms,
                    server_time_ms: now_ms(),
                })));
            }
            Some(_) => {
                out.send(response(
                    request_id,
                    Err(rtm2_proto::validate::Violation::new(ErrorCode::NOT_LOGIN, "log in before any other request")),
                ));
            }
            None => return Err(Some(protocol_error("frame has no body"))),
        }
    }
}
