"""The geometry of one tomogram made from one tilt series: :class:`Reconstruction`.

A reconstruction ties three frames together (all coordinates ``(x, y[, z])``):

* **voxels** of the tomogram file: 0-based indices of the array as stored (``vol[z, y, x]``),
  a voxel's centre at integer coordinates;
* the **alignment frame** of its :class:`~emgeom.tilt.TiltGeometry` (Å, right-handed, origin at
  the point the tilt geometry rotates about): ``p = F·(v − c)·voxel_size_a`` with ``c`` the
  voxel coordinate of that point (:attr:`Reconstruction.centre_vox`, the program's *volume
  centre convention* plus any offsets) and ``F`` a signed permutation (axis order and flips,
  :attr:`Reconstruction.axes`);
* **tilt-image pixels** of the raw (unaligned) tilt images, 0-based, a pixel's centre at
  integer coordinates: ``u_t = ([R_t·p]_xy + s_t) / pixel_size_a + c_img`` with ``c_img`` the
  program's *image centre convention* (:attr:`Reconstruction.image_centre_px`).

:meth:`Reconstruction.project` is that last map, the physical invariant every remap is tested
against. Centre conventions, with their sources (``docs/remap.md`` has the table):

* RELION 5 reconstruction: volume centre ``int(W/2)`` of the unbinned size
  ``rlnTomoSizeX/Y/Z``, voxel ``j`` at unbinned position ``j·binning``; image centre
  ``int(n/2)`` (3dem/relion ``src/jaz/tomography/programs/reconstruct_tomogram.cpp``
  ``TomoBackprojectProgram::getProjectMatrices``: ``specimen_center = (int(w/2), int(h/2),
  int(d/2))``, ``tilt_image_center = int(size/2)``; ``reconstructOneTomogram``: output size
  ``w/spacing + 0.5``, ``h/spacing + 0.5``, ``d/spacing`` truncated, projection matrices divided
  by ``spacing``). RELION 5 *particles* use the float centre ``W/2.0`` instead
  (``ParticleSet::getPosition``, ``Tomogram::centre`` in ``tomogram_set.cpp``): see
  :mod:`emgeom.io.particles`.
* Warp/WarpTools: volume and image centres ``VolumeDimensionsPhysical/2`` and
  ``ImageDimensionsPhysical/2`` (Å from the corner; warpem/warp
  ``WarpLib/TiltSeries/TiltSeries.cs`` ``GetPositionInAllTilts``), i.e. ``N/2`` and ``n/2``.
* AreTomo3: ``N/2`` and ``n/2`` (float halves; czimaginginstitute/AreTomo3 projects about
  ``iSize * 0.5f``; see ``docs/remap.md`` for the evidence level).
* IMOD: the geometric centre ``(N − 1)/2`` (0-based; IMOD's 1-based ``N/2 + 0.5``,
  LabShare-Archive/IMOD ``flib/tilt/tilt.f90`` and ``backXform``: ``xcen = nxb/2. + 0.5``),
  for the volume and the image.
* CZ cryoET Data Portal: AreTomo3's ``N/2`` / ``n/2`` at the *implied* voxel size
  ``pixel × n / N`` (the portal's ``voxel_spacing`` is rounded to 3 decimals).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from emgeom._validate import as_float, as_shape2, as_vectors, describe, require
from emgeom.errors import (
    FileFormatError,
    InvalidTypeError,
    InvalidValueError,
    ShapeError,
    UnknownConventionError,
)
from emgeom.io.aretomo import read_aln, read_aretomo
from emgeom.io.imod import read_imod
from emgeom.io.imod_tilt_com import read_tilt_com
from emgeom.io.portal import read_portal_alignment, read_portal_tomograms
from emgeom.io.relion_tomo import read_relion
from emgeom.io.warp_settings import read_warp_settings
from emgeom.io.warp_xml import read_warp
from emgeom.tilt._geometry import TiltGeometry

__all__ = [
    "IMAGE_CENTRES",
    "PROGRAMS",
    "VOLUME_CENTRES",
    "Reconstruction",
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


class Reconstruction:
    """The geometry of one tomogram reconstructed from one tilt series.

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
    ) -> Reconstruction:
        """The same physical alignment as a reconstruction in another program's conventions.

        The shifts are re-expressed about the new program's image centre, so every tilt
        projects exactly as before (``project`` of the same physical point is unchanged).
        Size, binning, centre and axes default to this reconstruction's values scaled to the
        new binning (``volume_shape`` by default keeps the physical extent).
        """
        new = Reconstruction(
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

    # ------------------------------------------------------------------ readers
    @classmethod
    def from_relion(
        cls,
        tomograms_star: str | os.PathLike[str],
        tomo_name: str | None = None,
        *,
        image_shape: Sequence[int] | None = None,
        binning: float | None = None,
        project_dir: str | os.PathLike[str] | None = None,
    ) -> Reconstruction:
        """A RELION 5 tomogram from ``tomograms.star``.

        ``rlnTomoSizeX/Y/Z`` (unbinned) and ``rlnTomoTomogramBinning`` (or ``binning=``) give
        the volume: ``(int(W/b + 0.5), int(H/b + 0.5), int(D/b))`` voxels with the centre
        ``int(W/2)/b`` (``reconstruct_tomogram.cpp``, module docstring). ``image_shape``
        ``(ny, nx)`` of the tilt images places RELION's ``int(n/2)`` image centre.
        """
        starfile = require("starfile", "star")
        path = Path(tomograms_star)
        shape2 = None if image_shape is None else as_shape2(image_shape, "image_shape")
        g = read_relion(path, tomo_name, project_dir=project_dir, image_shape=shape2)
        blocks = starfile.read(path, always_dict=True)
        table = blocks.get("global")
        name = tomo_name if tomo_name is not None else str(table["rlnTomoName"].iloc[0])
        row = table[table["rlnTomoName"].astype(str) == name].iloc[0]
        full = g.volume_shape
        if full is None:
            raise FileFormatError(f"{path}: tomogram {name} has no _rlnTomoSizeX/Y/Z")
        if binning is None:
            binning = (
                float(row["rlnTomoTomogramBinning"]) if "rlnTomoTomogramBinning" in row else 1.0
            )
        b = as_float(binning, "binning", positive=True, high=1e4)
        shape = (int(full[0] / b + 0.5), int(full[1] / b + 0.5), max(1, int(full[2] / b)))
        return cls(
            g,
            shape,
            binning=b,
            program="relion5",
            image_shape=image_shape,
            full_shape=full,
            notes=[f"RELION 5 {path} tomogram {name}: rlnTomoSize {full}, binning {b:g}"],
        )

    @classmethod
    def from_warp(
        cls,
        xml: str | os.PathLike[str],
        *,
        image_shape: Sequence[int],
        voxel_size_a: float,
        volume_shape: Sequence[int] | None = None,
        full_shape_a: Sequence[float] | None = None,
        settings: str | os.PathLike[str] | None = None,
    ) -> Reconstruction:
        """A Warp/WarpTools tomogram: the tilt-series XML plus the reconstruction settings.

        ``full_shape_a``: ``VolumeDimensionsPhysical`` (Å); default from ``settings`` (the
        session's ``.settings``: Tomo Dimensions × PixelSize), the XML, or
        ``volume_shape · voxel_size_a``. ``volume_shape`` default ``round(full / voxel)``
        (give the tomogram header's size when it differs). Centres
        ``VolumeDimensionsPhysical/2`` and ``ImageDimensionsPhysical/2``.
        """
        g = read_warp(xml)
        if full_shape_a is None and settings is not None:
            full_shape_a = read_warp_settings(settings)["volume_dimensions_a"]  # type: ignore[assignment]
        px = g.pixel_size_a
        if px is None:
            raise FileFormatError(f"{xml}: no CTF PixelSize in the Warp XML")
        vs = as_float(voxel_size_a, "voxel_size_a", positive=True, high=1e6)
        if full_shape_a is not None:
            full_a = as_vectors(full_shape_a, "full_shape_a", 3, max_abs=1e9)[0]
        elif g.volume_shape is not None:
            full_a = np.array(g.volume_shape, dtype=np.float64) * px
        elif volume_shape is not None:
            full_a = np.array(_shape3(volume_shape, "volume_shape"), dtype=np.float64) * vs
        else:
            raise InvalidValueError(
                "volume_shape: the Warp XML has no VolumeDimensionsPhysical; give volume_shape= "
                "or full_shape_a="
            )
        auto = tuple(round(float(v) / vs) for v in full_a)
        shape = volume_shape if volume_shape is not None else auto
        return cls(
            g,
            shape,
            voxel_size_a=vs,
            program="warp",
            image_shape=image_shape,
            full_shape=full_a / px,
            notes=[f"Warp {xml}: VolumeDimensionsPhysical {full_a.tolist()} A"],
        )

    @classmethod
    def from_aretomo(
        cls,
        aln: str | os.PathLike[str],
        *,
        pixel_size_a: float,
        volume_shape: Sequence[int] | None = None,
        vol_z: int | None = None,
        at_bin: float = 1.0,
        ctf: str | os.PathLike[str] | None = None,
        flip_volume: bool = True,
    ) -> Reconstruction:
        """An AreTomo3 tomogram: ``.aln`` plus ``-VolZ`` / ``-AtBin`` (or the volume shape).

        ``RawSize`` of the ``.aln`` is the raw image size; the volume is
        ``(nx/AtBin, ny/AtBin, VolZ/AtBin)`` (rounded down) unless ``volume_shape`` is given.
        ``flip_volume=False`` (``-FlipVol 0``) stores the volume as ``(x, z, y)`` slices, taken
        as the same axis rotation as IMOD's un-rotated output (see ``docs/remap.md``).
        """
        g = read_aretomo(aln, ctf=ctf, pixel_size_a=pixel_size_a)
        info = read_aln(aln)
        raw = info["raw_size"]
        if not isinstance(raw, tuple) or len(raw) < 2:
            raise FileFormatError(f"{aln}: no '# RawSize' line (raw image size unknown)")
        b = as_float(at_bin, "at_bin", positive=True, high=1e4)
        nx, ny = int(raw[0]), int(raw[1])
        axes = None if flip_volume else _IMOD_UNROTATED
        if volume_shape is None:
            if vol_z is None:
                raise InvalidValueError(
                    "vol_z: give AreTomo3's -VolZ (unbinned pixels) or volume_shape="
                )
            nz = max(1, int(int(vol_z) / b))
            xyz = (max(1, int(nx / b)), max(1, int(ny / b)), nz)
            volume_shape = xyz if flip_volume else (xyz[0], xyz[2], xyz[1])
        return cls(
            g,
            volume_shape,
            binning=b,
            program="aretomo3",
            image_shape=(ny, nx),
            axes=axes,
            notes=[f"AreTomo3 {aln}: RawSize {nx}x{ny}, AtBin {b:g}"],
        )

    @classmethod
    def from_imod(
        cls,
        tilt_com: str | os.PathLike[str],
        rec: str | os.PathLike[str] | None = None,
        *,
        pixel_size_a: float | None = None,
        xf: str | os.PathLike[str] | None = None,
        tlt: str | os.PathLike[str] | None = None,
        xtilt: str | os.PathLike[str] | None = None,
        image_shape: Sequence[int] | None = None,
        rotation: str = "rotx",
        invert: bool = False,
    ) -> Reconstruction:
        """An IMOD tomogram from ``tilt.com`` (+ the ``.rec`` header, when given).

        Reads ``TILTFILE``/``XTILTFILE`` (or ``tlt=``/``xtilt=``), the ``.xf`` (default
        ``<tilt file stem>.xf``), ``IMAGEBINNED``, ``THICKNESS``, ``FULLIMAGE``,
        ``SUBSETSTART``, ``SHIFT``, ``OFFSET``, ``XAXISTILT`` (unbinned pixels, divided by
        ``IMAGEBINNED`` as ``tilt.f90`` does).

        Parameters
        ----------
        rotation : {"rotx", "none", "flipyz"}
            What was done to ``tilt``'s output: ``"rotx"`` (``trimvol -rx`` / ``clip rotx``,
            etomo's default post-processing: file axes = canonical), ``"none"`` (``tilt``'s raw
            ``(x, z, y)`` slices, canonical ``z = −file y``), ``"flipyz"`` (``trimvol -yz``:
            a mirror image, ``det F = −1``).
        pixel_size_a : float, optional
            Unbinned tilt-series pixel (Å); default from the ``.rec`` header / binning.
        """
        com_path = Path(tilt_com)
        com = read_tilt_com(com_path)
        base = com_path.parent
        b = float(com.get("IMAGEBINNED", 1))
        tlt_p = Path(tlt) if tlt is not None else base / str(com.get("TILTFILE", ""))
        if not tlt_p.is_file():
            raise FileFormatError(f"{com_path}: TILTFILE {tlt_p} not found; pass tlt=")
        xt_p = xtilt if xtilt is not None else com.get("XTILTFILE")
        xt_path = (
            None if xt_p in (None, True) else Path(base / str(xt_p) if xtilt is None else xt_p)
        )
        xf_p = Path(xf) if xf is not None else tlt_p.with_suffix(".xf")
        rec_shape: tuple[int, int, int] | None = None
        rec_voxel: float | None = None
        if rec is not None:
            import mrcfile

            with mrcfile.open(rec, header_only=True, permissive=True) as m:
                h = m.header
                rec_shape = (int(h.nx), int(h.ny), int(h.nz))
                vx = float(m.voxel_size.x)
                rec_voxel = vx if vx > 0 else None
        if pixel_size_a is None:
            if rec_voxel is None:
                raise InvalidValueError(
                    "pixel_size_a: give the unbinned tilt-series pixel size (Å) or a .rec with "
                    "a voxel size in its header"
                )
            pixel_size_a = rec_voxel / b
        px = as_float(pixel_size_a, "pixel_size_a", positive=True, high=1e5)
        g = read_imod(
            tlt_p,
            xf=xf_p if xf_p.is_file() else None,
            xtilt=xt_path,
            pixel_size_a=px,
            invert=invert,
            x_axis_tilt_deg=float(com.get("XAXISTILT", 0.0)),
        )
        notes = [f"IMOD {com_path}: IMAGEBINNED {b:g}, rotation {rotation!r}"]
        if not xf_p.is_file():
            notes.append(f"no .xf ({xf_p}): tilt axis 0, no shifts")
        off = com.get("OFFSET", 0.0)
        off = (off, 0.0) if not isinstance(off, tuple) else (off + (0.0,))[:2]
        if off[0] != 0 or off[1] != 0:
            r = np.radians(np.asarray(g.axis_deg))
            dx = float(off[1]) * px  # tilt-axis x offset in the aligned image, unbinned px
            s = np.asarray(g.shifts_a) + np.stack([np.cos(r) * dx, np.sin(r) * dx], axis=1)
            g = g.replace(tilt_deg=np.asarray(g.tilt_deg) + float(off[0]), shifts_a=s)
            notes.append(f"OFFSET {off}: tilt angles + {off[0]}, axis x offset {off[1]} px")
        full = com.get("FULLIMAGE")
        if image_shape is None:
            if not isinstance(full, tuple):
                raise InvalidValueError(
                    f"image_shape: {com_path} has no FULLIMAGE; give image_shape=(ny, nx)"
                )
            image_shape = (int(full[1]), int(full[0]))
        ny, nx = as_shape2(image_shape, "image_shape")
        fx, fy = (full if isinstance(full, tuple) else (nx, ny))[:2]
        sub = com.get("SUBSETSTART", (0, 0))
        sub = sub if isinstance(sub, tuple) else (sub, 0)
        shift = com.get("SHIFT", (0.0, 0.0))
        shift = shift if isinstance(shift, tuple) else (shift, 0.0)
        nx_b, ny_b = math.ceil(fx / b), math.ceil(fy / b)
        thick_b = max(1, int(float(com.get("THICKNESS", 1)) / b))
        # centre in canonical voxel axes (x, y, z), binned: tilt.f90 centres the slice on the
        # full aligned image (SUBSETSTART) and moves it by SHIFT (x, z). Signs from tilt.f90's
        # AdjustOrigin header: origx -= delta·(nx/2 − iwide/2 − xoffset) (tilt axis at output
        # x = iwide/2 + xoffset) and origy = delta·(ithick/2 + yoffset) (specimen z = 0 at
        # row ithick/2 + yoffset of tilt's (x, z, y) output, whose rows run along −z)
        c_can = np.array(
            [
                centre_of("geometric", nx_b) - sub[0] / b + shift[0] / b,
                centre_of("geometric", ny_b) - sub[1] / b,
                centre_of("geometric", thick_b) - shift[1] / b,
            ]
        )
        if shift != (0.0, 0.0) and shift != (0, 0):
            notes.append(
                f"SHIFT {shift}: tilt axis at x = centre + SHIFTx, specimen centre at "
                "tilt's output row centre + SHIFTz (tilt.f90 AdjustOrigin)"
            )
        axes = _IMOD_ROTATIONS.get(rotation)
        if axes is None:
            raise UnknownConventionError(
                f"rotation: expected one of {tuple(_IMOD_ROTATIONS)}, got {rotation!r}"
            )
        can_shape = np.array([nx_b, ny_b, thick_b], dtype=np.float64)
        file_shape = tuple(int(v) for v in np.abs(axes.T) @ can_shape)
        if rec_shape is not None and tuple(sorted(rec_shape)) != tuple(sorted(file_shape)):
            notes.append(f".rec size {rec_shape} differs from tilt.com's {file_shape}")
            file_shape = rec_shape
        # file voxel centre: canonical centre c_can relative to a canonical box corner
        c_file = np.abs(axes.T) @ c_can
        flip = (axes.T @ np.ones(3)) < 0  # file axes running against canonical ones
        c_file = np.where(flip, np.array(file_shape) - 1 - c_file, c_file)
        return cls(
            g,
            file_shape,
            binning=b,
            program="imod",
            image_shape=(ny, nx),
            pixel_size_a=px,
            centre=c_file,
            axes=axes,
            notes=notes,
        )

    @classmethod
    def from_portal(
        cls,
        alignment_json: str | os.PathLike[str],
        *,
        tomogram: int | None = None,
        tomograms_json: str | os.PathLike[str] | None = None,
        volume_shape: Sequence[int] | None = None,
        image_shape: Sequence[int] | None = None,
        pixel_size_a: float | None = None,
    ) -> Reconstruction:
        """A CZ cryoET Data Portal tomogram: ``alignment_metadata.json`` + tomogram metadata.

        The voxel size is the *implied* one, ``pixel × n_x / N_x`` (the published
        ``voxel_spacing`` is rounded: 4.99 Å for 4096·1.54/1260 = 5.00622 Å); a difference
        above 0.1 % from the published value is noted. ``tomogram``: the tomogram id (default
        the finest one in ``tomograms_json``, default the alignment file itself).
        """
        g, facts = read_portal_alignment(alignment_json, pixel_size_a=pixel_size_a)
        if image_shape is None:
            image_shape = facts["image_shape"]
        if image_shape is None:
            raise InvalidValueError("image_shape: the portal record has no tilt-series size")
        ny, nx = as_shape2(image_shape, "image_shape")
        notes = []
        if volume_shape is None:
            recs = read_portal_tomograms(tomograms_json or alignment_json)
            if tomogram is not None:
                recs = [r for r in recs if r.id == int(tomogram)]
                if not recs:
                    raise InvalidValueError(f"tomogram: id {tomogram} not in the tomogram records")
            rec = min(recs, key=lambda r: r.voxel_spacing_a)
            volume_shape = rec.volume_shape
            notes.append(f"portal tomogram {rec.id}: published voxel {rec.voxel_spacing_a} A")
            published = rec.voxel_spacing_a
        else:
            published = None
        shape = _shape3(volume_shape, "volume_shape")
        if g.pixel_size_a is None:
            raise InvalidValueError("pixel_size_a: the tilt-series pixel size is needed")
        implied = g.pixel_size_a * nx / shape[0]
        if published is not None and abs(implied - published) > 1e-3 * published:
            notes.append(
                f"implied voxel {implied:.6g} A (pixel x {nx} / {shape[0]}) used, not the "
                f"rounded {published} A"
            )
        return cls(
            g,
            shape,
            voxel_size_a=implied,
            program="portal",
            image_shape=(ny, nx),
            notes=notes,
        )


# IMOD `tilt` writes (x, z, y) slices with z upside down (tilt.f90, io/imod.py notes):
# canonical (x, y, z) = (file x, file z, −file y)
_IMOD_UNROTATED = np.array([[1.0, 0, 0], [0, 0, 1.0], [0, -1.0, 0]])
_IMOD_ROTATIONS = {
    "rotx": np.eye(3),
    "none": _IMOD_UNROTATED,
    "flipyz": np.diag([1.0, 1.0, -1.0]),
}
