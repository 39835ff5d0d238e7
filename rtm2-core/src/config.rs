//! Client configuration and tuning parameters.

use std::path::PathBuf;
use std::time::Duration;

use rtm2_proto::{ErrorCode, limits};
use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// Environment variable read when a client is given no endpoint ([`Endpoint::Default`]): an
/// endpoint or endpoint list as [`Endpoint::parse_list`] takes it. The CLI reads it too.
pub const ENDPOINT_ENV: &str = "RTM2_ENDPOINT";

/// Where the client connects.
#[derive(Clone, Default)]
pub enum Endpoint {
    /// No endpoint given (the default): the endpoint(s) in the `RTM2_ENDPOINT` environment
    /// variable ([`ENDPOINT_ENV`]) when it is set and not empty, read by
    /// [`Client::new`](crate::Client::new) (an invalid value fails there with 10014 naming
    /// the variable); otherwise the embedded server.
    #[default]
    Default,
    /// The server embedded in this process (development mode), shared by every client of
    /// *this process only*: clients in other processes do not see it (set `RTM2_ENDPOINT` or
    /// an endpoint to share a server). Nothing to install or start.
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
            Endpoint::Default => write!(f, "default"),
            Endpoint::Embedded => write!(f, "embedded"),
            Endpoint::Tcp(a) => write!(f, "tcp://{a}"),
            Endpoint::Tls(a) => write!(f, "tls://{a}"),
            Endpoint::Server(_) => write!(f, "in-process server"),
        }
    }
}

impl Endpoint {
    /// Parses `""` (the default: `RTM2_ENDPOINT` if set, else embedded), `"embedded"`,
    /// `"tcp://host:port"`, `"host:port"` or
    /// `"tls://host:port"`. The port must be 1..=65535; the host an IPv4 address, an IPv6
    /// address in brackets (`[::1]:9696`) or a DNS name (labels of `[A-Za-z0-9_-]`, at most 63
    /// bytes each, 253 in all). Anything else fails with 10014 INVALID_PARAMETER, here rather
    /// than at connect time.
    pub fn parse(s: &str) -> Result<Endpoint> {
        let s = s.trim();
        if s.is_empty() {
            return Ok(Endpoint::Default);
        }
        if s == "embedded" {
            return Ok(Endpoint::Embedded);
        }
        let (tls, addr) = match s.strip_prefix("tls://") {
            Some(a) => (true, a),
            None => (false, s.strip_prefix("tcp://").unwrap_or(s)),
        };
        let bad = |why: String| Error::new(ErrorCode::INVALID_PARAMETER, "config", format!("endpoint {s:?}: {why}"));
        if addr.contains("://") || !addr.contains(':') {
            return Err(bad("not \"embedded\", \"tcp://host:port\", \"host:port\" or \"tls://host:port\"".into()));
        }
        check_host_port(addr).map_err(bad)?;
        Ok(if tls { Endpoint::Tls(addr.to_string()) } else { Endpoint::Tcp(addr.to_string()) })
    }

    /// Parses an endpoint list: one endpoint as [`Endpoint::parse`] takes it, or several
    /// separated by commas (`"tcp://10.0.0.1:9696,tcp://10.0.0.2:9696"`), the nodes of one
    /// service that the client fails over between (see [`ClientConfig::endpoints`]). Every
    /// entry is checked; an empty entry (`"a:1,,b:2"`, a trailing comma), more than
    /// [`MAX_ENDPOINTS`] entries or `embedded` next to another entry fail with 10014
    /// INVALID_PARAMETER naming the entry. `""` alone is the default ([`Endpoint::Default`]).
    pub fn parse_list(s: &str) -> Result<Vec<Endpoint>> {
        if !s.contains(',') {
            return Ok(vec![Endpoint::parse(s)?]);
        }
        Endpoint::parse_entries(&s.split(',').collect::<Vec<_>>())
    }

    /// Parses a list given as separate entries (a Python list, a JS array), each one endpoint
    /// as [`Endpoint::parse`] takes it, with the rules of [`Endpoint::parse_list`]; an empty
    /// list fails with 10014 too.
    pub fn parse_entries<S: AsRef<str>>(entries: &[S]) -> Result<Vec<Endpoint>> {
        let list = entries
            .iter()
            .enumerate()
            .map(|(i, entry)| {
                if entry.as_ref().trim().is_empty() {
                    return Err(Error::new(
                        ErrorCode::INVALID_PARAMETER,
                        "config",
                        format!("endpoint list: entry {} is empty", i + 1),
                    ));
                }
                Endpoint::parse(entry.as_ref())
            })
            .collect::<Result<Vec<_>>>()?;
        check_list(&list)?;
        Ok(list)
    }
}

/// Most endpoints a client may be given.
pub const MAX_ENDPOINTS: usize = 64;

/// The endpoints a client connects to: `list`, or, when it is the default
/// ([`Endpoint::Default`] alone), those in `RTM2_ENDPOINT` (the embedded server when it is
/// unset or empty). An invalid value fails with 10014 naming the variable.
pub(crate) fn resolve_default(list: Vec<Endpoint>) -> Result<Vec<Endpoint>> {
    if !matches!(list[..], [Endpoint::Default]) {
        return Ok(list);
    }
    let value = match std::env::var(ENDPOINT_ENV) {
        Ok(v) => v,
        Err(std::env::VarError::NotPresent) => return Ok(vec![Endpoint::Embedded]),
        Err(std::env::VarError::NotUnicode(_)) => {
            return Err(Error::new(ErrorCode::INVALID_PARAMETER, "config", format!("{ENDPOINT_ENV} is not UTF-8")));
        }
    };
    if value.trim().is_empty() {
        return Ok(vec![Endpoint::Embedded]);
    }
    let list = Endpoint::parse_list(&value)
        .map_err(|e| Error::new(e.code, "config", format!("environment variable {ENDPOINT_ENV}: {}", e.reason)))?;
    Ok(list.into_iter().map(|e| if matches!(e, Endpoint::Default) { Endpoint::Embedded } else { e }).collect())
}

/// Checks an endpoint list: 1..=[`MAX_ENDPOINTS`] entries, the embedded server (or the
/// default) only alone.
pub(crate) fn check_list(list: &[Endpoint]) -> Result<()> {
    let bad = |why: String| Error::new(ErrorCode::INVALID_PARAMETER, "config", why);
    if list.is_empty() {
        return Err(bad("the endpoint list is empty (give at least one endpoint)".into()));
    }
    if list.len() > MAX_ENDPOINTS {
        return Err(bad(format!("{} endpoints given; at most {MAX_ENDPOINTS}", list.len())));
    }
    if list.len() > 1 && list.iter().any(|e| matches!(e, Endpoint::Embedded | Endpoint::Default)) {
        return Err(bad("the embedded server cannot be listed with other endpoints".into()));
    }
    Ok(())
}

/// The endpoints of a list as text, for messages: `tcp://a:1, tcp://b:2`.
pub(crate) fn describe(list: &[Endpoint]) -> String {
    list.iter().map(|e| format!("{e:?}")).collect::<Vec<_>>().join(", ")
}

/// Checks `host:port` (see [`Endpoint::parse`]); the reason when it is malformed.
fn check_host_port(addr: &str) -> std::result::Result<(), String> {
    let Some((host, port)) = addr.rsplit_once(':') else { return Err("no port".into()) };
    match port.parse::<u16>() {
        Ok(p) if p != 0 && port.bytes().all(|b| b.is_ascii_digit()) => {}
        _ => return Err(format!("port {port:?} is not a number in 1..=65535")),
    }
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return inner.parse::<std::net::Ipv6Addr>().map(drop).map_err(|_| format!("{inner:?} is not an IPv6 address"));
    }
    if host.parse::<std::net::Ipv4Addr>().is_ok() {
        return Ok(());
    }
    let label_ok = |l: &str| {
        (1..=63).contains(&l.len())
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if host.is_empty() || host.len() > 253 || !host.split('.').all(label_ok) {
        return Err(format!("host {host:?} is not an IPv4 address, a bracketed IPv6 address or a host name"));
    }
    Ok(())
}

/// Configuration of a [`Client`](crate::Client).
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The 32-character app id.
    pub app_id: String,
    /// This client's user id.
    pub user_id: String,
    /// Where to connect: one endpoint, or the nodes of one service (a cluster) in order of
    /// preference. The client connects to the first reachable one, starting with the one it
    /// used last; when its connection drops and cannot be resumed there (the node is
    /// unreachable), it goes on to the next and logs in there, restoring its subscriptions,
    /// stream channels, topics, presence state and held locks (docs/CLUSTER.md, "Client
    /// failover"). Never empty; the embedded server (the default) only alone.
    pub endpoints: Vec<Endpoint>,
    /// Timeout of every operation (reference default 10 s).
    pub request_timeout: Duration,
    /// Seconds this user stays present after an unexpected disconnect (5..=300, default 300;
    /// `set_parameters` clamps into the range, as the server does).
    pub presence_timeout_s: u32,
    /// Seconds between pings (5..=1800, default 5; `set_parameters` clamps into the range, as
    /// the server does).
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
    /// End-to-end encryption of message payloads, topic messages and presence state values
    /// (default: none). Every client of a conversation needs the same mode, key and salt; a
    /// message that does not decrypt here is dropped and counted (`Client::undecryptable_messages`).
    pub encryption: crate::encryption::EncryptionConfig,
}

impl ClientConfig {
    /// A configuration with the defaults and the default endpoint ([`Endpoint::Default`]:
    /// `RTM2_ENDPOINT` if set, else the embedded server).
    pub fn new(app_id: impl Into<String>, user_id: impl Into<String>) -> Self {
        ClientConfig {
            app_id: app_id.into(),
            user_id: user_id.into(),
            endpoints: vec![Endpoint::Default],
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
            encryption: Default::default(),
        }
    }

    /// Sets the endpoint (one; see [`ClientConfig::endpoints`] for several).
    pub fn endpoint(mut self, endpoint: Endpoint) -> Self {
        self.endpoints = vec![endpoint];
        self
    }

    /// Sets several endpoints, the nodes of one service, in order of preference: the client
    /// fails over between them. [`Client::new`](crate::Client::new) refuses (10014) an empty
    /// list, more than [`MAX_ENDPOINTS`], or the embedded server listed with others.
    pub fn endpoints(mut self, endpoints: Vec<Endpoint>) -> Self {
        self.endpoints = endpoints;
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
    /// | `heartbeat_interval_s` | 5..=1800, clamped | next login |
    /// | `presence_timeout_s` | 5..=300, clamped | next login |
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
    /// An unknown key, a value of the wrong type or out of range fails with 10014 — except the
    /// two clamped keys: like the server (and the reference SDKs), any integer ≥ 0 is accepted
    /// and moved into the range (4 → 5, 301 → 300); [`ClientConfig::parameters`] then reads back
    /// the value in effect.
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
            // Any integer ≥ 0, moved into lo..=hi (the server's rule for the same values).
            let clamped = |lo: u32, hi: u32| -> Result<u32> {
                match v.as_u64() {
                    Some(n) => Ok(n.clamp(lo as u64, hi as u64) as u32),
                    None => Err(bad(format!("{k} must be an integer ≥ 0 (clamped to {lo}..={hi}), got {v}"))),
                }
            };
            match k.as_str() {
                "request_timeout_ms" => next.request_timeout = Duration::from_millis(int(100, 600_000)?),
                "heartbeat_interval_s" => {
                    next.heartbeat_interval_s =
                        clamped(limits::MIN_HEARTBEAT_INTERVAL_S, limits::MAX_HEARTBEAT_INTERVAL_S)?
                }
                "presence_timeout_s" => {
                    next.presence_timeout_s = clamped(limits::MIN_PRESENCE_TIMEOUT_S, limits::MAX_PRESENCE_TIMEOUT_S)?
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

#[cfg(test)]
mod tests {
    use super::*;

    fn param(c: &ClientConfig, k: &str) -> u64 {
        c.parameters()[k].as_u64().unwrap()
    }

    #[test]
    fn presence_timeout_is_clamped_like_the_server_does() {
        let mut c = ClientConfig::new("a", "u");
        for (given, effective) in [(4, 5), (0, 5), (5, 5), (30, 30), (300, 300), (301, 300), (1u64 << 40, 300)] {
            c.set_parameters(&format!(r#"{{"presence_timeout_s": {given}}}"#)).unwrap();
            assert_eq!(c.presence_timeout_s, effective as u32, "presence_timeout_s {given}");
            assert_eq!(param(&c, "presence_timeout_s"), effective, "read back for {given}");
        }
        for bad in ["-1", "4.5", "\"30\"", "null"] {
            let e = c.set_parameters(&format!(r#"{{"presence_timeout_s": {bad}}}"#)).unwrap_err();
            assert_eq!(e.code, ErrorCode::INVALID_PARAMETER, "presence_timeout_s {bad}");
        }
    }

    #[test]
    fn heartbeat_interval_is_clamped_to_the_reference_range() {
        let mut c = ClientConfig::new("a", "u");
        assert_eq!(param(&c, "heartbeat_interval_s"), limits::DEFAULT_HEARTBEAT_INTERVAL_S as u64);
        for (given, effective) in [(0, 5), (1, 5), (4, 5), (5, 5), (60, 60), (1800, 1800), (1801, 1800)] {
            c.set_parameters(&format!(r#"{{"heartbeat_interval_s": {given}}}"#)).unwrap();
            assert_eq!(c.heartbeat_interval_s, effective, "heartbeat_interval_s {given}");
            assert_eq!(param(&c, "heartbeat_interval_s"), effective as u64, "read back for {given}");
        }
        let e = c.set_parameters(r#"{"heartbeat_interval_s": -5}"#).unwrap_err();
        assert_eq!(e.code, ErrorCode::INVALID_PARAMETER);
        // All or nothing still: a bad key next to a clamped one changes nothing.
        let e = c.set_parameters(r#"{"heartbeat_interval_s": 1, "nope": 1}"#).unwrap_err();
        assert_eq!(e.code, ErrorCode::INVALID_PARAMETER);
        assert_eq!(c.heartbeat_interval_s, 1800);
    }

    #[test]
    fn endpoints_are_validated_when_parsed() {
        for ok in [
            "",
            "embedded",
            "127.0.0.1:9696",
            "tcp://127.0.0.1:1",
            "tcp://127.0.0.1:65535",
            "tls://example.com:443",
            "localhost:9696",
            "rtm2-node_1.internal:9696",
            "[::1]:9696",
            "tcp://[2001:db8::1]:80",
        ] {
            assert!(Endpoint::parse(ok).is_ok(), "{ok:?} should parse");
        }
        for bad in [
            "tcp://127.0.0.1:99999",
            "tcp://127.0.0.1:0",
            "127.0.0.1:65536",
            "127.0.0.1:",
            "127.0.0.1:+80",
            "127.0.0.1:80a",
            ":9696",
            "tcp://:9696",
            "::1:9696",
            "[::1:9696",
            "[nope]:9696",
            "bad host:9696",
            "a/b:9696",
            "user@host:9696",
            "-host:9696",
            "a..b:9696",
            "http://example",
            "nohostport",
            "tls://",
            // A scheme with one slash is not taken as a host name.
            "tcp:/127.0.0.1:19911",
            "tls:127.0.0.1:19911",
        ] {
            let e = Endpoint::parse(bad).err().unwrap_or_else(|| panic!("{bad:?} should be refused"));
            assert_eq!(e.code, ErrorCode::INVALID_PARAMETER, "{bad:?}");
        }
        for bad in ["tcp://127.0.0.1:1,127.0.0.1:2,,", "a:1,nope", ",a:1", "a:1, ", "embedded,a:1", "a:1,embedded"] {
            let e = Endpoint::parse_list(bad).err().unwrap_or_else(|| panic!("{bad:?} should be refused"));
            assert_eq!(e.code, ErrorCode::INVALID_PARAMETER, "{bad:?}");
        }
        let e = Endpoint::parse_list("a:1,b:99999").unwrap_err();
        assert!(e.reason.contains("b:99999"), "the bad entry is named: {}", e.reason);
        let e = Endpoint::parse_list("a:1,,b:2").unwrap_err();
        assert!(e.reason.contains("entry 2 is empty"), "{}", e.reason);
        let list = Endpoint::parse_list(" tcp://127.0.0.1:1 , tls://example.com:443,[::1]:9").unwrap();
        assert_eq!(describe(&list), "tcp://127.0.0.1:1, tls://example.com:443, tcp://[::1]:9");
        assert!(matches!(Endpoint::parse_list("").unwrap()[..], [Endpoint::Default]));
        assert!(matches!(Endpoint::parse_list("embedded").unwrap()[..], [Endpoint::Embedded]));
        let many = vec!["a:1"; MAX_ENDPOINTS + 1].join(",");
        assert!(Endpoint::parse_list(&many).is_err());
        assert!(check_list(&[]).is_err());
        assert!(Endpoint::parse_entries::<&str>(&[]).is_err(), "an empty list");
        assert!(Endpoint::parse_entries(&["a:1", ""]).is_err(), "an empty entry");
        assert!(Endpoint::parse_entries(&["a:1,b:2"]).is_err(), "one entry, one endpoint");
        assert_eq!(Endpoint::parse_entries(&["a:1", "tcp://b:2"]).unwrap().len(), 2);
        let long = format!("{}:1", vec!["a".repeat(63); 5].join("."));
        assert!(Endpoint::parse(&long).is_err(), "a host over 253 bytes");
        assert!(Endpoint::parse(&format!("{}.com:1", "a".repeat(64))).is_err(), "a label over 63 bytes");
    }
}
