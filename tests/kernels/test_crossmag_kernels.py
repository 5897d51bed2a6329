"""Rust correlation kernels equal their numpy references; sign conventions vs OpenCV/skimage."""

from __future__ import annotations

import numpy as np
import pytest

from emgeom import _core, crossmag
from emgeom.crossmag import _correlate
from emgeom.reference import crossmag as ref
from emgeom.reference import xcorr as ref_xcorr


def smooth(shape, seed, cell=6):
    rng = np.random.default_rng(seed)
    from emgeom.resample import rescale

    c = rng.standard_normal((shape[0] // cell + 4, shape[1] // cell + 4)).astype(np.float32)
    big = rescale(c, cell, "bicubic")
    return np.ascontiguousarray(big[cell : cell + shape[0], cell : cell + shape[1]])


@pytest.mark.parametrize("method", ["xcorr", "phase"])
@pytest.mark.parametrize(
    "filt", [crossmag.DEFAULT_FILTER, None, (-0.05, 0.0, 0.0, 0.0), (0.0, -0.1, 0.1, 0.2)]
)
def test_correlation_map_equals_reference(method, filt):
    rng = np.random.default_rng(3)
    a = rng.standard_normal((60, 70)).astype(np.float32)
    b = rng.standard_normal((50, 66)).astype(np.float32)
    res = crossmag.correlate(a, b, filter=filt, method=method, return_map=True)
    cmap = res.correlation_map
    f = (0.0, 0.0, 0.0, 0.0) if filt is None else filt
    expect = ref_xcorr.correlate_translation(a, b, cmap.shape, 0.1 * 50, f, method)
    np.testing.assert_allclose(cmap, expect, atol=2e-4 * np.abs(expect).max())


def test_imod_filter_reference_values():
    s = np.array([0.0, 0.1, 0.25, 0.3, 0.5])
    h = ref_xcorr.imod_filter(s, 0.03, 0.05, 0.0, 0.25)
    assert h[0] == 0.0
    np.testing.assert_allclose(h[2], 1 - np.exp(-(0.25**2) / (2 * 0.03**2)))
    np.testing.assert_allclose(
        h[3], np.exp(-(0.05**2) / (2 * 0.05**2)) * (1 - np.exp(-(0.09) / 0.0018))
    )


def test_top_k_peaks_sorted_separated_and_subpixel():
    img = smooth((128, 144), 4)
    shifted = np.roll(img, (7, -12), axis=(0, 1))
    res = crossmag.correlate(shifted, img, n_peaks=5, filter=None)
    # (np.roll wraps content through the taper, so allow a small parabolic-fit bias)
    assert res.peaks[0].dx == pytest.approx(-12, abs=0.15)
    assert res.peaks[0].dy == pytest.approx(7, abs=0.15)
    vals = [p.value for p in res.peaks]
    assert vals == sorted(vals, reverse=True)
    for i in range(len(res.peaks)):
        for j in range(i):
            d = np.hypot(res.peaks[i].dx - res.peaks[j].dx, res.peaks[i].dy - res.peaks[j].dy)
            assert d >= 2.5
    assert 0.5 < res.peaks[0].normalized <= 1.0 + 1e-6
    lim = crossmag.correlate(shifted, img, n_peaks=3, filter=None, max_shift=5.0)
    assert all(np.hypot(p.dx, p.dy) <= 5.5 for p in lim.peaks)


def test_subpixel_translation_and_peer_sign_conventions():
    """reference(x) = moving(x − d) ⇒ ours = +d as (dx, dy); cv2.phaseCorrelate(moving,
    reference) = +d as (x, y) (with a Hann window; without one it is biased on non-periodic
    crops); skimage phase_cross_correlation(reference, moving, normalization=None) = +d as
    (row, col) (scikit-image 0.26; its phase-normalised default fails on these crops)."""
    cv2 = pytest.importorskip("cv2")
    from scipy import ndimage

    big = smooth((300, 320), 5, cell=8).astype(np.float64)
    d = np.array([3.3, -5.6])  # (dx, dy)
    moving = big[50:250, 60:260]
    # ndimage.shift(x, s)(p) = x(p − s): reference(x) = big(x − d) = moving-content moved by +d
    reference = ndimage.shift(big, (d[1], d[0]), order=3, mode="nearest")[50:250, 60:260]
    ours = crossmag.correlate(reference.astype(np.float32), moving.astype(np.float32), filter=None)
    assert ours.shift[0] == pytest.approx(d[0], abs=0.15)
    assert ours.shift[1] == pytest.approx(d[1], abs=0.15)
    win = cv2.createHanningWindow((200, 200), cv2.CV_32F)
    (cx, cy), _ = cv2.phaseCorrelate(moving.astype(np.float32), reference.astype(np.float32), win)
    assert (cx, cy) == pytest.approx(tuple(d), abs=0.3)
    skr = pytest.importorskip("skimage.registration")
    sh, _, _ = skr.phase_cross_correlation(
        reference, moving, upsample_factor=20, normalization=None
    )
    assert (sh[1], sh[0]) == pytest.approx(tuple(d), abs=0.3)


def test_crossmag_point_kernel_equals_reference():
    rng = np.random.default_rng(6)
    reference = rng.standard_normal((80, 90)).astype(np.float32)
    moving = rng.standard_normal((30, 34)).astype(np.float32)
    a = np.array([[0.9, -0.1, 3.0], [0.1, 0.9, 2.0]])
    pad = (120, 128)
    s1, s2, r1, r2 = crossmag.DEFAULT_FILTER
    band = _core.Bandpass(sigma1=s1, sigma2=s2, radius1=r1, radius2=r2)
    setup = _core.CorrelationSetup(pad=pad, taper=4.0, filter=band, method="xcorr")
    prep = _core.crossmag_prepare(reference, setup, origin=(-5, -3), region=(85, 95))
    assert prep.pad == pad and prep.region == (85, 95)
    search = _core.PatchSearch(
        half=(17, 19),
        taper=3.0,
        allowed=_core.AllowedRegion(x0=0, x1=95, y0=0, y1=85),
        peaks=_core.PeakSearch(n_peaks=5, min_separation=4.0),
        score_affines=a[None],
    )
    out, cmap = _core.crossmag_evaluate(prep, moving, a[None], search, want_map=True)
    expect = ref.crossmag_point(
        reference, (-5, -3), (85, 95), pad, 4.0, crossmag.DEFAULT_FILTER, moving, a, (17, 19), 3.0
    )
    np.testing.assert_allclose(cmap, expect, atol=1e-5 * np.abs(expect).max())
    peaks = out[0].peaks
    iy, ix = np.unravel_index(np.argmax(expect), expect.shape)
    assert np.hypot(peaks[:, 0] - ix, peaks[:, 1] - iy).min() < 1.0
    assert np.all(np.abs(peaks[:, 3]) <= 1.0) and np.all((peaks[:, 4] >= 0) & (peaks[:, 4] <= 1.0))


def test_correlate_is_deterministic_and_thread_count_independent():
    a = smooth((96, 96), 7)
    b = np.roll(a, 3, axis=1)
    r1 = crossmag.correlate(a, b, n_threads=1, return_map=True)
    r2 = crossmag.correlate(a, b, n_threads=2, return_map=True)
    np.testing.assert_allclose(
        r1.correlation_map, r2.correlation_map, atol=1e-5 * np.abs(r1.correlation_map).max()
    )
    assert r1.shift == pytest.approx(r2.shift)


@pytest.mark.parametrize(
    "filt",
    [(0.05, 0.05, 0.0, 0.25), (0.0, 0.03, 0.0, 0.4), (0.1, 0.0, 0.1, 0.35), (0.0, 0.0, 0.0, 0.0)],
)
def test_production_imod_filter_equals_the_oracle(filt):
    """crossmag._correlate.imod_filter (the noise-correlation area of the search thresholds) is
    the production copy of the oracle's filter; they must agree."""
    s = np.linspace(0.0, 0.75, 301)
    np.testing.assert_array_equal(_correlate.imod_filter(s, *filt), ref_xcorr.imod_filter(s, *filt))
