//! `emgeom._core`: thin pyo3 shims over the pure kernels in `emgeom-kernels`.
//!
//! One file per kernel module it wraps (`warp.rs` wraps `emgeom_kernels::warp`, ...), one shim
//! per operation. Every shim follows one pattern: typed arguments (a `#[derive(FromPyObject)]`
//! enum where float32 and float64 are both accepted; frozen `#[pyclass]` parameter types that
//! mirror the kernel's parameter structs; keyword-only options) → `.as_array()` →
//! [`common::run_parallel`] (GIL released, the kernel inside the panic guard on `n_threads`
//! workers) → `into_pyarray` or a frozen result `#[pyclass]`. Every error goes through the one
//! mapping in [`common`]: a `KernelError` becomes `emgeom.errors.InvalidValueError`, a panic
//! `emgeom.errors.InternalError`. Input validation with user-facing messages happens in the
//! Python layer first; the kernels re-check cheaply. `python/emgeom/_core.pyi` is the contract,
//! checked against this module by `python -m mypy.stubtest emgeom._core` (`make lint`).

use pyo3::prelude::*;

mod common;
mod crossmag;
mod crossmag_refine;
mod ctf;
mod defocus;
mod highpass;
mod logpolar;
mod ncc;
mod rescale;
mod warp;
mod xcorr;

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    common::register(m)?;
    warp::register(m)?;
    rescale::register(m)?;
    defocus::register(m)?;
    highpass::register(m)?;
    xcorr::register(m)?;
    crossmag::register(m)?;
    crossmag_refine::register(m)?;
    ctf::register(m)?;
    logpolar::register(m)?;
    ncc::register(m)?;
    Ok(())
}
