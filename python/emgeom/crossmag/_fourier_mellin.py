"""The Fourier–Mellin candidate stage of :func:`emgeom.crossmag.find_similarity`: log-polar
descriptors of the magnitude spectra, their phase correlation and its peaks (rotation and
scale hypotheses), over the whole reference or over windows of it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from emgeom import _core
from emgeom.crossmag._geometry import parabola_offset

#: Log-polar grid: angles over 180° and log-radius samples.
_N_ANGLE = 360
_N_RADIUS = 256
#: Frequency band (cycles/pixel at the working sampling).
_RHO_MAX = 0.30
#: Reference/moving area ratio above which the reference is searched in windows.
TILE_AREA_RATIO = 6.0
_MAX_WINDOW_STARTS = 4
#: Log-polar peaks lower than this fraction of the best one are not evaluated (but ≥ 2 are).
_MIN_PEAK_FRACTION = 0.5


@dataclass(frozen=True)
class FMPeak:
    scale: float  # residual σ at working sampling (moving working px → reference working px)
    rotation_deg: float  # θ modulo 180, in (−90, 90]
    height: float  # in map standard deviations


def descriptor(img: NDArray[np.float32], rho_min: float, threads: int | None) -> Any:
    grid = _core.LogPolarGrid(n_angle=_N_ANGLE, n_radius=_N_RADIUS, r_min=rho_min, r_max=_RHO_MAX)
    return _core.fm_log_polar(
        img, grid, order=1, taper_fraction=0.5, magnitude="log", emphasis=False, n_threads=threads
    )


def fm_peaks(
    lp_ref: NDArray[np.float32],
    lp_mov: NDArray[np.float32],
    d_log: float,
    scale_range: tuple[float, float],
    rotation_range: tuple[float, float] | None,
    n_peaks: int,
) -> list[FMPeak]:
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
    out: list[FMPeak] = []
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
            in_range(theta, rotation_range) or in_range(theta + 180.0, rotation_range)
        ):
            continue
        out.append(FMPeak(sigma, theta, (float(m[i, j]) - mu) / sd))
        if len(out) >= n_peaks:
            break
    return out


def in_range(theta: float, rng: tuple[float, float]) -> bool:
    lo, hi = rng
    d = (theta - lo) % 360.0
    return d <= (hi - lo) + 1e-9


def windows(
    ref_shape: tuple[int, ...], mov_shape: tuple[int, ...], scale_range: tuple[float, float]
) -> list[tuple[int, int, tuple[int, int]]]:
    """Reference windows ``(y0, x0, (wy, wx))`` for the Fourier–Mellin step: the whole image,
    or, when it is more than ``TILE_AREA_RATIO`` times the moving image's area, overlapping
    windows (stride half a window, at most ``_MAX_WINDOW_STARTS`` per axis) twice the moving
    image's footprint for the smallest, middle and largest scale of the range.
    """
    ny, nx = int(ref_shape[0]), int(ref_shape[1])
    if ny * nx <= TILE_AREA_RATIO * mov_shape[0] * mov_shape[1]:
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


#: A reference window ``(y0, x0, (wy, wx))`` (working pixels).
Window = tuple[int, int, tuple[int, int]]


def candidate_peaks(
    ref_w: NDArray[np.float32],
    mov_w: NDArray[np.float32],
    scale_range: tuple[float, float],
    n_peaks: int,
    threads: int | None,
) -> list[tuple[FMPeak, Window]]:
    """The log-polar peaks worth a translation step, highest first, each with its window.

    When the reference is much larger than the moving image (a small high-mag image inside a
    big low-mag one), the whole-image spectra have little in common: the reference is cut into
    overlapping windows twice the moving image's size and each window gives its own peaks.
    """
    wins = windows(ref_w.shape, mov_w.shape, scale_range)
    rho_min = max(2.0 / min(*mov_w.shape, *wins[0][2]), 0.005)
    d_log = math.log(_RHO_MAX / rho_min) / (_N_RADIUS - 1)
    lp_m = descriptor(mov_w, rho_min, threads)
    found_peaks: list[tuple[FMPeak, Window]] = []
    for win in wins:
        y0, x0, (wy, wx) = win
        lp_r = descriptor(np.ascontiguousarray(ref_w[y0 : y0 + wy, x0 : x0 + wx]), rho_min, threads)
        # peaks are taken regardless of rotation_range: a better pose outside the range must
        # make the in-range answer "not found", not silently lose
        for pk in fm_peaks(lp_r, lp_m, d_log, scale_range, None, n_peaks):
            found_peaks.append((pk, win))
    found_peaks.sort(key=lambda p: -p[0].height)
    found_peaks = found_peaks[: n_peaks * (3 if len(wins) > 1 else 1)]
    # peaks far below the best one (< _MIN_PEAK_FRACTION of its height above the map mean) are
    # not worth a translation step; at least two peaks (four candidates) are always evaluated
    if found_peaks:
        top = found_peaks[0][0].height
        found_peaks = [
            p for i, p in enumerate(found_peaks) if i < 2 or p[0].height >= _MIN_PEAK_FRACTION * top
        ]
    return found_peaks
