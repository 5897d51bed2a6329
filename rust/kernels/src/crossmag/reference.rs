//! The prepared reference search region: tapered (cosine ramps at the edges of its valid
//! part), zero-mean, zero-padded, Fourier-transformed once and filtered, for many evaluations.

use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;

use crate::fft::{self, Plan2, C32};
use crate::window::span_weights;
use crate::xcorr::{self, FilterParams, Method};
use crate::KernelError;

/// A prepared reference search region.
pub struct Reference {
    /// Padded frame `(py, px)`.
    pub pad: (usize, usize),
    /// Region size `(wy, wx)`.
    pub region: (usize, usize),
    /// `F(R0)·H` (xcorr) or `F(R0)` (phase), transposed half-spectrum layout of [`crate::fft`].
    pub spec: Array2<C32>,
    /// Filtered region `R'` (√H applied): row `i` of the region is
    /// `filtered[i·px .. i·px + wx]` (the inverse transform's frame, not copied; returned to
    /// the buffer pool on drop).
    pub filtered: Vec<f32>,
    /// Region rows `[y0, y1)` and columns `[x0, x1)` that lie inside the reference image (the
    /// valid part is this rectangle; its pixels count for the overlap).
    pub valid_rows: (usize, usize),
    pub valid_cols: (usize, usize),
    pub filter: FilterParams,
    pub method: Method,
}

impl Drop for Reference {
    fn drop(&mut self) {
        fft::POOL_F32.give(std::mem::take(&mut self.filtered));
    }
}

/// Prepare the reference region `image[y0 .. y0+wy, x0 .. x0+wx]` (see the module docs).
#[allow(clippy::too_many_arguments)]
pub fn prepare_reference(
    image: ArrayView2<f32>,
    origin: (isize, isize),
    region: (usize, usize),
    pad: (usize, usize),
    taper: f64,
    filter: &FilterParams,
    method: Method,
) -> Result<Reference, KernelError> {
    filter.check()?;
    let (ny, nx) = image.dim();
    let (wy, wx) = region;
    let (x0, y0) = origin;
    if ny == 0 || nx == 0 || wy == 0 || wx == 0 {
        return Err(KernelError::shape(
            "reference",
            "non-empty",
            format!("{:?} / {:?}", (ny, nx), region),
        ));
    }
    if pad.0 < wy || pad.1 < wx {
        return Err(KernelError::shape(
            "pad",
            format!(">= {region:?}"),
            format!("{pad:?}"),
        ));
    }
    let (wty, vy) = span_weights(y0, wy, ny, taper);
    let (wtx, vx) = span_weights(x0, wx, nx, taper);
    let img = image.as_standard_layout();
    let data = img.as_slice().expect("standard layout is contiguous");
    // the columns [ja, jb) of the region inside the image (the taper weights are zero
    // elsewhere)
    let ja = (-x0).clamp(0, wx as isize) as usize;
    let jb = (nx as isize - x0).clamp(ja as isize, wx as isize) as usize;
    let tr = TaperedRegion {
        data,
        dim: (ny, nx),
        origin,
        cols: (ja, jb),
        wty: &wty,
        wtx: &wtx,
    };
    let sw: f64 = wty.iter().sum::<f64>() * wtx.iter().sum::<f64>();
    let swv = tr.weighted_sum();
    if sw <= 0.0 {
        return Err(KernelError::value(
            "expected_center",
            "the search region does not overlap the reference image",
        ));
    }
    let mu = swv / sw;
    let ia = (-y0).clamp(0, wy as isize) as usize;
    let ib = (ny as isize - y0).clamp(ia as isize, wy as isize) as usize;
    debug_assert!((0..wy).all(|i| (vy[i] > 0.0) == (ia..ib).contains(&i)));
    debug_assert!((0..wx).all(|j| (vx[j] > 0.0) == (ja..jb).contains(&j)));
    let plan = fft::plan(pad.0, pad.1)?;
    // the tapered, mean-removed region is written straight into the transform's row pass
    let spec = plan.forward_with(|i, buf| tr.fill_row(i, buf, mu), true);
    let filtered_full = filtered_region(&plan, &spec, pad, filter);
    let mut spec = Array2::from_shape_vec((plan.nxc, pad.0), spec)
        .map_err(|e| KernelError::value("fft", e.to_string()))?;
    if method == Method::XCorr {
        xcorr::apply_filter(&mut spec, pad.0, pad.1, filter, 1.0);
    }
    Ok(Reference {
        pad,
        region,
        spec,
        filtered: filtered_full,
        valid_rows: (ia, ib),
        valid_cols: (ja, jb),
        filter: *filter,
        method,
    })
}

/// The reference region under its separable taper: image rows and column weights.
struct TaperedRegion<'a> {
    /// The reference image, rows of `dim.1` values.
    data: &'a [f32],
    /// Image size `(ny, nx)`.
    dim: (usize, usize),
    /// Region origin `(x0, y0)` in the image.
    origin: (isize, isize),
    /// Region columns `[ja, jb)` inside the image.
    cols: (usize, usize),
    /// Taper weights per region row and per region column.
    wty: &'a [f64],
    wtx: &'a [f64],
}

impl TaperedRegion<'_> {
    /// The image pixels of region row `i` over the columns `[ja, jb)`, or `None` where the row
    /// has zero weight or lies outside the image.
    #[inline]
    fn row(&self, i: usize) -> Option<&[f32]> {
        let (ny, nx) = self.dim;
        let (x0, y0) = self.origin;
        let (ja, jb) = self.cols;
        let y = y0 + i as isize;
        if self.wty[i] > 0.0 && y >= 0 && (y as usize) < ny && ja < jb {
            let o = y as usize * nx;
            let xa = (x0 + ja as isize) as usize;
            Some(&self.data[o + xa..o + xa + (jb - ja)])
        } else {
            None
        }
    }

    /// Σ taper weight × pixel over the region (rows in parallel, 4 lanes per row).
    fn weighted_sum(&self) -> f64 {
        let (ja, jb) = self.cols;
        (0..self.wty.len())
            .into_par_iter()
            .with_min_len(16)
            .map(|i| match self.row(i) {
                Some(row) => {
                    let mut l = [0.0f64; 4];
                    let w = &self.wtx[ja..jb];
                    let (cw, cr) = (w.chunks_exact(4), row.chunks_exact(4));
                    let (rw, rr) = (cw.remainder(), cr.remainder());
                    for (a, b) in cw.zip(cr) {
                        for k in 0..4 {
                            l[k] += a[k] * b[k] as f64;
                        }
                    }
                    let mut t: f64 = l.iter().sum();
                    for (a, b) in rw.iter().zip(rr.iter()) {
                        t += a * *b as f64;
                    }
                    self.wty[i] * t
                }
                None => 0.0,
            })
            .sum()
    }

    /// Frame row `i` of the tapered, mean (`mu`) removed region into `buf` (the transform's
    /// row pass); `false` for an all-zero row.
    #[inline]
    fn fill_row(&self, i: usize, buf: &mut [f32], mu: f64) -> bool {
        let (ja, jb) = self.cols;
        let row = match if i < self.wty.len() {
            self.row(i)
        } else {
            None
        } {
            Some(r) => r,
            None => return false,
        };
        buf[..ja].fill(0.0);
        buf[jb..].fill(0.0);
        let wi = self.wty[i];
        for ((o, w), v) in buf[ja..jb].iter_mut().zip(&self.wtx[ja..jb]).zip(row) {
            *o = (wi * *w * (*v as f64 - mu)) as f32;
        }
        true
    }
}

/// The filtered region R' (√H, one side of the filter) in the inverse transform's frame, from
/// the region's spectrum `spec`: the filtered copy of the spectrum is formed block by block
/// inside the inverse column pass (no clone + filter passes).
fn filtered_region(
    plan: &Plan2,
    spec: &[C32],
    pad: (usize, usize),
    filter: &FilterParams,
) -> Vec<f32> {
    let t_half = if filter.is_identity() {
        None
    } else {
        Some(xcorr::filter_table(pad.0, pad.1, filter, 0.5))
    };
    let mut half = fft::POOL_C32.lease(spec.len());
    let th = t_half
        .as_ref()
        .map(|t| t.as_slice().expect("contiguous table"));
    let py = pad.0;
    let filtered = plan.correlate_with(
        &mut half,
        |kx0, chunk| {
            let src = &spec[kx0 * py..kx0 * py + chunk.len()];
            match th {
                Some(t) => {
                    let tt = &t[kx0 * py..kx0 * py + chunk.len()];
                    for ((o, v), h) in chunk.iter_mut().zip(src.iter()).zip(tt.iter()) {
                        *o = *v * *h;
                    }
                }
                None => chunk.copy_from_slice(src),
            }
        },
        true,
    );
    drop(half);
    filtered
}
