//! Per-session rate limits: at most N requests of a kind in any one-second window.

use std::time::Instant;

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
}

impl RateLimits {
    /// The reference limits: 60 publishes/s, 200 topic publishes/s, 20 other calls/s.
    pub const fn reference() -> Self {
        RateLimits {
            publish_per_s: limits::MAX_PUBLISH_PER_SECOND,
            topic_publish_per_s: limits::MAX_TOPIC_PUBLISH_PER_SECOND,
            calls_per_s: limits::MAX_CALLS_PER_SECOND,
        }
    }

    /// No limits (benchmarks, a trusted embedded server).
    pub const fn unlimited() -> Self {
        RateLimits { publish_per_s: 0, topic_publish_per_s: 0, calls_per_s: 0 }
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

/// The buckets of one session.
#[derive(Debug)]
pub(crate) struct Limiter {
    publish: Bucket,
    topic: Bucket,
    calls: Bucket,
}

impl Limiter {
    pub(crate) fn new(l: RateLimits) -> Self {
        Limiter {
            publish: Bucket::new(l.publish_per_s),
            topic: Bucket::new(l.topic_publish_per_s),
            calls: Bucket::new(l.calls_per_s),
        }
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
        let mut l = Limiter::new(RateLimits { publish_per_s: 3, topic_publish_per_s: 0, calls_per_s: 1 });
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
}
