//! The row pass of the warp: each output row's interior split and loops ([`warp_row`]), the
//! rows in parallel with the fused source check, fill-value sums and optional streaming
//! stores ([`warp_rows`]).
use super::interior::{interior_range, RowMap, Source, SIMD_MARGIN, SIMD_MAX_STEP};
use super::scalar::{Cubic, Kind, Linear};
use super::{sum_f64, Affine, Interpolation, Sample, EDGE_TOLERANCE};
use crate::Isa;
use ndarray::{ArrayViewMut2, Axis};
use rayon::prelude::*;
use std::sync::atomic::{AtomicU64, Ordering};

/// One source row for the fused pass: whether any value fails the check (if any) and the
/// row's [`sum_f64`] (if wanted).
#[inline(always)]
fn scan<T: Sample>(line: &[T], limit: Option<T>, sum: bool) -> (bool, f64) {
    let outside = limit.is_some_and(|l| T::any_outside(line, l));
    (outside, if sum { sum_f64(line) } else { 0.0 })
}

/// [`scan`] compiled for AVX2 (8 f32 lanes instead of SSE2's 4).
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn scan_avx2<T: Sample>(line: &[T], limit: Option<T>, sum: bool) -> (bool, f64) {
    scan(line, limit, sum)
}

/// [`scan`] on `isa` (already effective). Bit-identical on every instruction set: the sums are
/// the same sequence of f64 additions (no FMA), only wider.
#[inline]
fn scan_row<T: Sample>(isa: Isa, line: &[T], limit: Option<T>, sum: bool) -> (bool, f64) {
    #[cfg(target_arch = "x86_64")]
    if isa == Isa::Avx2Fma {
        // SAFETY: the caller's effective Isa::Avx2Fma means the CPU has AVX2.
        return unsafe { scan_avx2(line, limit, sum) };
    }
    let _ = isa;
    scan(line, limit, sum)
}

/// Number of values in `s` that are NaN, infinite or beyond `±limit`.
#[inline]
pub(super) fn count_outside<T: Sample>(s: &[T], limit: T) -> usize {
    // u32 lanes per chunk so the compare-and-count vectorises.
    s.chunks(1 << 16)
        .map(|c| {
            c.iter()
                .map(|v| u32::from(v.is_nan() || v.abs() > limit))
                .sum::<u32>() as usize
        })
        .sum()
}

/// Copy `src` into `dst` with non-temporal stores for the 16-byte-aligned body (SSE2, part of
/// the x86-64 baseline) and plain copies for the unaligned head and tail; a plain copy elsewhere.
#[inline]
fn stream_copy<T: Copy>(src: &[T], dst: &mut [T]) {
    debug_assert_eq!(src.len(), dst.len());
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{__m128i, _mm_loadu_si128, _mm_sfence, _mm_stream_si128};
        let bytes = std::mem::size_of_val(src);
        let d = dst.as_mut_ptr().cast::<u8>();
        let s = src.as_ptr().cast::<u8>();
        let head = ((16 - (d as usize & 15)) & 15).min(bytes);
        // SAFETY: `src` and `dst` are distinct slices of `bytes` bytes each (a `&mut` cannot
        // alias a `&`); every access below stays within them; the streaming stores go to
        // 16-byte-aligned addresses (d + head is aligned, steps of 16), as `movntdq` requires;
        // SSE2 is baseline on x86-64.
        unsafe {
            std::ptr::copy_nonoverlapping(s, d, head);
            let mut off = head;
            while off + 16 <= bytes {
                let v = _mm_loadu_si128(s.add(off).cast::<__m128i>());
                _mm_stream_si128(d.add(off).cast::<__m128i>(), v);
                off += 16;
            }
            std::ptr::copy_nonoverlapping(s.add(off), d.add(off), bytes - off);
            // Order the weakly-ordered streaming stores before anything that follows.
            _mm_sfence();
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    dst.copy_from_slice(src);
}

/// `Some(slice as &mut [f32])` when `T` is `f32`.
fn as_f32_mut<T: Sample>(s: &mut [T]) -> Option<&mut [f32]> {
    if std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>() {
        // SAFETY: T is f32 (identical TypeId), so this reinterprets a slice as its own type.
        Some(unsafe { std::slice::from_raw_parts_mut(s.as_mut_ptr().cast::<f32>(), s.len()) })
    } else {
        None
    }
}

/// `Some(source viewed as f32)` when `T` is `f32`.
fn as_f32_source<'a, T: Sample>(src: &Source<'a, T>) -> Option<Source<'a, f32>> {
    if std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>() {
        // SAFETY: T is f32 (identical TypeId), so this reinterprets a slice as its own type.
        let data =
            unsafe { std::slice::from_raw_parts(src.data.as_ptr().cast::<f32>(), src.data.len()) };
        Some(Source {
            data,
            nx: src.nx,
            ny: src.ny,
        })
    } else {
        None
    }
}

/// One output row `y`.
#[inline(always)]
fn warp_row<T: Sample, K: Kind>(
    src: &Source<'_, T>,
    affine: &Affine,
    y: usize,
    fill: T,
    row: &mut [T],
    isa: Isa,
) -> (usize, usize) {
    let [[a00, a01, a02], [a10, a11, a12]] = *affine;
    let yf = y as f64;
    let map = RowMap {
        ax: a00,
        bx: a01 * yf + a02,
        ay: a10,
        by: a11 * yf + a12,
        rx: a01,
        ry: a11,
    };
    let x_max = (src.nx - 1) as f64;
    let y_max = (src.ny - 1) as f64;
    let edge = |x: usize| -> Option<T> {
        let (sx, sy) = map.at(x as f64);
        if sx >= -EDGE_TOLERANCE
            && sy >= -EDGE_TOLERANCE
            && sx <= x_max + EDGE_TOLERANCE
            && sy <= y_max + EDGE_TOLERANCE
        {
            Some(K::sample_edge(
                src,
                sx.clamp(0.0, x_max),
                sy.clamp(0.0, y_max),
            ))
        } else {
            None
        }
    };
    // The inside columns [i0, i1): positions are monotone in x, so the columns whose position
    // lies inside the image (an intersection of two intervals per axis) form one interval.
    let width = row.len();
    let (mut i0, mut i1) = (width, 0);
    let mut edge_at = |x: usize, o: &mut T| match edge(x) {
        Some(v) => {
            *o = v;
            i0 = i0.min(x);
            i1 = x + 1;
        }
        None => *o = fill,
    };
    let hx = x_max - K::HI_MARGIN;
    let hy = y_max - K::HI_MARGIN;
    let (xs, xe) = interior_range(&map, K::LO, hx, hy, width);
    let (left, rest) = row.split_at_mut(xs);
    let (mid, right) = rest.split_at_mut(xe - xs);
    for (x, o) in left.iter_mut().enumerate() {
        edge_at(x, o);
    }
    // Within the interior: SIMD on the sub-range that keeps SIMD_MARGIN from its bounds, the
    // exact scalar loop on the rest. The SIMD loops' f32 lane offsets (up to 15·|a|) keep
    // positions within ~2e-5 px only for |a| <= SIMD_MAX_STEP; steeper maps stay scalar.
    let mut from = xs;
    if isa != Isa::Scalar
        && xe > xs
        && map.ax.abs() <= SIMD_MAX_STEP
        && map.ay.abs() <= SIMD_MAX_STEP
    {
        let m = SIMD_MARGIN;
        let (ss, se) = interior_range(&map, K::LO + m, hx - m, hy - m, width);
        // Which pixels take the SIMD loop depends only on the geometry (never on addresses),
        // so results are reproducible bit for bit.
        let (ss, se) = (ss.max(xs), se.min(xe));
        if ss < se {
            if let Some(s32) = as_f32_source(src) {
                let (before, simd_part) = mid[..se - xs].split_at_mut(ss - xs);
                if let Some(out32) = as_f32_mut(simd_part) {
                    K::interior(src, &map, xs, before);
                    from = ss + K::interior_simd(isa, &s32, &map, ss, out32);
                }
            }
        }
    }
    K::interior(src, &map, from, &mut mid[from - xs..]);
    for (x, o) in right.iter_mut().enumerate() {
        edge_at(xe + x, o);
    }
    if xe > xs {
        i0 = i0.min(xs);
        i1 = i1.max(xe);
    }
    (i0, i1.max(i0))
}

/// What the row driver does besides warping.
#[derive(Clone, Copy)]
pub(super) struct RowJob<T> {
    pub(super) isa: Isa,
    /// Source values must satisfy `|v| <= limit` (NaN fails).
    pub(super) check_limit: Option<T>,
    pub(super) stream: bool,
}

/// Which source rows output row `y` scans in the fused pass: `[start(y), start(y + 1))`, a
/// partition of `[0, ny)` over the output rows (`start` is non-decreasing, `start(0) = 0`,
/// `start(h) = ny`).
///
/// When the source row of the stencil grows with `y` (`a11 > 0`: every map near the identity),
/// row `y` scans the rows that leave the stencil window after it — `floor(min_x sy(x, y + 1))
/// − LO − 1` and below — so each source row is scanned right after its last use, while it is
/// still in cache (scanning row `y·ny/h` instead cost a DRAM read per row: a shear of 0.01
/// reads a source row over ~40 output rows). Other maps split proportionally.
#[derive(Clone, Copy)]
pub(super) struct ScanPlan {
    height: usize,
    ny: usize,
    /// `Some((a11, c0))`: window floor `a11·y + c0` (`c0 = a12 + min(0, a10·(w − 1)) − LO − 1`).
    frontier: Option<(f64, f64)>,
}

impl ScanPlan {
    pub(super) fn new(affine: &Affine, lo: f64, width: usize, height: usize, ny: usize) -> Self {
        let [_, [a10, a11, a12]] = *affine;
        let c0 = a12 + (a10 * (width - 1) as f64).min(0.0) - lo - 1.0;
        let frontier = (a11 > 0.0 && c0.is_finite()).then_some((a11, c0));
        ScanPlan {
            height,
            ny,
            frontier,
        }
    }

    #[inline]
    pub(super) fn start(&self, y: usize) -> usize {
        if y == 0 {
            return 0;
        }
        if y >= self.height {
            return self.ny;
        }
        match self.frontier {
            // A non-decreasing function of y (a11 > 0; floor and clamp are monotone).
            Some((a11, c0)) => (a11 * y as f64 + c0).floor().clamp(0.0, self.ny as f64) as usize,
            None => y * self.ny / self.height,
        }
    }
}

/// Warp every row in parallel with `fill` (`None`: the source mean, [`super::Fill::Mean`]); returns
/// the number of source values that failed the check.
///
/// One parallel pass does everything that reads the source: output row `y` also scans source
/// rows `[y·ny/h, (y+1)·ny/h)` (every source row exactly once over the whole output, and for
/// maps near the identity rows this task has just read, still in cache) for the check and, for
/// [`super::Fill::Mean`], their sums. With [`super::Fill::Mean`] the outside columns (`[0, i0)` and
/// `[i1, w)` of each row: the inside columns form one interval) are written in a second pass
/// over those columns only, once the mean is known — no separate pass over the source.
fn warp_rows_kind<T: Sample, K: Kind>(
    src: &Source<'_, T>,
    affine: &Affine,
    fill: Option<T>,
    mut out: ArrayViewMut2<T>,
    job: RowJob<T>,
) -> usize {
    let height = out.nrows();
    let width = out.ncols().max(1);
    // Rows per task: enough work per task (~64k pixels) to amortise scheduling.
    let min_rows = (65536 / width).max(1);
    let scan = ScanPlan::new(affine, K::LO, width, height, src.ny);
    let row_sums: Vec<AtomicU64> = if fill.is_none() {
        (0..src.ny).map(|_| AtomicU64::new(0)).collect()
    } else {
        Vec::new()
    };
    let rows: Vec<(usize, usize, usize)> = out
        .axis_iter_mut(Axis(0))
        .into_par_iter()
        .enumerate()
        .with_min_len(min_rows)
        .map_init(Vec::new, |stage: &mut Vec<T>, (y, mut row)| {
            let row = row
                .as_slice_mut()
                .expect("rows of a C-contiguous array are contiguous");
            let f = fill.unwrap_or_else(T::zero);
            let (i0, i1) = if job.stream {
                // Compute into a cache-resident row, then stream it out.
                stage.resize(row.len(), T::zero());
                let inside = warp_row::<T, K>(src, affine, y, f, stage, job.isa);
                stream_copy(stage, row);
                inside
            } else {
                warp_row::<T, K>(src, affine, y, f, row, job.isa)
            };
            let (r0, r1) = (scan.start(y), scan.start(y + 1));
            let mut bad = 0;
            let lines = src.data[r0 * src.nx..r1 * src.nx].chunks_exact(src.nx);
            for (r, line) in (r0..r1).zip(lines) {
                let (outside, sum) = scan_row(job.isa, line, job.check_limit, fill.is_none());
                if outside {
                    bad += job.check_limit.map_or(0, |l| count_outside(line, l));
                }
                if fill.is_none() {
                    row_sums[r].store(sum.to_bits(), Ordering::Relaxed);
                }
            }
            (bad, i0, i1)
        })
        .collect();
    if fill.is_none() {
        // Row sums in row order, as `mean` adds them.
        let total: f64 = row_sums
            .iter()
            .map(|s| f64::from_bits(s.load(Ordering::Relaxed)))
            .sum();
        let m = T::of_f64(total / (src.nx * src.ny) as f64);
        out.axis_iter_mut(Axis(0))
            .into_par_iter()
            .zip(rows.par_iter())
            .with_min_len(min_rows)
            .for_each(|(mut row, &(_, i0, i1))| {
                let row = row
                    .as_slice_mut()
                    .expect("rows of a C-contiguous array are contiguous");
                row[..i0].fill(m);
                row[i1..].fill(m);
            });
    }
    rows.iter().map(|r| r.0).sum()
}

pub(super) fn warp_rows<T: Sample>(
    src: &Source<'_, T>,
    affine: &Affine,
    interp: Interpolation,
    fill: Option<T>,
    out: ArrayViewMut2<T>,
    job: RowJob<T>,
) -> usize {
    match interp {
        Interpolation::Linear => warp_rows_kind::<T, Linear>(src, affine, fill, out, job),
        Interpolation::Cubic => warp_rows_kind::<T, Cubic>(src, affine, fill, out, job),
    }
}
