"""Reference (numpy) for ``emgeom_kernels::defocus`` — per-particle, per-tilt defocus.

Written from the formula, independently of the Rust kernel and of ``TiltGeometry``'s helper
methods: the rotation is built as the explicit product ``Rz(ψ)·Ry(θ)·Rx(χ)`` of the design note
(``handedness.md`` §1, §5) and the defocus is ``Δf0_t − h·κ·(R_t p)_z``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["particle_defocus", "project", "rotation"]


def rotation(tilt_deg: float, axis_deg: float, x_tilt_deg: float = 0.0) -> NDArray[np.float64]:
    """``Rz(axis)·Ry(tilt)·Rx(x_tilt)`` (active, column vectors), one 3×3 matrix."""
    t, a, x = np.radians([tilt_deg, axis_deg, x_tilt_deg])
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    ry = np.array([[np.cos(t), 0, np.sin(t)], [0, 1, 0], [-np.sin(t), 0, np.cos(t)]])
    rx = np.array([[1, 0, 0], [0, np.cos(x), -np.sin(x)], [0, np.sin(x), np.cos(x)]])
    return np.asarray(rz @ ry @ rx, dtype=np.float64)


def particle_defocus(
    positions_a: Any,
    tilt_deg: Any,
    axis_deg: Any,
    defocus_a: Any,
    hand: int,
    *,
    x_tilt_deg: Any = 0.0,
    defocus_slope: float = 1.0,
) -> NDArray[np.float64]:
    """``(N, T)`` defocus in Å: ``Δf0_t − hand·defocus_slope·(R_t p)_z`` (float64)."""
    p = np.asarray(positions_a, dtype=np.float64).reshape(-1, 3)
    t, a, x, d = np.broadcast_arrays(
        np.atleast_1d(np.asarray(tilt_deg, dtype=np.float64)),
        np.atleast_1d(np.asarray(axis_deg, dtype=np.float64)),
        np.atleast_1d(np.asarray(x_tilt_deg, dtype=np.float64)),
        np.atleast_1d(np.asarray(defocus_a, dtype=np.float64)),
    )
    out = np.empty((p.shape[0], t.shape[0]))
    for k in range(t.shape[0]):
        rotated = p @ rotation(t[k], a[k], x[k]).T
        out[:, k] = d[k] - hand * defocus_slope * rotated[:, 2]
    return out


def project(
    positions_a: Any,
    tilt_deg: Any,
    axis_deg: Any,
    *,
    x_tilt_deg: Any = 0.0,
    shifts_a: Any = None,
) -> NDArray[np.float64]:
    """``(N, T, 2)`` image positions in Å: ``[R_t p]_xy + s_t``."""
    p = np.asarray(positions_a, dtype=np.float64).reshape(-1, 3)
    t, a, x = np.broadcast_arrays(
        np.atleast_1d(np.asarray(tilt_deg, dtype=np.float64)),
        np.atleast_1d(np.asarray(axis_deg, dtype=np.float64)),
        np.atleast_1d(np.asarray(x_tilt_deg, dtype=np.float64)),
    )
    s = np.zeros((t.shape[0], 2)) if shifts_a is None else np.asarray(shifts_a, dtype=np.float64)
    out = np.empty((p.shape[0], t.shape[0], 2))
    for k in range(t.shape[0]):
        out[:, k, :] = (p @ rotation(t[k], a[k], x[k]).T)[:, :2] + s[k]
    return out
