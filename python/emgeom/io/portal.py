"""CZ cryoET Data Portal: ``alignment_metadata.json``, tomogram metadata, NDJSON annotations.

Sources (chanzuckerberg/cryoet-data-portal-backend, MIT): ingestion
``ingestion_tools/scripts/common/alignment_converter.py`` writes
``per_section_alignment_parameters`` from cryoet-alignment's ``Alignment.from_imod`` /
``from_aretomo3``; its tests (``ingestion_tools/scripts/tests/s3_import/test_alignments.py``)
fix the meaning: ``in_plane_rotation`` = the AreTomo ``ROT`` rotation ``[[cos, −sin],
[sin, cos]]`` (= transpose of IMOD's ``.xf`` 2×2), ``(x_offset, y_offset)`` = AreTomo
``TX/TY`` in unbinned tilt-series pixels (``−transpose(xf)·(dx, dy)`` for IMOD),
``tilt_angle`` = ``TILT``, ``volume_x_rotation`` = IMOD ``.xtilt``. Canonical:
``θ = tilt_angle``, ``ψ = atan2(m10, m00)``, ``s = (x_offset, y_offset)·pixel``,
``χ = volume_x_rotation``. Real files deviate (``in_plane_rotation`` flat, ``tilt_angle``
null: the 30001 migration fixture); both are handled or refused with a message.

Annotations (``point`` / ``orientedPoint``, one JSON object per line): ``location`` in voxels
of the annotated tomogram (``x, y, z``), ``xyz_rotation_matrix`` the particle → tomogram
rotation (:mod:`emgeom.model.rotation`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from emgeom._validate import as_vectors, real_array
from emgeom.errors import FileFormatError, InvalidValueError
from emgeom.io.atomic import atomic_output
from emgeom.io.text import (
    from_file,
    parse_float,
    parse_int,
    parse_json,
    parse_matrix,
    read_json,
    read_text,
    record_float,
)
from emgeom.model.geometry import TiltGeometry
from emgeom.model.rotation import as_rotation_matrices

__all__ = [
    "PortalTomogram",
    "read_portal_alignment",
    "read_portal_annotations",
    "read_portal_tomograms",
    "write_portal_annotations",
]


def _alignment_block(doc: Any, where: str) -> Mapping[str, Any]:
    """The ``alignment_metadata.json`` dict, directly or inside a run record."""
    if isinstance(doc, Mapping) and "per_section_alignment_parameters" in doc:
        return doc
    if isinstance(doc, Mapping) and isinstance(doc.get("alignment"), Mapping):
        inner = doc["alignment"]
        meta = inner.get("metadata", inner)
        if isinstance(meta, Mapping) and "per_section_alignment_parameters" in meta:
            return meta
    raise FileFormatError(f"{where}: no per_section_alignment_parameters (not a portal alignment)")


def read_portal_alignment(
    path: str | os.PathLike[str],
    *,
    pixel_size_a: float | None = None,
    tilt_deg: Sequence[float] | None = None,
) -> tuple[TiltGeometry, dict[str, Any]]:
    """Read a portal ``alignment_metadata.json`` (or a run record holding one).

    Parameters
    ----------
    path : path
    pixel_size_a : float, optional
        Tilt-series pixel size (Å); default the record's ``pixel_spacing`` when present.
    tilt_deg : sequence of float, optional
        Tilt angles when the file's ``tilt_angle`` is null (the 30001 migration fixture).

    Returns
    -------
    (TiltGeometry, dict)
        The canonical geometry (hand ``h = −1``, AreTomo3's, unless the file says otherwise;
        defocus zeros) and the volume facts: ``volume_dimension_a`` (Å, x, y, z),
        ``volume_offset``, ``tilt_offset``, ``x_rotation_offset``,
        ``affine_transformation_matrix``, ``format``, ``image_shape`` (``(ny, nx)`` when the
        record has the tilt-series ``size``), ``z_index``.

    Raises
    ------
    FileFormatError
        A non-identity ``affine_transformation_matrix``, a non-zero ``volume_offset``,
        ``tilt_offset`` or ``x_rotation_offset`` (their effect on coordinates is not specified
        by the portal; they are refused rather than guessed).
    """
    p, doc = read_json(path, "path", what="portal alignment JSON")
    meta = _alignment_block(doc, str(p))
    rows = meta["per_section_alignment_parameters"]
    if not isinstance(rows, list) or not rows:
        raise FileFormatError(f"{p}: per_section_alignment_parameters is empty")
    if not all(isinstance(r, Mapping) for r in rows):
        raise FileFormatError(f"{p}: per_section_alignment_parameters: not all records")
    z_index = [parse_int(r.get("z_index", i), "z_index", p) for i, r in enumerate(rows)]
    rows = [rows[i] for i in np.argsort(z_index, kind="stable")]
    n = len(rows)
    rot = np.stack(
        [parse_matrix(r.get("in_plane_rotation"), (2, 2), "in_plane_rotation", p) for r in rows]
    )
    det = np.linalg.det(rot)
    if np.any(np.abs(det - 1) > 0.05):
        raise FileFormatError(
            f"{p}: in_plane_rotation is not a rotation (det {det.min():.3f}..{det.max():.3f})"
        )
    axis = np.degrees(np.arctan2(rot[:, 1, 0], rot[:, 0, 0]))
    tilts = [r.get("tilt_angle") for r in rows]
    if any(t is None for t in tilts):
        if tilt_deg is None:
            raise FileFormatError(f"{p}: tilt_angle is null; pass tilt_deg= (e.g. from the .tlt)")
        tilt = real_array(tilt_deg, "tilt_deg")
        if tilt.shape != (n,):
            raise InvalidValueError(f"tilt_deg: expected {n} angles, got shape {tilt.shape}")
    else:
        tilt = np.array([record_float(r, "tilt_angle", p) for r in rows])
    xrot = np.array([record_float(r, "volume_x_rotation", p) for r in rows])
    off = np.array([[record_float(r, "x_offset", p), record_float(r, "y_offset", p)] for r in rows])
    px = pixel_size_a
    if px is None and isinstance(doc, Mapping) and doc.get("pixel_spacing") is not None:
        px = parse_float(doc["pixel_spacing"], "pixel_spacing", p, positive=True)
    if px is None and np.any(off != 0):
        raise InvalidValueError("pixel_size_a: needed to convert the portal x/y_offset (pixels)")
    facts = _volume_facts(meta, doc, z_index, p)
    with from_file(p):
        g = _portal_geometry(tilt, axis, xrot, off, px, p)
    return g, facts


def _portal_geometry(
    tilt: NDArray[np.float64],
    axis: NDArray[np.float64],
    xrot: NDArray[np.float64],
    off: NDArray[np.float64],
    px: float | None,
    p: Path,
) -> TiltGeometry:
    n = tilt.size
    return TiltGeometry(
        tilt,
        axis,
        np.zeros(n),
        x_tilt_deg=xrot,
        shifts_a=off * (px or 0.0),
        hand=-1,
        pixel_size_a=px,
        source=f"portal:{p}",
        notes=[
            "portal alignment: theta = tilt_angle, psi = atan2(m10, m00) of in_plane_rotation, "
            "s = (x_offset, y_offset) * pixel (AreTomo TX/TY), chi = volume_x_rotation",
            "hand: h = -1 assumed (AreTomo3 convention); the portal does not record it",
            "defocus: not in the alignment (zeros)",
        ],
    )


def _volume_facts(meta: Mapping[str, Any], doc: Any, z_index: list[int], p: Path) -> dict[str, Any]:
    """The volume facts of a portal alignment; undefined offsets and affines are refused."""
    raw_affine = meta.get("affine_transformation_matrix")
    affine = (
        np.eye(4)
        if raw_affine is None
        else parse_matrix(raw_affine, (4, 4), "affine_transformation_matrix", p)
    )
    vol_off = meta.get("volume_offset") or {}
    if not isinstance(vol_off, Mapping):
        raise FileFormatError(f"{p}: volume_offset = {vol_off!r} is not an x/y/z record")
    facts: dict[str, Any] = {
        "format": meta.get("format"),
        "volume_dimension_a": meta.get("volume_dimension"),
        "volume_offset": vol_off,
        "tilt_offset": record_float(meta, "tilt_offset", p),
        "x_rotation_offset": record_float(meta, "x_rotation_offset", p),
        "affine_transformation_matrix": affine.tolist(),
        "z_index": sorted(z_index),
        "image_shape": None,
    }
    size = doc.get("size") if isinstance(doc, Mapping) else None
    if isinstance(size, list) and len(size) >= 2:
        facts["image_shape"] = (
            parse_int(size[1], "size[1]", p, low=1),
            parse_int(size[0], "size[0]", p, low=1),
        )
    if not np.allclose(affine, np.eye(4)):
        raise FileFormatError(
            f"{p}: affine_transformation_matrix is not the identity ({affine.tolist()}); its "
            "effect on coordinates is not defined by the portal: refused"
        )
    if any(record_float(vol_off, k, p) != 0 for k in "xyz"):
        raise FileFormatError(f"{p}: non-zero volume_offset {vol_off}: refused (not specified)")
    if facts["tilt_offset"] != 0 or facts["x_rotation_offset"] != 0:
        raise FileFormatError(
            f"{p}: non-zero tilt_offset/x_rotation_offset ({facts['tilt_offset']}, "
            f"{facts['x_rotation_offset']}): refused (not specified)"
        )
    return facts


class PortalTomogram:
    """One portal tomogram record: ``id``, ``voxel_spacing_a`` (rounded, as published),
    ``volume_shape`` (x, y, z), ``software``, ``processing``.
    """

    __slots__ = ("id", "processing", "software", "volume_shape", "voxel_spacing_a")

    def __init__(
        self,
        id: int,
        voxel_spacing_a: float,
        volume_shape: tuple[int, int, int],
        software: str = "",
        processing: str = "",
    ) -> None:
        self.id = int(id)
        self.voxel_spacing_a = float(voxel_spacing_a)
        self.volume_shape = volume_shape
        self.software = software
        self.processing = processing

    def implied_voxel_size_a(self, pixel_size_a: float, image_nx: int) -> float:
        """``pixel × n_ts / N_tomo`` along x: the voxel size the tomogram really has."""
        return float(pixel_size_a) * int(image_nx) / self.volume_shape[0]

    def __repr__(self) -> str:
        return (
            f"PortalTomogram(id={self.id}, voxel_spacing_a={self.voxel_spacing_a}, "
            f"volume_shape={self.volume_shape}, software={self.software!r})"
        )


def read_portal_tomograms(path: str | os.PathLike[str]) -> list[PortalTomogram]:
    """Tomogram records of a portal run record (``tomograms``: ``id``, ``voxel_spacing``,
    ``size``) or of a single tomogram metadata JSON (``voxel_spacing``, ``size`` /
    ``scale0_dimensions``).
    """
    p, doc = read_json(path, "path", what="portal tomogram JSON")
    recs = doc.get("tomograms") if isinstance(doc, Mapping) else None
    if recs is None:
        recs = [doc]
    if not isinstance(recs, list):
        raise FileFormatError(f"{p}: tomograms is not a list of records")
    out = []
    for r in recs:
        if not isinstance(r, Mapping):
            continue
        size = r.get("size") or r.get("scale0_dimensions")
        if isinstance(size, Mapping):
            size = [size.get("width"), size.get("height"), size.get("depth")]
        if not size or "voxel_spacing" not in r:
            continue
        if not isinstance(size, list) or len(size) != 3:
            raise FileFormatError(f"{p}: tomogram size {size!r} is not 3 integers")
        shape = (
            parse_int(size[0], "size x", p, low=1),
            parse_int(size[1], "size y", p, low=1),
            parse_int(size[2], "size z", p, low=1),
        )
        out.append(
            PortalTomogram(
                parse_int(r.get("id", -1), "id", p),
                parse_float(r["voxel_spacing"], "voxel_spacing", p, positive=True),
                shape,
                str(r.get("reconstruction_software", "")),
                str(r.get("processing", "")),
            )
        )
    if not out:
        raise FileFormatError(f"{p}: no tomogram records (voxel_spacing + size)")
    return out


def read_portal_annotations(
    path: str | os.PathLike[str],
) -> tuple[NDArray[np.float64], NDArray[np.float64] | None]:
    """Portal NDJSON ``point``/``orientedPoint`` annotations.

    Returns
    -------
    (locations, matrices)
        ``(N, 3)`` voxel coordinates (x, y, z) of the annotated tomogram and ``(N, 3, 3)``
        ``xyz_rotation_matrix`` (particle → tomogram) or None when no line has one.
    """
    p, text = read_text(path, "path", what="portal NDJSON annotation file")
    locs, mats = [], []
    for i, ln in enumerate(text.splitlines(), 1):
        if not ln.strip():
            continue
        where = f"{p}:{i}"
        rec = parse_json(ln, where)
        loc = rec.get("location") if isinstance(rec, Mapping) else None
        if not isinstance(loc, Mapping) or not all(k in loc for k in "xyz"):
            raise FileFormatError(f"{where}: not a portal point (needs location x/y/z)")
        locs.append([record_float(loc, k, where) for k in "xyz"])
        m = rec.get("xyz_rotation_matrix")
        mats.append(None if m is None else parse_matrix(m, (3, 3), "xyz_rotation_matrix", where))
    if not locs:
        raise FileFormatError(f"{p}: no annotations")
    matrices = None
    if any(m is not None for m in mats):
        if any(m is None for m in mats):
            raise FileFormatError(f"{p}: some lines lack xyz_rotation_matrix")
        matrices = np.stack([m for m in mats if m is not None])
    return np.asarray(locs, dtype=np.float64), matrices


def write_portal_annotations(
    path: str | os.PathLike[str],
    locations: Any,
    matrices: Any = None,
    *,
    force: bool = False,
) -> Path:
    """Write portal NDJSON (``point``, or ``orientedPoint`` with matrices), atomically."""
    loc = as_vectors(locations, "locations", 3, max_abs=1e9)
    mats = None if matrices is None else as_rotation_matrices(matrices, "matrices")
    if mats is not None and mats.shape[0] != loc.shape[0]:
        raise InvalidValueError(
            f"matrices: {mats.shape[0]} matrices for {loc.shape[0]} locations (one per point)"
        )
    lines = []
    for i, (x, y, z) in enumerate(loc):
        rec: dict[str, Any] = {
            "type": "point" if mats is None else "orientedPoint",
            "location": {"x": float(x), "y": float(y), "z": float(z)},
        }
        if mats is not None:
            rec["xyz_rotation_matrix"] = mats[i].tolist()
        lines.append(json.dumps(rec))
    with atomic_output(path, force=force) as tmp:
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return Path(path)
