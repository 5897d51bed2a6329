"""Candidate evaluation and refinement of :func:`emgeom.crossmag.find_similarity`: the
translation step of a (scale, rotation) hypothesis and its score, the coarse-to-fine
Gauss–Newton refinement of the best candidate on band-passed intensities, and the shared
maximum-likelihood refinement that gives the error bars.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from emgeom.crossmag._correlate import correlate
from emgeom.crossmag._geometry import (
    OVERLAP_POWER,
    center_of,
    invert_affine,
    scale_rotation_of,
    similarity_affine,
)
from emgeom.crossmag._refine import refine_pose
from emgeom.crossmag._similarity_sampling import (
    MIN_SIZE,
    bandpass,
    edge,
    from_full,
    shrink_image,
    to_full,
)
from emgeom.resample import warp_affine

#: Band-pass filters (Gaussian σ in pixels: fine, coarse) of the refinement stages.
_REFINE_BANDS = ((3.6, 12.5), (2.0, 8.5))
#: Band-pass filter of the candidate scoring (working sampling).
_SCORE_BAND = (2.0, 8.5)
#: Largest side (pixels) of the images used to score the candidates.
_SCORE_SIZE = 256
#: Scale ratio within [1/x, x] of 1: samplings too alike for the integration model.
_NEAR_ONE = 1.25
#: Prior of the final refinement around the Gauss–Newton pose (relative scale σ, rotation σ°);
#: bounds at twice that.
_ML_PRIOR = (0.05, 5.0)


def _pearson(a: NDArray[Any], b: NDArray[Any]) -> float:
    if a.size < 16:
        return 0.0
    a = a - a.mean()
    b = b - b.mean()
    d = math.sqrt(float((a * a).sum()) * float((b * b).sum()))
    return float((a * b).sum() / d) if d > 0 else 0.0


def score_images(
    ref_win: NDArray[np.float32], mov_w: NDArray[np.float32], threads: int | None
) -> tuple[float, NDArray[np.float32], NDArray[np.float32]]:
    """A reference window and the moving image (working sampling) shrunk by one zoom to at most
    ``_SCORE_SIZE`` px and band-passed for the translation step: ``(zoom, ref, moving)``.
    """
    wy, wx = ref_win.shape
    zs = min(1.0, _SCORE_SIZE / max(wy, wx, *mov_w.shape))
    zs = 1.0 if zs >= 0.999 else zs
    return (
        zs,
        bandpass(shrink_image(ref_win, zs, threads), *_SCORE_BAND, threads),
        bandpass(shrink_image(mov_w, zs, threads), *_SCORE_BAND, threads),
    )


@dataclass(frozen=True)
class Pose:
    affine: NDArray[np.float64]  # moving working px -> reference working px
    score: float
    ccc: float
    overlap: float
    peak_z: float
    peak_ratio: float


def translation_step(
    ref_b: NDArray[np.float32],
    mov_b: NDArray[np.float32],
    sigma: float,
    theta: float,
    threads: int | None,
) -> Pose:
    """Warp the moving image by (σ, θ) about the centres, correlate for the translation, score
    the top peaks by the Pearson CCC of the blurred images over their overlap × overlap^(1/6).
    """
    c_r = center_of(ref_b.shape)
    c_m = center_of(mov_b.shape)
    a0 = similarity_affine(sigma, theta, c_m, c_r)  # moving -> reference frame (centred)
    samp = invert_affine(a0)
    warped = warp_affine(mov_b, samp, ref_b.shape, order=1, n_threads=threads)
    mask = warp_affine(
        np.ones(mov_b.shape, np.float32), samp, ref_b.shape, order=1, fill=0.0, n_threads=threads
    )
    valid = mask > 0.999
    mean = float(warped[valid].mean()) if valid.any() else 0.0
    warped = np.where(valid, warped, mean).astype(np.float32)
    cr = correlate(
        ref_b, warped, n_peaks=4, taper_fraction=0.05, pad_fraction=0.5, n_threads=threads
    )
    best: Pose | None = None
    scores = []
    ny, nx = ref_b.shape
    for pk in cr.peaks:
        dx, dy = round(pk.dx), round(pk.dy)
        # overlap of the shifted patch with the reference: reference(x) ≈ warped(x − d)
        y0, y1 = max(0, dy), min(ny, ny + dy)
        x0, x1 = max(0, dx), min(nx, nx + dx)
        if y1 - y0 < 4 or x1 - x0 < 4:
            scores.append(-1.0)
            continue
        m = valid[y0 - dy : y1 - dy, x0 - dx : x1 - dx]
        a = ref_b[y0:y1, x0:x1][m]
        b = warped[y0 - dy : y1 - dy, x0 - dx : x1 - dx][m]
        ccc = _pearson(a, b)
        ov = float(m.sum()) / max(1.0, float(valid.sum()))
        sc = ccc * ov**OVERLAP_POWER if ccc > 0 else ccc
        scores.append(sc)
        if best is None or sc > best.score:
            aff = a0.copy()
            aff[:, 2] += (pk.dx, pk.dy)
            z = (pk.value - cr.map_mean) / cr.map_std if cr.map_std > 0 else 0.0
            best = Pose(aff, sc, ccc, ov, float(z), 0.0)
    if best is None:
        return Pose(a0, -1.0, 0.0, 0.0, 0.0, 1.0)
    srt = sorted(scores, reverse=True)
    ratio = 100.0 if len(srt) < 2 or srt[1] <= 1e-6 else min(100.0, srt[0] / srt[1])
    return replace(best, peak_ratio=float(ratio))


# ----------------------------------------------------------------------------------------------
# refinement: Gauss–Newton on the intensities (4-parameter similarity, affine intensity model)


def gauss_newton(
    ref_b: NDArray[np.float32],
    mov_b: NDArray[np.float32],
    a_init: NDArray[np.float64],
    threads: int | None,
    max_iter: int = 10,
    max_samples: int = 384,
    edge: int = 19,
) -> tuple[NDArray[np.float64], float, float, bool]:
    """Refine ``a_init`` (moving px → reference px, a similarity) by maximising the agreement of
    the blurred images (Lucas–Kanade / ECC-style Gauss–Newton; the intensity model
    ``ref ≈ α·moving + β`` makes it insensitive to contrast and offset).

    Returns (affine, ccc, overlap, converged).
    """
    rs = ref_b
    ms = mov_b
    gy, gx = np.gradient(ms)
    stack = np.ascontiguousarray(np.stack([ms, gx, gy]), dtype=np.float32)
    ny, nx = rs.shape
    st = max(1, math.ceil(max(ny, nx) / max_samples))
    oy, ox = (ny - 1) % st // 2, (nx - 1) % st // 2
    sy, sx = (ny - 1 - oy) // st + 1, (nx - 1 - ox) // st + 1
    yy, xx = np.mgrid[0:sy, 0:sx]
    xs = (ox + st * xx).astype(np.float64)
    ys = (oy + st * yy).astype(np.float64)
    r_s = rs[oy::st, ox::st][:sy, :sx].astype(np.float64)
    c_r = center_of(rs.shape)
    dxg, dyg = xs - c_r[0], ys - c_r[1]
    # the band-pass filter is not shift-invariant within its support of the borders
    ref_ok = (xs >= edge) & (xs <= nx - 1 - edge) & (ys >= edge) & (ys <= ny - 1 - edge)
    n_ref_ok = int(ref_ok.sum())
    # parameters of the sampling map u = [[a, −b], [b, a]]·(x − c_r) + t  (reference → moving)
    inv = invert_affine(a_init)
    a, b = float(inv[0, 0] + inv[1, 1]) / 2, float(inv[1, 0] - inv[0, 1]) / 2
    t = inv[:, :2] @ c_r + inv[:, 2]
    mny, mnx = ms.shape
    ccc, ov = 0.0, 0.0
    step = float("inf")
    for _ in range(max_iter):
        lin = np.array([[a, -b], [b, a]])
        # output pixel (i, j) of the sample grid -> moving position
        m_out = lin @ np.diag([st, st])
        off = lin @ (np.array([ox, oy]) - c_r) + t
        w = warp_affine(
            stack, np.hstack([m_out, off[:, None]]), (sy, sx), order=3, fill=0.0, n_threads=threads
        )
        ux = a * dxg - b * dyg + t[0]
        uy = b * dxg + a * dyg + t[1]
        ok = (ux >= edge) & (ux <= mnx - 1 - edge) & (uy >= edge) & (uy <= mny - 1 - edge) & ref_ok
        n_ok = int(ok.sum())
        # overlap: fraction of the smaller of the two usable areas (the moving footprint in
        # reference sample units, or the reference) that is covered by both
        mov_area = max(0, mnx - 2 * edge) * max(0, mny - 2 * edge) / ((a * a + b * b) * st * st)
        ov = min(1.0, n_ok / max(1.0, min(float(n_ref_ok), mov_area)))
        if n_ok < 64:
            return a_init, 0.0, ov, False
        wv = w[0][ok].astype(np.float64)
        gxv = w[1][ok].astype(np.float64)
        gyv = w[2][ok].astype(np.float64)
        rv = r_s[ok]
        dx, dy = dxg[ok], dyg[ok]
        # intensity model
        wm, rm = wv.mean(), rv.mean()
        wc, rc = wv - wm, rv - rm
        den = float((wc * wc).sum())
        if den <= 0:
            return a_init, 0.0, ov, False
        alpha = float((wc * rc).sum()) / den
        ccc = float((wc * rc).sum()) / math.sqrt(den * float((rc * rc).sum()) or 1.0)
        e = rc - alpha * wc
        jac = np.stack([gxv * dx + gyv * dy, -gxv * dy + gyv * dx, gxv, gyv], axis=1) * alpha
        jac -= jac.mean(axis=0, keepdims=True)
        h = jac.T @ jac
        try:
            delta = np.linalg.solve(h + 1e-9 * np.trace(h) * np.eye(4), jac.T @ e)
        except np.linalg.LinAlgError:
            return a_init, ccc, ov, False
        a += float(delta[0])
        b += float(delta[1])
        t = t + delta[2:]
        r_ext = 0.5 * max(ny, nx)
        step = max(abs(delta[0]) * r_ext, abs(delta[1]) * r_ext, float(np.abs(delta[2:]).max()))
        if step < 0.01 * st:
            break
    # converged unless the last step still moved the edge of the image by a quarter pixel
    converged = step < 0.25 * st
    lin = np.array([[a, -b], [b, a]])
    samp = np.hstack([lin, (t - lin @ c_r)[:, None]])
    return invert_affine(samp), ccc, ov, converged


def ml_stage(
    ref: NDArray[np.float32],
    mov: NDArray[np.float32],
    full: NDArray[np.float64],
    converged: bool,
    threads: int | None,
) -> tuple[NDArray[np.float64], tuple[float, float, float], tuple[float, float]]:
    """:func:`emgeom.crossmag._refine.refine_pose` with the finer image integrated into the
    coarser one's pixels (the images swap roles when the moving image is the coarser); returns
    the pose, ``(center_sigma, scale_sigma, rotation_sigma_deg)`` and the refinement's
    ``(prediction_ccc, residual_corr_area)``. When it cannot run, does not converge or moves
    more than 2 px, the Gauss–Newton pose stays with a σ of one pixel and the prior's, and the
    measures are ``(0, 0)``.
    """
    fallback = (1.0, _ML_PRIOR[0], _ML_PRIOR[1])
    if not converged:
        return full, fallback, (0.0, 0.0)
    s, _ = scale_rotation_of(full[:, :2])
    swap = s > 1.0
    fine, coarse, a0 = (ref, mov, invert_affine(full)) if swap else (mov, ref, full)
    s0, th0 = scale_rotation_of(a0[:, :2])
    r = refine_pose(
        fine,
        coarse,
        a0,
        scale_prior=(s0, _ML_PRIOR[0]),
        rotation_prior_deg=(th0, _ML_PRIOR[1]),
        threads=threads,
    )
    c0 = a0[:, :2] @ center_of(fine.shape) + a0[:, 2]
    if r is None or not r.converged or math.hypot(*(r.center - c0)) > 2.0:
        return full, fallback, (0.0, 0.0)
    measures = (r.ccc, r.corr_area)
    if 1.0 / _NEAR_ONE <= s <= _NEAR_ONE:
        # nearly equal samplings: integration degenerates to interpolation, which smooths one
        # image and not the other (measured: 0.5 % scale error on imreg_dft's binary shapes);
        # the Gauss–Newton pose stays and the refinement gives only its error bars
        s_sig = r.center_sigma * (s if swap else 1.0)
        return full, (s_sig, r.scale_sigma, r.rotation_sigma_deg), measures
    if not swap:
        return r.affine, (r.center_sigma, r.scale_sigma, r.rotation_sigma_deg), measures
    # (first order: the moving centre's σ in reference px ≈ the reference centre's σ in
    # moving px times the scale)
    sig3 = (r.center_sigma * s, r.scale_sigma, r.rotation_sigma_deg)
    return invert_affine(r.affine), sig3, measures


def refine_candidate(
    ref: NDArray[np.float32],
    mov: NDArray[np.float32],
    full: NDArray[np.float64],
    p_r: float,
    p_eff: float,
    refine_size: int,
    threads: int | None,
) -> tuple[NDArray[np.float64], float, float, bool]:
    """The Gauss–Newton refinement of a candidate's pose ``full`` (moving px → reference px, full
    resolution) at a common sampling for its scale (so that the band-pass filters match in
    physical units; ``p_eff`` = the moving image's pixel size implied by the candidate, Å):
    coarse-to-fine, a smooth band at half the final sampling first (wide basin, robust to
    noise), then a finer band at ≤ ``refine_size`` px. Returns (affine, ccc, overlap,
    converged).
    """
    ref_shape, mov_shape = ref.shape, mov.shape
    pw2 = max(p_r, p_eff, max(ref_shape) * p_r / refine_size, max(mov_shape) * p_eff / refine_size)
    ccc = overlap = 0.0
    converged = False
    zr2, zm2 = p_r / pw2, p_eff / pw2
    ref_f2, mov_f2 = shrink_image(ref, zr2, threads), shrink_image(mov, zm2, threads)
    zr2 = 1.0 if zr2 >= 0.999 else zr2
    zm2 = 1.0 if zm2 >= 0.999 else zm2
    half = min(*ref_f2.shape, *mov_f2.shape) > 4 * MIN_SIZE
    for stage, (sig_f, sig_c) in enumerate(_REFINE_BANDS):
        if stage == 0 and half:
            ref_f, mov_f = shrink_image(ref_f2, 0.5, threads), shrink_image(mov_f2, 0.5, threads)
            zr, zm = zr2 * 0.5, zm2 * 0.5
            sig_f, sig_c = sig_f / 2, sig_c / 2
        else:
            ref_f, mov_f, zr, zm = ref_f2, mov_f2, zr2, zm2
        a_ref, ccc, overlap, converged = gauss_newton(
            bandpass(ref_f, sig_f, sig_c, threads),
            bandpass(mov_f, sig_f, sig_c, threads),
            from_full(full, zr, zm),
            threads,
            edge=edge(sig_c),
        )
        full = to_full(a_ref, zr, zm)
    return full, ccc, overlap, converged
