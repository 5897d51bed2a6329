//! Peaks of a masked NCC map: positive local maxima among valid positions, at least `min_sep`
//! apart, with per-axis sub-pixel offsets where both neighbours are valid.

use rayon::prelude::*;

use super::MaskedNcc;
use crate::xcorr::{peak_offset, MapStats};

/// One peak of a masked NCC map.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NccPeak {
    /// Sub-pixel displacement `d` (pixels) with `a(x) ≈ b(x − d)`.
    pub dx: f64,
    pub dy: f64,
    /// Map index of the integer maximum.
    pub ix: usize,
    pub iy: usize,
    /// NCC at the integer maximum.
    pub value: f32,
    /// Overlap fraction there (overlap weight / smaller mask sum).
    pub overlap: f32,
}

/// A local maximum test for any position of a row (edges included): strict against the
/// "earlier" neighbours, `>=` against the later ones, so a plateau gives exactly one maximum.
#[inline]
fn is_max_anywhere(row: &[f32], up: Option<&[f32]>, dn: Option<&[f32]>, x: usize) -> bool {
    let nx = row.len();
    let v = row[x];
    if v <= 0.0 || (x > 0 && row[x - 1] >= v) || (x + 1 < nx && row[x + 1] > v) {
        return false;
    }
    let (x0, x1) = (x.saturating_sub(1), (x + 2).min(nx));
    !(up.is_some_and(|u| u[x0..x1].iter().any(|&w| w >= v))
        || dn.is_some_and(|d| d[x0..x1].iter().any(|&w| w > v)))
}

/// Positive local maxima `(v, x, y)` of row `y` of the `(ny, nx)` map. Invalid positions hold
/// exactly 0 and a candidate is > 0, so the test compares raw map values: an invalid
/// neighbour never beats a candidate.
fn row_maxima(map: &[f32], ny: usize, nx: usize, y: usize) -> Vec<(f32, usize, usize)> {
    let row = &map[y * nx..(y + 1) * nx];
    let up = (y > 0).then(|| &map[(y - 1) * nx..y * nx]);
    let dn = (y + 1 < ny).then(|| &map[(y + 1) * nx..(y + 2) * nx]);
    let mut cands = Vec::new();
    match (up, dn) {
        (Some(u), Some(d)) if nx >= 3 => {
            for x in [0, nx - 1] {
                if is_max_anywhere(row, up, dn, x) {
                    cands.push((row[x], x, y));
                }
            }
            for x in 1..nx - 1 {
                let v = row[x];
                // the first tests without short-circuit branches (`&`): each alone is a
                // coin flip for the branch predictor, their conjunction is rare
                if ((v > 0.0) & (v > row[x - 1]) & (v >= row[x + 1]) & (v > u[x]))
                    && v >= d[x]
                    && v > u[x - 1]
                    && v > u[x + 1]
                    && v >= d[x - 1]
                    && v >= d[x + 1]
                {
                    cands.push((v, x, y));
                }
            }
        }
        _ => cands.extend(
            (0..nx)
                .filter(|&x| is_max_anywhere(row, up, dn, x))
                .map(|x| (row[x], x, y)),
        ),
    }
    cands
}

/// The first `n` of `cands`, highest first (ties by row, then column), each at least `min_sep`
/// from every higher one. Ranks the top `50·n` (at least 200) and widens 4× until `n` survive
/// the suppression or every candidate is ranked.
fn select_separated(
    mut cands: Vec<(f32, usize, usize)>,
    n: usize,
    min_sep: f64,
) -> Vec<(f32, usize, usize)> {
    // a total order (value, then position): the selection does not depend on threads
    let order = |a: &(f32, usize, usize), b: &(f32, usize, usize)| {
        b.0.total_cmp(&a.0).then(a.2.cmp(&b.2)).then(a.1.cmp(&b.1))
    };
    let mut keep = (50 * n).max(200);
    loop {
        if cands.len() > keep {
            cands.select_nth_unstable_by(keep, order);
        }
        let top = keep.min(cands.len());
        cands[..top].sort_by(order);
        let mut kept: Vec<(f32, usize, usize)> = Vec::with_capacity(n);
        for &(v, x, y) in &cands[..top] {
            if kept.len() >= n {
                break;
            }
            if !kept.iter().any(|&(_, px, py)| {
                let (dx, dy) = (px as f64 - x as f64, py as f64 - y as f64);
                dx * dx + dy * dy < min_sep * min_sep
            }) {
                kept.push((v, x, y));
            }
        }
        if kept.len() >= n || top == cands.len() {
            return kept;
        }
        keep *= 4;
    }
}

/// The peak at map index `(x, y)` of value `v`, with per-axis sub-pixel offsets where both
/// axis neighbours are valid, as a displacement.
fn ncc_subpixel_peak(res: &MaskedNcc, v: f32, x: usize, y: usize) -> NccPeak {
    let (ny, nx) = res.ncc.dim();
    let map = res.ncc.as_slice().expect("contiguous");
    let ov = res.overlap.as_slice().expect("contiguous");
    // value of a valid neighbour, None when outside the map or invalid
    let nb = |y: isize, x: isize| -> Option<f32> {
        if y < 0 || x < 0 || y >= ny as isize || x >= nx as isize {
            return None;
        }
        let k = y as usize * nx + x as usize;
        (ov[k] as f64 >= res.valid_fraction).then(|| map[k])
    };
    let (yi, xi) = (y as isize, x as isize);
    let off = |m: Option<f32>, p: Option<f32>| match (m, p) {
        (Some(m), Some(p)) => peak_offset(m as f64, v as f64, p as f64),
        _ => 0.0,
    };
    let cx = off(nb(yi, xi - 1), nb(yi, xi + 1));
    let cy = off(nb(yi - 1, xi), nb(yi + 1, xi));
    NccPeak {
        dx: x as f64 + cx - res.origin.1 as f64,
        dy: y as f64 + cy - res.origin.0 as f64,
        ix: x,
        iy: y,
        value: v,
        overlap: ov[y * nx + x],
    }
}

/// Top-`n` local maxima of a [`MaskedNcc`] map among valid positions (strictly above their
/// valid 8-neighbours, `≥` against the later ones so a plateau gives one maximum; positive
/// values only), at least `min_sep` pixels apart, highest first; per-axis sub-pixel offsets
/// ([`crate::xcorr::peak_offset`]) where both axis neighbours are valid. Also the mean and
/// standard deviation of the map over valid positions.
pub fn ncc_peaks(res: &MaskedNcc, n: usize, min_sep: f64) -> (Vec<NccPeak>, MapStats) {
    let (ny, nx) = res.ncc.dim();
    let map = res.ncc.as_slice().expect("contiguous");
    let rows: Vec<Vec<(f32, usize, usize)>> = (0..ny)
        .into_par_iter()
        .map(|y| row_maxima(map, ny, nx, y))
        .collect();
    let cands: Vec<(f32, usize, usize)> = rows.into_iter().flatten().collect();
    let peaks = select_separated(cands, n, min_sep)
        .into_iter()
        .map(|(v, x, y)| ncc_subpixel_peak(res, v, x, y))
        .collect();
    (peaks, res.stats)
}
