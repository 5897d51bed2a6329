"""SerialEM montages: piece layout from the ``.mdoc``, pieces from the MRC stack, assembly.

Coordinates (SerialEM ``hlp/html/about_formats.htm``: "Pixel coordinates are in a right-handed
system despite the ubiquitous inversion of images in Y"): ``PieceCoordinates`` give the lower
left corner of each piece in the full montage, x right, y *up*. SerialEM stores images flipped
in Y (``KStoreMRC.cpp : WriteSection`` → ``KImageStore::convertForWriting(.., true, ..)``), so
row 0 of a piece as ``mrcfile`` returns it is the *bottom* row: piece pixel ``(column, row)``
lies at right-handed ``PieceCoordinates + (column + 0.5, row + 0.5)``. emgeom's *montage pixels*
are numpy ``(x, y)`` of the assembled array at binning 1 with the same orientation (row 0 at the
bottom, as ``mrcfile`` returns a map saved by SerialEM): right-handed coordinates minus 0.5.

Layout (``KImageStore.cpp : KImageStore::CheckMontage``): the spacing is the smallest non-zero
piece coordinate (all must be multiples of it), ``n = max/spacing + 1``,
``overlap = frame − spacing``; ``full = n·frame − (n−1)·overlap`` must equal ``FullMontSize``
when written. The piece index is ``ix·ny + iy`` with ``iy`` counted from the bottom
(about_formats.htm ``PieceOn``; ``SerialEMView.cpp : StageToImage`` works with inverted ``iy``).
``ZValue`` is the MRC section, in acquisition order, *not* the piece index.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from emgeom._validate import (
    MAX_IMAGE_PIXELS,
    as_float,
    as_int,
    as_matrix,
    check_alloc,
    describe,
)
from emgeom.errors import EmgeomFileError, FileFormatError, InvalidValueError
from emgeom.io.atomic import file_error
from emgeom.io.mdoc import Mdoc, read_mdoc
from emgeom.io.text import as_path, read_bytes

__all__ = ["Montage", "read_montage"]

PieceReader = Callable[[int], NDArray[Any]]


#: largest camera frame (pixels per side) and montage coordinate accepted from an mdoc
_MAX_FRAME = 1 << 16
_MAX_COORD = 1 << 30


def _ceil4(v: int) -> int:
    return 4 * math.ceil(v / 4)


def _spacing(coords: NDArray[np.int64], frame: int, where: str) -> int:
    """``CheckMontage``: the smallest non-zero coordinate, or a divisor of it up to 1/100."""
    nz = coords[coords > 0]
    if nz.size == 0:
        return frame
    m = int(nz.min())
    for miss in range(1, 101):
        if m % miss == 0 and np.all(coords % (m // miss) == 0):
            return m // miss
    raise FileFormatError(f"{where}: PieceCoordinates are not multiples of a common spacing")


def _bin(a: NDArray[Any], b: int) -> NDArray[np.float32]:
    """Exact ``b×b`` block mean (the image cropped to a multiple of ``b``)."""
    a = np.asarray(a, dtype=np.float32)
    if b == 1:
        return a
    ny, nx = a.shape[0] // b, a.shape[1] // b
    return np.asarray(
        a[: ny * b, : nx * b].reshape(ny, b, nx, b).mean(axis=(1, 3), dtype=np.float64), np.float32
    )


@dataclass(eq=False)
class Montage:
    """A SerialEM montage (one montage section of a file).

    Attributes
    ----------
    mdoc_path : str
        The ``.mdoc`` describing it.
    path : str or None
        The MRC stack of pieces (None: metadata only, or pieces from ``reader``).
    section : int
        The montage section (third ``PieceCoordinates`` number) this object describes.
    frame_size : (int, int)
        ``(nx, ny)`` of one piece (``ImageSize``), in piece pixels.
    n_frames, spacing, overlap : (int, int)
        Layout in X and Y (piece pixels).
    full_size : (int, int)
        ``(width, height)`` of the full montage if all pieces were present.
    piece_coords : ndarray (n, 2) int
        ``PieceCoordinates`` x, y: lower-left corner of each piece, right-handed.
    piece_z : ndarray (n,) int
        MRC section (``ZValue``) of each piece.
    aligned_coords, aligned_coords_vs : ndarray (n, 2) or None
        ``AlignedPieceCoords`` / ``AlignedPieceCoordsVS`` when written.
    stage_um : ndarray (n, 2) or None
        ``StagePosition`` of each piece (µm).
    binning : float
        Camera binning of the pieces (``Binning``).
    pixel_size_a : float or None
        ``PixelSpacing`` (Å) as written (nominal: for View/Search with a focus offset it is not
        the real geometry; use the Navigator's ``MapScaleMat``).
    mdoc : Mdoc
        The parsed file.
    """

    mdoc_path: str
    path: str | None
    section: int
    frame_size: tuple[int, int]
    n_frames: tuple[int, int]
    spacing: tuple[int, int]
    overlap: tuple[int, int]
    full_size: tuple[int, int]
    piece_coords: NDArray[np.int64]
    piece_z: NDArray[np.int64]
    aligned_coords: NDArray[np.float64] | None
    aligned_coords_vs: NDArray[np.float64] | None
    stage_um: NDArray[np.float64] | None
    binning: float
    pixel_size_a: float | None
    mdoc: Mdoc = field(repr=False)
    reader: PieceReader | None = field(default=None, repr=False)

    # ------------------------------------------------------------------ layout
    @property
    def layout(self) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
        """``(n_frames, frame_size, overlap)``, as :meth:`MapFrame.from_item` takes it."""
        return self.n_frames, self.frame_size, self.overlap

    @property
    def piece_ixy(self) -> NDArray[np.int64]:
        """``(n, 2)`` piece grid position ``(ix, iy)``, ``iy`` from the bottom."""
        return self.piece_coords // np.array(self.spacing)

    @property
    def piece_index(self) -> NDArray[np.int64]:
        """SerialEM's piece index ``ix·ny + iy`` of each piece (``PieceOn``)."""
        ixy = self.piece_ixy
        return ixy[:, 0] * self.n_frames[1] + ixy[:, 1]

    def overview_size(self, binning: int) -> tuple[int, int]:
        """``(width, height)`` of the overview at ``binning``: width rounded up to a multiple of
        4 (about_formats.htm "Montage overview images are always displayed with the size in X
        rounded up to a multiple of 4").
        """
        b = as_int(binning, "binning", low=1)
        return _ceil4(self.full_size[0] // b), self.full_size[1] // b

    # ------------------------------------------------------------------ pieces
    def piece(self, i: int) -> NDArray[Any]:
        """Piece ``i`` (list order) as numpy ``(rows, cols)``, row 0 = bottom of the piece."""
        if self.reader is None:
            raise EmgeomFileError(f"{self.mdoc_path}: no piece images (MRC file not given/found)")
        idx = as_int(i, "i", low=0, high=len(self.piece_z) - 1)
        img = np.asarray(self.reader(int(self.piece_z[idx])))
        if img.shape != (self.frame_size[1], self.frame_size[0]):
            raise FileFormatError(
                f"{self.path or self.mdoc_path}: section {self.piece_z[idx]} has shape "
                f"{img.shape}, "
                f"ImageSize says {self.frame_size[1]}×{self.frame_size[0]} (rows×cols)"
            )
        if img.dtype.kind in "fc" and not np.isfinite(img).all():
            raise FileFormatError(
                f"{self.path or self.mdoc_path}: section {self.piece_z[idx]} has NaN/inf pixels"
            )
        return img

    def piece_at(self, xy_px: ArrayLike) -> int:
        """The piece (list index) SerialEM uses for montage pixel ``(x, y)``.

        The rule of ``SerialEMView.cpp : CSerialEMView::StageToImage``: the piece whose tile
        contains the point, tiles meeting midway in the overlap zones
        (``ix = floor((x_rh − overlap/2)/spacing)``, clamped to the grid), and for a missing
        piece the existing one nearest in grid steps. navigator.txt's
        ``px = (x − spacing/2)/spacing`` is *not* used: it puts the boundary half a spacing too
        far and can return a piece that does not contain the point (tests/serialem/
        test_serialem_montage.py).
        """
        p = as_matrix(xy_px, "xy_px", (2,))
        rh = p + 0.5
        ix = int(
            np.clip(
                math.floor((rh[0] - self.overlap[0] / 2) / self.spacing[0]), 0, self.n_frames[0] - 1
            )
        )
        iy = int(
            np.clip(
                math.floor((rh[1] - self.overlap[1] / 2) / self.spacing[1]), 0, self.n_frames[1] - 1
            )
        )
        ixy = self.piece_ixy
        d2 = (ixy[:, 0] - ix) ** 2 + (ixy[:, 1] - iy) ** 2
        # ties as StageToImage's loop meets them: ix ascending, then iy from the top
        return int(np.lexsort((-ixy[:, 1], ixy[:, 0], d2))[0])

    def contains(self, i: int, xy_px: ArrayLike) -> bool:
        """True when montage pixel ``(x, y)`` lies on piece ``i`` (nominal layout)."""
        p = as_matrix(xy_px, "xy_px", (2,)) + 0.5 - self.piece_coords[i]
        return bool(0 <= p[0] <= self.frame_size[0] and 0 <= p[1] <= self.frame_size[1])

    def coords(self, which: str = "auto") -> NDArray[np.float64]:
        """Piece origins: ``"nominal"``, ``"aligned"``, ``"aligned_vs"`` or ``"auto"`` (aligned
        if present, else aligned-VS, else nominal).
        """
        table = {
            "nominal": self.piece_coords.astype(np.float64),
            "aligned": self.aligned_coords,
            "aligned_vs": self.aligned_coords_vs,
        }
        if not isinstance(which, str):
            raise InvalidValueError(
                f"which: expected auto/nominal/aligned/aligned_vs, got {describe(which)}"
            )
        if which == "auto":
            for key in ("aligned", "aligned_vs", "nominal"):
                if table[key] is not None:
                    return np.asarray(table[key], dtype=np.float64)
        if which not in table:
            raise InvalidValueError(
                f"which: expected auto/nominal/aligned/aligned_vs, got {which!r}"
            )
        c = table[which]
        if c is None:
            raise InvalidValueError(f"{self.mdoc_path}: no {which} piece coordinates in the mdoc")
        return np.asarray(c, dtype=np.float64)

    def assemble(
        self, binning: int = 1, *, which: str = "auto", fill: float | None = None
    ) -> NDArray[np.float32]:
        """The overview at ``binning``: each piece shown in its tile (boundaries midway in the
        overlap zones) at its aligned position when aligned coordinates exist, like SerialEM's
        display (``StageToImage`` mini-offsets: tile from the nominal layout, content offset by
        aligned − nominal). Offsets are rounded to whole binned pixels. Rows: row 0 = bottom
        (the orientation ``mrcfile`` gives a saved map). Missing pieces are ``fill`` (default:
        the mean of the pieces read).

        Returns
        -------
        ndarray (height, width) float32, of :meth:`overview_size`.
        """
        b = as_int(binning, "binning", low=1)
        fill_value = None if fill is None else as_float(fill, "fill", low=-3e38, high=3e38)
        w, h = self.overview_size(b)
        if w * h > MAX_IMAGE_PIXELS:
            raise InvalidValueError(f"binning: overview of {w}×{h} pixels is too large")
        check_alloc(w * h, 4, "binning", shape=(h, w))  # the float32 overview
        return self._render(self.coords(which), b, (0, 0), (h, w), fill_value)

    def _tile_of(self, centres: NDArray[Any], axis: int) -> NDArray[np.int64]:
        t = np.floor((centres - self.overlap[axis] / 2) / self.spacing[axis]).astype(np.int64)
        return np.clip(t, 0, self.n_frames[axis] - 1)

    def _render(
        self,
        origins: NDArray[np.float64],
        b: int,
        start: tuple[int, int],
        shape: tuple[int, int],
        fill: float | None,
    ) -> NDArray[np.float32]:
        h, w = shape
        out = np.full((h, w), np.nan, dtype=np.float32)
        cx = self._tile_of(b * (np.arange(start[0], start[0] + w, dtype=np.float64) + 0.5), 0)
        cy = self._tile_of(b * (np.arange(start[1], start[1] + h, dtype=np.float64) + 0.5), 1)
        ixy = self.piece_ixy
        means = []
        for i, (ix, iy) in enumerate(ixy):
            cols = np.flatnonzero(cx == ix)
            rows = np.flatnonzero(cy == iy)
            if cols.size == 0 or rows.size == 0:
                continue
            pb = _bin(self.piece(i), b)
            means.append(float(pb.mean()))
            off = np.round(origins[i] / b).astype(np.int64)
            src_c = cols + start[0] - off[0]
            src_r = rows + start[1] - off[1]
            okc = (src_c >= 0) & (src_c < pb.shape[1])
            okr = (src_r >= 0) & (src_r < pb.shape[0])
            out[np.ix_(rows[okr], cols[okc])] = pb[np.ix_(src_r[okr], src_c[okc])]
        value = fill if fill is not None else (float(np.mean(means)) if means else 0.0)
        out[np.isnan(out)] = value
        return out

    def extract_piece(
        self, i: int, binning: int = 1, window: tuple[int, int, int, int] | None = None
    ) -> NDArray[np.float32]:
        """Piece ``i`` (or its ``window = (x0, y0, width, height)`` in piece pixels, numpy
        orientation) binned by exact block means from the window's origin: binned pixel ``j``
        covers piece pixels ``[x0 + b·j, x0 + b·j + b)``. Only the window is read from a
        memory-mapped file.
        """
        b = as_int(binning, "binning", low=1)
        img = self.piece(i)
        if window is not None:
            x0, y0, w, h = (int(v) for v in as_matrix(window, "window", (4,)))
            if (x0, y0, w, h) != tuple(as_matrix(window, "window", (4,))):
                raise InvalidValueError(f"window: expected 4 integers, got {window!r}")
            if x0 < 0 or y0 < 0 or w < b or h < b or x0 + w > img.shape[1] or y0 + h > img.shape[0]:
                raise InvalidValueError(f"window: {window} is not inside the piece {img.shape}")
            img = img[y0 : y0 + h, x0 : x0 + w]
        return _bin(img, b)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_mdoc(
        cls,
        mdoc_path: str | os.PathLike[str],
        *,
        section: int = 0,
        reader: PieceReader | None = None,
        mrc_path: str | None = None,
    ) -> Montage:
        """The montage described by ``mdoc_path`` (pieces from ``reader(z)`` if given).

        Raises
        ------
        FileFormatError
            Missing ``ImageSize``/``PieceCoordinates``, coordinates not on a common spacing,
            overlaps out of range, duplicate pieces, or ``FullMontSize``/``FullMontNumFrames``
            that disagree with the pieces (each error names the file and key).
        """
        md = read_mdoc(mdoc_path)
        src = md.path
        size = md.require(None, "ImageSize", 2)
        if not np.all((size > 0) & (size <= _MAX_FRAME) & (size == np.round(size))):
            raise FileFormatError(
                f"{src}: ImageSize {size[0]:g} {size[1]:g} must be integers in 1..{_MAX_FRAME}"
            )
        fx, fy = int(size[0]), int(size[1])
        t = _piece_tables(md, section)
        ci = t["coords"]
        sx = _spacing(ci[:, 0], fx, src)
        sy = _spacing(ci[:, 1], fy, src)
        nx, ny = int(ci[:, 0].max()) // sx + 1, int(ci[:, 1].max()) // sy + 1
        ox = fx - sx if nx > 1 else 0
        oy = fy - sy if ny > 1 else 0
        if not (0 <= ox < fx and 0 <= oy < fy):
            raise FileFormatError(
                f"{src}: PieceCoordinates spacing {sx}×{sy} exceeds ImageSize {fx}×{fy} "
                "(negative overlap): inconsistent montage metadata"
            )
        keys = ci[:, 0] // sx * ny + ci[:, 1] // sy
        if len(set(keys.tolist())) != len(keys):
            raise FileFormatError(f"{src}: two pieces share the same PieceCoordinates")
        full = (nx * fx - (nx - 1) * ox, ny * fy - (ny - 1) * oy)
        _check_mont_section(md, section, full, (nx, ny))
        first = md.of_kind("ZValue")[0]
        binv = md.floats(first, "Binning", 1)
        return cls(
            mdoc_path=src,
            path=mrc_path,
            section=section,
            frame_size=(fx, fy),
            n_frames=(nx, ny),
            spacing=(sx, sy),
            overlap=(ox, oy),
            full_size=full,
            piece_coords=ci,
            piece_z=t["z"],
            aligned_coords=t["aligned"],
            aligned_coords_vs=t["aligned_vs"],
            stage_um=t["stage"],
            binning=1.0 if binv is None else float(binv[0]),
            pixel_size_a=md.pixel_spacing_a(),
            mdoc=md,
            reader=reader,
        )


def _piece_tables(md: Mdoc, section: int) -> dict[str, Any]:
    """Per-piece tables of one montage section: coords (int), z, aligned, aligned_vs, stage
    (each table None unless every piece has the key).
    """
    src = md.path
    rows: dict[str, list[Any]] = {k: [] for k in ("coords", "z", "aligned", "aligned_vs", "stage")}
    for sec in md.of_kind("ZValue"):
        pc = md.floats(sec, "PieceCoordinates", 3)
        if pc is None:
            raise FileFormatError(f"{src}: [ZValue = {sec.name}]: missing key PieceCoordinates")
        if int(pc[2]) != section:
            continue
        try:
            rows["z"].append(int(sec.name))
        except ValueError:
            raise FileFormatError(f"{src}: [ZValue = {sec.name}]: not an integer section") from None
        rows["coords"].append(pc[:2])
        for name, key, n in (
            ("aligned", "AlignedPieceCoords", 3),
            ("aligned_vs", "AlignedPieceCoordsVS", 3),
            ("stage", "StagePosition", 2),
        ):
            v = md.floats(sec, key, n)
            rows[name].append(None if v is None else v[:2])
    if not rows["coords"]:
        raise FileFormatError(
            f"{src}: no ZValue section with PieceCoordinates for montage section {section}"
        )
    coords = np.array(rows["coords"], dtype=np.float64)
    if np.any(coords < 0) or np.any(coords != np.round(coords)) or np.any(coords > _MAX_COORD):
        raise FileFormatError(
            f"{src}: PieceCoordinates must be integers in 0..{_MAX_COORD} (pixels)"
        )
    if min(rows["z"]) < 0:
        raise FileFormatError(f"{src}: ZValue {min(rows['z'])} is negative")
    out: dict[str, Any] = {"coords": coords.astype(np.int64), "z": np.array(rows["z"], np.int64)}
    for name in ("aligned", "aligned_vs", "stage"):
        lst = rows[name]
        out[name] = None if any(v is None for v in lst) else np.array(lst, dtype=np.float64)
    return out


def _check_mont_section(
    md: Mdoc, section: int, full: tuple[int, int], frames: tuple[int, int]
) -> None:
    """``FullMontSize`` / ``FullMontNumFrames`` of the ``[MontSection]`` must match the pieces."""
    for s in md.of_kind("MontSection"):
        if s.name != str(section):
            continue
        fm = md.floats(s, "FullMontSize", 2)
        if fm is not None and (int(fm[0]), int(fm[1])) != full:
            raise FileFormatError(
                f"{md.path}: [MontSection = {s.name}] FullMontSize {int(fm[0])} {int(fm[1])} "
                f"disagrees with the pieces ({full[0]} {full[1]} from ImageSize and "
                "PieceCoordinates): inconsistent montage metadata"
            )
        nf = md.floats(s, "FullMontNumFrames", 2)
        if nf is not None and (int(nf[0]), int(nf[1])) != frames:
            raise FileFormatError(
                f"{md.path}: [MontSection = {s.name}] FullMontNumFrames {int(nf[0])} "
                f"{int(nf[1])} disagrees with the pieces ({frames[0]} {frames[1]})"
            )


def _mrc_reader(path: str, n_needed: int) -> PieceReader:
    import warnings

    import mrcfile

    # missing, a folder or unreadable -> EmgeomFileError naming it (before mrcfile opens it)
    if len(read_bytes(Path(path), 1024, what="montage MRC file")) < 1024:
        raise FileFormatError(f"{path}: not an MRC file (shorter than the 1024-byte header)")
    try:
        with warnings.catch_warnings():  # permissive mode warns about odd headers
            warnings.simplefilter("ignore")
            handle = mrcfile.mmap(path, mode="r", permissive=True)
    except OSError as exc:
        raise file_error(Path(path), exc, "read") from None
    except (ValueError, EOFError) as exc:
        raise FileFormatError(f"{path}: not a readable MRC file ({exc})") from None
    data = handle.data
    if data is None:
        raise FileFormatError(f"{path}: not a readable MRC file (no data block)")
    nz = 1 if data.ndim == 2 else data.shape[0]
    if nz < n_needed:
        raise FileFormatError(f"{path}: has {nz} sections, the mdoc needs {n_needed}")

    def read(z: int) -> NDArray[Any]:
        return np.asarray(data if data.ndim == 2 else data[z])

    return read


def read_montage(
    mrc_path: str | os.PathLike[str],
    mdoc_path: str | os.PathLike[str] | None = None,
    *,
    section: int = 0,
) -> Montage:
    """Read a SerialEM montage: layout from ``mdoc_path`` (default ``<mrc>.mdoc``), pieces
    memory-mapped from ``mrc_path`` (read on demand).

    Raises
    ------
    EmgeomFileError
        The MRC or the mdoc file is missing.
    FileFormatError
        See :meth:`Montage.from_mdoc`; also an MRC with fewer sections than the pieces need.
    """
    mrc = as_path(mrc_path, "mrc_path")
    mdoc = (
        as_path(mdoc_path, "mdoc_path")
        if mdoc_path is not None
        else mrc.with_name(mrc.name + ".mdoc")
    )
    if not mrc.exists():
        raise EmgeomFileError(f"{mrc}: no such montage MRC file")
    read_bytes(mrc, 0, what="montage MRC file")  # a folder, unreadable: named first
    m = Montage.from_mdoc(mdoc, section=section, mrc_path=str(mrc))
    m.reader = _mrc_reader(str(mrc), int(m.piece_z.max()) + 1)
    return m
