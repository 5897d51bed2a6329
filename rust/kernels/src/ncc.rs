//! Masked normalised cross-correlation (NCC) in the Fourier domain.
//!
//! Algorithm: D. Padfield, "Masked object registration in the Fourier domain", IEEE Trans. Image
//! Process. 21(5):2706–2718 (2012), doi:10.1109/TIP.2011.2181402 — the algorithm of
//! scikit-image's `skimage/registration/_masked_phase_cross_correlation.py :
//! cross_correlate_masked` (read, not copied; used as a test peer).
//!
//! For every integer displacement `d = (dx, dy)` the value is the Pearson correlation of the two
//! images over the overlap of their masks, with weights `w(x) = Ma(x)·Mb(x − d)` (mask values in
//! `[0, 1]`; soft masks act as weights):
//!
//! ```text
//! O   = Σ w          Sa  = Σ w·a(x)       Sb  = Σ w·b(x − d)
//! Saa = Σ w·a(x)²    Sbb = Σ w·b(x − d)²  Sab = Σ w·a(x)·b(x − d)
//! ncc = (Sab − Sa·Sb/O) / sqrt((Saa − Sa²/O)·(Sbb − Sb²/O))
//! ```
//!
//! Sign convention (the one of [`crate::xcorr`]): the map peaks at the displacement `d` for which
//! `a(x) ≈ b(x − d)`, i.e. the content of `b` moved by `+d` lands on `a`.
//!
//! Linear (non-circular) correlation: both images are placed at the origin of a frame padded to
//! a 2,3,5-smooth size ≥ `ny_a + ny_b − 1` (and x likewise), so every displacement of the
//! "full" mode, `−(n_b − 1) ≤ d ≤ n_a − 1` per axis, is represented exactly once. The output map
//! has shape `(ny_a + ny_b − 1, nx_a + nx_b − 1)`; index `(i, j)` holds
//! `d = (j − (nx_b − 1), i − (ny_b − 1))` (the indexing of `scipy.signal.correlate(a, b, "full")`
//! and of scikit-image's full mode).
//!
//! Terms: with masks on both sides the six sums are FFT correlations (`Ma⋆Mb`, `(Ma·a)⋆Mb`,
//! `Ma⋆(Mb·b)`, `(Ma·a²)⋆Mb`, `Ma⋆(Mb·b²)`, `(Ma·a)⋆(Mb·b)`: 6 forward + 6 inverse transforms).
//! A side without mask (or with an all-ones mask) is a box, and every term correlating the other
//! side with it is a rectangle sum of that other side over the overlap, read from f64 integral
//! images: 4 + 3 transforms with one mask, 2 + 1 with none.
//!
//! Numerics: the correlations are f32 FFTs ([`crate::fft`], cached plans). Padfield's
//! numerator and denominators are differences of large, nearly equal sums when the images carry
//! an offset (cryo-EM counts ~1e4 with a small signal). We therefore (1) subtract each image's
//! global weighted mean and divide by its largest deviation (computed in f64) before the
//! transforms — NCC is invariant to both, and the transformed quantities are then O(1) and
//! zero-mean — and (2) form the differences in f64. The remaining error of the f32 transforms is
//! about 1e-6 of each image's total energy `E = Σ M·ã²`; a local variance at or below
//! [`VAR_FLOOR`]·E (flat regions, constant images) gives NCC 0, never inf/NaN.
//!
//! Minimum overlap: displacements whose overlap weight `O` is below
//! `max(min_overlap·min(ΣMa, ΣMb), 1e-5·max(ΣMa, ΣMb))` (a tolerance of `1e-6·max(ΣMa, ΣMb)`
//! absorbs transform rounding, so integer thresholds of binary masks are inclusive) are invalid:
//! value 0, never a peak. Overlaps, thresholds and floors are evaluated with each mask scaled to
//! a maximum of 1 (a constant factor on a mask changes nothing); the overlap fraction is
//! `O / min(ΣMa, ΣMb)` in those units.
//!
//! Threads: every transform and reduction is split in a fixed way, so the result is
//! bit-identical for any thread count.

use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;

use crate::fft::{self, PoolBuf, C32, POOL_C32, POOL_F32};
use crate::xcorr::{peak_offset, MapStats};
use crate::KernelError;

/// Local variances at or below `VAR_FLOOR` × the image's total (normalised) energy count as flat:
/// the NCC there is 0. About 10× the relative error of the f32 transforms.
pub const VAR_FLOOR: f64 = 1e-5;
/// Overlaps below `MIN_OVERLAP_ABS` × the larger mask sum are always invalid (transform noise).
pub const MIN_OVERLAP_ABS: f64 = 1e-5;
/// Tolerance on the overlap threshold, × the larger mask sum.
pub const OVERLAP_TOL: f64 = 1e-6;

/// Result of [`masked_ncc`].
#[derive(Debug, Clone)]
pub struct MaskedNcc {
    /// NCC in `[−1, 1]`, shape `(ny_a + ny_b − 1, nx_a + nx_b − 1)`; 0 at invalid positions.
    pub ncc: Array2<f32>,
    /// Overlap weight `O` divided by `min(ΣMa, ΣMb)`, masks scaled to a maximum of 1 (same
    /// shape).
    pub overlap: Array2<f32>,
    /// Index `(iy, ix)` of displacement zero: `(ny_b − 1, nx_b − 1)`.
    pub origin: (usize, usize),
    /// A position is valid iff `overlap ≥ valid_fraction` (compared as f64 of the f32 map).
    pub valid_fraction: f64,
    /// Padded FFT frame `(py, px)`.
    pub pad: (usize, usize),
    /// Mean and standard deviation of the NCC over the valid positions (and their count).
    pub stats: MapStats,
}

/// Weighted statistics of one image: mask sum and maximum, mean, scale (largest
/// |deviation|), energy.
struct Prep {
    sum_m: f64,
    max_m: f64,
    mean: f64,
    inv_scale: f64,
    energy: f64,
}

fn check_mask(
    what: &'static str,
    img: (usize, usize),
    m: Option<&[f32]>,
    mdim: Option<(usize, usize)>,
) -> Result<(), KernelError> {
    if let (Some(m), Some(md)) = (m, mdim) {
        if md != img {
            return Err(KernelError::shape(
                what,
                format!("{img:?} (the shape of its image)"),
                format!("{md:?}"),
            ));
        }
        if m.iter().any(|v| !(0.0..=1.0).contains(v)) {
            return Err(KernelError::value(
                what,
                "values must be finite and in [0, 1]",
            ));
        }
    }
    Ok(())
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

/// The elements of a view in row-major order (borrowed when already contiguous).
fn contiguous(v: ArrayView2<'_, f32>) -> std::borrow::Cow<'_, [f32]> {
    match v.to_slice() {
        Some(s) => std::borrow::Cow::Borrowed(s),
        None => std::borrow::Cow::Owned(v.iter().copied().collect()),
    }
}

/// f64 integral images of `M`, `M·ã`, `M·ã²` (`ã` the normalised image, rounded to f32 exactly
/// as in the transforms), `(ny + 1) × (nx + 1)`, for rectangle sums over an overlap.
struct Integral {
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
    fn band(&self, y0: usize, y1: usize) -> Vec<[f64; 3]> {
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

/// Forward transform of `M·ã^power` (`ã` = normalised image) placed at the origin of the frame.
fn transform(
    plan: &fft::Plan2,
    img: &[f32],
    mask: Option<&[f32]>,
    (ny, nx): (usize, usize),
    p: &Prep,
    power: u32,
) -> Vec<C32> {
    plan.forward_with(
        |y, buf| {
            if y >= ny {
                return false;
            }
            let row = &img[y * nx..(y + 1) * nx];
            let mrow = mask.map(|m| &m[y * nx..(y + 1) * nx]);
            for (x, o) in buf[..nx].iter_mut().enumerate() {
                let w = mrow.map_or(1.0f32, |m| m[x]);
                *o = match power {
                    0 => w,
                    _ if w == 0.0 => 0.0, // outside the mask |v| is unbounded (0·inf = NaN)
                    _ => {
                        let v = ((row[x] as f64 - p.mean) * p.inv_scale) as f32;
                        if power == 1 {
                            w * v
                        } else {
                            w * v * v
                        }
                    }
                };
            }
            buf[nx..].fill(0.0);
            true
        },
        true,
    )
}

/// Circular correlation `IFFT(X · conj(Y))` of two transposed half-spectra (pooled buffers).
fn correlate_spectra(plan: &fft::Plan2, x: &[C32], y: &[C32]) -> PoolBuf<f32> {
    let mut work = POOL_C32.lease(x.len());
    let map = plan.correlate_with(
        &mut work,
        |kx0, chunk| {
            let off = kx0 * plan.ny;
            let n = chunk.len();
            for ((c, u), v) in chunk.iter_mut().zip(&x[off..off + n]).zip(&y[off..off + n]) {
                *c = u * v.conj();
            }
        },
        true,
    );
    PoolBuf::new(map, &POOL_F32)
}

/// Checks `min_overlap` and that both images are non-empty.
fn check_args(da: (usize, usize), db: (usize, usize), min_overlap: f64) -> Result<(), KernelError> {
    if !(0.0..=1.0).contains(&min_overlap) {
        return Err(KernelError::value(
            "min_overlap",
            format!("expected a number in [0, 1], got {min_overlap}"),
        ));
    }
    if da.0 == 0 || da.1 == 0 || db.0 == 0 || db.1 == 0 {
        return Err(KernelError::shape(
            "images",
            "non-empty (ny, nx) arrays",
            format!("{da:?} and {db:?}"),
        ));
    }
    Ok(())
}

/// One side of the correlation: pixels, mask (`None` = all ones), shape and statistics.
struct Side<'a> {
    img: &'a [f32],
    mask: Option<&'a [f32]>,
    dim: (usize, usize),
    prep: Prep,
}

impl Side<'_> {
    /// Forward transform of `M·ã^power` (pooled).
    fn transform(&self, plan: &fft::Plan2, power: u32) -> PoolBuf<C32> {
        let v = transform(plan, self.img, self.mask, self.dim, &self.prep, power);
        PoolBuf::new(v, &POOL_C32)
    }

    /// Integral images of the side (for rectangle sums against a box on the other side).
    fn integral(&self) -> Integral {
        Integral::new(self.img, self.mask, self.dim, &self.prep)
    }
}

/// Correlation maps of the NCC terms: `Σ M_a ã · M_b b̃` always; the mask and squared terms
/// only where the other side has a mask (a box side's terms are rectangle sums instead).
struct Terms {
    sab: PoolBuf<f32>,
    sa: Option<PoolBuf<f32>>,
    sb: Option<PoolBuf<f32>>,
    o: Option<PoolBuf<f32>>,
    saa: Option<PoolBuf<f32>>,
    sbb: Option<PoolBuf<f32>>,
}

/// The FFT terms. With masks on both sides all six are correlations (12 transforms). A side
/// without mask is a box: every term correlating the other side with it is a rectangle sum of
/// that other side over the overlap, taken from f64 integral images (exact, no transform):
/// one mask → 7 transforms, no mask → 3.
fn correlation_terms(plan: &fft::Plan2, a: &Side, b: &Side) -> Terms {
    let a0 = a.mask.is_some().then(|| a.transform(plan, 0));
    let b0 = b.mask.is_some().then(|| b.transform(plan, 0));
    let a1 = a.transform(plan, 1);
    let b1 = b.transform(plan, 1);
    let sab = correlate_spectra(plan, &a1, &b1);
    let sa = b0.as_ref().map(|b0| correlate_spectra(plan, &a1, b0));
    let sb = a0.as_ref().map(|a0| correlate_spectra(plan, a0, &b1));
    drop((a1, b1));
    let o = match (&a0, &b0) {
        (Some(a0), Some(b0)) => Some(correlate_spectra(plan, a0, b0)),
        _ => None,
    };
    let saa = b0
        .as_ref()
        .map(|b0| correlate_spectra(plan, &a.transform(plan, 2), b0));
    let sbb = a0
        .as_ref()
        .map(|a0| correlate_spectra(plan, a0, &b.transform(plan, 2)));
    Terms {
        sab,
        sa,
        sb,
        o,
        saa,
        sbb,
    }
}

/// Validity threshold and variance floors, as if each mask were scaled to a maximum of 1, so
/// that scaling a mask by a constant changes nothing (NCC itself is invariant to it).
struct Limits {
    /// Overlap fraction below which a displacement is invalid.
    valid_fraction: f64,
    /// Overlap weight → overlap fraction.
    frac_scale: f64,
    /// Local variance floors of `a` and `b`.
    floor_a: f64,
    floor_b: f64,
}

impl Limits {
    fn new(pa: &Prep, pb: &Prep, min_overlap: f64) -> Self {
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
struct RowFill<'a> {
    terms: &'a Terms,
    /// Integral images of `a` (when `b` is a box) and of `b` (when `a` is).
    ia: Option<&'a Integral>,
    ib: Option<&'a Integral>,
    lim: &'a Limits,
    pad: (usize, usize),
    da: (usize, usize),
    db: (usize, usize),
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

/// Masked NCC of `a` (reference) and `b` (moving) for every displacement of the "full" mode.
///
/// `ma`, `mb`: optional masks (same shape as their image, values in `[0, 1]`, not all zero;
/// `None` = all ones). `min_overlap` in `[0, 1]`: fraction of the smaller mask sum below which
/// a displacement is invalid (value 0). See the module documentation for the conventions.
pub fn masked_ncc(
    a: ArrayView2<f32>,
    ma: Option<ArrayView2<f32>>,
    b: ArrayView2<f32>,
    mb: Option<ArrayView2<f32>>,
    min_overlap: f64,
) -> Result<MaskedNcc, KernelError> {
    let (da, db) = (a.dim(), b.dim());
    check_args(da, db, min_overlap)?;
    let sa = contiguous(a);
    let sb = contiguous(b);
    let ca = ma.map(contiguous);
    let cb = mb.map(contiguous);
    let sma = ca.as_deref();
    let smb = cb.as_deref();
    check_mask("reference_mask", da, sma, ma.map(|m| m.dim()))?;
    check_mask("moving_mask", db, smb, mb.map(|m| m.dim()))?;
    // an all-ones mask is the same as no mask (and lets the box sums replace transforms)
    let sma = sma.filter(|m| !m.iter().all(|&v| v == 1.0));
    let smb = smb.filter(|m| !m.iter().all(|&v| v == 1.0));
    let side_a = Side {
        img: &sa[..],
        mask: sma,
        dim: da,
        prep: prepare("reference", &sa[..], sma, da.0, da.1)?,
    };
    let side_b = Side {
        img: &sb[..],
        mask: smb,
        dim: db,
        prep: prepare("moving", &sb[..], smb, db.0, db.1)?,
    };

    let (fy, fx) = (da.0 + db.0 - 1, da.1 + db.1 - 1);
    let (py, px) = (fft::nice_size(fy), fft::nice_size(fx));
    let plan = fft::plan(py, px)?;
    let terms = correlation_terms(&plan, &side_a, &side_b);
    let ia = smb.is_none().then(|| side_a.integral());
    let ib = sma.is_none().then(|| side_b.integral());
    let lim = Limits::new(&side_a.prep, &side_b.prep, min_overlap);
    let fill = RowFill {
        terms: &terms,
        ia: ia.as_ref(),
        ib: ib.as_ref(),
        lim: &lim,
        pad: (py, px),
        da,
        db,
    };

    let mut ncc = Array2::<f32>::zeros((fy, fx));
    let mut ovl = Array2::<f32>::zeros((fy, fx));
    let rows: Vec<(f64, f64, usize)> = ncc
        .as_slice_mut()
        .expect("contiguous")
        .par_chunks_mut(fx)
        .zip(ovl.as_slice_mut().expect("contiguous").par_chunks_mut(fx))
        .enumerate()
        .map(|(i, (nrow, orow))| fill.fill(i, nrow, orow))
        .collect();
    let (mut st1, mut st2, mut cnt) = (0.0f64, 0.0f64, 0usize);
    for (a, b, c) in rows {
        st1 += a;
        st2 += b;
        cnt += c;
    }
    Ok(MaskedNcc {
        ncc,
        overlap: ovl,
        origin: (db.0 - 1, db.1 - 1),
        valid_fraction: lim.valid_fraction,
        pad: (py, px),
        stats: MapStats::from_sums(st1, st2, cnt),
    })
}

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

#[cfg(test)]
mod tests {
    use super::*;

    /// Direct f64 evaluation (two-pass weighted Pearson at every displacement).
    fn naive(a: &Array2<f32>, ma: &Array2<f32>, b: &Array2<f32>, mb: &Array2<f32>) -> Array2<f64> {
        let (nya, nxa) = a.dim();
        let (nyb, nxb) = b.dim();
        let mut out = Array2::zeros((nya + nyb - 1, nxa + nxb - 1));
        for i in 0..nya + nyb - 1 {
            for j in 0..nxa + nxb - 1 {
                let (dy, dx) = (
                    i as isize - (nyb as isize - 1),
                    j as isize - (nxb as isize - 1),
                );
                let mut acc = Vec::new();
                for y in 0..nya as isize {
                    for x in 0..nxa as isize {
                        let (yb, xb) = (y - dy, x - dx);
                        if yb < 0 || xb < 0 || yb >= nyb as isize || xb >= nxb as isize {
                            continue;
                        }
                        let (ya, xa, yb, xb) = (y as usize, x as usize, yb as usize, xb as usize);
                        let w = ma[[ya, xa]] as f64 * mb[[yb, xb]] as f64;
                        if w > 0.0 {
                            acc.push((w, a[[ya, xa]] as f64, b[[yb, xb]] as f64));
                        }
                    }
                }
                let o: f64 = acc.iter().map(|t| t.0).sum();
                if o <= 0.0 {
                    continue;
                }
                let mu_a = acc.iter().map(|t| t.0 * t.1).sum::<f64>() / o;
                let mu_b = acc.iter().map(|t| t.0 * t.2).sum::<f64>() / o;
                let (mut c, mut va, mut vb) = (0.0, 0.0, 0.0);
                for &(w, x, y) in &acc {
                    c += w * (x - mu_a) * (y - mu_b);
                    va += w * (x - mu_a) * (x - mu_a);
                    vb += w * (y - mu_b) * (y - mu_b);
                }
                if va > 0.0 && vb > 0.0 {
                    out[[i, j]] = c / (va * vb).sqrt();
                }
            }
        }
        out
    }

    fn noise(ny: usize, nx: usize, seed: u64) -> Array2<f32> {
        let mut s = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        Array2::from_shape_fn((ny, nx), |_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 33) as f64 / (1u64 << 31) as f64) as f32 - 0.5
        })
    }

    #[test]
    fn matches_direct_evaluation_with_soft_masks() {
        for &((nya, nxa), (nyb, nxb)) in &[((9, 7), (5, 6)), ((6, 8), (8, 3)), ((2, 5), (3, 4))] {
            let a = noise(nya, nxa, 1);
            let b = noise(nyb, nxb, 2);
            let ma = noise(nya, nxa, 3).mapv(|v| (v + 0.5).clamp(0.0, 1.0));
            let mb = noise(nyb, nxb, 4).mapv(|v| if v > -0.3 { 1.0 } else { 0.25 });
            let r = masked_ncc(a.view(), Some(ma.view()), b.view(), Some(mb.view()), 0.0).unwrap();
            let d = naive(&a, &ma, &b, &mb);
            assert_eq!(r.ncc.dim(), d.dim());
            assert_eq!(r.origin, (nyb - 1, nxb - 1));
            let mut compared = 0;
            for ((&x, &y), &o) in r.ncc.iter().zip(d.iter()).zip(r.overlap.iter()) {
                // tiny overlaps (< 2 pixels' worth) have near-zero variances on either side
                if (o as f64) * ma.sum().min(mb.sum()) as f64 > 2.0 && x != 0.0 {
                    assert!((x as f64 - y).abs() < 2e-3, "{x} vs {y}");
                    compared += 1;
                }
            }
            assert!(compared > 3, "{compared} of {}", d.len());
        }
    }

    #[test]
    fn recovers_known_shift_and_large_offset() {
        let base = noise(40, 48, 7);
        // b(x) = a(x + d), i.e. a(x) = b(x - d): the peak is at +d
        let (dx, dy) = (3isize, -2isize);
        let b = Array2::from_shape_fn((32, 36), |(y, x)| {
            base[[
                (y as isize + 4 + dy) as usize,
                (x as isize + 5 + dx) as usize,
            ]]
        });
        let a = Array2::from_shape_fn((30, 34), |(y, x)| base[[y + 4, x + 5]]);
        let off = |m: &Array2<f32>| m.mapv(|v| 1.0e4 + 0.5 * v);
        for (aa, bb) in [(a.clone(), b.clone()), (off(&a), off(&b))] {
            let r = masked_ncc(aa.view(), None, bb.view(), None, 0.3).unwrap();
            let (p, _) = ncc_peaks(&r, 3, 3.0);
            // integer shift of white noise: the sub-pixel fit sees noise-level neighbours
            assert_eq!((p[0].dx.round(), p[0].dy.round()), (dx as f64, dy as f64));
            assert!((p[0].dx - dx as f64).abs() < 0.1 && (p[0].dy - dy as f64).abs() < 0.1);
            assert!(p[0].value > 0.999, "{}", p[0].value);
        }
    }

    #[test]
    fn constant_images_and_disjoint_masks_give_zero() {
        let a = Array2::<f32>::from_elem((8, 8), 5.0);
        let b = noise(6, 6, 3);
        let r = masked_ncc(a.view(), None, b.view(), None, 0.0).unwrap();
        assert!(r.ncc.iter().all(|&v| v == 0.0));
        // one-pixel masks in opposite corners: overlap only at one displacement
        let mut ma = Array2::<f32>::zeros((8, 8));
        ma[[0, 0]] = 1.0;
        let mut mb = Array2::<f32>::zeros((6, 6));
        mb[[5, 5]] = 1.0;
        let a = noise(8, 8, 1);
        let r = masked_ncc(a.view(), Some(ma.view()), b.view(), Some(mb.view()), 0.3).unwrap();
        assert!(r.ncc.iter().all(|v| v.is_finite() && *v == 0.0));
        assert!(ncc_peaks(&r, 5, 1.0).0.is_empty());
    }

    #[test]
    fn huge_values_outside_a_nearly_flat_mask_stay_finite() {
        // inside the mask the deviation is tiny (scale 1e-30-ish); outside it is huge
        let mut a = Array2::<f32>::from_elem((12, 12), 1.0);
        a[[3, 3]] = 1.0 + 1e-6;
        a[[10, 10]] = 3.0e35;
        let mut ma = Array2::<f32>::ones((12, 12));
        ma[[10, 10]] = 0.0;
        let b = noise(5, 5, 9);
        let r = masked_ncc(a.view(), Some(ma.view()), b.view(), None, 0.3).unwrap();
        assert!(r.ncc.iter().all(|v| v.is_finite() && v.abs() <= 1.0));
    }

    #[test]
    fn bad_input_is_an_error() {
        let a = noise(4, 4, 1);
        let z = Array2::<f32>::zeros((4, 4));
        assert!(masked_ncc(a.view(), Some(z.view()), a.view(), None, 0.3).is_err());
        let bad = Array2::<f32>::from_elem((4, 4), 1.5);
        assert!(masked_ncc(a.view(), None, a.view(), Some(bad.view()), 0.3).is_err());
        let wrong = Array2::<f32>::ones((3, 4));
        assert!(masked_ncc(a.view(), Some(wrong.view()), a.view(), None, 0.3).is_err());
        assert!(masked_ncc(a.view(), None, a.view(), None, 1.5).is_err());
    }

    #[test]
    fn thread_count_independent() {
        let a = noise(37, 50, 11);
        let b = noise(29, 21, 12);
        let run = |n| {
            crate::parallel::with_threads(Some(n), || {
                masked_ncc(a.view(), None, b.view(), None, 0.3).unwrap()
            })
            .unwrap()
        };
        let (r1, r2) = (run(1), run(3));
        assert_eq!(r1.ncc, r2.ncc);
        assert_eq!(r1.overlap, r2.overlap);
    }
}
