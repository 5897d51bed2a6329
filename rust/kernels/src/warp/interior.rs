//! Sampling positions of an output row, the interior split and source prefetching.
//!
//! [`RowMap`] is the one place a position is computed (a multiply, then an add: never a fused
//! multiply-add), so every loop agrees on which pixels are interior.

/// The source image: `ny` rows of `nx` pixels, row-major (its sampling methods are in
/// `scalar.rs`; the AVX2 loops read it too).
pub(super) struct Source<'a, T> {
    pub(super) data: &'a [T],
    pub(super) nx: usize,
    pub(super) ny: usize,
}

/// The sampling positions of one output row: `sx = ax·x + bx`, `sy = ay·x + by`.
///
/// Every code path evaluates them with exactly this arithmetic (a multiply, then an add; never a
/// fused multiply-add), so the computed positions are monotone in `x`. That is what makes
/// [`interior_range`] sound: a predicate `lo <= s(x) < hi` that holds at both ends of a range of
/// `x` holds everywhere between.
#[derive(Clone, Copy)]
pub(super) struct RowMap {
    pub(super) ax: f64,
    pub(super) bx: f64,
    pub(super) ay: f64,
    pub(super) by: f64,
    /// Source position step from one output row to the next (used only to prefetch).
    pub(super) rx: f64,
    pub(super) ry: f64,
}

impl RowMap {
    #[inline(always)]
    pub(super) fn at(&self, xf: f64) -> (f64, f64) {
        (self.ax * xf + self.bx, self.ay * xf + self.by)
    }
}

/// The interior loops prefetch the source neighbourhood of the output pixel `PREFETCH_AHEAD`
/// columns and `PREFETCH_ROWS` rows ahead of the current one.
///
/// Near-identity maps with a shear walk the source in short diagonal segments (for a shear of
/// 0.01 a new source row every ~100 output pixels), which the hardware prefetchers do not
/// follow: without prefetching, the 4096² anisomag warp spent most of its time waiting on
/// memory. Values tuned on the issue-2 case (AMD EPYC, 2 cores): 0 rows → 1.74 ns/px bilinear
/// on one core, 2–4 rows → 1.43, 8 rows → 1.64.
const PREFETCH_AHEAD: f64 = 192.0;
const PREFETCH_ROWS: f64 = 4.0;

/// Prefetch `lines` consecutive cache lines of each of the `rows` source rows from
/// `floor(sy) - lo` of the stencil of the output pixel `PREFETCH_AHEAD` columns and
/// `PREFETCH_ROWS` rows ahead of `xf`. Only a cache hint: the
/// address is never dereferenced (prefetches do not fault), so it needs neither clamping nor
/// saturating casts.
#[inline(always)]
pub(super) fn prefetch_ahead<T>(
    data: &[T],
    nx: usize,
    map: &RowMap,
    xf: f64,
    lo: isize,
    rows: usize,
    lines: usize,
) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_cvttsd_si32, _mm_prefetch, _mm_set_sd, _MM_HINT_T0};
        let (sx, sy) = map.at(xf + PREFETCH_AHEAD);
        let (sx, sy) = (sx + PREFETCH_ROWS * map.rx, sy + PREFETCH_ROWS * map.ry);
        // Truncating conversions (i32::MIN when out of range): only a hint is derived from them.
        // SAFETY: SSE2 is part of the x86_64 baseline; these are pure register operations.
        let (ix, iy) = unsafe {
            (
                _mm_cvttsd_si32(_mm_set_sd(sx)),
                _mm_cvttsd_si32(_mm_set_sd(sy)),
            )
        };
        let i = (iy as isize - lo)
            .wrapping_mul(nx as isize)
            .wrapping_add(ix as isize);
        let p = data.as_ptr().wrapping_offset(i);
        // Cache lines of 64 bytes.
        let step = 64 / std::mem::size_of::<T>().max(1);
        for r in 0..rows {
            for l in 0..lines {
                let q = p.wrapping_add(r * nx + l * step);
                // SAFETY: _mm_prefetch (SSE, in the x86_64 baseline) has no architectural effect
                // and never faults, whatever the address; the pointer is not dereferenced.
                unsafe { _mm_prefetch::<_MM_HINT_T0>(q.cast::<i8>()) };
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (data, nx, map, xf, lo, rows, lines);
}

/// `[xs, xe)`: a range of output columns (of `width`) whose positions all satisfy
/// `lo <= sx < hx` and `lo <= sy < hy`. Found analytically, then verified (and shrunk if needed)
/// at both ends with the exact arithmetic of [`RowMap::at`]; since the computed positions are
/// monotone in `x`, the ends satisfying the predicate proves every column between does. Columns
/// outside the range take a slower general path, so an analytic estimate that is too small costs
/// a little speed but never correctness.
pub(super) fn interior_range(
    map: &RowMap,
    lo: f64,
    hx: f64,
    hy: f64,
    width: usize,
) -> (usize, usize) {
    let ok = |x: usize| {
        let (sx, sy) = map.at(x as f64);
        lo <= sx && sx < hx && lo <= sy && sy < hy
    };
    // Real interval of x with lo <= a·x + b < hi (approximately; verified below).
    let axis = |a: f64, b: f64, hi: f64| -> (f64, f64) {
        if a == 0.0 {
            if lo <= b && b < hi {
                (f64::NEG_INFINITY, f64::INFINITY)
            } else {
                (1.0, 0.0)
            }
        } else {
            let t1 = (lo - b) / a;
            let t2 = (hi - b) / a;
            (t1.min(t2), t1.max(t2))
        }
    };
    if width == 0 || hx <= lo || hy <= lo {
        return (0, 0);
    }
    let (lx, ux) = axis(map.ax, map.bx, hx);
    let (ly, uy) = axis(map.ay, map.by, hy);
    let first = lx.max(ly).max(0.0).ceil();
    let last = ux.min(uy).min((width - 1) as f64).floor();
    // (NaN cannot occur for finite maps, but would also mean "empty".)
    if first.is_nan() || last.is_nan() || first > last {
        return (0, 0);
    }
    // Both are finite integers in [0, width-1] here.
    let (mut xs, mut xe) = (first as usize, last as usize + 1);
    while xs < xe && !ok(xs) {
        xs += 1;
    }
    while xe > xs && !ok(xe - 1) {
        xe -= 1;
    }
    (xs, xe)
}

/// The SIMD loops compute positions in f32 relative to an exact f64 anchor every 16 pixels
/// (error ~2e-6 px, see `super::avx2::positions`); they only run where every position is at least this
/// far inside the interior, so their floor() agrees with the exact one up to the fraction
/// rounding and their index clamps never engage.
pub(super) const SIMD_MARGIN: f64 = 1e-3;

/// Largest |∂s/∂x| (source pixels per output pixel) the SIMD loops accept (16× minification).
pub(super) const SIMD_MAX_STEP: f64 = 16.0;
