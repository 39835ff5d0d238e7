//! Control of single operations from C: a timeout for the operations a thread starts, and
//! cancellation of one operation by its request id (what Python's `timeout=` and task
//! cancellation, and Node's `{ timeoutMs, signal }`, are in those bindings).

use std::cell::Cell;
use std::time::Duration;

use rtm2_core::ErrorCode;

use crate::client::{client_ref, rtm2_client};
use crate::error::{FfiError, ffi_status};

/// The range of a per-call timeout, as `rtm2_config_set_request_timeout_ms` takes.
const TIMEOUT_MS: std::ops::RangeInclusive<u64> = 100..=600_000;

thread_local! {
    static CALL_TIMEOUT: Cell<Option<Duration>> = const { Cell::new(None) };
}

/// The timeout set by `rtm2_set_call_timeout_ms` on this thread, if any.
pub(crate) fn call_timeout() -> Option<Duration> {
    CALL_TIMEOUT.with(|t| t.get())
}

/// Sets the timeout of every operation the CALLING THREAD starts from now on, on any client or
/// stream channel, in milliseconds (100..=600000), in place of the client's configured request
/// timeout; `0` goes back to the configured one. Other threads are not affected. An operation
/// that runs out of time completes with its RTM timeout code (10011 for login, 11026 for a
/// publish, …), as with the configured timeout. Typical use, one call with its own limit:
///
/// ```c
/// rtm2_set_call_timeout_ms(500);
/// rtm2_client_publish(client, "room", data, len, &opts, on_done, ctx, &id);
/// rtm2_set_call_timeout_ms(0);
/// ```
///
/// Fails with 10014 INVALID_PARAMETER (and changes nothing) outside the range.
#[unsafe(no_mangle)]
pub extern "C" fn rtm2_set_call_timeout_ms(timeout_ms: u64) -> i32 {
    ffi_status(|| {
        let t = match timeout_ms {
            0 => None,
            ms if TIMEOUT_MS.contains(&ms) => Some(Duration::from_millis(ms)),
            ms => {
                return Err(FfiError::rtm(
                    ErrorCode::INVALID_PARAMETER,
                    format!("a call timeout is 0 or 100..=600000 ms, got {ms}"),
                ));
            }
        };
        CALL_TIMEOUT.with(|c| c.set(t));
        Ok(())
    })
}

/// Cancels an operation of `client` (or of one of its stream channels) that has not completed:
/// `request_id` is the id its start wrote to `out_request_id`. On `RTM2_OK` its completion
/// callback runs once, on the dispatcher thread, with `RTM2_ERR_CANCELED` (9005); whatever the
/// operation already sent to the server stays sent (a publish may still be delivered, a lock
/// may still be acquired: cancel means "stop waiting", as in every binding). A canceled login
/// stops waiting, not connecting: `rtm2_client_logout` stops the attempt.
///
/// Fails with 10014 INVALID_PARAMETER when no such operation is pending (it completed
/// already — its callback has run or is about to — or the id is not one of this client's).
///
/// # Safety
/// `client` is a live client.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rtm2_cancel(client: *mut rtm2_client, request_id: u64) -> i32 {
    ffi_status(|| {
        let c = unsafe { client_ref(client) }?;
        if c.dispatcher().cancel(request_id) {
            Ok(())
        } else {
            Err(FfiError::rtm(
                ErrorCode::INVALID_PARAMETER,
                format!(
                    "no pending operation {request_id} on this client (it completed already, or it is not this client's)"
                ),
            ))
        }
    })
}
