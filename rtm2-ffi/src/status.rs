//! Status codes: `RTM2_OK`, the RTM error codes (10001…15006, identical in every rtm2 SDK) and
//! the few codes of the C layer itself (9001…), with a name and a message for each.

use std::collections::HashMap;
use std::ffi::{CString, c_char};
use std::sync::LazyLock;

use rtm2_core::ErrorCode;

use crate::error::{ffi_value, last_error_ptr};

/// Success.
pub const RTM2_OK: i32 = 0;
/// A required pointer argument (handle, string, out-parameter) was NULL.
pub const RTM2_ERR_NULL_PARAMETER: i32 = 9001;
/// A string argument was not valid UTF-8.
pub const RTM2_ERR_INVALID_UTF8: i32 = 9002;
/// An internal error (a Rust panic) was caught at the API boundary; the call had no effect
/// beyond what the message says. Please report it.
pub const RTM2_ERR_PANIC: i32 = 9003;
/// The SDK could not start an internal resource (e.g. its dispatcher thread).
pub const RTM2_ERR_INTERNAL: i32 = 9004;
/// The operation was canceled by `rtm2_cancel` before it completed (its completion callback
/// still runs, once, with this status).
pub const RTM2_ERR_CANCELED: i32 = 9005;

/// 10001 NOT_INITIALIZED: the client is not initialized.
pub const RTM2_ERR_NOT_INITIALIZED: i32 = 10001;
/// 10002 NOT_LOGIN: the operation needs a logged-in client.
pub const RTM2_ERR_NOT_LOGIN: i32 = 10002;
/// 10003 INVALID_APP_ID: the app id is invalid.
pub const RTM2_ERR_INVALID_APP_ID: i32 = 10003;
/// 10004 INVALID_EVENT_HANDLER: the event handler is invalid.
pub const RTM2_ERR_INVALID_EVENT_HANDLER: i32 = 10004;
/// 10005 INVALID_TOKEN: the token is invalid.
pub const RTM2_ERR_INVALID_TOKEN: i32 = 10005;
/// 10006 INVALID_USER_ID: the user id is invalid.
pub const RTM2_ERR_INVALID_USER_ID: i32 = 10006;
/// 10007 INIT_SERVICE_FAILED: the service failed to initialize.
pub const RTM2_ERR_INIT_SERVICE_FAILED: i32 = 10007;
/// 10008 INVALID_CHANNEL_NAME: the channel name is invalid.
pub const RTM2_ERR_INVALID_CHANNEL_NAME: i32 = 10008;
/// 10009 TOKEN_EXPIRED: the token has expired.
pub const RTM2_ERR_TOKEN_EXPIRED: i32 = 10009;
/// 10010 LOGIN_NO_SERVER_RESOURCES: the server has no resources for this login.
pub const RTM2_ERR_LOGIN_NO_SERVER_RESOURCES: i32 = 10010;
/// 10011 LOGIN_TIMEOUT: login timed out.
pub const RTM2_ERR_LOGIN_TIMEOUT: i32 = 10011;
/// 10012 LOGIN_REJECTED: the server rejected the login.
pub const RTM2_ERR_LOGIN_REJECTED: i32 = 10012;
/// 10013 LOGIN_ABORTED: login was aborted.
pub const RTM2_ERR_LOGIN_ABORTED: i32 = 10013;
/// 10014 INVALID_PARAMETER: a parameter is invalid.
pub const RTM2_ERR_INVALID_PARAMETER: i32 = 10014;
/// 10015 LOGIN_NOT_AUTHORIZED: the login is not authorized.
pub const RTM2_ERR_LOGIN_NOT_AUTHORIZED: i32 = 10015;
/// 10016 INCONSISTENT_APPID: the app id in the token does not match the client's app id.
pub const RTM2_ERR_INCONSISTENT_APPID: i32 = 10016;
/// 10017 DUPLICATE_OPERATION: the same request is already in progress or done.
pub const RTM2_ERR_DUPLICATE_OPERATION: i32 = 10017;
/// 10018 INSTANCE_ALREADY_RELEASED: the instance was already released.
pub const RTM2_ERR_INSTANCE_ALREADY_RELEASED: i32 = 10018;
/// 10019 INVALID_CHANNEL_TYPE: the channel type is invalid for this operation.
pub const RTM2_ERR_INVALID_CHANNEL_TYPE: i32 = 10019;
/// 10020 INVALID_ENCRYPTION_PARAMETER: the encryption parameters are invalid.
pub const RTM2_ERR_INVALID_ENCRYPTION_PARAMETER: i32 = 10020;
/// 10021 OPERATION_RATE_EXCEED_LIMITATION: the operation rate exceeds the limit.
pub const RTM2_ERR_OPERATION_RATE_EXCEED_LIMITATION: i32 = 10021;
/// 10022 SERVICE_NOT_SUPPORTED: the service or protocol version is not supported.
pub const RTM2_ERR_SERVICE_NOT_SUPPORTED: i32 = 10022;
/// 10023 LOGIN_CANCELED: login was canceled by a newer login or a logout.
pub const RTM2_ERR_LOGIN_CANCELED: i32 = 10023;
/// 10024 INVALID_PRIVATE_CONFIG: the private deployment configuration is invalid.
pub const RTM2_ERR_INVALID_PRIVATE_CONFIG: i32 = 10024;
/// 10025 NOT_CONNECTED: the client is not connected.
pub const RTM2_ERR_NOT_CONNECTED: i32 = 10025;
/// 10026 RENEW_TOKEN_TIMEOUT: token renewal timed out.
pub const RTM2_ERR_RENEW_TOKEN_TIMEOUT: i32 = 10026;
/// 10027 DUPLICATE_USER_ID: another active client uses the same app id and user id.
pub const RTM2_ERR_DUPLICATE_USER_ID: i32 = 10027;
/// 11001 CHANNEL_NOT_JOINED: the channel is not joined.
pub const RTM2_ERR_CHANNEL_NOT_JOINED: i32 = 11001;
/// 11002 CHANNEL_NOT_SUBSCRIBED: the channel is not subscribed.
pub const RTM2_ERR_CHANNEL_NOT_SUBSCRIBED: i32 = 11002;
/// 11003 CHANNEL_EXCEED_TOPIC_USER_LIMITATION: too many publishers subscribed in the topic.
pub const RTM2_ERR_CHANNEL_EXCEED_TOPIC_USER_LIMITATION: i32 = 11003;
/// 11004 CHANNEL_IN_REUSE: the channel is in reuse.
pub const RTM2_ERR_CHANNEL_IN_REUSE: i32 = 11004;
/// 11005 CHANNEL_INSTANCE_EXCEED_LIMITATION: too many subscribed or joined channels.
pub const RTM2_ERR_CHANNEL_INSTANCE_EXCEED_LIMITATION: i32 = 11005;
/// 11006 CHANNEL_IN_ERROR_STATE: the channel is in an error state.
pub const RTM2_ERR_CHANNEL_IN_ERROR_STATE: i32 = 11006;
/// 11007 CHANNEL_JOIN_FAILED: joining the channel failed.
pub const RTM2_ERR_CHANNEL_JOIN_FAILED: i32 = 11007;
/// 11008 CHANNEL_INVALID_TOPIC_NAME: the topic name is invalid.
pub const RTM2_ERR_CHANNEL_INVALID_TOPIC_NAME: i32 = 11008;
/// 11009 CHANNEL_INVALID_MESSAGE: the message is invalid.
pub const RTM2_ERR_CHANNEL_INVALID_MESSAGE: i32 = 11009;
/// 11010 CHANNEL_MESSAGE_LENGTH_EXCEED_LIMITATION: the message is too long.
pub const RTM2_ERR_CHANNEL_MESSAGE_LENGTH_EXCEED_LIMITATION: i32 = 11010;
/// 11011 CHANNEL_INVALID_USER_LIST: the user list is invalid.
pub const RTM2_ERR_CHANNEL_INVALID_USER_LIST: i32 = 11011;
/// 11012 CHANNEL_NOT_AVAILABLE: the stream channel service is not available.
pub const RTM2_ERR_CHANNEL_NOT_AVAILABLE: i32 = 11012;
/// 11013 CHANNEL_TOPIC_NOT_SUBSCRIBED: the topic is not subscribed.
pub const RTM2_ERR_CHANNEL_TOPIC_NOT_SUBSCRIBED: i32 = 11013;
/// 11014 CHANNEL_EXCEED_TOPIC_LIMITATION: too many topics.
pub const RTM2_ERR_CHANNEL_EXCEED_TOPIC_LIMITATION: i32 = 11014;
/// 11015 CHANNEL_JOIN_TOPIC_FAILED: joining the topic failed.
pub const RTM2_ERR_CHANNEL_JOIN_TOPIC_FAILED: i32 = 11015;
/// 11016 CHANNEL_TOPIC_NOT_JOINED: the topic is not joined.
pub const RTM2_ERR_CHANNEL_TOPIC_NOT_JOINED: i32 = 11016;
/// 11017 CHANNEL_TOPIC_NOT_EXIST: the topic does not exist.
pub const RTM2_ERR_CHANNEL_TOPIC_NOT_EXIST: i32 = 11017;
/// 11018 CHANNEL_INVALID_TOPIC_META: the topic meta is invalid or too long.
pub const RTM2_ERR_CHANNEL_INVALID_TOPIC_META: i32 = 11018;
/// 11019 CHANNEL_SUBSCRIBE_TIMEOUT: subscribing timed out.
pub const RTM2_ERR_CHANNEL_SUBSCRIBE_TIMEOUT: i32 = 11019;
/// 11020 CHANNEL_SUBSCRIBE_TOO_FREQUENT: subscribing too frequently.
pub const RTM2_ERR_CHANNEL_SUBSCRIBE_TOO_FREQUENT: i32 = 11020;
/// 11021 CHANNEL_SUBSCRIBE_FAILED: subscribing failed.
pub const RTM2_ERR_CHANNEL_SUBSCRIBE_FAILED: i32 = 11021;
/// 11022 CHANNEL_UNSUBSCRIBE_FAILED: unsubscribing failed.
pub const RTM2_ERR_CHANNEL_UNSUBSCRIBE_FAILED: i32 = 11022;
/// 11023 CHANNEL_ENCRYPT_MESSAGE_FAILED: encrypting the message failed.
pub const RTM2_ERR_CHANNEL_ENCRYPT_MESSAGE_FAILED: i32 = 11023;
/// 11024 CHANNEL_PUBLISH_MESSAGE_FAILED: publishing the message failed.
pub const RTM2_ERR_CHANNEL_PUBLISH_MESSAGE_FAILED: i32 = 11024;
/// 11025 CHANNEL_PUBLISH_MESSAGE_TOO_FREQUENT: publishing too frequently.
pub const RTM2_ERR_CHANNEL_PUBLISH_MESSAGE_TOO_FREQUENT: i32 = 11025;
/// 11026 CHANNEL_PUBLISH_MESSAGE_TIMEOUT: publishing timed out.
pub const RTM2_ERR_CHANNEL_PUBLISH_MESSAGE_TIMEOUT: i32 = 11026;
/// 11027 CHANNEL_NOT_CONNECTED: the channel is not connected.
pub const RTM2_ERR_CHANNEL_NOT_CONNECTED: i32 = 11027;
/// 11028 CHANNEL_LEAVE_FAILED: leaving the channel failed.
pub const RTM2_ERR_CHANNEL_LEAVE_FAILED: i32 = 11028;
/// 11029 CHANNEL_CUSTOM_TYPE_LENGTH_OVERFLOW: the custom type is too long.
pub const RTM2_ERR_CHANNEL_CUSTOM_TYPE_LENGTH_OVERFLOW: i32 = 11029;
/// 11030 CHANNEL_INVALID_CUSTOM_TYPE: the custom type is invalid.
pub const RTM2_ERR_CHANNEL_INVALID_CUSTOM_TYPE: i32 = 11030;
/// 11031 CHANNEL_UNSUPPORTED_MESSAGE_TYPE: the message type is not supported.
pub const RTM2_ERR_CHANNEL_UNSUPPORTED_MESSAGE_TYPE: i32 = 11031;
/// 11032 CHANNEL_PRESENCE_NOT_READY: presence is not ready.
pub const RTM2_ERR_CHANNEL_PRESENCE_NOT_READY: i32 = 11032;
/// 11033 CHANNEL_RECEIVER_OFFLINE: the receiver is offline.
pub const RTM2_ERR_CHANNEL_RECEIVER_OFFLINE: i32 = 11033;
/// 11034 CHANNEL_JOIN_CANCELED: joining the channel was canceled.
pub const RTM2_ERR_CHANNEL_JOIN_CANCELED: i32 = 11034;
/// 11035 CHANNEL_RECEIVER_OFFLINE_BUT_STORE_SUCCEEDED: the receiver is offline but the message was stored.
pub const RTM2_ERR_CHANNEL_RECEIVER_OFFLINE_BUT_STORE_SUCCEEDED: i32 = 11035;
/// 11036 CHANNEL_RECEIVER_OFFLINE_AND_STORE_FAILED: the receiver is offline and storing failed.
pub const RTM2_ERR_CHANNEL_RECEIVER_OFFLINE_AND_STORE_FAILED: i32 = 11036;
/// 11037 CHANNEL_MESSAGE_DELIVERED_BUT_STORE_FAILED: the message was delivered but storing failed.
pub const RTM2_ERR_CHANNEL_MESSAGE_DELIVERED_BUT_STORE_FAILED: i32 = 11037;
/// 11038 CHANNEL_SUBSCRIBE_PERMISSION_DENIED: no permission to subscribe.
pub const RTM2_ERR_CHANNEL_SUBSCRIBE_PERMISSION_DENIED: i32 = 11038;
/// 11039 CHANNEL_PUBLISH_PERMISSION_DENIED: no permission to publish.
pub const RTM2_ERR_CHANNEL_PUBLISH_PERMISSION_DENIED: i32 = 11039;
/// 11040 CHANNEL_SUBSCRIBE_CANCELED: subscribing was canceled.
pub const RTM2_ERR_CHANNEL_SUBSCRIBE_CANCELED: i32 = 11040;
/// 12001 STORAGE_OPERATION_FAILED: the storage operation failed.
pub const RTM2_ERR_STORAGE_OPERATION_FAILED: i32 = 12001;
/// 12002 STORAGE_METADATA_ITEM_EXCEED_LIMITATION: too many metadata items.
pub const RTM2_ERR_STORAGE_METADATA_ITEM_EXCEED_LIMITATION: i32 = 12002;
/// 12003 STORAGE_INVALID_METADATA_ITEM: a metadata item is invalid.
pub const RTM2_ERR_STORAGE_INVALID_METADATA_ITEM: i32 = 12003;
/// 12004 STORAGE_INVALID_ARGUMENT: a storage argument is invalid.
pub const RTM2_ERR_STORAGE_INVALID_ARGUMENT: i32 = 12004;
/// 12005 STORAGE_INVALID_REVISION: the revision is invalid.
pub const RTM2_ERR_STORAGE_INVALID_REVISION: i32 = 12005;
/// 12006 STORAGE_METADATA_LENGTH_OVERFLOW: the metadata is too long.
pub const RTM2_ERR_STORAGE_METADATA_LENGTH_OVERFLOW: i32 = 12006;
/// 12007 STORAGE_INVALID_LOCK_NAME: the lock name is invalid.
pub const RTM2_ERR_STORAGE_INVALID_LOCK_NAME: i32 = 12007;
/// 12008 STORAGE_LOCK_NOT_ACQUIRED: the lock is not acquired.
pub const RTM2_ERR_STORAGE_LOCK_NOT_ACQUIRED: i32 = 12008;
/// 12009 STORAGE_INVALID_KEY: the metadata key is invalid.
pub const RTM2_ERR_STORAGE_INVALID_KEY: i32 = 12009;
/// 12010 STORAGE_INVALID_VALUE: the metadata value is invalid.
pub const RTM2_ERR_STORAGE_INVALID_VALUE: i32 = 12010;
/// 12011 STORAGE_KEY_LENGTH_OVERFLOW: the metadata key is too long.
pub const RTM2_ERR_STORAGE_KEY_LENGTH_OVERFLOW: i32 = 12011;
/// 12012 STORAGE_VALUE_LENGTH_OVERFLOW: the metadata value is too long.
pub const RTM2_ERR_STORAGE_VALUE_LENGTH_OVERFLOW: i32 = 12012;
/// 12013 STORAGE_DUPLICATE_KEY: a metadata key is duplicated.
pub const RTM2_ERR_STORAGE_DUPLICATE_KEY: i32 = 12013;
/// 12014 STORAGE_OUTDATED_REVISION: outdated revision or the key does not exist.
pub const RTM2_ERR_STORAGE_OUTDATED_REVISION: i32 = 12014;
/// 12015 STORAGE_NOT_SUBSCRIBE: the metadata is not subscribed.
pub const RTM2_ERR_STORAGE_NOT_SUBSCRIBE: i32 = 12015;
/// 12016 STORAGE_INVALID_METADATA_INSTANCE: the metadata instance is invalid.
pub const RTM2_ERR_STORAGE_INVALID_METADATA_INSTANCE: i32 = 12016;
/// 12017 STORAGE_SUBSCRIBE_USER_EXCEED_LIMITATION: too many subscribed users.
pub const RTM2_ERR_STORAGE_SUBSCRIBE_USER_EXCEED_LIMITATION: i32 = 12017;
/// 12018 STORAGE_OPERATION_TIMEOUT: the storage operation timed out.
pub const RTM2_ERR_STORAGE_OPERATION_TIMEOUT: i32 = 12018;
/// 12019 STORAGE_NOT_AVAILABLE: the storage service is not available.
pub const RTM2_ERR_STORAGE_NOT_AVAILABLE: i32 = 12019;
/// 12020 STORAGE_PERMISSION_DENIED: no permission for this storage operation.
pub const RTM2_ERR_STORAGE_PERMISSION_DENIED: i32 = 12020;
/// 13001 PRESENCE_NOT_CONNECTED: presence is not connected.
pub const RTM2_ERR_PRESENCE_NOT_CONNECTED: i32 = 13001;
/// 13002 PRESENCE_NOT_WRITABLE: presence is not writable, try later.
pub const RTM2_ERR_PRESENCE_NOT_WRITABLE: i32 = 13002;
/// 13003 PRESENCE_INVALID_ARGUMENT: a presence argument is invalid.
pub const RTM2_ERR_PRESENCE_INVALID_ARGUMENT: i32 = 13003;
/// 13004 PRESENCE_CACHED_TOO_MANY_STATES: too many cached states.
pub const RTM2_ERR_PRESENCE_CACHED_TOO_MANY_STATES: i32 = 13004;
/// 13005 PRESENCE_STATE_COUNT_OVERFLOW: too many state pairs.
pub const RTM2_ERR_PRESENCE_STATE_COUNT_OVERFLOW: i32 = 13005;
/// 13006 PRESENCE_INVALID_STATE_KEY: the state key is invalid.
pub const RTM2_ERR_PRESENCE_INVALID_STATE_KEY: i32 = 13006;
/// 13007 PRESENCE_INVALID_STATE_VALUE: the state value is invalid.
pub const RTM2_ERR_PRESENCE_INVALID_STATE_VALUE: i32 = 13007;
/// 13008 PRESENCE_STATE_KEY_SIZE_OVERFLOW: the state key is too long.
pub const RTM2_ERR_PRESENCE_STATE_KEY_SIZE_OVERFLOW: i32 = 13008;
/// 13009 PRESENCE_STATE_VALUE_SIZE_OVERFLOW: the state value is too long.
pub const RTM2_ERR_PRESENCE_STATE_VALUE_SIZE_OVERFLOW: i32 = 13009;
/// 13010 PRESENCE_STATE_DUPLICATE_KEY: a state key is duplicated.
pub const RTM2_ERR_PRESENCE_STATE_DUPLICATE_KEY: i32 = 13010;
/// 13011 PRESENCE_USER_NOT_EXIST: the user is not in the channel.
pub const RTM2_ERR_PRESENCE_USER_NOT_EXIST: i32 = 13011;
/// 13012 PRESENCE_OPERATION_TIMEOUT: the presence operation timed out.
pub const RTM2_ERR_PRESENCE_OPERATION_TIMEOUT: i32 = 13012;
/// 13013 PRESENCE_OPERATION_FAILED: the presence operation failed.
pub const RTM2_ERR_PRESENCE_OPERATION_FAILED: i32 = 13013;
/// 13014 PRESENCE_INACTIVE: presence is inactive.
pub const RTM2_ERR_PRESENCE_INACTIVE: i32 = 13014;
/// 13015 PRESENCE_PENDING_REQUEST_CANCELLED: a pending presence request was cancelled.
pub const RTM2_ERR_PRESENCE_PENDING_REQUEST_CANCELLED: i32 = 13015;
/// 13016 PRESENCE_PENDING_REQUEST_EXCEED_LIMITATION: too many pending presence requests.
pub const RTM2_ERR_PRESENCE_PENDING_REQUEST_EXCEED_LIMITATION: i32 = 13016;
/// 14001 LOCK_OPERATION_FAILED: the lock operation failed.
pub const RTM2_ERR_LOCK_OPERATION_FAILED: i32 = 14001;
/// 14002 LOCK_OPERATION_TIMEOUT: the lock operation timed out.
pub const RTM2_ERR_LOCK_OPERATION_TIMEOUT: i32 = 14002;
/// 14003 LOCK_OPERATION_PERFORMING: the lock operation is already in progress.
pub const RTM2_ERR_LOCK_OPERATION_PERFORMING: i32 = 14003;
/// 14004 LOCK_ALREADY_EXIST: the lock already exists.
pub const RTM2_ERR_LOCK_ALREADY_EXIST: i32 = 14004;
/// 14005 LOCK_INVALID_NAME: the lock name is invalid.
pub const RTM2_ERR_LOCK_INVALID_NAME: i32 = 14005;
/// 14006 LOCK_NOT_ACQUIRED: the lock is not acquired.
pub const RTM2_ERR_LOCK_NOT_ACQUIRED: i32 = 14006;
/// 14007 LOCK_ACQUIRE_FAILED: acquiring the lock failed.
pub const RTM2_ERR_LOCK_ACQUIRE_FAILED: i32 = 14007;
/// 14008 LOCK_NOT_EXIST: the lock does not exist.
pub const RTM2_ERR_LOCK_NOT_EXIST: i32 = 14008;
/// 14009 LOCK_NOT_AVAILABLE: the lock service is not available.
pub const RTM2_ERR_LOCK_NOT_AVAILABLE: i32 = 14009;
/// 14010 LOCK_PERMISSION_DENIED: no permission for this lock operation.
pub const RTM2_ERR_LOCK_PERMISSION_DENIED: i32 = 14010;
/// 15001 HISTORY_OPERATION_FAILED: the history operation failed.
pub const RTM2_ERR_HISTORY_OPERATION_FAILED: i32 = 15001;
/// 15002 HISTORY_INVALID_TIMESTAMP: the history timestamp is invalid.
pub const RTM2_ERR_HISTORY_INVALID_TIMESTAMP: i32 = 15002;
/// 15003 HISTORY_OPERATION_TIMEOUT: the history operation timed out.
pub const RTM2_ERR_HISTORY_OPERATION_TIMEOUT: i32 = 15003;
/// 15004 HISTORY_OPERATION_NOT_PERMITTED: the history operation is not permitted.
pub const RTM2_ERR_HISTORY_OPERATION_NOT_PERMITTED: i32 = 15004;
/// 15005 HISTORY_NOT_AVAILABLE: message history is not available.
pub const RTM2_ERR_HISTORY_NOT_AVAILABLE: i32 = 15005;
/// 15006 HISTORY_PERMISSION_DENIED: no permission to read history.
pub const RTM2_ERR_HISTORY_PERMISSION_DENIED: i32 = 15006;

const FFI_CODES: &[(i32, &str, &str)] = &[
    (RTM2_OK, "OK", "success"),
    (RTM2_ERR_NULL_PARAMETER, "NULL_PARAMETER", "a required pointer argument was NULL"),
    (RTM2_ERR_INVALID_UTF8, "INVALID_UTF8", "a string argument is not valid UTF-8"),
    (RTM2_ERR_PANIC, "PANIC", "internal error (a panic was caught at the API boundary)"),
    (RTM2_ERR_INTERNAL, "INTERNAL", "the SDK could not start an internal resource"),
    (RTM2_ERR_CANCELED, "CANCELED", "the operation was canceled by rtm2_cancel"),
];

struct Texts {
    by_code: HashMap<i32, (CString, CString)>,
    unknown_name: CString,
    unknown_message: CString,
}

static TEXTS: LazyLock<Texts> = LazyLock::new(|| {
    let mut by_code = HashMap::new();
    for &(code, name, msg) in FFI_CODES {
        by_code.insert(code, (CString::new(name).unwrap_or_default(), CString::new(msg).unwrap_or_default()));
    }
    for &c in ErrorCode::ALL {
        by_code.insert(
            c.code() as i32,
            (CString::new(c.name()).unwrap_or_default(), CString::new(c.message()).unwrap_or_default()),
        );
    }
    Texts { by_code, unknown_name: c"UNKNOWN".to_owned(), unknown_message: c"unknown status code".to_owned() }
});

/// The name of a status code: `"OK"`, `"NULL_PARAMETER"`, the RTM name (`"NOT_LOGIN"` for
/// 10002, …), or `"UNKNOWN"`.
///
/// The returned string is static: never NULL, never freed by the caller. Any thread.
#[unsafe(no_mangle)]
pub extern "C" fn rtm2_status_name(code: i32) -> *const c_char {
    ffi_value(c"UNKNOWN".as_ptr(), || {
        let t = &*TEXTS;
        t.by_code.get(&code).map(|(n, _)| n.as_ptr()).unwrap_or(t.unknown_name.as_ptr())
    })
}

/// A short readable description of a status code (`"the operation needs a logged-in client"`
/// for 10002), or `"unknown status code"`.
///
/// The returned string is static: never NULL, never freed by the caller. Any thread.
#[unsafe(no_mangle)]
pub extern "C" fn rtm2_status_message(code: i32) -> *const c_char {
    ffi_value(c"unknown status code".as_ptr(), || {
        let t = &*TEXTS;
        t.by_code.get(&code).map(|(_, m)| m.as_ptr()).unwrap_or(t.unknown_message.as_ptr())
    })
}

/// The detailed reason of the last call on THIS thread that returned a non-zero status
/// (e.g. `"channel name must not be NULL"`), or `""` if none failed yet. It is not cleared by
/// successful calls.
///
/// The returned string is owned by the SDK and valid until the next failing rtm2 call on this
/// thread; copy it to keep it. Never NULL. Failures reported through a completion callback
/// carry their reason in `rtm2_result.reason` instead.
#[unsafe(no_mangle)]
pub extern "C" fn rtm2_last_error_message() -> *const c_char {
    ffi_value(c"".as_ptr(), last_error_ptr)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    fn s(p: *const c_char) -> &'static str {
        unsafe { CStr::from_ptr(p) }.to_str().unwrap()
    }

    #[test]
    fn every_rtm_code_has_a_constant_name_and_message() {
        // The constants above are the RTM table (a test keeps them in step with rtm2-proto).
        let src = include_str!("status.rs");
        for &c in ErrorCode::ALL {
            let line = format!("pub const RTM2_ERR_{}: i32 = {};", c.name(), c.code());
            assert!(src.contains(&line), "missing constant: {line}");
            assert_eq!(s(rtm2_status_name(c.code() as i32)), c.name());
            assert_eq!(s(rtm2_status_message(c.code() as i32)), c.message());
        }
        let consts = src.lines().filter(|l| l.starts_with("pub const RTM2_ERR_")).count();
        assert_eq!(consts, ErrorCode::ALL.len() + FFI_CODES.len() - 1, "a constant is not in the RTM table");
        assert_eq!(s(rtm2_status_name(RTM2_OK)), "OK");
        assert_eq!(s(rtm2_status_name(RTM2_ERR_NULL_PARAMETER)), "NULL_PARAMETER");
        assert_eq!(s(rtm2_status_name(-5)), "UNKNOWN");
        assert_eq!(s(rtm2_status_message(123456)), "unknown status code");
        for &(code, _, _) in FFI_CODES {
            assert!(ErrorCode::from_u32(code as u32).is_none(), "{code} collides with an RTM code");
        }
    }
}
