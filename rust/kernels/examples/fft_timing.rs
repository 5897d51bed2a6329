//! Timing of the 2-D real FFT without Python: `cargo run --release -p emgeom-kernels --example
//! fft_timing` (2048², forward and inverse, best of a few runs).
use emgeom_kernels::fft::plan;
use ndarray::Array2;
use std::time::Instant;

fn main() {
    let n = 2048;
    let img = Array2::from_shape_fn((n, n), |(y, x)| ((y * 31 + x * 17) % 97) as f32);
    let p = plan(n, n).unwrap();
    let _ = p.forward(img.view()).unwrap();
    for _ in 0..5 {
        let t = Instant::now();
        let f = p.forward(img.view()).unwrap();
        let t1 = t.elapsed();
        let t = Instant::now();
        let _ = p.inverse(f).unwrap();
        println!("{n}²: forward {t1:?} inverse {:?}", t.elapsed());
    }
}
