//! Affine resampling of images: `out[y, x] = src(A · (x, y, 1))`.
//!
//! `A` is the 2×3 matrix that maps an *output* pixel position `(x, y)` to the *input* position
//! where it is sampled (the "inverse map" of OpenCV's `WARP_INVERSE_MAP`, or the `matrix`/`offset`
//! of `scipy.ndimage.affine_transform` with the axes swapped to `(x, y)`). Pixel centres are on
//! integer indices. Anisotropic-magnification correction, cross-magnification warps and rotations
//! are all this one kernel with different matrices.
//!
//! Interpolation:
//! * [`Interpolation::Linear`] — bilinear.
//! * [`Interpolation::Cubic`] — Keys' cubic convolution with `a = -0.5` (Catmull–Rom; Keys 1981,
//!   IEEE TASSP 29:1153), the interpolating bicubic that reproduces quadratics exactly. Note that
//!   OpenCV's `INTER_CUBIC` uses `a = -0.75` and scipy's `order=3` is a cubic B-spline with
//!   prefilter, so neither is bit-identical to this; `emgeom.reference.warp_affine` is.
//!
//! Samples whose position falls outside `[0, n-1]` on either axis take the fill value (a constant
//! or the source image's mean). Positions inside use edge-clamped neighbours, so the output has no
//! seam and never contains NaN unless the input does.
//!
//! Implementation: each output row is split into edge columns (general per-pixel path, the
//! semantics above) and an interior range whose whole stencil lies inside the image (found
//! analytically, verified with the exact position arithmetic), which runs a branch-free loop
//! monomorphised per interpolation kind — for `f32` on x86-64 with AVX2 + FMA, 8-pixel SIMD
//! loops (positions within ~2e-5 px, results within f32 rounding of the scalar path); f64 stays
//! scalar and bit-identical to the general path. Source data is software-prefetched ahead of the
//! loop (sheared near-identity maps defeat the hardware prefetchers).

use ndarray::{ArrayView2, ArrayView3, ArrayViewMut2, ArrayViewMut3, Axis};
use num_traits::Float;
use rayon::prelude::*;

use crate::KernelError;

/// Floating-point pixel types the kernels accept (`f32`, `f64`).
pub trait Sample: Float + Send + Sync + 'static + std::iter::Sum {
    fn of_f64(v: f64) -> Self;
    fn as_f64(self) -> f64;
}

impl Sample for f32 {
    #[inline(always)]
    fn of_f64(v: f64) -> Self {
        v as f32
    }
    #[inline(always)]
    fn as_f64(self) -> f64 {
        self as f64
    }
}

impl Sample for f64 {
    #[inline(always)]
    fn of_f64(v: f64) -> Self {
        v
    }
    #[inline(always)]
    fn as_f64(self) -> f64 {
        self
    }
}

/// Interpolation kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interpolation {
    /// Bilinear (order 1).
    Linear,
    /// Keys cubic convolution, a = −0.5 (order 3).
    Cubic,
}

impl Interpolation {
    /// `1` → linear, `3` → cubic.
    pub fn from_order(order: u32) -> Result<Self, KernelError> {
        match order {
            1 => Ok(Interpolation::Linear),
            3 => Ok(Interpolation::Cubic),
            _ => Err(KernelError::value(
                "order",
                format!("must be 1 (bilinear) or 3 (bicubic), got {order}"),
            )),
        }
    }
}

/// What samples outside the source image become.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Fill {
    /// A constant.
    Value(f64),
    /// The arithmetic mean of the source image (computed in f64).
    Mean,
}

/// 2×3 map from output pixel `(x, y)` to input pixel `(x, y)`.
pub type Affine = [[f64; 3]; 2];

/// Positions this far outside `[0, n-1]` still count as inside (absorbs rounding in `A`).
const EDGE_TOLERANCE: f64 = 1e-6;

/// Arithmetic mean of an image, accumulated in f64 (chunks in parallel, 8 partial sums each so
/// the additions pipeline and vectorise instead of forming one long dependency chain).
pub fn mean<T: Sample>(img: ArrayView2<T>) -> f64 {
    let n = img.len();
    if n == 0 {
        return 0.0;
    }
    let total: f64 = match img.as_slice_memory_order() {
        Some(data) => data.par_chunks(1 << 16).map(sum_f64).sum(),
        None => img
            .axis_iter(Axis(0))
            .into_par_iter()
            .map(|row| match row.as_slice() {
                Some(s) => sum_f64(s),
                None => row.iter().map(|v| v.as_f64()).sum::<f64>(),
            })
            .sum(),
    };
    total / n as f64
}

/// Sum in f64 with 8 independent accumulators.
fn sum_f64<T: Sample>(s: &[T]) -> f64 {
    let mut acc = [0.0f64; 8];
    let mut chunks = s.chunks_exact(8);
    for c in &mut chunks {
        for (a, v) in acc.iter_mut().zip(c) {
            *a += v.as_f64();
        }
    }
    let tail: f64 = chunks.remainder().iter().map(|v| v.as_f64()).sum();
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail
}

#[inline(always)]
fn keys_weights<T: Sample>(t: T) -> [T; 4] {
    let half = T::of_f64(0.5);
    let one_half = T::of_f64(1.5);
    let two = T::of_f64(2.0);
    let two_half = T::of_f64(2.5);
    let t2 = t * t;
    let t3 = t2 * t;
    [
        -half * t3 + t2 - half * t,
        one_half * t3 - two_half * t2 + T::one(),
        -one_half * t3 + two * t2 + half * t,
        half * t3 - half * t2,
    ]
}

/// Keys cubic kernel value at distance `s` (a = −0.5); used by the slow edge path and tests.
#[inline]
pub fn keys_kernel(s: f64) -> f64 {
    let s = s.abs();
    if s < 1.0 {
        1.5 * s * s * s - 2.5 * s * s + 1.0
    } else if s < 2.0 {
        -0.5 * s * s * s + 2.5 * s * s - 4.0 * s + 2.0
    } else {
        0.0
    }
}

struct Source<'a, T> {
    data: &'a [T],
    nx: usize,
    ny: usize,
}

impl<T: Sample> Source<'_, T> {
    #[inline(always)]
    fn clamped(&self, x: isize, y: isize) -> T {
        let xi = x.clamp(0, self.nx as isize - 1) as usize;
        let yi = y.clamp(0, self.ny as isize - 1) as usize;
        self.data[yi * self.nx + xi]
    }

    /// General bilinear sample (any position already clamped to `[0, n-1]`); edge path.
    #[inline(always)]
    fn linear(&self, sx: f64, sy: f64) -> T {
        // Callers clamp sx, sy to [0, n-1], so truncation is floor (and avoids a libm call).
        let x0f = (sx as usize) as f64;
        let y0f = (sy as usize) as f64;
        let fx = T::of_f64(sx - x0f);
        let fy = T::of_f64(sy - y0f);
        let (x0, y0) = (x0f as isize, y0f as isize);
        let v00 = self.clamped(x0, y0);
        let v01 = self.clamped(x0 + 1, y0);
        let v10 = self.clamped(x0, y0 + 1);
        let v11 = self.clamped(x0 + 1, y0 + 1);
        let top = v00 + (v01 - v00) * fx;
        let bottom = v10 + (v11 - v10) * fx;
        top + (bottom - top) * fy
    }

    /// General Keys-cubic sample (position already clamped to `[0, n-1]`); edge path.
    #[inline(always)]
    fn cubic(&self, sx: f64, sy: f64) -> T {
        let x0f = (sx as usize) as f64;
        let y0f = (sy as usize) as f64;
        let wx = keys_weights(T::of_f64(sx - x0f));
        let wy = keys_weights(T::of_f64(sy - y0f));
        let (x0, y0) = (x0f as isize, y0f as isize);
        let mut acc = T::zero();
        for (r, &w_row) in wy.iter().enumerate() {
            let yy = y0 - 1 + r as isize;
            let mut v = T::zero();
            for (c, &w_col) in wx.iter().enumerate() {
                v = v + w_col * self.clamped(x0 - 1 + c as isize, yy);
            }
            acc = acc + w_row * v;
        }
        acc
    }
}

fn check_affine(affine: &Affine) -> Result<(), KernelError> {
    if affine.iter().flatten().all(|v| v.is_finite()) {
        Ok(())
    } else {
        Err(KernelError::value(
            "affine",
            "all six entries must be finite",
        ))
    }
}

/// The sampling positions of one output row: `sx = ax·x + bx`, `sy = ay·x + by`.
///
/// Every code path evaluates them with exactly this arithmetic (a multiply, then an add; never a
/// fused multiply-add), so the computed positions are monotone in `x`. That is what makes
/// [`interior_range`] sound: a predicate `lo <= s(x) < hi` that holds at both ends of a range of
/// `x` holds everywhere between.
#[derive(Clone, Copy)]
struct RowMap {
    ax: f64,
    bx: f64,
    ay: f64,
    by: f64,
    /// Source position step from one output row to the next (used only to prefetch).
    rx: f64,
    ry: f64,
}

impl RowMap {
    #[inline(always)]
    fn at(&self, xf: f64) -> (f64, f64) {
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

/// Prefetch the `rows` source rows from `floor(sy) - lo` of the stencil of the output pixel
/// `PREFETCH_AHEAD` columns and `PREFETCH_ROWS` rows ahead of `xf`. Only a cache hint: the
/// address is never dereferenced (prefetches do not fault), so it needs neither clamping nor
/// saturating casts.
#[inline(always)]
fn prefetch_ahead<T>(data: &[T], nx: usize, map: &RowMap, xf: f64, lo: isize, rows: usize) {
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
        for r in 0..rows {
            // SAFETY: _mm_prefetch (SSE, in the x86_64 baseline) has no architectural effect and
            // never faults, whatever the address; the pointer is not dereferenced.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(r * nx).cast::<i8>()) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (data, nx, map, xf, lo, rows);
}

/// Interpolation kind as a type, so that each kind gets its own monomorphised row loop.
trait Kind {
    /// Interior = positions with `LO <= s < n - 1 - HI_MARGIN` on both axes, where the whole
    /// stencil (`floor(s) - LO ..= floor(s) + 1 + HI_MARGIN`) lies inside the image.
    const LO: f64;
    const HI_MARGIN: f64;
    /// Edge path: any position already clamped to `[0, n-1]`.
    fn sample_edge<T: Sample>(src: &Source<'_, T>, sx: f64, sy: f64) -> T;
    /// Interior path for the output pixels `out`, whose first pixel is at `x = x_start`.
    /// Caller guarantees every position of the range is interior (see [`interior_range`]).
    fn interior<T: Sample>(src: &Source<'_, T>, map: &RowMap, x_start: usize, out: &mut [T]);
    /// The AVX2 version for `f32`, if the CPU has it; returns how many leading pixels it wrote.
    fn interior_simd(src: &Source<'_, f32>, map: &RowMap, x_start: usize, out: &mut [f32])
        -> usize;
}

struct Linear;
struct Cubic;

impl Kind for Linear {
    const LO: f64 = 0.0;
    const HI_MARGIN: f64 = 0.0;

    #[inline(always)]
    fn sample_edge<T: Sample>(src: &Source<'_, T>, sx: f64, sy: f64) -> T {
        src.linear(sx, sy)
    }

    #[inline(always)]
    fn interior<T: Sample>(src: &Source<'_, T>, map: &RowMap, x_start: usize, out: &mut [T]) {
        let nx = src.nx;
        let data = src.data;
        let mut xf = x_start as f64;
        for (k, o) in out.iter_mut().enumerate() {
            if k % 16 == 0 {
                prefetch_ahead(data, nx, map, xf, 0, 2);
            }
            let (sx, sy) = map.at(xf);
            debug_assert!((0.0..(nx - 1) as f64).contains(&sx));
            debug_assert!((0.0..(src.ny - 1) as f64).contains(&sy));
            // SAFETY: interior (checked by `interior_range` with this same arithmetic) means
            // 0 <= sx < nx-1 and 0 <= sy < ny-1, finite and far inside i64's range.
            let (x0, y0) = unsafe { (sx.to_int_unchecked::<i64>(), sy.to_int_unchecked::<i64>()) };
            let fx = T::of_f64(sx - x0 as f64);
            let fy = T::of_f64(sy - y0 as f64);
            let i = y0 as usize * nx + x0 as usize;
            // SAFETY: 0 <= x0 <= nx-2 and 0 <= y0 <= ny-2 (interior), so i, i+1, i+nx, i+nx+1
            // are all < nx*ny = data.len().
            let (v00, v01, v10, v11) = unsafe {
                (
                    *data.get_unchecked(i),
                    *data.get_unchecked(i + 1),
                    *data.get_unchecked(i + nx),
                    *data.get_unchecked(i + nx + 1),
                )
            };
            let top = v00 + (v01 - v00) * fx;
            let bottom = v10 + (v11 - v10) * fx;
            *o = top + (bottom - top) * fy;
            xf += 1.0;
        }
    }

    #[inline(always)]
    fn interior_simd(
        src: &Source<'_, f32>,
        map: &RowMap,
        x_start: usize,
        out: &mut [f32],
    ) -> usize {
        #[cfg(target_arch = "x86_64")]
        {
            if simd::available(src) {
                // SAFETY: `available` checked AVX2 and FMA at run time; the caller guarantees
                // the interior precondition (and the kernel clamps its indices anyway).
                return unsafe { simd::linear_f32(src, map, x_start, out) };
            }
        }
        let _ = (src, map, x_start, out);
        0
    }
}

impl Kind for Cubic {
    const LO: f64 = 1.0;
    const HI_MARGIN: f64 = 1.0;

    #[inline(always)]
    fn sample_edge<T: Sample>(src: &Source<'_, T>, sx: f64, sy: f64) -> T {
        src.cubic(sx, sy)
    }

    #[inline(always)]
    fn interior<T: Sample>(src: &Source<'_, T>, map: &RowMap, x_start: usize, out: &mut [T]) {
        let nx = src.nx;
        let data = src.data;
        let mut xf = x_start as f64;
        for (k, o) in out.iter_mut().enumerate() {
            if k % 16 == 0 {
                prefetch_ahead(data, nx, map, xf, 1, 4);
            }
            let (sx, sy) = map.at(xf);
            debug_assert!((1.0..(nx - 2) as f64).contains(&sx));
            debug_assert!((1.0..(src.ny - 2) as f64).contains(&sy));
            // SAFETY: interior means 1 <= sx < nx-2 and 1 <= sy < ny-2 (finite, in range).
            let (x0, y0) = unsafe { (sx.to_int_unchecked::<i64>(), sy.to_int_unchecked::<i64>()) };
            let wx = keys_weights(T::of_f64(sx - x0 as f64));
            let wy = keys_weights(T::of_f64(sy - y0 as f64));
            let base = (y0 as usize - 1) * nx + (x0 as usize - 1);
            let mut acc = T::zero();
            for (r, &w_row) in wy.iter().enumerate() {
                let start = base + r * nx;
                // SAFETY: 1 <= x0 <= nx-3 and 1 <= y0 <= ny-3 (interior), so the 4×4
                // neighbourhood rows y0-1..=y0+2, columns x0-1..=x0+2 lie inside the image.
                let s = unsafe { data.get_unchecked(start..start + 4) };
                let v = wx[0] * s[0] + wx[1] * s[1] + wx[2] * s[2] + wx[3] * s[3];
                acc = acc + w_row * v;
            }
            *o = acc;
            xf += 1.0;
        }
    }

    #[inline(always)]
    fn interior_simd(
        src: &Source<'_, f32>,
        map: &RowMap,
        x_start: usize,
        out: &mut [f32],
    ) -> usize {
        #[cfg(target_arch = "x86_64")]
        {
            if simd::available(src) {
                // SAFETY: as for `Linear::interior_simd`.
                return unsafe { simd::cubic_f32(src, map, x_start, out) };
            }
        }
        let _ = (src, map, x_start, out);
        0
    }
}

/// `[xs, xe)`: a range of output columns (of `width`) whose positions all satisfy
/// `lo <= sx < hx` and `lo <= sy < hy`. Found analytically, then verified (and shrunk if needed)
/// at both ends with the exact arithmetic of [`RowMap::at`]; since the computed positions are
/// monotone in `x`, the ends satisfying the predicate proves every column between does. Columns
/// outside the range take a slower general path, so an analytic estimate that is too small costs
/// a little speed but never correctness.
fn interior_range(map: &RowMap, lo: f64, hx: f64, hy: f64, width: usize) -> (usize, usize) {
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
/// (error ~2e-6 px, see `simd::positions`); they only run where every position is at least this
/// far inside the interior, so their floor() agrees with the exact one up to the fraction
/// rounding and their index clamps never engage.
const SIMD_MARGIN: f64 = 1e-3;

/// Largest |∂s/∂x| (source pixels per output pixel) the SIMD loops accept (16× minification).
const SIMD_MAX_STEP: f64 = 16.0;

/// `Some(slice as &mut [f32])` when `T` is `f32`.
fn as_f32_mut<T: Sample>(s: &mut [T]) -> Option<&mut [f32]> {
    if std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>() {
        // SAFETY: T is f32 (identical TypeId), so this reinterprets a slice as its own type.
        Some(unsafe { std::slice::from_raw_parts_mut(s.as_mut_ptr().cast::<f32>(), s.len()) })
    } else {
        None
    }
}

/// `Some(source viewed as f32)` when `T` is `f32`.
fn as_f32_source<'a, T: Sample>(src: &Source<'a, T>) -> Option<Source<'a, f32>> {
    if std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>() {
        // SAFETY: T is f32 (identical TypeId), so this reinterprets a slice as its own type.
        let data =
            unsafe { std::slice::from_raw_parts(src.data.as_ptr().cast::<f32>(), src.data.len()) };
        Some(Source {
            data,
            nx: src.nx,
            ny: src.ny,
        })
    } else {
        None
    }
}

/// One output row `y`.
#[inline(always)]
fn warp_row<T: Sample, K: Kind>(
    src: &Source<'_, T>,
    affine: &Affine,
    y: usize,
    fill: T,
    row: &mut [T],
    use_simd: bool,
) {
    let [[a00, a01, a02], [a10, a11, a12]] = *affine;
    let yf = y as f64;
    let map = RowMap {
        ax: a00,
        bx: a01 * yf + a02,
        ay: a10,
        by: a11 * yf + a12,
        rx: a01,
        ry: a11,
    };
    let x_max = (src.nx - 1) as f64;
    let y_max = (src.ny - 1) as f64;
    let edge = |x: usize| -> T {
        let (sx, sy) = map.at(x as f64);
        if sx >= -EDGE_TOLERANCE
            && sy >= -EDGE_TOLERANCE
            && sx <= x_max + EDGE_TOLERANCE
            && sy <= y_max + EDGE_TOLERANCE
        {
            K::sample_edge(src, sx.clamp(0.0, x_max), sy.clamp(0.0, y_max))
        } else {
            fill
        }
    };
    let hx = x_max - K::HI_MARGIN;
    let hy = y_max - K::HI_MARGIN;
    let width = row.len();
    let (xs, xe) = interior_range(&map, K::LO, hx, hy, width);
    let (left, rest) = row.split_at_mut(xs);
    let (mid, right) = rest.split_at_mut(xe - xs);
    for (x, o) in left.iter_mut().enumerate() {
        *o = edge(x);
    }
    // Within the interior: SIMD on the sub-range that keeps SIMD_MARGIN from its bounds, the
    // exact scalar loop on the rest. The SIMD loops' f32 lane offsets (up to 15·|a|) keep
    // positions within ~2e-5 px only for |a| <= SIMD_MAX_STEP; steeper maps stay scalar.
    let mut from = xs;
    if use_simd && xe > xs && map.ax.abs() <= SIMD_MAX_STEP && map.ay.abs() <= SIMD_MAX_STEP {
        let m = SIMD_MARGIN;
        let (ss, se) = interior_range(&map, K::LO + m, hx - m, hy - m, width);
        // Which pixels take the SIMD loop depends only on the geometry (never on addresses),
        // so results are reproducible bit for bit.
        let (ss, se) = (ss.max(xs), se.min(xe));
        if ss < se {
            if let Some(s32) = as_f32_source(src) {
                let (before, simd_part) = mid[..se - xs].split_at_mut(ss - xs);
                if let Some(out32) = as_f32_mut(simd_part) {
                    K::interior(src, &map, xs, before);
                    from = ss + K::interior_simd(&s32, &map, ss, out32);
                }
            }
        }
    }
    K::interior(src, &map, from, &mut mid[from - xs..]);
    for (x, o) in right.iter_mut().enumerate() {
        *o = edge(xe + x);
    }
}

fn warp_rows_kind<T: Sample, K: Kind>(
    src: &Source<'_, T>,
    affine: &Affine,
    fill: T,
    out: ArrayViewMut2<T>,
    use_simd: bool,
) {
    let mut out = out;
    let width = out.ncols().max(1);
    // Rows per task: enough work per task (~64k pixels) to amortise scheduling.
    let min_rows = (65536 / width).max(1);
    out.axis_iter_mut(Axis(0))
        .into_par_iter()
        .enumerate()
        .with_min_len(min_rows)
        .for_each(|(y, mut row)| {
            let row = row
                .as_slice_mut()
                .expect("rows of a C-contiguous array are contiguous");
            warp_row::<T, K>(src, affine, y, fill, row, use_simd);
        });
}

fn warp_rows<T: Sample>(
    src: &Source<'_, T>,
    affine: &Affine,
    interp: Interpolation,
    fill: T,
    out: ArrayViewMut2<T>,
    use_simd: bool,
) {
    match interp {
        Interpolation::Linear => warp_rows_kind::<T, Linear>(src, affine, fill, out, use_simd),
        Interpolation::Cubic => warp_rows_kind::<T, Cubic>(src, affine, fill, out, use_simd),
    }
}

#[cfg(target_arch = "x86_64")]
mod simd {
    //! AVX2 + FMA interior loops for `f32`, 2 × 8 output pixels per iteration, selected at run
    //! time (`is_x86_feature_detected!`).
    //!
    //! One position per 16 pixels is computed exactly in f64 (as [`super::RowMap::at`]); the
    //! lanes add f32 offsets to its fraction (see [`positions`]). When the 8 neighbourhoods are
    //! consecutive in memory (same source row, columns `ix0 + k`: the common case for
    //! magnification corrections) they are read with plain vector loads; otherwise each lane's
    //! neighbourhood is loaded and transposed (AVX2 gathers measured ~10 cycles each here, slower).
    //! Indices are clamped to the interior first, so every load is in bounds even if the caller's
    //! interior guarantee were wrong.
    use super::{RowMap, Source};
    use std::arch::x86_64::*;

    /// AVX2 and FMA present, and every pixel index fits the i32 gather offsets.
    #[inline(always)]
    pub(super) fn available(src: &Source<'_, f32>) -> bool {
        src.data.len() <= i32::MAX as usize
            && src.nx >= 2
            && src.ny >= 2
            && is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma")
    }

    /// Positions of the 8 output pixels `xf .. xf + 8`: (floor sx, floor sy) as i32 and the
    /// fractions as f32. The anchor `xf` is mapped exactly in f64 (as `RowMap::at`) and split
    /// into integer and fraction ([`anchor`]); the lanes add `k·a` (precomputed in `kx`, `ky`;
    /// the loops use k = 0..16 from one anchor) to the f32 fraction ([`lanes`]), which costs at
    /// most ~2e-6·(1 + |a|) px (|frac + k·a| < 16·(1 + |a|), f32 rounding 6e-8 relative) — far
    /// below the 1e-4 px budget and f32 output precision.
    #[inline(always)]
    unsafe fn positions(
        map: &RowMap,
        xf: f64,
        kx: __m256,
        ky: __m256,
    ) -> (__m256i, __m256i, __m256, __m256) {
        lanes(anchor(map, xf), kx, ky)
    }

    /// Exact f64 position of the output pixel `xf`, split into floors (as broadcast i32) and
    /// fractions (as broadcast f32): the anchor of `lanes`.
    #[inline(always)]
    unsafe fn anchor(map: &RowMap, xf: f64) -> (__m256i, __m256i, __m256, __m256) {
        let (sx, sy) = map.at(xf);
        let (flx, fly) = (sx.floor(), sy.floor());
        // flx, fly are within the image here (the SIMD range is interior), so the truncating
        // conversions are exact.
        let ix0 = _mm_cvttsd_si32(_mm_set_sd(flx));
        let iy0 = _mm_cvttsd_si32(_mm_set_sd(fly));
        (
            _mm256_set1_epi32(ix0),
            _mm256_set1_epi32(iy0),
            _mm256_set1_ps((sx - flx) as f32),
            _mm256_set1_ps((sy - fly) as f32),
        )
    }

    /// Positions of 8 pixels at offsets `kx`, `ky` (f32) from an anchor.
    #[inline(always)]
    unsafe fn lanes(
        anchor: (__m256i, __m256i, __m256, __m256),
        kx: __m256,
        ky: __m256,
    ) -> (__m256i, __m256i, __m256, __m256) {
        let (ix0, iy0, frx, fry) = anchor;
        let tx = _mm256_add_ps(frx, kx);
        let ty = _mm256_add_ps(fry, ky);
        let ftx = _mm256_floor_ps(tx);
        let fty = _mm256_floor_ps(ty);
        let ix = _mm256_add_epi32(_mm256_cvttps_epi32(ftx), ix0);
        let iy = _mm256_add_epi32(_mm256_cvttps_epi32(fty), iy0);
        (ix, iy, _mm256_sub_ps(tx, ftx), _mm256_sub_ps(ty, fty))
    }

    /// `[f·a, (f+1)·a, …, (f+7)·a]` in f32 (`f`: the first offset).
    #[inline(always)]
    unsafe fn steps(a: f64, f: f64) -> __m256 {
        let k = |i: f64| ((f + i) * a) as f32;
        _mm256_setr_ps(
            k(0.0),
            k(1.0),
            k(2.0),
            k(3.0),
            k(4.0),
            k(5.0),
            k(6.0),
            k(7.0),
        )
    }

    /// Whether the 8 pixels' neighbourhoods are consecutive in memory: same source row, columns
    /// `ix[0] + k`. Typical of near-identity maps (magnification corrections), where it lets the
    /// loops use plain vector loads instead of assembling each neighbourhood.
    #[inline(always)]
    unsafe fn contiguous(ix: __m256i, iy: __m256i) -> bool {
        let iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        let ix0 = _mm256_permutevar8x32_epi32(ix, _mm256_setzero_si256());
        let iy0 = _mm256_permutevar8x32_epi32(iy, _mm256_setzero_si256());
        let same = _mm256_and_si256(
            _mm256_cmpeq_epi32(ix, _mm256_add_epi32(ix0, iota)),
            _mm256_cmpeq_epi32(iy, iy0),
        );
        _mm256_movemask_epi8(same) == -1
    }

    /// Two adjacent f32 at `p + i` as the bits of one u64 (unaligned read).
    ///
    /// # Safety
    /// `p + i` and `p + i + 1` must be inside one allocation.
    #[inline(always)]
    unsafe fn pair(p: *const f32, i: i32) -> i64 {
        // SAFETY: by the caller's contract; read_unaligned has no alignment requirement.
        unsafe { p.offset(i as isize).cast::<i64>().read_unaligned() }
    }

    /// For 8 offsets `i`: (`p[i[k]]`, `p[i[k] + 1]`) for k = 0..8, as two vectors in lane order.
    ///
    /// # Safety
    /// As for [`pair`], for every offset.
    #[inline(always)]
    unsafe fn pairs8(p: *const f32, i: &[i32; 8]) -> (__m256, __m256) {
        // SAFETY: by the caller's contract.
        let (q0, q1, q2, q3, q4, q5, q6, q7) = unsafe {
            (
                pair(p, i[0]),
                pair(p, i[1]),
                pair(p, i[2]),
                pair(p, i[3]),
                pair(p, i[4]),
                pair(p, i[5]),
                pair(p, i[6]),
                pair(p, i[7]),
            )
        };
        // lo lane: pixels 0, 1 | 2, 3; hi lane: 4, 5 | 6, 7 — each pixel as (v0, v1).
        let a = _mm256_castsi256_ps(_mm256_set_epi64x(q5, q4, q1, q0));
        let b = _mm256_castsi256_ps(_mm256_set_epi64x(q7, q6, q3, q2));
        (
            _mm256_shuffle_ps::<0b10_00_10_00>(a, b),
            _mm256_shuffle_ps::<0b11_01_11_01>(a, b),
        )
    }

    /// For 8 offsets `i`: the 4 consecutive values from `p + i[k]`, transposed so that vector
    /// `c` holds `p[i[k] + c]` in lane k.
    ///
    /// # Safety
    /// `p + i[k] .. p + i[k] + 4` must be inside one allocation for every k.
    #[inline(always)]
    unsafe fn rows8(p: *const f32, i: &[i32; 8]) -> [__m256; 4] {
        // SAFETY: by the caller's contract; loadu has no alignment requirement.
        let (y0, y1, y2, y3) = unsafe {
            let at = |k: usize| p.offset(i[k] as isize);
            (
                _mm256_loadu2_m128(at(4), at(0)),
                _mm256_loadu2_m128(at(5), at(1)),
                _mm256_loadu2_m128(at(6), at(2)),
                _mm256_loadu2_m128(at(7), at(3)),
            )
        };
        let t0 = _mm256_castps_pd(_mm256_unpacklo_ps(y0, y1));
        let t1 = _mm256_castps_pd(_mm256_unpackhi_ps(y0, y1));
        let t2 = _mm256_castps_pd(_mm256_unpacklo_ps(y2, y3));
        let t3 = _mm256_castps_pd(_mm256_unpackhi_ps(y2, y3));
        [
            _mm256_castpd_ps(_mm256_unpacklo_pd(t0, t2)),
            _mm256_castpd_ps(_mm256_unpackhi_pd(t0, t2)),
            _mm256_castpd_ps(_mm256_unpacklo_pd(t1, t3)),
            _mm256_castpd_ps(_mm256_unpackhi_pd(t1, t3)),
        ]
    }

    /// Bilinear interior loop; returns the number of pixels written (a multiple of 8).
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA (`available`).
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn linear_f32(
        src: &Source<'_, f32>,
        map: &RowMap,
        x_start: usize,
        out: &mut [f32],
    ) -> usize {
        let (nx, ny) = (src.nx, src.ny);
        let base = src.data.as_ptr();
        // Two groups of 8 pixels per f64 anchor (offsets 0..8 and 8..16).
        let (kx, ky) = (steps(map.ax, 0.0), steps(map.ay, 0.0));
        let (kx8, ky8) = (steps(map.ax, 8.0), steps(map.ay, 8.0));
        let done = out.len() / 8 * 8;
        let mut xf = x_start as f64;
        let mut pairs = out[..done].chunks_exact_mut(16);
        for o in &mut pairs {
            super::prefetch_ahead(src.data, nx, map, xf, 0, 2);
            let anc = anchor(map, xf);
            let (lo, hi) = o.split_at_mut(8);
            // SAFETY (both calls): `lo`, `hi` hold 8 f32 each; see `linear8`.
            unsafe {
                linear8(base, nx, ny, lanes(anc, kx, ky), lo);
                linear8(base, nx, ny, lanes(anc, kx8, ky8), hi);
            }
            xf += 16.0;
        }
        let rest = pairs.into_remainder();
        if !rest.is_empty() {
            // SAFETY: `rest` holds exactly 8 f32 (done is a multiple of 8).
            unsafe { linear8(base, nx, ny, positions(map, xf, kx, ky), rest) };
        }
        done
    }

    /// Bilinear interpolation of 8 output pixels `o` (exactly 8 long) at the given positions
    /// (floors, fractions). Indices are clamped to the interior first, so every load is in
    /// bounds whatever the positions.
    ///
    /// # Safety
    /// `base` must point to the `nx·ny` (both >= 2) pixels of the source; AVX2 and FMA present.
    #[inline(always)]
    unsafe fn linear8(
        base: *const f32,
        nx: usize,
        ny: usize,
        pos: (__m256i, __m256i, __m256, __m256),
        o: &mut [f32],
    ) {
        debug_assert_eq!(o.len(), 8);
        let (ix, iy, fx, fy) = pos;
        let zero = _mm256_setzero_si256();
        let ix = _mm256_min_epi32(_mm256_max_epi32(ix, zero), _mm256_set1_epi32(nx as i32 - 2));
        let iy = _mm256_min_epi32(_mm256_max_epi32(iy, zero), _mm256_set1_epi32(ny as i32 - 2));
        let idx = _mm256_add_epi32(_mm256_mullo_epi32(iy, _mm256_set1_epi32(nx as i32)), ix);
        let i0 = _mm256_cvtsi256_si32(idx) as isize;
        let (v00, v01, v10, v11) = if contiguous(ix, iy) {
            // SAFETY: the 8 neighbourhoods are consecutive (idx = i0 + k), and lane k's
            // clamped indices keep idx+1, idx+nx, idx+nx+1 inside data, for k = 7 too.
            unsafe {
                let p = base.offset(i0);
                let q = p.add(nx);
                (
                    _mm256_loadu_ps(p),
                    _mm256_loadu_ps(p.add(1)),
                    _mm256_loadu_ps(q),
                    _mm256_loadu_ps(q.add(1)),
                )
            }
        } else {
            let mut i = [0i32; 8];
            // SAFETY: `i` is 8 i32 = 32 bytes; storeu has no alignment requirement.
            unsafe { _mm256_storeu_si256(i.as_mut_ptr().cast::<__m256i>(), idx) };
            // SAFETY: 0 <= ix <= nx-2 and 0 <= iy <= ny-2 after the clamps, so for every
            // lane the pairs at idx, idx+1 and idx+nx, idx+nx+1 are inside data.
            unsafe {
                let (t0, t1) = pairs8(base, &i);
                let (b0, b1) = pairs8(base.add(nx), &i);
                (t0, t1, b0, b1)
            }
        };
        let top = _mm256_fmadd_ps(_mm256_sub_ps(v01, v00), fx, v00);
        let bottom = _mm256_fmadd_ps(_mm256_sub_ps(v11, v10), fx, v10);
        let v = _mm256_fmadd_ps(_mm256_sub_ps(bottom, top), fy, top);
        // SAFETY: `o` holds exactly 8 f32 (caller's contract).
        unsafe { _mm256_storeu_ps(o.as_mut_ptr(), v) };
    }

    /// Keys weights (a = −0.5) for 8 fractions `t`, as in `super::keys_weights`.
    #[inline(always)]
    unsafe fn keys8(t: __m256) -> [__m256; 4] {
        let h = _mm256_set1_ps(0.5);
        let one = _mm256_set1_ps(1.0);
        let t2 = _mm256_mul_ps(t, t);
        let t3 = _mm256_mul_ps(t2, t);
        // w0 = -0.5 t³ + t² - 0.5 t
        let w0 = _mm256_fnmadd_ps(h, _mm256_add_ps(t3, t), t2);
        // w1 = 1.5 t³ - 2.5 t² + 1
        let w1 = _mm256_fmadd_ps(
            _mm256_set1_ps(1.5),
            t3,
            _mm256_fnmadd_ps(_mm256_set1_ps(2.5), t2, one),
        );
        // w3 = 0.5 t³ - 0.5 t²
        let w3 = _mm256_mul_ps(h, _mm256_sub_ps(t3, t2));
        // w2 = 1 - w0 - w1 - w3 would lose accuracy; use the polynomial: -1.5 t³ + 2 t² + 0.5 t
        let w2 = _mm256_fmadd_ps(
            _mm256_set1_ps(-1.5),
            t3,
            _mm256_fmadd_ps(_mm256_set1_ps(2.0), t2, _mm256_mul_ps(h, t)),
        );
        [w0, w1, w2, w3]
    }

    /// Keys-cubic interior loop; returns the number of pixels written (a multiple of 8).
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA (`available`).
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn cubic_f32(
        src: &Source<'_, f32>,
        map: &RowMap,
        x_start: usize,
        out: &mut [f32],
    ) -> usize {
        let (nx, ny) = (src.nx, src.ny);
        if nx < 4 || ny < 4 {
            return 0;
        }
        let base = src.data.as_ptr();
        // Two groups of 8 pixels per f64 anchor (offsets 0..8 and 8..16).
        let (kx, ky) = (steps(map.ax, 0.0), steps(map.ay, 0.0));
        let (kx8, ky8) = (steps(map.ax, 8.0), steps(map.ay, 8.0));
        let done = out.len() / 8 * 8;
        let mut xf = x_start as f64;
        let mut pairs = out[..done].chunks_exact_mut(16);
        for o in &mut pairs {
            super::prefetch_ahead(src.data, nx, map, xf, 1, 4);
            let anc = anchor(map, xf);
            let (lo, hi) = o.split_at_mut(8);
            // SAFETY (both calls): `lo`, `hi` hold 8 f32 each; see `cubic8`.
            unsafe {
                cubic8(base, nx, ny, lanes(anc, kx, ky), lo);
                cubic8(base, nx, ny, lanes(anc, kx8, ky8), hi);
            }
            xf += 16.0;
        }
        let rest = pairs.into_remainder();
        if !rest.is_empty() {
            // SAFETY: `rest` holds exactly 8 f32 (done is a multiple of 8).
            unsafe { cubic8(base, nx, ny, positions(map, xf, kx, ky), rest) };
        }
        done
    }

    /// Keys-cubic interpolation of 8 output pixels `o` (exactly 8 long) at the given positions
    /// (floors, fractions). Indices are clamped to the interior first, so every load is in
    /// bounds whatever the positions.
    ///
    /// # Safety
    /// `base` must point to the `nx·ny` (both >= 4) pixels of the source; AVX2 and FMA present.
    #[inline(always)]
    unsafe fn cubic8(
        base: *const f32,
        nx: usize,
        ny: usize,
        pos: (__m256i, __m256i, __m256, __m256),
        o: &mut [f32],
    ) {
        debug_assert_eq!(o.len(), 8);
        let (ix, iy, fx, fy) = pos;
        let one = _mm256_set1_epi32(1);
        let ix = _mm256_min_epi32(_mm256_max_epi32(ix, one), _mm256_set1_epi32(nx as i32 - 3));
        let iy = _mm256_min_epi32(_mm256_max_epi32(iy, one), _mm256_set1_epi32(ny as i32 - 3));
        // Top-left corner of the 4×4 neighbourhood.
        let idx = _mm256_add_epi32(
            _mm256_mullo_epi32(_mm256_sub_epi32(iy, one), _mm256_set1_epi32(nx as i32)),
            _mm256_sub_epi32(ix, one),
        );
        let wx = keys8(fx);
        let wy = keys8(fy);
        let i0 = _mm256_cvtsi256_si32(idx) as isize;
        let fast = contiguous(ix, iy);
        let mut i = [0i32; 8];
        if !fast {
            // SAFETY: `i` is 8 i32 = 32 bytes; storeu has no alignment requirement.
            unsafe { _mm256_storeu_si256(i.as_mut_ptr().cast::<__m256i>(), idx) };
        }
        let mut acc = _mm256_setzero_ps();
        for (r, w_row) in wy.iter().enumerate() {
            // SAFETY: 1 <= ix <= nx-3 and 1 <= iy <= ny-3 after the clamps, so for every lane
            // the 4 values from idx + r*nx (r in 0..4) are inside data (len nx*ny); in the
            // contiguous case lane k's idx is i0 + k.
            let [c0, c1, c2, c3] = unsafe {
                if fast {
                    let p = base.offset(i0).add(r * nx);
                    [
                        _mm256_loadu_ps(p),
                        _mm256_loadu_ps(p.add(1)),
                        _mm256_loadu_ps(p.add(2)),
                        _mm256_loadu_ps(p.add(3)),
                    ]
                } else {
                    rows8(base.add(r * nx), &i)
                }
            };
            let v = _mm256_mul_ps(wx[0], c0);
            let v = _mm256_fmadd_ps(wx[1], c1, v);
            let v = _mm256_fmadd_ps(wx[2], c2, v);
            let v = _mm256_fmadd_ps(wx[3], c3, v);
            acc = _mm256_fmadd_ps(*w_row, v, acc);
        }
        // SAFETY: `o` holds exactly 8 f32 (caller's contract).
        unsafe { _mm256_storeu_ps(o.as_mut_ptr(), acc) };
    }
}

fn warp_affine_impl<T: Sample>(
    src: ArrayView2<T>,
    affine: &Affine,
    interp: Interpolation,
    fill: Fill,
    out: ArrayViewMut2<T>,
    use_simd: bool,
) -> Result<(), KernelError> {
    check_affine(affine)?;
    let (ny, nx) = src.dim();
    if ny == 0 || nx == 0 {
        return Err(KernelError::shape(
            "image",
            "non-empty (y, x)",
            format!("({ny}, {nx})"),
        ));
    }
    if !out.is_standard_layout() {
        return Err(KernelError::value("out", "must be C-contiguous"));
    }
    let fill = match fill {
        Fill::Value(v) => T::of_f64(v),
        Fill::Mean => T::of_f64(mean(src.view())),
    };
    let contiguous = src.as_standard_layout();
    let data = contiguous
        .as_slice()
        .expect("as_standard_layout gives a contiguous array");
    let source = Source { data, nx, ny };
    warp_rows(&source, affine, interp, fill, out, use_simd);
    Ok(())
}

/// Warp one image into `out` (any output shape). See the module docs for the conventions.
///
/// `out` must be C-contiguous; every element is written exactly once (never read), so it may hold
/// arbitrary values on entry.
pub fn warp_affine<T: Sample>(
    src: ArrayView2<T>,
    affine: &Affine,
    interp: Interpolation,
    fill: Fill,
    out: ArrayViewMut2<T>,
) -> Result<(), KernelError> {
    warp_affine_impl(src, affine, interp, fill, out, true)
}

/// Warp every image of a `(n, y, x)` stack with the same affine map into `out` `(n, y', x')`.
/// Images are processed in parallel and, inside each, rows in parallel (rayon's nested work
/// stealing balances both few large and many small images).
pub fn warp_affine_stack<T: Sample>(
    src: ArrayView3<T>,
    affine: &Affine,
    interp: Interpolation,
    fill: Fill,
    mut out: ArrayViewMut3<T>,
) -> Result<(), KernelError> {
    if src.len_of(Axis(0)) != out.len_of(Axis(0)) {
        return Err(KernelError::shape(
            "out",
            format!("{} images", src.len_of(Axis(0))),
            format!("{}", out.len_of(Axis(0))),
        ));
    }
    src.axis_iter(Axis(0))
        .into_par_iter()
        .zip(out.axis_iter_mut(Axis(0)).into_par_iter())
        .try_for_each(|(img, o)| warp_affine(img, affine, interp, fill, o))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    fn ramp(ny: usize, nx: usize) -> Array2<f64> {
        Array2::from_shape_fn((ny, nx), |(y, x)| 0.25 * x as f64 - 0.5 * y as f64 + 3.0)
    }

    #[test]
    fn identity_reproduces_input() {
        let src = Array2::from_shape_fn((7, 9), |(y, x)| ((x * 31 + y * 17) % 13) as f64);
        let a: Affine = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]];
        for interp in [Interpolation::Linear, Interpolation::Cubic] {
            let mut out = Array2::zeros((7, 9));
            warp_affine(src.view(), &a, interp, Fill::Value(0.0), out.view_mut()).unwrap();
            assert_eq!(out, src);
        }
    }

    #[test]
    fn both_kernels_reproduce_a_linear_ramp_inside() {
        // Keys and bilinear interpolation are exact for linear functions away from the edge.
        let src = ramp(32, 40);
        let a: Affine = [[0.9, 0.1, 3.3], [-0.05, 1.02, 2.7]];
        for interp in [Interpolation::Linear, Interpolation::Cubic] {
            let mut out = Array2::zeros((20, 20));
            warp_affine(
                src.view(),
                &a,
                interp,
                Fill::Value(f64::NAN),
                out.view_mut(),
            )
            .unwrap();
            for ((y, x), v) in out.indexed_iter() {
                let sx = 0.9 * x as f64 + 0.1 * y as f64 + 3.3;
                let sy = -0.05 * x as f64 + 1.02 * y as f64 + 2.7;
                let expect = 0.25 * sx - 0.5 * sy + 3.0;
                assert!(
                    (v - expect).abs() < 1e-9,
                    "{interp:?} at ({x},{y}): {v} vs {expect}"
                );
            }
        }
    }

    #[test]
    fn outside_samples_take_the_mean() {
        let src = ramp(8, 8);
        let m = mean(src.view());
        let a: Affine = [[1.0, 0.0, 100.0], [0.0, 1.0, 0.0]];
        let mut out = Array2::zeros((8, 8));
        warp_affine(
            src.view(),
            &a,
            Interpolation::Cubic,
            Fill::Mean,
            out.view_mut(),
        )
        .unwrap();
        assert!(out.iter().all(|v| (v - m).abs() < 1e-12));
    }

    #[test]
    fn keys_weights_match_kernel_and_sum_to_one() {
        for i in 0..=20 {
            let t = i as f64 / 20.0;
            let w = keys_weights(t);
            let k = [
                keys_kernel(1.0 + t),
                keys_kernel(t),
                keys_kernel(1.0 - t),
                keys_kernel(2.0 - t),
            ];
            for j in 0..4 {
                assert!((w[j] - k[j]).abs() < 1e-12);
            }
            assert!((w.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        }
    }

    #[test]
    fn single_pixel_and_single_row_images_work() {
        let src = Array2::from_elem((1, 1), 5.0f32);
        let a: Affine = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]];
        let mut out = Array2::zeros((3, 3));
        warp_affine(
            src.view(),
            &a,
            Interpolation::Cubic,
            Fill::Value(1.0),
            out.view_mut(),
        )
        .unwrap();
        assert_eq!(out[[0, 0]], 5.0);
        assert_eq!(out[[1, 1]], 1.0);
        let row = Array2::from_shape_fn((1, 5), |(_, x)| x as f32);
        let a: Affine = [[1.0, 0.0, 0.5], [0.0, 1.0, 0.0]];
        let mut out = Array2::zeros((1, 4));
        warp_affine(
            row.view(),
            &a,
            Interpolation::Linear,
            Fill::Value(-1.0),
            out.view_mut(),
        )
        .unwrap();
        assert_eq!(out.row(0).to_vec(), vec![0.5, 1.5, 2.5, 3.5]);
    }

    #[test]
    fn bad_arguments_are_errors_not_panics() {
        let src = Array2::<f32>::zeros((0, 4));
        let a: Affine = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]];
        let mut out = Array2::zeros((2, 2));
        assert!(warp_affine(
            src.view(),
            &a,
            Interpolation::Linear,
            Fill::Mean,
            out.view_mut()
        )
        .is_err());
        let src = Array2::<f32>::zeros((3, 4));
        let bad: Affine = [[f64::NAN, 0.0, 0.0], [0.0, 1.0, 0.0]];
        assert!(warp_affine(
            src.view(),
            &bad,
            Interpolation::Linear,
            Fill::Mean,
            out.view_mut()
        )
        .is_err());
        assert!(Interpolation::from_order(2).is_err());
    }

    /// Small deterministic generator (xorshift64*), uniform in [0, 1).
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> f64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
        }
        fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
            lo + (hi - lo) * self.next()
        }
    }

    /// The per-pixel general path everywhere (the pre-optimisation algorithm): the reference
    /// the row-split, scalar-interior and SIMD loops are checked against.
    fn general<T: Sample>(
        src: &Array2<T>,
        a: &Affine,
        interp: Interpolation,
        fill: T,
        shape: (usize, usize),
    ) -> Array2<T> {
        let (ny, nx) = src.dim();
        let source = Source {
            data: src.as_slice().unwrap(),
            nx,
            ny,
        };
        let (x_max, y_max) = ((nx - 1) as f64, (ny - 1) as f64);
        Array2::from_shape_fn(shape, |(y, x)| {
            let yf = y as f64;
            let map = RowMap {
                ax: a[0][0],
                bx: a[0][1] * yf + a[0][2],
                ay: a[1][0],
                by: a[1][1] * yf + a[1][2],
                rx: 0.0,
                ry: 0.0,
            };
            let (sx, sy) = map.at(x as f64);
            if sx >= -EDGE_TOLERANCE
                && sy >= -EDGE_TOLERANCE
                && sx <= x_max + EDGE_TOLERANCE
                && sy <= y_max + EDGE_TOLERANCE
            {
                let (sx, sy) = (sx.clamp(0.0, x_max), sy.clamp(0.0, y_max));
                match interp {
                    Interpolation::Linear => source.linear(sx, sy),
                    Interpolation::Cubic => source.cubic(sx, sy),
                }
            } else {
                fill
            }
        })
    }

    /// Maps of every kind the kernel meets: near-identity (magnification corrections, where the
    /// SIMD loops take their contiguous fast path), rotations, flips, zoom in and out.
    fn test_maps(rng: &mut Rng, ny: usize, nx: usize) -> Vec<Affine> {
        let (cx, cy) = (nx as f64 / 2.0, ny as f64 / 2.0);
        let about_centre = |d: [[f64; 2]; 2]| -> Affine {
            [
                [d[0][0], d[0][1], cx - d[0][0] * cx - d[0][1] * cy],
                [d[1][0], d[1][1], cy - d[1][0] * cx - d[1][1] * cy],
            ]
        };
        let mut maps = vec![
            about_centre([[1.0058, 0.0101], [0.0093, 0.9956]]),
            about_centre([[0.9942, -0.0101], [-0.0093, 1.0044]]),
            [[1.0, 0.0, 0.25], [0.0, 1.0, -0.5]],
            [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]],
            about_centre([[-1.0, 0.0], [0.0, 1.0]]),
            about_centre([[0.0, 1.0], [-1.0, 0.0]]),
            about_centre([[3.1, 0.2], [-0.1, 2.9]]),
            about_centre([[0.31, 0.0], [0.0, 0.27]]),
            // Steeper than SIMD_MAX_STEP: scalar loops only.
            [[23.0, 0.5, 2.0], [-0.4, 19.0, 1.0]],
        ];
        for _ in 0..6 {
            let th = rng.uniform(-3.2, 3.2);
            let s = rng.uniform(0.5, 2.0);
            let (c, sn) = (th.cos() * s, th.sin() * s);
            maps.push([
                [
                    c + rng.uniform(-0.05, 0.05),
                    -sn,
                    rng.uniform(-10.0, nx as f64),
                ],
                [
                    sn,
                    c + rng.uniform(-0.05, 0.05),
                    rng.uniform(-10.0, ny as f64),
                ],
            ]);
        }
        maps
    }

    fn random_image(rng: &mut Rng, ny: usize, nx: usize) -> Array2<f64> {
        Array2::from_shape_fn((ny, nx), |_| rng.uniform(-1.0, 1.0))
    }

    #[test]
    fn scalar_fast_path_is_bit_identical_to_the_general_path() {
        let mut rng = Rng(0x1234_5678_9abc_def1);
        for &(ny, nx) in &[(1, 1), (1, 7), (2, 2), (3, 5), (4, 4), (17, 33), (64, 80)] {
            let img = random_image(&mut rng, ny, nx);
            let img32 = img.mapv(|v| v as f32);
            for a in test_maps(&mut rng, ny, nx) {
                for interp in [Interpolation::Linear, Interpolation::Cubic] {
                    let shape = (ny + 3, nx + 5);
                    let mut out = Array2::from_elem(shape, f64::NAN);
                    warp_affine_impl(
                        img.view(),
                        &a,
                        interp,
                        Fill::Value(-3.0),
                        out.view_mut(),
                        false,
                    )
                    .unwrap();
                    assert_eq!(
                        out,
                        general(&img, &a, interp, -3.0, shape),
                        "{ny}x{nx} {a:?} {interp:?}"
                    );
                    // f64 never takes the SIMD loops.
                    let mut out2 = Array2::from_elem(shape, f64::NAN);
                    warp_affine_impl(
                        img.view(),
                        &a,
                        interp,
                        Fill::Value(-3.0),
                        out2.view_mut(),
                        true,
                    )
                    .unwrap();
                    assert_eq!(out, out2);
                    let mut out32 = Array2::from_elem(shape, f32::NAN);
                    warp_affine_impl(
                        img32.view(),
                        &a,
                        interp,
                        Fill::Value(-3.0),
                        out32.view_mut(),
                        false,
                    )
                    .unwrap();
                    assert_eq!(out32, general(&img32, &a, interp, -3.0f32, shape));
                }
            }
        }
    }

    #[test]
    fn simd_path_matches_the_general_path() {
        let mut rng = Rng(0x0bad_5eed_1234_5678);
        for &(ny, nx) in &[(2, 9), (5, 12), (9, 40), (70, 150), (129, 257)] {
            let img = random_image(&mut rng, ny, nx).mapv(|v| v as f32);
            for a in test_maps(&mut rng, ny, nx) {
                for interp in [Interpolation::Linear, Interpolation::Cubic] {
                    let shape = (ny + 2, nx + 11);
                    let mut out = Array2::from_elem(shape, f32::NAN);
                    warp_affine_impl(
                        img.view(),
                        &a,
                        interp,
                        Fill::Value(7.0),
                        out.view_mut(),
                        true,
                    )
                    .unwrap();
                    let want = general(&img, &a, interp, 7.0, shape);
                    for ((y, x), (g, w)) in out
                        .indexed_iter()
                        .zip(want.iter())
                        .map(|((i, g), w)| (i, (g, w)))
                    {
                        // Inputs in [-1, 1]: 1e-5 absolute is well inside the Python tests'
                        // 2e-5 · max|img| for f32 (position error ~1e-6 px, f32 arithmetic).
                        assert!(
                            (g - w).abs() <= 1e-5,
                            "{ny}x{nx} {a:?} {interp:?} at ({y},{x}): {g} vs {w}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn simd_loops_run_and_agree_with_the_scalar_interior() {
        // Direct check of both SIMD loops (and of their contiguous and gather branches), when
        // the CPU has AVX2 + FMA; elsewhere they must decline (return 0).
        let (ny, nx) = (300, 300);
        let mut rng = Rng(42);
        let img = random_image(&mut rng, ny, nx).mapv(|v| v as f32);
        let src = Source {
            data: img.as_slice().unwrap(),
            nx,
            ny,
        };
        let maps = [
            RowMap {
                ax: 1.0058,
                bx: 20.3,
                ay: 0.0093,
                by: 30.7,
                rx: 0.0,
                ry: 0.0,
            },
            RowMap {
                ax: 0.7,
                bx: 20.3,
                ay: -0.6,
                by: 250.2,
                rx: 0.0,
                ry: 0.0,
            },
        ];
        let simd = cfg!(target_arch = "x86_64") && {
            #[cfg(target_arch = "x86_64")]
            let has = is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma");
            #[cfg(not(target_arch = "x86_64"))]
            let has = false;
            has
        };
        for map in &maps {
            let mut a = vec![0.0f32; 200];
            let mut b = vec![0.0f32; 200];
            let done = Linear::interior_simd(&src, map, 3, &mut a);
            Linear::interior(&src, map, 3 + done, &mut a[done..]);
            Linear::interior(&src, map, 3, &mut b);
            assert_eq!(done, if simd { 200 } else { 0 });
            assert!(a.iter().zip(&b).all(|(p, q)| (p - q).abs() < 1e-5));
            let done = Cubic::interior_simd(&src, map, 3, &mut a);
            Cubic::interior(&src, map, 3 + done, &mut a[done..]);
            Cubic::interior(&src, map, 3, &mut b);
            assert_eq!(done, if simd { 200 } else { 0 });
            assert!(a.iter().zip(&b).all(|(p, q)| (p - q).abs() < 1e-5));
        }
    }

    #[test]
    fn interior_range_is_sound_and_nearly_maximal() {
        let mut rng = Rng(7);
        for _ in 0..2000 {
            let map = RowMap {
                ax: rng.uniform(-3.0, 3.0) * if rng.next() < 0.1 { 0.0 } else { 1.0 },
                bx: rng.uniform(-50.0, 150.0),
                ay: rng.uniform(-3.0, 3.0) * if rng.next() < 0.1 { 0.0 } else { 1.0 },
                by: rng.uniform(-50.0, 150.0),
                rx: 0.0,
                ry: 0.0,
            };
            let (lo, hx, hy) = (1.0, 97.0, 61.0);
            let width = 1 + (rng.next() * 120.0) as usize;
            let (xs, xe) = interior_range(&map, lo, hx, hy, width);
            let ok = |x: usize| {
                let (sx, sy) = map.at(x as f64);
                lo <= sx && sx < hx && lo <= sy && sy < hy
            };
            assert!(xs <= xe && xe <= width);
            assert!((xs..xe).all(ok), "{xs}..{xe} not all interior");
            let missed = (0..width)
                .filter(|&x| ok(x) && !(xs..xe).contains(&x))
                .count();
            assert!(missed <= 2, "missed {missed} interior columns");
        }
    }

    #[test]
    fn mean_of_strided_and_contiguous_views_agree() {
        let img =
            Array2::from_shape_fn((301, 257), |(y, x)| ((x * 7 + y * 13) % 101) as f32 - 40.0);
        let naive = img.iter().map(|&v| v as f64).sum::<f64>() / img.len() as f64;
        assert!((mean(img.view()) - naive).abs() < 1e-12);
        let t = img.t();
        assert!((mean(t) - naive).abs() < 1e-12);
        let sl = img.slice(ndarray::s![..;2, 3..]);
        let naive_sl = sl.iter().map(|&v| v as f64).sum::<f64>() / sl.len() as f64;
        assert!((mean(sl) - naive_sl).abs() < 1e-12);
    }

    #[test]
    fn stack_is_each_image_warped_with_its_own_mean() {
        let mut rng = Rng(99);
        let stack = ndarray::Array3::from_shape_fn((5, 33, 41), |(k, _, _)| {
            rng.uniform(-1.0, 1.0) as f32 + k as f32
        });
        let a: Affine = [[1.0058, 0.0101, -2.0], [0.0093, 0.9956, 1.5]];
        for interp in [Interpolation::Linear, Interpolation::Cubic] {
            let mut out = ndarray::Array3::from_elem((5, 30, 44), f32::NAN);
            warp_affine_stack(stack.view(), &a, interp, Fill::Mean, out.view_mut()).unwrap();
            for k in 0..5 {
                let mut one = Array2::from_elem((30, 44), f32::NAN);
                warp_affine(
                    stack.index_axis(Axis(0), k),
                    &a,
                    interp,
                    Fill::Mean,
                    one.view_mut(),
                )
                .unwrap();
                assert_eq!(out.index_axis(Axis(0), k), one);
                // Column 43 maps outside (x ≈ 43 > 40): each image's own mean.
                let m = mean(stack.index_axis(Axis(0), k)) as f32;
                assert_eq!(out[[k, 5, 43]], m);
            }
        }
        let mut wrong = ndarray::Array3::<f32>::zeros((4, 30, 44));
        assert!(warp_affine_stack(
            stack.view(),
            &a,
            Interpolation::Linear,
            Fill::Mean,
            wrong.view_mut()
        )
        .is_err());
    }
}
