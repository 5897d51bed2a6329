//! `emgeom._core`: thin pyo3 shims over the pure kernels in `emgeom-kernels`.
//!
//! Every shim follows one pattern: `PyReadonlyArray` → `.as_array()` → `py.detach(...)` (GIL
//! released) → kernel inside [`common::guarded`] (a panic becomes `emgeom.errors.InternalError`,
//! a `KernelError` becomes `emgeom.errors.InvalidValueError`) → `into_pyarray`. Input validation
//! with user-facing messages happens in the Python layer first; the kernels re-check cheaply.
//!
//! Each capability registers its functions from its own file so that work on one capability
//! never touches another's shims.

use pyo3::prelude::*;

mod common;
mod crossmag;
mod hand;
mod logpolar;
mod ncc;
mod resample;
mod tilt;

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    common::register(m)?;
    resample::register(m)?;
    tilt::register(m)?;
    crossmag::register(m)?;
    hand::register(m)?;
    logpolar::register(m)?;
    ncc::register(m)?;
    Ok(())
}
