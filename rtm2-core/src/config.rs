//! Client configuration and tuning parameters.

use std::path::PathBuf;
use std::time::Duration;

use rtm2_proto::{ErrorCode, limits};
use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// Where the client connects.
#[derive(Clone, Default)]
pub enum Endpoint {
    /// The server embedded in this process (development mode), shared by every client of the
    /// process. The default: nothing to install or start.
    #[default]
    Embedded,
    /// A server reachable over TCP, `host:port`.
    Tcp(String),
    /// A server reachable over TLS, `host:port`; the certificate must be valid for `host`
    /// and signed by a root in `ClientConfig::tls_ca_file` (or the system's roots).
    Tls(String),
    /// A specific in-process server (same engine and frames as TCP; for tests and apps that run
    /// their own `rtm2_server::Server`).
    Server(rtm2_server::Server),
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Embedded => write!(f, "embedded"),
            Endpoint::Tcp(a) => write!(f, "tcp://{a}"),
            Endpoint::Tls(a) => write!(f, "tls://{a}"),
            Endpoint::Server(_) => write!(f, "in-process server"),
        }
    }
}

impl Endpoint {
    /// Parses `""`/`"embedded"` (embedded), `"tcp://host:port"`, `"host:port"` or
    /// `"tls://host:port"`.
    pub fn parse(s: &str) -> Result<Endpoint> {
        let s = s.trim();
        if s.is_empty() || s == "embedded" {
            return Ok(Endpoint::Embedded);
        }
        let (tls, addr) = match s.strip_prefix("tls://") {
            Some(a) => (true, a),
            None => (false, s.strip_prefix("tcp://").unwrap_or(s)),
        };
        if addr.contains("://") || !addr.contains(':') {
            return Err(Error::new(
                ErrorCode::INVALID_PARAMETER,
                "config",
                format!(
                    "endpoint {s:?} is not \"embedded\", \"tcp://host:port\", \"host:port\" or \"tls://host:port\""
                ),
            ));
        }
        Ok(if tls { Endpoint::Tls(addr.to_string()) } else { Endpoint::Tcp(addr.to_string()) })
    }
}

/// Configuration of a [`Client`](crate::Client).
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The 32-character app id.
    pub app_id: String,
    /// This client's user id.
    pub user_id: String,
    /// Where to connect; absent = the embedded server.
    pub endpoint: Endpoint,
    /// Timeout of every operation (reference default 10 s).
    pub request_timeout: Duration,
    /// Seconds this user stays present after an unexpected disconnect (clamped to 5..=300).
    pub presence_timeout_s: u32,
    /// Seconds between pings (1..=1800, default 5).
    pub heartbeat_interval_s: u32,
    /// The link counts as lost after this long without a frame from the server.
    pub pong_timeout: Duration,
    /// First reconnect delay; doubles up to `reconnect_max_backoff`.
    pub reconnect_initial_backoff: Duration,
    /// Largest reconnect delay.
    pub reconnect_max_backoff: Duration,
    /// Capacity of each event receiver's queue.
    pub event_queue_capacity: usize,
    /// Requests that may wait to be sent (e.g. while reconnecting), at most; beyond it
    /// operations fail at once with 10025 NOT_CONNECTED.
    pub max_queued_requests: usize,
    /// Whether this client receives its own message-channel publishes (default true, like the
    /// reference SDK since 2.2.0). Topic messages reach a publisher only if it subscribed to
    /// itself; user-channel messages are never echoed.
    pub receive_own_messages: bool,
    /// Log level filter for the SDK's own log file (`error`, `warn`, `info`, `debug`, `trace`).
    pub log_level: String,
    /// Write SDK logs to this file (installs a process-wide tracing subscriber if none exists).
    pub log_file: Option<PathBuf>,
    /// PEM file of the root certificate(s) that sign the server's certificate for `tls://`
    /// endpoints; `None` uses the system's roots. The server is always verified.
    pub tls_ca_file: Option<PathBuf>,
}

impl ClientConfig {
    /// A configuration with the defaults and the embedded endpoint.
    pub fn new(app_id: impl Into<String>, user_id: impl Into<String>) -> Self {
        ClientConfig {
            app_id: app_id.into(),
            user_id: user_id.into(),
            endpoint: Endpoint::Embedded,
            request_timeout: Duration::from_millis(limits::DEFAULT_REQUEST_TIMEOUT_MS),
            presence_timeout_s: limits::DEFAULT_PRESENCE_TIMEOUT_S,
            heartbeat_interval_s: limits::DEFAULT_HEARTBEAT_INTERVAL_S,
            pong_timeout: Duration::from_millis(limits::DEFAULT_PONG_TIMEOUT_MS),
            reconnect_initial_backoff: Duration::from_millis(500),
            reconnect_max_backoff: Duration::from_secs(30),
            event_queue_capacity: 64 * 1024,
            max_queued_requests: 64 * 1024,
            receive_own_messages: true,
            log_level: "info".into(),
            log_file: None,
            tls_ca_file: None,
        }
    }

    /// Sets the endpoint.
    pub fn endpoint(mut self, endpoint: Endpoint) -> Self {
        self.endpoint = endpoint;
        self
    }

    /// The tuning parameters as a JSON object (see [`ClientConfig::set_parameters`]).
    pub fn parameters(&self) -> Value {
        let mut m = Map::new();
        m.insert("request_timeout_ms".into(), (self.request_timeout.as_millis() as u64).into());
        m.insert("heartbeat_interval_s".into(), self.heartbeat_interval_s.into());
        m.insert("presence_timeout_s".into(), self.presence_timeout_s.into());
        m.insert("pong_timeout_ms".into(), (self.pong_timeout.as_millis() as u64).into());
        m.insert("reconnect_initial_backoff_ms".into(), (self.reconnect_initial_backoff.as_millis() as u64).into());
        m.insert("reconnect_max_backoff_ms".into(), (self.reconnect_max_backoff.as_millis() as u64).into());
        m.insert("event_queue_capacity".into(), (self.event_queue_capacity as u64).into());
        m.insert("max_queued_requests".into(), (self.max_queued_requests as u64).into());
        m.insert("receive_own_messages".into(), self.receive_own_messages.into());
        let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string()).unwrap_or_default();
        m.insert("tls_ca_file".into(), path(&self.tls_ca_file).into());
        m.insert("log_file".into(), path(&self.log_file).into());
        m.insert("log_level".into(), self.log_level.clone().into());
        Value::Object(m)
    }

    /// Applies tuning parameters given as a JSON object, all or nothing. Keys:
    ///
    /// | key | range | takes effect |
    /// |---|---|---|
    /// | `request_timeout_ms` | 100..=600000 | next operation |
    /// | `heartbeat_interval_s` | 1..=1800 | next login |
    /// | `presence_timeout_s` | 5..=300 | next login |
    /// | `pong_timeout_ms` | 100..=600000 | next connection |
    /// | `reconnect_initial_backoff_ms` | 10..=600000 | next reconnect |
    /// | `reconnect_max_backoff_ms` | 10..=600000 | next reconnect |
    /// | `event_queue_capacity` | 1..=16777216 | receivers made later |
    /// | `max_queued_requests` | 1..=16777216 | next operation |
    /// | `receive_own_messages` | bool | next login |
    /// | `tls_ca_file` | path, `""` = system roots | next connection |
    /// | `log_file` | path, `""` = none | at once |
    /// | `log_level` | `trace`..`error` | with `log_file` |
    ///
    /// An unknown key, a value of the wrong type or out of range fails with 10014.
    pub fn set_parameters(&mut self, json: &str) -> Result<()> {
        let bad = |r: String| Error::new(ErrorCode::INVALID_PARAMETER, "set_parameters", r);
        let v: Value = serde_json::from_str(json).map_err(|e| bad(format!("not valid JSON: {e}")))?;
        let Value::Object(map) = v else { return Err(bad("parameters must be a JSON object".into())) };
        let mut next = self.clone();
        for (k, v) in map {
            let int = |lo: u64, hi: u64| -> Result<u64> {
                match v.as_u64() {
                    Some(n) if (lo..=hi).contains(&n) => Ok(n),
                    _ => Err(bad(format!("{k} must be an integer in {lo}..={hi}, got {v}"))),
                }
            };
            match k.as_str() {
                "request_timeout_ms" => next.request_timeout = Duration::from_millis(int(100, 600_000)?),
                "heartbeat_interval_s" => {
                    next.heartbeat_interval_s =
                        int(limits::MIN_HEARTBEAT_INTERVAL_S as u64, limits::MAX_HEARTBEAT_INTERVAL_S as u64)? as u32
                }
                "presence_timeout_s" => {
                    next.presence_timeout_s =
                        int(limits::MIN_PRESENCE_TIMEOUT_S as u64, limits::MAX_PRESENCE_TIMEOUT_S as u64)? as u32
                }
                "pong_timeout_ms" => next.pong_timeout = Duration::from_millis(int(100, 600_000)?),
                "reconnect_initial_backoff_ms" => {
                    next.reconnect_initial_backoff = Duration::from_millis(int(10, 600_000)?)
                }
                "reconnect_max_backoff_ms" => next.reconnect_max_backoff = Duration::from_millis(int(10, 600_000)?),
                "event_queue_capacity" => next.event_queue_capacity = int(1, 1 << 24)? as usize,
                "max_queued_requests" => next.max_queued_requests = int(1, 1 << 24)? as usize,
                "receive_own_messages" => {
                    next.receive_own_messages =
                        v.as_bool().ok_or_else(|| bad(format!("{k} must be true or false, got {v}")))?
                }
                "tls_ca_file" | "log_file" => {
                    let v = v.as_str().ok_or_else(|| bad(format!("{k} must be a path (string), got {v}")))?;
                    let p = (!v.is_empty()).then(|| PathBuf::from(v));
                    if k == "tls_ca_file" {
                        next.tls_ca_file = p;
                    } else {
                        next.log_file = p;
                    }
                }
                "log_level" => {
                    let v = v.as_str().unwrap_or("");
                    if crate::logging::parse_level(v).is_none() {
                        return Err(bad(format!("log_level must be trace, debug, info, warn or error, got {v:?}")));
                    }
                    next.log_level = v.to_string();
                }
                _ => return Err(bad(format!("unknown parameter {k:?}"))),
            }
        }
        *self = next;
        Ok(())
    }
}
