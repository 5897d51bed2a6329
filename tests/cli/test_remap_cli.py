"""``emgeom tilt remap`` and ``emgeom tilt convert --from portal`` on real files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from emgeom import tilt
from emgeom.cli import main
from emgeom.io.particles import read_particles, write_particles
from emgeom.io.portal import read_portal_annotations
from tests.conftest import shared_file

pytestmark = pytest.mark.realdata

CDP = ("cryoet_alignment_golden", "TomoBabel_cets-cryoet-data-portal", "tests", "data")
TUT = "relion5_tomo_tutorial"


def run(capsys, *args):
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def portal_spec():
    return f"portal:{shared_file(*CDP, '10445_TS_105_5.extract.json')}"


def aretomo_spec():
    return f"aretomo3:{shared_file(*CDP, '10445_TS_105_5.aln')},pixel=1.54,vol_z=1840,at_bin=8"


def test_portal_picks_to_aretomo3_and_back(tmp_path, capsys):
    picks = shared_file(*CDP, "annotations", "175505_OrientedPoint.ndjson")
    star = tmp_path / "are.star"
    png = tmp_path / "before_after.png"
    code, out, err = run(
        capsys,
        "tilt",
        "remap",
        picks,
        "--from",
        portal_spec(),
        "--to",
        aretomo_spec(),
        "-o",
        star,
        "--plot",
        png,
    )
    assert code == 0, err
    rep = json.loads(out)
    t = rep["targets"][0]
    assert rep["n"] == 95 and t["exact"] and t["residual_px"] == 0 and t["n_outside"] == 1
    assert t["format"] == "warp" and len(t["per_tilt"]) == 31
    assert png.read_bytes()[:4] == b"\x89PNG"
    # back to the portal tomogram, through the Warp-style star at the AreTomo3 voxel size
    back = tmp_path / "back.ndjson"
    code, out, err = run(
        capsys,
        "tilt",
        "remap",
        star,
        "--from",
        aretomo_spec(),
        "--coords-angpix",
        "12.32",
        "--to",
        portal_spec(),
        "-o",
        back,
    )
    assert code == 0, err
    loc0, m0 = read_portal_annotations(picks)
    loc1, m1 = read_portal_annotations(back)
    assert np.abs(loc1 - loc0).max() < 1e-5  # the star keeps 6 decimals of 12.32-A voxels
    assert np.abs(m1 - m0).max() < 1e-5
    # never overwrite without --force; one-line errors
    code, _, err = run(
        capsys, "tilt", "remap", picks, "--from", portal_spec(), "--to", aretomo_spec(), "-o", star
    )
    assert code != 0 and "already exists" in err and err.count("\n") == 1


def test_relion5_star_to_imod_model_like_the_issue(tmp_path, capsys):
    """`emgeom tilt remap picks.star --from relion5:tomograms.star --to imod:tilt.com -o
    picks.mod` on the tutorial TS_03 (RELION's own alignment vs the separate IMOD one)."""
    star = shared_file(TUT, "relion", "CtfRefine", "job027", "tomograms.star")
    tlt = shared_file(TUT, "imod_TS_03", "TS_03.tlt")
    com = tmp_path / "tilt.com"
    com.write_text(
        f"$tilt -StandardInput\nIMAGEBINNED 8\nTHICKNESS 2000\nFULLIMAGE 3710 3838\n"
        f"TILTFILE {tlt}\nXAXISTILT 0.0\nSHIFT 0.0 0.0\nOFFSET 0.0\n"
    )
    rng = np.random.default_rng(0)
    c = rng.uniform(-2000, 2000, (20, 3)) * [1, 1, 0.2]
    picks = tmp_path / "picks.star"
    write_particles(picks, "relion5", c, tomo_names=["TS_03"] * 20, pixel_size_a=1.35)
    mod = tmp_path / "picks.mod"
    code, out, err = run(
        capsys,
        "tilt",
        "remap",
        picks,
        "--from",
        f"relion5:{star},tomo=TS_03,image=3710x3838",
        "--to",
        f"imod:{com},pixel=1.35",
        "-o",
        mod,
        "--robust",
    )
    assert code == 0, err
    t = json.loads(out)["targets"][0]
    assert not t["exact"] and 3.5 < t["residual_px"] < 5.5 and t["format"] == "imod"
    assert sum(p["fitted"] for p in t["per_tilt"]) == 38
    assert any("residual" in w for w in t["warnings"])
    model = read_particles(mod)
    assert len(model) == 20 and model.frame == "imod_model"
    # the same mapping through the Python API
    src = tilt.Reconstruction.from_relion(star, "TS_03", image_shape=(3838, 3710))
    dst = tilt.Reconstruction.from_imod(com, pixel_size_a=1.35)
    from emgeom.tilt._remap import particles_to_voxels

    with pytest.warns(Warning):
        r = tilt.remap(particles_to_voxels(c, "relion_centered_a", src), src, dst, robust=True)
    assert np.abs(model.coordinates - (r.points + [0.5, 0.5, 0])).max() < 1e-3  # float32 .mod


def test_remap_cli_errors(tmp_path, capsys):
    picks = shared_file(*CDP, "annotations", "69547_Point.ndjson")
    cases = [
        (["--from", "eman:x", "--to", aretomo_spec(), "-o", tmp_path / "a.mod"], "--from"),
        (["--from", portal_spec(), "--to", aretomo_spec()], "-o"),
        (
            ["--from", portal_spec(), "--to", aretomo_spec() + ",foo=1", "-o", tmp_path / "b.mod"],
            "unknown keys",
        ),
        (
            [
                "--from",
                portal_spec(),
                "--to",
                f"warp:{tmp_path}/x.xml,voxel=10",
                "-o",
                tmp_path / "c.mod",
            ],
            "image=",
        ),
        (
            [
                "--from",
                portal_spec() + ",volume=10x10",
                "--to",
                aretomo_spec(),
                "-o",
                tmp_path / "d.mod",
            ],
            "volume=",
        ),
    ]
    for extra, msg in cases:
        code, _, err = run(capsys, "tilt", "remap", picks, *extra)
        assert code != 0 and msg in err, (extra, err)
        assert "Traceback" not in err


def test_convert_from_portal(tmp_path, capsys):
    out = tmp_path / "tomograms.star"
    code, _text, err = run(
        capsys,
        "tilt",
        "convert",
        shared_file(*CDP, "10445_TS_105_5.extract.json"),
        "--to",
        "relion",
        "-o",
        out,
        "--volume-shape",
        "4096,4096,1196",
        "--tomo-name",
        "TS_105_5",
    )
    assert code == 0, err
    g = tilt.read_relion(out)
    aln = tilt.read_aretomo(shared_file(*CDP, "10445_TS_105_5.aln"), pixel_size_a=1.54)
    np.testing.assert_allclose(g.tilt_deg, aln.tilt_deg)
    np.testing.assert_allclose(g.shifts_a, aln.shifts_a, atol=1e-6)
