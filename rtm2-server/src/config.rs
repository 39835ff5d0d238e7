//! Server configuration.

use std::path::PathBuf;
use std::time::Duration;

use rtm2_proto::limits;

use crate::rate::RateLimits;

/// Default of [`ServerConfig::outbound_queue_frames`]: 65,536.
pub const DEFAULT_OUTBOUND_QUEUE_FRAMES: usize = 64 * 1024;
/// Default of [`ServerConfig::outbound_queue_bytes`]: 8 MiB.
pub const DEFAULT_OUTBOUND_QUEUE_BYTES: usize = 8 * 1024 * 1024;

pub use crate::cluster::ClusterConfig;

/// Credentials of one app the server serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppCredentials {
    /// The 32-character app id.
    pub app_id: String,
    /// App certificates; a token signed with any of them is accepted (primary, secondary, ...).
    pub certificates: Vec<String>,
}

/// How the server runs. `ServerConfig::default()` is development mode.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Apps and their certificates. **Empty means development mode**: any well-formed app id is
    /// accepted and tokens are not checked (the server logs this loudly at start).
    pub apps: Vec<AppCredentials>,
    /// Name reported in the handshake.
    pub server_name: String,
    /// "Token privilege will expire" is sent this long before a token expires (reference: 30 s).
    pub token_will_expire_notice: Duration,
    /// A connection must finish Hello + Login within this time.
    pub prelogin_timeout: Duration,
    /// Extra silence tolerated on top of the client's heartbeat interval before the server
    /// drops a session (reference: heartbeat + 10 s).
    pub keepalive_grace: Duration,
    /// Frames that may wait in one connection's outbound queue; a connection whose queue is
    /// full is a slow consumer and is disconnected with an explicit reason.
    pub outbound_queue_frames: usize,
    /// Bytes (frame bodies) that may wait in one connection's outbound queue, enforced
    /// together with `outbound_queue_frames`: whichever is reached first makes a slow consumer.
    ///
    /// Default 8 MiB: 256 messages of the 32 KiB maximum, or thousands of ordinary ones — a
    /// burst a reading client absorbs — while a stalled one costs the server at most this much
    /// (not 64 Ki frames × 32 KiB = 2 GiB). It is half of `resume_max_bytes` (16 MiB), so the
    /// frames queued when a slow consumer is cut are still in its session's replay window and
    /// a client that reconnects promptly resumes without loss. (A frame is accepted into an
    /// empty queue whatever its size.)
    pub outbound_queue_bytes: usize,
    /// Largest client frame accepted, bytes.
    pub max_frame_len: usize,
    /// Connections served at once, at most; more are refused with 10010 (a user has at most
    /// one session: a second login of the same user id ends the first).
    pub max_connections: usize,
    /// How long a session whose connection dropped is kept, at most, so that the client can
    /// resume it without loss (its subscriptions stay, its messages are buffered). Each session
    /// is kept for its presence timeout (5–300 s) capped by this window; when it ends, others
    /// see the user time out.
    pub resume_window: Duration,
    /// Frames kept per session for resume, at most (older ones are dropped; a client that
    /// missed more cannot resume and is told so).
    pub resume_max_frames: usize,
    /// Bytes kept per session for resume, at most.
    pub resume_max_bytes: usize,
    /// Requests per second each session may make; beyond them requests fail with 10021.
    pub rate_limits: RateLimits,
    /// Where channel and user metadata (and locks) are kept.
    pub metadata_store: MetadataStore,
    /// With [`MetadataStore::Directory`]: create a new, empty store even though the directory
    /// held one whose database file is missing, empty, foreign or whose manifest is damaged
    /// (without it the server refuses to start then). The old database file is moved aside
    /// (`metadata.redb.replaced-<ms>`), never deleted. A directory without a store needs no flag.
    pub create_new_store: bool,
    /// Join a cluster of nodes that act as one service over NATS (docs/CLUSTER.md); `None`
    /// (default) = a single server.
    pub cluster: Option<ClusterConfig>,
    /// In a cluster: replicas of the JetStream key-value buckets that hold metadata and locks
    /// (1–5; 1 by default: the data lives on one NATS server). Kept apart from `ClusterConfig`
    /// so that configs written as `ClusterConfig { urls, node_id }` stay valid.
    pub cluster_replicas: usize,
    /// Users per page of `getOnlineUsers`.
    pub presence_page_size: usize,
    /// Above this many present users in a channel, per-user presence events (join, leave,
    /// timeout, state changed) are replaced by one INTERVAL event per `presence_interval`
    /// (reference console "max number of instant events": default 50).
    pub presence_announce_max: usize,
    /// Interval of aggregated INTERVAL presence events (reference console: 30 s).
    pub presence_interval: Duration,
    /// The length of one "second" of presence timeouts and lock ttls (1 s). Tests shorten it
    /// so that a 5 s presence timeout or a 10 s lock ttl passes quickly; never change it in
    /// production.
    pub ttl_unit: Duration,
    /// Message history: the newest messages kept per channel (default 1,000).
    pub history_max_per_channel: usize,
    /// Message history: how long a stored message is kept, at most (default 7 days).
    pub history_max_age: Duration,
}

/// Where a server keeps metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataStore {
    /// In memory: lost when the server stops (the embedded default).
    Memory,
    /// In a crash-safe database file in this directory (created if missing): every
    /// acknowledged write is on disk. A directory that held a store is never re-initialised
    /// silently: see [`ServerConfig::create_new_store`].
    Directory(PathBuf),
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            apps: Vec::new(),
            server_name: format!("rtm2-server/{}", env!("CARGO_PKG_VERSION")),
            token_will_expire_notice: Duration::from_secs(limits::TOKEN_WILL_EXPIRE_NOTICE_S),
            prelogin_timeout: Duration::from_millis(limits::DEFAULT_PRELOGIN_TIMEOUT_MS),
            keepalive_grace: Duration::from_secs(limits::KEEPALIVE_GRACE_S as u64),
            outbound_queue_frames: DEFAULT_OUTBOUND_QUEUE_FRAMES,
            outbound_queue_bytes: DEFAULT_OUTBOUND_QUEUE_BYTES,
            max_frame_len: limits::MAX_CLIENT_FRAME_LEN,
            max_connections: 100_000,
            resume_window: Duration::from_secs(limits::DEFAULT_RESUME_WINDOW_S),
            resume_max_frames: 64 * 1024,
            resume_max_bytes: 16 * 1024 * 1024,
            rate_limits: RateLimits::reference(),
            metadata_store: MetadataStore::Memory,
            create_new_store: false,
            cluster: None,
            presence_page_size: limits::DEFAULT_PRESENCE_PAGE_SIZE,
            presence_announce_max: limits::DEFAULT_PRESENCE_ANNOUNCE_MAX,
            presence_interval: Duration::from_secs(limits::DEFAULT_PRESENCE_INTERVAL_S),
            ttl_unit: Duration::from_secs(1),
            cluster_replicas: 1,
            history_max_per_channel: crate::history::DEFAULT_MAX_PER_CHANNEL,
            history_max_age: crate::history::DEFAULT_MAX_AGE,
        }
    }
}

impl ServerConfig {
    /// A configuration that requires tokens for one app.
    pub fn with_app(app_id: impl Into<String>, certificate: impl Into<String>) -> Self {
        ServerConfig {
            apps: vec![AppCredentials { app_id: app_id.into(), certificates: vec![certificate.into()] }],
            ..Default::default()
        }
    }

    /// True when no app is configured: tokens are not checked.
    pub fn dev_mode(&self) -> bool {
        self.apps.is_empty()
    }
}
