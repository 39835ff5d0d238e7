//! Event delivery: bounded per-receiver queues with explicit overflow reporting.
//!
//! Every receiver ([`EventReceiver`], [`Subscription`]) owns a bounded queue. When it is full,
//! new events are counted and dropped, and the receiver's next event is
//! [`Event::Overflow`] with that count — never a silent loss. Queues support async receive,
//! batched receive (bindings cross their boundary once per batch) and blocking receive (for a
//! C dispatcher thread).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};
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
    state: Mutex<QueueState>,
    cap: usize,
    dropped: AtomicU64,
    notify: Notify,
    cond: Condvar,
}

impl EventQueue {
    pub(crate) fn new(cap: usize) -> Arc<Self> {
        Arc::new(EventQueue {
            state: Mutex::new(QueueState { items: VecDeque::new(), closed: false, blocked: 0 }),
            cap: cap.max(1),
            dropped: AtomicU64::new(0),
            notify: Notify::new(),
            cond: Condvar::new(),
        })
    }

    pub(crate) fn push(&self, ev: Event) {
        let blocked = {
            let mut st = self.state.lock().unwrap();
            if st.closed {
                return;
            }
            if st.items.len() >= self.cap {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                return;
            }
            st.items.push_back(ev);
            st.blocked > 0
        };
        self.notify.notify_one();
        if blocked {
            self.cond.notify_one();
        }
    }

    pub(crate) fn close(&self) {
        self.state.lock().unwrap().closed = true;
        self.notify.notify_one();
        self.cond.notify_all();
    }

    /// Takes up to `max` events (an overflow notice first), or None when closed and empty.
    fn take(&self, st: &mut QueueState, max: usize, out: &mut Vec<Event>) -> bool {
        let dropped = self.dropped.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            out.push(Event::Overflow { dropped });
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
                let mut st = self.state.lock().unwrap();
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
        let mut st = self.state.lock().unwrap();
        self.take(&mut st, max.max(1), &mut out);
        out
    }

    fn blocking_recv_batch(&self, max: usize, timeout: Duration) -> Option<Vec<Event>> {
        let deadline = Instant::now() + timeout;
        let mut out = Vec::new();
        let mut st = self.state.lock().unwrap();
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
            st = self.cond.wait_timeout(st, deadline - now).unwrap().0;
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
}

impl Subscription {
    /// The channel.
    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// The next message, or `None` when the subscription ended. An overflow of this
    /// subscription's queue is reported as an `Err(dropped)`.
    pub async fn recv(&mut self) -> Option<Result<Arc<MessageEvent>, u64>> {
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
        Subscription { channel: channel.to_string(), queue, hub: self.clone() }
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

    pub(crate) fn emit(&self, ev: Event) {
        if let Event::Message(m) = &ev
            && m.channel_type == rtm2_proto::enums::ChannelType::MESSAGE
            && let Some(v) = self.channels.read().unwrap().get(&m.channel)
        {
            for q in v {
                q.push(ev.clone());
            }
        }
        for q in self.listeners.read().unwrap().iter() {
            q.push(ev.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
