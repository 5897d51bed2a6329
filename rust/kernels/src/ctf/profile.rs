//! A radial profile against the CTF model: the optics and per-profile search settings, the
//! background-subtracted, RMS-normalised profile and its correlation with the CTF² oscillation.

use std::f64::consts::PI;

use ndarray::ArrayView2;

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
pub(super) fn score(
    flat: &[f64],
    j0: usize,
    j1: usize,
    s_per_bin: f64,
    o: &Optics,
    df: f64,
) -> f64 {
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

/// Flattened profile `i` and its fit range `[j0, j1)` of bins, or `None` when the range holds
/// fewer than 4 bins or the flattened profile is not finite.
pub(super) fn flat_fit_range(
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
