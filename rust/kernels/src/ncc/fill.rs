//! The NCC and overlap maps from the terms, row by row: the validity threshold and variance
//! floors, the rectangle sums of a box side, and the f64 differences of Padfield's formula.

use ndarray::Array2;
use rayon::prelude::*;

use super::side::{Integral, Prep};
use super::terms::Terms;
use super::{MIN_OVERLAP_ABS, OVERLAP_TOL, VAR_FLOOR};
use crate::fft::PoolBuf;
use crate::xcorr::MapStats;

/// Validity threshold and variance floors, as if each mask were scaled to a maximum of 1, so
/// that scaling a mask by a constant changes nothing (NCC itself is invariant to it).
pub(super) struct Limits {
    /// Overlap fraction below which a displacement is invalid.
    pub(super) valid_fraction: f64,
    /// Overlap weight → overlap fraction.
    frac_scale: f64,
    /// Local variance floors of `a` and `b`.
    floor_a: f64,
    floor_b: f64,
}

impl Limits {
    pub(super) fn new(pa: &Prep, pb: &Prep, min_overlap: f64) -> Self {
        let (ca, cb) = (pa.max_m, pb.max_m);
        let inv_cc = 1.0 / (ca * cb);
        let s_min = (pa.sum_m / ca).min(pb.sum_m / cb);
        let s_max = (pa.sum_m / ca).max(pb.sum_m / cb);
        let thr = (min_overlap * s_min).max(MIN_OVERLAP_ABS * s_max) - OVERLAP_TOL * s_max;
        // local variances carry the weight of both masks: va = ca·cb·va' with va' ≤ τ·E'_a
        Limits {
            valid_fraction: thr / s_min,
            frac_scale: inv_cc / s_min,
            floor_a: VAR_FLOOR * pa.energy * cb,
            floor_b: VAR_FLOOR * pb.energy * ca,
        }
    }
}

/// Everything one output row of the NCC map needs.
pub(super) struct RowFill<'a> {
    pub(super) terms: &'a Terms,
    /// Integral images of `a` (when `b` is a box) and of `b` (when `a` is).
    pub(super) ia: Option<&'a Integral>,
    pub(super) ib: Option<&'a Integral>,
    pub(super) lim: &'a Limits,
    pub(super) pad: (usize, usize),
    pub(super) da: (usize, usize),
    pub(super) db: (usize, usize),
}

/// `[Σ₀, Σ₁, Σ₂]` over columns `x0..x1` of a band.
#[inline]
fn rect(b: &[[f64; 3]], x0: usize, x1: usize) -> [f64; 3] {
    let (p, q) = (&b[x1], &b[x0]);
    [p[0] - q[0], p[1] - q[1], p[2] - q[2]]
}

/// Value `k` of an optional term map as f64 (0 when absent).
#[inline]
fn term_at(m: &Option<PoolBuf<f32>>, k: usize) -> f64 {
    m.as_ref().map_or(0.0, |m| m[k] as f64)
}

impl RowFill<'_> {
    /// The NCC and overlap maps of shape `(fy, fx)`, rows filled in parallel, and the NCC
    /// statistics over the valid positions (row sums added in row order: the same bits for any
    /// thread count).
    pub(super) fn maps(&self, (fy, fx): (usize, usize)) -> (Array2<f32>, Array2<f32>, MapStats) {
        let mut ncc = Array2::<f32>::zeros((fy, fx));
        let mut ovl = Array2::<f32>::zeros((fy, fx));
        let rows: Vec<(f64, f64, usize)> = ncc
            .as_slice_mut()
            .expect("contiguous")
            .par_chunks_mut(fx)
            .zip(ovl.as_slice_mut().expect("contiguous").par_chunks_mut(fx))
            .enumerate()
            .map(|(i, (nrow, orow))| self.fill(i, nrow, orow))
            .collect();
        let (mut st1, mut st2, mut cnt) = (0.0f64, 0.0f64, 0usize);
        for (a, b, c) in rows {
            st1 += a;
            st2 += b;
            cnt += c;
        }
        (ncc, ovl, MapStats::from_sums(st1, st2, cnt))
    }

    /// Fills NCC row `i` and overlap row `i` (displacement `dy = i − (ny_b − 1)`); returns Σv,
    /// Σv² and the count over its valid positions.
    fn fill(&self, i: usize, nrow: &mut [f32], orow: &mut [f32]) -> (f64, f64, usize) {
        let t = self.terms;
        let lim = self.lim;
        let (py, px) = self.pad;
        let ((nya, nxa), (nyb, nxb)) = (self.da, self.db);
        let (oy, ox) = (nyb - 1, nxb - 1);
        let (nyai, nxai, nybi, nxbi) = (nya as isize, nxa as isize, nyb as isize, nxb as isize);
        let fx = nrow.len();
        let (mut st1, mut st2, mut cnt) = (0.0f64, 0.0f64, 0usize);
        let r = ((i + py - oy) % py) * px;
        // overlap rows in a's coordinates (b's = a's − dy); never empty in full mode
        let dy = i as isize - oy as isize;
        let (ya0, ya1) = (dy.max(0), nyai.min(nybi + dy));
        let (yb0, yb1) = ((ya0 - dy) as usize, (ya1 - dy) as usize);
        let (ya0, ya1) = (ya0 as usize, ya1 as usize);
        let band_a = self.ia.map(|t| t.band(ya0, ya1));
        let band_b = self.ib.map(|t| t.band(yb0, yb1));
        for j in 0..fx {
            // stored column of displacement dx = j − ox (circular frame), no modulo
            let k = if j < ox { r + px - ox + j } else { r + j - ox };
            let dx = j as isize - ox as isize;
            let (xa0, xa1) = (dx.max(0), nxai.min(nxbi + dx));
            let (xb0, xb1) = ((xa0 - dx) as usize, (xa1 - dx) as usize);
            let (xa0, xa1) = (xa0 as usize, xa1 as usize);
            let ra = band_a.as_deref().map(|b| rect(b, xa0, xa1));
            let rb = band_b.as_deref().map(|b| rect(b, xb0, xb1));
            let o = match (&t.o, ra, rb) {
                (Some(m), _, _) => m[k] as f64,
                (None, Some(ra), _) => ra[0],
                (None, None, Some(rb)) => rb[0],
                (None, None, None) => unreachable!("a box side gives the overlap"),
            };
            let frac = (o * lim.frac_scale) as f32;
            orow[j] = frac;
            if (frac as f64) < lim.valid_fraction {
                nrow[j] = 0.0;
                continue;
            }
            let inv_o = 1.0 / o;
            let (s1, s11) = ra.map_or((term_at(&t.sa, k), term_at(&t.saa, k)), |t| (t[1], t[2]));
            let (s2, s22) = rb.map_or((term_at(&t.sb, k), term_at(&t.sbb, k)), |t| (t[1], t[2]));
            let va = s11 - s1 * s1 * inv_o;
            let vb = s22 - s2 * s2 * inv_o;
            let v = if va <= lim.floor_a || vb <= lim.floor_b {
                0.0
            } else {
                // f64 throughout: tiny soft-mask weights make va·vb underflow f32
                let num = t.sab[k] as f64 - s1 * s2 * inv_o;
                (num / (va * vb).sqrt()).clamp(-1.0, 1.0) as f32
            };
            nrow[j] = v;
            st1 += v as f64;
            st2 += v as f64 * v as f64;
            cnt += 1;
        }
        (st1, st2, cnt)
    }
}
