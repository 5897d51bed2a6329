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

from typing import TYPE_CHECKING, Any

from emgeom.tilt._geometry import (
    CENTRE_CONVENTIONS,
    TiltGeometry,
    angles_from_matrices,
    particle_defocus,
    project,
    rotation_matrices,
    voxels_to_centered_a,
)

if TYPE_CHECKING:  # the readers/writers import this package; load them lazily at run time
    from emgeom.io.aretomo import read_aretomo
    from emgeom.io.imod import read_imod
    from emgeom.io.relion_tomo import (
        add_particle_defocus,
        read_relion,
        read_relion_tomograms,
        to_relion,
    )
    from emgeom.io.warp_xml import read_warp, to_warp

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
    "read_relion_tomograms",
    "read_warp",
    "rotation_matrices",
    "to_relion",
    "to_warp",
    "voxels_to_centered_a",
]


_LAZY = {
    "read_relion": "relion_tomo",
    "read_relion_tomograms": "relion_tomo",
    "to_relion": "relion_tomo",
    "add_particle_defocus": "relion_tomo",
    "read_warp": "warp_xml",
    "to_warp": "warp_xml",
    "read_imod": "imod",
    "read_aretomo": "aretomo",
}


def __getattr__(name: str) -> Any:
    # readers/writers live in emgeom.io (unit conversions happen only there)
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"emgeom.io.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'emgeom.tilt' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
