"""The search of :func:`emgeom.crossmag.align` (``direction="down"``) as a small class of
stages: set-up (binning, shrunk moving image, regions) → coarse (scale, rotation) grid with
candidate positions → each candidate refined at full sampling → honesty measures → the
result. The maximum-likelihood refinement runs after it (:mod:`._refine`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from emgeom.crossmag._confidence import ramp_confidence
from emgeom.crossmag._geometry import center_of, is_constant, rotation
from emgeom.crossmag._result import AlignmentResult, make_result, not_found
from emgeom.crossmag._search import (
    Eval,
    Level,
    Region,
    coarse_candidates,
    fit_cross,
    fit_local,
    noise_corr_area,
    track,
)
from emgeom.crossmag._search import level as build_level
from emgeom.errors import InvalidValueError

#: Decision thresholds of ``found`` (calibrated on a noise sweep, docs/crossmag.md): the CCC must
#: exceed 1.5× the CCC that the best of M search
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


def confidence_ramps(
    significance: float, ratio: float, overlap: float, min_sig: float = _MIN_SIGNIFICANCE
) -> float:
    """Monotone map of the measures to [0, 1]; exactly 0.5 at the ``found`` thresholds (the
    fallback when no calibrated model is shipped).
    """
    return ramp_confidence(
        (
            (significance, 0.0, min_sig, 2 * min_sig),
            (ratio, 1.0, _MIN_RATIO, 1.6),
            (overlap, 0.0, _MIN_OVERLAP, 0.7),
        )
    )


@dataclass
class KnownInput:
    """The validated arguments of ``align`` that the search needs."""

    ref: NDArray[np.float32]
    mov: NDArray[np.float32]
    p_r: float
    p_m: float
    theta0: float
    ec: NDArray[np.float64]
    r_px: float | None
    ss: float
    rs: float
    method: str
    threads: int | None
    filt: tuple[float, float, float, float]
    csize: int
    npk: int
    tf: float
    return_map: bool
    ref_shape: tuple[int, int]
    mov_shape: tuple[int, int]
    check_mov: Callable[[], None]


@dataclass
class _Run:
    """One candidate position after its refinement."""

    score: float
    sigma: float
    theta: float
    final: NDArray[np.float64]  # x, y, value, ccc, overlap (full-sampling region px)
    ratio: float
    z_score: float
    n_positions: int


class KnownSearch:
    """``align``'s search, one method per stage; :meth:`run` returns the result."""

    def __init__(self, a: KnownInput) -> None:
        self.a = a
        self.s = a.p_m / a.p_r
        self.searching = a.ss > 0 or a.rs > 0
        self.n_eval = 0
        self.scale_step = min(_SCALE_STEP, a.ss / 2) * _COARSE_MULT if a.ss > 0 else 0.0
        self.rot_step = min(_ROT_STEP, a.rs / 2) * _COARSE_MULT if a.rs > 0 else 0.0

    def run(self) -> AlignmentResult:
        if not self._setup():
            return self._not_found()
        cands = self._coarse()
        if not cands:
            return self._not_found()
        runs = [self._candidate(pos_c, k_best) for pos_c, k_best in cands]
        return self._result(runs)

    def _not_found(self) -> AlignmentResult:
        a = self.a
        return not_found(a.ref_shape, a.mov_shape, a.p_r, a.p_m, self.s, a.theta0, a.ec)

    # --- stage 1: binning, shrunk moving image, regions ------------------------------------
    def _level(
        self,
        image: NDArray[np.float32],
        binning: int,
        zoom: float,
        center_mov: NDArray[np.float64] | None = None,
    ) -> Level:
        a = self.a
        return build_level(
            a.ref,
            image,
            binning,
            zoom,
            self.lo,
            self.hi,
            a.ec,
            a.r_px,
            self.ext_x,
            self.ext_y,
            a.ss,
            a.rs,
            a.theta0,
            a.tf,
            a.filt,
            a.method,
            a.npk,
            a.threads,
            center_mov=center_mov,
        )

    def _setup(self) -> bool:
        """Region, binning and the two pyramid levels; False for constant content."""
        a, s = self.a, self.s
        ss, rs, theta0 = a.ss, a.rs, a.theta0
        ny_r, nx_r = a.ref.shape
        # moving footprint half-extent in reference pixels (over the whole search range)
        ny_m, nx_m = a.mov.shape
        thetas = np.linspace(theta0 - rs, theta0 + rs, 7)
        cs, sn = np.abs(np.cos(np.radians(thetas))), np.abs(np.sin(np.radians(thetas)))
        self.ext_x = float(np.max(cs * nx_m / 2 + sn * ny_m / 2)) * s * (1 + ss)
        self.ext_y = float(np.max(sn * nx_m / 2 + cs * ny_m / 2)) * s * (1 + ss)
        # region to search (full reference pixels)
        if a.r_px is None:
            self.lo = np.array([0.0, 0.0])
            self.hi = np.array([nx_r - 1.0, ny_r - 1.0])
        else:
            self.lo = a.ec - a.r_px - np.array([self.ext_x, self.ext_y])
            self.hi = a.ec + a.r_px + np.array([self.ext_x, self.ext_y])
        width = float(max(self.hi[0] - self.lo[0], self.hi[1] - self.lo[1])) + 1
        b = self.b = max(1, math.ceil(width / a.csize))
        if s / b > 0.8:
            a.check_mov()  # not shrunk (the area/Lanczos shrinks check every pixel themselves)
        try:
            lv = self._level(a.mov, b, s)
        except InvalidValueError:
            a.check_mov()  # the shrink found a NaN/inf pixel: report it under the argument's name
            raise
        st, (self.x0, self.y0), self.size, self.allowed, _, _ = lv
        self.st = st
        # (unbinned, ref_b is the reference itself, already known not to be constant)
        if is_constant(st.mov_s) or (b > 1 and is_constant(st.ref_b)):
            return False
        # the coarse (scale, rotation) grid runs one pyramid level down (2× coarser) when the
        # region is large: 4× cheaper per point; the refinement below is at full sampling
        coarse = lv
        if self.searching and min(self.size) >= 384 and min(st.mov_s.shape) >= 64:
            # built from the fine level's shrunk moving image (s_f reference px per its pixel)
            coarse = self._level(st.mov_s, 2 * b, b * st.zr, center_mov=st.c_s)
        self.two_levels = coarse is not lv
        st_c, (self.x0c, self.y0c), size_c, allowed_c, _, _ = coarse
        self.st_c = st_c
        self.full = Region(st_c, (self.x0c, self.y0c), size_c, allowed_c, st_c.ref_taper)
        # the full region at full sampling: the refinement's direct (CCC-only) evaluations
        # read its filtered reference, and the honesty measures correlate over it
        self.fine = (
            self.full
            if not self.two_levels
            else Region(st, (self.x0, self.y0), self.size, self.allowed, st.ref_taper)
            if (self.searching or a.return_map)
            else None
        )
        return True

    # --- stage 2: coarse joint (scale, rotation) grid on the full region ------------------
    def _coarse(self) -> list[tuple[NDArray[np.float64], int]]:
        a = self.a
        ss, rs, theta0 = a.ss, a.rs, a.theta0
        if ss > 0:
            k = math.ceil(ss / self.scale_step - 1e-9)
            self.sig_list = [
                float(np.clip(1 + i * self.scale_step, 1 - ss, 1 + ss)) for i in range(-k, k + 1)
            ]
        else:
            self.sig_list = [1.0]
        if rs > 0:
            k = math.ceil(rs / self.rot_step - 1e-9)
            self.th_list = [
                float(np.clip(theta0 + i * self.rot_step, theta0 - rs, theta0 + rs))
                for i in range(-k, k + 1)
            ]
        else:
            self.th_list = [theta0]
        # joint grid (more robust than SerialEM's scale-then-rotation order when both are off:
        # a wrong rotation can hide the true peak from the scale scan)
        grid = [(sg, th) for sg in self.sig_list for th in self.th_list]
        self.evals: list[Eval]
        self.evals, _ = self.full.evaluate(self.st_c, grid)
        self.n_eval += len(self.evals)
        self.tol = max(2.0, 0.5 * self.st_c.min_sep)
        # distinct candidate positions, each with its best grid point: with a calibration
        # error near the edge of the search box the coarse grid can rank a wrong position
        # (e.g. further along a curved hole edge at another rotation) first by a hair, so every
        # candidate within _CANDIDATE_FRAC of the best is refined at full sampling and the best
        # refined score wins
        return coarse_candidates(
            self.evals,
            self.st_c.min_sep,
            _N_CANDIDATES if self.searching else 1,
            _CANDIDATE_FRAC,
        )

    def _to_fine(self, q: NDArray[np.float64]) -> NDArray[np.float64]:
        """Coarse-level region px -> full-sampling region px."""
        bc = self.st_c.binning
        u = (q + np.array([self.x0c, self.y0c]) + 0.5) * bc - 0.5
        return (u + 0.5) / self.b - 0.5 - np.array([self.x0, self.y0])

    # --- stage 3: each candidate refined at full sampling ---------------------------------
    def _refine(
        self, pos: NDArray[np.float64], sigma: float, theta: float
    ) -> tuple[float, float, NDArray[np.float64] | None, float, int]:
        """Local (scale, rotation) refinement at full sampling around ``pos`` (full-sampling
        region px): a 3×3 grid and a 2-D quadratic fit, then (at the range edge) a cross at
        half that step; the position hill-climbed on the CCC (no correlation map). Returns
        (sigma, theta, final peak or None, its score, evaluations).
        """
        assert self.fine is not None
        small, st, theta0 = self.fine, self.st, self.a.theta0
        ss, rs, scale_step, rot_step = self.a.ss, self.a.rs, self.scale_step, self.rot_step
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

    def _candidate(self, pos_c: NDArray[np.float64], k_best: int) -> _Run:
        a = self.a
        ss, rs, theta0 = a.ss, a.rs, a.theta0
        sig_list, th_list, evals = self.sig_list, self.th_list, self.evals
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
        scores = track(
            [evals[(i_s + u) * len(th_list) + (i_t + v)] for u, v in nb], pos_c, self.tol
        )
        du, dv = fit_local(nb, scores)
        sigma = (
            float(np.clip(sig_list[i_s] + du * self.scale_step, 1 - ss, 1 + ss)) if ss > 0 else 1.0
        )
        theta = (
            float(np.clip(th_list[i_t] + dv * self.rot_step, theta0 - rs, theta0 + rs))
            if rs > 0
            else theta0
        )
        # ambiguity and significance from the coarse map of the candidate's best point
        sc = ev_k.scores()
        dk = np.hypot(ev_k.peaks[:, 0] - pos_c[0], ev_k.peaks[:, 1] - pos_c[1])
        j = int(np.argmin(dk))
        others = sc[dk > self.st_c.min_sep]
        second = float(others.max()) if len(others) else 0.0
        first = float(sc[j])
        ratio = 100.0 if second <= 1e-6 else float(min(100.0, first / second)) if first > 0 else 0.0
        top = ev_k.peaks[j].copy()
        z_score = (float(top[2]) - ev_k.mean) / ev_k.std if ev_k.std > 0 else 0.0
        n_positions = ev_k.count * (self.st_c.binning // self.b) ** 2  # at full sampling
        top[:2] = self._to_fine(top[:2])
        final: NDArray[np.float64] = top
        score = first
        if self.searching:
            sigma, theta, fin, sc_f, n = self._refine(self._to_fine(pos_c), sigma, theta)
            self.n_eval += n
            # (a failed refinement keeps the coarse peak but must not win on its coarse-level
            # score, which is not comparable with the full-sampling ones)
            final, score = (fin, sc_f) if fin is not None else (final, -1.0)
        return _Run(score, sigma, theta, final, ratio, z_score, n_positions)

    # --- stage 4: honesty measures at full sampling, at the refined (scale, rotation) -----
    def _honesty(self, best: _Run) -> tuple[float, float, int, NDArray[np.float32] | None]:
        """(peak ratio, peak z, searched positions, map) from one full-sampling correlation
        at the winner's (scale, rotation). (The coarse level's peak ratio is far less
        discriminative: measured 1.05-1.13 vs 1.2-1.6 for the same true matches.)
        """
        a, st = self.a, self.st
        ratio, z_score, n_positions = best.ratio, best.z_score, best.n_positions
        cmap = None
        if self.two_levels or a.return_map:
            full_f = (
                self.fine
                if self.fine is not None
                else Region(st, (self.x0, self.y0), self.size, self.allowed, st.ref_taper)
            )
            ev_f, cmap = full_f.evaluate(st, [(best.sigma, best.theta)], want_map=a.return_map)
            self.n_eval += 1
            e_f = ev_f[0]
            n_positions = max(n_positions, e_f.count)
            if len(e_f.peaks):
                final = best.final
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
        return ratio, z_score, n_positions, cmap

    # --- stage 5: the best candidate, its measures and its geometry -----------------------
    def _result(self, runs: list[_Run]) -> AlignmentResult:
        a, st, b = self.a, self.st, self.b
        ss, rs, theta0 = a.ss, a.rs, a.theta0
        best_i = max(range(len(runs)), key=lambda q: runs[q].score)
        best = runs[best_i]
        sigma, theta, final = best.sigma, best.theta, best.final
        # another candidate that refines to nearly the same score elsewhere is an ambiguity
        rivals = [
            r.score
            for q, r in enumerate(runs)
            if q != best_i and np.hypot(*(r.final[:2] - final[:2])) > st.min_sep
        ]
        cand_ratio = (
            100.0
            if not rivals or max(rivals) <= 1e-6
            else float(min(100.0, best.score / max(rivals)))
            if best.score > 0
            else 0.0
        )
        at_edge = bool(
            (ss > 0 and abs(sigma - 1.0) >= ss - 1e-6)
            or (rs > 0 and abs(theta - theta0) >= rs - 1e-6)
        )
        ratio, z_score, n_positions, cmap = self._honesty(best)
        ratio = min(ratio, cand_ratio)
        # geometry back to full reference pixels
        v = np.array([final[0] + self.x0, final[1] + self.y0])
        center = (v + 0.5) * b - 0.5
        scale = sigma * self.s
        lin = scale * rotation(theta)
        affine = np.hstack([lin, (center - lin @ center_of(a.mov.shape))[:, None]])
        ccc = float(final[3])
        overlap = float(np.clip(final[4], 0.0, 1.0))
        # significance: the CCC relative to the best CCC pure noise reaches over the searched
        # positions
        n_foot = max(16.0, float(st.mov_s.shape[0] * st.mov_s.shape[1]) * st.zr * st.zr)
        n_pos = max(2, n_positions)
        noise_max = math.sqrt(2.0 * math.log(n_pos) * noise_corr_area(a.filt) / n_foot)
        significance = ccc / noise_max
        # an optimum clipped to the edge of the search range lies outside it: the position is
        # not trustworthy (SerialEM NavHelper.cpp AlignWithRotation returns error 1 then)
        min_sig = _MIN_SIGNIFICANCE_SEARCH if self.searching else _MIN_SIGNIFICANCE
        found = bool(
            significance >= min_sig
            and ratio >= _MIN_RATIO
            and overlap >= _MIN_OVERLAP
            and not at_edge
        )
        conf = confidence_ramps(significance, ratio, overlap, min_sig)
        if not found:
            conf = min(conf, 0.49)
        return make_result(
            affine,
            reference_shape=a.ref_shape,
            moving_shape=a.mov_shape,
            reference_pixel_a=a.p_r,
            moving_pixel_a=a.p_m,
            found=found,
            confidence=conf,
            ccc=ccc,
            overlap=overlap,
            peak_ratio=float(ratio),
            peak_z=float(z_score),
            significance=float(significance),
            at_search_edge=at_edge,
            binning=b,
            n_evaluations=self.n_eval,
            correlation_map=cmap,
            map_origin=(self.x0, self.y0),
            scale=float(scale),  # the exact refined values, not re-derived from the matrix
            rotation_deg=float(theta),
        )
