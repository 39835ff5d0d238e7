//! The HTTP side of a server (docs/OPERATIONS.md): the REST API for application backends
//! (`rest.rs`), Prometheus metrics, health and readiness, and the live web console
//! (`console.rs`), on one HTTP/1.1 listener.
//!
//! It runs on a thread and runtime of its own, so that no flood of HTTP requests takes the
//! message path's worker threads: what a request does to the engine (a publish, a metadata
//! write) runs on the server's runtime as a client's request would; parsing, routing, limits,
//! JSON and the console's streams run here. Its own limits: connections at once, requests per
//! second (429 beyond), request body bytes (413), and time to send a request (408).

mod console;
mod rest;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::{Value, json};
use tokio::sync::{Semaphore, watch};

use rtm2_proto::ErrorCode;
use rtm2_proto::validate::Violation;

use crate::engine::{App, Engine};

/// How the HTTP side runs (`Server::listen_http`).
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Key/secret pairs accepted by HTTP Basic authentication (an operator or a backend: every
    /// endpoint, any app, any user id). Empty: only tokens are accepted — unless the server is
    /// in development mode, where the HTTP side is then open like the messaging side.
    pub credentials: Vec<(String, String)>,
    /// Message API calls (peer and channel messages) per second and app, at most; beyond them
    /// 429 (reference: 500).
    pub message_calls_per_s: u32,
    /// HTTP requests per second over the whole listener, at most; beyond them 429 (0 = no
    /// limit). Health, readiness and metrics are not counted.
    pub requests_per_s: u32,
    /// Connections served at once; more are closed at once.
    pub max_connections: usize,
    /// Largest request body, bytes (413 beyond). Message payloads have the SDK's limit (32 KB,
    /// 435 beyond) within it.
    pub max_body_bytes: usize,
    /// Time a client has to send a request's head, and then its body (408 beyond).
    pub request_timeout: Duration,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            credentials: Vec::new(),
            message_calls_per_s: 500,
            requests_per_s: 2000,
            max_connections: 256,
            max_body_bytes: 64 * 1024,
            request_timeout: Duration::from_secs(10),
        }
    }
}

/// A response body: whole, or a stream (the console's events).
pub(crate) type Body = UnsyncBoxBody<Bytes, Infallible>;

/// The HTTP side's shared state.
pub(crate) struct Http {
    pub(crate) engine: Arc<Engine>,
    pub(crate) config: HttpConfig,
    /// The server's runtime: where requests to the engine run.
    pub(crate) main: tokio::runtime::Handle,
    requests: Mutex<Bucket>,
    app_messages: Mutex<HashMap<String, Bucket>>,
    /// Ends the console's streams when the server shuts down.
    pub(crate) stop: watch::Receiver<bool>,
}

/// Binds `addr` and serves the HTTP side on a thread of its own until `stop`.
pub(crate) fn listen(
    engine: Arc<Engine>,
    addr: SocketAddr,
    config: HttpConfig,
    stop: watch::Receiver<bool>,
) -> std::io::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    let local = listener.local_addr()?;
    if config.credentials.is_empty() && engine.config.dev_mode() {
        tracing::warn!(%local, "the HTTP side is open (development mode and no key and secret: rtm2 serve --http-auth, RTM2_EMBEDDED_HTTP_AUTH): anyone who reaches it may act as any user");
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let now = Instant::now();
    let http = Arc::new(Http {
        main: tokio::runtime::Handle::try_current().map_err(std::io::Error::other)?,
        requests: Mutex::new(Bucket { tokens: config.requests_per_s as f64, at: now }),
        app_messages: Mutex::default(),
        engine,
        config,
        stop: stop.clone(),
    });
    tracing::info!(%local, "listening (http)");
    std::thread::Builder::new().name("rtm2-http".into()).spawn(move || {
        lower_priority();
        rt.block_on(async move {
            let listener = match tokio::net::TcpListener::from_std(listener) {
                Ok(l) => l,
                Err(e) => return tracing::error!(error = %e, "http: cannot serve the listener"),
            };
            serve(http, listener, stop).await;
        });
    })?;
    Ok(local)
}

async fn serve(http: Arc<Http>, listener: tokio::net::TcpListener, mut stop: watch::Receiver<bool>) {
    let slots = Arc::new(Semaphore::new(http.config.max_connections));
    loop {
        let (sock, _) = tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "http: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            http.engine.metrics.http_rejected.with_label_values(&["connections"]).inc();
            continue;
        };
        let _ = sock.set_nodelay(true);
        let http = http.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let timeout = http.config.request_timeout;
            let service = hyper::service::service_fn(move |req| {
                let http = http.clone();
                async move { Ok::<_, Infallible>(http.answer(req).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(timeout)
                .serve_connection(TokioIo::new(sock), service);
            let _ = conn.await;
        });
    }
}

/// Niceness of the HTTP side's thread: when the CPU is scarce, the message path's threads
/// come first.
const HTTP_NICENESS: i32 = 10;

/// Lowers the calling thread's CPU priority (Linux: a thread has its own nice value).
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: setpriority reads no memory of ours; `0` names the calling thread.
        let r = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, HTTP_NICENESS) };
        if r != 0 {
            tracing::debug!(error = %std::io::Error::last_os_error(), "http: cannot lower the thread's priority");
        }
    }
}

/// A token bucket: `rate` per second, bursts of one second's worth.
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn take(&mut self, rate: u32, now: Instant) -> bool {
        let rate = rate as f64;
        self.tokens = (self.tokens + now.duration_since(self.at).as_secs_f64() * rate).min(rate);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return true;
        }
        false
    }
}

/// An HTTP error: status, RTM error code (or the status) and words.
#[derive(Debug)]
pub(crate) struct HttpError {
    pub status: StatusCode,
    pub code: u32,
    pub reason: String,
}

impl HttpError {
    pub(crate) fn new(status: StatusCode, reason: impl Into<String>) -> HttpError {
        HttpError { status, code: status.as_u16() as u32, reason: reason.into() }
    }
}

impl From<Violation> for HttpError {
    /// An RTM error as an HTTP status.
    fn from(v: Violation) -> HttpError {
        use ErrorCode as E;
        let status = match v.code {
            E::INVALID_APP_ID | E::INCONSISTENT_APPID => StatusCode::FORBIDDEN,
            E::INVALID_TOKEN | E::TOKEN_EXPIRED => StatusCode::UNAUTHORIZED,
            E::CHANNEL_MESSAGE_LENGTH_EXCEED_LIMITATION | E::CHANNEL_INVALID_MESSAGE => {
                StatusCode::from_u16(435).expect("435 is a status")
            }
            E::OPERATION_RATE_EXCEED_LIMITATION => StatusCode::TOO_MANY_REQUESTS,
            E::LOGIN_NO_SERVER_RESOURCES | E::STORAGE_NOT_AVAILABLE | E::LOCK_NOT_AVAILABLE => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            E::HISTORY_NOT_AVAILABLE => StatusCode::NOT_IMPLEMENTED,
            E::STORAGE_OPERATION_TIMEOUT | E::LOCK_OPERATION_TIMEOUT | E::PRESENCE_OPERATION_TIMEOUT => {
                StatusCode::REQUEST_TIMEOUT
            }
            E::CHANNEL_RECEIVER_OFFLINE
            | E::PRESENCE_USER_NOT_EXIST
            | E::LOCK_NOT_EXIST
            | E::STORAGE_INVALID_METADATA_INSTANCE => StatusCode::NOT_FOUND,
            E::STORAGE_OUTDATED_REVISION
            | E::STORAGE_INVALID_REVISION
            | E::STORAGE_LOCK_NOT_ACQUIRED
            | E::STORAGE_DUPLICATE_KEY
            | E::LOCK_ALREADY_EXIST
            | E::LOCK_NOT_ACQUIRED
            | E::LOCK_ACQUIRE_FAILED => StatusCode::CONFLICT,
            E::STORAGE_PERMISSION_DENIED | E::LOCK_PERMISSION_DENIED | E::HISTORY_OPERATION_NOT_PERMITTED => {
                StatusCode::FORBIDDEN
            }
            E::CHANNEL_MESSAGE_DELIVERED_BUT_STORE_FAILED
            | E::CHANNEL_RECEIVER_OFFLINE_AND_STORE_FAILED
            | E::HISTORY_OPERATION_FAILED => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        };
        HttpError { status, code: v.code.code(), reason: v.reason }
    }
}

/// Who made a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Caller {
    /// Basic authentication with a configured key (or an open development server).
    Operator,
    /// A token of this user of the app in the path: acts as that user only.
    User(String),
}

impl Caller {
    /// The user id the request acts as: the token's, or `asked` (an operator's choice).
    pub(crate) fn acting_as(&self, asked: &str) -> Result<String, HttpError> {
        match self {
            Caller::Operator => Ok(asked.to_string()),
            Caller::User(u) if asked.is_empty() || asked == u => Ok(u.clone()),
            Caller::User(u) => Err(HttpError::new(
                StatusCode::FORBIDDEN,
                format!("the token is user {u:?}'s: it cannot act as {asked:?}"),
            )),
        }
    }

    pub(crate) fn operator_only(&self) -> Result<(), HttpError> {
        match self {
            Caller::Operator => Ok(()),
            Caller::User(_) => Err(HttpError::new(
                StatusCode::FORBIDDEN,
                "this needs the server's key and secret (HTTP Basic), not a user token",
            )),
        }
    }
}

/// A request, read: path segments (percent-decoded), query, headers, body.
pub(crate) struct Req {
    pub method: Method,
    pub segments: Vec<String>,
    pub query: HashMap<String, String>,
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
}

impl Req {
    pub(crate) fn query_flag(&self, name: &str) -> bool {
        self.query.get(name).is_some_and(|v| v == "true" || v == "1")
    }

    /// The body as a JSON object (`{}` when empty).
    pub(crate) fn json(&self) -> Result<serde_json::Map<String, Value>, HttpError> {
        if self.body.is_empty() {
            return Ok(Default::default());
        }
        let json_type = self
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_none_or(|t| t.split(';').next().is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json")));
        if !json_type {
            return Err(HttpError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "send the body as application/json"));
        }
        match serde_json::from_slice::<Value>(&self.body) {
            Ok(Value::Object(m)) => Ok(m),
            Ok(_) => Err(HttpError::new(StatusCode::BAD_REQUEST, "the body must be a JSON object")),
            Err(e) => Err(HttpError::new(StatusCode::BAD_REQUEST, format!("the body is not valid JSON: {e}"))),
        }
    }
}

impl Http {
    async fn answer(self: &Arc<Self>, req: Request<Incoming>) -> Response<Body> {
        let start = Instant::now();
        let path = req.uri().path().to_string();
        let route = route_label(&path);
        let counted = !matches!(route, "healthz" | "readyz" | "metrics");
        let response = if counted && self.config.requests_per_s != 0 && !self.admit_request() {
            self.engine.metrics.http_rejected.with_label_values(&["rate"]).inc();
            Err(HttpError {
                status: StatusCode::TOO_MANY_REQUESTS,
                code: ErrorCode::OPERATION_RATE_EXCEED_LIMITATION.code(),
                reason: format!("more than {} HTTP requests per second; slow down", self.config.requests_per_s),
            })
        } else {
            match self.read(req).await {
                Ok(r) => self.route(r).await,
                Err(e) => Err(e),
            }
        };
        let response = response.unwrap_or_else(error_response);
        let m = &self.engine.metrics;
        m.http_requests.with_label_values(&[response.status().as_str()]).inc();
        m.http_duration.with_label_values(&[route]).observe(start.elapsed().as_secs_f64());
        response
    }

    fn admit_request(&self) -> bool {
        self.requests.lock().unwrap().take(self.config.requests_per_s, Instant::now())
    }

    /// Whether `app` may make one more message API call now.
    pub(crate) fn admit_message(&self, app: &str) -> Result<(), HttpError> {
        let rate = self.config.message_calls_per_s;
        if rate == 0 {
            return Ok(());
        }
        let now = Instant::now();
        let mut buckets = self.app_messages.lock().unwrap();
        let bucket = buckets.entry(app.to_string()).or_insert(Bucket { tokens: rate as f64, at: now });
        if bucket.take(rate, now) {
            return Ok(());
        }
        self.engine.metrics.http_rejected.with_label_values(&["rate"]).inc();
        Err(HttpError {
            status: StatusCode::TOO_MANY_REQUESTS,
            code: ErrorCode::OPERATION_RATE_EXCEED_LIMITATION.code(),
            reason: format!("more than {rate} message calls per second for this app; slow down"),
        })
    }

    /// Reads the request's body (bounded in size and time).
    async fn read(&self, req: Request<Incoming>) -> Result<Req, HttpError> {
        let (parts, body) = req.into_parts();
        let limited = Limited::new(body, self.config.max_body_bytes);
        let body = match tokio::time::timeout(self.config.request_timeout, limited.collect()).await {
            Ok(Ok(b)) => b.to_bytes(),
            Ok(Err(e)) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
                self.engine.metrics.http_rejected.with_label_values(&["body"]).inc();
                return Err(HttpError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("the request body is over {} bytes", self.config.max_body_bytes),
                ));
            }
            Ok(Err(e)) => return Err(HttpError::new(StatusCode::BAD_REQUEST, format!("cannot read the body: {e}"))),
            Err(_) => {
                self.engine.metrics.http_rejected.with_label_values(&["timeout"]).inc();
                return Err(HttpError::new(StatusCode::REQUEST_TIMEOUT, "the request body did not arrive in time"));
            }
        };
        let segments = parts.uri.path().split('/').filter(|s| !s.is_empty()).map(percent_decode).collect();
        let query = parts
            .uri
            .query()
            .unwrap_or("")
            .split('&')
            .filter(|kv| !kv.is_empty())
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                (percent_decode(&k.replace('+', " ")), percent_decode(&v.replace('+', " ")))
            })
            .collect();
        Ok(Req { method: parts.method, segments, query, headers: parts.headers, body })
    }

    async fn route(self: &Arc<Self>, r: Req) -> Result<Response<Body>, HttpError> {
        let seg: Vec<&str> = r.segments.iter().map(String::as_str).collect();
        match seg.as_slice() {
            ["healthz"] => {
                only(&r, &[Method::GET, Method::HEAD])?;
                Ok(json_response(StatusCode::OK, json!({"status": "ok"})))
            }
            ["readyz"] => {
                only(&r, &[Method::GET, Method::HEAD])?;
                let ready = self.ready();
                let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
                Ok(json_response(status, json!({"ready": ready, "node_id": self.engine.node_id()})))
            }
            ["metrics"] => {
                only(&r, &[Method::GET])?;
                let text = self.engine.metrics.render(
                    self.engine.connection_count(),
                    self.engine.sessions.lock().unwrap().len(),
                    self.ready(),
                );
                Ok(response(StatusCode::OK, "text/plain; version=0.0.4; charset=utf-8", Bytes::from(text)))
            }
            ["console", ..] => {
                self.authorize(&r, None).await?.operator_only()?;
                console::route(self, &r, &seg[1..]).await
            }
            _ => rest::route(self, &r, &seg).await,
        }
    }

    /// A development-mode server without a key and secret: the HTTP side is open, like the
    /// messaging side.
    fn is_open(&self) -> bool {
        self.config.credentials.is_empty() && self.engine.config.dev_mode()
    }

    /// Whether logins are accepted (in a cluster: connected to NATS).
    pub(crate) fn ready(&self) -> bool {
        self.engine.cluster.as_ref().is_none_or(|c| c.ready())
    }

    /// Who is asking: HTTP Basic with a configured key and secret, or an RTM token of a user of
    /// `app` (`Authorization: Bearer <token>` or `x-agora-token`, with `x-agora-uid`).
    pub(crate) async fn authorize(&self, r: &Req, app: Option<&Arc<App>>) -> Result<Caller, HttpError> {
        let header = |name: &str| r.headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
        let auth = header("authorization");
        if let Some(basic) = auth.and_then(|a| a.strip_prefix("Basic ").or_else(|| a.strip_prefix("basic "))) {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(basic.trim())
                .ok()
                .and_then(|d| String::from_utf8(d).ok())
                .unwrap_or_default();
            let (key, secret) = decoded.split_once(':').unwrap_or(("", ""));
            // (An open HTTP side takes whatever a client sends, as it takes no credentials.)
            let known = self.is_open() || self.config.credentials.iter().any(|(k, s)| same(k, key) & same(s, secret));
            return match known {
                true => Ok(Caller::Operator),
                false => Err(unauthorized("the key and secret are not this server's")),
            };
        }
        let token = auth.and_then(|a| a.strip_prefix("Bearer ")).or_else(|| header("x-agora-token"));
        if let Some(token) = token {
            let Some(app) = app else {
                return Err(unauthorized("a token is only accepted on an app's endpoints: use the key and secret"));
            };
            let Some(uid) = header("x-agora-uid").filter(|u| !u.is_empty()) else {
                return Err(unauthorized("a token needs the x-agora-uid header: the user id it was built for"));
            };
            rtm2_proto::validate::user_id(uid)?;
            if !app.certificates.is_empty() {
                let certs: Vec<&str> = app.certificates.iter().map(String::as_str).collect();
                let now = rtm2_proto::now_ms() / 1000;
                rtm2_proto::token::verify_rtm_token(token, &app.id, &certs, uid, now).map_err(|e| match e {
                    rtm2_proto::token::TokenError::AppIdMismatch => {
                        HttpError::new(StatusCode::FORBIDDEN, format!("the token is for another app: {e}"))
                    }
                    e => unauthorized(format!("token rejected: {e}")),
                })?;
            }
            return Ok(Caller::User(uid.to_string()));
        }
        if self.is_open() {
            return Ok(Caller::Operator);
        }
        Err(unauthorized("authenticate: HTTP Basic with the server's key and secret, or a user's token"))
    }
}

/// Compares without stopping at the first difference.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn unauthorized(reason: impl Into<String>) -> HttpError {
    HttpError::new(StatusCode::UNAUTHORIZED, reason)
}

/// 405 unless the request's method is one of `methods`.
pub(crate) fn only(r: &Req, methods: &[Method]) -> Result<(), HttpError> {
    match methods.contains(&r.method) {
        true => Ok(()),
        false => Err(HttpError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            format!(
                "{} is not allowed here; use {}",
                r.method,
                methods.iter().map(Method::as_str).collect::<Vec<_>>().join(" or ")
            ),
        )),
    }
}

/// The route of a path, for metrics (bounded: no names from the path).
fn route_label(path: &str) -> &'static str {
    let seg: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match seg.as_slice() {
        ["healthz"] => "healthz",
        ["readyz"] => "readyz",
        ["metrics"] => "metrics",
        ["console", "events"] => "console_events",
        ["console", "tail"] => "console_tail",
        ["console", ..] => "console",
        ["dev", "v2", "project", _, "rtm", "users", _, "peer_messages"] => "peer_messages",
        ["dev", "v2", "project", _, "rtm", "users", _, "channel_messages"] => "channel_messages",
        ["rtm", "v2", "history", ..] => "history",
        ["v1", "apps", _, "users", ..] => "users",
        ["v1", "apps", _, "channels", ..] => "channels",
        ["v1", "apps", _, "metadata", ..] => "metadata",
        ["v1", "apps", _, "locks", ..] => "locks",
        _ => "other",
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A channel as the REST API and the console show it.
pub(crate) fn channel_json(c: &crate::backend::ChannelView) -> Value {
    json!({
        "channel_name": c.name,
        "channel_type": c.channel_type.name(),
        "subscribers": c.subscribers,
        "occupancy": c.occupancy,
        "messages_total": c.messages,
    })
}

/// A message's payload in JSON: `message` (text for a plain STRING message, else base64 — an
/// end-to-end encrypted payload is ciphertext whatever its type), `message_type`, `encryption`.
pub(crate) fn payload_json(message_type: u32, encryption: u32, payload: &[u8]) -> Value {
    use rtm2_proto::enums::{EncryptionMode, MessageType};
    let string = message_type == MessageType::STRING as u32;
    let message = match (string && encryption == 0, std::str::from_utf8(payload)) {
        (true, Ok(s)) => s.to_string(),
        _ => base64::engine::general_purpose::STANDARD.encode(payload),
    };
    json!({
        "message": message,
        "message_type": if string { "STRING" } else { "BINARY" },
        "encryption": EncryptionMode::from_u32(encryption).map_or("NONE", EncryptionMode::name),
    })
}

pub(crate) fn response(status: StatusCode, content_type: &'static str, body: Bytes) -> Response<Body> {
    let mut r = Response::new(Full::new(body).boxed_unsync());
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

pub(crate) fn json_response(status: StatusCode, v: Value) -> Response<Body> {
    response(status, "application/json", Bytes::from(v.to_string()))
}

fn error_response(e: HttpError) -> Response<Body> {
    let mut r = json_response(e.status, json!({"code": e.code, "reason": e.reason}));
    if e.status == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"rtm2\""));
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding_and_route_labels() {
        assert_eq!(percent_decode("a%20b%2Fc%zz%4"), "a b/c%zz%4");
        assert_eq!(route_label("/v1/apps/x/metadata/channel/MESSAGE/a"), "metadata");
        assert_eq!(route_label("/nope"), "other");
    }

    #[test]
    fn a_bucket_admits_its_rate_then_refuses() {
        let t0 = Instant::now();
        let mut b = Bucket { tokens: 3.0, at: t0 };
        assert_eq!((0..5).filter(|_| b.take(3, t0)).count(), 3);
        assert!(b.take(3, t0 + Duration::from_millis(400)));
    }
}
