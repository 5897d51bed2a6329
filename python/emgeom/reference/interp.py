"""Reference (numpy) for ``emgeom_kernels::interp``: the interpolation kernels, each defined once.

Written from the published formulas: Keys (1981), "Cubic convolution interpolation for digital
image processing", IEEE TASSP 29:1153, eq. 15 with a = −0.5; Lanczos-3 as ``sinc(t)·sinc(t/3)``
(Duchon 1979); bilinear weights ``(1 − t, t)``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__ = ["bilinear_weights", "keys_kernel", "keys_weights", "lanczos3"]


def keys_kernel(s: NDArray[np.float64]) -> NDArray[np.float64]:
    """Keys (1981) cubic convolution kernel with a = −0.5 (``interp::keys_kernel``)."""
    s = np.abs(s)
    return np.where(
        s < 1,
        1.5 * s**3 - 2.5 * s**2 + 1,
        np.where(s < 2, -0.5 * s**3 + 2.5 * s**2 - 4 * s + 2, 0.0),
    )


def keys_weights(t: NDArray[np.float64]) -> list[NDArray[np.float64]]:
    """Keys weights at offsets −1, 0, 1, 2 for fractions ``t`` (``interp::keys_weights``)."""
    t = np.asarray(t, dtype=np.float64)
    return [keys_kernel(t - o) for o in (-1, 0, 1, 2)]


def bilinear_weights(t: NDArray[np.float64]) -> list[NDArray[np.float64]]:
    """Bilinear weights at offsets 0, 1 for fractions ``t`` (``interp::bilinear_weights``)."""
    t = np.asarray(t, dtype=np.float64)
    return [1 - t, t]


def lanczos3(t: NDArray[np.float64]) -> NDArray[np.float64]:
    """Lanczos-3 kernel ``sinc(t)·sinc(t/3)`` for ``|t| < 3``, else 0 (``interp::lanczos3``)."""
    t = np.abs(np.asarray(t, dtype=np.float64))
    return np.where(t < 3, np.sinc(t) * np.sinc(t / 3), 0.0)
