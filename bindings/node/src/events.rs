//! Events: conversion to the agora-rtm-sdk payload shapes (presence, storage and lock payloads
//! are built in their service modules), the batch pump (one threadsafe
//! function call per batch) and per-channel subscriptions (async iteration, one Promise per
//! batch).
//!
//! Batches cross to JavaScript in one of two shapes. `Array<NativeEvent>` is one object per
//! event (`startEvents`, `nextBatch`). A [`NativePackedBatch`] (`startPackedEvents`,
//! `nextPackedBatch`, what lib/ uses) carries messages as columns: every distinct string of the
//! batch once, the BINARY payloads in one buffer, numbers in typed arrays. The JS layer then
//! builds each message object itself (lib/index.js `unpack`), which costs far less than
//! building it through napi property by property, one string and one external buffer at a time.

use std::collections::HashMap;
use std::sync::Arc;

use napi::bindgen_prelude::{Either, Float64Array, Object, ToNapiValue, Uint8Array, Uint32Array};
use napi::threadsafe_function::ThreadsafeFunction;
use napi::{Env, Status};
use napi_derive::napi;

use rtm2_core::{Event, EventReceiver, MessageType, Subscription};

use crate::lock::LockEvent;
use crate::op::{self, CancelToken};
use crate::presence::PresenceEvent;
use crate::storage::StorageEvent;

/// Most events handed to JavaScript in one call.
pub(crate) const DEFAULT_BATCH: usize = 1024;

/// A received message (`message` event).
#[napi(object)]
pub struct MessageEvent {
    /// `'MESSAGE'`, `'USER'` or `'STREAM'`.
    pub channel_type: String,
    /// The channel; for USER messages the receiving user's id.
    pub channel_name: String,
    /// The topic (STREAM messages), else `''`.
    pub topic_name: String,
    /// `'STRING'` or `'BINARY'`.
    pub message_type: String,
    /// A string for STRING messages, a Uint8Array for BINARY ones.
    pub message: Either<String, Uint8Array>,
    /// Application-defined type (`''` = none).
    pub custom_type: String,
    /// Who published it.
    pub publisher: String,
    /// Server time, ms since the epoch.
    pub timestamp: f64,
    /// Delivered from the channel's history after a reconnect that could not resume (an rtm2
    /// addition, not in agora-rtm-sdk).
    pub recovered: bool,
}

/// One publisher of a topic.
#[napi(object)]
pub struct PublisherInfo {
    pub publisher_user_id: String,
    pub publisher_meta: String,
}

/// A topic and its publishers.
#[napi(object)]
pub struct TopicInfo {
    pub topic_name: String,
    pub publishers: Vec<PublisherInfo>,
    pub total_publisher: u32,
}

/// A topic event of a stream channel (`topic` event).
#[napi(object)]
pub struct TopicEvent {
    /// `'SNAPSHOT'`, `'REMOTE_JOIN'` or `'REMOTE_LEAVE'`.
    pub event_type: String,
    pub channel_name: String,
    /// The user that joined or left (`''` for SNAPSHOT).
    pub publisher: String,
    pub topic_infos: Vec<TopicInfo>,
    pub total_topics: u32,
    pub timestamp: f64,
}

/// A link-state change (`linkState` event).
#[napi(object)]
pub struct LinkStateEvent {
    /// `'IDLE'`, `'CONNECTING'`, `'CONNECTED'`, `'DISCONNECTED'`, `'SUSPENDED'` or `'FAILED'`.
    pub current_state: String,
    pub previous_state: String,
    /// `'MESSAGE'` (the client's connection) or `'STREAM'` (one stream channel).
    pub service_type: String,
    /// What caused it, e.g. `'LOGIN'`, `'SERVER_REJECT'`.
    pub operation: String,
    /// Why, by number, e.g. `27` (C's and Python's `reason_number`).
    pub reason_number: u32,
    /// Why, by name, e.g. `'LOGIN_SUCCESS'`, `'SAME_UID_LOGIN'` (C's and Python's `reason_name`).
    pub reason_name: String,
    /// Why, in words (may be `''`; C's and Python's `reason_text`).
    pub reason_text: String,
    /// agora-rtm-sdk's field: the same as `reasonName`.
    pub reason_code: String,
    /// agora-rtm-sdk's field: the same as `reasonText`.
    pub reason: String,
    /// The stream channel (STREAM only), else `''`.
    pub channel_name: String,
    pub affected_channels: Vec<String>,
    pub unrestored_channels: Vec<String>,
    pub is_resumed: bool,
    pub timestamp: f64,
}

/// One event of a batch: `kind` says which field is set.
#[napi(object)]
pub struct NativeEvent {
    /// `'message'`, `'topic'`, `'presence'`, `'storage'`, `'lock'`, `'linkState'`,
    /// `'tokenPrivilegeWillExpire'` or `'overflow'`.
    pub kind: String,
    pub message: Option<MessageEvent>,
    pub topic: Option<TopicEvent>,
    pub presence: Option<PresenceEvent>,
    pub storage: Option<StorageEvent>,
    pub lock: Option<LockEvent>,
    pub link_state: Option<LinkStateEvent>,
    /// tokenPrivilegeWillExpire: the stream channel, or `''` for the login token.
    pub channel_name: Option<String>,
    /// overflow: how many events this receiver dropped because its queue was full.
    pub dropped: Option<f64>,
}

fn message(m: &rtm2_core::MessageEvent) -> MessageEvent {
    let message = match m.message_type {
        MessageType::STRING => Either::A(String::from_utf8_lossy(&m.payload).into_owned()),
        MessageType::BINARY => Either::B(Uint8Array::new(m.payload.to_vec())),
    };
    MessageEvent {
        channel_type: m.channel_type.name().to_string(),
        channel_name: m.channel.to_string(),
        topic_name: m.topic.to_string(),
        message_type: m.message_type.name().to_string(),
        message,
        custom_type: m.custom_type.to_string(),
        publisher: m.publisher.to_string(),
        timestamp: m.timestamp_ms as f64,
        recovered: m.recovered,
    }
}

pub(crate) fn topic_info(t: &rtm2_core::TopicInfo) -> TopicInfo {
    TopicInfo {
        topic_name: t.topic.clone(),
        publishers: t
            .publishers
            .iter()
            .map(|p| PublisherInfo { publisher_user_id: p.user_id.clone(), publisher_meta: p.meta.clone() })
            .collect(),
        total_publisher: t.publishers.len() as u32,
    }
}

fn convert(ev: Event) -> NativeEvent {
    let mut out = NativeEvent {
        kind: String::new(),
        message: None,
        topic: None,
        presence: None,
        storage: None,
        lock: None,
        link_state: None,
        channel_name: None,
        dropped: None,
    };
    match ev {
        Event::Message(m) => {
            out.kind = "message".into();
            out.message = Some(message(&m));
        }
        Event::Topic(t) => {
            out.kind = "topic".into();
            out.topic = Some(TopicEvent {
                event_type: t.event_type.name().to_string(),
                channel_name: t.channel.clone(),
                publisher: t.publisher.clone(),
                topic_infos: t.topics.iter().map(topic_info).collect(),
                total_topics: t.topics.len() as u32,
                timestamp: t.timestamp_ms as f64,
            });
        }
        Event::Presence(p) => {
            out.kind = "presence".into();
            out.presence = Some(crate::presence::event(&p));
        }
        Event::Storage(st) => {
            out.kind = "storage".into();
            out.storage = Some(crate::storage::event(&st));
        }
        Event::Lock(l) => {
            out.kind = "lock".into();
            out.lock = Some(crate::lock::event(&l));
        }
        Event::LinkState(l) => {
            out.kind = "linkState".into();
            out.link_state = Some(LinkStateEvent {
                current_state: l.current.name().to_string(),
                previous_state: l.previous.name().to_string(),
                service_type: l.service_type.name().to_string(),
                operation: l.operation.name().to_string(),
                reason_number: l.reason_number(),
                reason_name: l.reason_name().to_string(),
                reason_text: l.reason_text.clone(),
                reason_code: l.reason_name().to_string(),
                reason: l.reason_text.clone(),
                channel_name: l.channel.clone(),
                affected_channels: l.affected_channels.clone(),
                unrestored_channels: l.unrestored_channels.clone(),
                is_resumed: l.is_resumed,
                timestamp: l.timestamp_ms as f64,
            });
        }
        Event::TokenPrivilegeWillExpire(ch) => {
            out.kind = "tokenPrivilegeWillExpire".into();
            out.channel_name = Some(ch.unwrap_or_default());
        }
        Event::Overflow { dropped } => {
            out.kind = "overflow".into();
            out.dropped = Some(dropped as f64);
        }
    }
    out
}

pub(crate) fn convert_batch(batch: Vec<Event>) -> Vec<NativeEvent> {
    batch.into_iter().map(convert).collect()
}

/// Numbers per event in [`NativePackedBatch::rows`].
pub(crate) const PACKED_STRIDE: usize = 8;
/// Row kinds: a BINARY message, a STRING message, another event (the next of `others`).
const KIND_BINARY: u32 = 0;
const KIND_STRING: u32 = 1;
const KIND_OTHER: u32 = 2;

/// A batch of events in columns (see the module comment); lib/index.js `unpack` reads it.
#[napi(object)]
pub struct NativePackedBatch {
    /// 8 numbers per event: the kind (0 BINARY message, 1 STRING message, 2 another event:
    /// the next of `others`); for messages the indices in `strings` of channelType,
    /// channelName, topicName, messageType, customType and publisher; then the end offset of
    /// the payload in `data` (a BINARY payload starts where the previous one ended).
    pub rows: Uint32Array,
    /// Per event: the server time of a message (ms since the epoch), else 0.
    pub timestamps: Float64Array,
    /// Per event: 1 for a message recovered from the channel's history after a reconnect that
    /// could not resume, else 0.
    pub recovered: Uint8Array,
    /// The distinct strings of the batch.
    pub strings: Vec<String>,
    /// The BINARY payloads, back to back.
    pub data: Uint8Array,
    /// The STRING payloads, in order.
    pub texts: Vec<String>,
    /// The events that are not messages, in order.
    pub others: Vec<NativeEvent>,
}

/// The distinct strings of a batch, with the last index of each column as a fast path (the
/// fields of consecutive messages are mostly the same).
struct Strings {
    list: Vec<String>,
    index: HashMap<String, u32>,
    last: [u32; 6],
}

impl Strings {
    fn new() -> Self {
        Strings { list: Vec::new(), index: HashMap::new(), last: [u32::MAX; 6] }
    }

    fn get(&mut self, column: usize, s: &str) -> u32 {
        let last = self.last[column];
        if last != u32::MAX && same(&self.list[last as usize], s) {
            return last;
        }
        let i = match self.index.get(s) {
            Some(&i) => i,
            None => {
                let i = self.list.len() as u32;
                self.list.push(s.to_owned());
                self.index.insert(s.to_owned(), i);
                i
            }
        };
        self.last[column] = i;
        i
    }
}

/// `a == b`, byte by byte: these strings are short, and glibc's vectorised memcmp with its
/// masked loads showed up as the most expensive part of packing in profiles.
#[inline]
fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut diff = 0u8;
    for i in 0..a.len() {
        diff |= a[i] ^ b[i];
    }
    diff == 0
}

pub(crate) fn pack_batch(batch: Vec<Event>) -> NativePackedBatch {
    let n = batch.len();
    let data_len: usize = batch
        .iter()
        .map(|ev| match ev {
            Event::Message(m) if m.message_type == MessageType::BINARY => m.payload.len(),
            _ => 0,
        })
        .sum();
    let mut rows: Vec<u32> = Vec::with_capacity(n * PACKED_STRIDE);
    let mut timestamps: Vec<f64> = Vec::with_capacity(n);
    let mut recovered: Vec<u8> = Vec::with_capacity(n);
    let mut data: Vec<u8> = Vec::with_capacity(data_len);
    let mut strings = Strings::new();
    let mut texts = Vec::new();
    let mut others = Vec::new();
    for ev in batch {
        match ev {
            Event::Message(m) => {
                let kind = match m.message_type {
                    MessageType::STRING => {
                        texts.push(String::from_utf8_lossy(&m.payload).into_owned());
                        KIND_STRING
                    }
                    MessageType::BINARY => {
                        data.extend_from_slice(&m.payload);
                        KIND_BINARY
                    }
                };
                rows.extend_from_slice(&[
                    kind,
                    strings.get(0, m.channel_type.name()),
                    strings.get(1, &m.channel),
                    strings.get(2, &m.topic),
                    strings.get(3, m.message_type.name()),
                    strings.get(4, &m.custom_type),
                    strings.get(5, &m.publisher),
                    data.len() as u32,
                ]);
                timestamps.push(m.timestamp_ms as f64);
                recovered.push(u8::from(m.recovered));
            }
            other => {
                rows.extend_from_slice(&[KIND_OTHER, 0, 0, 0, 0, 0, 0, data.len() as u32]);
                timestamps.push(0.0);
                recovered.push(0);
                others.push(convert(other));
            }
        }
    }
    NativePackedBatch {
        rows: Uint32Array::new(rows),
        timestamps: Float64Array::new(timestamps),
        recovered: Uint8Array::new(recovered),
        strings: strings.list,
        data: Uint8Array::new(data),
        texts,
        others,
    }
}

/// The JS function that receives each batch; a strong reference (it keeps the event loop
/// alive while the pump runs, i.e. while logged in).
pub(crate) type BatchFn = ThreadsafeFunction<Vec<NativeEvent>, (), Vec<NativeEvent>, Status, false>;
/// The same for packed batches.
pub(crate) type PackedBatchFn = ThreadsafeFunction<NativePackedBatch, (), NativePackedBatch, Status, false>;

/// Runs until `stop` is cancelled (then delivers what is queued at that moment and ends) or
/// the client is gone. One batch is in flight at a time: the next is taken from the SDK's
/// bounded queue only after JavaScript handled the previous one, so a slow consumer makes the
/// SDK queue fill up and report an overflow rather than buffering without bound here.
pub(crate) fn start_pump<T: ToNapiValue + Send + 'static>(
    rx: Arc<tokio::sync::Mutex<EventReceiver>>,
    callback: ThreadsafeFunction<T, (), T, Status, false>,
    max: usize,
    convert_batch: fn(Vec<Event>) -> T,
) -> Arc<crate::op::Cancel> {
    let stop = Arc::new(crate::op::Cancel::default());
    let stop2 = stop.clone();
    rtm2_core::runtime().spawn(async move {
        let mut rx = rx.lock().await;
        loop {
            let batch = tokio::select! {
                b = rx.recv_batch(max) => b,
                _ = stop2.cancelled() => break,
            };
            let Some(batch) = batch else { return };
            if callback.call_async_catch(convert_batch(batch)).await.is_err() {
                return;
            }
        }
        loop {
            let batch = rx.try_recv_batch(max);
            if batch.is_empty() || callback.call_async_catch(convert_batch(batch)).await.is_err() {
                return;
            }
        }
    });
    stop
}

/// The messages of one subscribed message channel (`RTM.subscribe` returns it).
#[napi]
pub struct NativeSubscription {
    channel: String,
    timestamp_ms: u64,
    inner: Arc<tokio::sync::Mutex<Option<Subscription>>>,
    closed: Arc<crate::op::Cancel>,
}

impl NativeSubscription {
    pub(crate) fn new(sub: Subscription) -> Self {
        NativeSubscription {
            channel: sub.channel().to_string(),
            timestamp_ms: sub.timestamp_ms(),
            inner: Arc::new(tokio::sync::Mutex::new(Some(sub))),
            closed: Arc::default(),
        }
    }
}

#[napi]
impl NativeSubscription {
    /// The channel.
    #[napi(getter)]
    pub fn channel_name(&self) -> String {
        self.channel.clone()
    }

    /// The server's time of the subscribe's answer, ms since the epoch (agora-rtm-sdk's
    /// `SubscribeResponse.timestamp`).
    #[napi(getter)]
    pub fn timestamp(&self) -> f64 {
        self.timestamp_ms as f64
    }

    /// The next batch of up to `max` events, or `None` once the subscription ended.
    fn next_raw(&self, max: Option<u32>) -> impl std::future::Future<Output = Option<Vec<rtm2_core::Event>>> + use<> {
        let (inner, closed) = (self.inner.clone(), self.closed.clone());
        let max = max.map(|m| m as usize).unwrap_or(DEFAULT_BATCH);
        async move {
            let mut guard = inner.lock().await;
            let sub = guard.as_mut()?;
            tokio::select! {
                b = sub.recv_batch(max) => b,
                _ = closed.cancelled() => None,
            }
        }
    }

    /// Waits for messages and returns up to `max` of them (an `overflow` entry first if this
    /// subscription's queue dropped some), or `null` once the subscription ended (unsubscribe,
    /// logout, close).
    #[napi(ts_return_type = "Promise<Array<NativeEvent> | null>")]
    pub fn next_batch<'e>(
        &self,
        env: &'e Env,
        max: Option<u32>,
        cancel: Option<&CancelToken>,
    ) -> napi::Result<Object<'e>> {
        let next = self.next_raw(max);
        op::promise(env, cancel, async move { Ok(next.await.map(convert_batch)) })
    }

    /// `nextBatch`, packed: resolves with a [`NativePackedBatch`], or `null` once the
    /// subscription ended.
    #[napi(ts_return_type = "Promise<NativePackedBatch | null>")]
    pub fn next_packed_batch<'e>(
        &self,
        env: &'e Env,
        max: Option<u32>,
        cancel: Option<&CancelToken>,
    ) -> napi::Result<Object<'e>> {
        let next = self.next_raw(max);
        op::promise(env, cancel, async move { Ok(next.await.map(pack_batch)) })
    }

    /// Stops local delivery (the server subscription stays until `unsubscribe`); a pending
    /// `nextBatch` resolves with `null`.
    #[napi]
    pub fn close(&self) {
        self.closed.cancel();
        let inner = self.inner.clone();
        rtm2_core::runtime().spawn(async move {
            inner.lock().await.take();
        });
    }
}
