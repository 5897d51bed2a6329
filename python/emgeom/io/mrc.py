"""MRC images and stacks (through ``mrcfile``), returned as numpy ``(y, x)`` / ``(n, y, x)``."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from emgeom.errors import EmgeomFileError, FileFormatError
from emgeom.io._atomic import atomic_output

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
    """Read an MRC/MRCS file (float16 data is returned as float32)."""
    import mrcfile

    p = os.fspath(path)
    if not os.path.exists(p):
        raise EmgeomFileError(f"{p}: no such file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with mrcfile.open(p, permissive=True) as m:
                if m.data is None:
                    raise FileFormatError(f"{p}: not a readable MRC file (no data block)")
                data = np.array(m.data)
                px = float(m.voxel_size.x)
    except (ValueError, OSError) as exc:
        raise FileFormatError(f"{p}: not a readable MRC file ({exc})") from exc
    if data.dtype == np.float16:
        data = data.astype(np.float32)
    pixel = None if px in (0.0, 1.0) or not np.isfinite(px) else px
    return MrcImage(data=data, pixel_size_a=pixel)


def write_mrc(
    path: str | os.PathLike[str],
    data: NDArray[Any],
    pixel_size_a: float | None = None,
    *,
    force: bool = False,
) -> None:
    """Write ``data`` (``(y, x)`` or ``(n, y, x)``) atomically; never overwrite unless ``force``."""
    import mrcfile

    arr = np.ascontiguousarray(data)
    if arr.dtype == np.float64:
        arr = arr.astype(np.float32)
    with atomic_output(path, force=force) as tmp:
        with mrcfile.new(tmp, overwrite=True) as m:
            m.set_data(arr)
            if arr.ndim == 3:
                m.set_image_stack()
            if pixel_size_a is not None:
                m.voxel_size = pixel_size_a
