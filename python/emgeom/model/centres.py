"""Voxel coordinates → Å from the tilt-rotation centre, for each program's centre convention."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from emgeom._validate import as_float, as_vectors
from emgeom.errors import InvalidValueError, ShapeError

__all__ = ["CENTRE_CONVENTIONS", "voxels_to_centered_a"]

CENTRE_CONVENTIONS = ("n/2", "floor", "imod")
"""Names of the tomogram-centre conventions accepted by :func:`voxels_to_centered_a`."""


def voxels_to_centered_a(
    coords: Any,
    volume_shape: Sequence[int],
    voxel_size_a: float,
    *,
    convention: str = "n/2",
) -> NDArray[np.float64]:
    """Voxel coordinates ``(N, 3)`` (x, y, z) → Å from the tilt-rotation centre (canonical).

    The canonical origin is the point the tilt geometry rotates about. Programs put it at
    slightly different voxel positions; state which one your coordinates assume.

    Parameters
    ----------
    coords : array_like, shape (N, 3)
        Voxel coordinates (x, y, z) of the particles in the tomogram.
    volume_shape : (nx, ny, nz)
        Tomogram size in voxels (x, y, z order).
    voxel_size_a : float
        Voxel size, Å.
    convention : {"n/2", "floor", "imod"}
        ``"n/2"``: 0-based coordinates, centre at ``N/2`` (Warp
        ``VolumeDimensionsPhysical/2``, RELION's depth reference ``w0/2.0`` in
        ``Tomogram::getDepthOffset``, AreTomo3) — the default and emgeom's canonical centre;
        ``"floor"``: 0-based, centre at ``floor(N/2)`` (RELION's projection matrices use
        ``int(w0/2)``, CETS); ``"imod"``: 1-based coordinates (as 3dmod displays them), centre
        at the geometric centre ``(N + 1)/2``. The three differ by at most half a voxel (odd
        ``N`` for ``"floor"``; every ``N`` for ``"imod"``), i.e. ≤ 0.5·voxel·cosθ of depth.

    Returns
    -------
    ndarray, shape (N, 3)
        ``(coords − centre) · voxel_size_a``, Å.
    """
    c = as_vectors(coords, "coords", 3, max_abs=1e8)  # voxels; keeps products finite
    if isinstance(volume_shape, np.ndarray):
        shape_ok = volume_shape.shape == (3,)
    else:
        shape_ok = (
            isinstance(volume_shape, Sequence)
            and not isinstance(volume_shape, str | bytes)
            and len(volume_shape) == 3
        )
    if not shape_ok:
        raise ShapeError(f"volume_shape: expected (nx, ny, nz), got {volume_shape!r}")
    n = np.array(
        [
            as_float(v, f"volume_shape[{i}]", positive=True, high=1e8)
            for i, v in enumerate(volume_shape)
        ]
    )
    vs = as_float(voxel_size_a, "voxel_size_a", positive=True, high=1e6)
    conv = str(convention).lower()
    if conv == "n/2":
        centre = n / 2
    elif conv == "floor":
        centre = np.floor(n / 2)
    elif conv == "imod":
        centre = (n + 1) / 2
    else:
        raise InvalidValueError(
            f"convention: expected one of {CENTRE_CONVENTIONS}, got {convention!r}"
        )
    return np.asarray((c - centre) * vs, dtype=np.float64)
