//! The defocus fits of radial profiles: argument checks, the grid search with golden-section
//! refinement of [`fit_defocus_1d`], and the score grid of [`score_curves`] for joint fits.

use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;

use super::profile::{flat_fit_range, score, Optics, Search};
use crate::KernelError;

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

/// Checks the arguments of [`score_curves`] for `n` profiles.
fn check_curve_args(
    n: usize,
    s_per_bin: f64,
    searches: &[Search],
    df_start: &[f64],
    df_step: f64,
    n_steps: usize,
) -> Result<(), KernelError> {
    if searches.len() != n || df_start.len() != n {
        return Err(KernelError::shape(
            "searches/df_start",
            format!("{n} each"),
            format!("{}/{}", searches.len(), df_start.len()),
        ));
    }
    if !(s_per_bin.is_finite() && s_per_bin > 0.0 && df_step.is_finite() && df_step > 0.0) {
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
        let ok = s.s_lo.is_finite()
            && s.s_hi.is_finite()
            && s.s_lo >= 0.0
            && s.s_hi > s.s_lo
            && d.is_finite();
        if !ok {
            return Err(KernelError::value(
                "searches",
                format!("entry {i}: need finite 0 <= s_lo < s_hi and a finite df_start"),
            ));
        }
    }
    Ok(())
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
    check_curve_args(n, s_per_bin, searches, df_start, df_step, n_steps)?;
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
