//! `rtm2_stream_channel`: a stream channel of a client — join/leave, topics (publishing and
//! subscribing), token renewal.

use std::ffi::{c_char, c_void};
use std::sync::Arc;

use rtm2_core::{
    ErrorCode, JoinOptions, JoinTopicOptions, MessagePriority, MessageQos, MessageType, StreamChannel,
    TopicMessageOptions,
};

use crate::client::make_payload;
use crate::constants::*;
use crate::dispatch::{Completion, Dispatcher, rtm2_completion_cb};
use crate::error::{FfiError, FfiResult, ffi_status, ffi_value};
use crate::ptr::{
    Out, ZeroInit, borrow, borrow_bytes, borrow_opt_str, borrow_str, borrow_str_array, box_from_raw, box_into_raw,
    read_sized, string_into_raw,
};
use crate::results::ResultData;
use rtm2_proto::validate;

/// A stream channel handle (opaque). Made by `rtm2_client_create_stream_channel`, freed by
/// `rtm2_stream_channel_free` (freeing does not leave the channel). Usable from any thread.
/// Completions of its operations run on the client's dispatcher thread. Once its client is
/// freed, every call returns 10018 INSTANCE_ALREADY_RELEASED (and no callback runs).
pub struct rtm2_stream_channel {
    channel: StreamChannel,
    dispatcher: Arc<Dispatcher>,
}

// A stream channel handle is used from any thread at once, and moved between threads.
const _: () = {
    const fn shared_across_threads<T: Send + Sync>() {}
    shared_across_threads::<rtm2_stream_channel>()
};

pub(crate) fn new_stream_channel(channel: StreamChannel, dispatcher: Arc<Dispatcher>) -> *mut rtm2_stream_channel {
    box_into_raw(rtm2_stream_channel { channel, dispatcher })
}

/// Options of `rtm2_stream_channel_join_topic`. Initialize with
/// `rtm2_join_topic_options_init`, then change fields.
#[repr(C)]
pub struct rtm2_join_topic_options {
    /// `sizeof(rtm2_join_topic_options)` as the caller compiled it.
    pub struct_size: usize,
    /// `RTM2_MESSAGE_QOS_UNORDERED` (default) or `RTM2_MESSAGE_QOS_ORDERED`; other: 10014.
    pub qos: u32,
    /// `RTM2_MESSAGE_PRIORITY_NORMAL` (default), `_HIGHEST`, `_HIGH` or `_LOW`; other: 10014.
    pub priority: u32,
    /// Publisher meta shown to others, at most 256 bytes (11018); NULL = none. Borrowed.
    pub meta: *const c_char,
    /// Align with media timestamps (accepted; there is no media here).
    pub sync_with_media: bool,
}

// SAFETY: integers, a pointer and a bool.
unsafe impl ZeroInit for rtm2_join_topic_options {
    /// The end of the last field of version 1; stays when fields are appended.
    const MIN_SIZE: usize = std::mem::offset_of!(rtm2_join_topic_options, sync_with_media) + size_of::<bool>();
}

/// Options of `rtm2_stream_channel_publish_topic`. Initialize with
/// `rtm2_topic_message_options_init`, then change fields.
#[repr(C)]
pub struct rtm2_topic_message_options {
    /// `sizeof(rtm2_topic_message_options)` as the caller compiled it.
    pub struct_size: usize,
    /// `RTM2_MESSAGE_TYPE_BINARY` (default) or `RTM2_MESSAGE_TYPE_STRING`; other: 11031.
    pub message_type: u32,
    /// Application-defined type, at most 32 bytes (11029); NULL = none. Borrowed.
    pub custom_type: *const c_char,
    /// Send timestamp (meaningful with `sync_with_media`); 0 = none.
    pub send_ts: u64,
}

// SAFETY: integers and a pointer.
unsafe impl ZeroInit for rtm2_topic_message_options {
    /// The end of the last field of version 1; stays when fields are appended.
    const MIN_SIZE: usize = std::mem::offset_of!(rtm2_topic_message_options, send_ts) + size_of::<u64>();
}

/// Fills `options` with the defaults (unordered, normal priority, no meta) and sets its
/// `struct_size`. NULL is ignored.
///
/// # Safety
/// `options` is NULL or writable storage for an `rtm2_join_topic_options`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rtm2_join_topic_options_init(options: *mut rtm2_join_topic_options) {
    if let Some(out) = Out::optional(options) {
        unsafe {
            out.write(rtm2_join_topic_options {
                struct_size: size_of::<rtm2_join_topic_options>(),
                qos: RTM2_MESSAGE_QOS_UNORDERED,
                priority: RTM2_MESSAGE_PRIORITY_NORMAL,
                meta: std::ptr::null(),
                sync_with_media: false,
            })
        }
    }
}

/// Fills `options` with the defaults (binary payload, no custom type) and sets its
/// `struct_size`. NULL is ignored.
///
/// # Safety
/// `options` is NULL or writable storage for an `rtm2_topic_message_options`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rtm2_topic_message_options_init(options: *mut rtm2_topic_message_options) {
    if let Some(out) = Out::optional(options) {
        unsafe {
            out.write(rtm2_topic_message_options {
                struct_size: size_of::<rtm2_topic_message_options>(),
                message_type: RTM2_MESSAGE_TYPE_BINARY,
                custom_type: std::ptr::null(),
                send_ts: 0,
            })
        }
    }
}

/// Borrows a stream channel handle whose client is still alive.
///
/// # Safety
/// `sc` is NULL or a live stream channel handle.
unsafe fn channel_ref<'a>(sc: *mut rtm2_stream_channel) -> FfiResult<&'a rtm2_stream_channel> {
    let sc = unsafe { borrow(sc, "channel") }?;
    if sc.dispatcher.is_closed() {
        return Err(FfiError::rtm(ErrorCode::INSTANCE_ALREADY_RELEASED, "the client of this stream channel was freed"));
    }
    Ok(sc)
}

impl rtm2_stream_channel {
    /// See `Dispatcher::refuse_size`.
    fn refused(
        &self,
        op: &'static str,
        cb: rtm2_completion_cb,
        user_data: *mut c_void,
        out: *mut u64,
        check: rtm2_proto::validate::Check,
    ) -> FfiResult<bool> {
        self.dispatcher.refuse_size(op, Completion::new(cb, user_data), Out::optional(out), check)
    }

    fn start<T, F>(
        &self,
        op: &'static str,
        cb: rtm2_completion_cb,
        user_data: *mut c_void,
        out: *mut u64,
        work: impl FnOnce(StreamChannel) -> F,
        map: impl FnOnce(T) -> ResultData + Send + 'static,
    ) -> FfiResult<()>
    where
        T: Send + 'static,
        F: std::future::Future<Output = rtm2_core::Result<T>> + Send + 'static,
    {
        let channel = match crate::calls::call_timeout() {
            Some(t) => self.channel.with_timeout(t),
            None => self.channel.clone(),
        };
        let fut = work(channel);
        self.dispatcher.spawn_op(op, Completion::new(cb, user_data), Out::optional(out), fut, map)
    }
}

/// Frees a stream channel handle (does not leave the channel; other handles of the same
/// channel are not affected). NULL is ignored. Operations already started still complete.
///
/// # Safety
/// `channel` is NULL or a handle not freed before, not used by another thread meanwhile.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rtm2_stream_channel_free(channel: *mut rtm2_stream_channel) {
    ffi_value((), || drop(unsafe { box_from_raw(channel) }));
}

/// Joins the channel. `token`: the stream-channel token (NULL or `""` in development mode).
/// `flags`: OR of `RTM2_JOIN_*` (`RTM2_JOIN_DEFAULT` = presence); unknown bits: 10014. On
/// success `result->join` holds the topics and publishers present (also delivered as a topic
/// SNAPSHOT event). Completes with `RTM2_OK`, 10002 NOT_LOGIN, 10005 INVALID_TOKEN, 10017
/// DUPLICATE_OPERATION (already joined), 11005 (more than 10 joined), 11007
/// CHANNEL_JOIN_FAILED (timeout), …. See `rtm2_client_login` for the conventions.
///
/// # Safety
/// `channel` is a live handle; `token` NULL or a NUL-terminated string; `out_request_id`
/// NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rtm2_stream_channel_join(
    channel: *mut rtm2_stream_channel,
    token: *const c_char,
    flags: u32,
    cb: rtm2_completion_cb,
    user_data: *mut c_void,
    out_request_id: *mut u64,
) -> i32 {
    ffi_status(|| {
        let sc = unsafe { channel_ref(channel) }?;
        let token = unsafe { borrow_opt_str(token, "token") }?.unwrap_or("").to_string();
        let known = RTM2_JOIN_WITH_PRESENCE | RTM2_JOIN_WITH_METADATA | RTM2_JOIN_WITH_LOCK | RTM2_JOIN_BE_QUIET;
        if flags & !known != 0 {
            return Err(FfiError::rtm(ErrorCode::INVALID_PARAMETER, format!("unknown join flags 0x{flags:x}")));
        }
        let opts = JoinOptions {
            token,
            with_presence: flags & RTM2_JOIN_WITH_PRESENCE != 0,
            with_metadata: flags & RTM2_JOIN_WITH_METADATA != 0,
            with_lock: flags & RTM2_JOIN_WITH_LOCK != 0,
            be_quiet: flags & RTM2_JOIN_BE_QUIET != 0,
        };
        sc.start("join", cb, user_data, out_request_id, |s| s.join(opts), ResultData::Join)
    })
}

/// Leaves the channel: every topic role and topic subscription ends. Completes with
/// `RTM2_OK`, 11001 CHANNEL_NOT_JOINED, 11028 CHANNEL_LEAVE_FAILED, ….
///
/// # Safety
/// `channel` is a live handle; `out_request_id` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rtm2_stream_channel_leave(
    channel: *mut rtm2_stream_channel,
    cb: rtm2_completion_cb,
    user_data: *mut c_void,
    out_request_id: *mut u64,
) -> i32 {
    ffi_status(|| {
        let sc = unsafe { channel_ref(channel) }?;
        sc.start("leave", cb, user_data, out_request_id, |s| s.leave(), ResultData::Ack)
    })
}

/// Becomes a publisher in `topic` (at most 8 per channel: the 9th completes with 11014
/// CHANNEL_EXCEED_TOPIC_LIMITATION). Others receive a REMOTE_JOIN topic event. `options` may
/// be NULL (defaults). Completes with `RTM2_OK`, 11001 CHANNEL_NOT_JOINED, 11008
/// CHANNEL_INVALID_TOPIC_NAME, 11015 CHANNEL_JOIN_TOPIC_FAILED (already joined), 11018, ….
///
/// # Safety
/// `channel` is a live handle; `topic` a NUL-terminated string; `options` NULL or
/// initialized; `out_request_id` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rtm2_stream_channel_join_topic(
    channel: *mut rtm2_stream_channel,
    topic: *const c_char,
    options: *const rtm2_join_topic_options,
    cb: rtm2_completion_cb,
    user_data: *mut c_void,
    out_request_id: *mut u64,
) -> i32 {
    ffi_status(|| {
        let sc = unsafe { channel_ref(channel) }?;
        let topic = unsafe { borrow_str(topic, "topic") }?.to_string();
        let opts = match unsafe { read_sized(options, "options") }? {
            None => JoinTopicOptions::default(),
            Some(o) => {
                rtm2_proto::validate::topic_options(o.qos, o.priority).map_err(|v| FfiError::rtm(v.code, v.reason))?;
                let bad = || FfiError::rtm(ErrorCode::INVALID_PARAMETER, "qos or priority out of range");
                JoinTopicOptions {
                    qos: MessageQos::from_u32(o.qos).ok_or_else(bad)?,
                    priority: MessagePriority::from_u32(o.priority).ok_or_else(bad)?,
                    meta: unsafe { borrow_opt_str(o.meta, "options.meta") }?.unwrap_or("").to_string(),
                    sync_with_media: o.sync_with_media,
                }
            }
        };
        sc.start("join_topic", cb, user_data, out_request_id, |s| s.join_topic(&topic, opts), ResultData::Ack)
    })
}

/// Stops publishing in `topic`; others receive a REMOTE_LEAVE topic event. Completes with
/// `RTM2_OK`, 11016 CHANNEL_TOPIC_NOT_JOINED, 11001, ….
///
/// # Safety
/// `channel` is a live handle; `topic` a NUL-terminated string; `out_request_id` NULL or
/// writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rtm2_stream_channel_leave_topic(
    channel: *mut rtm2_stream_channel,
    topic: *const c_char,
    cb: rtm2_completion_cb,
    user_data: *mut c_void,
    out_request_id: *mut u64,
) -> i32 {
    ffi_status(|| {
        let sc = unsafe { channel_ref(channel) }?;
        let topic = unsafe { borrow_str(topic, "topic") }?.to_string();
        sc.start("leave_topic", cb, user_data, out_request_id, |s| s.leave_topic(&topic), ResultData::Ack)
    })
}

/// Publishes `payload_len` bytes in a joined topic (payload + custom type at most 1 KiB:
/// 11010). Delivered to the members that subscribed to this publisher in this topic, in
/// order. `options` may be NULL (binary, no custom type). Completes with `RTM2_OK`, 11016
/// CHANNEL_TOPIC_NOT_JOINED, 11009, 11010, 11029, …. The payload is copied before the call
/// returns. A `payload_len` over 1 KiB completes with 11010 without the payload being read.
///
/// # Safety
/// `channel` is a live handle; `topic` a NUL-terminated string; `payload` NULL (with length
/// 0) or `payload_len` readable bytes; `options` NULL or initialized; `out_request_id` NULL or
/// writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rtm2_stream_channel_publish_topic(
    channel: *mut rtm2_stream_channel,
    topic: *const c_char,
    payload: *const c_void,
    payload_len: usize,
    options: *const rtm2_topic_message_options,
    cb: rtm2_completion_cb,
    user_data: *mut c_void,
    out_request_id: *mut u64,
) -> i32 {
    ffi_status(|| {
        let sc = unsafe { channel_ref(channel) }?;
        let topic = unsafe { borrow_str(topic, "topic") }?.to_string();
        // The length first: a wrong one must not make us read past the caller's buffer.
        if sc.refused("publish_topic", cb, user_data, out_request_id, validate::topic_message_len(payload_len))? {
            return Ok(());
        }
        let bytes = unsafe { borrow_bytes(payload, payload_len, "payload") }?;
        let (message_type, opts) = match unsafe { read_sized(options, "options") }? {
            None => (MessageType::BINARY, TopicMessageOptions::default()),
            Some(o) => (
                MessageType::from_u32(o.message_type).ok_or_else(|| {
                    FfiError::rtm(
                        ErrorCode::CHANNEL_UNSUPPORTED_MESSAGE_TYPE,
                        format!("message_type {} is not BINARY (0) or STRING (1)", o.message_type),
                    )
                })?,
                TopicMessageOptions {
                    custom_type: unsafe { borrow_opt_str(o.custom_type, "options.custom_type") }?
                        .unwrap_or("")
                        .to_string(),
                    send_ts: o.send_ts,
                },
            ),
        };
        let p = make_payload(bytes, message_type);
        sc.start("publish_topic", cb, user_data, out_request_id, |s| s.publish_topic(&topic, p, opts), ResultData::Ack)
    })
}

/// Subscribes to publishers of `topic`: the `user_count` users in `users`, or (with
/// `user_count` 0) every current publisher, up to 64 (a `user_count` over 128, the most a stream
/// channel holds, completes with 11011 CHANNEL_INVALID_USER_LIST, `users` unread). Incremental.
/// On success
/// `result->subscribe_topic` lists the users subscribed and those that failed (with a per-user
/// code). Completes with `RTM2_OK`, 11001, 11008, 11014 (more than 50 topics), 11017
/// CHANNEL_TOPIC_NOT_EXIST, ….
///
/// # Safety
/// `channel` is a live handle; `topic` a NUL-terminated string; `users` NULL (with count 0)
/// or `user_count` NUL-terminated strings; `out_request_id` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rtm2_stream_channel_subscribe_topic(
    channel: *mut rtm2_stream_channel,
    topic: *const c_char,
    users: *const *const c_char,
    user_count: usize,
    cb: rtm2_completion_cb,
    user_data: *mut c_void,
    out_request_id: *mut u64,
) -> i32 {
    ffi_status(|| {
        let sc = unsafe { channel_ref(channel) }?;
        let topic = unsafe { borrow_str(topic, "topic") }?.to_string();
        if sc.refused("subscribe_topic", cb, user_data, out_request_id, validate::topic_user_count(user_count))? {
            return Ok(());
        }
        let users: Vec<String> =
            unsafe { borrow_str_array(users, user_count, "users") }?.into_iter().map(String::from).collect();
        sc.start(
            "subscribe_topic",
            cb,
            user_data,
            out_request_id,
            |s| {
                let refs: Vec<&str> = users.iter().map(String::as_str).collect();
                s.subscribe_topic(&topic, &refs)
            },
            ResultData::SubscribeTopic,
        )
    })
}

/// Unsubscribes the given publishers of `topic`, or (with `user_count` 0) the whole topic.
/// Completes with `RTM2_OK`, 11013 CHANNEL_TOPIC_NOT_SUBSCRIBED, 11001, 11011 (a
/// `user_count` over 128, `users` unread), ….
///
/// # Safety
/// As `rtm2_stream_channel_subscribe_topic`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rtm2_stream_channel_unsubscribe_topic(
    channel: *mut rtm2_stream_channel,
    topic: *const c_char,
    users: *const *const c_char,
    user_count: usize,
    cb: rtm2_completion_cb,
    user_data: *mut c_void,
    out_request_id: *mut u64,
) -> i32 {
    ffi_status(|| {
        let sc = unsafe { channel_ref(channel) }?;
        let topic = unsafe { borrow_str(topic, "topic") }?.to_string();
        if sc.refused("unsubscribe_topic", cb, user_data, out_request_id, validate::topic_user_count(user_count))? {
            return Ok(());
        }
        let users: Vec<String> =
            unsafe { borrow_str_array(users, user_count, "users") }?.into_iter().map(String::from).collect();
        sc.start(
            "unsubscribe_topic",
            cb,
            user_data,
            out_request_id,
            |s| {
                let refs: Vec<&str> = users.iter().map(String::as_str).collect();
                s.unsubscribe_topic(&topic, &refs)
            },
            ResultData::Ack,
        )
    })
}

/// The callback form of `rtm2_stream_channel_subscribed_users` (which answers at once, as the
/// client knows its subscriptions): on success `result->subscribed_users` holds the
/// publishers this client subscribed to in `topic` (none when it subscribed to none there).
/// Completes with `RTM2_OK`, 11001 CHANNEL_NOT_JOINED, 11008.
///
/// # Safety
/// `channel` is a live handle; `topic` a NUL-terminated string; `out_request_id` NULL or
/// writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rtm2_stream_channel_get_subscribed_users(
    channel: *mut rtm2_stream_channel,
    topic: *const c_char,
    cb: rtm2_completion_cb,
    user_data: *mut c_void,
    out_request_id: *mut u64,
) -> i32 {
    ffi_status(|| {
        let sc = unsafe { channel_ref(channel) }?;
        let topic = unsafe { borrow_str(topic, "topic") }?;
        let r = sc.channel.subscribed_users(topic).map(ResultData::Users);
        sc.dispatcher.complete_now(
            "get_subscribed_users",
            Completion::new(cb, user_data),
            Out::optional(out_request_id),
            r,
        )
    })
}

/// The publishers this client subscribed to in `topic`, sorted — synchronous, like every
/// binding's (the client knows its subscriptions): on `RTM2_OK` `*out_users` is a new list
/// owned by the caller, freed with `rtm2_user_list_free`; a topic this client subscribed to
/// nobody in gives an empty list (`count` 0). Fails with 11001 CHANNEL_NOT_JOINED, 11008
/// CHANNEL_INVALID_TOPIC_NAME, 10018 (client freed); then `*out_users` is not written.
///
/// # Safety
/// `channel` is a live handle; `topic` a NUL-terminated string; `out_users` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rtm2_stream_channel_subscribed_users(
    channel: *mut rtm2_stream_channel,
    topic: *const c_char,
    out_users: *mut *mut crate::results::rtm2_user_list,
) -> i32 {
    ffi_status(|| {
        let sc = unsafe { channel_ref(channel) }?;
        let topic = unsafe { borrow_str(topic, "topic") }?;
        let out = Out::new(out_users, "out_users")?;
        let users = sc.channel.subscribed_users(topic)?;
        unsafe { out.write(crate::results::user_list_into_raw(&users)) };
        Ok(())
    })
}

/// Renews this channel's token (after `on_token_will_expire` with this channel's name).
/// Completes with `RTM2_OK`, 10005 INVALID_TOKEN, 11001, 10026, ….
///
/// # Safety
/// `channel` is a live handle; `token` a NUL-terminated string; `out_request_id` NULL or
/// writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rtm2_stream_channel_renew_token(
    channel: *mut rtm2_stream_channel,
    token: *const c_char,
    cb: rtm2_completion_cb,
    user_data: *mut c_void,
    out_request_id: *mut u64,
) -> i32 {
    ffi_status(|| {
        let sc = unsafe { channel_ref(channel) }?;
        let token = unsafe { borrow_str(token, "token") }?.to_string();
        sc.start("renew_token", cb, user_data, out_request_id, |s| s.renew_token(&token), ResultData::Ack)
    })
}

/// Writes the channel's name to `*out_name`: a new string owned by the caller, to be freed
/// with `rtm2_string_free`. Works after the client was freed, too.
///
/// # Safety
/// `channel` is a live handle; `out_name` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rtm2_stream_channel_get_name(
    channel: *mut rtm2_stream_channel,
    out_name: *mut *mut c_char,
) -> i32 {
    ffi_status(|| {
        let sc = unsafe { channel_ref(channel) }?;
        let out = Out::new(out_name, "out_name")?;
        unsafe { out.write(string_into_raw(sc.channel.name())) };
        Ok(())
    })
}

/// Writes whether this client has joined the channel to `*out_joined`.
///
/// # Safety
/// `channel` is a live handle; `out_joined` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rtm2_stream_channel_is_joined(
    channel: *mut rtm2_stream_channel,
    out_joined: *mut bool,
) -> i32 {
    ffi_status(|| {
        let sc = unsafe { channel_ref(channel) }?;
        let out = Out::new(out_joined, "out_joined")?;
        unsafe { out.write(sc.channel.is_joined()) };
        Ok(())
    })
}
