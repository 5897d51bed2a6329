"""Shared geometry of the cross-magnification package (a leaf: imports nothing of
``emgeom.crossmag``): rotation matrices, image centres, parabolic peak offsets, FFT-friendly
sizes, similarity maps and the power-of-two unit scaling of images.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from emgeom._validate import as_image_range

#: Peak score = CCC · overlap^(1/6) (SerialEM ``ShiftManager.cpp : AutoAlign``); used by
#: ``align``'s search and ``find_similarity``'s candidate scoring alike.
OVERLAP_POWER = 1.0 / 6.0


def rotation(theta_deg: float) -> NDArray[np.float64]:
    """``R(θ) = [[cos θ, −sin θ], [sin θ, cos θ]]`` (θ in degrees, acting on ``(x, y)``)."""
    t = math.radians(theta_deg)
    c, s = math.cos(t), math.sin(t)
    return np.array([[c, -s], [s, c]])


def center_of(shape: tuple[int, ...]) -> NDArray[np.float64]:
    """``(x, y)`` centre ``((nx−1)/2, (ny−1)/2)`` of an image of ``shape = (ny, nx, ...)``."""
    return np.array([(shape[1] - 1) / 2.0, (shape[0] - 1) / 2.0])


def wrap180(a: float) -> float:
    """Angle in (−180, 180]."""
    r = math.fmod(a, 360.0)
    if r <= -180.0:
        r += 360.0
    elif r > 180.0:
        r -= 360.0
    return r


def parabola_offset(y1: float, y2: float, y3: float) -> float:
    """Vertex offset in [−0.5, 0.5] of the parabola through ``(−1, y1), (0, y2), (1, y3)``; 0
    when it is not a maximum or is flat to within 1e-12 of the values (IMOD
    ``parabolicFitPosition``).
    """
    d = y1 + y3 - 2.0 * y2
    if d >= 0 or abs(d) <= 1e-12 * max(abs(y1), abs(y2), abs(y3), 1e-300):
        return 0.0
    return float(np.clip(0.5 * (y1 - y3) / d, -0.5, 0.5))


def quad_vertex(x: NDArray[np.float64], y: NDArray[np.float64]) -> tuple[float, float] | None:
    """Least-squares parabola ``a·x² + b·x + c``: ``(a, −b/(2a))``, or None when ``x`` has fewer
    than 3 distinct values (a rank-deficient fit). Solved on centred, scaled abscissae with
    ``lstsq``: no ``np.polyfit`` RankWarning can leak into users' scripts.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if np.unique(x).size < 3:
        return None
    xm = float(x.mean())
    sc = float(np.abs(x - xm).max())
    u = (x - xm) / sc
    m = np.stack([u * u, u, np.ones_like(u)], axis=1)
    c = np.linalg.lstsq(m, y, rcond=None)[0]
    if not np.all(np.isfinite(c)) or c[0] == 0:
        return None
    a = float(c[0]) / (sc * sc)
    return a, xm - float(c[1]) * sc / (2.0 * float(c[0]))


def nice_size(n: int) -> int:
    """Smallest even m ≥ n with prime factors 2, 3, 5 (mirrors ``fft::nice_size``)."""
    m = max(1, int(n))
    while True:
        if m == 1 or m % 2 == 0:
            r = m
            for f in (2, 3, 5):
                while r % f == 0:
                    r //= f
            if r == 1:
                return m
        m += 1


def similarity_affine(
    scale: float, theta: float, c_from: NDArray[np.float64], c_to: NDArray[np.float64]
) -> NDArray[np.float64]:
    """``x_to = scale·R(θ)·(x_from − c_from) + c_to`` as a 2×3 matrix."""
    lin = scale * rotation(theta)
    return np.hstack([lin, (c_to - lin @ c_from)[:, None]])


def invert_affine(a: NDArray[np.float64]) -> NDArray[np.float64]:
    """The inverse of a 2×3 affine map."""
    inv = np.linalg.inv(a[:, :2])
    return np.hstack([inv, (-inv @ a[:, 2])[:, None]])


def scale_rotation_of(lin: NDArray[np.float64]) -> tuple[float, float]:
    """``(s, θ°)`` of the similarity closest to a 2×2 linear part (``s = √|det|``)."""
    s = float(math.sqrt(abs(np.linalg.det(lin))))
    t = float(math.degrees(math.atan2(lin[1, 0] - lin[0, 1], lin[0, 0] + lin[1, 1])))
    return s, t


def is_constant(a: NDArray[Any]) -> bool:
    """True when an image has no variation relative to its own magnitude (float32 rounding):
    purely relative, so that an image in tiny units (values ~1e-10) is not called constant.
    """
    lo, hi = float(a.min()), float(a.max())
    return hi - lo <= 1e-7 * max(abs(hi), abs(lo))


def unit_exponent(lo: float, hi: float) -> int:
    """The power of two ``e`` that brings the largest |value| of an image with minimum ``lo``
    and maximum ``hi`` into [0.5, 1) with ``image·2^e``, or 0 when that is already within
    [2⁻¹⁶, 2¹⁶] (or the image is all zero). The float32 sums of the correlation overflow for
    values above ~1e19 and lose everything below ~1e-19; scaling by a power of two is exact,
    and a user's units must not decide the answer.
    """
    m = max(-lo, hi)
    if m == 0.0 or 2.0**-16 <= m <= 2.0**16:
        return 0
    return -math.frexp(m)[1]


def unit_scaled(a: NDArray[np.float32], e: int | None = None) -> NDArray[np.float32]:
    """``a·2^e`` (default: ``e`` from ``a``'s range); ``a`` itself, no copy, when ``e`` = 0."""
    e = unit_exponent(float(a.min()), float(a.max())) if e is None else e
    return a if e == 0 else np.ldexp(a, e).astype(np.float32, copy=False)


def as_unit_image(value: ArrayLike, name: str) -> tuple[NDArray[np.float32], int]:
    """A validated float32 ``(y, x)`` image scaled by ``2^e`` (see :func:`unit_exponent`;
    the range comes from the validation, no extra pass), and ``e``.
    """
    img, lo, hi = as_image_range(value, name, allow_stack=False, dtype=np.float32)
    e = unit_exponent(lo, hi)
    return unit_scaled(img, e), e
