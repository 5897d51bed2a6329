"""Slow numpy references of the cross-magnification kernels (``rescale.rs``, ``xcorr.rs``,
``crossmag.rs``). Dense matrices and plain FFTs: obviously correct, not fast.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

from emgeom.reference import warp_affine

__all__ = [
    "area_matrix",
    "area_predict",
    "correlate_translation",
    "crossmag_point",
    "fourier_rescale",
    "imod_filter",
    "lanczos3_matrix",
    "rescale_separable",
    "taper_1d",
]


def area_matrix(n_in: int, n_out: int, f: float) -> NDArray[np.float64]:
    """``(n_out, n_in)`` exact area-averaging weights for zoom ``f`` (edge-clamped)."""
    s = 1.0 / f
    w = np.zeros((n_out, n_in))
    for j in range(n_out):
        e0, e1 = j * s, (j + 1) * s
        for i in range(math.floor(e0), max(math.ceil(e1), math.floor(e0) + 1)):
            ov = max(0.0, min(e1, i + 1) - max(e0, i))
            w[j, min(max(i, 0), n_in - 1)] += ov
    return w / w.sum(axis=1, keepdims=True)


def _lanczos3(t: NDArray[np.float64]) -> NDArray[np.float64]:
    t = np.abs(t)
    out = np.where(t < 3, np.sinc(t) * np.sinc(t / 3), 0.0)
    return out


def lanczos3_matrix(n_in: int, n_out: int, f: float) -> NDArray[np.float64]:
    """``(n_out, n_in)`` Lanczos-3 weights (support × 1/f when shrinking), edge-clamped."""
    s = 1.0 / f
    st = max(s, 1.0)
    w = np.zeros((n_out, n_in))
    for j in range(n_out):
        x = (j + 0.5) * s - 0.5
        for i in range(math.floor(x - 3 * st), math.ceil(x + 3 * st) + 1):
            w[j, min(max(i, 0), n_in - 1)] += float(_lanczos3(np.array((i - x) / st)))
    return w / w.sum(axis=1, keepdims=True)


def rescale_separable(
    image: NDArray[Any], output_shape: tuple[int, int], zoom: tuple[float, float], method: str
) -> NDArray[np.float64]:
    """Reference of ``rescale::rescale_separable`` ("area" or "lanczos3")."""
    img = np.asarray(image, dtype=np.float64)
    mk = area_matrix if method == "area" else lanczos3_matrix
    wy = mk(img.shape[0], output_shape[0], zoom[0])
    wx = mk(img.shape[1], output_shape[1], zoom[1])
    return np.asarray(wy @ img @ wx.T)


def _fourier_rescale_matrix(n: int, m: int) -> NDArray[np.float64]:
    """The real ``(m, n)`` matrix of 1-D Fourier rescaling ``n → m`` (half-pixel aligned).

    Built as ``IDFT_m · W · DFT_n``. ``W`` maps input frequencies to output bins: the input is
    read as its symmetric trigonometric interpolant (an even ``n``'s Nyquist coefficient split
    in halves at ``±n/2``), multiplied by the shift phase ``exp(2πi s δ/n)``, ``δ = 0.5(n/m − 1)``,
    and sampled at ``m`` points, keeping ``|s| ≤ m/2`` (both ``±m/2`` alias onto the Nyquist
    bin of an even ``m``).
    """
    delta = 0.5 * (n / m - 1)
    w = np.zeros((m, n), dtype=complex)
    half = n // 2
    freqs = range(-half, half + 1) if n % 2 == 0 else range(-(n - 1) // 2, (n - 1) // 2 + 1)
    for s in freqs:
        if 2 * abs(s) > m:
            continue  # outside the output band
        weight = 0.5 if (n % 2 == 0 and abs(s) == half) else 1.0
        w[s % m, s % n] += weight * (m / n) * np.exp(2j * np.pi * s * delta / n)
    j = np.arange(m)
    i = np.arange(n)
    idft = np.exp(2j * np.pi * np.outer(j, np.arange(m)) / m) / m
    dft = np.exp(-2j * np.pi * np.outer(np.arange(n), i) / n)
    r = idft @ w @ dft
    assert np.abs(r.imag).max() < 1e-9 * max(1.0, np.abs(r.real).max())
    return np.asarray(r.real)


def fourier_rescale(image: NDArray[Any], output_shape: tuple[int, int]) -> NDArray[np.float64]:
    """Reference of ``rescale::fourier_rescale``: half-pixel aligned crop/pad, exact Nyquist.

    Separable: ``R_y · image · R_xᵀ`` with the 1-D matrices of :func:`_fourier_rescale_matrix`.
    """
    img = np.asarray(image, dtype=np.float64)
    ny, nx = img.shape
    my, mx = output_shape
    return np.asarray(_fourier_rescale_matrix(ny, my) @ img @ _fourier_rescale_matrix(nx, mx).T)


def imod_filter(
    s: NDArray[np.float64], sigma1: float, sigma2: float, radius1: float, radius2: float
) -> NDArray[np.float64]:
    """IMOD ``XCorrSetCTFnoScl`` evaluated exactly at frequencies ``s`` (cycles/pixel)."""
    s = np.asarray(s, dtype=np.float64)
    if abs(sigma1) <= 1e-6 and abs(sigma2) <= 1e-6:
        return np.ones_like(s)
    r1p, r1n = (radius1, 0.0) if radius1 >= 0 else (0.0, -radius1)
    beta = -0.5 / sigma2**2 if abs(sigma2) > 1e-6 else 0.0
    alpha = -0.5 / sigma1**2 if abs(sigma1) > 1e-6 else 0.0
    v = np.where(
        s < r1p,
        np.exp(beta * (s - r1p) ** 2),
        np.where(s > radius2, np.exp(beta * (s - radius2) ** 2), 1.0),
    )
    if sigma2 < -1e-6:
        v = 1 - v
    if sigma1 > 1e-6:
        v = v * np.where(s < r1n, 0.0, 1 - np.exp(alpha * (s - r1n) ** 2))
    elif sigma1 < -1e-6:
        delmax = (-1 / alpha) * math.exp(-1)
        v = v * s**2 * np.exp(alpha * s**2) / delmax
    return np.where(v < 1e-6, 0.0, v)


def taper_1d(n: int, width: float) -> NDArray[np.float64]:
    """Cosine ramp weights (see ``xcorr::taper_1d``)."""
    d = np.minimum(np.arange(n) + 0.5, n - np.arange(n) - 0.5)
    w = np.where(d >= width, 1.0, 0.5 * (1 - np.cos(np.pi * d / max(width, 1e-12))))
    return np.where(d <= 0, 0.0, w) if width > 0 else np.ones(n)


def _filter_grid(shape: tuple[int, int], filt: tuple[float, float, float, float]) -> NDArray[Any]:
    fy = np.fft.fftfreq(shape[0])
    fx = np.fft.fftfreq(shape[1])
    s = np.sqrt(fy[:, None] ** 2 + fx[None, :] ** 2)
    return imod_filter(s, *filt)


def _tapered(img: NDArray[Any], taper: float, pad: tuple[int, int]) -> NDArray[np.float64]:
    a = np.asarray(img, dtype=np.float64)
    w = taper_1d(a.shape[0], taper)[:, None] * taper_1d(a.shape[1], taper)[None, :]
    mu = (w * a).sum() / w.sum()
    out = np.zeros(pad)
    out[: a.shape[0], : a.shape[1]] = w * (a - mu)
    return out


def correlate_translation(
    a: NDArray[Any],
    b: NDArray[Any],
    pad: tuple[int, int],
    taper: float,
    filt: tuple[float, float, float, float],
    method: str = "xcorr",
) -> NDArray[np.float64]:
    """Reference map of ``xcorr::correlate_translation``: ``C(d) = Σ a(x)·b(x − d)``, circular,
    zero displacement at ``[0, 0]``.
    """
    fa = np.fft.fft2(_tapered(a, taper, pad))
    fb = np.fft.fft2(_tapered(b, taper, pad))
    g = fa * np.conj(fb)
    if method == "phase":
        m = np.abs(g)
        g = np.where(m > 1e-30, g / np.where(m > 1e-30, m, 1), 0)
        g[0, 0] = 0.0  # zero-mean images: the DC term is rounding noise
    g = g * _filter_grid(pad, filt)
    return np.real(np.fft.ifft2(g))


def crossmag_point(
    reference: NDArray[Any],
    origin: tuple[int, int],
    region: tuple[int, int],
    pad: tuple[int, int],
    taper: float,
    filt: tuple[float, float, float, float],
    moving: NDArray[Any],
    affine: NDArray[np.float64],
    half: tuple[int, int],
    mask_taper: float,
) -> NDArray[np.float64]:
    """Reference of one ``crossmag::evaluate_points`` correlation map (xcorr), cropped to the
    region: reference region tapered/zero-mean, moving patch warped (Keys cubic, fill 0),
    soft-masked, zero-mean, wrapped around the origin; ``C(d) = Σ R(x)·P(x − d)`` filtered.
    """
    ref = np.asarray(reference, dtype=np.float64)
    ny, nx = ref.shape
    x0, y0 = origin
    wy, wx = region

    def span(o: int, w: int, n: int) -> NDArray[np.float64]:
        lo, hi = max(o, 0), min(o + w, n)
        p = o + np.arange(w)
        d = np.minimum(p - lo + 0.5, hi - p - 0.5)
        inside = (p >= lo) & (p < hi)
        r = np.where(d >= taper, 1.0, 0.5 * (1 - np.cos(np.pi * d / taper)))
        return np.where(inside & (d > 0), r, 0.0)

    w = span(y0, wy, ny)[:, None] * span(x0, wx, nx)[None, :]
    yy = np.clip(y0 + np.arange(wy), 0, ny - 1)
    xx = np.clip(x0 + np.arange(wx), 0, nx - 1)
    vals = ref[np.ix_(yy, xx)]
    mu = (w * vals).sum() / w.sum()
    r0 = np.zeros(pad)
    r0[:wy, :wx] = w * (vals - mu)
    hy, hx = half
    ky, kx = 2 * hy + 1, 2 * hx + 1
    patch = warp_affine(moving, affine, (ky, kx), order=3, fill=0.0)
    ii, jj = np.mgrid[0:ky, 0:kx].astype(np.float64)
    sx = affine[0, 0] * jj + affine[0, 1] * ii + affine[0, 2]
    sy = affine[1, 0] * jj + affine[1, 1] * ii + affine[1, 2]
    mny, mnx = moving.shape

    def ramp(t: NDArray[np.float64]) -> NDArray[np.float64]:
        r = np.where(t >= mask_taper, 1.0, 0.5 * (1 - np.cos(np.pi * t / mask_taper)))
        return np.where(t <= 0, 0.0, r)

    m = ramp(np.minimum(sx + 0.5, mnx - 0.5 - sx)) * ramp(np.minimum(sy + 0.5, mny - 0.5 - sy))
    mu_p = (m * patch).sum() / m.sum()
    p0 = m * (patch - mu_p)
    framed = np.zeros(pad)
    framed[np.ix_((np.arange(ky) - hy) % pad[0], (np.arange(kx) - hx) % pad[1])] = p0
    g = np.fft.fft2(r0) * np.conj(np.fft.fft2(framed)) * _filter_grid(pad, filt)
    cmap = np.real(np.fft.ifft2(g))
    return np.asarray(cmap[:wy, :wx])


def area_predict(
    image: NDArray[Any],
    params: tuple[float, float, float, float],
    center: tuple[float, float],
    box: tuple[int, int, int, int],
    k: int,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Reference of ``crossmag_refine::area_predict``: the forward model of the refinement.

    The fine image ``image`` (moving, pixel centres on integers, bilinear between them) is
    integrated over the footprint of every coarse (reference) pixel ``q = (qx, qy)`` of
    ``box = (x0, y0, nx, ny)``: the mean of ``k × k`` samples at ``q + o``, ``o`` on a centred
    ``k × k`` grid in [−0.5, 0.5]², mapped into the fine image by
    ``u = c + R(θ)ᵀ (q + o − t) / s`` with ``params = (tx, ty, s, θ [rad])`` and
    ``center = c`` (the fine image's point that lands on ``t``).

    Returns ``(P, D)``: ``P`` of shape ``(ny, nx)`` and its derivatives ``D`` of shape
    ``(4, ny, nx)`` with respect to ``tx, ty, s, θ`` (exact derivatives of the bilinear
    interpolant; samples outside the image are clamped to its border).
    """
    img = np.asarray(image, dtype=np.float64)
    tx, ty, s, th = (float(v) for v in params)
    x0, y0, nx, ny = box
    h, w = img.shape
    c, sn = math.cos(th), math.sin(th)
    qy, qx = np.mgrid[y0 : y0 + ny, x0 : x0 + nx].astype(np.float64)
    p = np.zeros((ny, nx))
    d = np.zeros((4, ny, nx))
    for i in range(k):
        for j in range(k):
            vx = qx + (j + 0.5) / k - 0.5 - tx
            vy = qy + (i + 0.5) / k - 0.5 - ty
            wx = (c * vx + sn * vy) / s
            wy = (-sn * vx + c * vy) / s
            ux = np.clip(center[0] + wx, 0.0, w - 1.0)
            uy = np.clip(center[1] + wy, 0.0, h - 1.0)
            ix = np.minimum(np.floor(ux).astype(int), w - 2) if w > 1 else np.zeros_like(ux, int)
            iy = np.minimum(np.floor(uy).astype(int), h - 2) if h > 1 else np.zeros_like(uy, int)
            fx, fy = ux - ix, uy - iy
            ix1, iy1 = np.minimum(ix + 1, w - 1), np.minimum(iy + 1, h - 1)
            m00, m01 = img[iy, ix], img[iy, ix1]
            m10, m11 = img[iy1, ix], img[iy1, ix1]
            p += (1 - fy) * ((1 - fx) * m00 + fx * m01) + fy * ((1 - fx) * m10 + fx * m11)
            gx = (1 - fy) * (m01 - m00) + fy * (m11 - m10)
            gy = (1 - fx) * (m10 - m00) + fx * (m11 - m01)
            # du/dtx = −Rᵀ e_x / s, du/dty = −Rᵀ e_y / s, du/ds = −w/s, du/dθ = (w_y, −w_x)
            d[0] += -(gx * c - gy * sn) / s
            d[1] += -(gx * sn + gy * c) / s
            d[2] += -(gx * wx + gy * wy) / s
            d[3] += gx * wy - gy * wx
    n = float(k * k)
    return p / n, d / n
