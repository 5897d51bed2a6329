//! Log-polar resampling of images and of magnitude spectra (Fourier–Mellin building blocks).
//!
//! Output layout, for every function here: a `(n_angle, n_radius)` array, **axis 0 = angle**,
//! **axis 1 = log-radius** (the layout of `cv2.warpPolar` and `skimage.transform.warp_polar`).
//!
//! * angle `θ_i = span · i / n_angle`, `i = 0..n_angle` (`span` = 2π for images, π for
//!   half spectra). θ is measured from the +x axis (columns) towards the +y axis (rows): with
//!   row 0 at the top of the display this is **clockwise as displayed** — the sense of
//!   `R(θ) = [[cos θ, −sin θ], [sin θ, cos θ]]` used by every emgeom affine.
//! * radius `r_j = r_min · (r_max / r_min)^(j / (n_radius − 1))`, `j = 0..n_radius`
//!   (both ends included; `r_j = r_min` when `n_radius == 1`).
//! * images: sample position `(x, y) = (cx + r cos θ, cy + r sin θ)` in pixels (x = column,
//!   y = row, pixel centres on integer indices).
//! * half spectra: frequency `(u, v) = ρ (cos θ, sin θ)` in cycles/pixel, read at index
//!   `(kx, ky) = (u·nx, v·ny)` of the non-redundant half (`kx = 0..=nx/2`) of the spectrum of a
//!   real `(ny, nx)` image; a position with `kx < 0` is read at `(−kx, −ky)` (Hermitian
//!   symmetry, `|F(−k)| = |F(k)|`), so θ ∈ [0, π) covers the whole plane.
//!
//! Interpolation: bilinear (order 1) or Keys cubic convolution with a = −0.5 (order 3, as in
//! [`crate::warp`]). Neighbours outside the image (or beyond Nyquist for spectra) count as
//! **zero** (zero padding), so the output is continuous and never NaN.
//!
//! Fourier–Mellin helpers: [`apodize`] (separable Tukey window), [`spectrum_log_polar`] (mean
//! removal, apodisation, real FFT with the cached plans of [`crate::fft`], magnitude or
//! log-magnitude, Reddy–Chatterji high-pass emphasis, band limits, half-plane log-polar).

use ndarray::{Array2, ArrayView2, Axis};
use rayon::prelude::*;

use crate::fft;
use crate::interp::keys_weights;
use crate::{Isa, KernelError};

/// Interpolation order of the log-polar samplers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    Linear,
    Cubic,
}

impl Order {
    pub fn from_order(order: u32) -> Result<Self, KernelError> {
        match order {
            1 => Ok(Order::Linear),
            3 => Ok(Order::Cubic),
            _ => Err(KernelError::value(
                "order",
                format!("must be 1 (bilinear) or 3 (bicubic), got {order}"),
            )),
        }
    }
}

/// The log-polar sampling grid.
#[derive(Clone, Copy, Debug)]
pub struct Grid {
    pub n_angle: usize,
    pub n_radius: usize,
    pub r_min: f64,
    pub r_max: f64,
}

impl Grid {
    fn check(&self) -> Result<(), KernelError> {
        if self.n_angle == 0 || self.n_radius == 0 {
            return Err(KernelError::shape(
                "output_shape",
                "(n_angle >= 1, n_radius >= 1)",
                format!("({}, {})", self.n_angle, self.n_radius),
            ));
        }
        if !(self.r_min.is_finite() && self.r_max.is_finite() && self.r_min > 0.0) {
            return Err(KernelError::value(
                "r_min/r_max",
                format!(
                    "must be finite with r_min > 0, got {} and {}",
                    self.r_min, self.r_max
                ),
            ));
        }
        if self.r_max < self.r_min {
            return Err(KernelError::value(
                "r_max",
                format!("must be >= r_min ({}), got {}", self.r_min, self.r_max),
            ));
        }
        Ok(())
    }

    /// The radii `r_j` (see the module docs).
    pub fn radii(&self) -> Vec<f64> {
        let n = self.n_radius;
        if n == 1 {
            return vec![self.r_min];
        }
        let lr = (self.r_max / self.r_min).ln();
        (0..n)
            .map(|j| self.r_min * (lr * j as f64 / (n - 1) as f64).exp())
            .collect()
    }
}

/// Zero-padded read access to a 2-D field stored row-major in a contiguous slice.
trait Field: Sync {
    /// Row start offset of row `y` when rows `y ..= y + k − 1` … are all readable without
    /// folding, plus the columns `x − k + 1 ..= x + k`; `None` otherwise.
    fn rows(&self, x: isize, y: isize, k: isize) -> Option<[usize; 4]>;
    /// Checked read (zero outside, folded where the field says so).
    fn get(&self, x: isize, y: isize) -> f32;
    fn data(&self) -> &[f32];
    /// The bilinear interior as the batched sampler sees it (the same set as `rows(x, y, 1)`).
    fn interior(&self) -> Interior;
    /// Whether bilinear samples go through [`linear_batch`] on AVX2. Measured on 2048² data
    /// (`examples/logpolar_timing.rs`): faster for half spectra, where half of the samples
    /// fall in the mirrored half plane that the per-sample path reads through four checked
    /// [`Field::get`] calls; 15–20 % slower than the per-sample path for images.
    const BATCH: bool;
}

/// Where a bilinear sample needs no bounds checks: `x_lo ≤ ix ≤ x_hi`, `y_lo ≤ iy ≤ y_hi` (the
/// set [`Field::rows`] accepts with `k = 1`); row `y` starts at `(y + fold·[y < 0])·stride`.
/// A half spectrum also has a mirrored interior, `mx_lo ≤ ix ≤ mx_hi`, `my_lo ≤ iy ≤ my_hi`,
/// where all four neighbours have `x < 0` and [`Field::get`] reads each at `(−x, −y)`
/// (empty, `lo > hi`, for an image).
#[derive(Clone, Copy)]
struct Interior {
    x_lo: i32,
    x_hi: i32,
    y_lo: i32,
    y_hi: i32,
    mx_lo: i32,
    mx_hi: i32,
    my_lo: i32,
    my_hi: i32,
    stride: i32,
    fold: i32,
}

/// A plain image, `[y, x]`.
struct ImageField<'a> {
    data: &'a [f32],
    ny: isize,
    nx: isize,
}

impl Field for ImageField<'_> {
    const BATCH: bool = false;
    #[inline(always)]
    fn rows(&self, x: isize, y: isize, k: isize) -> Option<[usize; 4]> {
        // one unsigned compare per axis also rejects negatives
        if ((x - k + 1) as usize) < (self.nx - 2 * k + 1).max(0) as usize
            && ((y - k + 1) as usize) < (self.ny - 2 * k + 1).max(0) as usize
        {
            let r0 = ((y - k + 1) * self.nx) as usize;
            let n = self.nx as usize;
            Some([r0, r0 + n, r0 + 2 * n, r0 + 3 * n])
        } else {
            None
        }
    }
    #[inline(always)]
    fn get(&self, x: isize, y: isize) -> f32 {
        if x >= 0 && y >= 0 && x < self.nx && y < self.ny {
            self.data[(y * self.nx + x) as usize]
        } else {
            0.0
        }
    }
    #[inline(always)]
    fn data(&self) -> &[f32] {
        self.data
    }
    fn interior(&self) -> Interior {
        Interior {
            x_lo: 0,
            x_hi: self.nx as i32 - 2,
            y_lo: 0,
            y_hi: self.ny as i32 - 2,
            mx_lo: 0,
            mx_hi: -1,
            my_lo: 0,
            my_hi: -1,
            stride: self.nx as i32,
            fold: 0,
        }
    }
}

/// The non-redundant half of a spectrum magnitude, stored `[ky_index, kx]` (row-major, `nxc`
/// columns, `kx = 0..=nx/2`, `ky` in FFT order `0..ny`).
struct HalfField<'a> {
    data: &'a [f32],
    ny: isize,
    nxc: isize,
    /// kept band: ky ∈ [ky_lo, ky_hi]
    ky_lo: isize,
    ky_hi: isize,
}

impl HalfField<'_> {
    #[inline(always)]
    fn row(&self, y: isize) -> usize {
        ((if y < 0 { y + self.ny } else { y }) * self.nxc) as usize
    }
}

impl Field for HalfField<'_> {
    const BATCH: bool = true;
    #[inline(always)]
    fn rows(&self, x: isize, y: isize, k: isize) -> Option<[usize; 4]> {
        if x - k + 1 >= 0 && x + k < self.nxc && y - k + 1 >= self.ky_lo && y + k <= self.ky_hi {
            let y0 = y - k + 1;
            Some([
                self.row(y0),
                self.row(y0 + 1),
                if k == 2 { self.row(y0 + 2) } else { 0 },
                if k == 2 { self.row(y0 + 3) } else { 0 },
            ])
        } else {
            None
        }
    }
    #[inline(always)]
    fn get(&self, x: isize, y: isize) -> f32 {
        let (x, y) = if x < 0 { (-x, -y) } else { (x, y) };
        if x >= self.nxc || y < self.ky_lo || y > self.ky_hi {
            return 0.0;
        }
        self.data[self.row(y) + x as usize]
    }
    #[inline(always)]
    fn data(&self) -> &[f32] {
        self.data
    }
    fn interior(&self) -> Interior {
        Interior {
            x_lo: 0,
            x_hi: self.nxc as i32 - 2,
            y_lo: self.ky_lo as i32,
            y_hi: self.ky_hi as i32 - 1,
            // neighbours ix, ix + 1 ≤ −1 read columns −ix − 1, −ix ≤ nxc − 1; rows −iy − 1,
            // −iy within [ky_lo, ky_hi]
            mx_lo: -(self.nxc as i32 - 1),
            mx_hi: -2,
            my_lo: -(self.ky_hi as i32),
            my_hi: -(self.ky_lo as i32) - 1,
            stride: self.nxc as i32,
            fold: self.ny as i32,
        }
    }
}

/// Offset that makes every accepted coordinate positive, so truncation is `floor`.
const OFF: f64 = 1_073_741_824.0; // 2^30
const LIMIT: f64 = 1.0e9;

#[inline(always)]
fn interp<F: Field>(f: &F, x: f64, y: f64, order: Order) -> f32 {
    // far outside (or NaN): zero without touching memory; also makes the casts below exact
    if !(x.abs() < LIMIT && y.abs() < LIMIT) {
        return 0.0;
    }
    let (xo, yo) = (x + OFF, y + OFF);
    // SAFETY: xo, yo ∈ (0, 2^31) and finite, so the truncating casts are in range.
    let (xi, yi) = unsafe { (xo.to_int_unchecked::<i64>(), yo.to_int_unchecked::<i64>()) };
    let tx = (xo - xi as f64) as f32;
    let ty = (yo - yi as f64) as f32;
    let ix = (xi - OFF as i64) as isize;
    let iy = (yi - OFF as i64) as isize;
    let d = f.data();
    match order {
        Order::Linear => {
            let (a, b, c, e) = if let Some(r) = f.rows(ix, iy, 1) {
                let x0 = ix as usize;
                // SAFETY: `rows` checked rows iy, iy+1 and columns ix, ix+1.
                unsafe {
                    (
                        *d.get_unchecked(r[0] + x0),
                        *d.get_unchecked(r[0] + x0 + 1),
                        *d.get_unchecked(r[1] + x0),
                        *d.get_unchecked(r[1] + x0 + 1),
                    )
                }
            } else {
                (
                    f.get(ix, iy),
                    f.get(ix + 1, iy),
                    f.get(ix, iy + 1),
                    f.get(ix + 1, iy + 1),
                )
            };
            let top = a + (b - a) * tx;
            let bot = c + (e - c) * tx;
            top + (bot - top) * ty
        }
        Order::Cubic => {
            let wx = keys_weights(tx);
            let wy = keys_weights(ty);
            let mut acc = 0.0f32;
            if let Some(r) = f.rows(ix, iy, 2) {
                let x0 = (ix - 1) as usize;
                for (m, wym) in wy.iter().enumerate() {
                    // SAFETY: `rows` checked rows iy−1..=iy+2 and columns ix−1..=ix+2.
                    let row = unsafe {
                        let p = d.get_unchecked(r[m] + x0..r[m] + x0 + 4);
                        wx[0] * p[0] + wx[1] * p[1] + wx[2] * p[2] + wx[3] * p[3]
                    };
                    acc += wym * row;
                }
            } else {
                for (m, wym) in wy.iter().enumerate() {
                    let yy = iy - 1 + m as isize;
                    let row = wx[0] * f.get(ix - 1, yy)
                        + wx[1] * f.get(ix, yy)
                        + wx[2] * f.get(ix + 1, yy)
                        + wx[3] * f.get(ix + 2, yy);
                    acc += wym * row;
                }
            }
            acc
        }
    }
}

/// Fill `out` (n_angle, n_radius) with `f` sampled at `pos(r, cosθ, sinθ)`; the third value
/// returned by `pos` multiplies the sample (emphasis).
///
/// Blocks of [`ANGLE_BLOCK`] angle rows are processed in parallel; inside a block the loop runs
/// radius-major so that consecutive samples (neighbouring angles at one radius) are close in
/// the source and share cache lines. Bilinear samples are taken a radius (one sample per angle
/// of the block) at a time by [`linear_batch`] on `isa` when the field opts in ([`Field::BATCH`]).
fn sample_grid<F, P>(f: &F, grid: &Grid, span: f64, order: Order, isa: Isa, pos: P) -> Array2<f32>
where
    F: Field,
    P: Fn(f64, f64, f64) -> (f64, f64, f32) + Sync,
{
    let radii = grid.radii();
    let (na, nr) = (grid.n_angle, grid.n_radius);
    // every element is written below: no zeroing pass over the output
    let mut out = Array2::<f32>::uninit((na, nr));
    let fna = na as f64;
    let inner = f.interior();
    // the batch indexes the field with i32
    let batched = F::BATCH && order == Order::Linear && f.data().len() < (i32::MAX as usize) / 2;
    let isa = isa.effective();
    let buf = out.as_slice_mut().expect("a fresh Array2 is contiguous");
    buf.par_chunks_mut(ANGLE_BLOCK * nr)
        .enumerate()
        .for_each(|(b, block)| {
            let rows = block.len() / nr;
            let i0 = b * ANGLE_BLOCK;
            let mut cs = [(0.0f64, 0.0f64); ANGLE_BLOCK];
            for (k, c) in cs.iter_mut().enumerate().take(rows) {
                let th = span * (i0 + k) as f64 / fna;
                let (s, co) = th.sin_cos();
                *c = (co, s);
            }
            let mut xs = [0.0f64; ANGLE_BLOCK];
            let mut ys = [0.0f64; ANGLE_BLOCK];
            let mut ws = [0.0f32; ANGLE_BLOCK];
            // results of RADIUS_TILE radii, written out row by row (contiguous stores into the
            // uninitialised output instead of 16 strided ones per radius; measured neutral on
            // 2048² spectra, kept for the simpler MaybeUninit writes)
            let mut tile = [[0.0f32; RADIUS_TILE]; ANGLE_BLOCK];
            for j0 in (0..nr).step_by(RADIUS_TILE) {
                let j1 = (j0 + RADIUS_TILE).min(nr);
                for (t, &r) in radii[j0..j1].iter().enumerate() {
                    for (k, &(c, s)) in cs.iter().enumerate() {
                        (xs[k], ys[k], ws[k]) = pos(r, c, s);
                    }
                    let vals = if batched {
                        linear_batch(f, &inner, &xs, &ys, isa)
                    } else {
                        std::array::from_fn(|k| interp(f, xs[k], ys[k], order))
                    };
                    for k in 0..ANGLE_BLOCK {
                        tile[k][t] = if ws[k] == 0.0 { 0.0 } else { ws[k] * vals[k] };
                    }
                }
                for (k, trow) in tile.iter().enumerate().take(rows) {
                    for (o, &v) in block[k * nr + j0..k * nr + j1].iter_mut().zip(trow) {
                        o.write(v);
                    }
                }
            }
        });
    // SAFETY: the blocks cover the output and each writes all its rows' radii j0..nr.
    unsafe { out.assume_init() }
}

/// Bilinear samples of `f` at `(xs[k], ys[k])`, bit-identical to [`interp`] with
/// [`Order::Linear`]. On AVX2 the interior lanes are computed eight at a time
/// ([`linear8_avx2`]: the same operations in the same order, no FMA); the lanes outside the
/// interior, and every lane on [`Isa::Scalar`], go through [`interp`].
#[inline]
fn linear_batch<F: Field>(
    f: &F,
    inner: &Interior,
    xs: &[f64; ANGLE_BLOCK],
    ys: &[f64; ANGLE_BLOCK],
    isa: Isa,
) -> [f32; ANGLE_BLOCK] {
    let mut out = [0.0f32; ANGLE_BLOCK];
    let mut edge = u32::MAX; // lanes still to do with `interp`
    #[cfg(target_arch = "x86_64")]
    if isa == Isa::Avx2Fma {
        edge = 0;
        for h in 0..ANGLE_BLOCK / 8 {
            let r = h * 8..h * 8 + 8;
            // SAFETY: `isa` is `effective()` (sample_grid): the CPU has AVX2; the lanes are
            // in bounds (`xs`, `ys`, `out` have ANGLE_BLOCK = 16 elements).
            let m = unsafe {
                linear8_avx2(f.data(), inner, &xs[r.clone()], &ys[r.clone()], &mut out[r])
            };
            edge |= m << (h * 8);
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (isa, inner);
    if edge != 0 {
        for (k, o) in out.iter_mut().enumerate() {
            if edge & (1 << k) != 0 {
                *o = interp(f, xs[k], ys[k], Order::Linear);
            }
        }
    }
    out
}

/// Eight bilinear samples with AVX2 gathers: writes the lanes inside `inner` into `out` and
/// returns the bit mask of the others (near but outside: to be done with bounds checks; far
/// or NaN: zero, which `interp` also returns).
///
/// Same arithmetic as [`interp`]: `x + 2^30` truncated to an integer is `floor(x) + 2^30`
/// (the coordinates are below `LIMIT = 1e9` in magnitude, so it fits an i32), the fraction is
/// `(x + 2^30 − trunc) as f32`, and the bilinear blend is `a + (b − a)·t` in f32 without FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn linear8_avx2(
    d: &[f32],
    inner: &Interior,
    xs: &[f64],
    ys: &[f64],
    out: &mut [f32],
) -> u32 {
    use std::arch::x86_64::*;
    debug_assert!(xs.len() == 8 && ys.len() == 8 && out.len() == 8);
    let off = _mm256_set1_pd(OFF);
    let limit = _mm256_set1_pd(LIMIT);
    let sign = _mm256_set1_pd(-0.0);
    // (floor index + 2^30 as i32 x4, fraction f32 x4) of four coordinates; `near` lanes only
    let split = |v: __m256d| -> (__m128i, __m128, __m256d) {
        let near = _mm256_cmp_pd::<_CMP_LT_OQ>(_mm256_andnot_pd(sign, v), limit);
        let vo = _mm256_add_pd(_mm256_and_pd(v, near), off);
        let i = _mm256_cvttpd_epi32(vo);
        let t = _mm256_cvtpd_ps(_mm256_sub_pd(vo, _mm256_cvtepi32_pd(i)));
        (i, t, near)
    };
    let (xa, txa, na) = split(_mm256_loadu_pd(xs.as_ptr()));
    let (xb, txb, nb) = split(_mm256_loadu_pd(xs.as_ptr().add(4)));
    let (ya, tya, ma) = split(_mm256_loadu_pd(ys.as_ptr()));
    let (yb, tyb, mb) = split(_mm256_loadu_pd(ys.as_ptr().add(4)));
    let bias = _mm256_set1_epi32(OFF as i32);
    let ix = _mm256_sub_epi32(_mm256_set_m128i(xb, xa), bias);
    let iy = _mm256_sub_epi32(_mm256_set_m128i(yb, ya), bias);
    let tx = _mm256_set_m128(txb, txa);
    let ty = _mm256_set_m128(tyb, tya);
    // near in x and y, as an i32 lane mask
    let pack = |a: __m256d, b: __m256d| -> __m256i {
        let m = _mm256_castpd_si256(_mm256_and_pd(a, b));
        // the low 32 bits of each 64-bit mask lane, in order
        let idx = _mm256_setr_epi32(0, 2, 4, 6, 0, 0, 0, 0);
        _mm256_permutevar8x32_epi32(m, idx)
    };
    let near_lo = pack(na, ma);
    let near_hi = pack(nb, mb);
    let near = _mm256_permute2x128_si256::<0x20>(near_lo, near_hi);
    let between = |v: __m256i, lo: i32, hi: i32| -> __m256i {
        let below = _mm256_cmpgt_epi32(_mm256_set1_epi32(lo), v);
        let above = _mm256_cmpgt_epi32(v, _mm256_set1_epi32(hi));
        _mm256_andnot_si256(_mm256_or_si256(below, above), _mm256_set1_epi32(-1))
    };
    let direct = _mm256_and_si256(
        between(ix, inner.x_lo, inner.x_hi),
        between(iy, inner.y_lo, inner.y_hi),
    );
    let mirrored = _mm256_and_si256(
        between(ix, inner.mx_lo, inner.mx_hi),
        between(iy, inner.my_lo, inner.my_hi),
    );
    let inside = _mm256_and_si256(near, _mm256_or_si256(direct, mirrored));
    let fold = _mm256_set1_epi32(inner.fold);
    let stride = _mm256_set1_epi32(inner.stride);
    let zero = _mm256_setzero_si256();
    let row = |y: __m256i| -> __m256i {
        let neg = _mm256_cmpgt_epi32(zero, y);
        _mm256_mullo_epi32(_mm256_add_epi32(y, _mm256_and_si256(neg, fold)), stride)
    };
    let one = _mm256_set1_epi32(1);
    // direct: a, b at row iy, columns ix, ix + 1; c, e at row iy + 1.
    // mirrored: (ix, iy) is read at (−ix, −iy), (ix + 1, iy) at (−ix − 1, −iy), ...: a at row
    // −iy column −ix, b one column left of it; c, e the same on row −iy − 1.
    let niy = _mm256_sub_epi32(zero, iy);
    let nix = _mm256_sub_epi32(zero, ix);
    let pa_d = _mm256_add_epi32(row(iy), ix);
    let pc_d = _mm256_add_epi32(row(_mm256_add_epi32(iy, one)), ix);
    let pa_m = _mm256_add_epi32(row(niy), nix);
    let pc_m = _mm256_add_epi32(row(_mm256_sub_epi32(niy, one)), nix);
    let pa = _mm256_blendv_epi8(pa_m, pa_d, direct);
    let pc = _mm256_blendv_epi8(pc_m, pc_d, direct);
    let step = _mm256_blendv_epi8(_mm256_set1_epi32(-1), one, direct);
    let (pb, pe) = (_mm256_add_epi32(pa, step), _mm256_add_epi32(pc, step));
    let mask = _mm256_castsi256_ps(inside);
    let z = _mm256_setzero_ps();
    let base = d.as_ptr();
    // masked gathers: lanes outside the interior read nothing and give 0
    let a = _mm256_mask_i32gather_ps::<4>(z, base, pa, mask);
    let b = _mm256_mask_i32gather_ps::<4>(z, base, pb, mask);
    let c = _mm256_mask_i32gather_ps::<4>(z, base, pc, mask);
    let e = _mm256_mask_i32gather_ps::<4>(z, base, pe, mask);
    let top = _mm256_add_ps(a, _mm256_mul_ps(_mm256_sub_ps(b, a), tx));
    let bot = _mm256_add_ps(c, _mm256_mul_ps(_mm256_sub_ps(e, c), tx));
    let v = _mm256_add_ps(top, _mm256_mul_ps(_mm256_sub_ps(bot, top), ty));
    _mm256_storeu_ps(out.as_mut_ptr(), v);
    // near lanes outside the interior: done by the caller
    let rest = _mm256_andnot_si256(inside, near);
    _mm256_movemask_ps(_mm256_castsi256_ps(rest)) as u32
}

/// Radii per tile of [`sample_grid`] (a 16 × 64 f32 tile is 4 KiB).
const RADIUS_TILE: usize = 64;

/// Angle rows per parallel work item of [`sample_grid`].
const ANGLE_BLOCK: usize = 16;

/// Log-polar resampling of an image about `center = (cx, cy)` (pixels), full circle.
///
/// `out[i, j] = image(cx + r_j cos θ_i, cy + r_j sin θ_i)`, θ_i = 2π i / n_angle.
pub fn log_polar_image(
    image: ArrayView2<f32>,
    center: (f64, f64),
    grid: &Grid,
    order: Order,
) -> Result<Array2<f32>, KernelError> {
    log_polar_image_on(image, center, grid, order, Isa::detect())
}

/// [`log_polar_image`] on the instruction set `isa` (the same numbers on every one).
pub fn log_polar_image_on(
    image: ArrayView2<f32>,
    center: (f64, f64),
    grid: &Grid,
    order: Order,
    isa: Isa,
) -> Result<Array2<f32>, KernelError> {
    grid.check()?;
    if !(center.0.is_finite() && center.1.is_finite()) {
        return Err(KernelError::value(
            "center",
            format!("must be finite, got {center:?}"),
        ));
    }
    let (ny, nx) = image.dim();
    if ny == 0 || nx == 0 {
        return Err(KernelError::shape("image", "non-empty (y, x)", "(0, _)"));
    }
    let img = image.as_standard_layout();
    let f = ImageField {
        data: img.as_slice().expect("standard layout is contiguous"),
        ny: ny as isize,
        nx: nx as isize,
    };
    let (cx, cy) = center;
    Ok(sample_grid(
        &f,
        grid,
        2.0 * std::f64::consts::PI,
        order,
        isa,
        |r, c, s| (cx + r * c, cy + r * s, 1.0),
    ))
}

/// Log-polar resampling of the half magnitude spectrum `mag[ky, kx]` (`kx = 0..=nx/2`, `ky` in
/// FFT order, the layout of `numpy.fft.rfft2`) of a real `(ny, nx)` image, over θ ∈ [0, π).
/// Radii are frequencies in cycles/pixel (`grid.r_max` ≤ 0.5 keeps every sample inside the
/// Nyquist band; samples beyond it read zero).
pub fn log_polar_half_spectrum(
    mag: ArrayView2<f32>,
    nx: usize,
    grid: &Grid,
    order: Order,
    emphasis: bool,
) -> Result<Array2<f32>, KernelError> {
    log_polar_half_spectrum_on(mag, nx, grid, order, emphasis, Isa::detect())
}

/// [`log_polar_half_spectrum`] on the instruction set `isa` (the same numbers on every one).
pub fn log_polar_half_spectrum_on(
    mag: ArrayView2<f32>,
    nx: usize,
    grid: &Grid,
    order: Order,
    emphasis: bool,
    isa: Isa,
) -> Result<Array2<f32>, KernelError> {
    grid.check()?;
    let (ny, nxc) = mag.dim();
    if ny == 0 || nx == 0 || nxc != nx / 2 + 1 {
        return Err(KernelError::shape(
            "spectrum",
            format!("(ny >= 1, nx/2 + 1 = {})", nx / 2 + 1),
            format!("({ny}, {nxc})"),
        ));
    }
    Ok(half_sample(mag, ny, nx, grid, order, emphasis, isa))
}

fn half_sample(
    mag: ArrayView2<f32>,
    ny: usize,
    nx: usize,
    grid: &Grid,
    order: Order,
    emphasis: bool,
    isa: Isa,
) -> Array2<f32> {
    let m = mag.as_standard_layout();
    let f = HalfField {
        data: m.as_slice().expect("standard layout is contiguous"),
        ny: ny as isize,
        nxc: (nx / 2 + 1) as isize,
        ky_lo: -((ny as isize - 1) / 2),
        ky_hi: ny as isize / 2,
    };
    let (fnx, fny) = (nx as f64, ny as f64);
    sample_grid(
        &f,
        grid,
        std::f64::consts::PI,
        order,
        isa,
        move |r, c, s| {
            let (u, v) = (r * c, r * s);
            let w = if emphasis { rc_emphasis(u, v) } else { 1.0 };
            (u * fnx, v * fny, w)
        },
    )
}

/// Reddy–Chatterji high-pass emphasis `H = (1 − X)(2 − X)`, `X = cos(πu)·cos(πv)`, with
/// `(u, v)` in cycles/pixel (0 at DC, 2 at the corners of the Nyquist square).
/// Reddy & Chatterji, IEEE TIP 5(8):1266 (1996), eq. (11).
#[inline(always)]
pub fn rc_emphasis(u: f64, v: f64) -> f32 {
    let x = (std::f64::consts::PI * u).cos() * (std::f64::consts::PI * v).cos();
    ((1.0 - x) * (2.0 - x)) as f32
}

pub use crate::window::tukey;

/// Subtract the mean and multiply by the separable Tukey window (`fraction` as in [`tukey`]).
pub fn apodize(image: ArrayView2<f32>, fraction: f64) -> Array2<f32> {
    let (ny, nx) = image.dim();
    let n = (ny * nx).max(1) as f64;
    let mean = (image.iter().map(|&v| v as f64).sum::<f64>() / n) as f32;
    let wy = tukey(ny, fraction);
    let wx = tukey(nx, fraction);
    let mut out = Array2::<f32>::zeros((ny, nx));
    out.axis_iter_mut(Axis(0))
        .into_par_iter()
        .zip(image.axis_iter(Axis(0)).into_par_iter())
        .enumerate()
        .for_each(|(y, (mut o, i))| {
            let a = wy[y];
            for ((o, &v), &b) in o.iter_mut().zip(i.iter()).zip(wx.iter()) {
                *o = (v - mean) * a * b;
            }
        });
    out
}

/// What the Fourier–Mellin log-polar is computed from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Magnitude {
    /// |F|
    Abs,
    /// ln(1 + |F| / mean|F| over the band-free spectrum)
    Log,
}

/// Fourier–Mellin descriptor of one image: apodise (`taper_fraction`), zero-pad to an
/// FFT-friendly size (at least the image size), real FFT (cached plans), |F| or ln(1 + |F|/m),
/// then the half-plane log-polar over the band `[grid.r_min, grid.r_max]` cycles/pixel with
/// optional Reddy–Chatterji emphasis. Output `(n_angle, n_radius)`, θ ∈ [0, π).
pub fn spectrum_log_polar(
    image: ArrayView2<f32>,
    grid: &Grid,
    order: Order,
    taper_fraction: f64,
    magnitude: Magnitude,
    emphasis: bool,
) -> Result<Array2<f32>, KernelError> {
    grid.check()?;
    if grid.r_max > 0.5 {
        return Err(KernelError::value(
            "r_max",
            format!("must be <= 0.5 cycles/pixel (Nyquist), got {}", grid.r_max),
        ));
    }
    let (ny, nx) = image.dim();
    if ny < 2 || nx < 2 {
        return Err(KernelError::shape(
            "image",
            "at least (2, 2)",
            format!("({ny}, {nx})"),
        ));
    }
    let ap = apodize(image, taper_fraction);
    let (py, px) = (fft::nice_size(ny), fft::nice_size(nx));
    let padded = if (py, px) == (ny, nx) {
        ap
    } else {
        let mut p = Array2::<f32>::zeros((py, px));
        p.slice_mut(ndarray::s![..ny, ..nx]).assign(&ap);
        p
    };
    let plan = fft::plan(py, px)?;
    let spec = plan.forward(padded.view())?; // (pxc, py), spec[kx, ky]
    let mut mag = Array2::<f32>::zeros(spec.dim());
    mag.axis_iter_mut(Axis(0))
        .into_par_iter()
        .zip(spec.axis_iter(Axis(0)).into_par_iter())
        .for_each(|(mut m, s)| {
            for (m, c) in m.iter_mut().zip(s.iter()) {
                *m = c.norm();
            }
        });
    if magnitude == Magnitude::Log {
        let n = mag.len().max(1) as f64;
        let mean = (mag.iter().map(|&v| v as f64).sum::<f64>() / n) as f32;
        let inv = if mean > 0.0 { 1.0 / mean } else { 1.0 };
        mag.par_mapv_inplace(|v| (1.0 + v * inv).ln());
    }
    // mag is [kx, ky]; the sampler reads [ky, kx]: a transposed view, no copy.
    Ok(half_sample(
        mag.t(),
        py,
        px,
        grid,
        order,
        emphasis,
        Isa::detect(),
    ))
}

/// Difference-of-Gaussians band-pass of an image, applied in Fourier space (periodic
/// boundaries; cached FFT plans): transfer `exp(−2π²σ_f²f²) − exp(−2π²σ_c²f²)` with `f` in
/// cycles/pixel (`σ_c = 0` keeps the low-pass only). The mean is removed.
pub fn dog_filter(
    image: ArrayView2<f32>,
    sigma_fine: f64,
    sigma_coarse: f64,
) -> Result<Array2<f32>, KernelError> {
    let (ny, nx) = image.dim();
    if ny == 0 || nx == 0 {
        return Err(KernelError::shape("image", "non-empty (y, x)", "(0, _)"));
    }
    if !(sigma_fine.is_finite()
        && sigma_coarse.is_finite()
        && sigma_fine >= 0.0
        && sigma_coarse >= 0.0)
    {
        return Err(KernelError::value(
            "sigma",
            format!("must be finite and >= 0, got {sigma_fine}, {sigma_coarse}"),
        ));
    }
    let plan = fft::plan(ny, nx)?;
    let mut spec = plan.forward(image)?; // (nxc, ny): spec[kx, ky]
    let c = 2.0 * std::f64::consts::PI * std::f64::consts::PI;
    let table = |n: usize, sigma: f64, signed: bool| -> Vec<f32> {
        let m = if signed { n } else { n / 2 + 1 };
        (0..m)
            .map(|k| {
                let f = if signed {
                    fft::signed_freq(k, n) as f64
                } else {
                    k as f64
                } / n as f64;
                (-c * sigma * sigma * f * f).exp() as f32
            })
            .collect()
    };
    let (fx_f, fy_f) = (table(nx, sigma_fine, false), table(ny, sigma_fine, true));
    let (fx_c, fy_c) = (
        table(nx, sigma_coarse, false),
        table(ny, sigma_coarse, true),
    );
    let use_coarse = sigma_coarse > 0.0;
    spec.axis_iter_mut(Axis(0))
        .into_par_iter()
        .enumerate()
        .for_each(|(kx, mut row)| {
            for (ky, v) in row.iter_mut().enumerate() {
                let mut h = fx_f[kx] * fy_f[ky];
                if use_coarse {
                    h -= fx_c[kx] * fy_c[ky];
                }
                *v *= h;
            }
        });
    spec[[0, 0]] = fft::C32::new(0.0, 0.0);
    plan.inverse(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive_bilinear(img: &Array2<f32>, x: f64, y: f64) -> f64 {
        let (ny, nx) = img.dim();
        let get = |xi: isize, yi: isize| -> f64 {
            if xi >= 0 && yi >= 0 && (xi as usize) < nx && (yi as usize) < ny {
                img[[yi as usize, xi as usize]] as f64
            } else {
                0.0
            }
        };
        let (x0, y0) = (x.floor(), y.floor());
        let (tx, ty) = (x - x0, y - y0);
        let (ix, iy) = (x0 as isize, y0 as isize);
        get(ix, iy) * (1.0 - tx) * (1.0 - ty)
            + get(ix + 1, iy) * tx * (1.0 - ty)
            + get(ix, iy + 1) * (1.0 - tx) * ty
            + get(ix + 1, iy + 1) * tx * ty
    }

    #[test]
    fn image_matches_naive_and_edges_are_zero_padded() {
        let img = Array2::from_shape_fn((13, 17), |(y, x)| ((y * 5 + x * 3) % 7) as f32 + 0.1);
        let g = Grid {
            n_angle: 24,
            n_radius: 9,
            r_min: 0.7,
            r_max: 11.0,
        };
        let out = log_polar_image(img.view(), (8.2, 6.0), &g, Order::Linear).unwrap();
        let radii = g.radii();
        for i in 0..24 {
            let th = 2.0 * std::f64::consts::PI * i as f64 / 24.0;
            for (j, r) in radii.iter().enumerate() {
                let e = naive_bilinear(&img, 8.2 + r * th.cos(), 6.0 + r * th.sin());
                assert!((out[[i, j]] as f64 - e).abs() < 1e-4, "{i} {j}");
            }
        }
        assert!((radii[8] - 11.0).abs() < 1e-12 && (radii[0] - 0.7).abs() < 1e-12);
    }

    #[test]
    fn cubic_reproduces_linear_ramps() {
        let img = Array2::from_shape_fn((40, 40), |(y, x)| 0.5 * x as f32 - 0.25 * y as f32);
        let g = Grid {
            n_angle: 16,
            n_radius: 5,
            r_min: 1.0,
            r_max: 12.0,
        };
        let out = log_polar_image(img.view(), (19.5, 19.5), &g, Order::Cubic).unwrap();
        for i in 0..16 {
            let th = 2.0 * std::f64::consts::PI * i as f64 / 16.0;
            for (j, r) in g.radii().iter().enumerate() {
                let (x, y) = (19.5 + r * th.cos(), 19.5 + r * th.sin());
                assert!((out[[i, j]] as f64 - (0.5 * x - 0.25 * y)).abs() < 1e-3);
            }
        }
    }

    #[test]
    fn half_spectrum_uses_hermitian_symmetry() {
        // a spectrum that is |F| of a cosine along x: peaks at (kx, ky) = (±4, 0) of nx = 16
        let (ny, nx) = (16usize, 16usize);
        let mut mag = Array2::<f32>::zeros((ny, nx / 2 + 1));
        mag[[0, 4]] = 1.0;
        let g = Grid {
            n_angle: 4,
            n_radius: 1,
            r_min: 0.25,
            r_max: 0.25,
        };
        let out = log_polar_half_spectrum(mag.view(), nx, &g, Order::Linear, false).unwrap();
        // θ = 0 reads (4, 0); θ = π/2 reads (0, 4): zero
        assert!((out[[0, 0]] - 1.0).abs() < 1e-6);
        assert!(out[[2, 0]].abs() < 1e-6);
        // a peak at (kx, ky) = (0, 4) seen at θ = π/2 only; (0, -4) = row 12 folds to θ = π/2 too
        let mut m2 = Array2::<f32>::zeros((ny, nx / 2 + 1));
        m2[[12, 0]] = 1.0;
        let out2 = log_polar_half_spectrum(m2.view(), nx, &g, Order::Linear, false).unwrap();
        // θ = π/2 → (0, +4): row 4 is zero; mirrored read at (-0, -4) → same column 0, row 12?
        // kx = 0 is not folded, so row 4 is read: zero. θ = 3π/4 is not sampled with 4 angles.
        assert!(out2[[2, 0]].abs() < 1e-6);
        // a peak at (1, 12) i.e. (kx, ky) = (1, -4): θ slightly > π/2 reads x < 0 → folded
        let mut m3 = Array2::<f32>::zeros((ny, nx / 2 + 1));
        m3[[12, 1]] = 1.0;
        let g3 = Grid {
            n_angle: 1024,
            n_radius: 1,
            r_min: (17.0f64).sqrt() / 16.0,
            r_max: (17.0f64).sqrt() / 16.0,
        };
        let out3 = log_polar_half_spectrum(m3.view(), nx, &g3, Order::Linear, false).unwrap();
        // (u, v) = (-1, 4)/16 is the mirror of (1, -4): angle atan2(4, -1)
        let th = (4.0f64).atan2(-1.0);
        let i = (th / std::f64::consts::PI * 1024.0).round() as usize;
        assert!(out3[[i, 0]] > 0.9, "{}", out3[[i, 0]]);
    }

    #[test]
    fn rotation_and_scale_become_shifts() {
        // a rotated, scaled Gaussian-textured image: the log-polar of the spectrum shifts
        let n = 128usize;
        let blob = |x: f64, y: f64| -> f32 {
            let mut v = 0.0;
            for k in 0..6 {
                let a = k as f64 * 1.1;
                let (cx, cy) = (20.0 * a.cos() + 3.0 * k as f64, 18.0 * a.sin());
                v += (-((x - cx).powi(2) + (y - cy).powi(2)) / (2.0 * (2.0 + k as f64))).exp();
            }
            v as f32
        };
        let c = (n as f64 - 1.0) / 2.0;
        let a = Array2::from_shape_fn((n, n), |(y, x)| blob(x as f64 - c, y as f64 - c));
        // moving(x) = ref(R(30°)·x): moving is ref rotated by -30°
        let th = 30f64.to_radians();
        let b = Array2::from_shape_fn((n, n), |(y, x)| {
            let (dx, dy) = (x as f64 - c, y as f64 - c);
            blob(th.cos() * dx - th.sin() * dy, th.sin() * dx + th.cos() * dy)
        });
        let g = Grid {
            n_angle: 180,
            n_radius: 64,
            r_min: 0.02,
            r_max: 0.3,
        };
        let la =
            spectrum_log_polar(a.view(), &g, Order::Linear, 0.5, Magnitude::Abs, false).unwrap();
        let lb =
            spectrum_log_polar(b.view(), &g, Order::Linear, 0.5, Magnitude::Abs, false).unwrap();
        // lb(φ) ≈ la(φ + 30°): best circular shift of rows
        let mut best = (f64::MIN, 0usize);
        for sh in 0..180 {
            let mut acc = 0.0f64;
            for i in 0..180 {
                for j in 0..64 {
                    acc += la[[(i + sh) % 180, j]] as f64 * lb[[i, j]] as f64;
                }
            }
            if acc > best.0 {
                best = (acc, sh);
            }
        }
        assert_eq!(best.1, 30);
    }

    #[test]
    fn dog_filter_keeps_the_band_and_removes_the_mean() {
        let (ny, nx) = (32usize, 48usize);
        // a cosine of 8 cycles along x plus a constant: the DoG scales the cosine by H(f)
        let img = Array2::from_shape_fn((ny, nx), |(_, x)| {
            3.0 + (2.0 * std::f32::consts::PI * 8.0 * x as f32 / nx as f32).cos()
        });
        let out = dog_filter(img.view(), 1.0, 4.0).unwrap();
        let f = 8.0 / nx as f64;
        let c = 2.0 * std::f64::consts::PI.powi(2);
        let h = (-c * f * f).exp() - (-c * 16.0 * f * f).exp();
        for x in 0..nx {
            let e = h * (2.0 * std::f64::consts::PI * 8.0 * x as f64 / nx as f64).cos();
            assert!(
                (out[[5, x]] as f64 - e).abs() < 1e-4,
                "{} vs {e}",
                out[[5, x]]
            );
        }
        assert!(dog_filter(img.view(), -1.0, 2.0).is_err());
    }

    #[test]
    fn every_isa_gives_the_scalar_numbers() {
        // bit-identical: the SIMD bilinear path does the scalar arithmetic in the same order
        let (ny, nx) = (37usize, 50usize);
        let mag = Array2::from_shape_fn((ny, nx / 2 + 1), |(y, x)| {
            ((y * 13 + x * 7) % 23) as f32 * 0.37 - 2.0
        });
        let img = Array2::from_shape_fn((29, 41), |(y, x)| ((y * 5 + x * 11) % 17) as f32);
        let g = Grid {
            n_angle: 77,
            n_radius: 45,
            r_min: 0.004,
            r_max: 0.6,
        };
        let gi = Grid {
            n_angle: 77,
            n_radius: 45,
            r_min: 0.3,
            r_max: 40.0,
        };
        for order in [Order::Linear, Order::Cubic] {
            for emphasis in [false, true] {
                let s =
                    log_polar_half_spectrum_on(mag.view(), nx, &g, order, emphasis, Isa::Scalar)
                        .unwrap();
                for isa in Isa::available() {
                    let o = log_polar_half_spectrum_on(mag.view(), nx, &g, order, emphasis, isa)
                        .unwrap();
                    assert_eq!(o, s, "{isa:?} {order:?} {emphasis}");
                }
            }
            // image: centre inside, on the edge, far outside (1e12: the far-read branch)
            for center in [(20.3, 14.7), (0.0, 28.0), (-7.5, 3.25), (1e12, 0.0)] {
                let s = log_polar_image_on(img.view(), center, &gi, order, Isa::Scalar).unwrap();
                for isa in Isa::available() {
                    let o = log_polar_image_on(img.view(), center, &gi, order, isa).unwrap();
                    assert_eq!(o, s, "{isa:?} {order:?} {center:?}");
                }
            }
        }
    }

    #[test]
    fn bad_grids_are_errors() {
        let img = Array2::<f32>::zeros((4, 4));
        let mut g = Grid {
            n_angle: 0,
            n_radius: 4,
            r_min: 1.0,
            r_max: 2.0,
        };
        assert!(log_polar_image(img.view(), (1.0, 1.0), &g, Order::Linear).is_err());
        g.n_angle = 4;
        g.r_min = 0.0;
        assert!(log_polar_image(img.view(), (1.0, 1.0), &g, Order::Linear).is_err());
        g.r_min = 3.0;
        assert!(log_polar_image(img.view(), (1.0, 1.0), &g, Order::Linear).is_err());
        g.r_min = 1.0;
        assert!(log_polar_image(img.view(), (f64::NAN, 1.0), &g, Order::Linear).is_err());
        assert!(Order::from_order(2).is_err());
    }
}
