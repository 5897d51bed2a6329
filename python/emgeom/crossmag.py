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
6. ``found`` and ``confidence`` come from the peak CCC, the overlap, the ratio of the best to
   the second-best peak score (ambiguity) and the peak's height above the correlation map in
   standard deviations.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from emgeom import _core
from emgeom._validate import (
    as_float,
    as_image,
    as_image_range,
    as_int,
    as_matrix,
    n_threads_arg,
)
from emgeom.errors import InvalidValueError

__all__ = [
    "DEFAULT_FILTER",
    "AlignmentResult",
    "CorrelationPeak",
    "CorrelationResult",
    "align",
    "compose",
    "correlate",
]

#: IMOD filter (sigma1, sigma2, radius1, radius2) in cycles/pixel: SerialEM AutoAlign defaults
#: (``ShiftManager.cpp``: mSigma1 = 0.03, mSigma2 = 0.05, mRadius2 = 0.25).
DEFAULT_FILTER = (0.03, 0.05, 0.0, 0.25)

#: Peak score = CCC · overlap^(1/6) (SerialEM ``ShiftManager.cpp : AutoAlign``).
_OVERLAP_POWER = 1.0 / 6.0
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


def _rot(theta_deg: float) -> NDArray[np.float64]:
    t = math.radians(theta_deg)
    c, s = math.cos(t), math.sin(t)
    return np.array([[c, -s], [s, c]])


def _center_of(shape: tuple[int, ...]) -> NDArray[np.float64]:
    return np.array([(shape[1] - 1) / 2.0, (shape[0] - 1) / 2.0])


@dataclass(frozen=True, eq=False)
class AlignmentResult:
    """Result of :func:`align` (see the module docs for the exact geometry).

    Attributes
    ----------
    affine : ndarray (2, 3)
        ``[x_ref, y_ref] = affine @ [x_mov, y_mov, 1]`` (pixels; x = column, y = row).
    scale : float
        Refined pixel-size ratio moving/reference (reference pixels per moving pixel). With a
        residual search it is biased: up to +0.7 % high on noise-free synthetic pairs, and low
        (by 2–7 %) in the low-SNR misses of the hole-edge scenario (see docs/crossmag.md
        "Accuracy of the refined scale and rotation"): good for the position, not a
        magnification calibration.
    rotation_deg : float
        Refined rotation θ of the linear part ``scale·R(θ)`` (degrees); with a residual search
        its median error is within ±0.05° noise-free (single trials up to 0.1°).
    center : (float, float)
        ``(x, y)`` reference pixel where the moving centre ``((nx−1)/2, (ny−1)/2)`` lies.
    center_a : (float, float)
        ``center`` minus the reference centre, in Å (x right, y down the rows).
    shift_a : (float, float)
        ``−center_a``: the shift (Å, image axes) that brings the specimen point under the
        moving image's centre to the reference image's centre (the sign of SerialEM's alignment
        shift of the lower-mag buffer).
    found : bool
        False for blank, constant or featureless content, ambiguous or weak peaks, too little
        overlap, or a scale/rotation optimum outside the searched range; then the geometry is
        the best guess and must not be used.
    confidence : float
        In [0, 1]: the minimum of three ramps of ``significance`` (from ``ccc``),
        ``peak_ratio`` and ``overlap``, each exactly 0.5 at its ``found`` threshold
        (significance 1.5 / 2.0 with search, ratio 1.10, overlap 0.3) and 1 at twice the
        significance threshold, ratio 1.6 and overlap 0.7.
    ccc : float
        Pearson CCC of the filtered images over the overlap at the final peak.
    overlap : float
        Fraction of the moving image's (mask) weight that lies on the reference image.
    peak_ratio : float
        Best peak score / second-best peak score in the searched area (≈ 1 = ambiguous; capped
        at 100); with the residual search also the best refined score / that of a rival
        candidate position refined elsewhere (the smaller of the two ratios).
    peak_z : float
        Peak height above the mean of the correlation map in its standard deviations
        (reported only; large-scale content makes it a poor decision measure).
    significance : float
        ``ccc`` divided by ``sqrt(2 ln M · ρ / n)``, the CCC that the best of the M searched
        positions reaches on pure noise (n footprint pixels, ρ the correlation area of the
        filtered noise); ``found`` needs ≥ 1.5, or ≥ 2.0 when the residual search ran (the
        kept CCC is then the best of many correlated hypotheses).
    at_search_edge : bool
        The refined scale or rotation was clipped to the edge of the searched range (the
        optimum lies outside it: widen the range or fix the calibration; SerialEM's error 1).
    reference_pixel_a, moving_pixel_a : float
        Pixel sizes (Å) of the inputs.
    reference_shape, moving_shape : (int, int)
        ``(ny, nx)`` of the inputs.
    binning : int
        Binning of the reference used for the correlation.
    n_evaluations : int
        Correlations computed (search points).
    correlation_map : ndarray or None
        The correlation map over the searched region at the binned sampling (with
        ``return_map=True``).
    map_origin : (int, int)
        ``(x0, y0)`` of ``correlation_map[0, 0]`` in binned reference pixels.
    """

    affine: NDArray[np.float64]
    scale: float
    rotation_deg: float
    center: tuple[float, float]
    center_a: tuple[float, float]
    shift_a: tuple[float, float]
    found: bool
    confidence: float
    ccc: float
    overlap: float
    peak_ratio: float
    peak_z: float
    at_search_edge: bool
    reference_pixel_a: float
    moving_pixel_a: float
    reference_shape: tuple[int, int]
    moving_shape: tuple[int, int]
    significance: float = 0.0
    binning: int = 1
    n_evaluations: int = 0
    correlation_map: NDArray[np.float32] | None = field(default=None, repr=False)
    map_origin: tuple[int, int] = (0, 0)

    def transform_points(self, points_mov: ArrayLike) -> NDArray[np.float64]:
        """Map ``(n, 2)`` moving-image pixel positions ``(x, y)`` to reference pixels."""
        p = np.asarray(points_mov, dtype=np.float64).reshape(-1, 2)
        return p @ self.affine[:, :2].T + self.affine[:, 2]

    def inverse(self) -> AlignmentResult:
        """The same alignment seen from the other side (moving ↔ reference)."""
        lin = self.affine[:, :2]
        inv = np.linalg.inv(lin)
        a = np.hstack([inv, (-inv @ self.affine[:, 2])[:, None]])
        return _make_result(
            a,
            reference_shape=self.moving_shape,
            moving_shape=self.reference_shape,
            reference_pixel_a=self.moving_pixel_a,
            moving_pixel_a=self.reference_pixel_a,
            found=self.found,
            confidence=self.confidence,
            ccc=self.ccc,
            overlap=self.overlap,
            peak_ratio=self.peak_ratio,
            peak_z=self.peak_z,
            significance=self.significance,
            at_search_edge=self.at_search_edge,
        )

    def image_shift(
        self,
        camera_to_image_shift: ArrayLike | None = None,
        *,
        is_to_camera: ArrayLike | None = None,
        binning: float = 1.0,
    ) -> NDArray[np.float64]:
        """Convert the measured offset to microscope image-shift (IS) units.

        Returns the change to add to the reference area's Low Dose image-shift offset (e.g. the
        View offset when the reference is a View and the moving image a Preview) so that the
        reference area becomes centred on the moving image's centre. SerialEM does this in
        ``LowDoseDlg.cpp : CLowDoseDlg::DoSetViewShift``: an image-pixel offset
        ``(dx, dy)`` (x right, **y down the rows**) of the feature from the reference centre
        becomes a camera vector ``(bin·dx, −bin·dy)`` (**the y inversion**: SerialEM's camera
        and specimen coordinates are right-handed with y up) and then
        ``ΔIS = B⁻¹ · (bin·dx, −bin·dy)`` with ``B`` the focus-adjusted IS → camera matrix of
        the reference magnification (``ShiftManager.cpp : FocusAdjustedISToCamera``; the same
        inversion appears in ``ImposeImageShiftOnScope`` callers).

        Note: SerialEM measures ``dx`` from ``width/2`` while emgeom's centre is
        ``(width − 1)/2``; the half-pixel difference is below calibration accuracy.

        Parameters
        ----------
        camera_to_image_shift : (2, 2) array_like, optional
            ``B⁻¹``: maps an unbinned camera-pixel vector (SerialEM's right-handed, y-up
            camera coordinates) to IS units.
        is_to_camera : (2, 2) array_like, optional
            SerialEM's stored calibration ``B`` (IS units → unbinned camera pixels); give
            exactly one of the two.
        binning : float
            Camera binning of the reference image (unbinned pixels per reference pixel).

        Returns
        -------
        ndarray (2,)
            ``(ΔIS_x, ΔIS_y)`` in image-shift units.
        """
        if (camera_to_image_shift is None) == (is_to_camera is None):
            raise InvalidValueError(
                "image_shift: give exactly one of camera_to_image_shift and is_to_camera"
            )
        if camera_to_image_shift is not None:
            m = as_matrix(camera_to_image_shift, "camera_to_image_shift", (2, 2))
        else:
            b = as_matrix(is_to_camera, "is_to_camera", (2, 2))
            if abs(np.linalg.det(b)) < 1e-300:
                raise InvalidValueError("is_to_camera: matrix is singular")
            m = np.asarray(np.linalg.inv(b), dtype=np.float64)
        bin_ = as_float(binning, "binning", positive=True)
        c = _center_of(self.reference_shape)
        d = np.asarray(self.center) - c
        cam = np.array([bin_ * d[0], -bin_ * d[1]])
        return np.asarray(m @ cam, dtype=np.float64)


def _make_result(
    affine: NDArray[np.float64],
    *,
    reference_shape: tuple[int, int],
    moving_shape: tuple[int, int],
    reference_pixel_a: float,
    moving_pixel_a: float,
    result_cls: type[AlignmentResult] | None = None,
    **kw: Any,
) -> AlignmentResult:
    """Build a result from its affine: ``center``, ``center_a`` and ``shift_a`` are derived here
    (the one place), ``scale``/``rotation_deg`` too unless given exactly in ``kw``.
    """
    lin = affine[:, :2]
    c_mov = _center_of(moving_shape)
    center = lin @ c_mov + affine[:, 2]
    d = (center - _center_of(reference_shape)) * reference_pixel_a
    fields: dict[str, Any] = {
        "scale": float(math.sqrt(abs(np.linalg.det(lin)))),
        "rotation_deg": float(
            math.degrees(math.atan2(lin[1, 0] - lin[0, 1], lin[0, 0] + lin[1, 1]))
        ),
    }
    fields.update(kw)
    cls = AlignmentResult if result_cls is None else result_cls
    return cls(
        affine=affine,
        center=(float(center[0]), float(center[1])),
        center_a=(float(d[0]), float(d[1])),
        shift_a=(float(-d[0]), float(-d[1])),
        reference_pixel_a=reference_pixel_a,
        moving_pixel_a=moving_pixel_a,
        reference_shape=reference_shape,
        moving_shape=moving_shape,
        **fields,
    )


def compose(res_ab: AlignmentResult, res_bc: AlignmentResult) -> AlignmentResult:
    """Chain two alignments: ``res_ab`` maps A (moving) → B (reference), ``res_bc`` maps
    B (moving) → C (reference); the result maps A → C exactly (``affine_bc ∘ affine_ab``).

    This is SerialEM's two-step route for pixel ratios ≥ 20 (Preview → middle mag → View,
    ``ComplexTasks.cpp : FindLowDoseShiftOffset``). ``found`` needs both; the quality measures
    are the weaker of the two.
    """
    if not isinstance(res_ab, AlignmentResult) or not isinstance(res_bc, AlignmentResult):
        raise InvalidValueError("compose: expected two AlignmentResult objects")
    if tuple(res_ab.reference_shape) != tuple(res_bc.moving_shape):
        raise InvalidValueError(
            "compose: res_ab's reference must be res_bc's moving image "
            f"(shapes {res_ab.reference_shape} vs {res_bc.moving_shape})"
        )
    a1, a2 = res_ab.affine, res_bc.affine
    a = np.hstack([a2[:, :2] @ a1[:, :2], (a2[:, :2] @ a1[:, 2] + a2[:, 2])[:, None]])
    return _make_result(
        a,
        reference_shape=res_bc.reference_shape,
        moving_shape=res_ab.moving_shape,
        reference_pixel_a=res_bc.reference_pixel_a,
        moving_pixel_a=res_ab.moving_pixel_a,
        found=res_ab.found and res_bc.found,
        confidence=min(res_ab.confidence, res_bc.confidence),
        ccc=min(res_ab.ccc, res_bc.ccc),
        overlap=min(res_ab.overlap, res_bc.overlap),
        peak_ratio=min(res_ab.peak_ratio, res_bc.peak_ratio),
        peak_z=min(res_ab.peak_z, res_bc.peak_z),
        significance=min(res_ab.significance, res_bc.significance),
        at_search_edge=res_ab.at_search_edge or res_bc.at_search_edge,
        n_evaluations=res_ab.n_evaluations + res_bc.n_evaluations,
    )


# ----------------------------------------------------------------------------------------------
# translation correlation (public building block)


@dataclass(frozen=True)
class CorrelationPeak:
    """One peak of :func:`correlate`.

    ``(dx, dy)``: displacement in pixels such that ``reference(x) ≈ moving(x − d)`` (the moving
    content moved by ``+d`` lands on the reference). ``value``: raw correlation value;
    ``normalized``: value / sqrt(energies of the filtered, tapered images) (xcorr only).
    """

    dx: float
    dy: float
    value: float
    normalized: float


@dataclass(frozen=True, eq=False)
class CorrelationResult:
    """Result of :func:`correlate`: peaks (best first), map statistics, optional map."""

    peaks: tuple[CorrelationPeak, ...]
    map_mean: float
    map_std: float
    correlation_map: NDArray[np.floating[Any]] | None = field(default=None, repr=False)

    @property
    def shift(self) -> tuple[float, float]:
        """``(dx, dy)`` of the best peak."""
        if not self.peaks:
            raise InvalidValueError("correlate: no peak was found")
        return (self.peaks[0].dx, self.peaks[0].dy)


def _filter_arg(filter: Sequence[float] | None) -> tuple[float, float, float, float]:
    if filter is None:
        return (0.0, 0.0, 0.0, 0.0)
    if len(filter) != 4:
        raise InvalidValueError(
            f"filter: expected (sigma1, sigma2, radius1, radius2), got {filter!r}"
        )
    f0, f1, f2, f3 = (as_float(v, f"filter[{i}]") for i, v in enumerate(filter))
    return (f0, f1, f2, f3)


def correlate(
    reference: ArrayLike,
    moving: ArrayLike,
    *,
    filter: Sequence[float] | None = DEFAULT_FILTER,
    method: str = "xcorr",
    n_peaks: int = 5,
    max_shift: float | None = None,
    taper_fraction: float = 0.1,
    pad_fraction: float = 0.0,
    min_separation: float = 3.0,
    return_map: bool = False,
    n_threads: int | None = None,
) -> CorrelationResult:
    """Translation between two images at the same sampling, with the top peaks (Rust).

    Both images are tapered (cosine ramp over ``taper_fraction`` of each size), made zero-mean,
    placed at the origin of a common padded frame (each size × (1 + ``pad_fraction``), rounded
    up to an FFT-friendly size), Fourier transformed (realfft, cached plans), multiplied as
    ``A·conj(B)``, filtered with the IMOD filter ``(sigma1, sigma2, radius1, radius2)``
    (cycles/pixel; ``None`` = no filter) and transformed back.

    Parameters
    ----------
    reference, moving : ndarray (y, x)
        Images (any sizes; converted to float32).
    filter : 4 floats or None
        IMOD filter parameters (default SerialEM's ``(0.03, 0.05, 0, 0.25)``).
    method : {"xcorr", "phase"}
        Unnormalised cross-correlation or phase correlation.
    n_peaks : int
        Number of peaks returned (local maxima at least ``min_separation`` px apart).
    max_shift : float, optional
        Only peaks with ``|d| ≤ max_shift`` pixels.
    taper_fraction, pad_fraction : float
        Taper width and padding as fractions of the image size.
    return_map : bool
        Also return the correlation map (zero displacement at index ``[0, 0]``, circular):
        float32, or float64 when the raw values do not fit float32 (inputs beyond ~1e±19).
    n_threads : int, optional
        Worker threads; default all cores.

    Returns
    -------
    CorrelationResult
        ``peaks[0].dx, .dy`` is the displacement d with ``reference(x) ≈ moving(x − d)``.
        Compare (tested): ``cv2.phaseCorrelate(moving, reference, window)`` returns ``+d`` as
        ``(x, y)``; ``skimage.registration.phase_cross_correlation(reference, moving,
        normalization=None)`` returns ``+d`` as ``(row, col) = (dy, dx)`` (scikit-image 0.26).
    """
    # images far from unit magnitude are correlated scaled by powers of two (exact); the
    # unnormalised xcorr values are scaled back below
    a, ea = _as_unit_image(reference, "reference")
    b, eb = _as_unit_image(moving, "moving")
    f = _filter_arg(filter)
    if method not in ("xcorr", "phase"):
        raise InvalidValueError(f"method: expected 'xcorr' or 'phase', got {method!r}")
    n = as_int(n_peaks, "n_peaks", low=1, high=1000)
    tf = as_float(taper_fraction, "taper_fraction", low=0.0, high=0.5)
    pf = as_float(pad_fraction, "pad_fraction", low=0.0, high=4.0)
    ms = -1.0 if max_shift is None else as_float(max_shift, "max_shift", nonnegative=True)
    sep = as_float(min_separation, "min_separation", nonnegative=True)
    ny = max(a.shape[0], b.shape[0])
    nx = max(a.shape[1], b.shape[1])
    pad = (_nice(math.ceil(ny * (1 + pf))), _nice(math.ceil(nx * (1 + pf))))
    taper = tf * min(min(a.shape), min(b.shape))
    peaks, norm, stats, cmap = _core.correlate_f32(
        a, b, pad, taper, f, method, n, sep, ms, bool(return_map), n_threads_arg(n_threads)
    )
    back = 1.0 if method == "phase" else math.ldexp(1.0, -(ea + eb))
    out = tuple(
        CorrelationPeak(float(p[0]), float(p[1]), float(p[2]) * back, float(q))
        for p, q in zip(peaks, norm, strict=True)
    )
    cmap_out: NDArray[np.floating[Any]] | None = cmap
    if cmap is not None and back != 1.0:
        m64 = np.asarray(cmap, dtype=np.float64) * back
        top = float(np.abs(m64).max())
        f32 = np.finfo(np.float32)
        fits = top == 0.0 or float(f32.tiny) * 2.0**23 < top < float(f32.max)
        cmap_out = m64.astype(np.float32) if fits else m64
    return CorrelationResult(
        peaks=out,
        map_mean=float(stats[0]) * back,
        map_std=float(stats[1]) * back,
        correlation_map=cmap_out,
    )


def _nice(n: int) -> int:
    """Smallest even m ≥ n with prime factors 2, 3, 5 (mirrors ``fft::nice_size``)."""
    m = max(1, int(n))
    while True:
        if m == 1 or m % 2 == 0:
            r = m
            for f in (2, 3, 5):
                while r % f == 0:
                    r //= f
            if r == 1:
                return m
        m += 1


# ----------------------------------------------------------------------------------------------
# alignment


@dataclass
class _Setup:
    """Everything fixed during one alignment (binned sampling, shrunk moving image, region)."""

    ref_b: NDArray[np.float32]
    mov_s: NDArray[np.float32]
    binning: int
    zr: float  # residual zoom applied by the patch warp (shrunk moving px -> binned ref px)
    c_s: NDArray[np.float64]  # moving centre in shrunk coordinates
    half: tuple[int, int]  # (hy, hx)
    mask_taper: float
    ref_taper: float
    filt: tuple[float, float, float, float]
    method: str
    n_peaks: int
    min_sep: float
    threads: int | None
    score_affines: NDArray[np.float64] = field(default_factory=lambda: np.zeros((0, 2, 3)))


def _patch_affine(st: _Setup, sigma: float, theta_deg: float) -> NDArray[np.float64]:
    """Patch pixel (j, i) → shrunk moving (x, y): u' = c' + R(θ)ᵀ (o)/(σ·zr), o = (j−hx, i−hy)."""
    m = _rot(theta_deg).T / (sigma * st.zr)
    hy, hx = st.half
    t = st.c_s - m @ np.array([hx, hy], dtype=np.float64)
    return np.hstack([m, t[:, None]])


@dataclass
class _Eval:
    sigma: float
    theta: float
    peaks: NDArray[np.float64]  # (k, 6): x, y, value, ccc, overlap, value_interp (region px)
    mean: float
    std: float
    count: int = 0  # allowed positions searched

    def scores(self) -> NDArray[np.float64]:
        """CCC · overlap^(1/6), the CCC scaled by the interpolated/integer peak-height ratio so
        that points whose peak falls between pixels are not penalised (smooth landscape).
        """
        if len(self.peaks) == 0:
            return np.zeros(0)
        v = self.peaks[:, 2]
        corr = np.where(v > 0, self.peaks[:, 5] / np.where(v > 0, v, 1.0), 1.0)
        ccc = self.peaks[:, 3] * np.clip(corr, 1.0, 1.5)
        ov = np.clip(self.peaks[:, 4], 0.0, 1.0)
        return np.where(ccc > 0, ccc * ov**_OVERLAP_POWER, ccc)

    def best(self) -> int:
        s = self.scores()
        return int(np.argmax(s)) if len(s) else -1

    def best_score(self) -> float:
        s = self.scores()
        return float(s.max()) if len(s) else -1.0


class _Region:
    def __init__(
        self,
        st: _Setup,
        origin: tuple[int, int],
        size: tuple[int, int],
        allowed: tuple[int, int, int, int, float, float, float],
        taper: float,
    ) -> None:
        self.origin = origin
        self.size = size
        self.allowed = allowed
        hy, hx = st.half
        pad = (_nice(size[0] + hy + 2), _nice(size[1] + hx + 2))
        self.ref = _core.crossmag_prepare(
            st.ref_b, origin, size, pad, taper, st.filt, st.method, st.threads
        )

    def evaluate(
        self,
        st: _Setup,
        points: list[tuple[float, float]],
        want_map: bool = False,
        refine: bool = True,
        direct: tuple[float, float] | None = None,
    ) -> tuple[list[_Eval], NDArray[np.float32] | None]:
        affs = np.stack([_patch_affine(st, s, t) for s, t in points])
        out, cmap = _core.crossmag_evaluate(
            self.ref,
            st.mov_s,
            affs,
            st.half,
            st.mask_taper,
            self.allowed,
            st.n_peaks,
            st.min_sep,
            want_map,
            st.score_affines,
            refine,
            direct,
            st.threads,
        )
        evals = [
            _Eval(s, t, np.asarray(pk), float(stats[0]), float(stats[1]), int(stats[2]))
            for (s, t), (pk, stats, _msum) in zip(points, out, strict=True)
        ]
        return evals, cmap


def _track(evals: list[_Eval], pos: NDArray[np.float64], tol: float) -> NDArray[np.float64]:
    """Score of the peak near ``pos`` (region px) at each search point (NaN if absent), so that
    the same candidate position is compared across points.
    """
    out = np.full(len(evals), np.nan)
    for k, e in enumerate(evals):
        if len(e.peaks) == 0:
            continue
        d = np.hypot(e.peaks[:, 0] - pos[0], e.peaks[:, 1] - pos[1])
        near = d <= tol
        if near.any():
            out[k] = float(e.scores()[near].max())
    return out


def _coarse_candidates(
    evals: list[_Eval], sep: float, k: int, frac: float
) -> list[tuple[NDArray[np.float64], int]]:
    """Up to ``k`` distinct peak positions (more than ``sep`` apart) over all grid points,
    best first, each with the index of the grid point where it scores best; only those
    scoring at least ``frac`` × the best score.
    """
    allp = [
        (float(sc), q, i)
        for q, e in enumerate(evals)
        for i, sc in enumerate(e.scores())
        if np.isfinite(sc)
    ]
    allp.sort(key=lambda t: -t[0])
    out: list[tuple[NDArray[np.float64], int]] = []
    if not allp or allp[0][0] <= 0:
        return out
    top = allp[0][0]
    for sc, q, i in allp:
        if len(out) >= k or sc < frac * top:
            break
        p = evals[q].peaks[i, :2]
        if all(np.hypot(*(p - o)) > sep for o, _ in out):
            out.append((p.copy(), q))
    return out


def _quad_vertex(x: NDArray[np.float64], y: NDArray[np.float64]) -> tuple[float, float] | None:
    """Least-squares parabola ``a·x² + b·x + c``: ``(a, −b/(2a))``, or None when ``x`` has fewer
    than 3 distinct values (a rank-deficient fit). Solved on centred, scaled abscissae with
    ``lstsq``: no ``np.polyfit`` RankWarning can leak into users' scripts.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if np.unique(x).size < 3:
        return None
    xm = float(x.mean())
    sc = float(np.abs(x - xm).max())
    u = (x - xm) / sc
    m = np.stack([u * u, u, np.ones_like(u)], axis=1)
    c = np.linalg.lstsq(m, y, rcond=None)[0]
    if not np.all(np.isfinite(c)) or c[0] == 0:
        return None
    a = float(c[0]) / (sc * sc)
    return a, xm - float(c[1]) * sc / (2.0 * float(c[0]))


def _fit_1d(xs: Sequence[float], ys: NDArray[np.float64], lo: float, hi: float) -> float:
    """Least-squares parabola through the scan; its vertex (clipped to [lo, hi]) when it is a
    maximum, else the best sample. Fitting all points (instead of taking the argmax) averages
    the noise of the scores (SerialEM interpolates with ``UtilInterpolatePeak``).
    """
    x = np.asarray(xs, dtype=np.float64)
    ok = np.isfinite(ys)
    if ok.sum() == 0:
        return float(x[len(x) // 2])
    best = float(x[ok][np.argmax(ys[ok])])
    if ok.sum() < 3:
        return best
    q = _quad_vertex(x[ok], ys[ok])
    if q is None or q[0] >= 0:
        return best
    return float(np.clip(q[1], lo, hi))


def _fit_cross(grid: list[tuple[int, int]], ys: NDArray[np.float64]) -> tuple[float, float]:
    """Optimum (u, v) in [−1, 1]² from scores on a cross (centre and axis neighbours): a
    parabola through the three points of each axis (its vertex when concave, else the best
    of the three).
    """
    sc = dict(zip(grid, (float(y) for y in ys), strict=True))
    out = []
    for axis in (0, 1):
        pts = [(-1, 0), (0, 0), (1, 0)] if axis == 0 else [(0, -1), (0, 0), (0, 1)]
        y = [sc.get(q, math.nan) for q in pts]
        if not all(math.isfinite(t) for t in y):
            fin = [(t, k - 1) for k, t in enumerate(y) if math.isfinite(t)]
            out.append(float(max(fin)[1]) if fin else 0.0)
            continue
        d = y[0] + y[2] - 2.0 * y[1]
        if d < -1e-15:
            out.append(float(np.clip((y[0] - y[2]) / (2.0 * d), -1.0, 1.0)))
        else:
            out.append(float(int(np.argmax(y)) - 1))
    return out[0], out[1]


def _fit_local(grid: list[tuple[int, int]], ys: NDArray[np.float64]) -> tuple[float, float]:
    """Stationary point (u, v) in [−1, 1]² of a quadratic fitted to scores on a ≤3×3 grid."""
    g = np.asarray(grid, dtype=np.float64)
    ok = np.isfinite(ys)
    if ok.sum() == 0:
        return 0.0, 0.0
    best = g[ok][np.argmax(ys[ok])]
    u, v, y = g[ok, 0], g[ok, 1], ys[ok]
    has_u, has_v = np.ptp(g[:, 0]) > 0, np.ptp(g[:, 1]) > 0
    if has_u and has_v and ok.sum() >= 6:
        m = np.stack([np.ones_like(u), u, v, u * u, v * v, u * v], axis=1)
        c = np.linalg.lstsq(m, y, rcond=None)[0]
        h = np.array([[2 * c[3], c[5]], [c[5], 2 * c[4]]])
        if np.all(np.linalg.eigvalsh(h) < 0):
            st = np.linalg.solve(h, -c[1:3])
            return float(np.clip(st[0], -1, 1)), float(np.clip(st[1], -1, 1))
        return float(best[0]), float(best[1])
    # too few scores for the 2-D fit: a parabola along the line of finite scores through the
    # best one (the other coordinate stays that of the best, not the grid centre)
    for axis in (0, 1):
        line = ok & (g[:, 1 - axis] == best[1 - axis])
        if np.ptp(g[:, axis]) > 0 and line.sum() >= 3:
            q = _quad_vertex(g[line, axis], ys[line])
            if q is not None and q[0] < 0:
                t = float(np.clip(q[1], -1, 1))
                return (t, float(best[1])) if axis == 0 else (float(best[0]), t)
    return float(best[0]), float(best[1])


_Level = tuple[
    "_Setup",
    tuple[int, int],
    tuple[int, int],
    tuple[int, int, int, int, float, float, float],
    int,
    int,
]


def _is_constant(a: NDArray[Any]) -> bool:
    """True when an image has no variation relative to its own magnitude (float32 rounding):
    purely relative, so that an image in tiny units (values ~1e-10) is not called constant.
    """
    lo, hi = float(a.min()), float(a.max())
    return hi - lo <= 1e-7 * max(abs(hi), abs(lo))


def _unit_exponent(lo: float, hi: float) -> int:
    """The power of two ``e`` that brings the largest |value| of an image with minimum ``lo``
    and maximum ``hi`` into [0.5, 1) with ``image·2^e``, or 0 when that is already within
    [2⁻¹⁶, 2¹⁶] (or the image is all zero). The float32 sums of the correlation overflow for
    values above ~1e19 and lose everything below ~1e-19; scaling by a power of two is exact,
    and a user's units must not decide the answer.
    """
    m = max(-lo, hi)
    if m == 0.0 or 2.0**-16 <= m <= 2.0**16:
        return 0
    return -math.frexp(m)[1]


def _unit_scaled(a: NDArray[np.float32], e: int | None = None) -> NDArray[np.float32]:
    """``a·2^e`` (default: ``e`` from ``a``'s range); ``a`` itself, no copy, when ``e`` = 0."""
    e = _unit_exponent(float(a.min()), float(a.max())) if e is None else e
    return a if e == 0 else np.ldexp(a, e).astype(np.float32, copy=False)


def _as_unit_image(value: ArrayLike, name: str) -> tuple[NDArray[np.float32], int]:
    """A validated float32 ``(y, x)`` image scaled by ``2^e`` (see :func:`_unit_exponent`;
    the range comes from the validation, no extra pass), and ``e``.
    """
    img, lo, hi = as_image_range(value, name, allow_stack=False, dtype=np.float32)
    e = _unit_exponent(lo, hi)
    return _unit_scaled(img, e), e


def _shrink(img: NDArray[np.float32], zoom: float, how: str, threads: int | None) -> Any:
    """``rescale`` without re-validating an already validated float32 image."""
    shape = (
        max(1, int(np.floor(img.shape[0] * zoom + 1e-6))),
        max(1, int(np.floor(img.shape[1] * zoom + 1e-6))),
    )
    return _core.rescale_separable_f32(img, shape, (zoom, zoom), how, threads)


def _level(
    ref: NDArray[np.float32],
    mov: NDArray[np.float32],
    b: int,
    s: float,
    lo: NDArray[np.float64],
    hi: NDArray[np.float64],
    ec: NDArray[np.float64],
    r_px: float | None,
    ext_x: float,
    ext_y: float,
    ss: float,
    rs: float,
    theta0: float,
    tf: float,
    filt: tuple[float, float, float, float],
    method: str,
    npk: int,
    threads: int | None,
    center_mov: NDArray[np.float64] | None = None,
) -> _Level:
    """Binned reference, shrunk moving image and full search region at reference binning b.
    ``s`` = reference pixels per ``mov`` pixel; ``center_mov`` = the moving centre in ``mov``
    pixels (default its image centre; differs when ``mov`` is already a shrunk image).
    """
    ref_b = ref if b == 1 else _shrink(ref, 1.0 / b, "area", threads)

    def to_b(u: NDArray[np.float64]) -> NDArray[np.float64]:
        return (u + 0.5) / b - 0.5

    lo_b, hi_b = to_b(lo), to_b(hi)
    x0, y0 = math.floor(lo_b[0]), math.floor(lo_b[1])
    size = (math.ceil(hi_b[1]) - y0 + 1, math.ceil(hi_b[0]) - x0 + 1)
    nyb, nxb = ref_b.shape
    # allowed centre positions: inside the binned reference (and the circle)
    ax0, ax1 = max(0, -x0), min(size[1], nxb - x0)
    ay0, ay1 = max(0, -y0), min(size[0], nyb - y0)
    if r_px is None:
        circle = (0.0, 0.0, -1.0)
    else:
        ecb = to_b(ec)
        circle = (float(ecb[0] - x0), float(ecb[1] - y0), r_px / b)
    allowed = (ax0, ax1, ay0, ay1, *circle)
    # shrink the moving image to (about) the binned reference sampling
    z = s / b
    if z <= 0.5:
        z0, how = z, "area"
    elif z <= 0.8:
        z0, how = z, "lanczos3"
    else:
        z0, how = 1.0, ""
    mov_s = mov if not how else _shrink(np.ascontiguousarray(mov, np.float32), z0, how, threads)
    mov_s = _unit_scaled(mov_s)  # (align scaled the reference)
    if min(mov_s.shape) < 8:
        raise InvalidValueError(
            f"moving: only {mov_s.shape} pixels at the correlation sampling (binning {b}); "
            "the pixel-size ratio is too large for one step: align through a middle "
            "magnification and use crossmag.compose"
        )
    c_m = _center_of(mov.shape) if center_mov is None else center_mov
    c_s = (c_m + 0.5) * z0 - 0.5
    hy = math.ceil(ext_y / b) + 2
    hx = math.ceil(ext_x / b) + 2
    st = _Setup(
        ref_b=np.ascontiguousarray(ref_b, dtype=np.float32),
        mov_s=np.ascontiguousarray(mov_s, dtype=np.float32),
        binning=b,
        zr=z / z0,
        c_s=c_s,
        half=(hy, hx),
        mask_taper=max(2.0, tf * float(min(mov_s.shape))),
        ref_taper=max(3.0, 0.03 * min(size)),
        filt=filt,
        method=method,
        n_peaks=npk,
        min_sep=max(4.0, 0.15 * min(hy, hx)),
        threads=threads,
    )
    # common CCC footprint: inside the moving image at the extremes of the search range
    st.score_affines = np.stack(
        [_patch_affine(st, 1.0 - ss, theta0 + dt) for dt in ((-rs, 0.0, rs) if rs > 0 else (0.0,))]
    )
    return st, (x0, y0), size, allowed, nyb, nxb


def _parabola(y1: float, y2: float, y3: float) -> float:
    denom = 2.0 * (y1 + y3 - 2.0 * y2)
    if denom >= 0 or abs(denom) < 1e-12:
        return 0.0
    return float(np.clip((y1 - y3) / denom, -0.5, 0.5))


def _not_found(
    ref_shape: tuple[int, int],
    mov_shape: tuple[int, int],
    p_r: float,
    p_m: float,
    s: float,
    theta: float,
    center: NDArray[np.float64],
) -> AlignmentResult:
    lin = s * _rot(theta)
    a = np.hstack([lin, (center - lin @ _center_of(mov_shape))[:, None]])
    return _make_result(
        a,
        reference_shape=ref_shape,
        moving_shape=mov_shape,
        reference_pixel_a=p_r,
        moving_pixel_a=p_m,
        found=False,
        confidence=0.0,
        ccc=0.0,
        overlap=0.0,
        peak_ratio=1.0,
        peak_z=0.0,
        at_search_edge=False,
    )


def _confidence(
    significance: float, ratio: float, overlap: float, min_sig: float = _MIN_SIGNIFICANCE
) -> float:
    """Monotone map of the measures to [0, 1]; exactly 0.5 at the ``found`` thresholds."""

    def part(x: float, lo: float, thr: float, hi: float) -> float:
        if x >= thr:
            return 0.5 + 0.5 * float(np.clip((x - thr) / (hi - thr), 0.0, 1.0))
        return 0.5 * float(np.clip((x - lo) / (thr - lo), 0.0, 1.0))

    return min(
        part(significance, 0.0, min_sig, 2 * min_sig),
        part(ratio, 1.0, _MIN_RATIO, 1.6),
        part(overlap, 0.0, _MIN_OVERLAP, 0.7),
    )


@lru_cache(maxsize=16)
def _noise_corr_area(filt: tuple[float, float, float, float]) -> float:
    """ρ = N²·ΣH⁴/(ΣH²)²: the correlation area (px²) of white noise filtered by the IMOD filter,
    so that the CCC of unrelated filtered noise over n pixels has variance ≈ ρ/n.
    """
    from emgeom.reference.crossmag import imod_filter

    n = 128
    f = np.fft.fftfreq(n)
    h = imod_filter(np.sqrt(f[:, None] ** 2 + f[None, :] ** 2), *filt)
    s2 = float((h**2).sum())
    return float(n * n * (h**4).sum() / (s2 * s2)) if s2 > 0 else 1.0


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
    ref, _ = _as_unit_image(reference, "reference")  # (the moving one: once shrunk)
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
    filt = _filter_arg(filter)
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
    c_ref = _center_of(ref.shape)
    ec = c_ref if expected_center is None else as_matrix(expected_center, "expected_center", (2,))
    r_px = (
        None if max_shift_a is None else as_float(max_shift_a, "max_shift_a", positive=True) / p_r
    )
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
    if _is_constant(ref[:: max(1, ref.shape[0] // 256), :: max(1, ref.shape[1] // 256)]) and (
        _is_constant(ref)
    ):
        return _not_found(ref_shape, mov_shape, p_r, p_m, s, theta0, ec)
    if _is_constant(mov[:: max(1, mov.shape[0] // 256), :: max(1, mov.shape[1] // 256)]) and (
        _is_constant(mov)
    ):
        check_mov()  # an inf pixel also makes an image look "constant"
        return _not_found(ref_shape, mov_shape, p_r, p_m, s, theta0, ec)

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
    ) -> _Level:
        return _level(
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
    if _is_constant(st.mov_s) or (b > 1 and _is_constant(st.ref_b)):
        return _not_found(ref_shape, mov_shape, p_r, p_m, s, theta0, ec)
    # the coarse (scale, rotation) grid runs one pyramid level down (2× coarser) when the
    # region is large: 4× cheaper per point; the refinement below is at full sampling
    coarse = lv
    if searching and min(size) >= 384 and min(st.mov_s.shape) >= 64:
        # built from the fine level's shrunk moving image (s_f reference px per its pixel)
        coarse = level(st.mov_s, 2 * b, b * st.zr, center_mov=st.c_s)
    st_c, (x0c, y0c), size_c, allowed_c, _, _ = coarse
    full = _Region(st_c, (x0c, y0c), size_c, allowed_c, st_c.ref_taper)
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
    cands = _coarse_candidates(
        evals, st_c.min_sep, _N_CANDIDATES if searching else 1, _CANDIDATE_FRAC
    )
    if not cands:
        return _not_found(ref_shape, mov_shape, p_r, p_m, s, theta0, ec)
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
        else _Region(st, (x0, y0), size, _allowed, st.ref_taper)
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
                du, dv = _fit_local(lgrid, sc_l) if r_i == 0 else _fit_cross(lgrid, sc_l)
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
        scores = _track([evals[(i_s + u) * len(th_list) + (i_t + v)] for u, v in nb], pos_c, tol)
        du, dv = _fit_local(nb, scores)
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
        full_f = fine if fine is not None else _Region(st, (x0, y0), size, _allowed, st.ref_taper)
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
    lin = scale * _rot(theta)
    affine = np.hstack([lin, (center - lin @ _center_of(mov.shape))[:, None]])
    ccc = float(final[3])
    overlap = float(np.clip(final[4], 0.0, 1.0))
    # significance: CCC relative to the best CCC pure noise reaches over the searched positions
    n_foot = max(16.0, float(st.mov_s.shape[0] * st.mov_s.shape[1]) * st.zr * st.zr)
    n_pos = max(2, n_positions)
    noise_max = math.sqrt(2.0 * math.log(n_pos) * _noise_corr_area(filt) / n_foot)
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
    res = _make_result(
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
    return res


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
    from emgeom.resample import warp_affine

    ny_m, nx_m = mov.shape
    half_mov = 0.5 * math.hypot(nx_m, ny_m) * p_m  # Å, any rotation
    reach = (r_px * p_r if r_px is not None else 0.5 * max(ref.shape) * p_r) + half_mov
    width_a = 2 * reach * (1 + ss) + 4 * p_r
    p_c = max(p_m, width_a / csize)
    n_out = max(16, math.ceil(width_a / p_c))
    k = p_c / p_r
    lin = k * _rot(theta0)
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
    res = _make_result(
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
    return replace(res, scale=float(sub.scale * k), rotation_deg=float(theta0 + sub.rotation_deg))


def __getattr__(name: str) -> Any:
    """Lazy re-exports of the unknown-rotation mode (``emgeom._similarity``) and of masked NCC
    (``emgeom._ncc``): both import this module.
    """
    if name in ("find_similarity", "SimilarityResult"):
        from emgeom import _similarity

        return getattr(_similarity, name)
    if name in ("masked_correlate", "MaskedCorrelationResult", "MaskedCorrelationPeak"):
        from emgeom import _ncc  # masked NCC (Padfield 2012); it imports this module

        return getattr(_ncc, name)
    raise AttributeError(f"module 'emgeom.crossmag' has no attribute {name!r}")
