//! `rtm2_listener`: the application's event callbacks, and the trampolines that call them.

use std::ffi::{c_char, c_void};

use rtm2_core::Event;

use crate::error::{FfiResult, contain};
use crate::events::{
    CMessageBatch, MESSAGE_BATCH, rtm2_link_state_event, rtm2_lock_event, rtm2_message_event, rtm2_presence_event,
    rtm2_storage_event, rtm2_topic_event, with_link_state, with_lock, with_message, with_presence, with_storage,
    with_topic,
};
use crate::ptr::{UserData, ZeroInit, cstring, read_sized};

/// The event callbacks of a client, given to `rtm2_client_new` (copied; the struct itself may
/// be freed after the call). Every callback pointer may be NULL (that event is ignored).
///
/// Threading: every callback of one client — these and the completion callbacks — runs on
/// that client's dispatcher thread (an SDK-owned thread, never a network thread), one at a
/// time, in order per source. A callback may call any rtm2 function, including starting
/// operations and `rtm2_client_free` of its own client; it should return quickly (a blocked
/// callback delays every later callback of the client; events then queue up to the configured
/// capacity and the excess is reported through `on_overflow`).
///
/// Pointers passed to callbacks are borrowed: valid only until the callback returns.
///
/// ABI growth: set `struct_size = sizeof(rtm2_listener)`. Later versions only append fields;
/// a library reads the fields that both it and the caller know.
#[repr(C)]
pub struct rtm2_listener {
    /// `sizeof(rtm2_listener)` as the caller compiled it.
    pub struct_size: usize,
    /// Passed unchanged as the first argument of every callback below.
    pub user_data: *mut c_void,
    /// Called exactly once, as the last callback of the client, when the client is freed (on
    /// the dispatcher thread), so `user_data` can be released. Not called if `rtm2_client_new`
    /// fails.
    pub destroy: Option<unsafe extern "C" fn(user_data: *mut c_void)>,
    /// A message of a subscribed message channel, of a subscribed topic publisher, or sent to
    /// this user (peer-to-peer).
    pub on_message: Option<unsafe extern "C" fn(user_data: *mut c_void, event: *const rtm2_message_event)>,
    /// A topic event of a joined stream channel (snapshot after join, remote join/leave).
    pub on_topic: Option<unsafe extern "C" fn(user_data: *mut c_void, event: *const rtm2_topic_event)>,
    /// A link-state change of the client's connection or of a stream channel.
    pub on_link_state: Option<unsafe extern "C" fn(user_data: *mut c_void, event: *const rtm2_link_state_event)>,
    /// A token will expire soon: `channel` is NULL for the login token (renew it with
    /// `rtm2_client_renew_token`) or the stream channel's name (`rtm2_stream_channel_renew_token`).
    pub on_token_will_expire: Option<unsafe extern "C" fn(user_data: *mut c_void, channel: *const c_char)>,
    /// The event queue was full and `dropped` events were discarded before the next one.
    pub on_overflow: Option<unsafe extern "C" fn(user_data: *mut c_void, dropped: u64)>,
    /// A presence event of a channel subscribed / joined with `WITH_PRESENCE` (snapshot after
    /// subscribe/join, remote join/leave/timeout/state change, or an interval's aggregate).
    /// A listener compiled against an older header (a smaller `struct_size`) gets none of these.
    pub on_presence: Option<unsafe extern "C" fn(user_data: *mut c_void, event: *const rtm2_presence_event)>,
    /// A storage event: a channel's metadata (subscribed / joined with `WITH_METADATA`) or a
    /// user's (`rtm2_storage_subscribe_user_metadata`), always the whole set.
    pub on_storage: Option<unsafe extern "C" fn(user_data: *mut c_void, event: *const rtm2_storage_event)>,
    /// A lock event of a channel subscribed / joined with `WITH_LOCK` (and EXPIRED of a lock
    /// this user held).
    pub on_lock: Option<unsafe extern "C" fn(user_data: *mut c_void, event: *const rtm2_lock_event)>,
    /// Messages in runs: when set, consecutive messages (at most 256 at a time, in order) come
    /// here as one array instead of one `on_message` call each — for bindings whose per-call
    /// cost is high (a Go callback through cgo). `on_message` is then not called. The array and
    /// everything it points to are valid until the callback returns. A listener compiled
    /// against an older header gets `on_message`.
    pub on_message_batch:
        Option<unsafe extern "C" fn(user_data: *mut c_void, events: *const rtm2_message_event, count: usize)>,
}

// SAFETY: all fields are integers, raw pointers or nullable function pointers.
unsafe impl ZeroInit for rtm2_listener {
    /// The end of the last field of version 1; stays when fields are appended.
    const MIN_SIZE: usize = std::mem::offset_of!(rtm2_listener, on_overflow) + size_of::<usize>();
}

/// A copy of the application's listener, moved to the dispatcher thread.
pub(crate) struct Listener {
    raw: rtm2_listener,
    user_data: UserData,
}

// SAFETY: the header tells the application that its callbacks and user_data are used on the
// dispatcher thread; the function pointers themselves are plain code addresses.
unsafe impl Send for Listener {}

impl Listener {
    /// Copies a listener given by C (NULL = no listener).
    ///
    /// # Safety
    /// `p` is NULL or points to a listener whose `struct_size` bytes are readable.
    pub(crate) unsafe fn read(p: *const rtm2_listener) -> FfiResult<Option<Listener>> {
        Ok(unsafe { read_sized(p, "listener") }?.map(|raw| {
            let user_data = UserData::new(raw.user_data);
            Listener { raw, user_data }
        }))
    }

    /// Delivers a batch of events in order; `keep_going` is asked before each one (a callback
    /// may free the client, after which no more events are delivered).
    pub(crate) fn deliver(&self, events: &[Event], keep_going: &dyn Fn() -> bool) {
        let ud = self.user_data.ptr();
        let mut i = 0;
        while i < events.len() {
            if !keep_going() {
                return;
            }
            if let (Some(cb), Event::Message(_)) = (self.raw.on_message_batch, &events[i]) {
                // The run of messages from here, at most MESSAGE_BATCH.
                let mut batch = CMessageBatch::default();
                while let Some(Event::Message(m)) = events.get(i) {
                    if batch.events().len() == MESSAGE_BATCH {
                        break;
                    }
                    batch.push(m);
                    i += 1;
                }
                let evs = batch.events();
                contain("a message batch", || unsafe { cb(ud, evs.as_ptr(), evs.len()) });
                continue;
            }
            let ev = &events[i];
            i += 1;
            contain("an event", || match ev {
                Event::Message(m) => {
                    if let Some(cb) = self.raw.on_message {
                        with_message(m, |e| unsafe { cb(ud, e) });
                    }
                }
                Event::Presence(p) => {
                    if let Some(cb) = self.raw.on_presence {
                        with_presence(p, |e| unsafe { cb(ud, e) });
                    }
                }
                Event::Storage(st) => {
                    if let Some(cb) = self.raw.on_storage {
                        with_storage(st, |e| unsafe { cb(ud, e) });
                    }
                }
                Event::Lock(l) => {
                    if let Some(cb) = self.raw.on_lock {
                        with_lock(l, |e| unsafe { cb(ud, e) });
                    }
                }
                Event::Topic(t) => {
                    if let Some(cb) = self.raw.on_topic {
                        with_topic(t, |e| unsafe { cb(ud, e) });
                    }
                }
                Event::LinkState(l) => {
                    if let Some(cb) = self.raw.on_link_state {
                        with_link_state(l, |e| unsafe { cb(ud, e) });
                    }
                }
                Event::TokenPrivilegeWillExpire(channel) => {
                    if let Some(cb) = self.raw.on_token_will_expire {
                        match channel {
                            None => unsafe { cb(ud, std::ptr::null()) },
                            Some(c) => {
                                let c = cstring(c);
                                unsafe { cb(ud, c.as_ptr()) }
                            }
                        }
                    }
                }
                Event::Overflow { dropped } => {
                    if let Some(cb) = self.raw.on_overflow {
                        unsafe { cb(ud, *dropped) }
                    }
                }
            });
        }
    }

    /// Calls `destroy(user_data)`; consumes the listener so it happens once.
    pub(crate) fn destroy(self) {
        if let Some(d) = self.raw.destroy {
            let ud = self.user_data.ptr();
            contain("destroy", || unsafe { d(ud) });
        }
    }
}
