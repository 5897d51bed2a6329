"""Defocus handedness from the data itself: :func:`check_hand` and :class:`HandCheck`.

The canonical model (``emgeom.tilt``, design note ``handedness.md`` §5) predicts, for a flat
specimen lying in the tomogram's ``z = 0`` plane, a linear defocus gradient across every tilted
image. With ``p = (x, y, 0)``, image position ``q = M·(x, y) + s`` (``M`` = the upper-left 2×2
of ``R_t``) and depth ``z' = r3[:2]·(x, y)``, the defocus ``Δf0 − h·κ·z'`` has the image-space
gradient

    G_t = −h·κ·M⁻ᵀ·r3[:2]      (for χ = 0: G_t = h·κ·tanθ_t·(cosψ_t, sinψ_t)).

Its component along ``d_t = (cosψ_t, sinψ_t)`` — perpendicular to the tilt axis, pointing to the
"right" of the aligned view — is the **slope** of tilt ``t``: ``h·κ·tanθ_t`` for χ = 0. At
positive tilt and ``h = +1`` the right side is more underfocused (IMOD ctfphaseflip man page).

:func:`check_hand` measures the slope of every tilt (from defocus samples at known image
positions, from the images themselves, or from CTFFIND5's per-image tilt fits), regresses the
measured slopes on the predicted ``h = +1`` slopes over the tilt series (robust weighted least
squares with an offset, which absorbs a constant specimen pre-tilt just like the mean-centring in
Warp's ``ts_defocus_hand --check``, ``WarpTools/Commands/Tiltseries/DefocusHandTiltseries.cs``)
and decides ``h = sign(regression slope)`` when it is significant.

Confidence = ``1 − p`` of the two-sided test "regression slope = 0" (Student-t approximated by a
normal with the Wallace correction); the hand is *decided* only when the confidence reaches
``min_confidence`` with at least ``min_tilts`` usable tilts spanning a predicted slope range of at
least ``min_slope_range`` (flat or untilted series are therefore never decided).
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from emgeom._validate import as_float, as_int, describe, real_array
from emgeom.errors import (
    FileFormatError,
    InvalidTypeError,
    InvalidValueError,
    LossyConversionWarning,
    ShapeError,
)
from emgeom.tilt._geometry import TiltGeometry

__all__ = [
    "HandCheck",
    "HandSamples",
    "SubtiltTable",
    "check_hand",
    "predicted_slopes",
    "read_subtilt_star",
    "samples_from_warp_movies",
]


# ----------------------------------------------------------------------------------- samples
@dataclass(frozen=True)
class HandSamples:
    """Defocus measured at known image positions, one row per measurement.

    Attributes
    ----------
    tilt_index : int array (N,)
        0-based index of the tilt (row of the geometry) the measurement belongs to.
    x_a, y_a : float arrays (N,)
        Image position in Å (pixel column/row × pixel size) in the raw tilt image. Any fixed
        origin per tilt works (only gradients are used); the raw-image centre is conventional.
    defocus_a : float array (N,)
        Defocus in Å, underfocus positive.
    weight : float array (N,)
        Relative weight (default 1).
    """

    tilt_index: NDArray[np.int64]
    x_a: NDArray[np.float64]
    y_a: NDArray[np.float64]
    defocus_a: NDArray[np.float64]
    weight: NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))

    def __post_init__(self) -> None:
        n = self.tilt_index.shape[0]
        if self.weight.shape[0] == 0:
            object.__setattr__(self, "weight", np.ones(n))

    @property
    def n(self) -> int:
        return int(self.tilt_index.shape[0])


def _as_samples(samples: Any, n_tilts: int) -> HandSamples:
    if isinstance(samples, HandSamples):
        s = samples
    elif isinstance(samples, Mapping):
        missing = [k for k in ("tilt_index", "x_a", "y_a", "defocus_a") if k not in samples]
        if missing:
            raise InvalidValueError(
                f"samples: mapping needs keys tilt_index, x_a, y_a, defocus_a; missing {missing}"
            )
        cols = [np.asarray(samples[k]) for k in ("tilt_index", "x_a", "y_a", "defocus_a")]
        w = np.asarray(samples["weight"]) if "weight" in samples else None
        s = _build_samples(cols[0], cols[1], cols[2], cols[3], w)
    else:
        try:
            arr = real_array(samples, "samples")
        except InvalidTypeError as exc:
            raise InvalidTypeError(
                f"samples: expected HandSamples, a mapping or an (N, 4) array "
                f"[tilt_index, x_a, y_a, defocus_a], got {describe(samples)}"
            ) from exc
        if arr.ndim != 2 or arr.shape[1] not in (4, 5):
            raise ShapeError(
                f"samples: expected an (N, 4) array [tilt_index, x_a, y_a, defocus_a] "
                f"(or N×5 with a weight), got shape {arr.shape}"
            )
        s = _build_samples(
            arr[:, 0], arr[:, 1], arr[:, 2], arr[:, 3], arr[:, 4] if arr.shape[1] == 5 else None
        )
    if s.n == 0:
        raise InvalidValueError("samples: no measurements given")
    if s.tilt_index.min() < 0 or s.tilt_index.max() >= n_tilts:
        raise InvalidValueError(
            f"samples: tilt_index must lie in 0..{n_tilts - 1} (the geometry has {n_tilts} "
            f"tilts), got {int(s.tilt_index.min())}..{int(s.tilt_index.max())}"
        )
    return s


def _build_samples(ti: Any, x: Any, y: Any, d: Any, w: Any | None) -> HandSamples:
    ti = real_array(ti, "samples.tilt_index")
    arrs = [
        real_array(v, f"samples.{k}").ravel() for v, k in ((x, "x_a"), (y, "y_a"), (d, "defocus_a"))
    ]
    n = ti.size
    if any(a.size != n for a in arrs) or (w is not None and np.asarray(w).size != n):
        raise ShapeError(
            f"samples: tilt_index, x_a, y_a, defocus_a (and weight) must have the same length, "
            f"got {[n, *[a.size for a in arrs]]}"
        )
    tif = np.asarray(ti, dtype=np.float64).ravel()
    if not np.all(np.isfinite(tif)) or np.any(tif != np.round(tif)):
        raise InvalidValueError("samples: tilt_index must hold integers")
    ww = np.ones(n) if w is None else real_array(w, "samples.weight").ravel()
    if np.any(~np.isfinite(ww)) or np.any(ww < 0):
        raise InvalidValueError("samples: weight must be finite and >= 0")
    # non-finite measurements are dropped (reported by the caller as unusable tilts)
    x_, y_, d_ = arrs
    ok = np.isfinite(x_) & np.isfinite(y_) & np.isfinite(d_)
    return HandSamples(
        tilt_index=tif.astype(np.int64)[ok],
        x_a=x_[ok],
        y_a=y_[ok],
        defocus_a=d_[ok],
        weight=ww[ok],
    )


# --------------------------------------------------------------------------- prediction
def _directions(geometry: TiltGeometry) -> NDArray[np.float64]:
    """``d_t = (cosψ_t, sinψ_t)``, shape (T, 2)."""
    a = np.radians(geometry.axis_deg)
    return np.stack([np.cos(a), np.sin(a)], axis=1)


def predicted_slopes(geometry: TiltGeometry) -> NDArray[np.float64]:
    """Predicted defocus slope of every tilt for canonical ``h = +1``, shape (T,), Å per Å.

    The slope is the image-space defocus gradient of a flat specimen in the tomogram's ``z = 0``
    plane, ``−κ·M⁻ᵀ·r3[:2]``, projected on ``(cosψ_t, sinψ_t)`` (perpendicular to the tilt
    axis). For ``χ = 0`` it equals ``κ·tanθ_t``. Multiply by ``h`` for another hand.
    """
    r = geometry.rotation_matrices()
    m = r[:, :2, :2]
    r3 = r[:, 2, :2]
    g = -geometry.defocus_slope * np.linalg.solve(np.transpose(m, (0, 2, 1)), r3[..., None])[..., 0]
    return np.asarray(np.einsum("ti,ti->t", g, _directions(geometry)), dtype=np.float64)


# ------------------------------------------------------------------------------- result
@dataclass(frozen=True)
class HandCheck:
    """Result of :func:`check_hand`.

    Attributes
    ----------
    hand : int
        Decided canonical hand (+1 = IMOD convention = RELION ``rlnTomoHand −1``; −1), or 0
        when the data do not decide it (see ``decided``).
    leaning_hand : int
        Sign of the regression slope even when undecided (+1/−1; 0 when nothing was measured).
    decided : bool
        ``confidence ≥ min_confidence`` with enough tilts and tilt range.
    confidence : float
        ``1 − p`` of the test "no gradient", in [0, 1].
    correlation : float
        Weighted Pearson correlation between measured and predicted (``h = +1``) slopes
        over the used tilts (≈ +1 for ``h = +1``, ≈ −1 for ``h = −1``).
    slope_ratio : float
        Regression slope ``k`` of measured on predicted slopes (≈ ``h·κ`` for a flat
        specimen; its magnitude well below 1 hints at wrong pixel size or tilt angles).
    slope_offset : float
        Regression offset (constant gradient along ``d``, e.g. a specimen pre-tilt).
    tilt_deg : array (T,)
        Canonical tilt angles of the geometry.
    predicted_slope : array (T,)
        Predicted slope for ``h = +1`` (Å/Å).
    measured_slope : array (T,)
        Measured slope along ``(cosψ, sinψ)`` (Å/Å), NaN where not measured.
    measured_slope_err : array (T,)
        Its standard error (NaN where not measured).
    used : bool array (T,)
        Tilts entering the regression.
    agreement : array (T,)
        +1 where the measured slope (minus the offset) has the sign of ``hand·predicted``,
        −1 where opposite, 0 where unused or the prediction is ~0.
    source : str
        ``"samples"``, ``"images"`` or ``"ctffind5"``.
    geometry_hand : int
        The hand stated by the input geometry.
    notes : tuple of str
        Caveats and what was assumed.
    """

    hand: int
    leaning_hand: int
    decided: bool
    confidence: float
    correlation: float
    slope_ratio: float
    slope_offset: float
    tilt_deg: NDArray[np.float64]
    predicted_slope: NDArray[np.float64]
    measured_slope: NDArray[np.float64]
    measured_slope_err: NDArray[np.float64]
    used: NDArray[np.bool_]
    agreement: NDArray[np.int8]
    source: str
    geometry_hand: int
    notes: tuple[str, ...] = ()
    details: Mapping[str, Any] = field(default_factory=dict)

    # ------------------------------------------------------------------ derived values
    @property
    def n_used(self) -> int:
        """Number of tilts in the regression."""
        return int(np.count_nonzero(self.used))

    @property
    def agrees_with_geometry(self) -> bool | None:
        """Whether the input geometry's hand is the decided one (None when undecided)."""
        if not self.decided:
            return None
        return self.hand == self.geometry_hand

    @property
    def vote_fraction(self) -> float:
        """Fraction of voting tilts (agreement ≠ 0) that agree with ``leaning_hand``."""
        v = self.agreement[self.agreement != 0]
        return float(np.mean(v > 0)) if v.size else float("nan")

    @property
    def relion_hand(self) -> int | None:
        """RELION ``rlnTomoHand`` of the decided hand (= −h), None when undecided."""
        return -self.hand if self.decided else None

    @property
    def warp_angles_inverted(self) -> bool | None:
        """Warp ``AreAnglesInverted`` (= ``h == +1``) for the canonical tilt angles; None when
        undecided.
        """
        return (self.hand == +1) if self.decided else None

    @property
    def ctfphaseflip_invert(self) -> bool | None:
        """Whether IMOD ctfphaseflip/ctfplotter need ``-invert`` (= ``h == −1``)."""
        return (self.hand == -1) if self.decided else None

    @property
    def pytom_hand(self) -> int | None:
        """pytom-match-pick ``--defocus-handedness``: −1 for ``h = −1``; for ``h = +1`` pytom
        has no exact setting (design §2.6) and +1 is returned (exact only at ``z = 0``).
        """
        if not self.decided:
            return None
        return -1 if self.hand == -1 else +1

    @property
    def warp_check_correlation(self) -> float:
        """What Warp's ``ts_defocus_hand --check`` would report for these data (design T7):
        the check forces ``AreAnglesInverted = False`` and Warp angles are ``−θ``, so its
        correlation is ``−correlation`` (negative ⇒ Warp says "flip" ⇔ ``h = +1``).
        """
        return -self.correlation

    def program_flags(self) -> dict[str, Any]:
        """Each program's flag for the decided hand (None values when undecided)."""
        return {
            "canonical_hand": self.hand if self.decided else None,
            "relion_rlnTomoHand": self.relion_hand,
            "warp_AreAnglesInverted": self.warp_angles_inverted,
            "imod_ctfphaseflip_invert": self.ctfphaseflip_invert,
            "pytom_defocus_handedness": self.pytom_hand,
            "pytom_exact": (self.hand == -1) if self.decided else None,
        }

    def corrected(self, geometry: TiltGeometry) -> TiltGeometry:
        """``geometry`` with the decided hand (raises when undecided)."""
        if not self.decided:
            raise InvalidValueError(
                f"HandCheck: the hand is not decided (confidence {self.confidence:.3f}); "
                "refusing to change the geometry"
            )
        return geometry.with_hand(self.hand)

    def summary(self) -> dict[str, Any]:
        """A JSON-able dict of the result (per-tilt arrays as lists)."""
        return {
            "source": self.source,
            "hand": self.hand,
            "leaning_hand": self.leaning_hand,
            "decided": self.decided,
            "confidence": self.confidence,
            "correlation": self.correlation,
            "slope_ratio": self.slope_ratio,
            "slope_offset": self.slope_offset,
            "n_used": self.n_used,
            "vote_fraction": self.vote_fraction,
            "geometry_hand": self.geometry_hand,
            "agrees_with_geometry": self.agrees_with_geometry,
            "warp_check_correlation": self.warp_check_correlation,
            "flags": self.program_flags(),
            "tilt_deg": self.tilt_deg.tolist(),
            "predicted_slope": self.predicted_slope.tolist(),
            "measured_slope": self.measured_slope.tolist(),
            "measured_slope_err": self.measured_slope_err.tolist(),
            "agreement": self.agreement.tolist(),
            "notes": list(self.notes),
        }

    def plot(
        self, path: str | os.PathLike[str] | None = None, *, ax: Any = None, force: bool = False
    ) -> Any:
        """Measured vs predicted slope per tilt, coloured by agreement (matplotlib, lazy).

        Parameters
        ----------
        path : path, optional
            Save a PNG there (atomically; refuses to overwrite unless ``force``).
        ax : matplotlib Axes, optional
            Draw into it; otherwise a new figure is made.

        Returns
        -------
        matplotlib Figure
        """
        from emgeom._validate import require

        require("matplotlib", "plot")
        import matplotlib

        if ax is None and path is not None:
            matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        if ax is None:
            fig, ax = plt.subplots(figsize=(7.0, 4.5), dpi=110)
        else:
            fig = ax.figure
        t = self.tilt_deg
        pred = self.slope_ratio * self.predicted_slope + self.slope_offset
        order = np.argsort(t)
        ax.plot(
            t[order],
            self.predicted_slope[order],
            color="0.6",
            lw=1,
            ls="--",
            label="predicted, h = +1 (tanθ)",
        )
        ax.plot(
            t[order],
            -self.predicted_slope[order],
            color="0.6",
            lw=1,
            ls=":",
            label="predicted, h = −1",
        )
        if np.isfinite(self.slope_ratio):
            ax.plot(t[order], pred[order], color="k", lw=1.2, label="fit k·pred + c")
        colours = {1: "tab:green", -1: "tab:red", 0: "0.7"}
        labels = {1: "agrees", -1: "disagrees", 0: "no vote"}
        for a in (1, -1, 0):
            sel = (self.agreement == a) & np.isfinite(self.measured_slope)
            if np.any(sel):
                ax.errorbar(
                    t[sel],
                    self.measured_slope[sel],
                    yerr=np.nan_to_num(self.measured_slope_err[sel]),
                    fmt="o",
                    ms=4,
                    color=colours[a],
                    label=f"measured ({labels[a]})",
                )
        hand_txt = f"h = {self.hand:+d}" if self.decided else "undecided"
        ax.set_title(
            f"Defocus handedness ({self.source}): {hand_txt}, confidence {self.confidence:.3f}, "
            f"r = {self.correlation:+.3f}",
            fontsize=9,
        )
        ax.set_xlabel("tilt θ (deg, canonical)")
        ax.set_ylabel("defocus slope across the tilt axis (Å/Å)")
        ax.axhline(0, color="0.85", lw=0.8)
        ax.legend(fontsize=7, loc="best")
        if path is not None:
            from emgeom.io._atomic import atomic_output

            with atomic_output(path, force=force) as tmp:
                fig.savefig(tmp, format="png")
        return fig


# --------------------------------------------------------------------------- statistics
def _t_to_confidence(t: float, dof: int) -> float:
    """Two-sided ``1 − p`` for a Student-t statistic (normal approximation with the
    Wallace/Peizer correction ``z = t·(1 − 1/(4ν))/√(1 + t²/(2ν))``).
    """
    if not math.isfinite(t):
        return 1.0 if t != 0 else 0.0
    if dof < 1:
        return 0.0
    z = abs(t) * (1 - 1 / (4 * dof)) / math.sqrt(1 + t * t / (2 * dof))
    return float(math.erf(z / math.sqrt(2)))


def _robust_regression(
    p: NDArray[np.float64], m: NDArray[np.float64], w0: NDArray[np.float64]
) -> tuple[float, float, float, float]:
    """Huber-IRLS weighted fit ``m = k·p + c``; returns (k, c, se_k, corr)."""
    w = w0 / w0.mean()
    k = c = 0.0
    for _ in range(20):
        sw = w.sum()
        pm, mm = (w * p).sum() / sw, (w * m).sum() / sw
        sxx = (w * (p - pm) ** 2).sum()
        if sxx <= 0:
            return 0.0, float(mm), math.inf, 0.0
        k_new = float((w * (p - pm) * (m - mm)).sum() / sxx)
        c = float(mm - k_new * pm)
        res = m - k_new * p - c
        s = 1.4826 * float(np.median(np.abs(res * np.sqrt(w0 / w0.mean())))) + 1e-12
        r = np.abs(res) * np.sqrt(w0 / w0.mean()) / s
        hub = np.where(r <= 1.5, 1.0, 1.5 / np.maximum(r, 1e-12))
        w = (w0 / w0.mean()) * hub
        if abs(k_new - k) < 1e-10 * (1 + abs(k)):
            k = k_new
            break
        k = k_new
    sw = w.sum()
    pm, mm = (w * p).sum() / sw, (w * m).sum() / sw
    sxx = float((w * (p - pm) ** 2).sum())
    syy = float((w * (m - mm) ** 2).sum())
    res = m - k * p - c
    n = p.size
    s2 = float((w * res**2).sum()) / max(n - 2, 1) / (sw / n)
    se = math.sqrt(s2 / (sxx / (sw / n))) if sxx > 0 else math.inf
    corr = float((w * (p - pm) * (m - mm)).sum() / math.sqrt(sxx * syy)) if syy > 0 else 0.0
    return k, c, se, corr


def _decide(
    geometry: TiltGeometry,
    measured: NDArray[np.float64],
    err: NDArray[np.float64],
    *,
    source: str,
    min_confidence: float,
    min_tilts: int,
    min_slope_range: float,
    notes: list[str],
    details: dict[str, Any] | None = None,
) -> HandCheck:
    pred = predicted_slopes(geometry)
    used = np.isfinite(measured) & np.isfinite(err) & (err > 0)
    n = int(used.sum())
    k = c = corr = math.nan
    conf = 0.0
    lean = 0
    if n >= 3:
        p, m, e = pred[used], measured[used], err[used]
        # each tilt's weight: its own error plus a floor (the scatter of a model that is only
        # approximately planar), so that no single very precise tilt dominates
        floor = float(np.median(e))
        w0 = 1.0 / (e**2 + floor**2)
        k, c, se, corr = _robust_regression(p, m, w0)
        t = k / se if se > 0 else (math.inf if k != 0 else 0.0)
        conf = _t_to_confidence(t, n - 2) if np.ptp(p) > 0 else 0.0
        lean = int(np.sign(k)) if k != 0 else 0
    else:
        notes.append(f"only {n} tilt(s) could be measured (need >= 3 for any estimate)")
    prange = float(np.ptp(pred[used])) if n else 0.0
    decided = bool(conf >= min_confidence and n >= min_tilts and prange >= min_slope_range)
    if not decided:
        if n < min_tilts:
            notes.append(f"undecided: {n} usable tilts < min_tilts = {min_tilts}")
        if prange < min_slope_range:
            notes.append(
                f"undecided: predicted slopes span {prange:.3f} < min_slope_range "
                f"{min_slope_range} (too little tilt range: an untilted or flat series cannot "
                "show its hand)"
            )
        if conf < min_confidence:
            notes.append(f"undecided: confidence {conf:.4f} < min_confidence {min_confidence}")
    elif abs(k) < 0.25 or abs(k) > 4:
        notes.append(
            f"measured gradients are {abs(k):.2f}x the predicted magnitude (expected ~1 for a "
            "flat specimen): check pixel size, tilt angles and defocus units"
        )
    agreement = np.zeros(geometry.n_tilts, dtype=np.int8)
    if lean != 0:
        resid_sign = np.sign(measured - (c if math.isfinite(c) else 0.0))
        resid = np.abs(measured - (c if math.isfinite(c) else 0.0))
        # a tilt votes when the prediction is not ~0 and its residual sign is meaningful
        vote = used & (np.abs(pred) > 1e-3) & (resid > 0.5 * np.nan_to_num(err, nan=np.inf))
        agreement[vote] = np.where(resid_sign[vote] == np.sign(lean * pred[vote]), 1, -1)
    if decided and geometry.hand != lean:
        notes.append(
            f"the geometry states h = {geometry.hand:+d} but the data say h = {lean:+d}: "
            f"set RELION rlnTomoHand {-lean:+d}, Warp AreAnglesInverted {lean == 1}, "
            f"ctfphaseflip -invert {'yes' if lean == -1 else 'no'}"
        )
    return HandCheck(
        hand=lean if decided else 0,
        leaning_hand=lean,
        decided=decided,
        confidence=float(conf),
        correlation=float(corr),
        slope_ratio=float(k),
        slope_offset=float(c),
        tilt_deg=np.array(geometry.tilt_deg),
        predicted_slope=pred,
        measured_slope=measured,
        measured_slope_err=err,
        used=used,
        agreement=agreement,
        source=source,
        geometry_hand=geometry.hand,
        notes=tuple(notes),
        details=details or {},
    )


# ----------------------------------------------------------------------- from samples
def _slopes_from_samples(
    geometry: TiltGeometry, s: HandSamples
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.int64]]:
    """Per-tilt slope along ``d_t`` and its standard error from a weighted plane fit."""
    nt = geometry.n_tilts
    dirs = _directions(geometry)
    slope = np.full(nt, np.nan)
    err = np.full(nt, np.nan)
    counts = np.bincount(s.tilt_index, minlength=nt)
    order = np.argsort(s.tilt_index, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(counts)])
    for t in range(nt):
        idx = order[bounds[t] : bounds[t + 1]]
        if idx.size < 3:
            continue
        d = dirs[t]
        q = np.stack([s.x_a[idx], s.y_a[idx]], axis=1)
        u = q @ d
        v = q @ np.array([-d[1], d[0]])
        f = s.defocus_a[idx]
        w = s.weight[idx]
        if np.sum(w > 0) < 3:
            continue
        su, sv = np.sqrt(np.cov(u, aweights=w + 1e-300)), np.sqrt(np.cov(v, aweights=w + 1e-300))
        if not np.isfinite(su) or su < 1e-6:
            continue  # no spread perpendicular to the axis: slope not measurable
        use_v = idx.size >= 4 and sv > 0.05 * su
        cols = [np.ones_like(u), u - u.mean()] + ([v - v.mean()] if use_v else [])
        a = np.stack(cols, axis=1)
        sw = np.sqrt(w)
        coef, *_ = np.linalg.lstsq(a * sw[:, None], f * sw, rcond=None)
        res = f - a @ coef
        dof = idx.size - a.shape[1]
        if dof >= 1:
            s2 = float((w * res**2).sum() / w.sum() * idx.size / dof)
        else:
            s2 = 0.0
        try:
            cov = np.linalg.inv((a * w[:, None]).T @ a / (w.sum() / idx.size))
        except np.linalg.LinAlgError:
            continue
        slope[t] = coef[1]
        # a perfect (model-generated) fit has s2 = 0: keep a tiny error so weights stay finite
        err[t] = math.sqrt(max(s2 * cov[1, 1], 0.0)) + 1e-9 * (1 + abs(coef[1]))
    return slope, err, counts


# ------------------------------------------------------------------------ from CTFFIND5
def _slopes_from_ctffind5(
    geometry: TiltGeometry, results: Sequence[Any], tilt_error_deg: float
) -> tuple[NDArray[np.float64], NDArray[np.float64], list[str]]:
    from emgeom.io.ctffind5 import Ctffind5Tilt

    nt = geometry.n_tilts
    if len(results) != nt:
        raise ShapeError(
            f"ctffind5: expected one CTFFIND5 result per tilt ({nt}), got {len(results)}"
        )
    slope = np.full(nt, np.nan)
    err = np.full(nt, np.nan)
    notes = []
    dirs = _directions(geometry)
    for t, r in enumerate(results):
        if r is None:
            continue
        if isinstance(r, Ctffind5Tilt):
            phi, th = r.axis_deg, r.tilt_deg
        else:
            try:
                phi, th = (float(v) for v in r)
            except (TypeError, ValueError):
                raise InvalidTypeError(
                    f"ctffind5[{t}]: expected a Ctffind5Tilt or (axis_deg, tilt_deg), "
                    f"got {describe(r)}"
                ) from None
        if not (math.isfinite(phi) and math.isfinite(th)) or th < 0 or th >= 90:
            raise InvalidValueError(
                f"ctffind5[{t}]: expected finite axis and 0 <= tilt < 90, got ({phi}, {th})"
            )
        g = math.tan(math.radians(th)) * np.array(
            [math.sin(math.radians(phi)), math.cos(math.radians(phi))]
        )
        slope[t] = float(g @ dirs[t])
        # CTFFIND5's stated accuracy ~3 deg in tilt (abstract) and its 10/5 deg grid
        sec2 = 1.0 / math.cos(math.radians(min(th + tilt_error_deg, 89.0))) ** 2
        err[t] = math.radians(tilt_error_deg) * sec2 + 0.02
    notes.append(
        "ctffind5: slope = tan(theta)*sin(phi + psi) (design note section 2.5; CTFFIND5 "
        "ctffind_tilt.cpp tile defocus = mean + tan(theta)*(x sin(phi) + y cos(phi)))"
    )
    return slope, err, notes


# ------------------------------------------------------------------------- from images
def _load_images(images: Any) -> Any:
    if isinstance(images, str | os.PathLike):
        from emgeom.io.mrc import read_mrc

        return read_mrc(images).data
    return images


def _bin_image(img: NDArray[Any], b: int) -> NDArray[np.float32]:
    """Mean of ``b×b`` blocks (float32): columns then rows by strided adds (several times
    faster than a reshaped mean).
    """
    if b == 1:
        return np.ascontiguousarray(img, dtype=np.float32)
    ny, nx = (img.shape[0] // b) * b, (img.shape[1] // b) * b
    v = img[:ny, :nx]
    cols = np.array(v[:, 0::b], dtype=np.float32)
    for dx in range(1, b):
        cols += v[:, dx::b]
    out = np.array(cols[0::b], dtype=np.float32)
    for dy in range(1, b):
        out += cols[dy::b]
    out *= np.float32(1.0 / (b * b))
    return out


def _slopes_from_images(
    geometry: TiltGeometry,
    images: Any,
    *,
    pixel_size_a: float | None,
    voltage_kv: float,
    cs_mm: float,
    amplitude_contrast: float,
    binning: int | None,
    tile_size: int,
    defocus_search_a: tuple[float, float] | None,
    progress: Callable[[int, int], None] | None,
    n_threads: int | None,
) -> tuple[NDArray[np.float64], NDArray[np.float64], dict[str, Any]]:
    """Per-tilt slope from the images: tile spectra (Rust) → strips parallel to the axis →
    1-D CTF fit per strip (Rust) → weighted robust line fit of defocus vs distance across the
    axis.
    """
    from emgeom import _core
    from emgeom._validate import n_threads_arg
    from emgeom.reference.ctf import electron_wavelength_a

    nthr = n_threads_arg(n_threads)
    stack = _load_images(images)
    if isinstance(stack, np.ndarray):
        arr = stack
    else:
        try:
            arr = np.asarray(stack)
        except (TypeError, ValueError) as exc:
            raise InvalidTypeError(
                f"images: expected a (T, ny, nx) array or an MRC path, got {describe(images)}"
            ) from exc
    if arr.ndim != 3:
        raise ShapeError(f"images: expected a (T, ny, nx) stack, got shape {arr.shape}")
    if arr.dtype.kind not in "fiu":
        raise InvalidTypeError(f"images: expected real numbers, got dtype {arr.dtype}")
    if arr.shape[0] != geometry.n_tilts:
        raise ShapeError(
            f"images: {arr.shape[0]} images for {geometry.n_tilts} tilts in the geometry "
            "(one image per tilt, in the geometry's order)"
        )
    px_in = pixel_size_a if pixel_size_a is not None else geometry.pixel_size_a
    if px_in is None:
        raise InvalidValueError("pixel_size_a: required for images= (the geometry has none)")
    px = as_float(px_in, "pixel_size_a", positive=True)
    lam = electron_wavelength_a(as_float(voltage_kv, "voltage_kv", positive=True))
    cs_a = as_float(cs_mm, "cs_mm", nonnegative=True) * 1e7
    amp = as_float(amplitude_contrast, "amplitude_contrast", nonnegative=True, high=0.99)
    b = max(1, round(3.0 / px)) if binning is None else as_int(binning, "binning", low=1)
    tile = as_int(tile_size, "tile_size", low=32)
    if tile % 2:
        raise InvalidValueError(f"tile_size: expected an even number, got {tile}")
    pxb = px * b
    ny_b, nx_b = arr.shape[1] // b, arr.shape[2] // b
    if min(ny_b, nx_b) < 4 * tile:
        # at least ~7 tiles across the image (tiles overlap by half)
        tile = max(32, min(tile, 1 << int(math.log2(max(min(ny_b, nx_b) // 4, 1)))))
        if min(ny_b, nx_b) < tile:
            raise ShapeError(
                f"images: {arr.shape[1:]} binned by {b} is too small for CTF tiles (>= 32 px)"
            )
    step = tile // 2
    n_bins = tile // 2
    s_nyq = 0.25 / pxb**2
    s_per_bin = s_nyq / n_bins
    d0 = np.asarray(geometry.defocus_a, dtype=np.float64)
    if defocus_search_a is not None:
        lo_d, hi_d = (float(v) for v in defocus_search_a)
        if not (0 < lo_d < hi_d):
            raise InvalidValueError(
                f"defocus_search_a: expected 0 < min < max (Å), got {defocus_search_a!r}"
            )
        ranges = np.tile([lo_d, hi_d], (geometry.n_tilts, 1))
    elif np.all(d0 > 0):
        ranges = np.stack([0.6 * d0, 1.4 * d0], axis=1)
    else:
        ranges = np.tile([5000.0, 60000.0], (geometry.n_tilts, 1))
    # astigmatism held per tilt from the geometry (relative a = (U - V) / (2·mean))
    if geometry.defocus_u_a is not None and geometry.defocus_v_a is not None:
        astig = (geometry.defocus_u_a - geometry.defocus_v_a) / (
            2 * np.maximum(geometry.defocus_a, 1.0)
        )
        ang = np.radians(
            geometry.astigmatism_deg
            if geometry.astigmatism_deg is not None
            else np.zeros(geometry.n_tilts)
        )
    else:
        astig = np.zeros(geometry.n_tilts)
        ang = np.zeros(geometry.n_tilts)
    astig = np.clip(astig, -0.45, 0.45)
    dirs = _directions(geometry)
    strip_prof: list[NDArray[Any]] = []
    strip_u: list[float] = []
    strip_xy: list[NDArray[Any]] = []
    strip_tilt: list[int] = []
    strip_n: list[int] = []
    whole_prof: list[NDArray[Any]] = []
    whole_search: list[list[float]] = []
    whole_tilt: list[int] = []
    tilt_shi: dict[int, float] = {}
    for t in range(geometry.n_tilts):
        ib = _bin_image(arr[t], b)
        # NaN/inf anywhere propagates into the block means: check the (smaller) binned image
        if not np.isfinite(ib).all():
            raise InvalidValueError(
                f"images: image {t} contains NaN/inf values (mask or repair it first)"
            )
        if float(ib.max()) == float(ib.min()):
            if progress is not None:
                progress(t + 1, geometry.n_tilts)
            continue
        prof, cen, _counts = _core.ctf_tile_profiles(
            ib, tile, step, n_bins, float(astig[t]), float(ang[t]), n_threads=nthr
        )
        cen_a = cen * pxb
        u = cen_a @ dirs[t]
        key = np.round(u / (step * pxb)).astype(np.int64)
        dref = float(np.mean(ranges[t]))
        tan = abs(math.tan(math.radians(float(geometry.tilt_deg[t]))))
        # defocus spread inside one tile blurs the rings: stop the fit where the phase error
        # across a tile reaches ~pi/2 (s <= 1/(2·λ·tile·px·tanθ)); the whole-image average
        # (stage 1) is blurred by the spread over the whole image
        s_hi = 0.9 * s_nyq
        s_hi_whole = s_hi
        if tan > 0:
            s_hi = min(s_hi, 1.0 / (2 * lam * tile * pxb * tan))
            s_hi_whole = min(s_hi_whole, 1.0 / (lam * float(np.ptp(u) + tile * pxb) * tan))
        s_lo = max(1.0 / 40.0**2, 1.0 / (lam * dref))
        tilt_shi[t] = max(s_hi, s_lo * 1.5)
        whole_prof.append(prof.mean(axis=0))
        whole_search.append(
            [s_lo, max(s_hi_whole, s_lo * 1.5), float(ranges[t, 0]), float(ranges[t, 1]), dref]
        )
        whole_tilt.append(t)
        for k in np.unique(key):
            sel = key == k
            strip_prof.append(prof[sel].mean(axis=0))
            strip_xy.append(cen_a[sel].mean(axis=0))
            strip_u.append(float(u[sel].mean()))
            strip_tilt.append(t)
            strip_n.append(int(np.count_nonzero(sel)))
        if progress is not None:
            progress(t + 1, geometry.n_tilts)
    details: dict[str, Any] = {
        "binning": b,
        "tile_size": tile,
        "binned_pixel_a": pxb,
        "n_strips": len(strip_prof),
    }
    nan = np.full(geometry.n_tilts, np.nan)
    if not strip_prof:
        return nan, nan.copy(), details

    def fit(profs: list[NDArray[Any]], srch: list[list[float]]) -> tuple[Any, Any]:
        d, sc = _core.ctf_fit_defocus_1d(
            np.ascontiguousarray(np.array(profs, dtype=np.float32)),
            s_per_bin,
            lam,
            cs_a,
            amp,
            np.ascontiguousarray(np.array(srch, dtype=np.float64)),
            25.0,
            n_threads=nthr,
        )
        return np.asarray(d), np.asarray(sc)

    # stage 1: the defocus of each tilt from the average of all its tiles (high SNR);
    # stage 2: each strip searched only within what either hand allows around it
    # (|u|·tanθ + margin, symmetric in the hand), which removes ring-jump outliers
    d_whole, s_whole = fit(whole_prof, whole_search)
    centre = {}
    for t, d, sc, ws in zip(whole_tilt, d_whole, s_whole, whole_search, strict=True):
        centre[t] = float(d) if (np.isfinite(d) and sc > 0.05) else ws[4]
    details["tilt_defocus_a"] = {int(t): centre[t] for t in whole_tilt}
    # stage 2: a joint fit per tilt of (centre defocus, slope across the axis) maximising the
    # summed CTF correlation of all strips at defocus c + m·u_strip (the approach of CTFFIND5's
    # and Warp's tilt fits), with a jackknife over strips for the slope's standard error
    st_arr = np.array(strip_tilt)
    u_arr = np.array(strip_u)
    n_arr = np.array(strip_n, dtype=np.float64)
    prof_arr = np.ascontiguousarray(np.array(strip_prof, dtype=np.float32))
    dstep = 25.0
    starts = np.zeros(len(strip_prof))
    srch = np.zeros((len(strip_prof), 5))
    plan: dict[int, tuple[float, float, float, int]] = {}
    n_steps = 1
    for t in whole_tilt:
        tan = abs(math.tan(math.radians(float(geometry.tilt_deg[t]))))
        m_max = 1.6 * tan + 0.4
        sel = st_arr == t
        umax = float(np.max(np.abs(u_arr[sel]))) if np.any(sel) else 0.0
        half_c = 600.0 + 0.05 * centre[t]
        w = half_c + m_max * umax + 2 * dstep
        plan[t] = (m_max, half_c, centre[t] - w, int(2 * w / dstep) + 2)
        n_steps = max(n_steps, plan[t][3])
        starts[sel] = centre[t] - w
        srch[sel] = [whole_search[whole_tilt.index(t)][0], tilt_shi[t], 1.0, 2.0, centre[t]]
    curves = np.asarray(
        _core.ctf_score_curves(
            prof_arr,
            s_per_bin,
            lam,
            cs_a,
            amp,
            np.ascontiguousarray(srch),
            np.ascontiguousarray(starts),
            dstep,
            n_steps,
            n_threads=nthr,
        )
    )
    slope = np.full(geometry.n_tilts, np.nan)
    err = np.full(geometry.n_tilts, np.nan)
    best_score = np.full(geometry.n_tilts, np.nan)
    n_m = 81
    for t in whole_tilt:
        sel = np.flatnonzero(st_arr == t)
        if sel.size < 3:
            continue
        m_max, half_c, start, _ = plan[t]
        ms = np.linspace(-m_max, m_max, n_m)
        cs = np.arange(centre[t] - half_c, centre[t] + half_c + dstep / 2, dstep)
        # contribution of each strip at (c, m): its curve at c + m·u, weighted by its tiles
        dfq = cs[None, :, None] + ms[None, None, :] * u_arr[sel, None, None]
        pos = (dfq - start) / dstep
        i0 = np.clip(np.floor(pos).astype(np.int64), 0, n_steps - 2)
        fr = np.clip(pos - i0, 0.0, 1.0)
        cv = curves[sel]
        rows = np.arange(sel.size)[:, None, None]
        contrib = (cv[rows, i0] * (1 - fr) + cv[rows, i0 + 1] * fr) * n_arr[sel, None, None]
        total = contrib.sum(axis=0)
        k = int(np.argmax(total))
        ic, im = np.unravel_index(k, total.shape)
        slope[t] = ms[im]
        best_score[t] = float(total[ic, im] / n_arr[sel].sum())
        # jackknife over strips
        loo = []
        for j in range(sel.size):
            tj = total - contrib[j]
            loo.append(ms[np.unravel_index(int(np.argmax(tj)), tj.shape)[1]])
        loo_a = np.array(loo)
        jk = math.sqrt((sel.size - 1) / sel.size * float(np.sum((loo_a - loo_a.mean()) ** 2)))
        # grid resolution floor; a slope at the edge of the search range is unreliable
        err[t] = max(jk, (ms[1] - ms[0]) / 2)
        if im in (0, n_m - 1) or best_score[t] <= 0.02:
            slope[t] = err[t] = np.nan
    details["tilt_fit_score"] = best_score.tolist()
    details["strip_tilt"] = strip_tilt
    details["strip_u_a"] = strip_u
    return slope, err, details


# ---------------------------------------------------------------------------- check_hand
def check_hand(
    geometry: TiltGeometry,
    *,
    samples: Any = None,
    images: Any = None,
    ctffind5: Sequence[Any] | None = None,
    pixel_size_a: float | None = None,
    voltage_kv: float = 300.0,
    cs_mm: float = 2.7,
    amplitude_contrast: float = 0.07,
    binning: int | None = None,
    tile_size: int = 256,
    defocus_search_a: tuple[float, float] | None = None,
    min_confidence: float = 0.999,
    min_tilts: int = 5,
    min_slope_range: float = 0.2,
    ctffind5_tilt_error_deg: float = 3.0,
    progress: Callable[[int, int], None] | None = None,
    n_threads: int | None = None,
) -> HandCheck:
    """Decide a tilt series' defocus handedness from measured defocus.

    Give exactly one source of measurements.

    Parameters
    ----------
    geometry : TiltGeometry
        Tilt angles (canonical sign), tilt axes and shifts of the series; its ``hand`` is what
        is being checked (reported as ``geometry_hand``), not used for the decision.
    samples : HandSamples, mapping or (N, 4) array, optional
        Defocus at known image positions: ``[tilt_index, x_a, y_a, defocus_a]`` per row (Å;
        positions in the raw tilt image, any origin). E.g. a Warp/RELION sub-tilt particle
        table (:func:`read_subtilt_star`) or Warp's spatially resolved per-movie GridCTF.
    images : array (T, ny, nx) or path to an MRC stack, optional
        The tilt series itself (raw, unaligned images in the geometry's tilt order). Tile-wise
        power spectra and a 1-D CTF fit per strip parallel to the tilt axis (Rust,
        :mod:`emgeom.tilt._images`); needs ``pixel_size_a``.
    ctffind5 : sequence of Ctffind5Tilt or (axis_deg, tilt_deg), optional
        CTFFIND5's per-image sample-tilt fits, one per tilt (None for a missing one).
    pixel_size_a : float
        Pixel size of ``images`` (Å). Defaults to ``geometry.pixel_size_a``.
    voltage_kv, cs_mm, amplitude_contrast : float
        Optics for ``images`` (kV, mm, fraction).
    binning : int, optional
        Image binning before the CTF fit (default: chosen so that the binned pixel is ≥ 2.5 Å).
    tile_size : int
        Tile size in binned pixels (power of two recommended), tiles overlap by half.
    defocus_search_a : (min, max), optional
        Defocus search range in Å for ``images`` (default around the geometry's defocus, or
        5000–60000 Å when the geometry has none).
    min_confidence : float
        Confidence needed to decide (default 0.999).
    min_tilts : int
        Tilts with a measured slope needed to decide (default 5).
    min_slope_range : float
        Minimum spread of the predicted slopes ``tanθ`` over the used tilts (default 0.2,
        about ±6°): an untilted series is never decided.
    ctffind5_tilt_error_deg : float
        Assumed CTFFIND5 tilt error (default 3°, the paper's stated accuracy).
    progress : callable(done, total), optional
        Called after each tilt image is processed (``images`` only).
    n_threads : int, optional
        Worker threads for the Rust kernels (default: all cores).

    Returns
    -------
    HandCheck

    Raises
    ------
    InvalidTypeError, InvalidValueError, ShapeError
        No or several sources; mismatched counts; NaN images; bad parameters.
    """
    if not isinstance(geometry, TiltGeometry):
        raise InvalidTypeError(f"geometry: expected a TiltGeometry, got {describe(geometry)}")
    given = [
        n
        for n, v in (("samples", samples), ("images", images), ("ctffind5", ctffind5))
        if v is not None
    ]
    if len(given) != 1:
        raise InvalidValueError(
            f"check_hand: give exactly one of samples=, images=, ctffind5= (got {given or 'none'})"
        )
    min_confidence = as_float(min_confidence, "min_confidence", low=0.5, high=1.0)
    min_tilts = as_int(min_tilts, "min_tilts", low=3)
    min_slope_range = as_float(min_slope_range, "min_slope_range", nonnegative=True)
    notes: list[str] = []
    details: dict[str, Any] = {}
    if samples is not None:
        s = _as_samples(samples, geometry.n_tilts)
        slope, err, counts = _slopes_from_samples(geometry, s)
        details["samples_per_tilt"] = counts.tolist()
        source = "samples"
    elif ctffind5 is not None:
        if isinstance(ctffind5, str | bytes | os.PathLike):
            raise InvalidTypeError(
                "ctffind5: expected a sequence of results; read files with "
                "emgeom.io.ctffind5.read_ctffind5_tilt_series first"
            )
        tol = as_float(ctffind5_tilt_error_deg, "ctffind5_tilt_error_deg", positive=True)
        slope, err, n5 = _slopes_from_ctffind5(geometry, list(ctffind5), tol)
        notes += n5
        source = "ctffind5"
    else:
        slope, err, det = _slopes_from_images(
            geometry,
            images,
            pixel_size_a=pixel_size_a,
            voltage_kv=voltage_kv,
            cs_mm=cs_mm,
            amplitude_contrast=amplitude_contrast,
            binning=binning,
            tile_size=tile_size,
            defocus_search_a=defocus_search_a,
            progress=progress,
            n_threads=n_threads,
        )
        details.update(det)
        source = "images"
    n_missing = int(np.count_nonzero(~np.isfinite(slope)))
    if n_missing:
        notes.append(f"{n_missing} of {geometry.n_tilts} tilts had no measurable slope")
    return _decide(
        geometry,
        slope,
        err,
        source=source,
        min_confidence=min_confidence,
        min_tilts=min_tilts,
        min_slope_range=min_slope_range,
        notes=notes,
        details=details,
    )


# --------------------------------------------------------------- Warp sub-tilt tables
def _euler_relion(
    rot: NDArray[np.float64], tilt: NDArray[np.float64], psi: NDArray[np.float64]
) -> NDArray[np.float64]:
    """RELION ``Euler_angles2matrix`` (``src/euler.cpp``), degrees → (N, 3, 3); ``A`` maps
    reference coordinates into the image frame (projection ``image = A·ref``).
    """
    a, b, g = np.radians(rot), np.radians(tilt), np.radians(psi)
    ca, sa, cb, sb, cg, sg = np.cos(a), np.sin(a), np.cos(b), np.sin(b), np.cos(g), np.sin(g)
    cc, cs, sc, ss = cb * ca, cb * sa, sb * ca, sb * sa
    m = np.empty((a.size, 3, 3))
    m[:, 0, 0] = cg * cc - sg * sa
    m[:, 0, 1] = cg * cs + sg * ca
    m[:, 0, 2] = -cg * sb
    m[:, 1, 0] = -sg * cc - cg * sa
    m[:, 1, 1] = -sg * cs + cg * ca
    m[:, 1, 2] = sg * sb
    m[:, 2, 0] = sc
    m[:, 2, 1] = ss
    m[:, 2, 2] = cb
    return m


@dataclass(frozen=True)
class SubtiltTable:
    """What :func:`read_subtilt_star` derives from a Warp/RELION sub-tilt particle table."""

    geometry: TiltGeometry
    samples: HandSamples
    micrographs: tuple[str, ...]
    axis_spread_deg: float
    notes: tuple[str, ...]


def read_subtilt_star(
    path: str | os.PathLike[str], *, pixel_size_a: float | None = None
) -> SubtiltTable:
    """Geometry and defocus samples from a sub-tilt particle table (Warp's RELION export).

    Each row is one particle in one tilt image (``_rlnMicrographName``), with its own
    ``_rlnDefocusU/V`` (Å), ``_rlnCoordinateX/Y`` (pixels in that image),
    ``_rlnAngleRot/Tilt/Psi`` (the particle's orientation in that image) and
    ``_rlnCtfScalefactor`` (Warp writes ``cos(tilt)``), grouped per particle by
    ``_rlnGroupName`` (or ``_rlnImageName`` stack). No tilt angles or tilt axis are stored, so
    they are derived from the data: the particle orientation in tilt ``t`` is
    ``A_t = R_t·A_p`` (RELION's ``A`` maps the reference into the image), hence
    ``A_t·A_0ᵀ = R_t·R_0ᵀ = Rz(ψ)·Ry(θ_t − θ_0)·Rz(−ψ)``: a rotation about the in-plane axis
    ``(−sinψ, cosψ, 0)``. Its axis gives ψ (median over particles and tilts) and its sense
    gives the sign of θ_t; ``|θ_t| = arccos(CtfScalefactor)`` when present, else the rotation
    angle. The reference tilt is the one with the largest scale factor (≈ 0°). The predicted
    gradient ``tanθ·(cosψ, sinψ)`` is the same for (ψ, θ) and (ψ + 180°, −θ), so the remaining
    axis ambiguity does not affect the hand decision.

    The returned geometry has ``hand = +1`` as a placeholder (the file states none); the
    samples are ``(tilt_index, x, y, (DefocusU + DefocusV)/2)`` with positions in Å.

    Parameters
    ----------
    path : path
    pixel_size_a : float, optional
        Pixel size of the tilt images (default ``_rlnDetectorPixelSize`` ×
        10000/``_rlnMagnification``, or ``_rlnImagePixelSize``).
    """
    from emgeom.io._tilt_star import read_star

    p = Path(path)
    blocks = read_star(p)
    tb = next((b for b in blocks.values() if b.is_loop and b.has("rlnMicrographName")), None)
    if tb is None:
        raise FileFormatError(f"{p}: no particle table with _rlnMicrographName")
    need = [
        "rlnDefocusU",
        "rlnCoordinateX",
        "rlnCoordinateY",
        "rlnAngleRot",
        "rlnAngleTilt",
        "rlnAnglePsi",
    ]
    miss = [c for c in need if not tb.has(c)]
    if miss:
        raise FileFormatError(f"{p}: missing columns {['_' + m for m in miss]}")

    def col(lab: str) -> NDArray[np.float64]:
        try:
            return np.array([float(v) for v in tb.column(lab)])
        except ValueError:
            raise FileFormatError(f"{p}: column _{lab} is not numeric") from None

    du = col("rlnDefocusU")
    dv = col("rlnDefocusV") if tb.has("rlnDefocusV") else du
    x, y = col("rlnCoordinateX"), col("rlnCoordinateY")
    rot, tilt, psi = col("rlnAngleRot"), col("rlnAngleTilt"), col("rlnAnglePsi")
    scale = col("rlnCtfScalefactor") if tb.has("rlnCtfScalefactor") else None
    if pixel_size_a is not None:
        px = as_float(pixel_size_a, "pixel_size_a", positive=True)
    elif tb.has("rlnImagePixelSize"):
        px = float(col("rlnImagePixelSize")[0])
    elif tb.has("rlnDetectorPixelSize") and tb.has("rlnMagnification"):
        px = float(col("rlnDetectorPixelSize")[0] * 1e4 / col("rlnMagnification")[0])
    else:
        raise InvalidValueError(f"pixel_size_a: {p} has no pixel size; pass pixel_size_a=")
    mics = tb.column("rlnMicrographName")
    names = sorted(set(mics), key=lambda s: (len(s), s))
    mi = {m: i for i, m in enumerate(names)}
    tidx = np.array([mi[m] for m in mics])
    if tb.has("rlnGroupName"):
        groups = tb.column("rlnGroupName")
    elif tb.has("rlnImageName"):
        groups = [v.split("@", 1)[-1] for v in tb.column("rlnImageName")]
    else:
        raise FileFormatError(f"{p}: cannot group rows per particle (_rlnGroupName)")
    a = _euler_relion(rot, tilt, psi)
    nt = len(names)
    # reference tilt: the largest scale factor (cos tilt) or, without it, the tilt that the
    # most particles have (orientation change is measured relative to it)
    if scale is not None:
        sc_t = np.array([np.mean(scale[tidx == t]) for t in range(nt)])
        ref_t = int(np.argmax(sc_t))
    else:
        ref_t = int(np.argmax(np.bincount(tidx, minlength=nt)))
    axes, angles, tix = [], [], []
    for g in sorted(set(groups)):
        rows = [i for i, gg in enumerate(groups) if gg == g]
        ref = [i for i in rows if tidx[i] == ref_t]
        if not ref:
            continue
        a0 = a[ref[0]]
        for i in rows:
            q = a[i] @ a0.T
            c = np.clip((np.trace(q) - 1) / 2, -1, 1)
            w = math.degrees(math.acos(c))
            v = np.array([q[2, 1] - q[1, 2], q[0, 2] - q[2, 0], q[1, 0] - q[0, 1]])
            nv = np.linalg.norm(v)
            if w < 1.0 or nv < 1e-9:
                continue
            axes.append(v / nv)
            angles.append(w)
            tix.append(tidx[i])
    if len(axes) < 3:
        raise FileFormatError(f"{p}: too few particles seen in several tilts to derive the axis")
    ax_arr = np.array(axes)
    # in-plane axis (−sinψ, cosψ): fold the sign so all axes point into one half-plane
    ref_dir = ax_arr[np.argmax(np.abs(ax_arr[:, :2]).sum(1))][:2]
    sgn = np.sign(ax_arr[:, :2] @ ref_dir)
    folded = ax_arr[:, :2] * sgn[:, None]
    mean_dir = folded.mean(0)
    psi_axis = math.degrees(math.atan2(-mean_dir[0], mean_dir[1]))
    md = mean_dir / np.linalg.norm(mean_dir)
    dev = np.arctan2(folded[:, 0] * md[1] - folded[:, 1] * md[0], folded @ md)
    spread = float(np.degrees(np.std(dev)))
    out_of_plane = float(np.median(np.abs(ax_arr[:, 2])))
    theta_sign = np.zeros(nt)
    theta_mag = np.zeros(nt)
    tix_a = np.array(tix)
    ang_a = np.array(angles)
    for t in range(nt):
        sel = tix_a == t
        if np.any(sel):
            theta_sign[t] = np.sign(np.median(sgn[sel]))
            theta_mag[t] = float(np.median(ang_a[sel]))
    if scale is not None:
        theta_mag = np.degrees(np.arccos(np.clip(sc_t / sc_t.max(), -1, 1)))
    undetermined = [names[t] for t in range(nt) if theta_sign[t] == 0 and t != ref_t]
    theta = theta_sign * theta_mag
    notes = [
        f"tilt axis psi = {psi_axis:.2f} deg derived from per-tilt particle orientations "
        f"(spread {spread:.2f} deg, median out-of-plane axis component {out_of_plane:.3f})",
        "|tilt| from _rlnCtfScalefactor = cos(tilt)"
        if scale is not None
        else "|tilt| from the orientation change",
        f"reference (0 deg) tilt image: {names[ref_t]}",
        "hand: not stated by the file (placeholder +1); measure it with check_hand",
    ]
    if undetermined:
        notes.append(f"tilt sign undetermined (no particle orientation) for {undetermined}")
    if out_of_plane > 0.3:
        warnings.warn(
            f"{p}: per-tilt rotations are not about an in-plane axis (median |z| "
            f"{out_of_plane:.2f}); the derived tilt geometry is unreliable",
            LossyConversionWarning,
            stacklevel=2,
        )
    geometry = TiltGeometry(
        theta,
        psi_axis,
        np.array([np.mean(((du + dv) / 2)[tidx == t]) for t in range(nt)]),
        hand=+1,
        pixel_size_a=px,
        source=f"subtilt:{p}",
        notes=notes,
        names=names,
    )
    samples = HandSamples(
        tilt_index=tidx.astype(np.int64),
        x_a=x * px,
        y_a=y * px,
        defocus_a=(du + dv) / 2,
    )
    return SubtiltTable(
        geometry=geometry,
        samples=samples,
        micrographs=tuple(names),
        axis_spread_deg=spread,
        notes=tuple(notes),
    )


# --------------------------------------------------------------- Warp per-movie GridCTF
def samples_from_warp_movies(
    movie_xmls: Sequence[str | os.PathLike[str]],
    image_shape_px: tuple[int, int],
    pixel_size_a: float,
) -> HandSamples:
    """Defocus samples from Warp's per-tilt-movie spatially resolved ``GridCTF`` (``fs_ctf``
    with a grid of at least 2×2×1), one movie XML per tilt in the geometry's order.

    Warp's own check (``WarpTools/Commands/Tiltseries/DefocusHandTiltseries.cs``) interpolates
    ``Movie.GridCTFDefocus`` at image positions normalised by the image size (``CubicGrid``
    coordinates in [0, 1]: node ``i`` of ``W`` sits at ``i/(W−1)`` of the image width). The node
    positions are returned in Å from the image centre, the values (µm) as defocus in Å.

    Parameters
    ----------
    movie_xmls : paths
        Warp movie XML files (UTF-8 or UTF-16), one per tilt.
    image_shape_px : (ny, nx)
        Size of the tilt images in pixels of ``pixel_size_a`` (not stored in movie XMLs).
    pixel_size_a : float
        Pixel size (Å).
    """
    import xml.etree.ElementTree as ET

    from emgeom.errors import EmgeomFileError
    from emgeom.io.warp_xml import _decode

    px = as_float(pixel_size_a, "pixel_size_a", positive=True)
    if isinstance(image_shape_px, str | bytes) or len(image_shape_px) != 2:
        raise InvalidValueError(f"image_shape_px: expected (ny, nx), got {image_shape_px!r}")
    ny = as_int(image_shape_px[0], "image_shape_px[0]", low=1)
    nx = as_int(image_shape_px[1], "image_shape_px[1]", low=1)
    ti: list[int] = []
    xs: list[float] = []
    ys: list[float] = []
    ds: list[float] = []
    for t, path in enumerate(movie_xmls):
        pth = Path(path)
        try:
            raw = pth.read_bytes()
        except FileNotFoundError:
            raise EmgeomFileError(f"{pth}: file not found") from None
        try:
            root = ET.fromstring(_decode(raw, pth))
        except ET.ParseError as exc:
            raise FileFormatError(f"{pth}: not valid XML ({exc})") from None
        grid = root.find("GridCTF")
        if grid is None:
            raise FileFormatError(f"{pth}: no <GridCTF> (run Warp fs_ctf with a 2x2x1 grid)")
        w, h = int(grid.get("Width", "1")), int(grid.get("Height", "1"))
        if w * h < 2:
            raise FileFormatError(
                f"{pth}: GridCTF is {w}x{h}: no local defocus (run fs_ctf with a 2x2x1 grid)"
            )
        for node in grid.findall("Node"):
            if int(node.get("Z", "0")) != 0:
                continue
            gx, gy = int(node.get("X", "0")), int(node.get("Y", "0"))
            fx = gx / (w - 1) if w > 1 else 0.5
            fy = gy / (h - 1) if h > 1 else 0.5
            ti.append(t)
            xs.append((fx - 0.5) * nx * px)
            ys.append((fy - 0.5) * ny * px)
            ds.append(float(node.get("Value", "nan")) * 1e4)
    if not ti:
        raise InvalidValueError("movie_xmls: no files given")
    return _build_samples(np.array(ti), np.array(xs), np.array(ys), np.array(ds), None)
