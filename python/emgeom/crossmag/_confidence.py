"""Confidence of an alignment result (a leaf module).

:func:`ramp_confidence` is the monotone map of quality measures to [0, 1] used by both
``align`` and ``find_similarity``: each measure contributes a piecewise-linear ramp that is
exactly 0.5 at its ``found`` threshold, and the confidence is the smallest of them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "FEATURES",
    "TOLERANCE_PX",
    "calibrated_confidence",
    "features",
    "ramp",
    "ramp_confidence",
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
# calibrated confidence of `align`: P(centre within TOLERANCE_PX reference px of the truth)

#: The tolerance (reference pixels) of the calibrated confidence.
TOLERANCE_PX = 1.5

#: Feature names, in the order of the model's weights (after the intercept).
FEATURES = (
    "log_significance",
    "log_peak_ratio",
    "overlap",
    "log_center_sigma",
    "at_search_edge",
    "searched",
)

_MODEL_FILE = Path(__file__).with_name("confidence_model.json")


def features(
    significance: float,
    peak_ratio: float,
    overlap: float,
    center_sigma: float,
    at_search_edge: bool,
    searched: bool,
) -> NDArray[np.float64]:
    """The model's inputs (transformed measures of an ``align`` result)."""
    return np.array(
        [
            math.log(max(significance, 1e-3)),
            math.log(max(min(peak_ratio, 100.0) - 1.0, 1e-3)),
            min(max(overlap, 0.0), 1.0),
            math.log(max(center_sigma, 1e-3)),
            float(at_search_edge),
            float(searched),
        ]
    )


@lru_cache(maxsize=1)
def _model() -> tuple[NDArray[np.float64], NDArray[np.float64]] | None:
    """(weights with intercept first, feature clip bounds) from the shipped JSON, or None."""
    try:
        data = json.loads(_MODEL_FILE.read_text())
    except (OSError, ValueError):
        return None
    if tuple(data.get("features", ())) != FEATURES:
        return None
    return np.asarray(data["weights"], dtype=np.float64), np.asarray(data["clip"], dtype=np.float64)


def calibrated_confidence(x: NDArray[np.float64]) -> float | None:
    """Logistic model ``1 / (1 + exp(−w·[1, x]))`` fitted on a generated calibration set
    (``tests/_crossmag_calibration.py``); None when the model file is missing.
    """
    m = _model()
    if m is None:
        return None
    w, clip = m
    xc = np.clip(x, clip[0], clip[1])
    z = float(w[0] + w[1:] @ xc)
    return float(1.0 / (1.0 + math.exp(-min(max(z, -50.0), 50.0))))
