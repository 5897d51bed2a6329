"""Validation of :class:`~emgeom.tilt.TiltGeometry`'s constructor arguments (one helper per
field group; every failure names the argument).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from emgeom._validate import as_vectors, describe, real_array
from emgeom.errors import ImplausibleValueWarning, InvalidTypeError, InvalidValueError, ShapeError

__all__ = [
    "as_hand",
    "defocus_fields",
    "frozen",
    "per_tilt",
    "shifts_field",
    "tilt_field",
    "volume_shape_field",
]


def per_tilt(value: Any, name: str, n: int | None) -> NDArray[np.float64]:
    """A finite 1-D float64 array (scalars are returned as 0-d for broadcasting later)."""
    if isinstance(value, bool | str | bytes) or value is None:
        raise InvalidTypeError(f"{name}: expected a number or a 1-D array, got {describe(value)}")
    arr = real_array(value, name)  # rejects complex/bool/ragged input with a clear message
    if arr.ndim > 1:
        raise ShapeError(
            f"{name}: expected a scalar or a 1-D per-tilt array, got shape {arr.shape}"
        )
    if arr.ndim == 1 and n is not None and arr.shape[0] != n:
        raise ShapeError(
            f"{name}: expected {n} per-tilt values (one per tilt in tilt_deg), got {arr.shape[0]}"
        )
    if not np.all(np.isfinite(arr)):
        raise InvalidValueError(f"{name}: all values must be finite, got {arr.tolist()}")
    return arr


def as_hand(value: Any, name: str = "hand") -> int:
    """``value`` as a canonical hand, +1 or −1 (anything else is refused, naming ``name``)."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise InvalidTypeError(f"{name}: expected +1 or -1, got {describe(value)}")
    if float(value) not in (1.0, -1.0):
        raise InvalidValueError(
            f"{name}: expected +1 (IMOD convention, RELION rlnTomoHand -1) or -1, got {value!r}"
        )
    return int(value)


def frozen(a: NDArray[Any]) -> NDArray[Any]:
    """A read-only float64 copy."""
    a = np.array(a, dtype=np.float64)
    a.setflags(write=False)
    return a


def full(value: Any, name: str, n: int) -> NDArray[np.float64]:
    """A read-only per-tilt array of length ``n`` (scalars broadcast)."""
    return frozen(np.broadcast_to(per_tilt(value, name, n), (n,)))


def tilt_field(tilt_deg: Any) -> NDArray[np.float64]:
    """The validated tilt angles: at least one, all ``|θ| < 90°``."""
    tilt = per_tilt(tilt_deg, "tilt_deg", None)
    if tilt.ndim == 0:
        tilt = tilt[None]
    if tilt.shape[0] == 0:
        raise ShapeError("tilt_deg: expected at least one tilt, got an empty array")
    if np.any(np.abs(tilt) >= 90):
        raise InvalidValueError(
            f"tilt_deg: expected |tilt| < 90 degrees, got {tilt[np.abs(tilt) >= 90].tolist()}"
        )
    return frozen(tilt)


def _warn_units(d: NDArray[np.float64]) -> None:
    big = float(np.max(np.abs(d)))
    if 0 < big < 100.0:
        warnings.warn(
            f"defocus_a: largest |defocus| is {big:g} Å; expected Å (typically 5000–80000). "
            "Was it given in µm? Convert with 1 µm = 10000 Å.",
            ImplausibleValueWarning,
            stacklevel=4,
        )
    elif big > 5e5:
        warnings.warn(
            f"defocus_a: largest |defocus| is {big:g} Å (> 50 µm); expected Å. "
            "Was it given in another unit?",
            ImplausibleValueWarning,
            stacklevel=4,
        )


def defocus_fields(
    n: int, defocus_a: Any, defocus_u_a: Any, defocus_v_a: Any, astigmatism_deg: Any
) -> tuple[Any, Any, Any, Any]:
    """``(defocus, defocus_u, defocus_v, astigmatism)``: read-only per-tilt arrays (U, V and
    the angle None when not astigmatic); the defocus is the mean of U and V when not given.
    """
    if (defocus_u_a is None) != (defocus_v_a is None):
        raise InvalidValueError(
            "defocus_u_a, defocus_v_a: give both (astigmatic defocus) or neither"
        )
    u = v = None
    if defocus_u_a is not None:
        u = full(defocus_u_a, "defocus_u_a", n)
        v = full(defocus_v_a, "defocus_v_a", n)
    if defocus_a is None:
        if u is None or v is None:
            raise InvalidValueError(
                "defocus_a: required (Å per tilt) unless defocus_u_a and defocus_v_a are given"
            )
        d = frozen(0.5 * (u + v))
    else:
        d = full(defocus_a, "defocus_a", n)
    _warn_units(d)
    if astigmatism_deg is not None and u is None:
        raise InvalidValueError("astigmatism_deg: needs defocus_u_a and defocus_v_a")
    ang = None if astigmatism_deg is None else full(astigmatism_deg, "astigmatism_deg", n)
    return d, u, v, ang


def shifts_field(shifts_a: Any, n: int) -> NDArray[np.float64]:
    """Validated, read-only per-tilt image shifts ``(n, 2)`` (x, y) in Å (``None``: zeros)."""
    if shifts_a is None:
        return frozen(np.zeros((n, 2)))
    s = as_vectors(shifts_a, "shifts_a", 2, allow_single=False)
    if s.shape[0] != n:
        raise ShapeError(f"shifts_a: expected shape ({n}, 2), got {s.shape}")
    return frozen(s)


def volume_shape_field(volume_shape: Sequence[int] | None) -> tuple[int, int, int] | None:
    """Validated tomogram shape ``(nx, ny, nz)`` in voxels, or ``None``."""
    if volume_shape is None:
        return None
    vs = tuple(volume_shape) if isinstance(volume_shape, Sequence | np.ndarray) else ()
    if (
        isinstance(volume_shape, str | bytes)
        or len(vs) != 3
        or any(isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 1 for v in vs)
    ):
        raise InvalidValueError(
            f"volume_shape: expected (nx, ny, nz) positive integers, got {volume_shape!r}"
        )
    return (int(vs[0]), int(vs[1]), int(vs[2]))
