//! Tile-wise power spectra and 1-D CTF defocus fits (for defocus-handedness checks).
//!
//! Two kernels, both parallel with rayon and free of Python:
//!
//! * [`tile_profiles`]: split an image into overlapping square tiles, window each tile (cosine
//!   edge taper), take its power spectrum and average it in rings of constant *equiphase*
//!   squared frequency `s_eff = s·(1 + a·cos 2(φ − φ_a))` (`s = k²` in cycles²/px², `a` = the
//!   tilt's relative astigmatism `ΔfAst/(2·Δf)`, held per tilt), `n_bins` bins uniform in `s`
//!   from 0 to the Nyquist `s = 1/4`. Uniform bins in `k²` hold equal numbers of Fourier
//!   pixels, and Thon rings are (without Cs) periodic in `k²` with period `1/(λ·Δf)`.
//! * [`fit_defocus_1d`]: for each radial profile, subtract a smooth background (moving average
//!   over one Thon-ring period in `s` at the reference defocus), normalise by the moving RMS,
//!   and find the defocus maximising the normalised correlation with the oscillating part of
//!   `CTF² = sin²(χ + φ_A)`, i.e. `−cos(2χ(s) + 2φ_A)` with
//!   `χ(s) = π·λ·Δf·s − (π/2)·Cs·λ³·s²` and `φ_A = asin(amplitude contrast)`; grid search then
//!   golden-section refinement. This is the 1-D fit used by CTFFIND4/5 on rotational averages
//!   (Rohou & Grigorieff 2015) with the background removed as in ctfplotter's strip fits.
//!
//! A numpy reference of both lives in `python/emgeom/reference/ctf.py`.

use std::f64::consts::PI;

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

/// Radial profiles of tile power spectra.
///
/// Returns `(profiles, centres, counts)`: `profiles` is `(n_tiles, n_bins)` (mean power per
/// bin, tiles in row-major order of their origins), `centres` is `(n_tiles, 2)` tile centres
/// `(x, y)` in pixels relative to the image centre `(nx/2, ny/2)`, `counts` the Fourier pixels
/// per bin (same for every tile).
pub fn tile_profiles(
    image: ArrayView2<f32>,
    t: Tiling,
) -> Result<(Array2<f32>, Array2<f64>, Vec<u32>), KernelError> {
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

/// Optics of the CTF model (Å units).
#[derive(Clone, Copy, Debug)]
pub struct Optics {
    /// Electron wavelength λ (Å).
    pub wavelength_a: f64,
    /// Spherical aberration Cs (Å).
    pub cs_a: f64,
    /// Amplitude contrast fraction (0 ≤ A < 1).
    pub amplitude_contrast: f64,
}

/// Per-profile search settings.
#[derive(Clone, Copy, Debug)]
pub struct Search {
    /// Fit range in `s = k²` (Å⁻²).
    pub s_lo: f64,
    pub s_hi: f64,
    /// Defocus search range (Å, underfocus positive).
    pub df_min: f64,
    pub df_max: f64,
    /// Reference defocus for the background window (Å).
    pub df_ref: f64,
}

fn moving_average(v: &[f64], w: usize) -> Vec<f64> {
    let n = v.len();
    let h = w / 2;
    let mut pre = vec![0.0; n + 1];
    for i in 0..n {
        pre[i + 1] = pre[i] + v[i];
    }
    (0..n)
        .map(|i| {
            let a = i.saturating_sub(h);
            let b = (i + h + 1).min(n);
            (pre[b] - pre[a]) / (b - a) as f64
        })
        .collect()
}

/// Background-subtracted, RMS-normalised profile (zeros outside the usable range).
pub fn flatten_profile(
    profile: &[f32],
    s_per_bin: f64,
    wavelength_a: f64,
    df_ref: f64,
) -> Vec<f64> {
    let n = profile.len();
    let v: Vec<f64> = profile
        .iter()
        .map(|&x| (x.max(0.0) as f64).sqrt())
        .collect();
    let period = 1.0 / (wavelength_a * df_ref.max(1.0) * s_per_bin);
    let w = (period.round() as usize).clamp(3, n.max(3));
    let bg = moving_average(&v, w);
    let r: Vec<f64> = v.iter().zip(bg.iter()).map(|(a, b)| a - b).collect();
    let sq: Vec<f64> = r.iter().map(|x| x * x).collect();
    let rms = moving_average(&sq, 2 * w);
    r.iter()
        .zip(rms.iter())
        .map(|(x, m)| if *m > 0.0 { x / m.sqrt() } else { 0.0 })
        .collect()
}

/// Correlation of a flattened profile with the CTF² oscillation for one defocus.
fn score(flat: &[f64], j0: usize, j1: usize, s_per_bin: f64, o: &Optics, df: f64) -> f64 {
    let phase_a = o.amplitude_contrast.clamp(0.0, 0.999).asin();
    let l3 = o.wavelength_a.powi(3);
    let (mut sxy, mut sy, mut syy, mut sx, mut sxx) = (0.0, 0.0, 0.0, 0.0, 0.0);
    let n = (j1 - j0) as f64;
    for (j, &p) in flat.iter().enumerate().take(j1).skip(j0) {
        let s = (j as f64 + 0.5) * s_per_bin;
        let chi = PI * o.wavelength_a * df * s - 0.5 * PI * o.cs_a * l3 * s * s;
        let m = -(2.0 * chi + 2.0 * phase_a).cos();
        sxy += p * m;
        sy += m;
        syy += m * m;
        sx += p;
        sxx += p * p;
    }
    let cov = sxy - sx * sy / n;
    let vx = sxx - sx * sx / n;
    let vy = syy - sy * sy / n;
    if vx <= 0.0 || vy <= 0.0 {
        return 0.0;
    }
    cov / (vx * vy).sqrt()
}

/// Checks the arguments of [`fit_defocus_1d`] for `n` profiles.
fn check_fit_args(
    n: usize,
    s_per_bin: f64,
    optics: &Optics,
    searches: &[Search],
    df_step: f64,
) -> Result<(), KernelError> {
    if searches.len() != n {
        return Err(KernelError::shape(
            "searches",
            format!("{n}"),
            format!("{}", searches.len()),
        ));
    }
    if !(s_per_bin.is_finite() && s_per_bin > 0.0) {
        return Err(KernelError::value("s_per_bin", "must be finite and > 0"));
    }
    if !(df_step.is_finite() && df_step > 0.0) {
        return Err(KernelError::value("df_step", "must be finite and > 0"));
    }
    if !(optics.wavelength_a > 0.0 && optics.cs_a >= 0.0) {
        return Err(KernelError::value(
            "optics",
            "wavelength must be > 0 and Cs >= 0",
        ));
    }
    for (i, s) in searches.iter().enumerate() {
        let ok = s.s_lo.is_finite()
            && s.s_hi.is_finite()
            && s.s_lo >= 0.0
            && s.s_hi > s.s_lo
            && s.df_min.is_finite()
            && s.df_max.is_finite()
            && s.df_min > 0.0
            && s.df_max > s.df_min;
        if !ok {
            return Err(KernelError::value(
                "searches",
                format!("entry {i}: need 0 <= s_lo < s_hi and 0 < df_min < df_max, got {s:?}"),
            ));
        }
    }
    Ok(())
}

/// Flattened profile `i` and its fit range `[j0, j1)` of bins, or `None` when the range holds
/// fewer than 4 bins or the flattened profile is not finite.
fn flat_fit_range(
    profiles: &ArrayView2<f32>,
    i: usize,
    s_per_bin: f64,
    optics: &Optics,
    s: &Search,
) -> Option<(Vec<f64>, usize, usize)> {
    let nb = profiles.dim().1;
    let row: Vec<f32> = profiles.row(i).to_vec();
    let flat = flatten_profile(&row, s_per_bin, optics.wavelength_a, s.df_ref);
    let j0 = ((s.s_lo / s_per_bin).ceil() as usize).min(nb);
    let j1 = ((s.s_hi / s_per_bin).floor() as usize).min(nb);
    if j1 < j0 + 4 || !flat.iter().all(|v| v.is_finite()) {
        return None;
    }
    Some((flat, j0, j1))
}

/// Best defocus of one profile: the grid `df_min, df_min + df_step, …` (up to `df_max`), then
/// a golden-section refinement in `[best − step, best + step]`, kept only if it scores at least
/// as well. Returns `(defocus, score)`.
fn fit_one(score_at: impl Fn(f64) -> f64, s: &Search, df_step: f64) -> (f64, f64) {
    let steps = ((s.df_max - s.df_min) / df_step).ceil() as usize + 1;
    let (mut best, mut best_df) = (f64::NEG_INFINITY, s.df_min);
    for k in 0..steps {
        let df = (s.df_min + k as f64 * df_step).min(s.df_max);
        let c = score_at(df);
        if c > best {
            best = c;
            best_df = df;
        }
    }
    let (df, sc) = golden_max(&score_at, best_df - df_step, best_df + df_step);
    if sc >= best {
        (df, sc)
    } else {
        (best_df, best)
    }
}

/// Golden-section search (30 iterations) for the maximum of `f` in `[a, b]`: `(x, f(x))`.
fn golden_max(f: impl Fn(f64) -> f64, mut a: f64, mut b: f64) -> (f64, f64) {
    let g = 0.5 * (5f64.sqrt() - 1.0);
    let mut c = b - g * (b - a);
    let mut d = a + g * (b - a);
    let mut fc = f(c);
    let mut fd = f(d);
    for _ in 0..30 {
        if fc > fd {
            b = d;
            d = c;
            fd = fc;
            c = b - g * (b - a);
            fc = f(c);
        } else {
            a = c;
            c = d;
            fc = fd;
            d = a + g * (b - a);
            fd = f(d);
        }
    }
    if fc > fd {
        (c, fc)
    } else {
        (d, fd)
    }
}

/// Best defocus (Å) and its correlation score for every profile.
///
/// `profiles` is `(n, n_bins)` with bins uniform in `s = k²`, bin `j` centred at
/// `(j + ½)·s_per_bin` Å⁻²; one [`Search`] per profile; `df_step` is the grid step (Å).
pub fn fit_defocus_1d(
    profiles: ArrayView2<f32>,
    s_per_bin: f64,
    optics: Optics,
    searches: &[Search],
    df_step: f64,
) -> Result<(Vec<f64>, Vec<f64>), KernelError> {
    let n = profiles.dim().0;
    check_fit_args(n, s_per_bin, &optics, searches, df_step)?;
    let res: Vec<(f64, f64)> = (0..n)
        .into_par_iter()
        .map(|i| {
            let s = searches[i];
            let Some((flat, j0, j1)) = flat_fit_range(&profiles, i, s_per_bin, &optics, &s) else {
                return (f64::NAN, 0.0);
            };
            fit_one(
                |df| score(&flat, j0, j1, s_per_bin, &optics, df),
                &s,
                df_step,
            )
        })
        .collect();
    Ok(res.into_iter().unzip())
}

/// Correlation score of every profile on a defocus grid: `out[i, k]` = score of profile `i`
/// at `df = df_start[i] + k·df_step`, `k < n_steps` (fit range and background reference from
/// `searches[i]`; its `df_min/df_max` are ignored). Used for joint fits over many profiles
/// (e.g. the defocus gradient across a tilted image).
pub fn score_curves(
    profiles: ArrayView2<f32>,
    s_per_bin: f64,
    optics: Optics,
    searches: &[Search],
    df_start: &[f64],
    df_step: f64,
    n_steps: usize,
) -> Result<Array2<f64>, KernelError> {
    let n = profiles.dim().0;
    if searches.len() != n || df_start.len() != n {
        return Err(KernelError::shape(
            "searches/df_start",
            format!("{n} each"),
            format!("{}/{}", searches.len(), df_start.len()),
        ));
    }
    if !(s_per_bin.is_finite() && s_per_bin > 0.0) || !(df_step.is_finite() && df_step > 0.0) {
        return Err(KernelError::value(
            "s_per_bin/df_step",
            "must be finite and > 0",
        ));
    }
    if n_steps == 0 || n_steps > 1_000_000 {
        return Err(KernelError::value(
            "n_steps",
            format!("must lie in 1..=1e6, got {n_steps}"),
        ));
    }
    for (i, (s, d)) in searches.iter().zip(df_start.iter()).enumerate() {
        if !(s.s_lo.is_finite() && s.s_hi.is_finite() && s.s_lo >= 0.0 && s.s_hi > s.s_lo)
            || !d.is_finite()
        {
            return Err(KernelError::value(
                "searches",
                format!("entry {i}: need finite 0 <= s_lo < s_hi and a finite df_start"),
            ));
        }
    }
    let mut out = Array2::<f64>::zeros((n, n_steps));
    out.as_slice_mut()
        .ok_or_else(|| KernelError::value("out", "internal layout"))?
        .par_chunks_mut(n_steps)
        .enumerate()
        .for_each(|(i, row)| {
            let s = searches[i];
            let Some((flat, j0, j1)) = flat_fit_range(&profiles, i, s_per_bin, &optics, &s) else {
                return;
            };
            for (k, o) in row.iter_mut().enumerate() {
                let df = df_start[i] + k as f64 * df_step;
                *o = if df > 0.0 {
                    score(&flat, j0, j1, s_per_bin, &optics, df)
                } else {
                    0.0
                };
            }
        });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lambda300() -> f64 {
        // relativistic electron wavelength at 300 kV (Å)
        let v = 300e3f64;
        12.2643247 / (v * (1.0 + 0.978466e-6 * v)).sqrt()
    }

    #[test]
    fn wavelength_is_right() {
        assert!((lambda300() - 0.019688).abs() < 1e-5);
    }

    #[test]
    fn tiles_and_centres() {
        let img = Array2::<f32>::zeros((100, 80));
        let t = Tiling {
            tile: 32,
            step: 16,
            n_bins: 16,
            astig: 0.0,
            astig_angle: 0.0,
        };
        let (p, c, counts) = tile_profiles(img.view(), t).unwrap();
        assert_eq!(p.dim(), (5 * 4, 16));
        assert!(counts.iter().all(|&k| k > 0));
        // symmetric margins: centres symmetric about 0
        let sx: f64 = c.column(0).iter().sum();
        let sy: f64 = c.column(1).iter().sum();
        assert!(sx.abs() < 1e-9 && sy.abs() < 1e-9);
    }

    #[test]
    fn errors_not_panics() {
        let img = Array2::<f32>::zeros((10, 10));
        let t = Tiling {
            tile: 32,
            step: 16,
            n_bins: 16,
            astig: 0.0,
            astig_angle: 0.0,
        };
        assert!(tile_profiles(img.view(), t).is_err());
        let t2 = Tiling { tile: 15, ..t };
        assert!(tile_profiles(Array2::<f32>::zeros((64, 64)).view(), t2).is_err());
        let p = Array2::<f32>::zeros((1, 16));
        let o = Optics {
            wavelength_a: 0.0197,
            cs_a: 2.7e7,
            amplitude_contrast: 0.07,
        };
        let bad = Search {
            s_lo: 0.1,
            s_hi: 0.0,
            df_min: 1.0,
            df_max: 2.0,
            df_ref: 1.0,
        };
        assert!(fit_defocus_1d(p.view(), 1e-3, o, &[bad], 10.0).is_err());
        assert!(fit_defocus_1d(p.view(), 1e-3, o, &[], 10.0).is_err());
    }

    #[test]
    fn recovers_defocus_of_a_synthetic_profile() {
        let lam = lambda300();
        let o = Optics {
            wavelength_a: lam,
            cs_a: 2.7e7,
            amplitude_contrast: 0.07,
        };
        let nb = 256;
        let px = 3.0;
        let s_per_bin = 0.25 / (px * px) / nb as f64;
        for &df in &[15000.0f64, 27345.0, 41000.0] {
            let phase_a = 0.07f64.asin();
            let prof: Array2<f32> = Array2::from_shape_fn((1, nb), |(_, j)| {
                let s = (j as f64 + 0.5) * s_per_bin;
                let chi = PI * lam * df * s - 0.5 * PI * 2.7e7 * lam.powi(3) * s * s;
                let ctf2 = (chi + phase_a).sin().powi(2);
                let env = (-60.0 * s).exp();
                (10.0 * (-200.0 * s).exp() + ctf2 * env) as f32
            });
            let se = Search {
                s_lo: 1.0 / 900.0,
                s_hi: 0.9 * 0.25 / (px * px),
                df_min: 5000.0,
                df_max: 60000.0,
                df_ref: 30000.0,
            };
            let (d, sc) = fit_defocus_1d(prof.view(), s_per_bin, o, &[se], 50.0).unwrap();
            assert!((d[0] - df).abs() < 30.0, "df {df}: got {}", d[0]);
            assert!(sc[0] > 0.5);
        }
    }

    #[test]
    fn score_curves_peak_at_the_fit() {
        let lam = lambda300();
        let o = Optics {
            wavelength_a: lam,
            cs_a: 2.7e7,
            amplitude_contrast: 0.07,
        };
        let nb = 128;
        let s_per_bin = 0.25 / 9.0 / nb as f64;
        let df = 21000.0;
        let prof: Array2<f32> = Array2::from_shape_fn((2, nb), |(_, j)| {
            let s = (j as f64 + 0.5) * s_per_bin;
            let chi = PI * lam * df * s - 0.5 * PI * 2.7e7 * lam.powi(3) * s * s;
            ((chi + 0.07f64.asin()).sin().powi(2) + 3.0 * (-300.0 * s).exp()) as f32
        });
        let se = Search {
            s_lo: 1.0 / 900.0,
            s_hi: 0.02,
            df_min: 1.0,
            df_max: 2.0,
            df_ref: df,
        };
        let c = score_curves(
            prof.view(),
            s_per_bin,
            o,
            &[se, se],
            &[15000.0, 20000.0],
            10.0,
            1001,
        )
        .unwrap();
        let k0 = (0..1001)
            .max_by(|&a, &b| c[[0, a]].total_cmp(&c[[0, b]]))
            .unwrap();
        let k1 = (0..1001)
            .max_by(|&a, &b| c[[1, a]].total_cmp(&c[[1, b]]))
            .unwrap();
        assert!((15000.0 + 10.0 * k0 as f64 - df).abs() <= 20.0);
        assert!((20000.0 + 10.0 * k1 as f64 - df).abs() <= 20.0);
        assert!(score_curves(prof.view(), s_per_bin, o, &[se], &[1.0], 10.0, 5).is_err());
    }

    #[test]
    fn ring_profile_of_a_ctf_image() {
        // an image whose power spectrum is a pure CTF² pattern: fit gives its defocus
        let lam = lambda300();
        let n = 128usize;
        let px = 3.0;
        let df = 22000.0;
        let mut img = Array2::<f32>::zeros((n, n));
        // superpose cosines on rings: sum over a few frequencies weighted by CTF²
        let phase_a = 0.07f64.asin();
        let mut seed = 12345u64;
        for _ in 0..3000 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let kx = ((seed >> 33) % 64) as f64;
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let ky = ((seed >> 33) % 127) as f64 - 63.0;
            let s = (kx * kx + ky * ky) / (n as f64 * n as f64) / (px * px);
            let chi = PI * lam * df * s - 0.5 * PI * 2.7e7 * lam.powi(3) * s * s;
            let a = (chi + phase_a).sin().abs();
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let ph = (seed >> 11) as f64 / (1u64 << 53) as f64 * 2.0 * PI;
            for y in 0..n {
                for x in 0..n {
                    let arg = 2.0 * PI * (kx * x as f64 + ky * y as f64) / n as f64 + ph;
                    img[[y, x]] += (a * arg.cos()) as f32;
                }
            }
        }
        let t = Tiling {
            tile: 128,
            step: 128,
            n_bins: 64,
            astig: 0.0,
            astig_angle: 0.0,
        };
        let (p, _, _) = tile_profiles(img.view(), t).unwrap();
        let s_per_bin = 0.25 / (px * px) / 64.0;
        let o = Optics {
            wavelength_a: lam,
            cs_a: 2.7e7,
            amplitude_contrast: 0.07,
        };
        let se = Search {
            s_lo: 1.0 / 900.0,
            s_hi: 0.9 * 0.25 / (px * px),
            df_min: 8000.0,
            df_max: 40000.0,
            df_ref: 22000.0,
        };
        let (d, _) = fit_defocus_1d(p.view(), s_per_bin, o, &[se], 50.0).unwrap();
        assert!((d[0] - df).abs() < 400.0, "got {}", d[0]);
    }
}
