"""Log-polar transform and Fourier–Mellin registration vs peers (issue 6).

Groups (peers in the same run):
* ``logpolar-<N>``: log-polar of an N×N magnitude spectrum. ``cv2.warpPolar`` (LOG, bilinear,
  output N angles × N/2 radii over 360°, the peer baseline), emgeom on the same image and grid
  size, emgeom on the half spectrum (``rfft2`` layout, N/2 angles over 180° × N/2 radii: the same
  angular sampling, half the samples, thanks to Hermitian symmetry), skimage ``warp_polar``.
* ``fm-<N>``: Fourier–Mellin end to end on a cryo-like pair (rotation 17°, scale 1.3, shift,
  SNR 0.5): ``emgeom.crossmag.find_similarity`` (full similarity incl. translation), the
  scikit-image gallery recipe (rotation + scale only) and ``imreg_dft.similarity`` (full).
  Each records its answer in ``extra_info``; emgeom's accuracy is asserted.

The log-polar sides are timed in blocks of 5 calls (``_blocks``: 15 rounds of 5 calls, one
warm-up round), so a scheduler hiccup on a busy machine spoils one block, not the median.

With ``--benchmark-disable`` the sizes drop (N = 512) so the file runs in a few seconds.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from emgeom import transform as tr
from emgeom.crossmag import find_similarity

TRUTH_ROT, TRUTH_SCALE = 17.0, 1.3


def _size(benchmark) -> int:
    return 512 if benchmark.disabled else 2048


_SPECTRA: dict[int, tuple[np.ndarray, np.ndarray]] = {}


def _blocks(benchmark, fn, *args):
    """``fn(*args)`` timed in blocks of 5 calls (one call when benchmarks are disabled)."""
    if benchmark.disabled:
        return benchmark(fn, *args)
    return benchmark.pedantic(fn, args=args, rounds=15, iterations=5, warmup_rounds=1)


def _spectra(n: int) -> tuple[np.ndarray, np.ndarray]:
    if n not in _SPECTRA:
        img = np.random.default_rng(0).normal(size=(n, n)).astype(np.float32)
        _, xx = np.mgrid[0:n, 0:n]
        img += np.sin(xx / 7.0).astype(np.float32)
        full = np.fft.fftshift(np.abs(np.fft.fft2(img))).astype(np.float32)
        half = np.abs(np.fft.rfft2(img)).astype(np.float32)
        _SPECTRA[n] = (full, half)
    return _SPECTRA[n]


def test_logpolar_cv2_warppolar(benchmark):
    cv2 = pytest.importorskip("cv2")
    n = _size(benchmark)
    full, _ = _spectra(n)
    benchmark.group = f"logpolar-{n}"
    flags = cv2.WARP_POLAR_LOG | cv2.INTER_LINEAR
    out = _blocks(benchmark, cv2.warpPolar, full, (n // 2, n), (n / 2, n / 2), n / 2, flags)
    assert out.shape == (n, n // 2)


def test_logpolar_emgeom_full_circle(benchmark):
    n = _size(benchmark)
    full, _ = _spectra(n)
    benchmark.group = f"logpolar-{n}"
    out = _blocks(benchmark, tr.log_polar, full, (n / 2, n / 2), (n, n // 2), 1.0, n / 2, 1)
    assert out.shape == (n, n // 2) and np.isfinite(out).all()


def test_logpolar_emgeom_half_spectrum(benchmark):
    n = _size(benchmark)
    full, half = _spectra(n)
    benchmark.group = f"logpolar-{n}"
    out = _blocks(benchmark, tr.log_polar_spectrum, half, n, (n // 2, n // 2), 1.0 / n, 0.5, 1)
    assert out.shape == (n // 2, n // 2)
    # the same numbers as the full-circle transform of the centred spectrum (first half)
    ref = tr.log_polar(full, (n / 2, n / 2), (n, n // 2), 1.0, n / 2, 1)[: n // 2]
    np.testing.assert_allclose(out[:, :-8], ref[:, :-8], rtol=1e-3, atol=1e-2 * float(ref.max()))


def test_logpolar_emgeom_half_spectrum_bicubic(benchmark):
    n = _size(benchmark)
    _, half = _spectra(n)
    benchmark.group = f"logpolar-{n}"
    out = _blocks(benchmark, tr.log_polar_spectrum, half, n, (n // 2, n // 2), 1.0 / n, 0.5, 3)
    assert out.shape == (n // 2, n // 2)


def test_logpolar_skimage_warp_polar(benchmark):
    sk = pytest.importorskip("skimage.transform")
    n = _size(benchmark)
    full, _ = _spectra(n)
    benchmark.group = f"logpolar-{n}"
    out = benchmark.pedantic(
        sk.warp_polar,
        args=(full,),
        kwargs={"radius": n / 2, "output_shape": (n, n // 2), "scaling": "log", "order": 1},
        rounds=1 if benchmark.disabled else 3,
        iterations=1,
    )
    assert out.shape == (n, n // 2)


# ---------------------------------------------------------------------------------------------
# Fourier–Mellin end to end

_PAIRS: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}


def _pair(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cryo-like pair from the synthetic specimen: moving pixel 1.3× the reference pixel,
    rotated 17°, shifted (12, −7) master px; white noise at SNR 0.5 (variance ratio)."""
    if n not in _PAIRS:
        from emgeom import synthetic as syn

        m = 4096 if n > 1024 else 2600
        px = 1.0 if n > 1024 else 2.0
        spec = syn.make_specimen((m, m), pixel_a=px, seed=0, holes="edge")
        c = np.array([(m - 1) / 2, (m - 1) / 2])
        ref = syn.acquire(spec, pixel_a=px, shape=(n, n), center=c, seed=1)
        mov = syn.acquire(
            spec,
            pixel_a=px * TRUTH_SCALE,
            shape=(n, n),
            center=c + [12.0, -7.0],
            rotation_deg=TRUTH_ROT,
            seed=2,
        )
        rng = np.random.default_rng(5)
        r = ref.clean + rng.normal(0, ref.clean.std() / math.sqrt(0.5), ref.clean.shape)
        mv = mov.clean + rng.normal(0, mov.clean.std() / math.sqrt(0.5), mov.clean.shape)
        _PAIRS[n] = (
            r.astype(np.float32),
            mv.astype(np.float32),
            syn.affine_between(ref, mov),
        )
    return _PAIRS[n]


def _corner_err(affine: np.ndarray, truth: np.ndarray, n: int) -> float:
    p = np.array([[0, 0], [n - 1, 0], [0, n - 1], [n - 1, n - 1]], float)
    return float(
        np.abs(p @ affine[:, :2].T + affine[:, 2] - (p @ truth[:, :2].T + truth[:, 2])).max()
    )


def test_fm_emgeom_find_similarity(benchmark):
    n = _size(benchmark)
    r, m, truth = _pair(n)
    benchmark.group = f"fm-{n}"
    res = benchmark(find_similarity, r, m)
    err = _corner_err(res.affine, truth, n)
    benchmark.extra_info.update(
        angle=res.rotation_deg, scale=res.scale, corner_err_px=err, found=res.found
    )
    assert res.found
    # issue goal (≥ 1024²): 0.1°, 0.2 %; the quick 512² run is looser (4× fewer pixels)
    small = n < 1024
    assert abs(res.rotation_deg - TRUTH_ROT) < (0.3 if small else 0.1)
    assert abs(res.scale / TRUTH_SCALE - 1) < (0.005 if small else 0.002)
    assert err < (3.0 if small else 1.5)


def _skimage_recipe(r: np.ndarray, m: np.ndarray) -> tuple[float, float]:
    """scikit-image gallery ``plot_register_rotation.py`` (rotation + scale), as published."""
    from skimage.filters import difference_of_gaussians, window
    from skimage.registration import phase_cross_correlation
    from skimage.transform import warp_polar

    a = difference_of_gaussians(r, 5, 20) * window("hann", r.shape)
    b = difference_of_gaussians(m, 5, 20) * window("hann", m.shape)
    fa = np.abs(np.fft.fftshift(np.fft.fft2(a)))
    fb = np.abs(np.fft.fftshift(np.fft.fft2(b)))
    shape = fa.shape
    radius = shape[0] // 8
    wa = warp_polar(fa, radius=radius, output_shape=shape, scaling="log", order=0)
    wb = warp_polar(fb, radius=radius, output_shape=shape, scaling="log", order=0)
    wa, wb = wa[: shape[0] // 2, :], wb[: shape[0] // 2, :]
    shifts, _, _ = phase_cross_correlation(wa, wb, upsample_factor=10, normalization=None)
    angle = (360 / shape[0]) * shifts[0]
    klog = shape[1] / np.log(radius)
    scale = float(np.exp(shifts[1] / klog))
    return float(angle), scale


def test_fm_skimage_gallery_recipe(benchmark):
    pytest.importorskip("skimage")
    n = _size(benchmark)
    r, m, _ = _pair(n)
    benchmark.group = f"fm-{n}"
    angle, scale = benchmark.pedantic(
        _skimage_recipe, args=(r, m), rounds=1 if benchmark.disabled else 3, iterations=1
    )
    # measured: the recipe's angle has emgeom's sense (θ = angle) and its scale is the
    # magnification of the moving image (emgeom's scale = 1/scale)
    benchmark.extra_info.update(angle=angle, scale=1 / scale if scale else float("nan"))


def test_fm_imreg_dft(benchmark):
    ird = pytest.importorskip("imreg_dft")
    n = _size(benchmark)
    r, m, _ = _pair(n)
    benchmark.group = f"fm-{n}"
    out = benchmark.pedantic(ird.similarity, args=(r, m), rounds=1, iterations=1)
    benchmark.extra_info.update(angle=-float(out["angle"]), scale=float(out["scale"]))
