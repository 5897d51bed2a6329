//! Timing of the log-polar kernels without Python:
//! `cargo run --release -p emgeom-kernels --example logpolar_timing`.
//!
//! The case of `benches/bench_logpolar.py`: a 2048² image's half magnitude spectrum (`rfft2`
//! layout, 2048 × 1025) resampled to 1024 angles (180°) × 1024 log-radii, bilinear and bicubic,
//! on every available instruction set. The sides are timed in interleaved blocks of calls;
//! prints the median time per call. `LP_N` (size), `LP_ORDER` (1 or 3) and `LP_ISA`
//! (`scalar`, `avx2_fma`) select a case (for profiling).
use emgeom_kernels::logpolar::{log_polar_half_spectrum_on, log_polar_image_on, Grid, Order};
use emgeom_kernels::parallel::with_threads;
use emgeom_kernels::Isa;
use ndarray::Array2;
use std::time::Instant;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let n: usize = std::env::var("LP_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2048);
    // a smooth-plus-texture magnitude (the timing does not depend on the values)
    let mag = Array2::from_shape_fn((n, n / 2 + 1), |(y, x)| {
        1.0 + ((y * 31 + x * 17) % 97) as f32 / (1.0 + (x + y.min(n - y)) as f32)
    });
    let g = Grid {
        n_angle: 1024,
        n_radius: 1024,
        r_min: 1.0 / n as f64,
        r_max: 0.5,
    };
    // LP_IMAGE=1: the full-circle log-polar of an n² image (n angles × n/2 radii, radius 1 to
    // n/2), as `log_polar` in the bench
    let image = std::env::var_os("LP_IMAGE").is_some();
    let full = Array2::from_shape_fn((n, n), |(y, x)| {
        1.0 + ((y * 31 + x * 17) % 97) as f32
            / (1.0 + (x.abs_diff(n / 2) + y.abs_diff(n / 2)) as f32)
    });
    let gi = Grid {
        n_angle: n,
        n_radius: n / 2,
        r_min: 1.0,
        r_max: n as f64 / 2.0,
    };
    let (blocks, per) = (11, 4);
    for threads in [None, Some(1)] {
        let orders = match std::env::var("LP_ORDER").as_deref() {
            Ok("1") => vec![Order::Linear],
            Ok("3") => vec![Order::Cubic],
            _ => vec![Order::Linear, Order::Cubic],
        };
        for order in orders {
            // LP_ISA=avx2_fma (or scalar) times one instruction set only (for profiling)
            let only = std::env::var("LP_ISA").unwrap_or_default();
            let isas: Vec<Isa> = Isa::available()
                .into_iter()
                .filter(|i| only.is_empty() || i.name() == only)
                .collect();
            let mut wall = vec![Vec::new(); isas.len()];
            with_threads(threads, || {
                for b in 0..=blocks {
                    for (i, &isa) in isas.iter().enumerate() {
                        let t = Instant::now();
                        for _ in 0..per {
                            let r = if image {
                                // the full-circle case of the bench: the centred spectrum
                                let c = (n as f64 / 2.0, n as f64 / 2.0);
                                log_polar_image_on(full.view(), c, &gi, order, isa)
                            } else {
                                log_polar_half_spectrum_on(mag.view(), n, &g, order, false, isa)
                            };
                            std::hint::black_box(r.unwrap());
                        }
                        if b > 0 {
                            // block 0 warms up
                            wall[i].push(t.elapsed().as_secs_f64() * 1e3 / per as f64);
                        }
                    }
                }
            })
            .unwrap();
            for (i, isa) in isas.iter().enumerate() {
                println!(
                    "{} {n}² {order:?} threads {threads:?} {}: {:.2} ms",
                    if image { "image" } else { "half spectrum" },
                    isa.name(),
                    median(wall[i].clone())
                );
            }
        }
    }
}
