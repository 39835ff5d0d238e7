//! `rtm2_result`: what a completion callback receives, and the borrowed C views of the core's
//! results (join snapshot, per-user subscribe_topic results, subscribed-user lists).

use std::ffi::{CString, c_char};
use std::ptr;

use rtm2_core::{JoinResult, SubscribeTopicResult, TopicInfo};

use crate::ptr::cstring;

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

/// A list of user ids. Borrowed: valid only during the callback.
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
    /// `"subscribe_topic"`, `"unsubscribe_topic"`, `"get_subscribed_users"`.
    pub operation: *const c_char,
    /// Why it failed, in words; `""` on success.
    pub reason: *const c_char,
    /// `join` on success: the topic snapshot; NULL otherwise.
    pub join: *const rtm2_join_result,
    /// `subscribe_topic` on success: per-user results; NULL otherwise.
    pub subscribe_topic: *const rtm2_subscribe_topic_result,
    /// `get_subscribed_users` on success: the users; NULL otherwise.
    pub subscribed_users: *const rtm2_user_list,
}

/// The data of a successful operation, kept in Rust form until delivery.
pub(crate) enum ResultData {
    None,
    Join(JoinResult),
    SubscribeTopic(SubscribeTopicResult),
    Users(Vec<String>),
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
    let mut result = rtm2_result {
        operation: strings.add(operation),
        reason: strings.add(reason),
        join: ptr::null(),
        subscribe_topic: ptr::null(),
        subscribed_users: ptr::null(),
    };
    match data {
        ResultData::None => f(&result),
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
    }
}
