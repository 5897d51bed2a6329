//! Every path on every instruction set of [`Isa::available`], compared with the per-pixel
//! general path and with [`Isa::Scalar`].

use super::interior::Source;
use super::interior::{interior_range, RowMap};
use super::rows::ScanPlan;
use super::scalar::{Cubic, Kind, Linear};
use super::*;
use crate::interp::keys_weights;
use ndarray::Array2;

/// Options running on `isa` (and nothing else changed).
fn on(isa: Isa) -> WarpOptions {
    WarpOptions {
        isa,
        ..WarpOptions::default()
    }
}

fn ramp(ny: usize, nx: usize) -> Array2<f64> {
    Array2::from_shape_fn((ny, nx), |(y, x)| 0.25 * x as f64 - 0.5 * y as f64 + 3.0)
}

#[test]
fn identity_reproduces_input() {
    let src = Array2::from_shape_fn((7, 9), |(y, x)| ((x * 31 + y * 17) % 13) as f64);
    let a: Affine = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]];
    for interp in [Interpolation::Linear, Interpolation::Cubic] {
        let mut out = Array2::zeros((7, 9));
        warp_affine(src.view(), &a, interp, Fill::Value(0.0), out.view_mut()).unwrap();
        assert_eq!(out, src);
    }
}

#[test]
fn both_kernels_reproduce_a_linear_ramp_inside() {
    // Keys and bilinear interpolation are exact for linear functions away from the edge.
    let src = ramp(32, 40);
    let a: Affine = [[0.9, 0.1, 3.3], [-0.05, 1.02, 2.7]];
    for interp in [Interpolation::Linear, Interpolation::Cubic] {
        let mut out = Array2::zeros((20, 20));
        warp_affine(
            src.view(),
            &a,
            interp,
            Fill::Value(f64::NAN),
            out.view_mut(),
        )
        .unwrap();
        for ((y, x), v) in out.indexed_iter() {
            let sx = 0.9 * x as f64 + 0.1 * y as f64 + 3.3;
            let sy = -0.05 * x as f64 + 1.02 * y as f64 + 2.7;
            let expect = 0.25 * sx - 0.5 * sy + 3.0;
            assert!(
                (v - expect).abs() < 1e-9,
                "{interp:?} at ({x},{y}): {v} vs {expect}"
            );
        }
    }
}

#[test]
fn outside_samples_take_the_mean() {
    let src = ramp(8, 8);
    let m = mean(src.view());
    let a: Affine = [[1.0, 0.0, 100.0], [0.0, 1.0, 0.0]];
    let mut out = Array2::zeros((8, 8));
    warp_affine(
        src.view(),
        &a,
        Interpolation::Cubic,
        Fill::Mean,
        out.view_mut(),
    )
    .unwrap();
    assert!(out.iter().all(|v| (v - m).abs() < 1e-12));
}

#[test]
fn single_pixel_and_single_row_images_work() {
    let src = Array2::from_elem((1, 1), 5.0f32);
    let a: Affine = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]];
    let mut out = Array2::zeros((3, 3));
    warp_affine(
        src.view(),
        &a,
        Interpolation::Cubic,
        Fill::Value(1.0),
        out.view_mut(),
    )
    .unwrap();
    assert_eq!(out[[0, 0]], 5.0);
    assert_eq!(out[[1, 1]], 1.0);
    let row = Array2::from_shape_fn((1, 5), |(_, x)| x as f32);
    let a: Affine = [[1.0, 0.0, 0.5], [0.0, 1.0, 0.0]];
    let mut out = Array2::zeros((1, 4));
    warp_affine(
        row.view(),
        &a,
        Interpolation::Linear,
        Fill::Value(-1.0),
        out.view_mut(),
    )
    .unwrap();
    assert_eq!(out.row(0).to_vec(), vec![0.5, 1.5, 2.5, 3.5]);
}

#[test]
fn bad_arguments_are_errors_not_panics() {
    let src = Array2::<f32>::zeros((0, 4));
    let a: Affine = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]];
    let mut out = Array2::zeros((2, 2));
    assert!(warp_affine(
        src.view(),
        &a,
        Interpolation::Linear,
        Fill::Mean,
        out.view_mut()
    )
    .is_err());
    let src = Array2::<f32>::zeros((3, 4));
    let bad: Affine = [[f64::NAN, 0.0, 0.0], [0.0, 1.0, 0.0]];
    assert!(warp_affine(
        src.view(),
        &bad,
        Interpolation::Linear,
        Fill::Mean,
        out.view_mut()
    )
    .is_err());
    assert!(Interpolation::from_order(2).is_err());
}

/// Small deterministic generator (xorshift64*), uniform in [0, 1).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }
    fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.next()
    }
}

/// The per-pixel general path everywhere (the pre-optimisation algorithm): the reference
/// the row-split, scalar-interior and SIMD loops are checked against.
fn general<T: Sample>(
    src: &Array2<T>,
    a: &Affine,
    interp: Interpolation,
    fill: T,
    shape: (usize, usize),
) -> Array2<T> {
    let (ny, nx) = src.dim();
    let source = Source {
        data: src.as_slice().unwrap(),
        nx,
        ny,
    };
    let (x_max, y_max) = ((nx - 1) as f64, (ny - 1) as f64);
    Array2::from_shape_fn(shape, |(y, x)| {
        let yf = y as f64;
        let map = RowMap {
            ax: a[0][0],
            bx: a[0][1] * yf + a[0][2],
            ay: a[1][0],
            by: a[1][1] * yf + a[1][2],
            rx: 0.0,
            ry: 0.0,
        };
        let (sx, sy) = map.at(x as f64);
        if sx >= -EDGE_TOLERANCE
            && sy >= -EDGE_TOLERANCE
            && sx <= x_max + EDGE_TOLERANCE
            && sy <= y_max + EDGE_TOLERANCE
        {
            let (sx, sy) = (sx.clamp(0.0, x_max), sy.clamp(0.0, y_max));
            match interp {
                Interpolation::Linear => source.linear(sx, sy),
                Interpolation::Cubic => source.cubic(sx, sy),
            }
        } else {
            fill
        }
    })
}

/// Maps of every kind the kernel meets: near-identity (magnification corrections, where the
/// SIMD loops take their contiguous fast path), rotations, flips, zoom in and out.
fn test_maps(rng: &mut Rng, ny: usize, nx: usize) -> Vec<Affine> {
    let (cx, cy) = (nx as f64 / 2.0, ny as f64 / 2.0);
    let about_centre = |d: [[f64; 2]; 2]| -> Affine {
        [
            [d[0][0], d[0][1], cx - d[0][0] * cx - d[0][1] * cy],
            [d[1][0], d[1][1], cy - d[1][0] * cx - d[1][1] * cy],
        ]
    };
    let mut maps = vec![
        about_centre([[1.0058, 0.0101], [0.0093, 0.9956]]),
        about_centre([[0.9942, -0.0101], [-0.0093, 1.0044]]),
        [[1.0, 0.0, 0.25], [0.0, 1.0, -0.5]],
        [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]],
        about_centre([[-1.0, 0.0], [0.0, 1.0]]),
        about_centre([[0.0, 1.0], [-1.0, 0.0]]),
        about_centre([[3.1, 0.2], [-0.1, 2.9]]),
        about_centre([[0.31, 0.0], [0.0, 0.27]]),
        // Steeper than SIMD_MAX_STEP: scalar loops only.
        [[23.0, 0.5, 2.0], [-0.4, 19.0, 1.0]],
    ];
    for _ in 0..6 {
        let th = rng.uniform(-3.2, 3.2);
        let s = rng.uniform(0.5, 2.0);
        let (c, sn) = (th.cos() * s, th.sin() * s);
        maps.push([
            [
                c + rng.uniform(-0.05, 0.05),
                -sn,
                rng.uniform(-10.0, nx as f64),
            ],
            [
                sn,
                c + rng.uniform(-0.05, 0.05),
                rng.uniform(-10.0, ny as f64),
            ],
        ]);
    }
    maps
}

fn random_image(rng: &mut Rng, ny: usize, nx: usize) -> Array2<f64> {
    Array2::from_shape_fn((ny, nx), |_| rng.uniform(-1.0, 1.0))
}

#[test]
fn scalar_fast_path_is_bit_identical_to_the_general_path() {
    let mut rng = Rng(0x1234_5678_9abc_def1);
    for &(ny, nx) in &[(1, 1), (1, 7), (2, 2), (3, 5), (4, 4), (17, 33), (64, 80)] {
        let img = random_image(&mut rng, ny, nx);
        let img32 = img.mapv(|v| v as f32);
        for a in test_maps(&mut rng, ny, nx) {
            for interp in [Interpolation::Linear, Interpolation::Cubic] {
                let shape = (ny + 3, nx + 5);
                let mut out = Array2::from_elem(shape, f64::NAN);
                warp_affine_with(
                    img.view(),
                    &a,
                    interp,
                    Fill::Value(-3.0),
                    out.view_mut(),
                    &on(Isa::Scalar),
                )
                .unwrap();
                assert_eq!(
                    out,
                    general(&img, &a, interp, -3.0, shape),
                    "{ny}x{nx} {a:?} {interp:?}"
                );
                // f64 never takes the SIMD loops: bit-identical on every instruction set,
                // with and without streaming stores.
                for isa in Isa::available() {
                    for stream in [false, true] {
                        let mut out2 = Array2::from_elem(shape, f64::NAN);
                        let opts = WarpOptions { stream, ..on(isa) };
                        warp_affine_with(
                            img.view(),
                            &a,
                            interp,
                            Fill::Value(-3.0),
                            out2.view_mut(),
                            &opts,
                        )
                        .unwrap();
                        assert_eq!(out, out2, "{isa:?} stream={stream}");
                    }
                }
                let mut out32 = Array2::from_elem(shape, f32::NAN);
                warp_affine_with(
                    img32.view(),
                    &a,
                    interp,
                    Fill::Value(-3.0),
                    out32.view_mut(),
                    &on(Isa::Scalar),
                )
                .unwrap();
                assert_eq!(out32, general(&img32, &a, interp, -3.0f32, shape));
            }
        }
    }
}

#[test]
fn every_isa_matches_the_general_path_and_scalar() {
    let mut rng = Rng(0x0bad_5eed_1234_5678);
    for &(ny, nx) in &[(2, 9), (5, 12), (9, 40), (70, 150), (129, 257)] {
        let img = random_image(&mut rng, ny, nx).mapv(|v| v as f32);
        for a in test_maps(&mut rng, ny, nx) {
            for interp in [Interpolation::Linear, Interpolation::Cubic] {
                let shape = (ny + 2, nx + 11);
                let want = general(&img, &a, interp, 7.0, shape);
                let mut scalar = Array2::from_elem(shape, f32::NAN);
                warp_affine_with(
                    img.view(),
                    &a,
                    interp,
                    Fill::Value(7.0),
                    scalar.view_mut(),
                    &on(Isa::Scalar),
                )
                .unwrap();
                // The scalar path is the general path, bit for bit.
                assert_eq!(scalar, want, "{ny}x{nx} {a:?} {interp:?}");
                // Fill::Mean (outside columns written after the fused pass) = the general path
                // filled with `mean`, bit for bit, streamed or not, for taller and shorter
                // outputs than the source (the fused row sums cover every source row once).
                for (shape_m, stream) in [(shape, false), ((ny / 2 + 1, nx + 3), true)] {
                    let m = mean(img.view()) as f32;
                    let mut got = Array2::from_elem(shape_m, f32::NAN);
                    let opts = WarpOptions {
                        stream,
                        ..on(Isa::Scalar)
                    };
                    warp_affine_with(img.view(), &a, interp, Fill::Mean, got.view_mut(), &opts)
                        .unwrap();
                    assert_eq!(got, general(&img, &a, interp, m, shape_m), "mean {a:?}");
                }
                for isa in Isa::available() {
                    let mut out = Array2::from_elem(shape, f32::NAN);
                    warp_affine_with(
                        img.view(),
                        &a,
                        interp,
                        Fill::Value(7.0),
                        out.view_mut(),
                        &on(isa),
                    )
                    .unwrap();
                    for ((y, x), (g, w)) in out
                        .indexed_iter()
                        .zip(scalar.iter())
                        .map(|((i, g), w)| (i, (g, w)))
                    {
                        // Tolerance for the SIMD loops (f32 lane positions ~1e-6 px, FMA
                        // reordering): inputs in [-1, 1], so 1e-5 absolute, well inside the
                        // Python tests' 2e-5 · max|img| for f32.
                        assert!(
                            (g - w).abs() <= 1e-5,
                            "{isa:?} {ny}x{nx} {a:?} {interp:?} at ({y},{x}): {g} vs {w}"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn simd_loops_run_and_agree_with_the_scalar_interior() {
    // Direct check of both SIMD loops (and of their contiguous and gather branches) on every
    // instruction set the CPU has; Isa::Scalar must decline (return 0).
    let (ny, nx) = (300, 300);
    let mut rng = Rng(42);
    let img = random_image(&mut rng, ny, nx).mapv(|v| v as f32);
    let src = Source {
        data: img.as_slice().unwrap(),
        nx,
        ny,
    };
    let maps = [
        RowMap {
            ax: 1.0058,
            bx: 20.3,
            ay: 0.0093,
            by: 30.7,
            rx: 0.0,
            ry: 0.0,
        },
        RowMap {
            ax: 0.7,
            bx: 20.3,
            ay: -0.6,
            by: 250.2,
            rx: 0.0,
            ry: 0.0,
        },
    ];
    for isa in Isa::available() {
        let simd = isa != Isa::Scalar;
        for map in &maps {
            let mut a = vec![0.0f32; 200];
            let mut b = vec![0.0f32; 200];
            let done = Linear::interior_simd(isa, &src, map, 3, &mut a);
            Linear::interior(&src, map, 3 + done, &mut a[done..]);
            Linear::interior(&src, map, 3, &mut b);
            assert_eq!(done, if simd { 200 } else { 0 }, "{isa:?}");
            assert!(a.iter().zip(&b).all(|(p, q)| (p - q).abs() < 1e-5));
            let done = Cubic::interior_simd(isa, &src, map, 3, &mut a);
            Cubic::interior(&src, map, 3 + done, &mut a[done..]);
            Cubic::interior(&src, map, 3, &mut b);
            assert_eq!(done, if simd { 200 } else { 0 }, "{isa:?}");
            assert!(a.iter().zip(&b).all(|(p, q)| (p - q).abs() < 1e-5));
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[test]
fn avx2_paths_each_run_and_agree_with_the_scalar_interior() {
    // Magnification-like maps whose rows step one source column (a > 1 and a < 1) or one
    // source row (a_y of either sign) every ~30-50 pixels: the AVX2 interior must take its
    // fast path, its re-anchored fast path and its one-step path (`step8`, each direction),
    // and agree with the exact scalar interior everywhere.
    if Isa::Avx2Fma.effective() != Isa::Avx2Fma {
        return; // no AVX2 + FMA on this CPU: nothing to compare
    }
    use super::avx2::PATHS;
    let (ny, nx) = (120, 1100);
    let mut rng = Rng(5);
    let img = random_image(&mut rng, ny, nx).mapv(|v| v as f32);
    let src = Source {
        data: img.as_slice().unwrap(),
        nx,
        ny,
    };
    let row = |ax: f64, ay: f64| RowMap {
        ax,
        bx: 20.37,
        ay,
        by: 50.61,
        rx: 0.0,
        ry: 0.0,
    };
    for (ax, ay) in [
        (1.03, 0.0),
        (0.97, 0.0),
        (1.0, 0.02),
        (1.0, -0.02),
        (1.0058, 0.0093),
        (0.9956, -0.0101),
    ] {
        let map = row(ax, ay);
        let (mut a, mut b) = (vec![0.0f32; 1000], vec![0.0f32; 1000]);
        for cubic in [false, true] {
            PATHS.with(|p| p.set([0; 3]));
            let done = if cubic {
                let done = Cubic::interior_simd(Isa::Avx2Fma, &src, &map, 5, &mut a);
                Cubic::interior(&src, &map, 5 + done, &mut a[done..]);
                Cubic::interior(&src, &map, 5, &mut b);
                done
            } else {
                let done = Linear::interior_simd(Isa::Avx2Fma, &src, &map, 5, &mut a);
                Linear::interior(&src, &map, 5 + done, &mut a[done..]);
                Linear::interior(&src, &map, 5, &mut b);
                done
            };
            assert_eq!(done, 1000);
            let paths = PATHS.with(|p| p.get());
            assert_eq!(paths.iter().sum::<u64>(), 125, "{paths:?}");
            // Every step of the row (a column or row step) costs one one-step group; the
            // others are fast; no group needs the general path on these maps.
            let steps = (1000.0 * ((ax - 1.0).abs() + ay.abs())) as u64;
            assert!(paths[0] >= 125 - steps - 2, "{ax} {ay}: {paths:?}");
            assert!(
                paths[1] + 2 >= steps && paths[1] <= steps + 1,
                "{ax} {ay}: {paths:?}"
            );
            assert_eq!(paths[2], 0, "{ax} {ay}: {paths:?}");
            let worst = a
                .iter()
                .zip(&b)
                .map(|(p, q)| (p - q).abs())
                .fold(0.0, f32::max);
            assert!(worst <= 1e-5, "{ax} {ay} cubic={cubic}: {worst}");
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[test]
fn avx2_keys8_matches_interp_keys_weights() {
    if Isa::Avx2Fma.effective() != Isa::Avx2Fma {
        return; // no AVX2 + FMA on this CPU: nothing to compare
    }
    use std::arch::x86_64::{_mm256_loadu_ps, _mm256_storeu_ps};
    for k in 0..64 {
        let t: [f32; 8] = std::array::from_fn(|l| (8 * k + l) as f32 / 512.0);
        // SAFETY: AVX2 + FMA present (checked above); 8-float arrays for the loads/stores.
        let w = unsafe {
            let w = super::avx2::keys8(_mm256_loadu_ps(t.as_ptr()));
            let mut out = [[0.0f32; 8]; 4];
            for (o, v) in out.iter_mut().zip(w) {
                _mm256_storeu_ps(o.as_mut_ptr(), v);
            }
            out
        };
        for (l, &tl) in t.iter().enumerate() {
            let want = keys_weights(tl);
            for j in 0..4 {
                // FMA reordering: within a few f32 ulps of weights of magnitude <= 1.
                assert!(
                    (w[j][l] - want[j]).abs() <= 2.5e-7,
                    "t={tl} j={j}: {} vs {}",
                    w[j][l],
                    want[j]
                );
            }
        }
    }
}

#[test]
fn scan_plan_partitions_the_source_rows() {
    let mut rng = Rng(11);
    for _ in 0..500 {
        let a: Affine = [
            [
                rng.uniform(-2.0, 2.0),
                rng.uniform(-2.0, 2.0),
                rng.uniform(-50.0, 50.0),
            ],
            [
                rng.uniform(-0.5, 0.5),
                rng.uniform(-3.0, 3.0),
                rng.uniform(-80.0, 80.0),
            ],
        ];
        let (w, h, ny) = (
            1 + (rng.next() * 90.0) as usize,
            1 + (rng.next() * 90.0) as usize,
            1 + (rng.next() * 90.0) as usize,
        );
        let plan = ScanPlan::new(&a, 1.0, w, h, ny);
        assert_eq!(plan.start(0), 0);
        assert_eq!(plan.start(h), ny);
        for y in 0..h {
            assert!(plan.start(y) <= plan.start(y + 1), "{a:?} {y}");
        }
    }
}

#[test]
fn fused_check_finds_bad_pixels_anywhere() {
    let (ny, nx) = (37, 53);
    let a: Affine = [[1.0058, 0.0101, -0.3], [0.0093, 0.9956, 0.2]];
    for isa in Isa::available() {
        for out_shape in [(ny, nx), (5, 7), (80, 20), (1, 1)] {
            for (y, x, v) in [(0, 0, f32::NAN), (36, 52, f32::INFINITY), (17, 3, 2e30)] {
                let mut img = Array2::from_shape_fn((ny, nx), |(y, x)| (x + y) as f32);
                let opts = WarpOptions {
                    check_limit: Some(1e30),
                    ..on(isa)
                };
                let mut out = Array2::zeros(out_shape);
                let ok = warp_affine_with(
                    img.view(),
                    &a,
                    Interpolation::Cubic,
                    Fill::Value(0.0),
                    out.view_mut(),
                    &opts,
                );
                assert!(ok.is_ok());
                img[[y, x]] = v;
                let err = warp_affine_with(
                    img.view(),
                    &a,
                    Interpolation::Linear,
                    Fill::Value(0.0),
                    out.view_mut(),
                    &opts,
                )
                .unwrap_err();
                assert!(err.to_string().contains("image"), "{err}");
                assert!(err.to_string().contains("1 pixel(s)"), "{err}");
            }
        }
    }
    // Without a limit nothing is checked.
    let img = Array2::from_elem((4, 4), f32::NAN);
    let mut out = Array2::zeros((4, 4));
    let a: Affine = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]];
    warp_affine(
        img.view(),
        &a,
        Interpolation::Linear,
        Fill::Value(0.0),
        out.view_mut(),
    )
    .unwrap();
}

#[test]
fn interior_range_is_sound_and_nearly_maximal() {
    let mut rng = Rng(7);
    for _ in 0..2000 {
        let map = RowMap {
            ax: rng.uniform(-3.0, 3.0) * if rng.next() < 0.1 { 0.0 } else { 1.0 },
            bx: rng.uniform(-50.0, 150.0),
            ay: rng.uniform(-3.0, 3.0) * if rng.next() < 0.1 { 0.0 } else { 1.0 },
            by: rng.uniform(-50.0, 150.0),
            rx: 0.0,
            ry: 0.0,
        };
        let (lo, hx, hy) = (1.0, 97.0, 61.0);
        let width = 1 + (rng.next() * 120.0) as usize;
        let (xs, xe) = interior_range(&map, lo, hx, hy, width);
        let ok = |x: usize| {
            let (sx, sy) = map.at(x as f64);
            lo <= sx && sx < hx && lo <= sy && sy < hy
        };
        assert!(xs <= xe && xe <= width);
        assert!((xs..xe).all(ok), "{xs}..{xe} not all interior");
        let missed = (0..width)
            .filter(|&x| ok(x) && !(xs..xe).contains(&x))
            .count();
        assert!(missed <= 2, "missed {missed} interior columns");
    }
}

#[test]
fn mean_of_strided_and_contiguous_views_agree() {
    let img = Array2::from_shape_fn((301, 257), |(y, x)| ((x * 7 + y * 13) % 101) as f32 - 40.0);
    let naive = img.iter().map(|&v| v as f64).sum::<f64>() / img.len() as f64;
    assert!((mean(img.view()) - naive).abs() < 1e-12);
    let t = img.t();
    assert!((mean(t) - naive).abs() < 1e-12);
    let sl = img.slice(ndarray::s![..;2, 3..]);
    let naive_sl = sl.iter().map(|&v| v as f64).sum::<f64>() / sl.len() as f64;
    assert!((mean(sl) - naive_sl).abs() < 1e-12);
}

#[test]
fn stack_is_each_image_warped_with_its_own_mean() {
    let mut rng = Rng(99);
    let stack = ndarray::Array3::from_shape_fn((5, 33, 41), |(k, _, _)| {
        rng.uniform(-1.0, 1.0) as f32 + k as f32
    });
    let a: Affine = [[1.0058, 0.0101, -2.0], [0.0093, 0.9956, 1.5]];
    for interp in [Interpolation::Linear, Interpolation::Cubic] {
        let mut out = ndarray::Array3::from_elem((5, 30, 44), f32::NAN);
        warp_affine_stack(stack.view(), &a, interp, Fill::Mean, out.view_mut()).unwrap();
        for k in 0..5 {
            let mut one = Array2::from_elem((30, 44), f32::NAN);
            warp_affine(
                stack.index_axis(Axis(0), k),
                &a,
                interp,
                Fill::Mean,
                one.view_mut(),
            )
            .unwrap();
            assert_eq!(out.index_axis(Axis(0), k), one);
            // Column 43 maps outside (x ≈ 43 > 40): each image's own mean.
            let m = mean(stack.index_axis(Axis(0), k)) as f32;
            assert_eq!(out[[k, 5, 43]], m);
        }
    }
    let mut wrong = ndarray::Array3::<f32>::zeros((4, 30, 44));
    assert!(warp_affine_stack(
        stack.view(),
        &a,
        Interpolation::Linear,
        Fill::Mean,
        wrong.view_mut()
    )
    .is_err());
}

#[test]
fn any_outside_by_bits_matches_the_float_comparison() {
    fn naive<T: Sample>(s: &[T], limit: T) -> bool {
        s.iter().any(|v| v.is_nan() || v.abs() > limit)
    }
    let specials32 = [
        0.0f32,
        -0.0,
        1e-45,
        -1e-45,
        3.0,
        -3.0,
        3.0000002,
        -3.0000002,
        f32::NAN,
        -f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::MAX,
    ];
    let specials64: Vec<f64> = specials32.iter().map(|&v| v as f64).collect();
    for len in [1usize, 7, 8, 9, 17] {
        for k in 0..specials32.len() {
            // One special value among ordinary ones, at every lane and in the remainder.
            for at in 0..len {
                let mut a = vec![1.5f32; len];
                a[at] = specials32[k];
                assert_eq!(f32::any_outside(&a, 3.0), naive(&a, 3.0f32), "{a:?}");
                let mut b = vec![1.5f64; len];
                b[at] = specials64[k];
                assert_eq!(f64::any_outside(&b, 3.0), naive(&b, 3.0f64), "{b:?}");
            }
        }
    }
}
