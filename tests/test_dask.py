"""emgeom.dask on a real distributed.LocalCluster with 2 worker processes."""

from __future__ import annotations

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

from emgeom import dask as edask  # noqa: E402
from emgeom.errors import InvalidTypeError, ShapeError  # noqa: E402
from emgeom.tilt import TiltGeometry, particle_defocus  # noqa: E402


@pytest.fixture(scope="module")
def client():  # type: ignore[no-untyped-def]
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as c,
    ):
        yield c


def geometry() -> TiltGeometry:
    tilts = np.arange(-60.0, 61.0, 3.0)
    return TiltGeometry(tilts, 85.0, 30000.0 + 10 * np.abs(tilts), hand=1)


def test_particle_defocus_on_cluster_equals_direct(client) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(0)
    pos = rng.uniform(-2000, 2000, size=(50_000, 3))
    g = geometry()
    lazy = edask.particle_defocus(g, da.from_array(pos, chunks=(10_000, 3)))
    assert lazy.shape == (50_000, g.n_tilts) and lazy.chunks[0] == (10_000,) * 5
    got = client.compute(lazy).result()
    np.testing.assert_array_equal(got, particle_defocus(g, pos))


def test_particle_defocus_threaded_scheduler_and_numpy_input() -> None:
    rng = np.random.default_rng(1)
    pos = rng.uniform(-500, 500, size=(3_001, 3))
    g = geometry()
    got = edask.particle_defocus(g, pos, dtype=np.float64).compute(scheduler="threads")
    np.testing.assert_allclose(got, particle_defocus(g, pos, dtype=np.float64), rtol=0, atol=0)


def test_particle_defocus_bad_input() -> None:
    with pytest.raises(InvalidTypeError, match="TiltGeometry"):
        edask.particle_defocus("nope", np.zeros((3, 3)))
    with pytest.raises(ShapeError, match=r"\(N, 3\)"):
        edask.particle_defocus(geometry(), da.zeros((10, 2)))


def test_align_pairs_on_cluster(client) -> None:  # type: ignore[no-untyped-def]
    from emgeom import crossmag

    rng = np.random.default_rng(2)
    big = rng.normal(size=(256, 256)).astype(np.float32)
    from scipy import ndimage

    big = ndimage.gaussian_filter(big, 3)
    pairs = []
    for dy, dx in [(40, 60), (100, 30), (70, 120)]:
        pairs.append((big, np.ascontiguousarray(big[dy : dy + 96, dx : dx + 96])))
    bag = edask.align_pairs(
        pairs, reference_pixel_a=1.0, moving_pixel_a=1.0, scale_search=0.0, rotation_search_deg=0.0
    )
    results = client.compute(bag).result()
    direct = [
        crossmag.align(
            r,
            m,
            reference_pixel_a=1.0,
            moving_pixel_a=1.0,
            scale_search=0.0,
            rotation_search_deg=0.0,
        )
        for r, m in pairs
    ]
    for (dy, dx), res, ref in zip([(40, 60), (100, 30), (70, 120)], results, direct, strict=True):
        assert res.found
        np.testing.assert_allclose(res.center, (dx + 47.5, dy + 47.5), atol=0.3)
        np.testing.assert_allclose(res.center, ref.center, atol=1e-9)
