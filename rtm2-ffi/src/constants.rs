//! Numeric constants of the C API. Enumerations cross the boundary as `uint32_t` with these
//! values (identical to the RTM 2 reference values); the SDK never takes a C `enum` as input.

// Channel types (`rtm2_message_event.channel_type`, `rtm2_publish_options.channel_type`).

/// ChannelType::NONE.
pub const RTM2_CHANNEL_TYPE_NONE: u32 = 0;
/// ChannelType::MESSAGE.
pub const RTM2_CHANNEL_TYPE_MESSAGE: u32 = 1;
/// ChannelType::STREAM.
pub const RTM2_CHANNEL_TYPE_STREAM: u32 = 2;
/// ChannelType::USER.
pub const RTM2_CHANNEL_TYPE_USER: u32 = 3;

// Payload types.

/// MessageType::BINARY.
pub const RTM2_MESSAGE_TYPE_BINARY: u32 = 0;
/// MessageType::STRING.
pub const RTM2_MESSAGE_TYPE_STRING: u32 = 1;

// End-to-end encryption (`rtm2_config_set_encryption`).

/// EncryptionMode::NONE: no encryption (the default).
pub const RTM2_ENCRYPTION_MODE_NONE: u32 = 0;
/// EncryptionMode::AES_128_GCM.
pub const RTM2_ENCRYPTION_MODE_AES_128_GCM: u32 = 1;
/// EncryptionMode::AES_256_GCM.
pub const RTM2_ENCRYPTION_MODE_AES_256_GCM: u32 = 2;
/// The longest salt of `rtm2_config_set_encryption`, in bytes (a shorter one is zero-padded).
pub const RTM2_ENCRYPTION_SALT_MAX_LEN: usize = 32;
const _: () = assert!(RTM2_ENCRYPTION_SALT_MAX_LEN == rtm2_core::ENCRYPTION_SALT_LEN);

// Delivery order of a topic (`rtm2_join_topic_options.qos`).

/// MessageQos::UNORDERED.
pub const RTM2_MESSAGE_QOS_UNORDERED: u32 = 0;
/// MessageQos::ORDERED.
pub const RTM2_MESSAGE_QOS_ORDERED: u32 = 1;

// Topic priorities (`rtm2_join_topic_options.priority`).

/// MessagePriority::HIGHEST.
pub const RTM2_MESSAGE_PRIORITY_HIGHEST: u32 = 0;
/// MessagePriority::HIGH.
pub const RTM2_MESSAGE_PRIORITY_HIGH: u32 = 1;
/// MessagePriority::NORMAL.
pub const RTM2_MESSAGE_PRIORITY_NORMAL: u32 = 4;
/// MessagePriority::LOW.
pub const RTM2_MESSAGE_PRIORITY_LOW: u32 = 8;

// Topic event types (`rtm2_topic_event.event_type`).

/// TopicEventType::NONE.
pub const RTM2_TOPIC_EVENT_TYPE_NONE: u32 = 0;
/// TopicEventType::SNAPSHOT.
pub const RTM2_TOPIC_EVENT_TYPE_SNAPSHOT: u32 = 1;
/// TopicEventType::REMOTE_JOIN.
pub const RTM2_TOPIC_EVENT_TYPE_REMOTE_JOIN: u32 = 2;
/// TopicEventType::REMOTE_LEAVE.
pub const RTM2_TOPIC_EVENT_TYPE_REMOTE_LEAVE: u32 = 3;

// Presence event types (`rtm2_presence_event.event_type`).

/// PresenceEventType::NONE.
pub const RTM2_PRESENCE_EVENT_TYPE_NONE: u32 = 0;
/// PresenceEventType::SNAPSHOT: everyone present, including this client (after subscribe/join).
pub const RTM2_PRESENCE_EVENT_TYPE_SNAPSHOT: u32 = 1;
/// PresenceEventType::INTERVAL: aggregated changes (above the announce threshold).
pub const RTM2_PRESENCE_EVENT_TYPE_INTERVAL: u32 = 2;
/// PresenceEventType::REMOTE_JOIN.
pub const RTM2_PRESENCE_EVENT_TYPE_REMOTE_JOIN: u32 = 3;
/// PresenceEventType::REMOTE_LEAVE.
pub const RTM2_PRESENCE_EVENT_TYPE_REMOTE_LEAVE: u32 = 4;
/// PresenceEventType::REMOTE_TIMEOUT: the user's connection vanished for its presence timeout.
pub const RTM2_PRESENCE_EVENT_TYPE_REMOTE_TIMEOUT: u32 = 5;
/// PresenceEventType::REMOTE_STATE_CHANGED: `states` holds the user's full state.
pub const RTM2_PRESENCE_EVENT_TYPE_REMOTE_STATE_CHANGED: u32 = 6;
/// PresenceEventType::ERROR_OUT_OF_SERVICE.
pub const RTM2_PRESENCE_EVENT_TYPE_ERROR_OUT_OF_SERVICE: u32 = 7;

// Whose metadata (`rtm2_storage_event.storage_type`).

/// StorageType::NONE.
pub const RTM2_STORAGE_TYPE_NONE: u32 = 0;
/// StorageType::USER: a user's metadata.
pub const RTM2_STORAGE_TYPE_USER: u32 = 1;
/// StorageType::CHANNEL: a channel's metadata.
pub const RTM2_STORAGE_TYPE_CHANNEL: u32 = 2;

// Storage event types (`rtm2_storage_event.event_type`; the service sends the whole set, so
// only SNAPSHOT and UPDATE occur).

/// StorageEventType::NONE.
pub const RTM2_STORAGE_EVENT_TYPE_NONE: u32 = 0;
/// StorageEventType::SNAPSHOT: the whole set, when subscribing.
pub const RTM2_STORAGE_EVENT_TYPE_SNAPSHOT: u32 = 1;
/// StorageEventType::SET (incremental mode only; not sent).
pub const RTM2_STORAGE_EVENT_TYPE_SET: u32 = 2;
/// StorageEventType::UPDATE: the whole set after a change.
pub const RTM2_STORAGE_EVENT_TYPE_UPDATE: u32 = 3;
/// StorageEventType::REMOVE (incremental mode only; not sent).
pub const RTM2_STORAGE_EVENT_TYPE_REMOVE: u32 = 4;

// Lock event types (`rtm2_lock_event.event_type`).

/// LockEventType::NONE.
pub const RTM2_LOCK_EVENT_TYPE_NONE: u32 = 0;
/// LockEventType::SNAPSHOT: every lock of the channel (after subscribe/join with locks).
pub const RTM2_LOCK_EVENT_TYPE_SNAPSHOT: u32 = 1;
/// LockEventType::SET: a lock was defined.
pub const RTM2_LOCK_EVENT_TYPE_SET: u32 = 2;
/// LockEventType::REMOVED: a lock was removed.
pub const RTM2_LOCK_EVENT_TYPE_REMOVED: u32 = 3;
/// LockEventType::ACQUIRED: `owner` took the lock.
pub const RTM2_LOCK_EVENT_TYPE_ACQUIRED: u32 = 4;
/// LockEventType::RELEASED: `owner` (the former owner) no longer holds it.
pub const RTM2_LOCK_EVENT_TYPE_RELEASED: u32 = 5;
/// LockEventType::EXPIRED: to the former owner: its lock was freed while it was away longer
/// than the lock's ttl (also without `WITH_LOCK`).
pub const RTM2_LOCK_EVENT_TYPE_EXPIRED: u32 = 6;

// Which link a link-state event is about (`rtm2_link_state_event.service_type`).

/// ServiceType::NONE.
pub const RTM2_SERVICE_TYPE_NONE: u32 = 0;
/// ServiceType::MESSAGE.
pub const RTM2_SERVICE_TYPE_MESSAGE: u32 = 1;
/// ServiceType::STREAM.
pub const RTM2_SERVICE_TYPE_STREAM: u32 = 2;

// Link states (`rtm2_link_state_event.current`/`previous`, `rtm2_client_get_link_state`).

/// LinkState::IDLE.
pub const RTM2_LINK_STATE_IDLE: u32 = 0;
/// LinkState::CONNECTING.
pub const RTM2_LINK_STATE_CONNECTING: u32 = 1;
/// LinkState::CONNECTED.
pub const RTM2_LINK_STATE_CONNECTED: u32 = 2;
/// LinkState::DISCONNECTED.
pub const RTM2_LINK_STATE_DISCONNECTED: u32 = 3;
/// LinkState::SUSPENDED.
pub const RTM2_LINK_STATE_SUSPENDED: u32 = 4;
/// LinkState::FAILED.
pub const RTM2_LINK_STATE_FAILED: u32 = 5;

// What caused a link-state change (`rtm2_link_state_event.operation`).

/// LinkOperation::LOGIN.
pub const RTM2_LINK_OPERATION_LOGIN: u32 = 0;
/// LinkOperation::LOGOUT.
pub const RTM2_LINK_OPERATION_LOGOUT: u32 = 1;
/// LinkOperation::JOIN.
pub const RTM2_LINK_OPERATION_JOIN: u32 = 2;
/// LinkOperation::LEAVE.
pub const RTM2_LINK_OPERATION_LEAVE: u32 = 3;
/// LinkOperation::SERVER_REJECT.
pub const RTM2_LINK_OPERATION_SERVER_REJECT: u32 = 4;
/// LinkOperation::AUTO_RECONNECT.
pub const RTM2_LINK_OPERATION_AUTO_RECONNECT: u32 = 5;
/// LinkOperation::RECONNECTED.
pub const RTM2_LINK_OPERATION_RECONNECTED: u32 = 6;
/// LinkOperation::HEARTBEAT_TIMEOUT.
pub const RTM2_LINK_OPERATION_HEARTBEAT_TIMEOUT: u32 = 7;
/// LinkOperation::SERVER_TIMEOUT.
pub const RTM2_LINK_OPERATION_SERVER_TIMEOUT: u32 = 8;
/// LinkOperation::NETWORK_CHANGE.
pub const RTM2_LINK_OPERATION_NETWORK_CHANGE: u32 = 9;

// Why a link state changed (`rtm2_link_state_event.reason`).

/// LinkStateChangeReason::UNKNOWN.
pub const RTM2_LINK_REASON_UNKNOWN: u32 = 0;
/// LinkStateChangeReason::LOGIN.
pub const RTM2_LINK_REASON_LOGIN: u32 = 1;
/// LinkStateChangeReason::LOGIN_SUCCESS.
pub const RTM2_LINK_REASON_LOGIN_SUCCESS: u32 = 2;
/// LinkStateChangeReason::LOGIN_TIMEOUT.
pub const RTM2_LINK_REASON_LOGIN_TIMEOUT: u32 = 3;
/// LinkStateChangeReason::LOGIN_NOT_AUTHORIZED.
pub const RTM2_LINK_REASON_LOGIN_NOT_AUTHORIZED: u32 = 4;
/// LinkStateChangeReason::LOGIN_REJECTED.
pub const RTM2_LINK_REASON_LOGIN_REJECTED: u32 = 5;
/// LinkStateChangeReason::RELOGIN.
pub const RTM2_LINK_REASON_RELOGIN: u32 = 6;
/// LinkStateChangeReason::LOGOUT.
pub const RTM2_LINK_REASON_LOGOUT: u32 = 7;
/// LinkStateChangeReason::AUTO_RECONNECT.
pub const RTM2_LINK_REASON_AUTO_RECONNECT: u32 = 8;
/// LinkStateChangeReason::RECONNECT_TIMEOUT.
pub const RTM2_LINK_REASON_RECONNECT_TIMEOUT: u32 = 9;
/// LinkStateChangeReason::RECONNECT_SUCCESS.
pub const RTM2_LINK_REASON_RECONNECT_SUCCESS: u32 = 10;
/// LinkStateChangeReason::JOIN.
pub const RTM2_LINK_REASON_JOIN: u32 = 11;
/// LinkStateChangeReason::JOIN_SUCCESS.
pub const RTM2_LINK_REASON_JOIN_SUCCESS: u32 = 12;
/// LinkStateChangeReason::JOIN_FAILED.
pub const RTM2_LINK_REASON_JOIN_FAILED: u32 = 13;
/// LinkStateChangeReason::REJOIN.
pub const RTM2_LINK_REASON_REJOIN: u32 = 14;
/// LinkStateChangeReason::LEAVE.
pub const RTM2_LINK_REASON_LEAVE: u32 = 15;
/// LinkStateChangeReason::INVALID_TOKEN.
pub const RTM2_LINK_REASON_INVALID_TOKEN: u32 = 16;
/// LinkStateChangeReason::TOKEN_EXPIRED.
pub const RTM2_LINK_REASON_TOKEN_EXPIRED: u32 = 17;
/// LinkStateChangeReason::INCONSISTENT_APP_ID.
pub const RTM2_LINK_REASON_INCONSISTENT_APP_ID: u32 = 18;
/// LinkStateChangeReason::INVALID_CHANNEL_NAME.
pub const RTM2_LINK_REASON_INVALID_CHANNEL_NAME: u32 = 19;
/// LinkStateChangeReason::INVALID_USER_ID.
pub const RTM2_LINK_REASON_INVALID_USER_ID: u32 = 20;
/// LinkStateChangeReason::NOT_INITIALIZED.
pub const RTM2_LINK_REASON_NOT_INITIALIZED: u32 = 21;
/// LinkStateChangeReason::RTM_SERVICE_NOT_CONNECTED.
pub const RTM2_LINK_REASON_RTM_SERVICE_NOT_CONNECTED: u32 = 22;
/// LinkStateChangeReason::CHANNEL_INSTANCE_EXCEED_LIMITATION.
pub const RTM2_LINK_REASON_CHANNEL_INSTANCE_EXCEED_LIMITATION: u32 = 23;
/// LinkStateChangeReason::OPERATION_RATE_EXCEED_LIMITATION.
pub const RTM2_LINK_REASON_OPERATION_RATE_EXCEED_LIMITATION: u32 = 24;
/// LinkStateChangeReason::CHANNEL_IN_ERROR_STATE.
pub const RTM2_LINK_REASON_CHANNEL_IN_ERROR_STATE: u32 = 25;
/// LinkStateChangeReason::PRESENCE_NOT_CONNECTED.
pub const RTM2_LINK_REASON_PRESENCE_NOT_CONNECTED: u32 = 26;
/// LinkStateChangeReason::SAME_UID_LOGIN.
pub const RTM2_LINK_REASON_SAME_UID_LOGIN: u32 = 27;
/// LinkStateChangeReason::KICKED_OUT_BY_SERVER.
pub const RTM2_LINK_REASON_KICKED_OUT_BY_SERVER: u32 = 28;
/// LinkStateChangeReason::KEEP_ALIVE_TIMEOUT.
pub const RTM2_LINK_REASON_KEEP_ALIVE_TIMEOUT: u32 = 29;
/// LinkStateChangeReason::CONNECTION_ERROR.
pub const RTM2_LINK_REASON_CONNECTION_ERROR: u32 = 30;
/// LinkStateChangeReason::PRESENCE_NOT_READY.
pub const RTM2_LINK_REASON_PRESENCE_NOT_READY: u32 = 31;
/// LinkStateChangeReason::NETWORK_CHANGE.
pub const RTM2_LINK_REASON_NETWORK_CHANGE: u32 = 32;
/// LinkStateChangeReason::SERVICE_NOT_SUPPORTED.
pub const RTM2_LINK_REASON_SERVICE_NOT_SUPPORTED: u32 = 33;
/// LinkStateChangeReason::STREAM_CHANNEL_NOT_AVAILABLE.
pub const RTM2_LINK_REASON_STREAM_CHANNEL_NOT_AVAILABLE: u32 = 34;
/// LinkStateChangeReason::STORAGE_NOT_AVAILABLE.
pub const RTM2_LINK_REASON_STORAGE_NOT_AVAILABLE: u32 = 35;
/// LinkStateChangeReason::LOCK_NOT_AVAILABLE.
pub const RTM2_LINK_REASON_LOCK_NOT_AVAILABLE: u32 = 36;
/// LinkStateChangeReason::LOGIN_TOO_FREQUENT.
pub const RTM2_LINK_REASON_LOGIN_TOO_FREQUENT: u32 = 37;

// Per-user codes in `rtm2_failed_user.code` (subscribe_topic).
/// The user id is not valid or the user is not a publisher of the topic.
pub const RTM2_TOPIC_USER_INVALID_REMOTE_USER: u32 = 6;
/// Subscribing this user would pass the limit of 64 publishers per topic.
pub const RTM2_TOPIC_USER_SUB_USER_EXCEED_LIMITATION: u32 = 20003;

// Flags of `rtm2_client_subscribe` (OR them together).
/// Receive the channel's messages.
pub const RTM2_SUBSCRIBE_WITH_MESSAGE: u32 = 1;
/// Be present in the channel and receive its presence events (`on_presence`).
pub const RTM2_SUBSCRIBE_WITH_PRESENCE: u32 = 2;
/// Receive the channel's metadata events (`on_storage`: a SNAPSHOT, then UPDATEs).
pub const RTM2_SUBSCRIBE_WITH_METADATA: u32 = 4;
/// Receive the channel's lock events (`on_lock`: a SNAPSHOT, then changes).
pub const RTM2_SUBSCRIBE_WITH_LOCK: u32 = 8;
/// Do not announce this user's join/leave/state to others, and stay hidden from
/// `rtm2_presence_get_online_users` / `rtm2_presence_get_user_channels`.
pub const RTM2_SUBSCRIBE_BE_QUIET: u32 = 16;
/// The reference defaults: messages and presence.
pub const RTM2_SUBSCRIBE_DEFAULT: u32 = 3;

// Flags of `rtm2_stream_channel_join` (OR them together).
/// Be present in the channel and receive its presence events.
pub const RTM2_JOIN_WITH_PRESENCE: u32 = 2;
/// Receive the channel's metadata events.
pub const RTM2_JOIN_WITH_METADATA: u32 = 4;
/// Receive the channel's lock events.
pub const RTM2_JOIN_WITH_LOCK: u32 = 8;
/// Do not announce this user, and stay hidden from who-now / where-now.
pub const RTM2_JOIN_BE_QUIET: u32 = 16;
/// The reference defaults: presence.
pub const RTM2_JOIN_DEFAULT: u32 = 2;

// Log levels of `rtm2_set_log_callback`.
/// Very detailed.
pub const RTM2_LOG_TRACE: i32 = 0;
/// Debugging.
pub const RTM2_LOG_DEBUG: i32 = 1;
/// Normal operation.
pub const RTM2_LOG_INFO: i32 = 2;
/// Something unexpected that the SDK handled.
pub const RTM2_LOG_WARN: i32 = 3;
/// An error.
pub const RTM2_LOG_ERROR: i32 = 4;

#[cfg(test)]
mod tests {
    use rtm2_core::*;

    /// Every `RTM2_<FAMILY>_<NAME>: u32 = N` constant names the core's value N, and every core
    /// value below 64 has its constant.
    #[test]
    fn constants_match_the_core_enumerations() {
        let src = include_str!("constants.rs");
        type Lookup = fn(u32) -> Option<&'static str>;
        let fams: &[(&str, Lookup)] = &[
            ("CHANNEL_TYPE", |v| ChannelType::from_u32(v).map(|x| x.name())),
            ("MESSAGE_TYPE", |v| MessageType::from_u32(v).map(|x| x.name())),
            ("ENCRYPTION_MODE", |v| EncryptionMode::from_u32(v).map(|x| x.name())),
            ("MESSAGE_QOS", |v| MessageQos::from_u32(v).map(|x| x.name())),
            ("MESSAGE_PRIORITY", |v| MessagePriority::from_u32(v).map(|x| x.name())),
            ("TOPIC_EVENT_TYPE", |v| TopicEventType::from_u32(v).map(|x| x.name())),
            ("SERVICE_TYPE", |v| ServiceType::from_u32(v).map(|x| x.name())),
            ("LINK_STATE", |v| LinkState::from_u32(v).map(|x| x.name())),
            ("LINK_OPERATION", |v| LinkOperation::from_u32(v).map(|x| x.name())),
            ("LINK_REASON", |v| LinkStateChangeReason::from_u32(v).map(|x| x.name())),
            ("PRESENCE_EVENT_TYPE", |v| PresenceEventType::from_u32(v).map(|x| x.name())),
            ("STORAGE_TYPE", |v| StorageType::from_u32(v).map(|x| x.name())),
            ("STORAGE_EVENT_TYPE", |v| StorageEventType::from_u32(v).map(|x| x.name())),
            ("LOCK_EVENT_TYPE", |v| LockEventType::from_u32(v).map(|x| x.name())),
        ];
        for (fam, lookup) in fams {
            let prefix = format!("pub const RTM2_{fam}_");
            let mut seen = 0;
            for line in src.lines().filter(|l| l.starts_with(&prefix)) {
                let rest = &line[prefix.len()..];
                let (name, value) = rest.split_once(": u32 = ").unwrap();
                let value: u32 = value.trim_end_matches(';').parse().unwrap();
                assert_eq!(lookup(value), Some(name), "{line}");
                seen += 1;
            }
            let expected = (0..64).filter(|&v| lookup(v).is_some()).count();
            assert_eq!(seen, expected, "constants of {fam}");
        }
        assert_eq!(super::RTM2_LOG_WARN, logging::LogLevel::Warn as i32);
        assert_eq!(super::RTM2_LOG_TRACE, logging::LogLevel::Trace as i32);
        assert_eq!(super::RTM2_LOG_ERROR, logging::LogLevel::Error as i32);
        assert_eq!(super::RTM2_TOPIC_USER_INVALID_REMOTE_USER, rtm2_proto::enums::topic_user_code::INVALID_REMOTE_USER);
        assert_eq!(
            super::RTM2_TOPIC_USER_SUB_USER_EXCEED_LIMITATION,
            rtm2_proto::enums::topic_user_code::SUB_USER_EXCEED_LIMITATION
        );
    }
}
