"""The `emgeom` command line: anisomag convert/correct and the demo."""

from __future__ import annotations

import json
import subprocess
import sys

import mrcfile
import numpy as np
import pytest

from emgeom.anisomag import AnisoMag
from emgeom.cli import main

FORUM = ["-0.00571369", "-0.00932393", "-0.01013075", "0.00451204"]


def run(args: list[str], capsys) -> tuple[int, str, str]:  # type: ignore[no-untyped-def]
    code = main(args)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_convert_answers_the_forum_question(capsys) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = run(
        [
            "anisomag",
            "convert",
            "--from",
            "cryosparc",
            "--to",
            "motioncor2",
            "--determinant",
            "0.99867812",
            "--",
            *FORUM,
        ],
        capsys,
    )
    assert code == 0
    assert "answer (motioncor2): -Mag 1.011726 0.989718 58.875" in out
    assert "1.005842 0.009336 0.010144 0.995602" in out  # RELION MagMat
    assert "2.224 %" in out and "58.875°" in out
    assert "0.999339" in out  # pixel size scale
    assert "0.99867811, logged 0.99867812: agrees" in out
    assert "121.125" in out and "Patch Motion" in out  # the frame note


def test_convert_json(capsys) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = run(
        ["anisomag", "convert", "--from", "cryosparc", "--to", "relion", "--json", "--", *FORUM],
        capsys,
    )
    assert code == 0
    info = json.loads(out)
    assert info["answer"].split()[0] == "1.00584165"
    assert info["motioncor2"]["args"] == "-Mag 1.011726 0.989718 58.875"
    assert info["anisotropy_percent"] == pytest.approx(2.2236, abs=1e-3)


def test_convert_bad_values_exit_2(capsys) -> None:  # type: ignore[no-untyped-def]
    code, _, err = run(["anisomag", "convert", "--from", "relion", "--", "1", "0", "0"], capsys)
    assert code == 2 and "emgeom: error:" in err and "(2, 2)" in err
    code, _, err = run(["anisomag", "convert", "--from", "nope", "--", *FORUM], capsys)
    assert code == 2 and "unknown anisomag convention" in err


def test_correct_mrc_and_no_clobber(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(0)
    img = rng.normal(size=(64, 72)).astype(np.float32)
    src = tmp_path / "in.mrc"
    with mrcfile.new(src) as m:
        m.set_data(img)
        m.voxel_size = 1.5
    out = tmp_path / "out.mrc"
    args = [
        "anisomag",
        "correct",
        str(src),
        str(out),
        "--from",
        "motioncor2",
        "--",
        "1.02",
        "0.98",
        "30",
    ]
    code, _, err = run(args, capsys)
    assert code == 0, err
    with mrcfile.open(out) as m:
        data = m.data.copy()
        assert m.voxel_size.x == pytest.approx(1.5)
    from emgeom.anisomag import correct

    np.testing.assert_allclose(data, correct(img, AnisoMag.from_motioncor(1.02, 0.98, 30)))
    code, _, err = run(args, capsys)
    assert code == 2 and "--force" in err
    code, _, err = run([*args[:4], "--force", *args[4:]], capsys)
    assert code == 0, err


def test_console_script_and_demo(tmp_path) -> None:
    exe = [sys.executable, "-m", "emgeom"]
    res = subprocess.run(
        [*exe, "demo", "--output", str(tmp_path / "d")], capture_output=True, text=True, check=False
    )
    assert res.returncode == 0, res.stderr
    report = (tmp_path / "d" / "report.txt").read_text()
    assert "-Mag 1.011726 0.989718 58.875" in report
    assert (tmp_path / "d" / "micrograph_corrected.mrc").exists()
    line = next(x for x in report.splitlines() if "RMS difference" in x)
    before = float(line.split("distorted ")[1].split(",")[0])
    after = float(line.split("corrected ")[1])
    assert after < 0.5 * before
    res = subprocess.run(
        [*exe, "demo", "--output", str(tmp_path / "d")], capture_output=True, text=True, check=False
    )
    assert res.returncode == 2 and "--force" in res.stderr
