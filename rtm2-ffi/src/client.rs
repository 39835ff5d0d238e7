//! `rtm2_client`: one user of one app — login, message channels, peer-to-peer messages.

use std::ffi::{c_char, c_void};
use std::sync::Arc;

use rtm2_core::{Ack, ChannelType, Client, ErrorCode, MessageType, Payload, PublishOptions, SubscribeOptions};
use rtm2_proto::validate;

use crate::config::{borrow_config, rtm2_config};
use crate::constants::*;
use crate::dispatch::{Completion, Dispatcher, Threads, rtm2_completion_cb};
use crate::error::{FfiError, FfiResult, ffi_status, ffi_value};
use crate::listener::{Listener, rtm2_listener};
use crate::ptr::{
    Out, ZeroInit, borrow, borrow_bytes, borrow_opt_str, borrow_str, box_from_raw, box_into_raw, read_sized,
    string_into_raw,
};
use crate::results::ResultData;
use crate::stream_channel::{new_stream_channel, rtm2_stream_channel};

/// A client (opaque): one user of one app, with its own dispatcher thread. Made by
/// `rtm2_client_new`, freed by `rtm2_client_free`. Every function taking a client may be
/// called from any thread, concurrently — except `rtm2_client_free`, which must not race with
/// other calls on the same handle.
pub struct rtm2_client {
    client: Client,
    dispatcher: Arc<Dispatcher>,
    threads: Threads,
}

// A client handle is used from any thread at once (`&rtm2_client`), and moved between threads.
const _: () = {
    const fn shared_across_threads<T: Send + Sync>() {}
    shared_across_threads::<rtm2_client>()
};

/// Options of `rtm2_client_publish`. Initialize with `rtm2_publish_options_init` (or set
/// `struct_size = sizeof(rtm2_publish_options)` and every field), then change fields.
#[repr(C)]
pub struct rtm2_publish_options {
    /// `sizeof(rtm2_publish_options)` as the caller compiled it.
    pub struct_size: usize,
    /// `RTM2_CHANNEL_TYPE_MESSAGE` (default: publish to a message channel) or
    /// `RTM2_CHANNEL_TYPE_USER` (the channel argument is a user id: peer-to-peer; 11033
    /// CHANNEL_RECEIVER_OFFLINE when that user is not logged in). Other values: 10019.
    pub channel_type: u32,
    /// `RTM2_MESSAGE_TYPE_BINARY` (default) or `RTM2_MESSAGE_TYPE_STRING` (the payload must
    /// then be UTF-8). Other values: 11031.
    pub message_type: u32,
    /// Application-defined type, at most 32 bytes (11029); NULL or `""` = none. Borrowed for
    /// the call.
    pub custom_type: *const c_char,
    /// Store the message in the channel's history (default false), to be read back with
    /// `rtm2_history_get_messages`: a message channel's, or with `RTM2_CHANNEL_TYPE_USER` the
    /// receiving user's. To a user who is offline the message is stored and the publish
    /// completes with 11035 CHANNEL_RECEIVER_OFFLINE_BUT_STORE_SUCCEEDED (instead of 11033);
    /// 11036 / 11037 when storing failed.
    pub store_in_history: bool,
}

// SAFETY: integers, a pointer and a bool.
unsafe impl ZeroInit for rtm2_publish_options {
    /// The end of the last field of version 1; stays when fields are appended.
    const MIN_SIZE: usize = std::mem::offset_of!(rtm2_publish_options, store_in_history) + size_of::<bool>();
}

/// Fills `options` with the defaults (message channel, binary payload, no custom type) and
/// sets its `struct_size`. NULL is ignored.
///
/// # Safety
/// `options` is NULL or points to writable storage for an `rtm2_publish_options`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rtm2_publish_options_init(options: *mut rtm2_publish_options) {
    if let Some(out) = Out::optional(options) {
        unsafe {
            out.write(rtm2_publish_options {
                struct_size: size_of::<rtm2_publish_options>(),
                channel_type: RTM2_CHANNEL_TYPE_MESSAGE,
                message_type: RTM2_MESSAGE_TYPE_BINARY,
                custom_type: std::ptr::null(),
                store_in_history: false,
            })
        }
    }
}

/// Borrows a client handle.
///
/// # Safety
/// `client` is NULL or a live client.
pub(crate) unsafe fn client_ref<'a>(client: *mut rtm2_client) -> FfiResult<&'a rtm2_client> {
    unsafe { borrow(client, "client") }
}

/// A channel type given by C (`RTM2_CHANNEL_TYPE_*`); a number that is no channel type at all
/// is refused at once with 10019 (the core decides which types an operation accepts).
pub(crate) fn channel_type_arg(v: u32) -> FfiResult<ChannelType> {
    ChannelType::from_u32(v).ok_or_else(|| {
        FfiError::rtm(ErrorCode::INVALID_CHANNEL_TYPE, format!("channel_type {v} is not a channel type"))
    })
}

impl rtm2_client {
    pub(crate) fn dispatcher(&self) -> &Arc<Dispatcher> {
        &self.dispatcher
    }

    /// Starts an operation of the core that answers with the server's time only
    /// (`rtm2_result.timestamp_ms`).
    pub(crate) fn start<F>(
        &self,
        op: &'static str,
        cb: rtm2_completion_cb,
        user_data: *mut c_void,
        out: *mut u64,
        work: impl FnOnce(Client) -> F,
    ) -> FfiResult<()>
    where
        F: std::future::Future<Output = rtm2_core::Result<Ack>> + Send + 'static,
    {
        self.start_map(op, cb, user_data, out, work, ResultData::Ack)
    }

    /// See `Dispatcher::refuse_size`: true when the operation was refused (and completes with
    /// the limit's code) because of a length or count, before anything behind it was read.
    pub(crate) fn refused(
        &self,
        op: &'static str,
        cb: rtm2_completion_cb,
        user_data: *mut c_void,
        out: *mut u64,
        check: rtm2_proto::validate::Check,
    ) -> FfiResult<bool> {
        self.dispatcher.refuse_size(op, Completion::new(cb, user_data), Out::optional(out), check)
    }

    /// Starts an operation of the core (`work` calls it; its request is queued before this
    /// returns) whose success value `map` turns into the data of the completion's result.
    pub(crate) fn start_map<T, F>(
        &self,
        op: &'static str,
        cb: rtm2_completion_cb,
        user_data: *mut c_void,
        out: *mut u64,
        work: impl FnOnce(Client) -> F,
        map: impl FnOnce(T) -> ResultData + Send + 'static,
    ) -> FfiResult<()>
    where
        T: Send + 'static,
        F: std::future::Future<Output = rtm2_core::Result<T>> + Send + 'static,
    {
        let client = match crate::calls::call_timeout() {
            Some(t) => self.client.with_timeout(t),
            None => self.client.clone(),
        };
        let fut = work(client);
        self.dispatcher.spawn_op(op, Completion::new(cb, user_data), Out::optional(out), fut, map)
    }
}

/// Makes a client from `config` (copied: the config may be freed afterwards) and an optional
/// `listener` (copied; NULL = no event callbacks). Starts the client's dispatcher thread; does
/// not connect (see `rtm2_client_login`).
///
/// Fails with 10003 INVALID_APP_ID, 10006 INVALID_USER_ID, 10014 INVALID_PARAMETER (listener
/// `struct_size` too small), 10020 INVALID_ENCRYPTION_PARAMETER (not with settings accepted by
/// `rtm2_config_set_encryption`, which checks them at once), `RTM2_ERR_NULL_PARAMETER`, or
/// `RTM2_ERR_INTERNAL`. On failure `*out_client` is not written and the listener's `destroy`
/// is not called.
///
/// # Safety
/// `config` is a live config; `listener` NULL or a listener as documented; `out_client`
/// points to writable storage for a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rtm2_client_new(
    config: *const rtm2_config,
    listener: *const rtm2_listener,
    out_client: *mut *mut rtm2_client,
) -> i32 {
    ffi_status(|| {
        let config = unsafe { borrow_config(config) }?;
        let out = Out::new(out_client, "out_client")?;
        let listener = unsafe { Listener::read(listener) }?;
        let client = Client::new(config.client_config())?;
        let events = listener.as_ref().map(|_| client.events());
        let (dispatcher, threads) = Dispatcher::start(listener, events)?;
        unsafe { out.write(box_into_raw(rtm2_client { client, dispatcher, threads })) };
        Ok(())
    })
}

/// Frees a client. NULL is ignored.
///
/// In this order: no new operation can start (calls on this client's stream channels return
/// 10018 INSTANCE_ALREADY_RELEASED); every operation still in flight completes with 10018;
/// queued events are discarded; the connection is closed (without the logout handshake — call
/// `rtm2_client_logout` first for a clean leave); the listener's `destroy` runs as the last
/// callback; the dispatcher thread ends.
///
/// Called from a thread of the application (outside every rtm2 callback), it returns after
/// all of that: no callback of the client runs after it returns.
///
/// Called from inside a callback — of this client or of ANY other client (on any rtm2
/// dispatcher thread) — it never waits for a dispatcher thread: it returns at once, and the
/// freed client's dispatcher delivers the rest (every pending completion exactly once, with
/// 10018; then `destroy`) on its own thread, right after the callback it may be running
/// returns. So two clients whose callbacks free each other do not deadlock. In that case keep
/// what the freed client's `user_data` pointers point to alive until its listener's `destroy`
/// has run (or, without a listener, until its pending completions have run).
///
/// The handle is invalid afterwards. Stream channel handles made from it stay valid (free
/// them with `rtm2_stream_channel_free`) but every call on them returns 10018.
///
/// # Safety
/// `client` is NULL or a client from `rtm2_client_new` not freed before, and no other thread
/// uses it during or after this call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rtm2_client_free(client: *mut rtm2_client) {
    ffi_value((), || {
        let Some(c) = (unsafe { box_from_raw(client) }) else { return };
        let rtm2_client { client, dispatcher, threads } = *c;
        for task in dispatcher.close() {
            task.abort();
        }
        drop(client);
        threads.join();
    })
}

/// Logs in with an RTM token: `NULL` or `""` for a server in development mode (such as the
/// embedded default). Completes when connected (`RTM2_OK`), or with 10005 INVALID_TOKEN, 10009
/// TOKEN_EXPIRED, 10016 INCONSISTENT_APPID, 10011 LOGIN_TIMEOUT, 10017 DUPLICATE_OPERATION
/// (already logged in), 10023 LOGIN_CANCELED (a newer login or a logout), ….
///
/// Asynchronous-call conventions (every `cb`-taking function): the return value is `RTM2_OK`
/// when the operation started — then `cb` (if not NULL) is called exactly once, on the
/// client's dispatcher thread, also on timeout, logout and free — or an error status when it
/// could not start (NULL/invalid arguments, freed client), and then `cb` is never called.
/// `*out_request_id` (optional, may be NULL) receives the operation's id before the
/// completion can run; the same id is passed to `cb`. String and buffer arguments are
/// borrowed for the duration of the call only.
///
/// # Safety
/// `client` is a live client; `token` NULL or a NUL-terminated string; `out_request_id` NULL
/// or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rtm2_client_login(
    client: *mut rtm2_client,
    token: *const c_char,
    cb: rtm2_completion_cb,
    user_data: *mut c_void,
    out_request_id: *mut u64,
) -> i32 {
    ffi_status(|| {
        let c = unsafe { client_ref(client) }?;
        let token = unsafe { borrow_opt_str(token, "token") }?.unwrap_or("").to_string();
        c.start("login", cb, user_data, out_request_id, |cl| cl.login(&token))
    })
}

/// Logs out: ends the session, every subscription and stream channel; operations in flight
/// complete with an error (10002 NOT_LOGIN, or 10023 LOGIN_CANCELED for a login in
/// progress). Always completes with `RTM2_OK`. See `rtm2_client_login` for the conventions.
///
/// # Safety
/// `client` is a live client; `out_request_id` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rtm2_client_logout(
    client: *mut rtm2_client,
    cb: rtm2_completion_cb,
    user_data: *mut c_void,
    out_request_id: *mut u64,
) -> i32 {
    ffi_status(|| {
        let c = unsafe { client_ref(client) }?;
        c.start("logout", cb, user_data, out_request_id, |cl| cl.logout())
    })
}

/// Renews the login token (after `on_token_will_expire` with a NULL channel). Completes with
/// `RTM2_OK`, 10005 INVALID_TOKEN, 10002 NOT_LOGIN, 10026 RENEW_TOKEN_TIMEOUT, ….
///
/// # Safety
/// `client` is a live client; `token` a NUL-terminated string; `out_request_id` NULL or
/// writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rtm2_client_renew_token(
    client: *mut rtm2_client,
    token: *const c_char,
    cb: rtm2_completion_cb,
    user_data: *mut c_void,
    out_request_id: *mut u64,
) -> i32 {
    ffi_status(|| {
        let c = unsafe { client_ref(client) }?;
        let token = unsafe { borrow_str(token, "token") }?.to_string();
        c.start("renew_token", cb, user_data, out_request_id, |cl| cl.renew_token(&token))
    })
}

/// Subscribes to a message channel; its messages then reach `on_message`. `flags`: OR of
/// `RTM2_SUBSCRIBE_*` (`RTM2_SUBSCRIBE_DEFAULT` = messages + presence); unknown bits: 10014.
/// Subscribing again updates the options. Completes with `RTM2_OK`, 10002 NOT_LOGIN, 10008
/// INVALID_CHANNEL_NAME, 11005 CHANNEL_INSTANCE_EXCEED_LIMITATION (more than 50 channels),
/// 11019 CHANNEL_SUBSCRIBE_TIMEOUT, ….
///
/// # Safety
/// `client` is a live client; `channel` a NUL-terminated string; `out_request_id` NULL or
/// writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rtm2_client_subscribe(
    client: *mut rtm2_client,
    channel: *const c_char,
    flags: u32,
    cb: rtm2_completion_cb,
    user_data: *mut c_void,
    out_request_id: *mut u64,
) -> i32 {
    ffi_status(|| {
        let c = unsafe { client_ref(client) }?;
        let channel = unsafe { borrow_str(channel, "channel") }?.to_string();
        let known = RTM2_SUBSCRIBE_WITH_MESSAGE
            | RTM2_SUBSCRIBE_WITH_PRESENCE
            | RTM2_SUBSCRIBE_WITH_METADATA
            | RTM2_SUBSCRIBE_WITH_LOCK
            | RTM2_SUBSCRIBE_BE_QUIET;
        if flags & !known != 0 {
            return Err(FfiError::rtm(ErrorCode::INVALID_PARAMETER, format!("unknown subscribe flags 0x{flags:x}")));
        }
        let opts = SubscribeOptions {
            with_message: flags & RTM2_SUBSCRIBE_WITH_MESSAGE != 0,
            with_presence: flags & RTM2_SUBSCRIBE_WITH_PRESENCE != 0,
            with_metadata: flags & RTM2_SUBSCRIBE_WITH_METADATA != 0,
            with_lock: flags & RTM2_SUBSCRIBE_WITH_LOCK != 0,
            be_quiet: flags & RTM2_SUBSCRIBE_BE_QUIET != 0,
        };
        // Messages are delivered through the listener, so the per-channel stream is not kept.
        c.start("subscribe", cb, user_data, out_request_id, |cl| {
            let started = cl.subscribe(&channel, opts);
            async move { started.await.map(|sub| Ack { timestamp_ms: sub.timestamp_ms() }) }
        })
    })
}

/// Unsubscribes from a message channel. Completes with `RTM2_OK`, 11002
/// CHANNEL_NOT_SUBSCRIBED, 10008, 10002, ….
///
/// # Safety
/// `client` is a live client; `channel` a NUL-terminated string; `out_request_id` NULL or
/// writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rtm2_client_unsubscribe(
    client: *mut rtm2_client,
    channel: *const c_char,
    cb: rtm2_completion_cb,
    user_data: *mut c_void,
    out_request_id: *mut u64,
) -> i32 {
    ffi_status(|| {
        let c = unsafe { client_ref(client) }?;
        let channel = unsafe { borrow_str(channel, "channel") }?.to_string();
        c.start("unsubscribe", cb, user_data, out_request_id, |cl| cl.unsubscribe(&channel))
    })
}

/// Converts the C publish options (NULL = defaults) to the core's.
fn publish_options(o: Option<rtm2_publish_options>) -> FfiResult<(PublishOptions, MessageType)> {
    let Some(o) = o else { return Ok((PublishOptions::default(), MessageType::BINARY)) };
    let channel_type = channel_type_arg(o.channel_type)?;
    let message_type = MessageType::from_u32(o.message_type).ok_or_else(|| {
        FfiError::rtm(
            ErrorCode::CHANNEL_UNSUPPORTED_MESSAGE_TYPE,
            format!("message_type {} is not BINARY (0) or STRING (1)", o.message_type),
        )
    })?;
    let custom_type = unsafe { borrow_opt_str(o.custom_type, "options.custom_type") }?.unwrap_or("").to_string();
    Ok((PublishOptions { channel_type, custom_type, store_in_history: o.store_in_history }, message_type))
}

/// Builds a payload of the given type from C bytes.
pub(crate) fn make_payload(bytes: &[u8], message_type: MessageType) -> Payload {
    let mut p = Payload::from(bytes);
    p.message_type = message_type;
    p
}

/// Publishes `payload_len` bytes at `payload` to a message channel, or to a user
/// (`options->channel_type = RTM2_CHANNEL_TYPE_USER`). `options` may be NULL (defaults, see
/// `rtm2_publish_options_init`). Completes with `RTM2_OK`, 10002 NOT_LOGIN, 10008
/// INVALID_CHANNEL_NAME, 10006 INVALID_USER_ID (USER), 11009 CHANNEL_INVALID_MESSAGE (empty,
/// or a STRING that is not UTF-8), 11010 CHANNEL_MESSAGE_LENGTH_EXCEED_LIMITATION (payload +
/// custom type over 32 KiB), 11029 CHANNEL_CUSTOM_TYPE_LENGTH_OVERFLOW, 11033
/// CHANNEL_RECEIVER_OFFLINE, 11035 CHANNEL_RECEIVER_OFFLINE_BUT_STORE_SUCCEEDED (offline
/// receiver, `store_in_history`: stored), 11026 CHANNEL_PUBLISH_MESSAGE_TIMEOUT, …. The payload is copied
/// before the call returns. A `payload_len` over 32 KiB completes with 11010 without the
/// payload being read (the length is checked before anything else is read).
///
/// # Safety
/// `client` is a live client; `channel` a NUL-terminated string; `payload` NULL (with
/// `payload_len` 0) or `payload_len` readable bytes; `options` NULL or an initialized options
/// struct; `out_request_id` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rtm2_client_publish(
    client: *mut rtm2_client,
    channel: *const c_char,
    payload: *const c_void,
    payload_len: usize,
    options: *const rtm2_publish_options,
    cb: rtm2_completion_cb,
    user_data: *mut c_void,
    out_request_id: *mut u64,
) -> i32 {
    ffi_status(|| {
        let c = unsafe { client_ref(client) }?;
        let channel = unsafe { borrow_str(channel, "channel") }?.to_string();
        // The length first: a wrong one must not make us read past the caller's buffer.
        if c.refused("publish", cb, user_data, out_request_id, validate::message_len(payload_len))? {
            return Ok(());
        }
        let bytes = unsafe { borrow_bytes(payload, payload_len, "payload") }?;
        let (opts, message_type) = publish_options(unsafe { read_sized(options, "options") }?)?;
        let p = make_payload(bytes, message_type);
        c.start("publish", cb, user_data, out_request_id, |cl| cl.publish(&channel, p, opts))
    })
}

/// Makes a handle to the stream channel `name` of this client (no network traffic; join it
/// with `rtm2_stream_channel_join`). Fails with 10008 INVALID_CHANNEL_NAME. On success
/// `*out_channel` receives a handle owned by the caller (free it with
/// `rtm2_stream_channel_free`); handles of the same name refer to the same channel.
///
/// # Safety
/// `client` is a live client; `name` a NUL-terminated string; `out_channel` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rtm2_client_create_stream_channel(
    client: *mut rtm2_client,
    name: *const c_char,
    out_channel: *mut *mut rtm2_stream_channel,
) -> i32 {
    ffi_status(|| {
        let c = unsafe { client_ref(client) }?;
        let name = unsafe { borrow_str(name, "name") }?;
        let out = Out::new(out_channel, "out_channel")?;
        let sc = c.client.stream_channel(name)?;
        unsafe { out.write(new_stream_channel(sc, c.dispatcher.clone())) };
        Ok(())
    })
}

/// Writes the state of the client's connection (`RTM2_LINK_STATE_*`) to `*out_state`.
///
/// # Safety
/// `client` is a live client; `out_state` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rtm2_client_get_link_state(client: *mut rtm2_client, out_state: *mut u32) -> i32 {
    ffi_status(|| {
        let c = unsafe { client_ref(client) }?;
        let out = Out::new(out_state, "out_state")?;
        unsafe { out.write(c.client.link_state() as u32) };
        Ok(())
    })
}

/// Writes to `*out_count` how many messages this client dropped because they did not decrypt
/// with its end-to-end encryption settings (`rtm2_config_set_encryption`): sent with another
/// key, salt or mode, sent in clear to an encrypting client or encrypted to a plain one, or
/// tampered with. Such messages never reach `on_message`; the SDK's log notes the first drop
/// of each client once (warn level). The count only grows, from 0 when the client is made.
///
/// # Safety
/// `client` is a live client; `out_count` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rtm2_client_get_undecryptable_messages(client: *mut rtm2_client, out_count: *mut u64) -> i32 {
    ffi_status(|| {
        let c = unsafe { client_ref(client) }?;
        let out = Out::new(out_count, "out_count")?;
        unsafe { out.write(c.client.undecryptable_messages()) };
        Ok(())
    })
}

/// Applies tuning parameters (a JSON object, see `rtm2_config_set_parameters`) to a running
/// client, all or nothing; 10014 INVALID_PARAMETER for an unknown key or a bad value.
///
/// # Safety
/// `client` is a live client; `json` a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rtm2_client_set_parameters(client: *mut rtm2_client, json: *const c_char) -> i32 {
    ffi_status(|| {
        let c = unsafe { client_ref(client) }?;
        let json = unsafe { borrow_str(json, "json") }?;
        c.client.set_parameters(json)?;
        Ok(())
    })
}

/// Writes the client's user id (as configured) to `*out_user_id`: a new string owned by the
/// caller, to be freed with `rtm2_string_free`.
///
/// # Safety
/// `client` is a live client; `out_user_id` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rtm2_client_get_user_id(client: *mut rtm2_client, out_user_id: *mut *mut c_char) -> i32 {
    ffi_status(|| {
        let c = unsafe { client_ref(client) }?;
        let out = Out::new(out_user_id, "out_user_id")?;
        unsafe { out.write(string_into_raw(&c.client.user_id())) };
        Ok(())
    })
}

/// Writes the client's tuning parameters as a JSON object to `*out_json`: a new string owned
/// by the caller, to be freed with `rtm2_string_free`.
///
/// # Safety
/// `client` is a live client; `out_json` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rtm2_client_get_parameters(client: *mut rtm2_client, out_json: *mut *mut c_char) -> i32 {
    ffi_status(|| {
        let c = unsafe { client_ref(client) }?;
        let out = Out::new(out_json, "out_json")?;
        unsafe { out.write(string_into_raw(&c.client.get_parameters())) };
        Ok(())
    })
}

/// Where the client is connected, or was last (a client given several endpoints fails over
/// between them): `*out_endpoint` receives the endpoint as text (e.g. `"tcp://10.0.0.2:9696"`,
/// `"embedded"`) and `*out_node_id` the id of the node that answered (`""` for a server that
/// is not part of a cluster) — new strings owned by the caller, freed with `rtm2_string_free`.
/// Either out-parameter may be NULL. Fails with 10025 NOT_CONNECTED before the first
/// connection (nothing written).
///
/// # Safety
/// `client` is a live client; `out_endpoint` and `out_node_id` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rtm2_client_get_connected_to(
    client: *mut rtm2_client,
    out_endpoint: *mut *mut c_char,
    out_node_id: *mut *mut c_char,
) -> i32 {
    ffi_status(|| {
        let c = unsafe { client_ref(client) }?;
        let Some((endpoint, node)) = c.client.connected_to() else {
            return Err(FfiError::rtm(ErrorCode::NOT_CONNECTED, "the client has not connected yet"));
        };
        if let Some(out) = Out::optional(out_endpoint) {
            unsafe { out.write(string_into_raw(&endpoint)) };
        }
        if let Some(out) = Out::optional(out_node_id) {
            unsafe { out.write(string_into_raw(&node)) };
        }
        Ok(())
    })
}

/// Logs out every client of the process still logged in, waiting at most `timeout_ms` in all,
/// and returns how many logouts it waited for: call it before a program exits without
/// logging its clients out, so that other users see them leave at once instead of after the
/// presence timeout (Python and Node do this by themselves at exit). The clients stay usable
/// (logged out, as after `rtm2_client_logout`); free them as usual. Do not call it from a
/// callback (it then returns after `timeout_ms` without waiting).
#[unsafe(no_mangle)]
pub extern "C" fn rtm2_logout_all(timeout_ms: u32) -> u32 {
    ffi_value(0, || rtm2_core::logout_all(std::time::Duration::from_millis(timeout_ms.into())) as u32)
}
