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
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from emgeom._validate import as_shape2
from emgeom.errors import (
    EmgeomFileError,
    FileFormatError,
    ImplausibleValueWarning,
    InvalidTypeError,
    InvalidValueError,
    LossyConversionWarning,
)
from emgeom.io._tilt_star import StarBlock, read_star, write_star
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


def _floats(block: StarBlock, label: str, where: str) -> NDArray[np.float64]:
    try:
        vals = block.column(label)
    except KeyError:
        raise FileFormatError(f"{where}: missing column _{label}") from None
    try:
        arr = np.array([float(v) for v in vals])
    except ValueError as exc:
        raise FileFormatError(f"{where}: column _{label} is not numeric ({exc})") from None
    if not np.all(np.isfinite(arr)):
        raise FileFormatError(f"{where}: column _{label} has NaN/inf values")
    return arr


def _vec4(block: StarBlock, label: str, where: str) -> NDArray[np.float64]:
    try:
        vals = block.column(label)
    except KeyError:
        raise FileFormatError(f"{where}: missing column _{label}") from None
    out = []
    for v in vals:
        try:
            parts = [float(x) for x in v.strip("[]").split(",")]
        except ValueError:
            raise FileFormatError(f"{where}: _{label} value {v!r} is not a 4-vector") from None
        if len(parts) != 4:
            raise FileFormatError(f"{where}: _{label} value {v!r} is not a 4-vector")
        out.append(parts)
    return np.array(out)


def _global_records(blocks: Mapping[str, StarBlock], path: Path) -> list[dict[str, str]]:
    g = blocks.get("global")
    if g is None:
        raise FileFormatError(f"{path}: no data_global block (not a RELION tomograms.star)")
    recs = g.records()
    if not recs or "rlnTomoName" not in recs[0]:
        raise FileFormatError(f"{path}: data_global has no _rlnTomoName column")
    return recs


_MRC_MODES = (0, 1, 2, 3, 4, 6, 12, 101)

# RELION names an image file as "[index@]path[:type]" (e.g. "TS_01.st:mrc", "3@stack.mrcs")
_RELION_NAME = re.compile(r"^(?:\d+@)?(?P<path>.+?)(?::[A-Za-z0-9]{1,5})?$")


def _image_shape_from_headers(
    rec: Mapping[str, str],
    tb: StarBlock,
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
        names.append(rec["rlnTomoTiltSeriesName"])
    if tb.has("rlnMicrographName"):
        col = tb.column("rlnMicrographName")
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
    path = Path(tomograms_star)
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
    path = Path(tomograms_star)
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


def _geometry_from_record(
    rec: dict[str, str],
    blocks: Mapping[str, StarBlock],
    path: Path,
    project_dir: str | os.PathLike[str] | None,
    image_shape: tuple[int, int] | None = None,
) -> TiltGeometry:
    name = rec["rlnTomoName"]
    where = f"{path} (tomogram {name})"
    if "rlnTomoHand" not in rec:
        raise FileFormatError(f"{where}: missing column _rlnTomoHand in data_global")
    try:
        relion_hand = float(rec["rlnTomoHand"])
    except ValueError:
        raise FileFormatError(
            f"{where}: _rlnTomoHand {rec['rlnTomoHand']!r} is not a number"
        ) from None
    if relion_hand not in (1.0, -1.0):
        raise FileFormatError(f"{where}: _rlnTomoHand must be +1 or -1, got {relion_hand}")
    slope = float(rec.get("rlnTomoDefocusSlope", "1.0"))
    pixel = (
        float(rec["rlnTomoTiltSeriesPixelSize"]) if "rlnTomoTiltSeriesPixelSize" in rec else None
    )
    shape = None
    if all(k in rec for k in ("rlnTomoSizeX", "rlnTomoSizeY", "rlnTomoSizeZ")):
        shape = tuple(
            round(float(rec[k])) for k in ("rlnTomoSizeX", "rlnTomoSizeY", "rlnTomoSizeZ")
        )
    # per-tilt table: referenced file, or an embedded block named after the tomogram
    if "rlnTomoTiltSeriesStarFile" in rec:
        ts_path = resolve_relion_path(rec["rlnTomoTiltSeriesStarFile"], path, project_dir)
        ts_blocks = read_star(ts_path)
        tb = ts_blocks.get(name) or next((b for b in ts_blocks.values() if b.is_loop), None)
        src = str(ts_path)
    else:
        tb = blocks.get(name)
        src = f"{path} data_{name}"
    if tb is None or not tb.is_loop:
        raise FileFormatError(f"{where}: no per-tilt table found ({src})")
    notes = [
        f"hand: h = -rlnTomoHand = {-int(relion_hand):+d} (RELION tomogram.cpp getCtf adds "
        f"+rlnTomoHand*pixel*slope*dz)"
    ]
    if tb.has("rlnTomoProjX"):
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
                r, trans, rec, tb, path, project_dir, image_shape, shape, pixel, src
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
    else:
        for lab in _GEOM5[1:]:
            if not tb.has(lab):
                raise FileFormatError(
                    f"{src}: missing column _{lab} (and no _rlnTomoProjX/Y/Z/W matrices)"
                )
        tilt, axis = (_floats(tb, lab, src) for lab in _GEOM5[1:])
        # TomogramSet::loadTomogram: a missing _rlnTomoXTilt means 0
        xtilt = _floats(tb, _GEOM5[0], src) if tb.has(_GEOM5[0]) else np.zeros_like(tilt)
        if tb.has("rlnTomoXShiftAngst"):
            shifts = np.stack(
                [_floats(tb, "rlnTomoXShiftAngst", src), _floats(tb, "rlnTomoYShiftAngst", src)],
                axis=1,
            )
        else:
            shifts = np.zeros((len(tilt), 2))
        notes.append("layout: RELION 5 _rlnTomoXTilt/YTilt/ZRot + X/YShiftAngst")
    du = _floats(tb, "rlnDefocusU", src)
    dv = _floats(tb, "rlnDefocusV", src) if tb.has("rlnDefocusV") else du
    ang = _floats(tb, "rlnDefocusAngle", src) if tb.has("rlnDefocusAngle") else np.zeros_like(du)
    tilt_names = None
    for lab in ("rlnMicrographName", "rlnMicrographMovieName"):
        if tb.has(lab):
            tilt_names = tb.column(lab)
            break
    return TiltGeometry(
        tilt,
        axis,
        None,
        x_tilt_deg=xtilt,
        shifts_a=shifts,
        hand=-int(relion_hand),
        defocus_slope=slope,
        defocus_u_a=du,
        defocus_v_a=dv,
        astigmatism_deg=ang,
        volume_shape=shape,
        pixel_size_a=pixel,
        source=f"relion:{src}",
        notes=notes,
        names=tilt_names,
    )


def _relion4_shifts(
    r: NDArray[np.float64],
    trans: NDArray[np.float64],
    rec: Mapping[str, str],
    tb: StarBlock,
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
        raise InvalidTypeError(f"geometry: expected a TiltGeometry, got {type(geometry).__name__}")
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
    nx, ny, nz = geometry.volume_shape
    glob = StarBlock(
        name="global",
        columns=[
            "rlnTomoName",
            "rlnVoltage",
            "rlnSphericalAberration",
            "rlnAmplitudeContrast",
            "rlnTomoHand",
            "rlnTomoDefocusSlope",
            "rlnTomoTiltSeriesPixelSize",
            "rlnTomoSizeX",
            "rlnTomoSizeY",
            "rlnTomoSizeZ",
        ],
        rows=[
            [
                tomo_name,
                _g(voltage_kv),
                _g(cs_mm),
                _g(amplitude_contrast),
                f"{float(geometry.relion_hand):.1f}",
                _g(geometry.defocus_slope),
                repr(float(geometry.pixel_size_a)),  # exact: RELION-4 translations are in px
                str(nx),
                str(ny),
                str(nz),
            ]
        ],
    )
    du = geometry.defocus_u_a if geometry.defocus_u_a is not None else geometry.defocus_a
    dv = geometry.defocus_v_a if geometry.defocus_v_a is not None else geometry.defocus_a
    ang = (
        geometry.astigmatism_deg
        if geometry.astigmatism_deg is not None
        else np.zeros(geometry.n_tilts)
    )
    if layout == "relion5":
        cols = [
            "rlnTomoXTilt",
            "rlnTomoYTilt",
            "rlnTomoZRot",
            "rlnTomoXShiftAngst",
            "rlnTomoYShiftAngst",
        ]
        geo_rows = [
            [_g(x), _g(t), _g(a), _g(s[0]), _g(s[1])]
            for x, t, a, s in zip(
                geometry.x_tilt_deg,
                geometry.tilt_deg,
                geometry.axis_deg,
                geometry.shifts_a,
                strict=True,
            )
        ]
    else:
        cols = list(_PROJ)
        r = rotation_matrices(geometry.tilt_deg, geometry.axis_deg, geometry.x_tilt_deg)
        t = np.zeros((geometry.n_tilts, 3))
        if image_shape is not None:
            c_vol, c_img = _relion4_centres((nx, ny, nz), image_shape)
            rc = r @ c_vol
            t[:, :2] = np.asarray(geometry.shifts_a) / geometry.pixel_size_a + c_img - rc[:, :2]
            t[:, 2] = -rc[:, 2]  # z' = 0 at the volume centre (RELION only uses differences)
        elif np.any(np.asarray(geometry.shifts_a) != 0):
            warnings.warn(
                "to_relion(layout='relion4') without image_shape writes rotation-only matrices: "
                f"the image shifts (up to {np.abs(geometry.shifts_a).max():.1f} Å) are dropped "
                "(defocus is unaffected); pass image_shape=(ny, nx) to keep them",
                LossyConversionWarning,
                stacklevel=2,
            )
        geo_rows = [
            ["[" + ",".join(f"{v:.17g}" for v in (*m[i], ti[i])) + "]" for i in range(3)]
            + ["[0,0,0,1]"]
            for m, ti in zip(r, t, strict=True)
        ]
    cols += ["rlnDefocusU", "rlnDefocusV", "rlnDefocusAngle"]
    rows = [[*gr, _g(u), _g(v), _g(a)] for gr, u, v, a in zip(geo_rows, du, dv, ang, strict=True)]
    if geometry.names is not None:
        cols = ["rlnMicrographName", *cols]
        rows = [[n, *r_] for n, r_ in zip(geometry.names, rows, strict=True)]
    per_tilt = StarBlock(name=tomo_name, columns=cols, rows=rows)
    return write_star(
        path,
        [glob, per_tilt],
        force=force,
        header=f"written by emgeom (canonical hand h = {geometry.hand:+d} -> rlnTomoHand "
        f"{geometry.relion_hand:+d})",
    )


# ---------------------------------------------------------------------------- particles
def _particle_positions(
    block: StarBlock, rows: Sequence[int], g: TiltGeometry, where: str
) -> NDArray[np.float64]:
    cols = block.columns
    idx = {c: i for i, c in enumerate(cols)}

    def col(lab: str) -> NDArray[np.float64]:
        try:
            return np.array([float(block.rows[r][idx[lab]]) for r in rows])
        except ValueError:
            raise FileFormatError(f"{where}: column _{lab} is not numeric") from None

    if all(f"rlnCenteredCoordinate{a}Angst" in idx for a in "XYZ"):
        p = np.stack([col(f"rlnCenteredCoordinate{a}Angst") for a in "XYZ"], axis=1)
    elif all(f"rlnCoordinate{a}" in idx for a in "XYZ"):
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
    if all(f"rlnOrigin{a}Angst" in idx for a in "XYZ"):
        origin = np.stack([col(f"rlnOrigin{a}Angst") for a in "XYZ"], axis=1)
        sub = ("rlnTomoSubtomogramRot", "rlnTomoSubtomogramTilt", "rlnTomoSubtomogramPsi")
        if all(c in idx for c in sub):
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


def add_particle_defocus(
    particles: Any,
    geometries: Mapping[str, TiltGeometry] | str | os.PathLike[str],
    *,
    project_dir: str | os.PathLike[str] | None = None,
) -> Any:
    """Add per-tilt defocus to a RELION 5 particle table.

    Parameters
    ----------
    particles : path, dict of StarBlock, or pandas.DataFrame
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
    Same kind as ``particles`` (blocks dict for a path) with two new columns
    ``_emgeomTiltDefocusU`` and ``_emgeomTiltDefocusV``: per-tilt defoci in Å as bracketed
    lists ``[d1,d2,...]`` in the tilt order of the tilt-series table (RELION's own style for
    per-tilt lists, cf. ``_rlnTomoVisibleFrames``). For a DataFrame the new columns hold
    float32 arrays.
    """
    if isinstance(geometries, str | os.PathLike):
        geometries = read_relion_tomograms(geometries, project_dir=project_dir)
    df_mode = False
    if isinstance(particles, str | os.PathLike):
        blocks = read_star(particles)
        where = str(particles)
    elif isinstance(particles, Mapping):
        blocks = dict(particles)
        where = "particles"
    elif hasattr(particles, "columns") and hasattr(particles, "to_dict"):
        df_mode = True
        df = particles
        cols = [str(c).lstrip("_") for c in df.columns]
        blocks = {
            "particles": StarBlock(
                name="particles",
                columns=cols,
                rows=[[str(v) for v in row] for row in df.itertuples(index=False, name=None)],
            )
        }
        where = "DataFrame"
    else:
        raise InvalidTypeError(
            f"particles: expected a star-file path, a dict of blocks or a DataFrame, "
            f"got {type(particles).__name__}"
        )
    pb = blocks.get("particles") or next((b for b in blocks.values() if b.is_loop), None)
    if pb is None:
        raise FileFormatError(f"{where}: no particle table (data_particles)")
    if "rlnTomoName" not in pb.columns:
        raise FileFormatError(f"{where}: missing column _rlnTomoName")
    it = pb.columns.index("rlnTomoName")
    by_tomo: dict[str, list[int]] = {}
    for i, r in enumerate(pb.rows):
        by_tomo.setdefault(r[it], []).append(i)
    u_all: list[NDArray[np.float32] | None] = [None] * len(pb.rows)
    v_all: list[NDArray[np.float32] | None] = [None] * len(pb.rows)
    for tomo, rows in by_tomo.items():
        if tomo not in geometries:
            raise FileFormatError(
                f"{where}: particles reference tomogram {tomo!r}, not in the tomogram table "
                f"({sorted(geometries)})"
            )
        g = geometries[tomo]
        p = _particle_positions(pb, rows, g, where)
        comp_u, comp_v = ("u", "v") if g.defocus_u_a is not None else ("mean", "mean")
        du = particle_defocus(g, p, component=comp_u)
        dv = particle_defocus(g, p, component=comp_v)
        for k, ri in enumerate(rows):
            u_all[ri], v_all[ri] = du[k], dv[k]
    if df_mode:
        out = df.copy()
        out["emgeomTiltDefocusU"] = u_all
        out["emgeomTiltDefocusV"] = v_all
        return out
    fmt = "[" + "{}" + "]"
    new_cols = [*pb.columns, "emgeomTiltDefocusU", "emgeomTiltDefocusV"]
    new_rows = [
        [
            *r,
            fmt.format(",".join(f"{x:.1f}" for x in u)),
            fmt.format(",".join(f"{x:.1f}" for x in v)),
        ]
        for r, u, v in zip(pb.rows, u_all, v_all, strict=True)
        if u is not None and v is not None
    ]
    blocks[pb.name] = StarBlock(name=pb.name, columns=new_cols, rows=new_rows)
    return blocks
