//! Event delivery: bounded per-receiver queues with explicit overflow reporting.
//!
//! Every receiver ([`EventReceiver`], [`Subscription`]) owns a bounded queue. When it is full,
//! new events are counted and dropped, and the receiver's next event is
//! [`Event::Overflow`] with that count — never a silent loss. Queues support async receive,
//! batched receive (bindings cross their boundary once per batch) and blocking receive (for a
//! C dispatcher thread).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::types::{Event, MessageEvent};

struct QueueState {
    items: VecDeque<Event>,
    closed: bool,
    /// Threads blocked in `blocking_recv_batch` (only they need the condvar, whose notify is a
    /// system call: skipped on the hot path when nobody blocks).
    blocked: usize,
}

/// A bounded single-consumer event queue.
pub(crate) struct EventQueue {
    state: parking_lot::Mutex<QueueState>,
    cap: usize,
    dropped: AtomicU64,
    notify: Notify,
    cond: parking_lot::Condvar,
}

impl EventQueue {
    pub(crate) fn new(cap: usize) -> Arc<Self> {
        Arc::new(EventQueue {
            state: parking_lot::Mutex::new(QueueState { items: VecDeque::new(), closed: false, blocked: 0 }),
            cap: cap.max(1),
            dropped: AtomicU64::new(0),
            notify: Notify::new(),
            cond: parking_lot::Condvar::new(),
        })
    }

    /// Pushes events in order under one lock, with one wake-up.
    pub(crate) fn push_many<'a>(&self, evs: impl IntoIterator<Item = &'a Event>) {
        let blocked = {
            let mut st = self.state.lock();
            if st.closed {
                return;
            }
            let mut dropped = 0;
            for ev in evs {
                if st.items.len() >= self.cap {
                    dropped += 1;
                } else {
                    st.items.push_back(ev.clone());
                }
            }
            if dropped > 0 {
                self.dropped.fetch_add(dropped, Ordering::Relaxed);
            }
            st.blocked > 0
        };
        self.notify.notify_one();
        if blocked {
            self.cond.notify_one();
        }
    }

    /// `push_many` of events the caller gives away: moved into the queue, not cloned.
    pub(crate) fn push_owned(&self, mut evs: Vec<Event>) {
        let blocked = {
            let mut st = self.state.lock();
            if st.closed {
                return;
            }
            let room = self.cap.saturating_sub(st.items.len());
            if evs.len() > room {
                self.dropped.fetch_add((evs.len() - room) as u64, Ordering::Relaxed);
                evs.truncate(room);
            }
            if st.items.is_empty() {
                // The batch becomes the queue: no event is copied (a Vec turns into a VecDeque
                // in place), and `take` can hand it on the same way.
                st.items = VecDeque::from(evs);
            } else {
                st.items.extend(evs);
            }
            st.blocked > 0
        };
        self.notify.notify_one();
        if blocked {
            self.cond.notify_one();
        }
    }

    pub(crate) fn close(&self) {
        self.state.lock().closed = true;
        self.notify.notify_one();
        self.cond.notify_all();
    }

    /// Takes up to `max` events (an overflow notice first), or None when closed and empty.
    fn take(&self, st: &mut QueueState, max: usize, out: &mut Vec<Event>) -> bool {
        let dropped = self.dropped.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            out.push(Event::Overflow { dropped });
        } else if out.is_empty() && st.items.len() <= max {
            // Everything queued fits: hand the queue's storage over instead of moving each
            // event (in place when the queue came from one batch of `push_owned`).
            *out = Vec::from(std::mem::take(&mut st.items));
            return !out.is_empty();
        }
        while out.len() < max {
            match st.items.pop_front() {
                Some(ev) => out.push(ev),
                None => break,
            }
        }
        !out.is_empty()
    }

    async fn recv_batch(&self, max: usize) -> Option<Vec<Event>> {
        let mut out = Vec::new();
        loop {
            let notified = self.notify.notified();
            {
                let mut st = self.state.lock();
                if self.take(&mut st, max.max(1), &mut out) {
                    return Some(out);
                }
                if st.closed {
                    return None;
                }
            }
            notified.await;
        }
    }

    fn try_recv_batch(&self, max: usize) -> Vec<Event> {
        let mut out = Vec::new();
        let mut st = self.state.lock();
        self.take(&mut st, max.max(1), &mut out);
        out
    }

    fn blocking_recv_batch(&self, max: usize, timeout: Duration) -> Option<Vec<Event>> {
        let deadline = Instant::now() + timeout;
        let mut out = Vec::new();
        let mut st = self.state.lock();
        loop {
            if self.take(&mut st, max.max(1), &mut out) {
                return Some(out);
            }
            if st.closed {
                return None;
            }
            let now = Instant::now();
            if now >= deadline {
                return Some(out);
            }
            st.blocked += 1;
            self.cond.wait_for(&mut st, deadline - now);
            st.blocked -= 1;
        }
    }
}

/// Receives every event of a client (messages of all channels, topic events, link states,
/// token notices). Made by `Client::events`.
pub struct EventReceiver {
    queue: Arc<EventQueue>,
    hub: Arc<EventHub>,
}

impl EventReceiver {
    /// The next event; `None` once the client is dropped.
    pub async fn recv(&mut self) -> Option<Event> {
        self.queue.recv_batch(1).await.and_then(|mut v| v.pop())
    }

    /// Waits for at least one event and returns up to `max` of them in order.
    pub async fn recv_batch(&mut self, max: usize) -> Option<Vec<Event>> {
        self.queue.recv_batch(max).await
    }

    /// Returns what is queued now (up to `max`), without waiting.
    pub fn try_recv_batch(&mut self, max: usize) -> Vec<Event> {
        self.queue.try_recv_batch(max)
    }

    /// Blocks the calling thread up to `timeout` for events (for threads outside any runtime).
    /// `None` once the client is gone; an empty vector on timeout.
    pub fn blocking_recv_batch(&mut self, max: usize, timeout: Duration) -> Option<Vec<Event>> {
        self.queue.blocking_recv_batch(max, timeout)
    }
}

impl Drop for EventReceiver {
    fn drop(&mut self) {
        self.hub.remove_listener(&self.queue);
    }
}

/// The messages of one subscribed message channel. Made by `Client::subscribe`; it ends
/// (`recv` gives `None`) on unsubscribe or logout. Dropping it stops local delivery only;
/// the server subscription stays until `unsubscribe`.
pub struct Subscription {
    channel: String,
    queue: Arc<EventQueue>,
    hub: Arc<EventHub>,
    pub(crate) timestamp_ms: u64,
}

impl Subscription {
    /// The channel.
    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// The server's time of the subscribe's answer, ms since the epoch (agora-rtm-sdk's
    /// `SubscribeResponse.timestamp`).
    pub fn timestamp_ms(&self) -> u64 {
        self.timestamp_ms
    }

    /// The next message, or `None` when the subscription ended. An overflow of this
    /// subscription's queue is reported as an `Err(dropped)`.
    pub async fn recv(&mut self) -> Option<Result<MessageEvent, u64>> {
        let mut batch = self.queue.recv_batch(1).await?;
        match batch.pop()? {
            Event::Message(m) => Some(Ok(m)),
            Event::Overflow { dropped } => Some(Err(dropped)),
            _ => Some(Err(0)),
        }
    }

    /// Waits for at least one event and returns up to `max` (messages, or an overflow notice).
    pub async fn recv_batch(&mut self, max: usize) -> Option<Vec<Event>> {
        self.queue.recv_batch(max).await
    }

    /// Blocks the calling thread up to `timeout`; see [`EventReceiver::blocking_recv_batch`].
    pub fn blocking_recv_batch(&mut self, max: usize, timeout: Duration) -> Option<Vec<Event>> {
        self.queue.blocking_recv_batch(max, timeout)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.hub.remove_channel_queue(&self.channel, &self.queue);
    }
}

/// Routes events to listeners and channel subscriptions.
#[derive(Default)]
pub(crate) struct EventHub {
    listeners: RwLock<Vec<Arc<EventQueue>>>,
    channels: RwLock<HashMap<String, Vec<Arc<EventQueue>>>>,
}

impl EventHub {
    pub(crate) fn listener(self: &Arc<Self>, cap: usize) -> EventReceiver {
        let queue = EventQueue::new(cap);
        self.listeners.write().unwrap().push(queue.clone());
        EventReceiver { queue, hub: self.clone() }
    }

    fn remove_listener(&self, q: &Arc<EventQueue>) {
        self.listeners.write().unwrap().retain(|x| !Arc::ptr_eq(x, q));
    }

    pub(crate) fn subscription(self: &Arc<Self>, channel: &str, cap: usize) -> Subscription {
        let queue = EventQueue::new(cap);
        self.channels.write().unwrap().entry(channel.to_string()).or_default().push(queue.clone());
        Subscription { channel: channel.to_string(), queue, hub: self.clone(), timestamp_ms: 0 }
    }

    fn remove_channel_queue(&self, channel: &str, q: &Arc<EventQueue>) {
        let mut map = self.channels.write().unwrap();
        if let Some(v) = map.get_mut(channel) {
            v.retain(|x| !Arc::ptr_eq(x, q));
            if v.is_empty() {
                map.remove(channel);
            }
        }
    }

    /// Ends the subscriptions of one channel (unsubscribe).
    pub(crate) fn close_channel(&self, channel: &str) {
        if let Some(v) = self.channels.write().unwrap().remove(channel) {
            for q in v {
                q.close();
            }
        }
    }

    /// Ends every subscription (logout).
    pub(crate) fn close_all_channels(&self) {
        for (_, v) in self.channels.write().unwrap().drain() {
            for q in v {
                q.close();
            }
        }
    }

    /// Ends every listener (client dropped).
    pub(crate) fn close_listeners(&self) {
        for q in self.listeners.read().unwrap().iter() {
            q.close();
        }
    }

    /// Emits events in order, with one lock and one wake-up per receiving queue and run of
    /// messages of one channel.
    pub(crate) fn emit_batch(&self, evs: &[Event]) {
        {
            let channels = self.channels.read().unwrap();
            let mut rest = evs;
            while let Some(first) = rest.first() {
                let key = match first {
                    Event::Message(m) if m.channel_type == rtm2_proto::enums::ChannelType::MESSAGE => Some(&m.channel),
                    _ => None,
                };
                let run = rest
                    .iter()
                    .position(|e| match (e, key) {
                        (Event::Message(m), Some(k)) => {
                            m.channel_type != rtm2_proto::enums::ChannelType::MESSAGE || &m.channel != k
                        }
                        _ => true,
                    })
                    .unwrap_or(rest.len())
                    .max(1);
                if let Some(v) = key.and_then(|k| channels.get(k.as_str())) {
                    for q in v {
                        q.push_many(&rest[..run]);
                    }
                }
                rest = &rest[run..];
            }
        }
        for q in self.listeners.read().unwrap().iter() {
            q.push_many(evs);
        }
    }

    /// [`EventHub::emit_batch`] of events the caller gives away. When they all go to one queue
    /// (one subscription of their channel and no listener, or one listener and no subscription:
    /// the usual case) they are moved there rather than cloned.
    pub(crate) fn emit_batch_owned(&self, evs: Vec<Event>) {
        {
            let channels = self.channels.read().unwrap();
            let listeners = self.listeners.read().unwrap();
            let channel_of = |e: &Event| match e {
                Event::Message(m) if m.channel_type == rtm2_proto::enums::ChannelType::MESSAGE => {
                    channels.get(m.channel.as_str()).filter(|v| !v.is_empty())
                }
                _ => None,
            };
            let sole = match (listeners.len(), evs.first()) {
                (0, Some(Event::Message(first))) => match channel_of(&evs[0]) {
                    Some(v) if v.len() == 1
                        && evs.iter().all(|e| matches!(e, Event::Message(m) if m.channel_type == first.channel_type && m.channel == first.channel)) =>
                    {
                        Some(&v[0])
                    }
                    _ => None,
                },
                (1, Some(_)) if evs.iter().all(|e| channel_of(e).is_none()) => Some(&listeners[0]),
                _ => None,
            };
            if let Some(q) = sole {
                q.push_owned(evs);
                return;
            }
        }
        self.emit_batch(&evs);
    }

    /// Emits one event: to its channel's subscriptions (a MESSAGE-channel message) and to every
    /// listener.
    pub(crate) fn emit(&self, ev: Event) {
        self.emit_batch(std::slice::from_ref(&ev));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(channel_type: rtm2_proto::enums::ChannelType, channel: &str, i: u32) -> Event {
        Event::Message(MessageEvent {
            channel_type,
            channel: channel.into(),
            topic: Default::default(),
            publisher: "p".into(),
            message_type: rtm2_proto::enums::MessageType::STRING,
            payload: bytes::Bytes::from(i.to_string()),
            custom_type: Default::default(),
            timestamp_ms: 0,
            encryption: 0,
            stored: false,
            recovered: false,
        })
    }

    /// What each receiver got: (listener, channel a, channel b).
    fn received(all: &mut EventReceiver, a: &mut Subscription, b: &mut Subscription) -> [Vec<Event>; 3] {
        let t = Duration::from_millis(1);
        [all.try_recv_batch(100), a.blocking_recv_batch(100, t).unwrap(), b.blocking_recv_batch(100, t).unwrap()]
    }

    #[test]
    fn a_batch_is_delivered_exactly_as_the_same_events_one_by_one() {
        use rtm2_proto::enums::ChannelType;
        let evs = vec![
            message(ChannelType::MESSAGE, "a", 0),
            message(ChannelType::MESSAGE, "a", 1),
            message(ChannelType::MESSAGE, "b", 2),
            message(ChannelType::USER, "a", 3),
            message(ChannelType::MESSAGE, "a", 4),
            Event::TokenPrivilegeWillExpire(None),
            message(ChannelType::MESSAGE, "a", 5),
            message(ChannelType::MESSAGE, "a", 6),
            message(ChannelType::MESSAGE, "b", 7),
        ];
        let mut outcomes = Vec::new();
        for batched in [false, true] {
            let hub = Arc::new(EventHub::default());
            let mut all = hub.listener(100);
            // Room for 3 of channel a's 5 messages: the rest is counted as dropped.
            let mut a = hub.subscription("a", 3);
            let mut b = hub.subscription("b", 100);
            if batched {
                hub.emit_batch(&evs);
            } else {
                for ev in evs.clone() {
                    hub.emit(ev);
                }
            }
            outcomes.push(received(&mut all, &mut a, &mut b));
        }
        let [all, a, b] = &outcomes[1];
        assert_eq!(all, &evs, "the listener gets everything, in order");
        // The overflow notice comes first in the next receive.
        assert_eq!(a, &vec![Event::Overflow { dropped: 2 }, evs[0].clone(), evs[1].clone(), evs[4].clone()]);
        assert_eq!(b, &vec![evs[2].clone(), evs[8].clone()]);
        assert_eq!(outcomes[0], outcomes[1]);
    }

    /// Events given away reach the queues exactly as borrowed ones do, whether they can be
    /// moved (one queue in all) or must be cloned.
    #[test]
    fn owned_batches_are_delivered_as_borrowed_ones() {
        use rtm2_proto::enums::ChannelType;
        let only_a: Vec<Event> = (0..5).map(|i| message(ChannelType::MESSAGE, "a", i)).collect();
        let mixed = vec![
            message(ChannelType::MESSAGE, "a", 0),
            message(ChannelType::MESSAGE, "b", 1),
            message(ChannelType::USER, "a", 2),
            Event::TokenPrivilegeWillExpire(None),
        ];
        // (listeners, subscriptions to "a", to "b")
        for (listeners, subs_a, subs_b) in [(0, 1, 0), (1, 0, 0), (0, 2, 0), (1, 1, 0), (0, 1, 1), (2, 0, 0)] {
            for evs in [&only_a, &mixed] {
                let mut outcomes = Vec::new();
                for owned in [false, true] {
                    let hub = Arc::new(EventHub::default());
                    let mut ls: Vec<_> = (0..listeners).map(|_| hub.listener(3)).collect();
                    let mut a: Vec<_> = (0..subs_a).map(|_| hub.subscription("a", 3)).collect();
                    let mut b: Vec<_> = (0..subs_b).map(|_| hub.subscription("b", 3)).collect();
                    if owned {
                        hub.emit_batch_owned(evs.clone());
                    } else {
                        hub.emit_batch(evs);
                    }
                    let got: Vec<Vec<Event>> = ls
                        .iter_mut()
                        .map(|r| r.try_recv_batch(100))
                        .chain(a.iter_mut().map(|s| s.queue.try_recv_batch(100)))
                        .chain(b.iter_mut().map(|s| s.queue.try_recv_batch(100)))
                        .collect();
                    outcomes.push(got);
                }
                assert_eq!(outcomes[0], outcomes[1], "{listeners} listeners, {subs_a}+{subs_b} subscriptions");
                assert!(outcomes[1].iter().any(|q| !q.is_empty()), "something was delivered");
            }
        }
    }

    /// A batch given to one queue is not copied event by event on its way to the receiver:
    /// the receiver gets the very storage the batch was built in. Batches that meet in the
    /// queue, and takes smaller than what is queued, keep the order.
    #[test]
    fn a_sole_batch_reaches_its_receiver_in_its_own_storage() {
        use rtm2_proto::enums::ChannelType;
        let hub = Arc::new(EventHub::default());
        let a = hub.subscription("a", 100);
        let batch: Vec<Event> = (0..8).map(|i| message(ChannelType::MESSAGE, "a", i)).collect();
        let expected = batch.clone();
        let storage = batch.as_ptr();
        hub.emit_batch_owned(batch);
        let got = a.queue.try_recv_batch(100);
        assert_eq!(got, expected);
        assert_eq!(got.as_ptr(), storage, "the batch's storage was handed over");

        // Two batches queued before a take, then taken in two parts.
        let first: Vec<Event> = (0..5).map(|i| message(ChannelType::MESSAGE, "a", i)).collect();
        let second: Vec<Event> = (5..9).map(|i| message(ChannelType::MESSAGE, "a", i)).collect();
        let all: Vec<Event> = first.iter().chain(&second).cloned().collect();
        hub.emit_batch_owned(first);
        hub.emit_batch_owned(second);
        let head = a.queue.try_recv_batch(3);
        let tail = a.queue.try_recv_batch(100);
        assert_eq!(head, all[..3]);
        assert_eq!(tail, all[3..]);
        assert!(a.queue.try_recv_batch(100).is_empty());
    }

    #[test]
    fn overflow_is_reported_with_the_count() {
        let hub = Arc::new(EventHub::default());
        let mut rx = hub.listener(2);
        for i in 0..5 {
            hub.emit(Event::TokenPrivilegeWillExpire(Some(format!("c{i}"))));
        }
        let got = rx.try_recv_batch(10);
        assert_eq!(got[0], Event::Overflow { dropped: 3 });
        assert_eq!(got[1], Event::TokenPrivilegeWillExpire(Some("c0".into())));
        assert_eq!(got[2], Event::TokenPrivilegeWillExpire(Some("c1".into())));
        assert_eq!(got.len(), 3);
        assert!(rx.try_recv_batch(10).is_empty());
    }

    #[test]
    fn blocking_receive_times_out_and_ends_on_close() {
        let hub = Arc::new(EventHub::default());
        let mut rx = hub.listener(8);
        assert_eq!(rx.blocking_recv_batch(4, Duration::from_millis(10)), Some(vec![]));
        hub.close_listeners();
        assert_eq!(rx.blocking_recv_batch(4, Duration::from_secs(5)), None);
    }
}
