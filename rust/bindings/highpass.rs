//! Shims for `emgeom_kernels::highpass` (masked Gaussian high-pass of an image stack).

use emgeom_kernels::highpass;
use numpy::{IntoPyArray, PyArray3, PyReadonlyArray2, PyReadonlyArray3};
use pyo3::prelude::*;

use crate::common::run_parallel;

/// Each image of `stack` (`(n, ny, nx)` float64) minus its Gaussian-smoothed version (σ
/// `sigma` px) over `mask` (`(ny, nx)` bool), by normalised convolution on the zero-padded
/// frame `pad`; zero outside the mask.
#[pyfunction]
#[pyo3(signature = (stack, mask, *, sigma, pad, n_threads=None))]
fn masked_gaussian_highpass<'py>(
    py: Python<'py>,
    stack: PyReadonlyArray3<'py, f64>,
    mask: PyReadonlyArray2<'py, bool>,
    sigma: f64,
    pad: (usize, usize),
    n_threads: Option<usize>,
) -> PyResult<Bound<'py, PyArray3<f64>>> {
    let (s, m) = (stack.as_array(), mask.as_array());
    let out = run_parallel(py, n_threads, move || {
        highpass::masked_gaussian_highpass(s, m, sigma, pad)
    })?;
    Ok(out.into_pyarray(py))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(masked_gaussian_highpass, m)?)?;
    Ok(())
}
