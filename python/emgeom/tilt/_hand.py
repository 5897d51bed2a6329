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
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from emgeom._validate import as_float, as_int, describe
from emgeom.errors import InvalidTypeError, InvalidValueError, ShapeError
from emgeom.io.ctffind5 import Ctffind5Tilt
from emgeom.io.relion_subtilt import SubtiltTable, read_subtilt_star
from emgeom.io.warp_movies import samples_from_warp_movies
from emgeom.model.geometry import TiltGeometry
from emgeom.model.hand_samples import HandSamples, as_samples, directions, predicted_slopes
from emgeom.tilt._hand_decide import HandCheck, decide
from emgeom.tilt._hand_images import slopes_from_images

# the readers live in emgeom.io (file formats) and the model in _hand_samples/_hand_decide;
# their names stay importable from here as before
__all__ = [
    "HandCheck",
    "HandSamples",
    "SubtiltTable",
    "check_hand",
    "predicted_slopes",
    "read_subtilt_star",
    "samples_from_warp_movies",
]


# ----------------------------------------------------------------------- from samples
def _slopes_from_samples(
    geometry: TiltGeometry, s: HandSamples
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.int64]]:
    """Per-tilt slope along ``d_t`` and its standard error from a weighted plane fit."""
    nt = geometry.n_tilts
    dirs = directions(geometry)
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
    nt = geometry.n_tilts
    if len(results) != nt:
        raise ShapeError(
            f"ctffind5: expected one CTFFIND5 result per tilt ({nt}), got {len(results)}"
        )
    slope = np.full(nt, np.nan)
    err = np.full(nt, np.nan)
    notes = []
    dirs = directions(geometry)
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
        :mod:`emgeom.tilt._hand_images`); needs ``pixel_size_a``.
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
        slope, err, counts = _slopes_from_samples(geometry, as_samples(samples, geometry.n_tilts))
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
        slope, err, det = slopes_from_images(
            geometry,
            images,
            progress=progress,
            pixel_size_a=pixel_size_a,
            voltage_kv=voltage_kv,
            cs_mm=cs_mm,
            amplitude_contrast=amplitude_contrast,
            binning=binning,
            tile_size=tile_size,
            defocus_search_a=defocus_search_a,
            n_threads=n_threads,
        )
        details.update(det)
        source = "images"
    n_missing = int(np.count_nonzero(~np.isfinite(slope)))
    if n_missing:
        notes.append(f"{n_missing} of {geometry.n_tilts} tilts had no measurable slope")
    return decide(
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
