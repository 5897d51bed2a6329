"""Particle orientations: one rotation-matrix convention and each program's Euler angles.

emgeom's orientation matrix ``M`` (shape ``(3, 3)``, or ``(N, 3, 3)``) maps particle
(reference-map) coordinates to tomogram coordinates, ``p_tomo = M·p_ref`` (active rotation of
column vectors, axes ``(x, y, z)`` of the tomogram). It is:

* RELION's ``A = Euler::anglesToMatrix3(rot, tilt, psi)`` (3dem/relion
  ``src/jaz/math/Euler_angles_relion.h``), used un-transposed by
  ``ParticleSet::getMatrix4x4`` (``src/jaz/tomography/particle_set.cpp``: "This maps
  coordinates from particle space to tomogram space"); for RELION 5 tomography the full
  orientation is ``A_subtomogram · A_particle`` (``ParticleSet::getMatrix3x3``), the first from
  ``rlnTomoSubtomogramRot/Tilt/Psi`` and the second from ``rlnAngleRot/Tilt/Psi``;
* Warp's ``Matrix3.Euler(rot, tilt, psi)`` (warpem/warp ``WarpLib/Tools/Matrix3.cs``), the same
  entries (``ParticleMatrix`` in ``TiltSeries.cs``);
* the cryoET Data Portal's ``xyz_rotation_matrix`` of ``orientedPoint`` annotations: the portal
  ingests RELION angles as ``Rotation.from_euler("ZYZ", (rot, tilt, psi)).inv()``
  (chanzuckerberg/cryoet-data-portal-backend ``ingestion_tools/scripts/common/point_converter.py``),
  and scipy's intrinsic ZYZ matrix is ``Aᵀ``, so the stored matrix is ``A``;
* copick's ``transformation_`` rotation block (copick stores the portal matrix).

In active rotations ``A = (Rz(rot)·Ry(tilt)·Rz(psi))ᵀ``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from emgeom._validate import as_vectors, real_array
from emgeom.errors import InvalidValueError, ShapeError

__all__ = [
    "as_rotation_matrices",
    "matrices_from_relion",
    "relion_from_matrices",
]

#: largest accepted deviation of ``MᵀM`` from the identity (float32 storage is ~1e-7)
ORTHO_TOL = 1e-4


def matrices_from_relion(rot_deg: Any, tilt_deg: Any, psi_deg: Any) -> NDArray[np.float64]:
    """RELION/Warp ZYZ Euler angles (degrees) → orientation matrices ``(N, 3, 3)``.

    ``M = Euler::anglesToMatrix3(rot, tilt, psi)`` (RELION ``Euler_angles_relion.h``), the
    particle → tomogram map (module docstring).
    """
    rot, tilt, psi = np.broadcast_arrays(
        np.atleast_1d(np.asarray(rot_deg, dtype=np.float64)),
        np.atleast_1d(np.asarray(tilt_deg, dtype=np.float64)),
        np.atleast_1d(np.asarray(psi_deg, dtype=np.float64)),
    )
    if rot.ndim != 1:
        raise ShapeError(f"rot_deg: expected a scalar or a 1-D array, got shape {rot.shape}")
    if not (np.all(np.isfinite(rot)) and np.all(np.isfinite(tilt)) and np.all(np.isfinite(psi))):
        raise InvalidValueError("rot_deg, tilt_deg, psi_deg: all angles must be finite")
    p, t, c = np.radians(rot), np.radians(tilt), np.radians(psi)
    sp, cp, st, ct, sc, cc = np.sin(p), np.cos(p), np.sin(t), np.cos(t), np.sin(c), np.cos(c)
    m = np.empty((rot.size, 3, 3))
    m[:, 0, 0] = cc * ct * cp - sc * sp
    m[:, 0, 1] = cc * ct * sp + sc * cp
    m[:, 0, 2] = -cc * st
    m[:, 1, 0] = -sc * ct * cp - cc * sp
    m[:, 1, 1] = -sc * ct * sp + cc * cp
    m[:, 1, 2] = sc * st
    m[:, 2, 0] = st * cp
    m[:, 2, 1] = st * sp
    m[:, 2, 2] = ct
    return m


def relion_from_matrices(matrices: Any) -> NDArray[np.float64]:
    """Orientation matrices ``(N, 3, 3)`` → RELION/Warp ``(rot, tilt, psi)`` degrees, ``(N, 3)``.

    Inverse of :func:`matrices_from_relion` with ``tilt ∈ [0, 180]``; at ``tilt = 0`` or
    ``180`` (gimbal lock) ``rot = 0`` and ``psi`` carries the whole in-plane angle, as RELION's
    ``Euler_matrix2angles`` does.
    """
    m = as_rotation_matrices(matrices, "matrices")
    tilt = np.degrees(np.arccos(np.clip(m[:, 2, 2], -1.0, 1.0)))
    st = np.hypot(m[:, 2, 0], m[:, 2, 1])
    rot = np.degrees(np.arctan2(m[:, 2, 1], m[:, 2, 0]))
    psi = np.degrees(np.arctan2(m[:, 1, 2], -m[:, 0, 2]))
    lock = st < 1e-9
    if np.any(lock):
        up = lock & (m[:, 2, 2] > 0)  # tilt 0: M = Rz-like in-plane rotation by rot + psi
        down = lock & (m[:, 2, 2] <= 0)
        rot[lock] = 0.0
        psi[up] = np.degrees(np.arctan2(m[up, 0, 1], m[up, 0, 0]))
        psi[down] = np.degrees(np.arctan2(m[down, 0, 1], -m[down, 0, 0]))
    return np.stack([rot, tilt, psi], axis=1)


def as_rotation_matrices(value: Any, name: str = "matrices") -> NDArray[np.float64]:
    """Validate ``(N, 3, 3)`` (or one ``(3, 3)``) proper rotation matrices, float64."""
    arr = real_array(value, name)
    if arr.ndim == 2 and arr.shape == (3, 3):
        arr = arr[None]
    if arr.ndim != 3 or arr.shape[1:] != (3, 3):
        raise ShapeError(f"{name}: expected shape (N, 3, 3), got shape {arr.shape}")
    arr = np.ascontiguousarray(as_vectors(arr.reshape(-1, 9), name, 9).reshape(-1, 3, 3))
    if arr.shape[0]:
        # MᵀM − I and det M from the nine entries (batched 3×3 matmul is 20× slower)
        a, b, c, d, e, f, g, h, i = (np.ascontiguousarray(v) for v in arr.reshape(-1, 9).T)
        err = max(
            float(np.abs(a * a + d * d + g * g - 1).max()),
            float(np.abs(b * b + e * e + h * h - 1).max()),
            float(np.abs(c * c + f * f + i * i - 1).max()),
            float(np.abs(a * b + d * e + g * h).max()),
            float(np.abs(a * c + d * f + g * i).max()),
            float(np.abs(b * c + e * f + h * i).max()),
        )
        det = a * (e * i - f * h) - b * (d * i - f * g) + c * (d * h - e * g)
        if err > ORTHO_TOL or np.any(det < 0):
            raise InvalidValueError(
                f"{name}: expected proper rotation matrices (MᵀM = I within {ORTHO_TOL:g}, "
                f"det +1), got MᵀM error {err:.3g}, det {det.min():.4f}..{det.max():.4f}"
            )
    return arr
