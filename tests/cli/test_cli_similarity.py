"""`emgeom crossmag align --unknown-rotation`: Fourier–Mellin from the command line."""

from __future__ import annotations

import json

import numpy as np

from emgeom import resample, synthetic
from emgeom.cli import main
from emgeom.cli.demo import sample_path
from emgeom.io.mrc import read_mrc, write_mrc


def test_unknown_rotation_json(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    big = read_mrc(sample_path("micrograph_crop.mrc")).data.astype(np.float32)
    theta, s = -25.0, 1.25
    lin = (1 / s) * synthetic.rotation_matrix(theta)
    center = np.array([255.5 - 30.0, 255.5 + 12.0])
    moving = resample.warp_affine(
        big, resample.affine_about_center(lin, center, np.array([127.5, 127.5])), (256, 256)
    )
    write_mrc(tmp_path / "ref.mrc", big)  # no pixel size in either header
    write_mrc(tmp_path / "mov.mrc", moving)
    args = ["crossmag", "align", str(tmp_path / "ref.mrc"), str(tmp_path / "mov.mrc")]
    assert main(args) == 2  # known-mag mode needs pixel sizes
    capsys.readouterr()
    assert main([*args, "--unknown-rotation", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["found"] is True
    assert abs(out["rotation_deg"] - theta) < 0.1
    assert abs(out["scale"] - 1 / s) < 0.002
    np.testing.assert_allclose(out["center_px"], center, atol=1.0)
    best = out["candidates"][0]  # ranked Fourier–Mellin hypotheses (before refinement)
    assert abs(best["rotation_deg"] - theta) < 0.5 and abs(best["scale"] - 1 / s) < 0.01
