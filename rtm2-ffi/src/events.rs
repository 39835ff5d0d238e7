//! The event structs a listener receives, and their conversion from the core's events.
//!
//! Every pointer in an event is borrowed: valid only until the callback returns. Fields may be
//! added at the end of these structs in later versions (the library allocates them).

use std::ffi::c_char;
use std::ptr;

use rtm2_core::{LinkStateEvent, MessageEvent, TopicEvent};

use crate::results::{CStrList, CTopics, Strings, rtm2_topic_info};

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
    };
    f(&ev)
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
    };
    f(&ev)
}
