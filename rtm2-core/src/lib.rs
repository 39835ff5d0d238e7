//! rtm2-core: the rtm2 SDK in Rust — [`Client`], [`StreamChannel`], events — on its own
//! runtime, talking to `rtm2-server` over the rtm2 protocol (embedded in-process by default).
//!
//! ```no_run
//! use rtm2_core::{Client, ClientConfig, PublishOptions, SubscribeOptions};
//! # async fn demo() -> rtm2_core::Result<()> {
//! let alice = Client::new(ClientConfig::new("0123456789abcdef0123456789abcdef", "alice"))?;
//! alice.login("").await?;               // embedded server, development mode: no token needed
//! let mut room = alice.subscribe("room", SubscribeOptions::default()).await?;
//! alice.publish("room", "hello", PublishOptions::default()).await?;
//! let msg = room.recv().await.unwrap().unwrap();
//! assert_eq!(msg.text(), Some("hello"));
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

mod client;
mod config;
pub mod embedded;
mod encryption;
mod error;
mod events;
mod history;
mod link;
mod lock;
pub mod logging;
mod presence;
mod runtime;
mod shared_str;
mod storage;
mod stream_channel;
mod types;

/// The current UTC time as `YYYY-MM-DDTHH:MM:SS.mmmZ` (for log lines).
pub(crate) fn now_rfc3339() -> String {
    rfc3339(rtm2_proto::now_ms())
}

fn rfc3339(ms: u64) -> String {
    let (secs, milli) = (ms / 1000, ms % 1000);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // The civil date of a day count since 1970-01-01 (proleptic Gregorian, 400-year eras).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{milli:03}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Version of the SDK (the workspace version).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

pub use client::{Client, logout_all};
pub use config::{ClientConfig, ENDPOINT_ENV, Endpoint, MAX_ENDPOINTS};
pub use encryption::{EncryptionConfig, EncryptionMode, SALT_LEN as ENCRYPTION_SALT_LEN};
pub use error::{Error, Result};
pub use events::{EventReceiver, Subscription};
pub use history::{GetMessagesOptions, History, HistoryMessage, HistoryPage};
pub use lock::{LockDetail, LockEvent, Locks, Withdrawal};
pub use presence::{
    ChannelInfo, GetOnlineUsersOptions, OnlineUsers, Presence, PresenceEvent, PresenceInterval, States, UserState,
};
pub use runtime::{Op, block_on, runtime};
pub use shared_str::SharedStr;
pub use storage::{Metadata, MetadataItem, MetadataOptions, MetadataWrite, Storage, StorageEvent};
pub use stream_channel::StreamChannel;
pub use types::*;

pub use rtm2_proto::ErrorCode;
pub use rtm2_proto::enums::{
    ChannelType, LinkOperation, LinkState, LinkStateChangeReason, LockEventType, MessagePriority, MessageQos,
    MessageType, PresenceEventType, ServiceType, StorageEventType, StorageType, TopicEventType, enum_tables,
    enum_value_name,
};

#[cfg(test)]
mod tests {
    #[test]
    fn log_timestamps() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(super::rfc3339(1795867156029), "2026-11-28T11:59:16.029Z");
        assert_eq!(super::rfc3339(951782400123), "2000-02-29T00:00:00.123Z");
    }
}
