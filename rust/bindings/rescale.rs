//! Shims for `emgeom_kernels::rescale` (separable area / Lanczos-3 and Fourier rescaling).

use emgeom_kernels::rescale::{self, SeparableMethod};
use emgeom_kernels::warp::Sample;
use emgeom_kernels::KernelError;
use numpy::{Element, IntoPyArray, PyArray2, PyReadonlyArray2};
use pyo3::prelude::*;

use crate::common::{run_parallel, Image};

/// Guard before any allocation: a zoom whose filter support (≈ 1/zoom input pixels per output
/// pixel) exceeds the image many times over, or that is not finite and positive, is an error
/// (a huge search radius once asked for a 1/5e9 zoom and aborted allocating 3.9 GB of taps).
fn check_zoom(dim: (usize, usize), zoom: (f64, f64)) -> Result<(), KernelError> {
    for (z, n) in [(zoom.0, dim.0), (zoom.1, dim.1)] {
        if !(z.is_finite() && z > 0.0) || 1.0 / z > 4.0 * n as f64 + 16.0 {
            return Err(KernelError::value(
                "zoom",
                format!("{z} is out of range for an image of {n} pixels"),
            ));
        }
    }
    Ok(())
}

fn method_of(name: &str) -> Result<SeparableMethod, KernelError> {
    match name {
        "area" => Ok(SeparableMethod::Area),
        "lanczos3" => Ok(SeparableMethod::Lanczos3),
        other => Err(KernelError::value(
            "method",
            format!("expected 'area' or 'lanczos3', got {other:?}"),
        )),
    }
}

fn rescale_typed<'py, T: Sample + Element>(
    image: PyReadonlyArray2<'py, T>,
    output_shape: (usize, usize),
    zoom: (f64, f64),
    method: &str,
    n_threads: Option<usize>,
) -> PyResult<Bound<'py, PyAny>> {
    let py = image.py();
    let src = image.as_array();
    let out = run_parallel(py, n_threads, move || {
        check_zoom(src.dim(), zoom)?;
        rescale::rescale_separable(src, output_shape, zoom, method_of(method)?)
    })?;
    Ok(out.into_pyarray(py).into_any())
}

/// Separable rescale (`method` "area" or "lanczos3") of a float32 or float64 image to
/// `output_shape` with zooms `(zy, zx)`; the output has the input's dtype.
#[pyfunction]
#[pyo3(signature = (image, *, output_shape, zoom, method, n_threads=None))]
fn rescale_separable<'py>(
    image: Image<'py>,
    output_shape: (usize, usize),
    zoom: (f64, f64),
    method: &str,
    n_threads: Option<usize>,
) -> PyResult<Bound<'py, PyAny>> {
    match image {
        Image::F32(x) => rescale_typed(x, output_shape, zoom, method, n_threads),
        Image::F64(x) => rescale_typed(x, output_shape, zoom, method, n_threads),
    }
}

/// Fourier crop/pad of a float32 image to `output_shape` (half-pixel aligned).
#[pyfunction]
#[pyo3(signature = (image, *, output_shape, n_threads=None))]
fn rescale_fourier<'py>(
    py: Python<'py>,
    image: PyReadonlyArray2<'py, f32>,
    output_shape: (usize, usize),
    n_threads: Option<usize>,
) -> PyResult<Bound<'py, PyArray2<f32>>> {
    let src = image.as_array();
    let out = run_parallel(py, n_threads, move || {
        rescale::fourier_rescale(src, output_shape)
    })?;
    Ok(out.into_pyarray(py))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(rescale_separable, m)?)?;
    m.add_function(wrap_pyfunction!(rescale_fourier, m)?)?;
    Ok(())
}
