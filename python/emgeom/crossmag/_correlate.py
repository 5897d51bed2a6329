"""Translation correlation at one sampling (:func:`correlate`, the public building block) and
the IMOD filter argument shared by ``align`` and ``correlate``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, cast

import numpy as np
from numpy.typing import ArrayLike, NDArray

from emgeom import _core
from emgeom._validate import as_float, as_int, n_threads_arg
from emgeom.crossmag._geometry import as_unit_image, nice_size
from emgeom.errors import InvalidTypeError, InvalidValueError

__all__ = ["DEFAULT_FILTER", "CorrelationPeak", "CorrelationResult", "correlate"]

DEFAULT_FILTER = (0.03, 0.05, 0.0, 0.25)
"""IMOD filter (sigma1, sigma2, radius1, radius2) in cycles/pixel: SerialEM AutoAlign defaults
(``ShiftManager.cpp``: mSigma1 = 0.03, mSigma2 = 0.05, mRadius2 = 0.25)."""


def correlation_setup(
    pad: tuple[int, int], taper: float, filt: tuple[float, float, float, float], method: str
) -> _core.CorrelationSetup:
    """The native correlation frame: both images tapered (``taper`` px) into ``pad``, filtered
    by the IMOD filter ``filt`` and correlated with ``method`` ("xcorr" or "phase").
    """
    sigma1, sigma2, radius1, radius2 = filt
    band = _core.Bandpass(sigma1=sigma1, sigma2=sigma2, radius1=radius1, radius2=radius2)
    mode = cast(Literal["xcorr", "phase"], method)  # validated by the caller and the kernel
    return _core.CorrelationSetup(pad=pad, taper=taper, filter=band, method=mode)


@dataclass(frozen=True)
class CorrelationPeak:
    """One peak of :func:`correlate`.

    ``(dx, dy)``: displacement in pixels such that ``reference(x) ≈ moving(x − d)`` (the moving
    content moved by ``+d`` lands on the reference). ``value``: raw correlation value;
    ``normalized``: value / sqrt(energies of the filtered, tapered images) (xcorr only).
    """

    dx: float
    dy: float
    value: float
    normalized: float


@dataclass(frozen=True, eq=False)
class CorrelationResult:
    """Result of :func:`correlate`: peaks (best first), map statistics, optional map."""

    peaks: tuple[CorrelationPeak, ...]
    map_mean: float
    map_std: float
    correlation_map: NDArray[np.floating[Any]] | None = field(default=None, repr=False)

    @property
    def shift(self) -> tuple[float, float]:
        """``(dx, dy)`` of the best peak."""
        if not self.peaks:
            raise InvalidValueError("correlate: no peak was found")
        return (self.peaks[0].dx, self.peaks[0].dy)


def filter_arg(filter: Sequence[float] | None) -> tuple[float, float, float, float]:
    """The IMOD filter ``(sigma1, sigma2, radius1, radius2)`` (cycles/pixel), or zeros for
    ``None``; anything else that is not a sequence of 4 finite numbers names ``filter``.
    """
    if filter is None:
        return (0.0, 0.0, 0.0, 0.0)
    if isinstance(filter, str | bytes) or not hasattr(filter, "__len__"):
        raise InvalidTypeError(
            f"filter: expected None or (sigma1, sigma2, radius1, radius2), got {filter!r}"
        )
    if len(filter) != 4:
        raise InvalidValueError(
            f"filter: expected (sigma1, sigma2, radius1, radius2), got {filter!r}"
        )
    f0, f1, f2, f3 = (as_float(v, f"filter[{i}]") for i, v in enumerate(filter))
    return (f0, f1, f2, f3)


def imod_filter(
    s: NDArray[np.float64], sigma1: float, sigma2: float, radius1: float, radius2: float
) -> NDArray[np.float64]:
    """The IMOD filter ``(sigma1, sigma2, radius1, radius2)`` evaluated at the frequencies ``s``
    (cycles/pixel): IMOD ``libcfshr/filtxcorr.c : XCorrSetCTFnoScl``, the filter that the Rust
    correlation applies (``xcorr::FilterParams::value``). For the statistics of the filtered
    noise (:func:`emgeom.crossmag._search.noise_corr_area`); the numpy oracle of the kernel is
    :func:`emgeom.reference.xcorr.imod_filter`.
    """
    s = np.asarray(s, dtype=np.float64)
    if abs(sigma1) <= 1e-6 and abs(sigma2) <= 1e-6:
        return np.ones_like(s)
    r1p, r1n = (radius1, 0.0) if radius1 >= 0 else (0.0, -radius1)
    beta = -0.5 / sigma2**2 if abs(sigma2) > 1e-6 else 0.0
    alpha = -0.5 / sigma1**2 if abs(sigma1) > 1e-6 else 0.0
    v = np.where(
        s < r1p,
        np.exp(beta * (s - r1p) ** 2),
        np.where(s > radius2, np.exp(beta * (s - radius2) ** 2), 1.0),
    )
    if sigma2 < -1e-6:
        v = 1 - v  # a high-pass instead of a low-pass edge
    if sigma1 > 1e-6:
        v = v * np.where(s < r1n, 0.0, 1 - np.exp(alpha * (s - r1n) ** 2))
    elif sigma1 < -1e-6:
        delmax = (-1 / alpha) * math.exp(-1)  # (the maximum of s²·exp(α s²))
        v = v * s**2 * np.exp(alpha * s**2) / delmax
    return np.where(v < 1e-6, 0.0, v)


def correlate(
    reference: ArrayLike,
    moving: ArrayLike,
    *,
    filter: Sequence[float] | None = DEFAULT_FILTER,
    method: str = "xcorr",
    n_peaks: int = 5,
    max_shift: float | None = None,
    taper_fraction: float = 0.1,
    pad_fraction: float = 0.0,
    min_separation: float = 3.0,
    return_map: bool = False,
    n_threads: int | None = None,
) -> CorrelationResult:
    """Translation between two images at the same sampling, with the top peaks (Rust).

    Both images are tapered (cosine ramp over ``taper_fraction`` of each size), made zero-mean,
    placed at the origin of a common padded frame (each size × (1 + ``pad_fraction``), rounded
    up to an FFT-friendly size), Fourier transformed (realfft, cached plans), multiplied as
    ``A·conj(B)``, filtered with the IMOD filter ``(sigma1, sigma2, radius1, radius2)``
    (cycles/pixel; ``None`` = no filter) and transformed back.

    Parameters
    ----------
    reference, moving : ndarray (y, x)
        Images (any sizes; converted to float32).
    filter : 4 floats or None
        IMOD filter parameters (default SerialEM's ``(0.03, 0.05, 0, 0.25)``).
    method : {"xcorr", "phase"}
        Unnormalised cross-correlation or phase correlation.
    n_peaks : int
        Number of peaks returned (local maxima at least ``min_separation`` px apart).
    max_shift : float, optional
        Only peaks with ``|d| ≤ max_shift`` pixels.
    taper_fraction, pad_fraction : float
        Taper width and padding as fractions of the image size.
    return_map : bool
        Also return the correlation map (zero displacement at index ``[0, 0]``, circular):
        float32, or float64 when the raw values do not fit float32 (inputs beyond ~1e±19).
    n_threads : int, optional
        Worker threads; default all cores.

    Returns
    -------
    CorrelationResult
        ``peaks[0].dx, .dy`` is the displacement d with ``reference(x) ≈ moving(x − d)``.
        Compare (tested): ``cv2.phaseCorrelate(moving, reference, window)`` returns ``+d`` as
        ``(x, y)``; ``skimage.registration.phase_cross_correlation(reference, moving,
        normalization=None)`` returns ``+d`` as ``(row, col) = (dy, dx)`` (scikit-image 0.26).
    """
    # images far from unit magnitude are correlated scaled by powers of two (exact); the
    # unnormalised xcorr values are scaled back below
    a, ea = as_unit_image(reference, "reference")
    b, eb = as_unit_image(moving, "moving")
    f = filter_arg(filter)
    if method not in ("xcorr", "phase"):
        raise InvalidValueError(f"method: expected 'xcorr' or 'phase', got {method!r}")
    n = as_int(n_peaks, "n_peaks", low=1, high=1000)
    tf = as_float(taper_fraction, "taper_fraction", low=0.0, high=0.5)
    pf = as_float(pad_fraction, "pad_fraction", low=0.0, high=4.0)
    ms = -1.0 if max_shift is None else as_float(max_shift, "max_shift", nonnegative=True)
    sep = as_float(min_separation, "min_separation", nonnegative=True)
    ny = max(a.shape[0], b.shape[0])
    nx = max(a.shape[1], b.shape[1])
    pad = (nice_size(math.ceil(ny * (1 + pf))), nice_size(math.ceil(nx * (1 + pf))))
    taper = tf * min(min(a.shape), min(b.shape))
    t = _core.correlate(
        a,
        b,
        correlation_setup(pad, taper, f, method),
        _core.PeakSearch(n_peaks=n, min_separation=sep),
        max_shift=None if ms < 0 else ms,
        return_map=bool(return_map),
        n_threads=n_threads_arg(n_threads),
    )
    cmap = t.map
    back = 1.0 if method == "phase" else math.ldexp(1.0, -(ea + eb))
    out = tuple(
        CorrelationPeak(float(p[0]), float(p[1]), float(p[2]) * back, float(q))
        for p, q in zip(t.peaks, t.normalized, strict=True)
    )
    cmap_out: NDArray[np.floating[Any]] | None = cmap
    if cmap is not None and back != 1.0:
        m64 = np.asarray(cmap, dtype=np.float64) * back
        top = float(np.abs(m64).max())
        f32 = np.finfo(np.float32)
        fits = top == 0.0 or float(f32.tiny) * 2.0**23 < top < float(f32.max)
        cmap_out = m64.astype(np.float32) if fits else m64
    return CorrelationResult(
        peaks=out,
        map_mean=float(t.map_mean) * back,
        map_std=float(t.map_std) * back,
        correlation_map=cmap_out,
    )
