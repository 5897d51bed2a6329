//! The moving patch: warped from the moving image (bicubic), weighted by the soft border mask
//! of the moving image, mean-removed; its score footprint; its √H-filtered copy.

use ndarray::{s, Array2, ArrayView2, Axis};
use rayon::prelude::*;

use super::params::PatchParams;
use crate::fft::{self, nice_size};
use crate::warp::{self, Affine, Fill, Interpolation};
use crate::window::{self, RampTable};
use crate::xcorr::{self, FilterParams};
use crate::KernelError;

/// The warped, masked, mean-removed patch; its mask; per patch row the contiguous span
/// `[j0, j1)` of score-footprint columns (see [`PatchParams::score_affines`]); Σ mask.
pub(super) type PatchMask = (Array2<f32>, Array2<f32>, Vec<(usize, usize)>, f64);

/// Soft-mask weight of patch pixel `(j, i)` under the patch → moving map `b`: the soft border
/// mask of the moving image at its sample position.
#[inline]
pub(super) fn mask_weight(
    tab: &RampTable,
    b: &Affine,
    i: usize,
    j: usize,
    nx: usize,
    ny: usize,
) -> f64 {
    let sx = b[0][0] * j as f64 + b[0][1] * i as f64 + b[0][2];
    let sy = b[1][0] * j as f64 + b[1][1] * i as f64 + b[1][2];
    window::soft_mask(tab, sx, sy, nx, ny)
}

pub(super) fn patch_and_mask(
    moving: ArrayView2<f32>,
    a: &Affine,
    p: &PatchParams,
) -> Result<PatchMask, KernelError> {
    let (ky, kx) = (2 * p.hy + 1, 2 * p.hx + 1);
    let mut patch = Array2::<f32>::zeros((ky, kx));
    warp::warp_affine(
        moving,
        a,
        Interpolation::Cubic,
        Fill::Value(0.0),
        patch.view_mut(),
    )?;
    let (ny, nx) = moving.dim();
    let geo = MaskGeometry {
        tab: RampTable::new(p.taper),
        taper: p.taper.max(0.0),
        moving: (ny, nx),
        kx,
    };
    let mut mask = Array2::<f32>::zeros((ky, kx));
    // per row: mask, score span and the weighted sums (Σm, Σm·v), rows in parallel
    let rows: Vec<((usize, usize), f64, f64)> = mask
        .axis_iter_mut(Axis(0))
        .into_par_iter()
        .zip(patch.axis_iter(Axis(0)).into_par_iter())
        .enumerate()
        .with_min_len(8)
        .map(|(i, (mut mrow, prow))| {
            let (sa, sb) = geo.support(a, i);
            let (ia, ib) = geo.interior(a, i);
            let (ia, ib) = (ia.max(sa), ib.min(sb).max(ia.max(sa)));
            for j in (sa..ia).chain(ib..sb) {
                mrow[j] = geo.weight(a, i, j) as f32;
            }
            mrow.slice_mut(s![ia..ib]).fill(1.0);
            let (mut sw, mut swv) = (0.0f64, 0.0f64);
            for j in sa..sb {
                let m = mrow[j] as f64;
                sw += m;
                swv += m * prow[j] as f64;
            }
            let span = geo.score_span(a, &p.score_affines, i, (sa, sb), (ia, ib));
            (span, sw, swv)
        })
        .collect();
    let (mut sw, mut swv) = (0.0f64, 0.0f64);
    for r in &rows {
        sw += r.1;
        swv += r.2;
    }
    let spans = rows.into_iter().map(|r| r.0).collect();
    remove_weighted_mean(&mut patch, &mask, sw, swv);
    Ok((patch, mask, spans, sw))
}

/// The patch times its mask, minus the weighted mean `swv / sw` (all zero when `sw` is 0).
fn remove_weighted_mean(patch: &mut Array2<f32>, mask: &Array2<f32>, sw: f64, swv: f64) {
    if sw > 0.0 {
        let mu = (swv / sw) as f32;
        patch
            .axis_iter_mut(Axis(0))
            .into_par_iter()
            .zip(mask.axis_iter(Axis(0)).into_par_iter())
            .with_min_len(8)
            .for_each(|(mut prow, mrow)| {
                prow.zip_mut_with(&mrow, |v, m| *v = *m * (*v - mu));
            });
    } else {
        patch.fill(0.0);
    }
}

/// Where the soft border mask of the moving image lies along a patch row. Per row, the weight
/// is exactly 0 outside the moving image's footprint and exactly 1 in its interior (both
/// intervals of j, the sample position being affine in j): only the ramp zone is evaluated
/// pixel by pixel. The intervals are shrunk/grown by one pixel so rounding never changes a
/// value.
struct MaskGeometry {
    tab: RampTable,
    /// Ramp width (≥ 0).
    taper: f64,
    /// Moving image size `(ny, nx)`.
    moving: (usize, usize),
    /// Patch width.
    kx: usize,
}

impl MaskGeometry {
    /// Soft-mask weight of patch pixel `(j, i)` under the patch → moving map `b`.
    #[inline]
    fn weight(&self, b: &Affine, i: usize, j: usize) -> f64 {
        let (ny, nx) = self.moving;
        mask_weight(&self.tab, b, i, j, nx, ny)
    }

    /// The interval of j (real) of row `i` whose sample under `b` lies in
    /// `[lo_x, hi_x] × [lo_y, hi_y]` (empty: `hi < lo`).
    #[inline]
    fn row_interval(
        b: &Affine,
        i: usize,
        lo_x: f64,
        hi_x: f64,
        lo_y: f64,
        hi_y: f64,
    ) -> (f64, f64) {
        let (mut lo, mut hi) = (f64::NEG_INFINITY, f64::INFINITY);
        for (c1, c0, l, h) in [
            (b[0][0], b[0][1] * i as f64 + b[0][2], lo_x, hi_x),
            (b[1][0], b[1][1] * i as f64 + b[1][2], lo_y, hi_y),
        ] {
            if c1.abs() < 1e-12 {
                if !(c0 >= l && c0 <= h) {
                    return (0.0, -1.0);
                }
            } else {
                let (u, v) = ((l - c0) / c1, (h - c0) / c1);
                lo = lo.max(u.min(v));
                hi = hi.min(u.max(v));
            }
        }
        (lo, hi)
    }

    #[inline]
    fn clip(&self, v: f64) -> usize {
        v.clamp(0.0, self.kx as f64) as usize
    }

    /// Columns `[a, b)` of row `i` where the weight is exactly 1, shrunk by one pixel.
    #[inline]
    fn interior(&self, b: &Affine, i: usize) -> (usize, usize) {
        let (ny, nx) = self.moving;
        let taper = self.taper;
        let (lo, hi) = Self::row_interval(
            b,
            i,
            taper - 0.5,
            nx as f64 - 0.5 - taper,
            taper - 0.5,
            ny as f64 - 0.5 - taper,
        );
        if hi.is_nan() || lo.is_nan() || hi < lo {
            return (0, 0);
        }
        let (a, z) = (self.clip(lo.ceil() + 1.0), self.clip(hi.floor()));
        (a, z.max(a))
    }

    /// Columns `[a, b)` of row `i` where the weight is possibly > 0, grown by one pixel.
    #[inline]
    fn support(&self, b: &Affine, i: usize) -> (usize, usize) {
        let (ny, nx) = self.moving;
        let (lo, hi) = Self::row_interval(b, i, -0.5, nx as f64 - 0.5, -0.5, ny as f64 - 0.5);
        if hi.is_nan() || lo.is_nan() || hi < lo {
            return (0, 0);
        }
        let (a, z) = (self.clip(lo.floor() - 1.0), self.clip(hi.ceil() + 2.0));
        (a, z.max(a))
    }

    /// Score footprint of row `i`: first and last j where the weight of `a` and of every map
    /// of `score` exceeds 0.05 (exactly the weight test, only skipped where its outcome is
    /// certain), given `a`'s support `[sa, sb)` and interior `[ia, ib)` on the row.
    fn score_span(
        &self,
        a: &Affine,
        score: &[Affine],
        i: usize,
        (sa, sb): (usize, usize),
        (ia, ib): (usize, usize),
    ) -> (usize, usize) {
        let (mut ca, mut cb) = (sa, sb);
        let (mut qa, mut qb) = (ia, ib);
        for b in score {
            let (u, v) = self.support(b, i);
            ca = ca.max(u);
            cb = cb.min(v);
            let (u, v) = self.interior(b, i);
            qa = qa.max(u);
            qb = qb.min(v);
        }
        let ok = |j: usize| {
            self.weight(a, i, j) > 0.05 && score.iter().all(|b| self.weight(b, i, j) > 0.05)
        };
        if ca >= cb {
            (0, 0)
        } else if qa < qb {
            let j0 = (ca..qa).find(|&j| ok(j)).unwrap_or(qa);
            let j1 = (qb..cb).rev().find(|&j| ok(j)).map_or(qb, |j| j + 1);
            (j0, j1)
        } else {
            match (ca..cb).find(|&j| ok(j)) {
                Some(j0) => {
                    let j1 = (j0..cb).rev().find(|&j| ok(j)).map_or(j0 + 1, |j| j + 1);
                    (j0, j1)
                }
                None => (0, 0),
            }
        }
    }
}

/// Filter a small patch with √H on its own padded frame (same cycles/pixel as the reference).
pub(super) fn filter_patch(
    patch: &Array2<f32>,
    f: &FilterParams,
) -> Result<Array2<f32>, KernelError> {
    let (ky, kx) = patch.dim();
    if f.is_identity() {
        return Ok(patch.clone());
    }
    let m = 12usize;
    let (py, px) = (nice_size(ky + 2 * m), nice_size(kx + 2 * m));
    let mut buf = Array2::<f32>::zeros((py, px));
    buf.slice_mut(s![m..m + ky, m..m + kx]).assign(patch);
    let plan = fft::plan(py, px)?;
    let mut spec = plan.forward(buf.view())?;
    xcorr::apply_filter(&mut spec, py, px, f, 0.5);
    let out = plan.inverse(spec)?;
    Ok(out.slice(s![m..m + ky, m..m + kx]).to_owned())
}
