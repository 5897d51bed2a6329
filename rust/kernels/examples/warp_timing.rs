//! Ad-hoc timing of the warp kernel without Python: `cargo run --release --example warp_timing`.
//!
//! Issue 2's case: a 4096² float32 image corrected for anisotropic magnification about its
//! centre, fill = image mean. Prints the best of several runs on all cores and on one thread,
//! then (issue 16) the anisomag case with `fill = 0` on every instruction set, with and without
//! streaming stores and the fused source check, into a reused and into a freshly allocated
//! output (what Python does), next to the memory floors (a fresh copy, a copy into a reused
//! buffer). Optional arguments: image size (default 4096) and `quick` (skip the first table).
use emgeom_kernels::warp::{mean, warp_affine, warp_affine_with, Fill, Interpolation, WarpOptions};
use emgeom_kernels::Isa;
use ndarray::Array2;
use std::time::Instant;

/// CPU time of all threads of this process in seconds (Linux `/proc/self/task/*/schedstat`),
/// which other processes on a busy machine inflate much less than wall-clock time.
fn cpu_seconds() -> f64 {
    let mut ns = 0u64;
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for t in tasks.flatten() {
            if let Ok(s) = std::fs::read_to_string(t.path().join("schedstat")) {
                ns += s
                    .split_whitespace()
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
            }
        }
    }
    ns as f64 * 1e-9
}

extern "C" {
    // glibc (linked by std anyway): to give a fresh buffer transparent huge pages, as numpy
    // does for large arrays (MADV_HUGEPAGE = 14).
    fn madvise(addr: *mut std::ffi::c_void, len: usize, advice: i32) -> i32;
}

/// Run `f` on a freshly mapped `n × n` f32 buffer with huge pages requested (what a numpy
/// output is), then free it.
fn with_fresh_thp(n: usize, f: impl FnOnce(ndarray::ArrayViewMut2<f32>)) {
    let layout = std::alloc::Layout::from_size_align(n * n * 4, 2 << 20).unwrap();
    // SAFETY: non-zero size; the buffer is only written through the view (the kernel writes
    // every element), then freed with the same layout.
    unsafe {
        let p = std::alloc::alloc(layout);
        assert!(!p.is_null());
        madvise(p.cast(), layout.size(), 14);
        f(ndarray::ArrayViewMut2::from_shape_ptr(
            (n, n),
            p.cast::<f32>(),
        ));
        std::alloc::dealloc(p, layout);
    }
}

/// Best (wall ms, CPU ms) of `reps` runs after one warm-up.
fn best_ms(reps: usize, mut f: impl FnMut()) -> (f64, f64) {
    f();
    let (mut wall, mut cpu) = (f64::MAX, f64::MAX);
    for _ in 0..reps {
        let c = cpu_seconds();
        let t = Instant::now();
        f();
        wall = wall.min(t.elapsed().as_secs_f64());
        cpu = cpu.min(cpu_seconds() - c);
    }
    (wall * 1e3, cpu * 1e3)
}

fn main() {
    // Optional first argument: image size (default 4096, issue 2's case).
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(4096);
    let src = Array2::from_shape_fn((n, n), |(y, x)| ((x * 7 + y * 13) % 101) as f32);
    let c = n as f64 / 2.0;
    let d = [[1.0058, 0.0101], [0.0093, 0.9956]];
    let a = [
        [d[0][0], d[0][1], c - d[0][0] * c - d[0][1] * c],
        [d[1][0], d[1][1], c - d[1][0] * c - d[1][1] * c],
    ];
    let mut out = Array2::<f32>::zeros((n, n));
    let reps = (5 * 4096 * 4096 / (n * n)).clamp(5, 2000);
    println!(
        "{n}x{n} float32, rayon threads: {}",
        rayon::current_num_threads()
    );
    let pool1 = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let px = (n * n) as f64;
    let (t, c) = best_ms(5, || {
        std::hint::black_box(mean(src.view()));
    });
    println!("mean: {t:.1} ms wall, {c:.1} ms CPU");
    let (t, c) = best_ms(reps, || {
        std::hint::black_box(src.clone());
    });
    println!("floor: fresh copy {t:.2} ms wall ({c:.1} ms CPU)");
    let (t, c) = best_ms(reps, || {
        with_fresh_thp(n, |mut o| o.assign(&src));
    });
    println!("floor: copy into fresh huge pages (numpy-like) {t:.2} ms wall ({c:.1} ms CPU)");
    let mut dst = Array2::<f32>::zeros((n, n));
    let (t, c) = best_ms(reps, || dst.assign(&src));
    println!("floor: copy into a reused buffer {t:.2} ms wall ({c:.1} ms CPU)");
    for isa in Isa::available() {
        for interp in [Interpolation::Linear, Interpolation::Cubic] {
            for (stream, check) in [(false, false), (true, false), (false, true)] {
                let opts = WarpOptions {
                    isa,
                    stream,
                    check_limit: check.then_some(1e30),
                };
                let f = Fill::Value(0.0);
                let mut reuse =
                    || warp_affine_with(src.view(), &a, interp, f, out.view_mut(), &opts).unwrap();
                let (r, rc) = best_ms(reps, &mut reuse);
                let (fr, frc) = best_ms(reps, || {
                    with_fresh_thp(n, |o| {
                        warp_affine_with(src.view(), &a, interp, f, o, &opts).unwrap()
                    });
                });
                println!(
                    "fill0 {} {interp:?} stream={stream} check={check}: reused out {r:.2} ms \
                     ({rc:.1} CPU), fresh out {fr:.2} ms ({frc:.1} CPU)",
                    isa.name()
                );
            }
        }
    }
    if std::env::args().nth(2).as_deref() == Some("quick") {
        return;
    }
    // A sub-pixel translation walks the source row by row (the prefetch-friendly best case).
    let shift = [[1.0, 0.0, 0.3], [0.0, 1.0, 0.6]];
    let c2 = n as f64 / 2.0;
    let noshear = [
        [1.0058, 0.0, c2 - 1.0058 * c2],
        [0.0, 0.9956, c2 - 0.9956 * c2],
    ];
    let shearonly = [[1.0, 0.0101, -0.0101 * c2], [0.0093, 1.0, -0.0093 * c2]];
    for (name, m) in [
        ("anisomag", &a),
        ("translation", &shift),
        ("noshear", &noshear),
        ("shearonly", &shearonly),
    ] {
        for interp in [Interpolation::Linear, Interpolation::Cubic] {
            let mut run =
                || warp_affine(src.view(), m, interp, Fill::Mean, out.view_mut()).unwrap();
            let (all, all_cpu) = best_ms(reps, &mut run);
            let (one, one_cpu) = pool1.install(|| best_ms(reps, &mut run));
            println!(
                "{name} {interp:?}: all cores {all:.2} ms wall ({all_cpu:.1} ms CPU); one thread \
                 {one:.2} ms wall = {:.2} ns/pixel ({one_cpu:.1} ms CPU = {:.2} ns/pixel)",
                one * 1e6 / px,
                one_cpu * 1e6 / px
            );
        }
    }
}
