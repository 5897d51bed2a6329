//! Rescaling of images by arbitrary factors (shrinking by large factors, enlarging).
//!
//! Geometry (all methods): with zoom `f` (output pixels per input pixel) along an axis, output
//! pixel `j` is centred on input position `x = (j + 0.5) / f − 0.5` (pixel centres on integer
//! indices, pixel `i` covering `[i − 0.5, i + 0.5)`). This is the convention of OpenCV
//! `resize` and of exact binning; an image's centre `(n − 1)/2` maps to `(c + 0.5)·f − 0.5`.
//!
//! Methods:
//! * [`area_taps`]: exact area averaging with fractional box weights. Output pixel `j` is the
//!   mean of the input over `[j/f, (j+1)/f)` in edge coordinates, partially covered pixels
//!   weighted by the covered length (OpenCV `INTER_AREA` for shrinking). Noise-optimal for
//!   large shrink factors (white-noise σ drops by `1/f`).
//! * [`lanczos3_taps`]: Lanczos-3 windowed sinc whose support is widened by `1/f` when
//!   shrinking (an antialias filter, as IMOD `libcfshr/zoomdown.c : selectZoomFilter` type 5,
//!   used by SerialEM `ProcessImage.cpp : TransformToOtherMag` for scalings < 0.8); plain
//!   Lanczos-3 interpolation when enlarging.
//! * [`fourier_rescale`]: Fourier cropping / zero padding (band-limited, periodic), with the
//!   half-pixel phase shift that gives the same pixel-centre mapping as the other methods; the
//!   Nyquist term of even sizes is kept exactly (split on enlarging, aliased sum on shrinking).
//!
//! The separable methods run one pass over the input rows (memory-bandwidth bound): for each
//! output row, the needed input rows are accumulated with their weights into a row buffer, which
//! is then reduced horizontally. Input positions outside the image are clamped to the edge.

use ndarray::{Array2, ArrayView2, ArrayViewMut2, Axis};
use rayon::prelude::*;

use crate::fft::{self, C32};
use crate::warp::Sample;
use crate::KernelError;
use rustfft::num_complex::Complex64;

/// Per-output-pixel taps along one axis: `width` (clamped index, weight) pairs per output pixel.
#[derive(Clone, Debug)]
pub struct Taps {
    pub n_out: usize,
    pub width: usize,
    pub index: Vec<usize>,
    pub weight: Vec<f32>,
}

impl Taps {
    fn build(
        n_in: usize,
        n_out: usize,
        width: usize,
        mut f: impl FnMut(usize) -> Vec<(isize, f64)>,
    ) -> Taps {
        let mut index = vec![0usize; n_out * width];
        let mut weight = vec![0f32; n_out * width];
        for j in 0..n_out {
            let taps = f(j);
            let total: f64 = taps.iter().map(|t| t.1).sum();
            let norm = if total.abs() > 1e-12 {
                1.0 / total
            } else {
                0.0
            };
            // merge clamped duplicates so each output uses at most `width` taps
            let mut k = 0;
            for (i, w) in taps {
                if w == 0.0 {
                    continue;
                }
                let ic = i.clamp(0, n_in as isize - 1) as usize;
                if k > 0 && index[j * width + k - 1] == ic {
                    weight[j * width + k - 1] += (w * norm) as f32;
                } else if k < width {
                    index[j * width + k] = ic;
                    weight[j * width + k] = (w * norm) as f32;
                    k += 1;
                }
            }
            for t in k..width {
                index[j * width + t] = index[j * width + k.saturating_sub(1).min(width - 1)];
                weight[j * width + t] = 0.0;
            }
        }
        Taps {
            n_out,
            width,
            index,
            weight,
        }
    }
}

fn check_zoom(f: f64) -> Result<(), KernelError> {
    if !(f.is_finite() && f > 0.0) {
        return Err(KernelError::value(
            "factor",
            format!("must be finite and > 0, got {f}"),
        ));
    }
    Ok(())
}

/// Exact area-averaging taps for zoom `f ≤ 1` (for `f > 1` the box is narrower than a pixel and
/// this degenerates to nearest/linear-like sampling; use another method for enlarging).
pub fn area_taps(n_in: usize, n_out: usize, f: f64) -> Result<Taps, KernelError> {
    check_zoom(f)?;
    let s = 1.0 / f; // input pixels per output pixel
    let width = s.ceil() as usize + 2;
    Ok(Taps::build(n_in, n_out, width, |j| {
        let e0 = j as f64 * s;
        let e1 = e0 + s;
        let i0 = e0.floor() as isize;
        let i1 = (e1.ceil() as isize).max(i0 + 1);
        (i0..i1)
            .map(|i| {
                let lo = e0.max(i as f64);
                let hi = e1.min(i as f64 + 1.0);
                (i, (hi - lo).max(0.0))
            })
            .collect()
    }))
}

/// The Lanczos-3 kernel, defined once in [`crate::interp`] (re-exported at its old path).
pub use crate::interp::lanczos3;

/// Lanczos-3 taps; the kernel is stretched by `1/f` when shrinking (antialiasing).
pub fn lanczos3_taps(n_in: usize, n_out: usize, f: f64) -> Result<Taps, KernelError> {
    check_zoom(f)?;
    let s = 1.0 / f;
    let support = 3.0 * s.max(1.0);
    let width = 2 * support.ceil() as usize + 2;
    Ok(Taps::build(n_in, n_out, width, |j| {
        let x = (j as f64 + 0.5) * s - 0.5;
        let i0 = (x - support).floor() as isize;
        let i1 = (x + support).ceil() as isize;
        (i0..=i1)
            .map(|i| (i, lanczos3((i as f64 - x) / s.max(1.0))))
            .collect()
    }))
}

/// Checks a non-empty image, the output shape against the taps and every tap index.
fn check_separable_args(
    (ny, nx): (usize, usize),
    ty: &Taps,
    tx: &Taps,
    out_dim: (usize, usize),
) -> Result<(), KernelError> {
    if ny == 0 || nx == 0 {
        return Err(KernelError::shape(
            "image",
            "non-empty (y, x)",
            format!("({ny}, {nx})"),
        ));
    }
    if out_dim != (ty.n_out, tx.n_out) {
        return Err(KernelError::shape(
            "out",
            format!("({}, {})", ty.n_out, tx.n_out),
            format!("{out_dim:?}"),
        ));
    }
    if ty.index.iter().any(|&i| i >= ny) || tx.index.iter().any(|&i| i >= nx) {
        return Err(KernelError::value("taps", "index outside the image"));
    }
    Ok(())
}

/// `acc = Σ w·row(r)` over the `(r, w)` of `taps`, rows of `nx` values in `data`: 4 input rows
/// at a time (one load/store of the L1-resident row buffer per 4 input rows, same summation
/// order as one at a time).
#[inline]
fn accumulate_rows<T: Sample>(acc: &mut [T], data: &[T], nx: usize, taps: &[(usize, T)]) {
    let row = |r: usize| &data[r * nx..(r + 1) * nx];
    acc.iter_mut().for_each(|a| *a = T::zero());
    for g in taps.chunks(4) {
        match *g {
            [(r0, w0), (r1, w1), (r2, w2), (r3, w3)] => {
                let (s0, s1, s2, s3) = (row(r0), row(r1), row(r2), row(r3));
                for ((((a, v0), v1), v2), v3) in acc
                    .iter_mut()
                    .zip(s0.iter())
                    .zip(s1.iter())
                    .zip(s2.iter())
                    .zip(s3.iter())
                {
                    *a = *a + w0 * *v0 + w1 * *v1 + w2 * *v2 + w3 * *v3;
                }
            }
            [(r0, w0), (r1, w1), (r2, w2)] => {
                let (s0, s1, s2) = (row(r0), row(r1), row(r2));
                for (((a, v0), v1), v2) in
                    acc.iter_mut().zip(s0.iter()).zip(s1.iter()).zip(s2.iter())
                {
                    *a = *a + w0 * *v0 + w1 * *v1 + w2 * *v2;
                }
            }
            [(r0, w0), (r1, w1)] => {
                let (s0, s1) = (row(r0), row(r1));
                for ((a, v0), v1) in acc.iter_mut().zip(s0.iter()).zip(s1.iter()) {
                    *a = *a + w0 * *v0 + w1 * *v1;
                }
            }
            [(r0, w0)] => {
                for (a, v0) in acc.iter_mut().zip(row(r0).iter()) {
                    *a = *a + w0 * *v0;
                }
            }
            _ => {}
        }
    }
}

/// Whether every value of `acc` is finite (independent lanes: v·0 is 0 for finite v, NaN for
/// NaN/±inf).
#[inline]
fn all_finite<T: Sample>(acc: &[T]) -> bool {
    let mut lanes = [T::zero(); 8];
    let ch = acc.chunks_exact(8);
    let rem = ch.remainder();
    for c in ch {
        for k in 0..8 {
            lanes[k] = lanes[k] + c[k] * T::zero();
        }
    }
    lanes.iter().chain(rem.iter()).all(|v| v.is_finite())
}

/// `orow[i] = Σ_t tx.weight[i, t]·acc[tx.index[i, t]]` (the horizontal pass).
#[inline]
fn reduce_row<'o, T: Sample>(acc: &[T], tx: &Taps, orow: impl Iterator<Item = &'o mut T>) {
    let wx = tx.width;
    for (i, o) in orow.enumerate() {
        let mut s = T::zero();
        let base = i * wx;
        for t in 0..wx {
            s = s + T::of_f64(tx.weight[base + t] as f64) * acc[tx.index[base + t]];
        }
        *o = s;
    }
}

/// Non-finite input pixels in the rows the vertical pass did not vouch for: rows no output row
/// reads (beyond the last box, or every row when the output is tiny), or every row once a row
/// buffer was non-finite (finite values may overflow in the sum, which is not an input error).
fn count_unchecked_non_finite<T: Sample>(
    data: &[T],
    (ny, nx): (usize, usize),
    ty: &Taps,
    n_bad_rows: usize,
) -> usize {
    let mut used = vec![false; ny];
    for (&i, &w) in ty.index.iter().zip(ty.weight.iter()) {
        if w != 0.0 {
            used[i] = true;
        }
    }
    let count_bad = |r: usize| {
        data[r * nx..(r + 1) * nx]
            .iter()
            .filter(|v| !v.is_finite())
            .count()
    };
    (0..ny)
        .into_par_iter()
        .filter(|&r| n_bad_rows > 0 || !used[r])
        .map(count_bad)
        .sum()
}

/// Apply separable taps: `out[j, i] = Σ_a Σ_b ty[j,a]·tx[i,b]·src[ty.idx, tx.idx]`.
pub fn resample_separable<T: Sample>(
    src: ArrayView2<T>,
    ty: &Taps,
    tx: &Taps,
    mut out: ArrayViewMut2<T>,
) -> Result<(), KernelError> {
    let (ny, nx) = src.dim();
    check_separable_args((ny, nx), ty, tx, out.dim())?;
    let contiguous = src.as_standard_layout();
    let data = contiguous
        .as_slice()
        .expect("standard layout is contiguous");
    let wy = ty.width;
    // One streaming pass over the input: for each output row, its input rows are accumulated
    // into a row buffer, which is then reduced horizontally. The finiteness of every input
    // pixel is checked on the way (a non-finite pixel with a non-zero weight makes the row
    // buffer non-finite), so callers need no separate pass.
    let n_bad_rows: usize = out
        .axis_iter_mut(Axis(0))
        .into_par_iter()
        .enumerate()
        .with_min_len(2)
        .map_init(
            || (vec![T::zero(); nx], Vec::<(usize, T)>::with_capacity(wy)),
            |(acc, taps), (j, mut orow)| {
                taps.clear();
                for t in 0..wy {
                    let w = ty.weight[j * wy + t];
                    if w != 0.0 {
                        taps.push((ty.index[j * wy + t], T::of_f64(w as f64)));
                    }
                }
                accumulate_rows(acc, data, nx, taps);
                let finite = all_finite(acc);
                reduce_row(acc, tx, orow.iter_mut());
                usize::from(!finite)
            },
        )
        .sum();
    let bad = count_unchecked_non_finite(data, (ny, nx), ty, n_bad_rows);
    if bad > 0 {
        return Err(KernelError::value(
            "image",
            format!("{bad} pixel(s) are NaN or inf; expected finite values"),
        ));
    }
    Ok(())
}

/// Which separable filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeparableMethod {
    Area,
    Lanczos3,
}

/// Rescale with zooms `(fy, fx)` into an `(ny_out, nx_out)` image with a separable method.
pub fn rescale_separable<T: Sample>(
    src: ArrayView2<T>,
    out_shape: (usize, usize),
    zoom: (f64, f64),
    method: SeparableMethod,
) -> Result<Array2<T>, KernelError> {
    let (ny, nx) = src.dim();
    if out_shape.0 == 0 || out_shape.1 == 0 {
        return Err(KernelError::shape(
            "output_shape",
            "positive sizes",
            format!("{out_shape:?}"),
        ));
    }
    let (ty, tx) = match method {
        SeparableMethod::Area => (
            area_taps(ny, out_shape.0, zoom.0)?,
            area_taps(nx, out_shape.1, zoom.1)?,
        ),
        SeparableMethod::Lanczos3 => (
            lanczos3_taps(ny, out_shape.0, zoom.0)?,
            lanczos3_taps(nx, out_shape.1, zoom.1)?,
        ),
    };
    let mut out = Array2::<T>::zeros(out_shape);
    resample_separable(src, &ty, &tx, out.view_mut())?;
    Ok(out)
}

/// Input frequencies feeding output bin `ko` of a length-`m` axis when a length-`n` axis is
/// Fourier rescaled: up to two `(signed input frequency, weight)` pairs.
///
/// The input is read as its symmetric trigonometric interpolant: for even `n` the Nyquist
/// coefficient is split in halves at `+n/2` and `−n/2` (the real interpolant `F·cos(πx)`), every
/// other `|s| < n/2` has weight 1. Output bin `ko` (signed `so`) takes `s = so`, and for the
/// Nyquist bin of an even `m` also `s = −m/2`, the two frequencies that alias onto it when the
/// interpolant is sampled at `m` points. Hence: enlarging from an even size puts half of the input
/// Nyquist term at `+n/2` and half at `−n/2`; shrinking to an even size gives the output Nyquist
/// bin the sum of the input `±m/2` terms (real for real input); `m = n` is the identity.
#[inline]
fn nyquist_aware_sources(ko: usize, n: usize, m: usize) -> ([(isize, f64); 2], usize) {
    let so = fft::signed_freq(ko, m);
    let mut cands = [so, 0];
    let mut nc = 1;
    if m % 2 == 0 && ko == m / 2 {
        cands[1] = -so;
        nc = 2;
    }
    let mut out = [(0isize, 0.0f64); 2];
    let mut k = 0;
    for &s in &cands[..nc] {
        let a = s.unsigned_abs();
        let w = if 2 * a < n {
            1.0
        } else if 2 * a == n {
            0.5
        } else {
            continue;
        };
        out[k] = (s, w);
        k += 1;
    }
    (out, k)
}

/// Fourier crop / zero-pad a float32 image to `out_shape` (zoom `m/n` per axis), with the
/// half-pixel phase shift so that output pixel `j` samples input position `(j+0.5)·n/m − 0.5`.
///
/// Exact at the Nyquist frequency (see `nyquist_aware_sources`): the output samples the
/// input's symmetric band-limited interpolant (even-size Nyquist term split between `±n/2`),
/// truncated to the output band, so enlarging keeps a Nyquist cosine, enlarging then shrinking
/// back returns the input to float precision for even and odd sizes, and the mean is kept.
pub fn fourier_rescale(
    src: ArrayView2<f32>,
    out_shape: (usize, usize),
) -> Result<Array2<f32>, KernelError> {
    let (ny, nx) = src.dim();
    let (my, mx) = out_shape;
    if ny == 0 || nx == 0 || my == 0 || mx == 0 {
        return Err(KernelError::shape(
            "image/output_shape",
            "non-empty",
            format!("{:?} -> {:?}", (ny, nx), out_shape),
        ));
    }
    let pin = fft::plan(ny, nx)?;
    let pout = fft::plan(my, mx)?;
    let spec = pin.forward(src)?;
    let mxc = mx / 2 + 1;
    let mut out = Array2::<C32>::zeros((mxc, my));
    // shift δ = 0.5·(n/m − 1) input pixels: g(x) = f(x + δ) ⇔ G(k) = F(k)·exp(+2πi k δ / n)
    let dy = 0.5 * (ny as f64 / my as f64 - 1.0);
    let dx = 0.5 * (nx as f64 / mx as f64 - 1.0);
    let scale = (my * mx) as f64 / (ny * nx) as f64;
    // input coefficient at signed frequencies (sx, sy) from the stored half spectrum
    // (kx ≥ 0; a negative sx reads the Hermitian partner conj(F(−sx, −sy)))
    let coef = |sx: isize, sy: isize| -> Complex64 {
        let wrap = |s: isize, n: usize| s.rem_euclid(n as isize) as usize;
        let (v, conj) = if sx >= 0 {
            (spec[[sx as usize, wrap(sy, ny)]], false)
        } else {
            (spec[[(-sx) as usize, wrap(-sy, ny)]], true)
        };
        let v = Complex64::new(v.re as f64, v.im as f64);
        if conj {
            v.conj()
        } else {
            v
        }
    };
    // the shift phase is separable: exp(2πi(sx·dx/nx + sy·dy/ny)) = px(sx)·py(sy); per-axis
    // tables of (signed source frequency, weight × phase) for each output bin
    type Src = ([(isize, Complex64); 2], usize);
    let table = |n: usize, m: usize, d: f64| -> Vec<Src> {
        (0..m)
            .map(|ko| {
                let (src, k) = nyquist_aware_sources(ko, n, m);
                let mut t = [(0isize, Complex64::new(0.0, 0.0)); 2];
                for (o, &(s, w)) in t.iter_mut().zip(&src[..k]) {
                    let ph = 2.0 * std::f64::consts::PI * s as f64 * d / n as f64;
                    *o = (s, Complex64::new(ph.cos(), ph.sin()) * w);
                }
                (t, k)
            })
            .collect()
    };
    let ytab = table(ny, my, dy);
    let xtab = table(nx, mx, dx);
    out.axis_iter_mut(Axis(0))
        .into_par_iter()
        .enumerate()
        .for_each(|(kxo, mut orow)| {
            let (xs, nxs) = xtab[kxo];
            if nxs == 0 {
                return;
            }
            for (kyo, o) in orow.iter_mut().enumerate() {
                let (ys, nys) = ytab[kyo];
                let mut acc = Complex64::new(0.0, 0.0);
                for &(sx, px) in &xs[..nxs] {
                    for &(sy, py) in &ys[..nys] {
                        acc += coef(sx, sy) * (px * py);
                    }
                }
                acc *= scale;
                *o = C32::new(acc.re as f32, acc.im as f32);
            }
        });
    pout.inverse(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn area_integer_factor_is_binning() {
        let img = Array2::from_shape_fn((12, 9), |(y, x)| (y * 9 + x) as f64);
        let out = rescale_separable(
            img.view(),
            (4, 3),
            (1.0 / 3.0, 1.0 / 3.0),
            SeparableMethod::Area,
        )
        .unwrap();
        for j in 0..4 {
            for i in 0..3 {
                let mut s = 0.0;
                for y in 3 * j..3 * j + 3 {
                    for x in 3 * i..3 * i + 3 {
                        s += img[[y, x]];
                    }
                }
                assert!((out[[j, i]] - s / 9.0).abs() < 1e-4);
            }
        }
    }

    #[test]
    fn area_fractional_preserves_constant_and_ramp_centre() {
        let img = Array2::from_shape_fn((50, 40), |(_, x)| x as f64);
        let f = 1.0 / 3.7;
        let out = rescale_separable(img.view(), (13, 10), (f, f), SeparableMethod::Area).unwrap();
        for i in 0..10 {
            let expect = (i as f64 + 0.5) / f - 0.5;
            // fractional boxes sample pixelated data slightly off-centre (< 0.05 px)
            assert!(
                (out[[5, i]] - expect).abs() < 0.05,
                "{} vs {}",
                out[[5, i]],
                expect
            );
        }
        let l = rescale_separable(img.view(), (13, 10), (f, f), SeparableMethod::Lanczos3).unwrap();
        for i in 2..8 {
            let expect = (i as f64 + 0.5) / f - 0.5;
            assert!(
                (l[[5, i]] - expect).abs() < 1e-2,
                "{} vs {}",
                l[[5, i]],
                expect
            );
        }
    }

    #[test]
    fn fourier_keeps_mean_and_low_frequency() {
        let n = 64usize;
        let img = Array2::from_shape_fn((n, n), |(y, x)| {
            1.5 + (2.0 * std::f32::consts::PI * 3.0 * x as f32 / n as f32).cos() + 0.0 * y as f32
        });
        let out = fourier_rescale(img.view(), (32, 32)).unwrap();
        let m = out.mean().unwrap();
        assert!((m - 1.5).abs() < 1e-4);
        for i in 0..32 {
            let x = (i as f32 + 0.5) * 2.0 - 0.5;
            let expect = 1.5 + (2.0 * std::f32::consts::PI * 3.0 * x / n as f32).cos();
            assert!((out[[3, i]] - expect).abs() < 1e-3);
        }
    }

    #[test]
    fn fourier_nyquist_cosine_survives_enlargement() {
        // cos(πx) on an even grid is the pure Nyquist term: its interpolant is cos(πx)
        let (n, m) = (16usize, 40usize);
        let img = Array2::from_shape_fn((6, n), |(_, x)| if x % 2 == 0 { 1.0f32 } else { -1.0 });
        let out = fourier_rescale(img.view(), (6, m)).unwrap();
        for j in 0..m {
            let x = (j as f64 + 0.5) * n as f64 / m as f64 - 0.5;
            let expect = (std::f64::consts::PI * x).cos() as f32;
            assert!(
                (out[[2, j]] - expect).abs() < 1e-5,
                "{j}: {} vs {expect}",
                out[[2, j]]
            );
        }
    }

    #[test]
    fn fourier_enlarge_then_shrink_is_identity() {
        for &((ny, nx), (my, mx)) in &[
            ((10usize, 12usize), (23usize, 30usize)),
            ((9, 13), (20, 27)),
            ((8, 7), (8, 16)),
            ((6, 6), (6, 6)),
        ] {
            let img = Array2::from_shape_fn((ny, nx), |(y, x)| {
                ((y * 7 + x * 13) % 11) as f32 - 0.4 * (x as f32)
            });
            let up = fourier_rescale(img.view(), (my, mx)).unwrap();
            let back = fourier_rescale(up.view(), (ny, nx)).unwrap();
            for (a, b) in back.iter().zip(img.iter()) {
                assert!(
                    (a - b).abs() < 1e-4,
                    "{:?}->{:?}: {a} vs {b}",
                    (ny, nx),
                    (my, mx)
                );
            }
        }
    }
}
