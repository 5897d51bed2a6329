"""Tilt-series geometry in one canonical model; bulk per-particle, per-tilt defocus.

Canonical model (see :mod:`emgeom.model.geometry` and ``docs/conventions.md``): tomogram frame
right-handed, Å, origin at the tomogram centre (voxel ``N/2``); per tilt
``R_t = Rz(ψ)·Ry(θ)·Rx(χ)`` with θ in the IMOD/AreTomo/RELION sign and ψ the tilt axis CCW from
+Y in the raw image; depth ``z' = (row 3 of R_t)·p``; defocus ``Δf = Δf0_t − h·κ·z'`` (Å,
underfocus positive); ``h = +1`` is the IMOD convention = RELION ``rlnTomoHand −1``.

Readers (each states the hand it infers and why in ``geometry.notes``):
:func:`read_relion`, :func:`read_warp`, :func:`read_imod`, :func:`read_aretomo`;
writers :func:`to_relion`, :func:`to_warp`; particle tables: :func:`add_particle_defocus`.
"""

from __future__ import annotations

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
from emgeom.model.centres import CENTRE_CONVENTIONS, voxels_to_centered_a
from emgeom.model.geometry import (
    TiltGeometry,
    angles_from_matrices,
    particle_defocus,
    project,
    rotation_matrices,
)
from emgeom.model.hand_samples import HandSamples, predicted_slopes
from emgeom.model.rotation import matrices_from_relion, relion_from_matrices
from emgeom.tilt._audit import AuditReport, AuditSource, PairAudit, audit, load_source
from emgeom.tilt._audit_dataset import DatasetAudit, audit_dataset
from emgeom.tilt._hand import check_hand
from emgeom.tilt._hand_decide import HandCheck
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
