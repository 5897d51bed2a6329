"""Alignment with unknown rotation and scale: log-polar Fourier–Mellin + the known-mag step.

Public entry point :func:`find_similarity` (re-exported as ``emgeom.crossmag.find_similarity``).

Geometry: the result is an :class:`emgeom.crossmag.AlignmentResult` (exactly the geometry of
``crossmag.align``: ``[x_ref, y_ref] = affine @ [x_mov, y_mov, 1]``, linear part
``scale·R(rotation_deg)``, θ > 0 clockwise as displayed with row 0 at the top) extended with the
ranked candidates (:class:`SimilarityResult`).

Pipeline (design note crossmag.md §8.4; Reddy & Chatterji, IEEE TIP 5(8):1266, 1996)
------------------------------------------------------------------------------------
1. Both images are brought to one working sampling (exact area shrink) with at most
   ``fm_size`` pixels on a side; with pixel sizes given, the nominal ratio is applied here and
   ``scale_range`` is the residual range. When the moving image covers more than 6× the
   reference's area, the problem is solved with the two images swapped and inverted exactly;
   when the reference covers more than 6× the moving image's area, the reference is searched in
   overlapping windows (step 2).
2. Each image is apodised (mean removed, separable Tukey window), Fourier transformed, and its
   magnitude spectrum resampled on a log-polar grid over the half plane θ ∈ [0°, 180°) (Hermitian
   symmetry) in a band of frequencies (Rust, :mod:`emgeom.transform`).
3. A rotation by θ shifts that log-polar image by θ along the angle axis and a scale σ shifts it
   by ``−ln σ`` along the log-radius axis; the shift is measured by phase correlation (circular
   in angle, zero-padded in log-radius) and the ``n_candidates`` best peaks inside the allowed
   scale (and rotation) range are kept.
4. The magnitude spectrum cannot tell θ from θ + 180°: every peak gives two candidates. For
   each, the moving image is warped by (σ, θ) and the translation is found with the
   known-magnification correlation (:func:`emgeom.crossmag.correlate`, IMOD-filtered, top
   peaks); each peak is scored by the Pearson CCC of the band-passed images over the overlap ×
   overlap^(1/6) (SerialEM's score), at ≤ 256 px.
5. The best candidate is refined by Gauss–Newton on the band-passed intensities (4-parameter
   similarity, intensity model ``ref ≈ α·moving + β``; coarse band first, then a finer one) at
   ≤ ``refine_size`` px, with both images resampled to the candidate's common pixel size so that
   the filters match. (``crossmag.align``'s residual grid search was tried first: on same-size
   pairs it settled 0.5° away from the truth where a direct CCC check preferred the truth.)
6. Honesty: ``confidence`` is P(centre within 1.5 reference px), a logistic model of the
   measures (refined band-passed CCC, pose ratio, overlap, translation ``peak_z``,
   ``center_sigma``, the maximum-likelihood refinement's prediction CCC and residual
   correlation area) fitted on generated similarity pairs (:mod:`._confidence`,
   docs/crossmag.md), and ``found = confidence >= 0.5``. Hard gates keep ``found`` False
   (confidence < 0.5) when the refined scale leaves ``scale_range``, when the best candidate
   is not clearly better than a different pose (``pose_ratio`` < 1.1; a better pose outside
   ``rotation_range_deg`` counts), when the overlap is below 25 %, when the refinement does
   not converge or leaves the candidate, and for images too small (< 32 px at the working
   sampling) or blank. Without the model file the former thresholds apply (``peak_z`` ≥ 8,
   refined CCC ≥ 0.2, from a noise sweep on real-micrograph pairs) with the measures' ramps.
"""

from __future__ import annotations

from collections.abc import Sequence

from numpy.typing import ArrayLike

from emgeom._validate import as_float, as_int, as_pair, n_threads_arg
from emgeom.crossmag._geometry import as_unit_image
from emgeom.crossmag._similarity_result import SimilarityCandidate, SimilarityResult, swap_back
from emgeom.crossmag._similarity_stages import SimilarityInput, SimilaritySearch
from emgeom.errors import InvalidValueError

__all__ = ["SimilarityCandidate", "SimilarityResult", "find_similarity"]


def find_similarity(
    reference: ArrayLike,
    moving: ArrayLike,
    *,
    reference_pixel_a: float | None = None,
    moving_pixel_a: float | None = None,
    scale_range: Sequence[float] = (0.5, 2.0),
    rotation_range_deg: Sequence[float] | None = None,
    n_candidates: int = 5,
    n_threads: int | None = None,
    fm_size: int = 512,
    refine_size: int = 1024,
) -> SimilarityResult:
    """Find the similarity (scale, rotation, translation) between two images of one area.

    For images whose relation is not known: a grid reloaded at an unknown rotation, another
    microscope or camera, an uncalibrated magnification, a View at high defocus.

    Parameters
    ----------
    reference : ndarray (y, x)
        Reference image.
    moving : ndarray (y, x)
        Image to place on the reference.
    reference_pixel_a, moving_pixel_a : float, optional
        Nominal pixel sizes in Å (give both or neither). Their ratio is applied first and
        ``scale_range`` is then the residual range around it. Without them the nominal ratio
        is 1.
    scale_range : (float, float)
        Allowed (residual) scale ``σ`` — moving pixels per reference pixel relative to the
        nominal ratio — with ``0.25 ≤ lo < hi ≤ 4`` (Fourier–Mellin does not reach further;
        pre-scale with the pixel sizes). A result outside it has ``found=False``.
    rotation_range_deg : (float, float), optional
        Allowed rotation interval ``[lo, hi]`` in degrees (clockwise as displayed, the sense of
        ``rotation_deg``); default any rotation.
    n_candidates : int
        Log-polar peaks kept; each gives two candidates (θ and θ + 180°).
    n_threads : int, optional
        Worker threads (default all cores).
    fm_size : int
        Largest side (pixels) of the images used for Fourier–Mellin (they are shrunk with exact
        area averaging to at most this size).
    refine_size : int
        Largest side (pixels) of the images used for the final Gauss–Newton refinement.

    Returns
    -------
    SimilarityResult
        An :class:`emgeom.crossmag.AlignmentResult` (``affine``, ``scale``, ``rotation_deg``,
        ``center``, ``found``, ``confidence``, ...) plus ``candidates`` (ranked) and
        ``pose_ratio``.

    Raises
    ------
    InvalidValueError
        Bad arguments (one pixel size without the other, a scale range outside [0.25, 4] or
        empty, an empty rotation range, ...).
    """
    a = _parse(
        reference,
        moving,
        reference_pixel_a,
        moving_pixel_a,
        scale_range,
        rotation_range_deg,
        n_candidates,
        n_threads,
        fm_size,
        refine_size,
    )
    if a.moving_is_larger:
        # the moving image is the big one: search the reference inside it and invert
        lo, hi = a.srange
        sw = find_similarity(
            a.mov,
            a.ref,
            reference_pixel_a=a.p_m,
            moving_pixel_a=a.p_r,
            scale_range=(1.0 / hi, 1.0 / lo),
            rotation_range_deg=None if a.rrange is None else (-a.rrange[1], -a.rrange[0]),
            n_candidates=a.k,
            n_threads=a.threads,
            fm_size=a.fsz,
            refine_size=a.rsz,
        )
        return swap_back(sw, a.ref_shape, a.mov_shape, a.p_r, a.p_m, a.srange)
    return SimilaritySearch(a).run()


def _parse(
    reference: ArrayLike,
    moving: ArrayLike,
    reference_pixel_a: float | None,
    moving_pixel_a: float | None,
    scale_range: Sequence[float],
    rotation_range_deg: Sequence[float] | None,
    n_candidates: int,
    n_threads: int | None,
    fm_size: int,
    refine_size: int,
) -> SimilarityInput:
    """The validated arguments of :func:`find_similarity` (errors name the argument)."""
    # (scaled by a power of two into a safe float32 range: results do not depend on units)
    ref, _ = as_unit_image(reference, "reference")
    mov, _ = as_unit_image(moving, "moving")
    if (reference_pixel_a is None) != (moving_pixel_a is None):
        raise InvalidValueError(
            "reference_pixel_a/moving_pixel_a: give both pixel sizes or neither"
        )
    p_r = (
        1.0
        if reference_pixel_a is None
        else as_float(reference_pixel_a, "reference_pixel_a", positive=True)
    )
    p_m = (
        1.0 if moving_pixel_a is None else as_float(moving_pixel_a, "moving_pixel_a", positive=True)
    )
    lo, hi = as_pair(scale_range, "scale_range", low=0.25, high=4.0)
    if not lo < hi:
        raise InvalidValueError(f"scale_range: expected low < high, got ({lo}, {hi})")
    srange = (lo, hi)
    rrange: tuple[float, float] | None = None
    if rotation_range_deg is not None:
        r0, r1 = as_pair(rotation_range_deg, "rotation_range_deg")
        if not r0 <= r1:
            raise InvalidValueError(f"rotation_range_deg: expected low <= high, got ({r0}, {r1})")
        rrange = (r0, r1) if r1 - r0 < 360.0 else None
    k = as_int(n_candidates, "n_candidates", low=1, high=50)
    threads = n_threads_arg(n_threads)
    fsz = as_int(fm_size, "fm_size", low=64, high=8192)
    rsz = as_int(refine_size, "refine_size", low=64, high=16384)
    return SimilarityInput(
        ref=ref,
        mov=mov,
        p_r=p_r,
        p_m=p_m,
        srange=srange,
        rrange=rrange,
        k=k,
        threads=threads,
        fsz=fsz,
        rsz=rsz,
    )
