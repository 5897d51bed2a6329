//! Shims for `emgeom_kernels::warp` (affine resampling of images and stacks).

use emgeom_kernels::parallel::with_threads;
use emgeom_kernels::warp::{self, Affine, Fill, Interpolation, WarpOptions};
use numpy::{PyArray3, PyArrayMethods, PyReadonlyArray2, PyReadonlyArray3};
use pyo3::prelude::*;

use crate::common::run_detached;

fn to_affine(a: &PyReadonlyArray2<'_, f64>) -> PyResult<Affine> {
    let v = a.as_array();
    if v.dim() != (2, 3) {
        return Err(pyo3::exceptions::PyValueError::new_err(format!(
            "affine: expected shape (2, 3), got {:?}",
            v.dim()
        )));
    }
    Ok([
        [v[[0, 0]], v[[0, 1]], v[[0, 2]]],
        [v[[1, 0]], v[[1, 1]], v[[1, 2]]],
    ])
}

macro_rules! warp_stack_fn {
    ($name:ident, $t:ty) => {
        /// Warp a `(n, y, x)` stack: `out[k, y, x] = image[k](A · (x, y, 1))`.
        /// `fill=None` fills outside samples with each image's mean. `check_limit`: every
        /// input pixel must be finite with `|v| <= check_limit` (checked inside the warp's
        /// parallel pass; a failure raises an `image:` error).
        #[pyfunction]
        #[pyo3(signature = (images, affine, output_shape, order, fill=None, n_threads=None, check_limit=None))]
        fn $name<'py>(
            py: Python<'py>,
            images: PyReadonlyArray3<'py, $t>,
            affine: PyReadonlyArray2<'py, f64>,
            output_shape: (usize, usize),
            order: u32,
            fill: Option<f64>,
            n_threads: Option<usize>,
            check_limit: Option<f64>,
        ) -> PyResult<Bound<'py, PyArray3<$t>>> {
            let a = to_affine(&affine)?;
            let src = images.as_array();
            let n = src.shape()[0];
            let fill = fill.map_or(Fill::Mean, Fill::Value);
            // numpy allocates the output: large numpy arrays are backed by transparent huge
            // pages, so first-touch page faults cost far less than for a Rust `Vec` (~1 ms vs
            // ~10 ms for 64 MB here). `zeros` is a lazily-zeroed calloc, not a memset; the
            // kernel writes every element exactly once.
            let out = PyArray3::<$t>::zeros(py, [n, output_shape.0, output_shape.1], false);
            {
                let mut rw = out.readwrite();
                let view = rw.as_array_mut();
                run_detached(py, move || {
                    let interp = Interpolation::from_order(order)?;
                    let opts = WarpOptions {
                        check_limit,
                        ..WarpOptions::default()
                    };
                    with_threads(n_threads, || {
                        warp::warp_affine_stack_with(src, &a, interp, fill, view, &opts)
                    })?
                })?;
            }
            Ok(out)
        }
    };
}

warp_stack_fn!(warp_affine_f32, f32);
warp_stack_fn!(warp_affine_f64, f64);

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(warp_affine_f32, m)?)?;
    m.add_function(wrap_pyfunction!(warp_affine_f64, m)?)?;
    Ok(())
}
