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

/// A prepared reference search region.
pub struct Reference {
    /// Padded frame `(py, px)`.
    pub pad: (usize, usize),
    /// Region size `(wy, wx)`.
    pub region: (usize, usize),
    /// `F(R0)·H` (xcorr) or `F(R0)` (phase), transposed half-spectrum layout of [`crate::fft`].
    pub spec: Array2<C32>,
    /// Filtered region `R'` (√H applied), `(wy, wx)`.
    pub filtered: Array2<f32>,
    /// 1 where the region pixel lies inside the reference image, else 0, `(wy, wx)`.
    pub valid: Array2<f32>,
    pub filter: FilterParams,
    pub method: Method,
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
    let val = |i: usize, j: usize| -> f64 {
        let y = y0 + i as isize;
        let x = x0 + j as isize;
        if y >= 0 && x >= 0 && (y as usize) < ny && (x as usize) < nx {
            image[[y as usize, x as usize]] as f64
        } else {
            0.0
        }
    };
    let (sw, swv) = (0..wy)
        .into_par_iter()
        .map(|i| {
            let (mut a, mut b) = (0.0, 0.0);
            if wty[i] > 0.0 {
                for j in 0..wx {
                    let w = wty[i] * wtx[j];
                    a += w;
                    b += w * val(i, j);
                }
            }
            (a, b)
        })
        .reduce(|| (0.0, 0.0), |p, q| (p.0 + q.0, p.1 + q.1));
    if sw <= 0.0 {
        return Err(KernelError::value(
            "expected_center",
            "the search region does not overlap the reference image",
        ));
    }
    let mu = swv / sw;
    let valid = Array2::from_shape_fn((wy, wx), |(i, j)| vy[i] * vx[j]);
    let plan = fft::plan(pad.0, pad.1)?;
    // the tapered, mean-removed region is written straight into the transform's row pass
    let spec = plan.forward_with(
        |i, buf| {
            if i >= wy || wty[i] <= 0.0 {
                return false;
            }
            buf.fill(0.0);
            for j in 0..wx {
                let w = wty[i] * wtx[j];
                if w > 0.0 {
                    buf[j] = (w * (val(i, j) - mu)) as f32;
                }
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
    let filtered = Array2::from_shape_fn((wy, wx), |(i, j)| filtered_full[i * pad.1 + j]);
    fft::POOL_F32.give(filtered_full);
    let mut spec = Array2::from_shape_vec((nxc, pad.0), spec)
        .map_err(|e| KernelError::value("fft", e.to_string()))?;
    if method == Method::XCorr {
        xcorr::apply_filter(&mut spec, pad.0, pad.1, filter, 1.0);
    }
    Ok(Reference {
        pad,
        region,
        spec,
        filtered,
        valid,
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

fn patch_and_mask(
    moving: ArrayView2<f32>,
    a: &Affine,
    p: &PatchParams,
) -> Result<(Array2<f32>, Array2<f32>, Array2<bool>, f64), KernelError> {
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
    let weight = |b: &Affine, i: usize, j: usize| -> f64 {
        let sx = b[0][0] * j as f64 + b[0][1] * i as f64 + b[0][2];
        let sy = b[1][0] * j as f64 + b[1][1] * i as f64 + b[1][2];
        let dx = (sx + 0.5).min(nx as f64 - 0.5 - sx);
        let dy = (sy + 0.5).min(ny as f64 - 0.5 - sy);
        ramp(dx, p.taper) * ramp(dy, p.taper)
    };
    let mut mask = Array2::<f32>::zeros((ky, kx));
    let mut score = Array2::<bool>::from_elem((ky, kx), false);
    mask.axis_iter_mut(Axis(0))
        .into_par_iter()
        .zip(score.axis_iter_mut(Axis(0)).into_par_iter())
        .enumerate()
        .with_min_len(8)
        .for_each(|(i, (mut mrow, mut srow))| {
            for j in 0..kx {
                let w = weight(a, i, j);
                mrow[j] = w as f32;
                srow[j] = w > 0.05 && p.score_affines.iter().all(|b| weight(b, i, j) > 0.05);
            }
        });
    let (mut sw, mut swv) = (0.0f64, 0.0f64);
    for (m, v) in mask.iter().zip(patch.iter()) {
        sw += *m as f64;
        swv += *m as f64 * *v as f64;
    }
    if sw > 0.0 {
        let mu = (swv / sw) as f32;
        patch.zip_mut_with(&mask, |v, m| *v = *m * (*v - mu));
    } else {
        patch.fill(0.0);
    }
    Ok((patch, mask, score, sw))
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

/// `Σ a·b` with 8 independent f32 lanes (vectorises; no serial dependency chain).
#[inline]
fn dot_lanes(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut l = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for k in 0..8 {
            l[k] += x[k] * y[k];
        }
    }
    let mut s: f32 = l.iter().sum();
    for (x, y) in ra.iter().zip(rb.iter()) {
        s += x * y;
    }
    s
}

/// `[Σr, Σp, Σr², Σp², Σr·p]` with 8 independent f32 lanes per sum.
#[inline]
fn moments_lanes(r: &[f32], p: &[f32]) -> [f32; 5] {
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
    let (patch, mask, score, mask_sum) = patch_and_mask(moving, a, p)?;
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
                    let trow = tsl.map(|t| &t[kxx * py..(kxx + 1) * py]);
                    for ky_ in 0..py {
                        let mut v = arow[ky_] * grow[ky_].conj();
                        if phase {
                            let m = v.norm();
                            v = if m > 1e-30 { v / m } else { C32::new(0.0, 0.0) };
                        }
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
    let msum: f64 = mask.iter().map(|m| *m as f64).sum();
    // Pearson CCC (means removed) of the filtered patch and the filtered reference over the
    // common footprint, and the overlap fraction, with the moving centre at region (ix, iy).
    // per patch row: the contiguous span of footprint (score) columns; rows as slices
    let spans: Vec<(usize, usize)> = score
        .axis_iter(Axis(0))
        .map(|row| {
            let j0 = row.iter().position(|&b| b).unwrap_or(0);
            let j1 = row.iter().rposition(|&b| b).map_or(0, |k| k + 1);
            (j0, j1.max(j0))
        })
        .collect();
    let pf_c = pf.as_standard_layout().into_owned();
    let mask_c = mask.as_standard_layout().into_owned();
    let pf_s = pf_c.as_slice().expect("contiguous");
    let mask_s = mask_c.as_slice().expect("contiguous");
    let filt_s = r.filtered.as_slice().expect("contiguous");
    let valid_s = r.valid.as_slice().expect("contiguous");
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
            let xoff = (ix - p.hx as isize + jlo as isize) as usize;
            let mrow = &mask_s[i * kx + jlo..i * kx + jhi];
            let vrow = &valid_s[y * wx + xoff..y * wx + xoff + (jhi - jlo)];
            ov += dot_lanes(mrow, vrow) as f64;
            let (j0, j1) = spans[i];
            let (a, b) = (j0.max(jlo), j1.min(jhi));
            if a >= b {
                continue;
            }
            let prow = &pf_s[i * kx + a..i * kx + b];
            let x0 = (ix - p.hx as isize + a as isize) as usize;
            let rrow = &filt_s[y * wx + x0..y * wx + x0 + (b - a)];
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
        for _ in 0..4 {
            let cells: Vec<(usize, usize, f64, f64)> = (0..9usize)
                .into_par_iter()
                .map(|q| {
                    let (a, b) = (q / 3, q % 3);
                    let (c, o) = ccc_at(cx + b as isize - 1, cy + a as isize - 1);
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
                break;
            }
            cx += bb as isize - 1;
            cy += ba as isize - 1;
        }
        let ox = xcorr::parabolic_offset(grid[1][0], grid[1][1], grid[1][2]);
        let oy = xcorr::parabolic_offset(grid[0][1], grid[1][1], grid[2][1]);
        // height of the CCC maximum between pixels (vertex of the two parabolas)
        let rise = |y1: f64, y2: f64, y3: f64| -> f64 {
            let d = y1 + y3 - 2.0 * y2;
            if d < -1e-12 {
                (-(y1 - y3) * (y1 - y3) / (8.0 * d)).min(0.25 * y2.abs())
            } else {
                0.0
            }
        };
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

    #[test]
    fn finds_a_translated_patch() {
        let img = scene(96, 112);
        // moving = crop of 31x41 centred at (x, y) = (60, 40) in the reference
        let (cx, cy) = (60usize, 40usize);
        let mov = img
            .slice(s![cy - 15..=cy + 15, cx - 20..=cx + 20])
            .to_owned();
        let region = (96usize, 112usize);
        let (hy, hx) = (16usize, 21usize);
        let pad = (nice_size(96 + hy), nice_size(112 + hx));
        let r = prepare_reference(
            img.view(),
            (0, 0),
            region,
            pad,
            6.0,
            &FilterParams::SERIALEM,
            Method::XCorr,
        )
        .unwrap();
        // patch pixel (j, i) -> moving (j - hx + 20, i - hy + 15)
        let a: Affine = [[1.0, 0.0, 20.0 - hx as f64], [0.0, 1.0, 15.0 - hy as f64]];
        let p = PatchParams {
            hy,
            hx,
            taper: 3.0,
            allowed: Allowed::all(96, 112),
            n_peaks: 5,
            min_sep: 4.0,
            score_affines: vec![a],
            refine_ccc: true,
            direct: None,
        };
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
