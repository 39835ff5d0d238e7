//! Conversions between JS values (string enum names, string | Uint8Array payloads) and the
//! SDK's types. Names are the reference names of `rtm2_proto::enums`.

use napi::bindgen_prelude::{Either, Uint8Array};

use rtm2_core::{ChannelType, EncryptionMode, ErrorCode, MessagePriority, MessageQos, Payload};

use crate::error;

/// Every value of a wire enum, found through its `from_u32` (the values are small).
pub(crate) fn values<T>(from_u32: fn(u32) -> Option<T>) -> impl Iterator<Item = T> {
    (0..=64u32).filter_map(from_u32)
}

fn by_name<T: Copy>(s: &str, from_u32: fn(u32) -> Option<T>, name: fn(T) -> &'static str) -> Option<T> {
    values(from_u32).find(|v| name(*v) == s)
}

/// `'MESSAGE'`, `'USER'`, `'STREAM'` (default MESSAGE). Other names fail with 11xxx
/// INVALID_CHANNEL_TYPE, as the SDK does for a type it does not accept.
pub(crate) fn channel_type(s: Option<&str>, op: &'static str) -> rtm2_core::Result<ChannelType> {
    match s {
        None => Ok(ChannelType::MESSAGE),
        Some(s) => by_name(s, ChannelType::from_u32, ChannelType::name)
            .ok_or_else(|| error::new(ErrorCode::INVALID_CHANNEL_TYPE, op, format!("unknown channel type {s:?}"))),
    }
}

/// `'UNORDERED'` (default) or `'ORDERED'`.
pub(crate) fn qos(s: Option<&str>, op: &'static str) -> rtm2_core::Result<MessageQos> {
    match s {
        None => Ok(MessageQos::UNORDERED),
        Some(s) => by_name(s, MessageQos::from_u32, MessageQos::name)
            .ok_or_else(|| error::new(ErrorCode::INVALID_PARAMETER, op, format!("unknown qos {s:?}"))),
    }
}

/// `'HIGHEST'`, `'HIGH'`, `'NORMAL'` (default) or `'LOW'`.
pub(crate) fn priority(s: Option<&str>, op: &'static str) -> rtm2_core::Result<MessagePriority> {
    match s {
        None => Ok(MessagePriority::NORMAL),
        Some(s) => by_name(s, MessagePriority::from_u32, MessagePriority::name)
            .ok_or_else(|| error::new(ErrorCode::INVALID_PARAMETER, op, format!("unknown priority {s:?}"))),
    }
}

/// `'NONE'`, `'AES_128_GCM'`, `'AES_256_GCM'` or the number; anything else fails with 10020
/// INVALID_ENCRYPTION_PARAMETER, as the core does for the other invalid settings.
pub(crate) fn encryption_mode(m: Either<String, f64>, op: &'static str) -> rtm2_core::Result<EncryptionMode> {
    let found = match &m {
        Either::A(s) => by_name(s, EncryptionMode::from_u32, EncryptionMode::name),
        Either::B(n) if n.fract() == 0.0 && (0.0..=u32::MAX as f64).contains(n) => EncryptionMode::from_u32(*n as u32),
        Either::B(_) => None,
    };
    found.ok_or_else(|| {
        let got = match m {
            Either::A(s) => format!("{s:?}"),
            Either::B(n) => n.to_string(),
        };
        error::new(
            ErrorCode::INVALID_ENCRYPTION_PARAMETER,
            op,
            format!("encryptionMode must be 'NONE', 'AES_128_GCM' or 'AES_256_GCM' (or 0, 1, 2), got {got}"),
        )
    })
}

/// A string is sent as STRING, bytes (Uint8Array, Buffer) as BINARY.
pub(crate) fn payload(message: Either<String, Uint8Array>) -> Payload {
    match message {
        Either::A(s) => Payload::from(s),
        Either::B(b) => Payload::from(b.to_vec()),
    }
}
