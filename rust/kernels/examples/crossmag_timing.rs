//! Timing of the cross-magnification kernels without Python: `cargo run --release -p
//! emgeom-kernels --example crossmag_timing`. One known-calibration evaluation of the
//! benchmark's size (1024² region, 463² patch) and one direct-mode refinement point (499²
//! patch, 3 score maps).
use emgeom_kernels::crossmag::{evaluate_points, prepare_reference, PatchParams};
use emgeom_kernels::warp::Affine;
use emgeom_kernels::xcorr::{find_peaks, Allowed, FilterParams, Method};
use ndarray::Array2;
use std::time::Instant;

fn main() {
    let n = 1024usize;
    let img = Array2::from_shape_fn((n, n), |(y, x)| {
        let (x, y) = (x as f64, y as f64);
        ((x * 0.05).sin() * (y * 0.031).cos() + (x * 0.2 + y * 0.13).sin() * 0.3) as f32
    });
    let mov = Array2::from_shape_fn((409, 409), |(y, x)| img[[y + 300, x + 200]]);
    let (hy, hx) = (231usize, 231usize);
    let pad = (1280usize, 1280usize);
    let f = FilterParams::SERIALEM;
    for _ in 0..8 {
        let t = Instant::now();
        let r =
            prepare_reference(img.view(), (0, 0), (n, n), pad, 30.0, &f, Method::XCorr).unwrap();
        let tp = t.elapsed();
        let a: Affine = [[1.0, 0.0, 204.0 - hx as f64], [0.0, 1.0, 204.0 - hy as f64]];
        let p = PatchParams {
            hy,
            hx,
            taper: 41.0,
            allowed: Allowed::all(n, n),
            n_peaks: 10,
            min_sep: 34.0,
            score_affines: vec![a],
            refine_ccc: true,
            direct: None,
        };
        let t = Instant::now();
        let res = evaluate_points(&r, mov.view(), &[a], &p, false).unwrap();
        let te = t.elapsed();
        let map = Array2::from_shape_fn(pad, |(y, x)| {
            // smooth + hash noise: a local maximum every few pixels, like a real map
            let h = ((x * 7919 + y * 104_729) % 1009) as f32 / 1009.0;
            ((x as f32 * 0.07).sin() * (y as f32 * 0.05).cos()) + h * 0.5
        });
        let t = Instant::now();
        let (pk, _) = find_peaks(map.view(), 10, 34.0, &Allowed::all(n, n));
        let tk = t.elapsed();
        // a refinement point: direct mode (no correlation), 499² patch, 3 score maps
        let (hy2, hx2) = (249usize, 249usize);
        let r2 = prepare_reference(
            img.view(),
            (300 - 255, 400 - 255),
            (525, 525),
            (810, 810),
            3.0,
            &f,
            Method::XCorr,
        )
        .unwrap();
        let mov2 = Array2::from_shape_fn((401, 401), |(y, x)| img[[y + 100, x + 200]]);
        let a2: Affine = [
            [1.0, 0.0, 200.0 - hx2 as f64],
            [0.0, 1.0, 200.0 - hy2 as f64],
        ];
        let p2 = PatchParams {
            hy: hy2,
            hx: hx2,
            taper: 40.0,
            allowed: Allowed::all(525, 525),
            n_peaks: 10,
            min_sep: 37.0,
            score_affines: vec![a2, a2, a2],
            refine_ccc: true,
            direct: Some((255.0, 255.0)),
        };
        let t = Instant::now();
        let _ = evaluate_points(&r2, mov2.view(), &[a2], &p2, false).unwrap();
        let td = t.elapsed();
        println!(
            "prepare {tp:?} evaluate {te:?} find_peaks {tk:?} ({} peaks, best {:?}); \
             direct point {td:?}",
            pk.len(),
            res[0].peaks.first().map(|e| (e.x, e.y))
        );
    }
}
