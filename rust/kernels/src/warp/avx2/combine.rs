//! The arithmetic shared by every AVX2 path: Keys weights and the bilinear and Keys-cubic
//! combinations of 8 pixels' taps.
use std::arch::x86_64::*;

/// Bilinear combination of the taps `[v00, v01, v10, v11]` (row, column) of 8 pixels with
/// fractions `fx`, `fy`, stored to `o`.
///
/// # Safety
/// `o` holds exactly 8 f32; AVX2 and FMA present.
#[inline(always)]
pub(super) unsafe fn bilinear_store(v: [__m256; 4], fx: __m256, fy: __m256, o: &mut [f32]) {
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
pub(in crate::warp) unsafe fn keys8(t: __m256) -> [__m256; 4] {
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

/// Keys-cubic combination of 8 pixels: `rows[r]` holds stencil row r's 4 taps (vector `c`
/// holds tap `c` of every lane), `wx`, `wy` the weights; stored to `o`.
///
/// # Safety
/// `o` holds exactly 8 f32; AVX2 and FMA present.
#[inline(always)]
pub(super) unsafe fn cubic_store(
    rows: [[__m256; 4]; 4],
    wx: [__m256; 4],
    wy: [__m256; 4],
    o: &mut [f32],
) {
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
