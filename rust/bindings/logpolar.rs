//! Shims for `emgeom_kernels::logpolar` (log-polar transforms, Fourier–Mellin descriptors).

use emgeom_kernels::logpolar::{self, Grid, Magnitude, Order};
use emgeom_kernels::KernelError;
use numpy::{IntoPyArray, PyArray2, PyReadonlyArray2};
use pyo3::prelude::*;

use crate::common::{kernel_error, run_parallel};

/// The log-polar sampling grid (`logpolar::Grid`): output `(n_angle, n_radius)`, radii
/// log-spaced over `[r_min, r_max]` (pixels, or cycles/pixel for spectra).
#[pyclass(frozen, from_py_object, module = "emgeom._core", get_all)]
#[derive(Clone, Copy)]
struct LogPolarGrid {
    n_angle: usize,
    n_radius: usize,
    r_min: f64,
    r_max: f64,
}

#[pymethods]
impl LogPolarGrid {
    #[new]
    #[pyo3(signature = (*, n_angle, n_radius, r_min, r_max))]
    fn new(n_angle: usize, n_radius: usize, r_min: f64, r_max: f64) -> Self {
        LogPolarGrid {
            n_angle,
            n_radius,
            r_min,
            r_max,
        }
    }
}

impl From<LogPolarGrid> for Grid {
    fn from(g: LogPolarGrid) -> Self {
        Grid {
            n_angle: g.n_angle,
            n_radius: g.n_radius,
            r_min: g.r_min,
            r_max: g.r_max,
        }
    }
}

fn magnitude_of(name: &str) -> Result<Magnitude, KernelError> {
    match name {
        "abs" => Ok(Magnitude::Abs),
        "log" => Ok(Magnitude::Log),
        other => Err(KernelError::value(
            "magnitude",
            format!("expected 'abs' or 'log', got {other:?}"),
        )),
    }
}

/// Log-polar of a float32 image about `center = (cx, cy)`, full circle; out `(n_angle, n_radius)`.
#[pyfunction]
#[pyo3(signature = (image, grid, *, center, order, n_threads=None))]
fn log_polar<'py>(
    py: Python<'py>,
    image: PyReadonlyArray2<'py, f32>,
    grid: LogPolarGrid,
    center: (f64, f64),
    order: u32,
    n_threads: Option<usize>,
) -> PyResult<Bound<'py, PyArray2<f32>>> {
    let src = image.as_array();
    let g = Grid::from(grid);
    let o = Order::from_order(order).map_err(|e| kernel_error(py, e))?;
    let out = run_parallel(py, n_threads, move || {
        logpolar::log_polar_image(src, center, &g, o)
    })?;
    Ok(out.into_pyarray(py))
}

/// Log-polar of a half magnitude spectrum `mag[ky, kx]` (numpy `rfft2` layout) of a real
/// `(ny, nx)` image over θ ∈ [0, π); radii in cycles/pixel.
#[pyfunction]
#[pyo3(signature = (magnitude, grid, *, nx, order, emphasis=false, n_threads=None))]
fn log_polar_half_spectrum<'py>(
    py: Python<'py>,
    magnitude: PyReadonlyArray2<'py, f32>,
    grid: LogPolarGrid,
    nx: usize,
    order: u32,
    emphasis: bool,
    n_threads: Option<usize>,
) -> PyResult<Bound<'py, PyArray2<f32>>> {
    let src = magnitude.as_array();
    let g = Grid::from(grid);
    let o = Order::from_order(order).map_err(|e| kernel_error(py, e))?;
    let out = run_parallel(py, n_threads, move || {
        logpolar::log_polar_half_spectrum(src, nx, &g, o, emphasis)
    })?;
    Ok(out.into_pyarray(py))
}

/// Fourier–Mellin descriptor: apodise (`taper_fraction`), FFT, |F| or log (`magnitude` "abs"
/// or "log"), emphasis, half-plane log-polar on `grid`.
#[pyfunction]
#[pyo3(signature = (image, grid, *, order, taper_fraction, magnitude, emphasis, n_threads=None))]
fn fm_log_polar<'py>(
    image: PyReadonlyArray2<'py, f32>,
    grid: LogPolarGrid,
    order: u32,
    taper_fraction: f64,
    magnitude: &str,
    emphasis: bool,
    n_threads: Option<usize>,
) -> PyResult<Bound<'py, PyArray2<f32>>> {
    let py = image.py();
    let src = image.as_array();
    let g = Grid::from(grid);
    let o = Order::from_order(order).map_err(|e| kernel_error(py, e))?;
    let m = magnitude_of(magnitude).map_err(|e| kernel_error(py, e))?;
    let out = run_parallel(py, n_threads, move || {
        logpolar::spectrum_log_polar(src, &g, o, taper_fraction, m, emphasis)
    })?;
    Ok(out.into_pyarray(py))
}

/// Difference-of-Gaussians band-pass (Fourier space, periodic), mean removed.
#[pyfunction]
#[pyo3(signature = (image, *, sigma_fine, sigma_coarse, n_threads=None))]
fn dog_filter<'py>(
    py: Python<'py>,
    image: PyReadonlyArray2<'py, f32>,
    sigma_fine: f64,
    sigma_coarse: f64,
    n_threads: Option<usize>,
) -> PyResult<Bound<'py, PyArray2<f32>>> {
    let src = image.as_array();
    let out = run_parallel(py, n_threads, move || {
        logpolar::dog_filter(src, sigma_fine, sigma_coarse)
    })?;
    Ok(out.into_pyarray(py))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(log_polar, m)?)?;
    m.add_function(wrap_pyfunction!(log_polar_half_spectrum, m)?)?;
    m.add_function(wrap_pyfunction!(fm_log_polar, m)?)?;
    m.add_function(wrap_pyfunction!(dog_filter, m)?)?;
    m.add_class::<LogPolarGrid>()?;
    Ok(())
}
