//! rtm2 wire protocol: frames, messages, error codes, limits, validation and AccessToken2.
//!
//! Both the server and the SDK depend on this crate; nothing here does I/O.
#![warn(missing_docs)]

pub mod enums;
pub mod error_code;
pub mod fastpath;
pub mod fastpath_client;
pub mod frame;
#[doc(hidden)]
pub mod fuzzing;
pub mod limits;
pub mod token;
pub mod validate;

/// Generated protobuf types of `proto/rtm2/v1/rtm2.proto` (see docs/PROTOCOL.md).
#[allow(missing_docs, clippy::all)]
pub mod pb {
    include!(concat!(env!("OUT_DIR"), "/rtm2.v1.rs"));
}

pub use error_code::ErrorCode;

/// Feature bit: the peer can resume a session from a sequence number.
pub const FEATURE_RESUME: u64 = 1 << 0;
/// Feature bit: successful publishes are answered together by `PublishAck` frames.
pub const FEATURE_PUBLISH_ACK: u64 = 1 << 1;
/// Feature bits this build supports.
pub const FEATURES: u64 = FEATURE_RESUME | FEATURE_PUBLISH_ACK;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}
