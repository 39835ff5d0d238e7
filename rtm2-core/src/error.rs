//! The SDK error: an RTM code, a reason in words and the operation that failed.

use rtm2_proto::ErrorCode;

/// Every SDK operation fails with this error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{operation} failed: {code}: {reason}")]
pub struct Error {
    /// The RTM error code (10001…15006).
    pub code: ErrorCode,
    /// What went wrong, in words.
    pub reason: String,
    /// The operation that failed, e.g. `"publish"`.
    pub operation: &'static str,
    /// Set when the operation ran out of time (its code is then the operation's timeout code,
    /// which for some operations is a generic failure code, e.g. 11007 for `join`).
    timed_out: bool,
}

impl Error {
    /// Makes an error.
    pub fn new(code: ErrorCode, operation: &'static str, reason: impl Into<String>) -> Self {
        Error { code, reason: reason.into(), operation, timed_out: false }
    }

    /// Makes the error of an operation that ran out of time.
    pub fn timeout(code: ErrorCode, operation: &'static str, reason: impl Into<String>) -> Self {
        Error { code, reason: reason.into(), operation, timed_out: true }
    }

    /// Whether the operation failed because it ran out of time.
    pub fn is_timeout(&self) -> bool {
        self.timed_out
    }

    pub(crate) fn from_violation(op: &'static str, v: rtm2_proto::validate::Violation) -> Self {
        Error { code: v.code, reason: v.reason, operation: op, timed_out: false }
    }

    pub(crate) fn with_op(mut self, op: &'static str) -> Self {
        self.operation = op;
        self
    }
}

/// Result of an SDK operation.
pub type Result<T> = std::result::Result<T, Error>;
