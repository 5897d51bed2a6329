"""The result of the defocus-handedness check (:class:`HandCheck`) and the decision rule.

:func:`decide` regresses the measured per-tilt slopes on the predicted ``h = +1`` slopes over the
tilt series (robust weighted least squares with an offset, which absorbs a constant specimen
pre-tilt just like the mean-centring in Warp's ``ts_defocus_hand --check``,
``WarpTools/Commands/Tiltseries/DefocusHandTiltseries.cs``) and decides
``h = sign(regression slope)`` when it is significant: confidence = ``1 − p`` of the two-sided
test "regression slope = 0" (Student-t approximated by a normal with the Wallace correction), with
at least ``min_tilts`` usable tilts spanning a predicted slope range of at least
``min_slope_range`` (flat or untilted series are therefore never decided).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from emgeom._validate import require
from emgeom.errors import InvalidValueError
from emgeom.io.atomic import atomic_output
from emgeom.model.geometry import TiltGeometry
from emgeom.model.hand_samples import predicted_slopes

__all__ = ["HandCheck", "decide"]


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


def _decision_notes(
    decided: bool,
    n: int,
    prange: float,
    conf: float,
    k: float,
    min_tilts: int,
    min_slope_range: float,
    min_confidence: float,
) -> list[str]:
    """Why the hand is undecided, or a warning about an implausible gradient magnitude."""
    notes: list[str] = []
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
    return notes


def decide(
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
    """The :class:`HandCheck` for measured per-tilt slopes ``measured`` ± ``err`` (Å/Å, NaN where
    not measured); ``notes`` are extended with the reasons of the decision.
    """
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
    notes += _decision_notes(
        decided, n, prange, conf, k, min_tilts, min_slope_range, min_confidence
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
