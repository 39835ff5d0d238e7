//! The SDK runtime as seen from Python: started by the first client (every operation runs on
//! it, see bridge.rs), and guarded against use after `fork()`.
//!
//! The runtime's threads do not survive `fork()`: in a child, any operation would wait forever
//! for a thread that does not exist. So the process that started the runtime is recorded, and
//! in any other process every entry point fails at once with NOT_INITIALIZED (10001) instead of
//! hanging. A process that forks *before* its first client is unaffected (the runtime is only
//! started by the first client).

use std::sync::OnceLock;
use std::time::Duration;

use pyo3::prelude::*;

use rtm2_core::ErrorCode;

use crate::errors::rtm_error;

static STARTED_IN: OnceLock<u32> = OnceLock::new();

/// Starts the runtime (once), remembering this process.
pub fn start() -> PyResult<()> {
    check("new")?;
    STARTED_IN.get_or_init(|| {
        let _ = rtm2_core::runtime();
        std::process::id()
    });
    Ok(())
}

/// Whether this is a child forked after the runtime started. Objects of the parent are then
/// leaked rather than dropped: dropping them would touch locks that a parent thread may have
/// held at the moment of the fork.
pub fn forked() -> bool {
    STARTED_IN.get().is_some_and(|&pid| pid != std::process::id())
}

/// Fails in a process forked after the runtime started.
pub fn check(operation: &str) -> PyResult<()> {
    match STARTED_IN.get() {
        Some(&pid) if pid != std::process::id() => Err(rtm_error(
            ErrorCode::NOT_INITIALIZED,
            operation,
            format!(
                "rtm2 was started in process {pid} and cannot be used in this forked child (its threads do not \
                 survive fork()); create clients only after forking, or use the 'spawn'/'forkserver' start method"
            ),
        )),
        _ => Ok(()),
    }
}

/// Seconds (Python float) to a per-call timeout; None = the configured request timeout.
pub fn timeout(operation: &str, seconds: Option<f64>) -> PyResult<Option<Duration>> {
    match seconds {
        None => Ok(None),
        Some(s) => match Duration::try_from_secs_f64(s) {
            Ok(d) if !d.is_zero() => Ok(Some(d)),
            _ => Err(rtm_error(
                ErrorCode::INVALID_PARAMETER,
                operation,
                format!("timeout must be a positive number of seconds, got {s}"),
            )),
        },
    }
}
