//! Bulk per-particle, per-tilt defocus (and projection) of tilt series in emgeom's canonical
//! model (design note `handedness.md` §5).
//!
//! For tilt `t` with rotation `R_t = Rz(ψ_t)·Ry(θ_t)·Rx(χ_t)` the depth of a point `p` (Å, from
//! the tomogram centre) is `z'_t = r3_t · p` (row 3 of `R_t`), and the defocus (Å, underfocus
//! positive) is `Δf_t(p) = Δf0_t − h·κ·z'_t(p)`. The Python layer folds everything that does not
//! depend on the particle into four numbers per tilt,
//!
//! ```text
//! coeffs[t] = (cx, cy, cz, b) = (−h·κ·r3_t, Δf0_t)      so that   out[n, t] = b + c · p_n
//! ```
//!
//! and this kernel evaluates one 3-term dot product per (particle, tilt), written straight into
//! a caller-provided, C-contiguous `(N, T)` output (float32 or float64) in parallel over blocks
//! of particles. The arithmetic is a plain multiply–add chain (no fused multiply-add), so the
//! result is bit-identical on every CPU and with or without the AVX2 code path.
//!
//! Speed: the work is ~4 flops per output value, so the kernel is bound by writing the output
//! (164 MB for 10⁶ × 41 float32). On x86-64 with AVX2 (detected at run time, no `target-cpu`
//! flags needed) and outputs ≥ 8 MB, float32 with ≥ 8 tilts is computed one aligned 8-lane
//! vector of the *flat* output at a time (a vector spans at most two particles: per-phase lane
//! tables of the coefficients plus a blend of the two particles' coordinates) and written with
//! non-temporal stores, which skip reading the destination lines; other large cases compute
//! rows into an L1 block and stream-copy it. Small outputs use ordinary stores (they may stay
//! in cache for the caller).

// `usize::is_multiple_of` needs Rust 1.87; the crate's MSRV is 1.85
#![allow(unknown_lints, clippy::manual_is_multiple_of)]

use crate::{Isa, KernelError};
use rayon::prelude::*;

/// Output element types of the kernel (`f32`, `f64`).
pub trait OutElem: Copy + Send + Sync + Default + 'static {
    fn from_f64(v: f64) -> Self;
}
impl OutElem for f32 {
    #[inline(always)]
    fn from_f64(v: f64) -> Self {
        v as f32
    }
}
impl OutElem for f64 {
    #[inline(always)]
    fn from_f64(v: f64) -> Self {
        v
    }
}

/// Number of particles per rayon task.
const TASK_PARTICLES: usize = 8192;
/// Size (elements) of the L1-resident staging block of the streaming path.
const STAGE_ELEMS: usize = 2048;
/// Outputs smaller than this (bytes) use ordinary stores (they may stay in cache for the caller).
const STREAM_MIN_BYTES: usize = 8 << 20;

fn check_coeffs(coeffs: &[f64], n_tilts: usize) -> Result<(), KernelError> {
    if coeffs.len() != 4 * n_tilts {
        return Err(KernelError::shape(
            "coeffs",
            format!("({n_tilts}, 4)"),
            format!("{} values", coeffs.len()),
        ));
    }
    if let Some(i) = coeffs.iter().position(|v| !v.is_finite()) {
        return Err(KernelError::value(
            "coeffs",
            format!("entry {i} is not finite ({})", coeffs[i]),
        ));
    }
    Ok(())
}

fn check_positions_shape(positions: &[f64], n: usize) -> Result<(), KernelError> {
    if positions.len() != 3 * n {
        return Err(KernelError::shape(
            "positions_a",
            format!("({n}, 3)"),
            format!("{} values", positions.len()),
        ));
    }
    Ok(())
}

/// Largest accepted |coordinate| (Å, 10 cm): keeps every product and sum finite in f32.
/// Real positions are below 1e6 Å.
pub const MAX_POSITION_A: f64 = 1e9;

/// Index (within `p`, a slice of whole `(x, y, z)` rows) of the first row with a coordinate
/// that is NaN, infinite or beyond [`MAX_POSITION_A`]. The kernels check each task's rows right
/// before computing them (still in cache), so validation costs no extra pass over memory and
/// runs in parallel; the Python layer therefore skips its own value pass on float64 input.
#[inline]
fn first_bad_row(p: &[f64]) -> Option<usize> {
    // a branch-free count vectorises; the slow search only runs when something is wrong
    let bad = p
        .iter()
        .filter(|v| v.is_nan() || v.abs() > MAX_POSITION_A)
        .count();
    if bad == 0 {
        None
    } else {
        p.iter()
            .position(|v| v.is_nan() || v.abs() > MAX_POSITION_A)
            .map(|i| i / 3)
    }
}

/// Records the lowest bad row seen by any task (deterministic whatever the scheduling).
struct BadRow(std::sync::atomic::AtomicUsize);

impl BadRow {
    fn new() -> Self {
        BadRow(std::sync::atomic::AtomicUsize::new(usize::MAX))
    }
    /// Check rows `p` (whose first row has global index `row0`); `false` if one is bad.
    fn check(&self, p: &[f64], row0: usize) -> bool {
        match first_bad_row(p) {
            None => true,
            Some(r) => {
                self.0
                    .fetch_min(row0 + r, std::sync::atomic::Ordering::Relaxed);
                false
            }
        }
    }
    fn result(self, positions: &[f64]) -> Result<(), KernelError> {
        let r = self.0.into_inner();
        if r == usize::MAX {
            return Ok(());
        }
        let p = &positions[3 * r..3 * r + 3];
        Err(KernelError::value(
            "positions_a",
            format!(
                "row {r} is ({}, {}, {}): coordinates must be finite (no NaN or inf) and \
                 within ±{MAX_POSITION_A:e} Å",
                p[0], p[1], p[2]
            ),
        ))
    }
}

/// Coefficients split into structure-of-arrays form in the computation type.
pub struct Soa<T> {
    cx: Vec<T>,
    cy: Vec<T>,
    cz: Vec<T>,
    b: Vec<T>,
}

fn soa<T: OutElem>(coeffs: &[f64]) -> Soa<T> {
    let n = coeffs.len() / 4;
    // padded with zeros to a multiple of 8 so the AVX2 path can load whole vectors
    let padded = n.div_ceil(8) * 8;
    let mut s = Soa {
        cx: Vec::with_capacity(padded),
        cy: Vec::with_capacity(padded),
        cz: Vec::with_capacity(padded),
        b: Vec::with_capacity(padded),
    };
    for c in coeffs.chunks_exact(4) {
        s.cx.push(T::from_f64(c[0]));
        s.cy.push(T::from_f64(c[1]));
        s.cz.push(T::from_f64(c[2]));
        s.b.push(T::from_f64(c[3]));
    }
    for v in [&mut s.cx, &mut s.cy, &mut s.cz, &mut s.b] {
        v.resize(padded, T::default());
    }
    s
}

/// One row: `row[t] = b[t] + cx[t]·x + cy[t]·y + cz[t]·z` (written so LLVM vectorises over t).
macro_rules! row_fn {
    ($name:ident, $t:ty) => {
        #[inline(always)]
        fn $name(s: &Soa<$t>, x: $t, y: $t, z: $t, row: &mut [$t]) {
            let n = row.len();
            let (cx, cy, cz, b) = (&s.cx[..n], &s.cy[..n], &s.cz[..n], &s.b[..n]);
            for t in 0..n {
                row[t] = b[t] + cx[t] * x + cy[t] * y + cz[t] * z;
            }
        }
    };
}
row_fn!(row_f32, f32);
row_fn!(row_f64, f64);

/// Element types the row evaluation is implemented for.
pub trait Kernel: OutElem {
    fn row(s: &Soa<Self>, p: &[f64], row: &mut [Self]);
    /// `Some` for `f32` (which has a hand-vectorised AVX2 path), `None` otherwise.
    fn f32_parts<'a>(
        s: &'a Soa<Self>,
        out: &'a mut [Self],
    ) -> Option<(&'a Soa<f32>, &'a mut [f32])>;
}
impl Kernel for f32 {
    #[inline(always)]
    fn row(s: &Soa<f32>, p: &[f64], row: &mut [f32]) {
        row_f32(s, p[0] as f32, p[1] as f32, p[2] as f32, row)
    }
    fn f32_parts<'a>(s: &'a Soa<f32>, out: &'a mut [f32]) -> Option<(&'a Soa<f32>, &'a mut [f32])> {
        Some((s, out))
    }
}
impl Kernel for f64 {
    #[inline(always)]
    fn row(s: &Soa<f64>, p: &[f64], row: &mut [f64]) {
        row_f64(s, p[0], p[1], p[2], row)
    }
    fn f32_parts<'a>(_: &'a Soa<f64>, _: &'a mut [f64]) -> Option<(&'a Soa<f32>, &'a mut [f32])> {
        None
    }
}

/// Plain path: compute every row in place.
#[inline(always)]
fn block_plain<T: Kernel>(s: &Soa<T>, pos: &[f64], out: &mut [T], n_tilts: usize) {
    for (p, row) in pos.chunks_exact(3).zip(out.chunks_exact_mut(n_tilts)) {
        T::row(s, p, row);
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::*;
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx2")]
    pub unsafe fn block_plain_avx2<T: Kernel>(s: &Soa<T>, pos: &[f64], out: &mut [T], nt: usize) {
        block_plain(s, pos, out, nt)
    }

    /// Copy `src` to `dst` with 32-byte non-temporal stores for the aligned body.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn stream_copy<T: Copy>(src: &[T], dst: &mut [T]) {
        debug_assert_eq!(src.len(), dst.len());
        let bytes = std::mem::size_of_val(src);
        let d = dst.as_mut_ptr() as *mut u8;
        let s = src.as_ptr() as *const u8;
        // head: up to the first 32-byte boundary of the destination (element-aligned, since
        // numpy aligns float arrays to their element size)
        let mis = (d as usize) & 31;
        let mut head = if mis == 0 { 0 } else { 32 - mis };
        if head > bytes {
            head = bytes;
        }
        std::ptr::copy_nonoverlapping(s, d, head);
        let mut off = head;
        while off + 32 <= bytes {
            let v = _mm256_loadu_si256(s.add(off) as *const __m256i);
            _mm256_stream_si256(d.add(off) as *mut __m256i, v);
            off += 32;
        }
        std::ptr::copy_nonoverlapping(s.add(off), d.add(off), bytes - off);
    }

    /// f32 rows with explicit 8-lane vectors over the (zero-padded) tilts. Each row's last
    /// vector may spill up to 7 lanes into the next row, which that row then overwrites, so
    /// `stage` needs 8 elements of slack after `rows·nt`. Same operation order as the scalar
    /// path (`((b + cx·x) + cy·y) + cz·z`, no FMA): bit-identical results.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn rows_f32_avx2(s: &Soa<f32>, pos: &[f64], stage: &mut [f32], nt: usize) {
        let nv = nt.div_ceil(8);
        let rows = pos.len() / 3;
        debug_assert!(stage.len() >= rows * nt + 8);
        let (cx, cy, cz, b) = (s.cx.as_ptr(), s.cy.as_ptr(), s.cz.as_ptr(), s.b.as_ptr());
        let dst = stage.as_mut_ptr();
        for r in 0..rows {
            let x = _mm256_set1_ps(*pos.get_unchecked(3 * r) as f32);
            let y = _mm256_set1_ps(*pos.get_unchecked(3 * r + 1) as f32);
            let z = _mm256_set1_ps(*pos.get_unchecked(3 * r + 2) as f32);
            let d = dst.add(r * nt);
            for v in 0..nv {
                let o = 8 * v;
                let mut acc = _mm256_add_ps(
                    _mm256_loadu_ps(b.add(o)),
                    _mm256_mul_ps(_mm256_loadu_ps(cx.add(o)), x),
                );
                acc = _mm256_add_ps(acc, _mm256_mul_ps(_mm256_loadu_ps(cy.add(o)), y));
                acc = _mm256_add_ps(acc, _mm256_mul_ps(_mm256_loadu_ps(cz.add(o)), z));
                _mm256_storeu_ps(d.add(o), acc);
            }
        }
    }

    /// Per-phase lane tables for the direct streaming path: for a vector whose first lane is
    /// tilt `t0`, lane `l` holds tilt `(t0 + l) mod nt`, and belongs to the next particle when
    /// `t0 + l >= nt` (mask lane all-ones). Needs `nt >= 8` (a vector spans at most 2 rows).
    pub struct PhaseTables {
        cx: Vec<[f32; 8]>,
        cy: Vec<[f32; 8]>,
        cz: Vec<[f32; 8]>,
        b: Vec<[f32; 8]>,
        m: Vec<[u32; 8]>,
    }

    pub fn phase_tables(s: &Soa<f32>, nt: usize) -> PhaseTables {
        let mut t = PhaseTables {
            cx: vec![],
            cy: vec![],
            cz: vec![],
            b: vec![],
            m: vec![],
        };
        for t0 in 0..nt {
            let mut cx = [0f32; 8];
            let (mut cy, mut cz, mut b, mut m) = ([0f32; 8], [0f32; 8], [0f32; 8], [0u32; 8]);
            for l in 0..8 {
                let k = t0 + l;
                let (tt, next) = if k >= nt { (k - nt, true) } else { (k, false) };
                cx[l] = s.cx[tt];
                cy[l] = s.cy[tt];
                cz[l] = s.cz[tt];
                b[l] = s.b[tt];
                m[l] = if next { u32::MAX } else { 0 };
            }
            t.cx.push(cx);
            t.cy.push(cy);
            t.cz.push(cz);
            t.b.push(b);
            t.m.push(m);
        }
        t
    }

    /// Direct path: every aligned 8-lane vector of the output is computed in registers and
    /// written with a non-temporal store (no staging copy); the unaligned head and the tail
    /// use the scalar formula (same operation order, same bits).
    #[target_feature(enable = "avx2")]
    pub unsafe fn block_direct_f32(
        s: &Soa<f32>,
        tab: &PhaseTables,
        pos: &[f64],
        out: &mut [f32],
        nt: usize,
    ) {
        let len = out.len();
        let rows = pos.len() / 3;
        let d = out.as_mut_ptr();
        let scalar = |e: usize| -> f32 {
            let (r, t) = (e / nt, e % nt);
            let (x, y, z) = (
                pos[3 * r] as f32,
                pos[3 * r + 1] as f32,
                pos[3 * r + 2] as f32,
            );
            s.b[t] + s.cx[t] * x + s.cy[t] * y + s.cz[t] * z
        };
        let mis = ((d as usize) & 31) / 4;
        let head = if mis == 0 { 0 } else { (8 - mis).min(len) };
        for e in 0..head {
            *d.add(e) = scalar(e);
        }
        let mut e = head;
        if e + 8 <= len {
            let mut r = e / nt;
            let mut t0 = e % nt;
            let load = |r: usize| -> (__m256, __m256, __m256) {
                if r < rows {
                    (
                        _mm256_set1_ps(*pos.get_unchecked(3 * r) as f32),
                        _mm256_set1_ps(*pos.get_unchecked(3 * r + 1) as f32),
                        _mm256_set1_ps(*pos.get_unchecked(3 * r + 2) as f32),
                    )
                } else {
                    (
                        _mm256_setzero_ps(),
                        _mm256_setzero_ps(),
                        _mm256_setzero_ps(),
                    )
                }
            };
            let (mut x0, mut y0, mut z0) = load(r);
            let (mut x1, mut y1, mut z1) = load(r + 1);
            while e + 8 <= len {
                let m = _mm256_castsi256_ps(_mm256_loadu_si256(
                    tab.m.as_ptr().add(t0) as *const __m256i
                ));
                let x = _mm256_blendv_ps(x0, x1, m);
                let y = _mm256_blendv_ps(y0, y1, m);
                let z = _mm256_blendv_ps(z0, z1, m);
                let mut acc = _mm256_add_ps(
                    _mm256_loadu_ps(tab.b.as_ptr().add(t0) as *const f32),
                    _mm256_mul_ps(_mm256_loadu_ps(tab.cx.as_ptr().add(t0) as *const f32), x),
                );
                acc = _mm256_add_ps(
                    acc,
                    _mm256_mul_ps(_mm256_loadu_ps(tab.cy.as_ptr().add(t0) as *const f32), y),
                );
                acc = _mm256_add_ps(
                    acc,
                    _mm256_mul_ps(_mm256_loadu_ps(tab.cz.as_ptr().add(t0) as *const f32), z),
                );
                _mm256_stream_ps(d.add(e), acc);
                e += 8;
                t0 += 8;
                if t0 >= nt {
                    t0 -= nt;
                    r += 1;
                    x0 = x1;
                    y0 = y1;
                    z0 = z1;
                    (x1, y1, z1) = load(r + 1);
                }
            }
        }
        for k in e..len {
            *d.add(k) = scalar(k);
        }
        _mm_sfence();
    }

    /// Streaming path: compute a few rows into an L1 block, then stream them out.
    #[target_feature(enable = "avx2")]
    pub unsafe fn block_stream_avx2<T: Kernel>(s: &Soa<T>, pos: &[f64], out: &mut [T], nt: usize) {
        let rows_per_stage = (STAGE_ELEMS / nt).max(1);
        let mut stage = vec![T::default(); rows_per_stage * nt + 8];
        for (p, o) in pos
            .chunks(3 * rows_per_stage)
            .zip(out.chunks_mut(rows_per_stage * nt))
        {
            let len = o.len();
            match T::f32_parts(s, &mut stage) {
                Some((sf, stf)) => rows_f32_avx2(sf, p, stf, nt),
                None => block_plain(s, p, &mut stage[..len], nt),
            }
            stream_copy(&stage[..len], o);
        }
        _mm_sfence();
    }
}

/// Evaluate `out[n, t] = coeffs[t,3] + coeffs[t,0..3] · positions[n, 0..3]`.
///
/// * `positions`: `(N, 3)` row-major, Å from the tomogram centre, `(x, y, z)`.
/// * `coeffs`: `(T, 4)` row-major: `(−h·κ·r3_t, Δf0_t)` (see module docs).
/// * `out`: `(N, T)` row-major, fully overwritten.
///
/// Every position must be finite and within ±[`MAX_POSITION_A`]; otherwise the error names the
/// first bad row and `out` is left partly written.
///
/// Runs on the current rayon pool (wrap in [`crate::parallel::with_threads`]) and on the
/// detected instruction set ([`particle_defocus_with`] chooses it).
pub fn particle_defocus<T: Kernel>(
    positions: &[f64],
    coeffs: &[f64],
    n_tilts: usize,
    out: &mut [T],
) -> Result<(), KernelError> {
    particle_defocus_with(positions, coeffs, n_tilts, out, Isa::detect())
}

/// [`particle_defocus`] on the instruction set `isa` (made [`Isa::effective`] first). Every
/// path evaluates `((b + cx·x) + cy·y) + cz·z` in the same order without FMA, so the results
/// are bit-identical on every instruction set.
pub fn particle_defocus_with<T: Kernel>(
    positions: &[f64],
    coeffs: &[f64],
    n_tilts: usize,
    out: &mut [T],
    isa: Isa,
) -> Result<(), KernelError> {
    if n_tilts == 0 {
        return Err(KernelError::value("coeffs", "need at least one tilt"));
    }
    check_coeffs(coeffs, n_tilts)?;
    if out.len() % n_tilts != 0 {
        return Err(KernelError::shape(
            "out",
            format!("(N, {n_tilts})"),
            format!("{} values", out.len()),
        ));
    }
    let n = out.len() / n_tilts;
    check_positions_shape(positions, n)?;
    if n == 0 {
        return Ok(());
    }
    let s = soa::<T>(coeffs);
    let stream = std::mem::size_of_val(out) >= STREAM_MIN_BYTES;
    // Isa::Avx2Fma implies AVX2 (all these paths need), once made effective.
    let avx2 = isa.effective() == Isa::Avx2Fma;
    // f32, >= 8 tilts, large output: per-phase lane tables for the direct streaming path
    #[cfg(target_arch = "x86_64")]
    let tables = if avx2 && stream && n_tilts >= 8 {
        let mut dummy: [T; 0] = [];
        T::f32_parts(&s, &mut dummy).map(|(sf, _)| x86::phase_tables(sf, n_tilts))
    } else {
        None
    };
    let bad = BadRow::new();
    pos_chunks(positions, out, n_tilts)
        .into_par_iter()
        .enumerate()
        .for_each(|(k, (p, o))| {
            if !bad.check(p, k * TASK_PARTICLES) {
                return;
            }
            #[cfg(target_arch = "x86_64")]
            {
                if avx2 {
                    // SAFETY: `avx2` is true only for an effective Isa::Avx2Fma: the CPU has AVX2.
                    unsafe {
                        if let Some(tab) = &tables {
                            if let Some((sf, of)) = T::f32_parts(&s, o) {
                                x86::block_direct_f32(sf, tab, p, of, n_tilts);
                                return;
                            }
                        }
                        if stream {
                            x86::block_stream_avx2(&s, p, o, n_tilts)
                        } else {
                            x86::block_plain_avx2(&s, p, o, n_tilts)
                        }
                    }
                    return;
                }
            }
            let _ = avx2;
            block_plain(&s, p, o, n_tilts)
        });
    bad.result(positions)
}

fn pos_chunks<'a, T>(
    positions: &'a [f64],
    out: &'a mut [T],
    n_tilts: usize,
) -> Vec<(&'a [f64], &'a mut [T])> {
    positions
        .chunks(3 * TASK_PARTICLES)
        .zip(out.chunks_mut(n_tilts * TASK_PARTICLES))
        .collect()
}

/// Image positions: `out[n, t, :] = R_t[0..2, :] · p_n + s_t` (Å from the image centre).
///
/// * `rows`: `(T, 8)` row-major: `(R_t[0,0..3], s_x, R_t[1,0..3], s_y)`.
/// * `out`: `(N, T, 2)` row-major, fully overwritten.
pub fn project(
    positions: &[f64],
    rows: &[f64],
    n_tilts: usize,
    out: &mut [f64],
) -> Result<(), KernelError> {
    if n_tilts == 0 || rows.len() != 8 * n_tilts {
        return Err(KernelError::shape(
            "rows",
            format!("({n_tilts}, 8) with at least one tilt"),
            format!("{} values", rows.len()),
        ));
    }
    if let Some(i) = rows.iter().position(|v| !v.is_finite()) {
        return Err(KernelError::value(
            "rows",
            format!("entry {i} is not finite"),
        ));
    }
    if out.len() % (2 * n_tilts) != 0 {
        return Err(KernelError::shape(
            "out",
            format!("(N, {n_tilts}, 2)"),
            format!("{} values", out.len()),
        ));
    }
    let n = out.len() / (2 * n_tilts);
    check_positions_shape(positions, n)?;
    let bad = BadRow::new();
    positions
        .par_chunks(3 * 1024)
        .zip(out.par_chunks_mut(2 * n_tilts * 1024))
        .enumerate()
        .for_each(|(k, (p, o))| {
            if !bad.check(p, k * 1024) {
                return;
            }
            for (pp, row) in p.chunks_exact(3).zip(o.chunks_exact_mut(2 * n_tilts)) {
                for (r, q) in rows.chunks_exact(8).zip(row.chunks_exact_mut(2)) {
                    q[0] = r[0] * pp[0] + r[1] * pp[1] + r[2] * pp[2] + r[3];
                    q[1] = r[4] * pp[0] + r[5] * pp[1] + r[6] * pp[2] + r[7];
                }
            }
        });
    bad.result(positions)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(pos: &[f64], coeffs: &[f64], nt: usize) -> Vec<f64> {
        let n = pos.len() / 3;
        let mut out = vec![0.0; n * nt];
        for i in 0..n {
            for t in 0..nt {
                let c = &coeffs[4 * t..4 * t + 4];
                out[i * nt + t] =
                    c[3] + c[0] * pos[3 * i] + c[1] * pos[3 * i + 1] + c[2] * pos[3 * i + 2];
            }
        }
        out
    }

    /// Canonical h=+1, θ=+60°: depth-only point (0,0,500) → z'=250 → 29750 (design T1).
    #[test]
    fn t1_depth_only() {
        let th = 60f64.to_radians();
        let h = 1.0;
        let coeffs = [h * th.sin(), 0.0, -h * th.cos(), 30000.0];
        let mut out = [0.0f64; 1];
        particle_defocus(&[0.0, 0.0, 500.0], &coeffs, 1, &mut out).unwrap();
        assert!((out[0] - 29750.0).abs() < 1e-9, "{}", out[0]);
        // x only (1000, 0, 0): z' = −866 → 30866 (design T2)
        particle_defocus(&[1000.0, 0.0, 0.0], &coeffs, 1, &mut out).unwrap();
        assert!((out[0] - (30000.0 + 1000.0 * th.sin())).abs() < 1e-9);
    }

    #[test]
    fn matches_naive_large_f32_and_f64() {
        // big enough to take the streaming path (> 8 MB) with an odd tilt count
        let nt = 41;
        let n = 60_000;
        let mut pos = Vec::with_capacity(3 * n);
        let mut state = 12345u64;
        let mut rnd = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
        };
        for _ in 0..3 * n {
            pos.push(5000.0 * rnd());
        }
        let coeffs: Vec<f64> = (0..4 * nt)
            .map(|i| if i % 4 == 3 { 30000.0 } else { rnd() })
            .collect();
        let want = naive(&pos, &coeffs, nt);
        let mut out64 = vec![0.0f64; n * nt];
        particle_defocus(&pos, &coeffs, nt, &mut out64).unwrap();
        for (a, b) in out64.iter().zip(&want) {
            assert!((a - b).abs() < 1e-8);
        }
        let mut out32 = vec![0.0f32; n * nt];
        particle_defocus(&pos, &coeffs, nt, &mut out32).unwrap();
        for (a, b) in out32.iter().zip(&want) {
            assert!((*a as f64 - b).abs() < 0.02, "{a} vs {b}");
        }
        // offset (misaligned) destination: every element still written
        let mut big = vec![-1.0f32; n * nt + 1];
        particle_defocus(&pos, &coeffs, nt, &mut big[1..]).unwrap();
        assert_eq!(big[0], -1.0);
        assert_eq!(&big[1..], &out32[..]);
    }

    /// The AVX2 streaming path (large outputs) and the plain path (small outputs) give the
    /// same bits: compare the first rows of a large run with a small run of the same rows.
    #[test]
    fn streaming_and_plain_paths_are_bit_identical() {
        for nt in [37usize, 5] {
            bit_identical(nt);
        }
    }

    fn bit_identical(nt: usize) {
        let n_big = 9_000_000 / (4 * nt) + 100; // > 8 MB of f32: streaming paths
        let pos: Vec<f64> = (0..3 * n_big)
            .map(|i| ((i * 7919) % 10007) as f64 - 5003.5)
            .collect();
        let coeffs: Vec<f64> = (0..4 * nt)
            .map(|i| {
                if i % 4 == 3 {
                    21234.5 + i as f64
                } else {
                    ((i * 31) % 17) as f64 / 17.0 - 0.5
                }
            })
            .collect();
        let mut big = vec![0.0f32; n_big * nt];
        particle_defocus(&pos, &coeffs, nt, &mut big).unwrap();
        let n_small = 1000;
        let mut small = vec![0.0f32; n_small * nt];
        particle_defocus(&pos[..3 * n_small], &coeffs, nt, &mut small).unwrap();
        assert_eq!(&big[..n_small * nt], &small[..]);
        // and the scalar formula in f32, element by element
        for i in 0..n_small {
            let (x, y, z) = (
                pos[3 * i] as f32,
                pos[3 * i + 1] as f32,
                pos[3 * i + 2] as f32,
            );
            for t in 0..nt {
                let c = &coeffs[4 * t..4 * t + 4];
                let want = c[3] as f32 + c[0] as f32 * x + c[1] as f32 * y + c[2] as f32 * z;
                assert_eq!(small[i * nt + t], want);
            }
        }
    }

    /// Every instruction set gives the scalar path's bits, on the streaming (large output),
    /// direct and plain paths, f32 and f64. (Timings: `examples/defocus_timing.rs`.)
    #[test]
    fn every_isa_is_bit_identical_to_scalar() {
        for (nt, n) in [(41usize, 60_000usize), (5, 500_000), (41, 300), (3, 10)] {
            let pos: Vec<f64> = (0..3 * n)
                .map(|i| ((i * 7919) % 10007) as f64 - 5003.5)
                .collect();
            let coeffs: Vec<f64> = (0..4 * nt)
                .map(|i| {
                    if i % 4 == 3 {
                        21234.5
                    } else {
                        ((i * 31) % 17) as f64 / 17.0 - 0.5
                    }
                })
                .collect();
            let mut want32 = vec![0.0f32; n * nt];
            let mut want64 = vec![0.0f64; n * nt];
            particle_defocus_with(&pos, &coeffs, nt, &mut want32, Isa::Scalar).unwrap();
            particle_defocus_with(&pos, &coeffs, nt, &mut want64, Isa::Scalar).unwrap();
            for isa in Isa::available() {
                let mut got32 = vec![0.0f32; n * nt];
                let mut got64 = vec![0.0f64; n * nt];
                particle_defocus_with(&pos, &coeffs, nt, &mut got32, isa).unwrap();
                particle_defocus_with(&pos, &coeffs, nt, &mut got64, isa).unwrap();
                assert!(got32 == want32, "{isa:?} nt={nt} n={n} f32");
                assert!(got64 == want64, "{isa:?} nt={nt} n={n} f64");
            }
        }
    }

    #[test]
    fn bad_input_is_an_error() {
        let mut out = [0.0f32; 2];
        assert!(particle_defocus(&[0.0, 0.0], &[0.0; 4], 1, &mut out).is_err());
        assert!(particle_defocus(&[0.0; 6], &[0.0; 3], 1, &mut out).is_err());
        assert!(
            particle_defocus(&[0.0, f64::NAN, 0.0, 0.0, 0.0, 0.0], &[0.0; 4], 1, &mut out).is_err()
        );
        assert!(particle_defocus(&[0.0; 6], &[0.0; 4], 0, &mut out).is_err());
        let mut empty: [f32; 0] = [];
        assert!(particle_defocus(&[], &[0.0; 4], 1, &mut empty).is_ok());
    }

    #[test]
    fn project_rotated_axis_t4() {
        // ψ = 85°, θ = 60°, p = (1000, 0, 0) → (43.6, 498.1) Å (design T4)
        let (ps, th) = (85f64.to_radians(), 60f64.to_radians());
        let r = [
            [ps.cos() * th.cos(), -ps.sin(), ps.cos() * th.sin()],
            [ps.sin() * th.cos(), ps.cos(), ps.sin() * th.sin()],
        ];
        let rows = [
            r[0][0], r[0][1], r[0][2], 0.0, r[1][0], r[1][1], r[1][2], 0.0,
        ];
        let mut out = [0.0; 2];
        project(&[1000.0, 0.0, 0.0], &rows, 1, &mut out).unwrap();
        assert!(
            (out[0] - 43.58).abs() < 0.01 && (out[1] - 498.10).abs() < 0.01,
            "{out:?}"
        );
    }

    /// Bad positions are found by the parallel per-task check: the lowest bad row is reported
    /// whichever task sees it first, for NaN, inf and |p| > MAX_POSITION_A alike.
    #[test]
    fn bad_rows_reported_lowest_first() {
        let nt = 41;
        let n = 3 * TASK_PARTICLES + 5;
        let coeffs: Vec<f64> = (0..4 * nt).map(|i| (i % 7) as f64).collect();
        let mut out = vec![0f32; n * nt];
        for (rows, want) in [
            (
                vec![
                    (2 * TASK_PARTICLES + 3, f64::NAN),
                    (TASK_PARTICLES + 1, f64::INFINITY),
                ],
                TASK_PARTICLES + 1,
            ),
            (vec![(n - 1, 2e9)], n - 1),
            (vec![(0, -f64::INFINITY), (n - 1, f64::NAN)], 0),
        ] {
            let mut pos = vec![1.0; 3 * n];
            for &(r, v) in &rows {
                pos[3 * r + 2] = v;
            }
            let e = particle_defocus(&pos, &coeffs, nt, &mut out).unwrap_err();
            assert!(e.to_string().contains(&format!("row {want} ")), "{e}");
            let mut proj = vec![0f64; n * nt * 2];
            let prow: Vec<f64> = (0..8 * nt).map(|i| i as f64).collect();
            let e = project(&pos, &prow, nt, &mut proj).unwrap_err();
            assert!(e.to_string().contains(&format!("row {want} ")), "{e}");
        }
        // the bound itself is accepted
        let pos = vec![MAX_POSITION_A; 3 * n];
        assert!(particle_defocus(&pos, &coeffs, nt, &mut out).is_ok());
        assert!(out.iter().all(|v| v.is_finite()));
    }
}
