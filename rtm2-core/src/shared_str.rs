//! [`SharedStr`]: the immutable, shared strings of received messages.

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

/// An immutable string shared by the events that carry it (a message's channel, publisher,
/// topic and custom type): the SDK reuses one allocation for consecutive messages with the same
/// value, and cloning is a reference-count increment. It reads like a `&str` (it derefs to one)
/// and compares with `str`, `&str` and `String`.
// The empty string (topic and custom type are usually empty) is `None`: no allocation and no
// reference count to update.
#[derive(Clone, Default)]
pub struct SharedStr(Option<Arc<str>>);

impl SharedStr {
    /// The string.
    pub fn as_str(&self) -> &str {
        self.0.as_deref().unwrap_or("")
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
        SharedStr((!s.is_empty()).then(|| Arc::from(s)))
    }
}

impl From<String> for SharedStr {
    fn from(s: String) -> Self {
        SharedStr((!s.is_empty()).then(|| Arc::from(s)))
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
/// mostly repeat their channel and publisher).
pub(crate) struct LastStr {
    /// A private copy to compare with, kept inline: the shared value's memory (and the heap
    /// around it) is written by the threads dropping clones (reference counts), so reading it
    /// would wait for their caches.
    text: [u8; LAST_STR_MAX],
    len: usize,
    shared: SharedStr,
}

/// Longest value reused (channel names and user ids are at most 64 bytes).
const LAST_STR_MAX: usize = 64;

impl Default for LastStr {
    fn default() -> Self {
        LastStr { text: [0; LAST_STR_MAX], len: 0, shared: SharedStr::default() }
    }
}

impl LastStr {
    pub(crate) fn get(&mut self, s: &str) -> SharedStr {
        if s.len() > LAST_STR_MAX {
            return SharedStr::from(s);
        }
        if self.text[..self.len] != *s.as_bytes() {
            self.text[..s.len()].copy_from_slice(s.as_bytes());
            self.len = s.len();
            self.shared = SharedStr::from(s);
        }
        self.shared.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(Arc::ptr_eq(a.0.as_ref().unwrap(), b.0.as_ref().unwrap()));
        assert_eq!(last.get(""), "");
        let a = last.get("alice");
        let c = last.get("bob");
        assert_eq!(c, "bob");
        assert!(!Arc::ptr_eq(a.0.as_ref().unwrap(), c.0.as_ref().unwrap()));
        assert_eq!(a, "alice", "earlier values are unchanged");
        let long = "x".repeat(65);
        assert_eq!(last.get(&long), long.as_str());
        assert_eq!(last.get("bob"), "bob");
    }
}
