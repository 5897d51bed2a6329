//! The moment sums of the CCC (`Σr, Σp, Σr², Σp², Σr·p` of a row pair), per instruction set.

use crate::Isa;

/// `[Σr, Σp, Σr², Σp², Σr·p]` with 8 independent f32 lanes per sum; the same arithmetic
/// compiled for AVX2 on [`Isa::Avx2Fma`] (one 256-bit register per sum instead of two SSE
/// registers: identical results).
#[inline]
pub(super) fn moments_lanes(isa: Isa, r: &[f32], p: &[f32]) -> [f32; 5] {
    match isa.effective() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `effective()` returned AVX2 + FMA: the CPU supports AVX2.
        Isa::Avx2Fma => unsafe { moments_lanes_avx2(r, p) },
        _ => moments_lanes_generic(r, p),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn moments_lanes_avx2(r: &[f32], p: &[f32]) -> [f32; 5] {
    moments_lanes_generic(r, p)
}

#[inline(always)]
fn moments_lanes_generic(r: &[f32], p: &[f32]) -> [f32; 5] {
    let n = r.len().min(p.len());
    let (r, p) = (&r[..n], &p[..n]);
    let mut l = [[0.0f32; 8]; 5];
    let (cr, cp) = (r.chunks_exact(8), p.chunks_exact(8));
    let (rr, rp) = (cr.remainder(), cp.remainder());
    for (x, y) in cr.zip(cp) {
        for k in 0..8 {
            l[0][k] += x[k];
            l[1][k] += y[k];
            l[2][k] += x[k] * x[k];
            l[3][k] += y[k] * y[k];
            l[4][k] += x[k] * y[k];
        }
    }
    let mut o = [0.0f32; 5];
    for (q, lane) in o.iter_mut().zip(l.iter()) {
        *q = lane.iter().sum();
    }
    for (x, y) in rr.iter().zip(rp.iter()) {
        o[0] += x;
        o[1] += y;
        o[2] += x * x;
        o[3] += y * y;
        o[4] += x * y;
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_isa_gives_the_scalar_sums() {
        // bit-identical: the same lane arithmetic, only the register width differs
        for n in [0usize, 1, 7, 8, 9, 31, 64, 100, 463] {
            let r: Vec<f32> = (0..n)
                .map(|i| ((i * 37) % 101) as f32 * 0.013 - 0.4)
                .collect();
            let p: Vec<f32> = (0..n)
                .map(|i| ((i * 53) % 97) as f32 * -0.021 + 1.1)
                .collect();
            let s = moments_lanes(Isa::Scalar, &r, &p);
            for isa in Isa::available() {
                assert_eq!(moments_lanes(isa, &r, &p), s, "{isa:?} n = {n}");
            }
            // and the sums are right
            let e: f64 = r
                .iter()
                .zip(&p)
                .map(|(a, b)| (*a as f64) * (*b as f64))
                .sum();
            assert!((s[4] as f64 - e).abs() < 1e-3 * (1.0 + e.abs()), "{n}");
        }
    }
}
