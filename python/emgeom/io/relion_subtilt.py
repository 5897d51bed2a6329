"""Warp/RELION sub-tilt particle tables → tilt geometry and defocus samples (hand check).

Warp's RELION export of sub-tilt particles (one row per particle per tilt image) stores no tilt
angles; :func:`read_subtilt_star` derives them from the particles' per-tilt orientations (see
its docstring) and returns defocus samples at known image positions (pixels × pixel size → Å).
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from emgeom._validate import as_float
from emgeom.errors import FileFormatError, InvalidValueError, LossyConversionWarning
from emgeom.io._frames import is_frame
from emgeom.io.star import floats, has, read_star, strings
from emgeom.io.text import from_file
from emgeom.model.geometry import TiltGeometry
from emgeom.model.hand_samples import HandSamples
from emgeom.model.rotation import matrices_from_relion

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["SubtiltTable", "read_subtilt_star"]

_NEED = (
    "rlnDefocusU",
    "rlnCoordinateX",
    "rlnCoordinateY",
    "rlnAngleRot",
    "rlnAngleTilt",
    "rlnAnglePsi",
)


@dataclass(frozen=True)
class SubtiltTable:
    """What :func:`read_subtilt_star` derives from a Warp/RELION sub-tilt particle table."""

    geometry: TiltGeometry
    samples: HandSamples
    micrographs: tuple[str, ...]
    axis_spread_deg: float
    notes: tuple[str, ...]


def _particle_table(path: object) -> tuple[str, pd.DataFrame]:
    blocks = read_star(path, "path")
    p = str(path)
    tb = next(
        (b for b in blocks.values() if is_frame(b) and has(b, "rlnMicrographName")),
        None,
    )
    if tb is None:
        raise FileFormatError(f"{p}: no particle table with _rlnMicrographName")
    miss = [c for c in _NEED if not has(tb, c)]
    if miss:
        raise FileFormatError(f"{p}: missing columns {['_' + m for m in miss]}")
    if len(tb) == 0:
        raise FileFormatError(f"{p}: the particle table has no rows")
    return p, tb


def _pixel_size(tb: pd.DataFrame, p: str, pixel_size_a: float | None) -> float:
    if pixel_size_a is not None:
        return as_float(pixel_size_a, "pixel_size_a", positive=True)
    if has(tb, "rlnImagePixelSize"):
        px = float(floats(tb, "rlnImagePixelSize", p)[0])
    elif has(tb, "rlnDetectorPixelSize") and has(tb, "rlnMagnification"):
        px = float(
            floats(tb, "rlnDetectorPixelSize", p)[0] * 1e4 / floats(tb, "rlnMagnification", p)[0]
        )
    else:
        raise InvalidValueError(f"pixel_size_a: {p} has no pixel size; pass pixel_size_a=")
    if not (px > 0 and math.isfinite(px)):
        raise FileFormatError(f"{p}: the pixel size in the file is {px:g}; pass pixel_size_a=")
    return px


def _rotation_axes(
    a: NDArray[np.float64], tidx: NDArray[np.int64], groups: list[str], ref_t: int
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.int64]]:
    """Axis (unit 3-vectors), angle (deg) and tilt of every ``A_t·A_refᵀ`` of each particle."""
    rows_of: dict[str, list[int]] = {}
    for i, g in enumerate(groups):
        rows_of.setdefault(g, []).append(i)
    axes, angles, tix = [], [], []
    for g in sorted(rows_of):
        rows = rows_of[g]
        ref = [i for i in rows if tidx[i] == ref_t]
        if not ref:
            continue
        a0 = a[ref[0]]
        for i in rows:
            q = a[i] @ a0.T
            c = np.clip((np.trace(q) - 1) / 2, -1, 1)
            w = math.degrees(math.acos(c))
            v = np.array([q[2, 1] - q[1, 2], q[0, 2] - q[2, 0], q[1, 0] - q[0, 1]])
            nv = np.linalg.norm(v)
            if w < 1.0 or nv < 1e-9:
                continue
            axes.append(v / nv)
            angles.append(w)
            tix.append(tidx[i])
    return np.array(axes), np.array(angles), np.array(tix, dtype=np.int64)


def _tilt_axis(
    ax_arr: NDArray[np.float64],
) -> tuple[float, float, float, NDArray[np.float64]]:
    """(ψ, spread deg, median out-of-plane component, per-rotation sign) of in-plane axes
    ``(−sinψ, cosψ)``: the sign folds all axes into one half-plane.
    """
    ref_dir = ax_arr[np.argmax(np.abs(ax_arr[:, :2]).sum(1))][:2]
    sgn = np.sign(ax_arr[:, :2] @ ref_dir)
    folded = ax_arr[:, :2] * sgn[:, None]
    mean_dir = folded.mean(0)
    psi_axis = math.degrees(math.atan2(-mean_dir[0], mean_dir[1]))
    md = mean_dir / np.linalg.norm(mean_dir)
    dev = np.arctan2(folded[:, 0] * md[1] - folded[:, 1] * md[0], folded @ md)
    spread = float(np.degrees(np.std(dev)))
    out_of_plane = float(np.median(np.abs(ax_arr[:, 2])))
    return psi_axis, spread, out_of_plane, sgn


def read_subtilt_star(
    path: str | os.PathLike[str], *, pixel_size_a: float | None = None
) -> SubtiltTable:
    """Geometry and defocus samples from a sub-tilt particle table (Warp's RELION export).

    Each row is one particle in one tilt image (``_rlnMicrographName``), with its own
    ``_rlnDefocusU/V`` (Å), ``_rlnCoordinateX/Y`` (pixels in that image),
    ``_rlnAngleRot/Tilt/Psi`` (the particle's orientation in that image) and
    ``_rlnCtfScalefactor`` (Warp writes ``cos(tilt)``), grouped per particle by
    ``_rlnGroupName`` (or ``_rlnImageName`` stack). No tilt angles or tilt axis are stored, so
    they are derived from the data: the particle orientation in tilt ``t`` is
    ``A_t = R_t·A_p`` (RELION's ``A`` maps the reference into the image), hence
    ``A_t·A_0ᵀ = R_t·R_0ᵀ = Rz(ψ)·Ry(θ_t − θ_0)·Rz(−ψ)``: a rotation about the in-plane axis
    ``(−sinψ, cosψ, 0)``. Its axis gives ψ (median over particles and tilts) and its sense
    gives the sign of θ_t; ``|θ_t| = arccos(CtfScalefactor)`` when present, else the rotation
    angle. The reference tilt is the one with the largest scale factor (≈ 0°). The predicted
    gradient ``tanθ·(cosψ, sinψ)`` is the same for (ψ, θ) and (ψ + 180°, −θ), so the remaining
    axis ambiguity does not affect the hand decision.

    The returned geometry has ``hand = +1`` as a placeholder (the file states none); the
    samples are ``(tilt_index, x, y, (DefocusU + DefocusV)/2)`` with positions in Å.

    Parameters
    ----------
    path : path
    pixel_size_a : float, optional
        Pixel size of the tilt images (default ``_rlnDetectorPixelSize`` ×
        10000/``_rlnMagnification``, or ``_rlnImagePixelSize``).
    """
    p, tb = _particle_table(path)
    du = floats(tb, "rlnDefocusU", p)
    dv = floats(tb, "rlnDefocusV", p) if has(tb, "rlnDefocusV") else du
    x, y = floats(tb, "rlnCoordinateX", p), floats(tb, "rlnCoordinateY", p)
    rot, tilt, psi = (floats(tb, c, p) for c in ("rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi"))
    scale = floats(tb, "rlnCtfScalefactor", p) if has(tb, "rlnCtfScalefactor") else None
    px = _pixel_size(tb, p, pixel_size_a)
    mics = strings(tb, "rlnMicrographName", p)
    names = sorted(set(mics), key=lambda s: (len(s), s))
    mi = {m: i for i, m in enumerate(names)}
    tidx = np.array([mi[m] for m in mics], dtype=np.int64)
    if has(tb, "rlnGroupName"):
        groups = strings(tb, "rlnGroupName", p)
    elif has(tb, "rlnImageName"):
        groups = [v.split("@", 1)[-1] for v in strings(tb, "rlnImageName", p)]
    else:
        raise FileFormatError(f"{p}: cannot group rows per particle (_rlnGroupName)")
    nt = len(names)
    # reference tilt: the largest scale factor (cos tilt) or, without it, the tilt that the
    # most particles have (orientation change is measured relative to it)
    if scale is not None:
        sc_t = np.array([np.mean(scale[tidx == t]) for t in range(nt)])
        ref_t = int(np.argmax(sc_t))
    else:
        ref_t = int(np.argmax(np.bincount(tidx, minlength=nt)))
    ax_arr, ang_a, tix_a = _rotation_axes(matrices_from_relion(rot, tilt, psi), tidx, groups, ref_t)
    if len(ax_arr) < 3:
        raise FileFormatError(f"{p}: too few particles seen in several tilts to derive the axis")
    psi_axis, spread, out_of_plane, sgn = _tilt_axis(ax_arr)
    theta_sign = np.zeros(nt)
    theta_mag = np.zeros(nt)
    for t in range(nt):
        sel = tix_a == t
        if np.any(sel):
            theta_sign[t] = np.sign(np.median(sgn[sel]))
            theta_mag[t] = float(np.median(ang_a[sel]))
    if scale is not None:
        theta_mag = np.degrees(np.arccos(np.clip(sc_t / sc_t.max(), -1, 1)))
    undetermined = [names[t] for t in range(nt) if theta_sign[t] == 0 and t != ref_t]
    notes = [
        f"tilt axis psi = {psi_axis:.2f} deg derived from per-tilt particle orientations "
        f"(spread {spread:.2f} deg, median out-of-plane axis component {out_of_plane:.3f})",
        "|tilt| from _rlnCtfScalefactor = cos(tilt)"
        if scale is not None
        else "|tilt| from the orientation change",
        f"reference (0 deg) tilt image: {names[ref_t]}",
        "hand: not stated by the file (placeholder +1); measure it with check_hand",
    ]
    if undetermined:
        notes.append(f"tilt sign undetermined (no particle orientation) for {undetermined}")
    if out_of_plane > 0.3:
        warnings.warn(
            f"{p}: per-tilt rotations are not about an in-plane axis (median |z| "
            f"{out_of_plane:.2f}); the derived tilt geometry is unreliable",
            LossyConversionWarning,
            stacklevel=2,
        )
    defocus = (du + dv) / 2
    with from_file(p):
        geometry = TiltGeometry(
            theta_sign * theta_mag,
            psi_axis,
            np.array([np.mean(defocus[tidx == t]) for t in range(nt)]),
            hand=+1,
            pixel_size_a=px,
            source=f"subtilt:{p}",
            notes=notes,
            names=names,
        )
    samples = HandSamples(tilt_index=tidx, x_a=x * px, y_a=y * px, defocus_a=defocus)
    return SubtiltTable(
        geometry=geometry,
        samples=samples,
        micrographs=tuple(names),
        axis_spread_deg=spread,
        notes=tuple(notes),
    )
