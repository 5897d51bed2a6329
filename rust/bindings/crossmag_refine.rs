//! Shims for `emgeom_kernels::crossmag_refine` (the forward model of the maximum-likelihood
//! refinement of cross-magnification alignment).

use emgeom_kernels::crossmag_refine::{self, Pose};
use numpy::{IntoPyArray, PyArray2, PyArray3, PyArray4, PyReadonlyArray2, PyReadonlyArray3};
use pyo3::prelude::*;

use crate::common::run_parallel;

/// `(P (ny, nx), dP (4, ny, nx))` of [`crossmag_area_predict`].
type Prediction<'py> = (Bound<'py, PyArray2<f64>>, Bound<'py, PyArray3<f64>>);

/// Pose of the fine image in the coarse one (`crossmag_refine::Pose`): `(tx, ty)` = where the
/// fine point `center` lands (coarse px), `s` coarse pixels per fine pixel, `theta_rad` radians.
#[pyclass(
    frozen,
    from_py_object,
    module = "emgeom._core",
    name = "Pose",
    get_all
)]
#[derive(Clone, Copy)]
struct PyPose {
    tx: f64,
    ty: f64,
    s: f64,
    theta_rad: f64,
}

impl PyPose {
    fn kernel(self) -> Pose {
        Pose {
            tx: self.tx,
            ty: self.ty,
            s: self.s,
            theta: self.theta_rad,
        }
    }
}

#[pymethods]
impl PyPose {
    #[new]
    #[pyo3(signature = (*, tx, ty, s, theta_rad))]
    fn new(tx: f64, ty: f64, s: f64, theta_rad: f64) -> Self {
        PyPose {
            tx,
            ty,
            s,
            theta_rad,
        }
    }
}

/// The fine image integrated over the footprints of the coarse pixels of
/// `box_ = (x0, y0, nx, ny)` at `pose` (`center` = the fine point that lands on `(tx, ty)`,
/// `k` x `k` samples per footprint). Returns `(P (ny, nx), dP (4, ny, nx))`.
#[pyfunction]
#[pyo3(signature = (fine, pose, *, center, box_, k, n_threads=None))]
fn crossmag_area_predict<'py>(
    py: Python<'py>,
    fine: PyReadonlyArray2<'py, f32>,
    pose: PyPose,
    center: (f64, f64),
    box_: (i64, i64, usize, usize),
    k: usize,
    n_threads: Option<usize>,
) -> PyResult<Prediction<'py>> {
    let src = fine.as_array();
    let p = pose.kernel();
    let (a, d) = run_parallel(py, n_threads, move || {
        crossmag_refine::area_predict(src, p, center, box_, k)
    })?;
    Ok((a.into_pyarray(py), d.into_pyarray(py)))
}

/// [`crossmag_area_predict`] of a stack `(n, h, w)` of images at one pose, with only the
/// derivatives flagged in `derivs` (of `(tx, ty, s, theta)`). Returns `(n, 1 + n_d, ny, nx)`:
/// plane 0 the prediction, then the wanted derivatives in parameter order.
#[pyfunction]
#[pyo3(signature = (images, pose, *, center, box_, k, derivs, n_threads=None))]
fn crossmag_area_predict_stack<'py>(
    images: PyReadonlyArray3<'py, f32>,
    pose: PyPose,
    center: (f64, f64),
    box_: (i64, i64, usize, usize),
    k: usize,
    derivs: (bool, bool, bool, bool),
    n_threads: Option<usize>,
) -> PyResult<Bound<'py, PyArray4<f64>>> {
    let py = images.py();
    let src = images.as_array();
    let p = pose.kernel();
    let want = [derivs.0, derivs.1, derivs.2, derivs.3];
    let out = run_parallel(py, n_threads, move || {
        crossmag_refine::area_predict_stack(src, p, center, box_, k, want)
    })?;
    Ok(out.into_pyarray(py))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(crossmag_area_predict, m)?)?;
    m.add_function(wrap_pyfunction!(crossmag_area_predict_stack, m)?)?;
    m.add_class::<PyPose>()?;
    Ok(())
}
