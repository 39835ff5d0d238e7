//! `rtm2._rtm2`: the native module of the `rtm2` Python package — a thin layer over
//! `rtm2-core`. It converts types and maps errors; the behaviour is the core's. The public,
//! typed API is the pure-Python package `rtm2` (bindings/python/python/rtm2).

use pyo3::prelude::*;

use rtm2_core::ErrorCode;

mod bridge;
mod client;
mod errors;
mod history;
mod lock;
mod logging;
mod presence;
mod receivers;
mod responses;
mod runtime;
mod services;
mod storage;
mod stream;
mod types;

fn token_error(operation: &str, e: rtm2_proto::token::TokenError) -> PyErr {
    errors::rtm_error(ErrorCode::INVALID_PARAMETER, operation, e.to_string())
}

/// Logs out every client of the process still logged in, waiting at most `timeout` seconds
/// in all (the package's `atexit` hook); the number of logouts waited for.
#[pyfunction]
fn logout_all(py: Python<'_>, timeout: f64) -> usize {
    let timeout = std::time::Duration::try_from_secs_f64(timeout.max(0.0)).unwrap_or_default();
    // Without the GIL: the SDK's log thread may need it meanwhile.
    py.detach(move || rtm2_core::logout_all(timeout))
}

/// Builds an AccessToken2 RTM login token for `user_id`, valid `expire_secs` from now.
#[pyfunction]
fn build_token(app_id: &str, certificate: &str, user_id: &str, expire_secs: u32) -> PyResult<String> {
    rtm2_proto::token::build_rtm_token(app_id, certificate, user_id, expire_secs)
        .map_err(|e| token_error("build_token", e))
}

/// Builds an AccessToken2 stream-channel token for `user_id` in `channel`.
#[pyfunction]
fn build_stream_token(
    app_id: &str,
    certificate: &str,
    channel: &str,
    user_id: &str,
    expire_secs: u32,
) -> PyResult<String> {
    rtm2_proto::token::build_stream_token(app_id, certificate, channel, user_id, expire_secs)
        .map_err(|e| token_error("build_stream_token", e))
}

/// The RTM error-code table: `(code, name, message)` for every code, ascending.
#[pyfunction]
fn error_codes() -> Vec<(u32, &'static str, &'static str)> {
    ErrorCode::ALL.iter().map(|c| (c.code(), c.name(), c.message())).collect()
}

/// The RTM enumerations: `(enum name, [(value name, number), ...])` for each.
#[pyfunction]
fn enum_tables() -> Vec<(&'static str, Vec<(&'static str, u32)>)> {
    rtm2_core::enum_tables()
}

#[pymodule]
fn _rtm2(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("__version__", rtm2_core::VERSION)?;
    m.add("RtmErrorBase", py.get_type::<errors::RtmErrorBase>())?;
    m.add_function(wrap_pyfunction!(build_token, m)?)?;
    m.add_function(wrap_pyfunction!(logout_all, m)?)?;
    m.add_function(wrap_pyfunction!(build_stream_token, m)?)?;
    m.add_function(wrap_pyfunction!(error_codes, m)?)?;
    m.add_function(wrap_pyfunction!(enum_tables, m)?)?;
    m.add_function(wrap_pyfunction!(logging::set_log_level, m)?)?;
    m.add_function(wrap_pyfunction!(logging::stop_logging, m)?)?;
    m.add_class::<bridge::LoopBridge>()?;
    m.add_class::<client::NativeClient>()?;
    m.add_class::<stream::NativeStreamChannel>()?;
    m.add_class::<presence::NativePresence>()?;
    m.add_class::<storage::NativeStorage>()?;
    m.add_class::<lock::NativeLock>()?;
    m.add_class::<history::NativeHistory>()?;
    m.add_class::<lock::NativeWithdrawal>()?;
    m.add_class::<receivers::NativeEventReceiver>()?;
    m.add_class::<receivers::NativeSubscription>()?;
    m.add_class::<types::MessageEvent>()?;
    m.add_class::<types::TopicEvent>()?;
    m.add_class::<types::TopicInfo>()?;
    m.add_class::<types::PublisherInfo>()?;
    m.add_class::<types::LinkStateEvent>()?;
    m.add_class::<types::TokenPrivilegeWillExpireEvent>()?;
    m.add_class::<types::OverflowEvent>()?;
    m.add_class::<types::JoinResult>()?;
    m.add_class::<types::SubscribeTopicResult>()?;
    m.add_class::<types::FailedUser>()?;
    responses::register(m)?;
    m.add_class::<services::UserState>()?;
    m.add_class::<services::GetStateResponse>()?;
    m.add_class::<services::OnlineUsers>()?;
    m.add_class::<services::ChannelInfo>()?;
    m.add_class::<services::PresenceInterval>()?;
    m.add_class::<services::PresenceEvent>()?;
    m.add_class::<services::MetadataItem>()?;
    m.add_class::<services::Metadata>()?;
    m.add_class::<services::GetChannelMetadataResponse>()?;
    m.add_class::<services::GetUserMetadataResponse>()?;
    m.add_class::<services::MetadataWrite>()?;
    m.add_class::<services::StorageEvent>()?;
    m.add_class::<services::LockDetail>()?;
    m.add_class::<services::LockEvent>()?;
    m.add_class::<services::HistoryMessage>()?;
    m.add_class::<services::HistoryPage>()?;
    Ok(())
}
