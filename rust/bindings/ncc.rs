//! Shims for `emgeom_kernels::ncc` (masked normalised cross-correlation, Padfield 2012).

use emgeom_kernels::ncc;
use ndarray::Array2;
use numpy::{IntoPyArray, PyArray2, PyReadonlyArray2};
use pyo3::prelude::*;

use crate::common::run_parallel;
use crate::xcorr::PeakSearch;

/// The result of [`masked_ncc`] (`ncc::MaskedNcc` and its peaks).
#[pyclass(frozen, module = "emgeom._core", get_all)]
struct MaskedNcc {
    /// `(k, 4)`: rows `(dx, dy, ncc, overlap_fraction)`, best first.
    peaks: Py<PyArray2<f64>>,
    map_mean: f64,
    map_std: f64,
    /// Number of displacements with enough overlap.
    n_valid: usize,
    ncc_map: Py<PyArray2<f32>>,
    overlap_map: Py<PyArray2<f32>>,
    /// Map index `(iy, ix)` of zero displacement.
    origin: (usize, usize),
}

/// Masked NCC of float32 `reference` and `moving` over every displacement of the "full" mode,
/// displacements with less than `min_overlap` of the smaller mask's weight excluded.
#[pyfunction]
#[pyo3(signature = (reference, moving, peaks, *, reference_mask=None, moving_mask=None, min_overlap, n_threads=None))]
fn masked_ncc<'py>(
    reference: PyReadonlyArray2<'py, f32>,
    moving: PyReadonlyArray2<'py, f32>,
    peaks: PeakSearch,
    reference_mask: Option<PyReadonlyArray2<'py, f32>>,
    moving_mask: Option<PyReadonlyArray2<'py, f32>>,
    min_overlap: f64,
    n_threads: Option<usize>,
) -> PyResult<MaskedNcc> {
    let py = reference.py();
    let a = reference.as_array();
    let b = moving.as_array();
    let ma = reference_mask.as_ref().map(|m| m.as_array());
    let mb = moving_mask.as_ref().map(|m| m.as_array());
    let (res, found, stats) = run_parallel(py, n_threads, move || {
        let res = ncc::masked_ncc(a, ma, b, mb, min_overlap)?;
        let (found, stats) = ncc::ncc_peaks(&res, peaks.n_peaks, peaks.min_separation);
        Ok((res, found, stats))
    })?;
    let mut p = Array2::<f64>::zeros((found.len(), 4));
    for (k, q) in found.iter().enumerate() {
        p[[k, 0]] = q.dx;
        p[[k, 1]] = q.dy;
        p[[k, 2]] = q.value as f64;
        p[[k, 3]] = q.overlap as f64;
    }
    Ok(MaskedNcc {
        peaks: p.into_pyarray(py).unbind(),
        map_mean: stats.mean,
        map_std: stats.std,
        n_valid: stats.count,
        ncc_map: res.ncc.into_pyarray(py).unbind(),
        overlap_map: res.overlap.into_pyarray(py).unbind(),
        origin: res.origin,
    })
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(masked_ncc, m)?)?;
    m.add_class::<MaskedNcc>()?;
    Ok(())
}
