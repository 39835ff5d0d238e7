//! [`SharedStr`]: the immutable, shared strings of received messages.

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

/// An immutable string shared by the events that carry it (a message's channel, publisher,
/// topic and custom type): the SDK reuses one allocation for consecutive messages with the same
/// value, and cloning is a reference-count increment. It reads like a `&str` (it derefs to one)
/// and compares with `str`, `&str` and `String`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SharedStr(Arc<str>);

impl SharedStr {
    /// The string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for SharedStr {
    fn default() -> Self {
        SharedStr(Arc::from(""))
    }
}

impl Deref for SharedStr {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for SharedStr {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for SharedStr {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SharedStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&*self.0, f)
    }
}

impl fmt::Debug for SharedStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl From<&str> for SharedStr {
    fn from(s: &str) -> Self {
        SharedStr(Arc::from(s))
    }
}

impl From<String> for SharedStr {
    fn from(s: String) -> Self {
        SharedStr(Arc::from(s))
    }
}

impl From<SharedStr> for String {
    fn from(s: SharedStr) -> Self {
        s.0.to_string()
    }
}

macro_rules! eq_with {
    ($($t:ty),*) => {$(
        impl PartialEq<$t> for SharedStr {
            fn eq(&self, other: &$t) -> bool {
                *self.0 == **other
            }
        }
        impl PartialEq<SharedStr> for $t {
            fn eq(&self, other: &SharedStr) -> bool {
                **self == *other.0
            }
        }
    )*};
}
eq_with!(&str, String);

impl PartialEq<str> for SharedStr {
    fn eq(&self, other: &str) -> bool {
        *self.0 == *other
    }
}

impl PartialEq<SharedStr> for str {
    fn eq(&self, other: &SharedStr) -> bool {
        *self == *other.0
    }
}

/// Reuses the previous value when the next one is equal (consecutive messages of a connection
/// mostly repeat their channel and publisher).
#[derive(Default)]
pub(crate) struct LastStr {
    /// A private copy to compare with: the shared value's memory is also written by the threads
    /// that drop their clones (reference counts), so reading it would wait for their cache.
    text: String,
    shared: SharedStr,
}

impl LastStr {
    pub(crate) fn get(&mut self, s: &str) -> SharedStr {
        if self.text != s {
            self.text.clear();
            self.text.push_str(s);
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
    }

    #[test]
    fn equal_consecutive_values_share_one_allocation() {
        let mut last = LastStr::default();
        let a = last.get("alice");
        let b = last.get("alice");
        assert!(Arc::ptr_eq(&a.0, &b.0));
        assert_eq!(last.get(""), "");
        let a = last.get("alice");
        let c = last.get("bob");
        assert_eq!(c, "bob");
        assert!(!Arc::ptr_eq(&a.0, &c.0));
        assert_eq!(a, "alice", "earlier values are unchanged");
    }
}
