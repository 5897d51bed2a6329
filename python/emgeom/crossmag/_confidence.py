"""Confidence of an alignment result (a leaf module).

:func:`ramp_confidence` is the monotone map of quality measures to [0, 1] used by both
``align`` and ``find_similarity``: each measure contributes a piecewise-linear ramp that is
exactly 0.5 at its ``found`` threshold, and the confidence is the smallest of them.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

__all__ = ["ramp", "ramp_confidence"]


def ramp(x: float, floor: float, threshold: float, good: float) -> float:
    """0 at ``floor``, 0.5 at ``threshold``, 1 at ``good`` (linear in between, clipped)."""
    if x >= threshold:
        return 0.5 + 0.5 * float(np.clip((x - threshold) / (good - threshold), 0.0, 1.0))
    return 0.5 * float(np.clip((x - floor) / (threshold - floor), 0.0, 1.0))


def ramp_confidence(parts: Iterable[tuple[float, float, float, float]]) -> float:
    """The smallest :func:`ramp` over ``(value, floor, threshold, good)`` tuples."""
    return min(ramp(*p) for p in parts)
