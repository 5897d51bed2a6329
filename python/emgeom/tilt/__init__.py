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
    from emgeom.io.relion_subtilt import SubtiltTable, read_subtilt_star
    from emgeom.io.relion_tomo import (
        add_particle_defocus,
        read_relion,
        read_relion_tomograms,
        to_relion,
    )
    from emgeom.io.warp_movies import samples_from_warp_movies
    from emgeom.io.warp_xml import read_warp, to_warp
    from emgeom.tilt._audit import AuditReport, AuditSource, PairAudit, audit, load_source
    from emgeom.tilt._audit_dataset import DatasetAudit, audit_dataset
    from emgeom.tilt._hand import HandCheck, HandSamples, check_hand, predicted_slopes
    from emgeom.tilt._reconstruction import Reconstruction
    from emgeom.tilt._remap import (
        RemapResult,
        orientations_from_voxels,
        orientations_to_voxels,
        pair_tilts,
        particles_to_voxels,
        remap,
        voxels_to_particles,
    )
    from emgeom.tilt._rotation import matrices_from_relion, relion_from_matrices

__all__ = [
    "CENTRE_CONVENTIONS",
    "AuditReport",
    "AuditSource",
    "DatasetAudit",
    "HandCheck",
    "HandSamples",
    "PairAudit",
    "Reconstruction",
    "RemapResult",
    "SubtiltTable",
    "TiltGeometry",
    "add_particle_defocus",
    "angles_from_matrices",
    "audit",
    "audit_dataset",
    "check_hand",
    "load_source",
    "matrices_from_relion",
    "orientations_from_voxels",
    "orientations_to_voxels",
    "pair_tilts",
    "particle_defocus",
    "particles_to_voxels",
    "predicted_slopes",
    "project",
    "read_aretomo",
    "read_imod",
    "read_relion",
    "read_relion_tomograms",
    "read_subtilt_star",
    "read_warp",
    "relion_from_matrices",
    "remap",
    "rotation_matrices",
    "samples_from_warp_movies",
    "to_relion",
    "to_warp",
    "voxels_to_centered_a",
    "voxels_to_particles",
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
    "SubtiltTable": "relion_subtilt",
    "read_subtilt_star": "relion_subtilt",
    "samples_from_warp_movies": "warp_movies",
}
# handedness checks and cross-program audits (issue 5) live next to the model
_LAZY_TILT = {
    **dict.fromkeys(
        (
            "HandCheck",
            "HandSamples",
            "check_hand",
            "predicted_slopes",
        ),
        "_hand",
    ),
    **dict.fromkeys(
        (
            "AuditReport",
            "AuditSource",
            "PairAudit",
            "audit",
            "load_source",
        ),
        "_audit",
    ),
    **dict.fromkeys(("DatasetAudit", "audit_dataset"), "_audit_dataset"),
    # reconstructions of one tilt series and particle remapping (issue 15)
    "Reconstruction": "_reconstruction",
    "RemapResult": "_remap",
    "remap": "_remap",
    "pair_tilts": "_remap",
    "particles_to_voxels": "_remap",
    "voxels_to_particles": "_remap",
    "orientations_to_voxels": "_remap",
    "orientations_from_voxels": "_remap",
    "matrices_from_relion": "_rotation",
    "relion_from_matrices": "_rotation",
}


def __getattr__(name: str) -> Any:
    # readers/writers live in emgeom.io (unit conversions happen only there)
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"emgeom.io.{_LAZY[name]}"), name)
    if name in _LAZY_TILT:
        import importlib

        return getattr(importlib.import_module(f"emgeom.tilt.{_LAZY_TILT[name]}"), name)
    raise AttributeError(f"module 'emgeom.tilt' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
