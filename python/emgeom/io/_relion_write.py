"""Canonical :class:`TiltGeometry` → RELION ``tomograms.star`` (:func:`to_relion`).

Public names are in :mod:`emgeom.io.relion_tomo` (sources and conventions in its docstring).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from emgeom._validate import as_float, describe
from emgeom.errors import (
    InvalidTypeError,
    InvalidValueError,
    LossyConversionWarning,
)
from emgeom.io._frames import frame
from emgeom.io._relion_read import _PROJ, _check_image_shape, _relion4_centres
from emgeom.io.star import check_token, write_star
from emgeom.io.text import as_path
from emgeom.model.geometry import (
    TiltGeometry,
    rotation_matrices,
)

if TYPE_CHECKING:
    import pandas as pd


# ---------------------------------------------------------------------------- writer
def _g(v: float) -> str:
    return f"{v:.6f}"


def to_relion(
    geometry: TiltGeometry,
    path: str | os.PathLike[str],
    *,
    tomo_name: str = "TS_01",
    layout: str = "relion5",
    voltage_kv: float = 300.0,
    cs_mm: float = 2.7,
    amplitude_contrast: float = 0.1,
    image_shape: tuple[int, int] | None = None,
    force: bool = False,
) -> Path:
    """Write a RELION ``tomograms.star`` (global table + the per-tilt table embedded in the
    same file as ``data_<tomo_name>``), atomically and without overwriting unless ``force``.

    Parameters
    ----------
    geometry : TiltGeometry
        Needs ``pixel_size_a`` and ``volume_shape`` (RELION requires both).
    layout : {"relion5", "relion4"}
        ``relion5``: ``_rlnTomoXTilt/YTilt/ZRot/X,YShiftAngst``; ``relion4``:
        ``_rlnTomoProjX/Y/Z/W`` rows: with ``image_shape`` the full RELION-4 matrix
        (translation = image centre + shift − R·volume centre, tilt-series pixels), otherwise
        the rotation only with zero translation, like WarpTools (image shifts are then not
        written).
    voltage_kv, cs_mm, amplitude_contrast : float
        Optics written to the global table.
    image_shape : (int, int), optional
        ``(ny, nx)`` in pixels of the tilt-series images; ``layout="relion4"`` only. The
        translation is ``t_xy = s/pixel + c_img − [R·c_vol]_xy``, ``t_z = −[R·c_vol]_z`` with
        ``c_vol = volume_shape/2.0`` and ``c_img = (nx//2, ny//2)``: the inverse of RELION 5's
        ``Tomogram::getProjectionAnglesFromMatrix``, so :func:`read_relion` with the same
        ``image_shape`` (or the stack's header) returns the shifts exactly.

    Notes
    -----
    ``_rlnTomoHand = −h`` and ``_rlnTomoDefocusSlope = κ``.
    """
    if not isinstance(geometry, TiltGeometry):
        raise InvalidTypeError(f"geometry: expected a TiltGeometry, got {describe(geometry)}")
    as_path(path, "path")
    if geometry.pixel_size_a is None or geometry.volume_shape is None:
        raise InvalidValueError(
            "geometry: to_relion needs pixel_size_a and volume_shape (RELION requires both)"
        )
    if layout not in ("relion5", "relion4"):
        raise InvalidValueError(f"layout: expected 'relion5' or 'relion4', got {layout!r}")
    image_shape = _check_image_shape(image_shape)
    if image_shape is not None and layout != "relion4":
        raise InvalidValueError(
            "image_shape: only used with layout='relion4' (RELION 5 stores the shifts in Å)"
        )
    optics = (
        as_float(voltage_kv, "voltage_kv", positive=True),
        as_float(cs_mm, "cs_mm", nonnegative=True),
        as_float(amplitude_contrast, "amplitude_contrast", nonnegative=True, high=1.0),
    )
    name = check_token(tomo_name, "tomo_name")
    if name == "global":  # the per-tilt block data_<name> would replace data_global
        raise InvalidValueError("tomo_name: 'global' is the name of the tomogram table's block")
    names = (
        None
        if geometry.names is None
        else [check_token(n, f"geometry.names[{i}]") for i, n in enumerate(geometry.names)]
    )
    glob = _global_block(geometry, name, optics)
    if layout == "relion5":
        per_tilt = _relion5_columns(geometry)
    else:
        per_tilt = _relion4_columns(geometry, image_shape)
    du = geometry.defocus_u_a if geometry.defocus_u_a is not None else geometry.defocus_a
    dv = geometry.defocus_v_a if geometry.defocus_v_a is not None else geometry.defocus_a
    ang = (
        geometry.astigmatism_deg
        if geometry.astigmatism_deg is not None
        else np.zeros(geometry.n_tilts)
    )
    per_tilt |= {
        "rlnDefocusU": [_g(v) for v in du],
        "rlnDefocusV": [_g(v) for v in dv],
        "rlnDefocusAngle": [_g(v) for v in ang],
    }
    if names is not None:
        per_tilt = {"rlnMicrographName": names, **per_tilt}
    return write_star(
        path,
        {"global": glob, name: frame(per_tilt, dtype=object)},
        force=force,
    )


def _global_block(
    geometry: TiltGeometry, name: str, optics: tuple[float, float, float]
) -> pd.DataFrame:
    assert geometry.volume_shape is not None and geometry.pixel_size_a is not None
    nx, ny, nz = geometry.volume_shape
    row = {
        "rlnTomoName": name,
        "rlnVoltage": _g(optics[0]),
        "rlnSphericalAberration": _g(optics[1]),
        "rlnAmplitudeContrast": _g(optics[2]),
        "rlnTomoHand": f"{float(geometry.relion_hand):.1f}",
        "rlnTomoDefocusSlope": _g(geometry.defocus_slope),
        # exact: RELION-4 translations are in px
        "rlnTomoTiltSeriesPixelSize": repr(float(geometry.pixel_size_a)),
        "rlnTomoSizeX": str(nx),
        "rlnTomoSizeY": str(ny),
        "rlnTomoSizeZ": str(nz),
    }
    return frame({k: [v] for k, v in row.items()}, dtype=object)


def _relion5_columns(geometry: TiltGeometry) -> dict[str, list[str]]:
    return {
        "rlnTomoXTilt": [_g(v) for v in geometry.x_tilt_deg],
        "rlnTomoYTilt": [_g(v) for v in geometry.tilt_deg],
        "rlnTomoZRot": [_g(v) for v in geometry.axis_deg],
        "rlnTomoXShiftAngst": [_g(v) for v in geometry.shifts_a[:, 0]],
        "rlnTomoYShiftAngst": [_g(v) for v in geometry.shifts_a[:, 1]],
    }


def _relion4_columns(
    geometry: TiltGeometry, image_shape: tuple[int, int] | None
) -> dict[str, list[str]]:
    assert geometry.volume_shape is not None and geometry.pixel_size_a is not None
    r = rotation_matrices(geometry.tilt_deg, geometry.axis_deg, geometry.x_tilt_deg)
    t = np.zeros((geometry.n_tilts, 3))
    if image_shape is not None:
        c_vol, c_img = _relion4_centres(geometry.volume_shape, image_shape)
        rc = r @ c_vol
        t[:, :2] = np.asarray(geometry.shifts_a) / geometry.pixel_size_a + c_img - rc[:, :2]
        t[:, 2] = -rc[:, 2]  # z' = 0 at the volume centre (RELION only uses differences)
    elif np.any(np.asarray(geometry.shifts_a) != 0):
        warnings.warn(
            "to_relion(layout='relion4') without image_shape writes rotation-only matrices: "
            f"the image shifts (up to {np.abs(geometry.shifts_a).max():.1f} Å) are dropped "
            "(defocus is unaffected); pass image_shape=(ny, nx) to keep them",
            LossyConversionWarning,
            stacklevel=3,
        )
    cols: dict[str, list[str]] = {}
    for i, lab in enumerate(_PROJ[:3]):
        cols[lab] = [
            "[" + ",".join(f"{v:.17g}" for v in (*m[i], ti[i])) + "]"
            for m, ti in zip(r, t, strict=True)
        ]
    cols[_PROJ[3]] = ["[0,0,0,1]"] * geometry.n_tilts
    return cols
