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
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from emgeom._validate import describe
from emgeom.errors import (
    FileFormatError,
    InvalidTypeError,
)
from emgeom.io import star as _star
from emgeom.io._frames import is_frame
from emgeom.io._relion_read import read_relion, read_relion_tomograms, resolve_relion_path
from emgeom.io._relion_write import to_relion
from emgeom.io.star import Block, read_star
from emgeom.model.geometry import (
    TiltGeometry,
    particle_defocus,
)
from emgeom.model.rotation import matrices_from_relion

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "add_particle_defocus",
    "read_relion",
    "read_relion_tomograms",
    "resolve_relion_path",
    "to_relion",
]


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
            a = matrices_from_relion(*(col(c) for c in sub))
            origin = np.einsum("nij,nj->ni", a, origin)
        p = p - origin
    return p


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
    names = [k for k, b in blocks.items() if is_frame(b)]
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
    if is_frame(particles):
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
