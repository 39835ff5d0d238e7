//! [`SharedStr`]: the immutable, shared strings of received messages.
//!
//! Its own reference-counted allocation rather than `Arc<str>`: the connection reader that
//! hands out clones takes references in blocks (one atomic update per block, see [`LastStr`]),
//! because every update of a count that the consuming threads also update moves its cache line
//! between cores; that was a large share of the cost of delivering a message.

use std::alloc::Layout;
use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};

/// An immutable string shared by the events that carry it (a message's channel, publisher,
/// topic and custom type): the SDK reuses one allocation for consecutive messages with the same
/// value, and cloning is a reference-count increment. It reads like a `&str` (it derefs to one)
/// and compares with `str`, `&str` and `String`.
// The empty string (topic and custom type are usually empty) is `None`: no allocation and no
// reference count to update.
#[derive(Default)]
pub struct SharedStr(Option<NonNull<Header>>);

/// The start of a `SharedStr` allocation; the string's bytes follow it.
struct Header {
    refs: AtomicUsize,
    len: usize,
}

// SAFETY: the bytes never change after creation and the count is atomic (like `Arc<str>`).
unsafe impl Send for SharedStr {}
// SAFETY: as above.
unsafe impl Sync for SharedStr {}

/// Most references a count may hold (as `Arc`, a leak-driven overflow aborts instead).
const MAX_REFS: usize = isize::MAX as usize;

fn layout(len: usize) -> (Layout, usize) {
    let (layout, offset) =
        Layout::new::<Header>().extend(Layout::array::<u8>(len).expect("string length")).expect("string length");
    (layout.pad_to_align(), offset)
}

impl SharedStr {
    fn new(s: &str) -> SharedStr {
        if s.is_empty() {
            return SharedStr(None);
        }
        let (layout, offset) = layout(s.len());
        // SAFETY: the layout is not zero-sized (it holds a Header); the header is written before
        // use and the bytes are copied into the space `extend` reserved for them.
        unsafe {
            let p = std::alloc::alloc(layout);
            let Some(header) = NonNull::new(p.cast::<Header>()) else { std::alloc::handle_alloc_error(layout) };
            header.as_ptr().write(Header { refs: AtomicUsize::new(1), len: s.len() });
            std::ptr::copy_nonoverlapping(s.as_ptr(), p.add(offset), s.len());
            SharedStr(Some(header))
        }
    }

    fn header(&self) -> Option<&Header> {
        // SAFETY: a `SharedStr` holds a reference, so the allocation is alive.
        self.0.map(|h| unsafe { &*h.as_ptr() })
    }

    /// Adds `n` references at once; each is handed out later by [`SharedStr::take_reserved`].
    fn reserve_refs(&self, n: usize) {
        if let Some(h) = self.header()
            && h.refs.fetch_add(n, Ordering::Relaxed) > MAX_REFS
        {
            std::process::abort();
        }
    }

    /// Gives back `n` references reserved and not handed out.
    fn release_refs(&self, n: usize) {
        if let Some(h) = self.header() {
            // The caller still holds `self`, so this cannot be the last reference.
            h.refs.fetch_sub(n, Ordering::Release);
        }
    }

    /// A new handle on the same string using one reference reserved before (no atomic update).
    fn take_reserved(&self) -> SharedStr {
        SharedStr(self.0)
    }

    /// The string.
    pub fn as_str(&self) -> &str {
        match self.0 {
            None => "",
            // SAFETY: the bytes after the header are a copy of a `&str` of `len` bytes, alive
            // while a reference is held.
            Some(h) => unsafe {
                let len = (*h.as_ptr()).len;
                let bytes = h.as_ptr().cast::<u8>().add(layout(len).1);
                std::str::from_utf8_unchecked(std::slice::from_raw_parts(bytes, len))
            },
        }
    }
}

impl Clone for SharedStr {
    fn clone(&self) -> SharedStr {
        self.reserve_refs(1);
        SharedStr(self.0)
    }
}

impl Drop for SharedStr {
    fn drop(&mut self) {
        let Some(h) = self.0 else { return };
        // SAFETY: this handle holds a reference; the last one frees the allocation with the
        // layout it was made with (the acquire fence orders every earlier use before it).
        unsafe {
            if (*h.as_ptr()).refs.fetch_sub(1, Ordering::Release) != 1 {
                return;
            }
            std::sync::atomic::fence(Ordering::Acquire);
            let (layout, _) = layout((*h.as_ptr()).len);
            std::alloc::dealloc(h.as_ptr().cast(), layout);
        }
    }
}

impl Deref for SharedStr {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for SharedStr {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for SharedStr {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq for SharedStr {
    fn eq(&self, other: &SharedStr) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for SharedStr {}

impl PartialOrd for SharedStr {
    fn partial_cmp(&self, other: &SharedStr) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for SharedStr {
    fn cmp(&self, other: &SharedStr) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl std::hash::Hash for SharedStr {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state)
    }
}

impl fmt::Display for SharedStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.as_str(), f)
    }
}

impl fmt::Debug for SharedStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl From<&str> for SharedStr {
    fn from(s: &str) -> Self {
        SharedStr::new(s)
    }
}

impl From<String> for SharedStr {
    fn from(s: String) -> Self {
        SharedStr::new(&s)
    }
}

impl From<SharedStr> for String {
    fn from(s: SharedStr) -> Self {
        s.as_str().to_string()
    }
}

macro_rules! eq_with {
    ($($t:ty),*) => {$(
        impl PartialEq<$t> for SharedStr {
            fn eq(&self, other: &$t) -> bool {
                self.as_str() == &**other
            }
        }
        impl PartialEq<SharedStr> for $t {
            fn eq(&self, other: &SharedStr) -> bool {
                &**self == other.as_str()
            }
        }
    )*};
}
eq_with!(&str, String);

impl PartialEq<str> for SharedStr {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<SharedStr> for str {
    fn eq(&self, other: &SharedStr) -> bool {
        self == other.as_str()
    }
}

/// Reuses the previous value when the next one is equal (consecutive messages of a connection
/// mostly repeat their channel and publisher), taking references in blocks.
pub(crate) struct LastStr {
    /// A private copy to compare with, kept inline (the shared value's memory is written by the
    /// threads dropping clones).
    text: [u8; LAST_STR_MAX],
    len: usize,
    shared: SharedStr,
    /// References to `shared` reserved and not handed out yet.
    reserved: usize,
}

/// Longest value reused (channel names and user ids are at most 64 bytes).
const LAST_STR_MAX: usize = 64;

/// References taken at once.
const REF_BLOCK: usize = 256;

impl Default for LastStr {
    fn default() -> Self {
        LastStr { text: [0; LAST_STR_MAX], len: 0, shared: SharedStr::default(), reserved: 0 }
    }
}

impl LastStr {
    pub(crate) fn get(&mut self, s: &str) -> SharedStr {
        if s.len() > LAST_STR_MAX {
            return SharedStr::from(s);
        }
        if !same_bytes(&self.text[..self.len], s.as_bytes()) {
            self.shared.release_refs(std::mem::take(&mut self.reserved));
            self.text[..s.len()].copy_from_slice(s.as_bytes());
            self.len = s.len();
            self.shared = SharedStr::from(s);
        }
        if self.shared.0.is_none() {
            return SharedStr::default();
        }
        if self.reserved == 0 {
            self.shared.reserve_refs(REF_BLOCK);
            self.reserved = REF_BLOCK;
        }
        self.reserved -= 1;
        self.shared.take_reserved()
    }
}

/// Whether two short byte strings are equal, compared inline: for names this short a library
/// `memcmp` call cost more than the comparison (it showed as most of the time spent here).
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

impl Drop for LastStr {
    fn drop(&mut self) {
        self.shared.release_refs(self.reserved);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refs(s: &SharedStr) -> usize {
        s.header().map_or(0, |h| h.refs.load(Ordering::SeqCst))
    }

    #[test]
    fn references_are_counted_across_threads_and_released() {
        let s = SharedStr::from("shared across threads");
        let clones: Vec<SharedStr> = (0..1000).map(|_| s.clone()).collect();
        assert_eq!(refs(&s), 1001);
        let handles: Vec<_> = clones
            .chunks(100)
            .map(|c| {
                let c = c.to_vec();
                std::thread::spawn(move || c.iter().all(|x| x == "shared across threads"))
            })
            .collect();
        drop(clones);
        assert!(handles.into_iter().all(|h| h.join().unwrap()));
        assert_eq!(refs(&s), 1);
    }

    #[test]
    fn reserved_references_are_handed_out_then_given_back() {
        let mut last = LastStr::default();
        let first = last.get("chan");
        let held: Vec<SharedStr> = (0..600).map(|_| last.get("chan")).collect();
        // The value, its clones handed out, and what is still reserved.
        assert_eq!(refs(&first), 1 + 601 + last.reserved);
        drop(held);
        let _other = last.get("other");
        assert_eq!(refs(&first), 1, "the reserve was given back when the value changed");
        drop(last);
        assert_eq!(first, "chan");
    }

    #[test]
    fn reads_and_compares_like_a_string() {
        let s = SharedStr::from("lobby");
        assert_eq!(s, "lobby");
        assert_eq!("lobby", s);
        assert_eq!(s, String::from("lobby"));
        assert!(*"lobby" == s);
        assert!(s == *"lobby");
        assert_eq!(s.len(), 5);
        assert_eq!(format!("{s} {s:?}"), "lobby \"lobby\"");
        assert_eq!(String::from(s.clone()), "lobby");
        assert_eq!(SharedStr::default(), "");
        assert_eq!(SharedStr::from(""), SharedStr::default());
        assert!(SharedStr::from(String::new()).0.is_none(), "the empty string allocates nothing");
    }

    #[test]
    fn equal_consecutive_values_share_one_allocation() {
        let mut last = LastStr::default();
        let a = last.get("alice");
        let b = last.get("alice");
        assert_eq!(a.0, b.0, "one allocation");
        assert_eq!(last.get(""), "");
        let a = last.get("alice");
        let c = last.get("bob");
        assert_eq!(c, "bob");
        assert_ne!(a.0, c.0);
        assert_eq!(a, "alice", "earlier values are unchanged");
        let long = "x".repeat(65);
        assert_eq!(last.get(&long), long.as_str());
        assert_eq!(last.get("bob"), "bob");
    }
}
