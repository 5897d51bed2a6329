"""emgeom.tilt.check_hand from defocus samples and CTFFIND5 votes (synthetic + real data)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from emgeom import errors, tilt
from emgeom.io.ctffind5 import Ctffind5Tilt, read_ctffind5_tilt, read_ctffind5_tilt_series
from emgeom.tilt._hand import HandSamples, check_hand, predicted_slopes, read_subtilt_star
from tests.conftest import shared_file


def series(hand=+1, axis=85.0, n=41, step=3.0, pixel=1.5):
    t = (np.arange(n) - n // 2) * step
    return tilt.TiltGeometry(
        t,
        axis,
        30000.0 + 50 * np.cos(np.radians(t)),
        hand=hand,
        pixel_size_a=pixel,
        volume_shape=(4000, 4000, 1000),
    )


def synthetic_samples(g_true, n_per_tilt=30, noise_a=150.0, thick_a=600.0, seed=0):
    """Particles in a slab, their true per-tilt defocus (+noise), at their image positions."""
    rng = np.random.default_rng(seed)
    p = np.c_[rng.uniform(-2500, 2500, (n_per_tilt, 2)), rng.uniform(-thick_a, thick_a, n_per_tilt)]
    q = tilt.project(g_true, p)  # (N, T, 2)
    d = tilt.particle_defocus(g_true, p, dtype=np.float64) + rng.normal(0, noise_a, q.shape[:2])
    ti = np.broadcast_to(np.arange(g_true.n_tilts), q.shape[:2])
    return np.c_[ti.ravel(), q[..., 0].ravel(), q[..., 1].ravel(), d.ravel()]


# ------------------------------------------------------------------------ prediction
def test_predicted_slope_is_tan_theta_along_axis_normal():
    g = series(axis=30.0)
    np.testing.assert_allclose(predicted_slopes(g), np.tan(np.radians(g.tilt_deg)), atol=1e-12)
    # design T2/T4: h = +1, theta = +60, right side (u > 0) more underfocused
    g2 = tilt.TiltGeometry([60.0], 85.0, 30000.0, hand=+1)
    p = np.array([[1000.0, 0.0, 0.0]])
    assert tilt.particle_defocus(g2, p, dtype=np.float64)[0, 0] == pytest.approx(30866.0, abs=1)
    assert predicted_slopes(g2)[0] == pytest.approx(math.sqrt(3))
    # with an x-tilt the exact planar gradient is used (not tan theta)
    g3 = tilt.TiltGeometry([40.0], 0.0, 30000.0, x_tilt_deg=10.0)
    pts = np.array([[0.0, 0.0, 0.0], [100.0, 0.0, 0.0], [0.0, 100.0, 0.0]])
    q = tilt.project(g3, pts)[:, 0]
    d = tilt.particle_defocus(g3, pts, dtype=np.float64)[:, 0]
    grad = np.linalg.solve(q[1:] - q[0], d[1:] - d[0])
    assert predicted_slopes(g3)[0] == pytest.approx(grad[0], rel=1e-9)


# ------------------------------------------------------------------------ samples
@pytest.mark.parametrize("true_hand", [+1, -1])
@pytest.mark.parametrize("axis", [-95.0, 4.0, 85.0, 178.0])
def test_samples_decide_the_true_hand(true_hand, axis):
    g = series(hand=true_hand, axis=axis)
    s = synthetic_samples(g, seed=abs(int(axis)) + 2 + true_hand)
    # the geometry given to check_hand states the other hand: the data must win
    r = check_hand(g.with_hand(-true_hand), samples=s)
    assert r.decided and r.hand == true_hand and r.confidence > 0.999
    assert r.correlation == pytest.approx(true_hand, abs=0.05)
    assert r.slope_ratio == pytest.approx(0.9 * true_hand, abs=0.1)  # slab: attenuated
    assert r.agrees_with_geometry is False
    assert r.relion_hand == -true_hand and r.warp_angles_inverted is (true_hand == 1)
    assert r.ctfphaseflip_invert is (true_hand == -1)
    assert r.warp_check_correlation == pytest.approx(-r.correlation)
    assert r.vote_fraction > 0.9
    assert any("set RELION rlnTomoHand" in n for n in r.notes)
    assert r.corrected(g.with_hand(-true_hand)).hand == true_hand


def test_samples_mapping_and_dataclass_inputs_agree():
    g = series(hand=-1)
    s = synthetic_samples(g)
    r1 = check_hand(g, samples=s)
    r2 = check_hand(
        g,
        samples={
            "tilt_index": s[:, 0].astype(int),
            "x_a": s[:, 1],
            "y_a": s[:, 2],
            "defocus_a": s[:, 3],
        },
    )
    r3 = check_hand(g, samples=HandSamples(s[:, 0].astype(np.int64), s[:, 1], s[:, 2], s[:, 3]))
    assert r1.hand == r2.hand == r3.hand == -1
    np.testing.assert_allclose(r1.measured_slope, r3.measured_slope)
    assert r1.agrees_with_geometry is True


def test_untilted_and_flat_series_are_never_decided():
    g = tilt.TiltGeometry(np.zeros(21), 85.0, 30000.0)
    s = synthetic_samples(g)
    r = check_hand(g, samples=s)
    assert not r.decided and r.hand == 0 and r.confidence == 0.0
    assert r.relion_hand is None and r.program_flags()["canonical_hand"] is None
    with pytest.raises(errors.InvalidValueError, match="not decided"):
        r.corrected(g)
    # a flat-defocus measurement on a tilted series: nothing to see, low confidence
    g2 = series()
    s2 = synthetic_samples(g2)
    rng = np.random.default_rng(3)
    s2[:, 3] = 30000.0 + rng.normal(0, 100, s2.shape[0])
    r2 = check_hand(g2, samples=s2)
    assert not r2.decided and r2.confidence < 0.99


def test_pure_noise_rarely_decides():
    g = series(n=21, step=6.0)
    decided = 0
    for seed in range(20):
        s = synthetic_samples(g, seed=seed)
        rng = np.random.default_rng(100 + seed)
        s[:, 3] = 30000.0 + rng.normal(0, 800, s.shape[0])
        decided += check_hand(g, samples=s).decided
    assert decided <= 1


def test_bad_samples_input():
    g = series()
    s = synthetic_samples(g)
    with pytest.raises(errors.InvalidValueError, match="exactly one"):
        check_hand(g)
    with pytest.raises(errors.InvalidValueError, match="exactly one"):
        check_hand(g, samples=s, ctffind5=[(0, 0)] * g.n_tilts)
    with pytest.raises(errors.ShapeError, match=r"\(N, 4\)"):
        check_hand(g, samples=s[:, :3])
    bad = s.copy()
    bad[0, 0] = 99
    with pytest.raises(errors.InvalidValueError, match=r"tilt_index must lie in 0\.\.40"):
        check_hand(g, samples=bad)
    with pytest.raises(errors.InvalidValueError, match="mapping needs keys"):
        check_hand(g, samples={"x_a": [1.0]})
    with pytest.raises(errors.InvalidTypeError, match="TiltGeometry"):
        check_hand("geometry", samples=s)
    # too few tilts: an estimate but not decided
    g3 = tilt.TiltGeometry([-30.0, 0.0, 30.0], 85.0, 30000.0)
    r = check_hand(g3, samples=synthetic_samples(g3, noise_a=10.0))
    assert not r.decided and r.leaning_hand == +1 and any("min_tilts" in n for n in r.notes)
    # NaN measurements are dropped, not propagated
    s_nan = s.copy()
    s_nan[::2, 3] = np.nan
    r2 = check_hand(g, samples=s_nan)
    assert r2.decided and np.isfinite(r2.confidence)


def test_plot_png(tmp_path):
    pytest.importorskip("matplotlib")
    g = series(hand=-1)
    r = check_hand(g, samples=synthetic_samples(g))
    out = tmp_path / "hand.png"
    r.plot(out)
    assert out.stat().st_size > 10_000 and out.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(errors.OutputExistsError):
        r.plot(out)


# ------------------------------------------------------------------------ CTFFIND5
def test_ctffind5_votes_synthetic():
    g = series(hand=+1, axis=-85.0)
    # CTFFIND5 reports theta >= 0 and phi carrying the direction: phi = 90 - psi (or 270 - psi)
    res = []
    for t in g.tilt_deg:
        phi = (90.0 - (-85.0)) % 360 if t >= 0 else (270.0 - (-85.0)) % 360
        res.append(Ctffind5Tilt(phi, abs(t), 0.1, 0.05, 0.02))
    r = check_hand(g, ctffind5=res)
    assert r.decided and r.hand == +1 and r.vote_fraction == 1.0
    # design T4: psi = 85, theta = 60, h = +1 -> phi ~ 5 deg; h = -1 -> ~185
    g4 = tilt.TiltGeometry([60.0] * 5, 85.0, 30000.0)
    pred = predicted_slopes(g4)[0]
    assert pred == pytest.approx(math.sqrt(3))
    r5 = check_hand(g4, ctffind5=[(5.0, 60.0)] * 5)
    r185 = check_hand(g4, ctffind5=[(185.0, 60.0)] * 5)
    assert r5.measured_slope[0] == pytest.approx(pred)  # h = +1 vote
    assert r185.measured_slope[0] == pytest.approx(-pred)  # h = -1 vote
    assert not r5.decided  # one tilt angle only: no tilt range, no decision
    with pytest.raises(errors.ShapeError, match="one CTFFIND5 result per tilt"):
        check_hand(g, ctffind5=res[:-1])
    with pytest.raises(errors.InvalidValueError, match="0 <= tilt < 90"):
        check_hand(g4, ctffind5=[(5.0, -60.0)] * 5)


@pytest.mark.realdata
def test_ctffind5_real_series_one_consistent_hand():
    folder = shared_file("ctffind5_tilt", "tilt_brute_force")
    res = read_ctffind5_tilt_series(folder)
    assert len(res) == 40
    nominal = np.array([r.nominal_tilt_deg for r in res])
    assert nominal[0] == -68.0 and nominal[-1] == 49.0
    # README: argmax (nominal: axis, angle) -68:(0,45) 49:(180,60) -23:(0,0)
    by_nom = {r.nominal_tilt_deg: r for r in res}
    assert (by_nom[-68.0].axis_deg, by_nom[-68.0].tilt_deg) == (0.0, 45.0)
    assert (by_nom[49.0].axis_deg, by_nom[49.0].tilt_deg) == (180.0, 60.0)
    assert by_nom[-23.0].tilt_deg == 0.0
    # lamella pre-tilt ~ -21.5 deg (flat at nominal -20...-23); axis psi unknown: the votes must
    # be one consistent hand for the axis perpendicular to CTFFIND5's gradients
    g = tilt.TiltGeometry(nominal + 21.5, -85.0, 30000.0)
    r = check_hand(g, ctffind5=res)
    assert r.decided and r.confidence > 0.9999
    assert r.correlation > 0.95 and r.vote_fraction >= 0.95
    # the 180-degree axis flips the hand (design T6); a parallel axis decides nothing
    r180 = check_hand(g.replace(axis_deg=95.0), ctffind5=res)
    assert r180.hand == -r.hand and r180.decided
    r0 = check_hand(g.replace(axis_deg=0.0), ctffind5=res)
    assert not r0.decided
    # the gradient flips sign with the relative tilt: CTFFIND5 axis ~180 deg apart
    pos = [x.axis_deg for x in res if x.nominal_tilt_deg > -15 and x.tilt_deg > 0]
    neg = [x.axis_deg for x in res if x.nominal_tilt_deg < -30 and x.tilt_deg > 0]
    assert np.median(np.cos(np.radians(pos))) < -0.9 and np.median(np.cos(np.radians(neg))) > 0.5


def test_ctffind5_reader_errors(tmp_path):
    p = tmp_path / "x_12.0_tilt.json"
    p.write_text('{"tilt_axis_and_angle_search": [[0, 0, 0.1], [10, 5, 0.3], [190, 5, 0.2]]}')
    r = read_ctffind5_tilt(p)
    assert (r.axis_deg, r.tilt_deg, r.score, r.score_opposite) == (10.0, 5.0, 0.3, 0.2)
    assert r.nominal_tilt_deg == 12.0 and r.score_flat == 0.1
    np.testing.assert_allclose(
        r.gradient(),
        math.tan(math.radians(5))
        * np.array([math.sin(math.radians(10)), math.cos(math.radians(10))]),
    )
    bad = tmp_path / "bad.json"
    bad.write_text('{"other": 1}')
    with pytest.raises(errors.FileFormatError, match="not a CTFFIND5"):
        read_ctffind5_tilt(bad)
    bad.write_text("not json")
    with pytest.raises(errors.FileFormatError, match="not JSON"):
        read_ctffind5_tilt(bad)
    with pytest.raises(errors.EmgeomFileError):
        read_ctffind5_tilt(tmp_path / "missing.json")


# ------------------------------------------------------------------------ Warp sub-tilts
@pytest.mark.realdata
def test_cryodrgn_warp_subtilt_table_strong_consistent_gradient():
    st = read_subtilt_star(shared_file("warp_tomo", "cryodrgn_subtilt", "sta_testing_bin8.star"))
    g = st.geometry
    assert g.n_tilts == 39 and g.pixel_size_a == pytest.approx(1.96)
    # axis from particle orientations == direction of the particle tracks (-84 deg = 96 - 180)
    assert abs(((g.axis_deg[0] - 96.0) + 90) % 180 - 90) < 2.0
    assert st.axis_spread_deg < 6.0
    # |tilt| from CtfScalefactor; the sign flips at the 0-degree image (index 21)
    names = list(st.micrographs)
    t = dict(zip(names, g.tilt_deg, strict=True))
    assert abs(t["ay19102021_L3_position6_21.mrc"]) < 1e-6
    assert abs(t["ay19102021_L3_position6_41.mrc"]) == pytest.approx(60.0, abs=0.5)
    assert np.sign(t["ay19102021_L3_position6_41.mrc"]) == -np.sign(
        t["ay19102021_L3_position6_3.mrc"]
    )
    r = check_hand(g, samples=st.samples)
    assert r.decided and r.confidence > 0.999999
    assert abs(r.correlation) > 0.99 and r.vote_fraction == 1.0
    # Warp 1 default (AreAnglesInverted False) -> canonical h = -1 -> RELION +1
    assert r.hand == -1 and r.warp_angles_inverted is False and r.relion_hand == +1
    assert 0.8 < abs(r.slope_ratio) < 1.0  # lamella: magnitude ~ tan(theta)
    # README ground truth: dDef/dy = -2.2 Å/px at index 3, +2.96 at index 41 (pixels)
    i41, i3 = (
        names.index("ay19102021_L3_position6_41.mrc"),
        names.index("ay19102021_L3_position6_3.mrc"),
    )
    d = np.radians(g.axis_deg[0])
    # measured slope along (cos psi, sin psi) in Å/Å; y-component dominates (|cos psi| small)
    assert abs(r.measured_slope[i41]) * 1.96 * abs(math.sin(d)) == pytest.approx(3.1, abs=0.25)
    assert abs(r.measured_slope[i3]) * 1.96 * abs(math.sin(d)) == pytest.approx(2.15, abs=0.25)
    assert np.sign(r.measured_slope[i41]) == -np.sign(r.measured_slope[i3])


# ------------------------------------------------------------------------ RELION tutorial
@pytest.mark.realdata
def test_relion5_tutorial_hand_consistent_with_imod_ts03():
    """rlnTomoHand -1 (h = +1) is consistent with IMOD's ctfplotter convention for TS_03.

    The per-tilt defocus values (CTFFIND4 + CtfRefine in RELION, ctfplotter in IMOD) carry no
    gradient, so they cannot decide a hand on their own: check_hand built on image-centre
    values alone stays undecided (never a confident hand from no evidence); the consistency
    test is the audit: under each file's stated convention the per-particle defocus agrees
    (position-dependent part) and toggling either hand would break it by 2|z'|.
    """
    from emgeom.tilt._audit import AuditSource, audit

    rel = ("relion5_tomo_tutorial", "relion")
    imod = ("relion5_tomo_tutorial", "imod_TS_03")
    g = tilt.read_relion(shared_file(*rel, "CtfRefine", "job027", "tomograms.star"), "TS_03")
    gi = tilt.read_imod(
        shared_file(*imod, "TS_03.tlt"),
        xf=shared_file(*imod, "TS_03.xf"),
        defocus=shared_file(*imod, "TS_03_only_astigmatism.defocus"),
        pixel_size_a=1.35,
    )
    rep = audit([AuditSource(g, "relion", "relion"), AuditSource(gi, "imod", "imod")])
    assert rep.agree
    pair = rep.pairs[0]
    assert pair.position_rms_a < 2.0 and pair.projection_rms_a < 1.0
    assert 200 < pair.constant_rms_a < 800  # two programs' per-tilt CTF fits
    wrong = audit(
        [
            AuditSource(g.with_hand(+1 if g.hand == -1 else -1), "relion", "relion"),
            AuditSource(gi, "imod", "imod"),
        ]
    )
    assert not wrong.agree and "rlnTomoHand" in (wrong.pairs[0].fix or "")
    # one sample per tilt (the image centre) carries no gradient: no decision
    samples = np.c_[np.arange(g.n_tilts), np.zeros(g.n_tilts), np.zeros(g.n_tilts), g.defocus_a]
    r = check_hand(g, samples=samples)
    assert not r.decided and r.n_used == 0


def test_warp_movie_gridctf_samples_and_warp_check_sign(tmp_path):
    """Warp per-movie 2x2 GridCTF (fs_ctf) -> samples; Warp's --check sign (design T7)."""
    from emgeom.simulate import defocus_gradients
    from emgeom.tilt._hand import samples_from_warp_movies

    ny = nx = 4096
    px = 1.5
    for true_hand in (+1, -1):
        g = series(hand=true_hand, axis=84.0, pixel=px)
        grads = defocus_gradients(g)
        paths = []
        for t in range(g.n_tilts):
            nodes = []
            for gy in range(2):
                for gx in range(2):
                    x = (gx - 0.5) * nx * px
                    y = (gy - 0.5) * ny * px
                    d_um = (g.defocus_a[t] + grads[t] @ [x, y]) * 1e-4
                    nodes.append(f'<Node X="{gx}" Y="{gy}" Z="0" Value="{d_um:.6f}" />')
            p = tmp_path / f"m{true_hand}_{t}.xml"
            p.write_text(
                '<Movie><GridCTF Width="2" Height="2" Depth="1">'
                + "".join(nodes)
                + "</GridCTF></Movie>"
            )
            paths.append(p)
        s = samples_from_warp_movies(paths, (ny, nx), px)
        assert s.n == 4 * g.n_tilts
        r = check_hand(g.with_hand(+1), samples=s)
        assert r.decided and r.hand == true_hand
        assert r.correlation == pytest.approx(true_hand, abs=1e-6)
        # Warp's check forces AreAnglesInverted = False: correlation -h ("flip" iff h = +1)
        assert np.sign(r.warp_check_correlation) == -true_hand
        assert r.warp_angles_inverted is (true_hand == +1)
    bad = tmp_path / "bad.xml"
    bad.write_text(
        '<Movie><GridCTF Width="1" Height="1" Depth="1"><Node X="0" Y="0" Z="0" '
        'Value="2.0" /></GridCTF></Movie>'
    )
    with pytest.raises(errors.FileFormatError, match="2x2x1"):
        samples_from_warp_movies([bad], (100, 100), 1.0)
