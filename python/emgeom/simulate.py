"""Simulated tilt series with a spatially varying CTF from the canonical tilt model.

:func:`simulate_tilt_series` makes tilted micrographs of a flat, amorphous specimen lying in the
tomogram's ``z = 0`` plane, for a :class:`~emgeom.tilt.TiltGeometry` with a known hand, tilt,
axis and pixel size. Each image is ``Poisson(dose·px²·(1 + c))`` where the weak-phase contrast
``c`` is the specimen phase ``φ`` (Gaussian, white, spectral SNR ``snr`` against the shot
noise) filtered by ``2·CTF(k; Δf(q))·exp(−B·k²/4)`` with

* ``CTF = −(√(1 − A²)·sin χ + A·cos χ)``, ``χ = π·λ·Δf(φ_k)·k² − (π/2)·Cs·λ³·k⁴``,
  ``Δf(φ_k) = Δf + (ΔfAst/2)·cos 2(φ_k − φ_ast)`` (defocus underfocus positive, Å);
* the defocus at image position ``q`` (Å from the raw-image centre)
  ``Δf(q) = Δf0_t + G_t·(q − s_t)``, ``G_t = −h·κ·M_t⁻ᵀ·r3_t[:2]`` — exactly the canonical
  ``Δf0 − h·κ·z'`` of the specimen point seen at ``q`` (:mod:`emgeom.tilt`).

The spatially varying CTF is applied by computing the CTF-filtered image at defocus levels
``defocus_step_a`` apart and interpolating linearly between the two levels bracketing each
pixel's defocus (exact for a linear-in-Δf image, error ``O(step²)`` otherwise). The specimen is
independent from tilt to tilt (only the power spectrum matters for CTF estimation).

Units: Å, degrees, kV, mm, e⁻/Å². Images are ``(T, ny, nx)`` float32, rows = y.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from emgeom._validate import as_bool, as_float, as_int, as_pair, as_shape2, check_alloc, describe
from emgeom.errors import InvalidTypeError, InvalidValueError
from emgeom.model.geometry import TiltGeometry
from emgeom.reference.ctf import electron_wavelength_a

__all__ = ["defocus_gradients", "simulate_tilt_series"]


def defocus_gradients(geometry: TiltGeometry) -> NDArray[np.float64]:
    """Image-space defocus gradient of a flat specimen (``z = 0``) per tilt, ``(T, 2)``
    (x, y), Å per Å, for the geometry's own hand: ``−h·κ·M⁻ᵀ·r3[:2]``.
    """
    if not isinstance(geometry, TiltGeometry):
        raise InvalidTypeError(f"geometry: expected a TiltGeometry, got {describe(geometry)}")
    r = geometry.rotation_matrices()
    m = r[:, :2, :2]
    r3 = r[:, 2, :2]
    g = np.linalg.solve(np.transpose(m, (0, 2, 1)), r3[..., None])[..., 0]
    return np.asarray(-geometry.hand * geometry.defocus_slope * g, dtype=np.float64)


#: Most defocus levels (one inverse FFT each) simulate_tilt_series interpolates between per tilt.
_MAX_DEFOCUS_LEVELS = 4096


def simulate_tilt_series(
    geometry: TiltGeometry,
    *,
    shape: Sequence[int] = (512, 512),
    pixel_size_a: float | None = None,
    voltage_kv: float = 300.0,
    cs_mm: float = 2.7,
    amplitude_contrast: float = 0.07,
    dose_e_per_a2: float = 3.0,
    snr: float = 0.3,
    b_factor_a2: float = 150.0,
    astigmatism_a: float = 0.0,
    astigmatism_deg: float = 0.0,
    defocus_step_a: float = 200.0,
    seed: int | None = None,
    noise: bool = True,
) -> NDArray[np.float32]:
    """Simulate the tilt images of ``geometry`` (flat specimen, spatially varying CTF).

    Parameters
    ----------
    geometry : TiltGeometry
        Known hand, tilt angles, axes, shifts and per-tilt defocus ``defocus_a`` (Å) of the
        tomogram centre.
    shape : (ny, nx)
        Image size in pixels.
    pixel_size_a : float, optional
        Pixel size (Å); default ``geometry.pixel_size_a``.
    voltage_kv, cs_mm, amplitude_contrast : float
        Optics (300 kV, 2.7 mm, 0.07 by default).
    dose_e_per_a2 : float
        Electron dose per tilt image (e⁻/Å²), default 3.
    snr : float
        Spectral signal-to-noise ratio of the specimen at low frequency (before CTF and
        envelope): ``4·P·dose`` with ``P`` the phase spectral density. 0.1–0.5 is realistic
        for a single tilt image; default 0.3.
    b_factor_a2 : float
        Envelope ``exp(−B·k²/4)`` on amplitudes (Å²), default 150.
    astigmatism_a, astigmatism_deg : float
        ``ΔfU − ΔfV`` (Å) and its angle (degrees from +x), the same in every tilt.
    defocus_step_a : float
        Spacing of the defocus levels used to build the spatially varying CTF (Å).
    seed : int, optional
        Random seed.
    noise : bool
        Shot noise (Poisson); False returns the noiseless ``dose·px²·(1 + c)``.

    Returns
    -------
    ndarray, shape (T, ny, nx), float32
        Electron counts per pixel.
    """
    params = _validate_simulation(
        geometry,
        shape=shape,
        pixel_size_a=pixel_size_a,
        voltage_kv=voltage_kv,
        cs_mm=cs_mm,
        amplitude_contrast=amplitude_contrast,
        dose_e_per_a2=dose_e_per_a2,
        snr=snr,
        b_factor_a2=b_factor_a2,
        astigmatism_a=astigmatism_a,
        astigmatism_deg=astigmatism_deg,
        defocus_step_a=defocus_step_a,
    )
    rng = np.random.default_rng(None if seed is None else as_int(seed, "seed", low=0))
    shot_noise = as_bool(noise, "noise")
    ny, nx = params.ny, params.nx
    ctf = _CtfFilter.build(params)
    grads = defocus_gradients(geometry)
    xs = ((np.arange(nx) - nx / 2) * params.pixel_size_a).astype(np.float32)
    ys = ((np.arange(ny) - ny / 2) * params.pixel_size_a).astype(np.float32)
    n0 = params.dose * params.pixel_size_a * params.pixel_size_a
    # white phase with spectral density P = snr / (4·dose): per-pixel std sqrt(P)/px
    sigma = math.sqrt(params.snr / (4 * params.dose)) / params.pixel_size_a
    out = np.empty((geometry.n_tilts, ny, nx), dtype=np.float32)
    for t in range(geometry.n_tilts):
        dfield = _defocus_field(geometry, t, grads[t], xs, ys)
        lo, hi = float(dfield.min()), float(dfield.max())
        if lo <= 0:
            raise InvalidValueError(
                f"geometry: tilt {t} reaches defocus {lo:.0f} Å <= 0 across the image "
                "(overfocus is not simulated): increase defocus_a or reduce the image size"
            )
        white = rng.normal(0.0, sigma, (ny, nx)).astype(np.float32)
        spec = (np.fft.rfft2(white) * ctf.envelope2).astype(np.complex64)
        contrast = _varying_ctf_contrast(ctf, spec, dfield, lo, hi, params.defocus_step_a, t)
        mean = n0 * np.clip(1.0 + contrast, 0.0, None)
        if not np.isfinite(mean).all():
            raise InvalidValueError(
                f"the parameters give non-finite intensities in tilt {t}; check the defocus, "
                "pixel size and CTF parameters"
            )
        out[t] = rng.poisson(mean) if shot_noise else mean
    return out


@dataclass(frozen=True)
class _SimParams:
    """The validated scalar arguments of :func:`simulate_tilt_series` (Å, radians, e⁻/Å²)."""

    ny: int
    nx: int
    pixel_size_a: float
    wavelength_a: float
    cs_a: float
    amplitude_contrast: float
    dose: float
    snr: float
    b_factor_a2: float
    astigmatism_a: float
    astigmatism_rad: float
    defocus_step_a: float


def _validate_simulation(
    geometry: TiltGeometry,
    *,
    shape: Sequence[int],
    pixel_size_a: float | None,
    voltage_kv: float,
    cs_mm: float,
    amplitude_contrast: float,
    dose_e_per_a2: float,
    snr: float,
    b_factor_a2: float,
    astigmatism_a: float,
    astigmatism_deg: float,
    defocus_step_a: float,
) -> _SimParams:
    """Check the arguments of :func:`simulate_tilt_series` (all but ``seed`` and ``noise``) and
    bound the allocation before anything is made.
    """
    if not isinstance(geometry, TiltGeometry):
        raise InvalidTypeError(f"geometry: expected a TiltGeometry, got {describe(geometry)}")
    ny, nx = as_shape2(shape, "shape")
    if min(ny, nx) < 16:
        raise InvalidValueError(f"shape: expected both sides >= 16, got {(ny, nx)}")
    # the result (T, ny, nx) float32, plus ~12 float32/complex64 working arrays per tilt
    check_alloc((geometry.n_tilts + 12) * ny * nx, 4, "shape", shape=(geometry.n_tilts, ny, nx))
    px_in = pixel_size_a if pixel_size_a is not None else geometry.pixel_size_a
    if px_in is None:
        raise InvalidValueError("pixel_size_a: required (the geometry has none)")
    px = as_float(px_in, "pixel_size_a", positive=True)
    params = _SimParams(
        ny=ny,
        nx=nx,
        pixel_size_a=px,
        wavelength_a=electron_wavelength_a(as_float(voltage_kv, "voltage_kv", low=1.0, high=1e5)),
        cs_a=as_float(cs_mm, "cs_mm", nonnegative=True, high=1e4) * 1e7,
        amplitude_contrast=as_float(
            amplitude_contrast, "amplitude_contrast", nonnegative=True, high=0.99
        ),
        dose=as_float(dose_e_per_a2, "dose_e_per_a2", positive=True, high=1e6),
        snr=as_float(snr, "snr", nonnegative=True, high=1e6),
        b_factor_a2=as_float(b_factor_a2, "b_factor_a2", nonnegative=True, high=1e6),
        astigmatism_a=as_float(astigmatism_a, "astigmatism_a", low=-1e6, high=1e6),
        astigmatism_rad=math.radians(
            as_float(astigmatism_deg, "astigmatism_deg", low=-360.0, high=360.0)
        ),
        defocus_step_a=as_float(defocus_step_a, "defocus_step_a", positive=True),
    )
    dose = params.dose
    if dose * px * px > 1e9:
        raise InvalidValueError(
            f"dose_e_per_a2: {dose:g} e/Å² at {px:g} Å/px gives {dose * px * px:.3g} electrons "
            "per pixel; expected at most 1e9"
        )
    if np.any(geometry.defocus_a <= 0):
        raise InvalidValueError(
            "geometry: defocus_a must be positive (underfocus, Å) in every tilt to simulate"
        )
    return params


@dataclass(frozen=True)
class _CtfFilter:
    """``CTF(k; Δf)·2·exp(−B·k²/4)`` on the ``rfft2`` grid, as ``−sin(a·Δf + c)`` with the
    astigmatism folded into ``c``.
    """

    shape: tuple[int, int]
    a_coef: NDArray[np.float32]
    c_coef: NDArray[np.float32]
    envelope2: NDArray[np.float32]

    @classmethod
    def build(cls, p: _SimParams) -> _CtfFilter:
        fy = np.fft.fftfreq(p.ny, d=p.pixel_size_a)[:, None]
        fx = np.fft.rfftfreq(p.nx, d=p.pixel_size_a)[None, :]
        s2 = fx**2 + fy**2
        phi = np.arctan2(np.broadcast_to(fy, s2.shape), np.broadcast_to(fx, s2.shape))
        env = np.exp(-p.b_factor_a2 * s2 / 4)
        # CTF = −(√(1−A²)·sin χ + A·cos χ) = −sin(χ + asin A); χ = a·Δf + c (astigmatism in a)
        lam = p.wavelength_a
        a_coef = (np.pi * lam * s2).astype(np.float32)
        c_base = -0.5 * np.pi * p.cs_a * lam**3 * s2**2 + math.asin(p.amplitude_contrast)
        ast_term = np.pi * lam * s2 * 0.5 * p.astigmatism_a * np.cos(2 * (phi - p.astigmatism_rad))
        c_coef = (c_base + ast_term).astype(np.float32)
        return cls((p.ny, p.nx), a_coef, c_coef, (env * 2.0).astype(np.float32))

    def filtered(self, spec: NDArray[np.complex64], df: float) -> NDArray[np.float32]:
        """The real image of the spectrum ``spec`` through the CTF at defocus ``df`` (Å)."""
        ctf = -np.sin(self.a_coef * np.float32(df) + self.c_coef)
        return np.asarray(np.fft.irfft2(spec * ctf, s=self.shape), dtype=np.float32)


def _defocus_field(
    geometry: TiltGeometry,
    t: int,
    grad: NDArray[np.float64],
    xs: NDArray[np.float32],
    ys: NDArray[np.float32],
) -> NDArray[np.float32]:
    """Defocus (Å, float32, ``(ny, nx)``) of tilt ``t`` at every pixel: ``Δf0 + G·(q − s)``."""
    gx, gy = grad
    sx, sy = geometry.shifts_a[t]
    return np.asarray(
        np.float32(geometry.defocus_a[t])
        + np.float32(gx) * (xs[None, :] - np.float32(sx))
        + np.float32(gy) * (ys[:, None] - np.float32(sy)),
        dtype=np.float32,
    )


def _varying_ctf_contrast(
    ctf: _CtfFilter,
    spec: NDArray[np.complex64],
    dfield: NDArray[np.float32],
    lo: float,
    hi: float,
    step: float,
    t: int,
) -> NDArray[np.float32]:
    """The contrast of ``spec`` through a CTF whose defocus varies as ``dfield`` (Å, range
    ``lo``..``hi``): linear interpolation between images filtered at levels ``<= step`` apart.
    """
    ny, nx = ctf.shape
    levels = (hi - lo) / step  # may be inf for a tiny step: checked before ceil()
    if levels > _MAX_DEFOCUS_LEVELS:
        raise InvalidValueError(
            f"defocus_step_a: {step:g} Å gives {levels:.3g} defocus levels (one FFT each) "
            f"across the {hi - lo:.0f} Å range of tilt {t}; expected at most "
            f"{_MAX_DEFOCUS_LEVELS}"
        )
    n_lv = max(1, math.ceil(levels))
    if hi - lo < 1e-3:
        return ctf.filtered(spec, lo)
    # pixel p lies between levels lvl[p] and lvl[p] + 1 (fraction frac[p]); visit the
    # levels in order keeping only the previous filtered image
    dl = (hi - lo) / n_lv
    pos = ((dfield - np.float32(lo)) / np.float32(dl)).ravel()
    lvl = np.clip(np.floor(pos).astype(np.int64), 0, n_lv - 1)
    frac = (pos - lvl).astype(np.float32)
    order = np.argsort(lvl, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(np.bincount(lvl, minlength=n_lv))])
    flat = np.empty(ny * nx, dtype=np.float32)
    prev = ctf.filtered(spec, lo).ravel()
    for j in range(1, n_lv + 1):
        cur = ctf.filtered(spec, lo + j * dl).ravel()
        idx = order[bounds[j - 1] : bounds[j]]
        f = frac[idx]
        flat[idx] = prev[idx] * (1 - f) + cur[idx] * f
        prev = cur
    return flat.reshape(ny, nx)


def random_geometry(
    rng: Any,
    *,
    n_tilts: int = 41,
    max_tilt_deg: float = 60.0,
    hand: int | None = None,
    pixel_size_a: tuple[float, float] = (1.0, 3.0),
    defocus_a: tuple[float, float] = (15000.0, 45000.0),
) -> TiltGeometry:
    """A random dose-symmetric-like ±``max_tilt_deg`` series (random axis, pixel size, hand,
    per-tilt defocus drifting ±1000 Å) for tests and benchmarks.
    """
    if not isinstance(rng, np.random.Generator):
        raise InvalidTypeError(f"rng: expected a numpy.random.Generator, got {describe(rng)}")
    n = as_int(n_tilts, "n_tilts", low=1, high=10_000)
    t = np.linspace(-as_float(max_tilt_deg, "max_tilt_deg", low=0.0, high=89.0), max_tilt_deg, n)
    h = int(rng.choice([-1, 1])) if hand is None else hand
    d0 = rng.uniform(*as_pair(defocus_a, "defocus_a", low=0.0, high=1e7))
    px = as_pair(pixel_size_a, "pixel_size_a", low=1e-3, high=1e4)
    return TiltGeometry(
        t,
        float(rng.uniform(-180, 180)),
        d0 + rng.normal(0, 300, n),
        hand=h,
        pixel_size_a=float(rng.uniform(*px)),
        shifts_a=rng.normal(0, 50, (n, 2)),
    )
