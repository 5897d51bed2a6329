//! Tile power spectra: the tiling of an image, and each tile's windowed power spectrum averaged
//! in rings of constant equiphase squared frequency (see the module documentation of
//! [`crate::ctf`]).

use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;

use crate::{fft, KernelError};

/// Tiling of an image.
#[derive(Clone, Copy, Debug)]
pub struct Tiling {
    /// Tile edge length in pixels (≥ 16, even).
    pub tile: usize,
    /// Distance between tile origins in pixels (≥ 1).
    pub step: usize,
    /// Number of radial bins (uniform in `k²` up to Nyquist).
    pub n_bins: usize,
    /// Relative astigmatism `a = ΔfAst / (2·Δf)` (|a| < 0.5) of the equiphase mapping.
    pub astig: f64,
    /// Astigmatism angle `φ_a` in radians (from +x towards +y).
    pub astig_angle: f64,
}

/// Origins `(y0, x0)` of all tiles of an `(ny, nx)` image, centred so the margins are equal.
fn tile_origins(ny: usize, nx: usize, tile: usize, step: usize) -> Vec<(usize, usize)> {
    let ny_t = (ny - tile) / step + 1;
    let nx_t = (nx - tile) / step + 1;
    let oy = (ny - tile - (ny_t - 1) * step) / 2;
    let ox = (nx - tile - (nx_t - 1) * step) / 2;
    let mut v = Vec::with_capacity(ny_t * nx_t);
    for j in 0..ny_t {
        for i in 0..nx_t {
            v.push((oy + j * step, ox + i * step));
        }
    }
    v
}

/// Checks the tiling against the `(ny, nx)` image.
fn check_tiling(t: &Tiling, ny: usize, nx: usize) -> Result<(), KernelError> {
    if t.tile < 16 || t.tile % 2 != 0 {
        return Err(KernelError::value(
            "tile",
            format!("must be even and >= 16, got {}", t.tile),
        ));
    }
    if t.step == 0 {
        return Err(KernelError::value("step", "must be >= 1"));
    }
    if ny < t.tile || nx < t.tile {
        return Err(KernelError::shape(
            "image",
            format!("at least ({0}, {0}) for tile {0}", t.tile),
            format!("({ny}, {nx})"),
        ));
    }
    if t.n_bins < 4 || t.n_bins > 4 * t.tile {
        return Err(KernelError::value(
            "n_bins",
            format!("must lie in 4..={}, got {}", 4 * t.tile, t.n_bins),
        ));
    }
    if !t.astig.is_finite() || t.astig.abs() >= 0.5 || !t.astig_angle.is_finite() {
        return Err(KernelError::value(
            "astigmatism",
            format!(
                "relative astigmatism must be finite with |a| < 0.5, got {}",
                t.astig
            ),
        ));
    }
    Ok(())
}

/// Bin index of every half-spectrum pixel of a tile (`kx` in `0..tile/2 + 1`, `ky` in
/// `0..tile`, at `ky·nc + kx`; `u32::MAX` = unused) and the pixel count of every bin.
fn spectrum_bins(t: &Tiling) -> (Vec<u32>, Vec<u32>) {
    let n = t.tile;
    let nc = n / 2 + 1;
    let mut bin_of = vec![u32::MAX; n * nc];
    let mut counts = vec![0u32; t.n_bins];
    let s_nyq = 0.25f64;
    for ky in 0..n {
        // numpy fftfreq order: index n/2 is the negative Nyquist frequency
        let fy = if ky < n / 2 {
            ky as f64
        } else {
            ky as f64 - n as f64
        } / n as f64;
        for kx in 0..nc {
            let fx = kx as f64 / n as f64;
            let s = fx * fx + fy * fy;
            if s == 0.0 {
                continue;
            }
            let phi = fy.atan2(fx);
            let seff = s * (1.0 + t.astig * (2.0 * (phi - t.astig_angle)).cos());
            let b = (seff / s_nyq * t.n_bins as f64).floor();
            if b >= 0.0 && (b as usize) < t.n_bins {
                bin_of[ky * nc + kx] = b as u32;
                counts[b as usize] += 1;
            }
        }
    }
    (bin_of, counts)
}

/// What every tile's profile shares: the tile size, taper, plan and bins.
struct TileSpectra<'a> {
    n: usize,
    /// 1-D cosine taper (the 2-D window is its outer product).
    win: &'a [f32],
    plan: &'a fft::Plan2,
    bin_of: &'a [u32],
    /// `1 / count` of every bin (0 for an empty bin).
    inv_counts: &'a [f64],
}

impl TileSpectra<'_> {
    /// Mean power per bin of the tapered, mean-removed tile at `(y0, x0)` into `out` (`acc`:
    /// an f64 scratch of one value per bin).
    fn profile(
        &self,
        image: &ArrayView2<f32>,
        (y0, x0): (usize, usize),
        acc: &mut [f64],
        out: &mut [f32],
    ) {
        let (n, win) = (self.n, self.win);
        let nc = n / 2 + 1;
        // tile mean (so the taper does not create a DC/low-frequency artefact)
        let mut mean = 0.0f64;
        for y in 0..n {
            for x in 0..n {
                mean += image[[y0 + y, x0 + x]] as f64;
            }
        }
        let mean = (mean / (n * n) as f64) as f32;
        let spec = self.plan.prepare_with(
            |y, row| {
                for x in 0..n {
                    row[x] = (image[[y0 + y, x0 + x]] - mean) * win[x] * win[y];
                }
                true
            },
            false,
        );
        for a in acc.iter_mut() {
            *a = 0.0;
        }
        for kx in 0..nc {
            for (ky, v) in spec[kx * n..(kx + 1) * n].iter().enumerate() {
                let b = self.bin_of[ky * nc + kx];
                if b != u32::MAX {
                    acc[b as usize] += v.norm_sqr() as f64;
                }
            }
        }
        for (o, (a, ic)) in out.iter_mut().zip(acc.iter().zip(self.inv_counts.iter())) {
            *o = (*a * *ic) as f32;
        }
    }
}

/// Tile centres `(x, y)` relative to the image centre `(nx/2, ny/2)`, one row per origin.
fn tile_centres(origins: &[(usize, usize)], n: usize, ny: usize, nx: usize) -> Array2<f64> {
    let mut centres = Array2::<f64>::zeros((origins.len(), 2));
    for (i, &(y0, x0)) in origins.iter().enumerate() {
        centres[[i, 0]] = x0 as f64 + n as f64 / 2.0 - nx as f64 / 2.0;
        centres[[i, 1]] = y0 as f64 + n as f64 / 2.0 - ny as f64 / 2.0;
    }
    centres
}

/// What [`tile_profiles`] returns: `(profiles, centres, counts)`.
pub type TileProfiles = (Array2<f32>, Array2<f64>, Vec<u32>);

/// Radial profiles of tile power spectra.
///
/// Returns `(profiles, centres, counts)`: `profiles` is `(n_tiles, n_bins)` (mean power per
/// bin, tiles in row-major order of their origins), `centres` is `(n_tiles, 2)` tile centres
/// `(x, y)` in pixels relative to the image centre `(nx/2, ny/2)`, `counts` the Fourier pixels
/// per bin (same for every tile).
pub fn tile_profiles(image: ArrayView2<f32>, t: Tiling) -> Result<TileProfiles, KernelError> {
    let (ny, nx) = image.dim();
    check_tiling(&t, ny, nx)?;
    let n = t.tile;
    let (bin_of, counts) = spectrum_bins(&t);
    // cosine taper over 1/8 of the tile on each edge
    let win = crate::window::taper_1d_f32(n, (n / 8).max(1) as f64);
    // the shared, cached 2-D plan of crate::fft: each tile is transformed on the calling
    // thread (the tiles run in parallel), into the transposed (nc, n) layout spec[kx, ky]
    let plan = fft::plan(n, n)?;
    let origins = tile_origins(ny, nx, n, t.step);
    let mut profiles = Array2::<f32>::zeros((origins.len(), t.n_bins));
    let inv_counts: Vec<f64> = counts
        .iter()
        .map(|&c| if c > 0 { 1.0 / c as f64 } else { 0.0 })
        .collect();
    let spectra = TileSpectra {
        n,
        win: &win,
        plan: &plan,
        bin_of: &bin_of,
        inv_counts: &inv_counts,
    };
    profiles
        .as_slice_mut()
        .ok_or_else(|| KernelError::value("profiles", "internal layout"))?
        .par_chunks_mut(t.n_bins)
        .zip(origins.par_iter())
        .for_each_init(
            || vec![0.0f64; t.n_bins],
            |acc, (out, &origin)| spectra.profile(&image, origin, acc, out),
        );
    Ok((profiles, tile_centres(&origins, n, ny, nx), counts))
}
