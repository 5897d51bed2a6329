//! AVX2 + FMA interior loops for `f32`, 8 output pixels per step. Only entered when the
//! caller's [`crate::Isa`] is effectively [`crate::Isa::Avx2Fma`] (see `super::scalar`'s
//! `interior_simd`).
//!
//! Positions are anchored exactly in f64 (as [`super::RowMap::at`]) and the lanes add small f32
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
}

/// Positions of 8 pixels at offsets `kx`, `ky` (f32) from an anchor.
#[inline(always)]
unsafe fn lanes(
    anchor: (__m256i, __m256i, __m256, __m256),
    kx: __m256,
    ky: __m256,
) -> (__m256i, __m256i, __m256, __m256) {
    let (ix0, iy0, frx, fry) = anchor;
    let tx = _mm256_add_ps(frx, kx);
    let ty = _mm256_add_ps(fry, ky);
    let ftx = _mm256_floor_ps(tx);
    let fty = _mm256_floor_ps(ty);
    let ix = _mm256_add_epi32(_mm256_cvttps_epi32(ftx), ix0);
    let iy = _mm256_add_epi32(_mm256_cvttps_epi32(fty), iy0);
    (ix, iy, _mm256_sub_ps(tx, ftx), _mm256_sub_ps(ty, fty))
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

/// Two adjacent f32 at `p + i` as the bits of one u64 (unaligned read).
///
/// # Safety
/// `p + i` and `p + i + 1` must be inside one allocation.
#[inline(always)]
unsafe fn pair(p: *const f32, i: i32) -> i64 {
    // SAFETY: by the caller's contract; read_unaligned has no alignment requirement.
    unsafe { p.offset(i as isize).cast::<i64>().read_unaligned() }
}

/// For 8 offsets `i`: (`p[i[k]]`, `p[i[k] + 1]`) for k = 0..8, as two vectors in lane order.
///
/// # Safety
/// As for [`pair`], for every offset.
#[inline(always)]
unsafe fn pairs8(p: *const f32, i: &[i32; 8]) -> (__m256, __m256) {
    // SAFETY: by the caller's contract.
    let (q0, q1, q2, q3, q4, q5, q6, q7) = unsafe {
        (
            pair(p, i[0]),
            pair(p, i[1]),
            pair(p, i[2]),
            pair(p, i[3]),
            pair(p, i[4]),
            pair(p, i[5]),
            pair(p, i[6]),
            pair(p, i[7]),
        )
    };
    // lo lane: pixels 0, 1 | 2, 3; hi lane: 4, 5 | 6, 7 — each pixel as (v0, v1).
    let a = _mm256_castsi256_ps(_mm256_set_epi64x(q5, q4, q1, q0));
    let b = _mm256_castsi256_ps(_mm256_set_epi64x(q7, q6, q3, q2));
    (
        _mm256_shuffle_ps::<0b10_00_10_00>(a, b),
        _mm256_shuffle_ps::<0b11_01_11_01>(a, b),
    )
}

/// For 8 offsets `i`: the 4 consecutive values from `p + i[k]`, transposed so that vector
/// `c` holds `p[i[k] + c]` in lane k.
///
/// # Safety
/// `p + i[k] .. p + i[k] + 4` must be inside one allocation for every k.
#[inline(always)]
unsafe fn rows8(p: *const f32, i: &[i32; 8]) -> [__m256; 4] {
    // SAFETY: by the caller's contract; loadu has no alignment requirement.
    let (y0, y1, y2, y3) = unsafe {
        let at = |k: usize| p.offset(i[k] as isize);
        (
            _mm256_loadu2_m128(at(4), at(0)),
            _mm256_loadu2_m128(at(5), at(1)),
            _mm256_loadu2_m128(at(6), at(2)),
            _mm256_loadu2_m128(at(7), at(3)),
        )
    };
    let t0 = _mm256_castps_pd(_mm256_unpacklo_ps(y0, y1));
    let t1 = _mm256_castps_pd(_mm256_unpackhi_ps(y0, y1));
    let t2 = _mm256_castps_pd(_mm256_unpacklo_ps(y2, y3));
    let t3 = _mm256_castps_pd(_mm256_unpackhi_ps(y2, y3));
    [
        _mm256_castpd_ps(_mm256_unpacklo_pd(t0, t2)),
        _mm256_castpd_ps(_mm256_unpackhi_pd(t0, t2)),
        _mm256_castpd_ps(_mm256_unpacklo_pd(t1, t3)),
        _mm256_castpd_ps(_mm256_unpackhi_pd(t1, t3)),
    ]
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

/// The 4 taps of 8 pixels whose neighbourhoods start at `p + k`: vector `c` holds `p[k + c]`
/// (read through `taps`).
///
/// # Safety
/// `p .. p + 11` (and `taps`' offset from them) inside one allocation.
#[inline(always)]
unsafe fn consecutive4<T: Taps>(p: *const f32, taps: &T) -> [__m256; 4] {
    // SAFETY: by the caller's contract.
    unsafe {
        [
            taps.at(p),
            taps.at(p.add(1)),
            taps.at(p.add(2)),
            taps.at(p.add(3)),
        ]
    }
}

/// How [`Stencil8::run8`] reads the 8 lanes of one tap starting at `q`.
trait Taps {
    /// # Safety
    /// `q .. q + 8` (and any offset the implementation adds) inside one allocation.
    unsafe fn at(&self, q: *const f32) -> __m256;
}

/// Lane k reads `q[k]`.
struct Plain;

impl Taps for Plain {
    #[inline(always)]
    unsafe fn at(&self, q: *const f32) -> __m256 {
        // SAFETY: by the caller's contract; loadu has no alignment requirement.
        unsafe { _mm256_loadu_ps(q) }
    }
}

/// Lane k reads `q[k + off]` where `moved` is set, else `q[k]`: the lanes past a column step
/// (`off = ±1`) or a row step (`off = ±nx`) inside a group.
struct Moved {
    off: isize,
    moved: __m256,
}

impl Taps for Moved {
    #[inline(always)]
    unsafe fn at(&self, q: *const f32) -> __m256 {
        // SAFETY: by the caller's contract (both q and q + off ranges inside the source).
        unsafe {
            _mm256_blendv_ps(
                _mm256_loadu_ps(q),
                _mm256_loadu_ps(q.offset(self.off)),
                self.moved,
            )
        }
    }
}

/// Whether every lane of `tx` and `ty` is in [0, 1) (sign bit of `t` clear and of `t − 1`
/// set; −0.0 counts as outside, which only sends a pixel to the general path).
#[inline(always)]
unsafe fn in_unit(tx: __m256, ty: __m256) -> bool {
    let one = _mm256_set1_ps(1.0);
    let okx = _mm256_andnot_ps(tx, _mm256_sub_ps(tx, one));
    let oky = _mm256_andnot_ps(ty, _mm256_sub_ps(ty, one));
    _mm256_movemask_ps(_mm256_and_ps(okx, oky)) == 0xFF
}

// Groups of 8 taken by each path of `interior` on this thread (fast from the block's anchor,
// fast from the group's own anchor, `step8`, `Stencil8::px8`): counted only in tests, which
// check that every path runs.
#[cfg(test)]
thread_local! {
    pub(super) static PATHS: std::cell::Cell<[u64; 4]> = const { std::cell::Cell::new([0; 4]) };
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

/// The fast path of one group of 8 output pixels whose lanes lie at fractions `d` from the
/// anchor `a` plus `(j, 0)`, `j` = the group's offset from the anchor in pixels: taken when
/// every lane's position relative to (`a.ix + j + k`, `a.iy`) has fractions in [0, 1) — the
/// neighbourhoods are consecutive in one set of source rows, the common case of a
/// near-identity map. Then the fractions are the anchor's plus `d` (one add each; no floors or
/// index arithmetic) and the taps are plain vector loads. `d` is small (`|j + k|·|a − 1|`), so
/// its f32 rounding moves a position by less than 1e-6 px for magnification corrections.
/// Returns false (writing nothing) otherwise: a row or column step inside the group or since
/// the anchor, or a neighbourhood touching the border.
///
/// # Safety
/// `src` is (`base`, `nx`, `ny`): `base` points to the `nx·ny` (both >= `MIN_SIDE`) source
/// pixels; AVX2 and FMA present.
#[inline(always)]
unsafe fn fast8<S: Stencil8>(
    src: (*const f32, usize, usize),
    a: Anchor,
    j: usize,
    d: &Offsets,
    o: &mut [f32],
) -> bool {
    let (base, nx, ny) = src;
    let tx = _mm256_add_ps(_mm256_set1_ps(a.fx), d.0);
    let ty = _mm256_add_ps(_mm256_set1_ps(a.fy), d.1);
    let (c0, r0) = (a.ix as isize + j as isize - S::LO, a.iy as isize - S::LO);
    let side = S::ROWS as isize;
    let inside = c0 >= 0 && c0 + 7 + side <= nx as isize && r0 >= 0 && r0 + side <= ny as isize;
    if !(inside && in_unit(tx, ty)) {
        return false;
    }
    // SAFETY: the taps are columns c0 .. c0 + 7 + ROWS and rows r0 .. r0 + ROWS, inside the
    // image by `inside`; `o` holds 8 f32.
    unsafe { S::run8(base.offset(r0 * nx as isize + c0), nx, &Plain, tx, ty, o) };
    true
}

/// One group of 8 output pixels anchored at its own first pixel (`a`, fractions `d`: the
/// `k·(a − 1, a_y)` of lanes k = 0..8) with exactly one column step or one row step inside
/// it — the usual reason [`fast8`] fails on a magnification correction: the lanes past the
/// step read their neighbourhoods one column (or row) further, blended in ([`Moved`]), and
/// use the fraction minus that step. Returns false (writing nothing) for anything else
/// (both steps in one group, larger steps, a neighbourhood touching the border).
///
/// # Safety
/// As for [`fast8`].
#[inline(always)]
unsafe fn step8<S: Stencil8>(
    src: (*const f32, usize, usize),
    a: Anchor,
    d: &Offsets,
    o: &mut [f32],
) -> bool {
    let (base, nx, ny) = src;
    let tx = _mm256_add_ps(_mm256_set1_ps(a.fx), d.0);
    let ty = _mm256_add_ps(_mm256_set1_ps(a.fy), d.1);
    let (flx, fly) = (_mm256_floor_ps(tx), _mm256_floor_ps(ty));
    let zero = _mm256_setzero_ps();
    let mx = _mm256_cmp_ps::<_CMP_NEQ_OQ>(flx, zero);
    let my = _mm256_cmp_ps::<_CMP_NEQ_OQ>(fly, zero);
    let (sx, sy) = (_mm256_movemask_ps(mx), _mm256_movemask_ps(my));
    // Exactly one axis steps; `step` is that axis's floor on the moved lanes (all equal, ±1).
    let (moved, fl, step_px) = match (sx != 0, sy != 0) {
        (true, false) => (mx, flx, 1isize),
        (false, true) => (my, fly, nx as isize),
        _ => return false,
    };
    let mut st = [0f32; 8];
    // SAFETY: 8 f32; storeu has no alignment requirement.
    unsafe { _mm256_storeu_ps(st.as_mut_ptr(), fl) };
    let s = st[7];
    if !(s == 1.0 || s == -1.0)
        || _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_EQ_OQ>(fl, _mm256_set1_ps(s))) != (sx | sy)
    {
        return false;
    }
    let off = if s > 0.0 { step_px } else { -step_px };
    let (c0, r0) = (a.ix as isize - S::LO, a.iy as isize - S::LO);
    let side = S::ROWS as isize;
    let (lo_c, hi_c, lo_r, hi_r) = match (step_px == 1, s > 0.0) {
        (true, true) => (c0, c0 + 8 + side, r0, r0 + side),
        (true, false) => (c0 - 1, c0 + 7 + side, r0, r0 + side),
        (false, true) => (c0, c0 + 7 + side, r0, r0 + side + 1),
        (false, false) => (c0, c0 + 7 + side, r0 - 1, r0 + side),
    };
    if lo_c < 0 || hi_c > nx as isize || lo_r < 0 || hi_r > ny as isize {
        return false;
    }
    let taps = Moved { off, moved };
    // SAFETY: every tap is in columns lo_c .. hi_c and rows lo_r .. hi_r, inside the image;
    // `o` holds 8 f32.
    unsafe {
        S::run8(
            base.offset(r0 * nx as isize + c0),
            nx,
            &taps,
            _mm256_sub_ps(tx, flx),
            _mm256_sub_ps(ty, fly),
            o,
        )
    };
    true
}

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
    // The anchor and its group index (`d[g - ag]` are the offsets of group `g`).
    let mut a = Anchor::at(map, x0);
    let mut ag = 0usize;
    for (g, o8) in out[..done].chunks_exact_mut(8).enumerate() {
        let xg = x0 + (8 * g) as f64;
        if g % (BLOCK / 8) == 0 {
            super::interior::prefetch_ahead(src.data, nx, map, xg, S::LO, S::ROWS, BLOCK / 16);
        }
        if g - ag >= BLOCK / 8 {
            (a, ag) = (Anchor::at(map, xg), g);
        }
        // SAFETY (all three): `o8` holds 8 f32; the image is at least MIN_SIDE.
        if unsafe { fast8::<S>(img, a, 8 * (g - ag), &d[g - ag], o8) } {
            took(0);
            continue;
        }
        if g != ag {
            (a, ag) = (Anchor::at(map, xg), g);
            if unsafe { fast8::<S>(img, a, 0, &d[0], o8) } {
                took(1);
                continue;
            }
        }
        if unsafe { step8::<S>(img, a, &d[0], o8) } {
            took(2);
            continue;
        }
        took(3);
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

/// Bilinear interpolation of 8 output pixels `o` (exactly 8 long) at the given positions
/// (floors, fractions), each neighbourhood read on its own: the general path of [`interior`]. Indices are clamped to the interior first, so every load is in
/// bounds whatever the positions.
///
/// # Safety
/// `base` must point to the `nx·ny` (both >= 2) pixels of the source; AVX2 and FMA present.
#[inline(always)]
unsafe fn linear8(
    base: *const f32,
    nx: usize,
    ny: usize,
    pos: (__m256i, __m256i, __m256, __m256),
    o: &mut [f32],
) {
    debug_assert_eq!(o.len(), 8);
    let (ix, iy, fx, fy) = pos;
    let zero = _mm256_setzero_si256();
    let ix = _mm256_min_epi32(_mm256_max_epi32(ix, zero), _mm256_set1_epi32(nx as i32 - 2));
    let iy = _mm256_min_epi32(_mm256_max_epi32(iy, zero), _mm256_set1_epi32(ny as i32 - 2));
    let idx = _mm256_add_epi32(_mm256_mullo_epi32(iy, _mm256_set1_epi32(nx as i32)), ix);
    let mut i = [0i32; 8];
    // SAFETY: `i` is 8 i32 = 32 bytes; storeu has no alignment requirement.
    unsafe { _mm256_storeu_si256(i.as_mut_ptr().cast::<__m256i>(), idx) };
    // SAFETY: 0 <= ix <= nx-2 and 0 <= iy <= ny-2 after the clamps, so for every lane the
    // pairs at idx, idx+1 and idx+nx, idx+nx+1 are inside data.
    let (v00, v01, v10, v11) = unsafe {
        let (t0, t1) = pairs8(base, &i);
        let (b0, b1) = pairs8(base.add(nx), &i);
        (t0, t1, b0, b1)
    };
    // SAFETY: `o` holds exactly 8 f32 (caller's contract).
    unsafe { bilinear_store([v00, v01, v10, v11], fx, fy, o) }
}

/// Bilinear combination of the taps `[v00, v01, v10, v11]` (row, column) of 8 pixels with
/// fractions `fx`, `fy`, stored to `o`.
///
/// # Safety
/// `o` holds exactly 8 f32; AVX2 and FMA present.
#[inline(always)]
unsafe fn bilinear_store(v: [__m256; 4], fx: __m256, fy: __m256, o: &mut [f32]) {
    let [v00, v01, v10, v11] = v;
    let top = _mm256_fmadd_ps(_mm256_sub_ps(v01, v00), fx, v00);
    let bottom = _mm256_fmadd_ps(_mm256_sub_ps(v11, v10), fx, v10);
    let v = _mm256_fmadd_ps(_mm256_sub_ps(bottom, top), fy, top);
    // SAFETY: `o` holds exactly 8 f32 (caller's contract).
    unsafe { _mm256_storeu_ps(o.as_mut_ptr(), v) };
}

/// Keys weights (a = −0.5) for 8 fractions `t`: [`crate::interp::keys_weights`] factored
/// for few multiplies (tested against it in `super::tests`). With `s = 1 − t`:
/// `w0 = −½·t·s²`, `w3 = −½·t²·s`, `w1 = 1 + t²(1.5t − 2.5)`, `w2 = 1 + s²(1.5s − 2.5)`
/// (w2 is w1 mirrored). [`cubic_store`] needs only w0, w2, w3 (it uses `Σw = 1`); `w1` is
/// computed here for the tests and optimised away in the loops.
#[inline(always)]
pub(super) unsafe fn keys8(t: __m256) -> [__m256; 4] {
    let one = _mm256_set1_ps(1.0);
    let (c15, c25) = (_mm256_set1_ps(1.5), _mm256_set1_ps(2.5));
    let s = _mm256_sub_ps(one, t);
    let t2 = _mm256_mul_ps(t, t);
    let s2 = _mm256_mul_ps(s, s);
    // −½·t·s (= −½(t − t²), exact up to one rounding of t − t²)
    let hts = _mm256_mul_ps(_mm256_set1_ps(-0.5), _mm256_sub_ps(t, t2));
    let w0 = _mm256_mul_ps(hts, s);
    let w3 = _mm256_mul_ps(hts, t);
    let w1 = _mm256_fmadd_ps(t2, _mm256_fmsub_ps(c15, t, c25), one);
    let w2 = _mm256_fmadd_ps(s2, _mm256_fmsub_ps(c15, s, c25), one);
    [w0, w1, w2, w3]
}

/// Keys-cubic interpolation of 8 output pixels `o` (exactly 8 long) at the given positions
/// (floors, fractions), each neighbourhood read on its own: the general path of [`interior`]. Indices are clamped to the interior first, so every load is in
/// bounds whatever the positions.
///
/// # Safety
/// `base` must point to the `nx·ny` (both >= 4) pixels of the source; AVX2 and FMA present.
#[inline(always)]
unsafe fn cubic8(
    base: *const f32,
    nx: usize,
    ny: usize,
    pos: (__m256i, __m256i, __m256, __m256),
    o: &mut [f32],
) {
    debug_assert_eq!(o.len(), 8);
    let (ix, iy, fx, fy) = pos;
    let one = _mm256_set1_epi32(1);
    let ix = _mm256_min_epi32(_mm256_max_epi32(ix, one), _mm256_set1_epi32(nx as i32 - 3));
    let iy = _mm256_min_epi32(_mm256_max_epi32(iy, one), _mm256_set1_epi32(ny as i32 - 3));
    // Top-left corner of the 4×4 neighbourhood.
    let idx = _mm256_add_epi32(
        _mm256_mullo_epi32(_mm256_sub_epi32(iy, one), _mm256_set1_epi32(nx as i32)),
        _mm256_sub_epi32(ix, one),
    );
    let wx = keys8(fx);
    let wy = keys8(fy);
    let mut i = [0i32; 8];
    // SAFETY: `i` is 8 i32 = 32 bytes; storeu has no alignment requirement.
    unsafe { _mm256_storeu_si256(i.as_mut_ptr().cast::<__m256i>(), idx) };
    // SAFETY: 1 <= ix <= nx-3 and 1 <= iy <= ny-3 after the clamps, so for every lane the 4
    // values from idx + r*nx (r in 0..4) are inside data (len nx*ny).
    let rows = unsafe {
        [
            rows8(base, &i),
            rows8(base.add(nx), &i),
            rows8(base.add(2 * nx), &i),
            rows8(base.add(3 * nx), &i),
        ]
    };
    // SAFETY: `o` holds exactly 8 f32 (caller's contract).
    unsafe { cubic_store(rows, wx, wy, o) }
}

/// Keys-cubic combination of 8 pixels: `rows[r]` holds stencil row r's 4 taps (vector `c`
/// holds tap `c` of every lane), `wx`, `wy` the weights; stored to `o`.
///
/// # Safety
/// `o` holds exactly 8 f32; AVX2 and FMA present.
#[inline(always)]
unsafe fn cubic_store(rows: [[__m256; 4]; 4], wx: [__m256; 4], wy: [__m256; 4], o: &mut [f32]) {
    // Σw = 1, so Σ w_c·v_c = v1 + w0(v0 − v1) + w2(v2 − v1) + w3(v3 − v1): three FMAs per
    // row and no w1 (the multiplier pipes are the bottleneck of this loop, the adders idle).
    #[inline(always)]
    unsafe fn combine(v: [__m256; 4], w: &[__m256; 4]) -> __m256 {
        let [v0, v1, v2, v3] = v;
        let h = _mm256_fmadd_ps(w[0], _mm256_sub_ps(v0, v1), v1);
        let h = _mm256_fmadd_ps(w[2], _mm256_sub_ps(v2, v1), h);
        _mm256_fmadd_ps(w[3], _mm256_sub_ps(v3, v1), h)
    }
    let [r0, r1, r2, r3] = rows;
    let h = [
        combine(r0, &wx),
        combine(r1, &wx),
        combine(r2, &wx),
        combine(r3, &wx),
    ];
    // SAFETY: `o` holds exactly 8 f32 (caller's contract).
    unsafe { _mm256_storeu_ps(o.as_mut_ptr(), combine(h, &wy)) };
}
