"""Log-polar transforms (Rust kernels), the building block of Fourier–Mellin registration.

Coordinate conventions (all functions here)
-------------------------------------------
* Input images are numpy ``(y, x)`` arrays (y = row, x = column); pixel centres sit on integer
  indices, so the centre of an ``(ny, nx)`` image is ``((nx − 1)/2, (ny − 1)/2)`` as ``(x, y)``.
* The output is ``(n_angle, n_radius)``: **axis 0 = angle, axis 1 = log-radius** (the layout of
  ``cv2.warpPolar`` and ``skimage.transform.warp_polar``).
* Angle of row ``i``: ``θ_i = span · i / n_angle`` with ``span = 360°`` for images
  (:func:`log_polar`) and ``180°`` for half spectra (:func:`log_polar_spectrum`, Hermitian
  symmetry). θ is measured from the +x axis towards the +y axis: with row 0 at the top of the
  display, **θ increases clockwise as displayed** (the sense of ``R(θ)`` in every emgeom affine,
  e.g. :attr:`emgeom.crossmag.AlignmentResult.rotation_deg`). Consequently an image rotated by
  ``+α`` in that sense (``moving(x) = reference(R(α)ᵀ x)`` about the centre) has its log-polar
  shifted by ``+α`` along axis 0: ``lp_moving[i] = lp_reference[i − α/Δθ]``.
* Radius of column ``j``: ``r_j = r_min · (r_max / r_min)^(j / (n_radius − 1))`` (both ends
  included); pixels for images, cycles/pixel for spectra. An image magnified by ``k`` about the
  centre has its log-polar shifted by ``+ln(k) / Δ`` columns, ``Δ = ln(r_max/r_min)/(n_radius−1)``.
* Sample ``(i, j)`` of :func:`log_polar` reads the image at
  ``(x, y) = (cx + r_j cos θ_i, cy + r_j sin θ_i)``.
* Interpolation: ``order=1`` bilinear, ``order=3`` Keys cubic convolution (a = −0.5, as
  :func:`emgeom.resample.warp_affine`). Neighbours outside the image count as zero (zero
  padding): samples beyond the border fade to 0 over one pixel and are 0 further out.

Compared with the peers: ``cv2.warpPolar(img, (n_radius, n_angle), (cx, cy), maxR,
WARP_POLAR_LOG)`` has the same axis layout and angle sense but its radius grid is
``exp(j · ln(maxR) / n_radius)`` (starts at 1 px, excludes maxR); ``skimage.transform.warp_polar``
has the same angle sense and starts its log radius at 1 px as well. emgeom lets you choose
``r_min`` and includes both ends.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from emgeom import _core
from emgeom._validate import (
    as_bool,
    as_float,
    as_image,
    as_int,
    as_matrix,
    as_shape2,
    check_alloc,
    n_threads_arg,
)
from emgeom.errors import InvalidValueError, ShapeError

__all__ = ["log_polar", "log_polar_grid", "log_polar_spectrum"]


def _order_arg(order: Any) -> Literal[1, 3]:
    o = as_int(order, "order")
    if o not in (1, 3):
        raise InvalidValueError(f"order: expected 1 (bilinear) or 3 (bicubic), got {order!r}")
    return 1 if o == 1 else 3


def log_polar_grid(
    output_shape: tuple[int, int], r_min: float, r_max: float, *, half: bool = False
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The sampling grid of :func:`log_polar` / :func:`log_polar_spectrum`.

    Parameters
    ----------
    output_shape : (n_angle, n_radius)
        Output shape.
    r_min, r_max : float
        Radius range (pixels for images, cycles/pixel for spectra), ``0 < r_min ≤ r_max``.
    half : bool
        ``True`` for the half-plane spectrum grid (angles over 180°), else 360°.

    Returns
    -------
    angles_deg : ndarray (n_angle,)
        θ of each output row in degrees (clockwise as displayed, from +x).
    radii : ndarray (n_radius,)
        Radius of each output column.
    """
    na, nr = as_shape2(output_shape, "output_shape")
    lo = as_float(r_min, "r_min", positive=True)
    hi = as_float(r_max, "r_max", positive=True)
    if hi < lo:
        raise InvalidValueError(f"r_max: must be >= r_min ({lo}), got {hi}")
    span = 180.0 if as_bool(half, "half") else 360.0
    angles = span * np.arange(na, dtype=np.float64) / na
    if nr == 1:
        radii = np.array([lo])
    else:
        radii = lo * np.exp(math.log(hi / lo) * np.arange(nr, dtype=np.float64) / (nr - 1))
    return angles, radii


def log_polar(
    image: ArrayLike,
    center: ArrayLike | None = None,
    output_shape: tuple[int, int] | None = None,
    r_min: float = 1.0,
    r_max: float | None = None,
    order: int = 1,
    *,
    n_threads: int | None = None,
) -> NDArray[np.float32]:
    """Log-polar resampling of an image (Rust, parallel; see the module docs for the grid).

    Parameters
    ----------
    image : ndarray (y, x)
        Input image (converted to float32).
    center : (x, y), optional
        Pole in pixels (x = column, y = row). Default: the image centre
        ``((nx − 1)/2, (ny − 1)/2)``.
    output_shape : (n_angle, n_radius), optional
        Default: ``n_angle = ceil(2π·r_max)`` (about one pixel of arc at ``r_max``) and
        ``n_radius = ceil(r_max)``, each at least 8.
    r_min : float
        Smallest radius in pixels (> 0; default 1).
    r_max : float, optional
        Largest radius in pixels. Default: the distance from ``center`` to the nearest image
        border (the largest circle fully inside the image), at least ``r_min``. Without an
        ``output_shape`` it may not exceed the distance to the farthest image corner + 1 px
        (the default shape grows with it and samples beyond are all 0).
    order : {1, 3}
        Bilinear or Keys bicubic interpolation.
    n_threads : int, optional
        Worker threads (default all cores).

    Returns
    -------
    ndarray (n_angle, n_radius), float32
        ``out[i, j] = image(cx + r_j cos θ_i, cy + r_j sin θ_i)``, θ_i = 360°·i/n_angle,
        zero outside the image.
    """
    img = as_image(image, "image", allow_stack=False, dtype=np.float32)
    ny, nx = img.shape
    if center is None:
        cx, cy = (nx - 1) / 2.0, (ny - 1) / 2.0
    else:
        c = as_matrix(center, "center", (2,), max_abs=1e9)
        cx, cy = float(c[0]), float(c[1])
    lo = as_float(r_min, "r_min", positive=True, high=1e9)
    # beyond the farthest image corner every sample is 0 (zero padding)
    reach = math.hypot(max(cx, nx - 1 - cx), max(cy, ny - 1 - cy)) + 1.0
    if r_max is None:
        hi = max(lo, min(cx, cy, nx - 1 - cx, ny - 1 - cy))
    else:
        hi = as_float(r_max, "r_max", positive=True, high=1e9)
        if hi < lo:
            raise InvalidValueError(f"r_max: must be >= r_min ({lo}), got {hi}")
    if output_shape is None:
        if hi > reach:
            raise InvalidValueError(
                f"r_max: {hi:g} px reaches beyond the image (its farthest corner is "
                f"{reach - 1:.1f} px from the centre; samples there are all 0), and the default "
                f"output_shape grows with r_max; give r_max <= {reach:.1f} or an output_shape"
            )
        shape = (max(8, math.ceil(2 * math.pi * hi)), max(8, math.ceil(hi)))
        check_alloc(shape[0] * shape[1], 4, "r_max", shape=shape)
    else:
        shape = as_shape2(output_shape, "output_shape")
        check_alloc(shape[0] * shape[1], 4, "output_shape", shape=shape)
    out: NDArray[np.float32] = _core.log_polar(
        img,
        _core.LogPolarGrid(n_angle=shape[0], n_radius=shape[1], r_min=lo, r_max=hi),
        center=(cx, cy),
        order=_order_arg(order),
        n_threads=n_threads_arg(n_threads),
    )
    return out


def log_polar_spectrum(
    magnitude: ArrayLike,
    nx: int,
    output_shape: tuple[int, int],
    r_min: float = 0.02,
    r_max: float = 0.5,
    order: int = 1,
    *,
    emphasis: bool = False,
    n_threads: int | None = None,
) -> NDArray[np.float32]:
    """Log-polar resampling of the half magnitude spectrum of a real image (Hermitian symmetry).

    Parameters
    ----------
    magnitude : ndarray (ny, nx // 2 + 1)
        ``|numpy.fft.rfft2(img)|`` of a real ``(ny, nx)`` image: row = y frequency in FFT order
        (not shifted), column = x frequency ``0..nx/2``.
    nx : int
        Width of the real image (needed to tell even from odd).
    output_shape : (n_angle, n_radius)
        Angles cover [0°, 180°): ``|F(−k)| = |F(k)|`` for a real image, so the other half plane
        adds nothing; this halves the work of a full-circle transform of a centred spectrum.
    r_min, r_max : float
        Frequency band in cycles/pixel, ``0 < r_min ≤ r_max``; samples beyond Nyquist read 0.
    order : {1, 3}
        Bilinear or Keys bicubic interpolation (in frequency-index space).
    emphasis : bool
        Multiply each sample by the Reddy–Chatterji high-pass ``(1 − X)(2 − X)``,
        ``X = cos(πu)·cos(πv)`` (Reddy & Chatterji, IEEE TIP 5(8):1266, 1996).
    n_threads : int, optional
        Worker threads (default all cores).

    Returns
    -------
    ndarray (n_angle, n_radius), float32
        Sample ``(i, j)`` reads frequency ``(u, v) = r_j (cos θ_i, sin θ_i)`` cycles/pixel at
        index ``(kx, ky) = (u·nx, v·ny)``; ``kx < 0`` reads ``(−kx, −ky)``.
    """
    mag = as_image(magnitude, "magnitude", allow_stack=False, dtype=np.float32)
    n = as_int(nx, "nx", low=1)
    if mag.shape[1] != n // 2 + 1:
        raise ShapeError(
            f"magnitude: expected {n // 2 + 1} columns (nx // 2 + 1 for nx = {n}), "
            f"got shape {mag.shape}"
        )
    shape = as_shape2(output_shape, "output_shape")
    check_alloc(shape[0] * shape[1], 4, "output_shape", shape=shape)
    lo = as_float(r_min, "r_min", positive=True)
    hi = as_float(r_max, "r_max", positive=True)
    if hi < lo:
        raise InvalidValueError(f"r_max: must be >= r_min ({lo}), got {hi}")
    out: NDArray[np.float32] = _core.log_polar_half_spectrum(
        mag,
        _core.LogPolarGrid(n_angle=shape[0], n_radius=shape[1], r_min=lo, r_max=hi),
        nx=n,
        order=_order_arg(order),
        emphasis=as_bool(emphasis, "emphasis"),
        n_threads=n_threads_arg(n_threads),
    )
    return out
