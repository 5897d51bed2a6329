//! The one error type of the kernels. The Python layer validates inputs first, so reaching one
//! of these from Python means a validation gap; the bindings turn it into
//! `emgeom.errors.InvalidValueError`.

use thiserror::Error;

#[derive(Debug, Error, Clone, PartialEq)]
pub enum KernelError {
    /// An array had the wrong shape. `what` names the argument.
    #[error("{what}: expected shape {expected}, got {got}")]
    Shape {
        what: &'static str,
        expected: String,
        got: String,
    },
    /// A numeric argument was out of its valid range (or not finite).
    #[error("{what}: {message}")]
    Value { what: &'static str, message: String },
}

impl KernelError {
    pub fn value(what: &'static str, message: impl Into<String>) -> Self {
        KernelError::Value {
            what,
            message: message.into(),
        }
    }
    pub fn shape(what: &'static str, expected: impl Into<String>, got: impl Into<String>) -> Self {
        KernelError::Shape {
            what,
            expected: expected.into(),
            got: got.into(),
        }
    }
}
