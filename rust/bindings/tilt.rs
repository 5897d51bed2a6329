//! Shims for `emgeom_kernels::defocus` (bulk per-particle, per-tilt defocus and projection).
//!
//! The output array is always allocated by the caller (numpy, in `emgeom.tilt`), validated there
//! (C-contiguous, writeable, right dtype and shape), and written in place with the GIL released.

use emgeom_kernels::defocus;
use emgeom_kernels::parallel::with_threads;
use emgeom_kernels::KernelError;
use numpy::{PyReadonlyArray2, PyReadwriteArray2, PyReadwriteArray3};
use pyo3::prelude::*;

use crate::common::run_detached;

fn contiguous<'a, T>(v: Option<&'a [T]>, what: &'static str) -> Result<&'a [T], KernelError> {
    v.ok_or_else(|| KernelError::value(what, "must be a C-contiguous array"))
}

macro_rules! defocus_fn {
    ($name:ident, $t:ty) => {
        /// `out[n, t] = coeffs[t, 3] + coeffs[t, :3] · positions[n]` written into `out` in place.
        #[pyfunction]
        #[pyo3(signature = (positions, coeffs, out, n_threads=None))]
        fn $name<'py>(
            py: Python<'py>,
            positions: PyReadonlyArray2<'py, f64>,
            coeffs: PyReadonlyArray2<'py, f64>,
            mut out: PyReadwriteArray2<'py, $t>,
            n_threads: Option<usize>,
        ) -> PyResult<()> {
            let pos = positions.as_array();
            let co = coeffs.as_array();
            let n_tilts = co.shape()[0];
            let mut o = out.as_array_mut();
            run_detached(py, move || {
                let p = contiguous(pos.as_slice(), "positions_a")?;
                let c = contiguous(co.as_slice(), "coeffs")?;
                if o.shape()[1] != n_tilts || o.shape()[0] != pos.shape()[0] {
                    return Err(KernelError::shape(
                        "out",
                        format!("({}, {n_tilts})", pos.shape()[0]),
                        format!("{:?}", o.shape()),
                    ));
                }
                let os = o
                    .as_slice_mut()
                    .ok_or_else(|| KernelError::value("out", "must be a C-contiguous array"))?;
                with_threads(n_threads, || defocus::particle_defocus(p, c, n_tilts, os))?
            })
        }
    };
}

defocus_fn!(particle_defocus_f32, f32);
defocus_fn!(particle_defocus_f64, f64);

/// `out[n, t, :] = rows[t, 0:3] · p_n + rows[t, 3], rows[t, 4:7] · p_n + rows[t, 7]`.
#[pyfunction]
#[pyo3(signature = (positions, rows, out, n_threads=None))]
fn project_f64<'py>(
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
    run_detached(py, move || {
        let p = contiguous(pos.as_slice(), "positions_a")?;
        let rr = contiguous(r.as_slice(), "rows")?;
        if o.shape() != [pos.shape()[0], n_tilts, 2] {
            return Err(KernelError::shape(
                "out",
                format!("({}, {n_tilts}, 2)", pos.shape()[0]),
                format!("{:?}", o.shape()),
            ));
        }
        let os = o
            .as_slice_mut()
            .ok_or_else(|| KernelError::value("out", "must be a C-contiguous array"))?;
        with_threads(n_threads, || defocus::project(p, rr, n_tilts, os))?
    })
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(particle_defocus_f32, m)?)?;
    m.add_function(wrap_pyfunction!(particle_defocus_f64, m)?)?;
    m.add_function(wrap_pyfunction!(project_f64, m)?)?;
    Ok(())
}
