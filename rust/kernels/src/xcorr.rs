//! Filtered cross-correlation: taper and pad, the IMOD four-parameter radial filter,
//! unnormalised cross-correlation or phase correlation, top-k peaks with parabolic sub-pixel
//! refinement.
//!
//! Correlation convention: `C(d) = Σ_x a(x)·b(x − d)` (circular over the padded frame). It peaks
//! at the displacement `d = (dx, dy)` for which `a(x) ≈ b(x − d)`, i.e. the content of `b` moved
//! by `+d` lands on `a`. This is the sign of `cv2.phaseCorrelate(b, a)` and minus the value
//! returned by `skimage.registration.phase_cross_correlation(a, b)` (which returns the
//! correction, in (row, col) order).
//!
//! Filter (IMOD `libcfshr/filtxcorr.c : XCorrSetCTFnoScl`, the filter of tiltxcorr, xfalign and
//! SerialEM's AutoAlign), with `s` the spatial frequency in cycles/pixel:
//! * low-pass/band part: 1 for `r1 ≤ s ≤ r2`, `exp(−(s − r)²/(2σ2²))` outside (`r` = nearest of
//!   `r1, r2`; only the `r2` side if `r1 < 0`); inverted (`1 − ·`) when `σ2 < 0`;
//! * high-pass part (multiplied): `1 − exp(−(s − |r1|)²/(2σ1²))` for `σ1 > 0` (0 below `|r1|` when
//!   `r1 < 0`), or `s²·exp(−s²/(2σ1²))` normalised to a maximum of 1 for `σ1 < 0`;
//! * a σ of 0 switches its part off; both 0 = no filtering; values < 1e-6 become 0.
//!
//! Unlike IMOD we evaluate the formula exactly at each frequency (no 1-D table with nearest-entry
//! lookup) and do not rescale the filter to a mean of 1 (`XCorrSetCTF` does; the scale cancels
//! in every normalised quantity we report).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use ndarray::{Array2, ArrayView2, Axis};
use rayon::prelude::*;

use crate::fft::{self, signed_freq, PoolBuf, C32};
use crate::KernelError;

/// IMOD filter parameters (cycles/pixel).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FilterParams {
    pub sigma1: f64,
    pub sigma2: f64,
    pub radius1: f64,
    pub radius2: f64,
}

impl FilterParams {
    /// SerialEM AutoAlign defaults (`ShiftManager.cpp`: mSigma1 0.03, mSigma2 0.05, mRadius2 0.25).
    pub const SERIALEM: FilterParams = FilterParams {
        sigma1: 0.03,
        sigma2: 0.05,
        radius1: 0.0,
        radius2: 0.25,
    };
    pub const NONE: FilterParams = FilterParams {
        sigma1: 0.0,
        sigma2: 0.0,
        radius1: 0.0,
        radius2: 0.0,
    };

    pub fn is_identity(&self) -> bool {
        self.sigma1.abs() <= 1e-6 && self.sigma2.abs() <= 1e-6
    }

    pub fn check(&self) -> Result<(), KernelError> {
        for (v, n) in [
            (self.sigma1, "sigma1"),
            (self.sigma2, "sigma2"),
            (self.radius1, "radius1"),
            (self.radius2, "radius2"),
        ] {
            if !v.is_finite() {
                return Err(KernelError::value(
                    "filter",
                    format!("{n} must be finite, got {v}"),
                ));
            }
        }
        Ok(())
    }

    /// Filter value at spatial frequency `s` (cycles/pixel).
    pub fn value(&self, s: f64) -> f64 {
        if self.is_identity() {
            return 1.0;
        }
        let (r1p, r1n) = if self.radius1 >= 0.0 {
            (self.radius1, 0.0)
        } else {
            (0.0, -self.radius1)
        };
        let beta = if self.sigma2.abs() > 1e-6 {
            -0.5 / (self.sigma2 * self.sigma2)
        } else {
            0.0
        };
        let alpha = if self.sigma1.abs() > 1e-6 {
            -0.5 / (self.sigma1 * self.sigma1)
        } else {
            0.0
        };
        let mut v = if s < r1p {
            (beta * (s - r1p) * (s - r1p)).exp()
        } else if s > self.radius2 {
            (beta * (s - self.radius2) * (s - self.radius2)).exp()
        } else {
            1.0
        };
        if self.sigma2 < -1e-6 {
            v = 1.0 - v;
        }
        if self.sigma1 > 1e-6 {
            v *= if s < r1n {
                0.0
            } else {
                1.0 - (alpha * (s - r1n) * (s - r1n)).exp()
            };
        } else if self.sigma1 < -1e-6 {
            // maximum of s²·exp(alpha s²) is at s² = −1/alpha: value (−1/alpha)·e^{−1}
            let delmax = (-1.0 / alpha) * (-1.0f64).exp();
            v *= s * s * (alpha * s * s).exp() / delmax;
        }
        if v < 1e-6 {
            0.0
        } else {
            v
        }
    }
}

/// The filter `H^power` on the transposed half-spectrum grid of an `(ny, nx)` image
/// (`(nx/2+1, ny)`), cached per (shape, parameters, power): search points reuse it.
pub fn filter_table(ny: usize, nx: usize, f: &FilterParams, power: f64) -> Arc<Array2<f32>> {
    type Key = (usize, usize, [u64; 5]);
    static CACHE: OnceLock<Mutex<HashMap<Key, Arc<Array2<f32>>>>> = OnceLock::new();
    let key: Key = (
        ny,
        nx,
        [
            f.sigma1.to_bits(),
            f.sigma2.to_bits(),
            f.radius1.to_bits(),
            f.radius2.to_bits(),
            power.to_bits(),
        ],
    );
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    if let Some(t) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return Arc::clone(t);
    }
    let nxc = nx / 2 + 1;
    let mut t = Array2::<f32>::zeros((nxc, ny));
    t.axis_iter_mut(Axis(0))
        .into_par_iter()
        .enumerate()
        .for_each(|(kx, mut row)| {
            let fx = kx as f64 / nx as f64;
            for (ky, v) in row.iter_mut().enumerate() {
                let fy = signed_freq(ky, ny) as f64 / ny as f64;
                let h = f.value((fx * fx + fy * fy).sqrt());
                *v = (if power == 1.0 { h } else { h.powf(power) }) as f32;
            }
        });
    let t = Arc::new(t);
    let mut c = cache.lock().unwrap_or_else(|e| e.into_inner());
    if c.len() > 64 {
        c.clear();
    }
    c.insert(key, Arc::clone(&t));
    t
}

/// Multiply a transposed half-spectrum (`(nx/2+1, ny)`, see [`crate::fft`]) of an `(ny, nx)`
/// image by `H(s)^power`.
pub fn apply_filter(spec: &mut Array2<C32>, ny: usize, nx: usize, f: &FilterParams, power: f64) {
    if f.is_identity() || power == 0.0 {
        return;
    }
    let t = filter_table(ny, nx, f, power);
    spec.axis_iter_mut(Axis(0))
        .into_par_iter()
        .zip(t.axis_iter(Axis(0)).into_par_iter())
        .for_each(|(mut row, trow)| {
            for (v, h) in row.iter_mut().zip(trow.iter()) {
                *v *= *h;
            }
        });
}

use crate::window::SeparableTaper;
pub use crate::window::{ramp, taper_1d};

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

/// One correlation peak.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Peak {
    /// Sub-pixel position in map pixels (x = column, y = row).
    pub x: f64,
    pub y: f64,
    /// Integer position of the maximum.
    pub ix: usize,
    pub iy: usize,
    /// Map value at the integer maximum.
    pub value: f32,
    /// Peak height interpolated by the per-axis parabolas (≥ `value`).
    pub value_interp: f64,
}

/// IMOD `parabolicFitPosition`: vertex offset of the parabola through 3 points, clamped to ±0.5.
#[inline]
pub fn parabolic_offset(y1: f64, y2: f64, y3: f64) -> f64 {
    let denom = 2.0 * (y1 + y3 - 2.0 * y2);
    let mut c = 0.0;
    if denom.abs() > (1e-2 * (y1 - y3)).abs() && denom != 0.0 {
        c = (y1 - y3) / denom;
    }
    c.clamp(-0.5, 0.5)
}

/// Sub-pixel offset of a peak from 3 samples: a Gaussian (log-parabola) fit when all three
/// are positive (much less biased than a parabola on the sharp, roughly Gaussian peaks of a
/// filtered correlation), else IMOD's parabola; clamped to ±0.5.
#[inline]
pub fn peak_offset(y1: f64, y2: f64, y3: f64) -> f64 {
    if y1 > 0.0 && y2 > 0.0 && y3 > 0.0 {
        let (l1, l2, l3) = (y1.ln(), y2.ln(), y3.ln());
        let denom = 2.0 * (l1 + l3 - 2.0 * l2);
        if denom < -1e-12 {
            return ((l1 - l3) / denom).clamp(-0.5, 0.5);
        }
    }
    parabolic_offset(y1, y2, y3)
}

/// Which map positions may hold a peak.
#[derive(Clone, Copy, Debug)]
pub struct Allowed {
    /// Rectangle `[x0, x1) × [y0, y1)` of map indices.
    pub x0: usize,
    pub x1: usize,
    pub y0: usize,
    pub y1: usize,
    /// Optional disk (centre x, centre y, radius) in map pixels; `radius < 0` = none.
    pub cx: f64,
    pub cy: f64,
    pub radius: f64,
}

impl Allowed {
    pub fn all(ny: usize, nx: usize) -> Self {
        Allowed {
            x0: 0,
            x1: nx,
            y0: 0,
            y1: ny,
            cx: 0.0,
            cy: 0.0,
            radius: -1.0,
        }
    }
}

/// Statistics of the map over the allowed positions.
#[derive(Clone, Copy, Debug, Default)]
pub struct MapStats {
    pub mean: f64,
    pub std: f64,
    pub count: usize,
}

impl MapStats {
    /// From the sum, the sum of squares and the count of the values (all zero when empty).
    pub fn from_sums(sum: f64, sum_sq: f64, count: usize) -> Self {
        if count == 0 {
            return MapStats::default();
        }
        let mean = sum / count as f64;
        MapStats {
            mean,
            std: (sum_sq / count as f64 - mean * mean).max(0.0).sqrt(),
            count,
        }
    }
}

/// Top-`n` local maxima (strictly above their 8 neighbours, neighbours taken circularly) inside
/// `allowed`, at least `min_sep` pixels apart, highest first, with parabolic sub-pixel offsets
/// (per axis, after IMOD `XCorrPeakFind`, with a Gaussian fit when possible: [`peak_offset`]); plus the mean and standard deviation of the allowed map.
pub fn find_peaks(
    map: ArrayView2<f32>,
    n: usize,
    min_sep: f64,
    allowed: &Allowed,
) -> (Vec<Peak>, MapStats) {
    find_peaks_rolled(map, n, min_sep, allowed, (0, 0))
}

/// A contiguous map read through a circular roll: logical `(y, x)` is stored pixel
/// `((y + ry) mod ny, (x + rx) mod nx)`.
struct RolledMap<'a> {
    data: &'a [f32],
    ny: usize,
    nx: usize,
    ry: usize,
    rx: usize,
}

impl RolledMap<'_> {
    /// Value at logical position `(y, x)`.
    #[inline]
    fn at(&self, y: usize, x: usize) -> f32 {
        self.data[((y + self.ry) % self.ny) * self.nx + (x + self.rx) % self.nx]
    }

    /// Stored row `sy`.
    #[inline]
    fn stored_row(&self, sy: usize) -> &[f32] {
        &self.data[sy * self.nx..(sy + 1) * self.nx]
    }
}

/// Candidates `(value, x, y)` of one fold segment, its pruning threshold, and each of its rows'
/// `(y, Σv, Σv², count)` (summed in row order afterwards, so the map statistics do not depend on
/// where work stealing split the rows).
type ScanState = (Vec<(f32, usize, usize)>, f32, Vec<(usize, f64, f64, usize)>);

/// Logical x range `[xa, xb)` of row `y` inside the rectangle and the disk of `allowed`
/// (`None` when the row misses the disk).
#[inline]
fn allowed_span(allowed: &Allowed, y: usize, nx: usize) -> Option<(usize, usize)> {
    let (mut xa, mut xb) = (allowed.x0.min(nx), allowed.x1.min(nx));
    if allowed.radius >= 0.0 {
        let dy = y as f64 - allowed.cy;
        let h2 = allowed.radius * allowed.radius - dy * dy;
        if h2 < 0.0 {
            return None;
        }
        let h = h2.sqrt();
        xa = xa.max((allowed.cx - h).ceil().max(0.0) as usize);
        xb = xb.min(((allowed.cx + h).floor() + 1.0).max(0.0) as usize);
    }
    Some((xa, xb))
}

/// `(Σv, Σv²)` of `seg` with independent lanes (no serial f64 dependency chain).
#[inline]
fn lane_sums(seg: &[f32]) -> (f64, f64) {
    let (mut l1, mut l2) = ([0.0f64; 4], [0.0f64; 4]);
    let ch = seg.chunks_exact(4);
    let rem = ch.remainder();
    for q in ch {
        for k in 0..4 {
            let v = q[k] as f64;
            l1[k] += v;
            l2[k] += v * v;
        }
    }
    let (mut a1, mut a2): (f64, f64) = (l1.iter().sum(), l2.iter().sum());
    for &v in rem {
        a1 += v as f64;
        a2 += (v as f64) * (v as f64);
    }
    (a1, a2)
}

/// Pushes the local maxima `(v, x_first + (x − pa), y)` of stored columns `[pa, pb)` of `row`
/// (neighbour rows `rm` above, `rp` below, columns circular) that reach `thr`.
#[allow(clippy::too_many_arguments)]
#[inline]
fn push_row_maxima(
    (rm, row, rp): (&[f32], &[f32], &[f32]),
    pa: usize,
    pb: usize,
    x_first: usize,
    y: usize,
    thr: f32,
    cands: &mut Vec<(f32, usize, usize)>,
) {
    let nx = row.len();
    for x in pa..pb {
        let v = row[x];
        let xm = if x == 0 { nx - 1 } else { x - 1 };
        let xp = if x + 1 == nx { 0 } else { x + 1 };
        // cheap tests first; strict against the "earlier" neighbours, >= against
        // the later ones, so plateaus give exactly one maximum
        // the first tests without short-circuit branches (`&`): on
        // smooth maps `v > row[xm]` alone is a coin flip for the branch
        // predictor; their conjunction is rarely true
        if ((v >= thr) & (v > row[xm]) & (v >= row[xp]) & (v > rm[x]))
            && v >= rp[x]
            && v > rm[xm]
            && v > rm[xp]
            && v >= rp[xm]
            && v >= rp[xp]
        {
            cands.push((v, x_first + (x - pa), y));
        }
    }
}

/// Candidates at or above `thr`, Σv, Σv² and count of logical row `y` inside `allowed`.
#[inline]
fn scan_row(
    map: &RolledMap,
    allowed: &Allowed,
    y: usize,
    thr: f32,
) -> (Vec<(f32, usize, usize)>, f64, f64, usize) {
    let mut cands = Vec::new();
    let (mut s, mut s2, mut c) = (0.0f64, 0.0f64, 0usize);
    let (ny, nx) = (map.ny, map.nx);
    let Some((xa, xb)) = allowed_span(allowed, y, nx) else {
        return (cands, s, s2, c);
    };
    if xa >= xb {
        return (cands, s, s2, c);
    }
    let sy = (y + map.ry) % ny;
    let rows = (
        map.stored_row((sy + ny - 1) % ny),
        map.stored_row(sy),
        map.stored_row((sy + 1) % ny),
    );
    // the logical range [xa, xb) is one or two runs of stored columns (the roll keeps
    // circular neighbours adjacent)
    let p0 = (xa + map.rx) % nx;
    let len = xb - xa;
    let len1 = len.min(nx - p0);
    let mut scan = |pa: usize, pb: usize, x_first: usize| {
        let (a1, a2) = lane_sums(&rows.1[pa..pb]);
        s += a1;
        s2 += a2;
        c += pb - pa;
        push_row_maxima(rows, pa, pb, x_first, y, thr, &mut cands);
    };
    scan(p0, p0 + len1, xa);
    if len1 < len {
        scan(0, len - len1, xa + len1);
    }
    (cands, s, s2, c)
}

/// Candidates of every allowed row, scanned in parallel, plus the statistics over the allowed
/// positions. A worker keeps only its top `keep` candidates (any other cannot be among the
/// global top `keep`), so its threshold rises quickly and most pixels fail the first,
/// well-predicted comparison.
fn scan_candidates(
    map: &RolledMap,
    allowed: &Allowed,
    keep: usize,
) -> (Vec<(f32, usize, usize)>, MapStats) {
    let y0 = allowed.y0.min(map.ny);
    let y1 = allowed.y1.min(map.ny);
    let prune = |st: &mut ScanState| {
        if st.0.len() > 2 * keep {
            st.0.select_nth_unstable_by(keep - 1, |a, b| b.0.total_cmp(&a.0));
            st.0.truncate(keep);
            st.1 = st.1.max(st.0[keep - 1].0);
        }
    };
    // few, long fold segments: each starts with no threshold, and a segment's threshold only
    // rises once it holds 2·keep candidates (on noisy maps a local maximum every few pixels)
    let min_rows = ((y1.saturating_sub(y0)) / (4 * rayon::current_num_threads().max(1))).max(8);
    let results: Vec<ScanState> = (y0..y1)
        .into_par_iter()
        .with_min_len(min_rows)
        .fold(
            || (Vec::new(), f32::NEG_INFINITY, Vec::new()),
            |mut st: ScanState, y| {
                let (cands, s, s2, c) = scan_row(map, allowed, y, st.1);
                st.0.extend(cands);
                st.2.push((y, s, s2, c));
                prune(&mut st);
                st
            },
        )
        .collect();
    let mut rows = vec![(0.0f64, 0.0f64, 0usize); y1.saturating_sub(y0)];
    let mut cands = Vec::new();
    for (cv, _, sums) in results {
        cands.extend(cv);
        for (y, a, b, k) in sums {
            rows[y - y0] = (a, b, k);
        }
    }
    // in row order: the same bits for any thread count or work-stealing split
    let (mut s, mut s2, mut c) = (0.0, 0.0, 0usize);
    for (a, b, k) in rows {
        s += a;
        s2 += b;
        c += k;
    }
    (cands, MapStats::from_sums(s, s2, c))
}

/// Rise of the parabola through 3 samples above the middle one (0 unless it curves down),
/// capped at `|y2|`.
#[inline]
fn parabola_rise(y1: f64, y2: f64, y3: f64) -> f64 {
    let d = y1 + y3 - 2.0 * y2;
    if d < -1e-30 {
        (-(y1 - y3) * (y1 - y3) / (8.0 * d)).min((y2.abs()).max(1e-30))
    } else {
        0.0
    }
}

/// The peak at integer logical position `(x, y)` of value `v`, refined per axis.
fn subpixel_peak(map: &RolledMap, x: usize, y: usize, v: f32) -> Peak {
    let (ny, nx) = (map.ny, map.nx);
    let cx = peak_offset(
        map.at(y, (x + nx - 1) % nx) as f64,
        v as f64,
        map.at(y, (x + 1) % nx) as f64,
    );
    let cy = peak_offset(
        map.at((y + ny - 1) % ny, x) as f64,
        v as f64,
        map.at((y + 1) % ny, x) as f64,
    );
    let (xl, xr) = (
        map.at(y, (x + nx - 1) % nx) as f64,
        map.at(y, (x + 1) % nx) as f64,
    );
    let (yu, yd) = (
        map.at((y + ny - 1) % ny, x) as f64,
        map.at((y + 1) % ny, x) as f64,
    );
    let value_interp = v as f64 + parabola_rise(xl, v as f64, xr) + parabola_rise(yu, v as f64, yd);
    Peak {
        x: x as f64 + cx,
        y: y as f64 + cy,
        ix: x,
        iy: y,
        value: v,
        value_interp,
    }
}

/// The top `n` of `cands` (at most `keep` are ranked), highest first (ties by row, then
/// column), each at least `min_sep` from every higher one, refined to sub-pixel.
fn pick_separated(
    map: &RolledMap,
    mut cands: Vec<(f32, usize, usize)>,
    keep: usize,
    n: usize,
    min_sep: f64,
) -> Vec<Peak> {
    if cands.len() > keep {
        cands.select_nth_unstable_by(keep, |a, b| b.0.total_cmp(&a.0));
        cands.truncate(keep);
    }
    cands.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.2.cmp(&b.2)).then(a.1.cmp(&b.1)));
    let mut peaks: Vec<Peak> = Vec::with_capacity(n);
    for (v, x, y) in cands {
        if peaks.len() >= n {
            break;
        }
        if peaks.iter().any(|p| {
            let dx = p.ix as f64 - x as f64;
            let dy = p.iy as f64 - y as f64;
            dx * dx + dy * dy < min_sep * min_sep
        }) {
            continue;
        }
        peaks.push(subpixel_peak(map, x, y, v));
    }
    peaks
}

/// [`find_peaks`] on the map circularly rolled by `roll = (ry, rx)` without copying it:
/// logical position `(y, x)` reads stored pixel `((y + ry) mod ny, (x + rx) mod nx)`. Positions,
/// `allowed` and the results are logical (identical to `find_peaks` on the rolled copy).
pub fn find_peaks_rolled(
    map: ArrayView2<f32>,
    n: usize,
    min_sep: f64,
    allowed: &Allowed,
    roll: (usize, usize),
) -> (Vec<Peak>, MapStats) {
    let (ny, nx) = map.dim();
    if ny == 0 || nx == 0 || n == 0 {
        return (Vec::new(), MapStats::default());
    }
    let contiguous = map.as_standard_layout();
    let rolled = RolledMap {
        data: contiguous
            .as_slice()
            .expect("standard layout is contiguous"),
        ny,
        nx,
        ry: roll.0 % ny,
        rx: roll.1 % nx,
    };
    let keep = (n * 50).max(200);
    let (cands, stats) = scan_candidates(&rolled, allowed, keep);
    (pick_separated(&rolled, cands, keep, n, min_sep), stats)
}

/// Result of a translation correlation.
pub struct Translation {
    /// Peaks; `x, y` are signed displacements `d` (wrapped to `(−n/2, n/2]`).
    pub peaks: Vec<Peak>,
    /// Peak values divided by `sqrt(Σa'²·Σb'²)` of the filtered, tapered images (a global
    /// normalised correlation in [−1, 1]).
    pub normalized: Vec<f64>,
    pub stats: MapStats,
    /// The correlation map (padded frame, zero displacement at index (0, 0)), if requested.
    pub map: Option<Array2<f32>>,
    pub pad: (usize, usize),
}

/// Energy `Σ|x|²` of the real image behind a half-spectrum (Parseval), filtered by `H`.
fn filtered_energy(spec: ArrayView2<C32>, ny: usize, nx: usize, f: &FilterParams) -> f64 {
    let table = filter_table(ny, nx, f, 1.0);
    spec.axis_iter(Axis(0))
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
        .sum::<f64>()
        / (ny as f64 * nx as f64)
}

/// Checks that `pad` holds both (non-empty) images.
fn check_pad(a: (usize, usize), b: (usize, usize), pad: (usize, usize)) -> Result<(), KernelError> {
    let (py, px) = pad;
    for (name, (ny, nx)) in [("reference", a), ("moving", b)] {
        if ny == 0 || nx == 0 || py < ny || px < nx {
            return Err(KernelError::shape(
                "pad",
                format!(">= non-empty {name} ({ny}, {nx})"),
                format!("{pad:?}"),
            ));
        }
    }
    Ok(())
}

/// Half-spectrum (transposed, pooled) of `img` tapered (`taper` px ramps, weighted mean
/// removed) at the origin of the plan's frame. Taper, mean removal and padding are fused into
/// the row pass of the forward transform (no padded frame).
fn tapered_spectrum(plan: &fft::Plan2, img: ArrayView2<f32>, taper: f64) -> PoolBuf<C32> {
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
fn correlation_map(
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

/// Peaks of the map as signed displacements: searched in the wrapped frame, zero displacement
/// at the centre (a roll, not a copy), within `max_shift` of it if ≥ 0.
fn displacement_peaks(
    map: ArrayView2<f32>,
    n_peaks: usize,
    min_sep: f64,
    max_shift: f64,
) -> (Vec<Peak>, MapStats) {
    let (py, px) = map.dim();
    let (cy, cx) = (py / 2, px / 2);
    let mut allowed = Allowed::all(py, px);
    if max_shift >= 0.0 {
        allowed.cx = cx as f64;
        allowed.cy = cy as f64;
        allowed.radius = max_shift;
    }
    let (mut peaks, stats) = find_peaks_rolled(
        map,
        n_peaks,
        min_sep,
        &allowed,
        ((py - cy) % py, (px - cx) % px),
    );
    for p in peaks.iter_mut() {
        p.x -= cx as f64;
        p.y -= cy as f64;
    }
    (peaks, stats)
}

/// Translation between `a` and `b` (any shapes): both tapered (`taper` px cosine ramp, weighted
/// mean removed) into a common `pad` frame at the origin, correlated with `method` and filter
/// `f`; top `n_peaks` peaks at least `min_sep` apart (and within `max_shift` of zero if ≥ 0).
#[allow(clippy::too_many_arguments)]
pub fn correlate_translation(
    a: ArrayView2<f32>,
    b: ArrayView2<f32>,
    pad: (usize, usize),
    taper: f64,
    f: &FilterParams,
    method: Method,
    n_peaks: usize,
    min_sep: f64,
    max_shift: f64,
    return_map: bool,
) -> Result<Translation, KernelError> {
    f.check()?;
    check_pad(a.dim(), b.dim(), pad)?;
    let (py, px) = pad;
    let plan = fft::plan(py, px)?;
    // the transforms run one after the other, each parallel inside (measured faster than two
    // sequential transforms side by side on 2 cores)
    let mut fa = tapered_spectrum(&plan, a, taper);
    let fb = tapered_spectrum(&plan, b, taper);
    let (ea, eb) = if method == Method::XCorr {
        let va = ArrayView2::from_shape((plan.nxc, py), &fa[..]).expect("spectrum shape");
        let vb = ArrayView2::from_shape((plan.nxc, py), &fb[..]).expect("spectrum shape");
        rayon::join(
            || filtered_energy(va, py, px, f),
            || filtered_energy(vb, py, px, f),
        )
    } else {
        (0.0, 0.0)
    };
    let map = correlation_map(&plan, &mut fa, &fb, f, method);
    drop((fa, fb));
    let map = map?;
    let (peaks, stats) = displacement_peaks(map.view(), n_peaks, min_sep, max_shift);
    let norm = if method == Method::XCorr && ea > 0.0 && eb > 0.0 {
        1.0 / (ea * eb).sqrt()
    } else {
        0.0
    };
    let normalized = peaks.iter().map(|p| p.value as f64 * norm).collect();
    Ok(Translation {
        peaks,
        normalized,
        stats,
        map: if return_map {
            Some(map)
        } else {
            fft::POOL_F32.give(map.into_raw_vec_and_offset().0);
            None
        },
        pad,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob_image(ny: usize, nx: usize, dx: f64, dy: f64) -> Array2<f32> {
        let pts = [
            (20.3, 17.1, 3.0),
            (40.7, 33.2, 2.0),
            (12.0, 45.5, 4.0),
            (50.2, 10.3, 2.5),
        ];
        Array2::from_shape_fn((ny, nx), |(y, x)| {
            pts.iter()
                .map(|&(px, py, s)| {
                    let rx = x as f64 - px - dx;
                    let ry = y as f64 - py - dy;
                    (-(rx * rx + ry * ry) / (2.0 * s * s)).exp()
                })
                .sum::<f64>() as f32
        })
    }

    #[test]
    fn translation_sign_and_subpixel() {
        let a = blob_image(64, 72, 3.4, -2.2);
        let b = blob_image(64, 72, 0.0, 0.0);
        let t = correlate_translation(
            a.view(),
            b.view(),
            (64, 72),
            4.0,
            &FilterParams::NONE,
            Method::XCorr,
            3,
            3.0,
            -1.0,
            false,
        )
        .unwrap();
        let p = t.peaks[0];
        assert!((p.x - 3.4).abs() < 0.2, "{p:?}");
        assert!((p.y + 2.2).abs() < 0.2, "{p:?}");
        assert!(t.normalized[0] > 0.5 && t.normalized[0] <= 1.0001);
    }

    #[test]
    fn map_statistics_are_the_same_bits_for_any_thread_count() {
        // the rows' sums are added in row order, whatever split work stealing chose
        let a = blob_image(512, 384, 3.4, -2.2);
        let b = blob_image(512, 384, 0.0, 0.0);
        let run = |n: usize| {
            crate::parallel::with_threads(Some(n), || {
                correlate_translation(
                    a.view(),
                    b.view(),
                    (512, 384),
                    4.0,
                    &FilterParams::SERIALEM,
                    Method::XCorr,
                    5,
                    3.0,
                    -1.0,
                    false,
                )
                .unwrap()
            })
            .unwrap()
        };
        let one = run(1);
        for n in [2, 3, 4, 2, 3] {
            let t = run(n);
            assert_eq!(
                t.stats.mean.to_bits(),
                one.stats.mean.to_bits(),
                "{n} threads"
            );
            assert_eq!(
                t.stats.std.to_bits(),
                one.stats.std.to_bits(),
                "{n} threads"
            );
            assert_eq!(t.stats.count, one.stats.count);
        }
    }

    #[test]
    fn filter_shape() {
        let f = FilterParams::SERIALEM;
        assert_eq!(f.value(0.0), 0.0);
        assert!((f.value(0.2) - (1.0 - (-0.04f64 / (2.0 * 0.0009)).exp())).abs() < 1e-9);
        assert!(
            (f.value(0.3)
                - (-(0.05f64 * 0.05) / (2.0 * 0.0025)).exp() * (1.0 - (-0.09f64 / 0.0018).exp()))
            .abs()
                < 1e-9
        );
        assert_eq!(FilterParams::NONE.value(0.3), 1.0);
        let d = FilterParams {
            sigma1: -0.05,
            sigma2: 0.0,
            radius1: 0.0,
            radius2: 0.0,
        };
        assert!((d.value(0.05 * 2f64.sqrt()) - 1.0).abs() < 1e-9);
    }

    #[test]
    fn peaks_are_sorted_and_separated() {
        let mut m = Array2::<f32>::zeros((32, 32));
        m[[5, 5]] = 3.0;
        m[[5, 6]] = 2.9;
        m[[20, 20]] = 2.0;
        m[[10, 25]] = 1.0;
        let (p, st) = find_peaks(m.view(), 5, 3.0, &Allowed::all(32, 32));
        assert_eq!(p.len(), 3);
        assert_eq!((p[0].ix, p[0].iy), (5, 5));
        assert_eq!((p[1].ix, p[1].iy), (20, 20));
        assert!(p[0].x > 5.0 && p[0].x < 5.5);
        assert_eq!(st.count, 1024);
    }
}
