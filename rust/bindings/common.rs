//! Shared plumbing of the shims: the one error mapping, the panic guard, the GIL release and
//! the dtype enums (one shim per operation, dispatching on the array's dtype, as rust-numpy's
//! `examples/simple` does with `#[derive(FromPyObject)]`).

use std::panic::{catch_unwind, AssertUnwindSafe};

use emgeom_kernels::parallel::with_threads;
use emgeom_kernels::warp::Affine;
use emgeom_kernels::KernelError;
use ndarray::{ArrayView2, ArrayView3};
use numpy::{PyReadonlyArray2, PyReadonlyArray3, PyReadwriteArray2};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;

/// A 2-D image `(y, x)` of either float dtype.
#[derive(FromPyObject)]
pub enum Image<'py> {
    F32(PyReadonlyArray2<'py, f32>),
    F64(PyReadonlyArray2<'py, f64>),
}

/// A stack `(n, y, x)` of either float dtype.
#[derive(FromPyObject)]
pub enum Stack<'py> {
    F32(PyReadonlyArray3<'py, f32>),
    F64(PyReadonlyArray3<'py, f64>),
}

/// A caller-allocated `(rows, cols)` output of either float dtype, written in place.
#[derive(FromPyObject)]
pub enum OutMatrix<'py> {
    F32(PyReadwriteArray2<'py, f32>),
    F64(PyReadwriteArray2<'py, f64>),
}

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

/// The one mapping of a [`KernelError`] raised outside [`run_detached`] (argument conversion in
/// a shim) to `emgeom.errors.InvalidValueError`.
pub fn kernel_error(py: Python<'_>, e: KernelError) -> PyErr {
    to_pyerr(py, Failure::Kernel(e))
}

/// Run `f` with the GIL released and inside the panic guard; map failures to Python errors.
pub fn run_detached<R, F>(py: Python<'_>, f: F) -> PyResult<R>
where
    R: Send,
    F: FnOnce() -> Result<R, KernelError> + Send,
{
    py.detach(|| guarded(f)).map_err(|e| to_pyerr(py, e))
}

/// [`run_detached`] on `n_threads` worker threads (`None`: the global pool).
pub fn run_parallel<R, F>(py: Python<'_>, n_threads: Option<usize>, f: F) -> PyResult<R>
where
    R: Send,
    F: FnOnce() -> Result<R, KernelError> + Send,
{
    run_detached(py, move || with_threads(n_threads, f)?)
}

/// A `(2, 3)` affine matrix (`[[a, b, c], [d, e, f]]`) named `what` in errors.
pub fn affine_of(v: ArrayView2<'_, f64>, what: &'static str) -> Result<Affine, KernelError> {
    if v.dim() != (2, 3) {
        return Err(KernelError::shape(what, "(2, 3)", format!("{:?}", v.dim())));
    }
    Ok([
        [v[[0, 0]], v[[0, 1]], v[[0, 2]]],
        [v[[1, 0]], v[[1, 1]], v[[1, 2]]],
    ])
}

/// A stack `(n, 2, 3)` of affine matrices named `what` in errors.
pub fn affines_of(v: ArrayView3<'_, f64>, what: &'static str) -> Result<Vec<Affine>, KernelError> {
    if v.shape()[1..] != [2, 3] {
        return Err(KernelError::shape(
            what,
            "(n, 2, 3)",
            format!("{:?}", v.shape()),
        ));
    }
    v.outer_iter().map(|a| affine_of(a, what)).collect()
}

/// Test hook: a kernel that panics inside `run_detached`, so the test suite can prove that a
/// panic surfaces as `emgeom.errors.InternalError` and never as pyo3's `PanicException`.
#[pyfunction]
fn _panic_in_kernel_for_tests(py: Python<'_>) -> PyResult<()> {
    run_detached(py, || -> Result<(), KernelError> {
        panic!("deliberate test panic")
    })
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(_panic_in_kernel_for_tests, m)?)?;
    Ok(())
}
