"""``emgeom tilt`` command line on real files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from emgeom import errors, tilt
from emgeom.cli import main
from tests.conftest import shared_file

pytestmark = pytest.mark.realdata

WARP = ("cryoet_alignment", "TomoBabel_cets-warpm", "tests", "data", "Position_16_3.xml")
RELION = ("relion5_tomo_tutorial", "relion", "CtfRefine", "job027", "tomograms.star")


def run(capsys, *args):
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_explain_warp_and_aretomo(capsys):
    aln = shared_file(
        "cryoet_alignment", "TomoBabel_cets-aretomo3", "tests", "data", "Position_16_3.aln"
    )
    ctf = shared_file("cryoet_alignment", "tests", "data", "test_8col_CTF.txt")
    code, out, _ = run(capsys, "tilt", "explain", str(shared_file(*WARP)))
    assert code == 0
    info = json.loads(out)[str(shared_file(*WARP))]
    assert info["hand"] == -1 and info["n_tilts"] == 31
    assert info["flags"]["relion_rlnTomoHand"] == 1
    assert info["flags"]["warp_AreAnglesInverted"] is False
    assert info["tilt_deg_range"] == pytest.approx([-45.01, 44.99])
    code, out, _ = run(
        capsys, "tilt", "explain", str(aln), "--ctf", str(ctf), "--pixel-size", "1.54"
    )
    assert code == 0 and json.loads(out)[str(aln)]["hand"] == -1


def test_explain_relion_all_tomograms(capsys):
    code, out, _ = run(
        capsys,
        "tilt",
        "explain",
        str(shared_file(*RELION)),
        "--project-dir",
        str(shared_file(*RELION).parents[2]),
    )
    assert code == 0
    info = json.loads(out)
    assert len(info) == 5 and all(v["hand"] == 1 for v in info.values())
    assert all(v["flags"]["imod_ctfphaseflip_invert"] is False for v in info.values())


def test_convert_warp_to_relion_and_back(tmp_path, capsys):
    out = tmp_path / "tomograms.star"
    code, text, _ = run(
        capsys,
        "tilt",
        "convert",
        str(shared_file(*WARP)),
        "--to",
        "relion",
        "-o",
        str(out),
        "--volume-shape",
        "4096,4096,2000",
    )
    assert code == 0, text
    g = tilt.read_relion(out)
    gw = tilt.read_warp(shared_file(*WARP))
    assert g.relion_hand == +1 and g.hand == gw.hand
    np.testing.assert_allclose(g.tilt_deg, gw.tilt_deg, atol=1e-5)
    # no clobber
    code, _, err = run(
        capsys,
        "tilt",
        "convert",
        str(shared_file(*WARP)),
        "--to",
        "relion",
        "-o",
        str(out),
        "--volume-shape",
        "4096,4096,2000",
    )
    assert code == 2 and "already exists" in err
    code, _, _ = run(
        capsys, "tilt", "convert", str(out), "--to", "warp", "-o", str(tmp_path / "back.xml")
    )
    assert code == 0
    np.testing.assert_allclose(
        tilt.read_warp(tmp_path / "back.xml").tilt_deg, gw.tilt_deg, atol=1e-5
    )
    code, _, err = run(
        capsys,
        "tilt",
        "convert",
        str(shared_file(*WARP)),
        "--to",
        "relion",
        "-o",
        str(tmp_path / "x.star"),
    )
    assert code == 2 and "volume_shape" in err
    code, _, err = run(capsys, "tilt", "convert", str(tmp_path / "x.mrc"), "-o", "y")
    assert code == 2 and "extension" in err


def test_convert_to_relion4_keeps_shifts_with_image_shape(tmp_path, capsys):
    gw = tilt.read_warp(shared_file(*WARP))
    assert np.abs(gw.shifts_a).max() > 1  # the Warp series has real shifts
    args = ["tilt", "convert", str(shared_file(*WARP)), "--to", "relion4"]
    vol = ["--volume-shape", "4096,4096,2000"]
    out = tmp_path / "full.star"
    code, text, _ = run(capsys, *args, "-o", str(out), *vol, "--image-shape", "4092,5760")
    assert code == 0, text
    g = tilt.read_relion(out, image_shape=(4092, 5760))
    np.testing.assert_allclose(g.shifts_a, gw.shifts_a, atol=1e-6)
    p = np.random.default_rng(0).uniform(-2000, 2000, (10, 3))
    np.testing.assert_allclose(tilt.project(g, p), tilt.project(gw, p), atol=1e-6)
    # without it: rotation-only matrices, shifts dropped with a warning (Python prints it)
    with pytest.warns(errors.LossyConversionWarning, match="image_shape"):
        code, _, _ = run(capsys, *args, "-o", str(tmp_path / "rot.star"), *vol)
    assert code == 0
    assert np.all(tilt.read_relion(tmp_path / "rot.star").shifts_a == 0)
    for bad, what in (("4092", "ny,nx"), ("a,b", "ny,nx")):
        code, _, err = run(
            capsys, *args, "-o", str(tmp_path / "b.star"), *vol, "--image-shape", bad
        )
        assert code == 2 and what in err
    code, _, err = run(
        capsys,
        "tilt",
        "convert",
        str(shared_file(*WARP)),
        "-o",
        str(tmp_path / "c.star"),
        *vol,
        "--image-shape",
        "10,10",
    )
    assert code == 2 and "relion4" in err


def test_defocus_command(tmp_path, capsys):
    pstar = tmp_path / "particles.star"
    pstar.write_text(
        "data_particles\n\nloop_\n_rlnTomoName #1\n_rlnCenteredCoordinateXAngst #2\n"
        "_rlnCenteredCoordinateYAngst #3\n_rlnCenteredCoordinateZAngst #4\n"
        "TS_03 1000.0 0.0 0.0\nTS_01 0.0 0.0 500.0\n"
    )
    out = tmp_path / "out.star"
    args = [
        "tilt",
        "defocus",
        "--relion",
        str(shared_file(*RELION)),
        "--particles",
        str(pstar),
        "-o",
        str(out),
        "--project-dir",
        str(shared_file(*RELION).parents[2]),
    ]
    code, text, _ = run(capsys, *args)
    assert code == 0, text
    assert json.loads(text)["particles"] == 2
    body = out.read_text()
    assert "_emgeomTiltDefocusU" in body and "_emgeomTiltDefocusV" in body
    code, _, err = run(capsys, *args)
    assert code == 2 and "already exists" in err
    code, _, _ = run(capsys, *args, "--force")
    assert code == 0
