"""Input validation shared by every public function.

Each helper converts a user value to the exact type the kernels need or raises an
:mod:`emgeom.errors` exception whose message names the argument, what was expected and what
was given. Public functions call these before anything reaches Rust.
"""

from __future__ import annotations

import importlib
import math
import numbers
import os
from collections.abc import Sequence
from types import ModuleType
from typing import Any

import numpy as np
from numpy.typing import NDArray

from emgeom.errors import InvalidTypeError, InvalidValueError, MissingDependencyError, ShapeError

#: Largest accepted output image side and size (a guard against typos that would try to
#: allocate terabytes; 2**31 float32 pixels = 8 GiB).
MAX_IMAGE_SIDE = 1 << 20
MAX_IMAGE_PIXELS = 1 << 31

#: Default budget for one result (and its working arrays) whose size a user's number drives:
#: 4 GiB. The environment variable ``EMGEOM_MAX_OUTPUT_GB`` raises or lowers it.
DEFAULT_MAX_OUTPUT_BYTES = 4 << 30

__all__ = [
    "MAX_IMAGE_PIXELS",
    "MAX_IMAGE_SIDE",
    "as_bool",
    "as_float",
    "as_image",
    "as_int",
    "as_matrix",
    "as_pair",
    "as_shape2",
    "as_vectors",
    "check_alloc",
    "describe",
    "max_output_bytes",
    "n_threads_arg",
    "real_array",
    "require",
    "value_limit",
]


def describe(value: Any) -> str:
    """A short description of a value for error messages."""
    if isinstance(value, np.ndarray):
        return f"array of shape {value.shape} and dtype {value.dtype}"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def as_float(
    value: Any,
    name: str,
    *,
    positive: bool = False,
    nonnegative: bool = False,
    low: float | None = None,
    high: float | None = None,
) -> float:
    """Return ``value`` as a finite Python float, checking the requested range."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real | np.floating | np.integer):
        if isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "fiu":
            value = value.item()
        else:
            raise InvalidTypeError(f"{name}: expected a real number, got {describe(value)}")
    v = float(value)
    if not math.isfinite(v):
        raise InvalidValueError(f"{name}: expected a finite number, got {v}")
    if positive and v <= 0:
        raise InvalidValueError(f"{name}: expected a positive number, got {v}")
    if nonnegative and v < 0:
        raise InvalidValueError(f"{name}: expected a number >= 0, got {v}")
    if low is not None and v < low:
        raise InvalidValueError(f"{name}: expected a number >= {low}, got {v}")
    if high is not None and v > high:
        raise InvalidValueError(f"{name}: expected a number <= {high}, got {v}")
    return v


def _is_pair(value: Any) -> bool:
    """A 1-D array or a (non-string) sequence of exactly two entries."""
    if isinstance(value, np.ndarray):
        return value.ndim == 1 and value.shape[0] == 2
    return isinstance(value, Sequence) and not isinstance(value, str | bytes) and len(value) == 2


def as_pair(
    value: Any, name: str, *, low: float | None = None, high: float | None = None
) -> tuple[float, float]:
    """Return ``(a, b)`` from a 2-sequence (or 1-D array) of finite numbers within the range."""
    if not _is_pair(value):
        raise ShapeError(f"{name}: expected (low, high), got {describe(value)}")
    return (
        as_float(value[0], f"{name}[0]", low=low, high=high),
        as_float(value[1], f"{name}[1]", low=low, high=high),
    )


def as_bool(value: Any, name: str) -> bool:
    """Return ``value`` as a bool: only ``True``/``False`` (or numpy bools) are accepted."""
    if isinstance(value, bool | np.bool_):
        return bool(value)
    raise InvalidTypeError(f"{name}: expected True or False, got {describe(value)}")


def as_int(value: Any, name: str, *, low: int | None = None, high: int | None = None) -> int:
    """Return ``value`` as a Python int (integral floats are refused: say what you mean)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral | np.integer):
        raise InvalidTypeError(f"{name}: expected an integer, got {describe(value)}")
    v = int(value)
    if low is not None and v < low:
        raise InvalidValueError(f"{name}: expected an integer >= {low}, got {v}")
    if high is not None and v > high:
        raise InvalidValueError(f"{name}: expected an integer <= {high}, got {v}")
    return v


def real_array(value: Any, name: str) -> NDArray[np.float64]:
    """Any-shaped float64 array of real numbers: complex, bool, object and string input raise
    :class:`InvalidTypeError` (``np.asarray(x, float)`` would silently drop imaginary parts).
    """
    return _to_float_array(value, name)


def _to_float_array(value: Any, name: str) -> NDArray[np.float64]:
    try:
        arr = np.asarray(value)
    except Exception as exc:  # ragged lists etc.
        raise InvalidTypeError(f"{name}: expected numbers, got {describe(value)}") from exc
    if arr.dtype.kind not in "fiub" or arr.dtype.kind == "b":
        raise InvalidTypeError(f"{name}: expected real numbers, got {describe(value)}")
    return np.asarray(arr, dtype=np.float64)


def as_matrix(
    value: Any, name: str, shape: tuple[int, ...] = (2, 2), *, max_abs: float | None = None
) -> NDArray[np.float64]:
    """Return a finite float64 array of exactly ``shape`` (a flat sequence of the right length
    is reshaped row-major), optionally with every ``|entry| <= max_abs``.
    """
    arr = _to_float_array(value, name)
    size = int(np.prod(shape))
    if arr.shape != shape:
        if arr.ndim == 1 and arr.size == size:
            arr = arr.reshape(shape)
        else:
            raise ShapeError(
                f"{name}: expected shape {shape} (or {size} numbers), got shape {arr.shape}"
            )
    if not np.all(np.isfinite(arr)):
        raise InvalidValueError(f"{name}: all entries must be finite, got {arr.tolist()}")
    if max_abs is not None and np.abs(arr).max(initial=0.0) > max_abs:
        raise InvalidValueError(f"{name}: entries must be within ±{max_abs:g}, got {arr.tolist()}")
    return np.array(arr, dtype=np.float64)


def as_vectors(
    value: Any,
    name: str,
    width: int,
    *,
    allow_single: bool = True,
    max_abs: float | None = None,
) -> NDArray[Any]:
    """Return an ``(N, width)`` finite float64 array (a single vector becomes ``(1, width)``),
    optionally with every ``|entry| <= max_abs``.
    """
    arr = _to_float_array(value, name)
    if allow_single and arr.ndim == 1 and arr.shape[0] == width:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != width:
        raise ShapeError(f"{name}: expected shape (N, {width}), got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        bad = int(np.count_nonzero(~np.isfinite(arr)))
        raise InvalidValueError(f"{name}: all entries must be finite ({bad} are NaN or inf)")
    if max_abs is not None and arr.size and np.abs(arr).max() > max_abs:
        raise InvalidValueError(
            f"{name}: entries must be within ±{max_abs:g}, got up to {np.abs(arr).max():g}"
        )
    return arr


def value_limit(dtype: Any) -> float:
    """Largest ``|pixel value|`` an image of this float dtype may hold: ``finfo.max / 1024``
    (headroom for interpolation sums and FFTs). :func:`as_image` refuses larger values; kernels
    that check the values themselves (``check_limit``) use the same bound.
    """
    return float(np.finfo(dtype).max) / 1024


def as_image(
    value: Any,
    name: str = "image",
    *,
    allow_stack: bool = True,
    dtype: Any = None,
) -> NDArray[Any]:
    """Return a C-contiguous float image ``(y, x)`` or stack ``(n, y, x)``.

    float32 and float64 are kept; integer, unsigned, bool-free real images (MRC modes 0, 1, 6)
    are converted to float32; float16 to float32. NaN/inf, empty arrays, complex data and
    other dimensionalities raise.
    """
    return as_image_range(value, name, allow_stack=allow_stack, dtype=dtype)[0]


def as_image_range(
    value: Any,
    name: str = "image",
    *,
    allow_stack: bool = True,
    dtype: Any = None,
) -> tuple[NDArray[Any], float, float]:
    """:func:`as_image`, also returning the image's minimum and maximum (which the validation
    computes anyway: callers need not read the image again).
    """
    if not isinstance(value, np.ndarray):
        try:
            value = np.asarray(value)
        except Exception as exc:
            raise InvalidTypeError(
                f"{name}: expected a numpy array, got {describe(value)}"
            ) from exc
    arr = value
    if arr.dtype.kind == "c":
        raise InvalidTypeError(f"{name}: expected a real image, got complex dtype {arr.dtype}")
    if arr.dtype.kind not in "fiu":
        raise InvalidTypeError(f"{name}: expected a real-valued image, got {describe(arr)}")
    ndims = (2, 3) if allow_stack else (2,)
    if arr.ndim not in ndims:
        what = "(y, x) or (n, y, x)" if allow_stack else "(y, x)"
        raise ShapeError(f"{name}: expected a {what} array, got shape {arr.shape}")
    if arr.size == 0:
        raise ShapeError(f"{name}: expected a non-empty image, got shape {arr.shape}")
    if dtype is not None:
        target = np.dtype(dtype)
    elif arr.dtype in (np.float32, np.float64):
        target = arr.dtype
    else:
        target = np.dtype(np.float32)
    with np.errstate(over="ignore", invalid="ignore"):  # overflow to inf is reported below
        out = np.ascontiguousarray(arr, dtype=target)
    lo, hi = out.min(), out.max()  # two passes without temporaries; NaN propagates
    if not (np.isfinite(lo) and np.isfinite(hi)):
        bad = int(np.count_nonzero(~np.isfinite(out)))
        raise InvalidValueError(f"{name}: {bad} pixel(s) are NaN or inf; expected finite values")
    limit = value_limit(out.dtype)
    if max(-float(lo), float(hi)) > limit:
        raise InvalidValueError(
            f"{name}: pixel values up to {max(-float(lo), float(hi)):.3g} would overflow "
            f"{out.dtype} arithmetic; expected |values| <= {limit:.3g}"
        )
    return out, float(lo), float(hi)


def n_threads_arg(n_threads: Any) -> int | None:
    """Validate ``n_threads``: ``None`` (all cores) or an integer >= 1."""
    if n_threads is None:
        return None
    return as_int(n_threads, "n_threads", low=1, high=1024)


def require(module: str, extra: str) -> ModuleType:
    """Import an optional dependency or raise :class:`MissingDependencyError` with the fix."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"this function needs the optional package {module!r}: pip install 'emgeom[{extra}]'"
        ) from exc


def as_shape2(value: Any, name: str) -> tuple[int, int]:
    """Return a ``(ny, nx)`` output shape of positive integers."""
    if not _is_pair(value):
        raise ShapeError(f"{name}: expected (ny, nx), got {describe(value)}")
    ny = as_int(value[0], f"{name}[0]", low=1, high=MAX_IMAGE_SIDE)
    nx = as_int(value[1], f"{name}[1]", low=1, high=MAX_IMAGE_SIDE)
    if ny * nx > MAX_IMAGE_PIXELS:
        raise ShapeError(f"{name}: {ny} × {nx} exceeds {MAX_IMAGE_PIXELS} pixels per image")
    return ny, nx


def max_output_bytes() -> int:
    """The allocation budget for one result: ``EMGEOM_MAX_OUTPUT_GB`` (GiB) or 4 GiB."""
    env = os.environ.get("EMGEOM_MAX_OUTPUT_GB", "").strip()
    if not env:
        return DEFAULT_MAX_OUTPUT_BYTES
    try:
        gb = float(env)
    except ValueError:
        raise InvalidValueError(
            f"EMGEOM_MAX_OUTPUT_GB: expected a number of GiB, got {env!r}"
        ) from None
    if not math.isfinite(gb) or gb <= 0:
        raise InvalidValueError(f"EMGEOM_MAX_OUTPUT_GB: expected a positive number, got {env!r}")
    return int(min(gb, 1e9) * (1 << 30))


def check_alloc(
    n_items: int, item_bytes: int, name: str, *, shape: Any = None, allowed_bytes: int = 0
) -> None:
    """Refuse, before allocating, a result of ``n_items × item_bytes`` bytes beyond the budget.

    ``allowed_bytes`` raises the budget for this call (e.g. a multiple of an input that is
    already in memory: resampling a big stack to its own size is always allowed).
    ``name`` is the argument that drives the size; the message names it and the shape.
    """
    need = int(n_items) * int(item_bytes)
    limit = max(max_output_bytes(), int(allowed_bytes))
    if need > limit:
        what = f" (shape {tuple(shape)})" if shape is not None else ""
        raise InvalidValueError(
            f"{name}: the result would need {need / (1 << 30):.3g} GiB{what}, more than the "
            f"{limit / (1 << 30):.3g} GiB emgeom allocates for one result; check the value "
            "(or raise the limit with EMGEOM_MAX_OUTPUT_GB)"
        )
