//! Interpolation kernels, each defined once: bilinear, Keys cubic convolution (a = −0.5) and
//! Lanczos-3.
//!
//! As fast_image_resize keeps every filter in `src/convolution/filters.rs`, the warp, the
//! separable rescale and the log-polar resampler take their weights from here; SIMD versions
//! (e.g. the AVX2 `keys8` of the warp) are tested against these scalar definitions.
//!
//! Weights are for a sample at fractional offset `t ∈ [0, 1)` past the integer position `i`:
//! bilinear uses `i, i + 1`; Keys uses `i − 1, i, i + 1, i + 2`.

use num_traits::Float;

/// Keys' free parameter: `a = −0.5` (Keys 1981, IEEE TASSP 29:1153, eq. 15), the interpolating
/// cubic that reproduces quadratics (Catmull–Rom). OpenCV's `INTER_CUBIC` uses −0.75.
pub const KEYS_A: f64 = -0.5;

/// Bilinear (1-D linear) interpolation between `v0` (at 0) and `v1` (at 1): `v0 + (v1 − v0)·t`.
///
/// This form (not `(1 − t)·v0 + t·v1`) is exact at `t = 0` and for constant data, and it is
/// the arithmetic every bilinear path of the crate uses (the scalar loops are bit-identical to
/// one another because they all call this).
#[inline(always)]
pub fn lerp<T: Float>(v0: T, v1: T, t: T) -> T {
    v0 + (v1 - v0) * t
}

/// Bilinear weights `[1 − t, t]` of the samples at offsets 0 and 1.
#[inline(always)]
pub fn bilinear_weights<T: Float>(t: T) -> [T; 2] {
    [T::one() - t, t]
}

#[inline(always)]
fn c<T: Float>(v: f64) -> T {
    // Only called with small exact constants (0.5, 1.5, 2, 2.5): never None for f32/f64.
    T::from(v).unwrap_or_else(T::nan)
}

/// Keys cubic weights (a = −0.5) at offsets −1, 0, 1, 2 for the fraction `t ∈ [0, 1)`:
/// `keys_weights(t)[j] == keys_kernel(t − (j − 1))`, summing to 1.
///
/// The polynomial form (Horner-free, as written) is the one every scalar path uses, so f32
/// results are identical across kernels; the AVX2 version reorders it with FMAs (tested within
/// 2 ulp-scale tolerance in the warp's tests).
#[inline(always)]
pub fn keys_weights<T: Float>(t: T) -> [T; 4] {
    let half = c::<T>(0.5);
    let one_half = c::<T>(1.5);
    let two = c::<T>(2.0);
    let two_half = c::<T>(2.5);
    let t2 = t * t;
    let t3 = t2 * t;
    [
        -half * t3 + t2 - half * t,
        one_half * t3 - two_half * t2 + T::one(),
        -one_half * t3 + two * t2 + half * t,
        half * t3 - half * t2,
    ]
}

/// Keys cubic kernel value at distance `s` (a = −0.5), zero for `|s| >= 2`.
#[inline]
pub fn keys_kernel(s: f64) -> f64 {
    let a = KEYS_A;
    let s = s.abs();
    if s < 1.0 {
        (a + 2.0) * s * s * s - (a + 3.0) * s * s + 1.0
    } else if s < 2.0 {
        a * s * s * s - 5.0 * a * s * s + 8.0 * a * s - 4.0 * a
    } else {
        0.0
    }
}

/// Lanczos-3 kernel `sinc(t)·sinc(t/3)` for `|t| < 3`, zero outside.
#[inline]
pub fn lanczos3(t: f64) -> f64 {
    let t = t.abs();
    if t < 1e-12 {
        1.0
    } else if t >= 3.0 {
        0.0
    } else {
        let pt = std::f64::consts::PI * t;
        3.0 * pt.sin() * (pt / 3.0).sin() / (pt * pt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_weights_match_the_kernel_and_sum_to_one() {
        for i in 0..=40 {
            let t = i as f64 / 40.0;
            let w = keys_weights(t);
            let k = [
                keys_kernel(1.0 + t),
                keys_kernel(t),
                keys_kernel(1.0 - t),
                keys_kernel(2.0 - t),
            ];
            for j in 0..4 {
                assert!(
                    (w[j] - k[j]).abs() < 1e-12,
                    "t={t} j={j}: {} vs {}",
                    w[j],
                    k[j]
                );
            }
            assert!((w.iter().sum::<f64>() - 1.0).abs() < 1e-12);
            // f32 weights: the same polynomial in f32.
            let w32 = keys_weights(t as f32);
            for j in 0..4 {
                assert!((w32[j] as f64 - w[j]).abs() < 1e-6);
            }
        }
    }

    #[test]
    fn keys_kernel_values() {
        // Interpolating: 1 at 0, 0 at the other integers; the slope at s = 1 is a (Keys' definition).
        assert_eq!(keys_kernel(0.0), 1.0);
        for s in [1.0, 2.0, -1.0, -2.0, 2.5, 7.0] {
            assert_eq!(keys_kernel(s), 0.0);
        }
        assert!((keys_kernel(0.5) - 0.5625).abs() < 1e-15);
        assert!((keys_kernel(1.5) + 0.0625).abs() < 1e-15);
        let h = 1e-6;
        let slope = (keys_kernel(1.0 + h) - keys_kernel(1.0 - h)) / (2.0 * h);
        assert!((slope - KEYS_A).abs() < 1e-6, "{slope}");
    }

    #[test]
    fn keys_reproduces_quadratics() {
        // Σ_j w_j · p(j − 1) = p(t) for p = 1, x, x².
        for i in 0..20 {
            let t = i as f64 / 20.0;
            let w = keys_weights(t);
            for p in [|x: f64| 1.0 + 0.0 * x, |x: f64| x, |x: f64| x * x] {
                let got: f64 = (0..4).map(|j| w[j] * p(j as f64 - 1.0)).sum();
                assert!((got - p(t)).abs() < 1e-12);
            }
        }
    }

    #[test]
    fn bilinear_weights_and_lerp_agree() {
        for i in 0..=10 {
            let t = i as f64 / 10.0;
            let [w0, w1] = bilinear_weights(t);
            assert!((w0 * 3.0 + w1 * 7.0 - lerp(3.0, 7.0, t)).abs() < 1e-12);
            assert_eq!(w0 + w1, 1.0);
        }
        assert_eq!(lerp(2.5f32, 9.0, 0.0), 2.5);
        assert_eq!(lerp(4.0f32, 4.0, 0.37), 4.0);
    }

    #[test]
    fn lanczos3_values() {
        assert_eq!(lanczos3(0.0), 1.0);
        for k in 1..=3 {
            assert!(lanczos3(k as f64).abs() < 1e-15);
        }
        assert_eq!(lanczos3(3.5), 0.0);
        assert_eq!(lanczos3(-1.3), lanczos3(1.3));
        // sinc(0.5)·sinc(1/6) = (2/π)·(3/π)·sin(π/6)·... closed form at t = 0.5:
        let want = 3.0 * (std::f64::consts::PI * 0.5).sin() * (std::f64::consts::PI / 6.0).sin()
            / (std::f64::consts::PI * 0.5).powi(2);
        assert!((lanczos3(0.5) - want).abs() < 1e-15);
    }
}
