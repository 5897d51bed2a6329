"""RELION 4/5 ``tomograms.star`` (+ per-tilt tables) → canonical :class:`TiltGeometry`.

Public names are in :mod:`emgeom.io.relion_tomo` (sources and conventions in its docstring).
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mrcfile
import numpy as np
from numpy.typing import NDArray

from emgeom._validate import as_shape2
from emgeom.errors import (
    EmgeomFileError,
    FileFormatError,
    ImplausibleValueWarning,
    InvalidValueError,
)
from emgeom.io import star as _star
from emgeom.io._frames import is_frame
from emgeom.io.star import Block, read_star
from emgeom.io.text import as_path, from_file, parse_float, parse_int
from emgeom.model.geometry import (
    TiltGeometry,
    angles_from_matrices,
)

if TYPE_CHECKING:
    import pandas as pd

_GEOM5 = ("rlnTomoXTilt", "rlnTomoYTilt", "rlnTomoZRot")
_PROJ = ("rlnTomoProjX", "rlnTomoProjY", "rlnTomoProjZ", "rlnTomoProjW")


def resolve_relion_path(
    name: str, star_path: Path, project_dir: str | os.PathLike[str] | None = None
) -> Path:
    """Find a file named inside a RELION star file.

    Order: absolute path; ``project_dir`` if given; the current directory (RELION's project
    directory when run from it); then every folder above ``star_path``.
    """
    p = Path(name)
    if p.is_absolute():
        if p.exists():
            return p
        raise EmgeomFileError(f"{star_path}: referenced file {name} does not exist")
    tried = []
    candidates = []
    if project_dir is not None:
        candidates.append(Path(project_dir) / p)
    candidates.append(Path.cwd() / p)
    candidates += [parent / p for parent in star_path.resolve().parents]
    for c in candidates:
        tried.append(str(c.parent))
        if c.exists():
            return c
    raise EmgeomFileError(
        f"{star_path}: cannot find {name!r} (paths in RELION star files are relative to the "
        f"project directory); looked in the current directory and the folders above the star "
        f"file. Run from the project directory or pass project_dir="
    )


def _floats(block: Block, label: str, where: str) -> NDArray[np.float64]:
    return _star.floats(block, label, where)


def _vec4(block: Block, label: str, where: str) -> NDArray[np.float64]:
    out = []
    for i, v in enumerate(_star.strings(block, label, where)):
        parts = [x for x in v.strip("[]").split(",") if x.strip()]
        if len(parts) != 4:
            raise FileFormatError(f"{where}: _{label} value {v!r} (row {i + 1}) is not a 4-vector")
        out.append([parse_float(x, f"_{label} (row {i + 1})", where) for x in parts])
    return np.array(out, dtype=np.float64)


def _global_records(blocks: Mapping[str, Block], path: Path) -> list[dict[str, Any]]:
    g = blocks.get("global")
    if g is None:
        raise FileFormatError(f"{path}: no data_global block (not a RELION tomograms.star)")
    recs = _star.records(g)
    if not recs:
        raise FileFormatError(f"{path}: data_global has no rows (no tomograms)")
    if "rlnTomoName" not in recs[0]:
        raise FileFormatError(f"{path}: data_global has no _rlnTomoName column")
    for r in recs:
        r["rlnTomoName"] = str(r["rlnTomoName"])
    return recs


_MRC_MODES = (0, 1, 2, 3, 4, 6, 12, 101)

# RELION names an image file as "[index@]path[:type]" (e.g. "TS_01.st:mrc", "3@stack.mrcs")
_RELION_NAME = re.compile(r"^(?:\d+@)?(?P<path>.+?)(?::[A-Za-z0-9]{1,5})?$")


def _image_shape_from_headers(
    rec: Mapping[str, Any],
    tb: Block,
    path: Path,
    project_dir: str | os.PathLike[str] | None,
) -> tuple[tuple[int, int] | None, str]:
    """``(ny, nx)`` of the tilt-series images from an MRC header, and where it came from.

    Candidates, in order: the global ``_rlnTomoTiltSeriesName`` (RELION 4 stack), the first
    per-tilt ``_rlnMicrographName`` (RELION 5 per-tilt images) — the files RELION 5's
    ``TomogramSet::loadTomogram`` takes the image size from. Header only; a file that is
    missing or not an MRC is skipped (the reason is returned).
    """
    names: list[str] = []
    if rec.get("rlnTomoTiltSeriesName"):
        names.append(str(rec["rlnTomoTiltSeriesName"]))
    if _star.has(tb, "rlnMicrographName"):
        col = _star.strings(tb, "rlnMicrographName", path)
        if col:
            names.append(col[0])
    reasons = []
    for raw in names:
        m = _RELION_NAME.match(raw.strip())
        name = m.group("path") if m else raw.strip()
        try:
            p = resolve_relion_path(name, path, project_dir)
        except EmgeomFileError:
            reasons.append(f"{name} not found")
            continue
        try:
            with warnings.catch_warnings():  # permissive mode warns about odd headers
                warnings.simplefilter("ignore")
                with mrcfile.open(p, header_only=True, permissive=True) as mrc:
                    h = mrc.header
                    nx, ny, mode = int(h.nx), int(h.ny), int(h.mode)
                    map_id = bytes(h.map)
        except Exception as exc:  # not an MRC file, unreadable, ...
            reasons.append(f"{p}: no MRC header ({type(exc).__name__})")
            continue
        # a permissive open of a non-MRC file (TIFF, EER, ...) gives garbage: require the
        # "MAP " id, or at least a valid mode and sane sizes (very old headers lack the id)
        plausible = 0 < nx <= 1 << 16 and 0 < ny <= 1 << 16
        if not plausible or (map_id != b"MAP " and mode not in _MRC_MODES):
            reasons.append(f"{p}: no MRC header (map id {map_id!r}, {nx} x {ny}, mode {mode})")
            continue
        return (ny, nx), f"MRC header of {p}"
    if not names:
        reasons.append("no _rlnTomoTiltSeriesName or _rlnMicrographName")
    return None, "; ".join(reasons)


def _relion4_centres(
    volume_shape: tuple[int, int, int], image_shape: tuple[int, int]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Volume and image centres (tilt-series pixels, ``(x, y[, z])``) that RELION 5 pairs with a
    RELION-4 matrix: ``Tomogram::centre = (w0/2.0, h0/2.0, d0/2.0)`` and the integer half of the
    image (``Tomogram::getProjectionAnglesFromMatrix``, src/jaz/tomography/tomogram.cpp).
    """
    ny, nx = image_shape
    c_vol = np.array(volume_shape, dtype=np.float64) / 2.0
    c_img = np.array([nx // 2, ny // 2], dtype=np.float64)
    return c_vol, c_img


def _check_image_shape(image_shape: Any, name: str = "image_shape") -> tuple[int, int] | None:
    if image_shape is None:
        return None
    return as_shape2(image_shape, name)


def read_relion_tomograms(
    tomograms_star: str | os.PathLike[str],
    *,
    project_dir: str | os.PathLike[str] | None = None,
    image_shape: tuple[int, int] | Mapping[str, tuple[int, int]] | None = None,
) -> dict[str, TiltGeometry]:
    """Every tomogram of a RELION ``tomograms.star`` (name → :class:`TiltGeometry`).

    ``image_shape``: ``(ny, nx)`` of the tilt-series images for every tomogram, or a mapping
    tomogram name → ``(ny, nx)``; see :func:`read_relion`.
    """
    path = as_path(tomograms_star, "tomograms_star")
    blocks = read_star(path)
    shapes: dict[str, tuple[int, int]] = {}
    common: tuple[int, int] | None = None
    if isinstance(image_shape, Mapping):
        shapes = {str(k): as_shape2(v, f"image_shape[{k!r}]") for k, v in image_shape.items()}
    else:
        common = _check_image_shape(image_shape)
    return {
        rec["rlnTomoName"]: _geometry_from_record(
            rec, blocks, path, project_dir, shapes.get(rec["rlnTomoName"], common)
        )
        for rec in _global_records(blocks, path)
    }


def read_relion(
    tomograms_star: str | os.PathLike[str],
    tomo_name: str | None = None,
    *,
    project_dir: str | os.PathLike[str] | None = None,
    image_shape: tuple[int, int] | None = None,
) -> TiltGeometry:
    """Read one tilt series from a RELION 5 ``tomograms.star`` (or RELION-4/WarpTools layout).

    Parameters
    ----------
    tomograms_star : path
        The global table (``data_global`` with ``_rlnTomoName``, ``_rlnTomoHand``, ...).
    tomo_name : str, optional
        Which tomogram; may be omitted when the file holds exactly one.
    project_dir : path, optional
        RELION project directory for the relative ``_rlnTomoTiltSeriesStarFile`` paths
        (default: current directory, then the folders above ``tomograms_star``).
    image_shape : (int, int), optional
        ``(ny, nx)`` in pixels of the tilt-series images the projection matrices refer to
        (same pixel size as ``_rlnTomoTiltSeriesPixelSize``). Only used for RELION-4
        ``_rlnTomoProjX/Y/Z/W`` matrices with translations, to recover the image shifts; when
        omitted it is read from the MRC header of the stack (``_rlnTomoTiltSeriesName``) or
        first tilt image (``_rlnMicrographName``) when that file can be found.

    Returns
    -------
    TiltGeometry
        Canonical geometry; ``hand = −rlnTomoHand`` (RELION ``Tomogram::getCtf`` adds
        ``+rlnTomoHand·z'``; canonical subtracts ``h·z'``). ``notes`` states the layout read.

    Notes
    -----
    Per-tilt table: ``_rlnTomoXTilt/YTilt/ZRot`` (+ ``X/YShiftAngst``) — RELION 5; or
    ``_rlnTomoProjX/Y/Z/W`` — RELION 4 / WarpTools export, used in preference when present
    (as RELION does). Defocus: ``_rlnDefocusU/V`` (Å), ``_rlnDefocusAngle``.

    RELION-4 matrices: the rotation gives θ, ψ, χ; the translation gives the image shifts
    (Å) as RELION 5's ``Tomogram::getProjectionAnglesFromMatrix`` does,
    ``s = pixel·(t_xy + [R·c_vol]_xy − c_img)``, ``c_vol = rlnTomoSize/2.0``,
    ``c_img = (nx//2, ny//2)`` — which needs the image size (``image_shape`` or an MRC header),
    ``_rlnTomoSizeX/Y/Z`` and ``_rlnTomoTiltSeriesPixelSize``. Without them the shifts are 0 and
    ``notes`` says so (depth and defocus are exact either way). Matrices whose translations are
    all zero (WarpTools exports: Warp's centred convention) always give zero shifts.
    RELION 4.0 itself added 1 to every particle coordinate before applying these matrices
    (``ParticleSet::getPosition``, removed in RELION 5); the shifts here follow RELION 5, so
    positions differ from RELION 4.0's by ``R·(1, 1, 1)`` tilt-series pixels.
    """
    image_shape = _check_image_shape(image_shape)
    path = as_path(tomograms_star, "tomograms_star")
    blocks = read_star(path)
    recs = _global_records(blocks, path)
    names = [r["rlnTomoName"] for r in recs]
    if tomo_name is None:
        if len(recs) != 1:
            raise InvalidValueError(
                f"tomo_name: {path} holds {len(recs)} tomograms, name one of {names}"
            )
        rec = recs[0]
    else:
        matches = [r for r in recs if r["rlnTomoName"] == tomo_name]
        if not matches:
            raise InvalidValueError(f"tomo_name: {tomo_name!r} not in {path}; available: {names}")
        rec = matches[0]
    return _geometry_from_record(rec, blocks, path, project_dir, image_shape)


def _record_scalars(rec: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Hand, defocus slope, pixel size and volume shape of one ``data_global`` row."""
    if "rlnTomoHand" not in rec:
        raise FileFormatError(f"{where}: missing column _rlnTomoHand in data_global")
    relion_hand = parse_float(rec["rlnTomoHand"], "_rlnTomoHand", where)
    if relion_hand not in (1.0, -1.0):
        raise FileFormatError(f"{where}: _rlnTomoHand must be +1 or -1, got {relion_hand:g}")
    slope = parse_float(
        rec.get("rlnTomoDefocusSlope", 1.0), "_rlnTomoDefocusSlope", where, positive=True
    )
    pixel = None
    if "rlnTomoTiltSeriesPixelSize" in rec:
        pixel = parse_float(
            rec["rlnTomoTiltSeriesPixelSize"], "_rlnTomoTiltSeriesPixelSize", where, positive=True
        )
    shape = None
    keys = ("rlnTomoSizeX", "rlnTomoSizeY", "rlnTomoSizeZ")
    if all(k in rec for k in keys):
        shape = tuple(parse_int(rec[k], f"_{k}", where, low=1) for k in keys)
    return {"relion_hand": int(relion_hand), "slope": slope, "pixel": pixel, "shape": shape}


def _per_tilt_block(
    rec: Mapping[str, Any],
    blocks: Mapping[str, Block],
    path: Path,
    project_dir: str | os.PathLike[str] | None,
) -> tuple[pd.DataFrame, str]:
    """The per-tilt table of a tomogram (referenced file or embedded ``data_<name>``)."""
    name = rec["rlnTomoName"]
    if "rlnTomoTiltSeriesStarFile" in rec:
        ts_path = resolve_relion_path(str(rec["rlnTomoTiltSeriesStarFile"]), path, project_dir)
        ts_blocks = read_star(ts_path)
        tb = _star.loop(ts_blocks.get(name))
        if tb is None:
            tb = next((b for b in ts_blocks.values() if is_frame(b)), None)
        src = str(ts_path)
    else:
        tb = _star.loop(blocks.get(name))
        src = f"{path} data_{name}"
    if tb is None:
        raise FileFormatError(f"{path} (tomogram {name}): no per-tilt table found ({src})")
    if len(tb) == 0:
        raise FileFormatError(f"{src}: the per-tilt table has no rows")
    return tb, src


def _angles_relion4(
    tb: pd.DataFrame,
    rec: Mapping[str, Any],
    path: Path,
    project_dir: str | os.PathLike[str] | None,
    image_shape: tuple[int, int] | None,
    sc: dict[str, Any],
    src: str,
    notes: list[str],
) -> tuple[Any, Any, Any, NDArray[np.float64]]:
    """(tilt, axis, x-tilt, shifts Å) from RELION-4 ``_rlnTomoProjX/Y/Z/W`` matrices."""
    px, py, pz, _pw = (_vec4(tb, lab, src) for lab in _PROJ)
    r = np.stack([px[:, :3], py[:, :3], pz[:, :3]], axis=1)
    err = np.abs(r @ np.transpose(r, (0, 2, 1)) - np.eye(3)).max()
    if err > 1e-3 or np.any(np.linalg.det(r) < 0):
        raise FileFormatError(
            f"{src}: _rlnTomoProjX/Y/Z rotation part is not a proper rotation (error {err:.2g})"
        )
    tilt, axis, xtilt = angles_from_matrices(r)
    trans = np.stack([px[:, 3], py[:, 3]], axis=1)
    shifts = np.zeros((len(tilt), 2))
    if np.any(np.abs(trans) > 1e-6):
        shifts, note = _relion4_shifts(
            r, trans, rec, tb, path, project_dir, image_shape, sc["shape"], sc["pixel"], src
        )
        notes.append(
            "layout: RELION-4 _rlnTomoProjX/Y/Z/W matrices (used in preference to "
            "X/YTilt/ZRot, as RELION does); " + note
        )
    else:
        notes.append(
            "layout: _rlnTomoProjX/Y/Z/W matrices without translations (WarpTools export); "
            "image shifts 0"
        )
        notes.append(
            "warning: WarpTools writes rlnTomoHand = -1 for AreAnglesInverted=False "
            "(RelionParticleSeriesExport.GetRelionHand), which reverses Warp's own defocus "
            "model; if this file came from WarpTools with AreAnglesInverted=False the "
            "consistent value is +1 (canonical h = -1). Check with the Warp XML."
        )
    return tilt, axis, xtilt, shifts


def _angles_relion5(
    tb: pd.DataFrame, src: str, notes: list[str]
) -> tuple[Any, Any, Any, NDArray[np.float64]]:
    """(tilt, axis, x-tilt, shifts Å) from RELION 5 ``_rlnTomoXTilt/YTilt/ZRot`` columns."""
    for lab in _GEOM5[1:]:
        if not _star.has(tb, lab):
            raise FileFormatError(
                f"{src}: missing column _{lab} (and no _rlnTomoProjX/Y/Z/W matrices)"
            )
    tilt, axis = (_floats(tb, lab, src) for lab in _GEOM5[1:])
    # TomogramSet::loadTomogram: a missing _rlnTomoXTilt means 0
    xtilt = _floats(tb, _GEOM5[0], src) if _star.has(tb, _GEOM5[0]) else np.zeros_like(tilt)
    if _star.has(tb, "rlnTomoXShiftAngst"):
        shifts = np.stack(
            [_floats(tb, "rlnTomoXShiftAngst", src), _floats(tb, "rlnTomoYShiftAngst", src)],
            axis=1,
        )
    else:
        shifts = np.zeros((len(tilt), 2))
    notes.append("layout: RELION 5 _rlnTomoXTilt/YTilt/ZRot + X/YShiftAngst")
    return tilt, axis, xtilt, shifts


def _geometry_from_record(
    rec: dict[str, Any],
    blocks: Mapping[str, Block],
    path: Path,
    project_dir: str | os.PathLike[str] | None,
    image_shape: tuple[int, int] | None = None,
) -> TiltGeometry:
    name = rec["rlnTomoName"]
    sc = _record_scalars(rec, f"{path} (tomogram {name})")
    tb, src = _per_tilt_block(rec, blocks, path, project_dir)
    notes = [
        f"hand: h = -rlnTomoHand = {-sc['relion_hand']:+d} (RELION tomogram.cpp getCtf adds "
        f"+rlnTomoHand*pixel*slope*dz)"
    ]
    if _star.has(tb, "rlnTomoProjX"):
        tilt, axis, xtilt, shifts = _angles_relion4(
            tb, rec, path, project_dir, image_shape, sc, src, notes
        )
    else:
        tilt, axis, xtilt, shifts = _angles_relion5(tb, src, notes)
    du = _floats(tb, "rlnDefocusU", src)
    dv = _floats(tb, "rlnDefocusV", src) if _star.has(tb, "rlnDefocusV") else du
    ang = (
        _floats(tb, "rlnDefocusAngle", src)
        if _star.has(tb, "rlnDefocusAngle")
        else np.zeros_like(du)
    )
    tilt_names = None
    for lab in ("rlnMicrographName", "rlnMicrographMovieName"):
        if _star.has(tb, lab):
            tilt_names = _star.strings(tb, lab, src)
            break
    with from_file(src):
        return TiltGeometry(
            tilt,
            axis,
            None,
            x_tilt_deg=xtilt,
            shifts_a=shifts,
            hand=-sc["relion_hand"],
            defocus_slope=sc["slope"],
            defocus_u_a=du,
            defocus_v_a=dv,
            astigmatism_deg=ang,
            volume_shape=sc["shape"],
            pixel_size_a=sc["pixel"],
            source=f"relion:{src}",
            notes=notes,
            names=tilt_names,
        )


def _relion4_shifts(
    r: NDArray[np.float64],
    trans: NDArray[np.float64],
    rec: Mapping[str, Any],
    tb: Block,
    path: Path,
    project_dir: str | os.PathLike[str] | None,
    image_shape: tuple[int, int] | None,
    volume_shape: tuple[int, ...] | None,
    pixel: float | None,
    src: str,
) -> tuple[NDArray[np.float64], str]:
    """Image shifts (Å) from RELION-4 translations, or zeros and the reason they are zeros."""
    n = len(r)
    zero = "image shifts set to 0 (depth/defocus exact)"
    if volume_shape is None or len(volume_shape) != 3:
        return np.zeros((n, 2)), f"no _rlnTomoSizeX/Y/Z (volume centre unknown): {zero}"
    if pixel is None or not pixel > 0:
        return np.zeros((n, 2)), f"no _rlnTomoTiltSeriesPixelSize: {zero}"
    if image_shape is not None:
        where = f"image_shape (ny, nx) = {image_shape} given by the caller"
    else:
        image_shape, why = _image_shape_from_headers(rec, tb, path, project_dir)
        if image_shape is None:
            return np.zeros((n, 2)), (
                "their translations include the image centre; the image size is not in the "
                f"star file and no image header was found ({why}): {zero}; pass "
                "image_shape=(ny, nx) to recover them"
            )
        where = f"image size {image_shape[1]} x {image_shape[0]} from the {why}"
    c_vol, c_img = _relion4_centres(
        (volume_shape[0], volume_shape[1], volume_shape[2]), image_shape
    )
    # Tomogram::getProjectionAnglesFromMatrix: shift_px = t + R·centre − image centre
    shift_px = trans + (r @ c_vol)[:, :2] - c_img
    ny, nx = image_shape
    if np.any(np.abs(shift_px) > max(nx, ny) / 2.0):
        worst = float(np.abs(shift_px).max())
        warnings.warn(
            f"{src}: RELION-4 translations give image shifts up to {worst:.0f} px for "
            f"{nx} x {ny} images: the image size or _rlnTomoSizeX/Y/Z probably does not match "
            "the matrices",
            ImplausibleValueWarning,
            stacklevel=4,
        )
    return shift_px * pixel, (
        "image shifts from their translations as RELION 5 Tomogram::"
        "getProjectionAnglesFromMatrix: s = pixel*(t_xy + [R*c_vol]_xy - c_img), "
        f"c_vol = rlnTomoSize/2.0, c_img = (nx//2, ny//2); {where}; positions as RELION 5 "
        "projects them (RELION 4.0 added 1 voxel to every particle coordinate first)"
    )
