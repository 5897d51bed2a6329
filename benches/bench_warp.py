"""Affine warp (issue 2): emgeom vs OpenCV (and scipy.ndimage as a slow peer).

Anisotropic-magnification correction of a 4096² float32 cryo-like image about its centre,
``A = [D | c − D·c]``, fill = image mean, groups ``warp-bilinear`` and ``warp-bicubic``; plus a
stack of 64 × 512² images (groups ``warp-stack-bilinear`` / ``warp-stack-bicubic``) against a
Python loop over ``cv2.warpAffine``. OpenCV is timed on its own (the fill value given); the fill
value (``img.mean(dtype=float64)``, what emgeom computes with ``fill=None``) is timed separately
in the same group.

Issue 16's goal, groups ``anisomag-bilinear`` / ``anisomag-bicubic``: the public correction
``emgeom.anisomag.correct(img, D, order, fill=0.0)`` (validation included) against
``cv2.warpAffine`` with ``BORDER_CONSTANT`` value 0 (the same work) and a fresh 64 MB
``img.copy()`` (the memory floor), each timed in blocks of ``BLOCK`` calls.

OpenCV is called as ``cv2.warpAffine(img, A, (nx, ny), flags=INTER_* | WARP_INVERSE_MAP,
borderMode=BORDER_CONSTANT, borderValue=mean)``: the same sampling map (output → input), pixel
centres on integers. It quantises positions to 1/32 px (``INTER_TAB_SIZE``) and its
``INTER_CUBIC`` is Keys with a = −0.75 (emgeom: a = −0.5), so only bilinear is compared with it
pixel for pixel; bicubic is checked against ``emgeom.reference`` on a crop.

With ``--benchmark-disable`` every body runs once on a 1024² image (to keep the suite fast) and
its assertions still hold; scipy (~1.7 s per call at 4096²) is skipped then.
"""

from __future__ import annotations

import numpy as np
import pytest

from emgeom import anisomag, reference, resample

cv2 = pytest.importorskip("cv2")

N_FULL, N_SMALL = 4096, 1024
D = np.array([[1.0058, 0.0101], [0.0093, 0.9956]])
STACK_FULL, STACK_SMALL = (64, 512, 512), (8, 512, 512)
FLAGS = {1: cv2.INTER_LINEAR, 3: cv2.INTER_CUBIC}
#: Calls per timed block in the anisomag groups, and blocks (rounds) per contender.
BLOCK, ROUNDS = 5, 7


def _cryo_like(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Band-limited noise (Gaussian low-pass, sigma ~2 px) plus white noise, SNR ~0.5."""
    ny, nx = shape[-2:]
    noise = rng.standard_normal(shape).astype(np.float32)
    fy = np.fft.fftfreq(ny)[:, None]
    fx = np.fft.rfftfreq(nx)[None, :]
    lp = np.exp(-2 * (np.pi * 2.0) ** 2 * (fx**2 + fy**2)).astype(np.float32)
    smooth = np.fft.irfft2(np.fft.rfft2(noise) * lp, s=(ny, nx)).astype(np.float32)
    smooth /= smooth.std()
    white = rng.standard_normal(shape).astype(np.float32) * np.float32(np.sqrt(2.0))
    return np.ascontiguousarray(smooth + white, dtype=np.float32)


def _crop(n: int) -> tuple[slice, slice]:
    """A 64² (y, x) interior crop of the output, checked against the numpy reference."""
    y0, x0 = 7 * n // 16, 11 * n // 16
    return slice(y0, y0 + 64), slice(x0, x0 + 64)


@pytest.fixture(scope="module")
def image(request) -> tuple[np.ndarray, np.ndarray, float]:
    n = N_SMALL if request.config.getoption("benchmark_disable", False) else N_FULL
    rng = np.random.default_rng(2)
    img = _cryo_like(rng, (n, n))
    c = np.array([n / 2, n / 2])
    a = resample.affine_about_center(D, c)
    return img, a, float(img.astype(np.float64).mean())


@pytest.fixture(scope="module")
def stack(request) -> tuple[np.ndarray, np.ndarray]:
    disabled = request.config.getoption("benchmark_disable", False)
    shape = STACK_SMALL if disabled else STACK_FULL
    rng = np.random.default_rng(3)
    imgs = _cryo_like(rng, shape)
    c = np.array([shape[2] / 2, shape[1] / 2])
    return imgs, resample.affine_about_center(D, c)


def _reference_crop(img: np.ndarray, a: np.ndarray, order: int, fill: float) -> np.ndarray:
    """``emgeom.reference.warp_affine`` on the output crop only (its map shifted to the crop)."""
    crop = _crop(img.shape[0])
    y0, x0 = crop[0].start, crop[1].start
    shape = (crop[0].stop - y0, crop[1].stop - x0)
    shifted = a.copy()
    shifted[:, 2] += a[:, :2] @ np.array([x0, y0], dtype=np.float64)
    return reference.warp_affine(img, shifted, shape, order=order, fill=fill)


def _check_emgeom(out: np.ndarray, img: np.ndarray, a: np.ndarray, order: int, m: float) -> None:
    assert out.shape == img.shape and out.dtype == np.float32
    # Corners map outside the input: they take the image mean (fill=None).
    np.testing.assert_allclose(out[[0, -1], [0, -1]], m, rtol=1e-6)
    want = _reference_crop(img, a, order, m)
    np.testing.assert_allclose(
        out[_crop(img.shape[0])], want, rtol=0, atol=2e-5 * np.abs(img).max()
    )


def _cv2_warp(img: np.ndarray, a: np.ndarray, order: int, m: float) -> np.ndarray:
    ny, nx = img.shape
    return cv2.warpAffine(
        img,
        a,
        (nx, ny),
        flags=FLAGS[order] | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=m,
    )


def _check_vs_emgeom_bilinear(got: np.ndarray, img: np.ndarray, a: np.ndarray) -> None:
    """Interior agreement with emgeom bilinear, allowing for OpenCV's 1/32-px positions."""
    ours = resample.warp_affine(img, a, order=1)
    inner = (slice(64, -64), slice(64, -64))
    gy, gx = np.gradient(img[inner])
    # Position error <= 1/64 px per axis from the 1/32 quantisation (+1/1024 px fixed point).
    tol = (np.abs(gx).max() + np.abs(gy).max()) * (1 / 64 + 1 / 1024) + 1e-5
    err = np.abs(got[inner].astype(np.float64) - ours[inner])
    assert err.max() <= tol, (err.max(), tol)
    assert err.mean() <= tol / 4


def _scipy_warp(img: np.ndarray, a: np.ndarray, order: int, m: float) -> np.ndarray:
    from scipy import ndimage

    # scipy works in (row, col) = (y, x): swap the axes of A.
    matrix = np.array([[a[1, 1], a[1, 0]], [a[0, 1], a[0, 0]]])
    offset = np.array([a[1, 2], a[0, 2]])
    return ndimage.affine_transform(img, matrix, offset, order=order, mode="constant", cval=m)


# --- single 4096² image ------------------------------------------------------------------------


@pytest.mark.parametrize("order", [1, 3], ids=["bilinear", "bicubic"])
def test_emgeom_warp(benchmark, image, order: int) -> None:
    img, a, m = image
    benchmark.group = f"warp-{'bilinear' if order == 1 else 'bicubic'}"
    benchmark.extra_info["threads"] = "all cores"
    out = benchmark(resample.warp_affine, img, a, order=order)
    _check_emgeom(out, img, a, order, m)


@pytest.mark.parametrize("order", [1, 3], ids=["bilinear", "bicubic"])
def test_cv2_warp(benchmark, image, order: int) -> None:
    img, a, m = image
    benchmark.group = f"warp-{'bilinear' if order == 1 else 'bicubic'}"
    benchmark.extra_info["threads"] = cv2.getNumThreads()
    # The peer alone, given the fill value; its mean is timed in test_fill_mean.
    out = benchmark(_cv2_warp, img, a, order, m)
    assert out.shape == img.shape and out.dtype == np.float32
    if order == 1:
        _check_vs_emgeom_bilinear(out, img, a)
    else:
        # a = -0.75 vs -0.5: same image up to a small high-frequency difference.
        ours = resample.warp_affine(img, a, order=3)
        inner = (slice(64, -64), slice(64, -64))
        rel = np.std(out[inner] - ours[inner]) / np.std(ours[inner])
        assert rel < 0.1, rel


@pytest.mark.parametrize("order", [1, 3], ids=["bilinear", "bicubic"])
def test_fill_mean(benchmark, image, order: int) -> None:
    """The fill value OpenCV would need for emgeom's ``fill=None`` (numpy, one thread)."""
    img, _, m = image
    benchmark.group = f"warp-{'bilinear' if order == 1 else 'bicubic'}"
    got = benchmark(lambda: float(img.mean(dtype=np.float64)))
    assert abs(got - m) <= 1e-9 * max(1.0, abs(m))


# --- issue 16: the public correction with fill=0 vs OpenCV's constant border and a copy -----------


def _blocks(benchmark, fn, *args, **kwargs):  # type: ignore[no-untyped-def]
    """Time ``fn(*args)`` in blocks of BLOCK calls (one round = one block; ms per call reported)."""
    small = benchmark.disabled
    return benchmark.pedantic(
        fn,
        args=args,
        kwargs=kwargs,
        rounds=1 if small else ROUNDS,
        iterations=1 if small else BLOCK,
        warmup_rounds=0 if small else 1,
    )


@pytest.mark.parametrize("order", [1, 3], ids=["bilinear", "bicubic"])
def test_emgeom_correct_fill0(benchmark, image, order: int) -> None:
    img, a, _ = image
    benchmark.group = f"anisomag-{'bilinear' if order == 1 else 'bicubic'}"
    out = _blocks(benchmark, anisomag.correct, img, D, order, fill=0.0)
    assert out.shape == img.shape and out.dtype == np.float32
    assert out[0, 0] == 0.0 and out[-1, -1] == 0.0  # corners map outside: the fill
    want = _reference_crop(img, a, order, 0.0)
    np.testing.assert_allclose(
        out[_crop(img.shape[0])], want, rtol=0, atol=2e-5 * np.abs(img).max()
    )


@pytest.mark.parametrize("order", [1, 3], ids=["bilinear", "bicubic"])
def test_cv2_correct_fill0(benchmark, image, order: int) -> None:
    img, a, _ = image
    benchmark.group = f"anisomag-{'bilinear' if order == 1 else 'bicubic'}"
    benchmark.extra_info["threads"] = cv2.getNumThreads()
    out = _blocks(benchmark, _cv2_warp, img, a, order, 0.0)
    assert out.shape == img.shape and out[0, 0] == 0.0
    if order == 1:
        _check_vs_emgeom_bilinear(out, img, a)


@pytest.mark.parametrize("order", [1, 3], ids=["bilinear", "bicubic"])
def test_copy_floor(benchmark, image, order: int) -> None:
    """A fresh copy of the 64 MB image: one read and one write of every pixel (memory floor)."""
    img, _, _ = image
    benchmark.group = f"anisomag-{'bilinear' if order == 1 else 'bicubic'}"
    out = _blocks(benchmark, img.copy)
    assert out.shape == img.shape and out[7, 9] == img[7, 9]


@pytest.mark.parametrize("order", [1, 3], ids=["bilinear", "bicubic"])
def test_scipy_warp(benchmark, image, order: int) -> None:
    if benchmark.disabled:
        pytest.skip("scipy.ndimage peer (~1.7 s per call) only runs when benchmarking")
    img, a, m = image
    benchmark.group = f"warp-{'bilinear' if order == 1 else 'bicubic'}"
    benchmark.extra_info["threads"] = 1
    out = benchmark.pedantic(_scipy_warp, args=(img, a, order, m), rounds=3, iterations=1)
    assert out.shape == img.shape
    if order == 1:  # scipy's order=1 is exact bilinear: same numbers as emgeom's
        ours = resample.warp_affine(img, a, order=1)
        inner = (slice(64, -64), slice(64, -64))
        np.testing.assert_allclose(out[inner], ours[inner], atol=1e-4 * np.abs(img).max())


# --- stack of 64 × 512² (8 × 512² with --benchmark-disable) ------------------------------------


@pytest.mark.parametrize("order", [1, 3], ids=["bilinear", "bicubic"])
def test_emgeom_warp_stack(benchmark, stack, order: int) -> None:
    imgs, a = stack
    benchmark.group = f"warp-stack-{'bilinear' if order == 1 else 'bicubic'}"
    out = benchmark(resample.warp_affine, imgs, a, order=order)
    assert out.shape == imgs.shape and out.dtype == np.float32
    for k in (0, imgs.shape[0] - 1):
        m = float(imgs[k].astype(np.float64).mean())
        np.testing.assert_allclose(out[k, 0, 0], m, rtol=1e-6)
        want = reference.warp_affine(imgs[k], a, imgs.shape[1:], order=order)
        np.testing.assert_allclose(out[k], want, rtol=0, atol=2e-5 * np.abs(imgs[k]).max())


@pytest.mark.parametrize("order", [1, 3], ids=["bilinear", "bicubic"])
def test_cv2_warp_stack(benchmark, stack, order: int) -> None:
    imgs, a = stack
    benchmark.group = f"warp-stack-{'bilinear' if order == 1 else 'bicubic'}"

    def run() -> np.ndarray:
        out = np.empty_like(imgs)
        for k in range(imgs.shape[0]):
            out[k] = _cv2_warp(imgs[k], a, order, float(imgs[k].mean(dtype=np.float64)))
        return out

    out = benchmark(run)
    assert out.shape == imgs.shape
    if order == 1:
        for k in (0, imgs.shape[0] - 1):
            _check_vs_emgeom_bilinear(out[k], imgs[k], a)
