"""Voxels ↔ alignment frame ↔ raw tilt-image pixels of one reconstruction (the geometry of
:class:`emgeom.tilt.Reconstruction`, whose readers live in :mod:`emgeom.tilt._reconstruction`).

Centre conventions and their sources: :mod:`emgeom.tilt._reconstruction` and
``docs/remap.md``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from emgeom._validate import as_float, as_shape2, as_vectors, describe
from emgeom.errors import InvalidTypeError, InvalidValueError, ShapeError, UnknownConventionError
from emgeom.model.geometry import TiltGeometry

__all__ = [
    "CENTRE_RULES",
    "IMAGE_CENTRES",
    "PROGRAMS",
    "VOLUME_CENTRES",
    "ReconstructionGeometry",
    "centre_of",
]

#: programs whose conventions :class:`Reconstruction` knows
PROGRAMS = ("relion5", "imod", "warp", "aretomo3", "portal")

#: named centre conventions: the 0-based coordinate of the centre of an axis of N samples
CENTRE_RULES = {
    "n/2": lambda n: n / 2.0,
    "floor": lambda n: float(math.floor(n / 2)),
    "geometric": lambda n: (n - 1) / 2.0,
}

#: each program's volume centre (rule, applied to the unbinned size for relion5 and warp)
VOLUME_CENTRES = {
    "relion5": "floor",
    "imod": "geometric",
    "warp": "n/2",
    "aretomo3": "n/2",
    "portal": "n/2",
}
#: each program's raw tilt-image centre
IMAGE_CENTRES = {
    "relion5": "floor",
    "imod": "geometric",
    "warp": "n/2",
    "aretomo3": "n/2",
    "portal": "n/2",
}
# programs that reconstruct on the unbinned grid and sample it every `binning` pixels, so
# the volume centre is the unbinned rule divided by the binning
_UNBINNED_CENTRE = ("relion5", "warp")

_MAX_VOXELS_SIDE = 1 << 20


def centre_of(rule: str, n: float) -> float:
    """The 0-based centre coordinate of an axis of ``n`` samples under a named rule."""
    try:
        return float(CENTRE_RULES[rule](n))
    except KeyError:
        raise UnknownConventionError(
            f"centre: unknown centre convention {rule!r}; expected one of {tuple(CENTRE_RULES)}"
        ) from None


def _program(program: Any) -> str:
    if not isinstance(program, str):
        raise InvalidTypeError(f"program: expected one of {PROGRAMS}, got {describe(program)}")
    p = program.lower().replace("-", "").replace("_", "")
    aliases = {"relion": "relion5", "aretomo": "aretomo3", "warptools": "warp", "cz": "portal"}
    p = aliases.get(p, p)
    if p not in PROGRAMS:
        raise UnknownConventionError(f"program: expected one of {PROGRAMS}, got {program!r}")
    return p


def _shape3(value: Any, name: str) -> tuple[int, int, int]:
    if (
        isinstance(value, str | bytes)
        or not isinstance(value, Sequence | np.ndarray)
        or (isinstance(value, np.ndarray) and value.ndim != 1)
        or len(value) != 3
    ):
        raise ShapeError(f"{name}: expected (nx, ny, nz), got {describe(value)}")
    out = []
    for i, v in enumerate(value):
        if isinstance(v, bool) or not isinstance(v, int | np.integer | float | np.floating):
            raise InvalidTypeError(f"{name}[{i}]: expected a positive integer, got {v!r}")
        if float(v) != int(v) or not 1 <= int(v) <= _MAX_VOXELS_SIDE:
            raise InvalidValueError(
                f"{name}[{i}]: expected an integer in 1..{_MAX_VOXELS_SIDE}, got {v!r}"
            )
        out.append(int(v))
    return out[0], out[1], out[2]


def _axes(value: Any) -> NDArray[np.float64]:
    if value is None:
        return np.eye(3)
    a = np.asarray(value, dtype=np.float64)
    ok = (
        a.shape == (3, 3)
        and np.all(np.isin(a, (-1.0, 0.0, 1.0)))
        and np.all(np.abs(a).sum(axis=0) == 1)
        and np.all(np.abs(a).sum(axis=1) == 1)
    )
    if not ok:
        raise InvalidValueError(
            f"axes: expected a 3x3 signed permutation matrix (canonical = axes · file axes), "
            f"got {describe(value)}"
        )
    return a


class ReconstructionGeometry:
    """The geometry of one tomogram reconstructed from one tilt series (readers:
    :class:`emgeom.tilt.Reconstruction`, the public subclass).

    Parameters
    ----------
    alignment : TiltGeometry
        The tilt-series alignment in this program's convention (its shifts ``s_t`` in Å are
        relative to the program's image centre, below).
    volume_shape : (nx, ny, nz)
        Tomogram size in voxels, in the file's axis order.
    voxel_size_a : float, optional
        Voxel size (Å). Default ``pixel_size_a · binning``.
    binning : float, optional
        Voxel size / tilt-series pixel size. Default ``voxel_size_a / pixel_size_a``.
    program : {"relion5", "imod", "warp", "aretomo3", "portal"}
        Sets the default centre conventions.
    image_shape : (ny, nx)
        Raw tilt-image size (pixels of ``pixel_size_a``). Required unless ``image_centre`` is a
        coordinate pair.
    pixel_size_a : float, optional
        Tilt-series pixel size (Å). Default ``alignment.pixel_size_a``.
    centre : str or (3,) array_like, optional
        Voxel coordinate ``(x, y, z)`` (0-based, file axes) of the alignment frame's origin, or
        a named rule ``"n/2"``, ``"floor"``, ``"geometric"``. Default: the program's
        (:data:`VOLUME_CENTRES`; for relion5 and warp the rule is applied to ``full_shape``
        and divided by the binning).
    full_shape : (3,) array_like, optional
        Unbinned tomogram size in tilt-series pixels (RELION ``rlnTomoSizeX/Y/Z``, Warp
        ``VolumeDimensionsPhysical / pixel``), canonical axis order. Default
        ``volume_shape · binning`` (reordered by ``axes``). RELION 5 particle coordinates are
        centred on ``full_shape/2.0``.
    image_centre : str or (2,) array_like, optional
        Raw-image pixel ``(x, y)`` that the alignment's zero shift refers to, or a named rule.
    axes : (3, 3) array_like, optional
        Signed permutation ``F`` with canonical ``(x, y, z) = F · (file x, y, z)``; e.g. an
        IMOD ``tilt`` output not rotated by ``trimvol -rx`` is ``[[1,0,0],[0,0,1],[0,-1,0]]``.
        ``det F = −1`` is a mirrored volume. Default identity.
    offset_vox : (3,) array_like, optional
        Added to the centre (voxels, file axes): e.g. a sub-volume cut from a larger one.
    notes : sequence of str

    Notes
    -----
    Attributes: ``alignment``, ``volume_shape``, ``voxel_size_a``, ``binning``,
    ``pixel_size_a``, ``program``, ``image_shape``, ``centre_vox``, ``image_centre_px``,
    ``axes``, ``notes``. Voxel → alignment frame: ``p = F·(v − centre_vox)·voxel_size_a``.
    """

    __slots__ = (
        "alignment",
        "axes",
        "binning",
        "centre_vox",
        "full_shape",
        "image_centre_px",
        "image_shape",
        "notes",
        "pixel_size_a",
        "program",
        "volume_shape",
        "voxel_size_a",
    )

    def __init__(
        self,
        alignment: TiltGeometry,
        volume_shape: Sequence[int],
        voxel_size_a: float | None = None,
        binning: float | None = None,
        program: str = "relion5",
        image_shape: Sequence[int] | None = None,
        *,
        pixel_size_a: float | None = None,
        centre: Any = None,
        full_shape: Any = None,
        image_centre: Any = None,
        axes: Any = None,
        offset_vox: Any = None,
        notes: Sequence[str] = (),
    ) -> None:
        if not isinstance(alignment, TiltGeometry):
            raise InvalidTypeError(f"alignment: expected a TiltGeometry, got {describe(alignment)}")
        self.alignment = alignment
        self.program = _program(program)
        self.volume_shape = _shape3(volume_shape, "volume_shape")
        px = pixel_size_a if pixel_size_a is not None else alignment.pixel_size_a
        if px is None:
            if voxel_size_a is None or binning is None:
                raise InvalidValueError(
                    "pixel_size_a: the tilt-series pixel size is needed (not in the alignment); "
                    "give pixel_size_a, or both voxel_size_a and binning"
                )
            px = as_float(voxel_size_a, "voxel_size_a", positive=True, high=1e5) / as_float(
                binning, "binning", positive=True, high=1e4
            )
        self.pixel_size_a = as_float(px, "pixel_size_a", positive=True, high=1e5)
        if voxel_size_a is None and binning is None:
            raise InvalidValueError("voxel_size_a, binning: give at least one of them")
        if voxel_size_a is not None:
            self.voxel_size_a = as_float(voxel_size_a, "voxel_size_a", positive=True, high=1e6)
            self.binning = self.voxel_size_a / self.pixel_size_a
            if binning is not None:
                b = as_float(binning, "binning", positive=True, high=1e4)
                if abs(b - self.binning) > 1e-3 * b:
                    raise InvalidValueError(
                        f"binning: {b:g} disagrees with voxel_size_a / pixel_size_a = "
                        f"{self.voxel_size_a:g} / {self.pixel_size_a:g} = {self.binning:g}"
                    )
        else:
            self.binning = as_float(binning, "binning", positive=True, high=1e4)
            self.voxel_size_a = self.binning * self.pixel_size_a
        self.axes = _axes(axes)
        self.axes.setflags(write=False)
        self.image_shape = None if image_shape is None else as_shape2(image_shape, "image_shape")
        can_shape = np.abs(self.axes) @ np.array(self.volume_shape, dtype=np.float64)
        if full_shape is None:
            full = can_shape * self.binning
        else:
            full = as_vectors(full_shape, "full_shape", 3, max_abs=1e8)[0].copy()
        full.setflags(write=False)
        self.full_shape = full
        self.centre_vox = self._volume_centre(centre, offset_vox)
        self.image_centre_px = self._image_centre(image_centre)
        self.notes = tuple(str(n) for n in notes)

    # ------------------------------------------------------------------ conventions
    def _volume_centre(self, centre: Any, offset_vox: Any) -> NDArray[np.float64]:
        n_file = np.array(self.volume_shape, dtype=np.float64)
        if centre is None or isinstance(centre, str):
            rule = VOLUME_CENTRES[self.program] if centre is None else centre.lower()
            if self.program in _UNBINNED_CENTRE and centre is None:
                full_file = np.abs(self.axes.T) @ self.full_shape  # canonical -> file order
                c = np.array([centre_of(rule, float(v)) for v in full_file]) / self.binning
            else:
                c = np.array([centre_of(rule, float(v)) for v in n_file])
        else:
            c = as_vectors(centre, "centre", 3, max_abs=1e8)[0].copy()
        if offset_vox is not None:
            c = c + as_vectors(offset_vox, "offset_vox", 3, max_abs=1e8)[0]
        c.setflags(write=False)
        return c

    def _image_centre(self, image_centre: Any) -> NDArray[np.float64]:
        if image_centre is None or isinstance(image_centre, str):
            rule = IMAGE_CENTRES[self.program] if image_centre is None else image_centre.lower()
            if self.image_shape is None:
                raise InvalidValueError(
                    "image_shape: the raw tilt-image size (ny, nx) is needed to place the "
                    f"{self.program} image centre ({rule}); give image_shape= or image_centre="
                )
            ny, nx = self.image_shape
            c = np.array([centre_of(rule, nx), centre_of(rule, ny)])
        else:
            c = as_vectors(image_centre, "image_centre", 2, max_abs=1e8)[0].copy()
        c.setflags(write=False)
        return c

    # ------------------------------------------------------------------ properties
    @property
    def n_tilts(self) -> int:
        """Number of tilts."""
        return self.alignment.n_tilts

    @property
    def thickness_a(self) -> float:
        """Extent of the volume along canonical z (Å)."""
        nz = float(np.abs(self.axes[2]) @ np.array(self.volume_shape, dtype=np.float64))
        return nz * self.voxel_size_a

    @property
    def mirrored(self) -> bool:
        """True when the file axes are a mirror image of the alignment frame (``det F < 0``)."""
        return bool(np.linalg.det(self.axes) < 0)

    def voxel_affine(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """``(L, t)`` with alignment-frame Å ``p = L·v + t`` for file voxels ``v``."""
        lin = self.axes * self.voxel_size_a
        return lin, -lin @ self.centre_vox

    def projection_affine(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Per-tilt ``(P_t, o_t)``: raw-image pixel ``u = P_t·p + o_t`` for alignment-frame Å
        ``p``; shapes ``(T, 2, 3)`` and ``(T, 2)``.
        """
        r = self.alignment.rotation_matrices()
        p_mat = r[:, :2, :] / self.pixel_size_a
        o = np.asarray(self.alignment.shifts_a) / self.pixel_size_a + self.image_centre_px
        return p_mat, o

    # ------------------------------------------------------------------ maps
    def voxels_to_alignment_a(self, voxels: Any) -> NDArray[np.float64]:
        """File voxels ``(N, 3)`` → alignment-frame positions ``(N, 3)`` (Å)."""
        v = as_vectors(voxels, "voxels", 3, max_abs=1e9)
        lin, t = self.voxel_affine()
        return np.asarray(v @ lin.T + t)

    def alignment_a_to_voxels(self, positions_a: Any) -> NDArray[np.float64]:
        """Alignment-frame positions ``(N, 3)`` (Å) → file voxels ``(N, 3)``."""
        p = as_vectors(positions_a, "positions_a", 3, max_abs=1e12)
        return np.asarray((p / self.voxel_size_a) @ self.axes + self.centre_vox)

    def project(self, voxels: Any) -> NDArray[np.float64]:
        """Raw tilt-image pixel ``(x, y)`` of file voxels: shape ``(n_tilts, N, 2)``.

        0-based pixel coordinates of the program's raw (unaligned) tilt images, pixel centres
        at integers: ``u_t = ([R_t·p]_xy + s_t)/pixel_size_a + image_centre_px`` with
        ``p = F·(v − centre_vox)·voxel_size_a``. This is the physical invariant that
        :func:`~emgeom.tilt.remap` preserves.
        """
        p = self.voxels_to_alignment_a(voxels)
        p_mat, o = self.projection_affine()
        return np.einsum("tij,nj->tni", p_mat, p) + o[:, None, :]

    def inside(self, voxels: Any) -> NDArray[np.bool_]:
        """Whether each voxel coordinate lies in the volume (``−0.5 ≤ v < N − 0.5``)."""
        if not (isinstance(voxels, np.ndarray) and voxels.ndim == 2 and voxels.shape[1] == 3):
            voxels = as_vectors(voxels, "voxels", 3, max_abs=1e12)
        ok = np.ones(voxels.shape[0], dtype=bool)
        for k, n in enumerate(self.volume_shape):
            col = voxels[:, k]
            ok &= col >= -0.5
            ok &= col < n - 0.5
        return ok

    # ------------------------------------------------------------------ conversions
    def with_program(
        self,
        program: str,
        *,
        volume_shape: Sequence[int] | None = None,
        voxel_size_a: float | None = None,
        binning: float | None = None,
        centre: Any = None,
        full_shape: Any = None,
        image_centre: Any = None,
        axes: Any = None,
        offset_vox: Any = None,
    ) -> ReconstructionGeometry:
        """The same physical alignment as a reconstruction in another program's conventions.

        The shifts are re-expressed about the new program's image centre, so every tilt
        projects exactly as before (``project`` of the same physical point is unchanged).
        Size, binning, centre and axes default to this reconstruction's values scaled to the
        new binning (``volume_shape`` by default keeps the physical extent).
        """
        new = type(self)(
            self.alignment,
            self.volume_shape if volume_shape is None else volume_shape,
            voxel_size_a=voxel_size_a,
            binning=binning if (binning is not None or voxel_size_a is not None) else self.binning,
            program=program,
            image_shape=self.image_shape,
            pixel_size_a=self.pixel_size_a,
            centre=centre,
            full_shape=full_shape,
            image_centre=image_centre,
            axes=self.axes if axes is None else axes,
            offset_vox=offset_vox,
        )
        shift_px = np.asarray(self.alignment.shifts_a) / self.pixel_size_a + (
            self.image_centre_px - new.image_centre_px
        )
        g = self.alignment.replace(
            shifts_a=shift_px * self.pixel_size_a,
            notes=(*self.alignment.notes, f"shifts re-expressed about the {new.program} centre"),
        )
        new.alignment = g
        new.notes = (*self.notes, f"converted from {self.program} conventions")
        return new

    def summary(self) -> dict[str, Any]:
        """A JSON-able description."""
        return {
            "program": self.program,
            "volume_shape": list(self.volume_shape),
            "voxel_size_a": self.voxel_size_a,
            "binning": self.binning,
            "pixel_size_a": self.pixel_size_a,
            "image_shape": None if self.image_shape is None else list(self.image_shape),
            "centre_vox": self.centre_vox.tolist(),
            "image_centre_px": self.image_centre_px.tolist(),
            "axes": self.axes.astype(int).tolist(),
            "n_tilts": self.n_tilts,
            "notes": list(self.notes),
        }

    def __repr__(self) -> str:
        return (
            f"Reconstruction(program={self.program!r}, volume_shape={self.volume_shape}, "
            f"voxel_size_a={self.voxel_size_a:.5g}, binning={self.binning:.5g}, "
            f"n_tilts={self.n_tilts}, centre_vox={[round(float(c), 3) for c in self.centre_vox]})"
        )
