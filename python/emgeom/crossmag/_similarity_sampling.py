"""Image sampling helpers of :func:`emgeom.crossmag.find_similarity`: the shrink to a working
sampling, the blank-image test, the band-pass filter, and the maps between working-sampling
and full-resolution affines.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from emgeom import _core
from emgeom.resample import rescale

#: Smallest working image side for Fourier–Mellin (below, ``found=False``).
MIN_SIZE = 32


def bandpass(
    img: NDArray[np.float32], sigma_fine: float, sigma_coarse: float, threads: int | None
) -> NDArray[np.float32]:
    """Difference of Gaussians (Rust, Fourier space): keeps edges and particles, removes the
    noise floor and the slow ice/illumination gradients that otherwise dominate any correlation
    score. Borders within ``edge(σ_coarse)`` pixels are affected by the periodic boundary.
    """
    out: NDArray[np.float32] = _core.dog_filter(
        np.ascontiguousarray(img, dtype=np.float32),
        sigma_fine=sigma_fine,
        sigma_coarse=sigma_coarse,
        n_threads=threads,
    )
    return out


def edge(sigma_coarse: float) -> int:
    return math.ceil(3.0 * sigma_coarse) + 1


def is_blank(img: NDArray[np.float32]) -> bool:
    hi, lo = float(img.max()), float(img.min())
    return not hi - lo > 1e-6 * (1.0 + max(abs(hi), abs(lo)))


def shrink_image(img: NDArray[np.float32], zoom: float, threads: int | None) -> NDArray[np.float32]:
    if zoom >= 0.999:
        return img
    method = "area" if zoom <= 0.5 else "lanczos3"
    return np.ascontiguousarray(rescale(img, zoom, method, n_threads=threads), dtype=np.float32)


def _zoom_affine(z: float) -> NDArray[np.float64]:
    """3×3 map of pixel positions under a zoom ``z``: ``u' = (u + 0.5)·z − 0.5``."""
    return np.array([[z, 0.0, 0.5 * z - 0.5], [0.0, z, 0.5 * z - 0.5], [0.0, 0.0, 1.0]])


def _h(a: NDArray[np.float64]) -> NDArray[np.float64]:
    return np.vstack([a, [0.0, 0.0, 1.0]])


def to_full(a_w: NDArray[np.float64], z_r: float, z_m: float) -> NDArray[np.float64]:
    """Working-sampling affine (moving_w → reference_w) to full-resolution pixels."""
    return (np.linalg.inv(_zoom_affine(z_r)) @ _h(a_w) @ _zoom_affine(z_m))[:2]


def from_full(a: NDArray[np.float64], z_r: float, z_m: float) -> NDArray[np.float64]:
    return (_zoom_affine(z_r) @ _h(a) @ np.linalg.inv(_zoom_affine(z_m)))[:2]
