//! Ad-hoc timing of the warp kernel without Python: `cargo run --release --example warp_timing`.
use emgeom_kernels::warp::{warp_affine, Fill, Interpolation};
use ndarray::Array2;
use std::time::Instant;

fn main() {
    let n = 4096;
    let src = Array2::from_shape_fn((n, n), |(y, x)| ((x * 7 + y * 13) % 101) as f32);
    let c = n as f64 / 2.0;
    let d = [[1.0058, 0.0101], [0.0093, 0.9956]];
    let a = [
        [d[0][0], d[0][1], c - d[0][0] * c - d[0][1] * c],
        [d[1][0], d[1][1], c - d[1][0] * c - d[1][1] * c],
    ];
    let mut out = Array2::<f32>::zeros((n, n));
    for interp in [Interpolation::Linear, Interpolation::Cubic] {
        let mut best = f64::MAX;
        for _ in 0..5 {
            let t = Instant::now();
            warp_affine(src.view(), &a, interp, Fill::Value(0.0), out.view_mut()).unwrap();
            best = best.min(t.elapsed().as_secs_f64());
        }
        println!("{interp:?}: {:.1} ms", best * 1e3);
    }
}
