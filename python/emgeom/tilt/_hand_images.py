"""Per-tilt defocus slopes measured from the tilt images themselves (for :func:`check_hand`).

Tile power spectra (Rust ``ctf_tile_profiles``) → strips parallel to the tilt axis → stage 1:
the defocus of each tilt from the average of all its tiles (Rust ``ctf_fit_defocus_1d``) →
stage 2: a joint fit per tilt of (centre defocus, slope across the axis) maximising the summed
CTF correlation of all strips at defocus ``c + m·u_strip`` (the approach of CTFFIND5's and Warp's
tilt fits; Rust ``ctf_score_curves``), with a jackknife over strips for the slope's error.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from emgeom import _core
from emgeom._validate import as_float, as_int, describe, n_threads_arg
from emgeom.errors import InvalidTypeError, InvalidValueError, ShapeError
from emgeom.io.mrc import read_mrc
from emgeom.model.geometry import TiltGeometry
from emgeom.model.hand_samples import directions
from emgeom.reference.ctf import electron_wavelength_a

__all__ = ["bin_image", "slopes_from_images"]

_DSTEP = 25.0  # defocus step of the stage-2 score curves (Å)
_N_M = 81  # slopes tried per tilt in stage 2


def bin_image(img: NDArray[Any], b: int) -> NDArray[np.float32]:
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


def _image_stack(images: Any, n_tilts: int) -> NDArray[Any]:
    """The ``(T, ny, nx)`` real stack given as an array or an MRC path."""
    stack = read_mrc(images).data if isinstance(images, str | os.PathLike) else images
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
    if arr.shape[0] != n_tilts:
        raise ShapeError(
            f"images: {arr.shape[0]} images for {n_tilts} tilts in the geometry "
            "(one image per tilt, in the geometry's order)"
        )
    return arr


@dataclass(frozen=True)
class _Setup:
    """Validated optics and sampling of the image fit."""

    b: int  # binning
    tile: int  # tile size (binned pixels)
    pxb: float  # binned pixel size (Å)
    lam: float  # electron wavelength (Å)
    cs_a: float
    amp: float
    nthr: int | None
    ranges: NDArray[np.float64]  # (T, 2) defocus search range per tilt (Å)
    astig: NDArray[np.float64]  # (T,) relative astigmatism held per tilt
    ang: NDArray[np.float64]  # (T,) astigmatism angle (rad)

    @property
    def step(self) -> int:
        return self.tile // 2

    @property
    def n_bins(self) -> int:
        return self.tile // 2

    @property
    def s_nyq(self) -> float:
        return 0.25 / self.pxb**2

    @property
    def s_per_bin(self) -> float:
        return self.s_nyq / self.n_bins


def _search_ranges(
    geometry: TiltGeometry, defocus_search_a: tuple[float, float] | None
) -> NDArray[np.float64]:
    d0 = np.asarray(geometry.defocus_a, dtype=np.float64)
    if defocus_search_a is not None:
        lo_d, hi_d = (float(v) for v in defocus_search_a)
        if not (0 < lo_d < hi_d):
            raise InvalidValueError(
                f"defocus_search_a: expected 0 < min < max (Å), got {defocus_search_a!r}"
            )
        return np.tile([lo_d, hi_d], (geometry.n_tilts, 1))
    if np.all(d0 > 0):
        return np.stack([0.6 * d0, 1.4 * d0], axis=1)
    return np.tile([5000.0, 60000.0], (geometry.n_tilts, 1))


def _astigmatism(geometry: TiltGeometry) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Astigmatism held per tilt from the geometry (relative ``a = (U − V) / (2·mean)``, rad)."""
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
    return np.clip(astig, -0.45, 0.45), ang


def _setup(geometry: TiltGeometry, shape: tuple[int, ...], **kw: Any) -> _Setup:
    px_in = kw["pixel_size_a"] if kw["pixel_size_a"] is not None else geometry.pixel_size_a
    if px_in is None:
        raise InvalidValueError("pixel_size_a: required for images= (the geometry has none)")
    px = as_float(px_in, "pixel_size_a", positive=True)
    lam = electron_wavelength_a(as_float(kw["voltage_kv"], "voltage_kv", positive=True))
    cs_a = as_float(kw["cs_mm"], "cs_mm", nonnegative=True) * 1e7
    amp = as_float(kw["amplitude_contrast"], "amplitude_contrast", nonnegative=True, high=0.99)
    binning = kw["binning"]
    b = max(1, round(3.0 / px)) if binning is None else as_int(binning, "binning", low=1)
    tile = as_int(kw["tile_size"], "tile_size", low=32)
    if tile % 2:
        raise InvalidValueError(f"tile_size: expected an even number, got {tile}")
    ny_b, nx_b = shape[1] // b, shape[2] // b
    if min(ny_b, nx_b) < 4 * tile:
        # at least ~7 tiles across the image (tiles overlap by half)
        tile = max(32, min(tile, 1 << int(math.log2(max(min(ny_b, nx_b) // 4, 1)))))
        if min(ny_b, nx_b) < tile:
            raise ShapeError(
                f"images: {shape[1:]} binned by {b} is too small for CTF tiles (>= 32 px)"
            )
    astig, ang = _astigmatism(geometry)
    return _Setup(
        b=b,
        tile=tile,
        pxb=px * b,
        lam=lam,
        cs_a=cs_a,
        amp=amp,
        nthr=n_threads_arg(kw["n_threads"]),
        ranges=_search_ranges(geometry, kw["defocus_search_a"]),
        astig=astig,
        ang=ang,
    )


@dataclass
class _Strips:
    """Radial power profiles of strips parallel to the axis (stage 2) and whole tilts (stage 1)."""

    prof: list[NDArray[Any]] = field(default_factory=list)
    u: list[float] = field(default_factory=list)
    tilt: list[int] = field(default_factory=list)
    n: list[int] = field(default_factory=list)
    whole_prof: list[NDArray[Any]] = field(default_factory=list)
    whole_search: list[list[float]] = field(default_factory=list)
    whole_tilt: list[int] = field(default_factory=list)
    s_hi: dict[int, float] = field(default_factory=dict)


def _add_tilt(strips: _Strips, geometry: TiltGeometry, st: _Setup, t: int, ib: Any) -> None:
    """Tile profiles of binned image ``ib`` of tilt ``t`` averaged into strips."""
    tiling = _core.CtfTiling(
        tile=st.tile,
        step=st.step,
        n_bins=st.n_bins,
        astig=float(st.astig[t]),
        astig_angle_rad=float(st.ang[t]),
    )
    prof, cen, _counts = _core.ctf_tile_profiles(ib, tiling, n_threads=st.nthr)
    cen_a = cen * st.pxb
    u = cen_a @ directions(geometry)[t]
    key = np.round(u / (st.step * st.pxb)).astype(np.int64)
    dref = float(np.mean(st.ranges[t]))
    tan = abs(math.tan(math.radians(float(geometry.tilt_deg[t]))))
    # defocus spread inside one tile blurs the rings: stop the fit where the phase error
    # across a tile reaches ~pi/2 (s <= 1/(2·λ·tile·px·tanθ)); the whole-image average
    # (stage 1) is blurred by the spread over the whole image
    s_hi = 0.9 * st.s_nyq
    s_hi_whole = s_hi
    if tan > 0:
        s_hi = min(s_hi, 1.0 / (2 * st.lam * st.tile * st.pxb * tan))
        s_hi_whole = min(s_hi_whole, 1.0 / (st.lam * float(np.ptp(u) + st.tile * st.pxb) * tan))
    s_lo = max(1.0 / 40.0**2, 1.0 / (st.lam * dref))
    strips.s_hi[t] = max(s_hi, s_lo * 1.5)
    strips.whole_prof.append(prof.mean(axis=0))
    strips.whole_search.append(
        [s_lo, max(s_hi_whole, s_lo * 1.5), float(st.ranges[t, 0]), float(st.ranges[t, 1]), dref]
    )
    strips.whole_tilt.append(t)
    for k in np.unique(key):
        sel = key == k
        strips.prof.append(prof[sel].mean(axis=0))
        strips.u.append(float(u[sel].mean()))
        strips.tilt.append(t)
        strips.n.append(int(np.count_nonzero(sel)))


def _collect_strips(
    geometry: TiltGeometry,
    arr: NDArray[Any],
    st: _Setup,
    progress: Callable[[int, int], None] | None,
) -> _Strips:
    strips = _Strips()
    for t in range(geometry.n_tilts):
        ib = bin_image(arr[t], st.b)
        # NaN/inf anywhere propagates into the block means: check the (smaller) binned image
        if not np.isfinite(ib).all():
            raise InvalidValueError(
                f"images: image {t} contains NaN/inf values (mask or repair it first)"
            )
        if float(ib.max()) != float(ib.min()):
            _add_tilt(strips, geometry, st, t, ib)
        if progress is not None:
            progress(t + 1, geometry.n_tilts)
    return strips


def _defocus_search(st: _Setup, searches: Any, df_step: float) -> _core.DefocusSearch:
    """The native defocus search: ``searches`` rows ``(s_lo, s_hi, df_min, df_max, df_ref)``
    (Å⁻², Å) with the optics of ``st`` and a ``df_step`` (Å) grid.
    """
    return _core.DefocusSearch(
        np.ascontiguousarray(searches, dtype=np.float64),
        s_per_bin=st.s_per_bin,
        wavelength_a=st.lam,
        cs_a=st.cs_a,
        amplitude_contrast=st.amp,
        df_step=df_step,
    )


def _tilt_centres(strips: _Strips, st: _Setup) -> dict[int, float]:
    """Stage 1: the defocus of each tilt from the average of all its tiles (high SNR)."""
    d_whole, s_whole = _core.ctf_fit_defocus_1d(
        np.ascontiguousarray(np.array(strips.whole_prof, dtype=np.float32)),
        _defocus_search(st, np.array(strips.whole_search, dtype=np.float64), 25.0),
        n_threads=st.nthr,
    )
    centre = {}
    for t, d, sc, ws in zip(
        strips.whole_tilt,
        np.asarray(d_whole),
        np.asarray(s_whole),
        strips.whole_search,
        strict=True,
    ):
        centre[t] = float(d) if (np.isfinite(d) and sc > 0.05) else ws[4]
    return centre


def _score_curves(
    geometry: TiltGeometry, strips: _Strips, st: _Setup, centre: dict[int, float]
) -> tuple[NDArray[np.float64], dict[int, tuple[float, float, float, int]], int]:
    """Stage 2 curves: each strip's CTF score against defocus, searched only within what
    either hand allows around its tilt's centre (``|u|·tanθ`` + margin, symmetric in the hand),
    which removes ring-jump outliers.
    """
    st_arr = np.array(strips.tilt)
    u_arr = np.array(strips.u)
    starts = np.zeros(len(strips.prof))
    srch = np.zeros((len(strips.prof), 5))
    plan: dict[int, tuple[float, float, float, int]] = {}
    n_steps = 1
    for i, t in enumerate(strips.whole_tilt):
        tan = abs(math.tan(math.radians(float(geometry.tilt_deg[t]))))
        m_max = 1.6 * tan + 0.4
        sel = st_arr == t
        umax = float(np.max(np.abs(u_arr[sel]))) if np.any(sel) else 0.0
        half_c = 600.0 + 0.05 * centre[t]
        w = half_c + m_max * umax + 2 * _DSTEP
        plan[t] = (m_max, half_c, centre[t] - w, int(2 * w / _DSTEP) + 2)
        n_steps = max(n_steps, plan[t][3])
        starts[sel] = centre[t] - w
        srch[sel] = [strips.whole_search[i][0], strips.s_hi[t], 1.0, 2.0, centre[t]]
    curves = _core.ctf_score_curves(
        np.ascontiguousarray(np.array(strips.prof, dtype=np.float32)),
        _defocus_search(st, srch, _DSTEP),
        df_start=np.ascontiguousarray(starts),
        n_steps=n_steps,
        n_threads=st.nthr,
    )
    return np.asarray(curves), plan, n_steps


def _joint_slope(
    cv: NDArray[np.float64],
    u: NDArray[np.float64],
    n: NDArray[np.float64],
    centre: float,
    plan: tuple[float, float, float, int],
    n_steps: int,
) -> tuple[float, float, float]:
    """(slope, error, score) of one tilt from its strips' score curves ``cv``; NaN slope/error
    when the best slope is at the edge of the search or the score is too low.
    """
    m_max, half_c, start, _ = plan
    ms = np.linspace(-m_max, m_max, _N_M)
    cs = np.arange(centre - half_c, centre + half_c + _DSTEP / 2, _DSTEP)
    # contribution of each strip at (c, m): its curve at c + m·u, weighted by its tiles
    dfq = cs[None, :, None] + ms[None, None, :] * u[:, None, None]
    pos = (dfq - start) / _DSTEP
    i0 = np.clip(np.floor(pos).astype(np.int64), 0, n_steps - 2)
    fr = np.clip(pos - i0, 0.0, 1.0)
    rows = np.arange(u.size)[:, None, None]
    contrib = (cv[rows, i0] * (1 - fr) + cv[rows, i0 + 1] * fr) * n[:, None, None]
    total = contrib.sum(axis=0)
    ic, im = np.unravel_index(int(np.argmax(total)), total.shape)
    slope = float(ms[im])
    score = float(total[ic, im] / n.sum())
    # jackknife over strips
    loo = []
    for j in range(u.size):
        tj = total - contrib[j]
        loo.append(ms[np.unravel_index(int(np.argmax(tj)), tj.shape)[1]])
    loo_a = np.array(loo)
    jk = math.sqrt((u.size - 1) / u.size * float(np.sum((loo_a - loo_a.mean()) ** 2)))
    # grid resolution floor; a slope at the edge of the search range is unreliable
    err = max(jk, (ms[1] - ms[0]) / 2)
    if im in (0, _N_M - 1) or score <= 0.02:
        return math.nan, math.nan, score
    return slope, err, score


def slopes_from_images(
    geometry: TiltGeometry,
    images: Any,
    *,
    progress: Callable[[int, int], None] | None = None,
    **options: Any,
) -> tuple[NDArray[np.float64], NDArray[np.float64], dict[str, Any]]:
    """Per-tilt slope (Å/Å) and its error from the images (see the module docstring).

    ``options`` are :func:`check_hand`'s ``pixel_size_a``, ``voltage_kv``, ``cs_mm``,
    ``amplitude_contrast``, ``binning``, ``tile_size``, ``defocus_search_a`` and
    ``n_threads``; all are required here.
    """
    arr = _image_stack(images, geometry.n_tilts)
    st = _setup(geometry, arr.shape, **options)
    strips = _collect_strips(geometry, arr, st, progress)
    details: dict[str, Any] = {
        "binning": st.b,
        "tile_size": st.tile,
        "binned_pixel_a": st.pxb,
        "n_strips": len(strips.prof),
    }
    nan = np.full(geometry.n_tilts, np.nan)
    if not strips.prof:
        return nan, nan.copy(), details
    centre = _tilt_centres(strips, st)
    details["tilt_defocus_a"] = {int(t): centre[t] for t in strips.whole_tilt}
    curves, plan, n_steps = _score_curves(geometry, strips, st, centre)
    st_arr = np.array(strips.tilt)
    u_arr = np.array(strips.u)
    n_arr = np.array(strips.n, dtype=np.float64)
    slope = np.full(geometry.n_tilts, np.nan)
    err = np.full(geometry.n_tilts, np.nan)
    best_score = np.full(geometry.n_tilts, np.nan)
    for t in strips.whole_tilt:
        sel = np.flatnonzero(st_arr == t)
        if sel.size < 3:
            continue
        slope[t], err[t], best_score[t] = _joint_slope(
            curves[sel], u_arr[sel], n_arr[sel], centre[t], plan[t], n_steps
        )
    details["tilt_fit_score"] = best_score.tolist()
    details["strip_tilt"] = strips.tilt
    details["strip_u_a"] = strips.u
    return slope, err, details
