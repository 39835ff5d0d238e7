//! Routes the SDK's log records to a JavaScript function (a weak threadsafe function: it does
//! not keep the event loop alive).

use std::sync::Arc;

use napi::bindgen_prelude::FnArgs;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::{Env, Status};
use napi_derive::napi;

use rtm2_core::ErrorCode;
use rtm2_core::logging::{self, LogLevel, LogRecord};

use crate::error;

type LogFn =
    ThreadsafeFunction<FnArgs<(String, String, String)>, (), FnArgs<(String, String, String)>, Status, false, true>;

fn level_name(l: LogLevel) -> &'static str {
    match l {
        LogLevel::Trace => "trace",
        LogLevel::Debug => "debug",
        LogLevel::Info => "info",
        LogLevel::Warn => "warn",
        LogLevel::Error => "error",
    }
}

/// Routes SDK log records at `level` and above (`'trace'`, `'debug'`, `'info'`, `'warn'`,
/// `'error'`) to `handler(level, target, message)`, or stops routing with `null`. One handler
/// per process; it is called on the JS thread and does not keep the process alive.
#[napi(ts_args_type = "level: string, handler: ((level: string, target: string, message: string) => void) | null")]
pub fn set_log_handler(env: &Env, level: String, handler: Option<LogFn>) -> napi::Result<()> {
    let Some(min) = logging::parse_level(&level) else {
        let e = error::new(ErrorCode::INVALID_PARAMETER, "set_log_handler", format!("unknown log level {level:?}"));
        return Err(error::to_js(env, &e));
    };
    let handler = handler.map(|f| {
        let f = Arc::new(f);
        Arc::new(move |r: &LogRecord| {
            let args = (level_name(r.level).to_string(), r.target.clone(), r.message.clone());
            f.call(args.into(), ThreadsafeFunctionCallMode::NonBlocking);
        }) as logging::LogHandler
    });
    logging::set_log_handler(min, handler);
    Ok(())
}
