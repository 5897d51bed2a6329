"""The canonical tilt-series geometry and the bulk per-particle defocus.

Canonical model (design note ``handedness.md`` §5, cited in ``docs/conventions.md``):

* tomogram frame right-handed, Å, origin at the tomogram centre (voxel index ``N/2``, 0-based,
  on each axis);
* per tilt ``R_t = Rz(ψ_t)·Ry(θ_t)·Rx(χ_t)`` (active rotations of column vectors), ``θ`` in the
  IMOD/AreTomo/RELION sign (image ``x = x·cosθ + z·sinθ``), ``ψ`` = tilt-axis angle in the raw
  image, counter-clockwise from +Y, ``χ`` = x-axis tilt;
* image position ``q_t = [R_t p]_xy + s_t`` (Å from the raw-image centre);
* depth ``z'_t = (row 3 of R_t)·p``; defocus ``Δf_t(p) = Δf0_t − h·κ·z'_t`` (Å, underfocus
  positive). ``h = +1`` is the IMOD convention (aligned view, positive tilt: the right side is
  more underfocused) = RELION ``rlnTomoHand = −1``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from emgeom import _core
from emgeom._validate import as_float, as_vectors, describe, n_threads_arg, real_array
from emgeom.errors import (
    InvalidTypeError,
    InvalidValueError,
    LossyConversionWarning,
    ShapeError,
)
from emgeom.model.centres import CENTRE_CONVENTIONS, voxels_to_centered_a
from emgeom.model.fields import (
    as_hand,
    defocus_fields,
    full,
    per_tilt,
    shifts_field,
    tilt_field,
    volume_shape_field,
)

__all__ = [
    "CENTRE_CONVENTIONS",
    "TiltGeometry",
    "particle_defocus",
    "project",
    "rotation_matrices",
    "voxels_to_centered_a",
]


_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _rx(a: NDArray[np.float64]) -> NDArray[np.float64]:
    c, s = np.cos(a), np.sin(a)
    m = np.zeros((a.size, 3, 3))
    m[:, 0, 0] = 1
    m[:, 1, 1], m[:, 1, 2], m[:, 2, 1], m[:, 2, 2] = c, -s, s, c
    return m


def _ry(a: NDArray[np.float64]) -> NDArray[np.float64]:
    c, s = np.cos(a), np.sin(a)
    m = np.zeros((a.size, 3, 3))
    m[:, 1, 1] = 1
    m[:, 0, 0], m[:, 0, 2], m[:, 2, 0], m[:, 2, 2] = c, s, -s, c
    return m


def _rz(a: NDArray[np.float64]) -> NDArray[np.float64]:
    c, s = np.cos(a), np.sin(a)
    m = np.zeros((a.size, 3, 3))
    m[:, 2, 2] = 1
    m[:, 0, 0], m[:, 0, 1], m[:, 1, 0], m[:, 1, 1] = c, -s, s, c
    return m


def rotation_matrices(tilt_deg: Any, axis_deg: Any, x_tilt_deg: Any = 0.0) -> NDArray[np.float64]:
    """``R_t = Rz(axis)·Ry(tilt)·Rx(x_tilt)`` for every tilt, shape ``(T, 3, 3)``.

    Parameters
    ----------
    tilt_deg, axis_deg, x_tilt_deg : array_like
        Degrees, canonical signs (see module docstring); broadcast against each other.
    """
    args = [
        np.atleast_1d(per_tilt(v, name, None))
        for v, name in ((tilt_deg, "tilt_deg"), (axis_deg, "axis_deg"), (x_tilt_deg, "x_tilt_deg"))
    ]
    try:
        t, a, x = np.broadcast_arrays(*args)
    except ValueError:
        raise ShapeError(
            "tilt_deg, axis_deg, x_tilt_deg: lengths "
            f"{[v.shape[0] for v in args]} do not broadcast (give scalars or one per tilt)"
        ) from None
    return _rz(np.radians(a)) @ _ry(np.radians(t)) @ _rx(np.radians(x))


def angles_from_matrices(r: NDArray[np.float64]) -> tuple[NDArray[np.float64], ...]:
    """Invert :func:`rotation_matrices`: ``(tilt_deg, axis_deg, x_tilt_deg)`` of ``(T, 3, 3)``.

    Uses ``R[2] = (−sinθ, cosθ·sinχ, cosθ·cosχ)`` and ``(R[0,0], R[1,0]) = cosθ·(cosψ, sinψ)``
    (unique for ``|θ| < 90°``).

    Raises
    ------
    ShapeError
        ``r`` is not ``(T, 3, 3)`` (one matrix: pass ``r[None]``).
    InvalidValueError
        Non-finite entries, or a matrix that is not a proper rotation (``|RRᵀ − I| > 1e-3``,
        the tolerance of the RELION reader, or ``det < 0``).
    """
    r = real_array(r, "r")
    if r.ndim != 3 or r.shape[1:] != (3, 3):
        hint = " (one matrix: pass r[None])" if r.shape == (3, 3) else ""
        raise ShapeError(f"r: expected shape (T, 3, 3){hint}, got {r.shape}")
    if not np.all(np.isfinite(r)):
        raise InvalidValueError("r: all entries must be finite")
    err = np.abs(r @ np.transpose(r, (0, 2, 1)) - np.eye(3)).max(axis=(1, 2))
    bad = np.flatnonzero((err > 1e-3) | (np.linalg.det(r) < 0))
    if bad.size:
        i = int(bad[0])
        raise InvalidValueError(
            f"r: matrix {i} is not a proper rotation (|R·Rᵀ − I| = {err[i]:.2g}, "
            f"det = {np.linalg.det(r[i]):.3g})"
        )
    tilt = np.degrees(np.arcsin(np.clip(-r[:, 2, 0], -1.0, 1.0)))
    xt = np.degrees(np.arctan2(r[:, 2, 1], r[:, 2, 2]))
    axis = np.degrees(np.arctan2(r[:, 1, 0], r[:, 0, 0]))
    return tilt, axis, xt


class TiltGeometry:
    """Geometry of one tilt series in emgeom's canonical convention.

    Parameters
    ----------
    tilt_deg : array_like, shape (T,)
        Tilt angle θ per tilt, degrees, IMOD/AreTomo/RELION sign (the specimen is actively
        rotated by ``Ry(+θ)``; image ``x = x·cosθ + z·sinθ``). Warp's ``Angles`` are the
        negative of this (use :func:`emgeom.tilt.read_warp`).
    axis_deg : float or array_like, shape (T,)
        Tilt-axis angle ψ in the raw image, degrees, counter-clockwise from +Y (IMOD
        RotationAngle, AreTomo ROT, RELION ZRot, Warp AxisAngle).
    defocus_a : float or array_like, shape (T,), or None
        Defocus Δf0 of the tomogram centre in each tilt, Å, underfocus positive. ``None`` is
        allowed when ``defocus_u_a`` and ``defocus_v_a`` are given (then their mean).
    x_tilt_deg : float or array_like
        x-axis tilt χ, degrees (RELION XTilt, Warp LevelAngleX). Default 0.
    shifts_a : array_like, shape (T, 2), optional
        Image shift ``s_t`` (x, y) in Å added after rotation (RELION X/YShiftAngst, AreTomo
        TX/TY × pixel, Warp AxisOffsetX/Y). Default zeros.
    hand : {+1, -1}
        Canonical defocus handedness h (+1 = IMOD convention = RELION ``rlnTomoHand −1``).
    defocus_slope : float
        κ, multiplies the depth term (RELION ``rlnTomoDefocusSlope``), default 1.
    defocus_u_a, defocus_v_a : array_like, optional
        Astigmatic defoci per tilt (Å); the depth term is added to both.
    astigmatism_deg : float or array_like, optional
        Astigmatism angle (RELION ``rlnDefocusAngle``), degrees.
    volume_shape : (int, int, int), optional
        Tomogram size ``(nx, ny, nz)`` in pixels of ``pixel_size_a`` (x, y, z order).
    pixel_size_a : float, optional
        Tilt-series pixel size, Å.

    Notes
    -----
    Attributes carry the constructor's names (``geometry.tilt_deg``, ...), always canonical;
    per-tilt arrays are read-only float64 arrays of length ``n_tilts``. ``source`` and
    ``notes`` record where the geometry came from and how the hand was inferred.
    """

    __slots__ = (
        "_defocus_a",
        "_sealed",
        "astigmatism_deg",
        "axis_deg",
        "defocus_slope",
        "defocus_u_a",
        "defocus_v_a",
        "hand",
        "names",
        "notes",
        "pixel_size_a",
        "shifts_a",
        "source",
        "tilt_deg",
        "volume_shape",
        "x_tilt_deg",
    )

    def __init__(
        self,
        tilt_deg: Any,
        axis_deg: Any,
        defocus_a: Any,
        *,
        x_tilt_deg: Any = 0.0,
        shifts_a: Any = None,
        hand: int = +1,
        defocus_slope: float = 1.0,
        defocus_u_a: Any = None,
        defocus_v_a: Any = None,
        astigmatism_deg: Any = None,
        volume_shape: Sequence[int] | None = None,
        pixel_size_a: float | None = None,
        source: str = "",
        notes: Sequence[str] = (),
        names: Sequence[str] | None = None,
    ) -> None:
        self.tilt_deg = tilt_field(tilt_deg)
        n = self.tilt_deg.shape[0]
        self.axis_deg = full(axis_deg, "axis_deg", n)
        self.x_tilt_deg = full(x_tilt_deg, "x_tilt_deg", n)
        d, u, v, ang = defocus_fields(n, defocus_a, defocus_u_a, defocus_v_a, astigmatism_deg)
        self._defocus_a: NDArray[np.float64] = d
        self.defocus_u_a: NDArray[np.float64] | None = u
        self.defocus_v_a: NDArray[np.float64] | None = v
        self.astigmatism_deg: NDArray[np.float64] | None = ang
        self.shifts_a = shifts_field(shifts_a, n)
        self.hand = as_hand(hand)
        self.defocus_slope = as_float(defocus_slope, "defocus_slope", positive=True)
        self.volume_shape = volume_shape_field(volume_shape)
        self.pixel_size_a = (
            None if pixel_size_a is None else as_float(pixel_size_a, "pixel_size_a", positive=True)
        )
        self.source = str(source)
        self.notes = tuple(str(s) for s in notes)
        self.names = None if names is None else tuple(str(s) for s in names)
        if self.names is not None and len(self.names) != n:
            raise ShapeError(f"names: expected {n} per-tilt names, got {len(self.names)}")
        object.__setattr__(self, "_sealed", True)

    # ------------------------------------------------------------------ immutability
    def __setattr__(self, name: str, value: Any) -> None:
        # validated once in __init__; afterwards immutable, as AnisoMag is
        if getattr(self, "_sealed", False):
            raise AttributeError(
                f"TiltGeometry is immutable: cannot set {name!r}; use "
                f"geometry.replace({name.lstrip('_')}=...) for a validated copy"
            )
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"TiltGeometry is immutable: cannot delete {name!r}")

    def __getstate__(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__ if k != "_sealed"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        for k, v in state.items():
            object.__setattr__(self, k, v)
        object.__setattr__(self, "_sealed", True)

    # ------------------------------------------------------------------ basic properties
    @property
    def defocus_a(self) -> NDArray[np.float64]:
        """Δf0 per tilt (Å, underfocus positive; mean of U and V when astigmatic)."""
        return self._defocus_a

    @property
    def n_tilts(self) -> int:
        """Number of tilts T."""
        return int(self.tilt_deg.shape[0])

    def rotation_matrices(self) -> NDArray[np.float64]:
        """``R_t``, shape ``(T, 3, 3)``."""
        return rotation_matrices(self.tilt_deg, self.axis_deg, self.x_tilt_deg)

    def depth_rows(self) -> NDArray[np.float64]:
        """Row 3 of every ``R_t``: ``(−sinθ, cosθ·sinχ, cosθ·cosχ)``, shape ``(T, 3)``."""
        t = np.radians(self.tilt_deg)
        x = np.radians(self.x_tilt_deg)
        return np.stack([-np.sin(t), np.cos(t) * np.sin(x), np.cos(t) * np.cos(x)], axis=1)

    def depth(self, positions_a: Any) -> NDArray[np.float64]:
        """Depth ``z'_t(p)`` (Å), shape ``(N, T)``; positions ``(N, 3)`` Å from the centre."""
        p = _positions(positions_a)
        return p @ self.depth_rows().T

    def coefficients(self, component: str = "mean") -> NDArray[np.float64]:
        """The kernel's per-tilt ``(cx, cy, cz, b) = (−h·κ·r3_t, Δf0_t)``, shape ``(T, 4)``."""
        base = self._base(component)
        c = np.empty((self.n_tilts, 4))
        c[:, :3] = -self.hand * self.defocus_slope * self.depth_rows()
        c[:, 3] = base
        return c

    def _base(self, component: str) -> NDArray[np.float64]:
        if component == "mean":
            return self.defocus_a
        if component in ("u", "v"):
            v = self.defocus_u_a if component == "u" else self.defocus_v_a
            if v is None:
                raise InvalidValueError(
                    f"component: {component!r} needs defocus_u_a/defocus_v_a in the geometry"
                )
            return v
        raise InvalidValueError(f"component: expected 'mean', 'u' or 'v', got {component!r}")

    # ------------------------------------------------------------------ hand exports
    @property
    def relion_hand(self) -> int:
        """RELION ``rlnTomoHand`` (= −h); RELION ``tomogram.cpp`` ``Tomogram::getCtf`` adds
        ``rlnTomoHand·pixel·slope·dz`` with ``dz = +z'``.
        """
        return -self.hand

    @property
    def warp_angles_inverted(self) -> bool:
        """Warp/M ``AreAnglesInverted`` (= ``h == +1``); Warp ``TiltSeries.GetPositionInAllTilts``
        adds ``+z'`` to the defocus when False.
        """
        return self.hand == +1

    @property
    def ctfphaseflip_invert(self) -> bool:
        """Whether IMOD ctfphaseflip/ctfplotter need ``-invert`` (= ``h == −1``)."""
        return self.hand == -1

    @property
    def pytom_hand(self) -> int:
        """pytom-match-pick ``--defocus-handedness``.

        pytom (``tmjob.py`` ``get_defocus_offsets``) uses ``Δf = Δf_t + z·cosθ ± x·sinθ``:
        ``-1`` is exactly canonical ``h = −1``; ``+1`` has the x-term of ``h = +1`` but the
        z-term of ``h = −1`` (not a rigid geometry). For ``h = +1`` pytom has no exact setting:
        this returns ``+1`` (right for particles near ``z = 0``) and emits
        :class:`~emgeom.errors.LossyConversionWarning`.
        """
        if self.hand == -1:
            return -1
        warnings.warn(
            "pytom_hand: pytom-match-pick cannot represent canonical hand +1 "
            "(its +1 flips only the x-term of the depth, design note §2.6); returning +1, "
            "exact only for particles at z = 0",
            LossyConversionWarning,
            stacklevel=2,
        )
        return +1

    def program_flags(self) -> dict[str, Any]:
        """Every program's hand flag for this geometry (pytom without its warning)."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", LossyConversionWarning)
            pytom = self.pytom_hand
        return {
            "canonical_hand": self.hand,
            "relion_rlnTomoHand": self.relion_hand,
            "warp_AreAnglesInverted": self.warp_angles_inverted,
            "imod_ctfphaseflip_invert": self.ctfphaseflip_invert,
            "pytom_defocus_handedness": pytom,
            "pytom_exact": self.hand == -1,
            # AreTomo3 works in h = -1 after its own 180-degree axis step (CAreTomoMain.cpp);
            # an h = +1 geometry is the same data with rotate_axis_180() for AreTomo3
            "aretomo3_native": self.hand == -1,
            "warp_Angles": (-self.tilt_deg).tolist(),
        }

    # ------------------------------------------------------------------ operations
    def replace(self, **changes: Any) -> TiltGeometry:
        """A copy with some constructor arguments changed (validated again)."""
        kw: dict[str, Any] = {
            "tilt_deg": self.tilt_deg,
            "axis_deg": self.axis_deg,
            "defocus_a": None if self.defocus_u_a is not None else self.defocus_a,
            "x_tilt_deg": self.x_tilt_deg,
            "shifts_a": self.shifts_a,
            "hand": self.hand,
            "defocus_slope": self.defocus_slope,
            "defocus_u_a": self.defocus_u_a,
            "defocus_v_a": self.defocus_v_a,
            "astigmatism_deg": self.astigmatism_deg,
            "volume_shape": self.volume_shape,
            "pixel_size_a": self.pixel_size_a,
            "source": self.source,
            "notes": self.notes,
            "names": self.names,
        }
        if "defocus_a" in changes and changes["defocus_a"] is not None:
            kw["defocus_u_a"] = kw["defocus_v_a"] = kw["astigmatism_deg"] = None
        kw.update(changes)
        tilt = kw.pop("tilt_deg")
        axis = kw.pop("axis_deg")
        defocus = kw.pop("defocus_a")
        return TiltGeometry(tilt, axis, defocus, **kw)

    def invert_tilt_angles(self) -> TiltGeometry:
        """θ → −θ (and χ → −χ) and h → −h: the same images and defoci in a z-mirrored tomogram.

        ``Mz·R·Mz`` with ``Mz = diag(1, 1, −1)`` turns ``Rz(ψ)Ry(θ)Rx(χ)`` into
        ``Rz(ψ)Ry(−θ)Rx(−χ)`` (Warp's inverted branch also negates LevelAngleX).
        A point ``(x, y, z)`` of this geometry is the point ``(x, y, −z)`` of the result: it
        projects to the same image position and has the same defocus (its depth ``z'`` changes
        sign, so ``h`` must flip, design T9). The physical hand of the reconstruction flips.
        Keeping the old ``h`` with inverted angles (what feeding Warp angles to IMOD does)
        is a defocus-handedness error of ``2·|z'|``.
        """
        return self.replace(
            tilt_deg=-self.tilt_deg,
            x_tilt_deg=-self.x_tilt_deg,
            hand=-self.hand,
            notes=(*self.notes, "invert_tilt_angles: tomogram z-mirrored, hand flipped"),
        )

    def rotate_axis_180(self) -> TiltGeometry:
        """ψ → ψ + 180° and h → −h (AreTomo3's "flip" of the physical hand).

        ``Rz(ψ+180°)·Ry(θ) = Rz(ψ)·Ry(−θ)·Rz(180°)`` (design T6): the same images reconstruct
        the point-inverted tomogram, a point ``p`` of this geometry is ``−p`` of the result
        (same image position; depth ``z'`` changes sign so ``h`` flips to keep the defocus).
        The physical hand of the reconstruction flips.
        """
        axis = (self.axis_deg + 360.0) % 360.0 - 180.0
        return self.replace(
            axis_deg=axis,
            hand=-self.hand,
            notes=(*self.notes, "rotate_axis_180: tomogram point-inverted, hand flipped"),
        )

    def mirror_x(self) -> TiltGeometry:
        """Mirror the raw images in x (and the tomogram with them): ψ → −ψ, θ → −θ, s_x → −s_x.

        ``Mx·Rz(ψ)Ry(θ)Rx(χ) = Rz(−ψ)Ry(−θ)Rx(χ)·Mx`` with ``Mx = diag(−1, 1, 1)``: a point
        ``(x, y, z)`` of this geometry is ``(−x, y, z)`` of the result, its image position is
        x-mirrored and its depth ``z'`` and defocus are unchanged: ``h`` is unchanged while the
        physical hand flips (design T9, finding 9).
        """
        s = np.array(self.shifts_a)
        s[:, 0] *= -1
        return self.replace(
            tilt_deg=-self.tilt_deg,
            axis_deg=-self.axis_deg,
            shifts_a=s,
            notes=(*self.notes, "mirror_x: images and tomogram mirrored in x, hand unchanged"),
        )

    def with_hand(self, hand: int) -> TiltGeometry:
        """A copy with canonical hand ``hand`` (+1 or −1), geometry unchanged."""
        return self.replace(hand=as_hand(hand))

    # ------------------------------------------------------------------ evaluation
    def particle_defocus(self, positions_a: Any, **kwargs: Any) -> NDArray[Any]:
        """Shortcut for :func:`particle_defocus` (``geometry.particle_defocus(p)``)."""
        return particle_defocus(self, positions_a, **kwargs)

    def project(self, positions_a: Any, **kwargs: Any) -> NDArray[np.float64]:
        """Shortcut for :func:`project`."""
        return project(self, positions_a, **kwargs)

    def summary(self) -> dict[str, Any]:
        """A JSON-able description (canonical values and program flags)."""
        return {
            "source": self.source,
            "n_tilts": self.n_tilts,
            "tilt_deg": self.tilt_deg.tolist(),
            "axis_deg": self.axis_deg.tolist(),
            "x_tilt_deg": self.x_tilt_deg.tolist(),
            "defocus_a": self.defocus_a.tolist(),
            "shifts_a": self.shifts_a.tolist(),
            "hand": self.hand,
            "defocus_slope": self.defocus_slope,
            "volume_shape": self.volume_shape,
            "pixel_size_a": self.pixel_size_a,
            "flags": self.program_flags(),
            "notes": list(self.notes),
        }

    def __repr__(self) -> str:
        t = self.tilt_deg
        return (
            f"TiltGeometry(n_tilts={self.n_tilts}, tilt_deg=[{t.min():.2f}..{t.max():.2f}], "
            f"axis_deg≈{float(np.median(self.axis_deg)):.3f}, hand={self.hand:+d}, "
            f"defocus_slope={self.defocus_slope}, source={self.source!r})"
        )


def _positions(positions_a: Any) -> NDArray[np.float64]:
    if isinstance(positions_a, np.ndarray) and positions_a.ndim == 2 and positions_a.shape[1] != 3:
        raise ShapeError(
            f"positions_a: expected shape (N, 3) (x, y, z in Å from the tomogram centre), "
            f"got shape {positions_a.shape}"
        )
    if (
        isinstance(positions_a, np.ndarray)
        and positions_a.dtype in (np.float64, np.float32)
        and positions_a.ndim == 2
    ):
        # The Rust kernels check every row (finite, |p| ≤ 1e9 Å) inside their parallel tasks,
        # right before using it: a separate numpy pass here cost 3.3 ms per 1e6 particles, a
        # third of the whole defocus computation. Errors name the first bad row. (float32 is
        # widened exactly; NaN/inf survive the widening and are caught there too.)
        return np.ascontiguousarray(positions_a, dtype=np.float64)
    # |p| ≤ 1e9 Å (10 cm) keeps every product finite; real positions are < 1e6 Å
    p = as_vectors(positions_a, "positions_a", 3, max_abs=1e9)
    return np.ascontiguousarray(p, dtype=np.float64)


# the kernels accept |p| <= 1e9 Å (checked per row), so |z'| <= sqrt(3)·1e9 Å
_MAX_DEPTH_A = math.sqrt(3.0) * 1e9


def _check_range(coeffs: NDArray[np.float64], dtype: np.dtype[Any]) -> None:
    """Refuse per-tilt parameters whose defocus can overflow ``dtype`` (O(n_tilts), before the
    kernel runs): ``|Δf0_t| + |h·κ·r3_t|·|p|max`` must stay below the largest finite value.
    """
    limit = float(np.finfo(dtype).max)
    with np.errstate(over="ignore", invalid="ignore"):
        worst = np.abs(coeffs[:, 3]) + np.abs(coeffs[:, :3]).sum(axis=1) * _MAX_DEPTH_A
        bad = np.flatnonzero(~(worst < limit))
    if bad.size:
        t = int(bad[0])
        raise InvalidValueError(
            f"geometry: defocus_a ({coeffs[t, 3]:.3g} Å) or defocus_slope (|h·κ·r3| = "
            f"{np.abs(coeffs[t, :3]).max():.3g}) of tilt {t} can give defocus values beyond "
            f"{dtype} range for positions within 1e9 Å; expected Å and κ ~ 1"
        )


def _geometry(geometry: Any) -> TiltGeometry:
    if not isinstance(geometry, TiltGeometry):
        raise InvalidTypeError(f"geometry: expected a TiltGeometry, got {describe(geometry)}")
    return geometry


def particle_defocus(
    geometry: TiltGeometry,
    positions_a: Any,
    *,
    out: NDArray[Any] | None = None,
    dtype: Any = np.float32,
    component: str = "mean",
    n_threads: int | None = None,
) -> NDArray[Any]:
    """Defocus of every particle in every tilt, ``(N, T)``, Å (underfocus positive).

    ``Δf[n, t] = Δf0_t − h·κ·(r3_t · p_n)`` (canonical model; Rust kernel, GIL released).

    Parameters
    ----------
    geometry : TiltGeometry
    positions_a : array_like, shape (N, 3)
        Particle positions ``(x, y, z)`` in Å from the tomogram centre (voxel index N/2); see
        :func:`voxels_to_centered_a` for voxel coordinates.
    out : ndarray, shape (N, T), optional
        Preallocated C-contiguous, writeable float32/float64 output (written in place and
        returned). Otherwise one is allocated with numpy. Reuse one for repeated calls: the
        first write to fresh memory pays the operating system's page faults (measured 82 ms
        for 124 MB on a 2-core VM, against 4.9 ms for the computation itself).
    dtype : float32 or float64
        Output type when ``out`` is None (float32 rounding is ≈ 2e-3 Å at 3 µm defocus).
    component : {"mean", "u", "v"}
        Base defocus: ``defocus_a`` or the astigmatic ``defocus_u_a`` / ``defocus_v_a``
        (the depth term is the same for both).
    n_threads : int, optional
        Worker threads (default: all cores).
    """
    g = _geometry(geometry)
    p = _positions(positions_a)
    nt = n_threads_arg(n_threads)
    coeffs = np.ascontiguousarray(g.coefficients(component))
    shape = (p.shape[0], g.n_tilts)
    if out is None:
        try:
            dt = np.dtype(dtype)
        except (TypeError, ValueError):
            raise InvalidTypeError(f"dtype: expected float32 or float64, got {dtype!r}") from None
        if dt not in _FLOAT_DTYPES:
            raise InvalidTypeError(f"dtype: expected float32 or float64, got {dt}")
        out = np.empty(shape, dtype=dt)
    else:
        if not isinstance(out, np.ndarray):
            raise InvalidTypeError(f"out: expected a numpy array, got {describe(out)}")
        if out.dtype not in _FLOAT_DTYPES:
            raise InvalidTypeError(f"out: expected dtype float32 or float64, got {out.dtype}")
        if out.shape != shape:
            raise ShapeError(f"out: expected shape {shape} (particles, tilts), got {out.shape}")
        if not out.flags.c_contiguous:
            raise InvalidValueError("out: expected a C-contiguous array")
        if not out.flags.writeable:
            raise InvalidValueError("out: expected a writeable array")
        # O(1) bounds test: the kernel reads positions while it writes out
        if np.may_share_memory(out, p):
            raise InvalidValueError(
                "out: shares memory with positions_a; pass a separate output array"
            )
    _check_range(coeffs, out.dtype)
    _core.particle_defocus(p, coeffs, out, n_threads=nt)
    return out


def project(
    geometry: TiltGeometry, positions_a: Any, *, n_threads: int | None = None
) -> NDArray[np.float64]:
    """Image positions ``(N, T, 2)``: ``q = [R_t p]_xy + s_t`` in Å from the raw-image centre,
    ``(x, y)`` order (x = image column axis).
    """
    g = _geometry(geometry)
    p = _positions(positions_a)
    nt = n_threads_arg(n_threads)
    r = g.rotation_matrices()
    rows = np.empty((g.n_tilts, 8))
    rows[:, 0:3] = r[:, 0, :]
    rows[:, 3] = g.shifts_a[:, 0]
    rows[:, 4:7] = r[:, 1, :]
    rows[:, 7] = g.shifts_a[:, 1]
    out = np.empty((p.shape[0], g.n_tilts, 2))
    _core.project(p, np.ascontiguousarray(rows), out, n_threads=nt)
    return out
