"""Alignment with unknown rotation and scale: log-polar Fourier–Mellin + the known-mag step.

Public entry point :func:`find_similarity` (re-exported as ``emgeom.crossmag.find_similarity``).

Geometry: the result is an :class:`emgeom.crossmag.AlignmentResult` (exactly the geometry of
``crossmag.align``: ``[x_ref, y_ref] = affine @ [x_mov, y_mov, 1]``, linear part
``scale·R(rotation_deg)``, θ > 0 clockwise as displayed with row 0 at the top) extended with the
ranked candidates (:class:`SimilarityResult`).

Pipeline (design note crossmag.md §8.4; Reddy & Chatterji, IEEE TIP 5(8):1266, 1996)
------------------------------------------------------------------------------------
1. Both images are brought to one working sampling (exact area shrink) with at most
   ``fm_size`` pixels on a side; with pixel sizes given, the nominal ratio is applied here and
   ``scale_range`` is the residual range. When the moving image covers more than 6× the
   reference's area, the problem is solved with the two images swapped and inverted exactly;
   when the reference covers more than 6× the moving image's area, the reference is searched in
   overlapping windows (step 2).
2. Each image is apodised (mean removed, separable Tukey window), Fourier transformed, and its
   magnitude spectrum resampled on a log-polar grid over the half plane θ ∈ [0°, 180°) (Hermitian
   symmetry) in a band of frequencies (Rust, :mod:`emgeom.transform`).
3. A rotation by θ shifts that log-polar image by θ along the angle axis and a scale σ shifts it
   by ``−ln σ`` along the log-radius axis; the shift is measured by phase correlation (circular
   in angle, zero-padded in log-radius) and the ``n_candidates`` best peaks inside the allowed
   scale (and rotation) range are kept.
4. The magnitude spectrum cannot tell θ from θ + 180°: every peak gives two candidates. For
   each, the moving image is warped by (σ, θ) and the translation is found with the
   known-magnification correlation (:func:`emgeom.crossmag.correlate`, IMOD-filtered, top
   peaks); each peak is scored by the Pearson CCC of the band-passed images over the overlap ×
   overlap^(1/6) (SerialEM's score), at ≤ 256 px.
5. The best candidate is refined by Gauss–Newton on the band-passed intensities (4-parameter
   similarity, intensity model ``ref ≈ α·moving + β``; coarse band first, then a finer one) at
   ≤ ``refine_size`` px, with both images resampled to the candidate's common pixel size so that
   the filters match. (``crossmag.align``'s residual grid search was tried first: on same-size
   pairs it settled 0.5° away from the truth where a direct CCC check preferred the truth.)
6. Honesty: ``found`` is False when the refined scale leaves ``scale_range``, when the best
   candidate is not clearly better than a different pose (``pose_ratio`` < 1.1; a better pose
   outside ``rotation_range_deg`` counts), when the translation peak is weak
   (``peak_z`` < 8) or the refined band-passed CCC is low (< 0.2), when the overlap is below
   25 %, when the refinement does not converge or leaves the candidate, and for images too
   small (< 32 px at the working sampling) or blank. The thresholds come from a noise sweep on
   real-micrograph pairs (see the constants).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from emgeom import _core
from emgeom._validate import as_float, as_int, as_pair, n_threads_arg
from emgeom.crossmag._confidence import ramp_confidence
from emgeom.crossmag._correlate import correlate
from emgeom.crossmag._geometry import (
    OVERLAP_POWER,
    as_unit_image,
    center_of,
    invert_affine,
    parabola_offset,
    scale_rotation_of,
    similarity_affine,
    wrap180,
)
from emgeom.crossmag._refine import refine_pose
from emgeom.crossmag._result import AlignmentResult, make_result, not_found
from emgeom.errors import InvalidValueError
from emgeom.resample import rescale, warp_affine

__all__ = ["SimilarityCandidate", "SimilarityResult", "find_similarity"]

#: Smallest working image side for Fourier–Mellin (below, ``found=False``).
MIN_SIZE = 32
#: Log-polar grid: angles over 180° and log-radius samples.
_N_ANGLE = 360
_N_RADIUS = 256
#: Frequency band (cycles/pixel at the working sampling).
_RHO_MAX = 0.30
#: Pose distance under which two candidates count as the same answer.
_SAME_ROT_DEG = 5.0
_SAME_SCALE = 0.05
#: Best / best-different-pose score ratio required for ``found``.
_MIN_POSE_RATIO = 1.10
#: ``found`` thresholds on the refined pose.
#: Calibrated on a noise sweep of real-micrograph pairs (320², random scale 0.6–1.6 and
#: rotation, SNR 0.5–0.05): every correct result had CCC ≥ 0.28 and peak_z ≥ 9.2, every wrong
#: one CCC ≤ 0.19 and peak_z ≤ 7.0.
_MIN_CCC = 0.2
_MIN_Z = 8.0
_MIN_OVERLAP = 0.25


@dataclass(frozen=True)
class SimilarityCandidate:
    """One Fourier–Mellin hypothesis, after its translation step.

    Attributes
    ----------
    scale : float
        Pixel-size ratio moving/reference of the candidate (reference pixels per moving pixel).
    rotation_deg : float
        θ of the candidate (degrees, in (−180, 180]; clockwise as displayed).
    fm_peak : float
        Height of its log-polar phase-correlation peak (relative to the map's standard
        deviation).
    score : float
        ``ccc · overlap^(1/6)`` of its translation step (−1 when the step found no peak).
    ccc, overlap : float
        Measures of the translation step (see :class:`emgeom.crossmag.AlignmentResult`).
    center : (float, float)
        ``(x, y)`` reference pixel where the moving centre lands for this candidate.
    affine : ndarray (2, 3)
        The candidate's full ``[x_ref, y_ref] = affine @ [x_mov, y_mov, 1]`` (before the final
        refinement).
    """

    scale: float
    rotation_deg: float
    fm_peak: float
    score: float
    ccc: float
    overlap: float
    center: tuple[float, float]
    affine: NDArray[np.float64] = field(default_factory=lambda: np.eye(2, 3), repr=False)

    def inverse(self) -> SimilarityCandidate:
        """The same candidate seen from the other image (moving ↔ reference)."""
        inv = invert_affine(self.affine)
        return replace(
            self,
            scale=1.0 / self.scale,
            rotation_deg=wrap180(-self.rotation_deg),
            center=(float(inv[0, 2]), float(inv[1, 2])),  # placeholder, fixed by the caller
            affine=inv,
        )


@dataclass(frozen=True, eq=False)
class SimilarityResult(AlignmentResult):
    """:class:`emgeom.crossmag.AlignmentResult` plus the ranked Fourier–Mellin candidates.

    Attributes
    ----------
    candidates : tuple of SimilarityCandidate
        The candidates evaluated inside ``rotation_range_deg`` (both members of each 180°
        pair), best score first.
    pose_ratio : float
        Best candidate score / best score of a candidate with a different pose (rotation
        differing by more than 2° or scale by more than 2%); ≈ 1 means ambiguous (e.g. a
        specimen with a 2-fold symmetry). Capped at 100.
    scale_range : (float, float)
        The allowed (residual) scale range used.
    nominal_scale : float
        ``moving_pixel_a / reference_pixel_a`` (1 when pixel sizes were not given).
    """

    candidates: tuple[SimilarityCandidate, ...] = ()
    pose_ratio: float = 0.0
    scale_range: tuple[float, float] = (0.5, 2.0)
    nominal_scale: float = 1.0


# ----------------------------------------------------------------------------------------------
# Fourier–Mellin: log-polar phase correlation


@dataclass(frozen=True)
class _FMPeak:
    scale: float  # residual σ at working sampling (moving working px → reference working px)
    rotation_deg: float  # θ modulo 180, in (−90, 90]
    height: float  # in map standard deviations


def _descriptor(img: NDArray[np.float32], rho_min: float, threads: int | None) -> Any:
    grid = _core.LogPolarGrid(n_angle=_N_ANGLE, n_radius=_N_RADIUS, r_min=rho_min, r_max=_RHO_MAX)
    return _core.fm_log_polar(
        img, grid, order=1, taper_fraction=0.5, magnitude="log", emphasis=False, n_threads=threads
    )


def _fm_peaks(
    lp_ref: NDArray[np.float32],
    lp_mov: NDArray[np.float32],
    d_log: float,
    scale_range: tuple[float, float],
    rotation_range: tuple[float, float] | None,
    n_peaks: int,
) -> list[_FMPeak]:
    """Top peaks of the phase correlation of two log-polar descriptors.

    ``lp_ref(φ, ℓ) ≈ lp_mov(φ − θ, ℓ + ln σ)`` → the peak sits at ``(θ/Δθ, −ln σ/Δℓ)``.
    """
    na, nr = lp_ref.shape
    w = np.ones(nr)
    ramp = max(2, nr // 10)
    t = 0.5 - 0.5 * np.cos(np.pi * (np.arange(ramp) + 0.5) / ramp)
    w[:ramp], w[-ramp:] = t, t[::-1]

    def prep(lp: NDArray[np.float32]) -> NDArray[np.float64]:
        a = np.asarray(lp, dtype=np.float64)
        a = a - a.mean(axis=0, keepdims=True)  # remove the radial profile (not rotation info)
        a = a - a.mean()
        return a * w[None, :]

    a, b = prep(lp_ref), prep(lp_mov)
    npad = 2 * nr
    fa = np.fft.rfft2(a, s=(na, npad))
    fb = np.fft.rfft2(b, s=(na, npad))
    cross = fa * np.conj(fb)
    mag = np.abs(cross)
    cross /= mag + 1e-3 * float(mag.max() if mag.size else 1.0)
    cmap = np.fft.irfft2(cross, s=(na, npad))
    sd = float(cmap.std()) or 1.0
    mu = float(cmap.mean())
    # allowed log-radius shifts: σ ∈ [lo, hi] → d = −ln σ / Δℓ
    d_lo = -math.log(scale_range[1]) / d_log
    d_hi = -math.log(scale_range[0]) / d_log
    jj = np.arange(npad)
    dj = np.where(jj <= npad // 2, jj, jj - npad).astype(np.float64)
    col_ok = (dj >= math.floor(d_lo) - 1) & (dj <= math.ceil(d_hi) + 1)
    # local maxima (3×3, circular in angle)
    m = cmap
    nb = np.max(
        np.stack(
            [
                np.roll(np.roll(m, di, axis=0), dj_, axis=1)
                for di in (-1, 0, 1)
                for dj_ in (-1, 0, 1)
                if (di, dj_) != (0, 0)
            ]
        ),
        axis=0,
    )
    is_max = (m > nb) & col_ok[None, :]
    idx = np.flatnonzero(is_max)
    order = idx[np.argsort(-m.flat[idx])]
    out: list[_FMPeak] = []
    dtheta = 180.0 / na
    for k in order:
        i, j = divmod(int(k), npad)
        fi = parabola_offset(m[(i - 1) % na, j], m[i, j], m[(i + 1) % na, j])
        fj = parabola_offset(m[i, (j - 1) % npad], m[i, j], m[i, (j + 1) % npad])
        di = i + fi
        if di > na / 2:
            di -= na
        dj_f = dj[j] + fj
        if not d_lo - 0.5 <= dj_f <= d_hi + 0.5:
            continue
        sigma = math.exp(-dj_f * d_log)
        theta = di * dtheta
        if rotation_range is not None and not (
            _in_range(theta, rotation_range) or _in_range(theta + 180.0, rotation_range)
        ):
            continue
        out.append(_FMPeak(sigma, theta, (float(m[i, j]) - mu) / sd))
        if len(out) >= n_peaks:
            break
    return out


def _in_range(theta: float, rng: tuple[float, float]) -> bool:
    lo, hi = rng
    d = (theta - lo) % 360.0
    return d <= (hi - lo) + 1e-9


# ----------------------------------------------------------------------------------------------
# translation step (crossmag.correlate, the known-mag correlation with top-k peaks)


#: Band-pass filters (Gaussian σ in pixels: fine, coarse) of the refinement stages.
_REFINE_BANDS = ((3.6, 12.5), (2.0, 8.5))
#: Band-pass filter of the candidate scoring (working sampling).
_SCORE_BAND = (2.0, 8.5)
#: Largest side (pixels) of the images used to score the candidates.
_SCORE_SIZE = 256
#: Reference/moving area ratio above which the reference is searched in windows.
_TILE_AREA_RATIO = 6.0
_MAX_WINDOW_STARTS = 4
#: Log-polar peaks lower than this fraction of the best one are not evaluated (but ≥ 2 are).
_MIN_PEAK_FRACTION = 0.5


def _bandpass(
    img: NDArray[np.float32], sigma_fine: float, sigma_coarse: float, threads: int | None
) -> NDArray[np.float32]:
    """Difference of Gaussians (Rust, Fourier space): keeps edges and particles, removes the
    noise floor and the slow ice/illumination gradients that otherwise dominate any correlation
    score. Borders within ``_edge(σ_coarse)`` pixels are affected by the periodic boundary.
    """
    out: NDArray[np.float32] = _core.dog_filter(
        np.ascontiguousarray(img, dtype=np.float32),
        sigma_fine=sigma_fine,
        sigma_coarse=sigma_coarse,
        n_threads=threads,
    )
    return out


def _edge(sigma_coarse: float) -> int:
    return math.ceil(3.0 * sigma_coarse) + 1


def _pearson(a: NDArray[Any], b: NDArray[Any]) -> float:
    if a.size < 16:
        return 0.0
    a = a - a.mean()
    b = b - b.mean()
    d = math.sqrt(float((a * a).sum()) * float((b * b).sum()))
    return float((a * b).sum() / d) if d > 0 else 0.0


@dataclass(frozen=True)
class _Pose:
    affine: NDArray[np.float64]  # moving working px -> reference working px
    score: float
    ccc: float
    overlap: float
    peak_z: float
    peak_ratio: float


def _translation_step(
    ref_b: NDArray[np.float32],
    mov_b: NDArray[np.float32],
    sigma: float,
    theta: float,
    threads: int | None,
) -> _Pose:
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
    best: _Pose | None = None
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
            best = _Pose(aff, sc, ccc, ov, float(z), 0.0)
    if best is None:
        return _Pose(a0, -1.0, 0.0, 0.0, 0.0, 1.0)
    srt = sorted(scores, reverse=True)
    ratio = 100.0 if len(srt) < 2 or srt[1] <= 1e-6 else min(100.0, srt[0] / srt[1])
    return replace(best, peak_ratio=float(ratio))


# ----------------------------------------------------------------------------------------------
# refinement: Gauss–Newton on the intensities (4-parameter similarity, affine intensity model)


def _refine(
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


# ----------------------------------------------------------------------------------------------


def _not_found(
    ref_shape: tuple[int, int],
    mov_shape: tuple[int, int],
    p_r: float,
    p_m: float,
    s0: float,
    scale_range: tuple[float, float],
    candidates: tuple[SimilarityCandidate, ...] = (),
) -> SimilarityResult:
    res = not_found(
        ref_shape,
        mov_shape,
        p_r,
        p_m,
        s0,
        0.0,
        center_of(ref_shape),
        result_cls=SimilarityResult,
        candidates=candidates,
        pose_ratio=0.0,
        scale_range=scale_range,
        nominal_scale=s0,
    )
    assert isinstance(res, SimilarityResult)
    return res


def _blank(img: NDArray[np.float32]) -> bool:
    hi, lo = float(img.max()), float(img.min())
    return not hi - lo > 1e-6 * (1.0 + max(abs(hi), abs(lo)))


def _shrink(img: NDArray[np.float32], zoom: float, threads: int | None) -> NDArray[np.float32]:
    if zoom >= 0.999:
        return img
    method = "area" if zoom <= 0.5 else "lanczos3"
    return np.ascontiguousarray(rescale(img, zoom, method, n_threads=threads), dtype=np.float32)


def _swap_back(
    sw: SimilarityResult,
    ref_shape: tuple[int, int],
    mov_shape: tuple[int, int],
    p_r: float,
    p_m: float,
    srange: tuple[float, float],
) -> SimilarityResult:
    """Invert a result computed with the two images swapped."""
    a = invert_affine(sw.affine)
    lin = a[:, :2]
    c_m = center_of(mov_shape)
    center = lin @ c_m + a[:, 2]
    d = (center - center_of(ref_shape)) * p_r
    cands = []
    for c in sw.candidates:
        ci = c.inverse()
        cc = ci.affine[:, :2] @ c_m + ci.affine[:, 2]
        cands.append(replace(ci, center=(float(cc[0]), float(cc[1]))))
    return replace(
        sw,
        affine=a,
        scale=1.0 / sw.scale,
        rotation_deg=wrap180(-sw.rotation_deg),
        center=(float(center[0]), float(center[1])),
        center_a=(float(d[0]), float(d[1])),
        shift_a=(float(-d[0]), float(-d[1])),
        reference_pixel_a=p_r,
        moving_pixel_a=p_m,
        reference_shape=ref_shape,
        moving_shape=mov_shape,
        candidates=tuple(cands),
        scale_range=srange,
        nominal_scale=p_m / p_r,
    )


def _windows(
    ref_shape: tuple[int, ...], mov_shape: tuple[int, ...], scale_range: tuple[float, float]
) -> list[tuple[int, int, tuple[int, int]]]:
    """Reference windows ``(y0, x0, (wy, wx))`` for the Fourier–Mellin step: the whole image,
    or, when it is more than ``_TILE_AREA_RATIO`` times the moving image's area, overlapping
    windows (stride half a window, at most ``_MAX_WINDOW_STARTS`` per axis) twice the moving
    image's footprint for the smallest, middle and largest scale of the range.
    """
    ny, nx = int(ref_shape[0]), int(ref_shape[1])
    if ny * nx <= _TILE_AREA_RATIO * mov_shape[0] * mov_shape[1]:
        return [(0, 0, (ny, nx))]
    lo, hi = scale_range
    m = max(int(mov_shape[0]), int(mov_shape[1]))
    sizes = sorted({max(64, round(2 * m * sg)) for sg in (lo, math.sqrt(lo * hi), hi)})

    def starts(n: int, w: int) -> list[int]:
        # stride half a window, but at most _MAX_WINDOW_STARTS windows along an axis (then the
        # small windows leave gaps that the larger ones cover)
        if w >= n:
            return [0]
        count = min(_MAX_WINDOW_STARTS, math.ceil((n - w) / max(1, w // 2)) + 1)
        return sorted({round(v) for v in np.linspace(0, n - w, count)})

    out = []
    for t in sizes:
        wy, wx = min(ny, t), min(nx, t)
        out += [(y0, x0, (wy, wx)) for y0 in starts(ny, wy) for x0 in starts(nx, wx)]
    return list(dict.fromkeys(out))


def find_similarity(
    reference: ArrayLike,
    moving: ArrayLike,
    *,
    reference_pixel_a: float | None = None,
    moving_pixel_a: float | None = None,
    scale_range: Sequence[float] = (0.5, 2.0),
    rotation_range_deg: Sequence[float] | None = None,
    n_candidates: int = 5,
    n_threads: int | None = None,
    fm_size: int = 512,
    refine_size: int = 1024,
) -> SimilarityResult:
    """Find the similarity (scale, rotation, translation) between two images of one area.

    For images whose relation is not known: a grid reloaded at an unknown rotation, another
    microscope or camera, an uncalibrated magnification, a View at high defocus.

    Parameters
    ----------
    reference : ndarray (y, x)
        Reference image.
    moving : ndarray (y, x)
        Image to place on the reference.
    reference_pixel_a, moving_pixel_a : float, optional
        Nominal pixel sizes in Å (give both or neither). Their ratio is applied first and
        ``scale_range`` is then the residual range around it. Without them the nominal ratio
        is 1.
    scale_range : (float, float)
        Allowed (residual) scale ``σ`` — moving pixels per reference pixel relative to the
        nominal ratio — with ``0.25 ≤ lo < hi ≤ 4`` (Fourier–Mellin does not reach further;
        pre-scale with the pixel sizes). A result outside it has ``found=False``.
    rotation_range_deg : (float, float), optional
        Allowed rotation interval ``[lo, hi]`` in degrees (clockwise as displayed, the sense of
        ``rotation_deg``); default any rotation.
    n_candidates : int
        Log-polar peaks kept; each gives two candidates (θ and θ + 180°).
    n_threads : int, optional
        Worker threads (default all cores).
    fm_size : int
        Largest side (pixels) of the images used for Fourier–Mellin (they are shrunk with exact
        area averaging to at most this size).
    refine_size : int
        Largest side (pixels) of the images used for the final Gauss–Newton refinement.

    Returns
    -------
    SimilarityResult
        An :class:`emgeom.crossmag.AlignmentResult` (``affine``, ``scale``, ``rotation_deg``,
        ``center``, ``found``, ``confidence``, ...) plus ``candidates`` (ranked) and
        ``pose_ratio``.

    Raises
    ------
    InvalidValueError
        Bad arguments (one pixel size without the other, a scale range outside [0.25, 4] or
        empty, an empty rotation range, ...).
    """
    # (scaled by a power of two into a safe float32 range: results do not depend on units)
    ref, _ = as_unit_image(reference, "reference")
    mov, _ = as_unit_image(moving, "moving")
    if (reference_pixel_a is None) != (moving_pixel_a is None):
        raise InvalidValueError(
            "reference_pixel_a/moving_pixel_a: give both pixel sizes or neither"
        )
    p_r = (
        1.0
        if reference_pixel_a is None
        else as_float(reference_pixel_a, "reference_pixel_a", positive=True)
    )
    p_m = (
        1.0 if moving_pixel_a is None else as_float(moving_pixel_a, "moving_pixel_a", positive=True)
    )
    lo, hi = as_pair(scale_range, "scale_range", low=0.25, high=4.0)
    if not lo < hi:
        raise InvalidValueError(f"scale_range: expected low < high, got ({lo}, {hi})")
    srange = (lo, hi)
    rrange: tuple[float, float] | None = None
    if rotation_range_deg is not None:
        r0, r1 = as_pair(rotation_range_deg, "rotation_range_deg")
        if not r0 <= r1:
            raise InvalidValueError(f"rotation_range_deg: expected low <= high, got ({r0}, {r1})")
        rrange = (r0, r1) if r1 - r0 < 360.0 else None
    k = as_int(n_candidates, "n_candidates", low=1, high=50)
    threads = n_threads_arg(n_threads)
    fsz = as_int(fm_size, "fm_size", low=64, high=8192)
    rsz = as_int(refine_size, "refine_size", low=64, high=16384)
    s0 = p_m / p_r
    ref_shape = (int(ref.shape[0]), int(ref.shape[1]))
    mov_shape = (int(mov.shape[0]), int(mov.shape[1]))
    if (
        mov_shape[0] * mov_shape[1] * p_m**2
        > _TILE_AREA_RATIO * ref_shape[0] * ref_shape[1] * p_r**2
    ):
        # the moving image is the big one: search the reference inside it and invert
        sw = find_similarity(
            mov,
            ref,
            reference_pixel_a=p_m,
            moving_pixel_a=p_r,
            scale_range=(1.0 / hi, 1.0 / lo),
            rotation_range_deg=None if rrange is None else (-rrange[1], -rrange[0]),
            n_candidates=k,
            n_threads=threads,
            fm_size=fsz,
            refine_size=rsz,
        )
        return _swap_back(sw, ref_shape, mov_shape, p_r, p_m, srange)

    # 1. common working sampling (pixel size pw in Å) with at most fm_size px per side
    pw = max(p_r, p_m, max(mov_shape) * p_m / fsz)
    tiled = ref_shape[0] * ref_shape[1] * p_r**2 > _TILE_AREA_RATIO * (
        mov_shape[0] * mov_shape[1] * p_m**2
    )
    # whole-image mode: both at most fm_size; windowed mode: the moving image at most fm_size,
    # the reference at most 4·fm_size (it is processed in windows)
    pw = max(pw, max(ref_shape) * p_r / (fsz * (4 if tiled else 1)))
    z_r, z_m = p_r / pw, p_m / pw
    if (
        min(ref_shape) * z_r < MIN_SIZE
        or min(mov_shape) * z_m < MIN_SIZE
        or _blank(ref)
        or _blank(mov)
    ):
        return _not_found(ref_shape, mov_shape, p_r, p_m, s0, srange)
    ref_w = _shrink(ref, z_r, threads)
    mov_w = _shrink(mov, z_m, threads)
    zr_w = z_r if z_r < 0.999 else 1.0
    zm_w = z_m if z_m < 0.999 else 1.0

    # 2–3. log-polar descriptors and their phase correlation. When the reference is much
    #      larger than the moving image (a small high-mag image inside a big low-mag one), the
    #      whole-image spectra have little in common: the reference is cut into overlapping
    #      windows twice the moving image's size and each window gives its own peaks.
    n_peaks = 2 * k if rrange is not None else k
    windows = _windows(ref_w.shape, mov_w.shape, srange)
    rho_min = max(2.0 / min(*mov_w.shape, *windows[0][2]), 0.005)
    d_log = math.log(_RHO_MAX / rho_min) / (_N_RADIUS - 1)
    lp_m = _descriptor(mov_w, rho_min, threads)
    found_peaks: list[tuple[_FMPeak, tuple[int, int, tuple[int, int]]]] = []
    for win in windows:
        y0, x0, (wy, wx) = win
        lp_r = _descriptor(
            np.ascontiguousarray(ref_w[y0 : y0 + wy, x0 : x0 + wx]), rho_min, threads
        )
        # peaks are taken regardless of rotation_range: a better pose outside the range must
        # make the in-range answer "not found", not silently lose
        for pk in _fm_peaks(lp_r, lp_m, d_log, srange, None, n_peaks):
            found_peaks.append((pk, win))
    found_peaks.sort(key=lambda p: -p[0].height)
    found_peaks = found_peaks[: n_peaks * (3 if len(windows) > 1 else 1)]
    # peaks far below the best one (< _MIN_PEAK_FRACTION of its height above the map mean) are
    # not worth a translation step; at least two peaks (four candidates) are always evaluated
    if found_peaks:
        top = found_peaks[0][0].height
        found_peaks = [
            p for i, p in enumerate(found_peaks) if i < 2 or p[0].height >= _MIN_PEAK_FRACTION * top
        ]
    if not found_peaks:
        return _not_found(ref_shape, mov_shape, p_r, p_m, s0, srange)

    # 4. both members of every 180° pair through the translation step, at ≤ 256 px
    evals: list[tuple[SimilarityCandidate, _Pose, NDArray[np.float64]]] = []
    scored: dict[tuple[int, int, tuple[int, int]], Any] = {}
    for pk, win in found_peaks:
        y0, x0, (wy, wx) = win
        if win not in scored:
            zs = min(1.0, _SCORE_SIZE / max(wy, wx, *mov_w.shape))
            zs = 1.0 if zs >= 0.999 else zs
            ref_win = np.ascontiguousarray(ref_w[y0 : y0 + wy, x0 : x0 + wx])
            scored[win] = (
                zs,
                _bandpass(_shrink(ref_win, zs, threads), *_SCORE_BAND, threads),
                _bandpass(_shrink(mov_w, zs, threads), *_SCORE_BAND, threads),
            )
        zs, ref_wb, mov_wb = scored[win]
        for extra in (0.0, 180.0):
            theta = wrap180(pk.rotation_deg + extra)
            pose = _translation_step(ref_wb, mov_wb, pk.scale, theta, threads)
            a_win = _to_full(pose.affine, zs, zs)  # working px, window origin
            a_win[:, 2] += (x0, y0)
            full = _to_full(a_win, zr_w, zm_w)
            ctr = full[:, :2] @ center_of(mov_shape) + full[:, 2]
            evals.append(
                (
                    SimilarityCandidate(
                        scale=pk.scale * s0,
                        rotation_deg=theta,
                        fm_peak=pk.height,
                        score=pose.score,
                        ccc=pose.ccc,
                        overlap=pose.overlap,
                        center=(float(ctr[0]), float(ctr[1])),
                        affine=full,
                    ),
                    pose,
                    full,
                )
            )
    if not evals:
        return _not_found(ref_shape, mov_shape, p_r, p_m, s0, srange)
    evals.sort(key=lambda e: -e[0].score)
    allowed = [e for e in evals if rrange is None or _in_range(e[0].rotation_deg, rrange)]
    if not allowed:
        return _not_found(ref_shape, mov_shape, p_r, p_m, s0, srange)
    ranked = tuple(c for c, _, _ in allowed[: 2 * n_peaks])
    best, best_pose, best_full = allowed[0]
    diag = math.hypot(*ref_shape)
    other = [
        c.score
        for c, _, _ in evals
        if c is not best
        and (
            abs(wrap180(c.rotation_deg - best.rotation_deg)) > _SAME_ROT_DEG
            or abs(math.log(c.scale / best.scale)) > _SAME_SCALE
            or math.hypot(c.center[0] - best.center[0], c.center[1] - best.center[1]) > 0.02 * diag
        )
    ]
    second = max(other) if other else 0.0
    if best.score <= 0:
        pose_ratio = 0.0
    elif second <= 1e-6:
        pose_ratio = 100.0
    else:
        pose_ratio = float(min(100.0, best.score / second))

    # 5. refinement at a common sampling for the candidate's scale (so that the band-pass
    #    filters match in physical units): coarse-to-fine, a smooth band at half the final
    #    sampling first (wide basin, robust to noise), then a finer band at ≤ refine_size px
    p_eff = best.scale * p_r  # the moving image's pixel size implied by the candidate (Å)
    pw2 = max(p_r, p_eff, max(ref_shape) * p_r / rsz, max(mov_shape) * p_eff / rsz)
    full = best_full
    ccc = overlap = 0.0
    converged = False
    zr2, zm2 = p_r / pw2, p_eff / pw2
    ref_f2, mov_f2 = _shrink(ref, zr2, threads), _shrink(mov, zm2, threads)
    zr2 = 1.0 if zr2 >= 0.999 else zr2
    zm2 = 1.0 if zm2 >= 0.999 else zm2
    half = min(*ref_f2.shape, *mov_f2.shape) > 4 * MIN_SIZE
    for stage, (sig_f, sig_c) in enumerate(_REFINE_BANDS):
        if stage == 0 and half:
            ref_f, mov_f = _shrink(ref_f2, 0.5, threads), _shrink(mov_f2, 0.5, threads)
            zr, zm = zr2 * 0.5, zm2 * 0.5
            sig_f, sig_c = sig_f / 2, sig_c / 2
        else:
            ref_f, mov_f, zr, zm = ref_f2, mov_f2, zr2, zm2
        a_ref, ccc, overlap, converged = _refine(
            _bandpass(ref_f, sig_f, sig_c, threads),
            _bandpass(mov_f, sig_f, sig_c, threads),
            _from_full(full, zr, zm),
            threads,
            edge=_edge(sig_c),
        )
        full = _to_full(a_ref, zr, zm)
    # the shared maximum-likelihood refinement (as in ``align``), on the full-resolution
    # images, with a weak prior around the Gauss–Newton pose; it gives the error bars
    full, sig3 = _ml_stage(ref, mov, full, converged, threads)
    scale, theta = scale_rotation_of(full[:, :2])
    sigma = scale / s0
    moved = (
        abs(wrap180(theta - best.rotation_deg)) > 3.0 or abs(math.log(scale / best.scale)) > 0.05
    )
    in_range = srange[0] <= sigma <= srange[1]
    rot_ok = rrange is None or _in_range(theta, rrange)
    found = bool(
        converged
        and not moved
        and in_range
        and rot_ok
        and ccc >= _MIN_CCC
        and best_pose.peak_z >= _MIN_Z
        and overlap >= _MIN_OVERLAP
        and pose_ratio >= _MIN_POSE_RATIO
    )
    conf = _confidence(ccc, pose_ratio, overlap, best_pose.peak_z)
    if not found:
        conf = min(conf, 0.49)
    res = make_result(
        full,
        reference_shape=ref_shape,
        moving_shape=mov_shape,
        reference_pixel_a=p_r,
        moving_pixel_a=p_m,
        result_cls=SimilarityResult,
        scale=scale,
        rotation_deg=theta,
        found=found,
        confidence=conf,
        ccc=float(ccc),
        overlap=float(overlap),
        peak_ratio=float(best_pose.peak_ratio),
        peak_z=float(best_pose.peak_z),
        at_search_edge=bool(not in_range),
        binning=1,
        n_evaluations=len(evals),
        candidates=ranked,
        pose_ratio=pose_ratio,
        scale_range=srange,
        nominal_scale=s0,
        center_sigma=sig3[0],
        scale_sigma=sig3[1],
        rotation_sigma_deg=sig3[2],
    )
    assert isinstance(res, SimilarityResult)
    return res


#: Scale ratio within [1/x, x] of 1: samplings too alike for the integration model.
_NEAR_ONE = 1.25
#: Prior of the final refinement around the Gauss–Newton pose (relative scale σ, rotation σ°);
#: bounds at twice that.
_ML_PRIOR = (0.05, 5.0)


def _ml_stage(
    ref: NDArray[np.float32],
    mov: NDArray[np.float32],
    full: NDArray[np.float64],
    converged: bool,
    threads: int | None,
) -> tuple[NDArray[np.float64], tuple[float, float, float]]:
    """:func:`emgeom.crossmag._refine.refine_pose` with the finer image integrated into the
    coarser one's pixels (the images swap roles when the moving image is the coarser); returns
    the pose and ``(center_sigma, scale_sigma, rotation_sigma_deg)``. When it cannot run, does
    not converge or moves more than 2 px, the Gauss–Newton pose stays with a σ of one pixel and
    the prior's.
    """
    fallback = (1.0, _ML_PRIOR[0], _ML_PRIOR[1])
    if not converged:
        return full, fallback
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
        return full, fallback
    if 1.0 / _NEAR_ONE <= s <= _NEAR_ONE:
        # nearly equal samplings: integration degenerates to interpolation, which smooths one
        # image and not the other (measured: 0.5 % scale error on imreg_dft's binary shapes);
        # the Gauss–Newton pose stays and the refinement gives only its error bars
        s_sig = r.center_sigma * (s if swap else 1.0)
        return full, (s_sig, r.scale_sigma, r.rotation_sigma_deg)
    if not swap:
        return r.affine, (r.center_sigma, r.scale_sigma, r.rotation_sigma_deg)
    # (first order: the moving centre's σ in reference px ≈ the reference centre's σ in
    # moving px times the scale)
    return invert_affine(r.affine), (r.center_sigma * s, r.scale_sigma, r.rotation_sigma_deg)


def _zoom_affine(z: float) -> NDArray[np.float64]:
    """3×3 map of pixel positions under a zoom ``z``: ``u' = (u + 0.5)·z − 0.5``."""
    return np.array([[z, 0.0, 0.5 * z - 0.5], [0.0, z, 0.5 * z - 0.5], [0.0, 0.0, 1.0]])


def _h(a: NDArray[np.float64]) -> NDArray[np.float64]:
    return np.vstack([a, [0.0, 0.0, 1.0]])


def _to_full(a_w: NDArray[np.float64], z_r: float, z_m: float) -> NDArray[np.float64]:
    """Working-sampling affine (moving_w → reference_w) to full-resolution pixels."""
    return (np.linalg.inv(_zoom_affine(z_r)) @ _h(a_w) @ _zoom_affine(z_m))[:2]


def _from_full(a: NDArray[np.float64], z_r: float, z_m: float) -> NDArray[np.float64]:
    return (_zoom_affine(z_r) @ _h(a) @ np.linalg.inv(_zoom_affine(z_m)))[:2]


def _confidence(ccc: float, pose_ratio: float, overlap: float, z: float) -> float:
    """Monotone map of the measures to [0, 1]; 0.5 at the ``found`` thresholds."""
    return ramp_confidence(
        (
            (ccc, 0.0, _MIN_CCC, 0.6),
            (pose_ratio, 1.0, _MIN_POSE_RATIO, 2.0),
            (overlap, 0.0, _MIN_OVERLAP, 0.8),
            (z, 0.0, _MIN_Z, 3 * _MIN_Z),
        )
    )
