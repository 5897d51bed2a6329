"""Numerical helpers of the cross-magnification refinement (:mod:`emgeom.crossmag._refine`):
the noise estimate, Gaussian smoothing, eigenvalue flooring and the residual
autocovariance / sandwich products (FFT lag products).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

from emgeom.crossmag._geometry import nice_size

__all__ = ["acov", "floored", "gauss_blur", "lag_products", "noise_sigma", "sandwich_meat"]


def noise_sigma(img: NDArray[Any], stride: int = 1) -> float:
    """Robust σ of white noise in an image: the MAD of ``f − mean of its 4 neighbours``
    (variance 1.25 σ² for white noise) — an upper bound when the image has structure at the
    pixel scale. ``stride`` > 1 evaluates it at every ``stride``-th pixel of each axis only.
    """
    a = np.asarray(img)
    if min(a.shape) < 3:
        return 0.0
    st = max(1, int(stride))
    c = a[1:-1:st, 1:-1:st].astype(np.float64)
    ny, nx = c.shape
    nb = (
        a[0 : ny * st : st, 1 : 1 + nx * st : st].astype(np.float64)
        + a[2 : 2 + ny * st : st, 1 : 1 + nx * st : st]
        + a[1 : 1 + ny * st : st, 0 : nx * st : st]
        + a[1 : 1 + ny * st : st, 2 : 2 + nx * st : st]
    )
    lap = (c - 0.25 * nb).ravel()
    med = float(np.median(lap))
    return float(1.4826 * np.median(np.abs(lap - med)) / math.sqrt(1.25))


def floored(h: NDArray[np.float64], rel: float = 1e-3) -> NDArray[np.float64]:
    """A symmetric matrix with its eigenvalues raised to at least ``rel`` × the largest."""
    w, u = np.linalg.eigh(0.5 * (h + h.T))
    top = float(np.abs(w).max()) if w.size else 0.0
    return np.asarray((u * np.maximum(w, rel * top + 1e-300)) @ u.T)


def gauss_blur(img: NDArray[np.float32], sigma: float) -> NDArray[np.float32]:
    """Separable Gaussian blur (σ in pixels, edges clamped)."""
    r = max(1, math.ceil(3.0 * sigma))
    x = np.arange(-r, r + 1, dtype=np.float64)
    w = np.exp(-0.5 * (x / max(sigma, 1e-3)) ** 2)
    w /= w.sum()
    a = np.pad(np.asarray(img, dtype=np.float64), r, mode="edge")
    ny, nx = img.shape
    tmp = sum(w[i] * a[:, i : i + nx] for i in range(2 * r + 1))
    out = sum(w[i] * tmp[i : i + ny, :] for i in range(2 * r + 1))
    return np.ascontiguousarray(out, dtype=np.float32)


def lag_products(a: NDArray[np.float64], b: NDArray[np.float64], lag: int) -> NDArray[np.float64]:
    """``C[i, j, dy + lag, dx + lag] = Σ_q a_i(q + d) b_j(q)`` for every lag ``d = (dx, dy)``
    in [−lag, lag]² (``a``: (n, ny, nx), ``b``: (m, ny, nx), zero outside the images), by
    zero-padded FFTs (no wrap-around).
    """
    ny, nx = a.shape[-2:]
    shape = (nice_size(ny + lag), nice_size(nx + lag))
    fa = np.fft.rfft2(a, shape)
    fb = fa if b is a else np.fft.rfft2(b, shape)
    c = np.fft.irfft2(fa[:, None] * np.conj(fb[None, :]), shape)
    idx_y = np.arange(-lag, lag + 1) % shape[0]
    idx_x = np.arange(-lag, lag + 1) % shape[1]
    return np.asarray(c[:, :, idx_y][:, :, :, idx_x])


def acov(res: NDArray[np.float64], mask: NDArray[np.bool_], lag: int) -> NDArray[np.float64]:
    """Autocovariance of the masked residual image for lags in [−lag, lag]² (zero outside the
    mask, normalised by the number of pixel pairs).
    """
    r = np.where(mask, res, 0.0)
    m = mask.astype(np.float64)
    both = lag_products(np.stack([r, m]), np.stack([r, m]), lag)
    num, n = both[0, 0], np.rint(both[1, 1])
    return np.where(n > 0, num / np.maximum(n, 1.0), 0.0)


def sandwich_meat(
    jimg: NDArray[np.float64], mask: NDArray[np.bool_], acov: NDArray[np.float64]
) -> NDArray[np.float64]:
    """``Jᵀ Σₑ J`` with ``Σₑ[q, q'] = acov(q' − q)`` (``jimg``: (n_par, ny, nx), 0 off-mask)."""
    lag = acov.shape[0] // 2
    j = jimg * mask
    c = lag_products(j, j, lag)
    return np.asarray(np.einsum("ijyx,yx->ij", c, acov))
