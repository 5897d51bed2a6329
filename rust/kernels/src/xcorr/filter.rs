//! The IMOD four-parameter radial filter (see the module documentation of [`crate::xcorr`]):
//! its value at a frequency and its tables on the half-spectrum grid, cached per shape.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use ndarray::{Array2, Axis};
use rayon::prelude::*;

use crate::fft::{signed_freq, C32};
use crate::KernelError;

/// IMOD filter parameters (cycles/pixel).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FilterParams {
    pub sigma1: f64,
    pub sigma2: f64,
    pub radius1: f64,
    pub radius2: f64,
}

impl FilterParams {
    /// SerialEM AutoAlign defaults (`ShiftManager.cpp`: mSigma1 0.03, mSigma2 0.05, mRadius2 0.25).
    pub const SERIALEM: FilterParams = FilterParams {
        sigma1: 0.03,
        sigma2: 0.05,
        radius1: 0.0,
        radius2: 0.25,
    };
    pub const NONE: FilterParams = FilterParams {
        sigma1: 0.0,
        sigma2: 0.0,
        radius1: 0.0,
        radius2: 0.0,
    };

    pub fn is_identity(&self) -> bool {
        self.sigma1.abs() <= 1e-6 && self.sigma2.abs() <= 1e-6
    }

    pub fn check(&self) -> Result<(), KernelError> {
        for (v, n) in [
            (self.sigma1, "sigma1"),
            (self.sigma2, "sigma2"),
            (self.radius1, "radius1"),
            (self.radius2, "radius2"),
        ] {
            if !v.is_finite() {
                return Err(KernelError::value(
                    "filter",
                    format!("{n} must be finite, got {v}"),
                ));
            }
        }
        Ok(())
    }

    /// Filter value at spatial frequency `s` (cycles/pixel).
    pub fn value(&self, s: f64) -> f64 {
        if self.is_identity() {
            return 1.0;
        }
        let (r1p, r1n) = if self.radius1 >= 0.0 {
            (self.radius1, 0.0)
        } else {
            (0.0, -self.radius1)
        };
        let beta = if self.sigma2.abs() > 1e-6 {
            -0.5 / (self.sigma2 * self.sigma2)
        } else {
            0.0
        };
        let alpha = if self.sigma1.abs() > 1e-6 {
            -0.5 / (self.sigma1 * self.sigma1)
        } else {
            0.0
        };
        let mut v = if s < r1p {
            (beta * (s - r1p) * (s - r1p)).exp()
        } else if s > self.radius2 {
            (beta * (s - self.radius2) * (s - self.radius2)).exp()
        } else {
            1.0
        };
        if self.sigma2 < -1e-6 {
            v = 1.0 - v;
        }
        if self.sigma1 > 1e-6 {
            v *= if s < r1n {
                0.0
            } else {
                1.0 - (alpha * (s - r1n) * (s - r1n)).exp()
            };
        } else if self.sigma1 < -1e-6 {
            // maximum of s²·exp(alpha s²) is at s² = −1/alpha: value (−1/alpha)·e^{−1}
            let delmax = (-1.0 / alpha) * (-1.0f64).exp();
            v *= s * s * (alpha * s * s).exp() / delmax;
        }
        if v < 1e-6 {
            0.0
        } else {
            v
        }
    }
}

/// The filter `H^power` on the transposed half-spectrum grid of an `(ny, nx)` image
/// (`(nx/2+1, ny)`), cached per (shape, parameters, power): search points reuse it.
pub fn filter_table(ny: usize, nx: usize, f: &FilterParams, power: f64) -> Arc<Array2<f32>> {
    type Key = (usize, usize, [u64; 5]);
    static CACHE: OnceLock<Mutex<HashMap<Key, Arc<Array2<f32>>>>> = OnceLock::new();
    let key: Key = (
        ny,
        nx,
        [
            f.sigma1.to_bits(),
            f.sigma2.to_bits(),
            f.radius1.to_bits(),
            f.radius2.to_bits(),
            power.to_bits(),
        ],
    );
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    if let Some(t) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return Arc::clone(t);
    }
    let nxc = nx / 2 + 1;
    let mut t = Array2::<f32>::zeros((nxc, ny));
    t.axis_iter_mut(Axis(0))
        .into_par_iter()
        .enumerate()
        .for_each(|(kx, mut row)| {
            let fx = kx as f64 / nx as f64;
            for (ky, v) in row.iter_mut().enumerate() {
                let fy = signed_freq(ky, ny) as f64 / ny as f64;
                let h = f.value((fx * fx + fy * fy).sqrt());
                *v = (if power == 1.0 { h } else { h.powf(power) }) as f32;
            }
        });
    let t = Arc::new(t);
    let mut c = cache.lock().unwrap_or_else(|e| e.into_inner());
    if c.len() > 64 {
        c.clear();
    }
    c.insert(key, Arc::clone(&t));
    t
}

/// Multiply a transposed half-spectrum (`(nx/2+1, ny)`, see [`crate::fft`]) of an `(ny, nx)`
/// image by `H(s)^power`.
pub fn apply_filter(spec: &mut Array2<C32>, ny: usize, nx: usize, f: &FilterParams, power: f64) {
    if f.is_identity() || power == 0.0 {
        return;
    }
    let t = filter_table(ny, nx, f, power);
    spec.axis_iter_mut(Axis(0))
        .into_par_iter()
        .zip(t.axis_iter(Axis(0)).into_par_iter())
        .for_each(|(mut row, trow)| {
            for (v, h) in row.iter_mut().zip(trow.iter()) {
                *v *= *h;
            }
        });
}
