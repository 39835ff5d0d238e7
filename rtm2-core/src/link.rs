//! One live connection to the server: handshake, login, request/response matching, keepalive,
//! a batching writer and a reader that routes events.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot, watch};

use rtm2_proto::enums::LinkStateChangeReason;
use rtm2_proto::frame::{self, FrameDecoder};
use rtm2_proto::pb::{self, client_frame, server_frame};
use rtm2_proto::{ErrorCode, limits, now_ms};

use crate::config::{ClientConfig, Endpoint};
use crate::error::{Error, Result};

trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// Frames queued to the writer, at most (a publisher waits beyond this).
const WRITE_QUEUE_FRAMES: usize = 8 * 1024;
const WRITE_BATCH_BYTES: usize = 256 * 1024;

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
    Message(pb::MessageEvent),
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
    pending: Mutex<std::collections::BTreeMap<u64, Pending>>,
}

impl SessionState {
    fn register(&self, op: &'static str, body: client_frame::Body, reply: Reply) -> Bytes {
        // Request id 1 is the login, which is not part of the session.
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 2;
        let publish = matches!(body, client_frame::Body::Publish(_) | client_frame::Body::PublishTopic(_));
        let frame = frame::encode_client(&pb::ClientFrame { request_id: id, body: Some(body) });
        self.pending.lock().unwrap().insert(id, Pending { op, reply, frame: frame.clone(), publish });
        frame
    }

    /// Completes every pending publish with an id up to `up_to` (successful: failures were
    /// answered by their own Response before).
    fn ack_publishes(&self, up_to: u64) {
        let done: Vec<Pending> = {
            let mut pending = self.pending.lock().unwrap();
            let ids: Vec<u64> = pending.range(..=up_to).filter(|(_, p)| p.publish).map(|(id, _)| *id).collect();
            ids.iter().filter_map(|id| pending.remove(id)).collect()
        };
        for p in done {
            let _ = p.reply.send(Ok(pb::Response::default()));
        }
    }

    fn complete(&self, r: pb::Response) {
        let Some(p) = self.pending.lock().unwrap().remove(&r.request_id) else { return };
        let outcome = if r.code == 0 {
            Ok(r)
        } else {
            let code = ErrorCode::from_u32(r.code).unwrap_or(ErrorCode::INVALID_PARAMETER);
            Err(Error::new(code, p.op, r.reason))
        };
        let _ = p.reply.send(outcome);
    }

    /// Frames of the requests still awaited, in order (requests whose caller gave up are
    /// dropped instead).
    pub(crate) fn unanswered(&self) -> Vec<Bytes> {
        let mut pending = self.pending.lock().unwrap();
        pending.retain(|_, p| !p.reply.is_closed());
        pending.values().map(|p| p.frame.clone()).collect()
    }

    /// Fails every pending request and forgets the session (it cannot be resumed).
    pub(crate) fn reset(&self, detail: &str) {
        let pending = std::mem::take(&mut *self.pending.lock().unwrap());
        for p in pending.into_values() {
            let _ = p.reply.send(Err(lost(p.op, detail)));
        }
        self.id.store(0, Ordering::Relaxed);
        self.last_seq.store(0, Ordering::Relaxed);
    }
}

pub(crate) struct Link {
    writer: mpsc::Sender<Bytes>,
    /// Held while a request id is assigned and its frame queued, so that ids reach the server
    /// in increasing order (it skips an id not above the last one it processed).
    send_lock: Mutex<()>,
    session: Arc<SessionState>,
    end: watch::Sender<Option<LinkEnd>>,
    pub login: pb::LoginResult,
    tasks: Mutex<Vec<tokio::task::AbortHandle>>,
}

fn lost(op: &'static str, detail: &str) -> Error {
    Error::new(ErrorCode::NOT_CONNECTED, op, format!("the connection was lost before a reply arrived ({detail})"))
}

/// Where a request's outcome goes: the operation name and the caller's reply channel.
pub(crate) type Reply = oneshot::Sender<Result<pb::Response>>;

impl Link {
    /// Registers a request and queues its frame (waiting only for room in the writer queue).
    /// The outcome — the response (non-zero codes mapped to errors) or a lost-link error —
    /// goes to `reply` exactly once.
    pub(crate) async fn submit(&self, op: &'static str, body: client_frame::Body, reply: Reply) {
        match self.writer.reserve().await {
            Ok(permit) => {
                let _order = self.send_lock.lock().unwrap();
                permit.send(self.session.register(op, body, reply));
            }
            // The link is down: the request stays pending; it is resent when the session is
            // resumed, or failed when it cannot be.
            Err(_) => {
                self.session.register(op, body, reply);
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
        match self.writer.try_reserve() {
            Ok(permit) => {
                let _order = self.send_lock.lock().unwrap();
                permit.send(self.session.register(op, body, reply));
                Ok(())
            }
            Err(_) => Err((body, reply)),
        }
    }

    /// Queues already-encoded frames (requests resent after a resume) in order.
    pub(crate) async fn resend(&self, frames: Vec<Bytes>) {
        for f in frames {
            if self.writer.send(f).await.is_err() {
                return;
            }
        }
    }

    /// Sends a request and waits for its response (no timeout here: callers apply theirs).
    pub(crate) async fn request(&self, op: &'static str, body: client_frame::Body) -> Result<pb::Response> {
        let (tx, rx) = oneshot::channel();
        self.submit(op, body, tx).await;
        rx.await.unwrap_or_else(|_| Err(lost(op, "link closed")))
    }

    /// Sends a frame without a reply.
    fn send_nowait(&self, body: client_frame::Body) {
        let bytes = frame::encode_client(&pb::ClientFrame { request_id: 0, body: Some(body) });
        let _ = self.writer.try_send(bytes);
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
        self.end.borrow().is_some()
    }

    fn finish(&self, end: LinkEnd) {
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

async fn open(config: &ClientConfig) -> std::io::Result<Pin<Box<dyn Io>>> {
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
            Box::pin(connector.connect(name, s).await?)
        }
        Endpoint::Embedded => Box::pin(crate::embedded::server().connect_in_memory()),
        Endpoint::Server(s) => Box::pin(s.connect_in_memory()),
        Endpoint::Tcp(addr) => {
            let s = tokio::net::TcpStream::connect(addr.as_str()).await?;
            s.set_nodelay(true)?;
            Box::pin(s)
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
    let io = open(config).await.map_err(|e| match e.kind() {
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
    let (writer_tx, writer_rx) = mpsc::channel(WRITE_QUEUE_FRAMES);
    let (end, _) = watch::channel(None);
    let link = Arc::new(Link {
        writer: writer_tx,
        send_lock: Mutex::new(()),
        session,
        end,
        login,
        tasks: Mutex::new(Vec::new()),
    });
    // Frames received so far; the keepalive watches it change (no clock read per frame).
    let last_rx = Arc::new(AtomicU64::new(0));
    let w = tokio::spawn(writer(wr, writer_rx, link.clone()));
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

async fn writer<W: AsyncWrite + Unpin>(mut wr: W, mut rx: mpsc::Receiver<Bytes>, link: Arc<Link>) {
    let mut buf = BytesMut::with_capacity(64 * 1024);
    while let Some(first) = rx.recv().await {
        buf.extend_from_slice(&first);
        while buf.len() < WRITE_BATCH_BYTES {
            match rx.try_recv() {
                Ok(b) => buf.extend_from_slice(&b),
                Err(_) => break,
            }
        }
        if let Err(e) = wr.write_all(&buf).await {
            link.finish(LinkEnd { goodbye: None, detail: format!("write failed: {e}"), keepalive_timeout: false });
            return;
        }
        buf.clear();
    }
    let _ = wr.shutdown().await;
}

async fn reader<R: AsyncRead + Unpin>(
    mut rd: R,
    mut buf: BytesMut,
    dec: FrameDecoder,
    link: Arc<Link>,
    inbound: OnInbound,
    last_rx: Arc<AtomicU64>,
) {
    let end = loop {
        let body = match read_frame(&mut rd, &mut buf, &dec).await {
            Ok(b) => b,
            Err(e) => {
                break LinkEnd { goodbye: None, detail: format!("connection closed: {e}"), keepalive_timeout: false };
            }
        };
        last_rx.fetch_add(1, Ordering::Relaxed);
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
        if f.seq != 0 {
            let last = link.session.last_seq.load(Ordering::Relaxed);
            if f.seq <= last {
                continue; // already received before a resume
            }
            if f.seq != last + 1 {
                tracing::warn!(expected = last + 1, got = f.seq, "gap in the server's sequence numbers");
            }
            link.session.last_seq.store(f.seq, Ordering::Relaxed);
        }
        match f.body {
            Some(server_frame::Body::Response(r)) => link.session.complete(r),
            Some(server_frame::Body::PublishAck(a)) => link.session.ack_publishes(a.up_to),
            Some(server_frame::Body::Message(m)) => {
                inbound(Inbound::Message(m));
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
    link.close_with(end);
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
