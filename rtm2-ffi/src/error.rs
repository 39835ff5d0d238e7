//! The error and panic boundary every export goes through, and the thread-local "last error".

use std::cell::RefCell;
use std::ffi::{CString, c_char};
use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::status::{RTM2_ERR_INVALID_UTF8, RTM2_ERR_NULL_PARAMETER, RTM2_ERR_PANIC, RTM2_OK};

/// Why an export failed: a status code and the detailed reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FfiError {
    pub code: i32,
    pub message: String,
}

impl FfiError {
    pub(crate) fn new(code: i32, message: impl Into<String>) -> Self {
        FfiError { code, message: message.into() }
    }

    pub(crate) fn null(what: &str) -> Self {
        FfiError::new(RTM2_ERR_NULL_PARAMETER, format!("{what} must not be NULL"))
    }

    pub(crate) fn utf8(what: &str) -> Self {
        FfiError::new(RTM2_ERR_INVALID_UTF8, format!("{what} is not valid UTF-8"))
    }

    pub(crate) fn rtm(code: rtm2_core::ErrorCode, message: impl Into<String>) -> Self {
        FfiError::new(code.code() as i32, message)
    }
}

impl From<rtm2_core::Error> for FfiError {
    fn from(e: rtm2_core::Error) -> Self {
        FfiError::new(e.code.code() as i32, e.to_string())
    }
}

/// Result of the body of an export.
pub(crate) type FfiResult<T> = Result<T, FfiError>;

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

/// Records the detailed reason of a failed call on this thread.
pub(crate) fn set_last_error(message: &str) {
    let c = crate::ptr::cstring(message);
    LAST_ERROR.with(|l| *l.borrow_mut() = c);
}

/// The thread's last error; valid until the next failing call on this thread.
pub(crate) fn last_error_ptr() -> *const c_char {
    LAST_ERROR.with(|l| l.borrow().as_ptr())
}

pub(crate) fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_string()
    }
}

/// Runs the body of an export that returns a status: `RTM2_OK`, the error's code (with the
/// reason stored as the thread's last error), or `RTM2_ERR_PANIC` if the body panicked.
pub(crate) fn ffi_status(body: impl FnOnce() -> FfiResult<()>) -> i32 {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => RTM2_OK,
        Ok(Err(e)) => {
            set_last_error(&e.message);
            e.code
        }
        Err(p) => {
            set_last_error(&format!("internal error (panic) in rtm2: {}", panic_message(&*p)));
            RTM2_ERR_PANIC
        }
    }
}

/// Runs the body of an export that returns a value, giving `default` if it panicked.
pub(crate) fn ffi_value<T>(default: T, body: impl FnOnce() -> T) -> T {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(v) => v,
        Err(p) => {
            set_last_error(&format!("internal error (panic) in rtm2: {}", panic_message(&*p)));
            default
        }
    }
}

/// Runs callback-delivery code (a trampoline) so that a panic in it is contained: it is
/// logged and delivery goes on.
pub(crate) fn contain(what: &str, body: impl FnOnce()) {
    if let Err(p) = catch_unwind(AssertUnwindSafe(body)) {
        eprintln!("rtm2: internal error (panic) while delivering {what}: {}", panic_message(&*p));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::RTM2_ERR_INVALID_UTF8;

    fn last() -> String {
        unsafe { std::ffi::CStr::from_ptr(last_error_ptr()) }.to_str().unwrap().to_string()
    }

    #[test]
    fn the_boundary_turns_errors_and_panics_into_status_codes() {
        assert_eq!(ffi_status(|| Ok(())), RTM2_OK);
        assert_eq!(ffi_status(|| Err(FfiError::utf8("channel"))), RTM2_ERR_INVALID_UTF8);
        assert_eq!(last(), "channel is not valid UTF-8");
        assert_eq!(ffi_status(|| panic!("boom")), RTM2_ERR_PANIC);
        assert!(last().contains("boom"), "{}", last());
        assert_eq!(ffi_value(7, || panic!("bang")), 7);
        assert!(last().contains("bang"));
        contain("a test", || panic!("contained")); // returns: the panic stops here
        let e: FfiError = rtm2_core::Error::new(rtm2_core::ErrorCode::NOT_LOGIN, "publish", "no").into();
        assert_eq!(e.code, 10002);
    }
}
