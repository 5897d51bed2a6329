//! One side of the correlation: an image and its optional mask, their weighted statistics
//! (mask sum, mean, scale, energy: the normalisation of the transforms) and the f64 integral
//! images that replace transforms against a box side.

use rayon::prelude::*;

use super::terms::transform;
use crate::fft::{self, PoolBuf, C32, POOL_C32};
use crate::KernelError;

/// Weighted statistics of one image: mask sum and maximum, mean, scale (largest
/// |deviation|), energy.
pub(super) struct Prep {
    pub(super) sum_m: f64,
    pub(super) max_m: f64,
    pub(super) mean: f64,
    pub(super) inv_scale: f64,
    pub(super) energy: f64,
}

/// Row sums in parallel, added in row order: deterministic for any thread count.
fn ordered_sum<F>(ny: usize, f: F) -> f64
where
    F: Fn(usize) -> f64 + Sync + Send,
{
    let rows: Vec<f64> = (0..ny).into_par_iter().map(f).collect();
    rows.iter().sum()
}

fn prepare(
    what: &'static str,
    img: &[f32],
    mask: Option<&[f32]>,
    ny: usize,
    nx: usize,
) -> Result<Prep, KernelError> {
    let wt = |i: usize| mask.map_or(1.0, |m| m[i] as f64);
    let sum_m = ordered_sum(ny, |y| (y * nx..(y + 1) * nx).map(wt).sum());
    if sum_m <= 0.0 {
        return Err(KernelError::value(
            what,
            "mask is all zero (no valid pixel)",
        ));
    }
    let s1 = ordered_sum(ny, |y| {
        (y * nx..(y + 1) * nx).map(|i| wt(i) * img[i] as f64).sum()
    });
    if !s1.is_finite() {
        return Err(KernelError::value(what, "pixel values must be finite"));
    }
    let mean = s1 / sum_m;
    let max_m = mask.map_or(1.0, |m| m.iter().copied().fold(0.0f32, f32::max) as f64);
    let dev: Vec<f64> = (0..ny)
        .into_par_iter()
        .map(|y| {
            (y * nx..(y + 1) * nx)
                .filter(|&i| wt(i) > 0.0)
                .map(|i| (img[i] as f64 - mean).abs())
                .fold(0.0, f64::max)
        })
        .collect();
    let scale = dev.iter().copied().fold(0.0, f64::max);
    let inv_scale = if scale > 0.0 { 1.0 / scale } else { 0.0 };
    let energy = ordered_sum(ny, |y| {
        (y * nx..(y + 1) * nx)
            .filter(|&i| wt(i) > 0.0) // outside the mask |v| is unbounded (0·inf = NaN)
            .map(|i| {
                let v = ((img[i] as f64 - mean) * inv_scale) as f32 as f64;
                wt(i) * v * v
            })
            .sum()
    });
    Ok(Prep {
        sum_m,
        max_m,
        mean,
        inv_scale,
        energy,
    })
}

/// f64 integral images of `M`, `M·ã`, `M·ã²` (`ã` the normalised image, rounded to f32 exactly
/// as in the transforms), `(ny + 1) × (nx + 1)`, for rectangle sums over an overlap.
pub(super) struct Integral {
    w: usize,
    t: Vec<[f64; 3]>,
}

impl Integral {
    fn new(img: &[f32], mask: Option<&[f32]>, (ny, nx): (usize, usize), p: &Prep) -> Self {
        let w = nx + 1;
        let mut t = vec![[0.0f64; 3]; (ny + 1) * w];
        // row prefix sums in parallel, then the running column sums (fixed order: deterministic)
        t[w..].par_chunks_mut(w).enumerate().for_each(|(y, row)| {
            let mut acc = [0.0f64; 3];
            for x in 0..nx {
                let i = y * nx + x;
                let m = mask.map_or(1.0f32, |m| m[i]);
                // |v| ≤ 1 inside the mask; outside it may overflow, and 0·inf would be NaN
                let v = if m > 0.0 {
                    ((img[i] as f64 - p.mean) * p.inv_scale) as f32
                } else {
                    0.0
                };
                acc[0] += m as f64;
                acc[1] += (m * v) as f64;
                acc[2] += (m * v * v) as f64;
                row[x + 1] = acc;
            }
        });
        for y in 1..=ny {
            let (prev, cur) = t[(y - 1) * w..(y + 1) * w].split_at_mut(w);
            for (c, p) in cur.iter_mut().zip(prev.iter()) {
                for k in 0..3 {
                    c[k] += p[k];
                }
            }
        }
        Integral { w, t }
    }

    /// Column prefix sums of rows `y0..y1`: the sum over rows `y0..y1`, columns `x0..x1` is
    /// `band[x1] − band[x0]` (one band per output row, shared by all its displacements).
    pub(super) fn band(&self, y0: usize, y1: usize) -> Vec<[f64; 3]> {
        let (r0, r1) = (
            &self.t[y0 * self.w..(y0 + 1) * self.w],
            &self.t[y1 * self.w..(y1 + 1) * self.w],
        );
        r1.iter()
            .zip(r0)
            .map(|(a, b)| [a[0] - b[0], a[1] - b[1], a[2] - b[2]])
            .collect()
    }
}

/// One side of the correlation: pixels, mask (`None` = all ones), shape and statistics.
pub(super) struct Side<'a> {
    pub(super) img: &'a [f32],
    pub(super) mask: Option<&'a [f32]>,
    pub(super) dim: (usize, usize),
    pub(super) prep: Prep,
}

impl<'a> Side<'a> {
    /// The side of `img` (shape `dim`) with `mask`, its statistics prepared (`what` names the
    /// image in errors). An all-ones mask is the same as no mask (and lets the box sums replace
    /// transforms).
    pub(super) fn new(
        what: &'static str,
        img: &'a [f32],
        mask: Option<&'a [f32]>,
        dim: (usize, usize),
    ) -> Result<Self, KernelError> {
        let mask = mask.filter(|m| !m.iter().all(|&v| v == 1.0));
        Ok(Side {
            img,
            mask,
            dim,
            prep: prepare(what, img, mask, dim.0, dim.1)?,
        })
    }

    /// Forward transform of `M·ã^power` (pooled).
    pub(super) fn transform(&self, plan: &fft::Plan2, power: u32) -> PoolBuf<C32> {
        let v = transform(plan, self.img, self.mask, self.dim, &self.prep, power);
        PoolBuf::new(v, &POOL_C32)
    }

    /// Integral images of the side (for rectangle sums against a box on the other side).
    pub(super) fn integral(&self) -> Integral {
        Integral::new(self.img, self.mask, self.dim, &self.prep)
    }
}
