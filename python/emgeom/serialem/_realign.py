"""Realign to Item and the Low Dose View offset, with emgeom's cross-magnification alignment.

SerialEM's Realign to Item (``NavHelper.cpp : CNavHelper::RealignToItem`` and
``AlignWithScaleAndRotation``) predicts where a new image lies on a map from the stage, aligns
the new image to the map (scaled to the map's pixels) and converts the found offset to a
stage error. This module does the same from Python with :func:`emgeom.crossmag.align` (or
``find_similarity`` when the rotation is unknown) and :class:`MapFrame`'s exact geometry.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from emgeom import crossmag
from emgeom._validate import as_float, as_image, as_matrix
from emgeom.errors import InvalidTypeError, InvalidValueError
from emgeom.io.montage import Montage
from emgeom.io.serialem_nav import NavItem
from emgeom.resample import rescale, warp_affine
from emgeom.serialem._frame import MapFrame

__all__ = ["LowDoseOffset", "RealignResult", "lowdose_offset", "realign"]


@dataclass(frozen=True, eq=False)
class RealignResult:
    """Result of :func:`realign`.

    Attributes
    ----------
    stage_xy_um : (float, float)
        Where the new image's centre really lies on the stage (µm), per the map.
    error_um : (float, float)
        ``stage_xy_um`` minus where the stage said the image was (``expected_stage_xy_um``).
    expected_stage_xy_um : (float, float)
        The stage position the new image was taken at (the prediction).
    map_xy_px : (float, float)
        The new image's centre in the map's pixels (emgeom pixels of the map as loaded; for a
        montage: montage pixels at binning 1, nominal layout).
    piece : int or None
        For a montage: the piece (list index of ``Montage``) the alignment used.
    image_shift : ndarray (2,) or None
        The image-shift change that would centre the target in the new image (when a camera →
        image-shift matrix was given): ``B⁻¹ · (bin·dx, bin·dy)``. ``(dx, dy)`` is measured in
        the file orientation, whose rows run *up* like SerialEM's right-handed camera y, so
        there is no y inversion here (:meth:`emgeom.crossmag.AlignmentResult.image_shift`
        takes buffer-oriented images and inverts y: the same vector).
    target_offset_px : (float, float)
        The target's position in the new image minus its centre (new-image pixels of the file
        orientation: x = column, y = row, rows up).
    alignment : AlignmentResult
        The alignment of the new image (moving) to the map region (reference).
    map_pixel_a : float
        Pixel size (Å) of the map region that was aligned to.
    found, confidence : bool, float
        From ``alignment``: when ``found`` is False, nothing else may be used.
    """

    stage_xy_um: tuple[float, float]
    error_um: tuple[float, float]
    expected_stage_xy_um: tuple[float, float]
    map_xy_px: tuple[float, float]
    piece: int | None
    image_shift: NDArray[np.float64] | None
    target_offset_px: tuple[float, float]
    alignment: Any
    map_pixel_a: float

    @property
    def found(self) -> bool:
        """The alignment vouches for the position."""
        return bool(self.alignment.found)

    @property
    def confidence(self) -> float:
        """Confidence in [0, 1] of the alignment."""
        return float(self.alignment.confidence)

    @property
    def error_magnitude_um(self) -> float:
        """``|error_um|`` in µm."""
        return math.hypot(*self.error_um)


#: largest ``max_shift_um`` (µm): 5 mm, beyond the ±1 mm travel of a TEM stage; a larger
#: value is a unit mistake (Å or nm given as µm), refused before any search is sized from it
MAX_SHIFT_UM = 5000.0
#: largest ``image_pixel_a`` (Å): 100 µm, coarser than any atlas pixel
MAX_PIXEL_A = 1e6


def _best_piece(m: Montage, p0: NDArray[np.float64], half: NDArray[np.float64]) -> int:
    """The piece covering most of the box ``p0 ± half`` (montage px); ties → SerialEM's tile."""
    lo, hi = p0 - half + 0.5, p0 + half + 0.5  # right-handed
    c0 = m.piece_coords.astype(np.float64)
    c1 = c0 + np.array(m.frame_size)
    ov = np.clip(np.minimum(hi, c1) - np.maximum(lo, c0), 0, None)
    area = ov[:, 0] * ov[:, 1]
    tile = m.piece_at(p0)
    best = float(area.max())
    if area[tile] >= best * 0.999:
        return tile
    return int(np.argmax(area))


def _region(
    frame: MapFrame, p0: NDArray[np.float64], half: float
) -> tuple[NDArray[np.int64], tuple[int, int]]:
    rows, cols = frame.shape
    x0 = int(np.clip(math.floor(p0[0] - half), 0, cols - 1))
    y0 = int(np.clip(math.floor(p0[1] - half), 0, rows - 1))
    x1 = int(np.clip(math.ceil(p0[0] + half) + 1, x0 + 1, cols))
    y1 = int(np.clip(math.ceil(p0[1] + half) + 1, y0 + 1, rows))
    return np.array([x0, y0]), (y1 - y0, x1 - x0)


def _reference(
    frame_or_item: MapFrame | NavItem,
    map_image_or_montage: Any,
    p_stage: NDArray[np.float64],
    half_um: float,
    montage_binning: int | None,
) -> tuple[NDArray[np.float32], MapFrame, int | None, MapFrame]:
    """(reference region, its frame, piece, the whole map's frame)."""
    if isinstance(map_image_or_montage, Montage):
        m = map_image_or_montage
        b: int | None
        if isinstance(frame_or_item, NavItem):
            item = frame_or_item
            ov = _overview_binning(item, m)
            w, h = m.overview_size(ov)
            ov_frame = MapFrame.from_item(item, (h, w), montage_layout=m.layout)
            full = ov_frame.scaled(ov, shape=(m.full_size[1], m.full_size[0]))
            b = montage_binning or ov
        elif isinstance(frame_or_item, MapFrame):
            full = frame_or_item
            b = montage_binning
        else:
            raise InvalidTypeError(
                f"frame_or_item: expected MapFrame or NavItem, got {type(frame_or_item).__name__}"
            )
        p0 = full.stage_to_pixel(p_stage)
        half_px = half_um * 1e4 / full.pixel_size_a
        piece = _best_piece(m, p0, np.full(2, half_px))
        pf = full.cropped(
            m.piece_coords[piece].astype(np.float64), (m.frame_size[1], m.frame_size[0])
        )
        origin, (h, w) = _region(pf, pf.stage_to_pixel(p_stage), half_px)
        if b is None:
            b = math.ceil(max(h, w) / 512)
        # at least 256 binned pixels across the region
        b = max(1, min(b, max(h, w) // 256))
        w, h = max(b, w // b * b), max(b, h // b * b)
        x0 = int(min(origin[0], m.frame_size[0] - w))
        y0 = int(min(origin[1], m.frame_size[1] - h))
        ref = m.extract_piece(piece, b, (x0, y0, w, h))
        rf = pf.cropped(np.array([x0, y0], dtype=np.float64), (h, w))
        return ref, rf.scaled(1.0 / b, shape=ref.shape), piece, full
    img = as_image(
        map_image_or_montage, "map_image_or_montage", allow_stack=False, dtype=np.float32
    )
    if isinstance(frame_or_item, NavItem):
        frame = MapFrame.from_item(frame_or_item, img.shape)
    elif isinstance(frame_or_item, MapFrame):
        frame = frame_or_item
        if frame.shape != img.shape:
            raise InvalidValueError(
                f"map_image_or_montage: shape {img.shape} differs from the frame's map "
                f"shape {frame.shape}"
            )
    else:
        raise InvalidTypeError(
            f"frame_or_item: expected MapFrame or NavItem, got {type(frame_or_item).__name__}"
        )
    p0 = frame.stage_to_pixel(p_stage)
    origin, shape = _region(frame, p0, half_um * 1e4 / frame.pixel_size_a)
    ref = img[origin[1] : origin[1] + shape[0], origin[0] : origin[0] + shape[1]]
    return np.ascontiguousarray(ref), frame.cropped(origin.astype(np.float64), shape), None, frame


def _inv_affine(a: NDArray[np.float64]) -> NDArray[np.float64]:
    inv = np.linalg.inv(a[:, :2])
    return np.hstack([inv, (-inv @ a[:, 2])[:, None]])


def _undistorted(
    img: NDArray[np.float32], px_img: float, image_scale_mat: ArrayLike, ref_frame: MapFrame
) -> tuple[NDArray[np.float32], float, float, NDArray[np.float64]]:
    """The image binned (exact block means, when it is ≥ 4× finer than the map region) and
    warped by the non-similar part of the calibrations, so that it relates to the region by a
    similarity. Returns (working image, its pixel Å, rotation θ, working px → image px affine).
    """
    ref_px = ref_frame.pixel_size_a
    f = max(1, int(ref_px / px_img / 2.0))
    ny, nx = (img.shape[0] // f) * f, (img.shape[1] // f) * f
    x0, y0 = (img.shape[1] - nx) // 2, (img.shape[0] - ny) // 2
    work = img[y0 : y0 + ny, x0 : x0 + nx]
    if f > 1:  # exact area average (Rust), = block means for an integer factor
        work = rescale(np.ascontiguousarray(work), 1.0 / f, "area", output_shape=(ny // f, nx // f))
    # binned pixel q covers image pixels [f·q, f·q + f) from (x0, y0): p = f·q + (f − 1)/2 + o
    to_img = np.array([[f, 0.0, (f - 1) / 2.0 + x0], [0.0, f, (f - 1) / 2.0 + y0]])
    sm = as_matrix(image_scale_mat, "image_scale_mat", (2, 2))
    theta, px_work, undo = _similar_part(sm / f, ref_frame, ref_px)  # binned px per µm
    c = np.array([(work.shape[1] - 1) / 2.0, (work.shape[0] - 1) / 2.0])
    warp = np.hstack([undo, (c - undo @ c)[:, None]])  # working q -> binned pixel
    work = warp_affine(np.ascontiguousarray(work, dtype=np.float32), warp, work.shape, order=3)
    to_img = np.hstack(
        [to_img[:, :2] @ warp[:, :2], (to_img[:, :2] @ warp[:, 2] + to_img[:, 2])[:, None]]
    )
    _ = px_img
    return work, px_work, theta, to_img


def _similar_part(
    image_scale_mat: ArrayLike, ref_frame: MapFrame, ref_px: float
) -> tuple[float, float, NDArray[np.float64]]:
    """(rotation θ, moving pixel Å, ``D⁻¹``) with new → region pixels ``M = k·R(θ)·D``."""
    sm = as_matrix(image_scale_mat, "image_scale_mat", (2, 2))
    cam = np.array([sm[0], -sm[1]])  # un-negate the Y row: file-oriented pixels per µm
    if abs(np.linalg.det(cam)) < 1e-12:
        raise InvalidValueError(f"image_scale_mat: {sm.tolist()} is singular")
    m = ref_frame.stage_to_pixel_affine[:, :2] @ np.linalg.inv(cam)
    if np.linalg.det(m) <= 0:
        raise InvalidValueError(
            "image_scale_mat: the image would be a mirror image of the map (det of the relation "
            "< 0): give it in MapScaleMat's form (Y row negated)"
        )
    theta = math.atan2(m[1, 0] - m[0, 1], m[0, 0] + m[1, 1])
    k = math.sqrt(np.linalg.det(m))
    sim = k * np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    d = np.linalg.solve(sim, m)
    return math.degrees(theta), k * ref_px, np.asarray(np.linalg.inv(d), dtype=np.float64)


def _overview_binning(item: NavItem, m: Montage) -> int:
    """``MapBinning / MontBinning``: how much the map's overview is binned relative to pieces."""
    mb, mo = item.map_binning, item.mont_binning or 1
    wh = item.map_width_height
    if mb is None or wh is None:
        raise InvalidValueError(
            f"{item.source}: [Item = {item.label}]: MapBinning/MapWidthHeight needed for a "
            "montage map"
        )
    ov = max(1, round(mb / mo))
    w, h = m.overview_size(ov)
    if abs(w - wh[0]) > 4 or abs(h - wh[1]) > 1:
        raise InvalidValueError(
            f"{item.source}: [Item = {item.label}]: MapWidthHeight {wh} does not match the montage "
            f"{m.mdoc_path} binned by MapBinning/MontBinning = {ov} ({w} {h}): inconsistent "
            "montage metadata"
        )
    return ov


def realign(
    frame_or_item: MapFrame | NavItem,
    map_image_or_montage: ArrayLike | Montage,
    image: ArrayLike,
    *,
    image_pixel_a: float,
    stage_xy_um: ArrayLike | None = None,
    rotation_deg: float | None = None,
    image_scale_mat: ArrayLike | None = None,
    target_stage_xy_um: ArrayLike | None = None,
    max_shift_um: float | None = None,
    camera_to_image_shift: ArrayLike | None = None,
    image_binning: float = 1.0,
    direction: str = "down",
    montage_binning: int | None = None,
    scale_search: float = 0.04,
    rotation_search_deg: float = 3.0,
    n_threads: int | None = None,
) -> RealignResult:
    """Realign a new image to a (montaged) map: SerialEM's Realign to Item.

    Parameters
    ----------
    frame_or_item : MapFrame or NavItem
        The map's geometry: a map :class:`NavItem` (preferred) or a :class:`MapFrame` of
        ``map_image_or_montage`` (for a montage: a frame in montage pixels at binning 1).
    map_image_or_montage : ndarray (y, x) or Montage
        The map as loaded (numpy rows as ``mrcfile`` returns them), or the montage it was made
        from (:func:`emgeom.io.montage.read_montage`); for a montage the best piece around the
        prediction is used.
    image : ndarray (y, x)
        The new, higher-magnification image, in the same orientation as the map: rows as
        ``mrcfile`` returns a SerialEM-saved file (row 0 = bottom of SerialEM's display). An
        image from ``serialem.bufferImage`` has row 0 at the top: pass ``np.flipud(buf)``.
    image_pixel_a : float
        Its pixel size in Å (with binning).
    stage_xy_um : (x, y), optional
        Stage position (µm) at which the new image was taken; default the item's ``StageXYZ``.
    rotation_deg : float, optional
        Rotation of the new image relative to the map in :func:`emgeom.crossmag.align`'s sense
        (degrees). None: unknown, found with ``find_similarity`` (slower, less certain).
    image_scale_mat : (2, 2), optional
        The new image's stage → pixel matrix in ``MapScaleMat``'s form (µm → pixels of the
        image as taken, Y row negated: what SerialEM would store if it became a map). When
        given, the rotation *and* any anisotropy between the two calibrations follow from it
        exactly: the image is first warped by the non-similar part (about its centre) so
        that the alignment's similarity model holds; give it instead of ``rotation_deg``.
    target_stage_xy_um : (x, y), optional
        The point to centre (µm); default the stage position (``stage_xy_um``).
    max_shift_um : float, optional
        Largest stage error searched (µm, at most :data:`MAX_SHIFT_UM`); default half the new
        image's larger field side.
    camera_to_image_shift : (2, 2), optional
        ``B⁻¹`` of the new image's magnification (unbinned camera pixels → IS units), to
        report ``image_shift``.
    image_binning : float
        Camera binning of the new image (for ``image_shift``).
    direction : {"down", "up"}
        ``"up"``: the scaled-map round (map region enlarged to the image's sampling).
    montage_binning : int, optional
        Binning of the montage piece region used for the alignment; default the map's overview
        binning (``MapBinning/MontBinning``: what SerialEM shows and realigns to) or, for a
        :class:`MapFrame`, about 512 pixels across; never fewer than 256 pixels across.
    scale_search, rotation_search_deg : float
        Residual search ranges passed to ``crossmag.align``.
    n_threads : int, optional
        Worker threads.

    Returns
    -------
    RealignResult
    """
    img = as_image(image, "image", allow_stack=False, dtype=np.float32)
    px_img = as_float(image_pixel_a, "image_pixel_a", positive=True, high=MAX_PIXEL_A)
    stage, target = _stage_args(frame_or_item, stage_xy_um, target_stage_xy_um)
    shift_um = (
        min(0.5 * max(img.shape) * px_img / 1e4, MAX_SHIFT_UM)  # half the larger field side
        if max_shift_um is None
        else as_float(max_shift_um, "max_shift_um", positive=True, high=MAX_SHIFT_UM)
    )
    half_um = 0.5 * math.hypot(*img.shape) * px_img / 1e4 + shift_um
    ref, ref_frame, piece, full = _reference(
        frame_or_item, map_image_or_montage, stage, half_um, montage_binning
    )
    mov, px_mov = img, px_img
    to_img = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])  # working pixel -> image pixel
    if image_scale_mat is not None:
        if rotation_deg is not None:
            raise InvalidValueError("rotation_deg: give either rotation_deg or image_scale_mat")
        mov, px_mov, rotation_deg, to_img = _undistorted(img, px_img, image_scale_mat, ref_frame)
    res: crossmag.AlignmentResult
    if rotation_deg is None:
        res = crossmag.find_similarity(
            ref,
            mov,
            reference_pixel_a=ref_frame.pixel_size_a,
            moving_pixel_a=px_mov,
            n_threads=n_threads,
        )
    else:
        res = crossmag.align(
            ref,
            mov,
            reference_pixel_a=ref_frame.pixel_size_a,
            moving_pixel_a=px_mov,
            rotation_deg=as_float(rotation_deg, "rotation_deg"),
            expected_center=ref_frame.stage_to_pixel(stage),
            max_shift_a=shift_um * 1e4,
            scale_search=scale_search,
            rotation_search_deg=rotation_search_deg,
            direction=direction,
            n_threads=n_threads,
        )
    c_img = np.array([(img.shape[1] - 1) / 2.0, (img.shape[0] - 1) / 2.0])
    from_img = _inv_affine(to_img)
    found = ref_frame.pixel_to_stage(
        res.transform_points(from_img[:, :2] @ c_img + from_img[:, 2])[0]
    )
    # target in the new image: map region px -> working px (inverse alignment) -> image px
    t_work = res.inverse().transform_points(ref_frame.stage_to_pixel(target))[0]
    d = to_img[:, :2] @ t_work + to_img[:, 2] - c_img
    map_xy = full.stage_to_pixel(found)
    return RealignResult(
        stage_xy_um=(float(found[0]), float(found[1])),
        error_um=(float(found[0] - stage[0]), float(found[1] - stage[1])),
        expected_stage_xy_um=(float(stage[0]), float(stage[1])),
        map_xy_px=(float(map_xy[0]), float(map_xy[1])),
        piece=piece,
        image_shift=_image_shift(camera_to_image_shift, image_binning, d),
        target_offset_px=(float(d[0]), float(d[1])),
        alignment=res,
        map_pixel_a=float(ref_frame.pixel_size_a),
    )


def _stage_args(
    frame_or_item: MapFrame | NavItem, stage_xy_um: ArrayLike | None, target: ArrayLike | None
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """(stage position of the new image, target): defaults the item's ``StageXYZ``."""
    if stage_xy_um is None:
        if not isinstance(frame_or_item, NavItem):
            raise InvalidValueError("stage_xy_um: required when frame_or_item is a MapFrame")
        stage = np.array(frame_or_item.stage_xyz_um[:2])
    else:
        stage = as_matrix(stage_xy_um, "stage_xy_um", (2,))
    return stage, stage if target is None else as_matrix(target, "target_stage_xy_um", (2,))


def _image_shift(
    camera_to_image_shift: ArrayLike | None, image_binning: float, d: NDArray[np.float64]
) -> NDArray[np.float64] | None:
    """``B⁻¹·(bin·dx, bin·dy)``: file orientation, whose rows run up like SerialEM's camera y,
    so no y inversion (``AlignmentResult.image_shift`` inverts y for buffer-oriented rows).
    """
    if camera_to_image_shift is None:
        return None
    mat = as_matrix(camera_to_image_shift, "camera_to_image_shift", (2, 2))
    b = as_float(image_binning, "image_binning", positive=True)
    return np.asarray(mat @ (b * np.asarray(d, dtype=np.float64)), dtype=np.float64)


@dataclass(frozen=True, eq=False)
class LowDoseOffset:
    """Result of :func:`lowdose_offset`.

    Attributes
    ----------
    image_shift : ndarray (2,)
        Change to add to the View (or Search) image-shift offset (IS units), from
        :meth:`emgeom.crossmag.AlignmentResult.image_shift`. Only usable when ``found``.
    alignment : AlignmentResult
        The Record/Preview image (moving) aligned to the View (reference).
    """

    image_shift: NDArray[np.float64]
    alignment: Any

    @property
    def found(self) -> bool:
        """The alignment vouches for the offset."""
        return bool(self.alignment.found)


def lowdose_offset(
    view: ArrayLike,
    record_or_preview: ArrayLike,
    *,
    view_pixel_a: float,
    record_pixel_a: float,
    rotation_deg: float = 0.0,
    is_to_camera: ArrayLike | None = None,
    camera_to_image_shift: ArrayLike | None = None,
    view_binning: float = 1.0,
    orientation: str = "file",
    n_threads: int | None = None,
) -> LowDoseOffset:
    """The Low Dose View/Search image-shift offset ("Auto", ``LowDoseDlg.cpp :
    CLowDoseDlg::DoSetViewShift``) from a View and a Record/Preview of the same area.

    Parameters
    ----------
    view, record_or_preview : ndarray (y, x)
        The View (or Search) image and the higher-magnification image, same stage position.
    view_pixel_a, record_pixel_a : float
        Pixel sizes in Å (with binning; the View's at its defocus offset).
    rotation_deg : float
        Rotation of the Record relative to the View (``crossmag.align``'s sense).
    is_to_camera, camera_to_image_shift : (2, 2)
        SerialEM's IS → camera calibration ``B`` of the View magnification, or its inverse;
        exactly one.
    view_binning : float
        Camera binning of the View image.
    orientation : {"file", "buffer"}
        ``"file"``: arrays as ``mrcfile`` returns SerialEM-saved images (row 0 = bottom of the
        display; SerialEM flips rows when it writes, ``KImageStore::convertForWriting``);
        ``"buffer"``: arrays from ``serialem.bufferImage`` (row 0 = top).
        :meth:`~emgeom.crossmag.AlignmentResult.image_shift` inverts y for buffer rows, so file
        arrays are flipped to buffer orientation first (and ``rotation_deg`` negated, since a
        y flip reverses the sense of rotation); ``alignment`` is then in buffer orientation.

    Returns
    -------
    LowDoseOffset
    """
    if orientation not in ("file", "buffer"):
        raise InvalidValueError(f"orientation: expected 'file' or 'buffer', got {orientation!r}")
    ref = as_image(view, "view", allow_stack=False, dtype=np.float32)
    mov = as_image(record_or_preview, "record_or_preview", allow_stack=False, dtype=np.float32)
    rot = as_float(rotation_deg, "rotation_deg")
    if orientation == "file":
        ref, mov, rot = np.ascontiguousarray(ref[::-1]), np.ascontiguousarray(mov[::-1]), -rot
    res = crossmag.align(
        ref,
        mov,
        reference_pixel_a=view_pixel_a,
        moving_pixel_a=record_pixel_a,
        rotation_deg=rot,
        n_threads=n_threads,
    )
    shift = res.image_shift(camera_to_image_shift, is_to_camera=is_to_camera, binning=view_binning)
    return LowDoseOffset(image_shift=shift, alignment=res)
