//! AVX2 + FMA interior loops for `f32`, 8 output pixels per step. Only entered when the
//! caller's [`crate::Isa`] is effectively [`crate::Isa::Avx2Fma`] (see `super::scalar`'s
//! `interior_simd`).
//!
//! Positions are anchored exactly in f64 (as [`super::interior::RowMap::at`]) and the lanes add small f32
//! offsets to the anchor's fractions. Three paths, tried in order for each group of 8 pixels
//! ([`interior`]):
//! 1. [`fast8`]: the 8 neighbourhoods are consecutive in memory (one set of source rows,
//!    columns `ix0 + k`: ~90 % of the groups of a magnification correction) — plain vector
//!    loads, fractions from one add, no floors or index arithmetic;
//! 2. [`step8`]: one column step or one row step inside the group (~10 %) — the lanes past
//!    the step blend in loads one column (row) further;
//! 3. the general path ([`linear8`], [`cubic8`]): each lane's neighbourhood loaded and
//!    transposed (AVX2 gathers measured ~10 cycles each here, slower). Indices are clamped to
//!    the interior first, so every load is in bounds even if the caller's interior guarantee
//!    were wrong; the fast paths check their bounds explicitly.
mod combine;
mod fast;
mod general;

pub(in crate::warp) use combine::keys8;
use combine::{bilinear_store, cubic_store};
use fast::{consecutive4, fast8, step8, Taps};
use general::{cubic8, lanes, linear8};

use super::interior::{RowMap, Source};
use std::arch::x86_64::*;

/// Every pixel index fits the i32 lane offsets and the image is at least 2 × 2. (Whether the
/// CPU has AVX2 + FMA is the caller's [`crate::Isa`], already made effective.)
#[inline(always)]
pub(super) fn usable(src: &Source<'_, f32>) -> bool {
    src.data.len() <= i32::MAX as usize && src.nx >= 2 && src.ny >= 2
}

/// The exact f64 position of one output pixel, split into floors and f32 fractions.
#[derive(Clone, Copy)]
struct Anchor {
    ix: i32,
    iy: i32,
    fx: f32,
    fy: f32,
}

impl Anchor {
    #[inline(always)]
    fn at(map: &RowMap, xf: f64) -> Self {
        let (sx, sy) = map.at(xf);
        let (flx, fly) = (sx.floor(), sy.floor());
        // flx, fly are within the image here (the SIMD range is interior), so the saturating
        // conversions are exact.
        Self {
            ix: flx as i32,
            iy: fly as i32,
            fx: (sx - flx) as f32,
            fy: (sy - fly) as f32,
        }
    }

    /// The anchor's fractions plus the lane offsets `d` (f32).
    #[inline(always)]
    unsafe fn plus(&self, d: &Offsets) -> (__m256, __m256) {
        (
            _mm256_add_ps(_mm256_set1_ps(self.fx), d.0),
            _mm256_add_ps(_mm256_set1_ps(self.fy), d.1),
        )
    }
}

/// `[f·a, (f+1)·a, …, (f+7)·a]` in f32 (`f`: the first offset).
#[inline(always)]
unsafe fn steps(a: f64, f: f64) -> __m256 {
    let k = |i: f64| ((f + i) * a) as f32;
    _mm256_setr_ps(
        k(0.0),
        k(1.0),
        k(2.0),
        k(3.0),
        k(4.0),
        k(5.0),
        k(6.0),
        k(7.0),
    )
}

/// Positions of 8 pixels: floors (i32) and fractions (f32).
type Pos8 = (__m256i, __m256i, __m256, __m256);

/// One interpolation kind's 8-pixel step, for the shared interior loop [`interior`].
trait Stencil8 {
    /// Stencil rows above `floor(sy)` and rows prefetched.
    const LO: isize;
    const ROWS: usize;
    /// Smallest image side the stencil needs.
    const MIN_SIDE: usize;
    /// Interpolate 8 pixels into `o` (exactly 8 long).
    ///
    /// # Safety
    /// `base` points to the `nx·ny` (both >= `MIN_SIDE`) source pixels; AVX2 and FMA present.
    unsafe fn px8(base: *const f32, nx: usize, ny: usize, pos: Pos8, o: &mut [f32]);
    /// Interpolate 8 pixels whose neighbourhoods are consecutive in memory (the fast paths
    /// of [`fast8`]): lane k's `ROWS × ROWS` taps start at `p + k` (rows `nx` apart), read
    /// through `taps` (which may move some lanes by a fixed offset); its fractions are `tx`,
    /// `ty`.
    ///
    /// # Safety
    /// Every tap `taps` reads (`p + r·nx + k + c`, r, c < ROWS, k < 8, and its offset) is
    /// inside the source; AVX2 and FMA present.
    unsafe fn run8<T: Taps>(
        p: *const f32,
        nx: usize,
        taps: &T,
        tx: __m256,
        ty: __m256,
        o: &mut [f32],
    );
}

struct Bilinear8;
struct Keys8;

impl Stencil8 for Bilinear8 {
    const LO: isize = 0;
    const ROWS: usize = 2;
    const MIN_SIDE: usize = 2;
    #[inline(always)]
    unsafe fn px8(base: *const f32, nx: usize, ny: usize, pos: Pos8, o: &mut [f32]) {
        // SAFETY: forwarded contract.
        unsafe { linear8(base, nx, ny, pos, o) }
    }
    #[inline(always)]
    unsafe fn run8<T: Taps>(
        p: *const f32,
        nx: usize,
        taps: &T,
        tx: __m256,
        ty: __m256,
        o: &mut [f32],
    ) {
        // SAFETY: forwarded contract (taps p + {0, 1} and p + nx + {0, 1} for every lane).
        let (v00, v01, v10, v11) = unsafe {
            let q = p.add(nx);
            (taps.at(p), taps.at(p.add(1)), taps.at(q), taps.at(q.add(1)))
        };
        // SAFETY: `o` holds exactly 8 f32 (caller's contract).
        unsafe { bilinear_store([v00, v01, v10, v11], tx, ty, o) }
    }
}

impl Stencil8 for Keys8 {
    const LO: isize = 1;
    const ROWS: usize = 4;
    const MIN_SIDE: usize = 4;
    #[inline(always)]
    unsafe fn px8(base: *const f32, nx: usize, ny: usize, pos: Pos8, o: &mut [f32]) {
        // SAFETY: forwarded contract.
        unsafe { cubic8(base, nx, ny, pos, o) }
    }
    #[inline(always)]
    unsafe fn run8<T: Taps>(
        p: *const f32,
        nx: usize,
        taps: &T,
        tx: __m256,
        ty: __m256,
        o: &mut [f32],
    ) {
        // SAFETY: forwarded contract (4 taps from p + r·nx for every lane and row r < 4).
        let rows = unsafe {
            [
                consecutive4(p, taps),
                consecutive4(p.add(nx), taps),
                consecutive4(p.add(2 * nx), taps),
                consecutive4(p.add(3 * nx), taps),
            ]
        };
        // SAFETY: `o` holds exactly 8 f32 (caller's contract).
        unsafe { cubic_store(rows, keys8(tx), keys8(ty), o) }
    }
}

// Groups of 8 taken by each path of `interior` on this thread (`fast8`, `step8`,
// `Stencil8::px8`): counted only in tests, which check that every path runs.
#[cfg(test)]
thread_local! {
    pub(super) static PATHS: std::cell::Cell<[u64; 3]> = const { std::cell::Cell::new([0; 3]) };
}

/// Count one group on `path` (tests only; nothing in other builds).
#[inline(always)]
fn took(path: usize) {
    #[cfg(test)]
    PATHS.with(|p| {
        let mut c = p.get();
        c[path] += 1;
        p.set(c);
    });
    #[cfg(not(test))]
    let _ = path;
}

/// Output pixels per prefetch in [`interior`], and the longest reach of one exact f64 anchor:
/// 8 groups of 8.
const BLOCK: usize = 64;

/// Fractions of a group's 8 lanes relative to its block's anchor: `(j0 + k)·(a − 1, a_y)`.
type Offsets = (__m256, __m256);

/// The interior loop shared by both kinds: blocks of [`BLOCK`] pixels per prefetch, in groups
/// of 8. Each group tries [`fast8`] from the current exact f64 anchor (the block's first
/// pixel); when that fails, the group's own first pixel becomes the anchor and it tries
/// again, then falls back to [`Stencil8::px8`] (positions from that anchor plus `k·a`).
/// Returns the number of pixels written (a multiple of 8).
///
/// # Safety
/// AVX2 and FMA present (inlined into the `#[target_feature]` entry points below).
#[inline(always)]
unsafe fn interior<S: Stencil8>(
    src: &Source<'_, f32>,
    map: &RowMap,
    x_start: usize,
    out: &mut [f32],
) -> usize {
    let (nx, ny) = (src.nx, src.ny);
    if nx < S::MIN_SIDE || ny < S::MIN_SIDE {
        return 0;
    }
    let img = (src.data.as_ptr(), nx, ny);
    let k = (steps(map.ax, 0.0), steps(map.ay, 0.0));
    let d: [Offsets; BLOCK / 8] = std::array::from_fn(|g| {
        let j0 = (8 * g) as f64;
        (steps(map.ax - 1.0, j0), steps(map.ay, j0))
    });
    let done = out.len() / 8 * 8;
    let x0 = x_start as f64;
    // The anchor and its group index (`d[g - ag]` are the offsets of group `g`); `stale`:
    // a step was passed, so the next group starts a new anchor.
    let mut a = Anchor::at(map, x0);
    let (mut ag, mut stale) = (0usize, false);
    for (g, o8) in out[..done].chunks_exact_mut(8).enumerate() {
        let xg = x0 + (8 * g) as f64;
        if g % (BLOCK / 8) == 0 {
            super::interior::prefetch_ahead(src.data, nx, map, xg, S::LO, S::ROWS, BLOCK / 16);
        }
        if stale || g - ag >= BLOCK / 8 {
            (a, ag, stale) = (Anchor::at(map, xg), g, false);
        }
        let (j, dj) = (8 * (g - ag), &d[g - ag]);
        // SAFETY (all calls): `o8` holds 8 f32; the image is at least MIN_SIDE.
        if unsafe { fast8::<S>(img, a, j, dj, o8) } {
            took(0);
            continue;
        }
        stale = true;
        if unsafe { step8::<S>(img, a, j, dj, o8) } {
            took(1);
            continue;
        }
        if g != ag {
            (a, ag) = (Anchor::at(map, xg), g);
            if unsafe { fast8::<S>(img, a, 0, &d[0], o8) } {
                took(0);
                continue;
            }
            if unsafe { step8::<S>(img, a, 0, &d[0], o8) } {
                took(1);
                continue;
            }
        }
        took(2);
        let anc = (
            _mm256_set1_epi32(a.ix),
            _mm256_set1_epi32(a.iy),
            _mm256_set1_ps(a.fx),
            _mm256_set1_ps(a.fy),
        );
        unsafe { S::px8(img.0, nx, ny, lanes(anc, k.0, k.1), o8) };
    }
    done
}

/// Bilinear interior loop; returns the number of pixels written (a multiple of 8).
///
/// # Safety
/// The CPU must support AVX2 and FMA (the caller's effective `Isa`).
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn linear_f32(
    src: &Source<'_, f32>,
    map: &RowMap,
    x_start: usize,
    out: &mut [f32],
) -> usize {
    // SAFETY: AVX2 + FMA by this function's contract.
    unsafe { interior::<Bilinear8>(src, map, x_start, out) }
}

/// Keys-cubic interior loop; returns the number of pixels written (a multiple of 8).
///
/// # Safety
/// The CPU must support AVX2 and FMA (the caller's effective `Isa`).
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn cubic_f32(
    src: &Source<'_, f32>,
    map: &RowMap,
    x_start: usize,
    out: &mut [f32],
) -> usize {
    // SAFETY: AVX2 + FMA by this function's contract.
    unsafe { interior::<Keys8>(src, map, x_start, out) }
}
