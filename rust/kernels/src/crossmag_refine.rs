//! Forward model of the cross-magnification maximum-likelihood refinement.
//!
//! [`area_predict`] integrates the finer image over the footprint of every pixel of a box of the
//! coarser image and returns the prediction and its derivatives with respect to the pose
//! `(tx, ty, s, θ)`. Sampling: the mean of `k × k` samples at `q + o`, `o` on a centred grid in
//! `[−½, ½]²`, mapped into the fine image by `u = c + R(θ)ᵀ (q + o − t) / s`, bilinear between
//! the fine image's pixel centres (exact derivatives of the bilinear interpolant, samples
//! clamped to the image). Numpy reference: `emgeom.reference.crossmag.area_predict`.

use ndarray::{Array2, Array3, ArrayView2, Axis};
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

/// Prediction `P` `(ny, nx)` and derivatives `(4, ny, nx)` over `box_ = (x0, y0, nx, ny)`.
pub fn area_predict(
    fine: ArrayView2<f32>,
    pose: Pose,
    center: (f64, f64),
    box_: (i64, i64, usize, usize),
    k: usize,
) -> Result<(Array2<f64>, Array3<f64>), KernelError> {
    let (h, w) = fine.dim();
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
    let (x0, y0, nx, ny) = box_;
    if nx == 0 || ny == 0 || nx.checked_mul(ny).map_or(true, |n| n > MAX_BOX_PIXELS) {
        return Err(KernelError::value(
            "box",
            format!("must have 1..={MAX_BOX_PIXELS} pixels, got {nx} x {ny}"),
        ));
    }
    let (c, sn) = (pose.theta.cos(), pose.theta.sin());
    let inv_s = 1.0 / pose.s;
    let offs: Vec<f64> = (0..k).map(|i| (i as f64 + 0.5) / k as f64 - 0.5).collect();
    let norm = 1.0 / (k * k) as f64;
    let (wm1, hm1) = ((w - 1) as f64, (h - 1) as f64);
    let mut p = Array2::<f64>::zeros((ny, nx));
    let mut d = Array3::<f64>::zeros((4, ny, nx));
    // one row of the box per task: (P row, 4 derivative rows)
    let rows: Vec<(Vec<f64>, [Vec<f64>; 4])> = (0..ny)
        .into_par_iter()
        .map(|iy| {
            let mut pr = vec![0.0; nx];
            let mut dr: [Vec<f64>; 4] =
                [vec![0.0; nx], vec![0.0; nx], vec![0.0; nx], vec![0.0; nx]];
            let qy = (y0 + iy as i64) as f64;
            for ix in 0..nx {
                let qx = (x0 + ix as i64) as f64;
                let (mut sp, mut s0, mut s1, mut s2, mut s3) = (0.0, 0.0, 0.0, 0.0, 0.0);
                for oy in &offs {
                    let vy = qy + oy - pose.ty;
                    for ox in &offs {
                        let vx = qx + ox - pose.tx;
                        let wx = (c * vx + sn * vy) * inv_s;
                        let wy = (-sn * vx + c * vy) * inv_s;
                        let ux = (center.0 + wx).clamp(0.0, wm1);
                        let uy = (center.1 + wy).clamp(0.0, hm1);
                        let jx = (ux.floor() as usize).min(w - 2);
                        let jy = (uy.floor() as usize).min(h - 2);
                        let (fx, fy) = (ux - jx as f64, uy - jy as f64);
                        let m00 = fine[[jy, jx]] as f64;
                        let m01 = fine[[jy, jx + 1]] as f64;
                        let m10 = fine[[jy + 1, jx]] as f64;
                        let m11 = fine[[jy + 1, jx + 1]] as f64;
                        sp += (1.0 - fy) * ((1.0 - fx) * m00 + fx * m01)
                            + fy * ((1.0 - fx) * m10 + fx * m11);
                        let gx = (1.0 - fy) * (m01 - m00) + fy * (m11 - m10);
                        let gy = (1.0 - fx) * (m10 - m00) + fx * (m11 - m01);
                        s0 -= (gx * c - gy * sn) * inv_s;
                        s1 -= (gx * sn + gy * c) * inv_s;
                        s2 -= (gx * wx + gy * wy) * inv_s;
                        s3 += gx * wy - gy * wx;
                    }
                }
                pr[ix] = sp * norm;
                dr[0][ix] = s0 * norm;
                dr[1][ix] = s1 * norm;
                dr[2][ix] = s2 * norm;
                dr[3][ix] = s3 * norm;
            }
            (pr, dr)
        })
        .collect();
    for (iy, (pr, dr)) in rows.into_iter().enumerate() {
        p.row_mut(iy).iter_mut().zip(pr).for_each(|(a, b)| *a = b);
        for (j, drj) in dr.into_iter().enumerate() {
            d.index_axis_mut(Axis(0), j)
                .row_mut(iy)
                .iter_mut()
                .zip(drj)
                .for_each(|(a, b)| *a = b);
        }
    }
    Ok((p, d))
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
