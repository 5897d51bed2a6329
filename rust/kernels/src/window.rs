//! Windows, each defined once: the cosine [`ramp`], the edge taper ([`taper_1d`], the
//! fraction-parametrised [`tukey`], the separable weighted-mean taper [`SeparableTaper`]), the
//! crop weights [`span_weights`] and the soft border mask ([`RampTable`], [`soft_mask`]).
//!
//! Every window here is the same raised-cosine edge: a sample at distance `d` (pixels) from the
//! outer edge of the data, the first pixel centre being at `d = 0.5`, has weight
//! `½(1 − cos(π d / w))` for `0 < d < w` (ramp width `w`), 1 from `d ≥ w` on, 0 for `d ≤ 0`.
//! (The Tukey window of fraction `α` is the ramp of width `α·n`; the CTF tile window is the
//! ramp of width `n/8`.) Users: `xcorr` (translation correlation taper), `logpolar`
//! (Fourier–Mellin apodisation), `ctf` (tile window), `crossmag` (crop weights, patch mask).

use rayon::prelude::*;

/// Cosine ramp weight at distance `t` (pixels, measured from the outer edge of the data, the
/// first pixel centre being at 0.5) over a taper of `width` pixels: 0 outside, 1 inside.
#[inline]
pub fn ramp(t: f64, width: f64) -> f64 {
    if t <= 0.0 {
        0.0
    } else if width <= 0.0 || t >= width {
        1.0
    } else {
        0.5 * (1.0 - (std::f64::consts::PI * t / width).cos())
    }
}

/// Distance of sample `i` (pixel centre `i`) of an axis of `n` samples to the nearer outer edge
/// of the axis, the argument of [`ramp`]: `min(i + ½, n − ½ − i)` (`i` may be fractional).
#[inline]
pub fn edge_distance(i: f64, n: f64) -> f64 {
    (i + 0.5).min(n - 0.5 - i)
}

/// 1-D taper weights of `n` samples with a cosine ramp of `width` pixels at both ends.
pub fn taper_1d(n: usize, width: f64) -> Vec<f64> {
    (0..n)
        .map(|i| ramp(edge_distance(i as f64, n as f64), width))
        .collect()
}

/// [`taper_1d`] rounded to f32.
pub fn taper_1d_f32(n: usize, width: f64) -> Vec<f32> {
    taper_1d(n, width).into_iter().map(|v| v as f32).collect()
}

/// 1-D Tukey window of length `n` with cosine ramps of `fraction · n` samples on each side
/// (`fraction = 0.5` is the full Hann window; `0` is flat): [`taper_1d`] of width
/// `clamp(fraction, 0, ½)·n`. Ramp sample `k` (0-based) has weight `½ − ½ cos(π (k + ½) / w)`.
pub fn tukey(n: usize, fraction: f64) -> Vec<f32> {
    let w = (fraction.clamp(0.0, 0.5) * n as f64).max(0.0);
    taper_1d_f32(n, w)
}

/// 1-D weights of a crop `[o, o + w)` of an axis of length `n`: the ramp of width `taper`
/// inside the part of the crop that lies on the axis (`[max(o, 0), min(o + w, n))`), 0 outside;
/// and the 0/1 validity of each crop sample.
pub fn span_weights(o: isize, w: usize, n: usize, taper: f64) -> (Vec<f64>, Vec<f32>) {
    let lo = o.max(0);
    let hi = (o + w as isize).min(n as isize);
    let mut wt = vec![0.0; w];
    let mut valid = vec![0.0f32; w];
    for (i, (a, v)) in wt.iter_mut().zip(valid.iter_mut()).enumerate() {
        let p = o + i as isize;
        if p >= lo && p < hi {
            *a = ramp(edge_distance((p - lo) as f64, (hi - lo) as f64), taper);
            *v = 1.0;
        }
    }
    (wt, valid)
}

/// The cosine ramp [`ramp`] of one width, tabulated (linear interpolation between 4096
/// samples: |error| < 2e-7): a soft mask evaluates it at every pixel of every patch, and `cos`
/// dominated the mask's cost.
pub struct RampTable {
    width: f64,
    inv_step: f64,
    tab: Vec<f64>,
}

impl RampTable {
    const N: usize = 4096;

    pub fn new(width: f64) -> Self {
        let w = width.max(0.0);
        let tab = (0..=Self::N + 1)
            .map(|k| ramp(w * k as f64 / Self::N as f64, w))
            .collect();
        RampTable {
            width: w,
            inv_step: if w > 0.0 { Self::N as f64 / w } else { 0.0 },
            tab,
        }
    }

    /// [`ramp`]`(t, width)` within 2e-7.
    #[inline]
    pub fn at(&self, t: f64) -> f64 {
        if t <= 0.0 {
            0.0
        } else if t >= self.width {
            1.0
        } else {
            let u = t * self.inv_step;
            let k = (u as usize).min(Self::N - 1);
            let f = u - k as f64;
            self.tab[k] + f * (self.tab[k + 1] - self.tab[k])
        }
    }
}

/// Soft border mask at the (sub-pixel) position `(sx, sy)` of an `(ny, nx)` image: the ramp of
/// the distance to the image border along x times the one along y (0 outside the image).
#[inline]
pub fn soft_mask(tab: &RampTable, sx: f64, sy: f64, nx: usize, ny: usize) -> f64 {
    tab.at(edge_distance(sx, nx as f64)) * tab.at(edge_distance(sy, ny as f64))
}

/// The separable taper `w(y, x) = wy[y]·wx[x]` (ramps of `taper` px) of a contiguous `(ny, nx)`
/// image together with the image's weighted mean `μ_w = Σ w·v / Σ w`: [`row`](Self::row) writes
/// `w·(v − μ_w)`, the zero-mean tapered image correlations transform.
pub struct SeparableTaper {
    pub wy: Vec<f32>,
    pub wx: Vec<f32>,
    pub mean: f32,
}

impl SeparableTaper {
    /// Weights and weighted mean of the contiguous `(ny, nx)` image `data`.
    pub fn new(data: &[f32], ny: usize, nx: usize, taper: f64) -> Self {
        let wy = taper_1d_f32(ny, taper);
        let wx = taper_1d_f32(nx, taper);
        // Σ wx is the same for every row; Σ wx·v uses 8 independent f64 lanes (no serial
        // dependency chain: this pass runs at memory speed)
        let a: f64 = wx.iter().map(|&w| w as f64).sum();
        let (sw, swv) = data
            .par_chunks(nx)
            .zip(wy.par_iter())
            .with_min_len(16)
            .map(|(row, &w_y)| {
                let mut lanes = [0.0f64; 8];
                let (rc, wc) = (row.chunks_exact(8), wx.chunks_exact(8));
                let (rr, wr) = (rc.remainder(), wc.remainder());
                for (r8, w8) in rc.zip(wc) {
                    for k in 0..8 {
                        lanes[k] += (w8[k] * r8[k]) as f64;
                    }
                }
                let mut b: f64 = lanes.iter().sum();
                for (v, &w_x) in rr.iter().zip(wr.iter()) {
                    b += (w_x * *v) as f64;
                }
                (w_y as f64 * a, w_y as f64 * b)
            })
            .reduce(|| (0.0, 0.0), |p, q| (p.0 + q.0, p.1 + q.1));
        let mean = if sw > 0.0 { (swv / sw) as f32 } else { 0.0 };
        SeparableTaper { wy, wx, mean }
    }

    /// Row `y` of the tapered, mean-removed image `data` (`(ny, nx)`, `ny = wy.len()`) placed
    /// at the origin of a wider zero frame: writes `buf` (frame width ≥ nx) and returns `false`
    /// (leaving `buf` alone) when the row is outside the image.
    #[inline]
    pub fn row(&self, data: &[f32], y: usize, buf: &mut [f32]) -> bool {
        let (ny, nx) = (self.wy.len(), self.wx.len());
        if y >= ny {
            return false;
        }
        let (w_y, mu) = (self.wy[y], self.mean);
        let row = &data[y * nx..(y + 1) * nx];
        for ((o, v), &w_x) in buf[..nx].iter_mut().zip(row.iter()).zip(self.wx.iter()) {
            *o = w_y * w_x * (*v - mu);
        }
        buf[nx..].fill(0.0);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Tukey window as `logpolar::tukey` computed it before this module.
    fn tukey_before(n: usize, fraction: f64) -> Vec<f32> {
        let w = (fraction.clamp(0.0, 0.5) * n as f64).max(0.0);
        (0..n)
            .map(|k| {
                let d = (k as f64).min((n - 1 - k) as f64) + 0.5;
                if d >= w {
                    1.0
                } else {
                    (0.5 - 0.5 * (std::f64::consts::PI * d / w).cos()) as f32
                }
            })
            .collect()
    }

    /// The tile window as `ctf::tile_profiles` computed it before this module.
    fn ctf_window_before(n: usize) -> Vec<f32> {
        let edge = (n / 8).max(1);
        (0..n)
            .map(|i| {
                let d = i.min(n - 1 - i);
                if d >= edge {
                    1.0
                } else {
                    (0.5 - 0.5 * (std::f64::consts::PI * (d as f64 + 0.5) / edge as f64).cos())
                        as f32
                }
            })
            .collect()
    }

    #[test]
    fn tukey_and_ctf_window_are_the_ramp_bit_for_bit() {
        for n in [1usize, 2, 3, 7, 8, 16, 33, 64, 100, 255, 256, 1000] {
            for fraction in [0.0, 0.01, 0.1, 0.125, 0.25, 0.3333, 0.5, 0.7, -0.2] {
                assert_eq!(
                    tukey(n, fraction),
                    tukey_before(n, fraction),
                    "{n} {fraction}"
                );
            }
            let edge = (n / 8).max(1) as f64;
            assert_eq!(taper_1d_f32(n, edge), ctf_window_before(n), "{n}");
        }
    }

    #[test]
    fn ramp_ends_and_symmetry() {
        assert_eq!(ramp(0.0, 4.0), 0.0);
        assert_eq!(ramp(-1.0, 4.0), 0.0);
        assert_eq!(ramp(4.0, 4.0), 1.0);
        assert_eq!(ramp(0.5, 0.0), 1.0);
        assert!((ramp(2.0, 4.0) - 0.5).abs() < 1e-15);
        // ramp(t) + ramp(w − t) = 1
        for k in 1..40 {
            let t = 4.0 * k as f64 / 40.0;
            assert!((ramp(t, 4.0) + ramp(4.0 - t, 4.0) - 1.0).abs() < 1e-15);
        }
        let w = taper_1d(9, 3.0);
        for i in 0..9 {
            assert_eq!(w[i], w[8 - i]);
        }
        assert_eq!(w[4], 1.0);
        assert!((w[0] - 0.5 * (1.0 - (std::f64::consts::PI / 6.0).cos())).abs() < 1e-15);
    }

    #[test]
    fn ramp_table_is_within_2e7_of_the_ramp() {
        for width in [0.0, 0.5, 3.0, 17.25, 200.0] {
            let tab = RampTable::new(width);
            for k in -10..=2000 {
                let t = width * 1.2 * k as f64 / 1900.0;
                assert!((tab.at(t) - ramp(t, width)).abs() < 2e-7, "{width} {t}");
            }
        }
        let tab = RampTable::new(4.0);
        let m = soft_mask(&tab, 1.3, 9.0, 20, 20);
        assert!((m - ramp(1.8, 4.0)).abs() < 2e-7);
        assert_eq!(soft_mask(&tab, -0.6, 5.0, 20, 20), 0.0);
    }

    #[test]
    fn span_weights_ramp_inside_the_axis_only() {
        // crop [-3, 9) of an axis of 6 samples: valid 0..6 → crop indices 3..9
        let (w, v) = span_weights(-3, 12, 6, 2.0);
        assert_eq!(v, [0., 0., 0., 1., 1., 1., 1., 1., 1., 0., 0., 0.]);
        let t = taper_1d(6, 2.0);
        for i in 0..6 {
            assert_eq!(w[3 + i], t[i]);
        }
        assert_eq!(w[0], 0.0);
        assert_eq!(w[11], 0.0);
    }

    #[test]
    fn separable_taper_rows_are_zero_mean_under_the_weights() {
        let (ny, nx) = (13usize, 21usize);
        let data: Vec<f32> = (0..ny * nx).map(|i| ((i * 7) % 11) as f32 + 3.0).collect();
        let t = SeparableTaper::new(&data, ny, nx, 4.0);
        let mut buf = vec![9.0f32; 30];
        let mut sum = 0.0f64;
        for y in 0..ny {
            assert!(t.row(&data, y, &mut buf));
            assert!(buf[nx..].iter().all(|&v| v == 0.0));
            for x in 0..nx {
                let w = t.wy[y] as f64 * t.wx[x] as f64;
                assert!((buf[x] as f64 - w * (data[y * nx + x] - t.mean) as f64).abs() < 1e-5);
                sum += buf[x] as f64;
            }
        }
        assert!(sum.abs() < 1e-3, "{sum}");
        assert!(!t.row(&data, ny, &mut buf));
    }
}
