"""Particle tables in each program's own form: read and write positions and orientations.

Every reader returns a :class:`Particles` whose ``coordinates`` are in the file's *native
frame* (``frame``), unchanged apart from the origin shifts the format defines; the
conversion to the voxels of a reconstruction is :func:`emgeom.tilt.particles_to_voxels`.
Orientation matrices follow :mod:`emgeom.model.rotation` (particle → tomogram).

Frames and their sources:

* ``"relion_centered_a"`` — RELION 5 ``rlnCenteredCoordinateX/Y/ZAngst``: Å from the
  tomogram centre ``rlnTomoSize/2.0`` in unbinned tilt-series pixels
  (3dem/relion ``src/jaz/tomography/particle_set.cpp`` ``ParticleSet::getPosition``), minus the
  refined shift ``A_subtomogram·rlnOrigin*Angst`` (same function; the origin lives in the
  pseudo-subtomogram frame; copick #261 is the bug of ignoring it). Orientation
  ``A_subtomogram·A_particle`` (``ParticleSet::getMatrix3x3``).
* ``"corner_a"`` — Å from the volume corner, voxel ``k`` at ``k·voxel``: Warp/WarpTools stars
  (``rlnCoordinateX/Y/Z`` × the coordinates' pixel size − ``rlnOrigin*Angst``; MTools
  ``create_species``: ``position = rlnCoordinate·rlnImagePixelSize − rlnOrigin*Angst``, the
  cryoet-alignment M golden), RELION 4 legacy stars (pixel = ``rlnTomoTiltSeriesPixelSize``),
  copick ``location`` (Å).
* ``"voxels"`` — 0-based voxel indices: the CZ portal's NDJSON ``location``.
* ``"imod_model"`` — IMOD model coordinates: the centre of voxel ``(i, j, k)`` (0-based) is at
  ``(i + 0.5, j + 0.5, k)`` (IMOD's MatTomo ``ImodModel`` notes: "IMOD models specify the
  center of the voxel with Matlab indices (1, 1, 1) as a point at (0.5, 0.5, 0.0)");
  ``model2point -float`` prints them unchanged (LabShare-Archive/IMOD
  ``flib/model/model2point.f90``).

All STAR tables go through ``starfile``; IMOD binary models through the optional
``imodmodel`` (``pip install 'emgeom[imod]'``; ``model2point`` text needs nothing).
"""

from __future__ import annotations

import json
import os
import struct
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from emgeom._validate import as_float, as_vectors, describe, require
from emgeom.errors import (
    FileFormatError,
    InvalidTypeError,
    InvalidValueError,
    UnknownConventionError,
)
from emgeom.io._frames import frame, is_frame, pandas, starfile
from emgeom.io.atomic import atomic_output, file_error
from emgeom.io.portal import read_portal_annotations, write_portal_annotations
from emgeom.io.star import check_token, read_star
from emgeom.io.text import (
    as_path,
    decode_text,
    parse_float,
    parse_matrix,
    parse_row,
    read_bytes,
    read_json,
    record_float,
)
from emgeom.model.rotation import (
    as_rotation_matrices,
    matrices_from_relion,
    relion_from_matrices,
)

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "FORMATS",
    "FRAMES",
    "Particles",
    "read_particles",
    "write_particles",
]

#: native coordinate frames of particle tables (module docstring)
FRAMES = ("relion_centered_a", "corner_a", "voxels", "imod_model")
#: particle-table formats
FORMATS = ("relion5", "warp", "imod", "copick", "portal")


@dataclass
class Particles:
    """Particle positions (and orientations) as read from one table.

    Attributes
    ----------
    coordinates : ndarray, shape (n, 3)
        ``(x, y, z)`` in ``frame`` (Å or voxels, module docstring).
    frame : str
        One of :data:`FRAMES`.
    matrices : ndarray, shape (n, 3, 3), or None
        Particle → tomogram rotations.
    tomo_names : list of str, or None
        Tomogram (tilt series) of each particle, when the format has one.
    format : str
        The format read (:data:`FORMATS`).
    table : pandas.DataFrame or None
        The original particle rows (STAR formats), carried over when writing back.
    meta : dict
        Format extras (e.g. the RELION optics table, copick object name).
    """

    coordinates: NDArray[np.float64]
    frame: str
    matrices: NDArray[np.float64] | None = None
    tomo_names: list[str] | None = None
    format: str = ""
    table: pd.DataFrame | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.coordinates.shape[0])

    def select(self, tomo_name: str) -> Particles:
        """The particles of one tomogram."""
        if self.tomo_names is None:
            return self
        keep = np.array([n == tomo_name for n in self.tomo_names], dtype=bool)
        if not keep.any():
            raise InvalidValueError(
                f"tomo_name: no particle of {tomo_name!r}; present: {sorted(set(self.tomo_names))}"
            )
        return Particles(
            self.coordinates[keep],
            self.frame,
            None if self.matrices is None else self.matrices[keep],
            [n for n, k in zip(self.tomo_names, keep, strict=True) if k],
            self.format,
            None if self.table is None else self.table[keep].reset_index(drop=True),
            dict(self.meta),
        )


# ---------------------------------------------------------------------------- helpers
def _read_star(path: Path) -> dict[str, pd.DataFrame]:
    """The loop blocks of a STAR file (through :func:`emgeom.io.star.read_star`)."""
    blocks = read_star(path)
    return {k: v for k, v in blocks.items() if is_frame(v)}


def _particle_block(blocks: dict[str, pd.DataFrame], path: Path) -> pd.DataFrame:
    df = blocks.get("particles")
    if df is None:
        cands = [v for v in blocks.values() if any(c.startswith("rlnCoordinate") for c in v)]
        cands += [v for v in blocks.values() if "rlnCenteredCoordinateXAngst" in v]
        cands += [v for v in blocks.values() if "wrpCoordinateX1" in v]
        if not cands:
            raise FileFormatError(f"{path}: no particle table (data_particles)")
        df = cands[0]
    return df


def _col(df: pd.DataFrame, name: str, path: Path) -> NDArray[np.float64]:
    try:
        a = pandas().to_numeric(df[name]).to_numpy(dtype=np.float64)
    except KeyError:
        raise FileFormatError(f"{path}: missing column _{name}") from None
    except (ValueError, TypeError):
        raise FileFormatError(f"{path}: column _{name} is not numeric") from None
    if not np.all(np.isfinite(a)):
        raise FileFormatError(f"{path}: column _{name} has NaN/inf values")
    return a


def _xyz(df: pd.DataFrame, fmt: str, path: Path) -> NDArray[np.float64]:
    return np.stack([_col(df, fmt.format(a), path) for a in "XYZ"], axis=1)


def _angles(df: pd.DataFrame, prefix: str, path: Path) -> NDArray[np.float64] | None:
    names = [f"{prefix}Rot", f"{prefix}Tilt", f"{prefix}Psi"]
    if not all(n in df for n in names):
        return None
    return matrices_from_relion(*(_col(df, n, path) for n in names))


def _names(df: pd.DataFrame) -> list[str] | None:
    for lab in ("rlnTomoName", "rlnMicrographName"):
        if lab in df:
            return [Path(str(v)).name.removesuffix(".tomostar") for v in df[lab]]
    return None


def _optics_pixel(blocks: dict[str, pd.DataFrame], df: pd.DataFrame, path: Path) -> float | None:
    optics = blocks.get("optics")
    for lab in ("rlnTomoTiltSeriesPixelSize", "rlnImagePixelSize"):
        if optics is not None and lab in optics and len(optics):
            return parse_float(optics[lab].iloc[0], lab, f"{path}: data_optics", positive=True)
        if lab in df and len(df):
            return parse_float(df[lab].iloc[0], lab, path, positive=True)
    return None


# ---------------------------------------------------------------------------- STAR
def read_star_particles(
    path: str | os.PathLike[str], *, coords_angpix: float | None = None
) -> Particles:
    """A RELION 5 / RELION 4 / Warp(Tools) particle STAR file.

    RELION 5 (``rlnCenteredCoordinate*Angst``): frame ``relion_centered_a``. Otherwise
    ``rlnCoordinateX/Y/Z`` in pixels of ``coords_angpix`` (default the optics
    ``rlnTomoTiltSeriesPixelSize`` / ``rlnImagePixelSize``; Warp stars do not state it):
    frame ``corner_a``. ``rlnOrigin*Angst`` (or ``rlnOrigin*`` in pixels) is subtracted,
    rotated by the subtomogram matrix when ``rlnTomoSubtomogramRot/Tilt/Psi`` are present.
    """
    p = as_path(path, "path")
    blocks = _read_star(p)
    df = _particle_block(blocks, p)
    a_sub = _angles(df, "rlnTomoSubtomogram", p)
    a_part = _angles(df, "rlnAngle", p)
    mats: NDArray[np.float64] | None = a_part
    if a_sub is not None:
        mats = a_sub @ a_part if a_part is not None else a_sub
    n = len(df)
    if all(f"rlnOrigin{a}Angst" in df for a in "XYZ"):
        origin_a = _xyz(df, "rlnOrigin{}Angst", p)
    else:
        origin_a = None
    meta: dict[str, Any] = {"optics": blocks.get("optics")}
    if all(f"wrpCoordinate{a}1" in df for a in "XYZ"):
        # M species table (MTools create_species): positions in Å from the volume corner
        coords = _xyz(df, "wrpCoordinate{}1", p)
        e = [_col(df, f"wrpAngle{n}1", p) for n in ("Rot", "Tilt", "Psi")]
        names = None
        if "wrpSourceName" in df:
            names = [str(v).removesuffix(".tomostar") for v in df["wrpSourceName"]]
        return Particles(
            coords, "corner_a", matrices_from_relion(*e), names, "warp", df, {"m_species": True}
        )
    if all(f"rlnCenteredCoordinate{a}Angst" in df for a in "XYZ"):
        coords = _xyz(df, "rlnCenteredCoordinate{}Angst", p)
        frame, fmt = "relion_centered_a", "relion5"
    elif all(f"rlnCoordinate{a}" in df for a in "XYZ"):
        px = coords_angpix if coords_angpix is not None else _optics_pixel(blocks, df, p)
        if px is None:
            raise InvalidValueError(
                f"coords_angpix: {p} has rlnCoordinateX/Y/Z in pixels but no pixel size; give "
                "the pixel size the coordinates refer to"
            )
        px = as_float(px, "coords_angpix", positive=True, high=1e5)
        coords = _xyz(df, "rlnCoordinate{}", p)
        if origin_a is None and all(f"rlnOrigin{a}" in df for a in "XYZ"):
            coords = coords - _xyz(df, "rlnOrigin{}", p)
        coords = coords * px
        frame, fmt = "corner_a", "warp"
        meta["coords_angpix"] = px
    else:
        raise FileFormatError(
            f"{p}: no particle coordinates (rlnCenteredCoordinate*Angst or rlnCoordinateX/Y/Z)"
        )
    if origin_a is not None:
        shift = np.einsum("nij,nj->ni", a_sub, origin_a) if a_sub is not None else origin_a
        coords = coords - shift
    return Particles(
        np.ascontiguousarray(coords, dtype=np.float64).reshape(n, 3),
        frame,
        mats,
        _names(df),
        fmt,
        df,
        meta,
    )


def _euler_columns(matrices: NDArray[np.float64] | None, n: int) -> dict[str, Any]:
    if matrices is None:
        return {}
    e = relion_from_matrices(matrices)
    return {"rlnAngleRot": e[:, 0], "rlnAngleTilt": e[:, 1], "rlnAnglePsi": e[:, 2]}


def write_relion5_particles(
    path: str | os.PathLike[str],
    centered_a: Any,
    *,
    tomo_names: list[str],
    matrices: Any = None,
    pixel_size_a: float | None = None,
    force: bool = False,
) -> Path:
    """A RELION 5 particle star: ``rlnTomoName``, ``rlnCenteredCoordinate*Angst`` (Å from the
    ``rlnTomoSize/2.0`` centre), ``rlnOrigin*Angst = 0``, ``rlnAngleRot/Tilt/Psi`` (full
    orientation, no subtomogram pre-rotation), and an optics block when ``pixel_size_a`` is
    given (``rlnTomoTiltSeriesPixelSize``).
    """
    c = as_vectors(centered_a, "centered_a", 3, max_abs=1e9)
    tomo_names = _names_arg(tomo_names, c.shape[0])
    if len(tomo_names) != c.shape[0]:
        raise InvalidValueError(f"tomo_names: {len(tomo_names)} names for {c.shape[0]} particles")
    mats = None if matrices is None else as_rotation_matrices(matrices)
    df = frame(
        {
            "rlnTomoName": list(tomo_names),
            "rlnCenteredCoordinateXAngst": c[:, 0],
            "rlnCenteredCoordinateYAngst": c[:, 1],
            "rlnCenteredCoordinateZAngst": c[:, 2],
            "rlnOriginXAngst": 0.0,
            "rlnOriginYAngst": 0.0,
            "rlnOriginZAngst": 0.0,
            **_euler_columns(mats, c.shape[0]),
        }
    )
    blocks: dict[str, pd.DataFrame] = {}
    if pixel_size_a is not None:
        px = as_float(pixel_size_a, "pixel_size_a", positive=True)
        blocks["optics"] = frame(
            {
                "rlnOpticsGroup": [1],
                "rlnOpticsGroupName": ["optics1"],
                "rlnTomoTiltSeriesPixelSize": [px],
            }
        )
        df["rlnOpticsGroup"] = 1
    blocks["particles"] = df
    return _write_star(path, blocks, force)


def write_warp_particles(
    path: str | os.PathLike[str],
    corner_a: Any,
    *,
    coords_angpix: float,
    tomo_names: list[str] | None = None,
    matrices: Any = None,
    force: bool = False,
) -> Path:
    """A Warp/WarpTools particle star: ``rlnCoordinateX/Y/Z`` in pixels of ``coords_angpix``
    (voxel ``k`` at ``k·coords_angpix`` Å), ``rlnAngleRot/Tilt/Psi``, ``rlnMicrographName``
    ``<name>.tomostar`` (WarpTools ``ts_export_particles --input_star``).
    """
    c = as_vectors(corner_a, "corner_a", 3, max_abs=1e9)
    px = as_float(coords_angpix, "coords_angpix", positive=True, high=1e5)
    mats = None if matrices is None else as_rotation_matrices(matrices)
    cols: dict[str, Any] = {
        "rlnCoordinateX": c[:, 0] / px,
        "rlnCoordinateY": c[:, 1] / px,
        "rlnCoordinateZ": c[:, 2] / px,
        **_euler_columns(mats, c.shape[0]),
    }
    if tomo_names is not None:
        names = _names_arg(tomo_names, c.shape[0])
        cols["rlnMicrographName"] = [f"{n}.tomostar" for n in names]
    return _write_star(path, {"particles": frame(cols)}, force)


def _write_star(path: str | os.PathLike[str], blocks: dict[str, pd.DataFrame], force: bool) -> Path:
    with atomic_output(path, force=force) as tmp:
        starfile().write(blocks, tmp, overwrite=True)
    return Path(path)


# ---------------------------------------------------------------------------- IMOD
def read_imod_points(path: str | os.PathLike[str]) -> Particles:
    """IMOD model points: a binary ``.mod`` (needs ``imodmodel``) or ``model2point`` text
    (``x y z``, or ``object contour x y z`` / ``contour x y z``). Frame ``imod_model``.
    """
    p = as_path(path, "path")
    raw = read_bytes(p, what="IMOD model")
    if raw[:4] == b"IMOD":
        return _read_imod_binary(p)
    # model2point writes ASCII (printf): UTF-16 is refused like IMOD's other text files
    text = decode_text(raw, p, what="IMOD model2point text")
    rows = []
    for i, ln in enumerate(text.splitlines(), 1):
        if not ln.strip() or ln.lstrip().startswith("#"):
            continue
        vals = parse_row(ln.split(), f"{p}:{i}")
        if len(vals) not in (3, 4, 5):
            raise FileFormatError(f"{p}:{i}: expected 3 to 5 numbers, got {len(vals)}")
        rows.append(vals[-3:])
    if not rows:
        raise FileFormatError(f"{p}: no points")
    return Particles(np.array(rows), "imod_model", format="imod", meta={"source": "text"})


def _read_imod_binary(p: Path) -> Particles:
    """A binary IMOD ``.mod`` through ``imodmodel``; its parser errors name the file."""
    imodmodel = require("imodmodel", "imod")
    try:
        df = imodmodel.read(p)
        xyz = df[["x", "y", "z"]].to_numpy(dtype=np.float64)
    except OSError as exc:
        raise file_error(p, exc, "read") from None
    except (ValueError, TypeError, KeyError, IndexError, EOFError, struct.error) as exc:
        raise FileFormatError(f"{p}: not a readable IMOD model ({type(exc).__name__})") from None
    if not np.all(np.isfinite(xyz)):
        raise FileFormatError(f"{p}: IMOD model points have NaN/inf coordinates")
    return Particles(xyz, "imod_model", format="imod", meta={"source": "mod"})


def write_imod_points(
    path: str | os.PathLike[str], model_coords: Any, *, force: bool = False
) -> Path:
    """IMOD points: ``.mod`` (scattered points, one contour; needs ``imodmodel``) or
    ``model2point -float`` text (``%12.2f`` × 3, as ``model2point`` writes) for other names.
    """
    c = as_vectors(model_coords, "model_coords", 3, max_abs=1e9)
    if str(path).lower().endswith(".mod"):
        imodmodel = require("imodmodel", "imod")
        df = frame({"object_id": 0, "contour_id": 0, "x": c[:, 0], "y": c[:, 1], "z": c[:, 2]})
        with atomic_output(path, force=force) as tmp, warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # imodmodel 0.1: pydantic .dict()
            imodmodel.write(df, tmp)
        return Path(path)
    with atomic_output(path, force=force) as tmp:
        tmp.write_text("".join(f"{x:12.2f}{y:12.2f}{z:12.2f}\n" for x, y, z in c))
    return Path(path)


# ---------------------------------------------------------------------------- copick
def read_copick_picks(path: str | os.PathLike[str]) -> Particles:
    """Copick picks JSON: ``points[i].location`` (Å, voxel ``k`` at ``k·spacing``) and
    ``transformation_`` (4×4; its rotation block = the portal matrix). Frame ``corner_a``.
    """
    p, doc = read_json(path, "path", what="copick picks JSON")
    pts = doc.get("points") if isinstance(doc, dict) else None
    if not isinstance(pts, list):
        raise FileFormatError(f"{p}: no 'points' list (not a copick picks file)")
    locs, mats = [], []
    for i, q in enumerate(pts):
        loc = q.get("location") if isinstance(q, dict) else None
        if not isinstance(loc, dict) or not all(k in loc for k in "xyz"):
            raise FileFormatError(f"{p}: points[{i}] has no location x/y/z")
        locs.append([record_float(loc, k, f"{p}: points[{i}].location") for k in "xyz"])
        raw_t = q.get("transformation_")
        where = f"{p}: points[{i}]"
        t = np.eye(4) if raw_t is None else parse_matrix(raw_t, (4, 4), "transformation_", where)
        mats.append(t[:3, :3])
        locs[-1] = [locs[-1][k] + float(t[k, 3]) for k in range(3)]  # centre = location + t
    meta = {k: doc.get(k) for k in ("pickable_object_name", "user_id", "session_id", "run_name")}
    if doc.get("unit", "angstrom") != "angstrom":
        raise FileFormatError(f"{p}: unit {doc.get('unit')!r}; expected 'angstrom'")
    return Particles(
        np.array(locs, dtype=np.float64).reshape(-1, 3),
        "corner_a",
        np.array(mats).reshape(-1, 3, 3),
        format="copick",
        meta=meta,
    )


def write_copick_picks(
    path: str | os.PathLike[str],
    corner_a: Any,
    *,
    matrices: Any = None,
    object_name: str = "particle",
    user_id: str = "emgeom",
    session_id: str = "0",
    run_name: str = "",
    force: bool = False,
) -> Path:
    """Copick picks JSON (``location`` Å, ``transformation_`` 4×4, ``unit`` angstrom)."""
    c = as_vectors(corner_a, "corner_a", 3, max_abs=1e9)
    mats = None if matrices is None else as_rotation_matrices(matrices)
    points = []
    for i, (x, y, z) in enumerate(c):
        t = np.eye(4)
        if mats is not None:
            t[:3, :3] = mats[i]
        points.append(
            {
                "location": {"x": float(x), "y": float(y), "z": float(z)},
                "transformation_": t.tolist(),
                "instance_id": 0,
                "score": 1.0,
            }
        )
    doc = {
        "pickable_object_name": object_name,
        "user_id": user_id,
        "session_id": session_id,
        "run_name": run_name,
        "unit": "angstrom",
        "points": points,
    }
    with atomic_output(path, force=force) as tmp:
        tmp.write_text(json.dumps(doc, indent=1), encoding="utf-8")
    return Path(path)


# ---------------------------------------------------------------------------- dispatch
def guess_format(path: str | os.PathLike[str]) -> str:
    """Format from the file name: ``.star`` → relion5/warp (decided by the columns when
    read), ``.mod``/``.txt``/``.pts`` → imod, ``.json`` → copick, ``.ndjson`` → portal.
    """
    s = str(path).lower()
    if s.endswith(".star"):
        return "relion5"
    if s.endswith((".mod", ".txt", ".pts", ".point", ".points")):
        return "imod"
    if s.endswith(".ndjson"):
        return "portal"
    if s.endswith(".json"):
        return "copick"
    raise UnknownConventionError(
        f"path: cannot tell the particle format of {path!r}; name one of {FORMATS}"
    )


def _names_arg(names: Any, n: int) -> list[str]:
    """``tomo_names``: one STAR-safe name per particle (:func:`emgeom.io.star.check_token`)."""
    if not isinstance(names, list | tuple | np.ndarray) or np.asarray(names, object).ndim != 1:
        raise InvalidTypeError(f"tomo_names: expected a list of {n} names, got {describe(names)}")
    out = [check_token(v, "tomo_names") for v in names]
    if len(out) != n:
        raise InvalidValueError(f"tomo_names: {len(out)} names for {n} particles")
    return out


def _form(form: Any) -> str:
    if not isinstance(form, str):
        raise UnknownConventionError(f"form: expected one of {FORMATS}, got {describe(form)}")
    return form.lower()


def read_particles(
    path: str | os.PathLike[str],
    form: str | None = None,
    *,
    coords_angpix: float | None = None,
) -> Particles:
    """Read a particle table (format from ``form`` or the file name, :func:`guess_format`)."""
    f = guess_format(path) if form is None else _form(form)
    if f in ("relion5", "relion", "warp"):
        return read_star_particles(path, coords_angpix=coords_angpix)
    if f == "imod":
        return read_imod_points(path)
    if f == "copick":
        return read_copick_picks(path)
    if f == "portal":
        locs, mats = read_portal_annotations(path)
        return Particles(locs, "voxels", mats, format="portal")
    raise UnknownConventionError(f"form: expected one of {FORMATS}, got {form!r}")


def write_particles(
    path: str | os.PathLike[str],
    form: str,
    coordinates: Any,
    *,
    matrices: Any = None,
    tomo_names: list[str] | None = None,
    pixel_size_a: float | None = None,
    force: bool = False,
) -> Path:
    """Write coordinates given in the format's native frame (:data:`FRAMES`):
    relion5 ``relion_centered_a``; warp and copick ``corner_a`` (``pixel_size_a`` = the
    Warp coordinates' pixel size); imod ``imod_model``; portal ``voxels``.
    """
    f = _form(form)
    if f in ("relion5", "relion"):
        n = as_vectors(coordinates, "coordinates", 3).shape[0]
        return write_relion5_particles(
            path,
            coordinates,
            tomo_names=["tomo"] * n if tomo_names is None else tomo_names,
            matrices=matrices,
            pixel_size_a=pixel_size_a,
            force=force,
        )
    if f == "warp":
        if pixel_size_a is None:
            raise InvalidValueError("pixel_size_a: the Warp coordinates' pixel size is needed")
        return write_warp_particles(
            path,
            coordinates,
            coords_angpix=pixel_size_a,
            tomo_names=tomo_names,
            matrices=matrices,
            force=force,
        )
    if f == "imod":
        return write_imod_points(path, coordinates, force=force)
    if f == "copick":
        return write_copick_picks(path, coordinates, matrices=matrices, force=force)
    if f == "portal":
        return write_portal_annotations(path, coordinates, matrices, force=force)
    raise UnknownConventionError(f"form: expected one of {FORMATS}, got {form!r}")


#: the native frame each format writes
FORMAT_FRAMES = {
    "relion5": "relion_centered_a",
    "warp": "corner_a",
    "copick": "corner_a",
    "imod": "imod_model",
    "portal": "voxels",
}
