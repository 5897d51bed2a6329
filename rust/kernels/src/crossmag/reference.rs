//! The prepared reference search region: tapered (cosine ramps at the edges of its valid
//! part), zero-mean, zero-padded, Fourier-transformed once and filtered, for many evaluations.

use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;

use crate::fft::{self, C32};
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
    // rows of the region inside the image and the columns [ja, jb) inside it (the taper
    // weights are zero elsewhere)
    let img = image.as_standard_layout();
    let data = img.as_slice().expect("standard layout is contiguous");
    let ja = (-x0).clamp(0, wx as isize) as usize;
    let jb = (nx as isize - x0).clamp(ja as isize, wx as isize) as usize;
    let row_of = |i: usize| -> Option<&[f32]> {
        let y = y0 + i as isize;
        if wty[i] > 0.0 && y >= 0 && (y as usize) < ny && ja < jb {
            let o = y as usize * nx;
            let xa = (x0 + ja as isize) as usize;
            Some(&data[o + xa..o + xa + (jb - ja)])
        } else {
            None
        }
    };
    let sw: f64 = wty.iter().sum::<f64>() * wtx.iter().sum::<f64>();
    let swv: f64 = (0..wy)
        .into_par_iter()
        .with_min_len(16)
        .map(|i| match row_of(i) {
            Some(row) => {
                let mut l = [0.0f64; 4];
                let w = &wtx[ja..jb];
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
                wty[i] * t
            }
            None => 0.0,
        })
        .sum();
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
    let spec = plan.forward_with(
        |i, buf| {
            let row = match if i < wy { row_of(i) } else { None } {
                Some(r) => r,
                None => return false,
            };
            buf[..ja].fill(0.0);
            buf[jb..].fill(0.0);
            let wi = wty[i];
            for ((o, w), v) in buf[ja..jb].iter_mut().zip(&wtx[ja..jb]).zip(row) {
                *o = (wi * *w * (*v as f64 - mu)) as f32;
            }
            true
        },
        true,
    );
    let nxc = plan.nxc;
    // filtered region R' (sqrt of the filter on one side): the filtered copy of the spectrum
    // is formed block by block inside the inverse column pass (no clone + filter passes)
    let t_half = if filter.is_identity() {
        None
    } else {
        Some(xcorr::filter_table(pad.0, pad.1, filter, 0.5))
    };
    let mut half = fft::POOL_C32.lease(spec.len());
    let filtered_full = {
        let th = t_half
            .as_ref()
            .map(|t| t.as_slice().expect("contiguous table"));
        let sp = &spec[..];
        let py = pad.0;
        plan.correlate_with(
            &mut half,
            |kx0, chunk| {
                let src = &sp[kx0 * py..kx0 * py + chunk.len()];
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
        )
    };
    drop(half);
    let mut spec = Array2::from_shape_vec((nxc, pad.0), spec)
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
