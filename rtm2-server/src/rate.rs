//! Per-session rate limits: at most N requests of a kind in any one-second window, and at most
//! N subscribes of one message channel in any [`CHANNEL_SUBSCRIBE_WINDOW`].

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use rtm2_proto::limits;
use rtm2_proto::pb::client_frame::Body;

/// Requests per second a session may make, by kind; 0 = unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    /// Message-channel and user-channel publishes.
    pub publish_per_s: u32,
    /// Topic publishes.
    pub topic_publish_per_s: u32,
    /// Every other request (subscribe, join, topic operations, token renewal, ...).
    pub calls_per_s: u32,
    /// Subscribes of one message channel within [`CHANNEL_SUBSCRIBE_WINDOW`] (a sliding
    /// window); the next one fails with 11020 CHANNEL_SUBSCRIBE_TOO_FREQUENT. Every subscribe
    /// request counts, whatever its outcome. Per session: the subscribes a client's reconnect
    /// restore sends go to a new session and never trip it.
    pub channel_subscribes_per_window: u32,
}

/// The window of [`RateLimits::channel_subscribes_per_window`] (reference: 5 s).
pub const CHANNEL_SUBSCRIBE_WINDOW: Duration = Duration::from_millis(limits::CHANNEL_SUBSCRIBE_WINDOW_MS);

impl RateLimits {
    /// The reference limits: 60 publishes/s, 200 topic publishes/s, 20 other calls/s, and 2
    /// subscribes of one channel per 5 s.
    pub const fn reference() -> Self {
        RateLimits {
            publish_per_s: limits::MAX_PUBLISH_PER_SECOND,
            topic_publish_per_s: limits::MAX_TOPIC_PUBLISH_PER_SECOND,
            calls_per_s: limits::MAX_CALLS_PER_SECOND,
            channel_subscribes_per_window: limits::MAX_CHANNEL_SUBSCRIBES_PER_WINDOW,
        }
    }

    /// No limits at all (benchmarks, `rtm2 serve --no-rate-limits`).
    pub const fn unlimited() -> Self {
        RateLimits { publish_per_s: 0, topic_publish_per_s: 0, calls_per_s: 0, channel_subscribes_per_window: 0 }
    }

    /// No throughput limits, but the reference's rule on subscribing one channel too often
    /// (11020). The embedded server's limits: its only clients are its own process's, so
    /// throughput is not rationed, while an application sees the same answers to the same
    /// calls as against a standalone server.
    pub const fn embedded() -> Self {
        RateLimits { channel_subscribes_per_window: limits::MAX_CHANNEL_SUBSCRIBES_PER_WINDOW, ..Self::unlimited() }
    }
}

/// At most `rate` requests in any one-second window (a sliding log of recent admissions).
#[derive(Debug)]
struct Bucket {
    rate: usize,
    admitted: std::collections::VecDeque<Instant>,
}

impl Bucket {
    fn new(rate: u32) -> Self {
        Bucket { rate: rate as usize, admitted: std::collections::VecDeque::new() }
    }

    fn take(&mut self) -> bool {
        if self.rate == 0 {
            return true;
        }
        let now = Instant::now();
        while self.admitted.front().is_some_and(|t| now.duration_since(*t) >= std::time::Duration::from_secs(1)) {
            self.admitted.pop_front();
        }
        if self.admitted.len() < self.rate {
            self.admitted.push_back(now);
            true
        } else {
            false
        }
    }
}

/// Channels whose recent subscribes a session remembers, at most; beyond it the channel
/// subscribed longest ago is forgotten first (only a client subscribing more than this many
/// channels per window, with the call rate limit off, can get there).
const MAX_TRACKED_SUBSCRIBE_CHANNELS: usize = 1024;

/// The recent subscribes of one session, per channel (each list at most `per_window` long).
#[derive(Debug)]
struct ChannelSubscribes {
    per_window: usize,
    recent: HashMap<String, VecDeque<Instant>>,
}

impl ChannelSubscribes {
    /// Records a subscribe of `channel` now; `false` (not recorded) if `per_window` were made
    /// within the window already.
    fn take(&mut self, channel: &str) -> bool {
        if self.per_window == 0 {
            return true;
        }
        let now = Instant::now();
        let fresh = |t: &Instant| now.duration_since(*t) < CHANNEL_SUBSCRIBE_WINDOW;
        if let Some(times) = self.recent.get_mut(channel) {
            while times.front().is_some_and(|t| !fresh(t)) {
                times.pop_front();
            }
            if times.len() >= self.per_window {
                return false;
            }
            times.push_back(now);
            return true;
        }
        if self.recent.len() >= MAX_TRACKED_SUBSCRIBE_CHANNELS {
            self.recent.retain(|_, times| times.back().is_some_and(fresh));
        }
        if self.recent.len() >= MAX_TRACKED_SUBSCRIBE_CHANNELS {
            let oldest = self.recent.iter().min_by_key(|(_, times)| times.back().copied()).map(|(c, _)| c.clone());
            if let Some(c) = oldest {
                self.recent.remove(&c);
            }
        }
        self.recent.insert(channel.to_string(), VecDeque::from([now]));
        true
    }
}

/// The buckets of one session.
#[derive(Debug)]
pub(crate) struct Limiter {
    publish: Bucket,
    topic: Bucket,
    calls: Bucket,
    subscribes: ChannelSubscribes,
}

impl Limiter {
    pub(crate) fn new(l: RateLimits) -> Self {
        Limiter {
            publish: Bucket::new(l.publish_per_s),
            topic: Bucket::new(l.topic_publish_per_s),
            calls: Bucket::new(l.calls_per_s),
            subscribes: ChannelSubscribes {
                per_window: l.channel_subscribes_per_window as usize,
                recent: HashMap::new(),
            },
        }
    }

    /// Records a subscribe of message channel `channel`: 11020 if the session subscribed it
    /// `channel_subscribes_per_window` times within the window already.
    pub(crate) fn admit_subscribe(&mut self, channel: &str) -> Result<(), rtm2_proto::validate::Violation> {
        if self.subscribes.take(channel) {
            return Ok(());
        }
        Err(rtm2_proto::validate::Violation::new(
            rtm2_proto::ErrorCode::CHANNEL_SUBSCRIBE_TOO_FREQUENT,
            format!(
                "channel {channel:?} was subscribed {} times within {} s; wait before subscribing it again",
                self.subscribes.per_window,
                CHANNEL_SUBSCRIBE_WINDOW.as_secs()
            ),
        ))
    }

    /// Takes a token for `body`; on refusal returns the limit that was hit, per second.
    pub(crate) fn admit(&mut self, body: &Body) -> Result<(), (&'static str, usize)> {
        match body {
            Body::Publish(_) => self.admit_publish(),
            Body::PublishTopic(_) => Self::take(&mut self.topic, "topic publishes"),
            _ => Self::take(&mut self.calls, "calls"),
        }
    }

    /// [`admit`](Self::admit) for a message-channel or user-channel publish.
    pub(crate) fn admit_publish(&mut self) -> Result<(), (&'static str, usize)> {
        Self::take(&mut self.publish, "publishes")
    }

    fn take(bucket: &mut Bucket, what: &'static str) -> Result<(), (&'static str, usize)> {
        if bucket.take() { Ok(()) } else { Err((what, bucket.rate)) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtm2_proto::pb;

    #[test]
    fn buckets_hold_one_second_and_refill() {
        let mut l = Limiter::new(RateLimits {
            publish_per_s: 3,
            topic_publish_per_s: 0,
            calls_per_s: 1,
            channel_subscribes_per_window: 0,
        });
        let publish = Body::Publish(pb::Publish::default());
        for _ in 0..3 {
            assert!(l.admit(&publish).is_ok());
        }
        assert_eq!(l.admit(&publish), Err(("publishes", 3)));
        assert_eq!(l.admit_publish(), Err(("publishes", 3)));
        // Unlimited topic publishes; one call per second.
        for _ in 0..1000 {
            assert!(l.admit(&Body::PublishTopic(pb::PublishTopic::default())).is_ok());
        }
        let sub = Body::Subscribe(pb::Subscribe::default());
        assert!(l.admit(&sub).is_ok());
        assert!(l.admit(&sub).is_err());
        for t in l.calls.admitted.iter_mut() {
            *t -= std::time::Duration::from_millis(1100);
        }
        assert!(l.admit(&sub).is_ok());
    }

    #[test]
    fn a_channel_is_subscribed_at_most_twice_per_window() {
        let mut l = Limiter::new(RateLimits::reference());
        assert!(l.admit_subscribe("a").is_ok());
        assert!(l.admit_subscribe("a").is_ok());
        let e = l.admit_subscribe("a").unwrap_err();
        assert_eq!(e.code, rtm2_proto::ErrorCode::CHANNEL_SUBSCRIBE_TOO_FREQUENT);
        assert!(e.reason.contains("2 times within 5 s"), "{}", e.reason);
        // Per channel: another channel is not affected.
        assert!(l.admit_subscribe("b").is_ok());
        // A sliding window: once the first subscribe is 5 s old, one more is allowed.
        let times = l.subscribes.recent.get_mut("a").unwrap();
        times[0] -= CHANNEL_SUBSCRIBE_WINDOW;
        assert!(l.admit_subscribe("a").is_ok());
        assert!(l.admit_subscribe("a").is_err());
        // Off: unlimited.
        let mut off = Limiter::new(RateLimits::unlimited());
        assert!((0..100).all(|_| off.admit_subscribe("a").is_ok()));
    }

    #[test]
    fn the_subscribe_memory_is_bounded() {
        let mut l = Limiter::new(RateLimits::embedded());
        for i in 0..MAX_TRACKED_SUBSCRIBE_CHANNELS * 3 {
            assert!(l.admit_subscribe(&format!("c{i}")).is_ok());
            assert!(l.subscribes.recent.len() <= MAX_TRACKED_SUBSCRIBE_CHANNELS);
        }
        // The most recent channels are still remembered.
        let last = format!("c{}", MAX_TRACKED_SUBSCRIBE_CHANNELS * 3 - 1);
        assert!(l.admit_subscribe(&last).is_ok());
        assert!(l.admit_subscribe(&last).is_err());
    }
}
