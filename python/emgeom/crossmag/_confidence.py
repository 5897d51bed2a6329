"""Confidence of an alignment result (a leaf module).

``align`` and ``find_similarity`` report a calibrated ``confidence``: the probability that the
centre lies within :data:`TOLERANCE_PX` reference pixels of the truth, from small logistic
models of their quality measures, fitted on generated calibration pairs
(``python -m tests._crossmag_calibration fit``) and shipped as data
(``confidence_model.json``, one entry per function, with its feature names and clip bounds).
:func:`ramp_confidence` is the monotone map of the measures to [0, 1] (0.5 at each ``found``
threshold) that stands in where no model applies (``align(refine=False)``, a missing file).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "FEATURES",
    "NO_AREA",
    "SIMILARITY_FEATURES",
    "TOLERANCE_PX",
    "LogisticModel",
    "Measures",
    "align_features",
    "align_measures",
    "calibrated_confidence",
    "calibrated_similarity_confidence",
    "error_bar_bound",
    "features",
    "gated_confidence",
    "load_model",
    "ramp",
    "ramp_confidence",
    "similarity_features",
]


def ramp(x: float, floor: float, threshold: float, good: float) -> float:
    """0 at ``floor``, 0.5 at ``threshold``, 1 at ``good`` (linear in between, clipped)."""
    if x >= threshold:
        return 0.5 + 0.5 * float(np.clip((x - threshold) / (good - threshold), 0.0, 1.0))
    return 0.5 * float(np.clip((x - floor) / (threshold - floor), 0.0, 1.0))


def ramp_confidence(parts: Iterable[tuple[float, float, float, float]]) -> float:
    """The smallest :func:`ramp` over ``(value, floor, threshold, good)`` tuples."""
    return min(ramp(*p) for p in parts)


# ----------------------------------------------------------------------------------------------
# calibrated confidence: P(centre within TOLERANCE_PX reference px of the truth)

#: The tolerance (reference pixels) of the calibrated confidence.
TOLERANCE_PX = 1.5

#: Feature names of ``align``'s model, in the order of its weights (after the intercept). The
#: residual correlation area counts only when the scale was free: with the scale held the
#: refinement stops after its first least-squares round, whose residual correlation depends
#: on the noise level and content more than on the match (hole-edge scenario, right answers:
#: area ≈ 2 with the scale free; 6–10 held at low noise, 2.5–4 held at high noise).
FEATURES = (
    "log_significance",
    "log_peak_ratio",
    "overlap",
    "log_center_sigma",
    "at_search_edge",
    "prediction_ccc",
    "log_residual_corr_area",
    "scale_held",
    "refined",
)

#: Residual correlation area (reference px²) standing in when the refinement did not run or
#: left the search's peak: nothing is known to be explained (the refinement's largest window
#: is 7 × 7 = 49 px²).
NO_AREA = 49.0

_MODEL_FILE = Path(__file__).with_name("confidence_model.json")


class Measures(Protocol):
    """The measures of a result that :func:`align_features` reads (read-only)."""

    @property
    def significance(self) -> float: ...
    @property
    def peak_ratio(self) -> float: ...
    @property
    def overlap(self) -> float: ...
    @property
    def center_sigma(self) -> float: ...
    @property
    def at_search_edge(self) -> bool: ...
    @property
    def prediction_ccc(self) -> float: ...
    @property
    def residual_corr_area(self) -> float: ...
    @property
    def scale_sigma(self) -> float: ...


def features(
    significance: float,
    peak_ratio: float,
    overlap: float,
    center_sigma: float,
    at_search_edge: bool,
    prediction_ccc: float,
    residual_corr_area: float,
    scale_free: bool,
) -> NDArray[np.float64]:
    """The inputs of ``align``'s model (:data:`FEATURES`; transformed measures of a result,
    see :class:`~emgeom.crossmag.AlignmentResult`). ``residual_corr_area`` < 1 (0: the
    refinement did not run or left the search's peak) sets ``refined`` = 0, the prediction CCC
    to 0 and the area to :data:`NO_AREA`; ``scale_free``: the refinement fitted the scale.
    """
    refined = residual_corr_area >= 1.0
    log_area = math.log(min(residual_corr_area, NO_AREA) if refined else NO_AREA)
    return np.array(
        [
            math.log(max(significance, 1e-3)),
            math.log(max(min(peak_ratio, 100.0) - 1.0, 1e-3)),
            min(max(overlap, 0.0), 1.0),
            math.log(max(center_sigma, 1e-3)),
            float(at_search_edge),
            min(max(prediction_ccc, -1.0), 1.0) if refined else 0.0,
            log_area if scale_free else 0.0,
            float(not scale_free),
            float(refined),
        ]
    )


def align_measures(res: Measures) -> tuple[float, float, float, float, bool, float, float, bool]:
    """The arguments of :func:`features` read from an ``align`` result (the scale was free
    when ``scale_sigma`` > 0).
    """
    return (
        res.significance,
        res.peak_ratio,
        res.overlap,
        res.center_sigma,
        res.at_search_edge,
        res.prediction_ccc,
        res.residual_corr_area,
        res.scale_sigma > 0,
    )


def align_features(res: Measures) -> NDArray[np.float64]:
    """:func:`features` of an ``align`` result."""
    return features(*align_measures(res))


@dataclass(frozen=True)
class LogisticModel:
    """A shipped logistic model: ``P = 1 / (1 + exp(−w·[1, clip(x)]))``."""

    features: tuple[str, ...]
    weights: NDArray[np.float64]  # intercept first
    clip: NDArray[np.float64]  # (2, n_features): lower and upper bounds of each feature

    def __call__(self, x: NDArray[np.float64]) -> float:
        xc = np.clip(x, self.clip[0], self.clip[1])
        z = float(self.weights[0] + self.weights[1:] @ xc)
        return float(1.0 / (1.0 + math.exp(-min(max(z, -50.0), 50.0))))


@lru_cache(maxsize=4)
def load_model(name: str, feature_names: tuple[str, ...]) -> LogisticModel | None:
    """The model ``name`` of the shipped JSON, or None when the file or the model is missing or
    its feature list differs from ``feature_names``.
    """
    try:
        data = json.loads(_MODEL_FILE.read_text())[name]
        m = LogisticModel(
            tuple(data["features"]),
            np.asarray(data["weights"], dtype=np.float64),
            np.asarray(data["clip"], dtype=np.float64),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None
    ok = m.features == feature_names and m.weights.shape == (len(feature_names) + 1,)
    return m if ok and m.clip.shape == (2, len(feature_names)) else None


def calibrated_confidence(x: NDArray[np.float64]) -> float | None:
    """``align``'s logistic model (:data:`FEATURES`) fitted on a generated calibration set
    (``python -m tests._crossmag_calibration fit``); None when the model file is missing.
    """
    m = load_model("align", FEATURES)
    return None if m is None else m(x)


def gated_confidence(
    x: NDArray[np.float64], gates: bool, center_sigma: float | None = None
) -> float | None:
    """:func:`calibrated_confidence`, held below 0.5 when a hard gate failed (``gates``
    False) and at most :func:`error_bar_bound` of a measured ``center_sigma``; None when the
    model file is missing.
    """
    c = calibrated_confidence(x)
    if c is None:
        return None
    if center_sigma is not None:
        c = min(c, error_bar_bound(center_sigma))
    return c if gates else min(c, 0.49)


def error_bar_bound(center_sigma: float) -> float:
    """The largest confidence that a centre error bar allows: the probability that a 2-D
    Gaussian error of ``center_sigma`` (reference px, the larger per-axis σ, taken as
    isotropic: the smaller bound) falls within :data:`TOLERANCE_PX`, ``1 − exp(−T²/2σ²)``.

    Even the right peak is not placed within the tolerance when its own error bar is wider:
    the logistic models see ``log_center_sigma`` as one feature among nine and can outweigh
    it (issue-12 check sets, seeds 300–304: two of four found-but-wrong results had a
    refinement σ of 800 px and more, at confidence 0.56–0.60). No right answer there has
    σ above 0.6 px (bound 0.998). 0 for a non-finite or negative σ.
    """
    if not math.isfinite(center_sigma) or center_sigma < 0:
        return 0.0
    if center_sigma == 0:
        return 1.0
    return float(-math.expm1(-0.5 * (TOLERANCE_PX / center_sigma) ** 2))


#: Feature names of ``find_similarity``'s model, in the order of its weights.
SIMILARITY_FEATURES = (
    "log_ccc",
    "log_pose_ratio",
    "overlap",
    "log_peak_z",
    "log_center_sigma",
    "prediction_ccc",
    "log_residual_corr_area",
    "refined",
)


def similarity_features(
    ccc: float,
    pose_ratio: float,
    overlap: float,
    peak_z: float,
    center_sigma: float,
    prediction_ccc: float,
    residual_corr_area: float,
) -> NDArray[np.float64]:
    """The inputs of ``find_similarity``'s model (measures of a
    :class:`~emgeom.crossmag.SimilarityResult`; ``residual_corr_area`` < 1 means that the
    maximum-likelihood refinement did not run, as in :func:`features`).
    """
    refined = residual_corr_area >= 1.0
    return np.array(
        [
            math.log(max(ccc, 1e-3)),
            math.log(max(min(pose_ratio, 100.0) - 1.0, 1e-3)),
            min(max(overlap, 0.0), 1.0),
            math.log(max(peak_z, 1e-3)),
            math.log(max(center_sigma, 1e-3)),
            min(max(prediction_ccc, -1.0), 1.0) if refined else 0.0,
            math.log(min(residual_corr_area, NO_AREA)) if refined else math.log(NO_AREA),
            float(refined),
        ]
    )


def calibrated_similarity_confidence(x: NDArray[np.float64]) -> float | None:
    """``find_similarity``'s logistic model (:data:`SIMILARITY_FEATURES`); None when the model
    file is missing.
    """
    m = load_model("similarity", SIMILARITY_FEATURES)
    return None if m is None else m(x)
