"""Cross-magnification alignment (SerialEM-style, in Rust): place a higher-magnification image
on a lower-magnification one of the same area.

* :func:`align` — known magnifications (pixel sizes and rotation calibration), with a residual
  scale/rotation search and a maximum-likelihood refinement of (x, y, scale, rotation) that
  reports error bars (``center_sigma``, ``scale_sigma``, ``rotation_sigma_deg``).
* :func:`find_similarity` — unknown rotation and scale (log-polar Fourier–Mellin).
* :func:`correlate` — translation at one sampling (top peaks of a filtered cross-correlation).
* :func:`masked_correlate` — masked normalised cross-correlation (Padfield 2012).
* :func:`compose` — chain alignments through a middle magnification.

Module layout (dependencies point one way, leaves first): ``_geometry`` (rotation, centres,
parabola, sizes, unit scaling) → ``_result`` (:class:`AlignmentResult`), ``_confidence``,
``_correlate`` → ``_search``/``_stages`` (coarse search machinery), ``_refine`` with
``_refine_model`` and ``_refine_stats`` (the shared maximum-likelihood refinement) → ``_known``
(:func:`align`); ``_similarity_sampling``, ``_similarity_result``, ``_fourier_mellin`` and
``_similarity_pose`` → ``_similarity_stages`` → ``_similarity`` (:func:`find_similarity`);
``_ncc``. No module imports this ``__init__``.
"""

from __future__ import annotations

from emgeom.crossmag._correlate import (
    DEFAULT_FILTER,
    CorrelationPeak,
    CorrelationResult,
    correlate,
)
from emgeom.crossmag._known import align
from emgeom.crossmag._ncc import (
    MaskedCorrelationPeak,
    MaskedCorrelationResult,
    masked_correlate,
)
from emgeom.crossmag._result import AlignmentResult, compose
from emgeom.crossmag._similarity import (
    SimilarityCandidate,
    SimilarityResult,
    find_similarity,
)

__all__ = [
    "DEFAULT_FILTER",
    "AlignmentResult",
    "CorrelationPeak",
    "CorrelationResult",
    "MaskedCorrelationPeak",
    "MaskedCorrelationResult",
    "SimilarityCandidate",
    "SimilarityResult",
    "align",
    "compose",
    "correlate",
    "find_similarity",
    "masked_correlate",
]
