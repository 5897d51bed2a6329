"""Masked normalised cross-correlation: emgeom vs scikit-image in the same run.

Group ``masked-ncc`` (``pytest benches/bench_ncc.py --benchmark-only``): a 1024² reference with a
masked-out hole and border, and a 1024² moving image with a masked-out corner (full linear
correlation, 2047² displacements): ``emgeom._ncc.masked_correlate`` (Rust, float32 FFTs; also
with the reference mask only, the moving image fully valid) vs
``skimage.registration._masked_phase_cross_correlation.cross_correlate_masked`` in float64 (its
accurate mode) and in float32. With ``--benchmark-disable`` each body runs once on 256² inputs
and the checks still hold.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from emgeom.crossmag import masked_correlate

mpc = pytest.importorskip("skimage.registration._masked_phase_cross_correlation")

SHIFT = (37, -21)  # (dx, dy): reference(x) = moving(x - d)


@pytest.fixture(scope="module")
def pair(request):
    n = 256 if request.config.getoption("benchmark_disable", False) else 1024
    rng = np.random.default_rng(4)
    big = ndimage.gaussian_filter(rng.normal(size=(n + 128, n + 128)), 2.0)
    big = (1000.0 + 50.0 * big / big.std()).astype(np.float32)
    ref = big[64 : 64 + n, 64 : 64 + n].copy()
    dx, dy = SHIFT
    mov = big[64 + dy : 64 + dy + n, 64 + dx : 64 + dx + n].copy()
    mref = np.ones(ref.shape, bool)
    mref[n // 4 : n // 2, n // 3 : n // 2] = False  # contamination / dead region
    mref[:8, :] = False
    ref[~mref] = 5000.0
    yy, xx = np.mgrid[:n, :n]
    mmov = xx + yy >= n // 4  # empty corner of a rotated image
    mov[~mmov] = 0.0
    return ref, mov, mref, mmov


def _check(ncc_map, origin):
    iy, ix = np.unravel_index(np.argmax(ncc_map), ncc_map.shape)
    assert (ix - origin[1], iy - origin[0]) == SHIFT
    assert ncc_map.max() > 0.99


def test_emgeom_masked_ncc(benchmark, pair):
    benchmark.group = "masked-ncc"
    ref, mov, mref, mmov = pair
    r = benchmark(masked_correlate, ref, mov, reference_mask=mref, moving_mask=mmov)
    _check(r.correlation_map, r.origin)
    assert np.allclose(r.shift, SHIFT, atol=0.05)


def test_emgeom_masked_ncc_reference_mask_only(benchmark, pair):
    """Moving image fully valid (its corner left in): 7 transforms instead of 12."""
    benchmark.group = "masked-ncc"
    ref, mov, mref, _ = pair
    mov = mov.copy()
    mov[mov == 0] = 1000.0  # fill the empty corner with the background level
    r = benchmark(masked_correlate, ref, mov, reference_mask=mref)
    assert np.allclose(r.shift, SHIFT, atol=0.05)


def test_skimage_masked_ncc_float64(benchmark, pair):
    benchmark.group = "masked-ncc"
    ref, mov, mref, mmov = pair
    a, b = ref.astype(np.float64), mov.astype(np.float64)
    out = benchmark(mpc.cross_correlate_masked, a, b, mref, mmov, mode="full", axes=(0, 1))
    _check(out, (mov.shape[0] - 1, mov.shape[1] - 1))


def test_skimage_masked_ncc_float32(benchmark, pair):
    benchmark.group = "masked-ncc"
    ref, mov, mref, mmov = pair
    out = benchmark(mpc.cross_correlate_masked, ref, mov, mref, mmov, mode="full", axes=(0, 1))
    # float32 Padfield without mean removal: the 1000-count offset costs accuracy; the argmax
    # is usually still right for this strong signal, so only the shape is checked
    assert out.shape == (2 * ref.shape[0] - 1, 2 * ref.shape[1] - 1)
