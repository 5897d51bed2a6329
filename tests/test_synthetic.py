"""emgeom.synthetic: deterministic specimens, exact acquisition geometry, no wrap-around."""

from __future__ import annotations

import numpy as np
import pytest

from emgeom import synthetic as syn
from emgeom.errors import InvalidValueError
from emgeom.resample import warp_affine


@pytest.fixture(scope="module")
def spec() -> syn.Specimen:
    return syn.make_specimen((512, 640), pixel_a=4.0, seed=3, n_particles=300, grid_bar=True)


def test_deterministic_and_content(spec):
    again = syn.make_specimen((512, 640), pixel_a=4.0, seed=3, n_particles=300, grid_bar=True)
    np.testing.assert_array_equal(spec.image, again.image)
    other = syn.make_specimen((512, 640), pixel_a=4.0, seed=4, n_particles=300, grid_bar=True)
    assert not np.array_equal(spec.image, other.image)
    assert spec.image.dtype == np.float32 and spec.image.shape == (512, 640)
    assert np.isfinite(spec.image).all()
    # grid bar: the left strip is much darker than anything else
    w = 640 // 12
    assert spec.image[:, : w - 1].mean() < spec.image[:, w + 5 :].mean() - 1.5
    assert spec.hole_centers.shape == (1, 2)
    assert spec.hole_radius_px == pytest.approx(1500.0)


def test_hole_edge_crosses_the_field():
    s = syn.make_specimen(
        (1024, 1024),
        pixel_a=4.0,
        seed=1,
        n_particles=0,
        n_contamination=0,
        carbon_texture=0.0,
        ice_gradient=0.0,
    )
    frac_carbon = float(np.mean(s.image < -0.25))
    assert 0.2 < frac_carbon < 0.8


def test_acquisition_geometry_is_exact(spec):
    """Same pixel size, rotation 30°: image pixel u shows master pixel to_master·(u, 1)."""
    acq = syn.acquire(
        spec, pixel_a=4.0, shape=(101, 120), center=(300.25, 260.5), rotation_deg=30.0
    )
    lin = acq.to_master[:, :2]
    np.testing.assert_allclose(lin, syn.rotation_matrix(30.0), atol=1e-12)
    c = np.array(acq.center)
    np.testing.assert_allclose(lin @ c + acq.to_master[:, 2], [300.25, 260.5])
    direct = warp_affine(spec.image, acq.to_master, (101, 120), order=3)
    np.testing.assert_allclose(acq.clean, direct, atol=1e-6)


def test_coarse_acquisition_is_antialiased_and_consistent(spec):
    a = syn.acquire(spec, pixel_a=20.0, shape=(100, 120))
    assert a.to_master[0, 0] == pytest.approx(5.0)
    # the master's area average over the 5×5 block under a pixel equals that pixel
    u = np.array([40, 30])
    m = a.to_master[:, :2] @ u + a.to_master[:, 2]
    x0, y0 = round(m[0] - 2), round(m[1] - 2)
    block = spec.image[y0 : y0 + 5, x0 : x0 + 5].mean()
    assert a.clean[30, 40] == pytest.approx(block, abs=2e-3)


def test_affine_between_and_noise(spec):
    view = syn.acquire(spec, pixel_a=20.0, shape=(100, 120), noise_sigma=0.3, seed=1)
    prev = syn.acquire(
        spec,
        pixel_a=2.0,
        shape=(200, 200),
        center=(320.0, 250.0),
        rotation_deg=12.0,
        noise_sigma=1.5,
        seed=2,
    )
    t = syn.affine_between(view, prev)
    np.testing.assert_allclose(t[:, :2], 0.1 * syn.rotation_matrix(12.0), atol=1e-12)
    back = syn.compose_affine(view.to_master, t)
    np.testing.assert_allclose(back, prev.to_master, atol=1e-9)
    np.testing.assert_allclose(
        syn.compose_affine(t, syn.invert_affine(t)), [[1, 0, 0], [0, 1, 0]], atol=1e-12
    )
    assert (prev.image - prev.clean).std() == pytest.approx(1.5, rel=0.05)


def test_no_wrap_around(spec):
    with pytest.raises(InvalidValueError, match="outside the master"):
        syn.acquire(spec, pixel_a=4.0, shape=(100, 100), center=(10.0, 10.0))
    a = syn.acquire(spec, pixel_a=4.0, shape=(100, 100), center=(10.0, 10.0), allow_outside=True)
    assert np.isfinite(a.image).all()
    with pytest.raises(InvalidValueError, match="holes"):
        syn.make_specimen((64, 64), holes="square")
