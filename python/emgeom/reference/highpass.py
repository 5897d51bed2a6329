"""Reference (numpy) for ``emgeom_kernels::highpass``: the masked Gaussian high-pass by
normalised convolution that the cross-magnification refinement applies to its predictions
(``emgeom.crossmag._refine_model``; Knutsson & Westin 1993, "Normalized and differential
convolution", CVPR, for the normalisation by the smoothed mask).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

__all__ = ["masked_gaussian_highpass"]


def masked_gaussian_highpass(
    stack: NDArray[np.float64], mask: NDArray[np.bool_], sigma: float, pad: tuple[int, int]
) -> NDArray[np.float64]:
    """``mask · (img − G∗(mask·img) / max(G∗mask, 1e-12))`` for each image of ``stack``
    (``(n, ny, nx)``), the Gaussian (σ ``sigma`` px) applied as its transfer function
    ``exp(−2π²σ²f²)`` on the zero-padded frame ``pad`` (``highpass::masked_gaussian_highpass``).
    """
    ny, nx = mask.shape
    fy = np.fft.fftfreq(pad[0])[:, None]
    fx = np.fft.rfftfreq(pad[1])[None, :]
    g = np.exp(-2.0 * math.pi**2 * sigma**2 * (fx * fx + fy * fy))
    den = np.fft.irfft2(np.fft.rfft2(mask.astype(np.float64), pad) * g, pad)[:ny, :nx]
    den = np.maximum(den, 1e-12)
    num = np.fft.irfft2(np.fft.rfft2(np.where(mask, stack, 0.0), pad) * g, pad)
    return np.where(mask, stack - num[..., :ny, :nx] / den, 0.0)
