//! Locks of a client (`rtm2_lock_*`), scoped to a channel (name + type) — and the borrowed C
//! view of a channel's locks.
//!
//! The functions take the client handle; their completions run on its dispatcher thread like
//! every other completion (see `rtm2_client_login` for the conventions). They work without
//! subscribing to or joining the channel.

use std::ffi::{c_char, c_void};

use rtm2_core::LockDetail;

use crate::client::{channel_type_arg, client_ref, rtm2_client};
use crate::dispatch::rtm2_completion_cb;
use crate::error::ffi_status;
use crate::ptr::borrow_str;
use crate::results::{ResultData, Strings, array_ptr};

/// A lock of a channel. Borrowed: valid only during the callback.
#[repr(C)]
pub struct rtm2_lock_detail {
    /// The lock name.
    pub name: *const c_char,
    /// Its owner (`""` = free).
    pub owner: *const c_char,
    /// Seconds an owner keeps it after its connection drops or it logs out.
    pub ttl_s: u32,
    /// The fencing token of the owner's grant (0 when free); see `rtm2_lock_acquire`.
    pub fencing_token: u64,
}

/// Result of `rtm2_lock_get_locks`. Borrowed: valid only during the completion callback.
#[repr(C)]
pub struct rtm2_lock_list {
    /// `count` locks (NULL when the count is 0).
    pub locks: *const rtm2_lock_detail,
    /// Number of entries in `locks`.
    pub count: usize,
}

/// Locks in C form.
pub(crate) struct CLocks {
    _strings: Strings,
    details: Vec<rtm2_lock_detail>,
}

impl CLocks {
    pub(crate) fn new(locks: &[LockDetail]) -> Self {
        let mut strings = Strings::default();
        let details = locks
            .iter()
            .map(|l| rtm2_lock_detail {
                name: strings.add(&l.name),
                owner: strings.add(&l.owner),
                ttl_s: l.ttl_s,
                fencing_token: l.fencing_token,
            })
            .collect();
        CLocks { _strings: strings, details }
    }
    pub(crate) fn ptr(&self) -> *const rtm2_lock_detail {
        array_ptr(&self.details)
    }
    pub(crate) fn len(&self) -> usize {
        self.details.len()
    }
}

/// Defines a lock named `name` in a channel (`RTM2_CHANNEL_TYPE_MESSAGE` or `_STREAM`) with a
/// ttl of `ttl_s` seconds (0 = 10; clamped to 10..300): how long an owner keeps the lock after
/// its connection drops. Subscribers with `WITH_LOCK` get a SET lock event. Completes with
/// `RTM2_OK`, 10002, 10008, 10019, 14004 LOCK_ALREADY_EXIST, 14005 LOCK_INVALID_NAME, 14002
/// LOCK_OPERATION_TIMEOUT, …. A `channel_type` that is no channel type at all is refused at
/// once with 10019.
///
/// # Safety
/// `client` is a live client; `channel` and `name` NUL-terminated strings; `out_request_id`
/// NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rtm2_lock_set(
    client: *mut rtm2_client,
    channel: *const c_char,
    channel_type: u32,
    name: *const c_char,
    ttl_s: u32,
    cb: rtm2_completion_cb,
    user_data: *mut c_void,
    out_request_id: *mut u64,
) -> i32 {
    ffi_status(|| {
        let c = unsafe { client_ref(client) }?;
        let channel = unsafe { borrow_str(channel, "channel") }?;
        let t = channel_type_arg(channel_type)?;
        let name = unsafe { borrow_str(name, "name") }?;
        c.start("set_lock", cb, user_data, out_request_id, |cl| cl.lock().set_lock(channel, t, name, ttl_s))
    })
}

/// Removes a lock (REMOVED lock event); acquisitions waiting for it complete with 14008.
/// Completes with `RTM2_OK`, 14008 LOCK_NOT_EXIST, 14005, 10019, 14002, ….
///
/// # Safety
/// `client` is a live client; `channel` and `name` NUL-terminated strings; `out_request_id`
/// NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rtm2_lock_remove(
    client: *mut rtm2_client,
    channel: *const c_char,
    channel_type: u32,
    name: *const c_char,
    cb: rtm2_completion_cb,
    user_data: *mut c_void,
    out_request_id: *mut u64,
) -> i32 {
    ffi_status(|| {
        let c = unsafe { client_ref(client) }?;
        let channel = unsafe { borrow_str(channel, "channel") }?;
        let t = channel_type_arg(channel_type)?;
        let name = unsafe { borrow_str(name, "name") }?;
        c.start("remove_lock", cb, user_data, out_request_id, |cl| cl.lock().remove_lock(channel, t, name))
    })
}

/// Takes a lock (ACQUIRED lock event). Completes with `RTM2_OK` (also when this client holds
/// it already), 14007 LOCK_ACQUIRE_FAILED (held by another user, without `retry`), 14008
/// LOCK_NOT_EXIST, 14005, 10019, 14002, ….
///
/// On success `result->fencing_token` is the grant's fencing token (an owner acquiring again
/// gets its grant's token). Tokens strictly increase from grant to grant (one counter per
/// server, durable before the grant is answered when the server has a data directory). An
/// owner that was paused may still believe it holds a lock that was freed and granted to
/// another client: pass the token with every write to a resource the lock guards, and have
/// the resource reject tokens lower than the highest it has seen. Metadata writes take it as
/// `rtm2_metadata_options.fencing_token` (with `lock_name`).
///
/// With `retry`, an acquisition of a lock held by another user waits in the server's queue
/// and completes with `RTM2_OK` when the lock is granted — however long that takes (the
/// request timeout does not apply) — or with 14008 when the lock is removed. The call itself
/// returns at once, like every operation. To stop waiting, call `rtm2_lock_release` for the
/// same lock: the server withdraws the acquisition, which completes with 14001
/// LOCK_OPERATION_FAILED. The wait also ends when the client logs out (10025 NOT_CONNECTED: the
/// session that sent it ended) or is freed (10018 INSTANCE_ALREADY_RELEASED).
///
/// # Safety
/// `client` is a live client; `channel` and `name` NUL-terminated strings; `out_request_id`
/// NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rtm2_lock_acquire(
    client: *mut rtm2_client,
    channel: *const c_char,
    channel_type: u32,
    name: *const c_char,
    retry: bool,
    cb: rtm2_completion_cb,
    user_data: *mut c_void,
    out_request_id: *mut u64,
) -> i32 {
    ffi_status(|| {
        let c = unsafe { client_ref(client) }?;
        let channel = unsafe { borrow_str(channel, "channel") }?;
        let t = channel_type_arg(channel_type)?;
        let name = unsafe { borrow_str(name, "name") }?;
        c.start_map(
            "acquire_lock",
            cb,
            user_data,
            out_request_id,
            |cl| cl.lock().acquire_lock(channel, t, name, retry),
            ResultData::LockGrant,
        )
    })
}

/// Releases a lock this client holds (RELEASED lock event); the first waiting acquirer gets
/// it. While an acquisition of this client with `retry` waits for the lock, withdraws that
/// acquisition instead (it completes with 14001). Completes with `RTM2_OK`, 14006
/// LOCK_NOT_ACQUIRED (not held by this client), 14008, 14005, 10019, 14002, ….
///
/// # Safety
/// `client` is a live client; `channel` and `name` NUL-terminated strings; `out_request_id`
/// NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rtm2_lock_release(
    client: *mut rtm2_client,
    channel: *const c_char,
    channel_type: u32,
    name: *const c_char,
    cb: rtm2_completion_cb,
    user_data: *mut c_void,
    out_request_id: *mut u64,
) -> i32 {
    ffi_status(|| {
        let c = unsafe { client_ref(client) }?;
        let channel = unsafe { borrow_str(channel, "channel") }?;
        let t = channel_type_arg(channel_type)?;
        let name = unsafe { borrow_str(name, "name") }?;
        c.start("release_lock", cb, user_data, out_request_id, |cl| cl.lock().release_lock(channel, t, name))
    })
}

/// Frees a lock held by `owner` (any client may revoke, naming the current owner; RELEASED
/// lock event with this client as publisher); the first waiting acquirer gets it. Completes
/// with `RTM2_OK`, 14006 LOCK_NOT_ACQUIRED (`owner` does not hold it), 14008, 14005, 10006,
/// 10019, 14002, ….
///
/// # Safety
/// `client` is a live client; `channel`, `name` and `owner` NUL-terminated strings;
/// `out_request_id` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rtm2_lock_revoke(
    client: *mut rtm2_client,
    channel: *const c_char,
    channel_type: u32,
    name: *const c_char,
    owner: *const c_char,
    cb: rtm2_completion_cb,
    user_data: *mut c_void,
    out_request_id: *mut u64,
) -> i32 {
    ffi_status(|| {
        let c = unsafe { client_ref(client) }?;
        let channel = unsafe { borrow_str(channel, "channel") }?;
        let t = channel_type_arg(channel_type)?;
        let name = unsafe { borrow_str(name, "name") }?;
        let owner = unsafe { borrow_str(owner, "owner") }?;
        c.start("revoke_lock", cb, user_data, out_request_id, |cl| cl.lock().revoke_lock(channel, t, name, owner))
    })
}

/// Gets every lock of a channel with its owner. On success `result->locks` holds them.
/// Completes with `RTM2_OK`, 10002, 10008, 10019, 14002, ….
///
/// # Safety
/// `client` is a live client; `channel` a NUL-terminated string; `out_request_id` NULL or
/// writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rtm2_lock_get_locks(
    client: *mut rtm2_client,
    channel: *const c_char,
    channel_type: u32,
    cb: rtm2_completion_cb,
    user_data: *mut c_void,
    out_request_id: *mut u64,
) -> i32 {
    ffi_status(|| {
        let c = unsafe { client_ref(client) }?;
        let channel = unsafe { borrow_str(channel, "channel") }?;
        let t = channel_type_arg(channel_type)?;
        c.start_map("get_locks", cb, user_data, out_request_id, |cl| cl.lock().get_locks(channel, t), ResultData::Locks)
    })
}
