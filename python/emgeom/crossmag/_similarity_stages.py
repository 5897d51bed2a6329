"""The pipeline of :func:`emgeom.crossmag.find_similarity` on validated input, as a small class
of stages: working sampling → Fourier–Mellin peaks (:mod:`._fourier_mellin`) → both members of
every 180° pair through the translation step (:mod:`._similarity_pose`) → ranking and pose
ratio → Gauss–Newton and maximum-likelihood refinement of the best candidate → the result and
its ``found``/``confidence`` (:mod:`._similarity_result`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from emgeom.crossmag._confidence import (
    calibrated_similarity_confidence,
    error_bar_bound,
    similarity_features,
)
from emgeom.crossmag._fourier_mellin import (
    TILE_AREA_RATIO,
    FMPeak,
    Window,
    candidate_peaks,
    in_range,
)
from emgeom.crossmag._geometry import center_of, scale_rotation_of, wrap180
from emgeom.crossmag._result import make_result
from emgeom.crossmag._similarity_pose import (
    Pose,
    ml_stage,
    refine_candidate,
    score_images,
    translation_step,
)
from emgeom.crossmag._similarity_result import (
    MIN_CCC,
    MIN_OVERLAP,
    MIN_POSE_RATIO,
    MIN_Z,
    SimilarityCandidate,
    SimilarityResult,
    not_found_similarity,
    pose_ratio,
    similarity_confidence,
)
from emgeom.crossmag._similarity_sampling import MIN_SIZE, is_blank, shrink_image, to_full

#: One evaluated candidate: the candidate, its translation-step pose (working sampling of its
#: window) and its full-resolution affine.
Evaluated = tuple[SimilarityCandidate, Pose, NDArray[np.float64]]


@dataclass(frozen=True)
class SimilarityInput:
    """Validated arguments of :func:`emgeom.crossmag.find_similarity` (images scaled to unit
    magnitude, pixel sizes in Å, ranges checked).
    """

    ref: NDArray[np.float32]
    mov: NDArray[np.float32]
    p_r: float
    p_m: float
    srange: tuple[float, float]
    rrange: tuple[float, float] | None
    k: int  # n_candidates
    threads: int | None
    fsz: int  # fm_size
    rsz: int  # refine_size

    @property
    def ref_shape(self) -> tuple[int, int]:
        return (int(self.ref.shape[0]), int(self.ref.shape[1]))

    @property
    def mov_shape(self) -> tuple[int, int]:
        return (int(self.mov.shape[0]), int(self.mov.shape[1]))

    @property
    def moving_is_larger(self) -> bool:
        """The moving image covers more than ``TILE_AREA_RATIO`` times the reference's area
        (then the problem is solved with the two images swapped).
        """
        (ry, rx), (my, mx) = self.ref_shape, self.mov_shape
        return my * mx * self.p_m**2 > TILE_AREA_RATIO * ry * rx * self.p_r**2


class SimilaritySearch:
    """One :func:`emgeom.crossmag.find_similarity` call on validated input (images not
    swapped); :meth:`run` gives the result.
    """

    def __init__(self, a: SimilarityInput) -> None:
        self.a = a
        self.s0 = a.p_m / a.p_r
        self.ref_shape = a.ref_shape
        self.mov_shape = a.mov_shape
        self.n_peaks = 2 * a.k if a.rrange is not None else a.k
        # working sampling (set by _working): images and their zooms from full resolution
        self.ref_w = self.mov_w = a.ref
        self.zr_w = self.zm_w = 1.0

    def _not_found(self) -> SimilarityResult:
        a = self.a
        return not_found_similarity(self.ref_shape, self.mov_shape, a.p_r, a.p_m, self.s0, a.srange)

    def run(self) -> SimilarityResult:
        if not self._working():
            return self._not_found()
        peaks = candidate_peaks(self.ref_w, self.mov_w, self.a.srange, self.n_peaks, self.a.threads)
        if not peaks:
            return self._not_found()
        evals = self._evaluate(peaks)
        if not evals:
            return self._not_found()
        evals.sort(key=lambda e: -e[0].score)
        rrange = self.a.rrange
        allowed = [e for e in evals if rrange is None or in_range(e[0].rotation_deg, rrange)]
        if not allowed:
            return self._not_found()
        best, best_pose, best_full = allowed[0]
        ratio = pose_ratio(best, [c for c, _, _ in evals], self.ref_shape)
        return self._result(allowed, len(evals), best, best_pose, best_full, ratio)

    def _working(self) -> bool:
        """1. Both images at a common working sampling (pixel size ``pw`` in Å) with at most
        ``fm_size`` px per side (the reference at most 4× that when it is searched in windows);
        False when an image is too small there, or blank.
        """
        a = self.a
        p_r, p_m, fsz = a.p_r, a.p_m, a.fsz
        ref_shape, mov_shape = self.ref_shape, self.mov_shape
        pw = max(p_r, p_m, max(mov_shape) * p_m / fsz)
        tiled = ref_shape[0] * ref_shape[1] * p_r**2 > TILE_AREA_RATIO * (
            mov_shape[0] * mov_shape[1] * p_m**2
        )
        pw = max(pw, max(ref_shape) * p_r / (fsz * (4 if tiled else 1)))
        z_r, z_m = p_r / pw, p_m / pw
        if (
            min(ref_shape) * z_r < MIN_SIZE
            or min(mov_shape) * z_m < MIN_SIZE
            or is_blank(a.ref)
            or is_blank(a.mov)
        ):
            return False
        self.ref_w = shrink_image(a.ref, z_r, a.threads)
        self.mov_w = shrink_image(a.mov, z_m, a.threads)
        self.zr_w = z_r if z_r < 0.999 else 1.0
        self.zm_w = z_m if z_m < 0.999 else 1.0
        return True

    def _evaluate(self, peaks: list[tuple[FMPeak, Window]]) -> list[Evaluated]:
        """4. Both members of every 180° pair through the translation step, at ≤ 256 px."""
        threads = self.a.threads
        evals: list[Evaluated] = []
        scored: dict[Window, tuple[float, NDArray[np.float32], NDArray[np.float32]]] = {}
        for pk, win in peaks:
            y0, x0, (wy, wx) = win
            if win not in scored:
                ref_win = np.ascontiguousarray(self.ref_w[y0 : y0 + wy, x0 : x0 + wx])
                scored[win] = score_images(ref_win, self.mov_w, threads)
            zs, ref_wb, mov_wb = scored[win]
            for extra in (0.0, 180.0):
                theta = wrap180(pk.rotation_deg + extra)
                pose = translation_step(ref_wb, mov_wb, pk.scale, theta, threads)
                a_win = to_full(pose.affine, zs, zs)  # working px, window origin
                a_win[:, 2] += (x0, y0)
                full = to_full(a_win, self.zr_w, self.zm_w)
                ctr = full[:, :2] @ center_of(self.mov_shape) + full[:, 2]
                cand = SimilarityCandidate(
                    scale=pk.scale * self.s0,
                    rotation_deg=theta,
                    fm_peak=pk.height,
                    score=pose.score,
                    ccc=pose.ccc,
                    overlap=pose.overlap,
                    center=(float(ctr[0]), float(ctr[1])),
                    affine=full,
                )
                evals.append((cand, pose, full))
        return evals

    def _result(
        self,
        allowed: list[Evaluated],
        n_evaluations: int,
        best: SimilarityCandidate,
        best_pose: Pose,
        best_full: NDArray[np.float64],
        ratio: float,
    ) -> SimilarityResult:
        """5–6. The best candidate refined (Gauss–Newton at a common sampling for its scale,
        then the shared maximum-likelihood refinement on the full-resolution images, with a
        weak prior around the Gauss–Newton pose: it gives the error bars), judged and returned.
        """
        a = self.a
        p_eff = best.scale * a.p_r  # the moving image's pixel size implied by the candidate (Å)
        full, ccc, overlap, converged = refine_candidate(
            a.ref, a.mov, best_full, a.p_r, p_eff, a.rsz, a.threads
        )
        full, sig3, (p_ccc, area) = ml_stage(a.ref, a.mov, full, converged, a.threads)
        scale, theta = scale_rotation_of(full[:, :2])
        sigma = scale / self.s0
        moved = (
            abs(wrap180(theta - best.rotation_deg)) > 3.0
            or abs(math.log(scale / best.scale)) > 0.05
        )
        in_srange = a.srange[0] <= sigma <= a.srange[1]
        rot_ok = a.rrange is None or in_range(theta, a.rrange)
        # hard gates: a pose outside the allowed ranges, a refinement that did not converge or
        # left the candidate, an ambiguous pose or too little overlap is never `found`
        gates = bool(
            converged
            and not moved
            and in_srange
            and rot_ok
            and overlap >= MIN_OVERLAP
            and ratio >= MIN_POSE_RATIO
        )
        x = similarity_features(ccc, ratio, overlap, best_pose.peak_z, sig3[0], p_ccc, area)
        conf_cal = calibrated_similarity_confidence(x)
        if conf_cal is None:  # (no shipped model: the measures' ramps and thresholds)
            found = gates and ccc >= MIN_CCC and best_pose.peak_z >= MIN_Z
            conf = similarity_confidence(ccc, ratio, overlap, best_pose.peak_z)
        else:
            # (a refinement that ran, area > 0, measured σ; the fallback's 1 px is a stand-in)
            conf = min(conf_cal, error_bar_bound(sig3[0])) if area > 0 else conf_cal
            found = conf >= 0.5
        if not gates:
            found, conf = False, min(conf, 0.49)
        if not found:
            conf = min(conf, 0.49)
        res = make_result(
            full,
            reference_shape=self.ref_shape,
            moving_shape=self.mov_shape,
            reference_pixel_a=a.p_r,
            moving_pixel_a=a.p_m,
            result_cls=SimilarityResult,
            scale=scale,
            rotation_deg=theta,
            found=found,
            confidence=conf,
            ccc=float(ccc),
            overlap=float(overlap),
            peak_ratio=float(best_pose.peak_ratio),
            peak_z=float(best_pose.peak_z),
            at_search_edge=bool(not in_srange),
            binning=1,
            n_evaluations=n_evaluations,
            candidates=tuple(c for c, _, _ in allowed[: 2 * self.n_peaks]),
            pose_ratio=ratio,
            scale_range=a.srange,
            nominal_scale=self.s0,
            center_sigma=sig3[0],
            scale_sigma=sig3[1],
            rotation_sigma_deg=sig3[2],
            prediction_ccc=float(p_ccc),
            residual_corr_area=float(area),
        )
        assert isinstance(res, SimilarityResult)
        return res
