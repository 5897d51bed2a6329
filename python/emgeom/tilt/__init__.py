"""Tilt-series geometry in one canonical model; bulk per-particle, per-tilt defocus.

Canonical model (see :mod:`emgeom.tilt._geometry` and ``docs/conventions.md``): tomogram frame
right-handed, Å, origin at the tomogram centre (voxel ``N/2``); per tilt
``R_t = Rz(ψ)·Ry(θ)·Rx(χ)`` with θ in the IMOD/AreTomo/RELION sign and ψ the tilt axis CCW from
+Y in the raw image; depth ``z' = (row 3 of R_t)·p``; defocus ``Δf = Δf0_t − h·κ·z'`` (Å,
underfocus positive); ``h = +1`` is the IMOD convention = RELION ``rlnTomoHand −1``.

Readers (each states the hand it infers and why in ``geometry.notes``):
:func:`read_relion`, :func:`read_warp`, :func:`read_imod`, :func:`read_aretomo`;
writers :func:`to_relion`, :func:`to_warp`; particle tables: :func:`add_particle_defocus`.
"""

from __future__ import annotations

from emgeom.tilt._geometry import (
    CENTRE_CONVENTIONS,
    TiltGeometry,
    angles_from_matrices,
    particle_defocus,
    project,
    rotation_matrices,
    voxels_to_centered_a,
)

__all__ = [
    "CENTRE_CONVENTIONS",
    "TiltGeometry",
    "add_particle_defocus",
    "angles_from_matrices",
    "particle_defocus",
    "project",
    "read_aretomo",
    "read_imod",
    "read_relion",
    "read_warp",
    "rotation_matrices",
    "to_relion",
    "to_warp",
    "voxels_to_centered_a",
]


def __getattr__(name: str) -> object:
    # readers/writers live in emgeom.io (unit conversions only there); imported lazily
    if name in ("read_relion", "to_relion", "add_particle_defocus", "read_relion_tomograms"):
        from emgeom.io import relion_tomo

        return getattr(relion_tomo, name)
    if name in ("read_warp", "to_warp"):
        from emgeom.io import warp_xml

        return getattr(warp_xml, name)
    if name == "read_imod":
        from emgeom.io import imod

        return imod.read_imod
    if name == "read_aretomo":
        from emgeom.io import aretomo

        return aretomo.read_aretomo
    raise AttributeError(f"module 'emgeom.tilt' has no attribute {name!r}")
