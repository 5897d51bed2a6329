//! Shims for `emgeom_kernels::crossmag` (the patch search of cross-magnification alignment).

use std::sync::Arc;

use emgeom_kernels::crossmag::{self, PatchParams, Reference};
use ndarray::Array2;
use numpy::{IntoPyArray, PyArray2, PyReadonlyArray2, PyReadonlyArray3};
use pyo3::prelude::*;

use crate::common::{affines_of, kernel_error, run_parallel};
use crate::xcorr::{AllowedRegion, CorrelationSetup, PeakSearch};

/// One [`PointEval`] per point and the first point's correlation map (when `want_map`), of
/// [`crossmag_evaluate`].
type Evaluation<'py> = (Vec<PointEval>, Option<Bound<'py, PyArray2<f32>>>);

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

/// Prepare the reference region `image[y0:y0+wy, x0:x0+wx]` (`origin = (y0, x0)`,
/// `region = (wy, wx)`; may extend past the image) in the correlation frame of `setup`.
#[pyfunction]
#[pyo3(signature = (image, setup, *, origin, region, n_threads=None))]
fn crossmag_prepare<'py>(
    py: Python<'py>,
    image: PyReadonlyArray2<'py, f32>,
    setup: &Bound<'py, CorrelationSetup>,
    origin: (isize, isize),
    region: (usize, usize),
    n_threads: Option<usize>,
) -> PyResult<CrossmagReference> {
    let img = image.as_array();
    let s = setup.get();
    let (pad, taper, method) = (s.pad, s.taper, s.method);
    let f = s.filter.into();
    let r = run_parallel(py, n_threads, move || {
        crossmag::prepare_reference(img, origin, region, pad, taper, &f, method)
    })?;
    Ok(CrossmagReference { inner: Arc::new(r) })
}

/// Patch/search parameters shared by all points of a call (`crossmag::PatchParams`): patch
/// half-size `half = (hy, hx)`, soft-mask `taper` (px), the `allowed` peak positions, the
/// `peaks` kept, the `score_affines` `(m, 2, 3)` whose common footprint the CCC is measured
/// over, `refine_ccc` (refine the best peak on the real-space CCC) and `direct` (a known
/// position `(x, y)`: skip the correlation and only hill-climb the CCC from there).
#[pyclass(frozen, module = "emgeom._core")]
struct PatchSearch {
    inner: PatchParams,
}

#[pymethods]
impl PatchSearch {
    #[new]
    #[pyo3(signature = (*, half, taper, allowed, peaks, score_affines, refine_ccc=false, direct=None))]
    fn new(
        half: (usize, usize),
        taper: f64,
        allowed: AllowedRegion,
        peaks: PeakSearch,
        score_affines: PyReadonlyArray3<'_, f64>,
        refine_ccc: bool,
        direct: Option<(f64, f64)>,
    ) -> PyResult<Self> {
        let score_affines = affines_of(score_affines.as_array(), "score_affines")
            .map_err(|e| kernel_error(score_affines.py(), e))?;
        Ok(PatchSearch {
            inner: PatchParams {
                hy: half.0,
                hx: half.1,
                taper,
                allowed: allowed.into(),
                n_peaks: peaks.n_peaks,
                min_sep: peaks.min_separation,
                score_affines,
                refine_ccc,
                direct,
            },
        })
    }

    #[getter]
    fn half(&self) -> (usize, usize) {
        (self.inner.hy, self.inner.hx)
    }
    #[getter]
    fn refine_ccc(&self) -> bool {
        self.inner.refine_ccc
    }
    #[getter]
    fn direct(&self) -> Option<(f64, f64)> {
        self.inner.direct
    }
}

/// One evaluated search point (`crossmag::PointResult`).
#[pyclass(frozen, module = "emgeom._core", get_all)]
struct PointEval {
    /// `(k, 6)`: rows `(x, y, value, ccc, overlap, value_interp)`, best first.
    peaks: Py<PyArray2<f64>>,
    map_mean: f64,
    map_std: f64,
    map_count: usize,
    /// Σ of the patch mask weights (0 means an empty patch).
    mask_sum: f64,
}

/// Evaluate search points: `affines` `(n, 2, 3)` map patch pixel `(j, i)` to moving `(x, y)`.
/// Returns one [`PointEval`] per point and the correlation map of the first point (when
/// `want_map`).
#[pyfunction]
#[pyo3(signature = (reference, moving, affines, search, *, want_map=false, n_threads=None))]
fn crossmag_evaluate<'py>(
    py: Python<'py>,
    reference: &Bound<'py, CrossmagReference>,
    moving: PyReadonlyArray2<'py, f32>,
    affines: PyReadonlyArray3<'py, f64>,
    search: &Bound<'py, PatchSearch>,
    want_map: bool,
    n_threads: Option<usize>,
) -> PyResult<Evaluation<'py>> {
    let r = Arc::clone(&reference.get().inner);
    let mv = moving.as_array();
    let affs = affines_of(affines.as_array(), "affines").map_err(|e| kernel_error(py, e))?;
    let params = &search.get().inner;
    let results = run_parallel(py, n_threads, move || {
        crossmag::evaluate_points(&r, mv, &affs, params, want_map)
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
        out.push(PointEval {
            peaks: pk.into_pyarray(py).unbind(),
            map_mean: res.stats.mean,
            map_std: res.stats.std,
            map_count: res.stats.count,
            mask_sum: res.mask_sum,
        });
    }
    Ok((out, map_out))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(crossmag_prepare, m)?)?;
    m.add_function(wrap_pyfunction!(crossmag_evaluate, m)?)?;
    m.add_class::<CrossmagReference>()?;
    m.add_class::<PatchSearch>()?;
    m.add_class::<PointEval>()?;
    Ok(())
}
