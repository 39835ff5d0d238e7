//! Numeric enumerations of RTM 2, with the reference values (rtm2-features.md section 4).

macro_rules! wire_enum {
    ($(#[$m:meta])* $name:ident { $( $(#[$vm:meta])* $var:ident = $val:literal ),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u32)]
        #[allow(non_camel_case_types, missing_docs)]
        pub enum $name { $( $(#[$vm])* $var = $val ),* }

        impl $name {
            /// The value for a number, if it is defined.
            pub fn from_u32(v: u32) -> Option<Self> {
                match v { $( $val => Some(Self::$var), )* _ => None }
            }
            /// The reference name of the value.
            pub fn name(self) -> &'static str {
                match self { $( Self::$var => stringify!($var), )* }
            }
        }
    };
}

wire_enum!(
    /// Channel types: MESSAGE (pub/sub), STREAM (rooms with topics), USER (peer to peer).
    ChannelType { NONE = 0, MESSAGE = 1, STREAM = 2, USER = 3 }
);
wire_enum!(
    /// Payload type of a message.
    MessageType { BINARY = 0, STRING = 1 }
);
wire_enum!(
    /// End-to-end encryption of payloads and presence states (`ClientConfig::encryption`).
    EncryptionMode { NONE = 0, AES_128_GCM = 1, AES_256_GCM = 2 }
);
wire_enum!(
    /// Delivery order of a topic.
    MessageQos { UNORDERED = 0, ORDERED = 1 }
);
wire_enum!(
    /// Topic priority (C++ reference values).
    MessagePriority { HIGHEST = 0, HIGH = 1, NORMAL = 4, LOW = 8 }
);
wire_enum!(
    /// Topic event types.
    TopicEventType { NONE = 0, SNAPSHOT = 1, REMOTE_JOIN = 2, REMOTE_LEAVE = 3 }
);
wire_enum!(
    /// Presence event types.
    PresenceEventType {
        NONE = 0, SNAPSHOT = 1, INTERVAL = 2, REMOTE_JOIN = 3, REMOTE_LEAVE = 4, REMOTE_TIMEOUT = 5,
        REMOTE_STATE_CHANGED = 6, ERROR_OUT_OF_SERVICE = 7,
    }
);
wire_enum!(
    /// Whose metadata a storage operation or event is about.
    StorageType { NONE = 0, USER = 1, CHANNEL = 2 }
);
wire_enum!(
    /// Storage event types (the service runs in full-data mode: SNAPSHOT and UPDATE only).
    StorageEventType { NONE = 0, SNAPSHOT = 1, SET = 2, UPDATE = 3, REMOVE = 4 }
);
wire_enum!(
    /// The kind of a metadata write (`WriteMetadata.op`).
    MetadataOp { NONE = 0, SET = 1, UPDATE = 2, REMOVE = 3 }
);
wire_enum!(
    /// Lock event types.
    LockEventType { NONE = 0, SNAPSHOT = 1, SET = 2, REMOVED = 3, ACQUIRED = 4, RELEASED = 5, EXPIRED = 6 }
);
wire_enum!(
    /// Which connection a link-state event is about.
    ServiceType { NONE = 0, MESSAGE = 1, STREAM = 2 }
);
wire_enum!(
    /// State of a link (the message connection, or a stream channel).
    LinkState { IDLE = 0, CONNECTING = 1, CONNECTED = 2, DISCONNECTED = 3, SUSPENDED = 4, FAILED = 5 }
);
wire_enum!(
    /// What caused a link-state change.
    LinkOperation {
        LOGIN = 0, LOGOUT = 1, JOIN = 2, LEAVE = 3, SERVER_REJECT = 4, AUTO_RECONNECT = 5,
        RECONNECTED = 6, HEARTBEAT_TIMEOUT = 7, SERVER_TIMEOUT = 8, NETWORK_CHANGE = 9,
    }
);
wire_enum!(
    /// Why a link state changed.
    LinkStateChangeReason {
        UNKNOWN = 0, LOGIN = 1, LOGIN_SUCCESS = 2, LOGIN_TIMEOUT = 3, LOGIN_NOT_AUTHORIZED = 4,
        LOGIN_REJECTED = 5, RELOGIN = 6, LOGOUT = 7, AUTO_RECONNECT = 8, RECONNECT_TIMEOUT = 9,
        RECONNECT_SUCCESS = 10, JOIN = 11, JOIN_SUCCESS = 12, JOIN_FAILED = 13, REJOIN = 14,
        LEAVE = 15, INVALID_TOKEN = 16, TOKEN_EXPIRED = 17, INCONSISTENT_APP_ID = 18,
        INVALID_CHANNEL_NAME = 19, INVALID_USER_ID = 20, NOT_INITIALIZED = 21,
        RTM_SERVICE_NOT_CONNECTED = 22, CHANNEL_INSTANCE_EXCEED_LIMITATION = 23,
        OPERATION_RATE_EXCEED_LIMITATION = 24, CHANNEL_IN_ERROR_STATE = 25,
        PRESENCE_NOT_CONNECTED = 26, SAME_UID_LOGIN = 27, KICKED_OUT_BY_SERVER = 28,
        KEEP_ALIVE_TIMEOUT = 29, CONNECTION_ERROR = 30, PRESENCE_NOT_READY = 31,
        NETWORK_CHANGE = 32, SERVICE_NOT_SUPPORTED = 33, STREAM_CHANNEL_NOT_AVAILABLE = 34,
        STORAGE_NOT_AVAILABLE = 35, LOCK_NOT_AVAILABLE = 36, LOGIN_TOO_FREQUENT = 37,
    }
);

/// The value names of an enumeration: `(name, number)` for each value, ascending.
pub type EnumTable = Vec<(&'static str, u32)>;

fn table<T: Copy>(from_u32: fn(u32) -> Option<T>, name: fn(T) -> &'static str) -> EnumTable {
    (0..=64).filter_map(|n| from_u32(n).map(|v| (name(v), n))).collect()
}

/// Every enumeration of the API by its reference name (`"LinkStateChangeReason"`, …) with its
/// values: the one table the bindings expose (Python `enum_tables`, Node's constants, C
/// `rtm2_enum_name`).
pub fn enum_tables() -> Vec<(&'static str, EnumTable)> {
    vec![
        ("ChannelType", table(ChannelType::from_u32, ChannelType::name)),
        ("MessageType", table(MessageType::from_u32, MessageType::name)),
        ("EncryptionMode", table(EncryptionMode::from_u32, EncryptionMode::name)),
        ("MessageQos", table(MessageQos::from_u32, MessageQos::name)),
        ("MessagePriority", table(MessagePriority::from_u32, MessagePriority::name)),
        ("TopicEventType", table(TopicEventType::from_u32, TopicEventType::name)),
        ("PresenceEventType", table(PresenceEventType::from_u32, PresenceEventType::name)),
        ("StorageType", table(StorageType::from_u32, StorageType::name)),
        ("StorageEventType", table(StorageEventType::from_u32, StorageEventType::name)),
        ("LockEventType", table(LockEventType::from_u32, LockEventType::name)),
        ("ServiceType", table(ServiceType::from_u32, ServiceType::name)),
        ("LinkState", table(LinkState::from_u32, LinkState::name)),
        ("LinkOperation", table(LinkOperation::from_u32, LinkOperation::name)),
        ("LinkStateChangeReason", table(LinkStateChangeReason::from_u32, LinkStateChangeReason::name)),
    ]
}

/// The name of `value` in the enumeration called `enumeration` (a name of `enum_tables`);
/// None for an unknown enumeration or value.
pub fn enum_value_name(enumeration: &str, value: u32) -> Option<&'static str> {
    static TABLES: std::sync::LazyLock<Vec<(&'static str, EnumTable)>> = std::sync::LazyLock::new(enum_tables);
    let (_, values) = TABLES.iter().find(|(e, _)| *e == enumeration)?;
    values.iter().find(|&&(_, n)| n == value).map(|&(name, _)| name)
}

#[cfg(test)]
mod table_tests {
    use super::*;

    #[test]
    fn every_table_entry_is_named_by_enum_value_name_and_nothing_else_is() {
        for (e, values) in enum_tables() {
            for &(name, n) in &values {
                assert_eq!(enum_value_name(e, n), Some(name), "{e} {n}");
            }
            assert_eq!(enum_value_name(e, 65), None, "{e}");
        }
        assert_eq!(enum_value_name("LinkStateChangeReason", 27), Some("SAME_UID_LOGIN"));
        assert_eq!(enum_value_name("NoSuchEnum", 0), None);
    }
}

/// Per-user result codes of subscribe_topic (reference JS SDK values).
pub mod topic_user_code {
    /// The user id is not valid.
    pub const INVALID_REMOTE_USER: u32 = 6;
    /// Subscribing this user would pass the per-topic publisher limit (64).
    pub const SUB_USER_EXCEED_LIMITATION: u32 = 20003;
}
