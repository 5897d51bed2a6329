"""CTFFIND5 sample-tilt results → per-image gradient of defocus (a handedness vote).

Source: CTFFIND5 (cisTEM, Elferich, Kong, Zottig & Grigorieff 2024, eLife reviewed preprint
97227), ``src/programs/ctffind/ctffind_tilt.cpp`` (``CTFTilt::SearchTiltAxisAndAngle`` brute
force over tilt axis φ ∈ [0°, 360°) step 10° and tilt θ ∈ [0°, 80°] step 5°;
``CTFTilt::ScoreValues``: tile centre ``(x, y)`` in image array axes from the image centre is
rotated by ``R(φ)`` and the tile defocus is ``Δf̄ + y_r·tanθ = Δf̄ + tanθ·(x·sinφ + y·cosφ)``).
Verified in timothygrant80/cisTEM: ``CTFTilt::ScoreValues`` (refine_mode 1) computes
``height = y_rotated·tanf(tilt)`` after ``AnglesAndShifts::GenerateRotationMatrix2D(φ)``
(``m = [[cosφ, −sinφ], [sinφ, cosφ]]``) and ``RotationMatrix::RotateCoords2D``
(``y_rot = m[1][0]·x + m[1][1]·y = x·sinφ + y·cosφ``); tile centres are ``ClipInto`` offsets
in image pixels (x = column, y = row of the stored image, as numpy reads an MRC file).
The brute-force tables are what CTFFIND5 writes in its ``*_tilt.json`` debug output
(``{"tilt_axis_and_angle_search": [[axis_deg, tilt_deg, score], ...]}``, as published with the
paper in GrigorieffLab/ctffind5_manuscript ``data/tilt_brute_force``).

Canonical mapping (design note ``handedness.md`` §2.5): the defocus gradient of one CTFFIND5
image is ``tanθ·(sinφ, cosφ)`` (Å per Å, image ``(x, y)`` = column, row); its component along
the canonical direction ``(cosψ, sinψ)`` (perpendicular to a tilt axis ψ CCW from +Y) is
``tanθ·sin(φ + ψ)``, and the canonical model predicts ``h·tan(θ_C)`` there, so
``h·sign(θ_C) = sign(sin(φ + ψ))``.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from emgeom._validate import describe
from emgeom.errors import EmgeomFileError, FileFormatError, InvalidTypeError, InvalidValueError
from emgeom.io.text import as_path, decode_text, read_bytes

__all__ = ["Ctffind5Tilt", "read_ctffind5_tilt", "read_ctffind5_tilt_series"]

_NOMINAL = re.compile(r"(?<=_)(-?\d+\.\d+)(?=_)")


@dataclass(frozen=True)
class Ctffind5Tilt:
    """CTFFIND5's sample-tilt estimate of one image.

    Attributes
    ----------
    axis_deg : float
        CTFFIND5 tilt axis φ, degrees, in ``[0, 360)`` (CTFFIND5's own convention; see the
        module docstring for the gradient it implies).
    tilt_deg : float
        CTFFIND5 sample tilt θ ≥ 0, degrees.
    score : float
        Best score of the search (correlation summed over tiles).
    score_flat : float
        Score of the untilted model (θ = 0), for a significance check.
    score_opposite : float
        Best score at the same θ with the axis rotated by 180° (the opposite gradient).
    path : str
        Where it was read from.
    nominal_tilt_deg : float or None
        The nominal stage tilt parsed from the file name when present (``…_-20.0_…``).
    """

    axis_deg: float
    tilt_deg: float
    score: float
    score_flat: float
    score_opposite: float
    path: str = ""
    nominal_tilt_deg: float | None = None

    def gradient(self) -> NDArray[np.float64]:
        """Defocus gradient ``tanθ·(sinφ, cosφ)`` in image ``(x, y)`` (Å per Å)."""
        p, t = np.radians(self.axis_deg), np.radians(self.tilt_deg)
        return np.tan(t) * np.array([np.sin(p), np.cos(p)])


def _table(path: Path) -> NDArray[np.float64]:
    raw = decode_text(read_bytes(path), path, what="CTFFIND5 tilt JSON file")
    try:
        doc = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise FileFormatError(f"{path}: not JSON ({exc})") from None
    rows = doc.get("tilt_axis_and_angle_search") if isinstance(doc, dict) else None
    if rows is None:
        raise FileFormatError(
            f"{path}: no 'tilt_axis_and_angle_search' table (not a CTFFIND5 tilt JSON)"
        )
    try:
        a = np.array(rows, dtype=np.float64)
    except (TypeError, ValueError):
        raise FileFormatError(f"{path}: table rows must be [axis, tilt, score]") from None
    if a.ndim != 2 or a.shape[1] != 3 or a.shape[0] == 0:
        raise FileFormatError(f"{path}: expected rows of [axis_deg, tilt_deg, score]")
    if not np.all(np.isfinite(a)):
        raise FileFormatError(f"{path}: table has NaN/inf values")
    return a


def read_ctffind5_tilt(path: str | os.PathLike[str]) -> Ctffind5Tilt:
    """Read one CTFFIND5 ``*_tilt.json`` brute-force table; the argmax is CTFFIND5's estimate.

    Raises
    ------
    EmgeomFileError, FileFormatError
        Missing file or not a CTFFIND5 tilt table.
    """
    p = as_path(path, "path")
    a = _table(p)
    i = int(np.argmax(a[:, 2]))
    axis, tilt, score = (float(v) for v in a[i])
    flat = a[a[:, 1] == 0, 2]
    opp_axis = (axis + 180.0) % 360.0
    opp = a[(a[:, 1] == tilt) & (np.abs(((a[:, 0] - opp_axis) + 180) % 360 - 180) < 1e-6), 2]
    m = _NOMINAL.findall(p.name)
    nominal = None
    if m:
        nominal = float(m[0])
    return Ctffind5Tilt(
        axis_deg=axis % 360.0,
        tilt_deg=tilt,
        score=score,
        score_flat=float(flat.max()) if flat.size else float("nan"),
        score_opposite=float(opp.max()) if opp.size else float("nan"),
        path=str(p),
        nominal_tilt_deg=nominal,
    )


def read_ctffind5_tilt_series(
    paths: Iterable[str | os.PathLike[str]] | str | os.PathLike[str],
    *,
    sort_by_nominal: bool = True,
) -> list[Ctffind5Tilt]:
    """Read many CTFFIND5 tilt JSON files (a list, or a folder holding ``*.json``).

    Parameters
    ----------
    paths : folder or iterable of paths
    sort_by_nominal : bool
        Sort by the nominal tilt parsed from the file names (when every name has one).
    """
    if isinstance(paths, str | os.PathLike) and Path(paths).is_dir():
        files = sorted(Path(paths).glob("*.json"))
        if not files:
            raise EmgeomFileError(f"{paths}: no *.json files")
    elif isinstance(paths, str | os.PathLike):
        files = [Path(paths)]
    elif isinstance(paths, Iterable) and not isinstance(paths, bytes):
        files = [as_path(p, f"paths[{i}]") for i, p in enumerate(paths)]
    else:
        raise InvalidTypeError(
            f"paths: expected a folder or an iterable of paths, got {describe(paths)}"
        )
    if not files:
        raise InvalidValueError("paths: expected at least one CTFFIND5 tilt JSON file")
    res = [read_ctffind5_tilt(f) for f in files]
    if sort_by_nominal and all(r.nominal_tilt_deg is not None for r in res):
        res.sort(key=lambda r: float(r.nominal_tilt_deg or 0.0))
    return res
