//! Cross-magnification alignment core: a prepared (filtered, Fourier-transformed) reference
//! search region, and the evaluation of many (scale, rotation) search points against it in
//! parallel, each re-warping only the small moving patch.
//!
//! Geometry of one evaluation (all at the correlation sampling):
//! * The reference region is a `(wy, wx)` crop of the (binned) reference starting at integer
//!   `(x0, y0)` (it may extend past the image; those pixels have zero weight). It is tapered
//!   (cosine ramps at the edges of its valid part), made zero-mean and zero-padded to `(py, px)`
//!   with `py ≥ wy + hy`, `px ≥ wx + hx` so that no wrap-around reaches a valid position.
//! * The moving patch has `(2hy+1, 2hx+1)` pixels; patch pixel `(i, j)` has offset
//!   `o = (j − hx, i − hy)` from the image of the moving centre and samples the (pre-shrunk)
//!   moving image at `A·(j, i, 1)` (bicubic). A soft validity mask (cosine ramp of `taper` px
//!   inside the moving image's border) weights it; the weighted mean is removed. The patch is
//!   placed in the padded frame by wrapping its offsets around `(0, 0)`.
//! * `C(d) = Σ_x R(x)·P(x − d)` is then maximal where the moving centre lies at region pixel `d`.
//! * Each peak is scored by the Pearson CCC between the filtered patch and the filtered
//!   reference over the patch footprint, and by the fraction of the patch weight that falls on
//!   valid reference pixels (SerialEM `ShiftManager.cpp : AutoAlign` weighs `CCC·frac^(1/6)`).

use ndarray::{s, Array2, ArrayView2, Axis};
use rayon::prelude::*;

use crate::fft::{self, nice_size, C32};
use crate::warp::{self, Affine, Fill, Interpolation};
use crate::xcorr::{self, ramp, Allowed, FilterParams, MapStats, Method};
use crate::KernelError;

/// Most steps of the CCC hill-climb that places a peak (each step evaluates ≤ 5 new cells).
const HILL_CLIMB_STEPS: usize = 8;

/// A prepared reference search region.
pub struct Reference {
    /// Padded frame `(py, px)`.
    pub pad: (usize, usize),
    /// Region size `(wy, wx)`.
    pub region: (usize, usize),
    /// `F(R0)·H` (xcorr) or `F(R0)` (phase), transposed half-spectrum layout of [`crate::fft`].
    pub spec: Array2<C32>,
    /// Filtered region `R'` (√H applied): row `i` of the region is
    /// `filtered[i·px .. i·px + wx]` (the inverse transform's frame, not copied; returned to
    /// the buffer pool on drop).
    pub filtered: Vec<f32>,
    /// Region rows `[y0, y1)` and columns `[x0, x1)` that lie inside the reference image (the
    /// valid part is this rectangle; its pixels count for the overlap).
    pub valid_rows: (usize, usize),
    pub valid_cols: (usize, usize),
    pub filter: FilterParams,
    pub method: Method,
}

impl Drop for Reference {
    fn drop(&mut self) {
        fft::POOL_F32.give(std::mem::take(&mut self.filtered));
    }
}

/// 1-D weights of a crop `[o, o + w)` of an axis of length `n`: ramp inside the valid span.
fn span_weights(o: isize, w: usize, n: usize, taper: f64) -> (Vec<f64>, Vec<f32>) {
    let lo = o.max(0);
    let hi = (o + w as isize).min(n as isize);
    let mut wt = vec![0.0; w];
    let mut valid = vec![0.0f32; w];
    for (i, (a, v)) in wt.iter_mut().zip(valid.iter_mut()).enumerate() {
        let p = o + i as isize;
        if p >= lo && p < hi {
            let d = ((p - lo) as f64 + 0.5).min((hi - p) as f64 - 0.5);
            *a = ramp(d, taper);
            *v = 1.0;
        }
    }
    (wt, valid)
}

/// Prepare the reference region `image[y0 .. y0+wy, x0 .. x0+wx]` (see the module docs).
#[allow(clippy::too_many_arguments)]
pub fn prepare_reference(
    image: ArrayView2<f32>,
    origin: (isize, isize),
    region: (usize, usize),
    pad: (usize, usize),
    taper: f64,
    filter: &FilterParams,
    method: Method,
) -> Result<Reference, KernelError> {
    filter.check()?;
    let (ny, nx) = image.dim();
    let (wy, wx) = region;
    let (x0, y0) = origin;
    if ny == 0 || nx == 0 || wy == 0 || wx == 0 {
        return Err(KernelError::shape(
            "reference",
            "non-empty",
            format!("{:?} / {:?}", (ny, nx), region),
        ));
    }
    if pad.0 < wy || pad.1 < wx {
        return Err(KernelError::shape(
            "pad",
            format!(">= {region:?}"),
            format!("{pad:?}"),
        ));
    }
    let (wty, vy) = span_weights(y0, wy, ny, taper);
    let (wtx, vx) = span_weights(x0, wx, nx, taper);
    // rows of the region inside the image and the columns [ja, jb) inside it (the taper
    // weights are zero elsewhere)
    let img = image.as_standard_layout();
    let data = img.as_slice().expect("standard layout is contiguous");
    let ja = (-x0).clamp(0, wx as isize) as usize;
    let jb = (nx as isize - x0).clamp(ja as isize, wx as isize) as usize;
    let row_of = |i: usize| -> Option<&[f32]> {
        let y = y0 + i as isize;
        if wty[i] > 0.0 && y >= 0 && (y as usize) < ny && ja < jb {
            let o = y as usize * nx;
            let xa = (x0 + ja as isize) as usize;
            Some(&data[o + xa..o + xa + (jb - ja)])
        } else {
            None
        }
    };
    let sw: f64 = wty.iter().sum::<f64>() * wtx.iter().sum::<f64>();
    let swv: f64 = (0..wy)
        .into_par_iter()
        .with_min_len(16)
        .map(|i| match row_of(i) {
            Some(row) => {
                let mut l = [0.0f64; 4];
                let w = &wtx[ja..jb];
                let (cw, cr) = (w.chunks_exact(4), row.chunks_exact(4));
                let (rw, rr) = (cw.remainder(), cr.remainder());
                for (a, b) in cw.zip(cr) {
                    for k in 0..4 {
                        l[k] += a[k] * b[k] as f64;
                    }
                }
                let mut t: f64 = l.iter().sum();
                for (a, b) in rw.iter().zip(rr.iter()) {
                    t += a * *b as f64;
                }
                wty[i] * t
            }
            None => 0.0,
        })
        .sum();
    if sw <= 0.0 {
        return Err(KernelError::value(
            "expected_center",
            "the search region does not overlap the reference image",
        ));
    }
    let mu = swv / sw;
    let ia = (-y0).clamp(0, wy as isize) as usize;
    let ib = (ny as isize - y0).clamp(ia as isize, wy as isize) as usize;
    debug_assert!((0..wy).all(|i| (vy[i] > 0.0) == (ia..ib).contains(&i)));
    debug_assert!((0..wx).all(|j| (vx[j] > 0.0) == (ja..jb).contains(&j)));
    let plan = fft::plan(pad.0, pad.1)?;
    // the tapered, mean-removed region is written straight into the transform's row pass
    let spec = plan.forward_with(
        |i, buf| {
            let row = match if i < wy { row_of(i) } else { None } {
                Some(r) => r,
                None => return false,
            };
            buf[..ja].fill(0.0);
            buf[jb..].fill(0.0);
            let wi = wty[i];
            for ((o, w), v) in buf[ja..jb].iter_mut().zip(&wtx[ja..jb]).zip(row) {
                *o = (wi * *w * (*v as f64 - mu)) as f32;
            }
            true
        },
        true,
    );
    let nxc = plan.nxc;
    // filtered region R' (sqrt of the filter on one side): the filtered copy of the spectrum
    // is formed block by block inside the inverse column pass (no clone + filter passes)
    let t_half = if filter.is_identity() {
        None
    } else {
        Some(xcorr::filter_table(pad.0, pad.1, filter, 0.5))
    };
    let mut half = fft::POOL_C32.take(spec.len());
    {
        let th = t_half
            .as_ref()
            .map(|t| t.as_slice().expect("contiguous table"));
        let sp = &spec[..];
        let py = pad.0;
        plan.inverse_columns_with(
            &mut half,
            |kx0, chunk| {
                let src = &sp[kx0 * py..kx0 * py + chunk.len()];
                match th {
                    Some(t) => {
                        let tt = &t[kx0 * py..kx0 * py + chunk.len()];
                        for ((o, v), h) in chunk.iter_mut().zip(src.iter()).zip(tt.iter()) {
                            *o = *v * *h;
                        }
                    }
                    None => chunk.copy_from_slice(src),
                }
            },
            true,
        );
    }
    let mut spare = fft::POOL_C32.take(spec.len());
    let filtered_full = plan.inverse_rows(&half, &mut spare, true);
    fft::POOL_C32.give(spare);
    fft::POOL_C32.give(half);
    let mut spec = Array2::from_shape_vec((nxc, pad.0), spec)
        .map_err(|e| KernelError::value("fft", e.to_string()))?;
    if method == Method::XCorr {
        xcorr::apply_filter(&mut spec, pad.0, pad.1, filter, 1.0);
    }
    Ok(Reference {
        pad,
        region,
        spec,
        filtered: filtered_full,
        valid_rows: (ia, ib),
        valid_cols: (ja, jb),
        filter: *filter,
        method,
    })
}

/// One evaluated peak of a search point.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PeakEval {
    /// Sub-pixel position of the moving centre in region pixels.
    pub x: f64,
    pub y: f64,
    pub value: f32,
    /// Interpolated peak height (see [`xcorr::Peak::value_interp`]).
    pub value_interp: f64,
    /// Pearson CCC of the filtered images over the patch footprint at the integer peak.
    pub ccc: f64,
    /// Fraction of the patch weight on valid reference pixels.
    pub overlap: f64,
}

/// Result of one search point.
pub struct PointResult {
    pub peaks: Vec<PeakEval>,
    pub stats: MapStats,
    /// Correlation map over the region `(wy, wx)` (only when requested).
    pub map: Option<Array2<f32>>,
    /// Σ of the patch mask weights (0 means an empty patch).
    pub mask_sum: f64,
}

/// Patch/search parameters shared by all points of a call.
#[derive(Clone, Debug)]
pub struct PatchParams {
    pub hy: usize,
    pub hx: usize,
    /// Width (moving-image pixels of the pre-shrunk image) of the soft mask ramp.
    pub taper: f64,
    pub allowed: Allowed,
    pub n_peaks: usize,
    pub min_sep: f64,
    /// The CCC is computed only over patch pixels that fall inside the moving image (mask
    /// > 0.05) for *every* one of these maps (typically the extremes of the search range), so
    /// that the scores of different search points are measured over the same footprint and are
    /// comparable. Empty = each point's own footprint.
    pub score_affines: Vec<Affine>,
    /// Known position `(x, y)` (region pixels) of the moving centre: skip the correlation and
    /// only hill-climb the CCC from there (used by the local refinement rounds).
    pub direct: Option<(f64, f64)>,
    /// Refine the best-scoring peak on the real-space CCC: its sub-pixel position and its
    /// CCC become those of the CCC maximum (3×3 neighbourhood, hill-climb, parabolas).
    pub refine_ccc: bool,
}

/// The cosine ramp [`ramp`] of one width, tabulated (linear interpolation between 4096
/// samples: |error| < 2e-7): the patch mask evaluates it at every patch pixel for every score
/// map, and `cos` dominated the mask's cost.
struct RampTable {
    width: f64,
    inv_step: f64,
    tab: Vec<f64>,
}

impl RampTable {
    const N: usize = 4096;

    fn new(width: f64) -> Self {
        let w = width.max(0.0);
        let tab = (0..=Self::N + 1)
            .map(|k| ramp(w * k as f64 / Self::N as f64, w))
            .collect();
        RampTable {
            width: w,
            inv_step: if w > 0.0 { Self::N as f64 / w } else { 0.0 },
            tab,
        }
    }

    #[inline]
    fn at(&self, t: f64) -> f64 {
        if t <= 0.0 {
            0.0
        } else if t >= self.width {
            1.0
        } else {
            let u = t * self.inv_step;
            let k = (u as usize).min(Self::N - 1);
            let f = u - k as f64;
            self.tab[k] + f * (self.tab[k + 1] - self.tab[k])
        }
    }
}

/// The warped, masked, mean-removed patch; its mask; per patch row the contiguous span
/// `[j0, j1)` of score-footprint columns (see [`PatchParams::score_affines`]); Σ mask.
type PatchMask = (Array2<f32>, Array2<f32>, Vec<(usize, usize)>, f64);

/// Soft-mask weight of patch pixel `(j, i)` under the patch → moving map `b`: the ramp of the
/// distance of its sample position to the moving image's border, per axis, multiplied.
#[inline]
fn mask_weight(tab: &RampTable, b: &Affine, i: usize, j: usize, nx: usize, ny: usize) -> f64 {
    let sx = b[0][0] * j as f64 + b[0][1] * i as f64 + b[0][2];
    let sy = b[1][0] * j as f64 + b[1][1] * i as f64 + b[1][2];
    let dx = (sx + 0.5).min(nx as f64 - 0.5 - sx);
    let dy = (sy + 0.5).min(ny as f64 - 0.5 - sy);
    tab.at(dx) * tab.at(dy)
}

fn patch_and_mask(
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
    let tab = RampTable::new(p.taper);
    let weight = |b: &Affine, i: usize, j: usize| mask_weight(&tab, b, i, j, nx, ny);
    // Per row, the weight is exactly 0 outside the moving image's footprint and exactly 1 in
    // its interior (both intervals of j, the sample position being affine in j): only the ramp
    // zone is evaluated pixel by pixel. The intervals are shrunk/grown by one pixel so rounding
    // never changes a value.
    let taper = p.taper.max(0.0);
    let row_interval = |b: &Affine, i: usize, lo_x: f64, hi_x: f64, lo_y: f64, hi_y: f64| {
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
    };
    let clip = |v: f64| -> usize { v.clamp(0.0, kx as f64) as usize };
    // interior (weight exactly 1), shrunk by one pixel: [a, b)
    let interior = |b: &Affine, i: usize| -> (usize, usize) {
        let (lo, hi) = row_interval(
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
        let (a, z) = (clip(lo.ceil() + 1.0), clip(hi.floor()));
        (a, z.max(a))
    };
    // support (weight possibly > 0), grown by one pixel: [a, b)
    let support = |b: &Affine, i: usize| -> (usize, usize) {
        let (lo, hi) = row_interval(b, i, -0.5, nx as f64 - 0.5, -0.5, ny as f64 - 0.5);
        if hi.is_nan() || lo.is_nan() || hi < lo {
            return (0, 0);
        }
        let (a, z) = (clip(lo.floor() - 1.0), clip(hi.ceil() + 2.0));
        (a, z.max(a))
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
            let (sa, sb) = support(a, i);
            let (ia, ib) = interior(a, i);
            let (ia, ib) = (ia.max(sa), ib.min(sb).max(ia.max(sa)));
            for j in (sa..ia).chain(ib..sb) {
                mrow[j] = weight(a, i, j) as f32;
            }
            mrow.slice_mut(s![ia..ib]).fill(1.0);
            let (mut sw, mut swv) = (0.0f64, 0.0f64);
            for j in sa..sb {
                let m = mrow[j] as f64;
                sw += m;
                swv += m * prow[j] as f64;
            }
            // score footprint: first and last j where every map's weight exceeds 0.05
            // (exactly the weight test, only skipped where its outcome is certain)
            let (mut ca, mut cb) = (sa, sb);
            let (mut qa, mut qb) = (ia, ib);
            for b in &p.score_affines {
                let (u, v) = support(b, i);
                ca = ca.max(u);
                cb = cb.min(v);
                let (u, v) = interior(b, i);
                qa = qa.max(u);
                qb = qb.min(v);
            }
            let ok = |j: usize| {
                weight(a, i, j) > 0.05 && p.score_affines.iter().all(|b| weight(b, i, j) > 0.05)
            };
            let span = if ca >= cb {
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
            };
            (span, sw, swv)
        })
        .collect();
    let (mut sw, mut swv) = (0.0f64, 0.0f64);
    for r in &rows {
        sw += r.1;
        swv += r.2;
    }
    let spans = rows.into_iter().map(|r| r.0).collect();
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
    Ok((patch, mask, spans, sw))
}

/// Filter a small patch with √H on its own padded frame (same cycles/pixel as the reference).
fn filter_patch(patch: &Array2<f32>, f: &FilterParams) -> Result<Array2<f32>, KernelError> {
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

/// `[Σr, Σp, Σr², Σp², Σr·p]` with 8 independent f32 lanes per sum; the same arithmetic
/// compiled for AVX2 when the CPU has it (one 256-bit register per sum instead of two SSE
/// registers: identical results).
#[inline]
fn moments_lanes(r: &[f32], p: &[f32]) -> [f32; 5] {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked above).
            return unsafe { moments_lanes_avx2(r, p) };
        }
    }
    moments_lanes_generic(r, p)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn moments_lanes_avx2(r: &[f32], p: &[f32]) -> [f32; 5] {
    moments_lanes_generic(r, p)
}

#[inline(always)]
fn moments_lanes_generic(r: &[f32], p: &[f32]) -> [f32; 5] {
    let n = r.len().min(p.len());
    let (r, p) = (&r[..n], &p[..n]);
    let mut l = [[0.0f32; 8]; 5];
    let (cr, cp) = (r.chunks_exact(8), p.chunks_exact(8));
    let (rr, rp) = (cr.remainder(), cp.remainder());
    for (x, y) in cr.zip(cp) {
        for k in 0..8 {
            l[0][k] += x[k];
            l[1][k] += y[k];
            l[2][k] += x[k] * x[k];
            l[3][k] += y[k] * y[k];
            l[4][k] += x[k] * y[k];
        }
    }
    let mut o = [0.0f32; 5];
    for (q, lane) in o.iter_mut().zip(l.iter()) {
        *q = lane.iter().sum();
    }
    for (x, y) in rr.iter().zip(rp.iter()) {
        o[0] += x;
        o[1] += y;
        o[2] += x * x;
        o[3] += y * y;
        o[4] += x * y;
    }
    o
}

fn evaluate_one(
    r: &Reference,
    moving: ArrayView2<f32>,
    a: &Affine,
    p: &PatchParams,
    want_map: bool,
    inner_parallel: bool,
) -> Result<PointResult, KernelError> {
    let (py, px) = r.pad;
    let (wy, wx) = r.region;
    if py < wy + p.hy || px < wx + p.hx {
        return Err(KernelError::shape(
            "pad",
            format!(">= region + patch half ({}, {})", wy + p.hy, wx + p.hx),
            format!("{:?}", r.pad),
        ));
    }
    let (patch, mask, spans, mask_sum) = patch_and_mask(moving, a, p)?;
    if mask_sum <= 1e-9 {
        return Ok(PointResult {
            peaks: Vec::new(),
            stats: MapStats::default(),
            map: None,
            mask_sum,
        });
    }
    let (ky, kx) = patch.dim();
    let (peaks, stats, map, pf) = if let Some((sx, sy)) = p.direct {
        // the peak position is known (refinement rounds): no correlation map, only the CCC
        // hill-climb below starting there
        let pf = filter_patch(&patch, &r.filter)?;
        let pk = xcorr::Peak {
            x: sx,
            y: sy,
            ix: sx.round().max(0.0) as usize,
            iy: sy.round().max(0.0) as usize,
            value: 0.0,
            value_interp: 0.0,
        };
        (vec![pk], MapStats::default(), None, pf)
    } else {
        // the patch centred on the frame origin (wrapped), written straight into the row
        // pass of the transform (no zeroed frame, no scatter loop)
        let plan = fft::plan(py, px)?;
        let patch_c = patch.as_standard_layout();
        let ps = patch_c.as_slice().expect("contiguous");
        let (hy, hx) = (p.hy, p.hx);
        let fill = |fy: usize, buf: &mut [f32]| -> bool {
            // frame row fy holds patch row i with (i − hy) ≡ fy (mod py)
            let i0 = (fy + hy) % py;
            if i0 >= ky {
                return false;
            }
            // (if the patch were taller than the frame, the last such row wins, as before)
            let i = i0 + ((ky - 1 - i0) / py) * py;
            buf.fill(0.0);
            let row = &ps[i * kx..(i + 1) * kx];
            for (j, v) in row.iter().enumerate() {
                buf[(j + px - hx % px) % px] = *v;
            }
            true
        };
        let (mut fp, pf) = rayon::join(
            || plan.forward_with(fill, inner_parallel),
            || filter_patch(&patch, &r.filter),
        );
        let pf = pf?;
        // cross-power spectrum in place (same arithmetic as xcorr::cross_power), fused into
        // the inverse column pass
        let table = match r.method {
            Method::Phase if !r.filter.is_identity() => {
                Some(xcorr::filter_table(py, px, &r.filter, 1.0))
            }
            _ => None,
        };
        let tsl = table
            .as_ref()
            .map(|t| t.as_slice().expect("contiguous table"));
        let rs = r.spec.as_slice().expect("contiguous spectrum");
        let phase = r.method == Method::Phase;
        plan.inverse_columns_with(
            &mut fp,
            |kx0, chunk| {
                for (k, grow) in chunk.chunks_mut(py).enumerate() {
                    let kxx = kx0 + k;
                    let arow = &rs[kxx * py..(kxx + 1) * py];
                    if !phase {
                        // xcorr: the filter is already in the reference spectrum; a plain,
                        // branch-free loop (vectorises)
                        for (g, a) in grow.iter_mut().zip(arow) {
                            *g = *a * g.conj();
                        }
                        continue;
                    }
                    let trow = tsl.map(|t| &t[kxx * py..(kxx + 1) * py]);
                    for ky_ in 0..py {
                        let mut v = arow[ky_] * grow[ky_].conj();
                        let m = v.norm();
                        v = if m > 1e-30 { v / m } else { C32::new(0.0, 0.0) };
                        if let Some(t) = trow {
                            v *= t[ky_];
                        }
                        grow[ky_] = v;
                    }
                }
                if kx0 == 0 && phase {
                    chunk[0] = C32::new(0.0, 0.0);
                }
            },
            inner_parallel,
        );
        let mut spare = fft::POOL_C32.take(fp.len());
        let map = plan.inverse_rows(&fp, &mut spare, inner_parallel);
        fft::POOL_C32.give(spare);
        fft::POOL_C32.give(fp);
        let map = Array2::from_shape_vec((py, px), map)
            .map_err(|e| KernelError::value("fft", e.to_string()))?;
        let (peaks, stats) = xcorr::find_peaks(map.view(), p.n_peaks, p.min_sep, &p.allowed);
        (peaks, stats, Some(map), pf)
    };
    let msum = mask_sum;
    // Pearson CCC (means removed) of the filtered patch and the filtered reference over the
    // common footprint, and the overlap fraction, with the moving centre at region (ix, iy).
    // per patch row: the contiguous span of footprint (score) columns; rows as slices
    let pf_c = pf.as_standard_layout();
    let mask_c = mask.as_standard_layout();
    let pf_s = pf_c.as_slice().expect("contiguous");
    let mask_s = mask_c.as_slice().expect("contiguous");
    let filt_s = &r.filtered[..];
    let (vy0, vy1) = r.valid_rows;
    let (vx0, vx1) = r.valid_cols;
    // per patch row, prefix sums of the mask: the overlap of a row with the valid columns is
    // one difference (the valid part of the region is a rectangle)
    let mut mpre = vec![0.0f64; ky * (kx + 1)];
    mpre.par_chunks_mut(kx + 1)
        .zip(mask_s.par_chunks(kx))
        .with_min_len(16)
        .for_each(|(pre, m)| {
            let mut acc = 0.0f64;
            for (q, v) in pre[1..].iter_mut().zip(m) {
                acc += *v as f64;
                *q = acc;
            }
        });
    let ccc_at = |ix: isize, iy: isize| -> (f64, f64) {
        let (mut n, mut sr, mut sp, mut srr, mut spp, mut spr, mut ov) =
            (0usize, 0.0f64, 0.0f64, 0.0f64, 0.0f64, 0.0f64, 0.0f64);
        for i in 0..ky {
            let y = iy + i as isize - p.hy as isize;
            if y < 0 || y >= wy as isize {
                continue;
            }
            let y = y as usize;
            // patch column j sits at region column x = ix + j − hx; clip to [0, wx)
            let jlo = (p.hx as isize - ix).max(0) as usize;
            let jhi = ((wx as isize + p.hx as isize - ix).max(0) as usize).min(kx);
            if jlo >= jhi {
                continue;
            }
            if y >= vy0 && y < vy1 {
                // valid columns x ∈ [vx0, vx1) are patch columns j = x + hx − ix
                let va = ((vx0 + p.hx) as isize - ix).clamp(jlo as isize, jhi as isize) as usize;
                let vb = ((vx1 + p.hx) as isize - ix).clamp(va as isize, jhi as isize) as usize;
                let pre = &mpre[i * (kx + 1)..(i + 1) * (kx + 1)];
                ov += pre[vb] - pre[va];
            }
            let (j0, j1) = spans[i];
            let (a, b) = (j0.max(jlo), j1.min(jhi));
            if a >= b {
                continue;
            }
            let prow = &pf_s[i * kx + a..i * kx + b];
            let x0 = (ix - p.hx as isize + a as isize) as usize;
            let rrow = &filt_s[y * px + x0..y * px + x0 + (b - a)];
            let [r1, p1, rr, pp, pr] = moments_lanes(rrow, prow);
            n += b - a;
            sr += r1 as f64;
            sp += p1 as f64;
            srr += rr as f64;
            spp += pp as f64;
            spr += pr as f64;
        }
        let overlap = if msum > 0.0 {
            (ov / msum).clamp(0.0, 1.0)
        } else {
            0.0
        };
        if n < 25 {
            return (0.0, overlap);
        }
        let n = n as f64;
        let vr = srr - sr * sr / n;
        let vp = spp - sp * sp / n;
        let cov = spr - sr * sp / n;
        let ccc = if vr > 0.0 && vp > 0.0 {
            (cov / (vr * vp).sqrt()).clamp(-1.0, 1.0)
        } else {
            0.0
        };
        (ccc, overlap)
    };
    let mut evals: Vec<PeakEval> = peaks
        .par_iter()
        .map(|pk| {
            let (ccc, overlap) = ccc_at(pk.ix as isize, pk.iy as isize);
            PeakEval {
                x: pk.x,
                y: pk.y,
                value: pk.value,
                value_interp: pk.value_interp,
                ccc,
                overlap,
            }
        })
        .collect();
    if p.refine_ccc && !evals.is_empty() {
        // sub-pixel position of the best-scoring peak from the CCC itself: the windowed
        // correlation peak is biased by the taper/mask weights on strong large-scale content,
        // the locally normalised CCC is not. Hill-climb to the CCC maximum (≤ 4 steps), then a
        // per-axis parabola through the 3×3 neighbourhood.
        let score = |e: &PeakEval| {
            if e.ccc > 0.0 {
                e.ccc * e.overlap.clamp(0.0, 1.0).powf(1.0 / 6.0)
            } else {
                e.ccc
            }
        };
        let kbest = (0..evals.len())
            .max_by(|&a, &b| score(&evals[a]).total_cmp(&score(&evals[b])))
            .unwrap_or(0);
        let (mut cx, mut cy) = (
            evals[kbest].x.round() as isize,
            evals[kbest].y.round() as isize,
        );
        let mut grid = [[0.0f64; 3]; 3];
        let mut ovc = 0.0;
        // cells already computed (the hill-climb's neighbourhoods overlap; the peak's own
        // CCC is known): each position's CCC is computed once
        let mut cache: Vec<((isize, isize), (f64, f64))> = Vec::with_capacity(32);
        if (peaks[kbest].ix as isize, peaks[kbest].iy as isize) == (cx, cy) {
            cache.push(((cx, cy), (evals[kbest].ccc, evals[kbest].overlap)));
        }
        // (a climb that has not converged leaves the centre below a neighbour: the parabolas
        // would then extrapolate past the grid and inflate the score, so they are skipped)
        let mut converged = false;
        for _ in 0..HILL_CLIMB_STEPS {
            let missing: Vec<(isize, isize)> = (0..9usize)
                .map(|q| (cx + (q % 3) as isize - 1, cy + (q / 3) as isize - 1))
                .filter(|c| !cache.iter().any(|(k, _)| k == c))
                .collect();
            let fresh: Vec<((isize, isize), (f64, f64))> = missing
                .par_iter()
                .map(|&(x, y)| ((x, y), ccc_at(x, y)))
                .collect();
            cache.extend(fresh);
            let cells: Vec<(usize, usize, f64, f64)> = (0..9usize)
                .map(|q| {
                    let (a, b) = (q / 3, q % 3);
                    let key = (cx + b as isize - 1, cy + a as isize - 1);
                    let (c, o) = cache
                        .iter()
                        .find(|(k, _)| *k == key)
                        .map(|(_, v)| *v)
                        .expect("computed above");
                    (a, b, c, o)
                })
                .collect();
            let (mut ba, mut bb, mut bv) = (1usize, 1usize, f64::NEG_INFINITY);
            for &(a, b, c, o) in &cells {
                grid[a][b] = c;
                if a == 1 && b == 1 {
                    ovc = o;
                }
                if c > bv {
                    bv = c;
                    ba = a;
                    bb = b;
                }
            }
            if ba == 1 && bb == 1 {
                converged = true;
                break;
            }
            cx += bb as isize - 1;
            cy += ba as isize - 1;
        }
        if !converged {
            // the last step moved the centre to a better neighbour whose own neighbourhood was
            // not evaluated: report that cell as it is (a parabola through the old
            // neighbourhood would extrapolate past it and inflate the score)
            let (c, o) = cache
                .iter()
                .find(|(k, _)| *k == (cx, cy))
                .map(|(_, v)| *v)
                .expect("a neighbour computed above");
            grid = [[c; 3]; 3];
            ovc = o;
        }
        // sub-pixel vertex and height of the CCC maximum between pixels, per axis, only where
        // the centre is the maximum of its three samples (the vertex then lies within ±½ px and
        // rises at most |y1 − y3|/8 above the centre)
        let peaked = |y1: f64, y2: f64, y3: f64| y2 >= y1 && y2 >= y3;
        let offset = |y1: f64, y2: f64, y3: f64| -> f64 {
            if peaked(y1, y2, y3) {
                xcorr::parabolic_offset(y1, y2, y3)
            } else {
                0.0
            }
        };
        let rise = |y1: f64, y2: f64, y3: f64| -> f64 {
            let d = y1 + y3 - 2.0 * y2;
            if peaked(y1, y2, y3) && d < -1e-12 {
                -(y1 - y3) * (y1 - y3) / (8.0 * d)
            } else {
                0.0
            }
        };
        let ox = offset(grid[1][0], grid[1][1], grid[1][2]);
        let oy = offset(grid[0][1], grid[1][1], grid[2][1]);
        let c = grid[1][1];
        let ccc_max =
            (c + rise(grid[1][0], c, grid[1][2]) + rise(grid[0][1], c, grid[2][1])).min(1.0);
        let e = &mut evals[kbest];
        e.x = cx as f64 + ox;
        e.y = cy as f64 + oy;
        e.ccc = ccc_max;
        e.value_interp = e.value as f64;
        e.overlap = ovc;
    }
    let map = if want_map {
        map.map(|m| m.slice(s![..wy, ..wx]).to_owned())
    } else {
        if let Some(m) = map {
            fft::POOL_F32.give(m.into_raw_vec_and_offset().0);
        }
        None
    };
    Ok(PointResult {
        peaks: evals,
        stats,
        map,
        mask_sum,
    })
}

/// Evaluate search points (one affine patch → moving map each) in parallel against `r`.
/// `want_map` returns the region correlation map of the first point.
pub fn evaluate_points(
    r: &Reference,
    moving: ArrayView2<f32>,
    affines: &[Affine],
    p: &PatchParams,
    want_map: bool,
) -> Result<Vec<PointResult>, KernelError> {
    if moving.dim().0 == 0 || moving.dim().1 == 0 {
        return Err(KernelError::shape(
            "moving",
            "non-empty",
            format!("{:?}", moving.dim()),
        ));
    }
    let contiguous = moving.as_standard_layout();
    let mv = contiguous.view();
    // one point: parallel inside its transforms; several: one point per thread
    let inner = affines.len() < 2;
    affines
        .par_iter()
        .enumerate()
        .map(|(k, a)| evaluate_one(r, mv, a, p, want_map && k == 0, inner))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Direct mode (refinement rounds): a climb that converges lands on the true position; one
    /// that runs out of steps reports the cell it reached as it is, never a parabola
    /// extrapolated past the evaluated cells (that once inflated scores of wrong poses).
    #[test]
    fn direct_climb_never_extrapolates() {
        // one broad blob: the CCC rises monotonically towards it over tens of pixels
        let img = Array2::from_shape_fn((96, 112), |(y, x)| {
            let (dx, dy) = (x as f64 - 60.0, y as f64 - 40.0);
            (-(dx * dx + dy * dy) / (2.0 * 12.0 * 12.0)).exp() as f32
        });
        let (mov, r, a) = crop_at_60_40(&img, &FilterParams::NONE);
        let run = |start: (f64, f64)| {
            let p = crop_params(a, Some(start));
            evaluate_points(&r, mov.view(), &[a], &p, false).unwrap()[0].peaks[0]
        };
        let near = run((63.0, 42.0));
        assert!(
            (near.x - 60.0).abs() < 0.3 && (near.y - 40.0).abs() < 0.3,
            "{near:?}"
        );
        let far = run((60.0 + 20.0, 40.0));
        // 8 steps from x = 80 cannot reach x = 60: an integer cell, below the true maximum
        assert!(
            far.x >= 60.0 + 20.0 - HILL_CLIMB_STEPS as f64 - 1e-9,
            "{far:?}"
        );
        assert_eq!(far.x, far.x.round(), "{far:?}");
        assert_eq!(far.y, far.y.round(), "{far:?}");
        assert!(far.ccc < near.ccc, "{far:?} vs {near:?}");
    }

    fn scene(ny: usize, nx: usize) -> Array2<f32> {
        Array2::from_shape_fn((ny, nx), |(y, x)| {
            let (x, y) = (x as f64, y as f64);
            let mut v = 0.0;
            for k in 0..40 {
                let h = |a: f64| ((a * 12.9898).sin() * 43758.5453).rem_euclid(1.0);
                let cx = h(k as f64 + 0.1) * nx as f64;
                let cy = h(k as f64 + 0.7) * ny as f64;
                let s = 2.0 + (k % 4) as f64;
                v += (-((x - cx).powi(2) + (y - cy).powi(2)) / (2.0 * s * s)).exp();
            }
            v as f32
        })
    }

    /// The interval shortcuts of `patch_and_mask` give exactly the per-pixel weights and score
    /// spans (rotations, zooms, patches larger and smaller than the image, several score maps).
    #[test]
    fn patch_mask_equals_per_pixel_evaluation() {
        let mov = scene(37, 52);
        let (ny, nx) = mov.dim();
        let mk = |th: f64, z: f64, hy: usize, hx: usize, cx: f64, cy: f64| -> Affine {
            let (c, s) = (th.cos() / z, th.sin() / z);
            // patch pixel (j, i) -> moving cx + R(θ)ᵀ (j − hx, i − hy) / z
            [
                [c, s, cx - c * hx as f64 - s * hy as f64],
                [-s, c, cy + s * hx as f64 - c * hy as f64],
            ]
        };
        for (k, &(th, z, hy, hx, taper)) in [
            (0.0, 1.0, 20usize, 28usize, 5.0),
            (0.3, 0.9, 25, 30, 8.0),
            (-2.9, 1.3, 12, 15, 3.0),
            (std::f64::consts::FRAC_PI_2, 1.0, 30, 30, 0.0),
            (0.1, 0.5, 40, 40, 11.5),
        ]
        .iter()
        .enumerate()
        {
            let a = mk(th, z, hy, hx, 25.7, 18.2);
            let sa = vec![
                mk(th + 0.05, z * 0.96, hy, hx, 25.7, 18.2),
                mk(th - 0.05, z * 0.96, hy, hx, 25.7, 18.2),
            ];
            let p = PatchParams {
                hy,
                hx,
                taper,
                allowed: Allowed::all(10, 10),
                n_peaks: 1,
                min_sep: 1.0,
                score_affines: if k % 2 == 0 { sa } else { vec![] },
                refine_ccc: false,
                direct: None,
            };
            let (_, mask, spans, _) = patch_and_mask(mov.view(), &a, &p).unwrap();
            let tab = RampTable::new(taper);
            let w = |b: &Affine, i: usize, j: usize| mask_weight(&tab, b, i, j, nx, ny);
            for i in 0..2 * hy + 1 {
                let mut first = None;
                let mut last = 0;
                for j in 0..2 * hx + 1 {
                    let v = w(&a, i, j);
                    assert_eq!(mask[[i, j]], v as f32, "case {k} ({i}, {j})");
                    assert!((v - ramp_product(&a, i, j, nx, ny, taper)).abs() < 1e-6);
                    if v > 0.05 && p.score_affines.iter().all(|b| w(b, i, j) > 0.05) {
                        first.get_or_insert(j);
                        last = j + 1;
                    }
                }
                let expect = first.map_or((0, 0), |f| (f, last));
                assert_eq!(spans[i], expect, "case {k} row {i}");
            }
        }
    }

    fn ramp_product(b: &Affine, i: usize, j: usize, nx: usize, ny: usize, taper: f64) -> f64 {
        let sx = b[0][0] * j as f64 + b[0][1] * i as f64 + b[0][2];
        let sy = b[1][0] * j as f64 + b[1][1] * i as f64 + b[1][2];
        let dx = (sx + 0.5).min(nx as f64 - 0.5 - sx);
        let dy = (sy + 0.5).min(ny as f64 - 0.5 - sy);
        ramp(dx, taper) * ramp(dy, taper)
    }

    /// The moving image = the 31×41 crop centred at (x, y) = (60, 40) of a 96×112 `img`; the
    /// whole of `img` prepared as the reference region; the patch (half 16, 21) → moving map
    /// at the true pose.
    fn crop_at_60_40(img: &Array2<f32>, f: &FilterParams) -> (Array2<f32>, Reference, Affine) {
        let (cx, cy) = (60usize, 40usize);
        let mov = img
            .slice(s![cy - 15..=cy + 15, cx - 20..=cx + 20])
            .to_owned();
        let (hy, hx) = (16usize, 21usize);
        let pad = (nice_size(96 + hy), nice_size(112 + hx));
        let r =
            prepare_reference(img.view(), (0, 0), (96, 112), pad, 6.0, f, Method::XCorr).unwrap();
        // patch pixel (j, i) -> moving (j - hx + 20, i - hy + 15)
        let a: Affine = [[1.0, 0.0, 20.0 - hx as f64], [0.0, 1.0, 15.0 - hy as f64]];
        (mov, r, a)
    }

    /// Patch parameters for [`crop_at_60_40`]'s pose `a` (correlation map, or `direct`).
    fn crop_params(a: Affine, direct: Option<(f64, f64)>) -> PatchParams {
        PatchParams {
            hy: 16,
            hx: 21,
            taper: 3.0,
            allowed: Allowed::all(96, 112),
            n_peaks: 5,
            min_sep: 4.0,
            score_affines: vec![a],
            refine_ccc: true,
            direct,
        }
    }

    #[test]
    fn finds_a_translated_patch() {
        let img = scene(96, 112);
        let (mov, r, a) = crop_at_60_40(&img, &FilterParams::SERIALEM);
        let region = (96usize, 112usize);
        let p = crop_params(a, None);
        let res = evaluate_points(&r, mov.view(), &[a], &p, true).unwrap();
        let best = res[0].peaks[0];
        assert!(
            (best.x - 60.0).abs() < 0.3 && (best.y - 40.0).abs() < 0.3,
            "{best:?}"
        );
        assert!(best.ccc > 0.9, "{best:?}");
        assert!(best.overlap > 0.99);
        assert_eq!(res[0].map.as_ref().unwrap().dim(), region);
    }
}

#[cfg(test)]
mod timing {
    use super::*;

    /// `cargo test --release -p emgeom-kernels crossmag_timing -- --ignored --nocapture`:
    /// one known-calibration evaluation of the benchmark's size (1024² region, 463² patch).
    #[test]
    #[ignore]
    fn crossmag_timing() {
        let n = 1024usize;
        let img = Array2::from_shape_fn((n, n), |(y, x)| {
            let (x, y) = (x as f64, y as f64);
            ((x * 0.05).sin() * (y * 0.031).cos() + (x * 0.2 + y * 0.13).sin() * 0.3) as f32
        });
        let mov = Array2::from_shape_fn((409, 409), |(y, x)| img[[y + 300, x + 200]]);
        let (hy, hx) = (231usize, 231usize);
        let pad = (1280usize, 1280usize);
        let f = FilterParams::SERIALEM;
        for _ in 0..12 {
            let t = std::time::Instant::now();
            let r = prepare_reference(img.view(), (0, 0), (n, n), pad, 30.0, &f, Method::XCorr)
                .unwrap();
            let tp = t.elapsed();
            let a: Affine = [[1.0, 0.0, 204.0 - hx as f64], [0.0, 1.0, 204.0 - hy as f64]];
            let p = PatchParams {
                hy,
                hx,
                taper: 41.0,
                allowed: Allowed::all(n, n),
                n_peaks: 10,
                min_sep: 34.0,
                score_affines: vec![a],
                refine_ccc: true,
                direct: None,
            };
            let t = std::time::Instant::now();
            let res = evaluate_points(&r, mov.view(), &[a], &p, false).unwrap();
            let te = t.elapsed();
            let map = Array2::from_shape_fn(pad, |(y, x)| {
                // smooth + hash noise: a local maximum every few pixels, like a real map
                let h = ((x * 7919 + y * 104_729) % 1009) as f32 / 1009.0;
                ((x as f32 * 0.07).sin() * (y as f32 * 0.05).cos()) + h * 0.5
            });
            let t = std::time::Instant::now();
            let (pk, _) = xcorr::find_peaks(map.view(), 10, 34.0, &Allowed::all(n, n));
            let tk = t.elapsed();
            // a refinement point: direct mode (no correlation), 499² patch, 3 score maps
            let (hy2, hx2) = (249usize, 249usize);
            let r2 = prepare_reference(
                img.view(),
                (300 - 255, 400 - 255),
                (525, 525),
                (810, 810),
                3.0,
                &f,
                Method::XCorr,
            )
            .unwrap();
            let mov2 = Array2::from_shape_fn((401, 401), |(y, x)| img[[y + 100, x + 200]]);
            let a2: Affine = [
                [1.0, 0.0, 200.0 - hx2 as f64],
                [0.0, 1.0, 200.0 - hy2 as f64],
            ];
            let p2 = PatchParams {
                hy: hy2,
                hx: hx2,
                taper: 40.0,
                allowed: Allowed::all(525, 525),
                n_peaks: 10,
                min_sep: 37.0,
                score_affines: vec![a2, a2, a2],
                refine_ccc: true,
                direct: Some((255.0, 255.0)),
            };
            let t = std::time::Instant::now();
            let (patch, _, _, _) = patch_and_mask(mov2.view(), &a2, &p2).unwrap();
            let t_pm = t.elapsed();
            let t = std::time::Instant::now();
            let _ = filter_patch(&patch, &f).unwrap();
            let t_fp = t.elapsed();
            let t = std::time::Instant::now();
            let _ = evaluate_points(&r2, mov2.view(), &[a2], &p2, false).unwrap();
            let t_d = t.elapsed();
            eprintln!("direct point {t_d:?}: patch+mask {t_pm:?} filter_patch {t_fp:?}");
            eprintln!(
                "prepare {tp:?} evaluate {te:?} find_peaks {tk:?} ({} peaks, best {:?})",
                pk.len(),
                res[0].peaks.first().map(|e| (e.x, e.y))
            );
        }
    }
}
