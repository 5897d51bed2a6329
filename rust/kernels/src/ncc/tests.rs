use super::*;
use ndarray::Array2;

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
