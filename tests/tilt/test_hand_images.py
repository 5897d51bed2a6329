"""check_hand(images=...): Rust tile-CTF kernels vs the numpy reference, simulated series."""

from __future__ import annotations

import numpy as np
import pytest

from emgeom import _core, errors, tilt
from emgeom.reference import ctf as ref
from emgeom.simulate import random_geometry, simulate_tilt_series
from emgeom.tilt._hand import check_hand

LAM = ref.electron_wavelength_a(300.0)


def test_wavelength():
    assert LAM == pytest.approx(0.019688, abs=2e-6)
    assert ref.electron_wavelength_a(200.0) == pytest.approx(0.025079, abs=2e-6)


def _search(srch, s_per_bin, df_step):
    return _core.DefocusSearch(
        srch,
        s_per_bin=s_per_bin,
        wavelength_a=LAM,
        cs_a=2.7e7,
        amplitude_contrast=0.07,
        df_step=df_step,
    )


@pytest.mark.parametrize("astig", [0.0, 0.08])
def test_tile_profiles_match_reference(astig):
    rng = np.random.default_rng(0)
    img = rng.normal(size=(150, 170)).astype(np.float32)
    tiling = _core.CtfTiling(tile=64, step=32, n_bins=32, astig=astig, astig_angle_rad=0.7)
    p, c, n = _core.ctf_tile_profiles(img, tiling)
    pr, cr, nr = ref.tile_profiles(img, 64, 32, 32, astig, 0.7)
    assert p.shape == pr.shape == (3 * 4, 32)
    np.testing.assert_allclose(c, cr)
    np.testing.assert_array_equal(n, nr)
    np.testing.assert_allclose(p, pr, rtol=2e-4, atol=1e-6 * pr.max())


def test_fit_and_curves_match_reference():
    px = 3.0
    g = tilt.TiltGeometry([0.0], 0.0, 24000.0, pixel_size_a=px)
    img = simulate_tilt_series(g, shape=(256, 256), seed=3, snr=0.5)[0]
    prof, _, _ = _core.ctf_tile_profiles(img, _core.CtfTiling(tile=128, step=64, n_bins=64))
    s_per_bin = 0.25 / px**2 / 64
    srch = np.tile([1 / 900, 0.8 * 0.25 / px**2, 12000.0, 36000.0, 24000.0], (prof.shape[0], 1))
    search = _search(srch, s_per_bin, 50.0)
    d, sc = _core.ctf_fit_defocus_1d(prof, search)
    dr, scr = ref.fit_defocus_1d(prof, s_per_bin, LAM, 2.7e7, 0.07, srch, 50.0)
    np.testing.assert_allclose(d, dr, atol=1.0)
    np.testing.assert_allclose(sc, scr, atol=1e-6)
    assert np.median(np.abs(d - 24000.0)) < 600 and np.median(sc) > 0.2
    starts = np.full(prof.shape[0], 20000.0)
    cur = _core.ctf_score_curves(prof, _search(srch, s_per_bin, 100.0), df_start=starts, n_steps=81)
    flat = ref.flatten_profile(prof[0], s_per_bin, LAM, 24000.0)
    j0, j1 = int(np.ceil(srch[0, 0] / s_per_bin)), int(np.floor(srch[0, 1] / s_per_bin))
    for k in (0, 40, 80):
        assert cur[0, k] == pytest.approx(
            ref.score(flat, j0, j1, s_per_bin, LAM, 2.7e7, 0.07, 20000.0 + 100.0 * k), abs=1e-9
        )
    np.testing.assert_allclose(
        _core.ctf_flatten_profile(prof[0], s_per_bin=s_per_bin, wavelength_a=LAM, df_ref=24000.0),
        flat,
        atol=1e-6,
    )


def test_kernel_errors_are_exceptions():
    img = np.zeros((20, 20), np.float32)
    with pytest.raises(errors.InvalidValueError, match="image"):
        _core.ctf_tile_profiles(img, _core.CtfTiling(tile=64, step=32, n_bins=32))
    with pytest.raises(errors.InvalidValueError, match="n_bins"):
        tiling = _core.CtfTiling(tile=64, step=32, n_bins=1000)
        _core.ctf_tile_profiles(np.zeros((64, 64), np.float32), tiling)
    with pytest.raises(errors.InvalidValueError, match="searches"):
        _search(np.zeros((1, 4)), 1e-3, 10.0)
    with pytest.raises(errors.InvalidValueError, match="searches"):
        _core.ctf_fit_defocus_1d(
            np.zeros((2, 16), np.float32), _search(np.zeros((1, 5)), 1e-3, 10.0)
        )


def test_simulated_series_correct_hand_over_random_axes_and_pixels():
    """Goal (reduced for test time): 41 tilts ±60°, SNR 0.3, random axis/pixel/hand, the
    geometry given to the check states +1. The full 40-series run is in benches/RESULTS.md."""
    rng = np.random.default_rng(11)
    for i in range(2):
        g = random_geometry(rng, pixel_size_a=(3.0, 4.5))
        imgs = simulate_tilt_series(
            g, shape=(448, 448), seed=100 + i, snr=0.3, defocus_step_a=300.0
        )
        r = check_hand(g.with_hand(+1), images=imgs)
        assert r.decided and r.hand == g.hand, (i, g, r.summary())
        assert abs(r.correlation) > 0.8 and 0.7 < abs(r.slope_ratio) < 1.3
        assert r.details["n_strips"] > 41 * 4


def test_untilted_and_pure_noise_series_give_low_confidence():
    rng = np.random.default_rng(5)
    g0 = tilt.TiltGeometry(np.zeros(21), float(rng.uniform(-180, 180)), 25000.0, pixel_size_a=3.5)
    imgs = simulate_tilt_series(g0, shape=(384, 384), seed=1, snr=0.3)
    r = check_hand(g0, images=imgs)
    assert not r.decided and r.hand == 0 and r.confidence == 0.0
    # tilted geometry, but images without any CTF signal
    g1 = tilt.TiltGeometry(np.linspace(-60, 60, 21), 40.0, 25000.0, pixel_size_a=3.5)
    noise = np.random.default_rng(2).poisson(30.0, (21, 384, 384)).astype(np.float32)
    r1 = check_hand(g1, images=noise)
    assert not r1.decided and r1.hand == 0


def test_image_input_errors(tmp_path):
    g = tilt.TiltGeometry(np.linspace(-30, 30, 5), 0.0, 20000.0, pixel_size_a=3.0)
    imgs = np.random.default_rng(0).normal(size=(5, 256, 256)).astype(np.float32)
    with pytest.raises(errors.ShapeError, match="5 tilts"):
        check_hand(g, images=imgs[:4])
    bad = imgs.copy()
    bad[2, 10, 10] = np.nan
    with pytest.raises(errors.InvalidValueError, match="image 2 contains NaN"):
        check_hand(g, images=bad)
    with pytest.raises(errors.ShapeError, match=r"\(T, ny, nx\)"):
        check_hand(g, images=imgs[0])
    with pytest.raises(errors.ShapeError, match="too small"):
        check_hand(g, images=imgs[:, :20, :20])
    with pytest.raises(errors.InvalidValueError, match="pixel_size_a"):
        check_hand(g.replace(pixel_size_a=None), images=imgs)
    with pytest.raises(errors.InvalidValueError, match="defocus_search_a"):
        check_hand(g, images=imgs, defocus_search_a=(3.0, 1.0))
    # an MRC stack path works like the array
    from emgeom.io.mrc import write_mrc

    sim = simulate_tilt_series(g, shape=(256, 256), seed=4)
    write_mrc(tmp_path / "ts.mrc", sim, 3.0)
    a = check_hand(g, images=sim)
    b = check_hand(g, images=tmp_path / "ts.mrc")
    np.testing.assert_allclose(a.measured_slope, b.measured_slope)
    calls = []
    check_hand(g, images=sim, progress=lambda d, n: calls.append((d, n)))
    assert calls[-1] == (5, 5) and len(calls) == 5


def test_bin_image_is_block_mean():
    from emgeom.tilt._hand_images import bin_image

    a = np.arange(7 * 10, dtype=np.float64).reshape(7, 10)
    for b in (1, 2, 3):
        ny, nx = (7 // b) * b, (10 // b) * b
        ref_b = a[:ny, :nx].reshape(ny // b, b, nx // b, b).mean(axis=(1, 3))
        np.testing.assert_allclose(bin_image(a, b), ref_b, rtol=1e-6)
    u16 = np.full((8, 8), 7, dtype=np.uint16)
    assert bin_image(u16, 2).dtype == np.float32 and np.all(bin_image(u16, 2) == 7)


def test_astigmatism_held_per_tilt():
    """1500 Å astigmatism known to the geometry (RELION/Warp DefocusU/V/Angle): decided right."""
    t = np.linspace(-60, 60, 31)
    g = tilt.TiltGeometry(
        t,
        20.0,
        None,
        hand=-1,
        pixel_size_a=3.5,
        defocus_u_a=np.full(31, 25750.0),
        defocus_v_a=np.full(31, 24250.0),
        astigmatism_deg=np.full(31, 30.0),
    )
    imgs = simulate_tilt_series(
        g,
        shape=(448, 448),
        seed=5,
        defocus_step_a=300.0,
        astigmatism_a=1500.0,
        astigmatism_deg=30.0,
    )
    r = check_hand(g.with_hand(+1), images=imgs)
    assert r.decided and r.hand == -1 and r.slope_ratio == pytest.approx(-1.0, abs=0.2)
