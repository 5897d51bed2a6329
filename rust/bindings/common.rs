//! Shared plumbing of the shims: error mapping and the panic guard.

use std::panic::{catch_unwind, AssertUnwindSafe};

use emgeom_kernels::KernelError;
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;

/// Why a guarded kernel call failed (kept free of Python objects so it can cross `detach`).
pub enum Failure {
    Kernel(KernelError),
    Panic(String),
}

impl From<KernelError> for Failure {
    fn from(e: KernelError) -> Self {
        Failure::Kernel(e)
    }
}

/// Run a kernel, turning a panic into a [`Failure`] instead of unwinding into Python.
pub fn guarded<R, F>(f: F) -> Result<R, Failure>
where
    F: FnOnce() -> Result<R, KernelError>,
{
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(r)) => Ok(r),
        Ok(Err(e)) => Err(Failure::Kernel(e)),
        Err(payload) => {
            let msg = if let Some(s) = payload.downcast_ref::<&str>() {
                (*s).to_string()
            } else if let Some(s) = payload.downcast_ref::<String>() {
                s.clone()
            } else {
                "unknown panic".to_string()
            };
            Err(Failure::Panic(msg))
        }
    }
}

fn emgeom_error(py: Python<'_>, class: &str, msg: String) -> PyErr {
    // The exception classes live in Python (`emgeom.errors`) so that users catch one hierarchy.
    match py
        .import("emgeom.errors")
        .and_then(|m| m.getattr(class))
        .and_then(|cls| cls.call1((msg.clone(),)))
    {
        Ok(inst) => PyErr::from_value(inst),
        Err(_) if class == "InternalError" => PyRuntimeError::new_err(msg),
        Err(_) => PyValueError::new_err(msg),
    }
}

/// Convert a [`Failure`] to the matching `emgeom.errors` exception.
pub fn to_pyerr(py: Python<'_>, failure: Failure) -> PyErr {
    match failure {
        Failure::Kernel(e) => emgeom_error(py, "InvalidValueError", e.to_string()),
        Failure::Panic(msg) => emgeom_error(
            py,
            "InternalError",
            format!("emgeom kernel failed unexpectedly (please report this bug): {msg}"),
        ),
    }
}

/// Run `f` with the GIL released and inside the panic guard; map failures to Python errors.
pub fn run_detached<R, F>(py: Python<'_>, f: F) -> PyResult<R>
where
    R: Send,
    F: FnOnce() -> Result<R, KernelError> + Send,
{
    py.detach(|| guarded(f)).map_err(|e| to_pyerr(py, e))
}

/// Test hook: a kernel that panics inside `run_detached`, so the test suite can prove that a
/// panic surfaces as `emgeom.errors.InternalError` and never as pyo3's `PanicException`.
#[pyfunction]
fn _panic_in_kernel_for_tests(py: Python<'_>) -> PyResult<()> {
    run_detached(py, || -> Result<(), KernelError> { panic!("deliberate test panic") })
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(_panic_in_kernel_for_tests, m)?)?;
    Ok(())
}
