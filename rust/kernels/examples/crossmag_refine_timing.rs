//! Timing of the forward model of the cross-magnification refinement without Python:
//! `cargo run --release -p emgeom-kernels --example crossmag_refine_timing`. Three images of
//! 1024², a 300 × 300 box, k = 4 samples per axis, all four derivatives (the refinement's size).
use emgeom_kernels::crossmag_refine::{area_predict_stack, Pose};
use ndarray::Array3;
use std::time::Instant;

fn main() {
    let n = 1024usize;
    let stack = Array3::from_shape_fn((3, n, n), |(m, y, x)| {
        let (x, y) = (x as f64, y as f64);
        ((x * 0.05).sin() * (y * 0.031).cos() * (1.0 + m as f64) + (x * 0.2 + y * 0.13).sin() * 0.3)
            as f32
    });
    let pose = Pose {
        tx: 150.3,
        ty: 149.6,
        s: 0.31,
        theta: 0.013,
    };
    for _ in 0..8 {
        let t = Instant::now();
        let out = area_predict_stack(
            stack.view(),
            pose,
            (512.0, 512.0),
            (0, 0, 300, 300),
            4,
            [true; 4],
        )
        .unwrap();
        let ta = t.elapsed();
        let t = Instant::now();
        let out1 = area_predict_stack(
            stack.view(),
            pose,
            (512.0, 512.0),
            (0, 0, 300, 300),
            4,
            [false; 4],
        )
        .unwrap();
        let tb = t.elapsed();
        println!(
            "area_predict_stack 3 x 300² k=4 derivs {ta:?} (sum {:.6}); no derivs {tb:?} (sum {:.6})",
            out.sum(),
            out1.sum()
        );
    }
}
