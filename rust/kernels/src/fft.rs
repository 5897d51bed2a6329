//! 2-D real FFTs (f32) on `realfft`/`rustfft` with plans cached per shape.
//!
//! Layout of a spectrum: the forward transform of a real `(ny, nx)` image is returned
//! **transposed**, as a `(nx/2 + 1, ny)` complex array `spec[kx, ky]` (row = x frequency
//! `0..=nx/2`, column = y frequency `0..ny` in FFT order). Keeping the column transforms in
//! place avoids two transposes per correlation; every consumer in this crate (filters,
//! cross-power spectra, Fourier cropping) indexes it as `spec[[kx, ky]]`.
//!
//! Normalisation: [`Plan2::forward`] is unnormalised (`F(0) = Σ f`), [`Plan2::inverse`]
//! divides by `ny·nx`, so `inverse(forward(f)) = f`.
//!
//! Plans are built once per `(ny, nx)` and shared (thread-safe, `Arc`) through [`plan`]. Rows and
//! columns are transformed in parallel with rayon (scratch buffers per worker).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;
use realfft::{ComplexToReal, RealFftPlanner, RealToComplex};
use rustfft::num_complex::Complex32;
use rustfft::{Fft, FftPlanner};

use crate::KernelError;

/// Complex f32.
pub type C32 = Complex32;

/// Cached plans for one `(ny, nx)` real 2-D transform.
pub struct Plan2 {
    pub ny: usize,
    pub nx: usize,
    /// `nx / 2 + 1`
    pub nxc: usize,
    r2c: Arc<dyn RealToComplex<f32>>,
    c2r: Arc<dyn ComplexToReal<f32>>,
    col_fwd: Arc<dyn Fft<f32>>,
    col_inv: Arc<dyn Fft<f32>>,
}

struct Planners {
    real: RealFftPlanner<f32>,
    complex: FftPlanner<f32>,
    cache: HashMap<(usize, usize), Arc<Plan2>>,
}

fn planners() -> &'static Mutex<Planners> {
    static P: OnceLock<Mutex<Planners>> = OnceLock::new();
    P.get_or_init(|| {
        Mutex::new(Planners {
            real: RealFftPlanner::new(),
            complex: FftPlanner::new(),
            cache: HashMap::new(),
        })
    })
}

/// The (cached) plan for a real `(ny, nx)` transform. Sizes must be ≥ 1.
pub fn plan(ny: usize, nx: usize) -> Result<Arc<Plan2>, KernelError> {
    if ny == 0 || nx == 0 {
        return Err(KernelError::shape(
            "fft",
            "non-empty (ny, nx)",
            format!("({ny}, {nx})"),
        ));
    }
    let mut p = planners().lock().unwrap_or_else(|e| e.into_inner());
    if let Some(pl) = p.cache.get(&(ny, nx)) {
        return Ok(Arc::clone(pl));
    }
    let r2c = p.real.plan_fft_forward(nx);
    let c2r = p.real.plan_fft_inverse(nx);
    let col_fwd = p.complex.plan_fft_forward(ny);
    let col_inv = p.complex.plan_fft_inverse(ny);
    let pl = Arc::new(Plan2 {
        ny,
        nx,
        nxc: nx / 2 + 1,
        r2c,
        c2r,
        col_fwd,
        col_inv,
    });
    p.cache.insert((ny, nx), Arc::clone(&pl));
    Ok(pl)
}

/// Smallest `m ≥ n` whose prime factors are all 2, 3 or 5 (and even when `n > 1`), a size that
/// rustfft transforms efficiently.
pub fn nice_size(n: usize) -> usize {
    let mut m = n.max(1);
    loop {
        if m == 1 || m % 2 == 0 {
            let mut r = m;
            for f in [2usize, 3, 5] {
                while r % f == 0 {
                    r /= f;
                }
            }
            if r == 1 {
                return m;
            }
        }
        m += 1;
    }
}

/// Blocked parallel transpose of a row-major `(rows, cols)` complex buffer into `(cols, rows)`.
fn transpose_opt(src: &[C32], rows: usize, cols: usize, dst: &mut [C32], parallel: bool) {
    const B: usize = 16;
    assert!(src.len() >= rows * cols && dst.len() >= rows * cols);
    let tile = |(cb, chunk): (usize, &mut [C32])| {
        let c0 = cb * B;
        let c1 = (c0 + B).min(cols);
        let w = c1 - c0;
        for r0 in (0..rows).step_by(B) {
            let r1 = (r0 + B).min(rows);
            for r in r0..r1 {
                let srow = &src[r * cols + c0..r * cols + c1];
                for (k, v) in srow.iter().enumerate().take(w) {
                    // chunk row k = output row c0 + k, column r
                    chunk[k * rows + r] = *v;
                }
            }
        }
    };
    if parallel {
        dst.par_chunks_mut(rows * B).enumerate().for_each(tile);
    } else {
        dst.chunks_mut(rows * B).enumerate().for_each(tile);
    }
}

/// A small process-wide pool of large work buffers. Fresh multi-megabyte allocations cost page
/// faults and kernel page clearing on every call (measured ~20 % of a 2048² correlation on
/// this VM); reusing a few buffers avoids that. Buffers come back with stale (but initialised)
/// contents: every user writes all the elements it reads.
pub struct Pool<T: 'static> {
    bufs: Mutex<Vec<Vec<T>>>,
}

/// Keep at most this many buffers per element type, each at most `POOL_MAX_BYTES` and all
/// together at most `POOL_MAX_TOTAL` (bounded memory kept alive between calls: enough for the
/// three spectra and one map of a 2048² correlation, or a 4096² one's largest buffers).
const POOL_SLOTS: usize = 4;
const POOL_MAX_BYTES: usize = 96 << 20;
const POOL_MAX_TOTAL: usize = 192 << 20;

impl<T: Copy + Default + Send + 'static> Pool<T> {
    pub const fn new() -> Self {
        Pool {
            bufs: Mutex::new(Vec::new()),
        }
    }

    /// A buffer of exactly `len` elements (contents unspecified when reused: stale values).
    pub fn take(&self, len: usize) -> Vec<T> {
        let mut g = self.bufs.lock().unwrap_or_else(|e| e.into_inner());
        // the smallest pooled buffer that is large enough
        let mut best: Option<usize> = None;
        for (i, b) in g.iter().enumerate() {
            if b.capacity() >= len && best.is_none_or(|j| b.capacity() < g[j].capacity()) {
                best = Some(i);
            }
        }
        if let Some(i) = best {
            let mut v = g.swap_remove(i);
            drop(g);
            if v.len() >= len {
                v.truncate(len);
            } else {
                v.resize(len, T::default());
            }
            return v;
        }
        drop(g);
        vec![T::default(); len]
    }

    /// Return a buffer for reuse (dropped when the pool is full or the buffer is too large).
    pub fn give(&self, v: Vec<T>) {
        if v.capacity() == 0 || v.capacity() * std::mem::size_of::<T>() > POOL_MAX_BYTES {
            return;
        }
        let mut g = self.bufs.lock().unwrap_or_else(|e| e.into_inner());
        let size = std::mem::size_of::<T>();
        let total: usize = g.iter().map(|b| b.capacity() * size).sum();
        if g.len() < POOL_SLOTS && total + v.capacity() * size <= POOL_MAX_TOTAL {
            g.push(v);
        } else if let Some((i, _)) = g
            .iter()
            .enumerate()
            .min_by_key(|(_, b)| b.capacity())
            .filter(|(_, b)| {
                b.capacity() < v.capacity()
                    && total - b.capacity() * size + v.capacity() * size <= POOL_MAX_TOTAL
            })
        {
            g[i] = v; // keep the larger buffers
        }
    }
}

impl<T: Copy + Default + Send + 'static> Pool<T> {
    /// A buffer of exactly `len` elements that goes back to this pool when dropped (contents
    /// unspecified when reused, as [`take`](Self::take)).
    pub fn lease(&'static self, len: usize) -> PoolBuf<T> {
        PoolBuf {
            v: self.take(len),
            pool: self,
        }
    }
}

/// A pooled buffer (RAII): derefs to its `Vec`, returns itself to its [`Pool`] on drop;
/// [`into_vec`](Self::into_vec) keeps it instead (e.g. for an array handed to the caller).
pub struct PoolBuf<T: Copy + Default + Send + 'static> {
    v: Vec<T>,
    pool: &'static Pool<T>,
}

impl<T: Copy + Default + Send + 'static> PoolBuf<T> {
    /// Wrap `v` so that it goes to `pool` when dropped.
    pub fn new(v: Vec<T>, pool: &'static Pool<T>) -> Self {
        PoolBuf { v, pool }
    }

    /// The buffer, no longer returned to the pool.
    pub fn into_vec(mut self) -> Vec<T> {
        std::mem::take(&mut self.v)
    }
}

impl<T: Copy + Default + Send + 'static> std::ops::Deref for PoolBuf<T> {
    type Target = Vec<T>;
    fn deref(&self) -> &Vec<T> {
        &self.v
    }
}

impl<T: Copy + Default + Send + 'static> std::ops::DerefMut for PoolBuf<T> {
    fn deref_mut(&mut self) -> &mut Vec<T> {
        &mut self.v
    }
}

impl<T: Copy + Default + Send + 'static> Drop for PoolBuf<T> {
    fn drop(&mut self) {
        self.pool.give(std::mem::take(&mut self.v));
    }
}

impl<T: Copy + Default + Send + 'static> Default for Pool<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// Pool of complex spectra / transposes.
pub static POOL_C32: Pool<C32> = Pool::new();
/// Pool of real maps.
pub static POOL_F32: Pool<f32> = Pool::new();

impl Plan2 {
    /// Forward transform of a real `(ny, nx)` image into the transposed `(nx/2+1, ny)` spectrum.
    pub fn forward(&self, input: ArrayView2<f32>) -> Result<Array2<C32>, KernelError> {
        self.forward_opt(input, true)
    }

    /// [`forward`](Self::forward) on the calling thread only when `parallel` is false (for
    /// callers that already run several transforms in parallel: no nested scheduling).
    pub fn forward_opt(
        &self,
        input: ArrayView2<f32>,
        parallel: bool,
    ) -> Result<Array2<C32>, KernelError> {
        if input.dim() != (self.ny, self.nx) {
            return Err(KernelError::shape(
                "fft input",
                format!("({}, {})", self.ny, self.nx),
                format!("{:?}", input.dim()),
            ));
        }
        let nx = self.nx;
        let contiguous = input.as_standard_layout();
        let data = contiguous
            .as_slice()
            .expect("standard layout is contiguous");
        let spec = self.forward_with(
            |y, buf| {
                let i = &data[y * nx..(y + 1) * nx];
                if i.iter().all(|&v| v == 0.0) {
                    return false; // zero padding: its transform is zero
                }
                buf.copy_from_slice(i);
                true
            },
            parallel,
        );
        Array2::from_shape_vec((self.nxc, self.ny), spec)
            .map_err(|e| KernelError::value("fft", e.to_string()))
    }

    /// Forward transform of the real `(ny, nx)` image whose row `y` is written by
    /// `fill(y, buf)` into `buf` (length `nx`; `fill` returns `false` for an all-zero row, which
    /// is then not transformed). Returns the transposed `(nx/2+1, ny)` spectrum, row-major.
    ///
    /// Fusing the image preparation (taper, mean removal, padding) into the row pass saves a
    /// pass over a padded frame; the column transforms run on blocks of 16 frequency rows right
    /// after they are transposed, while they are in cache.
    pub fn forward_with<F>(&self, fill: F, parallel: bool) -> Vec<C32>
    where
        F: Fn(usize, &mut [f32]) -> bool + Sync,
    {
        let (ny, nx, nxc) = (self.ny, self.nx, self.nxc);
        let mut rows = POOL_C32.lease(ny * nxc);
        let r2c = &self.r2c;
        let per = if parallel {
            (ny / (8 * rayon::current_num_threads()).max(1)).clamp(1, 64)
        } else {
            ny.max(1)
        };
        rows.par_chunks_mut(nxc * per)
            .enumerate()
            .for_each(|(ci, out)| {
                let mut buf = vec![0.0f32; nx];
                let mut scratch = r2c.make_scratch_vec();
                for (k, o) in out.chunks_mut(nxc).enumerate() {
                    if !fill(ci * per + k, &mut buf) {
                        o.fill(C32::new(0.0, 0.0)); // an all-zero row transforms to zero
                        continue;
                    }
                    // lengths are right by construction; realfft only errors on wrong lengths
                    let _ = r2c.process_with_scratch(&mut buf, o, &mut scratch);
                }
            });
        let mut spec = POOL_C32.take(ny * nxc);
        let col = &self.col_fwd;
        let scratch_len = col.get_inplace_scratch_len();
        transpose_then(&rows, ny, nxc, &mut spec, parallel, |_, chunk, scratch| {
            if scratch.len() < scratch_len {
                scratch.resize(scratch_len, C32::new(0.0, 0.0));
            }
            col.process_with_scratch(chunk, &mut scratch[..scratch_len]);
        });
        spec
    }

    /// [`forward_with`](Self::forward_with) into a pooled buffer: the spectrum of one side of
    /// a correlation, prepared once for [`correlate_with`](Self::correlate_with).
    pub fn prepare_with<F>(&self, fill: F, parallel: bool) -> PoolBuf<C32>
    where
        F: Fn(usize, &mut [f32]) -> bool + Sync,
    {
        PoolBuf::new(self.forward_with(fill, parallel), &POOL_C32)
    }

    /// The correlation step: `cross(kx0, block)` forms a block of (up to 16) frequency rows
    /// `kx0..` of the cross-power spectrum in `work` (typically from a spectrum prepared once
    /// with [`prepare_with`](Self::prepare_with) and the block of the other side it finds in
    /// `work`), the inverse column transforms run while the block is in cache, then the row
    /// transforms. Returns the `(ny, nx)` map, row-major, normalised as
    /// [`inverse`](Self::inverse); `work` (length `(nx/2+1)·ny`) is consumed as scratch.
    pub fn correlate_with<F>(&self, work: &mut [C32], cross: F, parallel: bool) -> Vec<f32>
    where
        F: Fn(usize, &mut [C32]) + Sync,
    {
        self.inverse_columns_with(work, cross, parallel);
        let mut rows = POOL_C32.lease(work.len());
        self.inverse_rows(work, &mut rows, parallel)
    }

    /// Inverse of [`forward`](Self::forward) (normalised by `1/(ny·nx)`); consumes the spectrum.
    pub fn inverse(&self, spec: Array2<C32>) -> Result<Array2<f32>, KernelError> {
        self.inverse_opt(spec, true)
    }

    /// [`inverse`](Self::inverse), sequential when `parallel` is false.
    pub fn inverse_opt(
        &self,
        spec: Array2<C32>,
        parallel: bool,
    ) -> Result<Array2<f32>, KernelError> {
        if spec.dim() != (self.nxc, self.ny) {
            return Err(KernelError::shape(
                "spectrum",
                format!("({}, {})", self.nxc, self.ny),
                format!("{:?}", spec.dim()),
            ));
        }
        let spec = if spec.is_standard_layout() {
            spec.into_raw_vec_and_offset().0
        } else {
            spec.as_standard_layout().iter().copied().collect()
        };
        let mut spec = PoolBuf::new(spec, &POOL_C32);
        let out = self.correlate_with(&mut spec, |_, _| {}, parallel);
        Array2::from_shape_vec((self.ny, self.nx), out)
            .map_err(|e| KernelError::value("fft", e.to_string()))
    }

    /// First half of the inverse: `prep(kx0, block)` may modify each block of (up to 16)
    /// frequency rows `kx0..` of the transposed spectrum (e.g. form a cross-power spectrum in
    /// place), then the block's column (y) transforms run while it is in cache.
    /// `spec.len()` must be `(nx/2+1)·ny`.
    pub fn inverse_columns_with<F>(&self, spec: &mut [C32], prep: F, parallel: bool)
    where
        F: Fn(usize, &mut [C32]) + Sync,
    {
        let (ny, nxc) = (self.ny, self.nxc);
        assert_eq!(spec.len(), ny * nxc, "spectrum length");
        let col = &self.col_inv;
        let scratch_len = col.get_inplace_scratch_len();
        let work = |(bi, chunk): (usize, &mut [C32]), scratch: &mut Vec<C32>| {
            prep(bi * TB, chunk);
            col.process_with_scratch(chunk, scratch);
        };
        if parallel {
            spec.par_chunks_mut(ny * TB)
                .enumerate()
                .for_each_init(|| vec![C32::new(0.0, 0.0); scratch_len], |s, c| work(c, s));
        } else {
            let mut s = vec![C32::new(0.0, 0.0); scratch_len];
            spec.chunks_mut(ny * TB)
                .enumerate()
                .for_each(|c| work(c, &mut s));
        }
    }

    /// Second half of the inverse: transposes the column-transformed spectrum into `rows`
    /// (resized as needed; pass a spare buffer to avoid an allocation) and runs the row
    /// complex-to-real transforms, normalised by `1/(ny·nx)`. Returns the `(ny, nx)` image.
    pub fn inverse_rows(&self, spec: &[C32], rows: &mut Vec<C32>, parallel: bool) -> Vec<f32> {
        let (ny, nx, nxc) = (self.ny, self.nx, self.nxc);
        assert_eq!(spec.len(), ny * nxc, "spectrum length");
        rows.resize(ny * nxc, C32::new(0.0, 0.0));
        transpose_opt(spec, nxc, ny, rows, parallel);
        let mut out = POOL_F32.take(ny * nx); // every element is written below
        let norm = 1.0 / (ny as f32 * nx as f32);
        let c2r = &self.c2r;
        let even = nx % 2 == 0;
        let per = if parallel {
            (ny / (8 * rayon::current_num_threads()).max(1)).clamp(1, 64)
        } else {
            ny.max(1)
        };
        out.par_chunks_mut(nx * per)
            .zip(rows.par_chunks_mut(nxc * per))
            .for_each(|(o, inp)| {
                let mut scratch = c2r.make_scratch_vec();
                for (orow, inrow) in o.chunks_mut(nx).zip(inp.chunks_mut(nxc)) {
                    inrow[0].im = 0.0;
                    if even {
                        inrow[nxc - 1].im = 0.0;
                    }
                    let _ = c2r.process_with_scratch(inrow, orow, &mut scratch);
                    for v in orow.iter_mut() {
                        *v *= norm;
                    }
                }
            });
        out
    }
}

/// Frequency rows per block in the fused transpose + column-transform passes (16 rows of a
/// 2048-point column transform = 256 KiB, which stays in L2).
const TB: usize = 16;

/// Transpose row-major `(rows, cols)` `src` into `(cols, rows)` `dst` by blocks of [`TB`]
/// output rows, calling `then(first_row, block, scratch)` on each block right after it is
/// written (parallel over blocks when `parallel`).
fn transpose_then<F>(
    src: &[C32],
    rows: usize,
    cols: usize,
    dst: &mut [C32],
    parallel: bool,
    then: F,
) where
    F: Fn(usize, &mut [C32], &mut Vec<C32>) + Sync,
{
    assert!(src.len() >= rows * cols && dst.len() >= rows * cols);
    let tile = |(cb, chunk): (usize, &mut [C32]), scratch: &mut Vec<C32>| {
        let c0 = cb * TB;
        let c1 = (c0 + TB).min(cols);
        let w = c1 - c0;
        for r in 0..rows {
            let srow = &src[r * cols + c0..r * cols + c1];
            for (k, v) in srow.iter().enumerate().take(w) {
                chunk[k * rows + r] = *v;
            }
        }
        then(c0, chunk, scratch);
    };
    let dst = &mut dst[..rows * cols];
    if parallel {
        dst.par_chunks_mut(rows * TB)
            .enumerate()
            .for_each_init(Vec::new, |s, c| tile(c, s));
    } else {
        let mut s = Vec::new();
        dst.chunks_mut(rows * TB)
            .enumerate()
            .for_each(|c| tile(c, &mut s));
    }
}

/// Signed frequency index of FFT bin `k` of an `n`-point transform (`k` or `k − n`).
#[inline(always)]
pub fn signed_freq(k: usize, n: usize) -> isize {
    if k <= n / 2 {
        k as isize
    } else {
        k as isize - n as isize
    }
}

/// Weight of half-spectrum row `kx` in a full-spectrum sum (Parseval): 1 for `kx = 0` and for
/// the Nyquist row of an even `nx`, 2 otherwise.
#[inline(always)]
pub fn half_weight(kx: usize, nx: usize) -> f32 {
    if kx == 0 || (nx % 2 == 0 && kx == nx / 2) {
        1.0
    } else {
        2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive_dft(img: &Array2<f32>) -> Array2<C32> {
        let (ny, nx) = img.dim();
        let nxc = nx / 2 + 1;
        let mut out = Array2::<C32>::zeros((nxc, ny));
        for kx in 0..nxc {
            for ky in 0..ny {
                let mut acc = rustfft::num_complex::Complex64::new(0.0, 0.0);
                for y in 0..ny {
                    for x in 0..nx {
                        let ph = -2.0
                            * std::f64::consts::PI
                            * (kx as f64 * x as f64 / nx as f64 + ky as f64 * y as f64 / ny as f64);
                        acc += rustfft::num_complex::Complex64::new(ph.cos(), ph.sin())
                            * img[[y, x]] as f64;
                    }
                }
                out[[kx, ky]] = C32::new(acc.re as f32, acc.im as f32);
            }
        }
        out
    }

    #[test]
    fn forward_matches_dft_and_roundtrips() {
        for &(ny, nx) in &[(6usize, 8usize), (7, 5), (9, 12), (1, 4)] {
            let img = Array2::from_shape_fn((ny, nx), |(y, x)| {
                ((y * 7 + x * 3) % 11) as f32 - 0.3 * x as f32
            });
            let p = plan(ny, nx).unwrap();
            let f = p.forward(img.view()).unwrap();
            let d = naive_dft(&img);
            for (a, b) in f.iter().zip(d.iter()) {
                assert!((a - b).norm() < 1e-3, "{a} vs {b}");
            }
            let back = p.inverse(f).unwrap();
            for (a, b) in back.iter().zip(img.iter()) {
                assert!((a - b).abs() < 1e-4);
            }
        }
    }

    #[test]
    fn pool_reuses_and_bounds_memory() {
        let pool: Pool<f32> = Pool::new();
        let v = pool.take(1000);
        assert_eq!(v.len(), 1000);
        let ptr = v.as_ptr();
        pool.give(v);
        // a smaller request reuses the buffer (stale contents, right length)
        let w = pool.take(10);
        assert_eq!(w.len(), 10);
        assert_eq!(w.as_ptr(), ptr);
        pool.give(w);
        let w = pool.take(2000); // larger than the pooled one: grows or allocates
        assert_eq!(w.len(), 2000);
        // too large for the pool: not kept
        pool.give(vec![0.0f32; (POOL_MAX_BYTES / 4) + 1]);
        let kept: usize = pool.bufs.lock().unwrap().iter().map(|b| b.capacity()).sum();
        assert!(kept * 4 <= POOL_MAX_TOTAL);
        assert!(pool.bufs.lock().unwrap().len() <= POOL_SLOTS);
        // the forward transform gives the same spectrum with reused (dirty) buffers
        let img = Array2::from_shape_fn((16, 12), |(y, x)| (y * 3 + x) as f32 % 5.0);
        let p = plan(16, 12).unwrap();
        let f1 = p.forward(img.view()).unwrap();
        POOL_C32.give(vec![C32::new(f32::NAN, 1.0); 16 * 7]);
        POOL_C32.give(vec![C32::new(f32::NAN, 1.0); 16 * 7]);
        let f2 = p.forward(img.view()).unwrap();
        assert_eq!(f1, f2);
    }

    #[test]
    fn leased_buffers_go_back_on_drop() {
        static POOL: Pool<f32> = Pool::new();
        let b = POOL.lease(100);
        let ptr = b.as_ptr();
        assert_eq!(b.len(), 100);
        drop(b);
        let c = POOL.lease(50); // the dropped buffer, reused
        assert_eq!((c.len(), c.as_ptr()), (50, ptr));
        let v = c.into_vec(); // kept: not returned
        assert_eq!(POOL.bufs.lock().unwrap().len(), 0);
        POOL.give(v);
        assert_eq!(POOL.bufs.lock().unwrap().len(), 1);
    }

    #[test]
    fn correlate_with_is_the_circular_correlation() {
        let (ny, nx) = (12usize, 10usize);
        let a = Array2::from_shape_fn((ny, nx), |(y, x)| ((y * 7 + x * 3) % 5) as f32 - 1.5);
        let b = Array2::from_shape_fn((ny, nx), |(y, x)| ((y * 2 + x * 5) % 7) as f32 * 0.3);
        let p = plan(ny, nx).unwrap();
        let row = |img: &Array2<f32>| {
            let img = img.clone();
            move |y: usize, buf: &mut [f32]| {
                buf.copy_from_slice(img.row(y).as_slice().unwrap());
                true
            }
        };
        let prep = p.prepare_with(row(&b), true);
        let mut work = p.prepare_with(row(&a), false);
        let map = p.correlate_with(
            &mut work,
            |kx0, block| {
                let off = kx0 * ny;
                let len = block.len();
                for (w, q) in block.iter_mut().zip(&prep[off..off + len]) {
                    *w *= q.conj();
                }
            },
            true,
        );
        // c[d] = Σ_x a[x + d] b[x] (circular)
        for dy in 0..ny {
            for dx in 0..nx {
                let mut e = 0.0f64;
                for y in 0..ny {
                    for x in 0..nx {
                        e += a[[(y + dy) % ny, (x + dx) % nx]] as f64 * b[[y, x]] as f64;
                    }
                }
                assert!((map[dy * nx + dx] as f64 - e).abs() < 1e-3, "{dy} {dx}");
            }
        }
    }

    #[test]
    fn nice_sizes() {
        assert_eq!(nice_size(1), 1);
        assert_eq!(nice_size(7), 8);
        assert_eq!(nice_size(1229), 1250);
        assert_eq!(nice_size(1024), 1024);
        assert_eq!(nice_size(11), 12);
    }
}
