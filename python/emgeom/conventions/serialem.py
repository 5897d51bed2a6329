"""SerialEM Navigator and montage pixel conventions (``conventions.get("serialem", name)``).

Canonical form (emgeom, :class:`emgeom.serialem.MapFrame`): a 2×3 affine ``A`` with
``[column, row] = A @ [x_um, y_um, 1]``, where ``(column, row)`` index the numpy array that
``mrcfile`` returns for the map (row 0 = the first row stored in the file), pixel centres on
integers. Evidence and tests: ``docs/conventions.md`` (SerialEM section),
``docs/serialem.md`` and ``tests/serialem/test_serialem_conventions.py``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from emgeom._validate import as_matrix, as_shape2
from emgeom.conventions._registry import Convention, Source, register

__all__: list[str] = []

_SRC_NAV = Source(
    "SerialEM 4.x",
    "NavigatorDlg.cpp: CNavigatorDlg::BufferStageToImage, CNavigatorDlg::NewMap",
    "mastcu/SerialEM",
    "del = (W/use)·load/2 − a·s (x), (2 − H/use)·load/2 − a·s (y); outline from buffer "
    "corners (0,0)…(W,H) through MatInv(MapScaleMat)",
)
_SRC_FLIP = Source(
    "SerialEM 4.x",
    "Image/KImageStore.cpp: KImageStore::convertForWriting (called from KStoreMRC.cpp: "
    "KStoreMRC::WriteSection with needFlipped = true)",
    "mastcu/SerialEM",
    "rows are written from mHeight−1 down to 0: buffer row j (top = 0) is file row H−1−j",
)
_SRC_DOC = Source(
    "SerialEM docs",
    "Docs/navigator.txt: STAGE-IMAGE COORDINATE TRANSFORMATIONS; hlp/html/about_formats.htm",
    "mastcu/SerialEM",
    "MapScaleMat = stage→camera ÷ binning with ypx, ypy negated; pixel coordinates right "
    "handed with 0,0 at the lower left of the map",
)


def _nav_to(
    map_scale_mat: Any, stage_xy_um: Any, map_width_height: Any, map_shape: Any = None
) -> dict[str, Any]:
    """Restated independently of :class:`emgeom.serialem.MapFrame` (the test compares them)."""
    m = as_matrix(map_scale_mat, "map_scale_mat", (2, 2))
    s = as_matrix(stage_xy_um, "stage_xy_um", (2,))
    w, h = as_shape2(map_width_height, "map_width_height")
    rows, cols = (h, w) if map_shape is None else as_shape2(map_shape, "map_shape")
    a = m * np.array([[cols / w], [rows / h]])
    x_se = np.append(a[0], cols / 2.0 - a[0] @ s)  # x_se = a_x·stage + del_x
    y_inv = np.append(a[1], rows / 2.0 - a[1] @ s)
    aff = np.vstack([x_se - [0, 0, 0.5], -y_inv + [0, 0, rows - 0.5]])
    return {"stage_to_pixel_affine": aff, "shape": (rows, cols)}


def _nav_from(stage_to_pixel_affine: Any, shape: Any) -> dict[str, Any]:
    a = as_matrix(stage_to_pixel_affine, "stage_to_pixel_affine", (2, 3))
    rows, cols = as_shape2(shape, "shape")
    mat = np.array([[a[0, 0], a[0, 1]], [-a[1, 0], -a[1, 1]]])
    centre = np.linalg.solve(a[:, :2], np.array([(cols - 1) / 2.0, (rows - 1) / 2.0]) - a[:, 2])
    return {"map_scale_mat": mat, "stage_xy_um": centre, "map_width_height": (cols, rows)}


register(
    Convention(
        name="navigator-map",
        quantity="serialem",
        program="SerialEM Navigator (map items)",
        parameters="MapScaleMat xpx xpy ypx ypy (map px per µm, Y row negated), StageXYZ (µm), "
        "MapWidthHeight W H; map as loaded: rows × cols",
        meaning="a = MapScaleMat·diag(cols/W, rows/H) rows; (x_se, y_inv) = a·s + (cols/2, rows/2) "
        "− a·StageXY; column = x_se − 0.5, row = rows − y_inv − 0.5",
        sources=(_SRC_NAV, _SRC_FLIP, _SRC_DOC),
        confidence="high",
        notes="Reproduces every stored PtsX/PtsY outline of SerialEM-written maps to ≤ 0.96 nm "
        "(the 3-decimal rounding; shared/data/serialem README check A). The row rule follows "
        "from the write flip; no SerialEM MRC map was available to check it against image "
        "content. Half-pixel: SerialEM's pixel i spans [i, i+1) (StageXYZ maps to W/2).",
        to_canonical=_nav_to,
        from_canonical=_nav_from,
    )
)


def _pc(value: Any) -> Any:
    return as_matrix(np.asarray(value, dtype=np.float64).ravel()[:2], "piece_coordinates", (2,))


def _pc_to(piece_coordinates: Any, column: float, row: float) -> dict[str, Any]:
    pc = _pc(piece_coordinates)
    return {"montage_xy_px": (float(pc[0]) + float(column), float(pc[1]) + float(row))}


def _pc_from(montage_xy_px: Any, piece_coordinates: Any) -> dict[str, Any]:
    xy = as_matrix(montage_xy_px, "montage_xy_px", (2,))
    pc = _pc(piece_coordinates)
    return {"column": float(xy[0] - pc[0]), "row": float(xy[1] - pc[1])}


register(
    Convention(
        name="montage-piece",
        quantity="serialem",
        program="SerialEM montage .mdoc (PieceCoordinates)",
        parameters="PieceCoordinates x y z (lower-left corner, right-handed px); piece pixel "
        "(column, row) of the MRC section as mrcfile returns it",
        meaning="montage px (x, y) = PieceCoordinates[:2] + (column, row); right-handed = +0.5; "
        "piece index = ix·ny + iy, iy from the bottom",
        sources=(
            Source(
                "SerialEM docs",
                "hlp/html/about_formats.htm: PieceCoordinates, PieceOn, XYinPc",
                "mastcu/SerialEM",
                "Pixel coordinates are in a right-handed system despite the ubiquitous "
                "inversion of images in Y",
            ),
            _SRC_FLIP,
            Source(
                "SerialEM 4.x",
                "SerialEMView.cpp: CSerialEMView::StageToImage",
                "mastcu/SerialEM",
                "index = (ixPiece + 1)·yNframes − 1 − iyPiece with iyPiece inverted in Y",
            ),
        ),
        confidence="high",
        notes="navigator.txt's best-piece formula px = (x − spacing/2)/spacing puts boundaries "
        "half a spacing off and can name a piece that misses the point; emgeom uses tiles "
        "meeting midway in the overlaps (tests/serialem/test_serialem_montage.py).",
        to_canonical=_pc_to,
        from_canonical=_pc_from,
    )
)
