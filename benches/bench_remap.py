"""Remapping 1e6 picks between two reconstructions (group ``remap``).

Contenders, all in one run, every one producing the same target voxels:

* ``emgeom`` ``tilt.remap`` end to end: validation, the exactness test of the two projection
  models, the residual over a 6³ grid × 41 tilts, the voxel map (Rust kernel), the inside flags;
  once for the same alignment (exact) and once for a second alignment (rigid fit);
* ``numpy_chain``: what a script does by hand, voxels → Å about the source centre → Å about
  the target centre → voxels, with numpy broadcasting (no residual, no flags);
* ``numpy_affine``: the composed 4×4 map applied with one ``pts @ A.T + b`` (the floor of a
  numpy implementation);
* orientations: ``emgeom`` with 1e6 rotation matrices (validated) vs a bare ``np.matmul``.

With ``--benchmark-disable`` the sizes shrink so the suite stays fast; assertions still run.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from emgeom.model.rotation import matrices_from_relion
from emgeom.tilt import Reconstruction, TiltGeometry, remap

N_FULL, N_SMALL, T = 1_000_000, 20_000, 41
GROUP = "remap"


@pytest.fixture(scope="module")
def problem(request):
    disabled = request.config.getoption("benchmark_disable", False)
    n = N_SMALL if disabled else N_FULL
    rng = np.random.default_rng(0)
    g = TiltGeometry(
        np.linspace(-60, 60, T),
        85.0,
        np.full(T, 3e4),
        shifts_a=rng.normal(0, 30, (T, 2)),
        pixel_size_a=1.54,
    )
    src = Reconstruction(
        g, (1023, 1024, 301), binning=4, program="relion5", image_shape=(4096, 4096)
    )
    tgt = src.with_program("imod", binning=8, volume_shape=(512, 511, 151))
    g2 = g.replace(shifts_a=np.asarray(g.shifts_a) + rng.normal(0, 0.5 * 1.54, (T, 2)))
    other = Reconstruction(g2, (512, 511, 151), binning=8, program="imod", image_shape=(4096, 4096))
    pts = rng.uniform(0, 1, (n, 3)) * (np.array(src.volume_shape) - 1)
    mats = matrices_from_relion(*rng.uniform(0, 180, (n, 3)).T)
    want = remap(pts[:1000], src, tgt).points
    return src, tgt, other, pts, mats, want


def _numpy_chain(src, tgt, pts):
    p_a = ((pts - src.centre_vox) * src.voxel_size_a) @ src.axes.T
    return (p_a / tgt.voxel_size_a) @ tgt.axes + tgt.centre_vox


def test_emgeom_remap_same_alignment(benchmark, problem):
    src, tgt, _, pts, _, want = problem
    benchmark.group = GROUP
    r = benchmark(remap, pts, src, tgt)
    assert r.exact
    np.testing.assert_allclose(r.points[:1000], want, atol=1e-9)


def test_emgeom_remap_fitted(benchmark, problem):
    src, _, other, pts, _, _ = problem
    benchmark.group = GROUP
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = benchmark(remap, pts, src, other)
    assert not r.exact and r.residual_px < 2.0


def test_numpy_chain(benchmark, problem):
    src, tgt, _, pts, _, want = problem
    benchmark.group = GROUP
    out = benchmark(_numpy_chain, src, tgt, pts)
    np.testing.assert_allclose(out[:1000], want, atol=1e-9)


def test_numpy_affine(benchmark, problem):
    src, tgt, _, pts, _, want = problem
    v = remap(pts[:10], src, tgt).voxel_transform
    benchmark.group = GROUP
    out = benchmark(lambda: pts @ v[:3, :3].T + v[:3, 3])
    np.testing.assert_allclose(out[:1000], want, atol=1e-9)


def test_emgeom_remap_with_orientations(benchmark, problem):
    src, tgt, _, pts, mats, _ = problem
    benchmark.group = GROUP + "-orientations"
    r = benchmark(remap, pts, src, tgt, matrices=mats)
    np.testing.assert_allclose(r.matrices[:100], mats[:100], atol=1e-12)  # same axes


def test_numpy_matmul_orientations(benchmark, problem):
    _, _, _, _, mats, _ = problem
    rot = np.eye(3)
    benchmark.group = GROUP + "-orientations"
    out = benchmark(np.matmul, rot, mats)
    assert out.shape == mats.shape
