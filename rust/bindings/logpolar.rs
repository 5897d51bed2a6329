//! Shims for `emgeom_kernels::logpolar` (log-polar transforms, Fourier–Mellin descriptors).

use emgeom_kernels::logpolar::{self, Grid, Magnitude, Order};
use emgeom_kernels::parallel::with_threads;
use emgeom_kernels::KernelError;
use numpy::{IntoPyArray, PyArray2, PyReadonlyArray2};
use pyo3::prelude::*;

use crate::common::run_detached;

fn grid_of(output_shape: (usize, usize), r_min: f64, r_max: f64) -> Grid {
    Grid {
        n_angle: output_shape.0,
        n_radius: output_shape.1,
        r_min,
        r_max,
    }
}

/// Log-polar of an image about `center = (cx, cy)`, full circle; out `(n_angle, n_radius)`.
#[pyfunction]
#[pyo3(signature = (image, center, output_shape, r_min, r_max, order, n_threads=None))]
#[allow(clippy::too_many_arguments)]
fn log_polar_f32<'py>(
    py: Python<'py>,
    image: PyReadonlyArray2<'py, f32>,
    center: (f64, f64),
    output_shape: (usize, usize),
    r_min: f64,
    r_max: f64,
    order: u32,
    n_threads: Option<usize>,
) -> PyResult<Bound<'py, PyArray2<f32>>> {
    let src = image.as_array();
    let out = run_detached(py, move || {
        let o = Order::from_order(order)?;
        let g = grid_of(output_shape, r_min, r_max);
        with_threads(n_threads, || logpolar::log_polar_image(src, center, &g, o))?
    })?;
    Ok(out.into_pyarray(py))
}

/// Log-polar of a half magnitude spectrum `mag[ky, kx]` (numpy `rfft2` layout) of a real
/// `(ny, nx)` image over θ ∈ [0, π); radii in cycles/pixel.
#[pyfunction]
#[pyo3(signature = (magnitude, nx, output_shape, r_min, r_max, order, emphasis=false, n_threads=None))]
#[allow(clippy::too_many_arguments)]
fn log_polar_half_spectrum_f32<'py>(
    py: Python<'py>,
    magnitude: PyReadonlyArray2<'py, f32>,
    nx: usize,
    output_shape: (usize, usize),
    r_min: f64,
    r_max: f64,
    order: u32,
    emphasis: bool,
    n_threads: Option<usize>,
) -> PyResult<Bound<'py, PyArray2<f32>>> {
    let src = magnitude.as_array();
    let out = run_detached(py, move || {
        let o = Order::from_order(order)?;
        let g = grid_of(output_shape, r_min, r_max);
        with_threads(n_threads, || {
            logpolar::log_polar_half_spectrum(src, nx, &g, o, emphasis)
        })?
    })?;
    Ok(out.into_pyarray(py))
}

/// Fourier–Mellin descriptor: apodise, FFT, |F| or log, emphasis, half-plane log-polar.
#[pyfunction]
#[pyo3(signature = (image, output_shape, r_min, r_max, order, taper_fraction, magnitude, emphasis, n_threads=None))]
#[allow(clippy::too_many_arguments)]
fn fm_log_polar_f32<'py>(
    py: Python<'py>,
    image: PyReadonlyArray2<'py, f32>,
    output_shape: (usize, usize),
    r_min: f64,
    r_max: f64,
    order: u32,
    taper_fraction: f64,
    magnitude: &str,
    emphasis: bool,
    n_threads: Option<usize>,
) -> PyResult<Bound<'py, PyArray2<f32>>> {
    let src = image.as_array();
    let magnitude = magnitude.to_string();
    let out = run_detached(py, move || {
        let o = Order::from_order(order)?;
        let m = match magnitude.as_str() {
            "abs" => Magnitude::Abs,
            "log" => Magnitude::Log,
            other => {
                return Err(KernelError::value(
                    "magnitude",
                    format!("expected 'abs' or 'log', got {other:?}"),
                ))
            }
        };
        let g = grid_of(output_shape, r_min, r_max);
        with_threads(n_threads, || {
            logpolar::spectrum_log_polar(src, &g, o, taper_fraction, m, emphasis)
        })?
    })?;
    Ok(out.into_pyarray(py))
}

/// Difference-of-Gaussians band-pass (Fourier space, periodic), mean removed.
#[pyfunction]
#[pyo3(signature = (image, sigma_fine, sigma_coarse, n_threads=None))]
fn dog_filter_f32<'py>(
    py: Python<'py>,
    image: PyReadonlyArray2<'py, f32>,
    sigma_fine: f64,
    sigma_coarse: f64,
    n_threads: Option<usize>,
) -> PyResult<Bound<'py, PyArray2<f32>>> {
    let src = image.as_array();
    let out = run_detached(py, move || {
        with_threads(n_threads, || {
            logpolar::dog_filter(src, sigma_fine, sigma_coarse)
        })?
    })?;
    Ok(out.into_pyarray(py))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(log_polar_f32, m)?)?;
    m.add_function(wrap_pyfunction!(log_polar_half_spectrum_f32, m)?)?;
    m.add_function(wrap_pyfunction!(fm_log_polar_f32, m)?)?;
    m.add_function(wrap_pyfunction!(dog_filter_f32, m)?)?;
    Ok(())
}
