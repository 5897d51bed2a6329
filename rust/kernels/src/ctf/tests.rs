use std::f64::consts::PI;

use ndarray::Array2;

use super::*;

fn lambda300() -> f64 {
    // relativistic electron wavelength at 300 kV (Å)
    let v = 300e3f64;
    12.2643247 / (v * (1.0 + 0.978466e-6 * v)).sqrt()
}

/// 300 kV optics with Cs 2.7 mm and 7 % amplitude contrast.
fn optics300() -> Optics {
    Optics {
        wavelength_a: lambda300(),
        cs_a: 2.7e7,
        amplitude_contrast: 0.07,
    }
}

/// A tiling without astigmatism.
fn tiling(tile: usize, step: usize, n_bins: usize) -> Tiling {
    Tiling {
        tile,
        step,
        n_bins,
        astig: 0.0,
        astig_angle: 0.0,
    }
}

#[test]
fn wavelength_is_right() {
    assert!((lambda300() - 0.019688).abs() < 1e-5);
}

#[test]
fn tiles_and_centres() {
    let img = Array2::<f32>::zeros((100, 80));
    let t = tiling(32, 16, 16);
    let (p, c, counts) = tile_profiles(img.view(), t).unwrap();
    assert_eq!(p.dim(), (5 * 4, 16));
    assert!(counts.iter().all(|&k| k > 0));
    // symmetric margins: centres symmetric about 0
    let sx: f64 = c.column(0).iter().sum();
    let sy: f64 = c.column(1).iter().sum();
    assert!(sx.abs() < 1e-9 && sy.abs() < 1e-9);
}

#[test]
fn errors_not_panics() {
    let img = Array2::<f32>::zeros((10, 10));
    let t = tiling(32, 16, 16);
    assert!(tile_profiles(img.view(), t).is_err());
    let t2 = Tiling { tile: 15, ..t };
    assert!(tile_profiles(Array2::<f32>::zeros((64, 64)).view(), t2).is_err());
    let p = Array2::<f32>::zeros((1, 16));
    let o = Optics {
        wavelength_a: 0.0197,
        cs_a: 2.7e7,
        amplitude_contrast: 0.07,
    };
    let bad = Search {
        s_lo: 0.1,
        s_hi: 0.0,
        df_min: 1.0,
        df_max: 2.0,
        df_ref: 1.0,
    };
    assert!(fit_defocus_1d(p.view(), 1e-3, o, &[bad], 10.0).is_err());
    assert!(fit_defocus_1d(p.view(), 1e-3, o, &[], 10.0).is_err());
}

#[test]
fn recovers_defocus_of_a_synthetic_profile() {
    let lam = lambda300();
    let o = optics300();
    let nb = 256;
    let px = 3.0;
    let s_per_bin = 0.25 / (px * px) / nb as f64;
    for &df in &[15000.0f64, 27345.0, 41000.0] {
        let phase_a = 0.07f64.asin();
        let prof: Array2<f32> = Array2::from_shape_fn((1, nb), |(_, j)| {
            let s = (j as f64 + 0.5) * s_per_bin;
            let chi = PI * lam * df * s - 0.5 * PI * 2.7e7 * lam.powi(3) * s * s;
            let ctf2 = (chi + phase_a).sin().powi(2);
            let env = (-60.0 * s).exp();
            (10.0 * (-200.0 * s).exp() + ctf2 * env) as f32
        });
        let se = Search {
            s_lo: 1.0 / 900.0,
            s_hi: 0.9 * 0.25 / (px * px),
            df_min: 5000.0,
            df_max: 60000.0,
            df_ref: 30000.0,
        };
        let (d, sc) = fit_defocus_1d(prof.view(), s_per_bin, o, &[se], 50.0).unwrap();
        assert!((d[0] - df).abs() < 30.0, "df {df}: got {}", d[0]);
        assert!(sc[0] > 0.5);
    }
}

#[test]
fn score_curves_peak_at_the_fit() {
    let lam = lambda300();
    let o = optics300();
    let nb = 128;
    let s_per_bin = 0.25 / 9.0 / nb as f64;
    let df = 21000.0;
    let prof: Array2<f32> = Array2::from_shape_fn((2, nb), |(_, j)| {
        let s = (j as f64 + 0.5) * s_per_bin;
        let chi = PI * lam * df * s - 0.5 * PI * 2.7e7 * lam.powi(3) * s * s;
        ((chi + 0.07f64.asin()).sin().powi(2) + 3.0 * (-300.0 * s).exp()) as f32
    });
    let se = Search {
        s_lo: 1.0 / 900.0,
        s_hi: 0.02,
        df_min: 1.0,
        df_max: 2.0,
        df_ref: df,
    };
    let c = score_curves(
        prof.view(),
        s_per_bin,
        o,
        &[se, se],
        &[15000.0, 20000.0],
        10.0,
        1001,
    )
    .unwrap();
    let k0 = (0..1001)
        .max_by(|&a, &b| c[[0, a]].total_cmp(&c[[0, b]]))
        .unwrap();
    let k1 = (0..1001)
        .max_by(|&a, &b| c[[1, a]].total_cmp(&c[[1, b]]))
        .unwrap();
    assert!((15000.0 + 10.0 * k0 as f64 - df).abs() <= 20.0);
    assert!((20000.0 + 10.0 * k1 as f64 - df).abs() <= 20.0);
    assert!(score_curves(prof.view(), s_per_bin, o, &[se], &[1.0], 10.0, 5).is_err());
}

#[test]
fn ring_profile_of_a_ctf_image() {
    // an image whose power spectrum is a pure CTF² pattern: fit gives its defocus
    let lam = lambda300();
    let n = 128usize;
    let px = 3.0;
    let df = 22000.0;
    let mut img = Array2::<f32>::zeros((n, n));
    // superpose cosines on rings: sum over a few frequencies weighted by CTF²
    let phase_a = 0.07f64.asin();
    let mut seed = 12345u64;
    for _ in 0..3000 {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let kx = ((seed >> 33) % 64) as f64;
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let ky = ((seed >> 33) % 127) as f64 - 63.0;
        let s = (kx * kx + ky * ky) / (n as f64 * n as f64) / (px * px);
        let chi = PI * lam * df * s - 0.5 * PI * 2.7e7 * lam.powi(3) * s * s;
        let a = (chi + phase_a).sin().abs();
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let ph = (seed >> 11) as f64 / (1u64 << 53) as f64 * 2.0 * PI;
        for y in 0..n {
            for x in 0..n {
                let arg = 2.0 * PI * (kx * x as f64 + ky * y as f64) / n as f64 + ph;
                img[[y, x]] += (a * arg.cos()) as f32;
            }
        }
    }
    let t = tiling(128, 128, 64);
    let (p, _, _) = tile_profiles(img.view(), t).unwrap();
    let s_per_bin = 0.25 / (px * px) / 64.0;
    let o = optics300();
    let se = Search {
        s_lo: 1.0 / 900.0,
        s_hi: 0.9 * 0.25 / (px * px),
        df_min: 8000.0,
        df_max: 40000.0,
        df_ref: 22000.0,
    };
    let (d, _) = fit_defocus_1d(p.view(), s_per_bin, o, &[se], 50.0).unwrap();
    assert!((d[0] - df).abs() < 400.0, "got {}", d[0]);
}
