"""The data model of the defocus-handedness check: defocus samples at known image positions
(:class:`HandSamples`) and the slope every tilt's geometry predicts (:func:`predicted_slopes`).

The physics (design note ``handedness.md`` §5): for a flat specimen in the tomogram's ``z = 0``
plane the defocus ``Δf0 − h·κ·z'`` has, in the image, the gradient ``G_t = −h·κ·M⁻ᵀ·r3[:2]``
(``M`` = the upper-left 2×2 of ``R_t``); its component along ``d_t = (cosψ_t, sinψ_t)`` is the
*slope* of tilt ``t`` (``h·κ·tanθ_t`` for χ = 0). See :mod:`emgeom.tilt._hand` for the check.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from emgeom._validate import describe, real_array
from emgeom.errors import InvalidTypeError, InvalidValueError, ShapeError
from emgeom.model.geometry import TiltGeometry

__all__ = ["HandSamples", "as_samples", "directions", "predicted_slopes"]


@dataclass(frozen=True)
class HandSamples:
    """Defocus measured at known image positions, one row per measurement.

    Attributes
    ----------
    tilt_index : int array (N,)
        0-based index of the tilt (row of the geometry) the measurement belongs to.
    x_a, y_a : float arrays (N,)
        Image position in Å (pixel column/row × pixel size) in the raw tilt image. Any fixed
        origin per tilt works (only gradients are used); the raw-image centre is conventional.
    defocus_a : float array (N,)
        Defocus in Å, underfocus positive.
    weight : float array (N,)
        Relative weight (default 1).
    """

    tilt_index: NDArray[np.int64]
    x_a: NDArray[np.float64]
    y_a: NDArray[np.float64]
    defocus_a: NDArray[np.float64]
    weight: NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))

    def __post_init__(self) -> None:
        n = self.tilt_index.shape[0]
        if self.weight.shape[0] == 0:
            object.__setattr__(self, "weight", np.ones(n))

    @property
    def n(self) -> int:
        """Number of samples."""
        return int(self.tilt_index.shape[0])

    @classmethod
    def from_columns(cls, ti: Any, x: Any, y: Any, d: Any, w: Any | None = None) -> HandSamples:
        """Validated samples from columns (tilt index, x Å, y Å, defocus Å[, weight]).

        Rows with a non-finite position or defocus are dropped (the caller reports their tilts
        as unusable); tilt indices must be integers and weights finite and ``>= 0``.
        """
        ti = real_array(ti, "samples.tilt_index")
        arrs = [
            real_array(v, f"samples.{k}").ravel()
            for v, k in ((x, "x_a"), (y, "y_a"), (d, "defocus_a"))
        ]
        n = ti.size
        if any(a.size != n for a in arrs) or (w is not None and np.asarray(w).size != n):
            raise ShapeError(
                f"samples: tilt_index, x_a, y_a, defocus_a (and weight) must have the same length, "
                f"got {[n, *[a.size for a in arrs]]}"
            )
        tif = np.asarray(ti, dtype=np.float64).ravel()
        if not np.all(np.isfinite(tif)) or np.any(tif != np.round(tif)):
            raise InvalidValueError("samples: tilt_index must hold integers")
        ww = np.ones(n) if w is None else real_array(w, "samples.weight").ravel()
        if np.any(~np.isfinite(ww)) or np.any(ww < 0):
            raise InvalidValueError("samples: weight must be finite and >= 0")
        # non-finite measurements are dropped (reported by the caller as unusable tilts)
        x_, y_, d_ = arrs
        ok = np.isfinite(x_) & np.isfinite(y_) & np.isfinite(d_)
        return cls(
            tilt_index=tif.astype(np.int64)[ok],
            x_a=x_[ok],
            y_a=y_[ok],
            defocus_a=d_[ok],
            weight=ww[ok],
        )


def as_samples(samples: Any, n_tilts: int) -> HandSamples:
    """:class:`HandSamples` from an instance or a mapping of columns (``tilt_index``, ``x_a``,
    ``y_a``, ``defocus_a``[, ``weight``]), checked against a series of ``n_tilts`` tilts.
    """
    if isinstance(samples, HandSamples):
        s = samples
    elif isinstance(samples, Mapping):
        missing = [k for k in ("tilt_index", "x_a", "y_a", "defocus_a") if k not in samples]
        if missing:
            raise InvalidValueError(
                f"samples: mapping needs keys tilt_index, x_a, y_a, defocus_a; missing {missing}"
            )
        cols = [np.asarray(samples[k]) for k in ("tilt_index", "x_a", "y_a", "defocus_a")]
        w = np.asarray(samples["weight"]) if "weight" in samples else None
        s = HandSamples.from_columns(cols[0], cols[1], cols[2], cols[3], w)
    else:
        try:
            arr = real_array(samples, "samples")
        except InvalidTypeError as exc:
            raise InvalidTypeError(
                f"samples: expected HandSamples, a mapping or an (N, 4) array "
                f"[tilt_index, x_a, y_a, defocus_a], got {describe(samples)}"
            ) from exc
        if arr.ndim != 2 or arr.shape[1] not in (4, 5):
            raise ShapeError(
                f"samples: expected an (N, 4) array [tilt_index, x_a, y_a, defocus_a] "
                f"(or N×5 with a weight), got shape {arr.shape}"
            )
        s = HandSamples.from_columns(
            arr[:, 0], arr[:, 1], arr[:, 2], arr[:, 3], arr[:, 4] if arr.shape[1] == 5 else None
        )
    if s.n == 0:
        raise InvalidValueError("samples: no measurements given")
    if s.tilt_index.min() < 0 or s.tilt_index.max() >= n_tilts:
        raise InvalidValueError(
            f"samples: tilt_index must lie in 0..{n_tilts - 1} (the geometry has {n_tilts} "
            f"tilts), got {int(s.tilt_index.min())}..{int(s.tilt_index.max())}"
        )
    return s


# --------------------------------------------------------------------------- prediction
def directions(geometry: TiltGeometry) -> NDArray[np.float64]:
    """``d_t = (cosψ_t, sinψ_t)``, shape (T, 2)."""
    a = np.radians(geometry.axis_deg)
    return np.stack([np.cos(a), np.sin(a)], axis=1)


def predicted_slopes(geometry: TiltGeometry) -> NDArray[np.float64]:
    """Predicted defocus slope of every tilt for canonical ``h = +1``, shape (T,), Å per Å.

    The slope is the image-space defocus gradient of a flat specimen in the tomogram's ``z = 0``
    plane, ``−κ·M⁻ᵀ·r3[:2]``, projected on ``(cosψ_t, sinψ_t)`` (perpendicular to the tilt
    axis). For ``χ = 0`` it equals ``κ·tanθ_t``. Multiply by ``h`` for another hand.
    """
    r = geometry.rotation_matrices()
    m = r[:, :2, :2]
    r3 = r[:, 2, :2]
    g = -geometry.defocus_slope * np.linalg.solve(np.transpose(m, (0, 2, 1)), r3[..., None])[..., 0]
    return np.asarray(np.einsum("ti,ti->t", g, directions(geometry)), dtype=np.float64)
