//! The general path of the AVX2 interior: every lane's neighbourhood loaded on its own and
//! transposed ([`linear8`], [`cubic8`]), and the per-lane positions it starts from ([`lanes`]).
use super::combine::{bilinear_store, cubic_store, keys8};
use std::arch::x86_64::*;

/// Positions of 8 pixels at offsets `kx`, `ky` (f32) from an anchor.
#[inline(always)]
pub(super) unsafe fn lanes(
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
pub(super) unsafe fn pairs8(p: *const f32, i: &[i32; 8]) -> (__m256, __m256) {
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
pub(super) unsafe fn rows8(p: *const f32, i: &[i32; 8]) -> [__m256; 4] {
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

/// Offsets of the top-left corners of 8 lanes' `side × side` neighbourhoods (floors `ix`, `iy`,
/// `lo` rows and columns above and left of them), the floors first clamped to
/// `[lo, n − side + lo]` so that every neighbourhood lies inside the `nx × ny` image whatever
/// the positions.
#[inline(always)]
unsafe fn corners(ix: __m256i, iy: __m256i, nx: usize, ny: usize, lo: i32, side: i32) -> [i32; 8] {
    // (No closure here: it would not inherit the target features.)
    let lov = _mm256_set1_epi32(lo);
    let ix = _mm256_min_epi32(
        _mm256_max_epi32(ix, lov),
        _mm256_set1_epi32(nx as i32 - side + lo),
    );
    let iy = _mm256_min_epi32(
        _mm256_max_epi32(iy, lov),
        _mm256_set1_epi32(ny as i32 - side + lo),
    );
    let idx = _mm256_add_epi32(
        _mm256_mullo_epi32(_mm256_sub_epi32(iy, lov), _mm256_set1_epi32(nx as i32)),
        _mm256_sub_epi32(ix, lov),
    );
    let mut i = [0i32; 8];
    // SAFETY: `i` is 8 i32 = 32 bytes; storeu has no alignment requirement.
    unsafe { _mm256_storeu_si256(i.as_mut_ptr().cast::<__m256i>(), idx) };
    i
}

/// Bilinear interpolation of 8 output pixels `o` (exactly 8 long) at the given positions
/// (floors, fractions), each neighbourhood read on its own: the general path of
/// [`super::interior`]. Indices are clamped to the interior first, so every load is in bounds
/// whatever the positions.
///
/// # Safety
/// `base` must point to the `nx·ny` (both >= 2) pixels of the source; AVX2 and FMA present.
#[inline(always)]
pub(super) unsafe fn linear8(
    base: *const f32,
    nx: usize,
    ny: usize,
    pos: (__m256i, __m256i, __m256, __m256),
    o: &mut [f32],
) {
    debug_assert_eq!(o.len(), 8);
    let (ix, iy, fx, fy) = pos;
    let i = corners(ix, iy, nx, ny, 0, 2);
    // SAFETY: by `corners`, for every lane the pairs at i, i+1 and i+nx, i+nx+1 are inside
    // data.
    let (v00, v01, v10, v11) = unsafe {
        let (t0, t1) = pairs8(base, &i);
        let (b0, b1) = pairs8(base.add(nx), &i);
        (t0, t1, b0, b1)
    };
    // SAFETY: `o` holds exactly 8 f32 (caller's contract).
    unsafe { bilinear_store([v00, v01, v10, v11], fx, fy, o) }
}

/// Keys-cubic interpolation of 8 output pixels `o` (exactly 8 long) at the given positions
/// (floors, fractions), each neighbourhood read on its own: the general path of
/// [`super::interior`]. Indices are clamped to the interior first, so every load is in bounds
/// whatever the positions.
///
/// # Safety
/// `base` must point to the `nx·ny` (both >= 4) pixels of the source; AVX2 and FMA present.
#[inline(always)]
pub(super) unsafe fn cubic8(
    base: *const f32,
    nx: usize,
    ny: usize,
    pos: (__m256i, __m256i, __m256, __m256),
    o: &mut [f32],
) {
    debug_assert_eq!(o.len(), 8);
    let (ix, iy, fx, fy) = pos;
    let i = corners(ix, iy, nx, ny, 1, 4);
    let wx = keys8(fx);
    let wy = keys8(fy);
    // SAFETY: by `corners`, for every lane the 4 values from i + r*nx (r in 0..4) are inside
    // data (len nx*ny).
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
