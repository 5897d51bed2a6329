"""Slow numpy reference of ``rust/kernels/src/rescale.rs``: separable area / Lanczos-3 rescaling
as dense matrices, and the Fourier crop/pad. Obviously correct, not fast.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

from emgeom.reference.interp import lanczos3

__all__ = ["area_matrix", "fourier_rescale", "lanczos3_matrix", "rescale_separable"]


def area_matrix(n_in: int, n_out: int, f: float) -> NDArray[np.float64]:
    """``(n_out, n_in)`` exact area-averaging weights for zoom ``f`` (edge-clamped)."""
    s = 1.0 / f
    w = np.zeros((n_out, n_in))
    for j in range(n_out):
        e0, e1 = j * s, (j + 1) * s
        for i in range(math.floor(e0), max(math.ceil(e1), math.floor(e0) + 1)):
            ov = max(0.0, min(e1, i + 1) - max(e0, i))
            w[j, min(max(i, 0), n_in - 1)] += ov
    return w / w.sum(axis=1, keepdims=True)


def lanczos3_matrix(n_in: int, n_out: int, f: float) -> NDArray[np.float64]:
    """``(n_out, n_in)`` Lanczos-3 weights (support × 1/f when shrinking), edge-clamped."""
    s = 1.0 / f
    st = max(s, 1.0)
    w = np.zeros((n_out, n_in))
    for j in range(n_out):
        x = (j + 0.5) * s - 0.5
        for i in range(math.floor(x - 3 * st), math.ceil(x + 3 * st) + 1):
            w[j, min(max(i, 0), n_in - 1)] += float(lanczos3(np.array((i - x) / st)))
    return w / w.sum(axis=1, keepdims=True)


def rescale_separable(
    image: NDArray[Any], output_shape: tuple[int, int], zoom: tuple[float, float], method: str
) -> NDArray[np.float64]:
    """Reference of ``rescale::rescale_separable`` ("area" or "lanczos3")."""
    img = np.asarray(image, dtype=np.float64)
    mk = area_matrix if method == "area" else lanczos3_matrix
    wy = mk(img.shape[0], output_shape[0], zoom[0])
    wx = mk(img.shape[1], output_shape[1], zoom[1])
    return np.asarray(wy @ img @ wx.T)


def _fourier_rescale_matrix(n: int, m: int) -> NDArray[np.float64]:
    """The real ``(m, n)`` matrix of 1-D Fourier rescaling ``n → m`` (half-pixel aligned).

    Built as ``IDFT_m · W · DFT_n``. ``W`` maps input frequencies to output bins: the input is
    read as its symmetric trigonometric interpolant (an even ``n``'s Nyquist coefficient split
    in halves at ``±n/2``), multiplied by the shift phase ``exp(2πi s δ/n)``, ``δ = 0.5(n/m − 1)``,
    and sampled at ``m`` points, keeping ``|s| ≤ m/2`` (both ``±m/2`` alias onto the Nyquist
    bin of an even ``m``).
    """
    delta = 0.5 * (n / m - 1)
    w = np.zeros((m, n), dtype=complex)
    half = n // 2
    freqs = range(-half, half + 1) if n % 2 == 0 else range(-(n - 1) // 2, (n - 1) // 2 + 1)
    for s in freqs:
        if 2 * abs(s) > m:
            continue  # outside the output band
        weight = 0.5 if (n % 2 == 0 and abs(s) == half) else 1.0
        w[s % m, s % n] += weight * (m / n) * np.exp(2j * np.pi * s * delta / n)
    j = np.arange(m)
    i = np.arange(n)
    idft = np.exp(2j * np.pi * np.outer(j, np.arange(m)) / m) / m
    dft = np.exp(-2j * np.pi * np.outer(np.arange(n), i) / n)
    r = idft @ w @ dft
    assert np.abs(r.imag).max() < 1e-9 * max(1.0, np.abs(r.real).max())
    return np.asarray(r.real)


def fourier_rescale(image: NDArray[Any], output_shape: tuple[int, int]) -> NDArray[np.float64]:
    """Reference of ``rescale::fourier_rescale``: half-pixel aligned crop/pad, exact Nyquist.

    Separable: ``R_y · image · R_xᵀ`` with the 1-D matrices of :func:`_fourier_rescale_matrix`.
    """
    img = np.asarray(image, dtype=np.float64)
    ny, nx = img.shape
    my, mx = output_shape
    return np.asarray(_fourier_rescale_matrix(ny, my) @ img @ _fourier_rescale_matrix(nx, mx).T)
