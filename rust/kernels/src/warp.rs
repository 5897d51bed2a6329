//! Affine resampling of images: `out[y, x] = src(A · (x, y, 1))`.
//!
//! `A` is the 2×3 matrix that maps an *output* pixel position `(x, y)` to the *input* position
//! where it is sampled (the "inverse map" of OpenCV's `WARP_INVERSE_MAP`, or the `matrix`/`offset`
//! of `scipy.ndimage.affine_transform` with the axes swapped to `(x, y)`). Pixel centres are on
//! integer indices. Anisotropic-magnification correction, cross-magnification warps and rotations
//! are all this one kernel with different matrices.
//!
//! Interpolation:
//! * [`Interpolation::Linear`]: bilinear.
//! * [`Interpolation::Cubic`]: Keys' cubic convolution with `a = -0.5` (Catmull–Rom; Keys 1981,
//!   IEEE TASSP 29:1153), the interpolating bicubic that reproduces quadratics exactly. Note that
//!   OpenCV's `INTER_CUBIC` uses `a = -0.75` and scipy's `order=3` is a cubic B-spline with
//!   prefilter, so neither is bit-identical to this; `emgeom.reference.warp_affine` is.
//!
//! Samples whose position falls outside `[0, n-1]` on either axis take the fill value (a constant
//! or the source image's mean). Positions inside use edge-clamped neighbours, so the output has no
//! seam and never contains NaN unless the input does.

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

/// Arithmetic mean of an image, accumulated in f64 (rows in parallel).
pub fn mean<T: Sample>(img: ArrayView2<T>) -> f64 {
    let n = img.len();
    if n == 0 {
        return 0.0;
    }
    let total: f64 = img
        .axis_iter(Axis(0))
        .into_par_iter()
        .map(|row| row.iter().map(|v| v.as_f64()).sum::<f64>())
        .sum();
    total / n as f64
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

    #[inline(always)]
    fn linear(&self, sx: f64, sy: f64) -> T {
        // Callers clamp sx, sy to [0, n-1], so truncation is floor (and avoids a libm call).
        let x0f = (sx as usize) as f64;
        let y0f = (sy as usize) as f64;
        let fx = T::of_f64(sx - x0f);
        let fy = T::of_f64(sy - y0f);
        let (x0, y0) = (x0f as isize, y0f as isize);
        if x0 >= 0 && y0 >= 0 && (x0 as usize) + 1 < self.nx && (y0 as usize) + 1 < self.ny {
            let i = y0 as usize * self.nx + x0 as usize;
            // SAFETY: 0 <= x0 < nx-1 and 0 <= y0 < ny-1 were checked just above, so
            // i, i+1, i+nx and i+nx+1 are all < nx*ny = data.len().
            let (v00, v01, v10, v11) = unsafe {
                (
                    *self.data.get_unchecked(i),
                    *self.data.get_unchecked(i + 1),
                    *self.data.get_unchecked(i + self.nx),
                    *self.data.get_unchecked(i + self.nx + 1),
                )
            };
            let top = v00 + (v01 - v00) * fx;
            let bottom = v10 + (v11 - v10) * fx;
            top + (bottom - top) * fy
        } else {
            let v00 = self.clamped(x0, y0);
            let v01 = self.clamped(x0 + 1, y0);
            let v10 = self.clamped(x0, y0 + 1);
            let v11 = self.clamped(x0 + 1, y0 + 1);
            let top = v00 + (v01 - v00) * fx;
            let bottom = v10 + (v11 - v10) * fx;
            top + (bottom - top) * fy
        }
    }

    #[inline(always)]
    fn cubic(&self, sx: f64, sy: f64) -> T {
        let x0f = (sx as usize) as f64;
        let y0f = (sy as usize) as f64;
        let wx = keys_weights(T::of_f64(sx - x0f));
        let wy = keys_weights(T::of_f64(sy - y0f));
        let (x0, y0) = (x0f as isize, y0f as isize);
        if x0 >= 1 && y0 >= 1 && (x0 as usize) + 2 < self.nx && (y0 as usize) + 2 < self.ny {
            let base = (y0 as usize - 1) * self.nx + (x0 as usize - 1);
            let mut acc = T::zero();
            for (r, &w_row) in wy.iter().enumerate() {
                let start = base + r * self.nx;
                // SAFETY: 1 <= x0 <= nx-3 and 1 <= y0 <= ny-3 (checked above), so the 4×4
                // neighbourhood rows y0-1..=y0+2, columns x0-1..=x0+2 lie inside the image.
                let s = unsafe { self.data.get_unchecked(start..start + 4) };
                let v = wx[0] * s[0] + wx[1] * s[1] + wx[2] * s[2] + wx[3] * s[3];
                acc = acc + w_row * v;
            }
            acc
        } else {
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
}

fn check_affine(affine: &Affine) -> Result<(), KernelError> {
    if affine.iter().flatten().all(|v| v.is_finite()) {
        Ok(())
    } else {
        Err(KernelError::value("affine", "all six entries must be finite"))
    }
}

fn warp_rows<T: Sample>(
    src: &Source<'_, T>,
    affine: &Affine,
    interp: Interpolation,
    fill: T,
    out: ArrayViewMut2<T>,
) {
    let x_max = (src.nx - 1) as f64;
    let y_max = (src.ny - 1) as f64;
    let [[a00, a01, a02], [a10, a11, a12]] = *affine;
    let mut out = out;
    out.axis_iter_mut(Axis(0))
        .into_par_iter()
        .enumerate()
        .with_min_len(4)
        .for_each(|(y, mut row)| {
            let row = row
                .as_slice_mut()
                .expect("rows of a C-contiguous array are contiguous");
            let yf = y as f64;
            let bx = a01 * yf + a02;
            let by = a11 * yf + a12;
            for (x, o) in row.iter_mut().enumerate() {
                let xf = x as f64;
                let sx = a00 * xf + bx;
                let sy = a10 * xf + by;
                *o = if sx >= -EDGE_TOLERANCE
                    && sy >= -EDGE_TOLERANCE
                    && sx <= x_max + EDGE_TOLERANCE
                    && sy <= y_max + EDGE_TOLERANCE
                {
                    let sx = sx.clamp(0.0, x_max);
                    let sy = sy.clamp(0.0, y_max);
                    match interp {
                        Interpolation::Linear => src.linear(sx, sy),
                        Interpolation::Cubic => src.cubic(sx, sy),
                    }
                } else {
                    fill
                };
            }
        });
}

/// Warp one image into `out` (any output shape). See the module docs for the conventions.
pub fn warp_affine<T: Sample>(
    src: ArrayView2<T>,
    affine: &Affine,
    interp: Interpolation,
    fill: Fill,
    out: ArrayViewMut2<T>,
) -> Result<(), KernelError> {
    check_affine(affine)?;
    let (ny, nx) = src.dim();
    if ny == 0 || nx == 0 {
        return Err(KernelError::shape("image", "non-empty (y, x)", format!("({ny}, {nx})")));
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
    warp_rows(&source, affine, interp, fill, out);
    Ok(())
}

/// Warp every image of a `(n, y, x)` stack with the same affine map into `out` `(n, y', x')`.
/// Images are processed one after the other, each in parallel over rows (good load balance for
/// both few large and many small images).
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
    for (img, o) in src.axis_iter(Axis(0)).zip(out.axis_iter_mut(Axis(0))) {
        warp_affine(img, affine, interp, fill, o)?;
    }
    Ok(())
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
            warp_affine(src.view(), &a, interp, Fill::Value(f64::NAN), out.view_mut()).unwrap();
            for ((y, x), v) in out.indexed_iter() {
                let sx = 0.9 * x as f64 + 0.1 * y as f64 + 3.3;
                let sy = -0.05 * x as f64 + 1.02 * y as f64 + 2.7;
                let expect = 0.25 * sx - 0.5 * sy + 3.0;
                assert!((v - expect).abs() < 1e-9, "{interp:?} at ({x},{y}): {v} vs {expect}");
            }
        }
    }

    #[test]
    fn outside_samples_take_the_mean() {
        let src = ramp(8, 8);
        let m = mean(src.view());
        let a: Affine = [[1.0, 0.0, 100.0], [0.0, 1.0, 0.0]];
        let mut out = Array2::zeros((8, 8));
        warp_affine(src.view(), &a, Interpolation::Cubic, Fill::Mean, out.view_mut()).unwrap();
        assert!(out.iter().all(|v| (v - m).abs() < 1e-12));
    }

    #[test]
    fn keys_weights_match_kernel_and_sum_to_one() {
        for i in 0..=20 {
            let t = i as f64 / 20.0;
            let w = keys_weights(t);
            let k = [keys_kernel(1.0 + t), keys_kernel(t), keys_kernel(1.0 - t), keys_kernel(2.0 - t)];
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
        warp_affine(src.view(), &a, Interpolation::Cubic, Fill::Value(1.0), out.view_mut()).unwrap();
        assert_eq!(out[[0, 0]], 5.0);
        assert_eq!(out[[1, 1]], 1.0);
        let row = Array2::from_shape_fn((1, 5), |(_, x)| x as f32);
        let a: Affine = [[1.0, 0.0, 0.5], [0.0, 1.0, 0.0]];
        let mut out = Array2::zeros((1, 4));
        warp_affine(row.view(), &a, Interpolation::Linear, Fill::Value(-1.0), out.view_mut()).unwrap();
        assert_eq!(out.row(0).to_vec(), vec![0.5, 1.5, 2.5, 3.5]);
    }

    #[test]
    fn bad_arguments_are_errors_not_panics() {
        let src = Array2::<f32>::zeros((0, 4));
        let a: Affine = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]];
        let mut out = Array2::zeros((2, 2));
        assert!(warp_affine(src.view(), &a, Interpolation::Linear, Fill::Mean, out.view_mut()).is_err());
        let src = Array2::<f32>::zeros((3, 4));
        let bad: Affine = [[f64::NAN, 0.0, 0.0], [0.0, 1.0, 0.0]];
        assert!(warp_affine(src.view(), &bad, Interpolation::Linear, Fill::Mean, out.view_mut()).is_err());
        assert!(Interpolation::from_order(2).is_err());
    }
}
