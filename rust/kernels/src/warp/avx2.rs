//! AVX2 + FMA interior loops for `f32`, 2 × 8 output pixels per iteration. Only entered when the
//! caller's [`crate::Isa`] is effectively [`crate::Isa::Avx2Fma`] (see `super::scalar`'s
//! `interior_simd`).
//!
//! One position per 16 pixels is computed exactly in f64 (as [`super::RowMap::at`]); the
//! lanes add f32 offsets to its fraction (see [`positions`]). When the 8 neighbourhoods are
//! consecutive in memory (same source row, columns `ix0 + k`: the common case for
//! magnification corrections) they are read with plain vector loads; otherwise each lane's
//! neighbourhood is loaded and transposed (AVX2 gathers measured ~10 cycles each here, slower).
//! Indices are clamped to the interior first, so every load is in bounds even if the caller's
//! interior guarantee were wrong.
use super::interior::{RowMap, Source};
use std::arch::x86_64::*;

/// Every pixel index fits the i32 lane offsets and the image is at least 2 × 2. (Whether the
/// CPU has AVX2 + FMA is the caller's [`crate::Isa`], already made effective.)
#[inline(always)]
pub(super) fn usable(src: &Source<'_, f32>) -> bool {
    src.data.len() <= i32::MAX as usize && src.nx >= 2 && src.ny >= 2
}

/// Positions of the 8 output pixels `xf .. xf + 8`: (floor sx, floor sy) as i32 and the
/// fractions as f32. The anchor `xf` is mapped exactly in f64 (as `RowMap::at`) and split
/// into integer and fraction ([`anchor`]); the lanes add `k·a` (precomputed in `kx`, `ky`;
/// the loops use k = 0..16 from one anchor) to the f32 fraction ([`lanes`]), which costs at
/// most ~2e-6·(1 + |a|) px (|frac + k·a| < 16·(1 + |a|), f32 rounding 6e-8 relative) — far
/// below the 1e-4 px budget and f32 output precision.
#[inline(always)]
unsafe fn positions(
    map: &RowMap,
    xf: f64,
    kx: __m256,
    ky: __m256,
) -> (__m256i, __m256i, __m256, __m256) {
    lanes(anchor(map, xf), kx, ky)
}

/// Exact f64 position of the output pixel `xf`, split into floors (as broadcast i32) and
/// fractions (as broadcast f32): the anchor of `lanes`.
#[inline(always)]
unsafe fn anchor(map: &RowMap, xf: f64) -> (__m256i, __m256i, __m256, __m256) {
    let (sx, sy) = map.at(xf);
    let (flx, fly) = (sx.floor(), sy.floor());
    // flx, fly are within the image here (the SIMD range is interior), so the truncating
    // conversions are exact.
    let ix0 = _mm_cvttsd_si32(_mm_set_sd(flx));
    let iy0 = _mm_cvttsd_si32(_mm_set_sd(fly));
    (
        _mm256_set1_epi32(ix0),
        _mm256_set1_epi32(iy0),
        _mm256_set1_ps((sx - flx) as f32),
        _mm256_set1_ps((sy - fly) as f32),
    )
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

/// Whether the 8 pixels' neighbourhoods are consecutive in memory: same source row, columns
/// `ix[0] + k`. Typical of near-identity maps (magnification corrections), where it lets the
/// loops use plain vector loads instead of assembling each neighbourhood.
#[inline(always)]
unsafe fn contiguous(ix: __m256i, iy: __m256i) -> bool {
    let iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    let ix0 = _mm256_permutevar8x32_epi32(ix, _mm256_setzero_si256());
    let iy0 = _mm256_permutevar8x32_epi32(iy, _mm256_setzero_si256());
    let same = _mm256_and_si256(
        _mm256_cmpeq_epi32(ix, _mm256_add_epi32(ix0, iota)),
        _mm256_cmpeq_epi32(iy, iy0),
    );
    _mm256_movemask_epi8(same) == -1
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
}

/// The interior loop shared by both kinds: 2 groups of 8 pixels per exact f64 anchor (offsets
/// 0..8 and 8..16), prefetching ahead; returns the number of pixels written (a multiple of 8).
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
    let base = src.data.as_ptr();
    let (kx, ky) = (steps(map.ax, 0.0), steps(map.ay, 0.0));
    let (kx8, ky8) = (steps(map.ax, 8.0), steps(map.ay, 8.0));
    let done = out.len() / 8 * 8;
    let mut xf = x_start as f64;
    let mut pairs = out[..done].chunks_exact_mut(16);
    for o in &mut pairs {
        super::interior::prefetch_ahead(src.data, nx, map, xf, S::LO, S::ROWS);
        let anc = anchor(map, xf);
        let (lo, hi) = o.split_at_mut(8);
        // SAFETY (both calls): `lo`, `hi` hold 8 f32 each; the image is at least MIN_SIDE.
        unsafe {
            S::px8(base, nx, ny, lanes(anc, kx, ky), lo);
            S::px8(base, nx, ny, lanes(anc, kx8, ky8), hi);
        }
        xf += 16.0;
    }
    let rest = pairs.into_remainder();
    if !rest.is_empty() {
        // SAFETY: `rest` holds exactly 8 f32 (done is a multiple of 8).
        unsafe { S::px8(base, nx, ny, positions(map, xf, kx, ky), rest) };
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
/// (floors, fractions). Indices are clamped to the interior first, so every load is in
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
    let i0 = _mm256_cvtsi256_si32(idx) as isize;
    let (v00, v01, v10, v11) = if contiguous(ix, iy) {
        // SAFETY: the 8 neighbourhoods are consecutive (idx = i0 + k), and lane k's
        // clamped indices keep idx+1, idx+nx, idx+nx+1 inside data, for k = 7 too.
        unsafe {
            let p = base.offset(i0);
            let q = p.add(nx);
            (
                _mm256_loadu_ps(p),
                _mm256_loadu_ps(p.add(1)),
                _mm256_loadu_ps(q),
                _mm256_loadu_ps(q.add(1)),
            )
        }
    } else {
        let mut i = [0i32; 8];
        // SAFETY: `i` is 8 i32 = 32 bytes; storeu has no alignment requirement.
        unsafe { _mm256_storeu_si256(i.as_mut_ptr().cast::<__m256i>(), idx) };
        // SAFETY: 0 <= ix <= nx-2 and 0 <= iy <= ny-2 after the clamps, so for every
        // lane the pairs at idx, idx+1 and idx+nx, idx+nx+1 are inside data.
        unsafe {
            let (t0, t1) = pairs8(base, &i);
            let (b0, b1) = pairs8(base.add(nx), &i);
            (t0, t1, b0, b1)
        }
    };
    let top = _mm256_fmadd_ps(_mm256_sub_ps(v01, v00), fx, v00);
    let bottom = _mm256_fmadd_ps(_mm256_sub_ps(v11, v10), fx, v10);
    let v = _mm256_fmadd_ps(_mm256_sub_ps(bottom, top), fy, top);
    // SAFETY: `o` holds exactly 8 f32 (caller's contract).
    unsafe { _mm256_storeu_ps(o.as_mut_ptr(), v) };
}

/// Keys weights (a = −0.5) for 8 fractions `t`: [`crate::interp::keys_weights`] reordered with
/// FMAs (tested against it in `super::tests`).
#[inline(always)]
pub(super) unsafe fn keys8(t: __m256) -> [__m256; 4] {
    let h = _mm256_set1_ps(0.5);
    let one = _mm256_set1_ps(1.0);
    let t2 = _mm256_mul_ps(t, t);
    let t3 = _mm256_mul_ps(t2, t);
    // w0 = -0.5 t³ + t² - 0.5 t
    let w0 = _mm256_fnmadd_ps(h, _mm256_add_ps(t3, t), t2);
    // w1 = 1.5 t³ - 2.5 t² + 1
    let w1 = _mm256_fmadd_ps(
        _mm256_set1_ps(1.5),
        t3,
        _mm256_fnmadd_ps(_mm256_set1_ps(2.5), t2, one),
    );
    // w3 = 0.5 t³ - 0.5 t²
    let w3 = _mm256_mul_ps(h, _mm256_sub_ps(t3, t2));
    // w2 = 1 - w0 - w1 - w3 would lose accuracy; use the polynomial: -1.5 t³ + 2 t² + 0.5 t
    let w2 = _mm256_fmadd_ps(
        _mm256_set1_ps(-1.5),
        t3,
        _mm256_fmadd_ps(_mm256_set1_ps(2.0), t2, _mm256_mul_ps(h, t)),
    );
    [w0, w1, w2, w3]
}

/// Keys-cubic interpolation of 8 output pixels `o` (exactly 8 long) at the given positions
/// (floors, fractions). Indices are clamped to the interior first, so every load is in
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
    let i0 = _mm256_cvtsi256_si32(idx) as isize;
    let fast = contiguous(ix, iy);
    let mut i = [0i32; 8];
    if !fast {
        // SAFETY: `i` is 8 i32 = 32 bytes; storeu has no alignment requirement.
        unsafe { _mm256_storeu_si256(i.as_mut_ptr().cast::<__m256i>(), idx) };
    }
    let mut acc = _mm256_setzero_ps();
    for (r, w_row) in wy.iter().enumerate() {
        // SAFETY: 1 <= ix <= nx-3 and 1 <= iy <= ny-3 after the clamps, so for every lane
        // the 4 values from idx + r*nx (r in 0..4) are inside data (len nx*ny); in the
        // contiguous case lane k's idx is i0 + k.
        let [c0, c1, c2, c3] = unsafe {
            if fast {
                let p = base.offset(i0).add(r * nx);
                [
                    _mm256_loadu_ps(p),
                    _mm256_loadu_ps(p.add(1)),
                    _mm256_loadu_ps(p.add(2)),
                    _mm256_loadu_ps(p.add(3)),
                ]
            } else {
                rows8(base.add(r * nx), &i)
            }
        };
        let v = _mm256_mul_ps(wx[0], c0);
        let v = _mm256_fmadd_ps(wx[1], c1, v);
        let v = _mm256_fmadd_ps(wx[2], c2, v);
        let v = _mm256_fmadd_ps(wx[3], c3, v);
        acc = _mm256_fmadd_ps(*w_row, v, acc);
    }
    // SAFETY: `o` holds exactly 8 f32 (caller's contract).
    unsafe { _mm256_storeu_ps(o.as_mut_ptr(), acc) };
}
