//! Names of the API's enumerations for C: `rtm2_enum_name("LinkStateChangeReason", 27)` is
//! `"SAME_UID_LOGIN"`, from the same table Python's `enum_tables()` and Node's constants use.

use std::ffi::{CString, c_char};
use std::sync::LazyLock;

use crate::error::ffi_value;
use crate::ptr::borrow_str;

struct Names(Vec<(&'static str, Vec<(u32, CString)>)>);

static NAMES: LazyLock<Names> = LazyLock::new(|| {
    Names(
        rtm2_core::enum_tables()
            .into_iter()
            .map(|(e, values)| {
                (e, values.into_iter().map(|(name, n)| (n, CString::new(name).unwrap_or_default())).collect())
            })
            .collect(),
    )
});

/// The static C string naming `value` of `enumeration`, or NULL.
pub(crate) fn enum_name_ptr(enumeration: &str, value: u32) -> *const c_char {
    NAMES
        .0
        .iter()
        .find(|(e, _)| *e == enumeration)
        .and_then(|(_, values)| values.iter().find(|(n, _)| *n == value))
        .map_or(std::ptr::null(), |(_, name)| name.as_ptr())
}

/// The name of a value of one of the API's enumerations, e.g.
/// `rtm2_enum_name("LinkStateChangeReason", RTM2_LINK_REASON_SAME_UID_LOGIN)` is
/// `"SAME_UID_LOGIN"`, `rtm2_enum_name("LinkState", ev->current)` is `"CONNECTED"`.
/// `enumeration` is one of `"ChannelType"`, `"MessageType"`, `"EncryptionMode"`, `"MessageQos"`,
/// `"MessagePriority"`, `"TopicEventType"`, `"PresenceEventType"`, `"StorageType"`,
/// `"StorageEventType"`, `"LockEventType"`, `"ServiceType"`, `"LinkState"`, `"LinkOperation"`,
/// `"LinkStateChangeReason"` (the names of Python's `rtm2.enum_tables()` and Node's
/// constants).
///
/// The returned string is static (never freed by the caller); NULL when `enumeration` is NULL
/// or unknown, or has no such value. Any thread.
///
/// # Safety
/// `enumeration` is NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rtm2_enum_name(enumeration: *const c_char, value: u32) -> *const c_char {
    ffi_value(std::ptr::null(), || match unsafe { borrow_str(enumeration, "enumeration") } {
        Ok(e) => enum_name_ptr(e, value),
        Err(_) => std::ptr::null(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    #[test]
    fn names_every_value_of_every_enumeration_and_nothing_else() {
        for (e, values) in rtm2_core::enum_tables() {
            let c = CString::new(e).unwrap();
            for (name, n) in values {
                let p = unsafe { rtm2_enum_name(c.as_ptr(), n) };
                assert_eq!(unsafe { CStr::from_ptr(p) }.to_str().unwrap(), name);
            }
            assert!(unsafe { rtm2_enum_name(c.as_ptr(), 1000) }.is_null());
        }
        assert!(unsafe { rtm2_enum_name(c"Nope".as_ptr(), 0) }.is_null());
        assert!(unsafe { rtm2_enum_name(std::ptr::null(), 0) }.is_null());
    }
}
