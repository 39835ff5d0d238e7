//! Options, results and events of the SDK.

use crate::shared_str::SharedStr;
use bytes::Bytes;
use rtm2_proto::enums::*;
use rtm2_proto::pb;

/// A message payload: a string (STRING) or bytes (BINARY).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    /// The bytes sent.
    pub data: Bytes,
    /// STRING when built from text, BINARY when built from bytes.
    pub message_type: MessageType,
}

impl From<&str> for Payload {
    fn from(s: &str) -> Self {
        Payload { data: Bytes::copy_from_slice(s.as_bytes()), message_type: MessageType::STRING }
    }
}
impl From<String> for Payload {
    fn from(s: String) -> Self {
        Payload { data: Bytes::from(s.into_bytes()), message_type: MessageType::STRING }
    }
}
impl From<&[u8]> for Payload {
    fn from(b: &[u8]) -> Self {
        Payload { data: Bytes::copy_from_slice(b), message_type: MessageType::BINARY }
    }
}
impl From<Vec<u8>> for Payload {
    fn from(b: Vec<u8>) -> Self {
        Payload { data: Bytes::from(b), message_type: MessageType::BINARY }
    }
}
impl From<Bytes> for Payload {
    fn from(b: Bytes) -> Self {
        Payload { data: b, message_type: MessageType::BINARY }
    }
}

/// Options of `subscribe` (reference defaults: message and presence on).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubscribeOptions {
    /// Receive messages of the channel.
    pub with_message: bool,
    /// Receive presence events (presence service).
    pub with_presence: bool,
    /// Receive channel metadata events (storage service).
    pub with_metadata: bool,
    /// Receive lock events (lock service).
    pub with_lock: bool,
    /// Do not announce this user's join/leave/state to others.
    pub be_quiet: bool,
}

impl Default for SubscribeOptions {
    fn default() -> Self {
        SubscribeOptions {
            with_message: true,
            with_presence: true,
            with_metadata: false,
            with_lock: false,
            be_quiet: false,
        }
    }
}

/// The answer of an operation that returns nothing else (login, publish, unsubscribe, leave,
/// set_lock, …): when the server answered it — agora-rtm-sdk's `{timestamp}` of its responses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Ack {
    /// The server's time of the answer, ms since the epoch (a publish: of the acknowledgement
    /// that covered it; 0 from an older server).
    pub timestamp_ms: u64,
}

impl Ack {
    pub(crate) fn at(timestamp_ms: u64) -> Ack {
        Ack { timestamp_ms }
    }

    pub(crate) fn of(r: &rtm2_proto::pb::Response) -> Ack {
        Ack { timestamp_ms: r.server_time_ms }
    }
}

/// The result of a call that returns data (who is online, a state, metadata, locks, a history
/// page, a lock grant), with when the server answered — agora-rtm-sdk's `timestamp` of its
/// responses. Reads as the data itself (`Deref`); [`into_inner`](Self::into_inner) takes it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Timed<T> {
    /// The data.
    pub value: T,
    /// The server's time of the answer, ms since the epoch.
    pub timestamp_ms: u64,
}

impl<T> Timed<T> {
    pub(crate) fn of(value: T, r: &rtm2_proto::pb::Response) -> Timed<T> {
        Timed { value, timestamp_ms: r.server_time_ms }
    }

    /// The data, without the time.
    pub fn into_inner(self) -> T {
        self.value
    }
}

impl<T> std::ops::Deref for Timed<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

/// Options of `publish`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishOptions {
    /// MESSAGE (a message channel, the default) or USER (the channel is a user id).
    pub channel_type: ChannelType,
    /// Application-defined type, at most 32 bytes; empty = none.
    pub custom_type: String,
    /// Store the message in history (not available yet: fails with 15005).
    pub store_in_history: bool,
}

impl Default for PublishOptions {
    fn default() -> Self {
        PublishOptions { channel_type: ChannelType::MESSAGE, custom_type: String::new(), store_in_history: false }
    }
}

impl PublishOptions {
    /// Options for a peer-to-peer message.
    pub fn user() -> Self {
        PublishOptions { channel_type: ChannelType::USER, ..Default::default() }
    }
    /// Sets the custom type.
    pub fn custom_type(mut self, t: impl Into<String>) -> Self {
        self.custom_type = t.into();
        self
    }
}

/// Options of `StreamChannel::join` (reference defaults: presence on).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinOptions {
    /// Stream-channel token (AccessToken2 with an RTC joinChannel privilege); empty in
    /// development mode.
    pub token: String,
    /// Receive presence events.
    pub with_presence: bool,
    /// Receive channel metadata events.
    pub with_metadata: bool,
    /// Receive lock events.
    pub with_lock: bool,
    /// Do not announce this user.
    pub be_quiet: bool,
}

impl Default for JoinOptions {
    fn default() -> Self {
        JoinOptions {
            token: String::new(),
            with_presence: true,
            with_metadata: false,
            with_lock: false,
            be_quiet: false,
        }
    }
}

/// Options of `join_topic`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinTopicOptions {
    /// Delivery order.
    pub qos: MessageQos,
    /// Priority relative to other topics.
    pub priority: MessagePriority,
    /// Publisher meta shown to others, at most 256 bytes.
    pub meta: String,
    /// Align with media timestamps (accepted; no media here).
    pub sync_with_media: bool,
}

impl Default for JoinTopicOptions {
    fn default() -> Self {
        JoinTopicOptions {
            qos: MessageQos::UNORDERED,
            priority: MessagePriority::NORMAL,
            meta: String::new(),
            sync_with_media: false,
        }
    }
}

/// Options of `publish_topic`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopicMessageOptions {
    /// Application-defined type, at most 32 bytes.
    pub custom_type: String,
    /// Send timestamp (meaningful with sync_with_media).
    pub send_ts: u64,
}

/// One publisher of a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublisherInfo {
    /// The publisher's user id.
    pub user_id: String,
    /// The meta it gave to join_topic.
    pub meta: String,
}

/// A topic and its publishers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    /// Topic name.
    pub topic: String,
    /// Its publishers.
    pub publishers: Vec<PublisherInfo>,
}

impl From<pb::TopicInfo> for TopicInfo {
    fn from(t: pb::TopicInfo) -> Self {
        TopicInfo {
            topic: t.topic,
            publishers: t.publishers.into_iter().map(|p| PublisherInfo { user_id: p.user_id, meta: p.meta }).collect(),
        }
    }
}

/// Result of joining a stream channel: the topics and publishers at that moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinResult {
    /// Channel name.
    pub channel: String,
    /// Snapshot of topics.
    pub topics: Vec<TopicInfo>,
    /// The server's time of the answer, ms since the epoch.
    pub timestamp_ms: u64,
}

/// A user that subscribe_topic could not subscribe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedUser {
    /// The user id.
    pub user_id: String,
    /// Per-user code (6 INVALID_REMOTE_USER, 20003 SUB_USER_EXCEED_LIMITATION).
    pub code: u32,
    /// Why.
    pub reason: String,
}

/// Result of subscribe_topic.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubscribeTopicResult {
    /// Users now subscribed (including ones subscribed before).
    pub succeeded: Vec<String>,
    /// Users that were not subscribed, with the reason.
    pub failed: Vec<FailedUser>,
    /// The server's time of the answer, ms since the epoch.
    pub timestamp_ms: u64,
}

/// The strings of the previous message a connection received (see [`SharedStr`]).
#[derive(Default)]
pub(crate) struct LastStrings {
    channel: crate::shared_str::LastStr,
    topic: crate::shared_str::LastStr,
    publisher: crate::shared_str::LastStr,
    custom_type: crate::shared_str::LastStr,
}

/// A received message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageEvent {
    /// MESSAGE, STREAM or USER.
    pub channel_type: ChannelType,
    /// The channel; for USER messages the receiving user's id (as the reference SDK does).
    pub channel: SharedStr,
    /// The topic (STREAM only).
    pub topic: SharedStr,
    /// Who published it.
    pub publisher: SharedStr,
    /// STRING or BINARY.
    pub message_type: MessageType,
    /// The payload.
    pub payload: Bytes,
    /// Application-defined type.
    pub custom_type: SharedStr,
    /// Server time of receipt, ms since the epoch.
    pub timestamp_ms: u64,
    /// How the payload arrived encrypted (0 once decrypted; see `encryption.rs`).
    pub(crate) encryption: u32,
    /// Stored in the channel's history (`timestamp_ms` is its key there, unique in the channel).
    pub(crate) stored: bool,
    /// Delivered from the channel's history after a reconnect that could not resume: a stored
    /// message published while this client was away, delivered in order before anything newer
    /// (see docs/RELIABILITY.md).
    pub recovered: bool,
}

impl MessageEvent {
    /// The payload as text, if it is a STRING message.
    pub fn text(&self) -> Option<&str> {
        match self.message_type {
            MessageType::STRING => std::str::from_utf8(&self.payload).ok(),
            MessageType::BINARY => None,
        }
    }

    /// From an event read in place, without its payload (the caller splits that off the read
    /// buffer once the event no longer borrows it); strings equal to the previous message's share
    /// its allocation.
    pub(crate) fn from_ref(m: rtm2_proto::fastpath_client::MessageEventRef<'_>, last: &mut LastStrings) -> Self {
        MessageEvent {
            channel_type: ChannelType::from_u32(m.channel_type).unwrap_or(ChannelType::NONE),
            channel: last.channel.get(m.channel),
            topic: last.topic.get(m.topic),
            publisher: last.publisher.get(m.publisher),
            message_type: MessageType::from_u32(m.message_type).unwrap_or(MessageType::BINARY),
            payload: Bytes::new(),
            custom_type: last.custom_type.get(m.custom_type),
            timestamp_ms: m.timestamp_ms,
            encryption: m.encryption,
            stored: m.stored,
            recovered: false,
        }
    }

    pub(crate) fn from_pb(m: pb::MessageEvent) -> Self {
        MessageEvent {
            channel_type: ChannelType::from_u32(m.channel_type).unwrap_or(ChannelType::NONE),
            channel: m.channel.into(),
            topic: m.topic.into(),
            publisher: m.publisher.into(),
            message_type: MessageType::from_u32(m.message_type).unwrap_or(MessageType::BINARY),
            payload: m.payload,
            custom_type: m.custom_type.into(),
            timestamp_ms: m.timestamp_ms,
            encryption: m.encryption,
            stored: m.stored,
            recovered: false,
        }
    }
}

/// A topic event of a stream channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicEvent {
    /// SNAPSHOT (to self, after join), REMOTE_JOIN or REMOTE_LEAVE.
    pub event_type: TopicEventType,
    /// The stream channel.
    pub channel: String,
    /// The user that joined or left (empty for SNAPSHOT).
    pub publisher: String,
    /// Topics concerned (all of them for SNAPSHOT).
    pub topics: Vec<TopicInfo>,
    /// Server time, ms.
    pub timestamp_ms: u64,
}

/// A change of a link's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkStateEvent {
    /// New state.
    pub current: LinkState,
    /// Previous state.
    pub previous: LinkState,
    /// MESSAGE (the client's connection) or STREAM (one stream channel).
    pub service_type: ServiceType,
    /// What caused it.
    pub operation: LinkOperation,
    /// Why.
    pub reason: LinkStateChangeReason,
    /// Details in words.
    pub reason_text: String,
    /// The stream channel (STREAM only).
    pub channel: String,
    /// Channels affected by the change.
    pub affected_channels: Vec<String>,
    /// Channels (and "channel/topic" roles) that could not be restored after a reconnect.
    pub unrestored_channels: Vec<String>,
    /// After a reconnect: whether the session was resumed without loss. When false (the resume
    /// window passed, or the server restarted), messages of `affected_channels` may have been
    /// missed; this event is delivered before anything received after the reconnect.
    pub is_resumed: bool,
    /// Local time, ms.
    pub timestamp_ms: u64,
}

impl LinkStateEvent {
    /// The reason's number (`LinkStateChangeReason`, e.g. 27), as C's `reason_number`,
    /// Python's `reason_number` and Node's `reasonNumber`.
    pub fn reason_number(&self) -> u32 {
        self.reason as u32
    }

    /// The reason's name (e.g. `"SAME_UID_LOGIN"`), as C's `reason_name`, Python's
    /// `reason_name` and Node's `reasonName`. The words are `reason_text`.
    pub fn reason_name(&self) -> &'static str {
        self.reason.name()
    }
}

/// Everything a client reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A message (message channel, user channel, or topic).
    Message(MessageEvent),
    /// A topic event.
    Topic(std::sync::Arc<TopicEvent>),
    /// A presence event.
    Presence(std::sync::Arc<crate::presence::PresenceEvent>),
    /// A storage (metadata) event.
    Storage(std::sync::Arc<crate::storage::StorageEvent>),
    /// A lock event.
    Lock(std::sync::Arc<crate::lock::LockEvent>),
    /// A link-state change.
    LinkState(std::sync::Arc<LinkStateEvent>),
    /// A token will expire soon: `None` = the login token, `Some(ch)` = stream channel `ch`.
    TokenPrivilegeWillExpire(Option<String>),
    /// This receiver's queue was full and `dropped` events were discarded before this one.
    Overflow {
        /// How many events were dropped.
        dropped: u64,
    },
}
