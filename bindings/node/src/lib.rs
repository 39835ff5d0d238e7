//! The rtm2 Node.js addon: a thin napi-rs layer over `rtm2-core`. It converts types, maps
//! errors to JS errors carrying the RTM code, and delivers events in batches (one
//! threadsafe-function call per batch). The public JavaScript API (`RTM`, `RTMError`, ...)
//! lives in `lib/` and is built on the classes and functions here.

mod client;
mod convert;
mod error;
mod events;
mod history;
mod lock;
pub mod log;
mod op;
mod presence;
mod storage;
mod stream;

use napi::Env;
use napi_derive::napi;

use rtm2_core::{
    ChannelType, EncryptionMode, ErrorCode, LinkOperation, LinkState, LinkStateChangeReason, LockEventType,
    MessagePriority, MessageQos, MessageType, PresenceEventType, ServiceType, StorageEventType, StorageType,
    TopicEventType,
};

/// Version of the SDK.
#[napi]
pub fn version() -> String {
    rtm2_core::VERSION.to_string()
}

/// One entry of the RTM error-code table.
#[napi(object)]
pub struct ErrorCodeInfo {
    pub code: u32,
    pub name: String,
    pub message: String,
}

/// The RTM error-code table (10001…15006), identical in every rtm2 binding.
#[napi]
pub fn error_codes() -> Vec<ErrorCodeInfo> {
    ErrorCode::ALL
        .iter()
        .map(|c| ErrorCodeInfo { code: c.code(), name: c.name().to_string(), message: c.message().to_string() })
        .collect()
}

/// The names of the SDK's enumerations (the strings the API takes and events carry).
#[napi(object)]
pub struct EnumNames {
    pub channel_type: Vec<String>,
    pub message_type: Vec<String>,
    pub encryption_mode: Vec<String>,
    pub message_qos: Vec<String>,
    pub message_priority: Vec<String>,
    pub topic_event_type: Vec<String>,
    pub presence_event_type: Vec<String>,
    pub storage_type: Vec<String>,
    pub storage_event_type: Vec<String>,
    pub lock_event_type: Vec<String>,
    pub service_type: Vec<String>,
    pub link_state: Vec<String>,
    pub link_operation: Vec<String>,
    pub link_state_change_reason: Vec<String>,
}

#[napi]
pub fn enum_names() -> EnumNames {
    fn names<T>(from_u32: fn(u32) -> Option<T>, name: fn(T) -> &'static str) -> Vec<String> {
        convert::values(from_u32).map(|v| name(v).to_string()).collect()
    }
    EnumNames {
        channel_type: names(ChannelType::from_u32, ChannelType::name),
        message_type: names(MessageType::from_u32, MessageType::name),
        encryption_mode: names(EncryptionMode::from_u32, EncryptionMode::name),
        message_qos: names(MessageQos::from_u32, MessageQos::name),
        message_priority: names(MessagePriority::from_u32, MessagePriority::name),
        topic_event_type: names(TopicEventType::from_u32, TopicEventType::name),
        presence_event_type: names(PresenceEventType::from_u32, PresenceEventType::name),
        storage_type: names(StorageType::from_u32, StorageType::name),
        storage_event_type: names(StorageEventType::from_u32, StorageEventType::name),
        lock_event_type: names(LockEventType::from_u32, LockEventType::name),
        service_type: names(ServiceType::from_u32, ServiceType::name),
        link_state: names(LinkState::from_u32, LinkState::name),
        link_operation: names(LinkOperation::from_u32, LinkOperation::name),
        link_state_change_reason: names(LinkStateChangeReason::from_u32, LinkStateChangeReason::name),
    }
}

fn token_error(env: &Env, op: &'static str, e: rtm2_proto::token::TokenError) -> napi::Error {
    error::to_js(env, &error::new(ErrorCode::INVALID_PARAMETER, op, e.to_string()))
}

/// Logs out every client of the process still logged in, blocking for at most `timeoutMs` in
/// all; the number of logouts waited for. The package calls it from `process.on('exit')`
/// (whose handlers must be synchronous), so that a program that ends without `logout()` /
/// `close()` does not leave its user online until the presence timeout.
#[napi]
pub fn logout_all(timeout_ms: u32) -> u32 {
    rtm2_core::logout_all(std::time::Duration::from_millis(timeout_ms.into())) as u32
}

/// An RTM login token (AccessToken2) for `userId`, valid `expireSecs` from now. A bad app id
/// or certificate (not 32 hex characters) fails with 10014.
#[napi]
pub fn build_token(
    env: &Env,
    app_id: String,
    app_certificate: String,
    user_id: String,
    expire_secs: u32,
) -> napi::Result<String> {
    rtm2_proto::token::build_rtm_token(&app_id, &app_certificate, &user_id, expire_secs)
        .map_err(|e| token_error(env, "build_token", e))
}

/// A stream-channel token (AccessToken2 with the RTC join privilege for `channel`).
#[napi]
pub fn build_stream_token(
    env: &Env,
    app_id: String,
    app_certificate: String,
    channel: String,
    user_id: String,
    expire_secs: u32,
) -> napi::Result<String> {
    rtm2_proto::token::build_stream_token(&app_id, &app_certificate, &channel, &user_id, expire_secs)
        .map_err(|e| token_error(env, "build_stream_token", e))
}
