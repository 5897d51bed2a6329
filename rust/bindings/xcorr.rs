//! Shims for `emgeom_kernels::xcorr` (filtered translation correlation) and the frozen parameter
//! types that mirror its structs (`FilterParams`, `Method`, `Allowed`), shared with `crossmag`.

use emgeom_kernels::xcorr::{self, Allowed, FilterParams, Method};
use emgeom_kernels::KernelError;
use ndarray::{Array1, Array2};
use numpy::{IntoPyArray, PyArray1, PyArray2, PyReadonlyArray2};
use pyo3::prelude::*;

use crate::common::{kernel_error, run_parallel};

/// The IMOD band-pass of the correlation (cycles/pixel): `xcorr::FilterParams`.
#[pyclass(frozen, from_py_object, module = "emgeom._core", get_all)]
#[derive(Clone, Copy)]
pub struct Bandpass {
    pub sigma1: f64,
    pub sigma2: f64,
    pub radius1: f64,
    pub radius2: f64,
}

#[pymethods]
impl Bandpass {
    #[new]
    #[pyo3(signature = (*, sigma1, sigma2, radius1, radius2))]
    fn new(sigma1: f64, sigma2: f64, radius1: f64, radius2: f64) -> Self {
        Bandpass {
            sigma1,
            sigma2,
            radius1,
            radius2,
        }
    }
}

impl From<Bandpass> for FilterParams {
    fn from(b: Bandpass) -> Self {
        FilterParams {
            sigma1: b.sigma1,
            sigma2: b.sigma2,
            radius1: b.radius1,
            radius2: b.radius2,
        }
    }
}

fn method_of(name: &str) -> Result<Method, KernelError> {
    match name {
        "xcorr" => Ok(Method::XCorr),
        "phase" => Ok(Method::Phase),
        _ => Err(KernelError::value(
            "method",
            format!("expected 'xcorr' or 'phase', got {name:?}"),
        )),
    }
}

/// How two images are put in one correlation frame: both tapered (`taper` px cosine ramp) into
/// a `pad = (py, px)` frame, correlated with `method` ("xcorr" or "phase") and `filter`.
#[pyclass(frozen, module = "emgeom._core")]
pub struct CorrelationSetup {
    #[pyo3(get)]
    pub pad: (usize, usize),
    #[pyo3(get)]
    pub taper: f64,
    #[pyo3(get)]
    pub filter: Bandpass,
    pub method: Method,
}

#[pymethods]
impl CorrelationSetup {
    #[new]
    #[pyo3(signature = (*, pad, taper, filter, method))]
    fn new(
        py: Python<'_>,
        pad: (usize, usize),
        taper: f64,
        filter: Bandpass,
        method: &str,
    ) -> PyResult<Self> {
        let method = method_of(method).map_err(|e| kernel_error(py, e))?;
        Ok(CorrelationSetup {
            pad,
            taper,
            filter,
            method,
        })
    }

    /// "xcorr" or "phase".
    #[getter]
    fn method(&self) -> &'static str {
        match self.method {
            Method::XCorr => "xcorr",
            Method::Phase => "phase",
        }
    }
}

/// The top `n_peaks` peaks at least `min_separation` map pixels apart.
#[pyclass(frozen, from_py_object, module = "emgeom._core", get_all)]
#[derive(Clone, Copy)]
pub struct PeakSearch {
    pub n_peaks: usize,
    pub min_separation: f64,
}

#[pymethods]
impl PeakSearch {
    #[new]
    #[pyo3(signature = (*, n_peaks, min_separation))]
    fn new(n_peaks: usize, min_separation: f64) -> Self {
        PeakSearch {
            n_peaks,
            min_separation,
        }
    }
}

/// Which map positions may hold a peak (`xcorr::Allowed`): the rectangle `[x0, x1) × [y0, y1)`
/// of map indices, and the disk of `radius` about `(cx, cy)` (`None`, read back as `-1.0`: no
/// disk).
#[pyclass(frozen, from_py_object, module = "emgeom._core", get_all)]
#[derive(Clone, Copy)]
pub struct AllowedRegion {
    pub x0: usize,
    pub x1: usize,
    pub y0: usize,
    pub y1: usize,
    pub cx: f64,
    pub cy: f64,
    pub radius: f64,
}

#[pymethods]
impl AllowedRegion {
    #[new]
    #[pyo3(signature = (*, x0, x1, y0, y1, cx=0.0, cy=0.0, radius=None))]
    fn new(
        x0: usize,
        x1: usize,
        y0: usize,
        y1: usize,
        cx: f64,
        cy: f64,
        radius: Option<f64>,
    ) -> Self {
        AllowedRegion {
            x0,
            x1,
            y0,
            y1,
            cx,
            cy,
            radius: radius.unwrap_or(-1.0),
        }
    }
}

impl From<AllowedRegion> for Allowed {
    fn from(a: AllowedRegion) -> Self {
        Allowed {
            x0: a.x0,
            x1: a.x1,
            y0: a.y0,
            y1: a.y1,
            cx: a.cx,
            cy: a.cy,
            radius: a.radius,
        }
    }
}

/// The result of [`correlate`] (`xcorr::Translation`).
#[pyclass(frozen, module = "emgeom._core", get_all)]
pub struct Translation {
    /// `(k, 3)`: rows `(dx, dy, value)`, best first.
    pub peaks: Py<PyArray2<f64>>,
    /// `(k,)`: peak values as a global normalised correlation in [−1, 1].
    pub normalized: Py<PyArray1<f64>>,
    pub map_mean: f64,
    pub map_std: f64,
    pub map_count: usize,
    /// The correlation map (padded frame, zero displacement at index (0, 0)), if requested.
    pub map: Option<Py<PyArray2<f32>>>,
}

/// Translation between two float32 images `a` and `b` (any shapes) in the frame of `setup`;
/// `peaks` within `max_shift` of zero (`None`: anywhere).
#[pyfunction]
#[pyo3(signature = (a, b, setup, peaks, *, max_shift=None, return_map=false, n_threads=None))]
fn correlate<'py>(
    a: PyReadonlyArray2<'py, f32>,
    b: PyReadonlyArray2<'py, f32>,
    setup: &Bound<'py, CorrelationSetup>,
    peaks: PeakSearch,
    max_shift: Option<f64>,
    return_map: bool,
    n_threads: Option<usize>,
) -> PyResult<Translation> {
    let py = a.py();
    let (av, bv) = (a.as_array(), b.as_array());
    let s = setup.get();
    let (pad, taper, method) = (s.pad, s.taper, s.method);
    let f = FilterParams::from(s.filter);
    let ms = max_shift.unwrap_or(-1.0);
    let t = run_parallel(py, n_threads, move || {
        xcorr::correlate_translation(
            av,
            bv,
            pad,
            taper,
            &f,
            method,
            peaks.n_peaks,
            peaks.min_separation,
            ms,
            return_map,
        )
    })?;
    let mut pk = Array2::<f64>::zeros((t.peaks.len(), 3));
    for (k, p) in t.peaks.iter().enumerate() {
        pk[[k, 0]] = p.x;
        pk[[k, 1]] = p.y;
        pk[[k, 2]] = p.value as f64;
    }
    Ok(Translation {
        peaks: pk.into_pyarray(py).unbind(),
        normalized: Array1::from(t.normalized).into_pyarray(py).unbind(),
        map_mean: t.stats.mean,
        map_std: t.stats.std,
        map_count: t.stats.count,
        map: t.map.map(|m| m.into_pyarray(py).unbind()),
    })
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(correlate, m)?)?;
    m.add_class::<Bandpass>()?;
    m.add_class::<CorrelationSetup>()?;
    m.add_class::<PeakSearch>()?;
    m.add_class::<AllowedRegion>()?;
    m.add_class::<Translation>()?;
    Ok(())
}
