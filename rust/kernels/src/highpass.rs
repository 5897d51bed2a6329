//! Masked Gaussian high-pass of an image stack by normalised convolution (f64): each image
//! minus its Gaussian-smoothed version over a mask, the smooth background that the
//! cross-magnification refinement leaves free (`emgeom.crossmag._refine_model`).
//!
//! `out = mask · (img − G∗(mask·img) / max(G∗mask, 1e-12))`, the convolutions done by real
//! FFTs on a zero-padded frame `(py, px)` (no wrap-around when the padding covers the kernel's
//! support), with the Gaussian's transfer function `exp(−2π²σ²(fx² + fy²))` (frequencies in
//! cycles per pixel), as numpy's `irfft2(rfft2(x, s) · g, s)`. Images run in parallel; each is
//! independent, so the result does not depend on the thread count.
use crate::KernelError;
use ndarray::{Array2, Array3, ArrayView2, ArrayView3, ArrayViewMut2, Axis, Zip};
use rayon::prelude::*;
use realfft::num_complex::Complex;
use realfft::RealFftPlanner;
use rustfft::FftPlanner;
use std::sync::Arc;

type C64 = Complex<f64>;

/// The 2-D real FFT plans of one padded frame and the Gaussian's transfer function.
struct Frame {
    py: usize,
    px: usize,
    r2c: Arc<dyn realfft::RealToComplex<f64>>,
    c2r: Arc<dyn realfft::ComplexToReal<f64>>,
    col_fwd: Arc<dyn rustfft::Fft<f64>>,
    col_inv: Arc<dyn rustfft::Fft<f64>>,
    /// `(py, px/2 + 1)` transfer function, with the inverse's `1/(py·px)` folded in.
    gain: Array2<f64>,
}

impl Frame {
    fn new(py: usize, px: usize, sigma: f64) -> Self {
        let mut real = RealFftPlanner::<f64>::new();
        let mut complex = FftPlanner::<f64>::new();
        let nxh = px / 2 + 1;
        let k = -2.0 * std::f64::consts::PI.powi(2) * sigma * sigma;
        let norm = 1.0 / (py * px) as f64;
        // numpy's fftfreq: index i -> i/n for i <= (n − 1)/2, else (i − n)/n; rfftfreq: j/n.
        let freq = |i: usize, n: usize| {
            if i <= (n - 1) / 2 {
                i as f64 / n as f64
            } else {
                (i as f64 - n as f64) / n as f64
            }
        };
        let gain = Array2::from_shape_fn((py, nxh), |(y, x)| {
            let fy = freq(y, py);
            let fx = x as f64 / px as f64;
            (k * (fx * fx + fy * fy)).exp() * norm
        });
        Frame {
            py,
            px,
            r2c: real.plan_fft_forward(px),
            c2r: real.plan_fft_inverse(px),
            col_fwd: complex.plan_fft_forward(py),
            col_inv: complex.plan_fft_inverse(py),
            gain,
        }
    }

    /// `G∗x` on the top-left `(ny, nx)` of the frame, for `x` given by `fill(y, row)` on the
    /// first `ny` rows (zero elsewhere), written to `out` (`(ny, nx)`).
    fn smooth(&self, fill: impl Fn(usize, &mut [f64]), mut out: ArrayViewMut2<f64>) {
        let (ny, nx) = out.dim();
        let nxh = self.px / 2 + 1;
        // forward: rows (real) then columns (complex), transposed spectrum (nxh, py)
        let mut spec = vec![C64::new(0.0, 0.0); nxh * self.py];
        let mut row = vec![0.0f64; self.px];
        let mut row_spec = vec![C64::new(0.0, 0.0); nxh];
        for y in 0..ny {
            row.iter_mut().for_each(|v| *v = 0.0);
            fill(y, &mut row[..nx]);
            self.r2c
                .process(&mut row, &mut row_spec)
                .expect("sizes come from the plan");
            for (x, v) in row_spec.iter().enumerate() {
                spec[x * self.py + y] = *v;
            }
        }
        for (x, col) in spec.chunks_exact_mut(self.py).enumerate() {
            self.col_fwd.process(col);
            for (y, v) in col.iter_mut().enumerate() {
                *v *= self.gain[[y, x]];
            }
            self.col_inv.process(col);
        }
        for (y, mut o) in out.axis_iter_mut(Axis(0)).enumerate() {
            for (x, v) in row_spec.iter_mut().enumerate() {
                *v = spec[x * self.py + y];
            }
            // c2r requires real DC (and Nyquist for even px): exact up to rounding here.
            row_spec[0].im = 0.0;
            if self.px % 2 == 0 {
                row_spec[nxh - 1].im = 0.0;
            }
            self.c2r
                .process(&mut row_spec, &mut row)
                .expect("sizes come from the plan");
            o.iter_mut().zip(&row[..nx]).for_each(|(d, s)| *d = *s);
        }
    }
}

/// Each image of `stack` (`(n, ny, nx)`) minus its Gaussian-smoothed version (σ `sigma` px)
/// over `mask` (`(ny, nx)`, true = inside), by normalised convolution on the zero-padded
/// frame `pad` (`(py, px)`, each at least the image's side); zero outside the mask.
pub fn masked_gaussian_highpass(
    stack: ArrayView3<f64>,
    mask: ArrayView2<bool>,
    sigma: f64,
    pad: (usize, usize),
) -> Result<Array3<f64>, KernelError> {
    let (n, ny, nx) = stack.dim();
    if mask.dim() != (ny, nx) {
        return Err(KernelError::shape(
            "mask",
            format!("({ny}, {nx}) like the images"),
            format!("{:?}", mask.dim()),
        ));
    }
    if !(sigma.is_finite() && sigma > 0.0 && sigma <= 1e6) {
        return Err(KernelError::value("sigma", "must be in (0, 1e6] pixels"));
    }
    let (py, px) = pad;
    if py < ny || px < nx || py > 1 << 15 || px > 1 << 15 || ny == 0 || nx == 0 {
        return Err(KernelError::value(
            "pad",
            format!("must be at least the image shape ({ny}, {nx}) and at most 32768"),
        ));
    }
    let frame = Frame::new(py, px, sigma);
    let inside = |y: usize, x: usize| mask[[y, x]];
    let mut den = Array2::<f64>::zeros((ny, nx));
    frame.smooth(
        |y, row| {
            for (x, v) in row.iter_mut().enumerate() {
                *v = if inside(y, x) { 1.0 } else { 0.0 };
            }
        },
        den.view_mut(),
    );
    den.mapv_inplace(|d| d.max(1e-12));
    let mut out = Array3::<f64>::zeros((n, ny, nx));
    out.axis_iter_mut(Axis(0))
        .into_par_iter()
        .zip(stack.axis_iter(Axis(0)).into_par_iter())
        .for_each(|(mut o, img)| {
            frame.smooth(
                |y, row| {
                    for (x, v) in row.iter_mut().enumerate() {
                        *v = if inside(y, x) { img[[y, x]] } else { 0.0 };
                    }
                },
                o.view_mut(),
            );
            Zip::from(&mut o)
                .and(&img)
                .and(&den)
                .and(&mask)
                .for_each(|o, &v, &d, &m| *o = if m { v - *o / d } else { 0.0 });
        });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Direct (slow) normalised convolution with the sampled continuous Gaussian, periodic on
    /// the padded frame (Poisson summation: the inverse DFT of the sampled transfer function is
    /// the Gaussian summed over the frame's periods).
    fn direct(
        img: &Array2<f64>,
        mask: &Array2<bool>,
        sigma: f64,
        pad: (usize, usize),
    ) -> Array2<f64> {
        let (ny, nx) = img.dim();
        let (py, px) = pad;
        let g = |d: f64| (-d * d / (2.0 * sigma * sigma)).exp();
        let periodic =
            |d: isize, n: usize| -> f64 { (-3..=3).map(|m| g((d + m * n as isize) as f64)).sum() };
        let conv = |f: &dyn Fn(usize, usize) -> f64, y: usize, x: usize| {
            let mut s = 0.0;
            for v in 0..ny {
                for u in 0..nx {
                    let w = periodic(y as isize - v as isize, py)
                        * periodic(x as isize - u as isize, px);
                    s += w * f(v, u);
                }
            }
            s
        };
        let m = |v: usize, u: usize| f64::from(u8::from(mask[[v, u]]));
        let mi = |v: usize, u: usize| m(v, u) * img[[v, u]];
        Array2::from_shape_fn((ny, nx), |(y, x)| {
            if !mask[[y, x]] {
                0.0
            } else {
                img[[y, x]] - conv(&mi, y, x) / conv(&m, y, x).max(1e-12)
            }
        })
    }

    #[test]
    fn matches_the_direct_normalised_convolution() {
        let (ny, nx, sigma) = (23usize, 31usize, 2.5);
        let pad = (36, 45); // odd and even frame sides
        let img = Array2::from_shape_fn((ny, nx), |(y, x)| {
            ((x * 7 + y * 13) % 11) as f64 + 0.1 * x as f64 - 0.05 * (y * y) as f64
        });
        let mask = Array2::from_shape_fn((ny, nx), |(y, x)| {
            (x as f64 - 15.0).powi(2) + (y as f64 - 11.0).powi(2) < 120.0
        });
        let stack = img.clone().insert_axis(Axis(0));
        let got = masked_gaussian_highpass(stack.view(), mask.view(), sigma, pad).unwrap();
        let want = direct(&img, &mask, sigma, pad);
        let scale = img.iter().fold(0.0f64, |a, v| a.max(v.abs()));
        for ((y, x), w) in want.indexed_iter() {
            let d = (got[[0, y, x]] - w).abs();
            assert!(d <= 1e-9 * scale, "({y},{x}): {} vs {w}", got[[0, y, x]]);
        }
        // outside the mask: zero; a constant image: zero everywhere
        assert!(got.iter().zip(mask.iter()).all(|(v, &m)| m || *v == 0.0));
        let flat = Array3::from_elem((2, ny, nx), 3.5);
        let hp = masked_gaussian_highpass(flat.view(), mask.view(), sigma, pad).unwrap();
        assert!(hp.iter().all(|v| v.abs() < 1e-12), "constant not removed");
    }

    #[test]
    fn bad_arguments_are_errors() {
        let s = Array3::<f64>::zeros((1, 4, 5));
        let m = Array2::from_elem((4, 5), true);
        assert!(masked_gaussian_highpass(
            s.view(),
            Array2::from_elem((5, 4), true).view(),
            1.0,
            (8, 8)
        )
        .is_err());
        assert!(masked_gaussian_highpass(s.view(), m.view(), 0.0, (8, 8)).is_err());
        assert!(masked_gaussian_highpass(s.view(), m.view(), f64::NAN, (8, 8)).is_err());
        assert!(masked_gaussian_highpass(s.view(), m.view(), 1.0, (3, 8)).is_err());
        assert!(masked_gaussian_highpass(s.view(), m.view(), 1.0, (8, 1 << 20)).is_err());
    }
}
