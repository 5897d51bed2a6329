"""Cross-magnification benchmarks: emgeom and its peers in the same run.

Groups (``pytest benches/bench_crossmag.py --benchmark-only``; with ``--benchmark-disable``
each body runs once on smaller inputs and the checks still hold):

* ``crossmag-align``: a 4096² Record (1 Å/px) aligned onto a 1024² View (10 Å/px, whole View
  searched), known calibration: emgeom vs the same steps with OpenCV + scipy.fft.
* ``crossmag-align-search``: the same with the default residual search (±4%, ±3°) vs a naive
  5×5 scale/rotation grid in OpenCV + scipy (reference FFT recomputed per point).
* ``rescale-12x``: exact area shrink 4096² → 341² (factor 12.01) vs ``cv2.resize`` INTER_AREA.
* ``xcorr-2048``: translation correlation of a 2048² pair vs a pre-planned pyFFTW pipeline,
  a scipy.fft pipeline (2 workers) and ``cv2.phaseCorrelate``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from emgeom import crossmag
from emgeom import synthetic as syn
from emgeom.resample import rescale

cv2 = pytest.importorskip("cv2")
sfft = pytest.importorskip("scipy.fft")


def _small(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("benchmark_disable", False))


@pytest.fixture(scope="module")
def scene(request):
    """(view, record, true centre, sizes) — 4096²/1024² normally, 1024²/256² when disabled."""
    k = 4 if _small(request) else 1
    spec = syn.make_specimen(
        (4096 // k, 4096 // k),
        pixel_a=2.5 * k,
        seed=3,
        n_particles=2500 // k,
        hole_diameter_a=12000.0,
    )
    view = syn.acquire(
        spec, pixel_a=10.0 * k, shape=(1024 // k, 1024 // k), noise_sigma=0.2, seed=2
    )
    rec = syn.acquire(
        spec,
        pixel_a=1.0 * k,
        shape=(4096 // k, 4096 // k),
        center=(2000.3 / k, 2111.7 / k),
        rotation_deg=7.0,
        noise_sigma=1.0,
        seed=3,
    )
    a = syn.affine_between(view, rec)
    return view, rec, a[:, :2] @ np.array(rec.center) + a[:, 2], k


def _imod_filter_grid(shape, filt=crossmag.DEFAULT_FILTER):
    from emgeom.reference.xcorr import imod_filter

    fy = np.fft.fftfreq(shape[0])[:, None]
    fx = np.fft.rfftfreq(shape[1])[None, :]
    return imod_filter(np.sqrt(fy**2 + fx**2), *filt).astype(np.float32)


def _peer_align(view, rec, theta_deg, scale_rel=1.0, ref_fft=None, filt=None):
    """The known-mag steps with OpenCV + scipy.fft: INTER_AREA shrink, bilinear rotation about
    the centre, circular mask, zero-mean, pad, filtered xcorr, argmax (no sub-pixel)."""
    s = 0.1 * scale_rel
    small = cv2.resize(rec, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
    h, w = small.shape
    m = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), -theta_deg, 1.0)
    rot = cv2.warpAffine(small, m, (w, h), flags=cv2.INTER_LINEAR)
    yy, xx = np.mgrid[0:h, 0:w]
    r = np.hypot(xx - (w - 1) / 2, yy - (h - 1) / 2)
    mask = np.clip((min(h, w) / 2 - r) / 8, 0, 1).astype(np.float32)
    p = (rot - (rot * mask).sum() / mask.sum()) * mask
    n = view.shape[0] + h
    pad = np.zeros((n, n), np.float32)
    pad[:h, :w] = p
    if ref_fft is None:
        rv = np.zeros((n, n), np.float32)
        rv[: view.shape[0], : view.shape[1]] = view - view.mean()
        ref_fft = sfft.rfft2(rv, workers=2)
    if filt is None:
        filt = _imod_filter_grid((n, n))
    c = sfft.irfft2(ref_fft * np.conj(sfft.rfft2(pad, workers=2)) * filt, s=(n, n), workers=2)
    iy, ix = np.unravel_index(int(np.argmax(c)), c.shape)
    return np.array([ix + (w - 1) / 2, iy + (h - 1) / 2]), float(c[iy, ix])


@pytest.mark.benchmark(group="crossmag-align")
@pytest.mark.parametrize("refine", [True, False], ids=["refined", "fast"])
def test_align_emgeom(benchmark, scene, refine):
    """Known calibration; ``refine=False`` is the fast path without the ML refinement."""
    view, rec, truth, k = scene
    res = benchmark(
        lambda: crossmag.align(
            view.image,
            rec.image,
            reference_pixel_a=10.0 * k,
            moving_pixel_a=1.0 * k,
            rotation_deg=7.0,
            scale_search=0.0,
            rotation_search_deg=0.0,
            refine=refine,
        )
    )
    assert res.found
    assert np.hypot(*(np.array(res.center) - truth)) < 0.5


@pytest.mark.benchmark(group="crossmag-align")
def test_align_opencv_scipy(benchmark, scene):
    view, rec, truth, k = scene
    if k != 1:
        pytest.skip("peer pipeline is written for ratio 10 at full size")
    pos, _ = benchmark(lambda: _peer_align(view.image, rec.image, 7.0))
    assert np.hypot(*(pos - truth)) < 1.5


@pytest.mark.benchmark(group="crossmag-align-search")
def test_align_search_emgeom(benchmark, scene):
    view, rec, truth, k = scene
    res = benchmark.pedantic(
        lambda: crossmag.align(
            view.image,
            rec.image,
            reference_pixel_a=10.0 * k,
            moving_pixel_a=1.0 * k * 0.98,
            rotation_deg=8.5,
        ),
        rounds=1 if _small_bench(benchmark) else 7,
        iterations=1,
        warmup_rounds=0,
    )
    assert res.found
    assert np.hypot(*(np.array(res.center) - truth)) < 1.0
    assert res.scale == pytest.approx(0.1, rel=0.01)


def _small_bench(benchmark) -> bool:
    return bool(getattr(benchmark, "disabled", False))


@pytest.mark.benchmark(group="crossmag-align-search")
def test_align_search_naive_grid_opencv_scipy(benchmark, scene):
    view, rec, truth, k = scene
    if k != 1:
        pytest.skip("peer pipeline is written for ratio 10 at full size")

    def grid():
        best = None
        for sc in (0.96, 0.98, 1.0, 1.02, 1.04):
            for th in (-3.0, -1.5, 0.0, 1.5, 3.0):
                pos, v = _peer_align(view.image, rec.image, 8.5 + th, sc / 0.98)
                if best is None or v > best[1]:
                    best = (pos, v)
        return best

    pos, _ = benchmark.pedantic(
        grid, rounds=1 if _small_bench(benchmark) else 3, iterations=1, warmup_rounds=0
    )
    assert np.hypot(*(pos - truth)) < 3.0


@pytest.fixture(scope="module")
def big(request):
    n = 1024 if _small(request) else 4096
    return np.random.default_rng(0).random((n, n), dtype=np.float32)


@pytest.mark.benchmark(group="rescale-12x")
def test_area_shrink_emgeom(benchmark, big):
    out = benchmark(lambda: rescale(big, 1 / 12.01, "area"))
    assert out.shape == (math.floor(big.shape[0] / 12.01),) * 2
    assert abs(float(out.mean()) - float(big.mean())) < 1e-3


@pytest.mark.benchmark(group="rescale-12x")
def test_area_shrink_cv2(benchmark, big):
    m = math.floor(big.shape[0] / 12.01)
    out = benchmark(lambda: cv2.resize(big, (m, m), interpolation=cv2.INTER_AREA))
    assert out.shape == (m, m)


@pytest.fixture(scope="module")
def pair2048(request):
    n = 512 if _small(request) else 2048
    rng = np.random.default_rng(1)
    # periodic smooth noise: Gaussian low-pass in Fourier space
    f = np.fft.fftfreq(n)
    g = np.exp(-(f[:, None] ** 2 + f[None, :] ** 2) * (2 * np.pi * 2.0) ** 2 / 2)
    a = np.fft.irfft2(np.fft.rfft2(rng.standard_normal((n, n))) * g[:, : n // 2 + 1], s=(n, n))
    a = np.ascontiguousarray(a, dtype=np.float32)
    b = np.ascontiguousarray(np.roll(a, (9, -14), axis=(0, 1)))  # circular, as the peers assume
    return a, b  # a(x) = b(x − d) with d = (dx, dy) = (14, −9)


@pytest.mark.benchmark(group="xcorr-2048")
def test_xcorr_emgeom(benchmark, pair2048):
    a, b = pair2048
    res = benchmark(
        lambda: crossmag.correlate(a, b, filter=None, method="phase", n_peaks=1, taper_fraction=0.0)
    )
    assert res.shift == pytest.approx((14.0, -9.0), abs=0.3)


@pytest.mark.benchmark(group="xcorr-2048")
def test_xcorr_scipy_fft_planned(benchmark, pair2048):
    a, b = pair2048
    n = a.shape[0]

    def run():
        g = sfft.rfft2(a, workers=2) * np.conj(sfft.rfft2(b, workers=2))
        g /= np.abs(g) + 1e-12
        c = sfft.irfft2(g, s=a.shape, workers=2)
        iy, ix = np.unravel_index(int(np.argmax(c)), c.shape)
        return ((ix + n // 2) % n - n // 2, (iy + n // 2) % n - n // 2)

    assert benchmark(run) == (14, -9)


@pytest.mark.benchmark(group="xcorr-2048")
def test_xcorr_pyfftw_planned(benchmark, pair2048):
    pyfftw = pytest.importorskip("pyfftw")
    a, b = pair2048
    n = a.shape[0]
    ia = pyfftw.empty_aligned(a.shape, dtype="float32")
    fa = pyfftw.empty_aligned((n, n // 2 + 1), dtype="complex64")
    fb = pyfftw.empty_aligned((n, n // 2 + 1), dtype="complex64")
    oc = pyfftw.empty_aligned(a.shape, dtype="float32")
    plan = "FFTW_ESTIMATE" if _small_bench(benchmark) else "FFTW_MEASURE"
    fwd = pyfftw.FFTW(ia, fa, axes=(0, 1), threads=2, flags=(plan,))
    inv = pyfftw.FFTW(fb, oc, axes=(0, 1), direction="FFTW_BACKWARD", threads=2, flags=(plan,))

    def run():
        ia[:] = a
        fwd()
        f1 = fa.copy()
        ia[:] = b
        fwd()
        g = f1 * np.conj(fa)
        g /= np.abs(g) + 1e-12
        fb[:] = g
        inv()
        iy, ix = np.unravel_index(int(np.argmax(oc)), oc.shape)
        return ((ix + n // 2) % n - n // 2, (iy + n // 2) % n - n // 2)

    assert benchmark(run) == (14, -9)


@pytest.mark.benchmark(group="xcorr-2048")
def test_xcorr_cv2_phasecorrelate(benchmark, pair2048):
    a, b = pair2048
    (dx, dy), _ = benchmark(lambda: cv2.phaseCorrelate(b, a))
    assert (dx, dy) == pytest.approx((14.0, -9.0), abs=0.3)
