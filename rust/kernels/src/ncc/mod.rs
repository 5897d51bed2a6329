//! Masked normalised cross-correlation (NCC) in the Fourier domain.
//!
//! Algorithm: D. Padfield, "Masked object registration in the Fourier domain", IEEE Trans. Image
//! Process. 21(5):2706–2718 (2012), doi:10.1109/TIP.2011.2181402 — the algorithm of
//! scikit-image's `skimage/registration/_masked_phase_cross_correlation.py :
//! cross_correlate_masked` (read, not copied; used as a test peer).
//!
//! For every integer displacement `d = (dx, dy)` the value is the Pearson correlation of the two
//! images over the overlap of their masks, with weights `w(x) = Ma(x)·Mb(x − d)` (mask values in
//! `[0, 1]`; soft masks act as weights):
//!
//! ```text
//! O   = Σ w          Sa  = Σ w·a(x)       Sb  = Σ w·b(x − d)
//! Saa = Σ w·a(x)²    Sbb = Σ w·b(x − d)²  Sab = Σ w·a(x)·b(x − d)
//! ncc = (Sab − Sa·Sb/O) / sqrt((Saa − Sa²/O)·(Sbb − Sb²/O))
//! ```
//!
//! Sign convention (the one of [`crate::xcorr`]): the map peaks at the displacement `d` for which
//! `a(x) ≈ b(x − d)`, i.e. the content of `b` moved by `+d` lands on `a`.
//!
//! Linear (non-circular) correlation: both images are placed at the origin of a frame padded to
//! a 2,3,5-smooth size ≥ `ny_a + ny_b − 1` (and x likewise), so every displacement of the
//! "full" mode, `−(n_b − 1) ≤ d ≤ n_a − 1` per axis, is represented exactly once. The output map
//! has shape `(ny_a + ny_b − 1, nx_a + nx_b − 1)`; index `(i, j)` holds
//! `d = (j − (nx_b − 1), i − (ny_b − 1))` (the indexing of `scipy.signal.correlate(a, b, "full")`
//! and of scikit-image's full mode).
//!
//! Terms: with masks on both sides the six sums are FFT correlations (`Ma⋆Mb`, `(Ma·a)⋆Mb`,
//! `Ma⋆(Mb·b)`, `(Ma·a²)⋆Mb`, `Ma⋆(Mb·b²)`, `(Ma·a)⋆(Mb·b)`: 6 forward + 6 inverse transforms).
//! A side without mask (or with an all-ones mask) is a box, and every term correlating the other
//! side with it is a rectangle sum of that other side over the overlap, read from f64 integral
//! images: 4 + 3 transforms with one mask, 2 + 1 with none.
//!
//! Numerics: the correlations are f32 FFTs ([`crate::fft`], cached plans). Padfield's
//! numerator and denominators are differences of large, nearly equal sums when the images carry
//! an offset (cryo-EM counts ~1e4 with a small signal). We therefore (1) subtract each image's
//! global weighted mean and divide by its largest deviation (computed in f64) before the
//! transforms — NCC is invariant to both, and the transformed quantities are then O(1) and
//! zero-mean — and (2) form the differences in f64. The remaining error of the f32 transforms is
//! about 1e-6 of each image's total energy `E = Σ M·ã²`; a local variance at or below
//! [`VAR_FLOOR`]·E (flat regions, constant images) gives NCC 0, never inf/NaN.
//!
//! Minimum overlap: displacements whose overlap weight `O` is below
//! `max(min_overlap·min(ΣMa, ΣMb), 1e-5·max(ΣMa, ΣMb))` (a tolerance of `1e-6·max(ΣMa, ΣMb)`
//! absorbs transform rounding, so integer thresholds of binary masks are inclusive) are invalid:
//! value 0, never a peak. Overlaps, thresholds and floors are evaluated with each mask scaled to
//! a maximum of 1 (a constant factor on a mask changes nothing); the overlap fraction is
//! `O / min(ΣMa, ΣMb)` in those units.
//!
//! Threads: every transform and reduction is split in a fixed way, so the result is
//! bit-identical for any thread count.
//!
//! Files, by concern: `side` (one image and its mask: validated statistics, normalisation and
//! f64 integral images), `terms` (the forward transforms and the FFT correlations of the NCC
//! terms), `fill` (validity limits and the NCC and overlap maps, row by row), `peaks` (local
//! maxima among valid positions, with sub-pixel offsets), and this file (arguments and the
//! driver [`masked_ncc`]); `tests`.

use ndarray::{Array2, ArrayView2};

use crate::fft;
use crate::xcorr::MapStats;
use crate::KernelError;

mod fill;
mod peaks;
mod side;
mod terms;

#[cfg(test)]
mod tests;

pub use peaks::{ncc_peaks, NccPeak};

use fill::{Limits, RowFill};
use side::Side;
use terms::correlation_terms;

/// Local variances at or below `VAR_FLOOR` × the image's total (normalised) energy count as flat:
/// the NCC there is 0. About 10× the relative error of the f32 transforms.
pub const VAR_FLOOR: f64 = 1e-5;
/// Overlaps below `MIN_OVERLAP_ABS` × the larger mask sum are always invalid (transform noise).
pub const MIN_OVERLAP_ABS: f64 = 1e-5;
/// Tolerance on the overlap threshold, × the larger mask sum.
pub const OVERLAP_TOL: f64 = 1e-6;

/// Result of [`masked_ncc`].
#[derive(Debug, Clone)]
pub struct MaskedNcc {
    /// NCC in `[−1, 1]`, shape `(ny_a + ny_b − 1, nx_a + nx_b − 1)`; 0 at invalid positions.
    pub ncc: Array2<f32>,
    /// Overlap weight `O` divided by `min(ΣMa, ΣMb)`, masks scaled to a maximum of 1 (same
    /// shape).
    pub overlap: Array2<f32>,
    /// Index `(iy, ix)` of displacement zero: `(ny_b − 1, nx_b − 1)`.
    pub origin: (usize, usize),
    /// A position is valid iff `overlap ≥ valid_fraction` (compared as f64 of the f32 map).
    pub valid_fraction: f64,
    /// Padded FFT frame `(py, px)`.
    pub pad: (usize, usize),
    /// Mean and standard deviation of the NCC over the valid positions (and their count).
    pub stats: MapStats,
}

fn check_mask(
    what: &'static str,
    img: (usize, usize),
    m: Option<&[f32]>,
    mdim: Option<(usize, usize)>,
) -> Result<(), KernelError> {
    if let (Some(m), Some(md)) = (m, mdim) {
        if md != img {
            return Err(KernelError::shape(
                what,
                format!("{img:?} (the shape of its image)"),
                format!("{md:?}"),
            ));
        }
        if m.iter().any(|v| !(0.0..=1.0).contains(v)) {
            return Err(KernelError::value(
                what,
                "values must be finite and in [0, 1]",
            ));
        }
    }
    Ok(())
}

/// The elements of a view in row-major order (borrowed when already contiguous).
fn contiguous(v: ArrayView2<'_, f32>) -> std::borrow::Cow<'_, [f32]> {
    match v.to_slice() {
        Some(s) => std::borrow::Cow::Borrowed(s),
        None => std::borrow::Cow::Owned(v.iter().copied().collect()),
    }
}

/// Checks `min_overlap` and that both images are non-empty.
fn check_args(da: (usize, usize), db: (usize, usize), min_overlap: f64) -> Result<(), KernelError> {
    if !(0.0..=1.0).contains(&min_overlap) {
        return Err(KernelError::value(
            "min_overlap",
            format!("expected a number in [0, 1], got {min_overlap}"),
        ));
    }
    if da.0 == 0 || da.1 == 0 || db.0 == 0 || db.1 == 0 {
        return Err(KernelError::shape(
            "images",
            "non-empty (ny, nx) arrays",
            format!("{da:?} and {db:?}"),
        ));
    }
    Ok(())
}

/// Masked NCC of `a` (reference) and `b` (moving) for every displacement of the "full" mode.
///
/// `ma`, `mb`: optional masks (same shape as their image, values in `[0, 1]`, not all zero;
/// `None` = all ones). `min_overlap` in `[0, 1]`: fraction of the smaller mask sum below which
/// a displacement is invalid (value 0). See the module documentation for the conventions.
pub fn masked_ncc(
    a: ArrayView2<f32>,
    ma: Option<ArrayView2<f32>>,
    b: ArrayView2<f32>,
    mb: Option<ArrayView2<f32>>,
    min_overlap: f64,
) -> Result<MaskedNcc, KernelError> {
    let (da, db) = (a.dim(), b.dim());
    check_args(da, db, min_overlap)?;
    let sa = contiguous(a);
    let sb = contiguous(b);
    let ca = ma.map(contiguous);
    let cb = mb.map(contiguous);
    check_mask("reference_mask", da, ca.as_deref(), ma.map(|m| m.dim()))?;
    check_mask("moving_mask", db, cb.as_deref(), mb.map(|m| m.dim()))?;
    let side_a = Side::new("reference", &sa[..], ca.as_deref(), da)?;
    let side_b = Side::new("moving", &sb[..], cb.as_deref(), db)?;

    let (fy, fx) = (da.0 + db.0 - 1, da.1 + db.1 - 1);
    let (py, px) = (fft::nice_size(fy), fft::nice_size(fx));
    let plan = fft::plan(py, px)?;
    let terms = correlation_terms(&plan, &side_a, &side_b);
    let ia = side_b.mask.is_none().then(|| side_a.integral());
    let ib = side_a.mask.is_none().then(|| side_b.integral());
    let lim = Limits::new(&side_a.prep, &side_b.prep, min_overlap);
    let fill = RowFill {
        terms: &terms,
        ia: ia.as_ref(),
        ib: ib.as_ref(),
        lim: &lim,
        pad: (py, px),
        da,
        db,
    };
    let (ncc, overlap, stats) = fill.maps((fy, fx));
    Ok(MaskedNcc {
        ncc,
        overlap,
        origin: (db.0 - 1, db.1 - 1),
        valid_fraction: lim.valid_fraction,
        pad: (py, px),
        stats,
    })
}
