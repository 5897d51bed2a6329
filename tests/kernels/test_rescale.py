"""emgeom.resample.rescale: Rust kernels equal the numpy references; geometry and noise."""

from __future__ import annotations

import numpy as np
import pytest

from emgeom.errors import InvalidTypeError, InvalidValueError
from emgeom.reference import rescale as ref
from emgeom.resample import rescale


@pytest.fixture(scope="module")
def noise() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((203, 250)).astype(np.float32)


@pytest.mark.parametrize("method", ["area", "lanczos3"])
@pytest.mark.parametrize("factor", [1 / 12.01, 1 / 3.7, 0.5, 0.77, (0.31, 0.62)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_separable_equals_reference(noise, method, factor, dtype):
    img = noise.astype(dtype)
    out = rescale(img, factor, method)
    fy, fx = factor if isinstance(factor, tuple) else (factor, factor)
    assert out.shape == (int(np.floor(203 * fy + 1e-6)), int(np.floor(250 * fx + 1e-6)))
    assert out.dtype == dtype
    expect = ref.rescale_separable(img, out.shape, (fy, fx), method)
    tol = 2e-5 if dtype == np.float32 else 1e-7  # tap weights are stored as float32
    np.testing.assert_allclose(out, expect, atol=tol)


def test_lanczos_enlarge_equals_reference(noise):
    out = rescale(noise[:40, :50], 2.5, "lanczos3")
    np.testing.assert_allclose(
        out, ref.rescale_separable(noise[:40, :50], out.shape, (2.5, 2.5), "lanczos3"), atol=2e-5
    )


@pytest.mark.parametrize("shape", [(32, 40), (51, 77), (128, 64)])
def test_fourier_equals_reference(noise, shape):
    img = noise[:64, :80]
    out = rescale(img, 1.0, "fourier", output_shape=shape)
    np.testing.assert_allclose(out, ref.fourier_rescale(img, shape), atol=2e-5)


@pytest.mark.parametrize(
    ("shape", "big"),
    [((10, 12), (23, 30)), ((9, 13), (20, 27)), ((64, 80), (128, 161)), ((7, 8), (7, 9))],
)
def test_fourier_enlarge_then_shrink_returns_the_image(shape, big):
    """Even and odd sizes: the Nyquist term of an even size is split on enlarging and gathered
    back on shrinking, so the round trip is exact (the old crop dropped it: errors ~1)."""
    img = np.random.default_rng(2).standard_normal(shape).astype(np.float32)
    up = rescale(img, 1.0, "fourier", output_shape=big)
    np.testing.assert_allclose(up, ref.fourier_rescale(img, big), atol=2e-5)
    back = rescale(up, 1.0, "fourier", output_shape=shape)
    np.testing.assert_allclose(back, img, atol=2e-5)
    same = rescale(img, 1.0, "fourier", output_shape=shape)
    np.testing.assert_allclose(same, img, atol=2e-5)


@pytest.mark.parametrize("m", [40, 41, 96])
def test_fourier_nyquist_cosine_survives_enlargement(m):
    """cos(πx) (the pure Nyquist term of an even grid) is its own band-limited interpolant."""
    n = 16
    x = np.arange(n)
    img = np.tile(np.cos(np.pi * x), (5, 1)).astype(np.float32)
    out = rescale(img, 1.0, "fourier", output_shape=(5, m))
    xs = (np.arange(m) + 0.5) * n / m - 0.5
    np.testing.assert_allclose(out, np.tile(np.cos(np.pi * xs), (5, 1)), atol=1e-5)


def test_fourier_shrink_keeps_the_output_nyquist_frequency():
    """A cosine at the output Nyquist frequency (m/2 cycles) with a phase is sampled exactly."""
    n, m = 64, 40
    x = np.arange(n)
    img = np.tile(np.cos(2 * np.pi * (m / 2) * x / n + 0.3), (3, 1)).astype(np.float32)
    out = rescale(img, 1.0, "fourier", output_shape=(3, m))
    xs = (np.arange(m) + 0.5) * n / m - 0.5
    expect = np.cos(2 * np.pi * (m / 2) * xs / n + 0.3)
    np.testing.assert_allclose(out[1], expect, atol=1e-5)
    np.testing.assert_allclose(out, ref.fourier_rescale(img, (3, m)), atol=2e-5)


def test_factor_12_shape_and_binning_identity():
    img = np.random.default_rng(1).random((4096, 4096), dtype=np.float32)
    out = rescale(img, 1 / 12.01, "area")
    assert out.shape == (341, 341)
    exact = rescale(img[:4092, :4092], 1 / 12, "area")
    np.testing.assert_allclose(
        exact, img[:4092, :4092].reshape(341, 12, 341, 12).mean((1, 3)), atol=1e-5
    )


@pytest.mark.parametrize("method", ["area", "lanczos3", "fourier", "bicubic", "bilinear"])
def test_pixel_centre_geometry_on_a_ramp(method):
    """Output pixel j samples input (j + 0.5)/f − 0.5: a linear ramp stays exact inside."""
    ny, nx = 120, 150
    x = np.arange(nx, dtype=np.float64)
    img = np.tile(0.3 * x + 2.0, (ny, 1))
    f = 0.4 if method in ("area", "lanczos3", "fourier") else 1.7
    if method == "fourier":
        # band-limited periodic: use a low-frequency cosine instead of a ramp
        img = np.tile(np.cos(2 * np.pi * 3 * x / nx), (ny, 1)).astype(np.float32)
        out = rescale(img, f, method)
        j = np.arange(out.shape[1])
        xs = (j + 0.5) * nx / out.shape[1] - 0.5
        np.testing.assert_allclose(out[5], np.cos(2 * np.pi * 3 * xs / nx), atol=1e-4)
        return
    out = rescale(img, f, method)
    j = np.arange(out.shape[1])
    expect = 0.3 * ((j + 0.5) / f - 0.5) + 2.0
    inner = slice(4, -4)
    # fractional boxes sample slightly off-centre; Lanczos-3 reproduces a ramp only to ~1%
    tol = {"area": 0.05, "lanczos3": 0.02}.get(method, 1e-5)
    np.testing.assert_allclose(out[10, inner], expect[inner], atol=tol * 0.3 + 1e-5)


def test_area_reduces_white_noise_by_the_factor():
    img = np.random.default_rng(2).normal(0, 3.0, (2000, 2000)).astype(np.float32)
    out = rescale(img, 0.1, "area")
    assert out.shape == (200, 200)
    assert abs(out.std() - 0.3) < 0.02
    pointwise = rescale(img, 0.1, "bilinear")
    assert pointwise.std() > 1.0  # no prefilter: the noise aliases
    assert abs(out.mean() - img.mean()) < 0.01


def test_bad_arguments():
    img = np.zeros((10, 10), np.float32)
    with pytest.raises(InvalidValueError, match="method"):
        rescale(img, 0.5, "nearest")
    with pytest.raises(InvalidValueError, match="factor"):
        rescale(img, 0.0)
    with pytest.raises(InvalidTypeError, match="factor"):
        rescale(img, "half")
    with pytest.raises(InvalidValueError, match="NaN"):
        rescale(np.full((4, 4), np.nan), 0.5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("method", ["area", "lanczos3"])
@pytest.mark.parametrize("pos", [(0, 0), (99, 99), (50, 99), (99, 0), (41, 7)])
def test_non_finite_pixel_anywhere_raises(dtype, method, pos):
    """The separable kernel checks every input pixel itself (no separate as_image pass),
    including rows/columns no output pixel reads (output_shape smaller than the image)."""
    img = np.random.default_rng(3).random((100, 100)).astype(dtype)
    for bad in (np.nan, np.inf, -np.inf):
        b = img.copy()
        b[pos] = bad
        for factor, shape in ((1 / 12.01, None), (0.5, None), (0.1, (2, 2))):
            with pytest.raises(InvalidValueError, match="image: 1 pixel"):
                rescale(b, factor, method, output_shape=shape)


def test_finite_overflow_is_not_reported_as_non_finite():
    img = np.full((8, 8), 3e38, np.float32)
    out = rescale(img, 0.5, "area")
    assert np.allclose(out, 3e38, rtol=1e-5)
