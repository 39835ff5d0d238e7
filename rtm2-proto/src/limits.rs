//! Every limit of the system as a named constant. The SDK checks them before sending; the
//! server checks them again on receipt. Where the reference sources disagree
//! (rtm2-features.md section 10) the choice made here is noted.

/// Protocol version spoken by this crate.
pub const PROTOCOL_VERSION: u32 = 1;
/// Oldest protocol version this crate still accepts.
pub const MIN_PROTOCOL_VERSION: u32 = 1;

/// Largest client-to-server frame body in bytes (checked before allocating).
pub const MAX_CLIENT_FRAME_LEN: usize = 1024 * 1024;
/// Largest server-to-client frame body in bytes (checked before allocating).
pub const MAX_SERVER_FRAME_LEN: usize = 16 * 1024 * 1024;

/// App id: exactly 32 characters `[0-9A-Za-z]`.
pub const APP_ID_LEN: usize = 32;
/// User id: at most 64 bytes.
pub const MAX_USER_ID_LEN: usize = 64;
/// Message and stream channel names: at most 64 bytes.
pub const MAX_CHANNEL_NAME_LEN: usize = 64;
/// Topic names: at most 16 bytes (reference: "will be extended to 64").
pub const MAX_TOPIC_NAME_LEN: usize = 16;
/// Message-channel and user-channel payload + customType: at most 32 KiB.
pub const MAX_MESSAGE_LEN: usize = 32 * 1024;
/// Stream topic payload + customType: at most 1 KiB.
pub const MAX_TOPIC_MESSAGE_LEN: usize = 1024;
/// Bytes an end-to-end encrypted payload adds to its plaintext: a 12-byte nonce and a 16-byte
/// AES-GCM tag (`Publish.encryption`). The limits above are the plaintext's.
pub const ENCRYPTION_OVERHEAD: usize = 12 + 16;
/// The prefix of an end-to-end encrypted presence state value (then the base64, unpadded, of
/// nonce, ciphertext and tag).
pub const ENCRYPTED_STATE_PREFIX: &str = "rtm2e1:";
/// Longest encrypted state value: that of a plaintext of [`MAX_STATE_VALUE_LEN`].
pub const MAX_ENCRYPTED_STATE_VALUE_LEN: usize =
    ENCRYPTED_STATE_PREFIX.len() + ((MAX_STATE_VALUE_LEN + ENCRYPTION_OVERHEAD) * 4).div_ceil(3);
/// Encryption modes a publish may name (`Publish.encryption`): 1 AES_128_GCM, 2 AES_256_GCM.
pub const MAX_ENCRYPTION_MODE: u32 = 2;
/// customType: at most 32 bytes, non-empty when present.
pub const MAX_CUSTOM_TYPE_LEN: usize = 32;
/// Topic meta given to joinTopic: at most 256 bytes.
pub const MAX_TOPIC_META_LEN: usize = 256;

/// Subscribed message channels per client (reference: 50; one JS comment says 100).
pub const MAX_SUBSCRIBED_CHANNELS: usize = 50;
/// Joined stream channels per client (reference: 10 per DOC-LIM-B and the JS default; 100 per
/// DOC-LIM-A). We pick 10.
pub const MAX_JOINED_STREAM_CHANNELS: usize = 10;
/// Users in one stream channel (reference: 128 per DOC-LIM-B; 1000 soft per DOC-LIM-A). We pick 128.
pub const MAX_STREAM_CHANNEL_USERS: usize = 128;
/// Topics a client may join as publisher per stream channel.
pub const MAX_JOINED_TOPICS: usize = 8;
/// Topics a client may subscribe to per stream channel.
pub const MAX_SUBSCRIBED_TOPICS: usize = 50;
/// Publishers a client may subscribe to per topic; an empty user list picks up to this many.
pub const MAX_TOPIC_SUBSCRIBED_USERS: usize = 64;

/// Presence timeout range and default, seconds (reference: [5,300], default 300, clamped).
pub const MIN_PRESENCE_TIMEOUT_S: u32 = 5;
/// See [`MIN_PRESENCE_TIMEOUT_S`].
pub const MAX_PRESENCE_TIMEOUT_S: u32 = 300;
/// See [`MIN_PRESENCE_TIMEOUT_S`].
pub const DEFAULT_PRESENCE_TIMEOUT_S: u32 = 300;
/// Heartbeat interval range and default, seconds (reference: [5,1800], default 5; the SDK and
/// the server clamp a value out of the range into it, as for the presence timeout).
pub const MIN_HEARTBEAT_INTERVAL_S: u32 = 5;
/// See [`MIN_HEARTBEAT_INTERVAL_S`].
pub const MAX_HEARTBEAT_INTERVAL_S: u32 = 1800;
/// See [`MIN_HEARTBEAT_INTERVAL_S`].
pub const DEFAULT_HEARTBEAT_INTERVAL_S: u32 = 5;
/// The server drops a session silent for heartbeat interval + this many seconds.
pub const KEEPALIVE_GRACE_S: u32 = 10;
/// The client treats the link as lost after this long without any frame from the server, ms.
pub const DEFAULT_PONG_TIMEOUT_MS: u64 = 10_000;
/// "Token privilege will expire" is sent this many seconds before expiry.
pub const TOKEN_WILL_EXPIRE_NOTICE_S: u64 = 30;
/// Default request timeout of every SDK operation, ms.
pub const DEFAULT_REQUEST_TIMEOUT_MS: u64 = 10_000;
/// A connection must complete Hello + Login within this many ms.
pub const DEFAULT_PRELOGIN_TIMEOUT_MS: u64 = 10_000;

/// Per-client message-channel / user-channel publish rate, messages per second (reference: 60).
pub const MAX_PUBLISH_PER_SECOND: u32 = 60;
/// Per-client topic publish rate, messages per second (reference JS limiter: 200).
pub const MAX_TOPIC_PUBLISH_PER_SECOND: u32 = 200;
/// Per-client rate of every other call, per second (reference: 20).
pub const MAX_CALLS_PER_SECOND: u32 = 20;
/// Subscribes of one message channel a client may make within
/// [`CHANNEL_SUBSCRIBE_WINDOW_MS`]; the next one fails with 11020
/// CHANNEL_SUBSCRIBE_TOO_FREQUENT (reference: "> 2 subscribes of the same channel per 5 s").
pub const MAX_CHANNEL_SUBSCRIBES_PER_WINDOW: u32 = 2;
/// The sliding window of [`MAX_CHANNEL_SUBSCRIBES_PER_WINDOW`], ms (reference: 5 s).
pub const CHANNEL_SUBSCRIBE_WINDOW_MS: u64 = 5_000;

/// Longest a dropped session is kept for a loss-free resume, seconds. A session is kept for its
/// presence timeout (5–300 s), at most this long.
pub const DEFAULT_RESUME_WINDOW_S: u64 = 300;

/// Presence state pairs per user per channel, counted over the merge with existing keys (13005).
pub const MAX_STATE_ITEMS: usize = 32;
/// Presence state key length, bytes (13008).
pub const MAX_STATE_KEY_LEN: usize = 32;
/// Presence state value length, bytes (13009).
pub const MAX_STATE_VALUE_LEN: usize = 16 * 1024;
/// Channels whose state a client may cache before it subscribes or joins (13004).
pub const MAX_CACHED_STATE_CHANNELS: usize = 100;
/// Default users per page of `getOnlineUsers` (reference docs: up to 100 per page).
pub const DEFAULT_PRESENCE_PAGE_SIZE: usize = 100;
/// Default "max number of instant events": above this many present users, per-user presence
/// events are replaced by one INTERVAL event per interval (reference console: 50, range 8–128).
pub const DEFAULT_PRESENCE_ANNOUNCE_MAX: usize = 50;
/// Default interval of INTERVAL presence events, seconds (reference console: 30).
pub const DEFAULT_PRESENCE_INTERVAL_S: u64 = 30;

/// Metadata key length, bytes (12011).
pub const MAX_METADATA_KEY_LEN: usize = 32;
/// Metadata value length, bytes (12012).
pub const MAX_METADATA_VALUE_LEN: usize = 16 * 1024;
/// Size of a whole metadata set (keys + values), bytes, and of one write request (12006).
pub const MAX_METADATA_SET_LEN: usize = 16 * 1024;
/// Items per metadata call (12002).
pub const MAX_METADATA_ITEMS_PER_CALL: usize = 32;
/// Users whose metadata one client may subscribe to (12017).
pub const MAX_SUBSCRIBED_USER_METADATA: usize = 50;

/// Lock ttl range and default, seconds (reference: [10,300], default 10, clamped).
pub const MIN_LOCK_TTL_S: u32 = 10;
/// See [`MIN_LOCK_TTL_S`].
pub const MAX_LOCK_TTL_S: u32 = 300;
/// See [`MIN_LOCK_TTL_S`].
pub const DEFAULT_LOCK_TTL_S: u32 = 10;
/// Lock name length, bytes (14005).
pub const MAX_LOCK_NAME_LEN: usize = 64;
/// Locks per channel (reference: 32, soft); more fail with 14001.
pub const MAX_LOCKS_PER_CHANNEL: usize = 32;
