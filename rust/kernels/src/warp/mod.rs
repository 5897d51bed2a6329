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
//! monomorphised per interpolation kind — for `f32` on [`Isa::Avx2Fma`], 8-pixel SIMD loops
//! (positions within ~2e-5 px, results within f32 rounding of the scalar path); f64 stays
//! scalar and bit-identical to the general path. Source data is software-prefetched ahead of the
//! loop (sheared near-identity maps defeat the hardware prefetchers).
//!
//! Layout (as fast_image_resize splits its convolutions by concern): this file is the public
//! API and the parallel row driver; `interior` holds the row map, the interior split and the
//! prefetch; `scalar` the portable edge and interior loops; `avx2` the AVX2 + FMA loops;
//! `tests` runs every path on every instruction set of [`Isa::available`]. The interpolation
//! weights are [`crate::interp`]'s.
//!
//! [`WarpOptions`] carries the instruction set (a value, detected once by default), an optional
//! check of the source values fused into the parallel pass (so callers need not read a large
//! image once more just to validate it) and the choice of streaming (non-temporal) stores for
//! outputs too large for the caches.

use ndarray::{ArrayView2, ArrayView3, ArrayViewMut2, ArrayViewMut3, Axis};
use num_traits::Float;
use rayon::prelude::*;

use crate::{Isa, KernelError};

#[cfg(target_arch = "x86_64")]
mod avx2;
mod interior;
mod rows;
mod scalar;
#[cfg(test)]
mod tests;

use interior::Source;
use rows::{count_outside, warp_rows, RowJob};

/// The Keys kernel, now defined once in [`crate::interp`] (re-exported at its old path).
pub use crate::interp::keys_kernel;

/// Floating-point pixel types the kernels accept (`f32`, `f64`).
pub trait Sample: Float + Send + Sync + 'static + std::iter::Sum {
    fn of_f64(v: f64) -> Self;
    fn as_f64(self) -> f64;
    /// Whether any value of `s` is NaN, infinite or beyond `±limit` (`limit` finite, >= 0).
    /// f32 and f64 compare the bits of `|v|` as integers (NaN and inf sort above every finite
    /// value), a branch-free loop that vectorises.
    #[inline(always)]
    fn any_outside(s: &[Self], limit: Self) -> bool {
        s.iter().any(|v| v.is_nan() || v.abs() > limit)
    }
}

/// [`Sample::any_outside`] for a float type: `|v|`'s bits (sign cleared) as a non-negative
/// signed integer, compared with the limit's (NaN and inf bits exceed every finite limit's), OR-ed
/// into `lanes` accumulators so the loop vectorises.
macro_rules! any_outside_by_bits {
    ($t:ty, $int:ty, $mask:expr, $lanes:expr) => {
        #[inline(always)]
        fn any_outside(s: &[$t], limit: $t) -> bool {
            let lim = limit.to_bits() as $int;
            let above = |v: &$t| (v.to_bits() & $mask) as $int > lim;
            let mut acc = [0 as $int; $lanes];
            let mut chunks = s.chunks_exact($lanes);
            for c in &mut chunks {
                for (a, v) in acc.iter_mut().zip(c) {
                    *a |= -<$int>::from(above(v));
                }
            }
            acc.iter().any(|&a| a != 0) || chunks.remainder().iter().any(above)
        }
    };
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
    any_outside_by_bits!(f32, i32, 0x7fff_ffff, 8);
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
    any_outside_by_bits!(f64, i64, 0x7fff_ffff_ffff_ffff, 4);
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

/// Arithmetic mean of an image, accumulated in f64: each row summed with 8 independent f64
/// accumulators (rows in parallel), the row sums added in row order. The result does not depend on the thread count,
/// and it is the mean the warp's fused pass computes for [`Fill::Mean`] (bit for bit).
pub fn mean<T: Sample>(img: ArrayView2<T>) -> f64 {
    let n = img.len();
    if n == 0 {
        return 0.0;
    }
    let sums: Vec<f64> = match img.as_slice() {
        Some(data) => data.par_chunks(img.ncols()).map(sum_f64).collect(),
        None => img
            .axis_iter(Axis(0))
            .into_par_iter()
            .map(|row| match row.as_slice() {
                Some(s) => sum_f64(s),
                None => sum_f64(&row.to_vec()),
            })
            .collect(),
    };
    sums.iter().sum::<f64>() / n as f64
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

/// How a warp runs (never what it computes, except that a failed check is an error). The
/// default: the detected instruction set ([`Isa::default`]), no check, automatic streaming.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct WarpOptions {
    /// Instruction set of the interior loops (made [`Isa::effective`] by the kernel). Results on
    /// [`Isa::Avx2Fma`] agree with [`Isa::Scalar`] within f32 rounding (f64 is always scalar).
    pub isa: Isa,
    /// `Some(limit)`: every source pixel must be finite with `|v| <= limit`, else the warp
    /// returns a `"image"` [`KernelError`] (and the output holds garbage). The check runs inside
    /// the parallel row pass on source rows the warp has just read (cache-hot), so it replaces a
    /// separate validation pass over the whole image.
    pub check_limit: Option<f64>,
    /// Write the output with non-temporal (streaming) stores, through a cache-resident row
    /// buffer (saves the read-for-ownership of every output cache line). Off by default: on
    /// the 4096² anisomag case (`examples/warp_timing.rs`, AMD EPYC KVM guest, 2 vCPU) it
    /// saved nothing into a reused output and cost ~10–15 % CPU into fresh huge pages (what a
    /// numpy output is).
    pub stream: bool,
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

/// [`warp_affine`] with explicit [`WarpOptions`] (instruction set, fused source check,
/// streaming stores).
pub fn warp_affine_with<T: Sample>(
    src: ArrayView2<T>,
    affine: &Affine,
    interp: Interpolation,
    fill: Fill,
    out: ArrayViewMut2<T>,
    opts: &WarpOptions,
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
    if let Some(limit) = opts.check_limit {
        if limit.is_nan() || limit < 0.0 {
            return Err(KernelError::value("check_limit", "must be >= 0"));
        }
    }
    let fill = match fill {
        Fill::Value(v) => Some(T::of_f64(v)),
        Fill::Mean => None, // computed inside the row pass
    };
    let job = RowJob {
        isa: opts.isa.effective(),
        check_limit: opts.check_limit.map(T::of_f64),
        stream: opts.stream,
    };
    let contiguous = src.as_standard_layout();
    let data = contiguous
        .as_slice()
        .expect("as_standard_layout gives a contiguous array");
    let source = Source { data, nx, ny };
    let bad = if out.is_empty() {
        // No rows to carry the check: check the source directly.
        job.check_limit.map_or(0, |l| count_outside(data, l))
    } else {
        warp_rows(&source, affine, interp, fill, out, job)
    };
    if bad > 0 {
        let limit = opts.check_limit.unwrap_or(0.0);
        return Err(KernelError::value(
            "image",
            format!("{bad} pixel(s) are NaN, inf or beyond ±{limit:.3e}; expected finite values"),
        ));
    }
    Ok(())
}

/// Warp one image into `out` (any output shape). See the module docs for the conventions.
///
/// `out` must be C-contiguous; every element is written exactly once (never read), so it may hold
/// arbitrary values on entry. Runs on the detected instruction set ([`WarpOptions::default`]).
pub fn warp_affine<T: Sample>(
    src: ArrayView2<T>,
    affine: &Affine,
    interp: Interpolation,
    fill: Fill,
    out: ArrayViewMut2<T>,
) -> Result<(), KernelError> {
    warp_affine_with(src, affine, interp, fill, out, &WarpOptions::default())
}

/// Warp every image of a `(n, y, x)` stack with the same affine map into `out` `(n, y', x')`.
/// Images are processed in parallel and, inside each, rows in parallel (rayon's nested work
/// stealing balances both few large and many small images).
pub fn warp_affine_stack<T: Sample>(
    src: ArrayView3<T>,
    affine: &Affine,
    interp: Interpolation,
    fill: Fill,
    out: ArrayViewMut3<T>,
) -> Result<(), KernelError> {
    warp_affine_stack_with(src, affine, interp, fill, out, &WarpOptions::default())
}

/// [`warp_affine_stack`] with explicit [`WarpOptions`].
pub fn warp_affine_stack_with<T: Sample>(
    src: ArrayView3<T>,
    affine: &Affine,
    interp: Interpolation,
    fill: Fill,
    mut out: ArrayViewMut3<T>,
    opts: &WarpOptions,
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
        .try_for_each(|(img, o)| warp_affine_with(img, affine, interp, fill, o, opts))
}
