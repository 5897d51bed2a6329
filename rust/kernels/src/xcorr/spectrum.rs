//! The frequency-domain steps of a correlation: taper and pad, the tapered (fused) forward
//! transforms, the filtered energy, the cross-power spectrum and the correlation map.

use ndarray::{Array2, ArrayView2, Axis};
use rayon::prelude::*;

use super::filter::{filter_table, FilterParams};
use crate::fft::{self, PoolBuf, C32};
use crate::window::SeparableTaper;
use crate::KernelError;

/// `w·(img − μ_w)` with the separable taper `w` (ramps of `taper` px) and `μ_w` the weighted mean,
/// written into the top-left corner of a zero `(py, px)` frame.
pub fn taper_pad(
    img: ArrayView2<f32>,
    taper: f64,
    pad: (usize, usize),
) -> Result<Array2<f32>, KernelError> {
    let (ny, nx) = img.dim();
    if pad.0 < ny || pad.1 < nx {
        return Err(KernelError::shape(
            "pad",
            format!(">= ({ny}, {nx})"),
            format!("{pad:?}"),
        ));
    }
    let contiguous = img.as_standard_layout();
    let data = contiguous
        .as_slice()
        .expect("standard layout is contiguous");
    let w = SeparableTaper::new(data, ny, nx, taper);
    let mut out = vec![0.0f32; pad.0 * pad.1];
    out.par_chunks_mut(pad.1)
        .take(ny)
        .enumerate()
        .with_min_len(16)
        .for_each(|(y, orow)| {
            w.row(data, y, orow);
        });
    Array2::from_shape_vec(pad, out).map_err(|e| KernelError::value("pad", e.to_string()))
}

/// Correlation method.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// Unnormalised (filtered) cross-correlation.
    XCorr,
    /// Phase correlation (cross-power spectrum divided by its modulus), then filtered.
    Phase,
}

/// Cross-power spectrum `A·conj(B)` (filtered with `H`, or phase-normalised then filtered).
pub fn cross_power(
    a: &Array2<C32>,
    b: &Array2<C32>,
    ny: usize,
    nx: usize,
    f: &FilterParams,
    method: Method,
) -> Array2<C32> {
    let table = if f.is_identity() {
        None
    } else {
        Some(filter_table(ny, nx, f, 1.0))
    };
    let nxc = a.dim().0;
    let (asl, bsl) = (
        a.as_slice().expect("contiguous spectrum"),
        b.as_slice().expect("contiguous spectrum"),
    );
    let tsl = table
        .as_ref()
        .map(|t| t.as_slice().expect("contiguous table"));
    let mut g = vec![C32::new(0.0, 0.0); nxc * ny];
    g.par_chunks_mut(ny)
        .enumerate()
        .with_min_len(8)
        .for_each(|(kx, grow)| {
            let arow = &asl[kx * ny..(kx + 1) * ny];
            let brow = &bsl[kx * ny..(kx + 1) * ny];
            let trow = tsl.map(|t| &t[kx * ny..(kx + 1) * ny]);
            for ky in 0..ny {
                let mut v = arow[ky] * brow[ky].conj();
                if method == Method::Phase {
                    let m = v.norm();
                    v = if m > 1e-30 { v / m } else { C32::new(0.0, 0.0) };
                }
                if let Some(t) = trow {
                    v *= t[ky];
                }
                grow[ky] = v;
            }
        });
    if method == Method::Phase {
        // the images are zero-mean: the DC term carries only rounding noise
        g[0] = C32::new(0.0, 0.0);
    }
    Array2::from_shape_vec((nxc, ny), g).expect("shape matches")
}

/// Energy `Σ|x|²` of the real image behind a half-spectrum (Parseval), filtered by `H`.
pub(super) fn filtered_energy(
    spec: ArrayView2<C32>,
    ny: usize,
    nx: usize,
    f: &FilterParams,
) -> f64 {
    let table = filter_table(ny, nx, f, 1.0);
    // Row sums in parallel, added in row order: the same bits for any thread count (a parallel
    // `sum` adds in an order set by work stealing).
    let rows: Vec<f64> = spec
        .axis_iter(Axis(0))
        .into_par_iter()
        .zip(table.axis_iter(Axis(0)).into_par_iter())
        .enumerate()
        .map(|(kx, (row, trow))| {
            let w = fft::half_weight(kx, nx) as f64;
            row.iter()
                .zip(trow.iter())
                .map(|(v, h)| w * v.norm_sqr() as f64 * *h as f64)
                .sum::<f64>()
        })
        .collect();
    rows.iter().sum::<f64>() / (ny as f64 * nx as f64)
}

/// Half-spectrum (transposed, pooled) of `img` tapered (`taper` px ramps, weighted mean
/// removed) at the origin of the plan's frame. Taper, mean removal and padding are fused into
/// the row pass of the forward transform (no padded frame).
pub(super) fn tapered_spectrum(
    plan: &fft::Plan2,
    img: ArrayView2<f32>,
    taper: f64,
) -> PoolBuf<C32> {
    let (ny, nx) = img.dim();
    let contiguous = img.as_standard_layout();
    let data = contiguous
        .as_slice()
        .expect("standard layout is contiguous");
    let w = SeparableTaper::new(data, ny, nx, taper);
    PoolBuf::new(
        plan.forward_with(|y, buf| w.row(data, y, buf), true),
        &fft::POOL_C32,
    )
}

/// One `kx` row of the cross-power spectrum, in place: `grow ← A·conj(B)` (phase-normalised
/// for [`Method::Phase`]), times the filter row if any (same arithmetic as [`cross_power`]).
#[inline]
fn cross_power_row(method: Method, grow: &mut [C32], brow: &[C32], trow: Option<&[f32]>) {
    let py = grow.len();
    if method == Method::Phase {
        for ky in 0..py {
            let v = grow[ky] * brow[ky].conj();
            // |v| in f64 (no overflow, no libm hypot call): vectorises
            let (re, im) = (v.re as f64, v.im as f64);
            let m = (re * re + im * im).sqrt();
            let mut u = if m > 1e-30 {
                let r = 1.0 / m;
                C32::new((re * r) as f32, (im * r) as f32)
            } else {
                C32::new(0.0, 0.0)
            };
            if let Some(t) = trow {
                u *= t[ky];
            }
            grow[ky] = u;
        }
    } else {
        for ky in 0..py {
            let mut v = grow[ky] * brow[ky].conj();
            if let Some(t) = trow {
                v *= t[ky];
            }
            grow[ky] = v;
        }
    }
}

/// The correlation map `(py, px)` (zero displacement at index (0, 0)) of the spectra `fa`
/// (overwritten) and `fb`: the cross-power spectrum is formed in place in `fa`, block by
/// block, right before the block's inverse column transforms.
pub(super) fn correlation_map(
    plan: &fft::Plan2,
    fa: &mut [C32],
    fb: &[C32],
    f: &FilterParams,
    method: Method,
) -> Result<Array2<f32>, KernelError> {
    let (py, px) = (plan.ny, plan.nx);
    let table = if f.is_identity() {
        None
    } else {
        Some(filter_table(py, px, f, 1.0))
    };
    let tsl = table
        .as_ref()
        .map(|t| t.as_slice().expect("contiguous table"));
    let map = plan.correlate_with(
        fa,
        |kx0, chunk| {
            for (k, grow) in chunk.chunks_mut(py).enumerate() {
                let kx = kx0 + k;
                let brow = &fb[kx * py..(kx + 1) * py];
                let trow = tsl.map(|t| &t[kx * py..(kx + 1) * py]);
                cross_power_row(method, grow, brow, trow);
            }
            if kx0 == 0 && method == Method::Phase {
                // the images are zero-mean: the DC term carries only rounding noise
                chunk[0] = C32::new(0.0, 0.0);
            }
        },
        true,
    );
    Array2::from_shape_vec((py, px), map).map_err(|e| KernelError::value("fft", e.to_string()))
}
