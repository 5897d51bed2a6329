"""Exact stage ↔ map-pixel geometry of a SerialEM Navigator map item.

SerialEM's own transform (``NavigatorDlg.cpp : CNavigatorDlg::BufferStageToImage``; outline in
``CNavigatorDlg::NewMap``; developer notes ``Docs/navigator.txt``, "STAGE-IMAGE COORDINATE
TRANSFORMATIONS") maps a stage position ``s`` (µm) to *inverted-Y* buffer coordinates
``(x_se, y_inv)`` (x to the right, y down from the top row of the displayed image, pixel ``i``
spanning ``[i, i+1)``)::

    a      = MapScaleMat with row x scaled by load_w/use_w and row y by load_h/use_h
    del_x  = (W/use_w)·load_w/2 − a_x·s_map
    del_y  = (2 − H/use_h)·load_h/2 − a_y·s_map
    (x_se, y_inv) = a·s + del

with ``(W, H) = MapWidthHeight``, ``s_map = StageXYZ`` of the map item, ``load`` the size of the
image as loaded and ``use`` = ``(W, H)`` (scaled by actual/acquired montage frames, navigator.txt).

emgeom pixels are numpy ``(x = column, y = row)`` of the array that ``mrcfile`` returns for the
map file, pixel centres on integers. SerialEM writes images flipped in Y (``KStoreMRC.cpp :
KStoreMRC::WriteSection`` calls ``KImageStore::convertForWriting(inImage, true, ...)``, which
copies buffer row ``j`` to file row ``H−1−j``), so file row 0 is the *bottom* row of the display::

    column = x_se − 0.5          row = load_h − y_inv − 0.5

i.e. numpy ``(column, row)`` are SerialEM's right-handed pixel coordinates (origin lower left,
about_formats.htm "Pixel coordinates are right handed, with 0,0 at the lower left of the map")
minus half a pixel.
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from emgeom._validate import (
    as_float,
    as_matrix,
    as_pair,
    as_shape2,
    describe,
    real_array,
)
from emgeom.errors import (
    EmgeomFileError,
    FileFormatError,
    ImplausibleValueWarning,
    InvalidTypeError,
    InvalidValueError,
)
from emgeom.io.serialem_nav import NavItem
from emgeom.io.text import as_path

__all__ = ["MapFrame"]


def _apply(aff: NDArray[np.float64], xy: ArrayLike, name: str) -> NDArray[np.float64]:
    p = real_array(xy, name)
    if p.shape[-1:] != (2,) or p.ndim > 2:
        raise InvalidValueError(f"{name}: expected (x, y) or an (n, 2) array, got shape {p.shape}")
    if not np.all(np.isfinite(p)):
        raise InvalidValueError(f"{name}: non-finite coordinate")
    if p.size and np.abs(p).max() > _MAX_COORD:
        raise InvalidValueError(f"{name}: a coordinate beyond ±{_MAX_COORD:g} (µm or pixels)")
    out = p @ aff[:, :2].T + aff[:, 2]
    return np.asarray(out, dtype=np.float64)


#: largest |coordinate| (stage µm or map pixels) converted: results stay finite
_MAX_COORD = 1e9
#: largest MapWidthHeight side (pixels)
_MAX_SIDE = 1e6


def _check_item(item: object) -> None:
    if not isinstance(item, NavItem):
        raise InvalidTypeError(f"item: expected a Navigator item (NavItem), got {describe(item)}")


def _inv(aff: NDArray[np.float64]) -> NDArray[np.float64]:
    inv = np.linalg.inv(aff[:, :2])
    return np.hstack([inv, (-inv @ aff[:, 2])[:, None]])


@dataclass(frozen=True, eq=False)
class MapFrame:
    """The exact stage ↔ pixel transform of one map (see the module docs for the formulas).

    Attributes
    ----------
    stage_to_pixel_affine : ndarray (2, 3)
        ``[column, row] = A @ [x_um, y_um, 1]`` for the map as loaded (emgeom pixels).
    shape : (int, int)
        ``(rows, cols)`` of the map as loaded.
    label : str
        The Navigator label of the map item (or a description).
    map_file : str or None
        ``MapFile`` as written in the Navigator.
    """

    stage_to_pixel_affine: NDArray[np.float64]
    shape: tuple[int, int]
    label: str = ""
    map_file: str | None = None

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_serialem(
        cls,
        scale_mat: ArrayLike,
        stage_xy_um: ArrayLike,
        map_width_height: tuple[int, int],
        map_shape: tuple[int, int] | None = None,
        *,
        use_width_height: tuple[float, float] | None = None,
        label: str = "",
        map_file: str | None = None,
    ) -> MapFrame:
        """Build the frame from SerialEM's numbers (``BufferStageToImage``).

        Parameters
        ----------
        scale_mat : (2, 2)
            ``MapScaleMat`` ``[[xpx, xpy], [ypx, ypy]]``: map pixels per µm, Y row negated.
        stage_xy_um : (x, y)
            The map item's ``StageXYZ[:2]`` (µm).
        map_width_height : (W, H)
            ``MapWidthHeight``.
        map_shape : (rows, cols), optional
            The map as loaded; default ``(H, W)``.
        use_width_height : (float, float), optional
            SerialEM's ``mUseWidth/Height`` (``W·actualFull/mapFull`` for a montage with fewer
            frames than acquired); default ``(W, H)``.
        """
        a0 = as_matrix(scale_mat, "MapScaleMat", (2, 2), max_abs=1e7)  # map px per µm
        s0 = as_matrix(stage_xy_um, "stage_xy_um", (2,), max_abs=_MAX_COORD)
        w, h = as_pair(map_width_height, "map_width_height", low=1.0, high=_MAX_SIDE)
        rows, cols = (int(h), int(w)) if map_shape is None else as_shape2(map_shape, "map_shape")
        uw, uh = (
            (float(w), float(h))
            if use_width_height is None
            else as_pair(use_width_height, "use_width_height", low=1e-9)
        )
        a = a0 * np.array([[cols / uw], [rows / uh]])
        del_x = (w / uw) * cols / 2.0 - a[0] @ s0
        del_y = (2.0 - h / uh) * rows / 2.0 - a[1] @ s0
        # emgeom pixels: column = x_se − 0.5, row = rows − y_inv − 0.5
        aff = np.array(
            [
                [a[0, 0], a[0, 1], del_x - 0.5],
                [-a[1, 0], -a[1, 1], rows - del_y - 0.5],
            ]
        )
        if not np.all(np.isfinite(aff)) or abs(np.linalg.det(aff[:, :2])) < 1e-12:
            raise InvalidValueError(
                f"{label or 'MapScaleMat'}: MapScaleMat {a0.tolist()} is singular"
            )
        return cls(aff, (rows, cols), label, map_file)

    @classmethod
    def from_item(
        cls,
        item: NavItem,
        map_shape: tuple[int, int] | None = None,
        *,
        montage_layout: tuple[tuple[int, int], tuple[int, int], tuple[int, int]] | None = None,
    ) -> MapFrame:
        """The frame of a Navigator map item, for the map loaded at ``map_shape``.

        Parameters
        ----------
        item : NavItem
            A map item (``Type = 2``) written by SerialEM.
        map_shape : (rows, cols), optional
            numpy shape of the map as loaded (binned, reduced overview...); default
            ``MapWidthHeight``.
        montage_layout : ((nx, ny), (frame_x, frame_y), (overlap_x, overlap_y)), optional
            For a montage map: the frames, frame size and overlap of the montage file (e.g.
            ``Montage.layout``). When the file has fewer frames than ``MapFramesXY`` SerialEM
            rescales (navigator.txt ``useWidth = mMapWidth·actualFullWidth/mapFullWidth``).

        Raises
        ------
        FileFormatError
            Not a map, a missing ``MapScaleMat``/``MapWidthHeight``/``StageXYZ``, or a map that
            SerialEM did not make (``Imported = 1`` or ``det(MapScaleMat) > 0``: SerialEM
            negates the Y row, so its maps have det < 0).
        InvalidValueError
            A singular matrix, or ``map_shape`` with another aspect ratio than the map.
        """
        _check_item(item)
        where = f"{item.source}: [Item = {item.label}]"
        if item.kind != "map":
            raise FileFormatError(f"{where}: Type is {item.kind}, not a map (Type = 2)")
        mat = item.map_scale_mat
        if mat is None:
            raise FileFormatError(f"{where}: missing key MapScaleMat")
        wh = item.map_width_height
        if wh is None:
            raise FileFormatError(f"{where}: missing key MapWidthHeight")
        if min(wh) <= 0:
            raise FileFormatError(f"{where}: MapWidthHeight {wh} must be positive")
        det = float(np.linalg.det(mat))
        if not math.isfinite(det) or abs(det) < 1e-12:
            raise InvalidValueError(f"{where}: MapScaleMat {mat.ravel().tolist()} is singular")
        if item.imported or det > 0:
            why = "Imported = 1" if item.imported else f"det(MapScaleMat) = {det:.4g} > 0"
            raise FileFormatError(
                f"{where}: not a SerialEM-made map ({why}); SerialEM's maps have the Y row of "
                "MapScaleMat negated (det < 0) and their outline follows from it, this one's "
                "geometry cannot be trusted"
            )
        sx, sy, _ = item.stage_xyz_um
        use = None
        if montage_layout is not None:
            frames, size, overlap = montage_layout
            use = _use_size(item, wh, frames, size, overlap, where)
        if map_shape is not None:
            rows, cols = as_shape2(map_shape, "map_shape")
            rx, ry = cols / (use[0] if use else wh[0]), rows / (use[1] if use else wh[1])
            if abs(rx / ry - 1.0) > 0.02:
                raise InvalidValueError(
                    f"map_shape: {(rows, cols)} (rows, cols) does not have the aspect of "
                    f"MapWidthHeight {wh} of {where} (x ratio {rx:.4f}, y ratio {ry:.4f})"
                )
        return cls.from_serialem(
            mat,
            (sx, sy),
            wh,
            map_shape,
            use_width_height=use,
            label=item.label,
            map_file=item.map_file,
        )

    # ------------------------------------------------------------------ geometry
    @property
    def pixel_to_stage_affine(self) -> NDArray[np.float64]:
        """``[x_um, y_um] = P @ [column, row, 1]``."""
        return _inv(self.stage_to_pixel_affine)

    def stage_to_pixel(self, xy_um: ArrayLike) -> NDArray[np.float64]:
        """Stage ``(x, y)`` µm (or ``(n, 2)``) → map pixel ``(column, row)`` (emgeom pixels)."""
        return _apply(self.stage_to_pixel_affine, xy_um, "xy_um")

    def pixel_to_stage(self, xy_px: ArrayLike) -> NDArray[np.float64]:
        """Map pixel ``(column, row)`` (or ``(n, 2)``) → stage ``(x, y)`` µm."""
        return _apply(self.pixel_to_stage_affine, xy_px, "xy_px")

    @property
    def pixel_size_a(self) -> float:
        """Mean map pixel size in Å (``1e4/sqrt|det|``; anisotropic maps differ per axis)."""
        return 1e4 / math.sqrt(abs(float(np.linalg.det(self.stage_to_pixel_affine[:, :2]))))

    def to(self, other: MapFrame) -> NDArray[np.float64]:
        """The exact 2×3 affine ``[c_other, r_other] = T @ [c_self, r_self, 1]`` (via stage)."""
        a = other.stage_to_pixel_affine
        p = self.pixel_to_stage_affine
        return np.hstack([a[:, :2] @ p[:, :2], (a[:, :2] @ p[:, 2] + a[:, 2])[:, None]])

    def outline_um(self) -> NDArray[np.float64]:
        """The 5-point outline SerialEM stores as ``PtsX``/``PtsY`` (``NavigatorDlg.cpp : NewMap``
        "Make bounding box": buffer corners (0,0), (W,0), (W,H), (0,H), (0,0) in inverted-Y pixels).
        """
        rows, cols = self.shape
        inv_y = np.array([[0, 0], [cols, 0], [cols, rows], [0, rows], [0, 0]], dtype=np.float64)
        px = np.column_stack([inv_y[:, 0] - 0.5, rows - inv_y[:, 1] - 0.5])
        return self.pixel_to_stage(px)

    def scaled(self, zoom: float, shape: tuple[int, int] | None = None) -> MapFrame:
        """The same map resampled by ``zoom`` (0.25 = binned by 4).

        ``pixel' = (pixel + 0.5)·zoom − 0.5``.
        """
        z = as_float(zoom, "zoom", positive=True, low=1e-6, high=1e6)
        a = self.stage_to_pixel_affine * z
        a[:, 2] += 0.5 * z - 0.5
        new_shape = (
            as_shape2(shape, "shape")
            if shape is not None
            else (max(1, round(self.shape[0] * z)), max(1, round(self.shape[1] * z)))
        )
        return MapFrame(a, new_shape, self.label, self.map_file)

    def cropped(self, origin_xy: ArrayLike, shape: tuple[int, int]) -> MapFrame:
        """The frame of the sub-image whose pixel (0, 0) is ``origin_xy`` of this map."""
        o = as_matrix(origin_xy, "origin_xy", (2,), max_abs=_MAX_COORD)
        a = self.stage_to_pixel_affine.copy()
        a[:, 2] -= o
        return MapFrame(a, as_shape2(shape, "shape"), self.label, self.map_file)

    def check_outline(self, item: NavItem, tol_um: float = 0.002) -> float:
        """Largest distance (µm) between :meth:`outline_um` and the item's stored ``PtsX/PtsY``;
        warns (:class:`ImplausibleValueWarning`) above ``tol_um``.
        """
        pts = item.points_um
        if len(pts) != 5:
            raise FileFormatError(
                f"{item.source}: [Item = {item.label}]: expected 5 outline points"
            )
        err = float(np.max(np.hypot(*(self.outline_um() - pts).T)))
        if err > tol_um:
            warnings.warn(
                f"{item.source}: [Item = {item.label}]: stored outline differs from MapScaleMat/"
                f"StageXYZ by {err * 1e3:.1f} nm",
                ImplausibleValueWarning,
                stacklevel=2,
            )
        return err


def _ceil4(v: float) -> float:
    return 4.0 * math.ceil(v / 4.0)


def _use_size(
    item: NavItem,
    wh: tuple[int, int],
    actual_frames: tuple[int, int],
    frame_size: tuple[int, int],
    overlap: tuple[int, int],
    where: str,
) -> tuple[float, float]:
    """navigator.txt: useWidth = mMapWidth·actualFullWidth/mapFullWidth, "the width of montage
    overviews is always round up to a multiple of 4" (applied to both full widths).
    """
    frames = item.map_frames_xy
    if not frames or min(frames) <= 0:
        raise FileFormatError(f"{where}: MapFramesXY missing or 0 for a montage map")
    out = []
    for axis in (0, 1):
        n_act, n_map = actual_frames[axis], frames[axis]
        fr, ov = frame_size[axis], overlap[axis]
        full_act = float(n_act * fr - (n_act - 1) * ov)
        full_map = float(n_map * fr - (n_map - 1) * ov)
        if axis == 0:
            full_act, full_map = _ceil4(full_act), _ceil4(full_map)
        out.append(wh[axis] * full_act / full_map)
    return out[0], out[1]


def map_path(item: NavItem, nav_path: str | os.PathLike[str]) -> str:
    """Where the map file of ``item`` is: ``MapFile`` as written, else its base name next to the
    Navigator (SerialEM writes absolute Windows paths). Raises if neither exists.
    """
    _check_item(item)
    nav = as_path(nav_path, "nav_path")
    mf = item.map_file
    if not mf:
        raise FileFormatError(f"{item.source}: [Item = {item.label}]: missing key MapFile")
    if os.path.isfile(mf):
        return mf
    base = mf.replace("\\", "/").rsplit("/", 1)[-1]
    cand = os.path.join(os.path.dirname(nav), base)
    if os.path.isfile(cand):
        return cand
    raise EmgeomFileError(
        f"{item.source}: [Item = {item.label}] MapFile {mf!r}: file not found "
        f"(also looked for {cand})"
    )
