//! Correlation peaks: the peak and map-statistics types, sub-pixel offsets (IMOD's parabola,
//! a Gaussian fit), and the top-`n` local maxima at least `min_sep` apart.

use ndarray::ArrayView2;

use super::scan::{scan_candidates, RolledMap};

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
