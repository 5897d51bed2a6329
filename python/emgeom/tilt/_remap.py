"""Move particles between two reconstructions of one tilt series: :func:`remap`.

The oracle is physical: a point and its image must project to the same raw tilt-image pixel,
tilt by tilt, through the source's and the target's projection model
(:meth:`~emgeom.tilt.Reconstruction.project`).

* **Same alignment** (identical per-tilt projections up to rounding, whatever the program,
  binning, size, centre convention, axis order or flip): the alignment frames coincide, the
  map is exact (``transform`` = identity).
* **Different alignments of the same tilt series**: the 3-D map between the two alignment
  frames is fitted by least squares over the projections of a 3-D grid spanning the source
  volume onto every paired tilt, and its residual is reported in tilt-image pixels. ``model``
  ``"rigid"`` (rotation + translation; a mirror is allowed when the two hands differ),
  ``"similarity"`` (+ one scale) or ``"affine"``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from emgeom import _core
from emgeom._validate import as_float, as_int, as_vectors, describe
from emgeom.errors import (
    ImplausibleValueWarning,
    InvalidTypeError,
    InvalidValueError,
    LossyConversionWarning,
    UnknownConventionError,
)
from emgeom.model.rotation import as_rotation_matrices
from emgeom.tilt._reconstruction import Reconstruction

__all__ = [
    "MODELS",
    "RemapResult",
    "fit_frame_transform",
    "orientations_from_voxels",
    "orientations_to_voxels",
    "pair_tilts",
    "particles_to_voxels",
    "remap",
    "voxels_to_particles",
]

#: transform models of the cross-alignment fit
MODELS = ("rigid", "similarity", "affine")

_EXACT_PX = 1e-9


@dataclass(frozen=True, repr=False)
class RemapResult:
    """Result of :func:`remap`.

    Attributes
    ----------
    points : ndarray, shape (n, 3)
        Target voxel coordinates ``(x, y, z)`` (0-based, target file axes).
    matrices : ndarray, shape (n, 3, 3), or None
        Orientations (particle → target tomogram) when ``matrices`` were given.
    transform : ndarray, shape (4, 4)
        Alignment-frame map (Å): ``p_target = T·(p_source, 1)``.
    voxel_transform : ndarray, shape (4, 4)
        File-voxel map: ``v_target = V·(v_source, 1)``.
    residual_px, residual_max_px : float
        RMS and maximum of the projection invariant over a 3-D grid spanning the source volume
        and every paired tilt (tilt-image pixels). 0 for an exact remap.
    residual_per_tilt_px : ndarray, shape (n_pairs,)
        RMS per paired tilt.
    tilt_pairs : ndarray, shape (n_pairs, 2)
        ``(source tilt index, target tilt index)``.
    tilt_deg : ndarray, shape (n_pairs,)
        Source tilt angle of each pair.
    tilts_fitted : ndarray of bool, shape (n_pairs,)
        Pairs the frame transform was fitted on (all, unless ``robust`` left outliers out).
    inside : ndarray of bool, shape (n,)
        Whether each mapped point lies inside the target volume.
    exact : bool
        True when the two projection models are the same (no fit).
    model : str
    notes : tuple of str
    """

    points: NDArray[np.float64]
    matrices: NDArray[np.float64] | None
    transform: NDArray[np.float64]
    voxel_transform: NDArray[np.float64]
    residual_px: float
    residual_max_px: float
    residual_per_tilt_px: NDArray[np.float64]
    tilt_pairs: NDArray[np.int64]
    tilt_deg: NDArray[np.float64]
    tilts_fitted: NDArray[np.bool_]
    inside: NDArray[np.bool_]
    exact: bool
    model: str
    notes: tuple[str, ...]

    @property
    def n_outside(self) -> int:
        """Number of mapped points outside the target volume."""
        return int(np.count_nonzero(~self.inside))

    def __repr__(self) -> str:
        return (
            f"RemapResult(n={self.points.shape[0]}, exact={self.exact}, model={self.model!r}, "
            f"residual_px={self.residual_px:.4g}, residual_max_px={self.residual_max_px:.4g}, "
            f"n_outside={self.n_outside})"
        )


def _rec(value: Any, name: str) -> Reconstruction:
    if not isinstance(value, Reconstruction):
        raise InvalidTypeError(f"{name}: expected a tilt.Reconstruction, got {describe(value)}")
    return value


def pair_tilts(
    source: Reconstruction, target: Reconstruction, *, tolerance_deg: float = 1.0
) -> NDArray[np.int64]:
    """Pair the tilts of two reconstructions by tilt angle: ``(n_pairs, 2)`` index pairs.

    Mutual nearest neighbours within ``tolerance_deg`` (Warp's angles are read with the
    canonical sign, so ``TILT = −Angle`` pairs). Tilts without a partner (dark frames
    removed by one program) are left out.
    """
    tol = as_float(tolerance_deg, "tolerance_deg", positive=True, high=45.0)
    a = np.asarray(source.alignment.tilt_deg)
    b = np.asarray(target.alignment.tilt_deg)
    d = np.abs(a[:, None] - b[None, :])
    ia = np.argmin(d, axis=1)
    ib = np.argmin(d, axis=0)
    pairs = [(i, int(j)) for i, j in enumerate(ia) if ib[j] == i and d[i, j] <= tol]
    return np.array(pairs, dtype=np.int64).reshape(-1, 2)


def _grid(rec: Reconstruction, n: int) -> NDArray[np.float64]:
    axes = [np.linspace(0.0, s - 1.0, n) if s > 1 else np.zeros(1) for s in rec.volume_shape]
    g = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    return rec.voxels_to_alignment_a(g)


def _skew(v: NDArray[np.float64]) -> NDArray[np.float64]:
    s = np.zeros(v.shape[:-1] + (3, 3))
    s[..., 0, 1], s[..., 0, 2] = -v[..., 2], v[..., 1]
    s[..., 1, 0], s[..., 1, 2] = v[..., 2], -v[..., 0]
    s[..., 2, 0], s[..., 2, 1] = -v[..., 1], v[..., 0]
    return s


def _rodrigues(w: NDArray[np.float64]) -> NDArray[np.float64]:
    t = float(np.linalg.norm(w))
    k = _skew(w)
    if t < 1e-12:
        return np.eye(3) + k
    return np.eye(3) + np.sin(t) / t * k + (1 - np.cos(t)) / t**2 * (k @ k)


def fit_frame_transform(
    p: NDArray[np.float64],
    p1: NDArray[np.float64],
    o1: NDArray[np.float64],
    p2: NDArray[np.float64],
    o2: NDArray[np.float64],
    model: str = "rigid",
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Least-squares ``(Q, d)`` with ``P2_t·(Q·p + d) + o2_t ≈ P1_t·p + o1_t`` (pixels).

    ``p`` ``(m, 3)`` grid points (Å, source frame); ``P1, P2`` ``(T, 2, 3)``; ``o1, o2``
    ``(T, 2)``. Affine first (linear least squares), then, for ``rigid``/``similarity``,
    Gauss–Newton on rotation (+ log scale) and translation from the affine's polar part.
    """
    target = np.einsum("tij,mj->tmi", p1, p) + o1[:, None, :] - o2[:, None, :]  # (T, m, 2)
    # affine: unknowns Q (9, row-major) and d (3)
    dq = np.einsum("tki,mj->tmkij", p2, p).reshape(-1, 9)
    dd = np.broadcast_to(p2[:, None, :, :], (p2.shape[0], p.shape[0], 2, 3)).reshape(-1, 3)
    design = np.concatenate([dq, dd], axis=1)
    sol, *_ = np.linalg.lstsq(design, target.reshape(-1), rcond=None)
    q, d = sol[:9].reshape(3, 3), sol[9:]
    if model == "affine":
        return q, d
    u, s, vt = np.linalg.svd(q)
    rot = u @ vt
    scale = float(np.mean(s)) if model == "similarity" else 1.0
    for _ in range(20):
        qp = np.einsum("ij,mj->mi", rot, p)  # (m, 3)
        pred = np.einsum("tki,mi->tmk", p2, scale * qp + d)
        r = (target - pred).reshape(-1)
        # derivatives: rotation (left-multiplied increment), translation, log-scale
        j_w = -np.einsum("tki,mij->tmkj", p2, _skew(scale * qp)).reshape(-1, 3)
        j_d = dd
        cols = [j_w, j_d]
        if model == "similarity":
            cols.append(np.einsum("tki,mi->tmk", p2, scale * qp).reshape(-1, 1))
        jac = np.concatenate(cols, axis=1)
        step, *_ = np.linalg.lstsq(jac, r, rcond=None)
        rot = _rodrigues(step[:3]) @ rot
        d = d + step[3:6]
        if model == "similarity":
            scale *= float(np.exp(step[6]))
        if np.max(np.abs(step)) < 1e-12:
            break
    return scale * rot, d


def _points(points: Any) -> NDArray[np.float64]:
    """``(n, 3)`` float64 voxel coordinates; C-contiguous float64 input is passed through and
    checked row by row (finite, within ±1e9) by the Rust kernel in :func:`_affine`.
    """
    if (
        isinstance(points, np.ndarray)
        and points.dtype == np.float64
        and points.ndim == 2
        and points.shape[1] == 3
    ):
        return np.ascontiguousarray(points)
    return as_vectors(points, "points", 3, max_abs=1e9)


def _affine(
    pts: NDArray[np.float64], lin: NDArray[np.float64], off: NDArray[np.float64]
) -> NDArray[np.float64]:
    """``pts·linᵀ + off`` for ``(n, 3)`` points with the multithreaded Rust projection kernel
    (two 2×4 affine rows per call; GIL released). Returns an ``(n, 3)`` view of an ``(n, 4)``
    buffer.
    """
    rows = np.zeros((2, 8))
    rows[0, 0:3], rows[0, 3], rows[0, 4:7], rows[0, 7] = lin[0], off[0], lin[1], off[1]
    rows[1, 0:3], rows[1, 3] = lin[2], off[2]
    out = np.empty((pts.shape[0], 2, 2))
    try:
        _core.project(pts, rows, out, n_threads=None)
    except InvalidValueError as exc:
        msg = str(exc).replace("positions_a", "points", 1).replace("±1e9 Å", "±1e9 voxels")
        raise InvalidValueError(msg) from None
    return out.reshape(-1, 4)[:, :3]


def _distances(
    g: NDArray[np.float64],
    q: NDArray[np.float64],
    d: NDArray[np.float64],
    p1: NDArray[np.float64],
    o1: NDArray[np.float64],
    p2: NDArray[np.float64],
    o2: NDArray[np.float64],
) -> NDArray[np.float64]:
    """``|P2·(Q·g + d) + o2 − (P1·g + o1)|`` per paired tilt and grid point, ``(T, m)`` px."""
    res = (
        np.einsum("tij,mj->tmi", p2, g @ q.T + d)
        + o2[:, None, :]
        - (np.einsum("tij,mj->tmi", p1, g) + o1[:, None, :])
    )
    return np.asarray(np.linalg.norm(res, axis=2))


def remap(
    points: Any,
    source: Reconstruction,
    target: Reconstruction,
    *,
    matrices: Any = None,
    model: str = "rigid",
    tilt_pairs: Any = None,
    tolerance_deg: float = 1.0,
    grid: int = 6,
    robust: bool = False,
    warn_residual_px: float = 2.0,
    max_residual_px: float = 20.0,
) -> RemapResult:
    """Map voxel coordinates (and orientations) from one reconstruction to another.

    Parameters
    ----------
    points : array_like, shape (n, 3)
        Source voxel coordinates ``(x, y, z)``, 0-based, source file axes.
    source, target : Reconstruction
        Two reconstructions of the same tilt series.
    matrices : array_like, shape (n, 3, 3), optional
        Particle → source-tomogram rotations (:mod:`emgeom.model.rotation`: RELION's ``A``,
        Warp's ``Matrix3.Euler``, the portal's ``xyz_rotation_matrix``).
    model : {"rigid", "similarity", "affine"}
        Frame transform fitted when the alignments differ.
    tilt_pairs : array_like, shape (k, 2), optional
        Explicit ``(source tilt, target tilt)`` index pairs; default :func:`pair_tilts`.
    tolerance_deg : float
        Angle tolerance of the automatic pairing.
    grid : int
        Grid points per axis of the fit and of the residual (2–20).
    robust : bool
        Refit without the tilts whose rms exceeds ``max(2 px, 3 × median)`` (an outlier tilt
        in one alignment no longer drags the map), until the set is stable. The residuals
        are still reported on every paired tilt; ``tilts_fitted`` says which were used.
    warn_residual_px, max_residual_px : float
        RMS projection residual (tilt-image px) above which an
        :class:`~emgeom.errors.ImplausibleValueWarning` is emitted / an
        :class:`~emgeom.errors.InvalidValueError` is raised (a tomogram from a different tilt
        series, or a wrong pixel size).

    Returns
    -------
    RemapResult
        Points outside the target volume are flagged in ``inside`` (never dropped).
    """
    src, tgt = _rec(source, "source"), _rec(target, "target")
    pts = _points(points)
    if not isinstance(model, str) or model not in MODELS:
        raise UnknownConventionError(f"model: expected one of {MODELS}, got {describe(model)}")
    ngrid = as_int(grid, "grid", low=2, high=20)
    warn_px = as_float(warn_residual_px, "warn_residual_px", positive=True)
    max_px = as_float(max_residual_px, "max_residual_px", positive=True)
    mats = None if matrices is None else as_rotation_matrices(matrices, "matrices")
    if mats is not None and mats.shape[0] != pts.shape[0]:
        raise InvalidValueError(
            f"matrices: {mats.shape[0]} matrices for {pts.shape[0]} points (one per point)"
        )
    pairs = _checked_pairs(src, tgt, tilt_pairs, tolerance_deg)
    q, d, exact, fitted, dist, notes = _frame_map(src, tgt, pairs, model, robust, ngrid)
    rms = _judge_residual(dist, model, warn_px, max_px)
    # voxel map: v2 = c2 + F2ᵀ·(Q·(L1 v1 + t1) + d)/vs2
    l1, t1 = src.voxel_affine()
    inv2 = tgt.axes.T / tgt.voxel_size_a
    lin = inv2 @ q @ l1
    off = inv2 @ (q @ t1 + d) + tgt.centre_vox
    out = _affine(pts, lin, off)
    vt = np.eye(4)
    vt[:3, :3], vt[:3, 3] = lin, off
    tt = np.eye(4)
    tt[:3, :3], tt[:3, 3] = q, d
    out_m = None if mats is None else _map_orientations(mats, src, tgt, q, notes)
    inside = tgt.inside(out) if out.shape[0] else np.zeros(0, dtype=bool)
    if out.shape[0] and not np.all(inside):
        notes.append(f"{int(np.count_nonzero(~inside))} points fall outside the target volume")
    return RemapResult(
        points=out,
        matrices=out_m,
        transform=tt,
        voxel_transform=vt,
        residual_px=rms,
        residual_max_px=float(dist.max()),
        residual_per_tilt_px=np.sqrt(np.mean(dist**2, axis=1)),
        tilt_pairs=pairs,
        tilt_deg=np.asarray(src.alignment.tilt_deg)[pairs[:, 0]],
        tilts_fitted=fitted,
        inside=inside,
        exact=exact,
        model="exact" if exact else model,
        notes=tuple(notes),
    )


def _judge_residual(dist: NDArray[np.float64], model: str, warn_px: float, max_px: float) -> float:
    """RMS of the invariant; refused above ``max_px``, a warning above ``warn_px``."""
    rms = float(np.sqrt(np.mean(dist**2)))
    if rms > max_px:
        raise InvalidValueError(
            f"target: the two projection models disagree by {rms:.3g} px rms after the best "
            f"{model} fit (> max_residual_px={max_px:g}); not the same tilt series, or wrong "
            "pixel sizes / image sizes"
        )
    if rms > warn_px:
        warnings.warn(
            f"remap: projection residual {rms:.3g} px rms (max {dist.max():.3g} px) after the "
            f"{model} fit: the mapping is only that good",
            ImplausibleValueWarning,
            stacklevel=3,
        )
    return rms


def _checked_pairs(
    src: Reconstruction, tgt: Reconstruction, tilt_pairs: Any, tolerance_deg: float
) -> NDArray[np.int64]:
    if tilt_pairs is None:
        pairs = pair_tilts(src, tgt, tolerance_deg=tolerance_deg)
    else:
        pairs = np.asarray(tilt_pairs, dtype=np.int64).reshape(-1, 2)
        if (
            pairs.size == 0
            or pairs[:, 0].min() < 0
            or pairs[:, 1].min() < 0
            or pairs[:, 0].max() >= src.n_tilts
            or pairs[:, 1].max() >= tgt.n_tilts
        ):
            raise InvalidValueError("tilt_pairs: indices outside the two alignments' tilts")
    if pairs.shape[0] < 3:
        raise InvalidValueError(
            f"target: only {pairs.shape[0]} tilts pair with the source within {tolerance_deg}° "
            "(a different tilt series?); give tilt_pairs= or a larger tolerance_deg"
        )
    return pairs


def _frame_map(
    src: Reconstruction,
    tgt: Reconstruction,
    pairs: NDArray[np.int64],
    model: str,
    robust: bool,
    ngrid: int,
) -> tuple[Any, ...]:
    """``(Q, d, exact, tilts_fitted, distances (T, m) px, notes)`` of the alignment-frame map."""
    p1, o1 = src.projection_affine()
    p2, o2 = tgt.projection_affine()
    p1, o1, p2, o2 = p1[pairs[:, 0]], o1[pairs[:, 0]], p2[pairs[:, 1]], o2[pairs[:, 1]]
    exact = bool(
        np.allclose(p1, p2, rtol=0, atol=1e-12 / min(src.pixel_size_a, tgt.pixel_size_a))
        and np.max(np.abs(o1 - o2)) <= _EXACT_PX
    )
    g = _grid(src, ngrid)
    fitted = np.ones(pairs.shape[0], dtype=bool)
    if exact:
        q, d = np.eye(3), np.zeros(3)
        notes = ["same projection model: alignment frames identical (exact)"]
    else:
        for _ in range(10):
            k = fitted
            q, d = fit_frame_transform(g, p1[k], o1[k], p2[k], o2[k], model)
            per_tilt = np.sqrt(np.mean(_distances(g, q, d, p1, o1, p2, o2) ** 2, axis=1))
            new = per_tilt <= max(2.0, 3.0 * float(np.median(per_tilt)))
            if not robust or np.array_equal(new, fitted) or new.sum() < 3:
                break
            fitted = new
        notes = [
            f"alignments differ: {model} frame transform fitted over {g.shape[0]} points on "
            f"{int(fitted.sum())} of {fitted.size} tilts"
        ]
    return q, d, exact, fitted, _distances(g, q, d, p1, o1, p2, o2), notes


def _map_orientations(
    mats: NDArray[np.float64],
    src: Reconstruction,
    tgt: Reconstruction,
    q: NDArray[np.float64],
    notes: list[str],
) -> NDArray[np.float64]:
    """Rotate particle → source-file matrices into the target file axes (polar part of the
    frame map); a mirror returns them for the z-mirrored reference, with a warning.
    """
    u, _, vh = np.linalg.svd(tgt.axes.T @ q @ src.axes)
    rot = u @ vh
    out = np.matmul(rot, mats)
    if np.linalg.det(rot) < 0:
        out = out @ np.diag([1.0, 1.0, -1.0])
        warnings.warn(
            "remap: the target volume is a mirror image of the source; orientations are "
            "returned for the reference mirrored in its z (M·diag(1, 1, -1))",
            LossyConversionWarning,
            stacklevel=3,
        )
        notes.append("mirror: orientations for the z-mirrored reference")
    return np.asarray(out)


# ---------------------------------------------------------------------------- particle frames
def _relion_offset_a(rec: Reconstruction, frame: str) -> NDArray[np.float64]:
    """RELION 5: particles are centred on ``W/2.0`` (``ParticleSet::getPosition``) while the
    projection (and the reconstruction) rotate about ``int(W/2)``
    (``reconstruct_tomogram.cpp`` ``getProjectMatrices``, ``Tomogram::setProjectionMatrix``):
    alignment frame = centred + ``(W/2 − int(W/2))·pixel`` (half a pixel on odd axes).
    """
    if rec.program != "relion5":
        raise InvalidValueError(
            f"rec: {frame} coordinates (RELION 5 rlnCenteredCoordinate*Angst) belong to a RELION "
            f"5 tomogram set; got a {rec.program} reconstruction: use "
            "Reconstruction.from_relion for them and remap() to other programs"
        )
    w = np.asarray(rec.full_shape)
    return (w / 2.0 - np.floor(w / 2.0)) * rec.pixel_size_a


def particles_to_voxels(coordinates: Any, frame: str, rec: Reconstruction) -> NDArray[np.float64]:
    """Native particle coordinates (:data:`emgeom.io.particles.FRAMES`) → voxels of ``rec``.

    ``relion_centered_a`` needs a RELION 5 ``rec`` (its ``full_shape`` = ``rlnTomoSize``);
    ``corner_a`` divides by ``rec.voxel_size_a``; ``imod_model`` subtracts 0.5 in x and y;
    ``voxels`` is unchanged.
    """
    c = as_vectors(coordinates, "coordinates", 3, max_abs=1e12)
    r = _rec(rec, "rec")
    if frame == "voxels":
        return c.copy()
    if frame == "corner_a":
        return c / r.voxel_size_a
    if frame == "imod_model":
        return c - np.array([0.5, 0.5, 0.0])
    if frame == "relion_centered_a":
        return r.alignment_a_to_voxels(c + _relion_offset_a(r, frame))
    raise UnknownConventionError(f"frame: unknown particle frame {frame!r}")


def voxels_to_particles(voxels: Any, frame: str, rec: Reconstruction) -> NDArray[np.float64]:
    """Inverse of :func:`particles_to_voxels`."""
    v = as_vectors(voxels, "voxels", 3, max_abs=1e12)
    r = _rec(rec, "rec")
    if frame == "voxels":
        return v.copy()
    if frame == "corner_a":
        return v * r.voxel_size_a
    if frame == "imod_model":
        return v + np.array([0.5, 0.5, 0.0])
    if frame == "relion_centered_a":
        return r.voxels_to_alignment_a(v) - _relion_offset_a(r, frame)
    raise UnknownConventionError(f"frame: unknown particle frame {frame!r}")


def orientations_to_voxels(matrices: Any, frame: str, rec: Reconstruction) -> NDArray[np.float64]:
    """Orientations of a particle table → the file axes of ``rec``.

    RELION 5 centred particles are oriented in the alignment frame (canonical axes): ``Fᵀ·M``;
    the other frames are in the file's own axes (unchanged).
    """
    m = as_rotation_matrices(matrices, "matrices")
    r = _rec(rec, "rec")
    if frame == "relion_centered_a" and not np.array_equal(r.axes, np.eye(3)):
        out = np.einsum("ji,njk->nik", r.axes, m)
        if np.linalg.det(r.axes) < 0:
            out = out @ np.diag([1.0, 1.0, -1.0])
        return out
    return m.copy()


def orientations_from_voxels(matrices: Any, frame: str, rec: Reconstruction) -> NDArray[np.float64]:
    """Inverse of :func:`orientations_to_voxels`."""
    m = as_rotation_matrices(matrices, "matrices")
    r = _rec(rec, "rec")
    if frame == "relion_centered_a" and not np.array_equal(r.axes, np.eye(3)):
        if np.linalg.det(r.axes) < 0:
            m = m @ np.diag([1.0, 1.0, -1.0])
        return np.einsum("ij,njk->nik", r.axes, m)
    return m.copy()
