//! The FFT terms of Padfield's NCC: forward transforms of `M·ã^power` and their circular
//! correlations, only those a box side does not replace by rectangle sums.

use super::side::{Prep, Side};
use crate::fft::{self, PoolBuf, C32, POOL_C32, POOL_F32};

/// Forward transform of `M·ã^power` (`ã` = normalised image) placed at the origin of the frame.
pub(super) fn transform(
    plan: &fft::Plan2,
    img: &[f32],
    mask: Option<&[f32]>,
    (ny, nx): (usize, usize),
    p: &Prep,
    power: u32,
) -> Vec<C32> {
    plan.forward_with(
        |y, buf| {
            if y >= ny {
                return false;
            }
            let row = &img[y * nx..(y + 1) * nx];
            let mrow = mask.map(|m| &m[y * nx..(y + 1) * nx]);
            for (x, o) in buf[..nx].iter_mut().enumerate() {
                let w = mrow.map_or(1.0f32, |m| m[x]);
                *o = match power {
                    0 => w,
                    _ if w == 0.0 => 0.0, // outside the mask |v| is unbounded (0·inf = NaN)
                    _ => {
                        let v = ((row[x] as f64 - p.mean) * p.inv_scale) as f32;
                        if power == 1 {
                            w * v
                        } else {
                            w * v * v
                        }
                    }
                };
            }
            buf[nx..].fill(0.0);
            true
        },
        true,
    )
}

/// Circular correlation `IFFT(X · conj(Y))` of two transposed half-spectra (pooled buffers).
fn correlate_spectra(plan: &fft::Plan2, x: &[C32], y: &[C32]) -> PoolBuf<f32> {
    let mut work = POOL_C32.lease(x.len());
    let map = plan.correlate_with(
        &mut work,
        |kx0, chunk| {
            let off = kx0 * plan.ny;
            let n = chunk.len();
            for ((c, u), v) in chunk.iter_mut().zip(&x[off..off + n]).zip(&y[off..off + n]) {
                *c = u * v.conj();
            }
        },
        true,
    );
    PoolBuf::new(map, &POOL_F32)
}

/// Correlation maps of the NCC terms: `Σ M_a ã · M_b b̃` always; the mask and squared terms
/// only where the other side has a mask (a box side's terms are rectangle sums instead).
pub(super) struct Terms {
    pub(super) sab: PoolBuf<f32>,
    pub(super) sa: Option<PoolBuf<f32>>,
    pub(super) sb: Option<PoolBuf<f32>>,
    pub(super) o: Option<PoolBuf<f32>>,
    pub(super) saa: Option<PoolBuf<f32>>,
    pub(super) sbb: Option<PoolBuf<f32>>,
}

/// The FFT terms. With masks on both sides all six are correlations (12 transforms). A side
/// without mask is a box: every term correlating the other side with it is a rectangle sum of
/// that other side over the overlap, taken from f64 integral images (exact, no transform):
/// one mask → 7 transforms, no mask → 3.
pub(super) fn correlation_terms(plan: &fft::Plan2, a: &Side, b: &Side) -> Terms {
    let a0 = a.mask.is_some().then(|| a.transform(plan, 0));
    let b0 = b.mask.is_some().then(|| b.transform(plan, 0));
    let a1 = a.transform(plan, 1);
    let b1 = b.transform(plan, 1);
    let sab = correlate_spectra(plan, &a1, &b1);
    let sa = b0.as_ref().map(|b0| correlate_spectra(plan, &a1, b0));
    let sb = a0.as_ref().map(|a0| correlate_spectra(plan, a0, &b1));
    drop((a1, b1));
    let o = match (&a0, &b0) {
        (Some(a0), Some(b0)) => Some(correlate_spectra(plan, a0, b0)),
        _ => None,
    };
    let saa = b0
        .as_ref()
        .map(|b0| correlate_spectra(plan, &a.transform(plan, 2), b0));
    let sbb = a0
        .as_ref()
        .map(|a0| correlate_spectra(plan, a0, &b.transform(plan, 2)));
    Terms {
        sab,
        sa,
        sb,
        o,
        saa,
        sbb,
    }
}
