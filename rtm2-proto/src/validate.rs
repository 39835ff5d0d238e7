//! Input rules shared by the SDK (before sending) and the server (on receipt).
//!
//! Names (user ids, channel names, topic names) use the reference character set
//! `[a-zA-Z0-9 !#$%&()+,\-:;<=>?@\[\]^_{|}~.]`, must not be empty, must not start with `_`,
//! and must not be the string `"null"`. The reference disagrees about `.`; the documentation and
//! its examples (`chats.room1`) allow it, so we do.

use crate::error_code::ErrorCode;
use crate::limits::*;

/// A rule a value broke: the RTM code and a readable reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The RTM error code.
    pub code: ErrorCode,
    /// What was wrong, in words.
    pub reason: String,
}

impl Violation {
    /// Make a violation.
    pub fn new(code: ErrorCode, reason: impl Into<String>) -> Self {
        Violation { code, reason: reason.into() }
    }
}

/// Result of a check.
pub type Check = Result<(), Violation>;

fn name_char_ok(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b" !#$%&()+,-:;<=>?@[]^_{|}~.".contains(&c)
}

/// Checks a name against the shared rule with a maximum length in bytes.
pub fn name(kind: &str, value: &str, max_len: usize, code: ErrorCode) -> Check {
    if value.is_empty() {
        return Err(Violation::new(code, format!("{kind} must not be empty")));
    }
    if value.len() > max_len {
        return Err(Violation::new(code, format!("{kind} is {} bytes; at most {max_len} are allowed", value.len())));
    }
    if value.starts_with('_') {
        return Err(Violation::new(code, format!("{kind} must not start with '_'")));
    }
    if value == "null" {
        return Err(Violation::new(code, format!("{kind} must not be \"null\"")));
    }
    if let Some(bad) = value.bytes().find(|&b| !name_char_ok(b)) {
        return Err(Violation::new(
            code,
            format!("{kind} contains a character that is not allowed (byte 0x{bad:02x})"),
        ));
    }
    Ok(())
}

/// App id: 32 characters `[0-9A-Za-z]`.
pub fn app_id(value: &str) -> Check {
    if value.len() != APP_ID_LEN || !value.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(Violation::new(ErrorCode::INVALID_APP_ID, "app id must be exactly 32 characters [0-9A-Za-z]"));
    }
    Ok(())
}

/// User id (10006).
pub fn user_id(value: &str) -> Check {
    name("user id", value, MAX_USER_ID_LEN, ErrorCode::INVALID_USER_ID)
}

/// Message or stream channel name (10008).
pub fn channel_name(value: &str) -> Check {
    name("channel name", value, MAX_CHANNEL_NAME_LEN, ErrorCode::INVALID_CHANNEL_NAME)
}

/// Topic name (11008).
pub fn topic_name(value: &str) -> Check {
    name("topic name", value, MAX_TOPIC_NAME_LEN, ErrorCode::CHANNEL_INVALID_TOPIC_NAME)
}

/// customType: empty means absent; otherwise at most 32 bytes (11029).
pub fn custom_type(value: &str) -> Check {
    if value.len() > MAX_CUSTOM_TYPE_LEN {
        return Err(Violation::new(
            ErrorCode::CHANNEL_CUSTOM_TYPE_LENGTH_OVERFLOW,
            format!("customType is {} bytes; at most {MAX_CUSTOM_TYPE_LEN} are allowed", value.len()),
        ));
    }
    Ok(())
}

fn payload(payload: &[u8], message_type: u32, custom: &str, max: usize) -> Check {
    if payload.is_empty() {
        return Err(Violation::new(ErrorCode::CHANNEL_INVALID_MESSAGE, "message must not be empty"));
    }
    match message_type {
        0 => {}
        1 => {
            if std::str::from_utf8(payload).is_err() {
                return Err(Violation::new(ErrorCode::CHANNEL_INVALID_MESSAGE, "a STRING message must be valid UTF-8"));
            }
        }
        other => {
            return Err(Violation::new(
                ErrorCode::CHANNEL_UNSUPPORTED_MESSAGE_TYPE,
                format!("message type {other} is not BINARY (0) or STRING (1)"),
            ));
        }
    }
    custom_type(custom)?;
    let total = payload.len() + custom.len();
    if total > max {
        return Err(Violation::new(
            ErrorCode::CHANNEL_MESSAGE_LENGTH_EXCEED_LIMITATION,
            format!("payload + customType is {total} bytes; at most {max} are allowed"),
        ));
    }
    Ok(())
}

/// A message-channel or user-channel message (payload + customType ≤ 32 KiB).
pub fn message(data: &[u8], message_type: u32, custom: &str) -> Check {
    payload(data, message_type, custom, MAX_MESSAGE_LEN)
}

/// A message as the server sees it: plain ([`message`] or [`topic_message`]), or end-to-end
/// encrypted with mode `encryption` (1..=2): then the payload is a nonce, the ciphertext and a
/// tag, of a plaintext within the same limit — its text the server cannot check.
pub fn published(data: &[u8], message_type: u32, custom: &str, encryption: u32, topic: bool) -> Check {
    let max = if topic { MAX_TOPIC_MESSAGE_LEN } else { MAX_MESSAGE_LEN };
    match encryption {
        0 => payload(data, message_type, custom, max),
        1..=MAX_ENCRYPTION_MODE => {
            if data.len() <= ENCRYPTION_OVERHEAD {
                return Err(Violation::new(
                    ErrorCode::CHANNEL_INVALID_MESSAGE,
                    format!(
                        "an encrypted payload is a nonce, ciphertext and tag: more than {} bytes",
                        ENCRYPTION_OVERHEAD
                    ),
                ));
            }
            // BINARY for the checks: the ciphertext of a STRING is no text.
            let kind = if message_type <= 1 { 0 } else { message_type };
            payload(data, kind, custom, max + ENCRYPTION_OVERHEAD)
        }
        other => Err(Violation::new(
            ErrorCode::INVALID_ENCRYPTION_PARAMETER,
            format!("encryption mode {other} is not AES_128_GCM (1) or AES_256_GCM (2)"),
        )),
    }
}

/// A topic message (payload + customType ≤ 1 KiB).
pub fn topic_message(data: &[u8], message_type: u32, custom: &str) -> Check {
    payload(data, message_type, custom, MAX_TOPIC_MESSAGE_LEN)
}

// ---- sizes alone ----
//
// For callers that hold a length or a count before the data (the C boundary, where a wrong
// length would make the SDK read past the caller's buffer): each refuses, with the code of the
// full check, what that check would refuse for the size alone — so checking the size first
// changes no result, only what is read.

fn too_many(code: ErrorCode, n: usize, max: usize, what: &str) -> Check {
    if n > max {
        return Err(Violation::new(code, format!("{n} {what}; at most {max} are allowed")));
    }
    Ok(())
}

/// A message-channel / user-channel payload of `len` bytes (11010 over 32 KiB).
pub fn message_len(len: usize) -> Check {
    too_many(ErrorCode::CHANNEL_MESSAGE_LENGTH_EXCEED_LIMITATION, len, MAX_MESSAGE_LEN, "payload bytes")
}

/// A topic-message payload of `len` bytes (11010 over 1 KiB).
pub fn topic_message_len(len: usize) -> Check {
    too_many(ErrorCode::CHANNEL_MESSAGE_LENGTH_EXCEED_LIMITATION, len, MAX_TOPIC_MESSAGE_LEN, "payload bytes")
}

/// `n` presence state pairs in one setState call (13005 over 32).
pub fn state_count(n: usize) -> Check {
    too_many(ErrorCode::PRESENCE_STATE_COUNT_OVERFLOW, n, MAX_STATE_ITEMS, "state pairs")
}

/// `n` state keys in one removeState call (13005 over 32: a state never has more keys).
pub fn state_key_count(n: usize) -> Check {
    too_many(ErrorCode::PRESENCE_STATE_COUNT_OVERFLOW, n, MAX_STATE_ITEMS, "state keys")
}

/// `n` metadata items in one write (12002 over 32).
pub fn metadata_item_count(n: usize) -> Check {
    too_many(ErrorCode::STORAGE_METADATA_ITEM_EXCEED_LIMITATION, n, MAX_METADATA_ITEMS_PER_CALL, "metadata items")
}

/// `n` publishers named in one subscribeTopic / unsubscribeTopic call (11011
/// CHANNEL_INVALID_USER_LIST over 128: more than a stream channel can hold. Up to that, users
/// beyond the 64 publishers of a topic fail one by one in the result).
pub fn topic_user_count(n: usize) -> Check {
    too_many(ErrorCode::CHANNEL_INVALID_USER_LIST, n, MAX_STREAM_CHANNEL_USERS, "users in the list")
}

/// Topic meta (≤ 256 bytes, 11018).
pub fn topic_meta(meta: &str) -> Check {
    if meta.len() > MAX_TOPIC_META_LEN {
        return Err(Violation::new(
            ErrorCode::CHANNEL_INVALID_TOPIC_META,
            format!("topic meta is {} bytes; at most {MAX_TOPIC_META_LEN} are allowed", meta.len()),
        ));
    }
    Ok(())
}

/// Topic qos (0 or 1) and priority (0, 1, 4, 8) — 10014 otherwise.
pub fn topic_options(qos: u32, priority: u32) -> Check {
    if crate::enums::MessageQos::from_u32(qos).is_none() {
        return Err(Violation::new(ErrorCode::INVALID_PARAMETER, format!("qos {qos} is not 0 or 1")));
    }
    if crate::enums::MessagePriority::from_u32(priority).is_none() {
        return Err(Violation::new(ErrorCode::INVALID_PARAMETER, format!("priority {priority} is not 0, 1, 4 or 8")));
    }
    Ok(())
}

/// The channel type of a presence, storage or lock call: MESSAGE or STREAM (10014 otherwise).
pub fn scope_channel_type(channel_type: u32) -> Result<crate::enums::ChannelType, Violation> {
    use crate::enums::ChannelType;
    match ChannelType::from_u32(channel_type) {
        Some(t @ (ChannelType::MESSAGE | ChannelType::STREAM)) => Ok(t),
        _ => Err(Violation::new(
            ErrorCode::INVALID_CHANNEL_TYPE,
            format!("channel type must be MESSAGE (1) or STREAM (2), not {channel_type}"),
        )),
    }
}

/// The channel of a presence, storage or lock call: its type (MESSAGE or STREAM, 10019) and
/// its name (10008).
pub fn scope(channel: &str, channel_type: u32) -> Result<crate::enums::ChannelType, Violation> {
    let t = scope_channel_type(channel_type)?;
    channel_name(channel)?;
    Ok(t)
}

/// Presence state items of one setState call: keys valid, unique, sizes within limits. (The
/// merged count is checked where the existing state is known.)
pub fn state_items<'a>(items: impl IntoIterator<Item = (&'a str, &'a str)>) -> Check {
    let mut seen = std::collections::HashSet::new();
    let mut n = 0usize;
    for (k, v) in items {
        n += 1;
        if k.len() > MAX_STATE_KEY_LEN {
            return Err(Violation::new(
                ErrorCode::PRESENCE_STATE_KEY_SIZE_OVERFLOW,
                format!("state key is {} bytes; at most {MAX_STATE_KEY_LEN} are allowed", k.len()),
            ));
        }
        name("state key", k, MAX_STATE_KEY_LEN, ErrorCode::PRESENCE_INVALID_STATE_KEY)?;
        // (An encrypted value holds a plaintext of at most the same length.)
        let max =
            if v.starts_with(ENCRYPTED_STATE_PREFIX) { MAX_ENCRYPTED_STATE_VALUE_LEN } else { MAX_STATE_VALUE_LEN };
        if v.len() > max {
            return Err(Violation::new(
                ErrorCode::PRESENCE_STATE_VALUE_SIZE_OVERFLOW,
                format!("state value of {k:?} is {} bytes; at most {max} are allowed", v.len()),
            ));
        }
        if !seen.insert(k) {
            return Err(Violation::new(
                ErrorCode::PRESENCE_STATE_DUPLICATE_KEY,
                format!("state key {k:?} is repeated"),
            ));
        }
    }
    if n == 0 {
        return Err(Violation::new(ErrorCode::PRESENCE_INVALID_ARGUMENT, "the state must not be empty"));
    }
    if n > MAX_STATE_ITEMS {
        return Err(Violation::new(
            ErrorCode::PRESENCE_STATE_COUNT_OVERFLOW,
            format!("{n} state pairs; at most {MAX_STATE_ITEMS} are allowed per channel"),
        ));
    }
    Ok(())
}

/// Metadata items of one write: at most 32, keys valid and unique, values and the request
/// within the size limits, revisions ≥ -1 (and not 0 for update/remove).
pub fn metadata_items<'a>(
    items: impl IntoIterator<Item = (&'a str, &'a str, Option<i64>)>,
    op: crate::enums::MetadataOp,
) -> Check {
    use crate::enums::MetadataOp;
    let mut seen = std::collections::HashSet::new();
    let mut total = 0usize;
    for (k, v, rev) in items {
        if seen.len() >= MAX_METADATA_ITEMS_PER_CALL {
            return Err(Violation::new(
                ErrorCode::STORAGE_METADATA_ITEM_EXCEED_LIMITATION,
                format!("at most {MAX_METADATA_ITEMS_PER_CALL} items per call"),
            ));
        }
        if k.len() > MAX_METADATA_KEY_LEN {
            return Err(Violation::new(
                ErrorCode::STORAGE_KEY_LENGTH_OVERFLOW,
                format!("metadata key is {} bytes; at most {MAX_METADATA_KEY_LEN} are allowed", k.len()),
            ));
        }
        name("metadata key", k, MAX_METADATA_KEY_LEN, ErrorCode::STORAGE_INVALID_KEY)?;
        if v.len() > MAX_METADATA_VALUE_LEN {
            return Err(Violation::new(
                ErrorCode::STORAGE_VALUE_LENGTH_OVERFLOW,
                format!("value of {k:?} is {} bytes; at most {MAX_METADATA_VALUE_LEN} are allowed", v.len()),
            ));
        }
        revision(rev, op, "item")?;
        if !seen.insert(k) {
            return Err(Violation::new(ErrorCode::STORAGE_DUPLICATE_KEY, format!("metadata key {k:?} is repeated")));
        }
        total += k.len() + if op == MetadataOp::REMOVE { 0 } else { v.len() };
    }
    if total > MAX_METADATA_SET_LEN {
        return Err(Violation::new(
            ErrorCode::STORAGE_METADATA_LENGTH_OVERFLOW,
            format!("the items are {total} bytes; at most {MAX_METADATA_SET_LEN} are allowed"),
        ));
    }
    if seen.is_empty() && op != MetadataOp::REMOVE {
        return Err(Violation::new(ErrorCode::STORAGE_INVALID_METADATA_ITEM, "at least one metadata item is needed"));
    }
    Ok(())
}

/// A revision (major or item) of a write: absent/-1 = no check, 0 = create only (set only),
/// N > 0 = must match (12005 otherwise).
pub fn revision(rev: Option<i64>, op: crate::enums::MetadataOp, what: &str) -> Check {
    match rev {
        None | Some(-1) => Ok(()),
        Some(0) if op == crate::enums::MetadataOp::SET => Ok(()),
        Some(0) => Err(Violation::new(
            ErrorCode::STORAGE_INVALID_REVISION,
            format!("{what} revision 0 (create only) is only valid for set"),
        )),
        Some(n) if n > 0 => Ok(()),
        Some(n) => Err(Violation::new(ErrorCode::STORAGE_INVALID_REVISION, format!("{what} revision {n} is below -1"))),
    }
}

/// Lock name (≤ 64 bytes, name rule; 14005).
pub fn lock_name(value: &str) -> Check {
    name("lock name", value, MAX_LOCK_NAME_LEN, ErrorCode::LOCK_INVALID_NAME)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_alone_agree_with_the_full_checks() {
        assert!(message_len(MAX_MESSAGE_LEN).is_ok());
        let code = |c: Check| c.unwrap_err().code;
        assert_eq!(code(message_len(MAX_MESSAGE_LEN + 1)), code(message(&vec![1; MAX_MESSAGE_LEN + 1], 0, "")));
        assert_eq!(code(message_len(1 << 40)), ErrorCode::CHANNEL_MESSAGE_LENGTH_EXCEED_LIMITATION);
        assert!(topic_message_len(MAX_TOPIC_MESSAGE_LEN).is_ok());
        assert_eq!(
            code(topic_message_len(MAX_TOPIC_MESSAGE_LEN + 1)),
            code(topic_message(&vec![1; MAX_TOPIC_MESSAGE_LEN + 1], 0, ""))
        );
        let pairs: Vec<(String, String)> = (0..=MAX_STATE_ITEMS).map(|i| (format!("k{i}"), "v".into())).collect();
        let full = state_items(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        assert!(state_count(MAX_STATE_ITEMS).is_ok());
        assert_eq!(code(state_count(MAX_STATE_ITEMS + 1)), code(full));
        assert!(state_key_count(MAX_STATE_ITEMS).is_ok());
        assert_eq!(code(state_key_count(usize::MAX)), ErrorCode::PRESENCE_STATE_COUNT_OVERFLOW);
        let full =
            metadata_items(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str(), None)), crate::enums::MetadataOp::SET);
        assert!(metadata_item_count(MAX_METADATA_ITEMS_PER_CALL).is_ok());
        assert_eq!(code(metadata_item_count(MAX_METADATA_ITEMS_PER_CALL + 1)), code(full));
        assert!(topic_user_count(MAX_STREAM_CHANNEL_USERS).is_ok());
        assert_eq!(code(topic_user_count(MAX_STREAM_CHANNEL_USERS + 1)), ErrorCode::CHANNEL_INVALID_USER_LIST);
    }

    #[test]
    fn names_follow_the_rule() {
        assert!(channel_name("chats.room1").is_ok());
        assert!(channel_name("a b-c:d").is_ok());
        assert!(channel_name(&"x".repeat(64)).is_ok());
        assert_eq!(channel_name(&"x".repeat(65)).unwrap_err().code, ErrorCode::INVALID_CHANNEL_NAME);
        assert!(channel_name("").is_err());
        assert!(channel_name("_hidden").is_err());
        assert!(channel_name("null").is_err());
        assert!(channel_name("snow☃").is_err());
        assert!(channel_name("a/b").is_err());
        assert!(channel_name("tab\there").is_err());
        assert_eq!(user_id("").unwrap_err().code, ErrorCode::INVALID_USER_ID);
        assert!(topic_name(&"t".repeat(16)).is_ok());
        assert_eq!(topic_name(&"t".repeat(17)).unwrap_err().code, ErrorCode::CHANNEL_INVALID_TOPIC_NAME);
        assert!(app_id("970CA35de60c44645bbae8a215061b33").is_ok());
        assert!(app_id("970CA35de60c44645bbae8a215061b3").is_err());
        assert!(app_id("970CA35de60c44645bbae8a215061b3-").is_err());
    }

    #[test]
    fn payload_limits_are_inclusive() {
        let ok = vec![1u8; MAX_MESSAGE_LEN - 4];
        assert!(message(&ok, 0, "abcd").is_ok());
        assert_eq!(message(&ok, 0, "abcde").unwrap_err().code, ErrorCode::CHANNEL_MESSAGE_LENGTH_EXCEED_LIMITATION);
        assert_eq!(message(&[], 0, "").unwrap_err().code, ErrorCode::CHANNEL_INVALID_MESSAGE);
        assert_eq!(message(&[0xff], 1, "").unwrap_err().code, ErrorCode::CHANNEL_INVALID_MESSAGE);
        assert_eq!(message(b"x", 7, "").unwrap_err().code, ErrorCode::CHANNEL_UNSUPPORTED_MESSAGE_TYPE);
        assert!(custom_type(&"c".repeat(32)).is_ok());
        assert_eq!(custom_type(&"c".repeat(33)).unwrap_err().code, ErrorCode::CHANNEL_CUSTOM_TYPE_LENGTH_OVERFLOW);
        assert!(topic_message(&[1u8; 1024], 0, "").is_ok());
        assert!(topic_message(&[1u8; 1024], 0, "x").is_err());
        assert!(topic_meta(&"m".repeat(256)).is_ok());
        assert_eq!(topic_meta(&"m".repeat(257)).unwrap_err().code, ErrorCode::CHANNEL_INVALID_TOPIC_META);
        assert!(topic_options(1, 8).is_ok());
        assert!(topic_options(2, 4).is_err());
        assert!(topic_options(0, 3).is_err());
    }

    #[test]
    fn service_inputs() {
        use crate::enums::MetadataOp;
        assert!(scope_channel_type(1).is_ok() && scope_channel_type(2).is_ok());
        assert_eq!(scope_channel_type(3).unwrap_err().code, ErrorCode::INVALID_CHANNEL_TYPE);
        assert_eq!(scope_channel_type(0).unwrap_err().code, ErrorCode::INVALID_CHANNEL_TYPE);

        assert!(state_items([("k", "v")]).is_ok());
        let code = |r: Check| r.unwrap_err().code;
        assert_eq!(code(state_items([])), ErrorCode::PRESENCE_INVALID_ARGUMENT);
        assert_eq!(code(state_items([("k", "v"), ("k", "w")])), ErrorCode::PRESENCE_STATE_DUPLICATE_KEY);
        let long_key = "k".repeat(33);
        assert_eq!(code(state_items([(long_key.as_str(), "v")])), ErrorCode::PRESENCE_STATE_KEY_SIZE_OVERFLOW);
        assert_eq!(code(state_items([("_k", "v")])), ErrorCode::PRESENCE_INVALID_STATE_KEY);
        let big = "v".repeat(MAX_STATE_VALUE_LEN + 1);
        assert_eq!(code(state_items([("k", big.as_str())])), ErrorCode::PRESENCE_STATE_VALUE_SIZE_OVERFLOW);
        let keys: Vec<String> = (0..33).map(|i| format!("k{i}")).collect();
        assert_eq!(code(state_items(keys.iter().map(|k| (k.as_str(), "v")))), ErrorCode::PRESENCE_STATE_COUNT_OVERFLOW);

        let set = MetadataOp::SET;
        assert!(metadata_items([("k", "v", None), ("j", "w", Some(0))], set).is_ok());
        assert!(metadata_items([], MetadataOp::REMOVE).is_ok());
        assert_eq!(code(metadata_items([], set)), ErrorCode::STORAGE_INVALID_METADATA_ITEM);
        assert_eq!(
            code(metadata_items([("k", "v", Some(0))], MetadataOp::UPDATE)),
            ErrorCode::STORAGE_INVALID_REVISION
        );
        assert_eq!(code(metadata_items([("k", "v", Some(-2))], set)), ErrorCode::STORAGE_INVALID_REVISION);
        assert_eq!(code(metadata_items([("k", "", None), ("k", "", None)], set)), ErrorCode::STORAGE_DUPLICATE_KEY);
        assert_eq!(code(metadata_items([(long_key.as_str(), "v", None)], set)), ErrorCode::STORAGE_KEY_LENGTH_OVERFLOW);
        let big = "v".repeat(MAX_METADATA_VALUE_LEN + 1);
        assert_eq!(code(metadata_items([("k", big.as_str(), None)], set)), ErrorCode::STORAGE_VALUE_LENGTH_OVERFLOW);
        let half = "v".repeat(MAX_METADATA_VALUE_LEN / 2 + 1);
        let two = [("a", half.as_str(), None), ("b", half.as_str(), None)];
        assert_eq!(code(metadata_items(two, set)), ErrorCode::STORAGE_METADATA_LENGTH_OVERFLOW);
        let many: Vec<String> = (0..33).map(|i| format!("k{i}")).collect();
        let items = many.iter().map(|k| (k.as_str(), "v", None));
        assert_eq!(code(metadata_items(items, set)), ErrorCode::STORAGE_METADATA_ITEM_EXCEED_LIMITATION);
        assert!(revision(Some(0), set, "major").is_ok());
        assert_eq!(code(revision(Some(0), MetadataOp::REMOVE, "major")), ErrorCode::STORAGE_INVALID_REVISION);

        assert!(lock_name(&"l".repeat(64)).is_ok());
        assert_eq!(code(lock_name(&"l".repeat(65))), ErrorCode::LOCK_INVALID_NAME);
        assert_eq!(code(lock_name("a/b")), ErrorCode::LOCK_INVALID_NAME);
    }
}
