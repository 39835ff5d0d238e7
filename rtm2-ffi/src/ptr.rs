//! Ownership helpers: every raw-pointer conversion of the C API goes through these.
//!
//! * owned handles: [`box_into_raw`] / [`box_from_raw`] (`_new` / `_free` pairs);
//! * borrowed inputs: [`borrow`], [`borrow_str`], [`borrow_opt_str`], [`borrow_bytes`],
//!   [`borrow_slice`], [`borrow_str_array`], [`read_sized`] (structs with a `struct_size` field);
//! * outputs: [`Out`] (checked before the work, written only on success);
//! * strings handed to C: [`cstring`], [`string_into_raw`] / [`string_from_raw`].

use std::ffi::{CStr, CString, c_char, c_void};

use crate::error::{FfiError, FfiResult};
use crate::status::RTM2_ERR_NULL_PARAMETER;

/// Moves a value to the heap and hands its ownership to C.
pub(crate) fn box_into_raw<T>(v: T) -> *mut T {
    Box::into_raw(Box::new(v))
}

/// Takes back ownership of a handle made by [`box_into_raw`]; `None` for NULL.
///
/// # Safety
/// `p` is NULL or came from [`box_into_raw::<T>`] and was not taken back before.
pub(crate) unsafe fn box_from_raw<T>(p: *mut T) -> Option<Box<T>> {
    if p.is_null() { None } else { Some(unsafe { Box::from_raw(p) }) }
}

/// Borrows a handle or struct passed by C.
///
/// # Safety
/// `p` is NULL or points to a live, aligned `T` for `'a`.
pub(crate) unsafe fn borrow<'a, T>(p: *const T, what: &str) -> FfiResult<&'a T> {
    unsafe { p.as_ref() }.ok_or_else(|| FfiError::null(what))
}

/// Borrows a handle or struct passed by C for changing it.
///
/// # Safety
/// `p` is NULL or points to a live, aligned `T` for `'a` that nothing else uses meanwhile.
pub(crate) unsafe fn borrow_mut<'a, T>(p: *mut T, what: &str) -> FfiResult<&'a mut T> {
    unsafe { p.as_mut() }.ok_or_else(|| FfiError::null(what))
}

/// Borrows a NUL-terminated UTF-8 string.
///
/// # Safety
/// `p` is NULL or a NUL-terminated string alive for `'a`.
pub(crate) unsafe fn borrow_str<'a>(p: *const c_char, what: &str) -> FfiResult<&'a str> {
    unsafe { borrow_opt_str(p, what) }?.ok_or_else(|| FfiError::null(what))
}

/// Like [`borrow_str`] but NULL gives `None`.
///
/// # Safety
/// As [`borrow_str`].
pub(crate) unsafe fn borrow_opt_str<'a>(p: *const c_char, what: &str) -> FfiResult<Option<&'a str>> {
    if p.is_null() {
        return Ok(None);
    }
    let c = unsafe { CStr::from_ptr(p) };
    c.to_str().map(Some).map_err(|_| FfiError::utf8(what))
}

/// Borrows `len` bytes; `(NULL, 0)` is the empty slice.
///
/// # Safety
/// `p` is NULL or points to `len` readable bytes alive for `'a`.
pub(crate) unsafe fn borrow_bytes<'a>(p: *const c_void, len: usize, what: &str) -> FfiResult<&'a [u8]> {
    if p.is_null() {
        return if len == 0 { Ok(&[]) } else { Err(FfiError::null(what)) };
    }
    if len > isize::MAX as usize {
        return Err(FfiError::rtm(rtm2_core::ErrorCode::INVALID_PARAMETER, format!("{what} length is too large")));
    }
    Ok(unsafe { std::slice::from_raw_parts(p.cast::<u8>(), len) })
}

/// Borrows an array of `count` C structs; `(NULL, 0)` is the empty slice.
///
/// # Safety
/// `p` is NULL or points to `count` initialized, aligned `T`s alive for `'a`.
pub(crate) unsafe fn borrow_slice<'a, T>(p: *const T, count: usize, what: &str) -> FfiResult<&'a [T]> {
    if p.is_null() {
        return if count == 0 { Ok(&[]) } else { Err(FfiError::null(what)) };
    }
    if count.checked_mul(size_of::<T>()).is_none_or(|n| n > isize::MAX as usize) {
        return Err(FfiError::rtm(rtm2_core::ErrorCode::INVALID_PARAMETER, format!("{what} count is too large")));
    }
    Ok(unsafe { std::slice::from_raw_parts(p, count) })
}

/// Borrows an array of `count` strings; `(NULL, 0)` is the empty list.
///
/// # Safety
/// `p` is NULL or points to `count` string pointers, each valid as for [`borrow_str`].
pub(crate) unsafe fn borrow_str_array<'a>(
    p: *const *const c_char,
    count: usize,
    what: &str,
) -> FfiResult<Vec<&'a str>> {
    if p.is_null() {
        return if count == 0 { Ok(Vec::new()) } else { Err(FfiError::null(what)) };
    }
    let ptrs = unsafe { borrow_bytes(p.cast(), count.saturating_mul(size_of::<*const c_char>()), what) }?;
    let ptrs = unsafe { std::slice::from_raw_parts(ptrs.as_ptr().cast::<*const c_char>(), count) };
    ptrs.iter().enumerate().map(|(i, &s)| unsafe { borrow_str(s, &format!("{what}[{i}]")) }).collect()
}

/// Types whose all-zero bit pattern is a valid value (integers, raw pointers, `bool`,
/// `Option<fn>`), so a struct can be filled from a shorter C struct and zero-extended.
///
/// # Safety
/// Implement only for `#[repr(C)]` structs made of such fields.
pub(crate) unsafe trait ZeroInit: Sized {
    /// Size of the first published version of the struct (the smallest `struct_size`).
    const MIN_SIZE: usize;
}

/// Reads a struct that starts with a `size_t struct_size` field: the caller's struct may be
/// older (shorter: missing fields are zero) or newer (longer: unknown fields are ignored).
/// `Ok(None)` for NULL.
///
/// # Safety
/// `p` is NULL or points to at least `struct_size` readable bytes whose first field is a
/// `size_t` holding that size.
pub(crate) unsafe fn read_sized<T: ZeroInit>(p: *const T, what: &str) -> FfiResult<Option<T>> {
    if p.is_null() {
        return Ok(None);
    }
    let size = unsafe { p.cast::<usize>().read() };
    if size < T::MIN_SIZE {
        return Err(FfiError::rtm(
            rtm2_core::ErrorCode::INVALID_PARAMETER,
            format!("{what}.struct_size is {size}; set it to sizeof the struct (at least {})", T::MIN_SIZE),
        ));
    }
    // SAFETY: T: ZeroInit, so all-zero is a valid T.
    let mut v: T = unsafe { std::mem::zeroed() };
    let n = size.min(size_of::<T>());
    unsafe { std::ptr::copy_nonoverlapping(p.cast::<u8>(), (&mut v as *mut T).cast::<u8>(), n) };
    Ok(Some(v))
}

/// An out-parameter, checked for NULL before any work and written only on success.
pub(crate) struct Out<T>(*mut T);

impl<T> Out<T> {
    /// A required out-parameter.
    pub(crate) fn new(p: *mut T, what: &str) -> FfiResult<Out<T>> {
        if p.is_null() {
            Err(FfiError::new(RTM2_ERR_NULL_PARAMETER, format!("{what} must not be NULL")))
        } else {
            Ok(Out(p))
        }
    }

    /// An optional out-parameter (NULL = the caller does not want it).
    pub(crate) fn optional(p: *mut T) -> Option<Out<T>> {
        if p.is_null() { None } else { Some(Out(p)) }
    }

    /// Writes the output.
    ///
    /// # Safety
    /// The pointer given to [`Out::new`] is valid for writing a `T`.
    pub(crate) unsafe fn write(self, v: T) {
        unsafe { self.0.write(v) }
    }
}

/// A C string copy of `s`, cut at the first NUL byte (names are validated and never contain
/// one; free-form texts from peers might).
pub(crate) fn cstring(s: &str) -> CString {
    match CString::new(s) {
        Ok(c) => c,
        Err(e) => {
            let pos = e.nul_position();
            CString::new(&s.as_bytes()[..pos]).unwrap_or_default()
        }
    }
}

/// Hands an owned string to C (freed by `rtm2_string_free`).
pub(crate) fn string_into_raw(s: &str) -> *mut c_char {
    cstring(s).into_raw()
}

/// Takes back a string made by [`string_into_raw`]; NULL is ignored.
///
/// # Safety
/// `p` is NULL or came from [`string_into_raw`] and was not freed before.
pub(crate) unsafe fn string_from_raw(p: *mut c_char) {
    if !p.is_null() {
        drop(unsafe { CString::from_raw(p) });
    }
}

/// A `user_data` pointer carried to another thread. The C side promises (in the header) that
/// what it points to may be used from the SDK's dispatcher thread.
#[derive(Clone, Copy)]
pub(crate) struct UserData(*mut c_void);

// SAFETY: the header documents that user_data is handed to callbacks on the dispatcher thread.
unsafe impl Send for UserData {}
unsafe impl Sync for UserData {}

impl UserData {
    pub(crate) fn new(p: *mut c_void) -> Self {
        UserData(p)
    }
    /// The pointer (a method, so closures capture the whole `Send` wrapper).
    pub(crate) fn ptr(&self) -> *mut c_void {
        self.0
    }
}
