//! Ad-hoc timing of the bulk defocus kernel without Python:
//! `cargo run --release --example defocus_timing`.
//!
//! Issue 3's case: 1e6 particles × 41 tilts into a preallocated float32 output (164 MB), on
//! every instruction set the CPU has, on all cores and on one thread, next to the memory-write
//! floors (a plain fill and a memcpy of the same output). Moved here from an `#[ignore]` test in
//! `src/defocus.rs` (issue 16); the compute-only / stream-copy-only split of that test used
//! private items and is not repeated.
use emgeom_kernels::defocus::particle_defocus_with;
use emgeom_kernels::parallel::with_threads;
use emgeom_kernels::Isa;
use std::time::Instant;

/// Best wall time in ms of `reps` runs after one warm-up.
fn best_ms(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut best = f64::MAX;
    for _ in 0..reps {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed().as_secs_f64());
    }
    best * 1e3
}

fn main() {
    let (n, nt) = (1_000_000usize, 41usize);
    let pos: Vec<f64> = (0..3 * n).map(|i| (i % 9973) as f64 - 4986.0).collect();
    let coeffs: Vec<f64> = (0..4 * nt).map(|i| (i % 7) as f64 * 0.1 + 0.05).collect();
    let mut out = vec![0.0f32; n * nt];
    let src = vec![1.0f32; n * nt];
    println!(
        "{n} particles x {nt} tilts, f32 ({} MB)",
        (n * nt * 4) >> 20
    );
    for isa in Isa::available() {
        let mut run = || particle_defocus_with(&pos, &coeffs, nt, &mut out, isa).unwrap();
        let all = best_ms(10, &mut run);
        let one = with_threads(Some(1), || best_ms(10, &mut run)).unwrap();
        println!(
            "{}: all cores {all:.2} ms, one thread {one:.2} ms",
            isa.name()
        );
    }
    let fill = best_ms(10, || out.iter_mut().for_each(|v| *v = 1.0));
    let memcpy = best_ms(10, || out.copy_from_slice(&src));
    println!("floors (one thread): fill {fill:.2} ms, memcpy {memcpy:.2} ms");
}
