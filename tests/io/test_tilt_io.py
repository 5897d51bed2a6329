"""Readers/writers of tilt-series geometry on real third-party files (../shared/data)."""

from __future__ import annotations

import math
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emgeom import errors, tilt
from emgeom.io import star
from emgeom.reference import defocus as ref
from tests.conftest import shared_file

pytestmark = pytest.mark.realdata

RELION = ("relion5_tomo_tutorial", "relion")
IMOD = ("relion5_tomo_tutorial", "imod_TS_03")
P163 = "cryoet_alignment"


def relion_ts03():
    return tilt.read_relion(shared_file(*RELION, "CtfRefine", "job027", "tomograms.star"), "TS_03")


def imod_ts03(mode="only_astigmatism"):
    return tilt.read_imod(
        shared_file(*IMOD, "TS_03.tlt"),
        xf=shared_file(*IMOD, "TS_03.xf"),
        defocus=shared_file(*IMOD, f"TS_03_{mode}.defocus"),
        pixel_size_a=1.35,
    )


def warp_p163():
    return tilt.read_warp(
        shared_file(P163, "TomoBabel_cets-warpm", "tests", "data", "Position_16_3.xml")
    )


def aretomo_p163(**kw):
    return tilt.read_aretomo(
        shared_file(P163, "TomoBabel_cets-aretomo3", "tests", "data", "Position_16_3.aln"),
        ctf=shared_file(P163, "tests", "data", "test_8col_CTF.txt"),
        pixel_size_a=1.54,
        **kw,
    )


def relion_p163():
    return tilt.read_relion(
        shared_file(P163, "tests", "data", "relion", "matching_tomograms.star"),
        "24jul16a_Position_16_3.tomostar",
    )


# ------------------------------------------------------------------ RELION 5 tutorial vs IMOD
def test_relion5_tutorial_ts03(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # not the project dir: resolved via the star file's parents
    g = relion_ts03()
    assert g.n_tilts == 40 and g.hand == +1 and g.relion_hand == -1
    assert g.warp_angles_inverted is True and g.ctfphaseflip_invert is False
    assert g.tilt_deg[0] == -57.0 and g.tilt_deg[-1] == 60.0
    assert g.axis_deg[0] == pytest.approx(85.105602)
    assert g.shifts_a[0] == pytest.approx([-238.32805, -131.41936])
    assert g.defocus_u_a is not None and g.defocus_v_a is not None
    # first row of CtfRefine/job027/tilt_series/TS_03.star: U 15794.168404, V 16063.352232
    assert g.defocus_u_a[0] == pytest.approx(15794.168404)
    assert g.defocus_v_a[0] == pytest.approx(16063.352232)
    assert g.volume_shape == (4000, 4000, 2000) and g.pixel_size_a == 1.35
    assert any("rlnTomoHand" in n for n in g.notes)


def test_relion_formula_replicated_on_real_file():
    """emgeom's canonical defocus == RELION Tomogram::getCtf built from the file's own numbers."""
    g = relion_ts03()
    rng = np.random.default_rng(0)
    p = rng.uniform(-2000, 2000, (50, 3))
    got = tilt.particle_defocus(g, p, component="u", dtype=np.float64)
    px = g.pixel_size_a
    assert px is not None and g.defocus_u_a is not None
    for t in range(g.n_tilts):
        # P = ... Rz(ZRot)·Ry(YTilt)·Rx(XTilt) ...; dz_px = ProjZ[:3]·(pos − centre) in pixels
        proj_z = ref.rotation(g.tilt_deg[t], g.axis_deg[t], g.x_tilt_deg[t])[2]
        dz_px = (p / px) @ proj_z
        relion = g.defocus_u_a[t] + (-1.0) * px * 1.0 * dz_px  # rlnTomoHand = -1 in the file
        np.testing.assert_allclose(got[:, t], relion, atol=1e-6)


def test_relion_and_imod_agree_for_ts03():
    g, gi = relion_ts03(), imod_ts03()
    np.testing.assert_allclose(gi.tilt_deg, g.tilt_deg, atol=1e-9)
    np.testing.assert_allclose(gi.axis_deg, g.axis_deg, atol=0.05)
    assert gi.hand == g.hand == +1  # IMOD convention == RELION rlnTomoHand -1
    # shifts: −A⁻¹·d·pixel from the .xf vs RELION's imported shifts (two alignment runs)
    for k in range(2):
        assert np.corrcoef(gi.shifts_a[:, k], g.shifts_a[:, k])[0, 1] > 0.99
    assert np.abs(gi.shifts_a - g.shifts_a).max() < 40.0
    # per-tilt defocus: ctfplotter (nm) vs CTFFIND4+CtfRefine (Å), same series
    ratio = gi.defocus_a / g.defocus_a
    assert np.median(ratio) == pytest.approx(1.0, abs=0.02)
    near = np.abs(g.tilt_deg) <= 15
    assert np.median(np.abs(gi.defocus_a - g.defocus_a)[near]) < 150.0


def test_relion_and_imod_project_points_to_the_same_image_positions():
    g, gi = relion_ts03(), imod_ts03()
    p = np.array([[1500.0, -800.0, 300.0], [-2000.0, 1200.0, -150.0], [0.0, 0.0, 0.0]])
    diff = tilt.project(g, p) - tilt.project(gi, p)
    # Å: same axis/tilt conventions; x agrees to ~1 Å (except the first two tilts), y differs
    # smoothly by 3–28 Å with tilt: the IMOD files come from a separate alignment run
    assert np.median(np.abs(diff[..., 0])) < 2.0
    assert np.abs(diff).max() < 45.0


def test_imod_defocus_versions():
    from emgeom.io.imod import read_ctfplotter_defocus

    v2 = read_ctfplotter_defocus(shared_file(*IMOD, "TS_03_plain_estimation.defocus"))
    assert v2["defocus_u_a"][0] == 13600.0 and v2["defocus_u_a"][1] == 12430.0
    assert np.array_equal(v2["defocus_u_a"], v2["defocus_v_a"])
    v3 = read_ctfplotter_defocus(shared_file(*IMOD, "TS_03_astigmatism_and_phase_shift.defocus"))
    assert v3["defocus_u_a"][0] == pytest.approx(14839.0)
    assert v3["defocus_v_a"][0] == pytest.approx(10687.0)
    assert v3["astigmatism_deg"][0] == pytest.approx(32.44)
    v37 = read_ctfplotter_defocus(
        shared_file(*IMOD, "TS_03_astigmatism_phase_shift_and_cutoff_freq.defocus")
    )
    assert v37["defocus_u_a"][0] == pytest.approx(13314.0)
    ph = read_ctfplotter_defocus(shared_file(*IMOD, "TS_03_only_phase_shift.defocus"))
    assert ph["defocus_u_a"][1] == pytest.approx(9870.0)
    assert len(v2["views"]) == 40


def test_imod_invert_flag_and_errors(tmp_path):
    gi = tilt.read_imod(shared_file(*IMOD, "TS_03.tlt"), invert=True, axis_deg=85.0)
    assert gi.hand == -1 and gi.ctfphaseflip_invert is True and gi.relion_hand == +1
    with pytest.raises(errors.InvalidValueError, match="pixel_size_a"):
        tilt.read_imod(shared_file(*IMOD, "TS_03.tlt"), xf=shared_file(*IMOD, "TS_03.xf"))
    short = tmp_path / "short.tlt"
    short.write_text("-3\n0\n3\n")
    with pytest.raises(errors.FileFormatError, match="40 transforms for 3 tilts"):
        tilt.read_imod(short, xf=shared_file(*IMOD, "TS_03.xf"), pixel_size_a=1.35)
    with pytest.raises(errors.EmgeomFileError, match="not found"):
        tilt.read_imod(tmp_path / "missing.tlt")


# ------------------------------------------------------------------ Position_16_3 in 3 formats
def test_warp_xml_position_16_3():
    g = warp_p163()
    assert g.n_tilts == 31 and g.hand == -1 and g.warp_angles_inverted is False
    # Warp Angles +45.01 … −44.99 => canonical −45.01 … 44.99
    assert g.tilt_deg[0] == pytest.approx(-45.01) and g.tilt_deg[-1] == pytest.approx(44.99)
    assert g.axis_deg == pytest.approx(np.full(31, 83.939545))
    assert g.defocus_a[0] == pytest.approx(22167.659)  # GridCTF 2.2167659 µm
    assert g.defocus_u_a is not None and g.defocus_v_a is not None
    assert g.defocus_u_a[0] - g.defocus_v_a[0] == pytest.approx(76.084905, abs=1e-3)
    assert g.shifts_a[0] == pytest.approx([4.265467, 23.410513])
    assert g.pixel_size_a == 1.54
    assert g.names is not None and "_031_-45.00_" in g.names[0]


def test_warp_xml_utf16_cryocat():
    path = shared_file("warp_tomo", "cryocat_TS_017", "017.xml")
    assert path.read_bytes()[:2] == b"\xff\xfe"  # really UTF-16
    g = tilt.read_warp(path)
    assert g.n_tilts == 60 and g.hand == -1
    assert g.tilt_deg[0] == 52.0 and g.tilt_deg[-1] == -66.0
    assert g.axis_deg[0] == pytest.approx(83.22321)
    assert g.defocus_a[0] == pytest.approx(34098.15)
    assert 32400 < g.defocus_a.min() and g.defocus_a.max() < 34300  # README: 3.25–3.42 µm
    assert g.pixel_size_a == pytest.approx(1.971)


def test_position_16_3_across_formats_and_warp_export_sign():
    gw, ga, gr = warp_p163(), aretomo_p163(), relion_p163()
    # geometry: same series in Warp, AreTomo3 and the WarpTools->RELION-5 export
    np.testing.assert_allclose(ga.tilt_deg, gw.tilt_deg, atol=1e-9)  # TILT = −Angle exactly
    np.testing.assert_allclose(gr.tilt_deg, gw.tilt_deg, atol=1e-4)
    np.testing.assert_allclose(gr.axis_deg, gw.axis_deg, atol=1e-4)
    np.testing.assert_allclose(ga.axis_deg, gw.axis_deg, atol=0.01)
    # defocus: RELION export = (GridCTF ± delta/2)·1e4
    assert gr.defocus_u_a is not None and gw.defocus_u_a is not None
    np.testing.assert_allclose(gr.defocus_u_a, gw.defocus_u_a, atol=0.06)
    # AreTomo3's own CTF: ~540 Å lower on average, correlated
    assert np.corrcoef(ga.defocus_a, gw.defocus_a)[0, 1] > 0.95
    assert np.mean(gw.defocus_a - ga.defocus_a) == pytest.approx(540, abs=60)
    # hands: Warp (AreAnglesInverted False) and AreTomo3 (dfHand -1, axis refined) agree on
    # h = -1; WarpTools' export wrote rlnTomoHand -1 = h = +1 (GetRelionHand(False) = -1):
    assert gw.hand == ga.hand == -1
    assert gr.hand == +1
    # consequence: RELION's defocus for an off-axis particle differs from Warp's by 2|z'|
    p = np.array([[1000.0, 0.0, 0.0]])
    d_w = tilt.particle_defocus(gw, p, component="u", dtype=np.float64)
    d_r = tilt.particle_defocus(gr, p, component="u", dtype=np.float64)
    np.testing.assert_allclose(np.abs(d_r - d_w), 2 * np.abs(gw.depth(p)), atol=0.1)
    assert np.max(np.abs(d_r - d_w)) == pytest.approx(
        2 * 1000 * math.sin(math.radians(45.01)), abs=1
    )


def test_aretomo_and_warp_shifts_share_axes_and_sign():
    gw, ga = warp_p163(), aretomo_p163()
    for k in range(2):  # AxisOffsetX/Y (Å) vs TX/TY · 1.54 Å: independent alignments
        assert np.corrcoef(gw.shifts_a[:, k], ga.shifts_a[:, k])[0, 1] > 0.8


def test_aretomo_hand_rules_and_errors():
    assert aretomo_p163(axis_refined=False).hand == +1
    assert aretomo_p163(hand=+1).hand == +1
    g = tilt.read_aretomo(
        shared_file(P163, "TomoBabel_cets-aretomo3", "tests", "data", "Position_16_3.aln"),
        pixel_size_a=1.54,
    )
    assert g.hand == -1 and any("assumed" in n for n in g.notes)
    assert g.shifts_a[0] == pytest.approx([-3.761 * 1.54, 12.890 * 1.54])
    with pytest.raises(errors.InvalidValueError, match="pixel_size_a"):
        tilt.read_aretomo(
            shared_file(P163, "TomoBabel_cets-aretomo3", "tests", "data", "Position_16_3.aln")
        )


def test_warp_export_tomograms_star_and_cryocat():
    gs = tilt.read_relion_tomograms(
        shared_file("warp_tomo", "cryocat_warp2_relion5", "warp2_matching_tomograms.star")
    )
    assert len(gs) == 5
    g = gs["TS_1.tomostar"]
    assert g.n_tilts == 41 and g.hand == +1  # rlnTomoHand -1 as written by WarpTools
    assert g.axis_deg == pytest.approx(np.full(41, -85.6), abs=0.01)
    assert any("ProjX" in n for n in g.notes)
    assert any("GetRelionHand" in n for n in g.notes)


def test_imod_conversion_files_from_cryoet_alignment():
    d = (P163, "tests", "data", "convert", "imod_1")
    g = tilt.read_imod(
        shared_file(*d, "tilt_1.tlt"),
        xf=shared_file(*d, "tilt_1.xf"),
        xtilt=shared_file(*d, "tilt_1.xtilt"),
        pixel_size_a=1.0,
    )
    assert g.n_tilts == 59
    assert g.tilt_deg[0] == pytest.approx(-52.24)
    # the README: .xf rotation atan2(A21, A11) = 99.5…100.4° => ψ = −that
    assert np.all((g.axis_deg > -100.5) & (g.axis_deg < -99.4))


def _tilt_f90_projection(p, theta_deg, alpha_deg):
    """IMOD ``tilt`` (flib/tilt/tilt.f90) back-projection geometry, written from its source:
    ``sinBeta = −sin θ``, ``sinAlpha = −sin alpha``, ``cosAlpha = cos alpha``, and a voxel
    ``(xx, yy, zz)`` of an output slice lands at ``xx·cos θ + yy·sinAlpha·sinBeta +
    zz·cosAlpha·sinBeta`` (x) and ``yy·cosAlpha − zz·sinAlpha`` (y) in the aligned view. Its
    slices are upside down: ``zz = −z`` is what makes the alpha = 0 case the canonical
    ``x cos θ + z sin θ`` that the .tlt convention rests on."""
    th, al = np.radians(theta_deg)[None, :], np.radians(alpha_deg)[None, :]
    xx, yy, zz = p[:, 0:1], p[:, 1:2], -p[:, 2:3]
    sbeta, cbeta = -np.sin(th), np.cos(th)
    sal, cal = -np.sin(al), np.cos(al)
    xp = xx * cbeta + yy * sal * sbeta + zz * cal * sbeta
    yp = yy * cal - zz * sal
    return np.stack([xp, yp], axis=-1)


def test_imod_xtilt_sign_follows_tilt_f90(tmp_path):
    """chi = .xtilt − XAXISTILT reproduces tilt.f90's projection; the opposite sign does not."""
    rng = np.random.default_rng(5)
    theta = np.linspace(-60, 60, 21)
    xtilt = rng.uniform(-4, 4, theta.size)
    (tmp_path / "a.tlt").write_text("\n".join(f"{t:.3f}" for t in theta) + "\n")
    (tmp_path / "a.xtilt").write_text("\n".join(f"{v:.4f}" for v in xtilt) + "\n")
    xt = np.loadtxt(tmp_path / "a.xtilt")
    g = tilt.read_imod(tmp_path / "a.tlt", xtilt=tmp_path / "a.xtilt", x_axis_tilt_deg=1.5)
    assert g.x_tilt_deg == pytest.approx(xt - 1.5)
    assert any("XAXISTILT" in n for n in g.notes)
    p = rng.uniform(-3000, 3000, (200, 3))
    want = _tilt_f90_projection(p, np.loadtxt(tmp_path / "a.tlt"), xt - 1.5)
    got = tilt.project(g, p)
    assert np.abs(got - want).max() < 1e-6
    # the opposite x-tilt sign moves points by up to ~ z·2·sin(chi): hundreds of Å here
    flipped = tilt.TiltGeometry(g.tilt_deg, g.axis_deg, 0.0, x_tilt_deg=-g.x_tilt_deg)
    assert np.abs(tilt.project(flipped, p) - want).max() > 100
    with pytest.raises(errors.InvalidValueError, match="x_axis_tilt_deg"):
        tilt.read_imod(tmp_path / "a.tlt", x_axis_tilt_deg=float("nan"))


# ------------------------------------------------------------------ path resolution
def test_relion_paths_resolve_cwd_first(tmp_path, monkeypatch):
    src = shared_file(*RELION, "CtfRefine", "job027", "tomograms.star")
    proj = tmp_path / "proj"
    (proj / "CtfRefine" / "job027" / "tilt_series").mkdir(parents=True)
    shutil.copy(src, proj / "CtfRefine" / "job027" / "tomograms.star")
    ts = shared_file(*RELION, "CtfRefine", "job027", "tilt_series", "TS_03.star")
    text = ts.read_text().replace("-57.00000    85.105602", "-57.00000    11.000000", 1)
    (proj / "CtfRefine" / "job027" / "tilt_series" / "TS_03.star").write_text(text)
    # run from the real tutorial project dir: the file under cwd wins
    monkeypatch.chdir(src.parents[2])
    g = tilt.read_relion(proj / "CtfRefine" / "job027" / "tomograms.star", "TS_03")
    assert g.axis_deg[0] == pytest.approx(85.105602)
    # run from elsewhere: found via the star file's parent folders (the modified copy)
    monkeypatch.chdir(tmp_path)
    g = tilt.read_relion(proj / "CtfRefine" / "job027" / "tomograms.star", "TS_03")
    assert g.axis_deg[0] == pytest.approx(11.0)
    # explicit project_dir wins over both
    g = tilt.read_relion(
        proj / "CtfRefine" / "job027" / "tomograms.star", "TS_03", project_dir=src.parents[2]
    )
    assert g.axis_deg[0] == pytest.approx(85.105602)
    (proj / "CtfRefine" / "job027" / "tilt_series" / "TS_03.star").unlink()
    with pytest.raises(errors.EmgeomFileError, match="project directory"):
        tilt.read_relion(proj / "CtfRefine" / "job027" / "tomograms.star", "TS_01")


def test_relion_bad_files(tmp_path):
    src = shared_file(*RELION, "CtfRefine", "job027", "tomograms.star")
    with pytest.raises(errors.InvalidValueError, match="5 tomograms"):
        tilt.read_relion(src)
    with pytest.raises(errors.InvalidValueError, match="TS_99"):
        tilt.read_relion(src, "TS_99")
    bad = tmp_path / "t.star"
    bad.write_text(src.read_text().replace("_rlnTomoHand #6", "_rlnTomoHandX #6"))
    with pytest.raises(errors.FileFormatError, match="_rlnTomoHand"):
        tilt.read_relion(bad, "TS_03", project_dir=src.parents[2])
    bad.write_text(src.read_text().replace("-1.00000", "0.50000"))
    with pytest.raises(errors.FileFormatError, match="must be"):
        tilt.read_relion(bad, "TS_03", project_dir=src.parents[2])
    ts = tmp_path / "ts.star"
    ts.write_text(
        "data_TS\n\nloop_\n_rlnTomoYTilt #1\n_rlnTomoZRot #2\n_rlnDefocusU #3\n0 85 1000\n"
    )
    glob = tmp_path / "g.star"
    glob.write_text(
        f"data_global\n\nloop_\n_rlnTomoName #1\n_rlnTomoHand #2\n"
        f"_rlnTomoTiltSeriesStarFile #3\nTS -1 {ts}\n"
    )
    g = tilt.read_relion(glob)  # no _rlnTomoXTilt: 0, as in TomogramSet::loadTomogram
    assert g.x_tilt_deg.tolist() == [0.0] and g.axis_deg.tolist() == [85.0]
    ts.write_text("data_TS\n\nloop_\n_rlnTomoYTilt #1\n_rlnDefocusU #2\n0 1000\n")
    with pytest.raises(errors.FileFormatError, match="_rlnTomoZRot"):
        tilt.read_relion(glob)
    ts.write_text("data_TS\n\nloop_\n_rlnTomoXTilt #1\n_rlnTomoYTilt #2\n_rlnTomoZRot #3\n0 0 85\n")
    with pytest.raises(errors.FileFormatError, match="_rlnDefocusU"):
        tilt.read_relion(glob)
    ts.write_text(
        "data_TS\n\nloop_\n_rlnTomoXTilt #1\n_rlnTomoYTilt #2\n_rlnTomoZRot #3\n"
        "_rlnDefocusU #4\n0 nan 85 1000\n"
    )
    with pytest.raises(errors.FileFormatError, match="NaN"):
        tilt.read_relion(glob)


def test_warp_bad_files(tmp_path):
    p = tmp_path / "x.xml"
    p.write_text("<Foo/>")
    with pytest.raises(errors.FileFormatError, match="TiltSeries"):
        tilt.read_warp(p)
    p.write_text(
        '<TiltSeries AreAnglesInverted="Maybe"><Angles>1\n2</Angles>'
        "<AxisAngle>3\n3</AxisAngle></TiltSeries>"
    )
    with pytest.raises(errors.FileFormatError, match="AreAnglesInverted"):
        tilt.read_warp(p)
    p.write_text(
        '<TiltSeries AreAnglesInverted="True"><Angles>1\n2</Angles>'
        "<AxisAngle>3\n3\n3</AxisAngle></TiltSeries>"
    )
    with pytest.raises(errors.FileFormatError, match="3 AxisAngle values for 2"):
        tilt.read_warp(p)


# ------------------------------------------------------------------ writers
@pytest.mark.parametrize("layout", ["relion5", "relion4"])
def test_to_relion_round_trip(tmp_path, layout):
    g = relion_ts03()
    out = tmp_path / "tomograms.star"
    if layout == "relion5":
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            tilt.to_relion(g, out, tomo_name="TS_03", layout=layout)
    else:  # rotation-only matrices: the shifts are dropped, and it says so
        assert np.abs(g.shifts_a).max() > 1
        with pytest.warns(errors.LossyConversionWarning, match="image_shape"):
            tilt.to_relion(g, out, tomo_name="TS_03", layout=layout)
    g2 = tilt.read_relion(out, "TS_03")
    np.testing.assert_allclose(g2.tilt_deg, g.tilt_deg, atol=1e-5)
    np.testing.assert_allclose(g2.axis_deg, g.axis_deg, atol=1e-5)
    np.testing.assert_allclose(g2.x_tilt_deg, g.x_tilt_deg, atol=1e-5)
    assert g2.defocus_u_a is not None and g.defocus_u_a is not None
    np.testing.assert_allclose(g2.defocus_u_a, g.defocus_u_a, atol=1e-5)
    assert g2.hand == g.hand and g2.volume_shape == g.volume_shape
    if layout == "relion5":
        np.testing.assert_allclose(g2.shifts_a, g.shifts_a, atol=1e-5)
    p = np.random.default_rng(2).uniform(-3000, 3000, (100, 3))
    np.testing.assert_allclose(
        tilt.particle_defocus(g2, p, dtype=np.float64),
        tilt.particle_defocus(g, p, dtype=np.float64),
        atol=1e-3,
    )
    # no clobber without force; force replaces
    with pytest.raises(errors.OutputExistsError):
        tilt.to_relion(g, out, tomo_name="TS_03")
    tilt.to_relion(g.with_hand(-1), out, tomo_name="TS_03", force=True)
    assert tilt.read_relion(out).hand == -1
    assert "_rlnTomoHand" in out.read_text()
    assert list(tmp_path.iterdir()) == [out]  # no temporary files left behind


def test_to_warp_round_trip_and_hand(tmp_path):
    gw = warp_p163()
    out = tmp_path / "TS.xml"
    tilt.to_warp(gw, out)
    g2 = tilt.read_warp(out)
    np.testing.assert_allclose(g2.tilt_deg, gw.tilt_deg, atol=1e-6)
    np.testing.assert_allclose(g2.axis_deg, gw.axis_deg, atol=1e-6)
    np.testing.assert_allclose(g2.shifts_a, gw.shifts_a, atol=1e-5)
    np.testing.assert_allclose(g2.defocus_a, gw.defocus_a, atol=1e-3)
    assert g2.defocus_u_a is not None and gw.defocus_u_a is not None
    np.testing.assert_allclose(g2.defocus_u_a, gw.defocus_u_a, atol=1e-3)
    assert g2.hand == gw.hand == -1 and 'AreAnglesInverted="False"' in out.read_text()
    # RELION-5 geometry (h=+1) -> Warp: angles negated, AreAnglesInverted True
    g = relion_ts03()
    tilt.to_warp(g, out, force=True)
    text = out.read_text()
    assert 'AreAnglesInverted="True"' in text and "<Angles>57\n" in text
    g3 = tilt.read_warp(out)
    np.testing.assert_allclose(g3.tilt_deg, g.tilt_deg, atol=1e-6)
    assert g3.hand == +1
    with pytest.raises(errors.OutputExistsError):
        tilt.to_warp(g, out)
    with pytest.warns(errors.LossyConversionWarning, match="LevelAngleX"):
        tilt.to_warp(g.replace(x_tilt_deg=np.linspace(0, 1, g.n_tilts)), tmp_path / "b.xml")


def test_warp_relion_warp_chain(tmp_path):
    """Warp XML -> RELION (emgeom writer, correct hand) -> back: same per-particle defocus."""
    gw = warp_p163().replace(volume_shape=(4096, 4096, 2000))
    with pytest.warns(errors.LossyConversionWarning, match="shifts"):
        tilt.to_relion(gw, tmp_path / "t.star", tomo_name="P", layout="relion4")
    gr = tilt.read_relion(tmp_path / "t.star")
    assert gr.relion_hand == +1  # emgeom writes +1 where WarpTools writes -1
    p = np.random.default_rng(5).uniform(-3000, 3000, (64, 3))
    np.testing.assert_allclose(
        tilt.particle_defocus(gr, p, dtype=np.float64),
        tilt.particle_defocus(gw, p, dtype=np.float64),
        atol=1e-3,
    )


# ------------------------------------------------------------------ particle tables
def _particle_star(path: Path, rows: list[tuple[str, float, float, float]]) -> None:
    lines = [
        "data_particles",
        "",
        "loop_",
        "_rlnTomoName #1",
        "_rlnCenteredCoordinateXAngst #2",
        "_rlnCenteredCoordinateYAngst #3",
        "_rlnCenteredCoordinateZAngst #4",
    ]
    lines += [f"{n} {x} {y} {z}" for n, x, y, z in rows]
    path.write_text("\n".join(lines) + "\n")


def test_add_particle_defocus(tmp_path):
    src = shared_file(*RELION, "CtfRefine", "job027", "tomograms.star")
    pstar = tmp_path / "particles.star"
    _particle_star(
        pstar,
        [("TS_03", 100.0, -200.0, 300.0), ("TS_01", -500.0, 0.0, 50.0), ("TS_03", 0.0, 0.0, 0.0)],
    )
    blocks = tilt.add_particle_defocus(pstar, src, project_dir=src.parents[2])
    pb = blocks["particles"]
    assert list(pb.columns[-2:]) == ["emgeomTiltDefocusU", "emgeomTiltDefocusV"]
    g = relion_ts03()
    row = pb.iloc[0]
    u = np.array([float(v) for v in row["emgeomTiltDefocusU"].strip("[]").split(",")])
    want = tilt.particle_defocus(g, [[100.0, -200.0, 300.0]], component="u", dtype=np.float64)
    np.testing.assert_allclose(u, want[0], atol=0.06)
    assert g.defocus_u_a is not None
    centre = np.array([float(v) for v in pb.iloc[2]["emgeomTiltDefocusU"][1:-1].split(",")])
    np.testing.assert_allclose(centre, g.defocus_u_a, atol=0.06)
    out = tmp_path / "out.star"
    star.write_star(out, blocks)
    back = star.read_star(out)["particles"]
    assert len(back) == 3 and list(back["emgeomTiltDefocusU"]) == list(pb["emgeomTiltDefocusU"])
    bad = tmp_path / "bad.star"
    _particle_star(bad, [("TS_99", 0, 0, 0)])
    with pytest.raises(errors.FileFormatError, match="TS_99"):
        tilt.add_particle_defocus(bad, src, project_dir=src.parents[2])


def test_particle_origin_in_subtomogram_frame():
    """pos = centred − A_subtomogram·origin (RELION particle_set.cpp getPosition)."""
    g = tilt.TiltGeometry([-30.0, 0.0, 30.0], 0.0, 20000.0, hand=+1)
    cols = [
        "rlnTomoName",
        "rlnCenteredCoordinateXAngst",
        "rlnCenteredCoordinateYAngst",
        "rlnCenteredCoordinateZAngst",
        "rlnOriginXAngst",
        "rlnOriginYAngst",
        "rlnOriginZAngst",
        "rlnTomoSubtomogramRot",
        "rlnTomoSubtomogramTilt",
        "rlnTomoSubtomogramPsi",
    ]
    row = ["A", "100", "200", "300", "10", "0", "0", "90", "0", "0"]
    blocks = {"particles": pd.DataFrame([row], columns=cols, dtype=object)}
    res = tilt.add_particle_defocus(blocks, {"A": g})
    u = [float(v) for v in res["particles"]["emgeomTiltDefocusU"].iloc[0][1:-1].split(",")]
    # Rot 90 about z (RELION's passive ZYZ matrix) maps origin (10, 0, 0) to (0, -10, 0)
    a = tilt.matrices_from_relion(90.0, 0.0, 0.0)[0]
    np.testing.assert_allclose(a @ [10, 0, 0], [0, -10, 0], atol=1e-12)
    want = tilt.particle_defocus(g, [[100.0, 210.0, 300.0]], dtype=np.float64)[0]
    np.testing.assert_allclose(u, want, atol=0.06)


def test_add_particle_defocus_dataframe():
    pd = pytest.importorskip("pandas")
    g = tilt.TiltGeometry([-3.0, 0.0, 3.0], 85.0, 20000.0, hand=+1)
    df = pd.DataFrame(
        {
            "rlnTomoName": ["A", "A"],
            "rlnCenteredCoordinateXAngst": [1000.0, 0.0],
            "rlnCenteredCoordinateYAngst": [0.0, 0.0],
            "rlnCenteredCoordinateZAngst": [0.0, 500.0],
        }
    )
    out = tilt.add_particle_defocus(df, {"A": g})
    assert list(out.columns)[-2:] == ["emgeomTiltDefocusU", "emgeomTiltDefocusV"]
    np.testing.assert_allclose(
        out["emgeomTiltDefocusU"][0], tilt.particle_defocus(g, [[1000.0, 0, 0]])[0]
    )
    assert "emgeomTiltDefocusU" not in df.columns


def test_written_star_files_parse_with_starfile(tmp_path):
    starfile = pytest.importorskip("starfile")
    g = relion_ts03()
    tilt.to_relion(g, tmp_path / "t5.star", tomo_name="TS_03")
    with pytest.warns(errors.LossyConversionWarning, match="shifts"):
        tilt.to_relion(g, tmp_path / "t4.star", tomo_name="TS_03", layout="relion4")
    d5 = starfile.read(tmp_path / "t5.star", always_dict=True)
    assert list(d5) == ["global", "TS_03"]
    assert float(d5["global"]["rlnTomoHand"].iloc[0]) == -1.0
    np.testing.assert_allclose(d5["TS_03"]["rlnTomoYTilt"].to_numpy(), g.tilt_deg, atol=1e-6)
    d4 = starfile.read(tmp_path / "t4.star", always_dict=True)
    assert str(d4["TS_03"]["rlnTomoProjZ"].iloc[0]).startswith("[")


@settings(max_examples=15, deadline=None)
@given(
    n=st.integers(1, 12),
    hand=st.sampled_from([1, -1]),
    seed=st.integers(0, 2**31),
    layout=st.sampled_from(["relion5", "relion4", "warp"]),
)
def test_random_geometries_round_trip_through_writers(n, hand, seed, layout):
    rng = np.random.default_rng(seed)
    g = tilt.TiltGeometry(
        rng.uniform(-70, 70, n),
        rng.uniform(-179, 179, n),
        None,
        x_tilt_deg=0.0 if layout == "warp" else rng.uniform(-5, 5, n),
        shifts_a=rng.normal(0, 100, (n, 2)),
        hand=hand,
        defocus_slope=1.0,
        defocus_u_a=rng.uniform(1e4, 5e4, n),
        defocus_v_a=rng.uniform(1e4, 5e4, n),
        astigmatism_deg=rng.uniform(-90, 90, n),
        volume_shape=(4096, 4096, 1024),
        pixel_size_a=float(rng.uniform(0.5, 5)),
    )
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / ("t.xml" if layout == "warp" else "t.star")
        if layout == "warp":
            tilt.to_warp(g, path)
            g2 = tilt.read_warp(path)
        else:
            with warnings.catch_warnings():  # relion4 rotation-only drops shifts (tested elsewhere)
                warnings.simplefilter("ignore", errors.LossyConversionWarning)
                tilt.to_relion(g, path, tomo_name="X", layout=layout)
            g2 = tilt.read_relion(path)
    assert g2.hand == hand
    p = rng.uniform(-4000, 4000, (20, 3))
    for comp in ("mean", "u", "v"):
        np.testing.assert_allclose(
            tilt.particle_defocus(g2, p, component=comp, dtype=np.float64),
            tilt.particle_defocus(g, p, component=comp, dtype=np.float64),
            atol=1e-2,
        )
    if layout != "relion4":
        np.testing.assert_allclose(tilt.project(g2, p), tilt.project(g, p), atol=1e-3)


# ------------------------------------------------------------------ RELION-4 matrix translations
def _rot(axis: str, deg: float) -> np.ndarray:
    """Active right-handed rotation about a coordinate axis (gravis t3Matrix::rotation)."""
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return {
        "x": np.array([[1, 0, 0], [0, c, -s], [0, s, c]]),
        "y": np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]]),
        "z": np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]),
    }[axis]


def _relion5_matrix(xtilt, ytilt, zrot, shift_a, pixel, vol, img_nx_ny):
    """Independent transcription of RELION 5 Tomogram::setProjectionMatrix (tomogram.cpp):
    P = S(shift/px)·S(int(N/2) of the image)·Rz·Ry·Rx·S(−int(w0/2), −int(h0/2), −int(d0/2))."""
    r = _rot("z", zrot) @ _rot("y", ytilt) @ _rot("x", xtilt)
    p = np.eye(4)
    p[:3, :3] = r
    c_vol = np.array([float(int(v / 2)) for v in vol])
    c_img = np.array([float(int(img_nx_ny[0] / 2)), float(int(img_nx_ny[1] / 2)), 0.0])
    p[:3, 3] = np.array([shift_a[0] / pixel, shift_a[1] / pixel, 0.0]) + c_img - r @ c_vol
    return p


def _relion4_star(path, mats, *, vol, pixel, hand=-1.0, stack=None, micrographs=None):
    cols = ["rlnTomoName", "rlnTomoHand", "rlnTomoTiltSeriesPixelSize"]
    cols += ["rlnTomoSizeX", "rlnTomoSizeY", "rlnTomoSizeZ"]
    row = ["TS_01", f"{hand:.1f}", repr(pixel), *(str(v) for v in vol)]
    if stack is not None:
        cols.append("rlnTomoTiltSeriesName")
        row.append(stack)
    glob = pd.DataFrame([row], columns=cols, dtype=object)
    tcols = ["rlnTomoProjX", "rlnTomoProjY", "rlnTomoProjZ", "rlnTomoProjW", "rlnDefocusU"]
    rows = [
        ["[" + ",".join(repr(float(v)) for v in m[i]) + "]" for i in range(4)] + ["30000.0"]
        for m in mats
    ]
    if micrographs is not None:
        tcols = ["rlnMicrographName", *tcols]
        rows = [[mg, *r] for mg, r in zip(micrographs, rows, strict=True)]
    per = pd.DataFrame(rows, columns=tcols, dtype=object)
    star.write_star(path, {"global": glob, "TS_01": per})
    return path


_ANGLES = [(-1.5, -45.0, 84.0), (0.5, -15.0, 85.0), (1.0, 0.0, 85.5), (2.0, 30.0, 86.0)]
_SHIFTS = [(12.5, -7.25), (-3.0, 4.5), (0.0, 0.0), (20.0, 15.5)]


def test_relion4_translation_gives_relion5_shifts(tmp_path):
    # even volume: RELION 5's setProjectionMatrix and getProjectionAnglesFromMatrix agree
    vol, img, px = (1000, 1200, 300), (960, 1024), 2.5  # img = (nx, ny)
    mats = [
        _relion5_matrix(x, y, z, s, px, vol, img)
        for (x, y, z), s in zip(_ANGLES, _SHIFTS, strict=True)
    ]
    path = _relion4_star(tmp_path / "r4.star", mats, vol=vol, pixel=px)
    g = tilt.read_relion(path, image_shape=(img[1], img[0]))
    np.testing.assert_allclose(g.shifts_a, _SHIFTS, atol=1e-9)
    np.testing.assert_allclose(g.x_tilt_deg, [a[0] for a in _ANGLES], atol=1e-9)
    np.testing.assert_allclose(g.tilt_deg, [a[1] for a in _ANGLES], atol=1e-9)
    np.testing.assert_allclose(g.axis_deg, [a[2] for a in _ANGLES], atol=1e-9)
    assert any("getProjectionAnglesFromMatrix" in n for n in g.notes)
    assert any("given by the caller" in n for n in g.notes)
    # without the image size: today's behaviour (zero shifts, a note saying why)
    g0 = tilt.read_relion(path)
    assert np.all(g0.shifts_a == 0.0)
    assert any("image shifts set to 0" in n and "image_shape" in n for n in g0.notes)
    p = np.random.default_rng(5).uniform(-1000, 1000, (30, 3))
    np.testing.assert_allclose(
        tilt.particle_defocus(g0, p, dtype=np.float64),
        tilt.particle_defocus(g, p, dtype=np.float64),
        atol=1e-9,
    )
    # the shift is exactly the difference of the projections
    d = tilt.project(g, p) - tilt.project(g0, p)
    np.testing.assert_allclose(d, np.broadcast_to(np.array(_SHIFTS), d.shape), atol=1e-9)


def test_relion4_positions_equal_relion5_projection_of_particles(tmp_path):
    # arbitrary matrices, odd sizes: emgeom's image position must be where RELION 5 puts a
    # particle: P·(p/px + (w0, h0, d0)/2.0) (ParticleSet::getPosition de-centres about
    # Tomogram::centre = size/2.0), measured from the integer image centre (nx//2, ny//2).
    vol, img, px = (999, 1201, 301), (1023, 1101), 1.7
    rng = np.random.default_rng(11)
    mats = []
    for x, y, z in _ANGLES:
        m = np.eye(4)
        m[:3, :3] = _rot("z", z) @ _rot("y", y) @ _rot("x", x)
        m[:3, 3] = rng.uniform(-150, 150, 3)
        m[:2, 3] += np.array(img) / 2 - (m[:3, :3] @ (np.array(vol) / 2.0))[:2]
        mats.append(m)
    path = _relion4_star(tmp_path / "r4.star", mats, vol=vol, pixel=px)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        g = tilt.read_relion(path, image_shape=(img[1], img[0]))
    p_a = rng.uniform(-600, 600, (25, 3))
    pos_px = p_a / px + np.array(vol) / 2.0
    q_relion = np.stack([(m @ np.c_[pos_px, np.ones(25)].T).T[:, :2] for m in mats], axis=1)
    q = tilt.project(g, p_a) / px + np.array([img[0] // 2, img[1] // 2])
    np.testing.assert_allclose(q, q_relion, atol=1e-9)


def test_relion4_written_with_image_shape_round_trips_relion5(tmp_path):
    n = 9
    g = tilt.TiltGeometry(
        np.linspace(-60, 60, n),
        85.25,
        None,
        x_tilt_deg=np.linspace(-2.5, 1.5, n),
        shifts_a=np.stack([np.linspace(-40, 35, n), np.linspace(12.5, -20, n)], axis=1),
        hand=+1,
        defocus_u_a=np.linspace(30000, 32000, n),
        defocus_v_a=np.linspace(29000, 31000, n),
        astigmatism_deg=np.full(n, 25.5),
        volume_shape=(1001, 1200, 301),
        pixel_size_a=1.35,
    )
    tilt.to_relion(g, tmp_path / "r5.star", layout="relion5")
    tilt.to_relion(g, tmp_path / "r4.star", layout="relion4", image_shape=(1101, 1023))
    g5 = tilt.read_relion(tmp_path / "r5.star")
    g4 = tilt.read_relion(tmp_path / "r4.star", image_shape=(1101, 1023))
    assert np.any(np.abs(g.shifts_a) > 1)
    np.testing.assert_allclose(g4.shifts_a, g5.shifts_a, atol=1e-9)
    p = np.random.default_rng(3).uniform(-1500, 1500, (40, 3))
    np.testing.assert_allclose(tilt.project(g4, p), tilt.project(g5, p), atol=1e-6)
    np.testing.assert_allclose(tilt.project(g4, p), tilt.project(g, p), atol=1e-6)
    for comp in ("u", "v"):
        np.testing.assert_allclose(
            tilt.particle_defocus(g4, p, component=comp, dtype=np.float64),
            tilt.particle_defocus(g5, p, component=comp, dtype=np.float64),
            atol=1e-6,
        )
    assert g4.hand == g5.hand == +1
    # without image_shape the writer keeps today's rotation-only rows
    with pytest.warns(errors.LossyConversionWarning, match="shifts"):
        tilt.to_relion(g, tmp_path / "r4rot.star", layout="relion4")
    assert np.all(tilt.read_relion(tmp_path / "r4rot.star").shifts_a == 0.0)
    assert ",0]" in (tmp_path / "r4rot.star").read_text()


def test_relion4_image_size_from_mrc_header(tmp_path, monkeypatch):
    import mrcfile

    monkeypatch.chdir(tmp_path)  # RELION paths are relative to the project directory
    vol, img, px = (800, 900, 200), (300, 250), 3.0  # img = (nx, ny)
    mats = [
        _relion5_matrix(x, y, z, s, px, vol, img)
        for (x, y, z), s in zip(_ANGLES, _SHIFTS, strict=True)
    ]
    (tmp_path / "ts").mkdir()
    with mrcfile.new(tmp_path / "ts" / "TS_01.st", overwrite=True) as m:
        m.set_data(np.zeros((4, img[1], img[0]), dtype=np.int8))
    path = _relion4_star(tmp_path / "r4.star", mats, vol=vol, pixel=px, stack="ts/TS_01.st:mrc")
    g = tilt.read_relion(path)
    np.testing.assert_allclose(g.shifts_a, _SHIFTS, atol=1e-9)
    assert any("MRC header" in n and "TS_01.st" in n for n in g.notes)
    # an explicit image_shape wins over the header
    gk = tilt.read_relion(path, image_shape=(img[1] + 2, img[0]))
    np.testing.assert_allclose(gk.shifts_a[:, 1] - g.shifts_a[:, 1], -px, atol=1e-9)
    # RELION 5 style: the first per-tilt image (index@stack form)
    names = [f"{i + 1}@ts/TS_01.st" for i in range(4)]
    path2 = _relion4_star(tmp_path / "r4b.star", mats, vol=vol, pixel=px, micrographs=names)
    np.testing.assert_allclose(tilt.read_relion(path2).shifts_a, _SHIFTS, atol=1e-9)
    # a named file that is not an MRC, or is missing: zero shifts and the reason
    (tmp_path / "ts" / "bad.st").write_text("not an image")
    # a non-MRC file that mrcfile opens permissively (sizes look fine, no "MAP " id, mode 77)
    fake = np.zeros(256, np.int32)
    fake[:4] = (img[0], img[1], 4, 77)
    (tmp_path / "ts" / "rand.tif").write_bytes(fake.tobytes() + bytes(5000))
    path5 = _relion4_star(tmp_path / "r4e.star", mats, vol=vol, pixel=px, stack="ts/rand.tif")
    g5 = tilt.read_relion(path5)
    assert np.all(g5.shifts_a == 0.0)
    assert any("rand.tif: no MRC header (map id" in n for n in g5.notes)
    path3 = _relion4_star(tmp_path / "r4c.star", mats, vol=vol, pixel=px, stack="ts/bad.st")
    g3 = tilt.read_relion(path3)
    assert np.all(g3.shifts_a == 0.0)
    assert any("no MRC header" in n for n in g3.notes)
    path4 = _relion4_star(tmp_path / "r4d.star", mats, vol=vol, pixel=px, stack="ts/none.st")
    g4 = tilt.read_relion(path4)
    assert np.all(g4.shifts_a == 0.0)
    assert any("none.st not found" in n for n in g4.notes)
    # per-tomogram image shapes through read_relion_tomograms
    gs = tilt.read_relion_tomograms(path4, image_shape={"TS_01": (img[1], img[0])})
    np.testing.assert_allclose(gs["TS_01"].shifts_a, _SHIFTS, atol=1e-9)


def test_relion4_implausible_image_size_warns(tmp_path):
    vol, img, px = (1000, 1200, 300), (960, 1024), 2.5
    mats = [
        _relion5_matrix(x, y, z, s, px, vol, img)
        for (x, y, z), s in zip(_ANGLES, _SHIFTS, strict=True)
    ]
    path = _relion4_star(tmp_path / "r4.star", mats, vol=vol, pixel=px)
    with pytest.warns(errors.ImplausibleValueWarning, match="image size"):
        tilt.read_relion(path, image_shape=(32, 32))


def test_warp_export_keeps_zero_shifts_with_image_shape():
    path = shared_file("warp_tomo", "cryocat_warp2_relion5", "warp2_matching_tomograms.star")
    g = tilt.read_relion(path, "TS_1.tomostar", image_shape=(6000, 4400))
    assert np.all(g.shifts_a == 0.0)
    assert any("without translations (WarpTools export)" in n for n in g.notes)
    assert any("GetRelionHand" in n for n in g.notes)
    g2 = tilt.read_relion(path, "TS_1.tomostar")  # dummy_tiltseries.mrc does not resolve
    assert np.all(g2.shifts_a == 0.0) and g2.notes == g.notes


@pytest.mark.parametrize(
    ("bad", "exc"),
    [
        ((0, 10), errors.InvalidValueError),
        ((10, -3), errors.InvalidValueError),
        ((10,), errors.ShapeError),
        ((10, 20, 30), errors.ShapeError),
        ((10.5, 20), errors.InvalidTypeError),
        ((True, 20), errors.InvalidTypeError),
        ("ab", errors.ShapeError),
    ],
)
def test_relion4_image_shape_bad_input(tmp_path, bad, exc):
    vol, img, px = (1000, 1200, 300), (960, 1024), 2.5
    mats = [_relion5_matrix(x, y, z, (0, 0), px, vol, img) for x, y, z in _ANGLES]
    path = _relion4_star(tmp_path / "r4.star", mats, vol=vol, pixel=px)
    with pytest.raises(exc, match="image_shape"):
        tilt.read_relion(path, image_shape=bad)
    with pytest.raises(exc, match="image_shape"):
        tilt.read_relion_tomograms(path, image_shape={"TS_01": bad})
    g = tilt.read_relion(path, image_shape=(1024, 960))
    with pytest.raises(exc, match="image_shape"):
        tilt.to_relion(g, tmp_path / "o.star", layout="relion4", image_shape=bad)
    with pytest.raises(errors.InvalidValueError, match="image_shape"):
        tilt.to_relion(g, tmp_path / "o.star", layout="relion5", image_shape=(1024, 960))


@settings(max_examples=15, deadline=None)
@given(
    n=st.integers(1, 10),
    seed=st.integers(0, 2**31),
    vol=st.tuples(st.integers(50, 5000), st.integers(50, 5000), st.integers(20, 2000)),
    img=st.tuples(st.integers(64, 8000), st.integers(64, 8000)),
)
def test_random_geometries_round_trip_relion4_with_image_shape(n, seed, vol, img):
    rng = np.random.default_rng(seed)
    g = tilt.TiltGeometry(
        rng.uniform(-70, 70, n),
        rng.uniform(-179, 179, n),
        rng.uniform(1e4, 5e4, n),
        x_tilt_deg=rng.uniform(-5, 5, n),
        shifts_a=rng.normal(0, 100, (n, 2)),
        hand=int(rng.choice([-1, 1])),
        volume_shape=vol,
        pixel_size_a=float(rng.uniform(0.5, 5)),
    )
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "t.star"
        tilt.to_relion(g, path, tomo_name="X", layout="relion4", image_shape=img)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", errors.ImplausibleValueWarning)
            g2 = tilt.read_relion(path, image_shape=img)
    np.testing.assert_allclose(g2.shifts_a, g.shifts_a, atol=1e-6)
    p = rng.uniform(-4000, 4000, (20, 3))
    np.testing.assert_allclose(tilt.project(g2, p), tilt.project(g, p), atol=1e-6)
    np.testing.assert_allclose(
        tilt.particle_defocus(g2, p, dtype=np.float64),
        tilt.particle_defocus(g, p, dtype=np.float64),
        atol=1e-6,
    )


def test_every_real_star_file_round_trips_through_io_star(shared_data, tmp_path):
    """All STAR files in the shared data (RELION 5 tutorial, Warp exports, sub-tilt tables):
    read with starfile (via io.star), written, read back to equal tables; names stay strings.
    """
    files = sorted(shared_data.rglob("*.star"))
    assert len(files) >= 20
    for f in files:
        blocks = star.read_star(f)
        out = star.write_star(tmp_path / "rt.star", blocks, force=True)
        back = star.read_star(out)
        assert list(back) == list(blocks), f
        for k, b in blocks.items():
            if isinstance(b, pd.DataFrame):
                pd.testing.assert_frame_equal(
                    b.reset_index(drop=True),
                    back[k].reset_index(drop=True),
                    check_dtype=False,
                    rtol=1e-11,
                )
                for c in ("rlnTomoName", "rlnMicrographName"):
                    if c in b.columns:
                        assert all(isinstance(v, str) for v in b[c]), (f, c)
            else:
                assert back[k] == b, (f, k)
    # the RELION 5 tutorial's tomograms: the same geometry after the round trip
    src = shared_file(*RELION, "CtfRefine", "job027", "tomograms.star")
    g = tilt.read_relion(src, "TS_03", project_dir=src.parents[2])
    g2 = tilt.read_relion(tilt.to_relion(g, tmp_path / "g.star", tomo_name="TS_03"))
    np.testing.assert_allclose(g2.tilt_deg, g.tilt_deg, atol=1e-6)
    np.testing.assert_allclose(g2.defocus_u_a, g.defocus_u_a, atol=1e-6)
    assert g2.names == g.names and g2.hand == g.hand
