//! The parallel scan of a (circularly rolled) correlation map for peak candidates inside the
//! allowed region, with the map statistics summed in row order.

use rayon::prelude::*;

use super::peaks::{Allowed, MapStats};

/// A contiguous map read through a circular roll: logical `(y, x)` is stored pixel
/// `((y + ry) mod ny, (x + rx) mod nx)`.
pub(super) struct RolledMap<'a> {
    pub(super) data: &'a [f32],
    pub(super) ny: usize,
    pub(super) nx: usize,
    pub(super) ry: usize,
    pub(super) rx: usize,
}

impl RolledMap<'_> {
    /// Value at logical position `(y, x)`.
    #[inline]
    pub(super) fn at(&self, y: usize, x: usize) -> f32 {
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
pub(super) fn scan_candidates(
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
