//! Portable (scalar) sampling: the general edge path and the branch-free interior loops,
//! monomorphised per interpolation kind. The weights come from [`crate::interp`].

use super::interior::{prefetch_ahead, RowMap, Source};
use super::Sample;
use crate::interp::{keys_weights, lerp};
use crate::Isa;

impl<T: Sample> Source<'_, T> {
    #[inline(always)]
    fn clamped(&self, x: isize, y: isize) -> T {
        let xi = x.clamp(0, self.nx as isize - 1) as usize;
        let yi = y.clamp(0, self.ny as isize - 1) as usize;
        self.data[yi * self.nx + xi]
    }

    /// General bilinear sample (any position already clamped to `[0, n-1]`); edge path.
    #[inline(always)]
    pub(super) fn linear(&self, sx: f64, sy: f64) -> T {
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
        lerp(lerp(v00, v01, fx), lerp(v10, v11, fx), fy)
    }

    /// General Keys-cubic sample (position already clamped to `[0, n-1]`); edge path.
    #[inline(always)]
    pub(super) fn cubic(&self, sx: f64, sy: f64) -> T {
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

/// Interpolation kind as a type, so that each kind gets its own monomorphised row loop.
pub(super) trait Kind {
    /// Interior = positions with `LO <= s < n - 1 - HI_MARGIN` on both axes, where the whole
    /// stencil (`floor(s) - LO ..= floor(s) + 1 + HI_MARGIN`) lies inside the image.
    const LO: f64;
    const HI_MARGIN: f64;
    /// Edge path: any position already clamped to `[0, n-1]`.
    fn sample_edge<T: Sample>(src: &Source<'_, T>, sx: f64, sy: f64) -> T;
    /// Interior path for the output pixels `out`, whose first pixel is at `x = x_start`.
    /// Caller guarantees every position of the range is interior (see [`super::interior::interior_range`]).
    fn interior<T: Sample>(src: &Source<'_, T>, map: &RowMap, x_start: usize, out: &mut [T]);
    /// The SIMD version for `f32` on `isa` (already made effective by the caller); returns how
    /// many leading pixels it wrote (0 on [`Isa::Scalar`]).
    fn interior_simd(
        isa: Isa,
        src: &Source<'_, f32>,
        map: &RowMap,
        x_start: usize,
        out: &mut [f32],
    ) -> usize;
}

pub(super) struct Linear;
pub(super) struct Cubic;

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
                prefetch_ahead(data, nx, map, xf, 0, 2, 1);
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
            *o = lerp(lerp(v00, v01, fx), lerp(v10, v11, fx), fy);
            xf += 1.0;
        }
    }

    #[inline(always)]
    fn interior_simd(
        isa: Isa,
        src: &Source<'_, f32>,
        map: &RowMap,
        x_start: usize,
        out: &mut [f32],
    ) -> usize {
        #[cfg(target_arch = "x86_64")]
        {
            if isa == Isa::Avx2Fma && super::avx2::usable(src) {
                // SAFETY: the caller made `isa` effective (Isa::effective), so the CPU has AVX2
                // and FMA; the caller guarantees the interior precondition (and the kernel
                // clamps its indices anyway).
                return unsafe { super::avx2::linear_f32(src, map, x_start, out) };
            }
        }
        let _ = (isa, src, map, x_start, out);
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
                prefetch_ahead(data, nx, map, xf, 1, 4, 1);
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
        isa: Isa,
        src: &Source<'_, f32>,
        map: &RowMap,
        x_start: usize,
        out: &mut [f32],
    ) -> usize {
        #[cfg(target_arch = "x86_64")]
        {
            if isa == Isa::Avx2Fma && super::avx2::usable(src) {
                // SAFETY: the caller made `isa` effective (Isa::effective), so the CPU has AVX2
                // and FMA; the caller guarantees the interior precondition (and the kernel
                // clamps its indices anyway).
                return unsafe { super::avx2::cubic_f32(src, map, x_start, out) };
            }
        }
        let _ = (isa, src, map, x_start, out);
        0
    }
}
