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
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import mrcfile
import numpy as np
from numpy.typing import NDArray

from emgeom._validate import as_float, as_shape2, as_vectors, require
from emgeom.errors import (
    FileFormatError,
    InvalidValueError,
    UnknownConventionError,
)
from emgeom.io.aretomo import read_aln, read_aretomo
from emgeom.io.atomic import file_error
from emgeom.io.imod import read_imod
from emgeom.io.imod_tilt_com import read_tilt_com
from emgeom.io.portal import read_portal_alignment, read_portal_tomograms
from emgeom.io.relion_tomo import read_relion
from emgeom.io.text import as_path, read_bytes
from emgeom.io.warp_settings import read_warp_settings
from emgeom.io.warp_xml import read_warp
from emgeom.model.geometry import TiltGeometry
from emgeom.tilt._reconstruction_geometry import (
    CENTRE_RULES,
    IMAGE_CENTRES,
    PROGRAMS,
    VOLUME_CENTRES,
    ReconstructionGeometry,
    _shape3,
    centre_of,
)

__all__ = [
    "CENTRE_RULES",
    "IMAGE_CENTRES",
    "PROGRAMS",
    "VOLUME_CENTRES",
    "Reconstruction",
    "centre_of",
]


class Reconstruction(ReconstructionGeometry):
    """The geometry of one tomogram reconstructed from one tilt series, with readers.

    See :class:`~emgeom.tilt._reconstruction_geometry.ReconstructionGeometry` for the
    constructor (``Reconstruction(alignment, volume_shape, voxel_size_a=..., binning=...,
    program=..., image_shape=(ny, nx), ...)``), the frames and :meth:`project`; the
    ``from_*`` classmethods read each program's files.
    """

    __slots__ = ()

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
        ``flip_volume=True`` is ``-FlipVol 1`` (the usual choice; the portal's AreTomo3
        tomograms): AreTomo3 ``CAreTomoMain::mFlipVol`` turns its ``(x, z, y)`` slices into
        ``(x, y, z)`` with new z = (rows − 1) − old row and new y = old z, the same rotation
        as IMOD's ``clip rotx``. ``flip_volume=False`` is AreTomo3's own default
        ``-FlipVol 0`` (``CAtInput``: ``m_iFlipVol = 0``): the ``(x, z, y)`` slices, laid out
        as IMOD's un-rotated ``tilt`` output.
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
        b = float(com.get("IMAGEBINNED", 1))
        rec_shape, rec_voxel = _mrc_header(rec) if rec is not None else (None, None)
        if pixel_size_a is None:
            if rec_voxel is None:
                has = f" ({rec} has none)" if rec is not None else ""
                raise InvalidValueError(
                    "pixel_size_a: give the unbinned tilt-series pixel size (Å) or a .rec with "
                    f"a voxel size in its header{has}"
                )
            pixel_size_a = rec_voxel / b
        px = as_float(pixel_size_a, "pixel_size_a", positive=True, high=1e5)
        notes = [f"IMOD {com_path}: IMAGEBINNED {b:g}, rotation {rotation!r}"]
        g = _imod_alignment(com, com_path, tlt, xf, xtilt, px, invert, notes)
        file_shape, c_file, axes, image = _imod_volume(
            com, com_path, image_shape, rotation, rec_shape, notes
        )
        return cls(
            g,
            file_shape,
            binning=b,
            program="imod",
            image_shape=image,
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


#: largest voxel size (Å) accepted from a ``.rec`` header (as_float's bound on pixel sizes)
_MAX_VOXEL_A = 1e5


def _mrc_header(rec: str | os.PathLike[str]) -> tuple[tuple[int, int, int], float | None]:
    """``(nx, ny, nz)`` and the voxel size (Å, None when 0) of an MRC header (header only;
    a file without the ``MAP`` id, a valid mode and sane sizes is refused).
    """
    path = as_path(rec, "rec")
    # missing, a folder, unreadable -> EmgeomFileError; a file shorter than a header -> refused
    if len(read_bytes(path, 1024, what="MRC file")) < 1024:
        raise FileFormatError(f"{path}: not an MRC file (shorter than the 1024-byte header)")
    try:
        with warnings.catch_warnings():  # permissive mode warns about odd headers
            warnings.simplefilter("ignore")
            with mrcfile.open(path, header_only=True, permissive=True) as m:
                h = m.header
                shape = (int(h.nx), int(h.ny), int(h.nz))
                mode, map_id = int(h.mode), bytes(h.map)
                vx = float(m.voxel_size.x)
    except OSError as exc:
        raise file_error(path, exc, "read") from None
    except (ValueError, EOFError) as exc:
        raise FileFormatError(f"{path}: not an MRC file ({exc})") from None
    sane = all(0 < v <= 1 << 16 for v in shape) and mode in (0, 1, 2, 3, 4, 6, 12, 101)
    if not sane:
        raise FileFormatError(f"{path}: not an MRC file (map id {map_id!r}, size {shape})")
    if np.isfinite(vx) and vx > _MAX_VOXEL_A:
        raise FileFormatError(f"{path}: voxel size {vx:g} Å in the header is not plausible")
    return shape, (vx if np.isfinite(vx) and vx > 0 else None)


def _imod_alignment(
    com: dict[str, Any],
    com_path: Path,
    tlt: str | os.PathLike[str] | None,
    xf: str | os.PathLike[str] | None,
    xtilt: str | os.PathLike[str] | None,
    px: float,
    invert: bool,
    notes: list[str],
) -> TiltGeometry:
    """The tilt geometry ``tilt`` used: .tlt/.xf/.xtilt, XAXISTILT, OFFSET (angle, axis x)."""
    base = com_path.parent
    tlt_p = Path(tlt) if tlt is not None else base / str(com.get("TILTFILE", ""))
    if not tlt_p.is_file():
        raise FileFormatError(f"{com_path}: TILTFILE {tlt_p} not found; pass tlt=")
    xt_p = xtilt if xtilt is not None else com.get("XTILTFILE")
    xt_path = None if xt_p in (None, True) else Path(base / str(xt_p) if xtilt is None else xt_p)
    xf_p = Path(xf) if xf is not None else tlt_p.with_suffix(".xf")
    g = read_imod(
        tlt_p,
        xf=xf_p if xf_p.is_file() else None,
        xtilt=xt_path,
        pixel_size_a=px,
        invert=invert,
        x_axis_tilt_deg=float(com.get("XAXISTILT", 0.0)),
    )
    if not xf_p.is_file():
        notes.append(f"no .xf ({xf_p}): tilt axis 0, no shifts")
    off = com.get("OFFSET", 0.0)
    off = (off, 0.0) if not isinstance(off, tuple) else (off + (0.0,))[:2]
    if off[0] != 0 or off[1] != 0:
        # tilt-axis x offset in the aligned image (unbinned px), back into the raw image
        r = np.radians(np.asarray(g.axis_deg))
        dx = float(off[1]) * px
        s = np.asarray(g.shifts_a) + np.stack([np.cos(r) * dx, np.sin(r) * dx], axis=1)
        g = g.replace(tilt_deg=np.asarray(g.tilt_deg) + float(off[0]), shifts_a=s)
        notes.append(f"OFFSET {off}: tilt angles + {off[0]}, axis x offset {off[1]} px")
    return g


def _imod_volume(
    com: dict[str, Any],
    com_path: Path,
    image_shape: Sequence[int] | None,
    rotation: str,
    rec_shape: tuple[int, int, int] | None,
    notes: list[str],
) -> tuple[tuple[int, ...], NDArray[np.float64], NDArray[np.float64], tuple[int, int]]:
    """File shape, file-voxel centre, axes and raw image shape of a ``tilt`` reconstruction.

    tilt.f90 centres the slice on the full aligned image (``SUBSETSTART``) and moves it by
    ``SHIFT`` (x, z). Signs from its ``AdjustOrigin`` header: ``origx −= delta·(nx/2 −
    iwide/2 − xoffset)`` (tilt axis at output x = iwide/2 + xoffset) and ``origy =
    delta·(ithick/2 + yoffset)`` (specimen z = 0 at row ithick/2 + yoffset of tilt's
    (x, z, y) output, whose rows run along −z).
    """
    b = float(com.get("IMAGEBINNED", 1))
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
    # file voxel centre: the canonical centre, counted from the far end on reversed axes
    c_file = np.abs(axes.T) @ c_can
    flip = (axes.T @ np.ones(3)) < 0
    c_file = np.where(flip, np.array(file_shape) - 1 - c_file, c_file)
    return file_shape, c_file, axes, (ny, nx)
