"""The stacked forward-model kernel of the crossmag refinement (several images at one pose,
only the wanted derivatives) against its numpy reference, and the refinement's helpers that
replaced loops (FFT lag products) against direct sums."""

from __future__ import annotations

import numpy as np
import pytest

from emgeom import _core
from emgeom.crossmag import _refine_stats
from emgeom.reference.crossmag_refine import area_predict


def _pose(p):
    return _core.Pose(tx=p[0], ty=p[1], s=p[2], theta_rad=p[3])


@pytest.mark.parametrize(
    ("k", "derivs"),
    [(1, (True, True, True, True)), (3, (True, True, False, False)), (4, (False,) * 4)],
)
def test_area_predict_stack_equals_numpy_reference(k, derivs):
    rng = np.random.default_rng(k)
    imgs = rng.normal(size=(3, 90, 70)).astype(np.float32)
    pose = (20.3, 15.1, 0.27, 0.7)
    box = (15, 10, 10, 12)
    out = _core.crossmag_area_predict_stack(
        imgs, _pose(pose), center=(34.5, 44.5), box_=box, k=k, derivs=derivs
    )
    want = [j for j in range(4) if derivs[j]]
    assert out.shape == (3, 1 + len(want), 12, 10)
    for m in range(3):
        p, d = area_predict(imgs[m], pose, (34.5, 44.5), box, k)
        np.testing.assert_allclose(out[m, 0], p, atol=1e-10)
        for q, j in enumerate(want):
            np.testing.assert_allclose(out[m, 1 + q], d[j], atol=1e-9)


def test_area_predict_stack_clamps_like_the_reference():
    """Samples off the fine image are clamped to its border, in the kernel and the oracle."""
    img = np.random.default_rng(5).normal(size=(1, 30, 40)).astype(np.float32)
    pose = (3.0, 2.0, 0.5, 0.3)
    out = _core.crossmag_area_predict_stack(
        img, _pose(pose), center=(20.0, 15.0), box_=(-4, -3, 12, 10), k=3, derivs=(True,) * 4
    )
    p, d = area_predict(img[0], pose, (20.0, 15.0), (-4, -3, 12, 10), 3)
    np.testing.assert_allclose(out[0, 0], p, atol=1e-10)
    np.testing.assert_allclose(out[0, 1:], d, atol=1e-9)


@pytest.mark.parametrize(
    "bad",
    [
        {"images": np.zeros((9, 4, 4), np.float32)},
        {"images": np.zeros((0, 4, 4), np.float32)},
        {"k": 0},
        {"pose": (0.0, 0.0, -1.0, 0.0)},
        {"box_": (0, 0, 0, 3)},
    ],
)
def test_area_predict_stack_rejects_bad_arguments(bad):
    args = {
        "images": np.zeros((1, 8, 8), np.float32),
        "pose": (1.0, 1.0, 0.5, 0.0),
        "center": (3.5, 3.5),
        "box_": (0, 0, 3, 3),
        "k": 2,
        "derivs": (True, True, False, False),
    } | bad
    args["pose"] = _pose(args["pose"])
    with pytest.raises(ValueError):
        _core.crossmag_area_predict_stack(**args)


def _acov_direct(res, mask, lag):
    r = np.where(mask, res, 0.0)
    m = mask.astype(float)
    ny, nx = r.shape
    out = np.zeros((2 * lag + 1, 2 * lag + 1))
    for dy in range(-lag, lag + 1):
        for dx in range(-lag, lag + 1):
            sa = (slice(max(0, dy), ny + min(0, dy)), slice(max(0, dx), nx + min(0, dx)))
            sb = (slice(max(0, -dy), ny + min(0, -dy)), slice(max(0, -dx), nx + min(0, -dx)))
            n = float((m[sa] * m[sb]).sum())
            out[dy + lag, dx + lag] = float((r[sa] * r[sb]).sum()) / n if n > 0 else 0.0
    return out


def test_fft_lag_products_equal_direct_sums():
    rng = np.random.default_rng(0)
    res = rng.normal(size=(37, 51))
    yy, xx = np.mgrid[:37, :51]
    mask = (xx - 25) ** 2 + (yy - 18) ** 2 < 300
    np.testing.assert_allclose(
        _refine_stats.acov(res, mask, 3), _acov_direct(res, mask, 3), atol=1e-12
    )
    j = rng.normal(size=(3, 37, 51))
    acv = rng.normal(size=(7, 7))
    direct = np.zeros((3, 3))
    jm = j * mask
    for dy in range(-3, 4):
        for dx in range(-3, 4):
            a = jm[:, max(0, dy) : 37 + min(0, dy), max(0, dx) : 51 + min(0, dx)]
            b = jm[:, max(0, -dy) : 37 + min(0, -dy), max(0, -dx) : 51 + min(0, -dx)]
            direct += acv[dy + 3, dx + 3] * np.einsum("iyx,jyx->ij", a, b)
    np.testing.assert_allclose(
        _refine_stats.sandwich_meat(j, mask, acv), direct, rtol=1e-10, atol=1e-9
    )


def test_noise_sigma_stride_estimates_the_same():
    rng = np.random.default_rng(4)
    img = rng.normal(0, 1.7, (300, 300))
    assert _refine_stats.noise_sigma(img, stride=3) == pytest.approx(1.7, rel=0.04)
    assert _refine_stats.noise_sigma(img, stride=1) == pytest.approx(1.7, rel=0.03)
