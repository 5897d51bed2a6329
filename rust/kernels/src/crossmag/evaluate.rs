//! One search point (patch, correlation with the prepared reference, peaks, CCC scores,
//! hill-climb) and all points in parallel.

use ndarray::{s, Array2, ArrayView2};
use rayon::prelude::*;

use super::moments::moments_lanes;
use super::params::{PatchParams, PeakEval, PointResult};
use super::patch::{filter_patch, patch_and_mask};
use super::reference::Reference;
use crate::fft::{self, C32};
use crate::warp::Affine;
use crate::xcorr::{self, MapStats, Method};
use crate::{Isa, KernelError};

/// Most steps of the CCC hill-climb that places a peak (each step evaluates ≤ 5 new cells).
pub(super) const HILL_CLIMB_STEPS: usize = 8;

/// A CCC value and overlap fraction per evaluated position `(x, y)` of the hill-climb.
type CccCache = Vec<((isize, isize), (f64, f64))>;

fn evaluate_one(
    r: &Reference,
    moving: ArrayView2<f32>,
    a: &Affine,
    p: &PatchParams,
    want_map: bool,
    inner_parallel: bool,
    isa: Isa,
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
    let (peaks, stats, map, pf) = if let Some((sx, sy)) = p.direct {
        // the peak position is known (refinement rounds): no correlation map, only the CCC
        // hill-climb below starting there
        let pf = filter_patch(&patch, &r.filter)?;
        (vec![direct_peak(sx, sy)], MapStats::default(), None, pf)
    } else {
        let (map, pf) = correlate_patch(r, &patch, p, inner_parallel)?;
        let (peaks, stats) = xcorr::find_peaks(map.view(), p.n_peaks, p.min_sep, &p.allowed);
        (peaks, stats, Some(map), pf)
    };
    let pf_c = pf.as_standard_layout();
    let mask_c = mask.as_standard_layout();
    let mask_s = mask_c.as_slice().expect("contiguous");
    let scorer = CccScorer {
        r,
        p,
        isa,
        pf: pf_c.as_slice().expect("contiguous"),
        spans: &spans,
        mask_pre: mask_prefix_sums(mask_s, patch.dim()),
        mask_sum,
        kdim: patch.dim(),
    };
    let mut evals: Vec<PeakEval> = peaks
        .par_iter()
        .map(|pk| {
            let (ccc, overlap) = scorer.ccc_at(pk.ix as isize, pk.iy as isize);
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
        refine_best_peak(&scorer, &peaks, &mut evals);
    }
    Ok(PointResult {
        peaks: evals,
        stats,
        map: region_map(map, want_map, r.region),
        mask_sum,
    })
}

/// The start of the CCC hill-climb at a known position (direct mode: no correlation map).
fn direct_peak(sx: f64, sy: f64) -> xcorr::Peak {
    xcorr::Peak {
        x: sx,
        y: sy,
        ix: sx.round().max(0.0) as usize,
        iy: sy.round().max(0.0) as usize,
        value: 0.0,
        value_interp: 0.0,
    }
}

/// The correlation step: the patch (centred on the frame origin, wrapped) is transformed, its
/// cross-power spectrum with the prepared reference formed and inverted on the padded frame
/// `(py, px)`; meanwhile the √H-filtered patch is formed. Returns (map, filtered patch).
fn correlate_patch(
    r: &Reference,
    patch: &Array2<f32>,
    p: &PatchParams,
    inner_parallel: bool,
) -> Result<(Array2<f32>, Array2<f32>), KernelError> {
    let (py, px) = r.pad;
    let (ky, kx) = patch.dim();
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
        || plan.prepare_with(fill, inner_parallel),
        || filter_patch(patch, &r.filter),
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
    let map = plan.correlate_with(
        &mut fp,
        |kx0, chunk| cross_power_block(rs, tsl, py, phase, kx0, chunk),
        inner_parallel,
    );
    drop(fp);
    let map = Array2::from_shape_vec((py, px), map)
        .map_err(|e| KernelError::value("fft", e.to_string()))?;
    Ok((map, pf))
}

/// Cross-power spectrum of a block of frequency rows `kx0..` (`py` values each) of the patch
/// spectrum `chunk` with the reference spectrum `rs`, in place: `R·conj(P)` (xcorr; the filter
/// is already in `rs`) or phase-normalised then filtered with the table `tsl` (phase; DC zeroed).
#[inline]
fn cross_power_block(
    rs: &[C32],
    tsl: Option<&[f32]>,
    py: usize,
    phase: bool,
    kx0: usize,
    chunk: &mut [C32],
) {
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
}

/// Per patch row (`kdim = (ky, kx)`), the prefix sums of the mask (`kx + 1` values, from 0):
/// the overlap of a row with the valid columns is one difference (the valid part of the
/// region is a rectangle).
fn mask_prefix_sums(mask_s: &[f32], kdim: (usize, usize)) -> Vec<f64> {
    let (ky, kx) = kdim;
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
    mpre
}

/// The honesty measures of one point: Pearson CCC (means removed) of the filtered patch and
/// the filtered reference over the common footprint, and the overlap fraction.
struct CccScorer<'a> {
    r: &'a Reference,
    p: &'a PatchParams,
    isa: Isa,
    /// The √H-filtered patch, rows of `kdim.1` values.
    pf: &'a [f32],
    /// Per patch row: the contiguous span of footprint (score) columns.
    spans: &'a [(usize, usize)],
    /// Per patch row: prefix sums of the mask (see [`mask_prefix_sums`]).
    mask_pre: Vec<f64>,
    mask_sum: f64,
    /// Patch size `(ky, kx)`.
    kdim: (usize, usize),
}

impl CccScorer<'_> {
    /// (CCC, overlap) with the moving centre at region pixel `(ix, iy)`.
    #[inline]
    fn ccc_at(&self, ix: isize, iy: isize) -> (f64, f64) {
        let (r, p) = (self.r, self.p);
        let (ky, kx) = self.kdim;
        let (wy, wx) = r.region;
        let px = r.pad.1;
        let filt_s = &r.filtered[..];
        let (vy0, vy1) = r.valid_rows;
        let (vx0, vx1) = r.valid_cols;
        let msum = self.mask_sum;
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
                let pre = &self.mask_pre[i * (kx + 1)..(i + 1) * (kx + 1)];
                ov += pre[vb] - pre[va];
            }
            let (j0, j1) = self.spans[i];
            let (a, b) = (j0.max(jlo), j1.min(jhi));
            if a >= b {
                continue;
            }
            let prow = &self.pf[i * kx + a..i * kx + b];
            let x0 = (ix - p.hx as isize + a as isize) as usize;
            let rrow = &filt_s[y * px + x0..y * px + x0 + (b - a)];
            let [r1, p1, rr, pp, pr] = moments_lanes(self.isa, rrow, prow);
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
    }
}

/// Sub-pixel position of the best-scoring peak from the CCC itself: the windowed correlation
/// peak is biased by the taper/mask weights on strong large-scale content, the locally
/// normalised CCC is not. Hill-climb to the CCC maximum, then a per-axis parabola through the
/// 3×3 neighbourhood; the best peak's entry of `evals` is replaced by the CCC maximum.
fn refine_best_peak(scorer: &CccScorer, peaks: &[xcorr::Peak], evals: &mut [PeakEval]) {
    let kbest = best_peak_index(evals);
    let start = (
        evals[kbest].x.round() as isize,
        evals[kbest].y.round() as isize,
    );
    // cells already computed (the hill-climb's neighbourhoods overlap; the peak's own
    // CCC is known): each position's CCC is computed once
    let mut cache: CccCache = Vec::with_capacity(32);
    if (peaks[kbest].ix as isize, peaks[kbest].iy as isize) == start {
        cache.push((start, (evals[kbest].ccc, evals[kbest].overlap)));
    }
    let ((cx, cy), grid, ovc) = hill_climb(scorer, start, &mut cache);
    let (ox, oy, ccc_max) = subpixel_vertex(&grid);
    let e = &mut evals[kbest];
    e.x = cx as f64 + ox;
    e.y = cy as f64 + oy;
    e.ccc = ccc_max;
    e.value_interp = e.value as f64;
    e.overlap = ovc;
}

/// Index of the best peak by CCC weighted with the sixth root of the overlap.
fn best_peak_index(evals: &[PeakEval]) -> usize {
    let score = |e: &PeakEval| {
        if e.ccc > 0.0 {
            e.ccc * e.overlap.clamp(0.0, 1.0).powf(1.0 / 6.0)
        } else {
            e.ccc
        }
    };
    (0..evals.len())
        .max_by(|&a, &b| score(&evals[a]).total_cmp(&score(&evals[b])))
        .unwrap_or(0)
}

/// The cached (CCC, overlap) at `key` (computed before).
#[inline]
fn cached(cache: &CccCache, key: (isize, isize)) -> Option<(f64, f64)> {
    cache.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
}

/// Hill-climb of the CCC from `start` (≤ [`HILL_CLIMB_STEPS`] steps to the best of the 3×3
/// neighbourhood). Returns the final centre, its 3×3 CCC grid (`grid[row][col]`) and the
/// overlap at the centre. A climb that has not converged returns a flat grid at its last cell.
fn hill_climb(
    scorer: &CccScorer,
    start: (isize, isize),
    cache: &mut CccCache,
) -> ((isize, isize), [[f64; 3]; 3], f64) {
    let (mut cx, mut cy) = start;
    let mut grid = [[0.0f64; 3]; 3];
    let mut ovc = 0.0;
    // (a climb that has not converged leaves the centre below a neighbour: the parabolas
    // would then extrapolate past the grid and inflate the score, so they are skipped)
    let mut converged = false;
    for _ in 0..HILL_CLIMB_STEPS {
        let missing: Vec<(isize, isize)> = (0..9usize)
            .map(|q| (cx + (q % 3) as isize - 1, cy + (q / 3) as isize - 1))
            .filter(|c| !cache.iter().any(|(k, _)| k == c))
            .collect();
        let fresh: CccCache = missing
            .par_iter()
            .map(|&(x, y)| ((x, y), scorer.ccc_at(x, y)))
            .collect();
        cache.extend(fresh);
        let cells: Vec<(usize, usize, f64, f64)> = (0..9usize)
            .map(|q| {
                let (a, b) = (q / 3, q % 3);
                let key = (cx + b as isize - 1, cy + a as isize - 1);
                let (c, o) = cached(cache, key).expect("computed above");
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
        let (c, o) = cached(cache, (cx, cy)).expect("a neighbour computed above");
        grid = [[c; 3]; 3];
        ovc = o;
    }
    ((cx, cy), grid, ovc)
}

/// Sub-pixel vertex `(ox, oy)` and height of the CCC maximum between pixels from the 3×3 grid,
/// per axis, only where the centre is the maximum of its three samples (the vertex then lies
/// within ±½ px and rises at most |y1 − y3|/8 above the centre); the height is at most 1.
fn subpixel_vertex(grid: &[[f64; 3]; 3]) -> (f64, f64, f64) {
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
    let ccc_max = (c + rise(grid[1][0], c, grid[1][2]) + rise(grid[0][1], c, grid[2][1])).min(1.0);
    (ox, oy, ccc_max)
}

/// The correlation map cropped to the region `(wy, wx)` when wanted; otherwise its buffer goes
/// back to the pool.
fn region_map(
    map: Option<Array2<f32>>,
    want_map: bool,
    region: (usize, usize),
) -> Option<Array2<f32>> {
    let (wy, wx) = region;
    if want_map {
        map.map(|m| m.slice(s![..wy, ..wx]).to_owned())
    } else {
        if let Some(m) = map {
            fft::POOL_F32.give(m.into_raw_vec_and_offset().0);
        }
        None
    }
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
    let isa = Isa::detect();
    affines
        .par_iter()
        .enumerate()
        .map(|(k, a)| evaluate_one(r, mv, a, p, want_map && k == 0, inner, isa))
        .collect()
}
