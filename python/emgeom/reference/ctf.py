"""Numpy references of ``emgeom_kernels::ctf`` (``rust/kernels/src/ctf/``).

* :func:`tile_profiles` mirrors ``ctf::tile_profiles``: overlapping square tiles (origins
  centred so both margins are equal), mean removed, cosine edge taper over 1/8 of the tile,
  2-D power spectrum, averaged in ``n_bins`` bins uniform in the equiphase squared frequency
  ``s_eff = s·(1 + a·cos 2(φ − φ_a))`` (cycles²/px², Nyquist ``s = 1/4``).
* :func:`flatten_profile` and :func:`fit_defocus_1d` mirror the background subtraction
  (moving average of the amplitude over one Thon-ring period ``1/(λ·Δf_ref)`` in ``s``),
  RMS normalisation and the grid + golden-section search of the correlation with
  ``−cos(2χ(s) + 2·asin A)``, ``χ = π·λ·Δf·s − (π/2)·Cs·λ³·s²``.

Also :func:`electron_wavelength_a` (relativistic λ in Å).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "electron_wavelength_a",
    "fit_defocus_1d",
    "flatten_profile",
    "score",
    "tile_profiles",
]


def electron_wavelength_a(voltage_kv: float) -> float:
    """Relativistic electron wavelength (Å): ``12.2643247/√(V·(1 + 0.978466e-6·V))``, V in
    volts (300 kV → 0.019688 Å).
    """
    v = voltage_kv * 1e3
    return 12.2643247 / math.sqrt(v * (1 + 0.978466e-6 * v))


def _origins(ny: int, nx: int, tile: int, step: int) -> list[tuple[int, int]]:
    nyt = (ny - tile) // step + 1
    nxt = (nx - tile) // step + 1
    oy = (ny - tile - (nyt - 1) * step) // 2
    ox = (nx - tile - (nxt - 1) * step) // 2
    return [(oy + j * step, ox + i * step) for j in range(nyt) for i in range(nxt)]


def tile_profiles(
    image: NDArray[Any],
    tile: int,
    step: int,
    n_bins: int,
    astig: float = 0.0,
    astig_angle_rad: float = 0.0,
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.int64]]:
    """Reference of ``ctf::tile_profiles``: ``(profiles, centres (x, y) px, counts)``."""
    img = np.asarray(image, dtype=np.float64)
    ny, nx = img.shape
    n = tile
    fy = np.fft.fftfreq(n)[:, None]
    fx = np.fft.rfftfreq(n)[None, :]
    s = fx**2 + fy**2
    phi = np.arctan2(np.broadcast_to(fy, s.shape), np.broadcast_to(fx, s.shape))
    seff = s * (1 + astig * np.cos(2 * (phi - astig_angle_rad)))
    b = np.floor(seff / 0.25 * n_bins)
    valid = (s > 0) & (b >= 0) & (b < n_bins)
    bins = np.where(valid, b, -1).astype(np.int64)
    counts = np.bincount(bins[valid], minlength=n_bins)
    edge = max(n // 8, 1)
    d = np.minimum(np.arange(n), n - 1 - np.arange(n))
    win = np.where(d >= edge, 1.0, 0.5 - 0.5 * np.cos(np.pi * (d + 0.5) / edge))
    w2 = win[:, None] * win[None, :]
    orig = _origins(ny, nx, n, step)
    prof = np.zeros((len(orig), n_bins))
    cen = np.zeros((len(orig), 2))
    for i, (y0, x0) in enumerate(orig):
        t = img[y0 : y0 + n, x0 : x0 + n]
        t = (t - t.mean()) * w2
        ps = np.abs(np.fft.rfft2(t)) ** 2
        acc = np.bincount(bins[valid], weights=ps[valid], minlength=n_bins)
        prof[i] = np.where(counts > 0, acc / np.maximum(counts, 1), 0.0)
        cen[i] = (x0 + n / 2 - nx / 2, y0 + n / 2 - ny / 2)
    return prof, cen, counts


def _moving_average(v: NDArray[np.float64], w: int) -> NDArray[np.float64]:
    n = v.size
    h = w // 2
    pre = np.concatenate([[0.0], np.cumsum(v)])
    i = np.arange(n)
    a = np.maximum(i - h, 0)
    b = np.minimum(i + h + 1, n)
    return np.asarray((pre[b] - pre[a]) / (b - a))


def flatten_profile(
    profile: NDArray[Any], s_per_bin: float, wavelength_a: float, df_ref: float
) -> NDArray[np.float64]:
    """Reference of ``ctf::flatten_profile``."""
    v = np.sqrt(np.maximum(np.asarray(profile, dtype=np.float64), 0.0))
    period = 1.0 / (wavelength_a * max(df_ref, 1.0) * s_per_bin)
    w = int(min(max(round(period), 3), max(v.size, 3)))
    r = v - _moving_average(v, w)
    rms = _moving_average(r * r, 2 * w)
    return np.asarray(np.where(rms > 0, r / np.sqrt(np.where(rms > 0, rms, 1.0)), 0.0))


def score(
    flat: NDArray[np.float64],
    j0: int,
    j1: int,
    s_per_bin: float,
    wavelength_a: float,
    cs_a: float,
    amplitude_contrast: float,
    df: float,
) -> float:
    """Pearson correlation of ``flat[j0:j1]`` with ``−cos(2χ + 2·asin A)``."""
    s = (np.arange(j0, j1) + 0.5) * s_per_bin
    chi = np.pi * wavelength_a * df * s - 0.5 * np.pi * cs_a * wavelength_a**3 * s**2
    m = -np.cos(2 * chi + 2 * math.asin(min(max(amplitude_contrast, 0.0), 0.999)))
    p = flat[j0:j1]
    if p.std() == 0 or m.std() == 0:
        return 0.0
    return float(np.corrcoef(p, m)[0, 1])


def fit_defocus_1d(
    profiles: NDArray[Any],
    s_per_bin: float,
    wavelength_a: float,
    cs_a: float,
    amplitude_contrast: float,
    searches: NDArray[Any],
    df_step: float,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Reference of ``ctf::fit_defocus_1d`` (``searches`` rows: s_lo, s_hi, df_min, df_max,
    df_ref).
    """
    prof = np.asarray(profiles, dtype=np.float64)
    out_d = np.full(prof.shape[0], np.nan)
    out_s = np.zeros(prof.shape[0])
    nb = prof.shape[1]
    g = 0.5 * (math.sqrt(5) - 1)
    for i, (s_lo, s_hi, dmin, dmax, dref) in enumerate(np.asarray(searches, dtype=np.float64)):
        flat = flatten_profile(prof[i], s_per_bin, wavelength_a, dref)
        j0 = min(math.ceil(s_lo / s_per_bin), nb)
        j1 = min(math.floor(s_hi / s_per_bin), nb)
        if j1 < j0 + 4:
            continue

        def f(df: float, flat: NDArray[np.float64] = flat, j0: int = j0, j1: int = j1) -> float:
            return score(flat, j0, j1, s_per_bin, wavelength_a, cs_a, amplitude_contrast, df)

        steps = math.ceil((dmax - dmin) / df_step) + 1
        grid = np.minimum(dmin + np.arange(steps) * df_step, dmax)
        vals = [f(d) for d in grid]
        k = int(np.argmax(vals))
        best, best_df = vals[k], grid[k]
        a, b = best_df - df_step, best_df + df_step
        c, d = b - g * (b - a), a + g * (b - a)
        fc, fd = f(c), f(d)
        for _ in range(30):
            if fc > fd:
                b, d, fd = d, c, fc
                c = b - g * (b - a)
                fc = f(c)
            else:
                a, c, fc = c, d, fd
                d = a + g * (b - a)
                fd = f(d)
        df_, sc = (c, fc) if fc > fd else (d, fd)
        out_d[i], out_s[i] = (df_, sc) if sc >= best else (best_df, best)
    return out_d, out_s
