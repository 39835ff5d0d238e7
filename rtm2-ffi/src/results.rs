//! `rtm2_result`: what a completion callback receives, and the borrowed C views of the core's
//! results (join snapshot, per-user subscribe_topic results, subscribed-user lists; the views
//! of presence, metadata and locks live in their modules).

use std::ffi::{CString, c_char};
use std::ptr;

use rtm2_core::{
    Ack, ChannelInfo, HistoryPage, JoinResult, LockDetail, Metadata, MetadataWrite, OnlineUsers, SubscribeTopicResult,
    Timed, TopicInfo, UserState,
};

use crate::history::{rtm2_history_page, with_history_page};
use crate::lock::{CLocks, rtm2_lock_list};
use crate::presence::{
    rtm2_channel_list, rtm2_online_users, rtm2_user_state, with_channels, with_online_users, with_user_state,
};
use crate::ptr::cstring;
use crate::storage::{CMetadata, c_metadata_write, rtm2_metadata, rtm2_metadata_write};

/// One publisher of a topic. Borrowed: valid only during the callback that received it.
#[repr(C)]
pub struct rtm2_publisher_info {
    /// The publisher's user id.
    pub user_id: *const c_char,
    /// The meta it gave to join_topic (`""` if none).
    pub meta: *const c_char,
}

/// A topic of a stream channel and its publishers. Borrowed: valid only during the callback.
#[repr(C)]
pub struct rtm2_topic_info {
    /// The topic name.
    pub topic: *const c_char,
    /// `publisher_count` publishers (NULL when the count is 0).
    pub publishers: *const rtm2_publisher_info,
    /// Number of entries in `publishers`.
    pub publisher_count: usize,
}

/// Result of `rtm2_stream_channel_join`: the topics and publishers present when joining.
/// Borrowed: valid only during the completion callback.
#[repr(C)]
pub struct rtm2_join_result {
    /// The stream channel.
    pub channel: *const c_char,
    /// `topic_count` topics (NULL when the count is 0).
    pub topics: *const rtm2_topic_info,
    /// Number of entries in `topics`.
    pub topic_count: usize,
}

/// A publisher that `rtm2_stream_channel_subscribe_topic` could not subscribe to.
#[repr(C)]
pub struct rtm2_failed_user {
    /// The user id.
    pub user_id: *const c_char,
    /// `RTM2_TOPIC_USER_INVALID_REMOTE_USER` (6) or `RTM2_TOPIC_USER_SUB_USER_EXCEED_LIMITATION`
    /// (20003).
    pub code: u32,
    /// Why, in words.
    pub reason: *const c_char,
}

/// Result of `rtm2_stream_channel_subscribe_topic`: per-user success and failure. Borrowed:
/// valid only during the completion callback.
#[repr(C)]
pub struct rtm2_subscribe_topic_result {
    /// Users now subscribed (including ones subscribed before); NULL when the count is 0.
    pub succeeded: *const *const c_char,
    /// Number of entries in `succeeded`.
    pub succeeded_count: usize,
    /// Users not subscribed, with the reason; NULL when the count is 0.
    pub failed: *const rtm2_failed_user,
    /// Number of entries in `failed`.
    pub failed_count: usize,
}

/// A list of user ids. In a result or an event it is borrowed (valid only during the
/// callback); from `rtm2_stream_channel_subscribed_users` it is the caller's, freed with
/// `rtm2_user_list_free`.
#[repr(C)]
pub struct rtm2_user_list {
    /// `count` user ids (NULL when the count is 0).
    pub users: *const *const c_char,
    /// Number of entries in `users`.
    pub count: usize,
}

/// What a completion callback receives besides the status. Never NULL. Everything it points
/// to is borrowed: valid only until the callback returns (copy what you need).
///
/// Fields may be added at the end in later versions (the library allocates this struct, so
/// that is compatible).
#[repr(C)]
pub struct rtm2_result {
    /// The operation: `"login"`, `"logout"`, `"renew_token"`, `"subscribe"`, `"unsubscribe"`,
    /// `"publish"`, `"join"`, `"leave"`, `"join_topic"`, `"leave_topic"`, `"publish_topic"`,
    /// `"subscribe_topic"`, `"unsubscribe_topic"`, `"get_subscribed_users"`;
    /// `"get_online_users"` (also for who_now), `"get_user_channels"` (also for where_now),
    /// `"set_state"`, `"get_state"`, `"remove_state"`; `"set_channel_metadata"`,
    /// `"update_channel_metadata"`, `"remove_channel_metadata"`, `"get_channel_metadata"`, the
    /// same four with `user`, `"subscribe_user_metadata"`, `"unsubscribe_user_metadata"`;
    /// `"set_lock"`, `"remove_lock"`, `"acquire_lock"`, `"release_lock"`, `"revoke_lock"`,
    /// `"get_locks"`; `"get_messages"` (history).
    pub operation: *const c_char,
    /// Why it failed, in words; `""` on success.
    pub reason: *const c_char,
    /// `join` on success: the topic snapshot; NULL otherwise.
    pub join: *const rtm2_join_result,
    /// `subscribe_topic` on success: per-user results; NULL otherwise.
    pub subscribe_topic: *const rtm2_subscribe_topic_result,
    /// `get_subscribed_users` on success: the users; NULL otherwise.
    pub subscribed_users: *const rtm2_user_list,
    /// `get_online_users` on success: one page of the users present; NULL otherwise.
    pub online_users: *const rtm2_online_users,
    /// `get_user_channels` on success: the channels; NULL otherwise.
    pub user_channels: *const rtm2_channel_list,
    /// `get_state` on success: the user's state; NULL otherwise.
    pub user_state: *const rtm2_user_state,
    /// A metadata write (`set_…`, `update_…`, `remove_…_metadata`) on success: the new major
    /// revision and item count; NULL otherwise.
    pub metadata_write: *const rtm2_metadata_write,
    /// `get_channel_metadata` / `get_user_metadata` on success: the metadata; NULL otherwise.
    pub metadata: *const rtm2_metadata,
    /// `get_locks` on success: the channel's locks; NULL otherwise.
    pub locks: *const rtm2_lock_list,
    /// `acquire_lock` on success: the grant's fencing token (see `rtm2_lock_acquire`); 0
    /// otherwise.
    pub fencing_token: u64,
    /// `get_messages` on success: a page of the channel's history; NULL otherwise.
    pub history: *const rtm2_history_page,
    /// The server's time of the answer, ms since the epoch (agora-rtm-sdk's `timestamp` of its
    /// responses), on success of every call that asks the server: `logout` has the client's
    /// time when the server could not answer, `publish` the time of the acknowledgement that
    /// covered it, `set_state` the client's time while the state is only kept locally; 0 on
    /// failure and for `get_subscribed_users` (answered by the client).
    pub timestamp_ms: u64,
}

impl rtm2_result {
    /// A result with no op-specific data (every data pointer NULL).
    pub(crate) fn empty(operation: *const c_char, reason: *const c_char) -> Self {
        rtm2_result {
            operation,
            reason,
            join: ptr::null(),
            subscribe_topic: ptr::null(),
            subscribed_users: ptr::null(),
            online_users: ptr::null(),
            user_channels: ptr::null(),
            user_state: ptr::null(),
            metadata_write: ptr::null(),
            metadata: ptr::null(),
            locks: ptr::null(),
            fencing_token: 0,
            history: ptr::null(),
            timestamp_ms: 0,
        }
    }
}

/// The data of a successful operation, kept in Rust form until delivery.
pub(crate) enum ResultData {
    None,
    /// A call that answers with the server's time only.
    Ack(Ack),
    Join(JoinResult),
    SubscribeTopic(SubscribeTopicResult),
    Users(Vec<String>),
    OnlineUsers(Timed<OnlineUsers>),
    UserChannels(Timed<Vec<ChannelInfo>>),
    UserState(Timed<UserState>),
    MetadataWrite(Timed<MetadataWrite>),
    Metadata(Timed<Metadata>),
    Locks(Timed<Vec<LockDetail>>),
    /// A lock grant's fencing token.
    LockGrant(Timed<u64>),
    /// A page of history.
    History(Timed<HistoryPage>),
}

impl ResultData {
    /// The server's time of the answer (`rtm2_result.timestamp_ms`); 0 when there is none.
    fn timestamp_ms(&self) -> u64 {
        match self {
            ResultData::None | ResultData::Users(_) => 0,
            ResultData::Ack(a) => a.timestamp_ms,
            ResultData::Join(j) => j.timestamp_ms,
            ResultData::SubscribeTopic(r) => r.timestamp_ms,
            ResultData::OnlineUsers(t) => t.timestamp_ms,
            ResultData::UserChannels(t) => t.timestamp_ms,
            ResultData::UserState(t) => t.timestamp_ms,
            ResultData::MetadataWrite(t) => t.timestamp_ms,
            ResultData::Metadata(t) => t.timestamp_ms,
            ResultData::Locks(t) => t.timestamp_ms,
            ResultData::LockGrant(t) => t.timestamp_ms,
            ResultData::History(t) => t.timestamp_ms,
        }
    }
}

/// Owned C strings whose addresses stay put (a `CString`'s buffer does not move with it).
#[derive(Default)]
pub(crate) struct Strings(Vec<CString>);

impl Strings {
    pub(crate) fn add(&mut self, s: &str) -> *const c_char {
        let c = cstring(s);
        let p = c.as_ptr();
        self.0.push(c);
        p
    }
}

/// A user list owned by the caller (`rtm2_stream_channel_subscribed_users`): the public
/// `rtm2_user_list` first, then what its pointers point into.
#[repr(C)]
struct OwnedUserList {
    list: rtm2_user_list,
    _ptrs: Vec<*const c_char>,
    _strings: Vec<CString>,
}

/// A new caller-owned list of `users`, freed by `rtm2_user_list_free`.
pub(crate) fn user_list_into_raw(users: &[String]) -> *mut rtm2_user_list {
    let strings: Vec<CString> = users.iter().map(|u| cstring(u)).collect();
    let ptrs: Vec<*const c_char> = strings.iter().map(|c| c.as_ptr()).collect();
    let list = rtm2_user_list { users: array_ptr(&ptrs), count: ptrs.len() };
    Box::into_raw(Box::new(OwnedUserList { list, _ptrs: ptrs, _strings: strings })).cast()
}

/// Frees a user list the SDK returned as owned (`rtm2_stream_channel_subscribed_users`). NULL
/// is ignored. Never pass a list borrowed from a result or an event.
///
/// # Safety
/// `list` is NULL or such a list, not freed before.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rtm2_user_list_free(list: *mut rtm2_user_list) {
    crate::error::ffi_value((), || {
        if !list.is_null() {
            // SAFETY: made by `user_list_into_raw`, whose allocation starts with the list.
            drop(unsafe { Box::from_raw(list.cast::<OwnedUserList>()) });
        }
    })
}

/// Pointer to the first element, NULL for an empty slice.
pub(crate) fn array_ptr<T>(v: &[T]) -> *const T {
    if v.is_empty() { ptr::null() } else { v.as_ptr() }
}

/// A list of strings in C form.
pub(crate) struct CStrList {
    _strings: Strings,
    ptrs: Vec<*const c_char>,
}

impl CStrList {
    pub(crate) fn new<S: AsRef<str>>(items: &[S]) -> Self {
        let mut strings = Strings::default();
        let ptrs = items.iter().map(|s| strings.add(s.as_ref())).collect();
        CStrList { _strings: strings, ptrs }
    }
    pub(crate) fn ptr(&self) -> *const *const c_char {
        array_ptr(&self.ptrs)
    }
    pub(crate) fn len(&self) -> usize {
        self.ptrs.len()
    }
}

/// Topics with their publishers in C form.
pub(crate) struct CTopics {
    _strings: Strings,
    _publishers: Vec<Vec<rtm2_publisher_info>>,
    infos: Vec<rtm2_topic_info>,
}

impl CTopics {
    pub(crate) fn new(topics: &[TopicInfo]) -> Self {
        let mut strings = Strings::default();
        let publishers: Vec<Vec<rtm2_publisher_info>> = topics
            .iter()
            .map(|t| {
                t.publishers
                    .iter()
                    .map(|p| rtm2_publisher_info { user_id: strings.add(&p.user_id), meta: strings.add(&p.meta) })
                    .collect()
            })
            .collect();
        let infos = topics
            .iter()
            .zip(&publishers)
            .map(|(t, ps)| rtm2_topic_info {
                topic: strings.add(&t.topic),
                publishers: array_ptr(ps),
                publisher_count: ps.len(),
            })
            .collect();
        CTopics { _strings: strings, _publishers: publishers, infos }
    }
    pub(crate) fn ptr(&self) -> *const rtm2_topic_info {
        array_ptr(&self.infos)
    }
    pub(crate) fn len(&self) -> usize {
        self.infos.len()
    }
}

/// Builds the borrowed `rtm2_result` for a completion and calls `f` with it.
pub(crate) fn with_c_result(operation: &str, reason: &str, data: &ResultData, f: impl FnOnce(&rtm2_result)) {
    let mut strings = Strings::default();
    let mut result = rtm2_result::empty(strings.add(operation), strings.add(reason));
    result.timestamp_ms = data.timestamp_ms();
    match data {
        ResultData::None | ResultData::Ack(_) => f(&result),
        ResultData::Join(j) => {
            let topics = CTopics::new(&j.topics);
            let join =
                rtm2_join_result { channel: strings.add(&j.channel), topics: topics.ptr(), topic_count: topics.len() };
            result.join = &join;
            f(&result)
        }
        ResultData::SubscribeTopic(r) => {
            let succeeded = CStrList::new(&r.succeeded);
            let failed: Vec<rtm2_failed_user> = r
                .failed
                .iter()
                .map(|u| rtm2_failed_user {
                    user_id: strings.add(&u.user_id),
                    code: u.code,
                    reason: strings.add(&u.reason),
                })
                .collect();
            let st = rtm2_subscribe_topic_result {
                succeeded: succeeded.ptr(),
                succeeded_count: succeeded.len(),
                failed: array_ptr(&failed),
                failed_count: failed.len(),
            };
            result.subscribe_topic = &st;
            f(&result)
        }
        ResultData::Users(users) => {
            let list = CStrList::new(users);
            let ul = rtm2_user_list { users: list.ptr(), count: list.len() };
            result.subscribed_users = &ul;
            f(&result)
        }
        ResultData::OnlineUsers(o) => with_online_users(o, |v| {
            result.online_users = v;
            f(&result)
        }),
        ResultData::UserChannels(c) => with_channels(c, |v| {
            result.user_channels = v;
            f(&result)
        }),
        ResultData::UserState(u) => with_user_state(u, |v| {
            result.user_state = v;
            f(&result)
        }),
        ResultData::MetadataWrite(w) => {
            let v = c_metadata_write(w);
            result.metadata_write = &v;
            f(&result)
        }
        ResultData::Metadata(m) => {
            let v = CMetadata::new(m);
            result.metadata = v.view();
            f(&result)
        }
        ResultData::Locks(l) => {
            let locks = CLocks::new(l);
            let v = rtm2_lock_list { locks: locks.ptr(), count: locks.len() };
            result.locks = &v;
            f(&result)
        }
        ResultData::LockGrant(token) => {
            result.fencing_token = token.value;
            f(&result)
        }
        ResultData::History(p) => with_history_page(p, |v| {
            result.history = v;
            f(&result)
        }),
    }
}
