"""emgeom.simulate: tilted micrographs with a spatially varying CTF (canonical model)."""

from __future__ import annotations

import numpy as np
import pytest

from emgeom import errors, tilt
from emgeom.reference import ctf as ref
from emgeom.simulate import defocus_gradients, random_geometry, simulate_tilt_series
from emgeom.tilt._hand import predicted_slopes


def test_gradients_match_canonical_model():
    rng = np.random.default_rng(1)
    g = random_geometry(rng, n_tilts=9)
    grads = defocus_gradients(g)
    d = np.stack([np.cos(np.radians(g.axis_deg)), np.sin(np.radians(g.axis_deg))], axis=1)
    np.testing.assert_allclose((grads * d).sum(1), g.hand * predicted_slopes(g), atol=1e-12)
    # along the tilt axis the defocus does not change
    e = np.stack([-d[:, 1], d[:, 0]], axis=1)
    np.testing.assert_allclose((grads * e).sum(1), 0.0, atol=1e-12)
    # and it is the canonical defocus of the specimen point seen at q
    p = np.array([[700.0, -300.0, 0.0], [0.0, 0.0, 0.0]])
    q = tilt.project(g, p)
    dfc = tilt.particle_defocus(g, p, dtype=np.float64)
    pred = (grads * (q[0] - q[1])).sum(1)
    np.testing.assert_allclose(dfc[0] - dfc[1], pred, atol=1e-6)


def test_mean_counts_shape_and_reproducibility():
    g = tilt.TiltGeometry([-30.0, 0.0, 30.0], 10.0, 20000.0, pixel_size_a=2.0)
    a = simulate_tilt_series(g, shape=(64, 96), seed=5)
    b = simulate_tilt_series(g, shape=(64, 96), seed=5)
    assert a.shape == (3, 64, 96) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert a.mean() == pytest.approx(3.0 * 4.0, rel=0.05)  # dose * px^2
    assert np.all(a == np.round(a))  # Poisson counts


def test_local_defocus_follows_the_tilt():
    """Noiseless image at 45 deg: tiles on either side of the axis fit to the model defocus."""
    px = 3.0
    g = tilt.TiltGeometry([45.0], 0.0, 25000.0, hand=+1, pixel_size_a=px)  # axis along +y
    img = simulate_tilt_series(g, shape=(256, 512), seed=2, noise=False, snr=1.0)[0]
    prof, cen, _ = ref.tile_profiles(img, 128, 128, 64)
    lam = ref.electron_wavelength_a(300)
    s_per_bin = 0.25 / px**2 / 64
    srch = np.tile([1 / 900, 0.8 * 0.25 / px**2, 15000, 35000, 25000], (prof.shape[0], 1))
    d, sc = ref.fit_defocus_1d(prof, s_per_bin, lam, 2.7e7, 0.07, srch, 50.0)
    # h = +1, theta = +45, axis vertical: defocus grows to the right by tan(45) per Å
    expect = 25000.0 + cen[:, 0] * px * 1.0
    assert np.all(sc > 0.3)
    np.testing.assert_allclose(d, expect, atol=250)
    assert np.polyfit(cen[:, 0] * px, d, 1)[0] == pytest.approx(1.0, abs=0.1)


def test_simulate_errors():
    g = tilt.TiltGeometry([0.0], 0.0, 20000.0)
    with pytest.raises(errors.InvalidValueError, match="pixel_size_a"):
        simulate_tilt_series(g, shape=(32, 32))
    with pytest.raises(errors.InvalidValueError, match="shape"):
        simulate_tilt_series(g, shape=(32,), pixel_size_a=1.0)
    with pytest.raises(errors.InvalidValueError, match="defocus_a must be positive"):
        simulate_tilt_series(tilt.TiltGeometry([0.0], 0.0, 0.0), shape=(32, 32), pixel_size_a=1.0)
    g2 = tilt.TiltGeometry([80.0], 0.0, 1000.0, pixel_size_a=4.0)
    with pytest.raises(errors.InvalidValueError, match="overfocus"):
        simulate_tilt_series(g2, shape=(256, 256))
    with pytest.raises(errors.InvalidTypeError):
        simulate_tilt_series("g", shape=(32, 32))  # type: ignore[arg-type]
