"""The result of :func:`emgeom.crossmag.find_similarity` and its construction: the candidate
and result types, the ``found`` thresholds and the confidence ramps, the pose ratio of the
ranked candidates, the "not found" result, and a result computed with the images swapped
turned back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
from numpy.typing import NDArray

from emgeom.crossmag._confidence import ramp_confidence
from emgeom.crossmag._geometry import center_of, invert_affine, wrap180
from emgeom.crossmag._result import AlignmentResult, not_found

#: Pose distance under which two candidates count as the same answer.
_SAME_ROT_DEG = 5.0
_SAME_SCALE = 0.05
#: Best / best-different-pose score ratio required for ``found``.
MIN_POSE_RATIO = 1.10
#: ``found`` thresholds on the refined pose.
#: Calibrated on a noise sweep of real-micrograph pairs (320², random scale 0.6–1.6 and
#: rotation, SNR 0.5–0.05): every correct result had CCC ≥ 0.28 and peak_z ≥ 9.2, every wrong
#: one CCC ≤ 0.19 and peak_z ≤ 7.0.
MIN_CCC = 0.2
MIN_Z = 8.0
MIN_OVERLAP = 0.25


@dataclass(frozen=True)
class SimilarityCandidate:
    """One Fourier–Mellin hypothesis, after its translation step.

    Attributes
    ----------
    scale : float
        Pixel-size ratio moving/reference of the candidate (reference pixels per moving pixel).
    rotation_deg : float
        θ of the candidate (degrees, in (−180, 180]; clockwise as displayed).
    fm_peak : float
        Height of its log-polar phase-correlation peak (relative to the map's standard
        deviation).
    score : float
        ``ccc · overlap^(1/6)`` of its translation step (−1 when the step found no peak).
    ccc, overlap : float
        Measures of the translation step (see :class:`emgeom.crossmag.AlignmentResult`).
    center : (float, float)
        ``(x, y)`` reference pixel where the moving centre lands for this candidate.
    affine : ndarray (2, 3)
        The candidate's full ``[x_ref, y_ref] = affine @ [x_mov, y_mov, 1]`` (before the final
        refinement).
    """

    scale: float
    rotation_deg: float
    fm_peak: float
    score: float
    ccc: float
    overlap: float
    center: tuple[float, float]
    affine: NDArray[np.float64] = field(default_factory=lambda: np.eye(2, 3), repr=False)

    def inverse(self) -> SimilarityCandidate:
        """The same candidate seen from the other image (moving ↔ reference)."""
        inv = invert_affine(self.affine)
        return replace(
            self,
            scale=1.0 / self.scale,
            rotation_deg=wrap180(-self.rotation_deg),
            center=(float(inv[0, 2]), float(inv[1, 2])),  # placeholder, fixed by the caller
            affine=inv,
        )


@dataclass(frozen=True, eq=False)
class SimilarityResult(AlignmentResult):
    """:class:`emgeom.crossmag.AlignmentResult` plus the ranked Fourier–Mellin candidates.

    Attributes
    ----------
    candidates : tuple of SimilarityCandidate
        The candidates evaluated inside ``rotation_range_deg`` (both members of each 180°
        pair), best score first.
    pose_ratio : float
        Best candidate score / best score of a candidate with a different pose (rotation
        differing by more than 2° or scale by more than 2%); ≈ 1 means ambiguous (e.g. a
        specimen with a 2-fold symmetry). Capped at 100.
    scale_range : (float, float)
        The allowed (residual) scale range used.
    nominal_scale : float
        ``moving_pixel_a / reference_pixel_a`` (1 when pixel sizes were not given).
    """

    candidates: tuple[SimilarityCandidate, ...] = ()
    pose_ratio: float = 0.0
    scale_range: tuple[float, float] = (0.5, 2.0)
    nominal_scale: float = 1.0


def similarity_confidence(ccc: float, pose_ratio: float, overlap: float, z: float) -> float:
    """Monotone map of the measures to [0, 1]; 0.5 at the ``found`` thresholds."""
    return ramp_confidence(
        (
            (ccc, 0.0, MIN_CCC, 0.6),
            (pose_ratio, 1.0, MIN_POSE_RATIO, 2.0),
            (overlap, 0.0, MIN_OVERLAP, 0.8),
            (z, 0.0, MIN_Z, 3 * MIN_Z),
        )
    )


def pose_ratio(
    best: SimilarityCandidate,
    evals: list[SimilarityCandidate],
    ref_shape: tuple[int, int],
) -> float:
    """Best candidate score / best score of a candidate with a different pose (rotation,
    scale or centre), capped at 100; 0 when the best score is not positive.
    """
    diag = math.hypot(*ref_shape)
    other = [
        c.score
        for c in evals
        if c is not best
        and (
            abs(wrap180(c.rotation_deg - best.rotation_deg)) > _SAME_ROT_DEG
            or abs(math.log(c.scale / best.scale)) > _SAME_SCALE
            or math.hypot(c.center[0] - best.center[0], c.center[1] - best.center[1]) > 0.02 * diag
        )
    ]
    second = max(other) if other else 0.0
    if best.score <= 0:
        return 0.0
    if second <= 1e-6:
        return 100.0
    return float(min(100.0, best.score / second))


def not_found_similarity(
    ref_shape: tuple[int, int],
    mov_shape: tuple[int, int],
    p_r: float,
    p_m: float,
    s0: float,
    scale_range: tuple[float, float],
    candidates: tuple[SimilarityCandidate, ...] = (),
) -> SimilarityResult:
    res = not_found(
        ref_shape,
        mov_shape,
        p_r,
        p_m,
        s0,
        0.0,
        center_of(ref_shape),
        result_cls=SimilarityResult,
        candidates=candidates,
        pose_ratio=0.0,
        scale_range=scale_range,
        nominal_scale=s0,
    )
    assert isinstance(res, SimilarityResult)
    return res


def swap_back(
    sw: SimilarityResult,
    ref_shape: tuple[int, int],
    mov_shape: tuple[int, int],
    p_r: float,
    p_m: float,
    srange: tuple[float, float],
) -> SimilarityResult:
    """Invert a result computed with the two images swapped."""
    a = invert_affine(sw.affine)
    lin = a[:, :2]
    c_m = center_of(mov_shape)
    center = lin @ c_m + a[:, 2]
    d = (center - center_of(ref_shape)) * p_r
    cands = []
    for c in sw.candidates:
        ci = c.inverse()
        cc = ci.affine[:, :2] @ c_m + ci.affine[:, 2]
        cands.append(replace(ci, center=(float(cc[0]), float(cc[1]))))
    return replace(
        sw,
        affine=a,
        scale=1.0 / sw.scale,
        rotation_deg=wrap180(-sw.rotation_deg),
        center=(float(center[0]), float(center[1])),
        center_a=(float(d[0]), float(d[1])),
        shift_a=(float(-d[0]), float(-d[1])),
        reference_pixel_a=p_r,
        moving_pixel_a=p_m,
        reference_shape=ref_shape,
        moving_shape=mov_shape,
        candidates=tuple(cands),
        scale_range=srange,
        nominal_scale=p_m / p_r,
    )
