//! Presence of a client (`rtm2_presence_*`): who is in a channel, where a user is, and this
//! user's state in a channel — and the borrowed C views of users and their states.
//!
//! The functions take the client handle; their completions run on its dispatcher thread like
//! every other completion (see `rtm2_client_login` for the conventions).

use std::ffi::{c_char, c_void};

use rtm2_core::{ChannelInfo, GetOnlineUsersOptions, OnlineUsers, States, UserState};

use crate::client::{channel_type_arg, client_ref, rtm2_client};
use crate::dispatch::rtm2_completion_cb;
use crate::error::{FfiResult, ffi_status};
use crate::ptr::{Out, ZeroInit, borrow_opt_str, borrow_slice, borrow_str, borrow_str_array, read_sized};
use crate::results::{ResultData, Strings, array_ptr};
use rtm2_proto::validate;

/// One key/value pair of a user's presence state. As input (`rtm2_presence_set_state`) both
/// strings are borrowed for the call; in results and events they are borrowed for the
/// callback. This struct will not change (arrays of it cross the boundary).
#[repr(C)]
pub struct rtm2_state_item {
    /// The key (at most 32 bytes, the name rule; not starting with `_`).
    pub key: *const c_char,
    /// The value (at most 16 KiB).
    pub value: *const c_char,
}

/// A user and its presence state in a channel. Borrowed: valid only during the callback.
#[repr(C)]
pub struct rtm2_user_state {
    /// The user id.
    pub user_id: *const c_char,
    /// `state_count` pairs, sorted by key (NULL when the count is 0).
    pub states: *const rtm2_state_item,
    /// Number of entries in `states`.
    pub state_count: usize,
}

/// A channel and its type. Borrowed: valid only during the callback.
#[repr(C)]
pub struct rtm2_channel_info {
    /// The channel name.
    pub channel: *const c_char,
    /// `RTM2_CHANNEL_TYPE_MESSAGE` or `RTM2_CHANNEL_TYPE_STREAM`.
    pub channel_type: u32,
}

/// Result of `rtm2_presence_get_online_users`: one page of the users present. Borrowed: valid
/// only during the completion callback.
#[repr(C)]
pub struct rtm2_online_users {
    /// The users of this page (none when the options asked for the count only); NULL when the
    /// count is 0. Their `states` are filled only with `include_state`.
    pub occupants: *const rtm2_user_state,
    /// Number of entries in `occupants`.
    pub occupant_count: usize,
    /// Users present in the channel (all pages).
    pub total_occupancy: u32,
    /// Pass as `options.page` to get the next page; `""` on the last page.
    pub next_page: *const c_char,
}

/// Result of `rtm2_presence_get_user_channels`. Borrowed: valid only during the callback.
#[repr(C)]
pub struct rtm2_channel_list {
    /// `count` channels (NULL when the count is 0).
    pub channels: *const rtm2_channel_info,
    /// Number of entries in `channels`.
    pub count: usize,
}

/// Options of `rtm2_presence_get_online_users`. Initialize with
/// `rtm2_get_online_users_options_init`, then change fields.
#[repr(C)]
pub struct rtm2_get_online_users_options {
    /// `sizeof(rtm2_get_online_users_options)` as the caller compiled it.
    pub struct_size: usize,
    /// List the users (default true). With both flags false only the count is returned.
    pub include_user_id: bool,
    /// List each user's state (default false); needs `include_user_id` (else 13003).
    pub include_state: bool,
    /// The `next_page` of an earlier result; NULL or `""` for the first page. Borrowed.
    pub page: *const c_char,
}

// SAFETY: an integer, bools and a pointer.
unsafe impl ZeroInit for rtm2_get_online_users_options {
    /// The end of the last field of version 1; stays when fields are appended.
    const MIN_SIZE: usize = std::mem::offset_of!(rtm2_get_online_users_options, page) + size_of::<*const c_char>();
}

/// Fills `options` with the defaults (user ids, no state, first page) and sets its
/// `struct_size`. NULL is ignored.
///
/// # Safety
/// `options` is NULL or writable storage for an `rtm2_get_online_users_options`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rtm2_get_online_users_options_init(options: *mut rtm2_get_online_users_options) {
    if let Some(out) = Out::optional(options) {
        unsafe {
            out.write(rtm2_get_online_users_options {
                struct_size: size_of::<rtm2_get_online_users_options>(),
                include_user_id: true,
                include_state: false,
                page: std::ptr::null(),
            })
        }
    }
}

// ---- C views of the core's presence data ----

/// A state's pairs in C form (the strings live in the `Strings` given to `new`).
pub(crate) fn c_states(strings: &mut Strings, states: &States) -> Vec<rtm2_state_item> {
    states.iter().map(|(k, v)| rtm2_state_item { key: strings.add(k), value: strings.add(v) }).collect()
}

/// Users with their states in C form.
pub(crate) struct CUserStates {
    _strings: Strings,
    _items: Vec<Vec<rtm2_state_item>>,
    users: Vec<rtm2_user_state>,
}

impl CUserStates {
    pub(crate) fn new(users: &[UserState]) -> Self {
        let mut strings = Strings::default();
        let items: Vec<Vec<rtm2_state_item>> = users.iter().map(|u| c_states(&mut strings, &u.states)).collect();
        let users = users
            .iter()
            .zip(&items)
            .map(|(u, it)| rtm2_user_state {
                user_id: strings.add(&u.user_id),
                states: array_ptr(it),
                state_count: it.len(),
            })
            .collect();
        CUserStates { _strings: strings, _items: items, users }
    }
    pub(crate) fn ptr(&self) -> *const rtm2_user_state {
        array_ptr(&self.users)
    }
    pub(crate) fn len(&self) -> usize {
        self.users.len()
    }
    /// The first user (for a single `rtm2_user_state`).
    pub(crate) fn first(&self) -> Option<&rtm2_user_state> {
        self.users.first()
    }
}

/// Calls `f` with the C view of a page of online users.
pub(crate) fn with_online_users(o: &OnlineUsers, f: impl FnOnce(&rtm2_online_users)) {
    let mut strings = Strings::default();
    let occupants = CUserStates::new(&o.occupants);
    let v = rtm2_online_users {
        occupants: occupants.ptr(),
        occupant_count: occupants.len(),
        total_occupancy: o.total_occupancy,
        next_page: strings.add(&o.next_page),
    };
    f(&v)
}

/// Calls `f` with the C view of a list of channels.
pub(crate) fn with_channels(channels: &[ChannelInfo], f: impl FnOnce(&rtm2_channel_list)) {
    let mut strings = Strings::default();
    let infos: Vec<rtm2_channel_info> = channels
        .iter()
        .map(|c| rtm2_channel_info { channel: strings.add(&c.channel), channel_type: c.channel_type as u32 })
        .collect();
    f(&rtm2_channel_list { channels: array_ptr(&infos), count: infos.len() })
}

/// Calls `f` with the C view of one user's state.
pub(crate) fn with_user_state(u: &UserState, f: impl FnOnce(&rtm2_user_state)) {
    let users = CUserStates::new(std::slice::from_ref(u));
    if let Some(v) = users.first() {
        f(v)
    }
}

// ---- operations ----

fn online_users_options(o: Option<rtm2_get_online_users_options>) -> FfiResult<GetOnlineUsersOptions> {
    let Some(o) = o else { return Ok(GetOnlineUsersOptions::default()) };
    Ok(GetOnlineUsersOptions {
        include_user_id: o.include_user_id,
        include_state: o.include_state,
        page: unsafe { borrow_opt_str(o.page, "options.page") }?.unwrap_or("").to_string(),
    })
}

/// Gets the users present in a channel (`RTM2_CHANNEL_TYPE_MESSAGE` or `_STREAM`), a page at
/// a time; this client need not be in the channel. Users that subscribed or joined with
/// `BE_QUIET` are not listed. `options` may be NULL (user ids, no state, first page). On
/// success `result->online_users` holds the page: walk the pages by passing its `next_page`
/// as `options.page` until it is `""`. Completes with `RTM2_OK`, 10002 NOT_LOGIN, 10008
/// INVALID_CHANNEL_NAME, 10019 INVALID_CHANNEL_TYPE (USER), 13003 PRESENCE_INVALID_ARGUMENT
/// (`include_state` without `include_user_id`), 13012 PRESENCE_OPERATION_TIMEOUT, ….
/// A `channel_type` that is no channel type at all is refused at once with 10019.
///
/// # Safety
/// `client` is a live client; `channel` a NUL-terminated string; `options` NULL or
/// initialized; `out_request_id` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rtm2_presence_get_online_users(
    client: *mut rtm2_client,
    channel: *const c_char,
    channel_type: u32,
    options: *const rtm2_get_online_users_options,
    cb: rtm2_completion_cb,
    user_data: *mut c_void,
    out_request_id: *mut u64,
) -> i32 {
    ffi_status(|| {
        let c = unsafe { client_ref(client) }?;
        let channel = unsafe { borrow_str(channel, "channel") }?;
        let channel_type = channel_type_arg(channel_type)?;
        let opts = online_users_options(unsafe { read_sized(options, "options") }?)?;
        c.start_map(
            "get_online_users",
            cb,
            user_data,
            out_request_id,
            |cl| cl.presence().get_online_users(channel, channel_type, opts),
            ResultData::OnlineUsers,
        )
    })
}

/// Alias of `rtm2_presence_get_online_users` (the reference's `whoNow`).
///
/// # Safety
/// As `rtm2_presence_get_online_users`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rtm2_presence_who_now(
    client: *mut rtm2_client,
    channel: *const c_char,
    channel_type: u32,
    options: *const rtm2_get_online_users_options,
    cb: rtm2_completion_cb,
    user_data: *mut c_void,
    out_request_id: *mut u64,
) -> i32 {
    unsafe { rtm2_presence_get_online_users(client, channel, channel_type, options, cb, user_data, out_request_id) }
}

/// Gets the channels a user is present in: `user_id` NULL or `""` = this client. Channels it
/// is in with `BE_QUIET` are not listed. On success `result->user_channels` holds them.
/// Completes with `RTM2_OK`, 10002, 10006 INVALID_USER_ID, 13012, ….
///
/// # Safety
/// `client` is a live client; `user_id` NULL or a NUL-terminated string; `out_request_id`
/// NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rtm2_presence_get_user_channels(
    client: *mut rtm2_client,
    user_id: *const c_char,
    cb: rtm2_completion_cb,
    user_data: *mut c_void,
    out_request_id: *mut u64,
) -> i32 {
    ffi_status(|| {
        let c = unsafe { client_ref(client) }?;
        let user_id = unsafe { borrow_opt_str(user_id, "user_id") }?.unwrap_or("");
        c.start_map(
            "get_user_channels",
            cb,
            user_data,
            out_request_id,
            |cl| cl.presence().get_user_channels(user_id),
            ResultData::UserChannels,
        )
    })
}

/// Alias of `rtm2_presence_get_user_channels` (the reference's `whereNow`).
///
/// # Safety
/// As `rtm2_presence_get_user_channels`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rtm2_presence_where_now(
    client: *mut rtm2_client,
    user_id: *const c_char,
    cb: rtm2_completion_cb,
    user_data: *mut c_void,
    out_request_id: *mut u64,
) -> i32 {
    unsafe { rtm2_presence_get_user_channels(client, user_id, cb, user_data, out_request_id) }
}

/// Sets (adds or overwrites) `state_count` keys of this client's state in a channel; the
/// others present get one REMOTE_STATE_CHANGED presence event with the full state. Before the
/// (logged-in) client subscribes to / joins the channel with presence, the state is kept
/// locally (for at most 100 channels) and set when it does. Completes with `RTM2_OK`, 10002
/// NOT_LOGIN, 10019, 13003 (no pairs), 13004 PRESENCE_CACHED_TOO_MANY_STATES, 13005 PRESENCE_STATE_COUNT_OVERFLOW (more
/// than 32 keys with the existing ones; a `state_count` over 32 completes with it before
/// `states` is read), 13006 / 13007 invalid key / value, 13008 / 13009 key
/// over 32 bytes / value over 16 KiB, 13010 PRESENCE_STATE_DUPLICATE_KEY, 13012, ….
///
/// # Safety
/// `client` is a live client; `channel` a NUL-terminated string; `states` NULL (with count 0)
/// or `state_count` pairs of NUL-terminated strings; `out_request_id` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rtm2_presence_set_state(
    client: *mut rtm2_client,
    channel: *const c_char,
    channel_type: u32,
    states: *const rtm2_state_item,
    state_count: usize,
    cb: rtm2_completion_cb,
    user_data: *mut c_void,
    out_request_id: *mut u64,
) -> i32 {
    ffi_status(|| {
        let c = unsafe { client_ref(client) }?;
        let channel = unsafe { borrow_str(channel, "channel") }?;
        let channel_type = channel_type_arg(channel_type)?;
        // The count first: a wrong one must not make us read past the caller's array.
        if c.refused("set_state", cb, user_data, out_request_id, validate::state_count(state_count))? {
            return Ok(());
        }
        let pairs = unsafe { borrow_slice(states, state_count, "states") }?
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let key = unsafe { borrow_str(s.key, &format!("states[{i}].key")) }?;
                let value = unsafe { borrow_str(s.value, &format!("states[{i}].value")) }?;
                Ok((key, value))
            })
            .collect::<FfiResult<Vec<(&str, &str)>>>()?;
        c.start("set_state", cb, user_data, out_request_id, |cl| cl.presence().set_state(channel, channel_type, pairs))
    })
}

/// Gets a user's state in a channel. On success `result->user_state` holds it. Completes
/// with `RTM2_OK`, 10006, 10019, 13011 PRESENCE_USER_NOT_EXIST (the user is not present
/// there), 13012, ….
///
/// # Safety
/// `client` is a live client; `channel` and `user_id` NUL-terminated strings;
/// `out_request_id` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rtm2_presence_get_state(
    client: *mut rtm2_client,
    channel: *const c_char,
    channel_type: u32,
    user_id: *const c_char,
    cb: rtm2_completion_cb,
    user_data: *mut c_void,
    out_request_id: *mut u64,
) -> i32 {
    ffi_status(|| {
        let c = unsafe { client_ref(client) }?;
        let channel = unsafe { borrow_str(channel, "channel") }?;
        let channel_type = channel_type_arg(channel_type)?;
        let user_id = unsafe { borrow_str(user_id, "user_id") }?;
        c.start_map(
            "get_state",
            cb,
            user_data,
            out_request_id,
            |cl| cl.presence().get_state(channel, channel_type, user_id),
            ResultData::UserState,
        )
    })
}

/// Removes `key_count` keys of this client's state in a channel (`key_count` 0: all of
/// them); the others present get a REMOTE_STATE_CHANGED event. Completes with `RTM2_OK`,
/// 10019, 13005 (a `key_count` over 32, `keys` unread), 13006, 13012, ….
///
/// # Safety
/// `client` is a live client; `channel` a NUL-terminated string; `keys` NULL (with count 0)
/// or `key_count` NUL-terminated strings; `out_request_id` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rtm2_presence_remove_state(
    client: *mut rtm2_client,
    channel: *const c_char,
    channel_type: u32,
    keys: *const *const c_char,
    key_count: usize,
    cb: rtm2_completion_cb,
    user_data: *mut c_void,
    out_request_id: *mut u64,
) -> i32 {
    ffi_status(|| {
        let c = unsafe { client_ref(client) }?;
        let channel = unsafe { borrow_str(channel, "channel") }?;
        let channel_type = channel_type_arg(channel_type)?;
        if c.refused("remove_state", cb, user_data, out_request_id, validate::state_key_count(key_count))? {
            return Ok(());
        }
        let keys: Vec<String> =
            unsafe { borrow_str_array(keys, key_count, "keys") }?.into_iter().map(String::from).collect();
        c.start("remove_state", cb, user_data, out_request_id, |cl| {
            cl.presence().remove_state(channel, channel_type, keys)
        })
    })
}
