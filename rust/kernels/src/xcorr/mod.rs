//! Filtered cross-correlation: taper and pad, the IMOD four-parameter radial filter,
//! unnormalised cross-correlation or phase correlation, top-k peaks with parabolic sub-pixel
//! refinement.
//!
//! Correlation convention: `C(d) = Σ_x a(x)·b(x − d)` (circular over the padded frame). It peaks
//! at the displacement `d = (dx, dy)` for which `a(x) ≈ b(x − d)`, i.e. the content of `b` moved
//! by `+d` lands on `a`. This is the sign of `cv2.phaseCorrelate(b, a)` and minus the value
//! returned by `skimage.registration.phase_cross_correlation(a, b)` (which returns the
//! correction, in (row, col) order).
//!
//! Filter (IMOD `libcfshr/filtxcorr.c : XCorrSetCTFnoScl`, the filter of tiltxcorr, xfalign and
//! SerialEM's AutoAlign), with `s` the spatial frequency in cycles/pixel:
//! * low-pass/band part: 1 for `r1 ≤ s ≤ r2`, `exp(−(s − r)²/(2σ2²))` outside (`r` = nearest of
//!   `r1, r2`; only the `r2` side if `r1 < 0`); inverted (`1 − ·`) when `σ2 < 0`;
//! * high-pass part (multiplied): `1 − exp(−(s − |r1|)²/(2σ1²))` for `σ1 > 0` (0 below `|r1|` when
//!   `r1 < 0`), or `s²·exp(−s²/(2σ1²))` normalised to a maximum of 1 for `σ1 < 0`;
//! * a σ of 0 switches its part off; both 0 = no filtering; values < 1e-6 become 0.
//!
//! Unlike IMOD we evaluate the formula exactly at each frequency (no 1-D table with nearest-entry
//! lookup) and do not rescale the filter to a mean of 1 (`XCorrSetCTF` does; the scale cancels
//! in every normalised quantity we report).

//!
//! Files, by concern: `filter` (the IMOD filter and its cached tables), `spectrum` (taper and
//! pad, the tapered spectra, the cross-power spectrum and the correlation map), `peaks` (peak
//! types, sub-pixel offsets, the top-`n` separated peaks), `scan` (the parallel candidate scan
//! of a rolled map and the map statistics), and this file (the translation correlation that
//! drives them); `tests`.

use ndarray::{Array2, ArrayView2};

use crate::fft;
use crate::KernelError;

mod filter;
mod peaks;
mod scan;
mod spectrum;

#[cfg(test)]
mod tests;

pub use crate::window::{ramp, taper_1d};
pub use filter::{apply_filter, filter_table, FilterParams};
pub use peaks::{
    find_peaks, find_peaks_rolled, parabolic_offset, peak_offset, Allowed, MapStats, Peak,
};
pub use spectrum::{cross_power, taper_pad, Method};

use spectrum::{correlation_map, filtered_energy, tapered_spectrum};

/// Result of a translation correlation.
pub struct Translation {
    /// Peaks; `x, y` are signed displacements `d` (wrapped to `(−n/2, n/2]`).
    pub peaks: Vec<Peak>,
    /// Peak values divided by `sqrt(Σa'²·Σb'²)` of the filtered, tapered images (a global
    /// normalised correlation in [−1, 1]).
    pub normalized: Vec<f64>,
    pub stats: MapStats,
    /// The correlation map (padded frame, zero displacement at index (0, 0)), if requested.
    pub map: Option<Array2<f32>>,
    pub pad: (usize, usize),
}

/// Checks that `pad` holds both (non-empty) images.
fn check_pad(a: (usize, usize), b: (usize, usize), pad: (usize, usize)) -> Result<(), KernelError> {
    let (py, px) = pad;
    for (name, (ny, nx)) in [("reference", a), ("moving", b)] {
        if ny == 0 || nx == 0 || py < ny || px < nx {
            return Err(KernelError::shape(
                "pad",
                format!(">= non-empty {name} ({ny}, {nx})"),
                format!("{pad:?}"),
            ));
        }
    }
    Ok(())
}

/// Peaks of the map as signed displacements: searched in the wrapped frame, zero displacement
/// at the centre (a roll, not a copy), within `max_shift` of it if ≥ 0.
fn displacement_peaks(
    map: ArrayView2<f32>,
    n_peaks: usize,
    min_sep: f64,
    max_shift: f64,
) -> (Vec<Peak>, MapStats) {
    let (py, px) = map.dim();
    let (cy, cx) = (py / 2, px / 2);
    let mut allowed = Allowed::all(py, px);
    if max_shift >= 0.0 {
        allowed.cx = cx as f64;
        allowed.cy = cy as f64;
        allowed.radius = max_shift;
    }
    let (mut peaks, stats) = find_peaks_rolled(
        map,
        n_peaks,
        min_sep,
        &allowed,
        ((py - cy) % py, (px - cx) % px),
    );
    for p in peaks.iter_mut() {
        p.x -= cx as f64;
        p.y -= cy as f64;
    }
    (peaks, stats)
}

/// Translation between `a` and `b` (any shapes): both tapered (`taper` px cosine ramp, weighted
/// mean removed) into a common `pad` frame at the origin, correlated with `method` and filter
/// `f`; top `n_peaks` peaks at least `min_sep` apart (and within `max_shift` of zero if ≥ 0).
#[allow(clippy::too_many_arguments)]
pub fn correlate_translation(
    a: ArrayView2<f32>,
    b: ArrayView2<f32>,
    pad: (usize, usize),
    taper: f64,
    f: &FilterParams,
    method: Method,
    n_peaks: usize,
    min_sep: f64,
    max_shift: f64,
    return_map: bool,
) -> Result<Translation, KernelError> {
    f.check()?;
    check_pad(a.dim(), b.dim(), pad)?;
    let (py, px) = pad;
    let plan = fft::plan(py, px)?;
    // the transforms run one after the other, each parallel inside (measured faster than two
    // sequential transforms side by side on 2 cores)
    let mut fa = tapered_spectrum(&plan, a, taper);
    let fb = tapered_spectrum(&plan, b, taper);
    let (ea, eb) = if method == Method::XCorr {
        let va = ArrayView2::from_shape((plan.nxc, py), &fa[..]).expect("spectrum shape");
        let vb = ArrayView2::from_shape((plan.nxc, py), &fb[..]).expect("spectrum shape");
        rayon::join(
            || filtered_energy(va, py, px, f),
            || filtered_energy(vb, py, px, f),
        )
    } else {
        (0.0, 0.0)
    };
    let map = correlation_map(&plan, &mut fa, &fb, f, method);
    drop((fa, fb));
    let map = map?;
    let (peaks, stats) = displacement_peaks(map.view(), n_peaks, min_sep, max_shift);
    let norm = if method == Method::XCorr && ea > 0.0 && eb > 0.0 {
        1.0 / (ea * eb).sqrt()
    } else {
        0.0
    };
    let normalized = peaks.iter().map(|p| p.value as f64 * norm).collect();
    Ok(Translation {
        peaks,
        normalized,
        stats,
        map: if return_map {
            Some(map)
        } else {
            fft::POOL_F32.give(map.into_raw_vec_and_offset().0);
            None
        },
        pad,
    })
}
