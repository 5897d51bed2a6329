"""Bulk per-particle defocus: emgeom (Rust) vs a numba prange kernel vs numpy matmul.

1e6 particles × 41 tilts into a preallocated float32 output (164 MB), all in one run, group
``tilt-defocus``; plus a memory-write floor (``ndarray.fill`` of the same output). With
``--benchmark-disable`` the sizes shrink so the suite stays fast; assertions still run.
"""

from __future__ import annotations

import numpy as np
import pytest

from emgeom import tilt

numba = pytest.importorskip("numba")

N_FULL, N_SMALL, T = 1_000_000, 20_000, 41
GROUP = "tilt-defocus"


@numba.njit(parallel=True, fastmath=True, cache=False)
def _numba_defocus(pos, c, out):  # pragma: no cover - compiled
    n = pos.shape[0]
    nt = c.shape[0]
    for i in numba.prange(n):
        x = pos[i, 0]
        y = pos[i, 1]
        z = pos[i, 2]
        for k in range(nt):
            out[i, k] = c[k, 3] + c[k, 0] * x + c[k, 1] * y + c[k, 2] * z


def _numpy_defocus(pos, c, out):
    np.matmul(pos, c[:, :3].T, out=out)
    out += c[:, 3]


@pytest.fixture(scope="module")
def problem(request):
    disabled = request.config.getoption("benchmark_disable", False)
    n = N_SMALL if disabled else N_FULL
    rng = np.random.default_rng(0)
    g = tilt.TiltGeometry(
        np.linspace(-60, 60, T), 85.0, rng.uniform(2e4, 4e4, T), hand=-1, defocus_slope=1.0
    )
    pos = rng.uniform(-5000, 5000, (n, 3))
    c32 = np.ascontiguousarray(g.coefficients().astype(np.float32))
    pos32 = np.ascontiguousarray(pos.astype(np.float32))
    want = tilt.particle_defocus(g, pos[:2000], dtype=np.float64)
    out = np.empty((n, T), dtype=np.float32)
    out.fill(0)  # touch the pages once: every contender writes into warm memory
    _numba_defocus(pos32[:8], c32, out[:8])  # compile outside the timing
    return g, pos, pos32, c32, out, want


def _check(out, want):
    np.testing.assert_allclose(out[: want.shape[0]], want, atol=0.05)


def test_emgeom_defocus(benchmark, problem):
    g, pos, _, _, out, want = problem
    benchmark.group = GROUP
    benchmark(tilt.particle_defocus, g, pos, out=out)
    _check(out, want)


def test_numba_prange_defocus(benchmark, problem):
    _, _, pos32, c32, out, want = problem
    benchmark.group = GROUP
    benchmark(_numba_defocus, pos32, c32, out)
    _check(out, want)


def test_numpy_matmul_defocus(benchmark, problem):
    _, _, pos32, c32, out, want = problem
    benchmark.group = GROUP
    benchmark(_numpy_defocus, pos32, c32, out)
    _check(out, want)


def test_memory_write_floor(benchmark, problem):
    out = problem[4]
    benchmark.group = GROUP
    benchmark(out.fill, 1.0)
    assert out[0, 0] == 1.0
