"""Slow numpy reference of ``rust/kernels/src/crossmag/`` (one correlation map of
``crossmag::evaluate_points``). Obviously correct, not fast.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from emgeom.reference.warp import warp_affine
from emgeom.reference.xcorr import filter_grid

__all__ = ["crossmag_point"]


def crossmag_point(
    reference: NDArray[Any],
    origin: tuple[int, int],
    region: tuple[int, int],
    pad: tuple[int, int],
    taper: float,
    filt: tuple[float, float, float, float],
    moving: NDArray[Any],
    affine: NDArray[np.float64],
    half: tuple[int, int],
    mask_taper: float,
) -> NDArray[np.float64]:
    """Reference of one ``crossmag::evaluate_points`` correlation map (xcorr), cropped to the
    region: reference region tapered/zero-mean, moving patch warped (Keys cubic, fill 0),
    soft-masked, zero-mean, wrapped around the origin; ``C(d) = Σ R(x)·P(x − d)`` filtered.
    """
    ref = np.asarray(reference, dtype=np.float64)
    ny, nx = ref.shape
    x0, y0 = origin
    wy, wx = region

    def span(o: int, w: int, n: int) -> NDArray[np.float64]:
        lo, hi = max(o, 0), min(o + w, n)
        p = o + np.arange(w)
        d = np.minimum(p - lo + 0.5, hi - p - 0.5)
        inside = (p >= lo) & (p < hi)
        r = np.where(d >= taper, 1.0, 0.5 * (1 - np.cos(np.pi * d / taper)))
        return np.where(inside & (d > 0), r, 0.0)

    w = span(y0, wy, ny)[:, None] * span(x0, wx, nx)[None, :]
    yy = np.clip(y0 + np.arange(wy), 0, ny - 1)
    xx = np.clip(x0 + np.arange(wx), 0, nx - 1)
    vals = ref[np.ix_(yy, xx)]
    mu = (w * vals).sum() / w.sum()
    r0 = np.zeros(pad)
    r0[:wy, :wx] = w * (vals - mu)
    hy, hx = half
    ky, kx = 2 * hy + 1, 2 * hx + 1
    patch = warp_affine(moving, affine, (ky, kx), order=3, fill=0.0)
    ii, jj = np.mgrid[0:ky, 0:kx].astype(np.float64)
    sx = affine[0, 0] * jj + affine[0, 1] * ii + affine[0, 2]
    sy = affine[1, 0] * jj + affine[1, 1] * ii + affine[1, 2]
    mny, mnx = moving.shape

    def ramp(t: NDArray[np.float64]) -> NDArray[np.float64]:
        r = np.where(t >= mask_taper, 1.0, 0.5 * (1 - np.cos(np.pi * t / mask_taper)))
        return np.where(t <= 0, 0.0, r)

    m = ramp(np.minimum(sx + 0.5, mnx - 0.5 - sx)) * ramp(np.minimum(sy + 0.5, mny - 0.5 - sy))
    mu_p = (m * patch).sum() / m.sum()
    p0 = m * (patch - mu_p)
    framed = np.zeros(pad)
    framed[np.ix_((np.arange(ky) - hy) % pad[0], (np.arange(kx) - hx) % pad[1])] = p0
    g = np.fft.fft2(r0) * np.conj(np.fft.fft2(framed)) * filter_grid(pad, filt)
    cmap = np.real(np.fft.ifft2(g))
    return np.asarray(cmap[:wy, :wx])
