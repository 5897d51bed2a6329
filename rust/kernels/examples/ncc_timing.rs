//! Timing of the masked NCC without Python: `cargo run --release -p emgeom-kernels --example
//! ncc_timing` (1024² reference, 800 × 950 moving image, without and with masks).
use emgeom_kernels::ncc::{masked_ncc, ncc_peaks};
use ndarray::{s, Array2};
use std::time::Instant;

fn main() {
    let n = 1024;
    let a = Array2::from_shape_fn((n, n), |(y, x)| ((y * 31 + x * 17) % 97) as f32);
    let b = a.slice(s![100..900, 50..1000]).to_owned();
    let mut ma = Array2::<f32>::ones((n, n));
    ma.slice_mut(s![300..500, 300..600]).fill(0.0);
    let mut mb = Array2::<f32>::ones(b.dim());
    mb.slice_mut(s![..100, ..100]).fill(0.0);
    let cases = [
        ("no mask", None, None),
        ("reference mask", Some(ma.view()), None),
        ("both masks", Some(ma.view()), Some(mb.view())),
    ];
    for (name, m1, m2) in cases {
        for _ in 0..3 {
            let t = Instant::now();
            let r = masked_ncc(a.view(), m1, b.view(), m2, 0.3).unwrap();
            let t1 = t.elapsed();
            let t = Instant::now();
            let _ = ncc_peaks(&r, 5, 3.0);
            println!("{name}: ncc {t1:?} peaks {:?}", t.elapsed());
        }
    }
}
