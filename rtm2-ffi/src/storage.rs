//! Storage of a client (`rtm2_storage_*`): channel metadata and user metadata with revisions
//! (compare-and-set) — and the borrowed C views of metadata.
//!
//! The functions take the client handle; their completions run on its dispatcher thread like
//! every other completion (see `rtm2_client_login` for the conventions).

use std::ffi::{c_char, c_void};

use rtm2_core::{Metadata, MetadataItem, MetadataOptions, MetadataWrite};

use crate::client::{channel_type_arg, client_ref, rtm2_client};
use crate::dispatch::rtm2_completion_cb;
use crate::error::{FfiResult, ffi_status};
use crate::ptr::{Out, ZeroInit, borrow_opt_str, borrow_slice, borrow_str, read_sized};
use crate::results::{ResultData, Strings, array_ptr};
use rtm2_proto::validate;

/// One metadata item.
///
/// As input (the items of a write, borrowed for the call): `key`; `value` (NULL = `""`;
/// ignored by the remove functions); `revision`, a condition — -1 no check, 0 create only
/// (set functions), N the item's current revision must be N (else 12014); `updated_ms` and
/// `author` are ignored. In results and events (borrowed for the callback): the item as
/// stored, `revision` being the major revision of the write that wrote it, `updated_ms` the
/// server time of that write (0 unless it asked for `record_ts`) and `author` its writer
/// (`""` unless it asked for `record_author`).
///
/// This struct will not change (arrays of it cross the boundary).
#[repr(C)]
pub struct rtm2_metadata_item {
    /// The key (at most 32 bytes, the name rule; not starting with `_`).
    pub key: *const c_char,
    /// The value (at most 16 KiB).
    pub value: *const c_char,
    /// See the struct's documentation.
    pub revision: i64,
    /// When it was written, milliseconds since the Unix epoch (0: not recorded). Read-only.
    pub updated_ms: u64,
    /// Who wrote it (`""`: not recorded). Read-only.
    pub author: *const c_char,
}

/// A metadata set: its major revision and its items. Borrowed: valid only during the callback.
#[repr(C)]
pub struct rtm2_metadata {
    /// Incremented by every write of the set (0: never written).
    pub major_revision: i64,
    /// `item_count` items, sorted by key (NULL when the count is 0).
    pub items: *const rtm2_metadata_item,
    /// Number of entries in `items`.
    pub item_count: usize,
}

/// Result of a metadata write (set, update, remove).
#[repr(C)]
pub struct rtm2_metadata_write {
    /// The set's major revision after the write (also the revision of every item written).
    pub major_revision: i64,
    /// Items in the set after the write.
    pub total_count: u32,
}

/// Options of the metadata writes. Initialize with `rtm2_metadata_options_init`, then change
/// fields.
#[repr(C)]
pub struct rtm2_metadata_options {
    /// `sizeof(rtm2_metadata_options)` as the caller compiled it.
    pub struct_size: usize,
    /// A condition on the whole set: -1 (default) no check, 0 the set must be empty (set
    /// functions only), N its major revision must be N (else 12014 OUTDATED_REVISION).
    pub major_revision: i64,
    /// Channel metadata only: write only if this client holds this lock of the channel (12008
    /// STORAGE_LOCK_NOT_ACQUIRED); NULL or `""` = none. Borrowed. User metadata: 12004.
    pub lock_name: *const c_char,
    /// Stamp the written items with the server time (`updated_ms`).
    pub record_ts: bool,
    /// Stamp the written items with this user id (`author`).
    pub record_author: bool,
    /// With `lock_name`: the fencing token of this client's grant of that lock (the
    /// `fencing_token` of `rtm2_lock_acquire`'s result); the write is refused with 12008 unless
    /// it is the lock's current grant. 0 (default) = not checked; without `lock_name`: 12004.
    /// A caller compiled before this field existed (a smaller `struct_size`) gets 0.
    pub fencing_token: u64,
}

// SAFETY: integers, a pointer and bools.
unsafe impl ZeroInit for rtm2_metadata_options {
    /// The end of the last field of version 1; stays when fields are appended.
    const MIN_SIZE: usize = std::mem::offset_of!(rtm2_metadata_options, record_author) + size_of::<bool>();
}

/// Fills `options` with the defaults (no major-revision check, no lock, nothing recorded) and
/// sets its `struct_size`. NULL is ignored.
///
/// # Safety
/// `options` is NULL or writable storage for an `rtm2_metadata_options`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rtm2_metadata_options_init(options: *mut rtm2_metadata_options) {
    if let Some(out) = Out::optional(options) {
        unsafe {
            out.write(rtm2_metadata_options {
                struct_size: size_of::<rtm2_metadata_options>(),
                major_revision: -1,
                lock_name: std::ptr::null(),
                record_ts: false,
                record_author: false,
                fencing_token: 0,
            })
        }
    }
}

// ---- C views of the core's metadata ----

/// A metadata set in C form.
pub(crate) struct CMetadata {
    _strings: Strings,
    _items: Vec<rtm2_metadata_item>,
    view: rtm2_metadata,
}

impl CMetadata {
    pub(crate) fn new(m: &Metadata) -> Self {
        let mut strings = Strings::default();
        let items: Vec<rtm2_metadata_item> = m
            .items
            .iter()
            .map(|i| rtm2_metadata_item {
                key: strings.add(&i.key),
                value: strings.add(&i.value),
                revision: i.revision,
                updated_ms: i.updated_ms,
                author: strings.add(&i.author),
            })
            .collect();
        let view =
            rtm2_metadata { major_revision: m.major_revision, items: array_ptr(&items), item_count: items.len() };
        CMetadata { _strings: strings, _items: items, view }
    }
    pub(crate) fn view(&self) -> &rtm2_metadata {
        &self.view
    }
}

pub(crate) fn c_metadata_write(w: &MetadataWrite) -> rtm2_metadata_write {
    rtm2_metadata_write { major_revision: w.major_revision, total_count: w.total_count }
}

// ---- operations ----

/// The items of a write, copied from C.
///
/// # Safety
/// `items` is NULL (with count 0) or `count` items whose strings are valid.
unsafe fn read_items(items: *const rtm2_metadata_item, count: usize) -> FfiResult<Vec<MetadataItem>> {
    unsafe { borrow_slice(items, count, "items") }?
        .iter()
        .enumerate()
        .map(|(i, it)| {
            let key = unsafe { borrow_str(it.key, &format!("items[{i}].key")) }?;
            let value = unsafe { borrow_opt_str(it.value, &format!("items[{i}].value")) }?.unwrap_or("");
            Ok(MetadataItem::new(key, value).with_revision(it.revision))
        })
        .collect()
}

fn read_options(o: Option<rtm2_metadata_options>) -> FfiResult<MetadataOptions> {
    let Some(o) = o else { return Ok(MetadataOptions::default()) };
    Ok(MetadataOptions {
        major_revision: o.major_revision,
        lock_name: unsafe { borrow_opt_str(o.lock_name, "options.lock_name") }?.unwrap_or("").to_string(),
        fencing_token: o.fencing_token,
        record_ts: o.record_ts,
        record_author: o.record_author,
    })
}

#[derive(Clone, Copy)]
enum Write {
    Set,
    Update,
    Remove,
}

/// Where a metadata call goes: a channel (name + type) or a user ("" = self).
enum Target<'a> {
    Channel(&'a str, u32),
    User(&'a str),
}

/// Starts a metadata write.
///
/// # Safety
/// The pointers are as documented on the exported functions.
#[allow(clippy::too_many_arguments)]
unsafe fn write(
    kind: Write,
    client: *mut rtm2_client,
    target: Target<'_>,
    items: *const rtm2_metadata_item,
    item_count: usize,
    options: *const rtm2_metadata_options,
    cb: rtm2_completion_cb,
    user_data: *mut c_void,
    out_request_id: *mut u64,
) -> FfiResult<()> {
    let c = unsafe { client_ref(client) }?;
    let op = match (&target, kind) {
        (Target::Channel(..), Write::Set) => "set_channel_metadata",
        (Target::Channel(..), Write::Update) => "update_channel_metadata",
        (Target::Channel(..), Write::Remove) => "remove_channel_metadata",
        (Target::User(_), Write::Set) => "set_user_metadata",
        (Target::User(_), Write::Update) => "update_user_metadata",
        (Target::User(_), Write::Remove) => "remove_user_metadata",
    };
    // The count first: a wrong one must not make us read past the caller's array.
    if c.refused(op, cb, user_data, out_request_id, validate::metadata_item_count(item_count))? {
        return Ok(());
    }
    let items = unsafe { read_items(items, item_count) }?;
    let opts = read_options(unsafe { read_sized(options, "options") }?)?;
    let map = |w: rtm2_core::Timed<MetadataWrite>| ResultData::MetadataWrite(w);
    match target {
        Target::Channel(channel, channel_type) => {
            let t = channel_type_arg(channel_type)?;
            c.start_map(
                op,
                cb,
                user_data,
                out_request_id,
                |cl| {
                    let s = cl.storage();
                    match kind {
                        Write::Set => s.set_channel_metadata(channel, t, items, opts),
                        Write::Update => s.update_channel_metadata(channel, t, items, opts),
                        Write::Remove => s.remove_channel_metadata(channel, t, items, opts),
                    }
                },
                map,
            )
        }
        Target::User(user) => c.start_map(
            op,
            cb,
            user_data,
            out_request_id,
            |cl| {
                let s = cl.storage();
                match kind {
                    Write::Set => s.set_user_metadata(user, items, opts),
                    Write::Update => s.update_user_metadata(user, items, opts),
                    Write::Remove => s.remove_user_metadata(user, items, opts),
                }
            },
            map,
        ),
    }
}

/// Adds or overwrites `item_count` items of a channel's metadata (`RTM2_CHANNEL_TYPE_MESSAGE`
/// or `_STREAM`; at most 32 items per call); this client need not be in the channel. On
/// success `result->metadata_write` holds the new major revision and item count; subscribers
/// with `WITH_METADATA` get an UPDATE storage event with the whole set. `options` may be NULL
/// (no conditions). Completes with `RTM2_OK`, 10002, 10008, 10019, 12002 (more than 32
/// items; an `item_count` over 32 completes with it before `items` is read), 12005
/// STORAGE_INVALID_REVISION, 12006 (the set would pass 16 KiB), 12007 / 12008
/// (lock name invalid / not held), 12009 / 12010 invalid key / value, 12011 / 12012 key over
/// 32 bytes / value over 16 KiB, 12013 STORAGE_DUPLICATE_KEY, 12014
/// STORAGE_OUTDATED_REVISION (a revision condition failed), 12018 STORAGE_OPERATION_TIMEOUT,
/// ….
///
/// # Safety
/// `client` is a live client; `channel` a NUL-terminated string; `items` NULL (with count 0)
/// or `item_count` items whose `key` is a NUL-terminated string and `value` NULL or one;
/// `options` NULL or initialized; `out_request_id` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rtm2_storage_set_channel_metadata(
    client: *mut rtm2_client,
    channel: *const c_char,
    channel_type: u32,
    items: *const rtm2_metadata_item,
    item_count: usize,
    options: *const rtm2_metadata_options,
    cb: rtm2_completion_cb,
    user_data: *mut c_void,
    out_request_id: *mut u64,
) -> i32 {
    ffi_status(|| {
        let channel = unsafe { borrow_str(channel, "channel") }?;
        let t = Target::Channel(channel, channel_type);
        unsafe { write(Write::Set, client, t, items, item_count, options, cb, user_data, out_request_id) }
    })
}

/// Changes existing items of a channel's metadata (12014 if one does not exist; an item
/// revision of 0 is refused with 12005). Otherwise as `rtm2_storage_set_channel_metadata`.
///
/// # Safety
/// As `rtm2_storage_set_channel_metadata`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rtm2_storage_update_channel_metadata(
    client: *mut rtm2_client,
    channel: *const c_char,
    channel_type: u32,
    items: *const rtm2_metadata_item,
    item_count: usize,
    options: *const rtm2_metadata_options,
    cb: rtm2_completion_cb,
    user_data: *mut c_void,
    out_request_id: *mut u64,
) -> i32 {
    ffi_status(|| {
        let channel = unsafe { borrow_str(channel, "channel") }?;
        let t = Target::Channel(channel, channel_type);
        unsafe { write(Write::Update, client, t, items, item_count, options, cb, user_data, out_request_id) }
    })
}

/// Removes the items with the keys of `items` (their values are ignored) from a channel's
/// metadata; `item_count` 0 removes every item. A major revision of 0 is refused with 12005.
/// Otherwise as `rtm2_storage_set_channel_metadata`.
///
/// # Safety
/// As `rtm2_storage_set_channel_metadata`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rtm2_storage_remove_channel_metadata(
    client: *mut rtm2_client,
    channel: *const c_char,
    channel_type: u32,
    items: *const rtm2_metadata_item,
    item_count: usize,
    options: *const rtm2_metadata_options,
    cb: rtm2_completion_cb,
    user_data: *mut c_void,
    out_request_id: *mut u64,
) -> i32 {
    ffi_status(|| {
        let channel = unsafe { borrow_str(channel, "channel") }?;
        let t = Target::Channel(channel, channel_type);
        unsafe { write(Write::Remove, client, t, items, item_count, options, cb, user_data, out_request_id) }
    })
}

/// Gets a channel's metadata (empty with major revision 0 if never written). On success
/// `result->metadata` holds it. Completes with `RTM2_OK`, 10002, 10008, 10019, 12018, ….
///
/// # Safety
/// `client` is a live client; `channel` a NUL-terminated string; `out_request_id` NULL or
/// writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rtm2_storage_get_channel_metadata(
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
        c.start_map(
            "get_channel_metadata",
            cb,
            user_data,
            out_request_id,
            |cl| cl.storage().get_channel_metadata(channel, t),
            ResultData::Metadata,
        )
    })
}

/// Adds or overwrites items of a user's metadata: `user_id` NULL or `""` = this client (any
/// user's metadata may be written). Subscribers of that user's metadata get an UPDATE
/// storage event. `options.lock_name` must be empty (12004). Otherwise as
/// `rtm2_storage_set_channel_metadata` (10006 INVALID_USER_ID instead of the channel errors).
///
/// # Safety
/// `client` is a live client; `user_id` NULL or a NUL-terminated string; `items`, `options`
/// and `out_request_id` as for `rtm2_storage_set_channel_metadata`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rtm2_storage_set_user_metadata(
    client: *mut rtm2_client,
    user_id: *const c_char,
    items: *const rtm2_metadata_item,
    item_count: usize,
    options: *const rtm2_metadata_options,
    cb: rtm2_completion_cb,
    user_data: *mut c_void,
    out_request_id: *mut u64,
) -> i32 {
    ffi_status(|| {
        let user = unsafe { borrow_opt_str(user_id, "user_id") }?.unwrap_or("");
        unsafe {
            write(Write::Set, client, Target::User(user), items, item_count, options, cb, user_data, out_request_id)
        }
    })
}

/// Changes existing items of a user's metadata. As `rtm2_storage_set_user_metadata` and
/// `rtm2_storage_update_channel_metadata`.
///
/// # Safety
/// As `rtm2_storage_set_user_metadata`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rtm2_storage_update_user_metadata(
    client: *mut rtm2_client,
    user_id: *const c_char,
    items: *const rtm2_metadata_item,
    item_count: usize,
    options: *const rtm2_metadata_options,
    cb: rtm2_completion_cb,
    user_data: *mut c_void,
    out_request_id: *mut u64,
) -> i32 {
    ffi_status(|| {
        let user = unsafe { borrow_opt_str(user_id, "user_id") }?.unwrap_or("");
        let t = Target::User(user);
        unsafe { write(Write::Update, client, t, items, item_count, options, cb, user_data, out_request_id) }
    })
}

/// Removes items of a user's metadata (`item_count` 0: all of them). As
/// `rtm2_storage_set_user_metadata` and `rtm2_storage_remove_channel_metadata`.
///
/// # Safety
/// As `rtm2_storage_set_user_metadata`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rtm2_storage_remove_user_metadata(
    client: *mut rtm2_client,
    user_id: *const c_char,
    items: *const rtm2_metadata_item,
    item_count: usize,
    options: *const rtm2_metadata_options,
    cb: rtm2_completion_cb,
    user_data: *mut c_void,
    out_request_id: *mut u64,
) -> i32 {
    ffi_status(|| {
        let user = unsafe { borrow_opt_str(user_id, "user_id") }?.unwrap_or("");
        let t = Target::User(user);
        unsafe { write(Write::Remove, client, t, items, item_count, options, cb, user_data, out_request_id) }
    })
}

/// Gets a user's metadata (`user_id` NULL or `""` = this client). On success
/// `result->metadata` holds it. Completes with `RTM2_OK`, 10002, 10006, 12018, ….
///
/// # Safety
/// `client` is a live client; `user_id` NULL or a NUL-terminated string; `out_request_id`
/// NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rtm2_storage_get_user_metadata(
    client: *mut rtm2_client,
    user_id: *const c_char,
    cb: rtm2_completion_cb,
    user_data: *mut c_void,
    out_request_id: *mut u64,
) -> i32 {
    ffi_status(|| {
        let c = unsafe { client_ref(client) }?;
        let user = unsafe { borrow_opt_str(user_id, "user_id") }?.unwrap_or("");
        c.start_map(
            "get_user_metadata",
            cb,
            user_data,
            out_request_id,
            |cl| cl.storage().get_user_metadata(user),
            ResultData::Metadata,
        )
    })
}

/// Subscribes to a user's metadata: `on_storage` then gets a SNAPSHOT storage event with the
/// whole set, and an UPDATE after every change (restored after reconnects). At most 50 users
/// (12017 STORAGE_SUBSCRIBE_USER_EXCEED_LIMITATION). Completes with `RTM2_OK`, 10002, 10006,
/// 12017, 12018, ….
///
/// # Safety
/// `client` is a live client; `user_id` a NUL-terminated string; `out_request_id` NULL or
/// writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rtm2_storage_subscribe_user_metadata(
    client: *mut rtm2_client,
    user_id: *const c_char,
    cb: rtm2_completion_cb,
    user_data: *mut c_void,
    out_request_id: *mut u64,
) -> i32 {
    ffi_status(|| {
        let c = unsafe { client_ref(client) }?;
        let user = unsafe { borrow_str(user_id, "user_id") }?;
        c.start("subscribe_user_metadata", cb, user_data, out_request_id, |cl| {
            cl.storage().subscribe_user_metadata(user)
        })
    })
}

/// Stops receiving a user's metadata events. Completes with `RTM2_OK`, 10006, 12015
/// STORAGE_NOT_SUBSCRIBE (not subscribed), 12018, ….
///
/// # Safety
/// As `rtm2_storage_subscribe_user_metadata`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rtm2_storage_unsubscribe_user_metadata(
    client: *mut rtm2_client,
    user_id: *const c_char,
    cb: rtm2_completion_cb,
    user_data: *mut c_void,
    out_request_id: *mut u64,
) -> i32 {
    ffi_status(|| {
        let c = unsafe { client_ref(client) }?;
        let user = unsafe { borrow_str(user_id, "user_id") }?;
        c.start("unsubscribe_user_metadata", cb, user_data, out_request_id, |cl| {
            cl.storage().unsubscribe_user_metadata(user)
        })
    })
}
