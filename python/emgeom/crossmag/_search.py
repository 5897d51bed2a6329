"""The (scale, rotation, position) search machinery of :func:`emgeom.crossmag.align`:
search set-up at one binning, regions of the reference prepared for correlation, search-point
evaluation (Rust), candidate tracking and the local quadratic fits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal, cast

import numpy as np
from numpy.typing import NDArray

from emgeom import _core
from emgeom.crossmag._correlate import correlation_setup, imod_filter
from emgeom.crossmag._geometry import (
    OVERLAP_POWER,
    center_of,
    nice_size,
    quad_vertex,
    rotation,
    unit_scaled,
)
from emgeom.errors import InvalidValueError


@dataclass
class Setup:
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


def patch_affine(st: Setup, sigma: float, theta_deg: float) -> NDArray[np.float64]:
    """Patch pixel (j, i) → shrunk moving (x, y): u' = c' + R(θ)ᵀ (o)/(σ·zr), o = (j−hx, i−hy)."""
    m = rotation(theta_deg).T / (sigma * st.zr)
    hy, hx = st.half
    t = st.c_s - m @ np.array([hx, hy], dtype=np.float64)
    return np.hstack([m, t[:, None]])


@dataclass
class Eval:
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
        return np.where(ccc > 0, ccc * ov**OVERLAP_POWER, ccc)

    def best(self) -> int:
        s = self.scores()
        return int(np.argmax(s)) if len(s) else -1

    def best_score(self) -> float:
        s = self.scores()
        return float(s.max()) if len(s) else -1.0


class Region:
    def __init__(
        self,
        st: Setup,
        origin: tuple[int, int],
        size: tuple[int, int],
        allowed: tuple[int, int, int, int, float, float, float],
        taper: float,
    ) -> None:
        self.origin = origin
        self.size = size
        self.allowed = allowed
        hy, hx = st.half
        pad = (nice_size(size[0] + hy + 2), nice_size(size[1] + hx + 2))
        self.ref = _core.crossmag_prepare(
            st.ref_b,
            correlation_setup(pad, taper, st.filt, st.method),
            origin=origin,
            region=size,
            n_threads=st.threads,
        )

    def evaluate(
        self,
        st: Setup,
        points: list[tuple[float, float]],
        want_map: bool = False,
        refine: bool = True,
        direct: tuple[float, float] | None = None,
    ) -> tuple[list[Eval], NDArray[np.float32] | None]:
        affs = np.stack([patch_affine(st, s, t) for s, t in points])
        x0, x1, y0, y1, cx, cy, radius = self.allowed
        search = _core.PatchSearch(
            half=st.half,
            taper=st.mask_taper,
            allowed=_core.AllowedRegion(x0=x0, x1=x1, y0=y0, y1=y1, cx=cx, cy=cy, radius=radius),
            peaks=_core.PeakSearch(n_peaks=st.n_peaks, min_separation=st.min_sep),
            score_affines=st.score_affines,
            refine_ccc=refine,
            direct=direct,
        )
        out, cmap = _core.crossmag_evaluate(
            self.ref, st.mov_s, affs, search, want_map=want_map, n_threads=st.threads
        )
        evals = [
            Eval(s, t, np.asarray(e.peaks), e.map_mean, e.map_std, e.map_count)
            for (s, t), e in zip(points, out, strict=True)
        ]
        return evals, cmap


def track(evals: list[Eval], pos: NDArray[np.float64], tol: float) -> NDArray[np.float64]:
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


def coarse_candidates(
    evals: list[Eval], sep: float, k: int, frac: float
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


def fit_cross(grid: list[tuple[int, int]], ys: NDArray[np.float64]) -> tuple[float, float]:
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


def fit_local(grid: list[tuple[int, int]], ys: NDArray[np.float64]) -> tuple[float, float]:
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
            q = quad_vertex(g[line, axis], ys[line])
            if q is not None and q[0] < 0:
                t = float(np.clip(q[1], -1, 1))
                return (t, float(best[1])) if axis == 0 else (float(best[0]), t)
    return float(best[0]), float(best[1])


Level = tuple[
    "Setup",
    tuple[int, int],
    tuple[int, int],
    tuple[int, int, int, int, float, float, float],
    int,
    int,
]


def shrink(img: NDArray[np.float32], zoom: float, how: str, threads: int | None) -> Any:
    """``rescale`` without re-validating an already validated float32 image."""
    shape = (
        max(1, int(np.floor(img.shape[0] * zoom + 1e-6))),
        max(1, int(np.floor(img.shape[1] * zoom + 1e-6))),
    )
    method = cast(Literal["area", "lanczos3"], how)  # validated by the caller and the kernel
    return _core.rescale_separable(
        img, output_shape=shape, zoom=(zoom, zoom), method=method, n_threads=threads
    )


def level(
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
) -> Level:
    """Binned reference, shrunk moving image and full search region at reference binning b.
    ``s`` = reference pixels per ``mov`` pixel; ``center_mov`` = the moving centre in ``mov``
    pixels (default its image centre; differs when ``mov`` is already a shrunk image).
    """
    ref_b = ref if b == 1 else shrink(ref, 1.0 / b, "area", threads)

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
    mov_s = mov if not how else shrink(np.ascontiguousarray(mov, np.float32), z0, how, threads)
    mov_s = unit_scaled(mov_s)  # (align scaled the reference)
    if min(mov_s.shape) < 8:
        raise InvalidValueError(
            f"moving: only {mov_s.shape} pixels at the correlation sampling (binning {b}); "
            "the pixel-size ratio is too large for one step: align through a middle "
            "magnification and use crossmag.compose"
        )
    c_m = center_of(mov.shape) if center_mov is None else center_mov
    c_s = (c_m + 0.5) * z0 - 0.5
    hy = math.ceil(ext_y / b) + 2
    hx = math.ceil(ext_x / b) + 2
    st = Setup(
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
        [patch_affine(st, 1.0 - ss, theta0 + dt) for dt in ((-rs, 0.0, rs) if rs > 0 else (0.0,))]
    )
    return st, (x0, y0), size, allowed, nyb, nxb


@lru_cache(maxsize=16)
def noise_corr_area(filt: tuple[float, float, float, float]) -> float:
    """ρ = N²·ΣH⁴/(ΣH²)²: the correlation area (px²) of white noise filtered by the IMOD filter,
    so that the CCC of unrelated filtered noise over n pixels has variance ≈ ρ/n.
    """
    n = 128
    f = np.fft.fftfreq(n)
    h = imod_filter(np.sqrt(f[:, None] ** 2 + f[None, :] ** 2), *filt)
    s2 = float((h**2).sum())
    return float(n * n * (h**4).sum() / (s2 * s2)) if s2 > 0 else 1.0
