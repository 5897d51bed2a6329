//! Phases of the translation correlation without Python: `cargo run --release -p
//! emgeom-kernels --example xcorr_timing` (2048², phase correlation, on 1 and 2 threads).
use emgeom_kernels::fft;
use emgeom_kernels::parallel::with_threads;
use emgeom_kernels::window::SeparableTaper;
use emgeom_kernels::xcorr::{
    correlate_translation, find_peaks_rolled, Allowed, FilterParams, Method,
};
use ndarray::Array2;
use std::time::Instant;

fn main() {
    let n = 2048;
    let a = Array2::from_shape_fn((n, n), |(y, x)| ((y * 31 + x * 17) % 97) as f32);
    for threads in [Some(1), Some(2)] {
        with_threads(threads, || {
            let plan = fft::plan(n, n).unwrap();
            for _ in 0..3 {
                let data = a.as_slice().unwrap();
                let t = Instant::now();
                let w = SeparableTaper::new(data, n, n, 0.0);
                let t1 = t.elapsed();
                let t = Instant::now();
                let mut fa = plan.forward_with(|y, buf| w.row(data, y, buf), true);
                let t2 = t.elapsed();
                let mut spare = fa.clone();
                let t = Instant::now();
                plan.inverse_columns_with(&mut fa, |_, _| {}, true);
                let t3 = t.elapsed();
                let t = Instant::now();
                let m = plan.inverse_rows(&fa, &mut spare, true);
                let t4 = t.elapsed();
                let m = Array2::from_shape_vec((n, n), m).unwrap();
                let t = Instant::now();
                let _ = find_peaks_rolled(m.view(), 1, 3.0, &Allowed::all(n, n), (n / 2, n / 2));
                let t5 = t.elapsed();
                let t = Instant::now();
                let _ = correlate_translation(
                    a.view(),
                    a.view(),
                    (n, n),
                    0.0,
                    &FilterParams::NONE,
                    Method::Phase,
                    1,
                    3.0,
                    -1.0,
                    false,
                )
                .unwrap();
                println!(
                    "threads {threads:?}: taper {t1:?} fwd {t2:?} invcols {t3:?} invrows {t4:?} \
                     peaks {t5:?} correlate_translation {:?}",
                    t.elapsed()
                );
            }
        })
        .unwrap();
    }
}
