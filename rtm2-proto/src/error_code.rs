//! The RTM 2 error-code table (10001…15006), shared by server, SDK and every binding.
//!
//! Codes are positive, as in the reference Go SDK; the JavaScript and C++ reference SDKs use the
//! same magnitudes negated. `0` is success and is not an `ErrorCode`.

macro_rules! error_codes {
    ($( $code:literal $name:ident $msg:literal ;)*) => {
        /// An RTM error code. `as u32` gives the number.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u32)]
        #[allow(non_camel_case_types)]
        pub enum ErrorCode {
            $( #[doc = $msg] $name = $code, )*
        }

        impl ErrorCode {
            /// Every code, in ascending order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$name,)*];

            /// The code for a number, if it is in the table.
            pub fn from_u32(code: u32) -> Option<ErrorCode> {
                match code {
                    $( $code => Some(ErrorCode::$name), )*
                    _ => None,
                }
            }

            /// The reference name, e.g. `"CHANNEL_RECEIVER_OFFLINE"`.
            pub fn name(self) -> &'static str {
                match self {
                    $( ErrorCode::$name => stringify!($name), )*
                }
            }

            /// A short human-readable description of the code.
            pub fn message(self) -> &'static str {
                match self {
                    $( ErrorCode::$name => $msg, )*
                }
            }
        }
    };
}

error_codes! {
    10001 NOT_INITIALIZED "the client is not initialized";
    10002 NOT_LOGIN "the operation needs a logged-in client";
    10003 INVALID_APP_ID "the app id is invalid";
    10004 INVALID_EVENT_HANDLER "the event handler is invalid";
    10005 INVALID_TOKEN "the token is invalid";
    10006 INVALID_USER_ID "the user id is invalid";
    10007 INIT_SERVICE_FAILED "the service failed to initialize";
    10008 INVALID_CHANNEL_NAME "the channel name is invalid";
    10009 TOKEN_EXPIRED "the token has expired";
    10010 LOGIN_NO_SERVER_RESOURCES "the server has no resources for this login";
    10011 LOGIN_TIMEOUT "login timed out";
    10012 LOGIN_REJECTED "the server rejected the login";
    10013 LOGIN_ABORTED "login was aborted";
    10014 INVALID_PARAMETER "a parameter is invalid";
    10015 LOGIN_NOT_AUTHORIZED "the login is not authorized";
    10016 INCONSISTENT_APPID "the app id in the token does not match the client's app id";
    10017 DUPLICATE_OPERATION "the same request is already in progress or done";
    10018 INSTANCE_ALREADY_RELEASED "the instance was already released";
    10019 INVALID_CHANNEL_TYPE "the channel type is invalid for this operation";
    10020 INVALID_ENCRYPTION_PARAMETER "the encryption parameters are invalid";
    10021 OPERATION_RATE_EXCEED_LIMITATION "the operation rate exceeds the limit";
    10022 SERVICE_NOT_SUPPORTED "the service or protocol version is not supported";
    10023 LOGIN_CANCELED "login was canceled by a newer login or a logout";
    10024 INVALID_PRIVATE_CONFIG "the private deployment configuration is invalid";
    10025 NOT_CONNECTED "the client is not connected";
    10026 RENEW_TOKEN_TIMEOUT "token renewal timed out";
    10027 DUPLICATE_USER_ID "another active client uses the same app id and user id";
    11001 CHANNEL_NOT_JOINED "the channel is not joined";
    11002 CHANNEL_NOT_SUBSCRIBED "the channel is not subscribed";
    11003 CHANNEL_EXCEED_TOPIC_USER_LIMITATION "too many publishers subscribed in the topic";
    11004 CHANNEL_IN_REUSE "the channel is in reuse";
    11005 CHANNEL_INSTANCE_EXCEED_LIMITATION "too many subscribed or joined channels";
    11006 CHANNEL_IN_ERROR_STATE "the channel is in an error state";
    11007 CHANNEL_JOIN_FAILED "joining the channel failed";
    11008 CHANNEL_INVALID_TOPIC_NAME "the topic name is invalid";
    11009 CHANNEL_INVALID_MESSAGE "the message is invalid";
    11010 CHANNEL_MESSAGE_LENGTH_EXCEED_LIMITATION "the message is too long";
    11011 CHANNEL_INVALID_USER_LIST "the user list is invalid";
    11012 CHANNEL_NOT_AVAILABLE "the stream channel service is not available";
    11013 CHANNEL_TOPIC_NOT_SUBSCRIBED "the topic is not subscribed";
    11014 CHANNEL_EXCEED_TOPIC_LIMITATION "too many topics";
    11015 CHANNEL_JOIN_TOPIC_FAILED "joining the topic failed";
    11016 CHANNEL_TOPIC_NOT_JOINED "the topic is not joined";
    11017 CHANNEL_TOPIC_NOT_EXIST "the topic does not exist";
    11018 CHANNEL_INVALID_TOPIC_META "the topic meta is invalid or too long";
    11019 CHANNEL_SUBSCRIBE_TIMEOUT "subscribing timed out";
    11020 CHANNEL_SUBSCRIBE_TOO_FREQUENT "subscribing too frequently";
    11021 CHANNEL_SUBSCRIBE_FAILED "subscribing failed";
    11022 CHANNEL_UNSUBSCRIBE_FAILED "unsubscribing failed";
    11023 CHANNEL_ENCRYPT_MESSAGE_FAILED "encrypting the message failed";
    11024 CHANNEL_PUBLISH_MESSAGE_FAILED "publishing the message failed";
    11025 CHANNEL_PUBLISH_MESSAGE_TOO_FREQUENT "publishing too frequently";
    11026 CHANNEL_PUBLISH_MESSAGE_TIMEOUT "publishing timed out";
    11027 CHANNEL_NOT_CONNECTED "the channel is not connected";
    11028 CHANNEL_LEAVE_FAILED "leaving the channel failed";
    11029 CHANNEL_CUSTOM_TYPE_LENGTH_OVERFLOW "the custom type is too long";
    11030 CHANNEL_INVALID_CUSTOM_TYPE "the custom type is invalid";
    11031 CHANNEL_UNSUPPORTED_MESSAGE_TYPE "the message type is not supported";
    11032 CHANNEL_PRESENCE_NOT_READY "presence is not ready";
    11033 CHANNEL_RECEIVER_OFFLINE "the receiver is offline";
    11034 CHANNEL_JOIN_CANCELED "joining the channel was canceled";
    11035 CHANNEL_RECEIVER_OFFLINE_BUT_STORE_SUCCEEDED "the receiver is offline but the message was stored";
    11036 CHANNEL_RECEIVER_OFFLINE_AND_STORE_FAILED "the receiver is offline and storing failed";
    11037 CHANNEL_MESSAGE_DELIVERED_BUT_STORE_FAILED "the message was delivered but storing failed";
    11038 CHANNEL_SUBSCRIBE_PERMISSION_DENIED "no permission to subscribe";
    11039 CHANNEL_PUBLISH_PERMISSION_DENIED "no permission to publish";
    11040 CHANNEL_SUBSCRIBE_CANCELED "subscribing was canceled";
    12001 STORAGE_OPERATION_FAILED "the storage operation failed";
    12002 STORAGE_METADATA_ITEM_EXCEED_LIMITATION "too many metadata items";
    12003 STORAGE_INVALID_METADATA_ITEM "a metadata item is invalid";
    12004 STORAGE_INVALID_ARGUMENT "a storage argument is invalid";
    12005 STORAGE_INVALID_REVISION "the revision is invalid";
    12006 STORAGE_METADATA_LENGTH_OVERFLOW "the metadata is too long";
    12007 STORAGE_INVALID_LOCK_NAME "the lock name is invalid";
    12008 STORAGE_LOCK_NOT_ACQUIRED "the lock is not acquired";
    12009 STORAGE_INVALID_KEY "the metadata key is invalid";
    12010 STORAGE_INVALID_VALUE "the metadata value is invalid";
    12011 STORAGE_KEY_LENGTH_OVERFLOW "the metadata key is too long";
    12012 STORAGE_VALUE_LENGTH_OVERFLOW "the metadata value is too long";
    12013 STORAGE_DUPLICATE_KEY "a metadata key is duplicated";
    12014 STORAGE_OUTDATED_REVISION "outdated revision or the key does not exist";
    12015 STORAGE_NOT_SUBSCRIBE "the metadata is not subscribed";
    12016 STORAGE_INVALID_METADATA_INSTANCE "the metadata instance is invalid";
    12017 STORAGE_SUBSCRIBE_USER_EXCEED_LIMITATION "too many subscribed users";
    12018 STORAGE_OPERATION_TIMEOUT "the storage operation timed out";
    12019 STORAGE_NOT_AVAILABLE "the storage service is not available";
    12020 STORAGE_PERMISSION_DENIED "no permission for this storage operation";
    13001 PRESENCE_NOT_CONNECTED "presence is not connected";
    13002 PRESENCE_NOT_WRITABLE "presence is not writable, try later";
    13003 PRESENCE_INVALID_ARGUMENT "a presence argument is invalid";
    13004 PRESENCE_CACHED_TOO_MANY_STATES "too many cached states";
    13005 PRESENCE_STATE_COUNT_OVERFLOW "too many state pairs";
    13006 PRESENCE_INVALID_STATE_KEY "the state key is invalid";
    13007 PRESENCE_INVALID_STATE_VALUE "the state value is invalid";
    13008 PRESENCE_STATE_KEY_SIZE_OVERFLOW "the state key is too long";
    13009 PRESENCE_STATE_VALUE_SIZE_OVERFLOW "the state value is too long";
    13010 PRESENCE_STATE_DUPLICATE_KEY "a state key is duplicated";
    13011 PRESENCE_USER_NOT_EXIST "the user is not in the channel";
    13012 PRESENCE_OPERATION_TIMEOUT "the presence operation timed out";
    13013 PRESENCE_OPERATION_FAILED "the presence operation failed";
    13014 PRESENCE_INACTIVE "presence is inactive";
    13015 PRESENCE_PENDING_REQUEST_CANCELLED "a pending presence request was cancelled";
    13016 PRESENCE_PENDING_REQUEST_EXCEED_LIMITATION "too many pending presence requests";
    14001 LOCK_OPERATION_FAILED "the lock operation failed";
    14002 LOCK_OPERATION_TIMEOUT "the lock operation timed out";
    14003 LOCK_OPERATION_PERFORMING "the lock operation is already in progress";
    14004 LOCK_ALREADY_EXIST "the lock already exists";
    14005 LOCK_INVALID_NAME "the lock name is invalid";
    14006 LOCK_NOT_ACQUIRED "the lock is not acquired";
    14007 LOCK_ACQUIRE_FAILED "acquiring the lock failed";
    14008 LOCK_NOT_EXIST "the lock does not exist";
    14009 LOCK_NOT_AVAILABLE "the lock service is not available";
    14010 LOCK_PERMISSION_DENIED "no permission for this lock operation";
    15001 HISTORY_OPERATION_FAILED "the history operation failed";
    15002 HISTORY_INVALID_TIMESTAMP "the history timestamp is invalid";
    15003 HISTORY_OPERATION_TIMEOUT "the history operation timed out";
    15004 HISTORY_OPERATION_NOT_PERMITTED "the history operation is not permitted";
    15005 HISTORY_NOT_AVAILABLE "message history is not available";
    15006 HISTORY_PERMISSION_DENIED "no permission to read history";
}

impl ErrorCode {
    /// The number of the code.
    pub fn code(self) -> u32 {
        self as u32
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.name(), self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_complete_and_round_trips() {
        assert_eq!(ErrorCode::ALL.len(), 27 + 40 + 20 + 16 + 10 + 6);
        for &c in ErrorCode::ALL {
            assert_eq!(ErrorCode::from_u32(c.code()), Some(c));
            assert!(!c.message().is_empty());
        }
        assert_eq!(ErrorCode::from_u32(0), None);
        assert_eq!(ErrorCode::from_u32(10028), None);
        assert_eq!(ErrorCode::CHANNEL_RECEIVER_OFFLINE.code(), 11033);
        assert_eq!(ErrorCode::CHANNEL_RECEIVER_OFFLINE.name(), "CHANNEL_RECEIVER_OFFLINE");
        assert_eq!(ErrorCode::HISTORY_PERMISSION_DENIED.code(), 15006);
    }
}
