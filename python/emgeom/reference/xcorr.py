"""Slow numpy reference of ``rust/kernels/src/xcorr/``: the IMOD filter, the edge taper and the
filtered translation correlation, with plain FFTs. Obviously correct, not fast.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["correlate_translation", "filter_grid", "imod_filter", "taper_1d"]


def imod_filter(
    s: NDArray[np.float64], sigma1: float, sigma2: float, radius1: float, radius2: float
) -> NDArray[np.float64]:
    """IMOD ``XCorrSetCTFnoScl`` evaluated exactly at frequencies ``s`` (cycles/pixel)."""
    s = np.asarray(s, dtype=np.float64)
    if abs(sigma1) <= 1e-6 and abs(sigma2) <= 1e-6:
        return np.ones_like(s)
    r1p, r1n = (radius1, 0.0) if radius1 >= 0 else (0.0, -radius1)
    beta = -0.5 / sigma2**2 if abs(sigma2) > 1e-6 else 0.0
    alpha = -0.5 / sigma1**2 if abs(sigma1) > 1e-6 else 0.0
    v = np.where(
        s < r1p,
        np.exp(beta * (s - r1p) ** 2),
        np.where(s > radius2, np.exp(beta * (s - radius2) ** 2), 1.0),
    )
    if sigma2 < -1e-6:
        v = 1 - v
    if sigma1 > 1e-6:
        v = v * np.where(s < r1n, 0.0, 1 - np.exp(alpha * (s - r1n) ** 2))
    elif sigma1 < -1e-6:
        delmax = (-1 / alpha) * math.exp(-1)
        v = v * s**2 * np.exp(alpha * s**2) / delmax
    return np.where(v < 1e-6, 0.0, v)


def taper_1d(n: int, width: float) -> NDArray[np.float64]:
    """Cosine ramp weights (see ``xcorr::taper_1d``)."""
    d = np.minimum(np.arange(n) + 0.5, n - np.arange(n) - 0.5)
    w = np.where(d >= width, 1.0, 0.5 * (1 - np.cos(np.pi * d / max(width, 1e-12))))
    return np.where(d <= 0, 0.0, w) if width > 0 else np.ones(n)


def filter_grid(shape: tuple[int, int], filt: tuple[float, float, float, float]) -> NDArray[Any]:
    """The IMOD filter on the FFT frequency grid of ``shape`` (rows, columns)."""
    fy = np.fft.fftfreq(shape[0])
    fx = np.fft.fftfreq(shape[1])
    s = np.sqrt(fy[:, None] ** 2 + fx[None, :] ** 2)
    return imod_filter(s, *filt)


def _tapered(img: NDArray[Any], taper: float, pad: tuple[int, int]) -> NDArray[np.float64]:
    a = np.asarray(img, dtype=np.float64)
    w = taper_1d(a.shape[0], taper)[:, None] * taper_1d(a.shape[1], taper)[None, :]
    mu = (w * a).sum() / w.sum()
    out = np.zeros(pad)
    out[: a.shape[0], : a.shape[1]] = w * (a - mu)
    return out


def correlate_translation(
    a: NDArray[Any],
    b: NDArray[Any],
    pad: tuple[int, int],
    taper: float,
    filt: tuple[float, float, float, float],
    method: str = "xcorr",
) -> NDArray[np.float64]:
    """Reference map of ``xcorr::correlate_translation``: ``C(d) = Σ a(x)·b(x − d)``, circular,
    zero displacement at ``[0, 0]``.
    """
    fa = np.fft.fft2(_tapered(a, taper, pad))
    fb = np.fft.fft2(_tapered(b, taper, pad))
    g = fa * np.conj(fb)
    if method == "phase":
        m = np.abs(g)
        g = np.where(m > 1e-30, g / np.where(m > 1e-30, m, 1), 0)
        g[0, 0] = 0.0  # zero-mean images: the DC term is rounding noise
    g = g * filter_grid(pad, filt)
    return np.real(np.fft.ifft2(g))
