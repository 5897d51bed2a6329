"""Masked normalised cross-correlation (Padfield 2012) in Rust.

The public entry point is :func:`masked_correlate` (re-exported as
``emgeom.crossmag.masked_correlate``). Algorithm: D. Padfield, "Masked object registration in the
Fourier domain", IEEE Trans. Image Process. 21(5):2706–2718 (2012),
doi:10.1109/TIP.2011.2181402 — the algorithm of scikit-image's
``skimage/registration/_masked_phase_cross_correlation.py : cross_correlate_masked``; kernel in
``rust/kernels/src/ncc/``, numpy reference in :mod:`emgeom.reference.ncc`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from emgeom import _core
from emgeom._validate import as_float, as_image, as_int, describe, n_threads_arg
from emgeom.crossmag._correlate import CorrelationPeak, CorrelationResult
from emgeom.errors import InvalidTypeError, InvalidValueError, ShapeError

__all__ = ["MaskedCorrelationPeak", "MaskedCorrelationResult", "masked_correlate"]


@dataclass(frozen=True)
class MaskedCorrelationPeak(CorrelationPeak):
    """One peak of :func:`masked_correlate`.

    ``(dx, dy)``: displacement in pixels with ``reference(x) ≈ moving(x − d)`` (as
    :class:`~emgeom.crossmag.CorrelationPeak`); ``value`` and ``normalized``: the masked NCC at
    the integer maximum (in [−1, 1]); ``overlap``: overlap weight of the two masks there divided
    by the smaller mask sum, each mask scaled to a maximum of 1 (in [0, 1]).
    """

    overlap: float = 0.0


@dataclass(frozen=True, eq=False)
class MaskedCorrelationResult(CorrelationResult):
    """Result of :func:`masked_correlate`.

    ``correlation_map``: the masked NCC, shape ``(ny_ref + ny_mov − 1, nx_ref + nx_mov − 1)``
    (linear, not circular), 0 where the overlap is too small or a side is flat;
    ``overlap_map``: overlap fraction (same shape); ``origin = (iy, ix) = (ny_mov − 1,
    nx_mov − 1)``: the map index of zero displacement, so index ``[iy, ix]`` holds
    ``d = (ix − origin[1], iy − origin[0])``. ``map_mean``, ``map_std``: statistics of the NCC
    over the valid displacements (``n_valid`` of them).
    """

    overlap_map: NDArray[np.float32] | None = field(default=None, repr=False)
    origin: tuple[int, int] = (0, 0)
    n_valid: int = 0

    def displacement(self, iy: int, ix: int) -> tuple[int, int]:
        """``(dx, dy)`` of map index ``[iy, ix]``."""
        return (ix - self.origin[1], iy - self.origin[0])


def _mask(value: Any, name: str, image: NDArray[Any]) -> NDArray[np.float32] | None:
    if value is None:
        return None
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError) as exc:  # ragged nested lists
        raise InvalidTypeError(
            f"{name}: expected an array the shape of its image, got {describe(value)}"
        ) from exc
    if arr.dtype.kind == "b":
        arr = arr.astype(np.float32)
    if arr.dtype.kind not in "fiu":
        raise InvalidTypeError(f"{name}: expected a real or boolean array, got {describe(value)}")
    if arr.shape != image.shape:
        raise ShapeError(
            f"{name}: expected the shape of its image {image.shape}, got shape {arr.shape}"
        )
    m = np.ascontiguousarray(arr, dtype=np.float32)
    lo, hi = float(m.min()), float(m.max())
    if not (np.isfinite(lo) and np.isfinite(hi)) or lo < 0.0 or hi > 1.0:
        bad = int(np.count_nonzero(~((m >= 0.0) & (m <= 1.0))))
        raise InvalidValueError(
            f"{name}: expected finite values in [0, 1], got {bad} value(s) outside "
            f"(min {lo:g}, max {hi:g})"
        )
    if hi == 0.0:
        raise InvalidValueError(f"{name}: the mask is all zero (no valid pixel)")
    return m


def masked_correlate(
    reference: ArrayLike,
    moving: ArrayLike,
    *,
    reference_mask: ArrayLike | None = None,
    moving_mask: ArrayLike | None = None,
    min_overlap: float = 0.3,
    n_peaks: int = 5,
    min_separation: float = 3.0,
    n_threads: int | None = None,
) -> MaskedCorrelationResult:
    """Masked normalised cross-correlation over every integer translation (Rust, Padfield 2012).

    For each displacement ``d = (dx, dy)`` the map holds the Pearson correlation of
    ``reference(x)`` and ``moving(x − d)`` over the pixels where both are valid, weighted by
    ``w(x) = reference_mask(x) · moving_mask(x − d)``. Masked-out pixels (holes, borders,
    detector defects, the empty corners of a rotated image) therefore neither add nor remove
    correlation, unlike plain cross-correlation whose peak is pulled towards the largest
    overlap of the valid areas. The correlation is linear (both images zero-padded to at least
    ``ny_ref + ny_mov − 1`` by ``nx_ref + nx_mov − 1``), so every partial overlap is evaluated
    once and nothing wraps around. No filter, taper or mean removal is needed: NCC is
    invariant to offset and gain on each side.

    Parameters
    ----------
    reference, moving : ndarray (y, x)
        Images (any sizes, converted to float32).
    reference_mask, moving_mask : ndarray (y, x), optional
        Validity of each pixel, same shape as its image: boolean, or weights in [0, 1] (soft
        masks act as weights of a weighted Pearson correlation). ``None`` = all valid. A mask
        must not be all zero. Only relative weights matter: a mask multiplied by a constant
        gives the same result (overlaps are measured with each mask scaled to a maximum of 1).
    min_overlap : float in [0, 1]
        Displacements whose overlap weight ``Σ w`` is below ``min_overlap`` × the smaller of the
        two mask sums get the value 0 and never hold a peak (small overlaps give large, noisy
        correlations). Overlaps below 1e-5 of the larger mask sum are always excluded.
    n_peaks : int
        Number of peaks returned (local maxima among valid displacements, value > 0).
    min_separation : float
        Minimum distance between returned peaks, pixels.
    n_threads : int, optional
        Worker threads; default all cores. The result does not depend on it (bit-identical).

    Returns
    -------
    MaskedCorrelationResult
        ``peaks`` best first (:class:`MaskedCorrelationPeak`: ``dx, dy`` sub-pixel displacement
        in pixels, ``value`` = ``normalized`` = NCC at the integer maximum, ``overlap`` =
        overlap fraction); ``shift`` = ``(dx, dy)`` of the best peak; ``correlation_map`` (the
        NCC for every displacement, zero displacement at index ``origin``), ``overlap_map``,
        ``map_mean``, ``map_std``, ``n_valid``.

    Notes
    -----
    Sign convention as :func:`emgeom.crossmag.correlate`: ``reference(x) ≈ moving(x − d)``
    (the moving content moved by ``+d`` lands on the reference); shifts are ``(x, y)``, images
    ``(y, x)``. ``correlation_map`` has the indexing of
    ``skimage.registration._masked_phase_cross_correlation.cross_correlate_masked(reference,
    moving, reference_mask, moving_mask, mode="full")`` and of ``scipy.signal.correlate(reference,
    moving, "full")``.

    Numerics: six float32 FFT correlations after subtracting each image's weighted mean and
    scaling by its largest deviation (computed in float64), differences formed in float64. The
    values agree with a float64 evaluation to ~1e-7 (measured on 1024² images, with and without
    a 1e4 offset; the error grows as total energy / local variance, so overlaps of a few pixels
    are the least accurate). A side without mask (or with an all-ones mask) is handled with
    float64 box sums instead of transforms (12 transforms with two masks, 7 with one, 3 with
    none). A local variance below 1e-5 of the image's total (mean-removed) energy counts as
    flat and gives 0
    (constant images give an all-zero map, never NaN or inf). Sub-pixel positions: per-axis
    Gaussian (log-parabola) fit through the peak and its two valid neighbours, else a parabola.

    Memory: the frame is ``P = nice(ny_ref + ny_mov − 1) × nice(nx_ref + nx_mov − 1)``; with two
    masks up to four half spectra and six float32 maps of that size are alive at once (about
    40·P bytes: ~170 MB for a 1024² pair, ~2.7 GB for a 4096² pair), plus the two output maps.
    """
    a = as_image(reference, "reference", allow_stack=False, dtype=np.float32)
    b = as_image(moving, "moving", allow_stack=False, dtype=np.float32)
    ma = _mask(reference_mask, "reference_mask", a)
    mb = _mask(moving_mask, "moving_mask", b)
    mo = as_float(min_overlap, "min_overlap", low=0.0, high=1.0)
    n = as_int(n_peaks, "n_peaks", low=1, high=1000)
    sep = as_float(min_separation, "min_separation", nonnegative=True)
    threads = n_threads_arg(n_threads)
    r = _core.masked_ncc(
        a,
        b,
        _core.PeakSearch(n_peaks=n, min_separation=sep),
        reference_mask=ma,
        moving_mask=mb,
        min_overlap=mo,
        n_threads=threads,
    )
    out = tuple(
        MaskedCorrelationPeak(
            float(p[0]), float(p[1]), float(p[2]), float(p[2]), overlap=float(p[3])
        )
        for p in r.peaks
    )
    return MaskedCorrelationResult(
        peaks=out,
        map_mean=float(r.map_mean),
        map_std=float(r.map_std),
        correlation_map=r.ncc_map,
        overlap_map=r.overlap_map,
        origin=(int(r.origin[0]), int(r.origin[1])),
        n_valid=int(r.n_valid),
    )
