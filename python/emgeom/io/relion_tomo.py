"""RELION 4/5 tomography tables ↔ canonical :class:`~emgeom.tilt.TiltGeometry`.

Sources (3dem/relion): ``src/jaz/tomography/tomogram.cpp`` (``Tomogram::getDepthOffset``,
``Tomogram::getCtf``: ``ΔfU,V += rlnTomoHand · pixelSize · rlnTomoDefocusSlope ·
(ProjZ · (pos − centre))``), ``src/jaz/tomography/tomogram_set.cpp`` (``TomogramSet::loadTomogram``:
projection ``P = S(shift/px)·S(image centre)·Rz(ZRot)·Ry(YTilt)·Rx(XTilt)·S(−volume centre)``, or
the RELION-4 ``rlnTomoProjX/Y/Z/W`` rows used verbatim when present).

RELION-4 matrices map a tomogram voxel position (tilt-series pixels, origin at voxel 0) to a
tilt-image pixel position (origin at pixel 0): ``P·(pos, 1)``. RELION 5 reads them verbatim
(``TomogramSet::loadTomogram``, "has relion-4 definition of projection matrices") and turns a
matrix back into angles and shifts with ``Tomogram::getProjectionAnglesFromMatrix``
(``src/jaz/tomography/tomogram.cpp``): ``shift_px = [A·S(centre)·R⁻¹·S(−image centre)]`` column 3,
i.e. ``shift_px = t_xy + [R·c_vol]_xy − c_img`` with ``c_vol = (w0/2.0, h0/2.0, d0/2.0)``
(``rlnTomoSizeX/Y/Z``, float halves: ``Tomogram::centre``) and ``c_img = (int(nx/2), int(ny/2))``
of the tilt-series image (integer halves), all in tilt-series pixels
(``rlnTomoTiltSeriesPixelSize``); ``shift_Å = pixel·shift_px``. These are also the centres
RELION 5 projects a particle with (``ParticleSet::getPosition`` de-centres
``rlnCenteredCoordinate*Angst`` about ``w0/2.0``), so the recovered shifts reproduce RELION 5's
image positions exactly. The image size is not in the star file: it comes from ``image_shape=``
or from the header of the tilt-series stack / first tilt image the star file names.

Canonical mapping: ``θ = rlnTomoYTilt``, ``ψ = rlnTomoZRot``, ``χ = rlnTomoXTilt``,
``s = (rlnTomoXShiftAngst, rlnTomoYShiftAngst)``, ``h = −rlnTomoHand``,
``κ = rlnTomoDefocusSlope`` (default 1); per-tilt ``rlnDefocusU/V/Angle`` (Å).
Paths inside a RELION star file are relative to the RELION project directory (where RELION
ran): they are resolved against the current directory first, then against the folders above
the star file.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from emgeom._validate import as_float, as_shape2, describe
from emgeom.errors import (
    EmgeomFileError,
    FileFormatError,
    ImplausibleValueWarning,
    InvalidTypeError,
    InvalidValueError,
    LossyConversionWarning,
)
from emgeom.io import star as _star
from emgeom.io._text import as_path, from_file, parse_float, parse_int
from emgeom.io.star import Block, check_token, read_star, write_star
from emgeom.tilt._geometry import (
    TiltGeometry,
    angles_from_matrices,
    particle_defocus,
    rotation_matrices,
)

__all__ = [
    "add_particle_defocus",
    "read_relion",
    "read_relion_tomograms",
    "resolve_relion_path",
    "to_relion",
]

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
    import mrcfile

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
            tb = next((b for b in ts_blocks.values() if isinstance(b, pd.DataFrame)), None)
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
        {"global": glob, name: pd.DataFrame(per_tilt, dtype=object)},
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
    return pd.DataFrame({k: [v] for k, v in row.items()}, dtype=object)


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


# ---------------------------------------------------------------------------- particles
def _particle_positions(block: pd.DataFrame, g: TiltGeometry, where: str) -> NDArray[np.float64]:
    """Positions (Å, centred) of the particles of ``block`` (one tomogram) as RELION 5's
    ``ParticleSet::getPosition`` computes them.
    """

    def col(lab: str) -> NDArray[np.float64]:
        return _star.floats(block, lab, where)

    if all(_star.has(block, f"rlnCenteredCoordinate{a}Angst") for a in "XYZ"):
        p = np.stack([col(f"rlnCenteredCoordinate{a}Angst") for a in "XYZ"], axis=1)
    elif all(_star.has(block, f"rlnCoordinate{a}") for a in "XYZ"):
        if g.pixel_size_a is None or g.volume_shape is None:
            raise FileFormatError(
                f"{where}: _rlnCoordinateX/Y/Z (pixels) need rlnTomoTiltSeriesPixelSize and "
                "rlnTomoSizeX/Y/Z in tomograms.star"
            )
        px = np.stack([col(f"rlnCoordinate{a}") for a in "XYZ"], axis=1)
        p = (px - np.array(g.volume_shape) / 2.0) * g.pixel_size_a
    else:
        raise FileFormatError(
            f"{where}: missing particle coordinates (_rlnCenteredCoordinateX/Y/ZAngst or "
            "_rlnCoordinateX/Y/Z)"
        )
    if all(_star.has(block, f"rlnOrigin{a}Angst") for a in "XYZ"):
        origin = np.stack([col(f"rlnOrigin{a}Angst") for a in "XYZ"], axis=1)
        sub = ("rlnTomoSubtomogramRot", "rlnTomoSubtomogramTilt", "rlnTomoSubtomogramPsi")
        if all(_star.has(block, c) for c in sub):
            # RELION particle_set.cpp ParticleSet::getPosition: the origin lives in the
            # pseudo-subtomogram frame: pos -= A_subtomogram · origin
            a = _relion_euler(*(col(c) for c in sub))
            origin = np.einsum("nij,nj->ni", a, origin)
        p = p - origin
    return p


def _relion_euler(
    rot_deg: NDArray[np.float64], tilt_deg: NDArray[np.float64], psi_deg: NDArray[np.float64]
) -> NDArray[np.float64]:
    """RELION ``Euler::anglesToMatrix3`` (src/jaz/math/Euler_angles_relion.h), ``(N, 3, 3)``."""
    p, t, c = np.radians(rot_deg), np.radians(tilt_deg), np.radians(psi_deg)
    sp, cp, st, ct, sc, cc = np.sin(p), np.cos(p), np.sin(t), np.cos(t), np.sin(c), np.cos(c)
    return np.stack(
        [
            np.stack([cc * ct * cp - sc * sp, cc * ct * sp + sc * cp, -cc * st], axis=-1),
            np.stack([-sc * ct * cp - cc * sp, -sc * ct * sp + cc * cp, sc * st], axis=-1),
            np.stack([st * cp, st * sp, ct], axis=-1),
        ],
        axis=-2,
    )


def _particle_blocks(particles: Any) -> tuple[dict[str, Block], str, str]:
    """(blocks, name of the particle block, where) of a path or a dict of blocks."""
    if isinstance(particles, str | os.PathLike):
        blocks = read_star(particles, "particles")
        where = str(particles)
    elif isinstance(particles, Mapping):
        blocks = dict(particles)
        where = "particles"
    else:
        raise InvalidTypeError(
            f"particles: expected a star-file path, a dict of blocks (as starfile.read "
            f"returns) or a DataFrame, got {describe(particles)}"
        )
    names = [k for k, b in blocks.items() if isinstance(b, pd.DataFrame)]
    if not names:
        raise FileFormatError(f"{where}: no particle table (data_particles)")
    name = "particles" if "particles" in names else names[0]
    return blocks, name, where


def _defocus_columns(
    pb: pd.DataFrame, geometries: Mapping[str, TiltGeometry], where: str
) -> tuple[list[NDArray[np.float32]], list[NDArray[np.float32]]]:
    """Per-particle (U, V) defocus arrays (Å, one value per tilt) in row order."""
    if not _star.has(pb, "rlnTomoName"):
        raise FileFormatError(f"{where}: missing column _rlnTomoName")
    if len(pb) == 0:
        raise FileFormatError(f"{where}: the particle table has no rows")
    tomos = np.array(_star.strings(pb, "rlnTomoName", where))
    u_all: list[Any] = [None] * len(pb)
    v_all: list[Any] = [None] * len(pb)
    for tomo in dict.fromkeys(tomos.tolist()):
        if tomo not in geometries:
            raise FileFormatError(
                f"{where}: particles reference tomogram {tomo!r}, not in the tomogram table "
                f"({sorted(geometries)})"
            )
        g = geometries[tomo]
        if not isinstance(g, TiltGeometry):
            raise InvalidTypeError(
                f"geometries[{tomo!r}]: expected a TiltGeometry, got {describe(g)}"
            )
        rows = np.flatnonzero(tomos == tomo)
        p = _particle_positions(pb.iloc[rows], g, f"{where} (tomogram {tomo})")
        comp_u, comp_v = ("u", "v") if g.defocus_u_a is not None else ("mean", "mean")
        du = particle_defocus(g, p, component=comp_u)
        dv = particle_defocus(g, p, component=comp_v)
        for k, ri in enumerate(rows):
            u_all[ri], v_all[ri] = du[k], dv[k]
    return u_all, v_all


def add_particle_defocus(
    particles: Any,
    geometries: Mapping[str, TiltGeometry] | str | os.PathLike[str],
    *,
    project_dir: str | os.PathLike[str] | None = None,
) -> Any:
    """Add per-tilt defocus to a RELION 5 particle table.

    Parameters
    ----------
    particles : path, dict of blocks (as ``starfile.read(..., always_dict=True)`` returns), or
        pandas.DataFrame
        A particle star (``data_particles`` with ``_rlnTomoName`` and
        ``_rlnCenteredCoordinateX/Y/ZAngst`` — or ``_rlnCoordinateX/Y/Z`` in tilt-series
        pixels — minus ``_rlnOriginX/Y/ZAngst`` when present, rotated by the
        ``_rlnTomoSubtomogramRot/Tilt/Psi`` matrix as RELION's ``ParticleSet::getPosition``
        does).
    geometries : mapping name → TiltGeometry, or a tomograms.star path
    project_dir : path, optional
        For resolving paths inside ``tomograms.star``.

    Returns
    -------
    Same kind as ``particles`` (a dict of blocks — DataFrames for loops — for a path; write it
    with ``starfile.write``) with two new columns
    ``_emgeomTiltDefocusU`` and ``_emgeomTiltDefocusV``: per-tilt defoci in Å as bracketed
    lists ``[d1,d2,...]`` in the tilt order of the tilt-series table (RELION's own style for
    per-tilt lists, cf. ``_rlnTomoVisibleFrames``). For a DataFrame the new columns hold
    float32 arrays.
    """
    if isinstance(geometries, str | os.PathLike):
        geometries = read_relion_tomograms(geometries, project_dir=project_dir)
    elif not isinstance(geometries, Mapping):
        raise InvalidTypeError(
            "geometries: expected a mapping tomogram name -> TiltGeometry or a tomograms.star "
            f"path, got {describe(geometries)}"
        )
    if isinstance(particles, pd.DataFrame):
        df = particles.rename(columns=lambda c: str(c).lstrip("_"))
        u_all, v_all = _defocus_columns(df, geometries, "DataFrame")
        out = particles.copy()
        out["emgeomTiltDefocusU"] = u_all
        out["emgeomTiltDefocusV"] = v_all
        return out
    blocks, name, where = _particle_blocks(particles)
    pb = blocks[name]
    u_all, v_all = _defocus_columns(pb, geometries, where)
    out = pb.copy()
    out["emgeomTiltDefocusU"] = ["[" + ",".join(f"{x:.1f}" for x in u) + "]" for u in u_all]
    out["emgeomTiltDefocusV"] = ["[" + ",".join(f"{x:.1f}" for x in v) + "]" for v in v_all]
    blocks[name] = out
    return blocks
