"""Cross-program handedness audit (emgeom.tilt._audit) on synthetic and real files."""

from __future__ import annotations

import numpy as np
import pytest

from emgeom import errors, tilt
from emgeom.tilt import AuditSource, audit, audit_dataset, load_source
from tests.conftest import shared_file


def warp_like(hand=-1, axis=83.9, n=31, seed=0):
    rng = np.random.default_rng(seed)
    t = np.linspace(-45, 45, n)
    return tilt.TiltGeometry(
        t,
        axis,
        21000 + rng.normal(0, 300, n),
        hand=hand,
        pixel_size_a=1.54,
        volume_shape=(4096, 4096, 2000),
        shifts_a=rng.normal(0, 30, (n, 2)),
        names=[f"pos_{i:03d}_{a:.2f}.eer" for i, a in enumerate(t)],
    )


def test_finding5_warp_export_sign_detected_on_synthetic_files(tmp_path):
    """Warp XML (AreAnglesInverted False) + its RELION export as WarpTools writes it
    (GetRelionHand(False) = -1, ProjX/Y/Z = rows of Warp's matrix, no translations)."""
    g = warp_like(hand=-1)
    xml = tilt.to_warp(g, tmp_path / "ts.xml")
    # WarpTools' export: same matrices, rlnTomoHand -1 (= canonical +1), shifts not exported
    export = g.replace(shifts_a=np.zeros((g.n_tilts, 2))).with_hand(+1)
    star = tilt.to_relion(export, tmp_path / "tomograms.star", tomo_name="ts", layout="relion4")
    assert "_rlnTomoProjZ" in star.read_text() and " -1.0 " in star.read_text()
    rep = audit([xml, star])
    assert not rep.agree
    pair = rep.pairs[0]
    assert pair.fix is not None and "_rlnTomoHand -1 -> _rlnTomoHand +1" in pair.fix
    assert 'AreAnglesInverted="False" -> AreAnglesInverted="True"' in pair.fix
    # magnitude: 2|z'| on the grid, exactly undone by toggling the flag
    assert pair.position_max_a > 2000 and pair.flipped_rms_a < 1.0
    assert pair.projection_rms_a < 1.0  # same images, shifts differ by a constant only
    # emgeom's own writer gets it right: agreement
    good = tilt.to_relion(
        g.replace(shifts_a=np.zeros((g.n_tilts, 2))),
        tmp_path / "ok.star",
        tomo_name="ts",
        layout="relion4",
    )
    assert audit([xml, good]).agree


def test_majority_names_the_odd_file(tmp_path):
    g = warp_like(hand=-1)
    xml = tilt.to_warp(g, tmp_path / "ts.xml")
    star = tilt.to_relion(g.with_hand(+1), tmp_path / "t.star", tomo_name="ts")
    aretomo_like = AuditSource(g.replace(names=None), "aretomo", "aretomo.aln")
    rep = audit([xml, aretomo_like, star])
    assert not rep.agree and rep.odd_ones_out == (str(star),)
    assert any("_rlnTomoHand -1 -> _rlnTomoHand +1" in a for a in rep.advice)


def test_finding6_pytom_passthrough_detected(tmp_path):
    """pytom-match-pick reading rlnTomoHand -1 from a RELION 5 star and using it as its
    --defocus-handedness (-1 = canonical h = -1): wrong sign everywhere; +1 only at z = 0."""
    g = warp_like(hand=+1)  # RELION rlnTomoHand -1 (the tutorial's value)
    star = tilt.to_relion(g, tmp_path / "tomograms.star", tomo_name="ts")
    relion = load_source(star)
    assert relion.flag() == "_rlnTomoHand -1"
    pytom = load_source(star, pytom_handedness=relion.geometry.relion_hand)
    rep = audit([relion, pytom])
    assert not rep.agree
    p = rep.pairs[0]
    assert "no pytom --defocus-handedness reproduces" in p.verdict
    assert "--defocus-handedness +1 (approximate" in (p.fix or "")
    # for an h = -1 file, pytom -1 is exact
    g2 = warp_like(hand=-1)
    rep2 = audit([AuditSource(g2, "relion", "r"), AuditSource(g2, "pytom", "p", -1)])
    assert rep2.agree
    # and pytom +1 on an h = -1 file is found and fixed by toggling
    rep3 = audit([AuditSource(g2, "relion", "r"), AuditSource(g2, "pytom", "p", +1)])
    assert not rep3.agree and "--defocus-handedness -1" in (rep3.pairs[0].fix or "")


def test_inverted_tilt_angles_and_180_axis_are_frame_changes():
    g = warp_like(hand=-1).replace(names=None)
    # z-mirrored description of the same images with the hand flipped: equivalent
    assert audit([g, g.invert_tilt_angles()]).agree
    assert audit([g, g.rotate_axis_180()]).agree
    # the same numbers but the hand not flipped (warp#173): detected, fixed by the flag
    bad = g.invert_tilt_angles().with_hand(g.hand)
    rep = audit([AuditSource(g, "warp", "w"), AuditSource(bad, "imod", "i")])
    assert not rep.agree and rep.pairs[0].tilts_inverted
    assert "ctfphaseflip/ctfplotter" in (rep.pairs[0].fix or "")
    # a geometry that differs by more than the hand: no flag fixes it
    other = g.replace(axis_deg=g.axis_deg + 20.0)
    rep2 = audit([g, other])
    assert not rep2.agree and rep2.pairs[0].fix is None
    assert "projection geometry" in rep2.pairs[0].verdict


def test_audit_errors(tmp_path):
    g = warp_like()
    with pytest.raises(errors.InvalidValueError, match="at least two"):
        audit([g])
    with pytest.raises(errors.InvalidTypeError, match="sequence"):
        audit(g)  # type: ignore[arg-type]
    with pytest.raises(errors.InvalidTypeError, match="sources\\[1\\]"):
        audit([g, 3])
    short = tilt.TiltGeometry([-60.0, -2.0, 33.0], 0.0, 20000.0)
    with pytest.raises(errors.InvalidValueError, match="cannot tell which tilts"):
        audit([g.replace(names=None), short])
    with pytest.raises(errors.InvalidValueError, match="cannot tell the program"):
        load_source(tmp_path / "x.mrc")
    with pytest.raises(errors.InvalidValueError, match="program"):
        AuditSource(g, "eman2")
    with pytest.raises(errors.InvalidValueError, match="pytom_handedness"):
        AuditSource(g, "pytom", "p", 2)


# ------------------------------------------------------------------------ data set
def test_dataset_majority_flags_wrong_hand_and_180_axis(tmp_path):
    geos = {f"TS_{i:02d}": warp_like(hand=+1, axis=85.0 + 0.5 * i, seed=i) for i in range(7)}
    geos["TS_03"] = geos["TS_03"].replace(axis_deg=geos["TS_03"].axis_deg - 180.0)
    geos["TS_05"] = geos["TS_05"].with_hand(-1)
    res = audit_dataset(geos)
    assert res.majority_hand == +1 and abs(res.majority_axis_deg - 86.5) < 2
    assert set(res.flagged) == {"TS_03", "TS_05"}
    assert "180" in res.flagged["TS_03"] and "hand h = -1" in res.flagged["TS_05"]
    # written as a RELION tomograms.star data set: same verdict from the file
    import pandas as pd

    from emgeom.io.star import read_star, write_star

    blocks_all = {}
    glob_rows = []
    for name, g in geos.items():
        p = tilt.to_relion(g, tmp_path / f"{name}.star", tomo_name=name)
        b = read_star(p)
        glob_rows.append(b["global"])
        blocks_all[name] = b[name]
    glob = pd.concat(glob_rows, ignore_index=True)
    write_star(tmp_path / "all.star", {"global": glob, **blocks_all})
    res2 = audit_dataset(tmp_path / "all.star")
    assert set(res2.flagged) == {"TS_03", "TS_05"}
    # a folder of Warp XMLs
    d = tmp_path / "xml"
    d.mkdir()
    for name, g in geos.items():
        tilt.to_warp(g, d / f"{name}.xml")
    assert set(audit_dataset(d).flagged) == {"TS_03", "TS_05"}
    with pytest.raises(errors.InvalidValueError, match="at least two"):
        audit_dataset({"a": geos["TS_00"]})


# ------------------------------------------------------------------------ real files
@pytest.mark.realdata
def test_position_16_3_real_files_reproduce_finding5():
    p163 = "cryoet_alignment"
    gw = tilt.read_warp(
        shared_file(p163, "TomoBabel_cets-warpm", "tests", "data", "Position_16_3.xml")
    )
    ga = tilt.read_aretomo(
        shared_file(p163, "TomoBabel_cets-aretomo3", "tests", "data", "Position_16_3.aln"),
        ctf=shared_file(p163, "tests", "data", "test_8col_CTF.txt"),
        pixel_size_a=1.54,
    )
    gr = tilt.read_relion(
        shared_file(p163, "tests", "data", "relion", "matching_tomograms.star"),
        "24jul16a_Position_16_3.tomostar",
    )
    rep = audit(
        [
            AuditSource(gw, "warp", "warp"),
            AuditSource(ga, "aretomo", "aretomo"),
            AuditSource(gr, "relion", "relion-export"),
        ]
    )
    assert rep.odd_ones_out == ("relion-export",)
    wa, wr, ar = rep.pairs
    assert wa.agree and wa.position_rms_a < 1.0 and 400 < wa.constant_rms_a < 800
    assert not wr.agree and "_rlnTomoHand -1 -> _rlnTomoHand +1" in (wr.fix or "")
    assert wr.flipped_rms_a < 1.0 and wr.position_max_a > 3000
    assert not ar.agree


@pytest.mark.realdata
def test_relion_tutorial_dataset_consistent():
    res = audit_dataset(
        shared_file("relion5_tomo_tutorial", "relion", "CtfRefine", "job027", "tomograms.star")
    )
    assert res.consistent and res.majority_hand == +1 and len(res.names) == 5
    assert abs(res.majority_axis_deg - 85.2) < 0.5


@pytest.mark.realdata
def test_cryocat_ts017_warp_and_imod_frames_are_mirrored_but_agree():
    """cryoCAT TS_017: the Warp XML's Angles are the IMOD .tlt numbers (canonical θ_Warp =
    −θ_IMOD, design finding 2: z-mirrored frames). With Warp's AreAnglesInverted False
    (h = −1 in Warp's frame) and IMOD's convention (h = +1 in its frame) the per-particle
    defocus of the same physical point agrees: consistent, no flag to change."""
    d = ("warp_tomo", "cryocat_TS_017")
    gw = tilt.read_warp(shared_file(*d, "017.xml"))
    gi = tilt.read_imod(shared_file(*d, "017.tlt"), axis_deg=float(np.median(gw.axis_deg)))
    np.testing.assert_allclose(gw.tilt_deg, -gi.tilt_deg, atol=0.05)
    rep = audit([AuditSource(gw, "warp", "warp"), AuditSource(gi, "imod", "imod")])
    assert rep.agree and rep.pairs[0].tilts_inverted
    assert rep.pairs[0].position_rms_a < 1.0
    # feeding Warp's numbers to IMOD *with Warp's hand* would be the warp#173 error
    bad = audit(
        [AuditSource(gw, "warp", "warp"), AuditSource(gi.with_hand(gw.hand), "imod", "imod")]
    )
    assert not bad.agree and "-invert" in (bad.pairs[0].fix or "")
