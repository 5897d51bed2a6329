"""Affine resampling of images and stacks (Rust kernels).

The one geometric primitive behind anisotropic-magnification correction and cross-magnification
warps::

    out[y, x] = image(A · (x, y, 1))

with ``A`` a 2×3 matrix mapping an *output* pixel position ``(x, y)`` (x = column, y = row,
pixel centres on integer indices) to the *input* position that is sampled. This is OpenCV's
``WARP_INVERSE_MAP`` form. Interpolation is bilinear (``order=1``) or Keys cubic convolution
with a = −0.5 (``order=3``); samples outside the input take ``fill`` (default: the image mean).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from emgeom import _core
from emgeom._validate import as_float, as_image, as_int, as_matrix, as_shape2, n_threads_arg
from emgeom.errors import InvalidValueError

__all__ = ["affine_about_center", "warp_affine"]


def affine_about_center(
    matrix: ArrayLike, input_center: ArrayLike, output_center: ArrayLike | None = None
) -> NDArray[np.float64]:
    """Build the 2×3 sampling map ``x_in = M · (x_out − c_out) + c_in``.

    Parameters
    ----------
    matrix : (2, 2) array_like
        Linear part ``M`` acting on ``(x, y)`` column vectors (x = column, y = row).
    input_center, output_center : (2,) array_like
        ``(x, y)`` pixel positions of the fixed point in the input and the output image.
        ``output_center`` defaults to ``input_center``.

    Returns
    -------
    (2, 3) ndarray
        ``[M | c_in − M·c_out]``.
    """
    m = as_matrix(matrix, "matrix", (2, 2))
    c_in = as_matrix(input_center, "input_center", (2,))
    c_out = c_in if output_center is None else as_matrix(output_center, "output_center", (2,))
    return np.hstack([m, (c_in - m @ c_out)[:, None]])


def warp_affine(
    image: ArrayLike,
    affine: ArrayLike,
    output_shape: tuple[int, int] | None = None,
    *,
    order: int = 3,
    fill: float | None = None,
    n_threads: int | None = None,
) -> NDArray[Any]:
    """Resample an image or stack with an affine sampling map (Rust, GIL released).

    Parameters
    ----------
    image : ndarray, (y, x) or (n, y, x)
        Input image(s). float32 and float64 are kept; other real dtypes become float32.
    affine : (2, 3) array_like
        ``A`` with ``[x_in, y_in] = A @ [x_out, y_out, 1]`` in pixels (x = column, y = row).
    output_shape : (ny, nx), optional
        Shape of each output image; default: the input's.
    order : {1, 3}
        1 = bilinear, 3 = Keys cubic convolution (a = −0.5).
    fill : float, optional
        Value for samples outside the input; default: each image's mean.
    n_threads : int, optional
        Worker threads; default: all cores.

    Returns
    -------
    ndarray
        Same dtype and dimensionality as the (converted) input, shape ``output_shape``
        (``(n,) + output_shape`` for stacks).
    """
    img = as_image(image, "image")
    a = as_matrix(affine, "affine", (2, 3))
    shape = img.shape[-2:] if output_shape is None else as_shape2(output_shape, "output_shape")
    order_i = as_int(order, "order")
    if order_i not in (1, 3):
        raise InvalidValueError(f"order: expected 1 (bilinear) or 3 (bicubic), got {order_i}")
    fill_v = None if fill is None else as_float(fill, "fill")
    threads = n_threads_arg(n_threads)
    stack = img if img.ndim == 3 else img[None]
    kernel = _core.warp_affine_f32 if img.dtype == np.float32 else _core.warp_affine_f64
    out = kernel(stack, a, (int(shape[0]), int(shape[1])), order_i, fill_v, threads)
    return out if img.ndim == 3 else out[0]
