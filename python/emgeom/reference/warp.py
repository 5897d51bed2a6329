"""Reference (numpy) for ``emgeom_kernels::warp``: affine resampling of one image.

Per pixel and in float64, with none of the kernel's row splitting, interior/edge paths or SIMD:
``out[y, x] = image(A · (x, y, 1))``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from emgeom.reference.interp import bilinear_weights, keys_weights

__all__ = ["warp_affine"]


def warp_affine(
    image: NDArray[Any],
    affine: NDArray[np.float64],
    output_shape: tuple[int, int],
    order: int = 3,
    fill: float | None = None,
) -> NDArray[np.float64]:
    """Reference for ``emgeom_kernels::warp::warp_affine`` on one ``(y, x)`` image (float64).

    ``out[y, x] = image(A · (x, y, 1))``; positions outside ``[0, n-1]`` (tolerance 1e-6) take
    ``fill`` (default: the image mean); inside, neighbours are clamped to the edge.
    """
    img = np.asarray(image, dtype=np.float64)
    ny, nx = img.shape
    fill_v = float(img.mean()) if fill is None else float(fill)
    yy, xx = np.mgrid[0 : output_shape[0], 0 : output_shape[1]].astype(np.float64)
    sx = affine[0, 0] * xx + affine[0, 1] * yy + affine[0, 2]
    sy = affine[1, 0] * xx + affine[1, 1] * yy + affine[1, 2]
    tol = 1e-6
    inside = (sx >= -tol) & (sy >= -tol) & (sx <= nx - 1 + tol) & (sy <= ny - 1 + tol)
    sx = np.clip(sx, 0, nx - 1)
    sy = np.clip(sy, 0, ny - 1)
    x0 = np.floor(sx).astype(np.int64)
    y0 = np.floor(sy).astype(np.int64)
    fx = sx - x0
    fy = sy - y0
    if order == 1:
        offsets, weights = [0, 1], bilinear_weights
    elif order == 3:
        offsets, weights = [-1, 0, 1, 2], keys_weights
    else:
        raise ValueError("order must be 1 or 3")
    wx = weights(fx)
    wy = weights(fy)
    out = np.zeros(output_shape, dtype=np.float64)
    for j, oy in enumerate(offsets):
        yi = np.clip(y0 + oy, 0, ny - 1)
        for i, ox in enumerate(offsets):
            xi = np.clip(x0 + ox, 0, nx - 1)
            out += wy[j] * wx[i] * img[yi, xi]
    return np.where(inside, out, fill_v)
