"""The problem of one cross-magnification refinement (:mod:`emgeom.crossmag._refine`): the
forward model at a pose (Rust ``crossmag_refine::area_predict_stack``, high-passed), the
criterion with the gain profiled out, the noise model κ(s) and the prior's bounds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from emgeom import _core
from emgeom.crossmag._geometry import nice_size
from emgeom.crossmag._refine_stats import noise_sigma

__all__ = [
    "KAPPA_STEP",
    "Prior",
    "Problem",
    "clip_geo",
    "measure_kappa",
    "noise_model",
    "predict_stack",
    "profile",
    "reference_jacobian",
]

#: Relative scale step of the central difference that measures κ(s)'s slope.
KAPPA_STEP = 0.03


@dataclass(frozen=True)
class Prior:
    """Gaussian prior ``N(value, sigma²)`` bounded to ``[value − bound, value + bound]``; a
    ``sigma`` of 0 holds the parameter fixed.
    """

    value: float
    sigma: float
    bound: float


def predict_stack(
    imgs: NDArray[np.float32],
    p: NDArray[np.float64],
    c: tuple[float, float],
    box: tuple[int, int, int, int],
    k: int,
    derivs: tuple[bool, bool, bool, bool],
    threads: int | None,
) -> NDArray[np.float64]:
    pose = _core.Pose(tx=float(p[0]), ty=float(p[1]), s=float(p[2]), theta_rad=float(p[3]))
    out = _core.crossmag_area_predict_stack(
        imgs, pose, center=c, box_=box, k=k, derivs=derivs, n_threads=threads
    )
    return np.asarray(out)


@dataclass
class Problem:
    """Everything fixed during one refinement (binned fine image, box, mask, priors)."""

    fine: NDArray[np.float32]
    coarse: NDArray[np.float64]  # the box of the coarse image
    box: tuple[int, int, int, int]
    mask: NDArray[np.bool_]
    c_f: tuple[float, float]  # fine centre in binned-fine px
    k: int
    f: int
    sig_f: float  # noise σ per binned-fine pixel
    x_bg: NDArray[np.float64]
    y_bg: NDArray[np.float64]
    free: list[int]  # indices of the free geometric parameters among (tx, ty, s, θ)
    priors: dict[int, Prior]  # on s (index 2, binned units) and θ (index 3, radians)
    background: bool
    threads: int | None
    kap_ref: tuple[float, float, float] = (1.0, 1.0, 0.0)  # (s_ref, κ(s_ref), exponent)
    coarse_hp: NDArray[np.float64] | None = None
    hp_sigma: float = 0.0  # high-pass: Gaussian σ (coarse px) of the smooth background removed
    h_scale: float = 1.0  # curvature the Gauss–Newton matrix misses (see _rescale_hessian)
    # Σ over the mask of each derivative² of the prediction of unit white noise (start pose)
    unit_noise_energy: NDArray[np.float64] = field(default_factory=lambda: np.zeros(4))
    _cache: dict[bytes, tuple[NDArray[np.float64], NDArray[np.float64]]] = field(
        default_factory=dict
    )

    def highpass(self, img: NDArray[np.float64]) -> NDArray[np.float64]:
        """``img`` (one image or a stack ``(n, ny, nx)``) minus its Gaussian-smoothed version
        over the mask (normalised convolution), the smooth background that the model leaves
        free; identity when ``hp_sigma`` is 0. The kernel (``emgeom_kernels::highpass``, oracle
        :mod:`emgeom.reference.highpass`) zero-pads to a fast FFT size beyond the Gaussian's
        support (no wrap-around).
        """
        if self.hp_sigma <= 0:
            return img
        ny, nx = self.mask.shape
        r = math.ceil(3.0 * self.hp_sigma)
        pad = (nice_size(ny + r), nice_size(nx + r))
        stack = np.ascontiguousarray(img.reshape(-1, ny, nx), dtype=np.float64)
        out = _core.masked_gaussian_highpass(
            stack,
            np.ascontiguousarray(self.mask, dtype=np.bool_),
            sigma=self.hp_sigma,
            pad=pad,
            n_threads=self.threads,
        )
        return out.reshape(img.shape)

    def predict_many(
        self, imgs: list[NDArray[np.float32]], geo: NDArray[np.float64], derivs: bool = True
    ) -> list[tuple[NDArray[np.float64], NDArray[np.float64]]]:
        """The forward model of each image at ``geo`` (one pass of the kernel, the sampling
        shared) and its derivatives with respect to the free parameters (the others are 0),
        high-passed: a list of ``(P (ny, nx), D (4, ny, nx))``.
        """
        stack = imgs[0][None] if len(imgs) == 1 else np.stack(imgs)
        fl = [derivs and i in self.free for i in range(4)]
        flags = (fl[0], fl[1], fl[2], fl[3])
        out = predict_stack(stack, geo, self.c_f, self.box, self.k, flags, self.threads)
        n, n_pl, ny, nx = out.shape
        out = self.highpass(out.reshape(n * n_pl, ny, nx)).reshape(n, n_pl, ny, nx)
        res = []
        for m in range(n):
            d = np.zeros((4, ny, nx))
            if n_pl > 1:
                d[[i for i in range(4) if flags[i]]] = out[m, 1:]
            res.append((out[m, 0], d))
        return res

    def predict(
        self, img: NDArray[np.float32], geo: NDArray[np.float64]
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """The forward model of ``img`` at ``geo`` and its free derivatives, high-passed; the
        fine image's last predictions are remembered (the solver revisits poses).
        """
        key = geo.tobytes()
        if img is self.fine and key in self._cache:
            return self._cache[key]
        out = self.predict_many([img], geo)[0]
        if img is self.fine:
            self.remember(geo, out)
        return out

    def remember(
        self, geo: NDArray[np.float64], out: tuple[NDArray[np.float64], NDArray[np.float64]]
    ) -> None:
        """Keep the fine image's prediction at ``geo`` (the last four)."""
        if len(self._cache) >= 4:
            self._cache.pop(next(iter(self._cache)))
        self._cache[geo.tobytes()] = out

    def kappa(self, s: float) -> tuple[float, float]:
        """κ(s) and dκ/ds from a power law through two exact evaluations near the start."""
        s_ref, k_ref, alpha = self.kap_ref
        kap = k_ref * (s / s_ref) ** alpha
        return kap, alpha * kap / s


def profile(
    pb: Problem, geo: NDArray[np.float64], a_var: float, rho: float
) -> tuple[float, dict[str, Any]]:
    """The criterion with the intensity parameters profiled out (variable projection).

    For fixed geometry the gain ``g`` minimises the Deming criterion
    ``(A − 2Bg + Cg²)/(a + c·g²)`` (``A, B, C`` the moments of the coarse image and the
    prediction after projecting out offset and background, ``c = σ_f²κ(s)``): the root of
    ``Bc·g² + (aC − Ac)·g − aB = 0`` with the sign of ``B`` (``B/C`` when ``c`` = 0).
    """
    m = pb.mask
    pimg, dimg = pb.predict(pb.fine, geo)
    if pb.coarse_hp is None:
        x = np.stack([np.ones(int(m.sum())), pb.x_bg[m], pb.y_bg[m]], axis=1)
        r_img = pb.coarse
    else:  # (high-passed: offset and plane are gone already)
        x = np.zeros((int(m.sum()), 0))
        r_img = pb.coarse_hp
    q, _ = np.linalg.qr(x) if x.shape[1] else (x, None)

    def proj(v: NDArray[np.float64]) -> NDArray[np.float64]:
        return np.asarray(v - q @ (q.T @ v)) if q.shape[1] else np.asarray(v)

    r = proj(r_img[m])
    p = proj(pimg[m])
    a_mom, b_mom, c_mom = float(r @ r), float(r @ p), float(p @ p)
    kap, _ = pb.kappa(float(geo[2]))
    c = pb.sig_f**2 * kap
    if c_mom <= 0:
        g = 0.0
    elif c <= 0 or abs(b_mom) < 1e-300:
        g = b_mom / c_mom
    else:
        qa, qb, qc = b_mom * c, a_var * c_mom - a_mom * c, -a_var * b_mom
        disc = math.sqrt(max(0.0, qb * qb - 4 * qa * qc))
        g = (-qb + math.copysign(disc, b_mom)) / (2 * qa)
    e = r - g * p
    s_sum = float(e @ e)
    v = a_var + g * g * c
    if v <= 0:
        v = max(s_sum / max(1, e.size), 1e-300)
    val = s_sum / (rho * v)
    for i, pr in pb.priors.items():
        val += ((geo[i] - pr.value) / pr.sigma) ** 2
    return val, {
        "pimg": pimg,
        "dimg": dimg,
        "e": e,
        "g": g,
        "v": v,
        "kap": kap,
        "c": c,
        "proj": proj,
        "s_sum": s_sum,
        "x": x,
    }


def clip_geo(pb: Problem, geo: NDArray[np.float64]) -> tuple[NDArray[np.float64], bool]:
    g = geo.copy()
    edge = False
    for i, pr in pb.priors.items():
        lo, hi = pr.value - pr.bound, pr.value + pr.bound
        if g[i] <= lo or g[i] >= hi:
            edge = True
        g[i] = min(max(g[i], lo), hi)
    return g, edge


def measure_kappa(
    pb: Problem, geo: NDArray[np.float64], noise: NDArray[np.float32], pn: NDArray[np.float64]
) -> None:
    """κ(s): the variance of the (high-passed) prediction of unit white noise over the
    footprint (``pn``: the prediction of ``noise`` at ``geo``, already made), kept as a power
    law ``κ ∝ s^α``. Within a footprint the k × k samples are about one fine pixel apart and
    their bilinear weights interlock, so the variance changes with the scale differently from
    the s² of an ideal area average, and an analytic κ left most of the errors-in-variables
    bias in place. The slope α is measured with the model itself: the same noise images
    predicted at ``(1 ± KAPPA_STEP)·s`` (a central difference, mean of two images). A step of
    1 % and one image, as before, gave α with a scatter of ±1.1 between noise draws (the two
    scales sample different noise pixels near the box edges), and one unlucky draw — the same
    for every pair of a size — biased the scale of a whole set by +2 %; ±3 % and two images:
    ±0.2.
    """
    m = pb.mask
    k0 = float(np.mean(pn[m] ** 2))
    alpha = 2.0  # (the scale is held: the slope is not needed)
    if 2 in pb.free:
        pair = [noise, np.random.default_rng(8).standard_normal(noise.shape, dtype=np.float32)]
        var = []
        for f in (1.0 - KAPPA_STEP, 1.0 + KAPPA_STEP):
            g2 = geo.copy()
            g2[2] *= f
            var.append([float(np.mean(q[m] ** 2)) for q, _ in pb.predict_many(pair, g2, False)])
        lr = [math.log(hi / lo) for lo, hi in zip(var[0], var[1], strict=True) if lo > 0 and hi > 0]
        if lr:
            alpha = float(np.mean(lr)) / math.log((1.0 + KAPPA_STEP) / (1.0 - KAPPA_STEP))
    pb.kap_ref = (float(geo[2]), k0, alpha)


def noise_model(pb: Problem, st: dict[str, Any]) -> float:
    """Update the noise model from a fit's residuals: the fine image's σ is at most what the
    whole residual allows (its Laplacian estimate also counts structure finer than the coarse
    pixels); ``a`` (returned) is the rest of the residual variance.
    """
    e = st["e"]
    v_res = float(e @ e) / max(1, e.size)
    if st["g"] != 0 and st["kap"] > 0:
        pb.sig_f = min(pb.sig_f, math.sqrt(v_res / (st["g"] ** 2 * st["kap"])))
    return max(0.0, v_res - st["g"] ** 2 * pb.sig_f**2 * st["kap"])


def reference_jacobian(
    pb: Problem, geo: NDArray[np.float64], proj: Any, a_var: float
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The Jacobian of the prediction ``g·P`` with respect to the free parameters, measured on
    the coarse (reference) image ``r ≈ g·P`` instead of the noisy fine image, and the part of
    its Gram diagonal that the coarse image's own noise (``a_var`` per pixel) adds.

    With ``u = c_f + Rᵀ(q − t)/s`` and ``∇P`` the gradient over coarse pixels:
    ``∂P/∂t = −∇P``, ``∂P/∂s = −∇P·(q − t)/s`` and ``∂P/∂θ = P_x·(q_y − t_y) − P_y·(q_x − t_x)``;
    ``∇r`` by central differences over the box, high-passed like the predictions and projected
    like the residual. Returns ``(J (n_free, n_mask), noise part of diag(JᵀJ) (n_free,))``.

    Why not the fine image's derivatives: on noisy pairs they are mostly noise (noise energy
    20–2000× the signal's on real ×4/×6 micrograph pairs, seeds 300–302), so "noisy energy
    minus noise energy" was a difference of nearly equal numbers and the σ it gave was set by
    a cap. Central differences see only the structure that survives at the coarse sampling
    (0.1–0.5 of the exact noise-free derivative's energy on the real micrograph, 0.5 on the
    generator's smooth specimen; a spectral derivative sees 0.4–0.9): on real micrograph pairs
    that converge in the truth's basin the σ they give matches the scatter (68th percentile
    of |error|/σ 0.9–1.0 for centre and rotation, 60-pair sweeps, seeds 12 and 31), where
    the exact-derivative bound is 1.2–2× below it (the errors-in-variables estimator is not
    efficient when the prediction's SNR is far below 1) and the spectral derivative's σ 2–3×.
    """
    m = pb.mask
    r = pb.coarse
    rx = np.zeros_like(r)
    ry = np.zeros_like(r)
    rx[:, 1:-1] = 0.5 * (r[:, 2:] - r[:, :-2])
    ry[1:-1, :] = 0.5 * (r[2:, :] - r[:-2, :])
    x0, y0, nx, ny = pb.box
    qy, qx = np.mgrid[y0 : y0 + ny, x0 : x0 + nx].astype(np.float64)
    vx, vy = qx - geo[0], qy - geo[1]
    # (the weight of the coarse noise in each column: a central difference of white noise
    # has variance a/2 per pixel)
    cols = {
        0: (-rx, 0.5 * np.ones_like(r)),
        1: (-ry, 0.5 * np.ones_like(r)),
        2: (-(rx * vx + ry * vy) / geo[2], 0.5 * (vx * vx + vy * vy) / geo[2] ** 2),
        3: (rx * vy - ry * vx, 0.5 * (vx * vx + vy * vy)),
    }
    imgs = np.stack([cols[i][0] for i in pb.free])
    imgs = pb.highpass(imgs)
    jac = np.stack([proj(imgs[q][m]) for q in range(len(pb.free))])
    # (the coarse image's white noise: at most the residual's part a, at most its robust
    # Laplacian estimate — a holds model mismatch too, which is not in ∇r's noise)
    a_c = min(a_var, noise_sigma(r) ** 2)
    noise = a_c * np.array([float(np.sum(cols[i][1][m])) for i in pb.free])
    return jac, noise
