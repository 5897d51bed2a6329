//! Forward model of the cross-magnification maximum-likelihood refinement.
//!
//! [`area_predict`] integrates the finer image over the footprint of every pixel of a box of the
//! coarser image and returns the prediction and its derivatives with respect to the pose
//! `(tx, ty, s, θ)`. Sampling: the mean of `k × k` samples at `q + o`, `o` on a centred grid in
//! `[−½, ½]²`, mapped into the fine image by `u = c + R(θ)ᵀ (q + o − t) / s`, bilinear between
//! the fine image's pixel centres (exact derivatives of the bilinear interpolant, samples
//! clamped to the image). Numpy reference: `emgeom.reference.crossmag.area_predict`.

use ndarray::{s, Array2, Array3, Array4, ArrayView2, ArrayView3, Axis};
use rayon::prelude::*;

use crate::KernelError;

/// Pose of the fine image in the coarse one: `t` = where the fine point `c` lands, `s` coarse
/// pixels per fine pixel, `theta` in radians.
#[derive(Clone, Copy, Debug)]
pub struct Pose {
    pub tx: f64,
    pub ty: f64,
    pub s: f64,
    pub theta: f64,
}

/// Largest number of samples `k` per footprint axis.
pub const MAX_K: usize = 64;
/// Largest number of box pixels.
pub const MAX_BOX_PIXELS: usize = 1 << 26;

/// Largest number of images predicted together by [`area_predict_stack`].
pub const MAX_STACK: usize = 8;

/// Prediction `P` `(ny, nx)` and derivatives `(4, ny, nx)` over `box_ = (x0, y0, nx, ny)`.
pub fn area_predict(
    fine: ArrayView2<f32>,
    pose: Pose,
    center: (f64, f64),
    box_: (i64, i64, usize, usize),
    k: usize,
) -> Result<(Array2<f64>, Array3<f64>), KernelError> {
    let out = area_predict_stack(fine.insert_axis(Axis(0)), pose, center, box_, k, [true; 4])?;
    let p = out.slice(s![0, 0, .., ..]).to_owned();
    let d = out.slice(s![0, 1.., .., ..]).to_owned();
    Ok((p, d))
}

/// The forward model of several images of the same shape at one pose, sharing the sampling
/// geometry (the refinement predicts the image, a smoothed copy and noise images together).
///
/// `images`: `(n, h, w)`, `n` ≤ [`MAX_STACK`]; `derivs[j]`: whether the derivative with respect
/// to parameter `j` of `(tx, ty, s, θ)` is wanted. Returns `(n, 1 + n_d, ny, nx)`: plane 0 the
/// prediction, planes `1..` the wanted derivatives in parameter order (each plane equal to
/// [`area_predict`]'s up to rounding: the same samples, sums regrouped).
pub fn area_predict_stack(
    images: ArrayView3<f32>,
    pose: Pose,
    center: (f64, f64),
    box_: (i64, i64, usize, usize),
    k: usize,
    derivs: [bool; 4],
) -> Result<Array4<f64>, KernelError> {
    check_area_args(images.dim(), pose, center, box_, k)?;
    let (n_img, h, w) = images.dim();
    let (x0, y0, nx, ny) = box_;
    let std = images.as_standard_layout();
    let smp = Sampling::new(
        std.as_slice().expect("standard layout"),
        (n_img, h, w),
        pose,
        center,
        k,
    );
    let want: Vec<usize> = (0..4).filter(|&j| derivs[j]).collect();
    let any_d = !want.is_empty();
    let n_pl = 1 + want.len();
    let col = smp.column_terms(x0, nx);
    // one row of the box per task: n_img × n_pl rows of nx values
    let rows: Vec<Vec<f64>> = (0..ny)
        .into_par_iter()
        .map(|iy| {
            let mut out = vec![0.0; n_img * n_pl * nx];
            let row = smp.row_terms((y0 + iy as i64) as f64);
            // per image: Σ value, Σ gx, Σ gy, Σ gx·wx, Σ gy·wy, Σ gx·wy, Σ gy·wx
            let mut acc = [[0.0f64; 7]; MAX_STACK];
            for ix in 0..nx {
                for a in acc.iter_mut().take(n_img) {
                    *a = [0.0; 7];
                }
                smp.accumulate(&mut acc, &row, &col[ix * k..(ix + 1) * k], any_d);
                for (m, a) in acc.iter().enumerate().take(n_img) {
                    smp.write_planes(&mut out[m * n_pl * nx + ix..], a, &want, nx);
                }
            }
            out
        })
        .collect();
    Ok(assemble_rows(rows, (n_img, n_pl, ny, nx)))
}

/// Bounds on the arguments of [`area_predict_stack`] (images `(n, h, w)`), checked before any
/// allocation.
fn check_area_args(
    dim: (usize, usize, usize),
    pose: Pose,
    center: (f64, f64),
    box_: (i64, i64, usize, usize),
    k: usize,
) -> Result<(), KernelError> {
    let (n_img, h, w) = dim;
    if n_img == 0 || n_img > MAX_STACK {
        return Err(KernelError::value(
            "images",
            format!("must hold 1..={MAX_STACK} images, got {n_img}"),
        ));
    }
    if h < 2 || w < 2 {
        return Err(KernelError::value("fine", "needs at least 2 x 2 pixels"));
    }
    if !(pose.s.is_finite() && pose.s > 0.0) {
        return Err(KernelError::value("s", "must be finite and > 0"));
    }
    if !(pose.tx.is_finite() && pose.ty.is_finite() && pose.theta.is_finite()) {
        return Err(KernelError::value("pose", "must be finite"));
    }
    if !(center.0.is_finite() && center.1.is_finite()) {
        return Err(KernelError::value("center", "must be finite"));
    }
    if k == 0 || k > MAX_K {
        return Err(KernelError::value(
            "k",
            format!("must be in 1..={MAX_K}, got {k}"),
        ));
    }
    let (_, _, nx, ny) = box_;
    if nx == 0 || ny == 0 || nx.checked_mul(ny).is_none_or(|n| n > MAX_BOX_PIXELS) {
        return Err(KernelError::value(
            "box",
            format!("must have 1..={MAX_BOX_PIXELS} pixels, got {nx} x {ny}"),
        ));
    }
    Ok(())
}

/// The sampling geometry of one pose: the images `(n, h, w)` (contiguous), the footprint
/// offsets and the rotation/scale that maps a coarse sample into the fine images.
struct Sampling<'a> {
    data: &'a [f32],
    n_img: usize,
    h: usize,
    w: usize,
    pose: Pose,
    center: (f64, f64),
    /// cos θ, sin θ, 1/s.
    c: f64,
    sn: f64,
    inv_s: f64,
    /// Sample offsets on a centred grid in `[−½, ½]` (k of them) and 1/k².
    offs: Vec<f64>,
    norm: f64,
}

impl<'a> Sampling<'a> {
    fn new(
        data: &'a [f32],
        (n_img, h, w): (usize, usize, usize),
        pose: Pose,
        center: (f64, f64),
        k: usize,
    ) -> Self {
        Sampling {
            data,
            n_img,
            h,
            w,
            pose,
            center,
            c: pose.theta.cos(),
            sn: pose.theta.sin(),
            inv_s: 1.0 / pose.s,
            offs: (0..k).map(|i| (i as f64 + 0.5) / k as f64 - 0.5).collect(),
            norm: 1.0 / (k * k) as f64,
        }
    }

    /// w = R(θ)ᵀ (q + o − t) / s splits into a column part (x of the sample) and a row part
    /// (y of the sample): wx = c·vx/s + sn·vy/s, wy = −sn·vx/s + c·vy/s. The column parts
    /// `(c·vx/s, −sn·vx/s)` of the `k` samples of each of the `nx` box columns from `x0`.
    fn column_terms(&self, x0: i64, nx: usize) -> Vec<(f64, f64)> {
        let (c, sn, inv_s, tx) = (self.c, self.sn, self.inv_s, self.pose.tx);
        (0..nx)
            .flat_map(|ix| {
                let qx = (x0 + ix as i64) as f64;
                self.offs
                    .iter()
                    .map(move |ox| {
                        let vx = qx + ox - tx;
                        (c * vx * inv_s, -sn * vx * inv_s)
                    })
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// The row parts `(sn·vy/s, c·vy/s)` of the `k` samples of the box row at `qy`.
    fn row_terms(&self, qy: f64) -> Vec<(f64, f64)> {
        self.offs
            .iter()
            .map(|oy| {
                let vy = qy + oy - self.pose.ty;
                (self.sn * vy * self.inv_s, self.c * vy * self.inv_s)
            })
            .collect()
    }

    /// Accumulate the `k × k` samples of one box pixel (its row and column parts) into `acc`
    /// (per image: Σ value, and with `any_d` Σ gx, Σ gy, Σ gx·wx, Σ gy·wy, Σ gx·wy, Σ gy·wx),
    /// bilinear between the fine pixel centres, samples clamped to the image.
    #[inline]
    fn accumulate(
        &self,
        acc: &mut [[f64; 7]; MAX_STACK],
        row: &[(f64, f64)],
        cols: &[(f64, f64)],
        any_d: bool,
    ) {
        let (h, w) = (self.h, self.w);
        let plane = h * w;
        let (wm1, hm1) = ((w - 1) as f64, (h - 1) as f64);
        let data = self.data;
        for &(ry, rx) in row {
            for &(cx, cy) in cols {
                let wx = cx + ry;
                let wy = cy + rx;
                let ux = (self.center.0 + wx).clamp(0.0, wm1);
                let uy = (self.center.1 + wy).clamp(0.0, hm1);
                // (ux, uy ≥ 0: truncation is the floor)
                let jx = (ux as usize).min(w - 2);
                let jy = (uy as usize).min(h - 2);
                let (fx, fy) = (ux - jx as f64, uy - jy as f64);
                let i0 = jy * w + jx;
                for (m, a) in acc.iter_mut().enumerate().take(self.n_img) {
                    let base = m * plane + i0;
                    let r0 = &data[base..base + 2];
                    let r1 = &data[base + w..base + w + 2];
                    let (m00, m01) = (r0[0] as f64, r0[1] as f64);
                    let (m10, m11) = (r1[0] as f64, r1[1] as f64);
                    let top = m00 + fx * (m01 - m00);
                    let bot = m10 + fx * (m11 - m10);
                    a[0] += top + fy * (bot - top);
                    if any_d {
                        let gx = (1.0 - fy) * (m01 - m00) + fy * (m11 - m10);
                        let gy = bot - top;
                        a[1] += gx;
                        a[2] += gy;
                        a[3] += gx * wx;
                        a[4] += gy * wy;
                        a[5] += gx * wy;
                        a[6] += gy * wx;
                    }
                }
            }
        }
    }

    /// One pixel's prediction and wanted derivatives from its sums `a`: `out[0]` the
    /// prediction, `out[(q + 1)·nx]` the derivative `want[q]`.
    #[inline]
    fn write_planes(&self, out: &mut [f64], a: &[f64; 7], want: &[usize], nx: usize) {
        let (c, sn, inv_s, norm) = (self.c, self.sn, self.inv_s, self.norm);
        out[0] = a[0] * norm;
        for (q, &j) in want.iter().enumerate() {
            // du/dtx = −Rᵀe_x/s, du/dty = −Rᵀe_y/s, du/ds = −w/s, du/dθ = (w_y, −w_x)
            let v = match j {
                0 => -(a[1] * c - a[2] * sn) * inv_s,
                1 => -(a[1] * sn + a[2] * c) * inv_s,
                2 => -(a[3] + a[4]) * inv_s,
                _ => a[5] - a[6],
            };
            out[(q + 1) * nx] = v * norm;
        }
    }
}

/// The per-row outputs (`n_img × n_pl` rows of `nx` values each) into `(n_img, n_pl, ny, nx)`.
fn assemble_rows(rows: Vec<Vec<f64>>, dim: (usize, usize, usize, usize)) -> Array4<f64> {
    let (n_img, n_pl, ny, nx) = dim;
    let mut res = Array4::<f64>::zeros((n_img, n_pl, ny, nx));
    for (iy, row) in rows.into_iter().enumerate() {
        for m in 0..n_img {
            for q in 0..n_pl {
                let src = &row[(m * n_pl + q) * nx..(m * n_pl + q + 1) * nx];
                res.slice_mut(s![m, q, iy, ..])
                    .iter_mut()
                    .zip(src)
                    .for_each(|(a, b)| *a = *b);
            }
        }
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    fn image(h: usize, w: usize) -> Array2<f32> {
        Array2::from_shape_fn((h, w), |(y, x)| {
            ((x as f32) * 0.31).sin() * ((y as f32) * 0.17).cos() + 0.01 * (x * y) as f32
        })
    }

    #[test]
    fn derivatives_match_finite_differences() {
        let img = image(64, 80);
        let pose = Pose {
            tx: 10.3,
            ty: 8.7,
            s: 0.31,
            theta: 0.4,
        };
        let (p, d) = area_predict(img.view(), pose, (40.0, 31.5), (6, 5, 9, 8), 4).unwrap();
        let h = 1e-6;
        for j in 0..4 {
            let mut q = pose;
            match j {
                0 => q.tx += h,
                1 => q.ty += h,
                2 => q.s += h,
                _ => q.theta += h,
            }
            let (p2, _) = area_predict(img.view(), q, (40.0, 31.5), (6, 5, 9, 8), 4).unwrap();
            for ((a, b), g) in p2.iter().zip(p.iter()).zip(d.index_axis(Axis(0), j).iter()) {
                let fd = (a - b) / h;
                assert!(
                    (fd - g).abs() < 1e-3 * (1.0 + g.abs()),
                    "param {j}: {fd} vs {g}"
                );
            }
        }
    }

    #[test]
    fn stack_equals_single_predictions() {
        let a = image(40, 50);
        let b = a.mapv(|v| v * v - 0.3);
        let mut st = ndarray::Array3::<f32>::zeros((2, 40, 50));
        st.index_axis_mut(Axis(0), 0).assign(&a);
        st.index_axis_mut(Axis(0), 1).assign(&b);
        let pose = Pose {
            tx: 7.2,
            ty: 6.1,
            s: 0.45,
            theta: -0.3,
        };
        let bx = (2, 1, 11, 9);
        let out = area_predict_stack(
            st.view(),
            pose,
            (24.5, 19.0),
            bx,
            3,
            [false, true, true, false],
        )
        .unwrap();
        assert_eq!(out.dim(), (2, 3, 9, 11));
        for (m, img) in [a, b].iter().enumerate() {
            let (p, d) = area_predict(img.view(), pose, (24.5, 19.0), bx, 3).unwrap();
            let close = |x: f64, y: f64| (x - y).abs() <= 1e-12 * (1.0 + y.abs());
            for (x, y) in out.slice(s![m, 0, .., ..]).iter().zip(p.iter()) {
                assert!(close(*x, *y));
            }
            for (q, j) in [1usize, 2].iter().enumerate() {
                let dj = d.index_axis(Axis(0), *j);
                for (x, y) in out.slice(s![m, q + 1, .., ..]).iter().zip(dj.iter()) {
                    assert!(close(*x, *y));
                }
            }
        }
        assert!(area_predict_stack(
            ndarray::Array3::<f32>::zeros((9, 4, 4)).view(),
            pose,
            (1.0, 1.0),
            bx,
            2,
            [true; 4]
        )
        .is_err());
    }

    #[test]
    fn constant_image_predicts_constant() {
        let img = Array2::<f32>::from_elem((20, 20), 3.0);
        let pose = Pose {
            tx: 5.0,
            ty: 5.0,
            s: 0.5,
            theta: 1.0,
        };
        let (p, d) = area_predict(img.view(), pose, (9.5, 9.5), (3, 3, 4, 4), 3).unwrap();
        assert!(p.iter().all(|v| (v - 3.0).abs() < 1e-12));
        assert!(d.iter().all(|v| v.abs() < 1e-12));
    }

    #[test]
    fn bad_arguments_are_errors() {
        let img = image(10, 10);
        let ok = Pose {
            tx: 0.0,
            ty: 0.0,
            s: 1.0,
            theta: 0.0,
        };
        assert!(area_predict(
            img.view(),
            Pose { s: 0.0, ..ok },
            (0.0, 0.0),
            (0, 0, 2, 2),
            1
        )
        .is_err());
        assert!(area_predict(img.view(), ok, (0.0, 0.0), (0, 0, 2, 2), 0).is_err());
        assert!(area_predict(img.view(), ok, (0.0, 0.0), (0, 0, 0, 2), 1).is_err());
        assert!(area_predict(img.view(), ok, (0.0, 0.0), (0, 0, 1 << 14, 1 << 14), 1).is_err());
        assert!(area_predict(img.view(), ok, (f64::NAN, 0.0), (0, 0, 2, 2), 1).is_err());
    }
}
