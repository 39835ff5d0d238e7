//! The event structs a listener receives, and their conversion from the core's events.
//!
//! Every pointer in an event is borrowed: valid only until the callback returns. Fields may be
//! added at the end of these structs in later versions (the library allocates them).

use std::ffi::c_char;
use std::ptr;

use rtm2_core::{LinkStateEvent, LockEvent, MessageEvent, PresenceEvent, StorageEvent, TopicEvent};

use crate::lock::{CLocks, rtm2_lock_detail};
use crate::presence::{CUserStates, c_states, rtm2_state_item, rtm2_user_state};
use crate::results::{CStrList, CTopics, Strings, array_ptr, rtm2_topic_info};
use crate::storage::{CMetadata, rtm2_metadata};

/// A received message (message channel, user channel, or stream topic).
#[repr(C)]
pub struct rtm2_message_event {
    /// `RTM2_CHANNEL_TYPE_MESSAGE`, `_STREAM` or `_USER`.
    pub channel_type: u32,
    /// The channel; for USER messages the receiving user's id (as in the reference SDK).
    pub channel: *const c_char,
    /// The topic (STREAM only; `""` otherwise).
    pub topic: *const c_char,
    /// The user that published it.
    pub publisher: *const c_char,
    /// `RTM2_MESSAGE_TYPE_STRING` (payload is UTF-8) or `RTM2_MESSAGE_TYPE_BINARY`.
    pub message_type: u32,
    /// `payload_len` bytes, NOT NUL-terminated (print text with `"%.*s"`).
    pub payload: *const u8,
    /// Number of payload bytes.
    pub payload_len: usize,
    /// The publisher's custom type (`""` if none).
    pub custom_type: *const c_char,
    /// Server time of receipt, milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    /// Delivered from the channel's history after a reconnect that could not resume: a stored
    /// message published while this client was away (in order, before anything newer). Added
    /// in ABI version 2.
    pub recovered: bool,
}

/// A topic event of a stream channel.
#[repr(C)]
pub struct rtm2_topic_event {
    /// `RTM2_TOPIC_EVENT_TYPE_SNAPSHOT` (to this client, after join), `_REMOTE_JOIN` or
    /// `_REMOTE_LEAVE`.
    pub event_type: u32,
    /// The stream channel.
    pub channel: *const c_char,
    /// The user that joined or left topics (`""` for SNAPSHOT).
    pub publisher: *const c_char,
    /// The topics concerned (all of them for SNAPSHOT); NULL when the count is 0.
    pub topics: *const rtm2_topic_info,
    /// Number of entries in `topics`.
    pub topic_count: usize,
    /// Server time, milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
}

/// A change of state of the client's connection (`service_type` MESSAGE) or of one stream
/// channel (`service_type` STREAM).
#[repr(C)]
pub struct rtm2_link_state_event {
    /// The new state (`RTM2_LINK_STATE_*`).
    pub current: u32,
    /// The previous state.
    pub previous: u32,
    /// `RTM2_SERVICE_TYPE_MESSAGE` or `RTM2_SERVICE_TYPE_STREAM`.
    pub service_type: u32,
    /// What caused it (`RTM2_LINK_OPERATION_*`).
    pub operation: u32,
    /// Why (`RTM2_LINK_REASON_*`, e.g. `RTM2_LINK_REASON_SAME_UID_LOGIN`).
    pub reason: u32,
    /// Details in words (may be `""`).
    pub reason_text: *const c_char,
    /// The stream channel (STREAM only; `""` otherwise).
    pub channel: *const c_char,
    /// Channels affected by the change; NULL when the count is 0.
    pub affected_channels: *const *const c_char,
    /// Number of entries in `affected_channels`.
    pub affected_channel_count: usize,
    /// Channels (and `"channel/topic"` roles) that could not be restored after a reconnect;
    /// NULL when the count is 0.
    pub unrestored_channels: *const *const c_char,
    /// Number of entries in `unrestored_channels`.
    pub unrestored_channel_count: usize,
    /// Whether the previous session was resumed without loss.
    pub is_resumed: bool,
    /// Local time, milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    /// The reason's number: the same value as `reason` (the name every binding gives it).
    pub reason_number: u32,
    /// The reason's name, e.g. `"SAME_UID_LOGIN"` (a static string; `rtm2_enum_name` names the
    /// other fields).
    pub reason_name: *const c_char,
}

/// The changes of one presence interval (INTERVAL events).
#[repr(C)]
pub struct rtm2_presence_interval {
    /// Users that joined during the interval; NULL when the count is 0.
    pub joined: *const *const c_char,
    /// Number of entries in `joined`.
    pub joined_count: usize,
    /// Users that left; NULL when the count is 0.
    pub left: *const *const c_char,
    /// Number of entries in `left`.
    pub left_count: usize,
    /// Users that timed out; NULL when the count is 0.
    pub timed_out: *const *const c_char,
    /// Number of entries in `timed_out`.
    pub timed_out_count: usize,
    /// The full state of every user whose state changed; NULL when the count is 0.
    pub states: *const rtm2_user_state,
    /// Number of entries in `states`.
    pub state_count: usize,
    /// Users present at the end of the interval.
    pub total_occupancy: u32,
}

/// A presence event of a channel subscribed / joined with `WITH_PRESENCE`.
#[repr(C)]
pub struct rtm2_presence_event {
    /// `RTM2_PRESENCE_EVENT_TYPE_SNAPSHOT` (to this client after subscribe/join: everyone
    /// present, including itself), `_INTERVAL`, `_REMOTE_JOIN`, `_REMOTE_LEAVE`,
    /// `_REMOTE_TIMEOUT` or `_REMOTE_STATE_CHANGED`.
    pub event_type: u32,
    /// `RTM2_CHANNEL_TYPE_MESSAGE` or `_STREAM`.
    pub channel_type: u32,
    /// The channel.
    pub channel: *const c_char,
    /// The user the event is about (`""` for SNAPSHOT and INTERVAL).
    pub publisher: *const c_char,
    /// REMOTE_STATE_CHANGED: the publisher's full state, sorted by key; NULL when the count is 0.
    pub states: *const rtm2_state_item,
    /// Number of entries in `states`.
    pub state_count: usize,
    /// SNAPSHOT: the users present with their states; NULL when the count is 0.
    pub snapshot: *const rtm2_user_state,
    /// Number of entries in `snapshot`.
    pub snapshot_count: usize,
    /// INTERVAL: the aggregated changes; NULL for the other types.
    pub interval: *const rtm2_presence_interval,
    /// Server time, milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
}

/// A storage event: the whole metadata set of a channel (subscribed / joined with
/// `WITH_METADATA`) or of a user (`rtm2_storage_subscribe_user_metadata`).
#[repr(C)]
pub struct rtm2_storage_event {
    /// `RTM2_STORAGE_EVENT_TYPE_SNAPSHOT` (when subscribing) or `_UPDATE` (after a change).
    pub event_type: u32,
    /// `RTM2_STORAGE_TYPE_CHANNEL` or `RTM2_STORAGE_TYPE_USER`.
    pub storage_type: u32,
    /// The channel's type for channel metadata; `RTM2_CHANNEL_TYPE_NONE` for user metadata.
    pub channel_type: u32,
    /// The channel name or the user id.
    pub target: *const c_char,
    /// Who wrote (`""` for SNAPSHOT).
    pub publisher: *const c_char,
    /// The whole set after the change. Never NULL.
    pub data: *const rtm2_metadata,
    /// Server time, milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
}

/// A lock event of a channel subscribed / joined with `WITH_LOCK` (EXPIRED also reaches the
/// former owner without it).
#[repr(C)]
pub struct rtm2_lock_event {
    /// `RTM2_LOCK_EVENT_TYPE_SNAPSHOT`, `_SET`, `_REMOVED`, `_ACQUIRED`, `_RELEASED` or
    /// `_EXPIRED`.
    pub event_type: u32,
    /// `RTM2_CHANNEL_TYPE_MESSAGE` or `_STREAM`.
    pub channel_type: u32,
    /// The channel.
    pub channel: *const c_char,
    /// The lock (`""` for SNAPSHOT).
    pub lock_name: *const c_char,
    /// The lock's ttl, seconds.
    pub ttl_s: u32,
    /// The owner concerned: the new owner for ACQUIRED, the former one for RELEASED and EXPIRED.
    pub owner: *const c_char,
    /// Who caused the event (e.g. the revoker of a RELEASED).
    pub publisher: *const c_char,
    /// SNAPSHOT: every lock of the channel; NULL when the count is 0.
    pub snapshot: *const rtm2_lock_detail,
    /// Number of entries in `snapshot`.
    pub snapshot_count: usize,
    /// Server time, milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    /// ACQUIRED: the new grant's fencing token; RELEASED, EXPIRED, REMOVED: the token of the
    /// grant that ended (0 if the lock was free); 0 for SET and SNAPSHOT.
    pub fencing_token: u64,
}

pub(crate) fn with_message(m: &MessageEvent, f: impl FnOnce(&rtm2_message_event)) {
    let mut s = Strings::default();
    let ev = rtm2_message_event {
        channel_type: m.channel_type as u32,
        channel: s.add(&m.channel),
        topic: s.add(&m.topic),
        publisher: s.add(&m.publisher),
        message_type: m.message_type as u32,
        payload: if m.payload.is_empty() { ptr::null() } else { m.payload.as_ptr() },
        payload_len: m.payload.len(),
        custom_type: s.add(&m.custom_type),
        timestamp_ms: m.timestamp_ms,
        recovered: m.recovered,
    };
    f(&ev)
}

/// Most messages handed to `on_message_batch` at once.
pub(crate) const MESSAGE_BATCH: usize = 256;

/// A run of messages in C form for `on_message_batch`: the strings of consecutive messages that
/// repeat (one publisher, one channel) are converted once.
#[derive(Default)]
pub(crate) struct CMessageBatch {
    strings: Strings,
    last: [(String, *const c_char); 4],
    events: Vec<rtm2_message_event>,
}

impl CMessageBatch {
    fn string(&mut self, slot: usize, v: &str) -> *const c_char {
        if self.last[slot].1.is_null() || self.last[slot].0 != v {
            let p = self.strings.add(v);
            self.last[slot] = (v.to_string(), p);
        }
        self.last[slot].1
    }

    pub(crate) fn push(&mut self, m: &MessageEvent) {
        let ev = rtm2_message_event {
            channel_type: m.channel_type as u32,
            channel: self.string(0, &m.channel),
            topic: self.string(1, &m.topic),
            publisher: self.string(2, &m.publisher),
            message_type: m.message_type as u32,
            payload: if m.payload.is_empty() { ptr::null() } else { m.payload.as_ptr() },
            payload_len: m.payload.len(),
            custom_type: self.string(3, &m.custom_type),
            timestamp_ms: m.timestamp_ms,
            recovered: m.recovered,
        };
        self.events.push(ev);
    }

    pub(crate) fn events(&self) -> &[rtm2_message_event] {
        &self.events
    }
}

pub(crate) fn with_topic(t: &TopicEvent, f: impl FnOnce(&rtm2_topic_event)) {
    let mut s = Strings::default();
    let topics = CTopics::new(&t.topics);
    let ev = rtm2_topic_event {
        event_type: t.event_type as u32,
        channel: s.add(&t.channel),
        publisher: s.add(&t.publisher),
        topics: topics.ptr(),
        topic_count: topics.len(),
        timestamp_ms: t.timestamp_ms,
    };
    f(&ev)
}

pub(crate) fn with_link_state(l: &LinkStateEvent, f: impl FnOnce(&rtm2_link_state_event)) {
    let mut s = Strings::default();
    let affected = CStrList::new(&l.affected_channels);
    let unrestored = CStrList::new(&l.unrestored_channels);
    let ev = rtm2_link_state_event {
        current: l.current as u32,
        previous: l.previous as u32,
        service_type: l.service_type as u32,
        operation: l.operation as u32,
        reason: l.reason as u32,
        reason_text: s.add(&l.reason_text),
        channel: s.add(&l.channel),
        affected_channels: affected.ptr(),
        affected_channel_count: affected.len(),
        unrestored_channels: unrestored.ptr(),
        unrestored_channel_count: unrestored.len(),
        is_resumed: l.is_resumed,
        timestamp_ms: l.timestamp_ms,
        reason_number: l.reason_number(),
        reason_name: crate::names::enum_name_ptr("LinkStateChangeReason", l.reason_number()),
    };
    f(&ev)
}

pub(crate) fn with_presence(p: &PresenceEvent, f: impl FnOnce(&rtm2_presence_event)) {
    let mut s = Strings::default();
    let states = c_states(&mut s, &p.states);
    let snapshot = CUserStates::new(&p.snapshot);
    let lists = p.interval.as_ref().map(|i| {
        (CStrList::new(&i.joined), CStrList::new(&i.left), CStrList::new(&i.timed_out), CUserStates::new(&i.states))
    });
    let interval =
        p.interval.as_ref().zip(lists.as_ref()).map(|(i, (joined, left, timed_out, changed))| rtm2_presence_interval {
            joined: joined.ptr(),
            joined_count: joined.len(),
            left: left.ptr(),
            left_count: left.len(),
            timed_out: timed_out.ptr(),
            timed_out_count: timed_out.len(),
            states: changed.ptr(),
            state_count: changed.len(),
            total_occupancy: i.total_occupancy,
        });
    let ev = rtm2_presence_event {
        event_type: p.event_type as u32,
        channel_type: p.channel_type as u32,
        channel: s.add(&p.channel),
        publisher: s.add(&p.publisher),
        states: array_ptr(&states),
        state_count: states.len(),
        snapshot: snapshot.ptr(),
        snapshot_count: snapshot.len(),
        interval: interval.as_ref().map_or(ptr::null(), |i| i as *const rtm2_presence_interval),
        timestamp_ms: p.timestamp_ms,
    };
    f(&ev)
}

pub(crate) fn with_storage(e: &StorageEvent, f: impl FnOnce(&rtm2_storage_event)) {
    let mut s = Strings::default();
    let data = CMetadata::new(&e.data);
    let ev = rtm2_storage_event {
        event_type: e.event_type as u32,
        storage_type: e.storage_type as u32,
        channel_type: e.channel_type as u32,
        target: s.add(&e.target),
        publisher: s.add(&e.publisher),
        data: data.view(),
        timestamp_ms: e.timestamp_ms,
    };
    f(&ev)
}

pub(crate) fn with_lock(l: &LockEvent, f: impl FnOnce(&rtm2_lock_event)) {
    let mut s = Strings::default();
    let snapshot = CLocks::new(&l.snapshot);
    let ev = rtm2_lock_event {
        event_type: l.event_type as u32,
        channel_type: l.channel_type as u32,
        channel: s.add(&l.channel),
        lock_name: s.add(&l.lock_name),
        ttl_s: l.ttl_s,
        owner: s.add(&l.owner),
        publisher: s.add(&l.publisher),
        snapshot: snapshot.ptr(),
        snapshot_count: snapshot.len(),
        timestamp_ms: l.timestamp_ms,
        fencing_token: l.fencing_token,
    };
    f(&ev)
}
