"""Dask's threaded scheduler scales with emgeom's kernels because they release the GIL.

Group "dask-defocus": per-particle defocus of 2e6 particles × 41 tilts as a dask array of
8 blocks, reduced to each particle's largest defocus (so that the final concatenation, which is
single-threaded, does not dominate), computed with the threaded scheduler on 1 and on 2 worker
threads (kernel threads per block = 1). With the GIL held, 2 workers would be no faster than 1.
"""

from __future__ import annotations

import numpy as np
import pytest

da = pytest.importorskip("dask.array")

from emgeom import dask as edask  # noqa: E402
from emgeom.tilt import TiltGeometry, particle_defocus  # noqa: E402


def _setup(disabled: bool):  # type: ignore[no-untyped-def]
    n = 20_000 if disabled else 2_000_000
    rng = np.random.default_rng(0)
    pos = rng.uniform(-2000, 2000, size=(n, 3))
    tilts = np.arange(-60.0, 61.0, 3.0)
    g = TiltGeometry(tilts, 85.0, 30000.0, hand=1)
    lazy = edask.particle_defocus(g, da.from_array(pos, chunks=(n // 8, 3)))
    return g, pos, lazy


@pytest.mark.parametrize("workers", [1, 2])
def test_dask_threaded_scaling(benchmark, workers: int) -> None:  # type: ignore[no-untyped-def]
    benchmark.group = "dask-defocus"
    g, pos, lazy = _setup(benchmark.disabled)
    deepest = lazy.max(axis=1)
    out = benchmark(lambda: deepest.compute(scheduler="threads", num_workers=workers))
    np.testing.assert_array_equal(out[:1000], particle_defocus(g, pos[:1000]).max(axis=1))
