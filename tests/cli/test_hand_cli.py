"""CLI: emgeom tilt check-hand / audit (module emgeom.cli.hand, mounted under `tilt`)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from emgeom import tilt
from emgeom.cli.hand import app
from tests.conftest import shared_file

runner = CliRunner()


@pytest.mark.realdata
def test_check_hand_subtilt_real(tmp_path):
    star = shared_file("warp_tomo", "cryodrgn_subtilt", "sta_testing_bin8.star")
    png = tmp_path / "slopes.png"
    r = runner.invoke(app, ["check-hand", "--subtilt", str(star), "--plot", str(png)])
    assert r.exit_code == 0, r.output
    assert "h = -1" in r.output and "_rlnTomoHand +1" in r.output
    assert "AreAnglesInverted=False" in r.output
    assert png.read_bytes()[:4] == b"\x89PNG"
    r2 = runner.invoke(app, ["check-hand", "--subtilt", str(star), "--json"])
    d = json.loads(r2.output)
    assert d["hand"] == -1 and d["decided"] and d["flags"]["relion_rlnTomoHand"] == 1


def test_check_hand_images_with_progress_and_json(tmp_path):
    from emgeom.io.mrc import write_mrc
    from emgeom.simulate import simulate_tilt_series

    g = tilt.TiltGeometry(
        np.linspace(-60, 60, 21),
        70.0,
        25000.0,
        hand=-1,
        pixel_size_a=3.5,
        volume_shape=(512, 512, 200),
    )
    write_mrc(
        tmp_path / "ts.mrc",
        simulate_tilt_series(g, shape=(448, 448), seed=3, defocus_step_a=300.0),
        3.5,
    )
    star = tilt.to_relion(g.with_hand(+1), tmp_path / "tomograms.star", tomo_name="ts")
    r = runner.invoke(
        app,
        [
            "check-hand",
            str(star),
            "--images",
            str(tmp_path / "ts.mrc"),
            "--pixel-size",
            "3.5",
            "--json",
        ],
    )
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert d["hand"] == -1 and d["geometry_hand"] == 1 and d["agrees_with_geometry"] is False
    bad = runner.invoke(app, ["check-hand", str(star)])
    assert bad.exit_code != 0


def test_audit_cli_files_and_dataset(tmp_path):
    g = tilt.TiltGeometry(
        np.linspace(-45, 45, 31),
        84.0,
        21000.0,
        hand=-1,
        pixel_size_a=1.54,
        volume_shape=(4096, 4096, 2000),
    )
    xml = tilt.to_warp(g, tmp_path / "ts.xml")
    star = tilt.to_relion(g.with_hand(+1), tmp_path / "t.star", tomo_name="ts", layout="relion4")
    r = runner.invoke(app, ["audit", str(xml), str(star)])
    assert r.exit_code == 3, r.output
    assert "fix: change" in r.output and "_rlnTomoHand -1 -> _rlnTomoHand +1" in r.output
    assert "DISAGREE" in r.output
    r2 = runner.invoke(
        app, ["audit", str(xml), str(tmp_path / "t.star"), "--pytom", "-1", "--json"]
    )
    d = json.loads(r2.output)
    assert len(d["pairs"]) == 3 and not d["agree"]
    ok = tilt.to_relion(g, tmp_path / "ok.star", tomo_name="ts", layout="relion4")
    r3 = runner.invoke(app, ["audit", str(xml), str(ok)])
    assert r3.exit_code == 0 and "AGREE" in r3.output


@pytest.mark.realdata
def test_audit_cli_dataset_real():
    star = shared_file("relion5_tomo_tutorial", "relion", "CtfRefine", "job027", "tomograms.star")
    r = runner.invoke(app, ["audit", str(star)])
    assert r.exit_code == 0, r.output
    assert "5 tilt series; majority hand h = +1" in r.output
