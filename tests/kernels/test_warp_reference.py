"""The warp kernel against its numpy oracle, and the check fused into its parallel pass (issue 16).

``emgeom.reference.warp.warp_affine`` mirrors ``emgeom_kernels::warp`` pixel by pixel in float64
(no row split, no SIMD); the kernel runs on the detected instruction set (the Rust tests compare
every instruction set with the scalar path). Since issue 16 float32/float64 inputs are validated
inside the warp's parallel pass instead of by two serial min/max passes: a bad pixel anywhere,
whatever the output shape, must still raise the usual ``image:`` error.
"""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from emgeom import anisomag, resample
from emgeom.errors import InvalidValueError
from emgeom.reference import interp as ref_interp
from emgeom.reference import warp as ref_warp

REFERENCE = Path(ref_warp.__file__).parent


def _maps(n: int) -> list[np.ndarray]:
    c = np.array([n / 2, n / 2])
    th = np.radians(33.0)
    rot = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    return [
        resample.affine_about_center([[1.0058, 0.0101], [0.0093, 0.9956]], c),
        resample.affine_about_center(rot, c),
        resample.affine_about_center([[0.37, 0.02], [-0.01, 0.41]], c),  # zoom in
        resample.affine_about_center([[2.6, 0.1], [0.0, 2.2]], c),  # zoom out
        np.array([[1.0, 0.0, 0.25], [0.0, 1.0, -0.75]]),
    ]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("order", [1, 3])
@pytest.mark.parametrize("fill", [None, -2.5])
def test_warp_matches_the_numpy_oracle(dtype: type, order: int, fill: float | None) -> None:
    rng = np.random.default_rng(16)
    n = 70
    img = rng.uniform(-1, 1, (n, n + 9)).astype(dtype)
    for a in _maps(n):
        for shape in [(n, n + 9), (33, 101)]:
            got = resample.warp_affine(img, a, shape, order=order, fill=fill)
            want = ref_warp.warp_affine(img, a, shape, order=order, fill=fill)
            atol = 2e-5 if dtype == np.float32 else 1e-12
            np.testing.assert_allclose(got, want, rtol=0, atol=atol)


def test_mean_fill_is_the_image_mean_for_any_output_height() -> None:
    # Fill::Mean is summed inside the row pass, each output row taking a share of the source
    # rows: taller, shorter and one-row outputs must all see every source row once.
    rng = np.random.default_rng(3)
    img = rng.uniform(0, 10, (50, 40)).astype(np.float32)
    m = float(img.astype(np.float64).mean())
    far = np.array([[1.0, 0.0, 1e4], [0.0, 1.0, 0.0]])  # everything outside
    for shape in [(50, 40), (7, 3), (1, 1), (173, 9)]:
        out = resample.warp_affine(img, far, shape)
        np.testing.assert_allclose(out, m, rtol=1e-6)
        assert np.all(out == out.flat[0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_bad_pixel_anywhere_raises(dtype: type, bad: float) -> None:
    n = 40
    a = resample.affine_about_center([[1.3, 0.1], [0.0, 1.2]], [n / 2, n / 2])
    for y, x in [(0, 0), (n - 1, n - 1), (17, 5), (n - 1, 0)]:
        img = np.ones((n, n), dtype)
        img[y, x] = bad
        for shape in [(n, n), (3, 5), (2 * n + 1, n)]:
            for fill in (None, 0.0):
                with pytest.raises(InvalidValueError, match="image: 1 pixel"):
                    resample.warp_affine(img, a, shape, order=1, fill=fill)
        with pytest.raises(InvalidValueError, match="image: 1 pixel"):
            anisomag.correct(img, [[1.01, 0.0], [0.0, 0.99]], fill=0.0)


def test_stack_with_one_bad_image_raises_and_range_is_checked() -> None:
    stack = np.zeros((4, 16, 16), np.float32)
    stack[2, 15, 3] = np.nan
    with pytest.raises(InvalidValueError, match="NaN or inf"):
        resample.warp_affine(stack, np.eye(2, 3), order=3, fill=0.0)
    big = np.zeros((16, 16), np.float32)
    big[9, 9] = 1e36  # beyond float32 max / 1024
    with pytest.raises(InvalidValueError, match="overflow"):
        resample.warp_affine(big, np.eye(2, 3), fill=0.0)
    ok = np.full((16, 16), np.finfo(np.float32).max / 2048, np.float32)
    out = resample.warp_affine(ok, np.eye(2, 3), fill=0.0)
    np.testing.assert_array_equal(out, ok)


def test_non_contiguous_and_integer_inputs_still_validated_in_python() -> None:
    img = np.ones((20, 20), np.float32)
    img[4, 4] = np.nan
    with pytest.raises(InvalidValueError, match="NaN"):
        resample.warp_affine(img[:, ::2], np.eye(2, 3))
    ints = np.arange(400, dtype=np.int16).reshape(20, 20)
    np.testing.assert_allclose(resample.warp_affine(ints, np.eye(2, 3)), ints)


def test_oracle_weights() -> None:
    t = np.linspace(0, 1, 41)[:-1]
    np.testing.assert_allclose(sum(ref_interp.keys_weights(t)), 1.0, atol=1e-14)
    np.testing.assert_allclose(sum(ref_interp.bilinear_weights(t)), 1.0, atol=1e-15)
    assert ref_interp.keys_kernel(np.array([0.0, 1.0, 2.0])).tolist() == [1.0, 0.0, 0.0]
    np.testing.assert_allclose(
        ref_interp.lanczos3(np.array([0.0, 1.0, 2.0, 3.5])), [1, 0, 0, 0], atol=1e-15
    )


@pytest.mark.parametrize("name", ["interp.py", "warp.py", "defocus.py", "__init__.py"])
def test_oracles_import_nothing_from_production(name: str) -> None:
    tree = ast.parse((REFERENCE / name).read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            mod = node.module or ""
        elif isinstance(node, ast.Import):
            mod = node.names[0].name
        else:
            continue
        top = mod.split(".")[0]
        assert top in {"__future__", "typing", "math", "numpy"} or mod.startswith(
            "emgeom.reference"
        ), (name, mod)
