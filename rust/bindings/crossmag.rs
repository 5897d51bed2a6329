//! Shims for `emgeom_kernels::{rescale, xcorr, crossmag}` (cross-magnification alignment).

use std::sync::Arc;

use emgeom_kernels::crossmag::{self, PatchParams, Reference};
use emgeom_kernels::crossmag_refine::{self, Pose};
use emgeom_kernels::parallel::with_threads;
use emgeom_kernels::rescale::{self, SeparableMethod};
use emgeom_kernels::warp::Affine;
use emgeom_kernels::xcorr::{self, Allowed, FilterParams, Method};
use emgeom_kernels::KernelError;
use ndarray::Array2;
use numpy::{
    IntoPyArray, PyArray1, PyArray2, PyArray3, PyArray4, PyReadonlyArray2, PyReadonlyArray3,
};
use pyo3::prelude::*;

use crate::common::run_detached;

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

fn filter_of(f: (f64, f64, f64, f64)) -> FilterParams {
    FilterParams {
        sigma1: f.0,
        sigma2: f.1,
        radius1: f.2,
        radius2: f.3,
    }
}

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

macro_rules! rescale_fn {
    ($name:ident, $t:ty) => {
        /// Separable rescale ("area" or "lanczos3") to `output_shape` with zooms `(zy, zx)`.
        #[pyfunction]
        #[pyo3(signature = (image, output_shape, zoom, method, n_threads=None))]
        fn $name<'py>(
            py: Python<'py>,
            image: PyReadonlyArray2<'py, $t>,
            output_shape: (usize, usize),
            zoom: (f64, f64),
            method: &str,
            n_threads: Option<usize>,
        ) -> PyResult<Bound<'py, PyArray2<$t>>> {
            let src = image.as_array();
            let method = method.to_string();
            let out = run_detached(py, move || {
                check_zoom(src.dim(), zoom)?;
                let m = match method.as_str() {
                    "area" => SeparableMethod::Area,
                    "lanczos3" => SeparableMethod::Lanczos3,
                    other => {
                        return Err(KernelError::value(
                            "method",
                            format!("expected 'area' or 'lanczos3', got {other:?}"),
                        ))
                    }
                };
                with_threads(n_threads, || {
                    rescale::rescale_separable(src, output_shape, zoom, m)
                })?
            })?;
            Ok(out.into_pyarray(py))
        }
    };
}

rescale_fn!(rescale_separable_f32, f32);
rescale_fn!(rescale_separable_f64, f64);

/// Fourier crop/pad of a float32 image to `output_shape` (half-pixel aligned).
#[pyfunction]
#[pyo3(signature = (image, output_shape, n_threads=None))]
fn rescale_fourier_f32<'py>(
    py: Python<'py>,
    image: PyReadonlyArray2<'py, f32>,
    output_shape: (usize, usize),
    n_threads: Option<usize>,
) -> PyResult<Bound<'py, PyArray2<f32>>> {
    let src = image.as_array();
    let out = run_detached(py, move || {
        with_threads(n_threads, || rescale::fourier_rescale(src, output_shape))?
    })?;
    Ok(out.into_pyarray(py))
}

type CorrOut<'py> = (
    Bound<'py, PyArray2<f64>>,
    Bound<'py, PyArray1<f64>>,
    (f64, f64, usize),
    Option<Bound<'py, PyArray2<f32>>>,
);

/// Translation correlation of two float32 images. Returns `(peaks (k, 3) [dx, dy, value],
/// normalized (k,), (mean, std, count), map or None)`.
#[pyfunction]
#[pyo3(signature = (a, b, pad, taper, filter, method, n_peaks, min_sep, max_shift, return_map, n_threads=None))]
#[allow(clippy::too_many_arguments)]
fn correlate_f32<'py>(
    py: Python<'py>,
    a: PyReadonlyArray2<'py, f32>,
    b: PyReadonlyArray2<'py, f32>,
    pad: (usize, usize),
    taper: f64,
    filter: (f64, f64, f64, f64),
    method: &str,
    n_peaks: usize,
    min_sep: f64,
    max_shift: f64,
    return_map: bool,
    n_threads: Option<usize>,
) -> PyResult<CorrOut<'py>> {
    let (av, bv) = (a.as_array(), b.as_array());
    let method = method.to_string();
    let f = filter_of(filter);
    let t = run_detached(py, move || {
        let m = method_of(&method)?;
        with_threads(n_threads, || {
            xcorr::correlate_translation(
                av, bv, pad, taper, &f, m, n_peaks, min_sep, max_shift, return_map,
            )
        })?
    })?;
    let mut peaks = Array2::<f64>::zeros((t.peaks.len(), 3));
    for (k, p) in t.peaks.iter().enumerate() {
        peaks[[k, 0]] = p.x;
        peaks[[k, 1]] = p.y;
        peaks[[k, 2]] = p.value as f64;
    }
    let norm = ndarray::Array1::from(t.normalized);
    Ok((
        peaks.into_pyarray(py),
        norm.into_pyarray(py),
        (t.stats.mean, t.stats.std, t.stats.count),
        t.map.map(|m| m.into_pyarray(py)),
    ))
}

/// A prepared reference search region (opaque; see `emgeom_kernels::crossmag::Reference`).
#[pyclass(frozen, module = "emgeom._core")]
struct CrossmagReference {
    inner: Arc<Reference>,
}

#[pymethods]
impl CrossmagReference {
    /// Padded correlation frame `(py, px)`.
    #[getter]
    fn pad(&self) -> (usize, usize) {
        self.inner.pad
    }
    /// Region size `(wy, wx)`.
    #[getter]
    fn region(&self) -> (usize, usize) {
        self.inner.region
    }
}

/// Prepare the reference region `image[y0:y0+wy, x0:x0+wx]` (may extend past the image).
#[pyfunction]
#[pyo3(signature = (image, origin, region, pad, taper, filter, method, n_threads=None))]
#[allow(clippy::too_many_arguments)]
fn crossmag_prepare<'py>(
    py: Python<'py>,
    image: PyReadonlyArray2<'py, f32>,
    origin: (isize, isize),
    region: (usize, usize),
    pad: (usize, usize),
    taper: f64,
    filter: (f64, f64, f64, f64),
    method: &str,
    n_threads: Option<usize>,
) -> PyResult<CrossmagReference> {
    let img = image.as_array();
    let method = method.to_string();
    let f = filter_of(filter);
    let r = run_detached(py, move || {
        let m = method_of(&method)?;
        with_threads(n_threads, || {
            crossmag::prepare_reference(img, origin, region, pad, taper, &f, m)
        })?
    })?;
    Ok(CrossmagReference { inner: Arc::new(r) })
}

type PointOut<'py> = (Bound<'py, PyArray2<f64>>, (f64, f64, usize), f64);

/// Evaluate search points: `affines` (n, 2, 3) map patch pixel (j, i) to moving (x, y).
/// `allowed` = (x0, x1, y0, y1, cx, cy, radius) in region pixels. Returns a list of
/// `(peaks (k, 6) [x, y, value, ccc, overlap, value_interp], (mean, std, count), mask_sum)` and the map of
/// the first point (or None).
#[pyfunction]
#[pyo3(signature = (reference, moving, affines, half, taper, allowed, n_peaks, min_sep, want_map, score_affines, refine_ccc=false, direct=None, n_threads=None))]
#[allow(clippy::too_many_arguments)]
fn crossmag_evaluate<'py>(
    py: Python<'py>,
    reference: &Bound<'py, CrossmagReference>,
    moving: PyReadonlyArray2<'py, f32>,
    affines: PyReadonlyArray3<'py, f64>,
    half: (usize, usize),
    taper: f64,
    allowed: (usize, usize, usize, usize, f64, f64, f64),
    n_peaks: usize,
    min_sep: f64,
    want_map: bool,
    score_affines: PyReadonlyArray3<'py, f64>,
    refine_ccc: bool,
    direct: Option<(f64, f64)>,
    n_threads: Option<usize>,
) -> PyResult<(Vec<PointOut<'py>>, Option<Bound<'py, PyArray2<f32>>>)> {
    let r = Arc::clone(&reference.get().inner);
    let mv = moving.as_array();
    let av = affines.as_array();
    let sv = score_affines.as_array();
    if av.shape()[1] != 2 || av.shape()[2] != 3 || sv.shape()[1] != 2 || sv.shape()[2] != 3 {
        return Err(pyo3::exceptions::PyValueError::new_err(format!(
            "affines/score_affines: expected shape (n, 2, 3), got {:?} / {:?}",
            av.shape(),
            sv.shape()
        )));
    }
    let to_affs = |v: ndarray::ArrayView3<f64>| -> Vec<Affine> {
        v.outer_iter()
            .map(|a| {
                [
                    [a[[0, 0]], a[[0, 1]], a[[0, 2]]],
                    [a[[1, 0]], a[[1, 1]], a[[1, 2]]],
                ]
            })
            .collect()
    };
    let affs = to_affs(av);
    let score_affs = to_affs(sv);
    let params = PatchParams {
        hy: half.0,
        hx: half.1,
        taper,
        allowed: Allowed {
            x0: allowed.0,
            x1: allowed.1,
            y0: allowed.2,
            y1: allowed.3,
            cx: allowed.4,
            cy: allowed.5,
            radius: allowed.6,
        },
        n_peaks,
        min_sep,
        score_affines: score_affs,
        refine_ccc,
        direct,
    };
    let results = run_detached(py, move || {
        with_threads(n_threads, || {
            crossmag::evaluate_points(&r, mv, &affs, &params, want_map)
        })?
    })?;
    let mut out = Vec::with_capacity(results.len());
    let mut map_out = None;
    for res in results {
        let mut pk = Array2::<f64>::zeros((res.peaks.len(), 6));
        for (k, p) in res.peaks.iter().enumerate() {
            pk[[k, 0]] = p.x;
            pk[[k, 1]] = p.y;
            pk[[k, 2]] = p.value as f64;
            pk[[k, 3]] = p.ccc;
            pk[[k, 4]] = p.overlap;
            pk[[k, 5]] = p.value_interp;
        }
        if let Some(m) = res.map {
            map_out = Some(m.into_pyarray(py));
        }
        out.push((
            pk.into_pyarray(py),
            (res.stats.mean, res.stats.std, res.stats.count),
            res.mask_sum,
        ));
    }
    Ok((out, map_out))
}

/// Forward model of the maximum-likelihood refinement: the fine image integrated over the
/// footprints of the coarse pixels of `box_ = (x0, y0, nx, ny)` at `pose = (tx, ty, s, theta_rad)`
/// (`center` = the fine point that lands on `(tx, ty)`, `k` x `k` samples per footprint).
/// Returns `(P (ny, nx), dP (4, ny, nx))`.
#[pyfunction]
#[pyo3(signature = (fine, pose, center, box_, k, n_threads=None))]
fn crossmag_area_predict<'py>(
    py: Python<'py>,
    fine: PyReadonlyArray2<'py, f32>,
    pose: (f64, f64, f64, f64),
    center: (f64, f64),
    box_: (i64, i64, usize, usize),
    k: usize,
    n_threads: Option<usize>,
) -> PyResult<(Bound<'py, PyArray2<f64>>, Bound<'py, PyArray3<f64>>)> {
    let src = fine.as_array();
    let p = Pose {
        tx: pose.0,
        ty: pose.1,
        s: pose.2,
        theta: pose.3,
    };
    let (a, d) = run_detached(py, move || {
        with_threads(n_threads, || {
            crossmag_refine::area_predict(src, p, center, box_, k)
        })?
    })?;
    Ok((a.into_pyarray(py), d.into_pyarray(py)))
}

/// [`crossmag_area_predict`] of a stack `(n, h, w)` of images at one pose, with only the
/// derivatives flagged in `derivs` (of `(tx, ty, s, theta)`). Returns `(n, 1 + n_d, ny, nx)`:
/// plane 0 the prediction, then the wanted derivatives in parameter order.
#[pyfunction]
#[pyo3(signature = (images, pose, center, box_, k, derivs, n_threads=None))]
#[allow(clippy::too_many_arguments)]
fn crossmag_area_predict_stack<'py>(
    py: Python<'py>,
    images: PyReadonlyArray3<'py, f32>,
    pose: (f64, f64, f64, f64),
    center: (f64, f64),
    box_: (i64, i64, usize, usize),
    k: usize,
    derivs: (bool, bool, bool, bool),
    n_threads: Option<usize>,
) -> PyResult<Bound<'py, PyArray4<f64>>> {
    let src = images.as_array();
    let p = Pose {
        tx: pose.0,
        ty: pose.1,
        s: pose.2,
        theta: pose.3,
    };
    let want = [derivs.0, derivs.1, derivs.2, derivs.3];
    let out = run_detached(py, move || {
        with_threads(n_threads, || {
            crossmag_refine::area_predict_stack(src, p, center, box_, k, want)
        })?
    })?;
    Ok(out.into_pyarray(py))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(rescale_separable_f32, m)?)?;
    m.add_function(wrap_pyfunction!(rescale_separable_f64, m)?)?;
    m.add_function(wrap_pyfunction!(rescale_fourier_f32, m)?)?;
    m.add_function(wrap_pyfunction!(correlate_f32, m)?)?;
    m.add_function(wrap_pyfunction!(crossmag_prepare, m)?)?;
    m.add_function(wrap_pyfunction!(crossmag_evaluate, m)?)?;
    m.add_function(wrap_pyfunction!(crossmag_area_predict, m)?)?;
    m.add_function(wrap_pyfunction!(crossmag_area_predict_stack, m)?)?;
    m.add_class::<CrossmagReference>()?;
    Ok(())
}
