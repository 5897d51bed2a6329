"""A montage's stage ↔ pixel relation from its ``.mdoc``, and the map item SerialEM would make.

SerialEM moves the stage to each piece of a stage montage with its (focus-adjusted)
stage → camera calibration, so a least-squares affine of piece centres
(``PieceCoordinates + ImageSize/2``, right-handed) against ``StagePosition`` recovers that
calibration divided by the binning (shared/data/serialem/README.md, check C: residuals 0.1 px
rms for gm.mrc.mdoc and LMM). ``MapScaleMat`` is that matrix divided by the overview binning
with its Y row negated (navigator.txt: "the stage to camera matrix ... divided by the buffer
binning, and with the negative taken of ypx and ypy"; ``NavHelper.cpp : ComputeStageToImage``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from emgeom._validate import as_int, describe
from emgeom.errors import FileFormatError, InvalidTypeError
from emgeom.io.montage import Montage
from emgeom.io.serialem_nav import NavItem
from emgeom.serialem._frame import MapFrame

__all__ = ["StageFit", "fit_stage_to_montage", "montage_map_item"]


@dataclass(frozen=True)
class StageFit:
    """Least-squares ``[x_rh, y_rh] = affine @ [x_um, y_um, 1]`` (montage px, right-handed).

    Attributes
    ----------
    affine : ndarray (2, 3)
    rms_px, max_px : float
        Residuals of the piece centres (montage pixels).
    """

    affine: NDArray[np.float64]
    rms_px: float
    max_px: float


def fit_stage_to_montage(montage: Montage) -> StageFit:
    """Fit the stage → montage-pixel affine from the pieces' ``StagePosition``."""
    if not isinstance(montage, Montage):
        raise InvalidTypeError(f"montage: expected a Montage, got {describe(montage)}")
    if montage.stage_um is None or len(montage.stage_um) < 3:
        raise FileFormatError(f"{montage.mdoc_path}: StagePosition of at least 3 pieces is needed")
    st = montage.stage_um
    cen = montage.piece_coords + np.array(montage.frame_size) / 2.0
    a = np.column_stack([st, np.ones(len(st))])
    coef, *_ = np.linalg.lstsq(a, cen, rcond=None)
    res = a @ coef - cen
    if np.linalg.matrix_rank(a) < 3:
        raise FileFormatError(f"{montage.mdoc_path}: StagePosition values are collinear; no fit")
    d = np.hypot(res[:, 0], res[:, 1])
    return StageFit(coef.T.copy(), float(np.sqrt(np.mean(d**2))), float(d.max()))


def montage_map_item(
    montage: Montage,
    overview_binning: int,
    *,
    label: str = "1",
    stage_z_um: float = 0.0,
    map_id: int = 1,
    fit: StageFit | None = None,
) -> NavItem:
    """The Navigator map item SerialEM would write for ``montage`` shown at ``overview_binning``
    (``MapBinning = overview_binning × Binning``-independent: ``MapBinning/MontBinning`` =
    ``overview_binning``), for montages that have an mdoc but no Navigator.
    """
    ov = as_int(overview_binning, "overview_binning", low=1)
    f = fit or fit_stage_to_montage(montage)
    lin, t = f.affine[:, :2], f.affine[:, 2]
    w, h = montage.overview_size(ov)
    # stage at the overview centre (W/2, H/2 in overview px = ov·W/2, ov·H/2 right-handed)
    s_map = np.linalg.solve(lin, np.array([ov * w / 2.0, ov * h / 2.0]) - t)
    mat = np.array([[lin[0, 0], lin[0, 1]], [-lin[1, 0], -lin[1, 1]]]) / ov
    it = NavItem(str(label), {}, source=f"{montage.mdoc_path} (map item)")
    it.set("Color", 2)
    it.set("StageXYZ", (s_map[0], s_map[1], stage_z_um))
    it.set("NumPts", 5)
    it.set("Regis", 1)
    it.set("Type", 2)
    it.set("MapFile", montage.path or montage.mdoc_path[: -len(".mdoc")])
    it.set("MapID", str(as_int(map_id, "map_id")))
    it.set("MapMontage", 1)
    it.set("MapSection", montage.section)
    it.set("MapBinning", ov)
    it.set("MapScaleMat", " ".join(f"{v:.9g}" for v in mat.ravel()))
    it.set("MapWidthHeight", (w, h))
    it.set("MapFramesXY", montage.n_frames)
    it.set("MontBinning", 1)
    outline = MapFrame.from_item(it).outline_um()
    it.set("PtsX", " ".join(f"{v:.3f}" for v in outline[:, 0]))
    it.set("PtsY", " ".join(f"{v:.3f}" for v in outline[:, 1]))
    return it
