//! Shims for `emgeom_kernels::ncc` (masked normalised cross-correlation, Padfield 2012).

use emgeom_kernels::ncc;
use emgeom_kernels::parallel::with_threads;
use ndarray::Array2;
use numpy::{IntoPyArray, PyArray2, PyReadonlyArray2};
use pyo3::prelude::*;

use crate::common::run_detached;

type NccOut<'py> = (
    Bound<'py, PyArray2<f64>>,
    (f64, f64, usize),
    Bound<'py, PyArray2<f32>>,
    Bound<'py, PyArray2<f32>>,
    (usize, usize),
);

/// Masked NCC of `reference` and `moving` (float32) over every displacement of the "full" mode.
///
/// Returns `(peaks, (map_mean, map_std, n_valid), ncc_map, overlap_map, origin)`: `peaks` is
/// `(k, 4)` with rows `(dx, dy, ncc, overlap_fraction)`, best first; `origin = (iy, ix)` is the
/// map index of zero displacement.
#[pyfunction]
#[pyo3(signature = (reference, reference_mask, moving, moving_mask, min_overlap, n_peaks, min_separation, n_threads=None))]
#[allow(clippy::too_many_arguments)]
fn masked_ncc_f32<'py>(
    py: Python<'py>,
    reference: PyReadonlyArray2<'py, f32>,
    reference_mask: Option<PyReadonlyArray2<'py, f32>>,
    moving: PyReadonlyArray2<'py, f32>,
    moving_mask: Option<PyReadonlyArray2<'py, f32>>,
    min_overlap: f64,
    n_peaks: usize,
    min_separation: f64,
    n_threads: Option<usize>,
) -> PyResult<NccOut<'py>> {
    let a = reference.as_array();
    let b = moving.as_array();
    let ma = reference_mask.as_ref().map(|m| m.as_array());
    let mb = moving_mask.as_ref().map(|m| m.as_array());
    let (res, peaks, stats) = run_detached(py, move || {
        with_threads(n_threads, || {
            let res = ncc::masked_ncc(a, ma, b, mb, min_overlap)?;
            let (peaks, stats) = ncc::ncc_peaks(&res, n_peaks, min_separation);
            Ok((res, peaks, stats))
        })?
    })?;
    let mut p = Array2::<f64>::zeros((peaks.len(), 4));
    for (k, q) in peaks.iter().enumerate() {
        p[[k, 0]] = q.dx;
        p[[k, 1]] = q.dy;
        p[[k, 2]] = q.value as f64;
        p[[k, 3]] = q.overlap as f64;
    }
    Ok((
        p.into_pyarray(py),
        (stats.mean, stats.std, stats.count),
        res.ncc.into_pyarray(py),
        res.overlap.into_pyarray(py),
        res.origin,
    ))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(masked_ncc_f32, m)?)?;
    Ok(())
}
