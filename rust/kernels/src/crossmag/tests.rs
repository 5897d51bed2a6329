//! Tests of the cross-magnification evaluation.

use ndarray::{s, Array2};

use super::evaluate::HILL_CLIMB_STEPS;
use super::patch::{mask_weight, patch_and_mask};
use super::*;
use crate::fft::nice_size;
use crate::warp::Affine;
use crate::window::{self, RampTable};
use crate::xcorr::{Allowed, FilterParams, Method};

/// Direct mode (refinement rounds): a climb that converges lands on the true position; one
/// that runs out of steps reports the cell it reached as it is, never a parabola
/// extrapolated past the evaluated cells (that once inflated scores of wrong poses).
#[test]
fn direct_climb_never_extrapolates() {
    // one broad blob: the CCC rises monotonically towards it over tens of pixels
    let img = Array2::from_shape_fn((96, 112), |(y, x)| {
        let (dx, dy) = (x as f64 - 60.0, y as f64 - 40.0);
        (-(dx * dx + dy * dy) / (2.0 * 12.0 * 12.0)).exp() as f32
    });
    let (mov, r, a) = crop_at_60_40(&img, &FilterParams::NONE);
    let run = |start: (f64, f64)| {
        let p = crop_params(a, Some(start));
        evaluate_points(&r, mov.view(), &[a], &p, false).unwrap()[0].peaks[0]
    };
    let near = run((63.0, 42.0));
    assert!(
        (near.x - 60.0).abs() < 0.3 && (near.y - 40.0).abs() < 0.3,
        "{near:?}"
    );
    let far = run((60.0 + 20.0, 40.0));
    // 8 steps from x = 80 cannot reach x = 60: an integer cell, below the true maximum
    assert!(
        far.x >= 60.0 + 20.0 - HILL_CLIMB_STEPS as f64 - 1e-9,
        "{far:?}"
    );
    assert_eq!(far.x, far.x.round(), "{far:?}");
    assert_eq!(far.y, far.y.round(), "{far:?}");
    assert!(far.ccc < near.ccc, "{far:?} vs {near:?}");
}

fn scene(ny: usize, nx: usize) -> Array2<f32> {
    Array2::from_shape_fn((ny, nx), |(y, x)| {
        let (x, y) = (x as f64, y as f64);
        let mut v = 0.0;
        for k in 0..40 {
            let h = |a: f64| ((a * 12.9898).sin() * 43758.5453).rem_euclid(1.0);
            let cx = h(k as f64 + 0.1) * nx as f64;
            let cy = h(k as f64 + 0.7) * ny as f64;
            let s = 2.0 + (k % 4) as f64;
            v += (-((x - cx).powi(2) + (y - cy).powi(2)) / (2.0 * s * s)).exp();
        }
        v as f32
    })
}

/// The interval shortcuts of `patch_and_mask` give exactly the per-pixel weights and score
/// spans (rotations, zooms, patches larger and smaller than the image, several score maps).
#[test]
fn patch_mask_equals_per_pixel_evaluation() {
    let mov = scene(37, 52);
    let (ny, nx) = mov.dim();
    let mk = |th: f64, z: f64, hy: usize, hx: usize, cx: f64, cy: f64| -> Affine {
        let (c, s) = (th.cos() / z, th.sin() / z);
        // patch pixel (j, i) -> moving cx + R(θ)ᵀ (j − hx, i − hy) / z
        [
            [c, s, cx - c * hx as f64 - s * hy as f64],
            [-s, c, cy + s * hx as f64 - c * hy as f64],
        ]
    };
    for (k, &(th, z, hy, hx, taper)) in [
        (0.0, 1.0, 20usize, 28usize, 5.0),
        (0.3, 0.9, 25, 30, 8.0),
        (-2.9, 1.3, 12, 15, 3.0),
        (std::f64::consts::FRAC_PI_2, 1.0, 30, 30, 0.0),
        (0.1, 0.5, 40, 40, 11.5),
    ]
    .iter()
    .enumerate()
    {
        let a = mk(th, z, hy, hx, 25.7, 18.2);
        let sa = vec![
            mk(th + 0.05, z * 0.96, hy, hx, 25.7, 18.2),
            mk(th - 0.05, z * 0.96, hy, hx, 25.7, 18.2),
        ];
        let p = PatchParams {
            hy,
            hx,
            taper,
            allowed: Allowed::all(10, 10),
            n_peaks: 1,
            min_sep: 1.0,
            score_affines: if k % 2 == 0 { sa } else { vec![] },
            refine_ccc: false,
            direct: None,
        };
        let (_, mask, spans, _) = patch_and_mask(mov.view(), &a, &p).unwrap();
        let tab = RampTable::new(taper);
        let w = |b: &Affine, i: usize, j: usize| mask_weight(&tab, b, i, j, nx, ny);
        for i in 0..2 * hy + 1 {
            let mut first = None;
            let mut last = 0;
            for j in 0..2 * hx + 1 {
                let v = w(&a, i, j);
                assert_eq!(mask[[i, j]], v as f32, "case {k} ({i}, {j})");
                assert!((v - ramp_product(&a, i, j, nx, ny, taper)).abs() < 1e-6);
                if v > 0.05 && p.score_affines.iter().all(|b| w(b, i, j) > 0.05) {
                    first.get_or_insert(j);
                    last = j + 1;
                }
            }
            let expect = first.map_or((0, 0), |f| (f, last));
            assert_eq!(spans[i], expect, "case {k} row {i}");
        }
    }
}

fn ramp_product(b: &Affine, i: usize, j: usize, nx: usize, ny: usize, taper: f64) -> f64 {
    let sx = b[0][0] * j as f64 + b[0][1] * i as f64 + b[0][2];
    let sy = b[1][0] * j as f64 + b[1][1] * i as f64 + b[1][2];
    let (dx, dy) = (
        window::edge_distance(sx, nx as f64),
        window::edge_distance(sy, ny as f64),
    );
    window::ramp(dx, taper) * window::ramp(dy, taper)
}

/// The moving image = the 31×41 crop centred at (x, y) = (60, 40) of a 96×112 `img`; the
/// whole of `img` prepared as the reference region; the patch (half 16, 21) → moving map
/// at the true pose.
fn crop_at_60_40(img: &Array2<f32>, f: &FilterParams) -> (Array2<f32>, Reference, Affine) {
    let (cx, cy) = (60usize, 40usize);
    let mov = img
        .slice(s![cy - 15..=cy + 15, cx - 20..=cx + 20])
        .to_owned();
    let (hy, hx) = (16usize, 21usize);
    let pad = (nice_size(96 + hy), nice_size(112 + hx));
    let r = prepare_reference(img.view(), (0, 0), (96, 112), pad, 6.0, f, Method::XCorr).unwrap();
    // patch pixel (j, i) -> moving (j - hx + 20, i - hy + 15)
    let a: Affine = [[1.0, 0.0, 20.0 - hx as f64], [0.0, 1.0, 15.0 - hy as f64]];
    (mov, r, a)
}

/// Patch parameters for [`crop_at_60_40`]'s pose `a` (correlation map, or `direct`).
fn crop_params(a: Affine, direct: Option<(f64, f64)>) -> PatchParams {
    PatchParams {
        hy: 16,
        hx: 21,
        taper: 3.0,
        allowed: Allowed::all(96, 112),
        n_peaks: 5,
        min_sep: 4.0,
        score_affines: vec![a],
        refine_ccc: true,
        direct,
    }
}

#[test]
fn finds_a_translated_patch() {
    let img = scene(96, 112);
    let (mov, r, a) = crop_at_60_40(&img, &FilterParams::SERIALEM);
    let region = (96usize, 112usize);
    let p = crop_params(a, None);
    let res = evaluate_points(&r, mov.view(), &[a], &p, true).unwrap();
    let best = res[0].peaks[0];
    assert!(
        (best.x - 60.0).abs() < 0.3 && (best.y - 40.0).abs() < 0.3,
        "{best:?}"
    );
    assert!(best.ccc > 0.9, "{best:?}");
    assert!(best.overlap > 0.99);
    assert_eq!(res[0].map.as_ref().unwrap().dim(), region);
}
