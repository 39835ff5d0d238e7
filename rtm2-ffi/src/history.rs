//! Message history of a client (`rtm2_history_*`): the stored messages of a message channel,
//! or of the client's own user channel, a page at a time — and their borrowed C views.
//!
//! Messages are stored by publishing with `rtm2_publish_options.store_in_history`. The
//! function takes the client handle; its completion runs on the client's dispatcher thread
//! like every other completion (see `rtm2_client_login` for the conventions).

use std::ffi::{c_char, c_void};

use rtm2_core::{GetMessagesOptions, HistoryPage};

use crate::client::{channel_type_arg, client_ref, rtm2_client};
use crate::dispatch::rtm2_completion_cb;
use crate::error::ffi_status;
use crate::ptr::borrow_str;
use crate::results::{ResultData, Strings, array_ptr};

/// A stored message. Borrowed: valid only during the completion callback (copy what you
/// need). This struct will not change (arrays of it cross the boundary).
#[repr(C)]
pub struct rtm2_history_message {
    /// `RTM2_MESSAGE_TYPE_STRING` or `RTM2_MESSAGE_TYPE_BINARY`, as published.
    pub message_type: u32,
    /// The payload (decrypted, when the client encrypts): `payload_len` bytes, not
    /// NUL-terminated; NULL when the length is 0.
    pub payload: *const u8,
    /// Number of bytes at `payload`.
    pub payload_len: usize,
    /// The application-defined type (`""` if none).
    pub custom_type: *const c_char,
    /// The user who published it.
    pub publisher: *const c_char,
    /// The server's timestamp, ms since the Unix epoch; unique within the channel's history
    /// (the delivered message event carries the same one).
    pub timestamp_ms: u64,
}

/// Result of `rtm2_history_get_messages`: one page of a channel's history, newest first.
/// Borrowed: valid only during the completion callback.
#[repr(C)]
pub struct rtm2_history_page {
    /// `count` messages, newest first; NULL when the count is 0.
    pub messages: *const rtm2_history_message,
    /// Number of entries in `messages`.
    pub count: usize,
    /// 0: there is no older message. Else pass it as `start` to get the next (older) page.
    pub new_start: u64,
}

/// Calls `f` with the C view of a history page.
pub(crate) fn with_history_page(p: &HistoryPage, f: impl FnOnce(&rtm2_history_page)) {
    let mut strings = Strings::default();
    let messages: Vec<rtm2_history_message> = p
        .messages
        .iter()
        .map(|m| rtm2_history_message {
            message_type: m.message_type as u32,
            payload: array_ptr(&m.payload[..]),
            payload_len: m.payload.len(),
            custom_type: strings.add(&m.custom_type),
            publisher: strings.add(&m.publisher),
            timestamp_ms: m.timestamp_ms,
        })
        .collect();
    f(&rtm2_history_page { messages: array_ptr(&messages), count: messages.len(), new_start: p.new_start })
}

/// Gets a page of the messages stored in a channel's history (published with
/// `rtm2_publish_options.store_in_history`), newest first: a message channel
/// (`RTM2_CHANNEL_TYPE_MESSAGE`; this client need not be subscribed), or this client's own
/// user channel (`RTM2_CHANNEL_TYPE_USER`, `channel` = its user id: the messages published
/// to it). On success `result->history` holds the page.
///
/// * `message_count`: messages per page, 1..=100; 0 (or more than 100) = 100.
/// * `start`: only messages older than this server timestamp (ms, exclusive); 0 = from the
///   newest. Pass a page's `new_start` here for the next page, until `new_start` is 0.
/// * `end`: only messages at or after this server timestamp (ms, inclusive); 0 = no bound.
///   With both set, `start` must be greater than `end` and at most 24 h after it.
///
/// Messages that do not decrypt with this client's encryption settings are left out.
/// Completes with `RTM2_OK`, 10002 NOT_LOGIN, 10006 INVALID_USER_ID, 10008
/// INVALID_CHANNEL_NAME, 10019 INVALID_CHANNEL_TYPE (a stream channel), 15002
/// HISTORY_INVALID_TIMESTAMP (`start <= end`, or more than 24 h apart), 15003
/// HISTORY_OPERATION_TIMEOUT, 15004 HISTORY_OPERATION_NOT_PERMITTED (another user's user
/// channel), 15005 HISTORY_NOT_AVAILABLE (a server in a cluster), …. A `channel_type` that is
/// no channel type at all is refused at once with 10019. Like every operation it honours
/// `rtm2_set_call_timeout_ms` and can be canceled with `rtm2_cancel`.
///
/// # Safety
/// `client` is a live client; `channel` a NUL-terminated string; `out_request_id` NULL or
/// writable.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn rtm2_history_get_messages(
    client: *mut rtm2_client,
    channel: *const c_char,
    channel_type: u32,
    message_count: u32,
    start: u64,
    end: u64,
    cb: rtm2_completion_cb,
    user_data: *mut c_void,
    out_request_id: *mut u64,
) -> i32 {
    ffi_status(|| {
        let c = unsafe { client_ref(client) }?;
        let channel = unsafe { borrow_str(channel, "channel") }?;
        let channel_type = channel_type_arg(channel_type)?;
        let opts = GetMessagesOptions { message_count, start, end };
        c.start_map(
            "get_messages",
            cb,
            user_data,
            out_request_id,
            |cl| cl.history().get_messages(channel, channel_type, opts),
            ResultData::History,
        )
    })
}
