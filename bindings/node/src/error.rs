//! Maps `rtm2_core::Error` to a JavaScript `Error` carrying the RTM code; the JS layer turns it
//! into an `RTMError`.

use napi::bindgen_prelude::JsObjectValue;
use napi::{Env, JsValue, Status};

use rtm2_core::ErrorCode;

/// Builds the JS error value for an SDK error: `message` plus `rtmCode` (number), `rtmName`
/// (e.g. `"CHANNEL_RECEIVER_OFFLINE"`), `rtmReason`, `rtmOperation` and `rtmTimedOut`.
pub(crate) fn to_js(env: &Env, e: &rtm2_core::Error) -> napi::Error {
    match build(env, e.code, &e.reason, e.operation, e.is_timeout()) {
        Ok(err) => err,
        Err(fallback) => fallback,
    }
}

fn build(env: &Env, code: ErrorCode, reason: &str, operation: &str, timed_out: bool) -> napi::Result<napi::Error> {
    let msg = format!("{operation} failed: {} ({}): {reason}", code.name(), code.code());
    let mut obj = env.create_error(napi::Error::new(Status::GenericFailure, msg))?;
    obj.set_named_property("rtmCode", code.code())?;
    obj.set_named_property("rtmName", code.name())?;
    obj.set_named_property("rtmReason", reason)?;
    obj.set_named_property("rtmOperation", operation)?;
    obj.set_named_property("rtmTimedOut", timed_out)?;
    Ok(napi::Error::from(obj.to_unknown()))
}

/// An SDK error made by the binding itself (a closed client, a bad argument type).
pub(crate) fn new(code: ErrorCode, operation: &'static str, reason: impl Into<String>) -> rtm2_core::Error {
    rtm2_core::Error::new(code, operation, reason)
}

/// The error of an operation on a closed client.
pub(crate) fn closed(operation: &'static str) -> rtm2_core::Error {
    new(ErrorCode::INSTANCE_ALREADY_RELEASED, operation, "the client was closed")
}
