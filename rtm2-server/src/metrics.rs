//! The server's numbers, in Prometheus form (served by the HTTP side at `/metrics`).
//!
//! Counters on the message path are added to once per read batch or per delivered run, not
//! per message (one relaxed atomic add each); gauges (connections, sessions, memory) are read
//! when scraped. Names follow Prometheus conventions: `rtm2_…_total` for counters, `_seconds`
//! and `_bytes` units.

use std::sync::Arc;
use std::time::Duration;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};
use rtm2_proto::enums::ChannelType;
use rtm2_proto::pb::client_frame::Body;

/// Operations timed by `rtm2_request_duration_seconds`, by their label.
pub(crate) const OPERATIONS: [&str; 29] = [
    "subscribe",
    "unsubscribe",
    "publish",
    "renew_token",
    "stream_join",
    "stream_leave",
    "join_topic",
    "leave_topic",
    "publish_topic",
    "subscribe_topic",
    "unsubscribe_topic",
    "get_online_users",
    "get_user_channels",
    "set_state",
    "get_state",
    "remove_state",
    "write_metadata",
    "get_metadata",
    "subscribe_user_metadata",
    "unsubscribe_user_metadata",
    "set_lock",
    "remove_lock",
    "acquire_lock",
    "release_lock",
    "revoke_lock",
    "get_locks",
    "get_messages",
    "recover_messages",
    "other",
];

/// The index in [`OPERATIONS`] of a request.
pub(crate) fn operation(body: &Body) -> usize {
    match body {
        Body::Subscribe(_) => 0,
        Body::Unsubscribe(_) => 1,
        Body::Publish(_) => 2,
        Body::RenewToken(_) => 3,
        Body::StreamJoin(_) => 4,
        Body::StreamLeave(_) => 5,
        Body::JoinTopic(_) => 6,
        Body::LeaveTopic(_) => 7,
        Body::PublishTopic(_) => 8,
        Body::SubscribeTopic(_) => 9,
        Body::UnsubscribeTopic(_) => 10,
        Body::GetOnlineUsers(_) => 11,
        Body::GetUserChannels(_) => 12,
        Body::SetState(_) => 13,
        Body::GetState(_) => 14,
        Body::RemoveState(_) => 15,
        Body::WriteMetadata(_) => 16,
        Body::GetMetadata(_) => 17,
        Body::SubscribeUserMetadata(_) => 18,
        Body::UnsubscribeUserMetadata(_) => 19,
        Body::SetLock(_) => 20,
        Body::RemoveLock(_) => 21,
        Body::AcquireLock(_) => 22,
        Body::ReleaseLock(_) => 23,
        Body::RevokeLock(_) => 24,
        Body::GetLocks(_) => 25,
        Body::GetMessages(_) => 26,
        Body::RecoverMessages(_) => 27,
        Body::Hello(_) | Body::Login(_) | Body::Logout(_) | Body::Ping(_) => 28,
    }
}

/// Label of a channel type in metrics.
fn type_label(t: ChannelType) -> &'static str {
    match t {
        ChannelType::USER => "user",
        ChannelType::STREAM => "stream",
        _ => "message",
    }
}

/// Per channel type: message, user, stream.
pub(crate) struct ByType {
    message: IntCounter,
    user: IntCounter,
    stream: IntCounter,
}

impl ByType {
    fn new(v: &IntCounterVec) -> ByType {
        let of = |t| v.with_label_values(&[type_label(t)]);
        ByType { message: of(ChannelType::MESSAGE), user: of(ChannelType::USER), stream: of(ChannelType::STREAM) }
    }

    /// Adds `n` for channel type `t`.
    #[inline]
    pub(crate) fn add(&self, t: ChannelType, n: u64) {
        if n == 0 {
            return;
        }
        match t {
            ChannelType::USER => self.user.inc_by(n),
            ChannelType::STREAM => self.stream.inc_by(n),
            _ => self.message.inc_by(n),
        }
    }

    /// The sum over every channel type.
    pub(crate) fn total(&self) -> u64 {
        self.message.get() + self.user.get() + self.stream.get()
    }
}

/// Every number the server keeps about itself.
pub(crate) struct Metrics {
    registry: Registry,
    pub logins_ok: IntCounter,
    pub logins_refused: IntCounter,
    pub sessions_resumed: IntCounter,
    pub sessions_restored: IntCounter,
    pub published: ByType,
    pub delivered: ByType,
    pub bytes_in: IntCounter,
    pub bytes_out: IntCounter,
    pub slow_consumer_cuts: IntCounter,
    pub metadata_commits: IntCounter,
    pub rate_limited: IntCounter,
    requests: Vec<Histogram>,
    request_errors: Vec<IntCounter>,
    pub http_requests: IntCounterVec,
    pub http_duration: HistogramVec,
    pub http_rejected: IntCounterVec,
    connections: IntGauge,
    sessions: IntGauge,
    cluster_ready: IntGauge,
    memory: IntGauge,
}

/// Latency buckets, seconds: 50 µs to 10 s.
const BUCKETS: [f64; 14] =
    [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.5, 10.0];

impl Metrics {
    pub(crate) fn new() -> Arc<Metrics> {
        let registry = Registry::new();
        let counter = |name: &str, help: &str| {
            let c = IntCounter::new(name, help).expect("metric name");
            registry.register(Box::new(c.clone())).expect("registered once");
            c
        };
        let counter_vec = |name: &str, help: &str, label: &str| {
            let c = IntCounterVec::new(Opts::new(name, help), &[label]).expect("metric name");
            registry.register(Box::new(c.clone())).expect("registered once");
            c
        };
        let gauge = |name: &str, help: &str| {
            let g = IntGauge::new(name, help).expect("metric name");
            registry.register(Box::new(g.clone())).expect("registered once");
            g
        };
        let logins = counter_vec("rtm2_logins_total", "Logins answered, by result (ok, refused).", "result");
        let published = counter_vec(
            "rtm2_messages_published_total",
            "Messages accepted from publishers, by channel type (message, user, stream).",
            "channel_type",
        );
        let delivered = counter_vec(
            "rtm2_messages_delivered_total",
            "Messages queued to receivers on this node, by channel type (one per receiver).",
            "channel_type",
        );
        let durations = HistogramVec::new(
            HistogramOpts::new(
                "rtm2_request_duration_seconds",
                "Time the server took to answer a request (not message publishes), by operation.",
            )
            .buckets(BUCKETS.to_vec()),
            &["operation"],
        )
        .expect("metric name");
        registry.register(Box::new(durations.clone())).expect("registered once");
        let errors =
            counter_vec("rtm2_request_errors_total", "Requests answered with an error, by operation.", "operation");
        let http_duration = HistogramVec::new(
            HistogramOpts::new("rtm2_http_request_duration_seconds", "Time to answer an HTTP request, by route.")
                .buckets(BUCKETS.to_vec()),
            &["route"],
        )
        .expect("metric name");
        registry.register(Box::new(http_duration.clone())).expect("registered once");
        Arc::new(Metrics {
            logins_ok: logins.with_label_values(&["ok"]),
            logins_refused: logins.with_label_values(&["refused"]),
            sessions_resumed: counter(
                "rtm2_sessions_resumed_total",
                "Logins that resumed their session without loss (within the resume window).",
            ),
            sessions_restored: counter(
                "rtm2_sessions_restored_total",
                "Logins that asked to resume but got a new session (the client restores its channels).",
            ),
            published: ByType::new(&published),
            delivered: ByType::new(&delivered),
            bytes_in: counter("rtm2_received_bytes_total", "Bytes read from client connections."),
            bytes_out: counter("rtm2_sent_bytes_total", "Bytes written to client connections."),
            slow_consumer_cuts: counter(
                "rtm2_slow_consumer_cuts_total",
                "Connections cut off because their outbound queue was full.",
            ),
            metadata_commits: counter(
                "rtm2_metadata_commits_total",
                "Transactions that wrote metadata to the data directory (writes that arrive together share one).",
            ),
            rate_limited: counter("rtm2_rate_limited_total", "Client requests refused by a rate limit (10021)."),
            requests: OPERATIONS.iter().map(|op| durations.with_label_values(&[op])).collect(),
            request_errors: OPERATIONS.iter().map(|op| errors.with_label_values(&[op])).collect(),
            http_requests: counter_vec("rtm2_http_requests_total", "HTTP requests answered, by status.", "status"),
            http_duration,
            http_rejected: counter_vec(
                "rtm2_http_rejected_total",
                "HTTP requests or connections refused by a limit, by limit (connections, rate, body, timeout).",
                "limit",
            ),
            connections: gauge("rtm2_connections", "Client connections being served."),
            sessions: gauge("rtm2_sessions", "Sessions (connected, or detached and waiting for a resume)."),
            cluster_ready: gauge("rtm2_ready", "1 when the server accepts logins (in a cluster: connected to NATS)."),
            memory: gauge("process_resident_memory_bytes", "Resident memory of the server's process."),
            registry,
        })
    }

    /// Records the time a request took and whether it failed.
    #[inline]
    pub(crate) fn request(&self, operation: usize, took: Duration, failed: bool) {
        self.requests[operation].observe(took.as_secs_f64());
        if failed {
            self.request_errors[operation].inc();
        }
    }

    /// The Prometheus text exposition, with the gauges read now.
    pub(crate) fn render(&self, connections: usize, sessions: usize, ready: bool) -> String {
        self.connections.set(connections as i64);
        self.sessions.set(sessions as i64);
        self.cluster_ready.set(ready as i64);
        self.memory.set(resident_bytes() as i64);
        let mut out = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut out).expect("text encoding");
        String::from_utf8(out).expect("text encoding is UTF-8")
    }
}

/// Resident memory of this process (Linux `/proc/self/status`, VmRSS); 0 where unknown.
pub(crate) fn resident_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map_or(0, |kb| kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_has_a_label_and_the_exposition_names_them() {
        let m = Metrics::new();
        m.request(operation(&Body::GetLocks(Default::default())), Duration::from_millis(2), true);
        m.published.add(ChannelType::MESSAGE, 3);
        m.delivered.add(ChannelType::STREAM, 5);
        let text = m.render(4, 2, true);
        assert!(text.contains("rtm2_request_duration_seconds_count{operation=\"get_locks\"} 1"), "{text}");
        assert!(text.contains("rtm2_request_errors_total{operation=\"get_locks\"} 1"), "{text}");
        assert!(text.contains("rtm2_messages_published_total{channel_type=\"message\"} 3"), "{text}");
        assert!(text.contains("rtm2_messages_delivered_total{channel_type=\"stream\"} 5"), "{text}");
        assert!(text.contains("rtm2_connections 4"), "{text}");
        assert!(text.contains("rtm2_ready 1"), "{text}");
        assert_eq!(m.published.total(), 3);
        assert!(resident_bytes() > 0);
    }
}
