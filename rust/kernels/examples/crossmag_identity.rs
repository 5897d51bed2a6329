//! Bit-exact fingerprint of the cross-magnification kernels' outputs on fixed synthetic inputs:
//! `cargo run --release -p emgeom-kernels --example crossmag_identity`. One line per case
//! (an FNV-1a hash of the bits of every output value plus a few readable numbers); refactors
//! of the kernels must leave every line unchanged.
use emgeom_kernels::crossmag::{evaluate_points, prepare_reference, PatchParams, Reference};
use emgeom_kernels::crossmag_refine::{area_predict_stack, Pose};
use emgeom_kernels::warp::Affine;
use emgeom_kernels::xcorr::{Allowed, FilterParams, Method};
use ndarray::{Array2, Array3};

struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    fn u64(&mut self, v: u64) {
        for b in v.to_le_bytes() {
            self.0 ^= b as u64;
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
    fn f64(&mut self, v: f64) {
        self.u64(v.to_bits());
    }
    fn f32(&mut self, v: f32) {
        self.u64(v.to_bits() as u64);
    }
}

fn image(ny: usize, nx: usize, seed: u64) -> Array2<f32> {
    Array2::from_shape_fn((ny, nx), |(y, x)| {
        let (xf, yf) = (x as f64, y as f64);
        let h = ((x as u64 * 7919 + y as u64 * 104_729 + seed * 31) % 1009) as f64 / 1009.0;
        ((xf * 0.05).sin() * (yf * 0.031).cos() + (xf * 0.2 + yf * 0.13).sin() * 0.3 + h * 0.2)
            as f32
    })
}

fn ref_hash(r: &Reference) -> u64 {
    let mut h = Fnv::new();
    for v in r.spec.iter() {
        h.f32(v.re);
        h.f32(v.im);
    }
    let (wy, wx) = r.region;
    let px = r.pad.1;
    for i in 0..wy {
        for v in &r.filtered[i * px..i * px + wx] {
            h.f32(*v);
        }
    }
    for v in [
        r.valid_rows.0,
        r.valid_rows.1,
        r.valid_cols.0,
        r.valid_cols.1,
    ] {
        h.u64(v as u64);
    }
    h.0
}

fn main() {
    let img = image(300, 340, 1);
    let mov = Array2::from_shape_fn((150, 160), |(y, x)| img[[y + 70, x + 90]]);
    let rot: Affine = {
        let (c, s) = (0.05f64.cos() * 1.02, 0.05f64.sin() * 1.02);
        [[c, -s, 30.0], [s, c, 20.0]]
    };
    let shift: Affine = [[1.0, 0.0, 10.0], [0.0, 1.0, 5.0]];
    let edge: Affine = [[0.98, 0.0, 100.0], [0.0, 0.98, -30.0]];
    for method in [Method::XCorr, Method::Phase] {
        for (fname, f) in [
            ("serialem", FilterParams::SERIALEM),
            ("none", FilterParams::NONE),
        ] {
            for (origin, region, pad) in [
                ((0isize, 0isize), (300usize, 340usize), (384usize, 448usize)),
                ((-20, 15), (260, 300), (400, 400)),
            ] {
                let r =
                    prepare_reference(img.view(), origin, region, pad, 20.0, &f, method).unwrap();
                println!("ref {method:?} {fname} {origin:?}: {:016x}", ref_hash(&r));
                let (wy, wx) = region;
                for refine in [false, true] {
                    for direct in [None, Some((120.3, 95.7))] {
                        for score in [vec![], vec![rot, edge]] {
                            let p = PatchParams {
                                hy: 60,
                                hx: 70,
                                taper: 15.0,
                                allowed: Allowed::all(wy, wx),
                                n_peaks: 6,
                                min_sep: 12.0,
                                score_affines: score.clone(),
                                refine_ccc: refine,
                                direct,
                            };
                            for affs in [vec![shift], vec![rot, shift, edge]] {
                                let res = evaluate_points(&r, mov.view(), &affs, &p, true).unwrap();
                                let mut h = Fnv::new();
                                let mut first = (0.0, 0.0, 0.0);
                                for pr in &res {
                                    h.f64(pr.mask_sum);
                                    h.f64(pr.stats.mean);
                                    h.f64(pr.stats.std);
                                    h.u64(pr.stats.count as u64);
                                    for e in &pr.peaks {
                                        h.f64(e.x);
                                        h.f64(e.y);
                                        h.f32(e.value);
                                        h.f64(e.value_interp);
                                        h.f64(e.ccc);
                                        h.f64(e.overlap);
                                    }
                                    if let Some(m) = &pr.map {
                                        for v in m.iter() {
                                            h.f32(*v);
                                        }
                                    }
                                    if first.0 == 0.0 {
                                        if let Some(e) = pr.peaks.first() {
                                            first = (e.x, e.y, e.ccc);
                                        }
                                    }
                                }
                                println!(
                                    "eval {method:?} {fname} {origin:?} refine={refine} \
                                     direct={} score={} n={}: {:016x} first=({:.4}, {:.4}, {:.5})",
                                    direct.is_some(),
                                    score.len(),
                                    affs.len(),
                                    h.0,
                                    first.0,
                                    first.1,
                                    first.2
                                );
                            }
                        }
                    }
                }
            }
        }
    }
    // forward model of the refinement
    let fine = image(90, 110, 7);
    let stack = Array3::from_shape_fn((3, 90, 110), |(m, y, x)| {
        fine[[y, x]] * (1.0 + m as f32) - m as f32 * 0.1
    });
    let poses = [
        Pose {
            tx: 40.2,
            ty: 33.7,
            s: 0.43,
            theta: 0.02,
        },
        Pose {
            tx: 10.0,
            ty: -5.0,
            s: 1.7,
            theta: -0.6,
        },
    ];
    for (pi, pose) in poses.iter().enumerate() {
        for k in [1usize, 3, 4] {
            for derivs in [[true; 4], [false; 4], [false, true, false, true]] {
                for n in [1usize, 3] {
                    for box_ in [(20i64, 15i64, 37usize, 29usize), (-10, -8, 80, 70)] {
                        let v = stack.slice(ndarray::s![..n, .., ..]);
                        let out =
                            area_predict_stack(v, *pose, (55.0, 45.0), box_, k, derivs).unwrap();
                        let mut h = Fnv::new();
                        for d in out.shape() {
                            h.u64(*d as u64);
                        }
                        for x in out.iter() {
                            h.f64(*x);
                        }
                        println!(
                            "area pose{pi} k={k} d={derivs:?} n={n} box={box_:?}: {:016x} {:.6}",
                            h.0,
                            out.sum()
                        );
                    }
                }
            }
        }
    }
}
