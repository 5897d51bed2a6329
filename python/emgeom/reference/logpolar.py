"""Slow numpy references of the log-polar kernels (``rust/kernels/src/logpolar.rs``).

Same grid, angle sense, zero padding and interpolation kernels as the Rust code, written for
clarity in float64; used by ``tests/kernels/test_logpolar.py`` to check the kernels.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "apodize",
    "keys_weights",
    "log_polar",
    "log_polar_half_spectrum",
    "rc_emphasis",
    "spectrum_log_polar",
    "tukey",
]


def _nice(n: int) -> int:
    """The padded size the Rust side uses (``fft::nice_size``): the smallest ``m ≥ n`` of the
    form ``2^a·3^b·5^c`` that is even (or 1), found by listing those numbers.
    """
    top = 2 * max(int(n), 1)  # a power of two in [n, 2n) exists, so the answer is below 2n
    smooth = sorted(
        2**a * 3**b * 5**c
        for a in range(top.bit_length() + 1)
        for b in range(int(math.log(top, 3)) + 2)
        for c in range(int(math.log(top, 5)) + 2)
        if 2**a * 3**b * 5**c <= top
    )
    return next(m for m in smooth if m >= n and (m == 1 or m % 2 == 0))


def _grid(
    shape: tuple[int, int], r_min: float, r_max: float, span: float
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    na, nr = shape
    th = span * np.arange(na) / na
    if nr == 1:
        r = np.array([r_min], dtype=np.float64)
    else:
        r = r_min * np.exp(math.log(r_max / r_min) * np.arange(nr) / (nr - 1))
    return th, r


def keys_weights(t: NDArray[np.float64]) -> list[NDArray[np.float64]]:
    """Keys cubic (a = −0.5) weights for offsets −1, 0, 1, 2 at fractional position ``t``."""
    t2, t3 = t * t, t * t * t
    return [
        -0.5 * t3 + t2 - 0.5 * t,
        1.5 * t3 - 2.5 * t2 + 1.0,
        -1.5 * t3 + 2.0 * t2 + 0.5 * t,
        0.5 * t3 - 0.5 * t2,
    ]


def _interp(get: Any, x: NDArray[np.float64], y: NDArray[np.float64], order: int) -> Any:
    x0, y0 = np.floor(x), np.floor(y)
    tx, ty = x - x0, y - y0
    ix, iy = x0.astype(np.int64), y0.astype(np.int64)
    if order == 1:
        wx = [1 - tx, tx]
        wy = [1 - ty, ty]
        offs = [0, 1]
    else:
        wx = keys_weights(tx)
        wy = keys_weights(ty)
        offs = [-1, 0, 1, 2]
    acc = np.zeros_like(x)
    for a, oy in enumerate(offs):
        for b, ox in enumerate(offs):
            acc += wy[a] * wx[b] * get(ix + ox, iy + oy)
    return acc


def log_polar(
    image: NDArray[Any],
    center: tuple[float, float],
    output_shape: tuple[int, int],
    r_min: float,
    r_max: float,
    order: int = 1,
) -> NDArray[np.float64]:
    """``out[i, j] = image(cx + r_j cos θ_i, cy + r_j sin θ_i)``, θ_i = 2π i/n, zero padded."""
    img = np.asarray(image, dtype=np.float64)
    ny, nx = img.shape
    th, r = _grid(output_shape, r_min, r_max, 2 * math.pi)
    x = center[0] + r[None, :] * np.cos(th)[:, None]
    y = center[1] + r[None, :] * np.sin(th)[:, None]

    def get(ix: NDArray[np.int64], iy: NDArray[np.int64]) -> NDArray[np.float64]:
        ok = (ix >= 0) & (iy >= 0) & (ix < nx) & (iy < ny)
        out = np.zeros(ix.shape)
        out[ok] = img[iy[ok], ix[ok]]
        return out

    return np.asarray(_interp(get, x, y, order))


def rc_emphasis(u: NDArray[np.float64], v: NDArray[np.float64]) -> NDArray[np.float64]:
    """Reddy–Chatterji high-pass ``(1 − X)(2 − X)``, ``X = cos(πu) cos(πv)`` (cycles/pixel)."""
    xx = np.cos(np.pi * u) * np.cos(np.pi * v)
    return (1 - xx) * (2 - xx)


def log_polar_half_spectrum(
    magnitude: NDArray[Any],
    nx: int,
    output_shape: tuple[int, int],
    r_min: float,
    r_max: float,
    order: int = 1,
    emphasis: bool = False,
) -> NDArray[np.float64]:
    """Half-plane log-polar of ``|rfft2|`` (rows ky in FFT order, columns kx = 0..nx/2)."""
    mag = np.asarray(magnitude, dtype=np.float64)
    ny, nxc = mag.shape
    th, r = _grid(output_shape, r_min, r_max, math.pi)
    u = r[None, :] * np.cos(th)[:, None]
    v = r[None, :] * np.sin(th)[:, None]
    ky_lo, ky_hi = -((ny - 1) // 2), ny // 2

    def get(ix: NDArray[np.int64], iy: NDArray[np.int64]) -> NDArray[np.float64]:
        neg = ix < 0
        kx = np.where(neg, -ix, ix)
        ky = np.where(neg, -iy, iy)
        ok = (kx < nxc) & (ky >= ky_lo) & (ky <= ky_hi)
        out = np.zeros(ix.shape)
        out[ok] = mag[np.mod(ky[ok], ny), kx[ok]]
        return out

    out = _interp(get, u * nx, v * ny, order)
    if emphasis:
        out = out * rc_emphasis(u, v)
    return np.asarray(out)


def tukey(n: int, fraction: float) -> NDArray[np.float64]:
    """Tukey window: cosine ramps of ``fraction·n`` samples, weight at distance d + 0.5."""
    w = min(max(fraction, 0.0), 0.5) * n
    k = np.arange(n)
    d = np.minimum(k, n - 1 - k) + 0.5
    out = np.ones(n)
    if w > 0:
        m = d < w
        out[m] = 0.5 - 0.5 * np.cos(np.pi * d[m] / w)
    return out


def apodize(image: NDArray[Any], fraction: float) -> NDArray[np.float64]:
    """Mean removed, times the separable Tukey window."""
    img = np.asarray(image, dtype=np.float64)
    ny, nx = img.shape
    return (img - img.mean()) * tukey(ny, fraction)[:, None] * tukey(nx, fraction)[None, :]


def spectrum_log_polar(
    image: NDArray[Any],
    output_shape: tuple[int, int],
    r_min: float,
    r_max: float,
    order: int = 1,
    taper_fraction: float = 0.5,
    magnitude: str = "abs",
    emphasis: bool = False,
) -> NDArray[np.float64]:
    """Fourier–Mellin descriptor: apodise, zero-pad to a 2·3·5 size, |rfft2| (or
    ``ln(1 + |F|/mean|F|)``), half-plane log-polar with optional emphasis.
    """
    ap = apodize(image, taper_fraction)
    ny, nx = ap.shape
    py, px = _nice(ny), _nice(nx)
    pad = np.zeros((py, px))
    pad[:ny, :nx] = ap
    mag = np.abs(np.fft.rfft2(pad))
    if magnitude == "log":
        m = mag.mean()
        mag = np.log1p(mag / (m if m > 0 else 1.0))
    return log_polar_half_spectrum(mag, px, output_shape, r_min, r_max, order, emphasis)
