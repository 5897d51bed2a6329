//! Shims for `emgeom_kernels::defocus` (bulk per-particle, per-tilt defocus and projection).
//!
//! The output array is always allocated by the caller (numpy, in `emgeom.tilt`), validated there
//! (C-contiguous, writeable, right dtype and shape), and written in place with the GIL released.

use emgeom_kernels::defocus::{self, Kernel};
use emgeom_kernels::KernelError;
use numpy::{Element, PyReadonlyArray2, PyReadwriteArray2, PyReadwriteArray3};
use pyo3::prelude::*;

use crate::common::{run_parallel, OutMatrix};

fn contiguous<'a, T>(v: Option<&'a [T]>, what: &'static str) -> Result<&'a [T], KernelError> {
    v.ok_or_else(|| KernelError::value(what, "must be a C-contiguous array"))
}

fn contiguous_mut<T>(v: Option<&mut [T]>) -> Result<&mut [T], KernelError> {
    v.ok_or_else(|| KernelError::value("out", "must be a C-contiguous array"))
}

fn defocus_into<T: Kernel + Element>(
    positions: PyReadonlyArray2<'_, f64>,
    coeffs: PyReadonlyArray2<'_, f64>,
    mut out: PyReadwriteArray2<'_, T>,
    n_threads: Option<usize>,
) -> PyResult<()> {
    let py = positions.py();
    let pos = positions.as_array();
    let co = coeffs.as_array();
    let n_tilts = co.shape()[0];
    let mut o = out.as_array_mut();
    run_parallel(py, n_threads, move || {
        let p = contiguous(pos.as_slice(), "positions_a")?;
        let c = contiguous(co.as_slice(), "coeffs")?;
        if o.shape() != [pos.shape()[0], n_tilts] {
            return Err(KernelError::shape(
                "out",
                format!("({}, {n_tilts})", pos.shape()[0]),
                format!("{:?}", o.shape()),
            ));
        }
        defocus::particle_defocus(p, c, n_tilts, contiguous_mut(o.as_slice_mut())?)
    })
}

/// `out[n, t] = coeffs[t, 3] + coeffs[t, :3] · positions[n]` written into `out` (float32 or
/// float64) in place.
#[pyfunction]
#[pyo3(signature = (positions, coeffs, out, *, n_threads=None))]
fn particle_defocus<'py>(
    positions: PyReadonlyArray2<'py, f64>,
    coeffs: PyReadonlyArray2<'py, f64>,
    out: OutMatrix<'py>,
    n_threads: Option<usize>,
) -> PyResult<()> {
    match out {
        OutMatrix::F32(o) => defocus_into(positions, coeffs, o, n_threads),
        OutMatrix::F64(o) => defocus_into(positions, coeffs, o, n_threads),
    }
}

/// `out[n, t, :] = rows[t, 0:3] · p_n + rows[t, 3], rows[t, 4:7] · p_n + rows[t, 7]`.
#[pyfunction]
#[pyo3(signature = (positions, rows, out, *, n_threads=None))]
fn project<'py>(
    py: Python<'py>,
    positions: PyReadonlyArray2<'py, f64>,
    rows: PyReadonlyArray2<'py, f64>,
    mut out: PyReadwriteArray3<'py, f64>,
    n_threads: Option<usize>,
) -> PyResult<()> {
    let pos = positions.as_array();
    let r = rows.as_array();
    let n_tilts = r.shape()[0];
    let mut o = out.as_array_mut();
    run_parallel(py, n_threads, move || {
        let p = contiguous(pos.as_slice(), "positions_a")?;
        let rr = contiguous(r.as_slice(), "rows")?;
        if o.shape() != [pos.shape()[0], n_tilts, 2] {
            return Err(KernelError::shape(
                "out",
                format!("({}, {n_tilts}, 2)", pos.shape()[0]),
                format!("{:?}", o.shape()),
            ));
        }
        defocus::project(p, rr, n_tilts, contiguous_mut(o.as_slice_mut())?)
    })
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(particle_defocus, m)?)?;
    m.add_function(wrap_pyfunction!(project, m)?)?;
    Ok(())
}
