"""Cross-magnification alignment with known magnifications (SerialEM-style, in Rust).

Align a higher-magnification image (``moving``: Record, Preview, a View when the reference is a
Search/atlas image) to a lower-magnification image of the same area (``reference``), given the
two pixel sizes and the known rotation between them; a small residual scale/rotation search
absorbs calibration errors. This is what SerialEM does for the Low Dose "Auto" shift offsets,
Realign to Item's scaled-map round and grid-map refinement (``ProcessImage.cpp :
CProcessImage::AlignBetweenMagnifications``, ``NavHelper.cpp : AlignWithScaleAndRotation``),
with an honest "not found" instead of a confident wrong number.

Result geometry (exact)
-----------------------
``res.affine`` is the 2×3 matrix ``A`` with ``[x_ref, y_ref] = A @ [x_mov, y_mov, 1]`` in pixel
coordinates (x = column, y = row, pixel centres on integer indices). Its linear part is
``s·R(θ)``, ``R(θ) = [[cos θ, −sin θ], [sin θ, cos θ]]``, ``s = res.scale`` (refined ratio of the
pixel sizes, moving/reference) and ``θ = res.rotation_deg``. With row 0 at the top of the
display, θ > 0 turns the moving image's +x axis towards +y: clockwise as displayed.
``res.center`` is where the moving image's centre pixel ``((nx−1)/2, (ny−1)/2)`` lies in the
reference, in reference pixels.

Pipeline (design §8.3; all heavy steps in Rust with the GIL released)
--------------------------------------------------------------------
1. The reference is binned (exact area average) so that the searched region is at most
   ``correlation_size`` pixels; the moving image is shrunk to the same sampling with exact area
   averaging (zoom ≤ 0.5) or a Lanczos-3 antialiased zoom (≤ 0.8), then rotated/scaled with
   Keys bicubic interpolation about the exact image of its centre ``(c + 0.5)·z − 0.5``.
2. A soft validity mask (cosine ramp) weights the rotated patch; the reference region is
   tapered at its borders; both are made zero-mean and padded so that no wrap-around can reach
   a searched position.
3. Unnormalised cross-correlation filtered with the IMOD four-parameter filter (default
   σ1 0.03, σ2 0.05, r1 0, r2 0.25 cycles/pixel, SerialEM's AutoAlign defaults), or phase
   correlation; the reference spectrum is computed once and reused by every search point.
4. Top peaks inside the searched circle; each scored by the Pearson CCC of the filtered images
   over the patch footprint times ``overlap^(1/6)`` (SerialEM ``ShiftManager.cpp : AutoAlign``);
   parabolic sub-pixel refinement (IMOD ``parabolicFitPosition``).
5. Residual search (SerialEM's ranges; grid and refinement are emgeom's): a joint 3×3
   (scale, rotation) grid over the whole range (±4%, ±3° by default) on a 2× coarser level;
   up to 3 distinct candidate positions scoring within 10% of the best are each refined at full
   sampling (a 3×3 grid at half the coarse steps and a 2-D quadratic fit, then, if that lands
   on the range edge, a cross at a quarter and a parabola per axis; the position hill-climbed
   on the CCC, reading the filtered reference of the full-sampling region); the best refined
   score wins, and a rival candidate that refines to nearly the same score elsewhere counts
   as ambiguity (peak ratio).
   Points are evaluated in parallel.
6. Maximum-likelihood refinement of (x, y, scale, rotation) with the exact forward model
   between the two samplings and the calibration as a prior (:mod:`._refine`), which also
   gives ``center_sigma``, ``scale_sigma`` and ``rotation_sigma_deg``.
7. ``confidence`` = P(centre within 1.5 reference px), a logistic model of the measures
   (significance, peak ratio, overlap, ``center_sigma``, the search-edge flag, the
   refinement's prediction CCC and residual correlation area) fitted on a generated
   calibration set (:mod:`._confidence`); ``found = confidence >= 0.5``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np
from numpy.typing import ArrayLike, NDArray

from emgeom._validate import (
    as_bool,
    as_float,
    as_image,
    as_int,
    as_matrix,
    n_threads_arg,
)
from emgeom.crossmag._confidence import align_features, features, gated_confidence
from emgeom.crossmag._correlate import DEFAULT_FILTER, filter_arg
from emgeom.crossmag._geometry import (
    as_unit_image,
    center_of,
    is_constant,
    rotation,
)
from emgeom.crossmag._refine import refine_pose
from emgeom.crossmag._result import AlignmentResult, make_result, not_found
from emgeom.crossmag._stages import (
    _MIN_OVERLAP,
    _MIN_RATIO,
    _MIN_SIGNIFICANCE,
    _MIN_SIGNIFICANCE_SEARCH,
    KnownInput,
    KnownSearch,
    confidence_ramps,
)
from emgeom.errors import InvalidValueError
from emgeom.resample import warp_affine

__all__ = ["align"]


def align(
    reference: ArrayLike,
    moving: ArrayLike,
    *,
    reference_pixel_a: float,
    moving_pixel_a: float,
    rotation_deg: float = 0.0,
    expected_center: ArrayLike | None = None,
    max_shift_a: float | None = None,
    scale_search: float = 0.04,
    rotation_search_deg: float = 3.0,
    direction: str = "down",
    method: str = "xcorr",
    n_threads: int | None = None,
    filter: Sequence[float] | None = DEFAULT_FILTER,
    correlation_size: int = 1024,
    n_peaks: int = 10,
    taper_fraction: float = 0.1,
    return_map: bool = False,
    refine: bool = True,
) -> AlignmentResult:
    """Align a higher-magnification image onto a lower-magnification one of the same area.

    Parameters
    ----------
    reference : ndarray (y, x)
        The lower-magnification image (larger field of view), e.g. a View or Search image.
    moving : ndarray (y, x)
        The higher-magnification image, e.g. a Preview/Record (or a View against a Search).
    reference_pixel_a, moving_pixel_a : float
        Pixel sizes in Å (the known magnifications; include binning and any high-defocus
        magnification change). ``moving_pixel_a`` must not exceed ``1.25 × reference_pixel_a``.
    rotation_deg : float
        Known rotation θ (degrees) of the moving image relative to the reference, in the sense
        of the result's ``affine`` (see the module docs): the mag-rotation calibration
        difference (SerialEM: ``rotation = fromRot − toRot``).
    expected_center : (x, y), optional
        Prior position of the moving centre in reference pixels (default: reference centre).
    max_shift_a : float, optional
        Search only positions within this distance (Å) of ``expected_center`` (periodic hole
        arrays, stage-predicted positions). Default: the whole reference.
    scale_search : float
        Half-range of the residual relative scale search (0.04 = ±4%, SerialEM's default);
        0 disables it.
    rotation_search_deg : float
        Half-range of the residual rotation search in degrees (SerialEM's default 3°); 0 disables.
    direction : {"down", "up"}
        ``"down"`` shrinks the moving image to the reference sampling (SerialEM's Low Dose
        offset route). ``"up"`` enlarges and rotates a reference extract around
        ``expected_center`` to the moving sampling (Realign to Item's scaled-map round) and
        aligns there; best with ``max_shift_a`` set (the extract then stays small).
    method : {"xcorr", "phase"}
        Filtered unnormalised cross-correlation (default, the most robust at low SNR) or phase
        correlation.
    n_threads : int, optional
        Worker threads; default all cores.
    filter : 4 floats or None
        IMOD filter ``(sigma1, sigma2, radius1, radius2)`` in cycles/pixel at the correlation
        sampling; default SerialEM's AutoAlign values.
    correlation_size : int
        The reference region is binned so that it is at most about this many pixels wide.
    n_peaks : int
        Peaks evaluated per correlation.
    taper_fraction : float
        Soft-mask ramp of the moving image (fraction of its shrunk size).
    return_map : bool
        Keep the correlation map of the best full-region search point in the result.
    refine : bool
        Run the maximum-likelihood refinement after the search (default): the pose with the
        calibration as a prior, the error bars from the likelihood's curvature and the
        calibrated ``confidence``. ``False`` is the fast path (about 5× faster with a known
        calibration, benches/RESULTS.md): the search's pose, conservative error bars (one
        correlation pixel for the centre, half the search ranges for scale and rotation) and
        the search's heuristic ``confidence``/``found``.

    Returns
    -------
    AlignmentResult

    Raises
    ------
    InvalidValueError
        Bad arguments (non-positive pixel sizes, the moving image coarser than the reference,
        unknown method/direction, a search circle outside the reference).
    """
    a, refine = _known_input(
        reference,
        moving,
        reference_pixel_a,
        moving_pixel_a,
        rotation_deg,
        expected_center,
        max_shift_a,
        scale_search,
        rotation_search_deg,
        direction,
        method,
        n_threads,
        filter,
        correlation_size,
        n_peaks,
        taper_fraction,
        return_map,
        refine,
    )
    s = a.p_m / a.p_r
    if _is_blank(a.ref):
        return not_found(a.ref_shape, a.mov_shape, a.p_r, a.p_m, s, a.theta0, a.ec)
    if _is_blank(a.mov):
        a.check_mov()  # an inf pixel also makes an image look "constant"
        return not_found(a.ref_shape, a.mov_shape, a.p_r, a.p_m, s, a.theta0, a.ec)
    if direction == "up":
        a.check_mov()
        return _align_up(a, refine)
    res = KnownSearch(a).run()
    if res.n_evaluations == 0:  # constant content: nothing to refine
        return res
    return _ml_refine(res, a.ref, a.mov, s, a.theta0, a.ss, a.rs, a.threads, refine)


def _is_blank(img: NDArray[np.float32]) -> bool:
    """A constant image: checked on a strided sample first (cheap), then on the whole image
    (the search checks the shrunk images again: content below the correlation sampling is
    invisible to it anyway).
    """
    return is_constant(img[:: max(1, img.shape[0] // 256), :: max(1, img.shape[1] // 256)]) and (
        is_constant(img)
    )


def _moving_image(moving: ArrayLike) -> tuple[NDArray[np.float32], Callable[[], None]]:
    """The moving image as float32 and the check of its values that the fast path defers.

    A float32 C-contiguous moving image skips as_image's separate NaN/inf pass (7 ms at
    4096²): the shrink in the search reads every pixel and raises for non-finite ones; the
    paths that do not shrink (direction "up", ratio near 1, "constant" images) call the
    returned check explicitly.
    """
    mov_fast = (
        isinstance(moving, np.ndarray)
        and moving.ndim == 2
        and moving.size > 0
        and moving.dtype == np.float32
        and moving.flags.c_contiguous
    )
    mov = (
        np.asarray(moving)  # the same object (no copy)
        if mov_fast
        else as_image(moving, "moving", allow_stack=False, dtype=np.float32)
    )

    def check_mov() -> None:
        if mov_fast:
            as_image(moving, "moving", allow_stack=False, dtype=np.float32)

    return mov, check_mov


def _search_radius(
    max_shift_a: float | None,
    ec: NDArray[np.float64],
    ref_shape: tuple[int, int],
    mov_shape: tuple[int, int],
    p_r: float,
    p_m: float,
) -> float | None:
    """The search radius in reference pixels (``None``: the whole reference), bounded, and
    checked to reach the reference.
    """
    ny_r, nx_r = ref_shape
    r_px = (
        None if max_shift_a is None else as_float(max_shift_a, "max_shift_a", positive=True) / p_r
    )
    if r_px is not None:
        # every size below follows from the radius: a circle larger than the reference plus
        # the moving footprint searches the same positions as that bound (a radius of 1e12 Å
        # once binned the reference by 2e9 and aborted allocating 3.9 GB)
        r_px = min(r_px, float(nx_r + ny_r) + (mov_shape[0] + mov_shape[1]) * p_m / p_r)
    if r_px is not None and (
        ec[0] + r_px < -0.5
        or ec[1] + r_px < -0.5
        or ec[0] - r_px > nx_r - 0.5
        or ec[1] - r_px > ny_r - 0.5
    ):
        raise InvalidValueError(
            "expected_center/max_shift_a: the search circle does not touch the reference image"
        )
    return r_px


def _known_input(
    reference: ArrayLike,
    moving: ArrayLike,
    reference_pixel_a: float,
    moving_pixel_a: float,
    rotation_deg: float,
    expected_center: ArrayLike | None,
    max_shift_a: float | None,
    scale_search: float,
    rotation_search_deg: float,
    direction: str,
    method: str,
    n_threads: int | None,
    filter: Sequence[float] | None,
    correlation_size: int,
    n_peaks: int,
    taper_fraction: float,
    return_map: bool,
    refine: bool,
) -> tuple[KnownInput, bool]:
    """The validated arguments of :func:`align` (errors name the argument) and ``refine``."""
    ref, _ = as_unit_image(reference, "reference")  # (the moving one: once shrunk)
    mov, check_mov = _moving_image(moving)
    p_r = as_float(reference_pixel_a, "reference_pixel_a", positive=True)
    p_m = as_float(moving_pixel_a, "moving_pixel_a", positive=True)
    theta0 = as_float(rotation_deg, "rotation_deg")
    ss = as_float(scale_search, "scale_search", low=0.0, high=0.5)
    rs = as_float(rotation_search_deg, "rotation_search_deg", low=0.0, high=45.0)
    ss = 0.0 if ss < 1e-6 else ss  # below any measurable scale step: no search
    rs = 0.0 if rs < 1e-4 else rs
    if direction not in ("down", "up"):
        raise InvalidValueError(f"direction: expected 'down' or 'up', got {direction!r}")
    if method not in ("xcorr", "phase"):
        raise InvalidValueError(f"method: expected 'xcorr' or 'phase', got {method!r}")
    filt = filter_arg(filter)
    csize = as_int(correlation_size, "correlation_size", low=64, high=16384)
    npk = as_int(n_peaks, "n_peaks", low=2, high=100)
    tf = as_float(taper_fraction, "taper_fraction", low=0.0, high=0.5)
    threads = n_threads_arg(n_threads)
    refine = as_bool(refine, "refine")
    s = p_m / p_r
    if s < 1.0 / 5000:
        raise InvalidValueError(
            f"moving_pixel_a / reference_pixel_a = {s:.3g}: a magnification ratio above 5000 is "
            "not one alignment; chain through a middle magnification (crossmag.compose)"
        )
    if s > 1.25:
        raise InvalidValueError(
            f"moving_pixel_a ({p_m} Å) is coarser than reference_pixel_a ({p_r} Å): the "
            "reference must be the lower-magnification image (swap the images)"
        )
    c_ref = center_of(ref.shape)
    ec = c_ref if expected_center is None else as_matrix(expected_center, "expected_center", (2,))
    ref_shape = (int(ref.shape[0]), int(ref.shape[1]))
    mov_shape = (int(mov.shape[0]), int(mov.shape[1]))
    r_px = _search_radius(max_shift_a, ec, ref_shape, mov_shape, p_r, p_m)
    a = KnownInput(
        ref=ref,
        mov=mov,
        p_r=p_r,
        p_m=p_m,
        theta0=theta0,
        ec=ec,
        r_px=r_px,
        ss=ss,
        rs=rs,
        method=method,
        threads=threads,
        filt=filt,
        csize=csize,
        npk=npk,
        tf=tf,
        return_map=bool(return_map),
        ref_shape=ref_shape,
        mov_shape=mov_shape,
        check_mov=check_mov,
    )
    return a, refine


def _footprint_overlap(
    affine: NDArray[np.float64],
    mov_shape: tuple[int, int],
    ref_shape: tuple[int, ...],
    taper_px: float,
    extract_warp: NDArray[np.float64] | None = None,
    n_extract: int = 0,
) -> float:
    """Fraction of the moving image's soft-mask weight (cosine ramp of ``taper_px`` moving
    pixels inside its border, as in the correlation) whose image under ``affine`` lies on the
    reference image and, when given, inside the ``n_extract``² extract whose pixel q maps to
    the reference at ``extract_warp @ [q, 1]``. Sampled on at most 128 × 128 moving pixels.
    """
    ny, nx = mov_shape
    ys = np.arange(0, ny, max(1, math.ceil(ny / 128)), dtype=np.float64)
    xs = np.arange(0, nx, max(1, math.ceil(nx / 128)), dtype=np.float64)

    def ramp(t: NDArray[np.float64]) -> NDArray[np.float64]:
        u = np.clip(t / taper_px, 0.0, 1.0) if taper_px > 0 else (t > 0).astype(np.float64)
        return np.where(t <= 0, 0.0, 0.5 * (1.0 - np.cos(np.pi * u)))

    wy = ramp(np.minimum(ys + 0.5, ny - 0.5 - ys))
    wx = ramp(np.minimum(xs + 0.5, nx - 0.5 - xs))
    w = wy[:, None] * wx[None, :]
    gx, gy = np.meshgrid(xs, ys)
    rx = affine[0, 0] * gx + affine[0, 1] * gy + affine[0, 2]
    ry = affine[1, 0] * gx + affine[1, 1] * gy + affine[1, 2]
    inside = (rx >= -0.5) & (rx < ref_shape[1] - 0.5) & (ry >= -0.5) & (ry < ref_shape[0] - 0.5)
    if extract_warp is not None:
        inv = np.linalg.inv(extract_warp[:, :2])
        dx, dy = rx - extract_warp[0, 2], ry - extract_warp[1, 2]
        qx = inv[0, 0] * dx + inv[0, 1] * dy
        qy = inv[1, 0] * dx + inv[1, 1] * dy
        lim = n_extract - 0.5
        inside &= (qx >= -0.5) & (qx < lim) & (qy >= -0.5) & (qy < lim)
    total = float(w.sum())
    return float((w * inside).sum() / total) if total > 0 else 0.0


def _align_up(inp: KnownInput, refine: bool) -> AlignmentResult:
    """``direction="up"`` (SerialEM's Realign to Item scaled-map round, ``ProcessImage.cpp :
    AlignBetweenMagnifications`` interpUp): a reference extract around ``ec`` is enlarged and
    rotated (Keys bicubic) into a frame aligned with the moving image's axes at pixel size
    ``p_c`` (the moving pixel size, coarser if the extract would exceed ``correlation_size``);
    the moving image is then aligned to it at that sampling (``direction="down"`` machinery, no
    further shrink when ``p_c = p_m``) and the two maps are composed exactly. The filter's
    high-frequency part is scaled by ``p_c/p_r`` (SerialEM's ``hiFreqScale``): the enlarged
    reference has no information beyond its own Nyquist.
    """
    ref, mov, p_r, p_m, theta0, ec = inp.ref, inp.mov, inp.p_r, inp.p_m, inp.theta0, inp.ec
    r_px, ss, rs, threads, csize, tf = inp.r_px, inp.ss, inp.rs, inp.threads, inp.csize, inp.tf
    ny_m, nx_m = mov.shape
    half_mov = 0.5 * math.hypot(nx_m, ny_m) * p_m  # Å, any rotation
    reach = (r_px * p_r if r_px is not None else 0.5 * max(ref.shape) * p_r) + half_mov
    width_a = 2 * reach * (1 + ss) + 4 * p_r
    p_c = max(p_m, width_a / csize)
    n_out = max(16, math.ceil(width_a / p_c))
    k = p_c / p_r
    lin = k * rotation(theta0)
    q_c = np.array([(n_out - 1) / 2, (n_out - 1) / 2])
    warp = np.hstack([lin, (ec - lin @ q_c)[:, None]])  # extract pixel q -> reference pixel
    extract = warp_affine(ref.astype(np.float32), warp, (n_out, n_out), order=3, n_threads=threads)
    f1, f2, r1, r2 = inp.filt
    kf = min(1.0, k)
    filt_up = (f1, f2 * kf, r1, r2 * kf)
    sub = align(
        extract,
        mov,
        reference_pixel_a=p_c,
        moving_pixel_a=p_m,
        rotation_deg=0.0,
        expected_center=q_c,
        max_shift_a=None if r_px is None else r_px * p_r,
        scale_search=ss,
        rotation_search_deg=rs,
        direction="down",
        method=inp.method,
        n_threads=threads,
        filter=filt_up,
        correlation_size=csize,
        n_peaks=inp.npk,
        taper_fraction=tf,
        return_map=inp.return_map,
    )
    a = np.hstack([lin @ sub.affine[:, :2], (lin @ sub.affine[:, 2] + warp[:, 2])[:, None]])
    # The extract's pixels outside the reference image are filler, but the sub-alignment
    # counts them as valid: measure the overlap on the reference itself (and inside the
    # extract), with the same soft mask of the moving image, and re-judge found/confidence.
    overlap = _footprint_overlap(
        a, (int(ny_m), int(nx_m)), ref.shape, max(2.0, tf * float(min(ny_m, nx_m))), warp, n_out
    )
    min_sig = _MIN_SIGNIFICANCE_SEARCH if (ss > 0 or rs > 0) else _MIN_SIGNIFICANCE
    found = bool(sub.found and overlap >= _MIN_OVERLAP)
    conf = min(sub.confidence, confidence_ramps(sub.significance, sub.peak_ratio, overlap, min_sig))
    if not found:
        conf = min(conf, 0.49)
    res = make_result(
        a,
        reference_shape=(int(ref.shape[0]), int(ref.shape[1])),
        moving_shape=(int(ny_m), int(nx_m)),
        reference_pixel_a=p_r,
        moving_pixel_a=p_m,
        found=found,
        confidence=conf,
        ccc=sub.ccc,
        overlap=overlap,
        peak_ratio=sub.peak_ratio,
        peak_z=sub.peak_z,
        significance=sub.significance,
        at_search_edge=sub.at_search_edge,
        binning=sub.binning,
        n_evaluations=sub.n_evaluations,
        correlation_map=sub.correlation_map,
    )
    res = replace(res, scale=float(sub.scale * k), rotation_deg=float(theta0 + sub.rotation_deg))
    # the sub-alignment was refined against the interpolated extract: refine again against
    # the reference itself (the exact forward model)
    return _ml_refine(res, ref, mov, p_m / p_r, theta0, ss, rs, threads, refine)


def _ml_refine(
    res: AlignmentResult,
    ref: NDArray[np.float32],
    mov: NDArray[np.float32],
    s_nom: float,
    theta0: float,
    ss: float,
    rs: float,
    threads: int | None,
    enabled: bool = True,
) -> AlignmentResult:
    """The search's answer refined by maximum likelihood (:mod:`emgeom.crossmag._refine`):
    the calibration is a Gaussian prior (σ = half the search range) bounded by the range.
    When the refinement is not ``enabled``, cannot run or leaves the search's peak (more than
    two binned reference pixels), the search's geometry stays and its sampling stands in for
    the error bars.
    """
    r = (
        refine_pose(
            mov,
            ref,
            res.affine,
            scale_prior=(s_nom, 0.5 * ss) if ss > 0 else None,
            rotation_prior_deg=(theta0, 0.5 * rs) if rs > 0 else None,
            scale_bound=ss,
            rotation_bound_deg=rs,
            threads=threads,
        )
        if enabled
        else None
    )
    tol = 2.0 * max(1, res.binning)
    # the search's hard ambiguity gates stay on the calibrated probability: a rival peak within
    # 10 % (periodic hole lattices) or too little overlap is never `found`, whatever the other
    # measures say (the calibration set has too few lattices to learn it;
    # tests/crossmag/test_crossmag.py::test_periodic_lattice_needs_expected_center)
    gates = res.peak_ratio >= _MIN_RATIO and res.overlap >= _MIN_OVERLAP
    if r is None or not r.converged or math.hypot(*(r.center - np.asarray(res.center))) > tol:
        out = replace(
            res,
            center_sigma=float(max(1, res.binning)),
            scale_sigma=0.5 * ss,
            rotation_sigma_deg=0.5 * rs,
        )
        # (residual_corr_area 0 tells the calibrated model that the refinement failed; the
        # search's own `found` is then one more gate)
        c = gated_confidence(align_features(out), gates and res.found) if enabled else None
        return out if c is None else replace(out, confidence=c, found=c >= 0.5)
    m = (res.significance, res.peak_ratio, res.overlap, r.center_sigma, r.at_edge)
    x = features(*m, r.ccc, r.corr_area, r.scale_sigma > 0)
    conf_cal = gated_confidence(x, gates, r.center_sigma)
    if conf_cal is None:  # (no shipped model: the measures' ramps)
        found = bool(res.found and not r.at_edge)
        conf = res.confidence if found else min(res.confidence, 0.49)
    else:
        conf, found = conf_cal, conf_cal >= 0.5
    out = make_result(
        r.affine,
        reference_shape=res.reference_shape,
        moving_shape=res.moving_shape,
        reference_pixel_a=res.reference_pixel_a,
        moving_pixel_a=res.moving_pixel_a,
        scale=r.scale,
        rotation_deg=r.rotation_deg,
        found=found,
        confidence=conf,
        ccc=res.ccc,
        overlap=res.overlap,
        peak_ratio=res.peak_ratio,
        peak_z=res.peak_z,
        significance=res.significance,
        at_search_edge=bool(r.at_edge),
        binning=res.binning,
        n_evaluations=res.n_evaluations,
        correlation_map=res.correlation_map,
        map_origin=res.map_origin,
        center_sigma=r.center_sigma,
        scale_sigma=r.scale_sigma,
        rotation_sigma_deg=r.rotation_sigma_deg,
        prediction_ccc=r.ccc,
        residual_corr_area=r.corr_area,
    )
    return out
