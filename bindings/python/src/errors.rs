//! Errors: every failure reaches Python as an instance of `rtm2.RtmError` (or a subclass) that
//! carries the RTM code, its name, the reason and the operation.
//!
//! The exception classes live in the pure-Python layer (`rtm2._errors`), which picks the
//! subclass from the code. The native side raises a *lazy* `RtmErrorBase` whose value is built
//! by that factory only when Python first looks at it, so a failing operation never needs the
//! GIL on an SDK thread.

use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::{PyErrArguments, intern};

use rtm2_core::ErrorCode;

pyo3::create_exception!(
    rtm2._rtm2,
    RtmErrorBase,
    PyException,
    "Native base of rtm2.RtmError; catch rtm2.RtmError instead."
);

/// The arguments of a lazy RTM error.
struct ErrArgs {
    code: u32,
    reason: String,
    operation: String,
    timed_out: bool,
}

static FACTORY: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

impl PyErrArguments for ErrArgs {
    fn arguments(self, py: Python<'_>) -> Py<PyAny> {
        // `rtm2._errors._from_native(code, reason, operation)` returns an instance of the right
        // subclass of RtmErrorBase; CPython then raises that instance as it is.
        let made = FACTORY
            .get_or_try_init(py, || -> PyResult<Py<PyAny>> {
                Ok(py.import(intern!(py, "rtm2._errors"))?.getattr(intern!(py, "_from_native"))?.unbind())
            })
            .and_then(|f| f.call1(py, (self.code, self.reason.as_str(), self.operation.as_str(), self.timed_out)));
        match made {
            Ok(v) => v,
            // Only without the Python layer (the native module imported on its own).
            Err(_) => (self.code, self.reason, self.operation)
                .into_pyobject(py)
                .map_or_else(|_| py.None(), |t| t.into_any().unbind()),
        }
    }
}

/// A Python exception for an RTM code.
pub fn rtm_error(code: ErrorCode, operation: &str, reason: impl Into<String>) -> PyErr {
    PyErr::new::<RtmErrorBase, _>(ErrArgs {
        code: code.code(),
        reason: reason.into(),
        operation: operation.into(),
        timed_out: false,
    })
}

/// Maps an SDK error (an operation that ran out of time becomes an `RtmTimeoutError`).
pub fn to_py(e: rtm2_core::Error) -> PyErr {
    let timed_out = e.is_timeout();
    PyErr::new::<RtmErrorBase, _>(ErrArgs {
        code: e.code.code(),
        reason: e.reason,
        operation: e.operation.into(),
        timed_out,
    })
}
