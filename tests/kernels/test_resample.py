"""Rust affine warp == numpy reference; conventions of the sampling map; bad input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emgeom import reference, resample
from emgeom.errors import InvalidTypeError, InvalidValueError, ShapeError


def _random_affine(rng: np.random.Generator) -> np.ndarray:
    th = rng.uniform(-np.pi, np.pi)
    s = rng.uniform(0.5, 2.0)
    m = s * np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    m = m + rng.normal(0, 0.05, (2, 2))
    return np.hstack([m, rng.uniform(-10, 40, (2, 1))])


@pytest.mark.parametrize("order", [1, 3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_rust_matches_reference(order: int, dtype: type) -> None:
    rng = np.random.default_rng(1)
    for _ in range(5):
        img = rng.normal(size=(int(rng.integers(1, 40)), int(rng.integers(1, 40)))).astype(dtype)
        a = _random_affine(rng)
        shape = (int(rng.integers(1, 30)), int(rng.integers(1, 30)))
        got = resample.warp_affine(img, a, shape, order=order)
        ref = reference.warp_affine(img, a, shape, order=order)
        assert got.dtype == dtype
        tol = 2e-5 if dtype == np.float32 else 1e-12
        np.testing.assert_allclose(got, ref, rtol=0, atol=tol * max(1.0, np.abs(img).max()))


@settings(max_examples=60, deadline=None)
@given(
    ny=st.integers(1, 25),
    nx=st.integers(1, 25),
    seed=st.integers(0, 2**32 - 1),
    order=st.sampled_from([1, 3]),
)
def test_rust_matches_reference_property(ny: int, nx: int, seed: int, order: int) -> None:
    rng = np.random.default_rng(seed)
    img = rng.normal(size=(ny, nx))
    a = _random_affine(rng)
    got = resample.warp_affine(img, a, (ny + 3, nx + 2), order=order, fill=-7.0)
    ref = reference.warp_affine(img, a, (ny + 3, nx + 2), order=order, fill=-7.0)
    np.testing.assert_allclose(got, ref, atol=1e-11)


def test_translation_direction_and_xy_order() -> None:
    # A = [I | (2, 0)] samples the input 2 columns to the right: content moves left by 2 in x.
    img = np.zeros((8, 10))
    img[3, 6] = 1.0
    out = resample.warp_affine(img, [[1, 0, 2], [0, 1, 0]], order=1, fill=0.0)
    assert out[3, 4] == 1.0 and out.sum() == 1.0


def test_stack_is_each_image_warped() -> None:
    rng = np.random.default_rng(3)
    stack = rng.normal(size=(4, 16, 12)).astype(np.float32)
    a = _random_affine(rng)
    got = resample.warp_affine(stack, a, (10, 9))
    for k in range(4):
        np.testing.assert_array_equal(got[k], resample.warp_affine(stack[k], a, (10, 9)))


def test_integer_images_are_converted() -> None:
    img = np.arange(20, dtype=np.int16).reshape(4, 5)
    out = resample.warp_affine(img, [[1, 0, 0], [0, 1, 0]])
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, img.astype(np.float32))


def test_threads_give_identical_results() -> None:
    rng = np.random.default_rng(5)
    img = rng.normal(size=(300, 200)).astype(np.float32)
    a = _random_affine(rng)
    one = resample.warp_affine(img, a, n_threads=1)
    many = resample.warp_affine(img, a, n_threads=3)
    np.testing.assert_array_equal(one, many)


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"image": np.zeros((0, 5))}, ShapeError, "non-empty"),
        ({"image": np.zeros(5)}, ShapeError, r"\(y, x\)"),
        ({"image": np.full((3, 3), np.nan)}, InvalidValueError, "NaN"),
        ({"image": np.zeros((3, 3), complex)}, InvalidTypeError, "complex"),
        ({"affine": [[1, 0], [0, 1]]}, ShapeError, r"affine.*\(2, 3\)"),
        ({"affine": [[1, 0, np.inf], [0, 1, 0]]}, InvalidValueError, "finite"),
        ({"order": 2}, InvalidValueError, "order"),
        ({"n_threads": 0}, InvalidValueError, "n_threads"),
        ({"output_shape": (0, 3)}, InvalidValueError, "output_shape"),
        ({"fill": float("nan")}, InvalidValueError, "fill"),
    ],
)
def test_bad_input(kwargs: dict, exc: type, match: str) -> None:
    args = {"image": np.ones((4, 4)), "affine": [[1, 0, 0], [0, 1, 0]]} | kwargs
    with pytest.raises(exc, match=match):
        resample.warp_affine(**args)
