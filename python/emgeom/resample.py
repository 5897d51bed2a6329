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

import math
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from emgeom import _core
from emgeom._validate import (
    as_float,
    as_image,
    as_image_range,
    as_int,
    as_matrix,
    as_shape2,
    check_alloc,
    n_threads_arg,
    value_limit,
)
from emgeom.errors import InvalidValueError

__all__ = ["affine_about_center", "rescale", "warp_affine"]


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
    m = as_matrix(matrix, "matrix", (2, 2), max_abs=1e6)
    c_in = as_matrix(input_center, "input_center", (2,), max_abs=1e9)
    c_out = (
        c_in
        if output_center is None
        else as_matrix(output_center, "output_center", (2,), max_abs=1e9)
    )
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
    # float32/float64 C-contiguous images skip as_image's two serial min/max passes over the
    # whole input (~4 ms at 4096², a fifth of the warp): the kernel checks every input pixel
    # against the same bound inside its parallel pass, on rows it has just read. On failure,
    # as_image gives the usual message.
    img: NDArray[Any]
    if (
        isinstance(image, np.ndarray)
        and image.ndim in (2, 3)
        and image.size > 0
        and image.dtype in (np.float32, np.float64)
        and image.flags.c_contiguous
    ):
        img, fast = image, True
    else:
        img, fast = as_image(image, "image"), False
    a = as_matrix(affine, "affine", (2, 3), max_abs=1e15)
    shape = img.shape[-2:] if output_shape is None else as_shape2(output_shape, "output_shape")
    order_i = as_int(order, "order")
    if order_i not in (1, 3):
        raise InvalidValueError(f"order: expected 1 (bilinear) or 3 (bicubic), got {order_i}")
    fill_v = None if fill is None else as_float(fill, "fill")
    if fill_v is not None and abs(fill_v) > float(np.finfo(img.dtype).max):
        raise InvalidValueError(f"fill: {fill_v} does not fit the image dtype {img.dtype}")
    threads = n_threads_arg(n_threads)
    stack = img if img.ndim == 3 else img[None]
    check_alloc(
        stack.shape[0] * shape[0] * shape[1],
        img.dtype.itemsize,
        "output_shape",
        shape=stack.shape[:1] + tuple(shape),
        allowed_bytes=4 * img.nbytes,  # resampling an image held in memory to its size is fine
    )
    limit = value_limit(img.dtype) if fast else None
    try:
        out = _core.warp_affine(
            stack,
            a,
            output_shape=(int(shape[0]), int(shape[1])),
            order=1 if order_i == 1 else 3,
            fill=fill_v,
            n_threads=threads,
            check_limit=limit,
        )
    except InvalidValueError:
        if fast:
            as_image(img, "image")  # raises the precise message (NaN/inf count or range)
        raise
    return out if img.ndim == 3 else out[0]


# --- crossmag: rescale (owned by the cross-magnification work, issue 4) ---

_RESCALE_METHODS = ("area", "fourier", "lanczos3", "bicubic", "bilinear")


def rescale(
    image: ArrayLike,
    factor: float | tuple[float, float],
    method: str = "area",
    *,
    output_shape: tuple[int, int] | None = None,
    n_threads: int | None = None,
) -> NDArray[Any]:
    """Rescale a ``(y, x)`` image by a zoom factor (Rust, GIL released).

    Geometry (every method): output pixel ``j`` is centred on input position
    ``(j + 0.5) / factor − 0.5`` along each axis (pixel centres on integer indices, as OpenCV
    ``resize`` and exact binning). So the image centre ``c = (n − 1)/2`` maps to
    ``(c + 0.5)·factor − 0.5`` and a point ``u`` maps to ``(u + 0.5)·factor − 0.5``.

    Parameters
    ----------
    image : ndarray, (y, x)
        float32/float64 kept; other real dtypes become float32.
    factor : float or (fy, fx)
        Zoom: output pixels per input pixel (< 1 shrinks, e.g. ``1/12.01``; > 1 enlarges).
        The output pixel size is ``input pixel size / factor``.
    method : {"area", "fourier", "lanczos3", "bicubic", "bilinear"}
        ``"area"``: exact area averaging with fractional box weights (the right choice for
        large shrink factors: white-noise σ drops by the factor; like OpenCV ``INTER_AREA``);
        for ``factor > 1`` it falls back to bilinear, as OpenCV does.
        ``"lanczos3"``: Lanczos-3 windowed sinc, widened by ``1/factor`` when shrinking
        (antialiased zoom as IMOD ``zoomdown.c``/SerialEM ``TransformToOtherMag``).
        ``"fourier"``: Fourier crop / zero pad (band-limited, periodic; float32 only, the
        zoom is exactly ``output_shape / input_shape``): the output samples the input's
        symmetric trigonometric interpolant, truncated to the output band. The Nyquist term
        of an even size is kept exactly: enlarging splits it in halves at ``±n/2`` (a
        ``cos(πx)`` pattern survives as ``cos(πx)``); shrinking to an even size gives the
        output Nyquist bin the sum of the input ``±m/2`` terms (real for real input). So
        enlarging then shrinking back returns the image to float precision, for even and odd
        sizes. ``"bicubic"``/``"bilinear"``: point sampling with
        :func:`warp_affine` (no antialiasing: only for enlarging or factors ≥ ~0.8).
    output_shape : (ny, nx), optional
        Default ``floor(n·factor + 1e-6)`` per axis (at least 1).
    n_threads : int, optional
        Worker threads; default all cores.

    Returns
    -------
    ndarray, (ny', nx')
        Same dtype as the converted input (``"fourier"`` returns float32).
    """
    # float32/float64 C-contiguous images skip as_image's separate NaN/inf pass over the
    # whole input (7 ms at 4096², more than the shrink itself): the separable Rust kernel
    # checks every input pixel in its own single pass and raises the same InvalidValueError.
    fast = (
        isinstance(image, np.ndarray)
        and image.ndim == 2
        and image.size > 0
        and image.dtype in (np.float32, np.float64)
        and image.flags.c_contiguous
    )
    img = np.asarray(image) if fast else as_image(image, "image", allow_stack=False)
    if isinstance(factor, np.ndarray) and factor.ndim == 0:
        factor = factor.item()
    if isinstance(factor, tuple | list | np.ndarray):
        if len(factor) != 2:
            raise InvalidValueError(f"factor: expected a number or (fy, fx), got {factor!r}")
        fy = as_float(factor[0], "factor[0]", positive=True, low=1e-5, high=1e5)
        fx = as_float(factor[1], "factor[1]", positive=True, low=1e-5, high=1e5)
    else:
        fy = fx = as_float(factor, "factor", positive=True, low=1e-5, high=1e5)
    if not isinstance(method, str) or method not in _RESCALE_METHODS:
        raise InvalidValueError(f"method: expected one of {_RESCALE_METHODS}, got {method!r}")
    ny, nx = img.shape
    if output_shape is None:
        shape = as_shape2(
            (max(1, int(np.floor(ny * fy + 1e-6))), max(1, int(np.floor(nx * fx + 1e-6)))),
            "output size (image shape × factor)",
        )
    else:
        shape = as_shape2(output_shape, "output_shape")
    # "fourier" also holds the input and output spectra (complex64): ~3 output-sized arrays
    check_alloc(
        shape[0] * shape[1],
        12 if method == "fourier" else img.dtype.itemsize,
        "factor" if output_shape is None else "output_shape",
        shape=shape,
        allowed_bytes=4 * img.nbytes,
    )
    threads = n_threads_arg(n_threads)
    if method == "area" and (fy > 1 or fx > 1):
        method = "bilinear"
    if method in ("area", "lanczos3"):
        return _core.rescale_separable(
            img,
            output_shape=shape,
            zoom=(fy, fx),
            method="area" if method == "area" else "lanczos3",
            n_threads=threads,
        )
    if method == "fourier":
        if output_shape is None:
            shape = (max(1, round(ny * fy)), max(1, round(nx * fx)))
        return _rescale_fourier(img, shape, threads)
    if fast:
        img = as_image(img, "image", allow_stack=False)  # the other methods need the check
    # Sample positions in the outer half-pixels (−0.5 … 0) lie outside [0, n − 1], where
    # warp_affine fills; pad by edge replication so they are clamped to the edge instead.
    padded = np.pad(img, 2, mode="edge")
    a = np.array([[1 / fx, 0.0, 0.5 / fx - 0.5 + 2], [0.0, 1 / fy, 0.5 / fy - 0.5 + 2]])
    return warp_affine(padded, a, shape, order=1 if method == "bilinear" else 3, n_threads=threads)


def _rescale_fourier(
    image: NDArray[Any], shape: tuple[int, int], threads: int | None
) -> NDArray[np.float32]:
    """Fourier rescale in float32 without overflow or underflow.

    The FFT sums up to ``ny·nx`` pixel values: images with ``|values|`` beyond ~1e20 (1e34
    overflowed float32 to inf/NaN everywhere) or below ~1e-20 (precision lost to denormals) are
    scaled by a power of two first and back afterwards (exact: no rounding is added). Only
    such images pay the two extra passes.
    """
    img, lo, hi = as_image_range(image, "image", allow_stack=False)
    amp = max(-lo, hi)
    f32_max = float(np.finfo(np.float32).max)
    if amp > f32_max / 64:
        raise InvalidValueError(
            f"image: pixel values up to {amp:.3g} do not fit the float32 result of the "
            f"'fourier' method (|values| <= {f32_max / 64:.3g}); use method='lanczos3' or "
            "scale the image"
        )
    exponent = 0
    if amp > 2.0**64 or 0 < amp < 2.0**-64:
        exponent = math.frexp(amp)[1]
        img = np.ldexp(img, -exponent, dtype=img.dtype)
    out: NDArray[np.float32] = _core.rescale_fourier(
        img.astype(np.float32, copy=False), output_shape=shape, n_threads=threads
    )
    if exponent:
        np.ldexp(out, exponent, out=out)
    return out
