//! The `c_abi` fuzz harness, shared by the fuzz target (`fuzz/fuzz_targets/c_abi.rs`) and the
//! replay of its corpus in `cargo test` (`rtm2-ffi/tests/fuzz_corpus.rs`).
//!
//! Sequences of C-ABI calls driven by fuzzer bytes: NULL handles and arguments, invalid UTF-8,
//! oversized names and payloads, unknown flags and enum values, use after logout, re-entrant
//! callbacks (publishing from a completion) and freeing the client from inside a callback;
//! presence, storage and lock calls with fuzzed names, pairs, revisions and options (their
//! events are walked field by field); lengths and counts larger than the buffer or array
//! passed (a caller's wrong size: the SDK must refuse it from the limit before reading).
//! Checks: no crash or sanitizer report, every call returns a status at once, and every
//! accepted operation completes exactly once (also when the client is freed).

use std::collections::HashMap;
use std::ffi::{c_char, c_void};
use std::ptr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering};
use std::time::{Duration, Instant};

use rtm2::client::*;
use rtm2::config::*;
use rtm2::events::{rtm2_lock_event, rtm2_message_event, rtm2_presence_event, rtm2_storage_event};
use rtm2::listener::rtm2_listener;
use rtm2::lock::*;
use rtm2::presence::*;
use rtm2::results::rtm2_result;
use rtm2::status::*;
use rtm2::storage::*;
use rtm2::stream_channel::*;
use rtm2::token::*;

/// State shared with the callbacks through `user_data`.
struct Harness {
    completions: Mutex<HashMap<u64, u32>>,
    client: AtomicPtr<rtm2_client>,
    reenter: AtomicBool,
    free_in_callback: AtomicBool,
    destroyed: AtomicBool,
}

unsafe extern "C" fn on_done(user_data: *mut c_void, request_id: u64, status: i32, result: *const rtm2_result) {
    let h = unsafe { &*(user_data as *const Harness) };
    assert!(!result.is_null(), "completion without a result");
    let _ = status;
    *h.completions.lock().unwrap().entry(request_id).or_default() += 1;
    let client = h.client.load(Ordering::Acquire);
    if client.is_null() {
        return;
    }
    if h.free_in_callback.swap(false, Ordering::AcqRel) {
        h.client.store(ptr::null_mut(), Ordering::Release);
        unsafe { rtm2_client_free(client) };
        return;
    }
    if h.reenter.swap(false, Ordering::AcqRel) {
        let mut id = 0u64;
        let rc = unsafe {
            rtm2_client_publish(
                client,
                c"reentry".as_ptr(),
                b"x".as_ptr().cast(),
                1,
                ptr::null(),
                Some(on_done),
                user_data,
                &mut id,
            )
        };
        if rc == 0 {
            h.completions.lock().unwrap().entry(id).or_default();
            PENDING.lock().unwrap().push(id);
        }
    }
}

unsafe extern "C" fn on_destroy(user_data: *mut c_void) {
    let h = unsafe { &*(user_data as *const Harness) };
    h.destroyed.store(true, Ordering::Release);
}

/// Reads a borrowed C string to its end (so a sanitizer sees a bad pointer).
unsafe fn touch(p: *const c_char) -> usize {
    assert!(!p.is_null(), "a string of an event is NULL");
    unsafe { std::ffi::CStr::from_ptr(p) }.to_bytes().len()
}

/// A borrowed C array as a slice (NULL only with a count of 0).
unsafe fn items<'a, T>(p: *const T, n: usize) -> &'a [T] {
    if n == 0 {
        return &[];
    }
    assert!(!p.is_null(), "an array of an event is NULL with {n} entries");
    unsafe { std::slice::from_raw_parts(p, n) }
}

unsafe fn touch_user_states(users: &[rtm2_user_state]) -> usize {
    let mut n = 0;
    for u in users {
        n += unsafe { touch(u.user_id) };
        for st in unsafe { items(u.states, u.state_count) } {
            n += unsafe { touch(st.key) + touch(st.value) };
        }
    }
    n
}

unsafe extern "C" fn on_message_batch(_: *mut c_void, e: *const rtm2_message_event, count: usize) {
    let mut n = 0;
    for m in unsafe { items(e, count) } {
        n += unsafe { touch(m.channel) + touch(m.topic) + touch(m.publisher) + touch(m.custom_type) };
        n += unsafe { items(m.payload, m.payload_len) }.iter().map(|&b| b as usize).sum::<usize>();
    }
    std::hint::black_box(n);
}

unsafe extern "C" fn on_presence(_: *mut c_void, e: *const rtm2_presence_event) {
    let e = unsafe { &*e };
    let mut n = unsafe { touch(e.channel) + touch(e.publisher) };
    for st in unsafe { items(e.states, e.state_count) } {
        n += unsafe { touch(st.key) + touch(st.value) };
    }
    n += unsafe { touch_user_states(items(e.snapshot, e.snapshot_count)) };
    if let Some(i) = unsafe { e.interval.as_ref() } {
        for list in [(i.joined, i.joined_count), (i.left, i.left_count), (i.timed_out, i.timed_out_count)] {
            for &u in unsafe { items(list.0, list.1) } {
                n += unsafe { touch(u) };
            }
        }
        n += unsafe { touch_user_states(items(i.states, i.state_count)) };
    }
    std::hint::black_box(n);
}

unsafe extern "C" fn on_storage(_: *mut c_void, e: *const rtm2_storage_event) {
    let e = unsafe { &*e };
    let mut n = unsafe { touch(e.target) + touch(e.publisher) };
    let data = unsafe { e.data.as_ref() }.expect("storage event without data");
    for it in unsafe { items(data.items, data.item_count) } {
        n += unsafe { touch(it.key) + touch(it.value) + touch(it.author) };
    }
    std::hint::black_box(n);
}

unsafe extern "C" fn on_lock(_: *mut c_void, e: *const rtm2_lock_event) {
    let e = unsafe { &*e };
    let mut n = unsafe { touch(e.channel) + touch(e.lock_name) + touch(e.owner) + touch(e.publisher) };
    for l in unsafe { items(e.snapshot, e.snapshot_count) } {
        n += unsafe { touch(l.name) + touch(l.owner) };
    }
    std::hint::black_box(n);
}

/// Request ids accepted (status 0) during the current input.
static PENDING: Mutex<Vec<u64>> = Mutex::new(Vec::new());

struct Input<'a> {
    data: &'a [u8],
}

impl Input<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.data.split_first()?;
        self.data = rest;
        Some(b)
    }

    /// A C string from the input (0xff = NULL; bytes may be invalid UTF-8; NULs dropped), or an
    /// oversized name when the length byte is 0xfe.
    fn string(&mut self) -> Option<Vec<u8>> {
        let len = self.byte().unwrap_or(0);
        if len == 0xff {
            return None;
        }
        let mut s: Vec<u8> = if len == 0xfe {
            vec![b'n'; 70_000]
        } else {
            let n = (len as usize).min(self.data.len());
            let (head, rest) = self.data.split_at(n);
            self.data = rest;
            head.iter().copied().filter(|&b| b != 0).collect()
        };
        s.push(0);
        Some(s)
    }
}

/// A length or count claimed for a small buffer or array: 0xfe and 0xfd claim far more than was
/// passed (the SDK must refuse the size before reading); other bytes `normal(b)`.
fn claimed(b: u8, normal: impl FnOnce(u8) -> usize) -> usize {
    match b {
        0xfe => 1 << 40,
        0xfd => 100_000,
        b => normal(b),
    }
}

fn cptr(s: &Option<Vec<u8>>) -> *const c_char {
    s.as_ref().map_or(ptr::null(), |v| v.as_ptr().cast())
}

/// Runs one input (see the module documentation).
pub fn run(data: &[u8]) {
    PENDING.lock().unwrap().clear();
    let harness = Box::new(Harness {
        completions: Mutex::new(HashMap::new()),
        client: AtomicPtr::new(ptr::null_mut()),
        reenter: AtomicBool::new(false),
        free_in_callback: AtomicBool::new(false),
        destroyed: AtomicBool::new(false),
    });
    let ud = &*harness as *const Harness as *mut c_void;
    let mut input = Input { data };

    let mut config = ptr::null_mut();
    assert_eq!(
        unsafe { rtm2_config_new(c"0123456789abcdef0123456789abcdef".as_ptr(), c"fuzzer".as_ptr(), &mut config) },
        0
    );
    unsafe { rtm2_config_set_request_timeout_ms(config, 2_000) };
    let listener = rtm2_listener {
        struct_size: size_of::<rtm2_listener>(),
        user_data: ud,
        destroy: Some(on_destroy),
        on_message: None,
        on_topic: None,
        on_link_state: None,
        on_token_will_expire: None,
        on_overflow: None,
        on_presence: Some(on_presence),
        on_storage: Some(on_storage),
        on_lock: Some(on_lock),
        on_message_batch: Some(on_message_batch),
    };
    let mut client = ptr::null_mut();
    assert_eq!(unsafe { rtm2_client_new(config, &listener, &mut client) }, 0);
    unsafe { rtm2_config_free(config) };
    harness.client.store(client, Ordering::Release);
    let mut channels: Vec<*mut rtm2_stream_channel> = Vec::new();
    let accept = |rc: i32, id: u64| {
        if rc == 0 {
            PENDING.lock().unwrap().push(id);
        }
    };

    let mut steps = 0;
    while let Some(op) = input.byte() {
        steps += 1;
        if steps > 64 || harness.client.load(Ordering::Acquire).is_null() {
            break;
        }
        // Half the time the real client, sometimes NULL.
        let c = if op & 0x80 != 0 && op & 0x40 != 0 { ptr::null_mut() } else { client };
        let mut id = 0u64;
        match op % 16 {
            0 => {
                let t = input.string();
                let rc = unsafe { rtm2_client_login(c, cptr(&t), Some(on_done), ud, &mut id) };
                accept(rc, id);
            }
            1 => accept(unsafe { rtm2_client_logout(c, Some(on_done), ud, &mut id) }, id),
            2 => {
                let ch = input.string();
                let flags = input.byte().unwrap_or(3) as u32;
                accept(unsafe { rtm2_client_subscribe(c, cptr(&ch), flags, Some(on_done), ud, &mut id) }, id);
            }
            3 => {
                let ch = input.string();
                accept(unsafe { rtm2_client_unsubscribe(c, cptr(&ch), Some(on_done), ud, &mut id) }, id);
            }
            4 | 5 => {
                let ch = input.string();
                let len = claimed(input.byte().unwrap_or(1), |b| b as usize * 300);
                let payload = vec![b'p'; len.min(256 * 300)];
                let ct = input.string();
                let opts = rtm2_publish_options {
                    struct_size: size_of::<rtm2_publish_options>(),
                    channel_type: input.byte().unwrap_or(1) as u32 % 5,
                    message_type: input.byte().unwrap_or(0) as u32 % 3,
                    custom_type: cptr(&ct),
                    store_in_history: false,
                };
                let opts_ptr = if op % 16 == 4 { &opts as *const _ } else { ptr::null() };
                let payload_ptr = if len == 0 && op & 1 != 0 { ptr::null() } else { payload.as_ptr().cast() };
                accept(
                    unsafe {
                        rtm2_client_publish(c, cptr(&ch), payload_ptr, len, opts_ptr, Some(on_done), ud, &mut id)
                    },
                    id,
                );
            }
            6 => {
                let name = input.string();
                let mut sc = ptr::null_mut();
                if unsafe { rtm2_client_create_stream_channel(c, cptr(&name), &mut sc) } == 0 {
                    assert!(!sc.is_null());
                    channels.push(sc);
                }
            }
            7..=9 => {
                let Some(&sc) = channels.get(input.byte().unwrap_or(0) as usize % channels.len().max(1)) else {
                    continue;
                };
                let sc = if op & 0x20 != 0 { ptr::null_mut() } else { sc };
                let topic = input.string();
                let rc = match op % 16 {
                    7 => unsafe {
                        rtm2_stream_channel_join(
                            sc,
                            c"".as_ptr(),
                            input.byte().unwrap_or(2) as u32,
                            Some(on_done),
                            ud,
                            &mut id,
                        )
                    },
                    8 => unsafe {
                        rtm2_stream_channel_join_topic(sc, cptr(&topic), ptr::null(), Some(on_done), ud, &mut id)
                    },
                    _ => {
                        let users = [c"a".as_ptr(), cptr(&input.string())];
                        unsafe {
                            rtm2_stream_channel_subscribe_topic(
                                sc,
                                cptr(&topic),
                                users.as_ptr(),
                                claimed(input.byte().unwrap_or(0), |b| b as usize % 3),
                                Some(on_done),
                                ud,
                                &mut id,
                            )
                        }
                    }
                };
                accept(rc, id);
            }
            10 => {
                let Some(&sc) = channels.get(input.byte().unwrap_or(0) as usize % channels.len().max(1)) else {
                    continue;
                };
                let topic = input.string();
                let len = claimed(input.byte().unwrap_or(0), |b| b as usize * 8);
                let payload = vec![b't'; len.min(256 * 8)];
                accept(
                    unsafe {
                        rtm2_stream_channel_publish_topic(
                            sc,
                            cptr(&topic),
                            payload.as_ptr().cast(),
                            len,
                            ptr::null(),
                            Some(on_done),
                            ud,
                            &mut id,
                        )
                    },
                    id,
                );
            }
            11 => {
                let json = input.string();
                let _ = unsafe { rtm2_client_set_parameters(c, cptr(&json)) };
                let mut out = ptr::null_mut();
                if unsafe { rtm2_client_get_parameters(c, &mut out) } == 0 {
                    unsafe { rtm2_string_free(out) };
                }
            }
            12 => {
                let code = i32::from_le_bytes([
                    input.byte().unwrap_or(0),
                    input.byte().unwrap_or(0),
                    input.byte().unwrap_or(0),
                    input.byte().unwrap_or(0),
                ]);
                assert!(!rtm2_status_name(code).is_null());
                assert!(!rtm2_status_message(code).is_null());
                assert!(!rtm2_last_error_message().is_null());
                let (a, b, u) = (input.string(), input.string(), input.string());
                let mut tok = ptr::null_mut();
                if unsafe { rtm2_token_build(cptr(&a), cptr(&b), cptr(&u), 60, &mut tok) } == 0 {
                    unsafe { rtm2_string_free(tok) };
                }
            }
            13 => harness.reenter.store(true, Ordering::Release),
            14 if op & 0x20 != 0 => accept(unsafe { service_call(&mut input, c, ud, &mut id) }, id),
            14 => {
                let mut state = 0u32;
                let _ = unsafe { rtm2_client_get_link_state(c, &mut state) };
            }
            _ => {
                // Free a stream channel handle, or ask a callback to free the client.
                if op & 1 == 0 && !channels.is_empty() {
                    let sc = channels.swap_remove(0);
                    unsafe { rtm2_stream_channel_free(sc) };
                } else {
                    // A callback frees the client: the application must not call into it
                    // meanwhile, so stop issuing calls.
                    harness.free_in_callback.store(true, Ordering::Release);
                    break;
                }
            }
        }
    }

    // Let a requested free-from-callback happen (bounded), else free here.
    let deadline = Instant::now() + Duration::from_millis(200);
    while harness.free_in_callback.load(Ordering::Acquire)
        && !harness.client.load(Ordering::Acquire).is_null()
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(1));
    }
    for sc in channels {
        unsafe { rtm2_stream_channel_free(sc) };
    }
    let c = harness.client.swap(ptr::null_mut(), Ordering::AcqRel);
    if !c.is_null() {
        unsafe { rtm2_client_free(c) };
    }
    // The client is gone once `destroy` ran (bounded wait: a free from a callback finishes
    // after that callback).
    let deadline = Instant::now() + Duration::from_secs(10);
    while !harness.destroyed.load(Ordering::Acquire) {
        assert!(Instant::now() < deadline, "destroy never ran");
        std::thread::sleep(Duration::from_millis(1));
    }
    let completions = harness.completions.lock().unwrap();
    for id in PENDING.lock().unwrap().iter() {
        assert_eq!(completions.get(id).copied().unwrap_or(0), 1, "request {id} did not complete exactly once");
    }
}

/// One presence, storage or lock call chosen and filled by the input; returns its status.
///
/// # Safety
/// `c` is NULL or the live client; `ud` the harness.
unsafe fn service_call(input: &mut Input<'_>, c: *mut rtm2_client, ud: *mut c_void, id: &mut u64) -> i32 {
    let which = input.byte().unwrap_or(0);
    let ch = input.string();
    let ty = input.byte().unwrap_or(1) as u32 % 5;
    let (a, b) = (input.string(), input.string());
    let n = claimed(input.byte().unwrap_or(1), |b| b as usize % 3);
    let cb = Some(on_done as unsafe extern "C" fn(*mut c_void, u64, i32, *const rtm2_result));
    let pairs =
        [rtm2_state_item { key: cptr(&a), value: cptr(&b) }, rtm2_state_item { key: c"k".as_ptr(), value: cptr(&b) }];
    let keys = [cptr(&a), c"k".as_ptr()];
    let revision = i64::from(input.byte().unwrap_or(0xff) as i8);
    let meta = [
        rtm2_metadata_item { key: cptr(&a), value: cptr(&b), revision, updated_ms: 0, author: ptr::null() },
        rtm2_metadata_item { key: c"k".as_ptr(), value: ptr::null(), revision: -1, updated_ms: 7, author: cptr(&b) },
    ];
    let mut mo = rtm2_metadata_options {
        struct_size: 0,
        major_revision: 0,
        lock_name: ptr::null(),
        record_ts: false,
        record_author: false,
        fencing_token: 0,
    };
    unsafe { rtm2_metadata_options_init(&mut mo) };
    mo.major_revision = revision;
    mo.lock_name = if which & 0x40 != 0 { cptr(&b) } else { ptr::null() };
    mo.record_ts = which & 0x80 != 0;
    mo.record_author = which & 0x20 != 0;
    mo.fencing_token = if which & 0x08 != 0 { u64::from(which) } else { 0 };
    let mo_ptr: *const rtm2_metadata_options = if which & 0x10 != 0 { &mo } else { ptr::null() };
    let mut wo = rtm2_get_online_users_options {
        struct_size: 0,
        include_user_id: false,
        include_state: false,
        page: ptr::null(),
    };
    unsafe { rtm2_get_online_users_options_init(&mut wo) };
    wo.include_user_id = which & 0x40 == 0;
    wo.include_state = which & 0x80 != 0;
    wo.page = cptr(&b);
    let wo_ptr: *const rtm2_get_online_users_options = if which & 0x10 != 0 { &wo } else { ptr::null() };
    let kind = (which >> 4) % 3;
    unsafe {
        match which % 12 {
            0 => rtm2_presence_get_online_users(c, cptr(&ch), ty, wo_ptr, cb, ud, id),
            1 => rtm2_presence_where_now(c, cptr(&a), cb, ud, id),
            2 => rtm2_presence_set_state(c, cptr(&ch), ty, pairs.as_ptr(), n, cb, ud, id),
            3 => rtm2_presence_get_state(c, cptr(&ch), ty, cptr(&a), cb, ud, id),
            4 => rtm2_presence_remove_state(c, cptr(&ch), ty, keys.as_ptr(), n, cb, ud, id),
            5 => match kind {
                0 => rtm2_storage_set_channel_metadata(c, cptr(&ch), ty, meta.as_ptr(), n, mo_ptr, cb, ud, id),
                1 => rtm2_storage_update_channel_metadata(c, cptr(&ch), ty, meta.as_ptr(), n, mo_ptr, cb, ud, id),
                _ => rtm2_storage_remove_channel_metadata(c, cptr(&ch), ty, meta.as_ptr(), n, mo_ptr, cb, ud, id),
            },
            6 => match kind {
                0 => rtm2_storage_set_user_metadata(c, cptr(&a), meta.as_ptr(), n, mo_ptr, cb, ud, id),
                1 => rtm2_storage_update_user_metadata(c, cptr(&a), meta.as_ptr(), n, mo_ptr, cb, ud, id),
                _ => rtm2_storage_remove_user_metadata(c, cptr(&a), meta.as_ptr(), n, mo_ptr, cb, ud, id),
            },
            7 if kind == 0 => rtm2_storage_get_channel_metadata(c, cptr(&ch), ty, cb, ud, id),
            7 => rtm2_storage_get_user_metadata(c, cptr(&a), cb, ud, id),
            8 if kind == 0 => rtm2_storage_unsubscribe_user_metadata(c, cptr(&a), cb, ud, id),
            8 => rtm2_storage_subscribe_user_metadata(c, cptr(&a), cb, ud, id),
            9 if kind == 0 => rtm2_lock_remove(c, cptr(&ch), ty, cptr(&a), cb, ud, id),
            9 => rtm2_lock_set(c, cptr(&ch), ty, cptr(&a), n as u32 * 200, cb, ud, id),
            10 if kind == 0 => rtm2_lock_release(c, cptr(&ch), ty, cptr(&a), cb, ud, id),
            10 => rtm2_lock_acquire(c, cptr(&ch), ty, cptr(&a), kind == 2, cb, ud, id),
            _ if kind == 0 => rtm2_lock_get_locks(c, cptr(&ch), ty, cb, ud, id),
            _ => rtm2_lock_revoke(c, cptr(&ch), ty, cptr(&a), cptr(&b), cb, ud, id),
        }
    }
}
