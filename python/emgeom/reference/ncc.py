"""numpy references of ``emgeom_kernels::ncc::masked_ncc`` (masked NCC, Padfield 2012).

Two independent float64 implementations of the same definition:

* :func:`masked_ncc_direct`: the Pearson correlation evaluated directly (two-pass, weighted) at
  every displacement — slow, obviously correct, for small images;
* :func:`masked_ncc_fft`: Padfield's six FFT correlations in float64 (D. Padfield, IEEE TIP
  21(5) 2012, eqs. for the masked numerator and denominators), for larger images.

Both use the kernel's validity and flatness rules (constants below), so they can be compared
element by element with the Rust map. Displacement convention: ``reference(x) ≈ moving(x − d)``;
index ``[i, j]`` of the ``(ny_a + ny_b − 1, nx_a + nx_b − 1)`` map holds
``d = (j − (nx_b − 1), i − (ny_b − 1))``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["MIN_OVERLAP_ABS", "OVERLAP_TOL", "VAR_FLOOR", "masked_ncc_direct", "masked_ncc_fft"]

#: Same constants as ``rust/kernels/src/ncc/``.
VAR_FLOOR = 1e-5
MIN_OVERLAP_ABS = 1e-5
OVERLAP_TOL = 1e-6


def _prep(img: Any, mask: Any) -> tuple[NDArray[np.float64], NDArray[np.float64], float, float]:
    """Normalised image ``(img − μ_w)/max|img − μ_w|``, mask scaled to a maximum of 1 (NCC is
    invariant to it; overlaps, thresholds and floors are defined in these units), mask sum,
    normalised energy.
    """
    a = np.asarray(img, dtype=np.float64)
    m = np.ones_like(a) if mask is None else np.asarray(mask, dtype=np.float64)
    m = m / m.max()
    s = float(m.sum())
    mu = float((m * a).sum() / s)
    dev = np.abs(a - mu)[m > 0]
    scale = float(dev.max()) if dev.size else 0.0
    t = (a - mu) / scale if scale > 0 else np.zeros_like(a)
    return t, m, s, float((m * t * t).sum())


def _threshold(sa: float, sb: float, min_overlap: float) -> float:
    lo, hi = min(sa, sb), max(sa, sb)
    return max(min_overlap * lo, MIN_OVERLAP_ABS * hi) - OVERLAP_TOL * hi


def _overlaps(
    shape_a: tuple[int, ...], shape_b: tuple[int, ...]
) -> Iterator[tuple[int, int, tuple[slice, slice], tuple[slice, slice]]]:
    """Every map index ``(i, j)`` with the slices of ``a`` and of ``b`` that overlap at its
    displacement ``d = (j − (nx_b − 1), i − (ny_b − 1))``.
    """
    (nya, nxa), (nyb, nxb) = shape_a, shape_b
    for i in range(nya + nyb - 1):
        dy = i - (nyb - 1)
        y0, y1 = max(0, dy), min(nya, nyb + dy)
        for j in range(nxa + nxb - 1):
            dx = j - (nxb - 1)
            x0, x1 = max(0, dx), min(nxa, nxb + dx)
            yield (
                i,
                j,
                (slice(y0, y1), slice(x0, x1)),
                (slice(y0 - dy, y1 - dy), slice(x0 - dx, x1 - dx)),
            )


def masked_ncc_direct(
    reference: Any,
    moving: Any,
    reference_mask: Any = None,
    moving_mask: Any = None,
    min_overlap: float = 0.3,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Masked NCC map and overlap-fraction map by direct evaluation (float64).

    At each displacement: weights ``w = Ma(x)·Mb(x − d)``, overlap ``O = Σ w``; if
    ``O`` is below the threshold (see :mod:`emgeom_kernels::ncc`) the value is 0; else the weighted
    Pearson correlation ``Σ w (a − ā)(b − b̄) / sqrt(Σ w (a − ā)² · Σ w (b − b̄)²)`` with the
    weighted means over the overlap, and 0 if either variance (of the normalised images) is at
    or below ``VAR_FLOOR`` × that image's total energy.
    """
    ta, wa, sa, ea = _prep(reference, reference_mask)
    tb, wb, sb, eb = _prep(moving, moving_mask)
    nya, nxa = ta.shape
    nyb, nxb = tb.shape
    thr = _threshold(sa, sb, min_overlap)
    out = np.zeros((nya + nyb - 1, nxa + nxb - 1))
    ovl = np.zeros_like(out)
    for i, j, sa_, sb_ in _overlaps(ta.shape, tb.shape):
        w = wa[sa_] * wb[sb_]
        o = float(w.sum())
        ovl[i, j] = o / min(sa, sb)
        if o < thr or o <= 0:
            continue
        pa, pb = ta[sa_], tb[sb_]
        da = pa - (w * pa).sum() / o
        db = pb - (w * pb).sum() / o
        va = float((w * da * da).sum())
        vb = float((w * db * db).sum())
        if va <= VAR_FLOOR * ea or vb <= VAR_FLOOR * eb:
            continue
        out[i, j] = np.clip((w * da * db).sum() / np.sqrt(va * vb), -1.0, 1.0)
    return out, ovl


def masked_ncc_fft(
    reference: Any,
    moving: Any,
    reference_mask: Any = None,
    moving_mask: Any = None,
    min_overlap: float = 0.3,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The same maps as :func:`masked_ncc_direct` from Padfield's FFT formulas in float64.

    ``O = Ma ⋆ Mb``, ``Sa = (Ma·a) ⋆ Mb``, ``Sb = Ma ⋆ (Mb·b)``, ``Saa = (Ma·a²) ⋆ Mb``,
    ``Sbb = Ma ⋆ (Mb·b²)``, ``Sab = (Ma·a) ⋆ (Mb·b)`` with ``(f ⋆ g)(d) = Σ f(x) g(x − d)``
    (linear, via zero padding), on the normalised images; then
    ``(Sab − Sa·Sb/O) / sqrt((Saa − Sa²/O)(Sbb − Sb²/O))``.
    """
    ta, wa, sa, ea = _prep(reference, reference_mask)
    tb, wb, sb, eb = _prep(moving, moving_mask)
    nya, nxa = ta.shape
    nyb, nxb = tb.shape
    shape = (nya + nyb - 1, nxa + nxb - 1)

    def fa(x: NDArray[np.float64]) -> NDArray[np.complex128]:
        return np.fft.rfft2(x, s=shape)

    def corr(x: NDArray[np.complex128], y: NDArray[np.complex128]) -> NDArray[np.float64]:
        c = np.fft.irfft2(x * np.conj(y), s=shape)
        # circular index d mod shape -> full-mode index d + (n_b - 1)
        return np.roll(c, (nyb - 1, nxb - 1), axis=(0, 1))

    a0, a1, a2 = fa(wa), fa(wa * ta), fa(wa * ta * ta)
    b0, b1, b2 = fa(wb), fa(wb * tb), fa(wb * tb * tb)
    o = corr(a0, b0)
    s1, s2 = corr(a1, b0), corr(a0, b1)
    sab, saa, sbb = corr(a1, b1), corr(a2, b0), corr(a0, b2)
    thr = _threshold(sa, sb, min_overlap)
    valid = (o >= thr) & (o > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        va = saa - s1 * s1 / o
        vb = sbb - s2 * s2 / o
        ok = valid & (va > VAR_FLOOR * ea) & (vb > VAR_FLOOR * eb)
        num = sab - s1 * s2 / o
        out = np.where(ok, num / np.sqrt(np.where(ok, va * vb, 1.0)), 0.0)
    return np.clip(out, -1.0, 1.0), o / min(sa, sb)
