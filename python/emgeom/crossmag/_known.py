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
   (significance, peak ratio, overlap, ``center_sigma``, the search-edge flag) fitted on a
   generated calibration set (:mod:`._confidence`); ``found = confidence >= 0.5``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
from numpy.typing import ArrayLike, NDArray

from emgeom._validate import (
    as_float,
    as_image,
    as_int,
    as_matrix,
    n_threads_arg,
)
from emgeom.crossmag._confidence import calibrated_confidence, features, ramp_confidence
from emgeom.crossmag._correlate import DEFAULT_FILTER, filter_arg
from emgeom.crossmag._geometry import (
    as_unit_image,
    center_of,
    is_constant,
    rotation,
)
from emgeom.crossmag._refine import refine_pose
from emgeom.crossmag._result import AlignmentResult, make_result, not_found
from emgeom.crossmag._search import (
    Level,
    Region,
    coarse_candidates,
    fit_cross,
    fit_local,
    noise_corr_area,
    track,
)
from emgeom.crossmag._search import (
    level as build_level,
)
from emgeom.errors import InvalidValueError
from emgeom.resample import warp_affine

__all__ = ["align"]

#: Decision thresholds of ``found`` (calibrated on the noise sweep of
#: tests/test_crossmag_sweep.py): the CCC must exceed 1.5× the CCC that the best of M search
#: positions reaches on pure noise, ``sqrt(2 ln M · ρ / n)`` (n footprint pixels, ρ the
#: correlation area of filtered white noise); the best peak must beat the second by 10%.
_MIN_SIGNIFICANCE = 1.5
#: With the residual scale/rotation search the kept CCC is the best of ~25 correlated
#: hypotheses and is inflated: wrong matches reached 1.97 in the sweep, so require 2.0.
_MIN_SIGNIFICANCE_SEARCH = 2.0
_MIN_RATIO = 1.10
_MIN_OVERLAP = 0.3
_SCALE_STEP = 0.02  # SerialEM MultiTSTasks.cpp mCkAlignStep
#: Residual search: coarse-grid candidates (distinct positions) refined at full sampling, at
#: most this many, each scoring at least this fraction of the best coarse score.
_N_CANDIDATES = 3
_CANDIDATE_FRAC = 0.9
#: Coarse grid step = this × (SerialEM's 2% / 1.5°, at most half the range): a 3×3 grid for
#: the default ±4% / ±3° (measured on the design §7 hole-edge scenario with −3% / +2.5°
#: error: the same success as the former 5×5 grid, within the trial-to-trial noise, at 0.6×
#: the cost); the refinement's steps are the coarse steps divided by each of _REFINE_DIVS in
#: turn (a 3×3 grid, then a cross), the later rounds only while the optimum sits on the edge
#: of the search range (a single ±2% round left a noise-free scale estimate on the edge,
#: 1.0400 for a true 1.031 whose criterion optimum is 1.0386; an always-on second round was
#: 20% dearer and no more accurate: 136/160 within 1.5 px and 4 found-but-wrong either way
#: over the seeds 13–22 of the calibration-error scenario plus a 300-trial noise sweep).
_COARSE_MULT = 2.0
_REFINE_DIVS = (2.0, 4.0)
_REFINE_ONLY_AT_EDGE = True
_ROT_STEP = 1.5  # SerialEM NavHelper.cpp AlignWithRotation step (degrees)


def _confidence(
    significance: float, ratio: float, overlap: float, min_sig: float = _MIN_SIGNIFICANCE
) -> float:
    """Monotone map of the measures to [0, 1]; exactly 0.5 at the ``found`` thresholds."""
    return ramp_confidence(
        (
            (significance, 0.0, min_sig, 2 * min_sig),
            (ratio, 1.0, _MIN_RATIO, 1.6),
            (overlap, 0.0, _MIN_OVERLAP, 0.7),
        )
    )


def _ml_refine(
    res: AlignmentResult,
    ref: NDArray[np.float32],
    mov: NDArray[np.float32],
    s_nom: float,
    theta0: float,
    ss: float,
    rs: float,
    threads: int | None,
) -> AlignmentResult:
    """The search's answer refined by maximum likelihood (:mod:`emgeom.crossmag._refine`):
    the calibration is a Gaussian prior (σ = half the search range) bounded by the range.
    When the refinement cannot run or leaves the search's peak (more than two binned reference
    pixels), the search's geometry stays and its sampling stands in for the error bars.
    """
    r = refine_pose(
        mov,
        ref,
        res.affine,
        scale_prior=(s_nom, 0.5 * ss) if ss > 0 else None,
        rotation_prior_deg=(theta0, 0.5 * rs) if rs > 0 else None,
        scale_bound=ss,
        rotation_bound_deg=rs,
        threads=threads,
    )
    tol = 2.0 * max(1, res.binning)
    if r is None or not r.converged or math.hypot(*(r.center - np.asarray(res.center))) > tol:
        return replace(
            res,
            center_sigma=float(max(1, res.binning)),
            scale_sigma=0.5 * ss,
            rotation_sigma_deg=0.5 * rs,
        )
    searched = ss > 0 or rs > 0
    x = features(res.significance, res.peak_ratio, res.overlap, r.center_sigma, r.at_edge, searched)
    conf_cal = calibrated_confidence(x)
    if conf_cal is None:  # (no shipped model: the measures' ramps)
        found = bool(res.found and not r.at_edge)
        conf = res.confidence if found else min(res.confidence, 0.49)
    else:
        # the calibrated probability, with the search's hard ambiguity gates kept: a rival
        # peak within 10 % (periodic hole lattices) or too little overlap is never `found`,
        # whatever the other measures say (the calibration set has too few lattices to learn
        # it; tests/test_crossmag.py::test_periodic_lattice_needs_expected_center)
        gates = res.peak_ratio >= _MIN_RATIO and res.overlap >= _MIN_OVERLAP
        conf = conf_cal if gates else min(conf_cal, 0.49)
        found = conf >= 0.5
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
    )
    return out


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

    Returns
    -------
    AlignmentResult

    Raises
    ------
    InvalidValueError
        Bad arguments (non-positive pixel sizes, the moving image coarser than the reference,
        unknown method/direction, a search circle outside the reference).
    """
    ref, _ = as_unit_image(reference, "reference")  # (the moving one: once shrunk)
    # A float32 C-contiguous moving image skips as_image's separate NaN/inf pass (7 ms at
    # 4096²): the shrink below reads every pixel and raises for non-finite ones; the paths that
    # do not shrink (direction "up", ratio near 1, "constant" images) validate it explicitly.
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
    ny_r, nx_r = ref.shape
    c_ref = center_of(ref.shape)
    ec = c_ref if expected_center is None else as_matrix(expected_center, "expected_center", (2,))
    r_px = (
        None if max_shift_a is None else as_float(max_shift_a, "max_shift_a", positive=True) / p_r
    )
    if r_px is not None:
        # every size below follows from the radius: a circle larger than the reference plus
        # the moving footprint searches the same positions as that bound (a radius of 1e12 Å
        # once binned the reference by 2e9 and aborted allocating 3.9 GB)
        r_px = min(r_px, float(nx_r + ny_r) + (mov.shape[0] + mov.shape[1]) * p_m / p_r)
    if r_px is not None and (
        ec[0] + r_px < -0.5
        or ec[1] + r_px < -0.5
        or ec[0] - r_px > nx_r - 0.5
        or ec[1] - r_px > ny_r - 0.5
    ):
        raise InvalidValueError(
            "expected_center/max_shift_a: the search circle does not touch the reference image"
        )
    ref_shape = (int(ny_r), int(nx_r))
    mov_shape = (int(mov.shape[0]), int(mov.shape[1]))
    # constant images: checked on a strided sample here (cheap), and again on the shrunk
    # images below (content below the correlation sampling is invisible to it anyway)
    if is_constant(ref[:: max(1, ref.shape[0] // 256), :: max(1, ref.shape[1] // 256)]) and (
        is_constant(ref)
    ):
        return not_found(ref_shape, mov_shape, p_r, p_m, s, theta0, ec)
    if is_constant(mov[:: max(1, mov.shape[0] // 256), :: max(1, mov.shape[1] // 256)]) and (
        is_constant(mov)
    ):
        check_mov()  # an inf pixel also makes an image look "constant"
        return not_found(ref_shape, mov_shape, p_r, p_m, s, theta0, ec)

    if direction == "up":
        check_mov()
        return _align_up(
            ref,
            mov,
            p_r,
            p_m,
            theta0,
            ec,
            r_px,
            ss,
            rs,
            method,
            threads,
            filt,
            csize,
            npk,
            tf,
            return_map,
        )

    # moving footprint half-extent in reference pixels (over the whole search range)
    ny_m, nx_m = mov.shape
    thetas = np.linspace(theta0 - rs, theta0 + rs, 7)
    cs, sn = np.abs(np.cos(np.radians(thetas))), np.abs(np.sin(np.radians(thetas)))
    ext_x = float(np.max(cs * nx_m / 2 + sn * ny_m / 2)) * s * (1 + ss)
    ext_y = float(np.max(sn * nx_m / 2 + cs * ny_m / 2)) * s * (1 + ss)

    # region to search (full reference pixels)
    if r_px is None:
        lo = np.array([0.0, 0.0])
        hi = np.array([nx_r - 1.0, ny_r - 1.0])
    else:
        lo = ec - r_px - np.array([ext_x, ext_y])
        hi = ec + r_px + np.array([ext_x, ext_y])
    width = float(max(hi[0] - lo[0], hi[1] - lo[1])) + 1
    b = max(1, math.ceil(width / csize))
    searching = ss > 0 or rs > 0
    if s / b > 0.8:
        check_mov()  # not shrunk (the area/Lanczos shrinks check every pixel themselves)

    def level(
        image: NDArray[np.float32],
        binning: int,
        zoom: float,
        center_mov: NDArray[np.float64] | None = None,
    ) -> Level:
        return build_level(
            ref,
            image,
            binning,
            zoom,
            lo,
            hi,
            ec,
            r_px,
            ext_x,
            ext_y,
            ss,
            rs,
            theta0,
            tf,
            filt,
            method,
            npk,
            threads,
            center_mov=center_mov,
        )

    try:
        lv = level(mov, b, s)
    except InvalidValueError:
        check_mov()  # the shrink found a NaN/inf pixel: report it under the argument's name
        raise
    st, (x0, y0), size, _allowed, _, _ = lv
    # (unbinned, ref_b is the reference itself, already known not to be constant)
    if is_constant(st.mov_s) or (b > 1 and is_constant(st.ref_b)):
        return not_found(ref_shape, mov_shape, p_r, p_m, s, theta0, ec)
    # the coarse (scale, rotation) grid runs one pyramid level down (2× coarser) when the
    # region is large: 4× cheaper per point; the refinement below is at full sampling
    coarse = lv
    if searching and min(size) >= 384 and min(st.mov_s.shape) >= 64:
        # built from the fine level's shrunk moving image (s_f reference px per its pixel)
        coarse = level(st.mov_s, 2 * b, b * st.zr, center_mov=st.c_s)
    st_c, (x0c, y0c), size_c, allowed_c, _, _ = coarse
    full = Region(st_c, (x0c, y0c), size_c, allowed_c, st_c.ref_taper)
    n_eval = 0

    # --- coarse stage on the full region: joint (scale, rotation) grid ---------------------
    scale_step = min(_SCALE_STEP, ss / 2) * _COARSE_MULT if ss > 0 else 0.0
    rot_step = min(_ROT_STEP, rs / 2) * _COARSE_MULT if rs > 0 else 0.0
    if ss > 0:
        k = math.ceil(ss / scale_step - 1e-9)
        sig_list = [float(np.clip(1 + i * scale_step, 1 - ss, 1 + ss)) for i in range(-k, k + 1)]
    else:
        sig_list = [1.0]
    if rs > 0:
        k = math.ceil(rs / rot_step - 1e-9)
        th_list = [
            float(np.clip(theta0 + i * rot_step, theta0 - rs, theta0 + rs))
            for i in range(-k, k + 1)
        ]
    else:
        th_list = [theta0]
    # joint grid (more robust than SerialEM's scale-then-rotation order when both are off:
    # a wrong rotation can hide the true peak from the scale scan)
    grid = [(sg, th) for sg in sig_list for th in th_list]
    evals, _ = full.evaluate(st_c, grid)
    n_eval += len(evals)
    tol = max(2.0, 0.5 * st_c.min_sep)
    # distinct candidate positions, each with its best grid point: with a calibration error
    # near the edge of the search box the coarse grid can rank a wrong position (e.g. further
    # along a curved hole edge at another rotation) first by a hair, so every candidate
    # within _CANDIDATE_FRAC of the best is refined at full sampling and the best refined
    # score wins
    cands = coarse_candidates(
        evals, st_c.min_sep, _N_CANDIDATES if searching else 1, _CANDIDATE_FRAC
    )
    if not cands:
        return not_found(ref_shape, mov_shape, p_r, p_m, s, theta0, ec)
    bc = st_c.binning

    def to_fine(q: NDArray[np.float64]) -> NDArray[np.float64]:
        """Coarse-level region px -> full-sampling region px."""
        u = (q + np.array([x0c, y0c]) + 0.5) * bc - 0.5
        return (u + 0.5) / b - 0.5 - np.array([x0, y0])

    # the full region at full sampling: the refinement's direct (CCC-only) evaluations read
    # its filtered reference, and the honesty measures below correlate over it
    fine = (
        full
        if coarse is lv
        else Region(st, (x0, y0), size, _allowed, st.ref_taper)
        if (searching or return_map)
        else None
    )

    def refine(
        pos: NDArray[np.float64], sigma: float, theta: float
    ) -> tuple[float, float, NDArray[np.float64] | None, float, int]:
        """Local (scale, rotation) refinement at full sampling around ``pos`` (full-sampling
        region px): a 3×3 grid and a 2-D quadratic fit, then (at the range edge) a cross at
        half that step; the position hill-climbed on the CCC (no correlation map). Returns
        (sigma, theta, final peak or None, its score, evaluations).
        """
        assert fine is not None
        small = fine
        n = 0
        pos_s = (float(pos[0]), float(pos[1]))
        us = (-1, 0, 1) if ss > 0 else (0,)
        vs = (-1, 0, 1) if rs > 0 else (0,)
        full_grid = [(u, v) for u in us for v in vs]
        cross = [(u, v) for u, v in full_grid if u == 0 or v == 0]
        # rounds of step halving: the first a 3×3 grid + 2-D quadratic fit, the later ones a
        # cross (centre and the 4 axis neighbours) + one parabola per axis; a round is
        # repeated (up to 3 times) while the optimum sits on the edge of its grid
        for r_i, div in enumerate(_REFINE_DIVS):
            on_edge = (ss > 0 and abs(sigma - 1.0) >= ss - 1e-6) or (
                rs > 0 and abs(theta - theta0) >= rs - 1e-6
            )
            if r_i > 0 and _REFINE_ONLY_AT_EDGE and not on_edge:
                break
            ds = scale_step / div if ss > 0 else 0.0
            dt = rot_step / div if rs > 0 else 0.0
            lgrid = full_grid if r_i == 0 else cross
            for _ in range(3):
                pts = [(sigma + u * ds, theta + v * dt) for u, v in lgrid]
                ev, _ = small.evaluate(st, pts, direct=pos_s)
                n += len(ev)
                # (each direct evaluation holds the one CCC maximum climbed to from pos_s: the
                # profile of the score over (scale, rotation), even where the maximum slides
                # along an edge as the rotation changes)
                sc_l = np.array([e.best_score() if len(e.peaks) else np.nan for e in ev])
                du, dv = fit_local(lgrid, sc_l) if r_i == 0 else fit_cross(lgrid, sc_l)
                new_s = float(np.clip(sigma + du * ds, 1 - ss, 1 + ss))
                new_t = float(np.clip(theta + dv * dt, theta0 - rs, theta0 + rs))
                moved_to_edge = (abs(du) > 0.999 and new_s != sigma) or (
                    abs(dv) > 0.999 and new_t != theta
                )
                sigma, theta = new_s, new_t
                if not moved_to_edge:
                    break
        ev, _ = small.evaluate(st, [(sigma, theta)], direct=pos_s)
        n += 1
        kb = ev[0].best()
        if kb < 0:
            return sigma, theta, None, -1.0, n
        pk = ev[0].peaks[kb]
        fin = np.array([pk[0], pk[1], pk[2], pk[3], pk[4]], dtype=np.float64)
        return sigma, theta, fin, float(ev[0].scores()[kb]), n

    runs = []
    for pos_c, k_best in cands:
        ev_k = evals[k_best]
        # quadratic fit on the 3×3 grid neighbourhood of the candidate's best point (the
        # same peak tracked across the grid points)
        i_s, i_t = divmod(k_best, len(th_list))
        i_s = min(max(i_s, 1), len(sig_list) - 2) if len(sig_list) >= 3 else 0
        i_t = min(max(i_t, 1), len(th_list) - 2) if len(th_list) >= 3 else 0
        nb = [
            (u, v)
            for u in ((-1, 0, 1) if len(sig_list) >= 3 else (0,))
            for v in ((-1, 0, 1) if len(th_list) >= 3 else (0,))
        ]
        scores = track([evals[(i_s + u) * len(th_list) + (i_t + v)] for u, v in nb], pos_c, tol)
        du, dv = fit_local(nb, scores)
        sigma = float(np.clip(sig_list[i_s] + du * scale_step, 1 - ss, 1 + ss)) if ss > 0 else 1.0
        theta = (
            float(np.clip(th_list[i_t] + dv * rot_step, theta0 - rs, theta0 + rs))
            if rs > 0
            else theta0
        )
        # ambiguity and significance from the coarse map of the candidate's best point
        sc = ev_k.scores()
        dk = np.hypot(ev_k.peaks[:, 0] - pos_c[0], ev_k.peaks[:, 1] - pos_c[1])
        j = int(np.argmin(dk))
        others = sc[dk > st_c.min_sep]
        second = float(others.max()) if len(others) else 0.0
        first = float(sc[j])
        ratio = 100.0 if second <= 1e-6 else float(min(100.0, first / second)) if first > 0 else 0.0
        top = ev_k.peaks[j].copy()
        z_score = (float(top[2]) - ev_k.mean) / ev_k.std if ev_k.std > 0 else 0.0
        n_positions = ev_k.count * (bc // b) ** 2  # positions at full sampling
        top[:2] = to_fine(top[:2])
        final: NDArray[np.float64] = top
        score = first
        if searching:
            sigma, theta, fin, sc_f, n = refine(to_fine(pos_c), sigma, theta)
            n_eval += n
            # (a failed refinement keeps the coarse peak but must not win on its coarse-level
            # score, which is not comparable with the full-sampling ones)
            final, score = (fin, sc_f) if fin is not None else (final, -1.0)
        runs.append((score, sigma, theta, final, ratio, z_score, n_positions))
    best_run = max(range(len(runs)), key=lambda q: runs[q][0])
    score_best, sigma, theta, final, ratio, z_score, n_positions = runs[best_run]
    # another candidate that refines to nearly the same score elsewhere is an ambiguity
    rivals = [
        r[0]
        for q, r in enumerate(runs)
        if q != best_run and np.hypot(*(r[3][:2] - final[:2])) > st.min_sep
    ]
    cand_ratio = (
        100.0
        if not rivals or max(rivals) <= 1e-6
        else float(min(100.0, score_best / max(rivals)))
        if score_best > 0
        else 0.0
    )
    at_edge = bool(
        (ss > 0 and abs(sigma - 1.0) >= ss - 1e-6) or (rs > 0 and abs(theta - theta0) >= rs - 1e-6)
    )

    # --- honesty measures at full sampling, at the refined (scale, rotation) ---------------
    # (the coarse level's peak ratio is far less discriminative: measured 1.05-1.13 vs
    # 1.2-1.6 for the same true matches, so ambiguity is judged at full sampling)
    cmap = None
    if coarse is not lv or return_map:
        full_f = fine if fine is not None else Region(st, (x0, y0), size, _allowed, st.ref_taper)
        ev_f, cmap = full_f.evaluate(st, [(sigma, theta)], want_map=return_map)
        n_eval += 1
        e_f = ev_f[0]
        n_positions = max(n_positions, e_f.count)
        if len(e_f.peaks):
            scf = e_f.scores()
            d = np.hypot(e_f.peaks[:, 0] - final[0], e_f.peaks[:, 1] - final[1])
            near = d <= max(2.0, 0.5 * st.min_sep)
            mine = float(scf[near].max()) if near.any() else 0.0
            others = scf[d > st.min_sep]
            second = float(others.max()) if len(others) else 0.0
            if mine <= 0:
                ratio = 0.0
            else:
                ratio = 100.0 if second <= 1e-6 else float(min(100.0, mine / second))
            k_near = int(np.argmax(np.where(near, scf, -np.inf))) if near.any() else -1
            val = float(e_f.peaks[k_near, 2]) if k_near >= 0 else 0.0
            z_score = (val - e_f.mean) / e_f.std if e_f.std > 0 else 0.0

    ratio = min(ratio, cand_ratio)

    # --- geometry back to full reference pixels ------------------------------------------
    v = np.array([final[0] + x0, final[1] + y0])
    center = (v + 0.5) * b - 0.5
    scale = sigma * s
    lin = scale * rotation(theta)
    affine = np.hstack([lin, (center - lin @ center_of(mov.shape))[:, None]])
    ccc = float(final[3])
    overlap = float(np.clip(final[4], 0.0, 1.0))
    # significance: CCC relative to the best CCC pure noise reaches over the searched positions
    n_foot = max(16.0, float(st.mov_s.shape[0] * st.mov_s.shape[1]) * st.zr * st.zr)
    n_pos = max(2, n_positions)
    noise_max = math.sqrt(2.0 * math.log(n_pos) * noise_corr_area(filt) / n_foot)
    significance = ccc / noise_max
    # an optimum clipped to the edge of the search range lies outside it: the position is not
    # trustworthy (SerialEM NavHelper.cpp AlignWithRotation returns error 1 in that case)
    min_sig = _MIN_SIGNIFICANCE_SEARCH if searching else _MIN_SIGNIFICANCE
    found = bool(
        significance >= min_sig and ratio >= _MIN_RATIO and overlap >= _MIN_OVERLAP and not at_edge
    )
    conf = _confidence(significance, ratio, overlap, min_sig)
    if not found:
        conf = min(conf, 0.49)
    res = make_result(
        affine,
        reference_shape=ref_shape,
        moving_shape=mov_shape,
        reference_pixel_a=p_r,
        moving_pixel_a=p_m,
        found=found,
        confidence=conf,
        ccc=ccc,
        overlap=overlap,
        peak_ratio=float(ratio),
        peak_z=float(z_score),
        significance=float(significance),
        at_search_edge=at_edge,
        binning=b,
        n_evaluations=n_eval,
        correlation_map=cmap,
        map_origin=(x0, y0),
        scale=float(scale),  # the exact refined values, not re-derived from the matrix
        rotation_deg=float(theta),
    )
    return _ml_refine(res, ref, mov, s, theta0, ss, rs, threads)


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


def _align_up(
    ref: NDArray[np.float32],
    mov: NDArray[np.float32],
    p_r: float,
    p_m: float,
    theta0: float,
    ec: NDArray[np.float64],
    r_px: float | None,
    ss: float,
    rs: float,
    method: str,
    threads: int | None,
    filt: tuple[float, float, float, float],
    csize: int,
    npk: int,
    tf: float,
    return_map: bool,
) -> AlignmentResult:
    """``direction="up"`` (SerialEM's Realign to Item scaled-map round, ``ProcessImage.cpp :
    AlignBetweenMagnifications`` interpUp): a reference extract around ``ec`` is enlarged and
    rotated (Keys bicubic) into a frame aligned with the moving image's axes at pixel size
    ``p_c`` (the moving pixel size, coarser if the extract would exceed ``correlation_size``);
    the moving image is then aligned to it at that sampling (``direction="down"`` machinery, no
    further shrink when ``p_c = p_m``) and the two maps are composed exactly. The filter's
    high-frequency part is scaled by ``p_c/p_r`` (SerialEM's ``hiFreqScale``): the enlarged
    reference has no information beyond its own Nyquist.
    """
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
    f1, f2, r1, r2 = filt
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
        method=method,
        n_threads=threads,
        filter=filt_up,
        correlation_size=csize,
        n_peaks=npk,
        taper_fraction=tf,
        return_map=return_map,
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
    conf = min(sub.confidence, _confidence(sub.significance, sub.peak_ratio, overlap, min_sig))
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
    return _ml_refine(res, ref, mov, p_m / p_r, theta0, ss, rs, threads)
