"""The masked Gaussian high-pass kernel (``emgeom_kernels::highpass``) against its numpy
oracle, and its bad input."""

from __future__ import annotations

import numpy as np
import pytest

from emgeom import _core, errors
from emgeom.reference.highpass import masked_gaussian_highpass as oracle


@pytest.mark.parametrize(
    ("ny", "nx", "sigma", "pad"), [(116, 116, 3.0, (160, 160)), (37, 52, 4.5, (50, 75))]
)
def test_kernel_equals_the_numpy_oracle(
    ny: int, nx: int, sigma: float, pad: tuple[int, int]
) -> None:
    rng = np.random.default_rng(4)
    stack = rng.normal(size=(5, ny, nx)) + np.linspace(0, 30, nx)[None, None, :]
    yy, xx = np.mgrid[0:ny, 0:nx]
    mask = (xx - nx / 2) ** 2 + (yy - ny / 2) ** 2 < (0.45 * min(ny, nx)) ** 2
    got = _core.masked_gaussian_highpass(stack, mask, sigma=sigma, pad=pad)
    want = oracle(stack, mask, sigma, pad)
    assert got.shape == stack.shape and got.dtype == np.float64
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-11 * np.abs(stack).max())
    assert np.all(got[:, ~mask] == 0.0)
    # the ramp (the smooth background, std ~8.7) is mostly gone inside the mask, the unit
    # noise is not (normalised convolution leaves some of the ramp near the mask's edge)
    inner = got[:, mask]
    assert abs(inner.mean()) < 0.1 and 0.7 < inner.std() < 0.2 * np.linspace(0, 30, nx).std()
    # the same bits on one thread and on two
    one = _core.masked_gaussian_highpass(stack, mask, sigma=sigma, pad=pad, n_threads=1)
    assert np.array_equal(one, got)


def test_bad_input_names_the_argument() -> None:
    stack = np.zeros((1, 8, 9))
    mask = np.ones((8, 9), bool)
    with pytest.raises(errors.EmgeomError, match="mask"):
        _core.masked_gaussian_highpass(stack, np.ones((9, 8), bool), sigma=1.0, pad=(16, 16))
    with pytest.raises(errors.EmgeomError, match="sigma"):
        _core.masked_gaussian_highpass(stack, mask, sigma=float("nan"), pad=(16, 16))
    with pytest.raises(errors.EmgeomError, match="pad"):
        _core.masked_gaussian_highpass(stack, mask, sigma=1.0, pad=(4, 16))
