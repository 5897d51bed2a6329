"""Slow numpy reference of ``rust/kernels/src/crossmag_refine.rs`` (the area-integration forward
model of the cross-magnification refinement, with its derivatives). Obviously correct, not fast.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["area_predict"]


def area_predict(
    image: NDArray[Any],
    params: tuple[float, float, float, float],
    center: tuple[float, float],
    box: tuple[int, int, int, int],
    k: int,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Reference of ``crossmag_refine::area_predict``: the forward model of the refinement.

    The fine image ``image`` (moving, pixel centres on integers, bilinear between them) is
    integrated over the footprint of every coarse (reference) pixel ``q = (qx, qy)`` of
    ``box = (x0, y0, nx, ny)``: the mean of ``k × k`` samples at ``q + o``, ``o`` on a centred
    ``k × k`` grid in [−0.5, 0.5]², mapped into the fine image by
    ``u = c + R(θ)ᵀ (q + o − t) / s`` with ``params = (tx, ty, s, θ [rad])`` and
    ``center = c`` (the fine image's point that lands on ``t``).

    Returns ``(P, D)``: ``P`` of shape ``(ny, nx)`` and its derivatives ``D`` of shape
    ``(4, ny, nx)`` with respect to ``tx, ty, s, θ`` (exact derivatives of the bilinear
    interpolant; samples outside the image are clamped to its border).
    """
    img = np.asarray(image, dtype=np.float64)
    tx, ty, s, th = (float(v) for v in params)
    x0, y0, nx, ny = box
    h, w = img.shape
    c, sn = math.cos(th), math.sin(th)
    qy, qx = np.mgrid[y0 : y0 + ny, x0 : x0 + nx].astype(np.float64)
    p = np.zeros((ny, nx))
    d = np.zeros((4, ny, nx))
    for i in range(k):
        for j in range(k):
            vx = qx + (j + 0.5) / k - 0.5 - tx
            vy = qy + (i + 0.5) / k - 0.5 - ty
            wx = (c * vx + sn * vy) / s
            wy = (-sn * vx + c * vy) / s
            ux = np.clip(center[0] + wx, 0.0, w - 1.0)
            uy = np.clip(center[1] + wy, 0.0, h - 1.0)
            ix = np.minimum(np.floor(ux).astype(int), w - 2) if w > 1 else np.zeros_like(ux, int)
            iy = np.minimum(np.floor(uy).astype(int), h - 2) if h > 1 else np.zeros_like(uy, int)
            fx, fy = ux - ix, uy - iy
            ix1, iy1 = np.minimum(ix + 1, w - 1), np.minimum(iy + 1, h - 1)
            m00, m01 = img[iy, ix], img[iy, ix1]
            m10, m11 = img[iy1, ix], img[iy1, ix1]
            p += (1 - fy) * ((1 - fx) * m00 + fx * m01) + fy * ((1 - fx) * m10 + fx * m11)
            gx = (1 - fy) * (m01 - m00) + fy * (m11 - m10)
            gy = (1 - fx) * (m10 - m00) + fx * (m11 - m01)
            # du/dtx = −Rᵀ e_x / s, du/dty = −Rᵀ e_y / s, du/ds = −w/s, du/dθ = (w_y, −w_x)
            d[0] += -(gx * c - gy * sn) / s
            d[1] += -(gx * sn + gy * c) / s
            d[2] += -(gx * wx + gy * wy) / s
            d[3] += gx * wy - gy * wx
    n = float(k * k)
    return p / n, d / n
