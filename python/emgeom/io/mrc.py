"""MRC images and stacks (through ``mrcfile``), returned as numpy ``(y, x)`` / ``(n, y, x)``."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from emgeom._validate import as_float, as_image
from emgeom.errors import EmgeomFileError, FileFormatError, InvalidTypeError, InvalidValueError
from emgeom.io.atomic import atomic_output, file_error, force_arg

__all__ = ["MrcImage", "read_mrc", "write_mrc"]


@dataclass(frozen=True)
class MrcImage:
    """Pixel data and pixel size of an MRC file.

    Attributes
    ----------
    data : ndarray
        ``(y, x)`` for one image, ``(n, y, x)`` for a stack or volume (file order).
    pixel_size_a : float or None
        Pixel size in Å from the header (x spacing), or None when the header says 0 or 1
        (both mean "not recorded" in practice).
    """

    data: NDArray[Any]
    pixel_size_a: float | None


def read_mrc(path: str | os.PathLike[str]) -> MrcImage:
    """Read an MRC/MRCS file (float16 data is returned as float32).

    Raises
    ------
    EmgeomFileError
        The path is missing, a folder or unreadable (an ``OSError``).
    FileFormatError
        The file is not a readable MRC file (a ``ValueError``); the message says why, once.
    """
    import mrcfile

    p = _path_arg(path)
    if not os.path.exists(p):
        raise EmgeomFileError(f"{p}: no such file")
    if os.path.isdir(p):
        raise EmgeomFileError(f"{p}: is a folder, expected an MRC file")
    reason = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with mrcfile.open(p, permissive=True) as m:
                if m.data is None:
                    reason = "the header does not describe the data block (truncated or not MRC)"
                else:
                    data = np.array(m.data)
                    px = float(m.voxel_size.x)
    except OSError as exc:
        raise file_error(p, exc, "read") from None
    except (ValueError, EOFError) as exc:
        reason = str(exc) or type(exc).__name__
    if reason is not None:
        raise FileFormatError(f"{p}: not a readable MRC file ({_one_line(reason)})")
    if data.dtype == np.float16:
        data = data.astype(np.float32)
    # 0 and 1 mean "not recorded" in practice; a negative or non-finite spacing is invalid
    pixel = None if px in (0.0, 1.0) or not np.isfinite(px) or px < 0 else px
    return MrcImage(data=data, pixel_size_a=pixel)


def _path_arg(path: Any) -> str:
    if not isinstance(path, str | os.PathLike):
        raise InvalidTypeError(f"path: expected a file path, got {path!r}")
    p = os.fspath(path)
    if not isinstance(p, str):
        raise InvalidTypeError(f"path: expected a text file path, got {path!r}")
    return p


def _one_line(text: str) -> str:
    return " ".join(text.split())


def write_mrc(
    path: str | os.PathLike[str],
    data: NDArray[Any],
    pixel_size_a: float | None = None,
    *,
    force: bool = False,
) -> None:
    """Write ``data`` (``(y, x)`` or ``(n, y, x)``) atomically; never overwrite unless ``force``.

    Parameters
    ----------
    path : path
        Output file.
    data : ndarray (y, x) or (n, y, x)
        Real data (int8/int16/uint8/uint16/float16/float32; float64 is stored as float32 and
        must fit it). NaN/inf are refused.
    pixel_size_a : float, optional
        Pixel size in Å (> 0) for the header; default: not recorded (0).
    force : bool
        Replace an existing file.
    """
    import mrcfile

    p = _path_arg(path)
    force_arg(force)
    px = None if pixel_size_a is None else as_float(pixel_size_a, "pixel_size_a", positive=True)
    arr = as_image(data, "data", dtype=np.float32) if _needs_conversion(data) else data
    arr = np.ascontiguousarray(arr)
    try:
        with atomic_output(p, force=force) as tmp:
            with mrcfile.new(tmp, overwrite=True) as m:
                m.set_data(arr)
                if arr.ndim == 3:
                    m.set_image_stack()
                if px is not None:
                    m.voxel_size = px
    except ValueError as exc:  # mrcfile refusing the data
        raise InvalidValueError(f"data: cannot be stored in MRC ({_one_line(str(exc))})") from None


def _needs_conversion(data: Any) -> bool:
    """Whether ``data`` must go through :func:`as_image` (float32 conversion and NaN/inf check)
    rather than being written in its own MRC mode (int8/int16/uint8/uint16, checked here).
    """
    if not isinstance(data, np.ndarray) or data.dtype.kind in "fc" or data.ndim not in (2, 3):
        return True
    if data.size == 0 or data.dtype not in _MRC_INT_MODES:
        return True
    return False


_MRC_INT_MODES = tuple(np.dtype(t) for t in (np.int8, np.int16, np.uint8, np.uint16))
