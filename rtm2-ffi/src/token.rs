//! Token helpers (AccessToken2, compatible with Agora's) and `rtm2_string_free`.

use std::ffi::c_char;

use rtm2_core::ErrorCode;
use rtm2_proto::token;

use crate::error::{FfiError, ffi_status, ffi_value};
use crate::ptr::{Out, borrow_str, string_from_raw, string_into_raw};

fn token_error(e: token::TokenError) -> FfiError {
    FfiError::rtm(ErrorCode::INVALID_PARAMETER, format!("cannot build a token: {e}"))
}

/// Builds an RTM login token for `user_id`, valid `expire_secs` seconds from now, signed
/// with `app_certificate`. For servers and tests: a real application gets its tokens from its
/// own backend, never ships the certificate. `app_id` and `app_certificate` must be 32 hex
/// characters (10014 otherwise).
///
/// On success `*out_token` receives a new NUL-terminated string owned by the caller: free it
/// with `rtm2_string_free`.
///
/// # Safety
/// The string arguments are NUL-terminated (borrowed); `out_token` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rtm2_token_build(
    app_id: *const c_char,
    app_certificate: *const c_char,
    user_id: *const c_char,
    expire_secs: u32,
    out_token: *mut *mut c_char,
) -> i32 {
    ffi_status(|| {
        let app_id = unsafe { borrow_str(app_id, "app_id") }?;
        let cert = unsafe { borrow_str(app_certificate, "app_certificate") }?;
        let user_id = unsafe { borrow_str(user_id, "user_id") }?;
        let out = Out::new(out_token, "out_token")?;
        let t = token::build_rtm_token(app_id, cert, user_id, expire_secs).map_err(token_error)?;
        unsafe { out.write(string_into_raw(&t)) };
        Ok(())
    })
}

/// Builds a stream-channel token (join privilege for `channel`, plus RTM login) for
/// `user_id`, valid `expire_secs` seconds from now. Same rules and ownership as
/// `rtm2_token_build`.
///
/// # Safety
/// The string arguments are NUL-terminated (borrowed); `out_token` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rtm2_stream_token_build(
    app_id: *const c_char,
    app_certificate: *const c_char,
    channel: *const c_char,
    user_id: *const c_char,
    expire_secs: u32,
    out_token: *mut *mut c_char,
) -> i32 {
    ffi_status(|| {
        let app_id = unsafe { borrow_str(app_id, "app_id") }?;
        let cert = unsafe { borrow_str(app_certificate, "app_certificate") }?;
        let channel = unsafe { borrow_str(channel, "channel") }?;
        let user_id = unsafe { borrow_str(user_id, "user_id") }?;
        let out = Out::new(out_token, "out_token")?;
        let t = token::build_stream_token(app_id, cert, channel, user_id, expire_secs).map_err(token_error)?;
        unsafe { out.write(string_into_raw(&t)) };
        Ok(())
    })
}

/// Frees a string the SDK returned as owned (`rtm2_token_build`, `rtm2_stream_token_build`,
/// `rtm2_client_get_parameters`). NULL is ignored. Never pass other strings (event fields,
/// `rtm2_status_name`, …).
///
/// # Safety
/// `s` is NULL or such a string, not freed before.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rtm2_string_free(s: *mut c_char) {
    ffi_value((), || unsafe { string_from_raw(s) });
}
