"""`emgeom crossmag align|batch` on MRC files written from a synthetic pair."""

from __future__ import annotations

import json

import numpy as np
import pytest

from emgeom import synthetic as syn
from emgeom.cli import main
from emgeom.io.mrc import write_mrc


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cm")
    m = syn.make_specimen(
        (1024, 1024),
        pixel_a=4.0,
        seed=7,
        n_particles=600,
        hole_diameter_a=2000.0,
        n_contamination=10,
    )
    view = syn.acquire(m, pixel_a=20.0, shape=(200, 200), noise_sigma=0.05, seed=1)
    prev = syn.acquire(
        m,
        pixel_a=4.0,
        shape=(300, 320),
        center=(560.0, 470.0),
        rotation_deg=8.0,
        noise_sigma=0.2,
        seed=2,
    )
    write_mrc(d / "view.mrc", view.image, 20.0)
    write_mrc(d / "prev.mrc", prev.image, 4.0)
    write_mrc(d / "nopix.mrc", prev.image)
    a = syn.affine_between(view, prev)
    return d, a[:, :2] @ np.array(prev.center) + a[:, 2]


def test_align_json_uses_header_pixel_sizes(files, capsys):
    d, truth = files
    code = main(
        ["crossmag", "align", str(d / "view.mrc"), str(d / "prev.mrc"), "--rotation", "8", "--json"]
    )
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["found"] is True
    assert np.hypot(*(np.array(out["center_px"]) - truth)) < 0.5
    assert out["reference_pixel_a"] == 20.0 and out["moving_pixel_a"] == 4.0
    assert np.asarray(out["affine"]).shape == (2, 3)
    # error bars (issue 12): positive and consistent with the measured error
    assert 0 < out["center_sigma_px"] < 1.0
    assert 0 < out["scale_sigma"] < 0.05 and 0 < out["rotation_sigma_deg"] < 3.0
    # the refinement's measures behind the calibrated confidence: a right answer predicts the
    # moving image well and leaves nearly white residuals (area ~1-2; unrelated images 15-35)
    assert 0.3 < out["prediction_ccc"] <= 1.0 and 0.5 < out["residual_corr_area"] < 5.0


def test_align_huge_max_shift_is_bounded(files, capsys):
    """Issue 13: --max-shift 1e20 allocated ~15 GB and aborted; the radius is now bounded by
    the reference's extent (the same search as the whole image)."""
    d, truth = files
    code = main(
        [
            "crossmag",
            "align",
            str(d / "view.mrc"),
            str(d / "prev.mrc"),
            "--rotation",
            "8",
            "--max-shift",
            "1e20",
            "--json",
        ]
    )
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert np.hypot(*(np.array(out["center_px"]) - truth)) < 0.5


def test_align_human_output_and_plot(files, capsys):
    pytest.importorskip("matplotlib")
    d, _ = files
    png = d / "overlay.png"
    code = main(
        [
            "crossmag",
            "align",
            str(d / "view.mrc"),
            str(d / "prev.mrc"),
            "--rotation",
            "8",
            "--scale-search",
            "0",
            "--rotation-search",
            "0",
            "--plot",
            str(png),
        ]
    )
    assert code == 0
    text = capsys.readouterr().out
    assert "FOUND" in text and "centre of moving image" in text
    assert " ± " in text  # the centre's σ (scale and rotation held: ± 0)
    assert png.stat().st_size > 1000
    # no clobbering without --force
    code = main(["crossmag", "align", str(d / "view.mrc"), str(d / "prev.mrc"), "--plot", str(png)])
    assert code == 2


def test_missing_pixel_size_is_a_clear_error(files, capsys):
    d, _ = files
    code = main(["crossmag", "align", str(d / "view.mrc"), str(d / "nopix.mrc")])
    assert code == 2
    assert "--mov-pixel" in capsys.readouterr().err


def test_pixel_size_from_serialem_mdoc(files, capsys):
    d, truth = files
    (d / "nopix.mrc.mdoc").write_text(
        "PixelSpacing = 4.0\nImageFile = nopix.mrc\n\n[ZValue = 0]\nPixelSpacing = 4.0\n"
    )
    try:
        code = main(
            [
                "crossmag",
                "align",
                str(d / "view.mrc"),
                str(d / "nopix.mrc"),
                "--rotation",
                "8",
                "--json",
            ]
        )
        assert code == 0
        out = json.loads(capsys.readouterr().out)
        assert out["moving_pixel_a"] == 4.0 and out["found"]
        assert np.hypot(*(np.array(out["center_px"]) - truth)) < 0.5
    finally:
        (d / "nopix.mrc.mdoc").unlink()


def test_batch_with_shards(files, capsys):
    d, truth = files
    table = d / "pairs.csv"
    table.write_text(
        "reference,moving,rotation_deg,moving_pixel_a\n"
        "view.mrc,prev.mrc,8,\nview.mrc,nopix.mrc,8,\nview.mrc,nopix.mrc,8,4.0\n"
    )
    out0 = d / "s0.jsonl"
    assert main(["crossmag", "batch", str(table), "--out", str(out0), "--shard", "0/2"]) == 0
    out1 = d / "s1.jsonl"
    assert main(["crossmag", "batch", str(table), "--out", str(out1), "--shard", "1/2"]) == 0
    r0 = [json.loads(x) for x in out0.read_text().splitlines()]
    r1 = [json.loads(x) for x in out1.read_text().splitlines()]
    assert [r["row"] for r in r0] == [0, 2] and [r["row"] for r in r1] == [1]
    assert r0[0]["found"] and np.hypot(*(np.array(r0[0]["center_px"]) - truth)) < 0.5
    assert r0[1]["found"]
    assert "pixel size" in r1[0]["error"]
    assert main(["crossmag", "batch", str(table), "--out", str(out0), "--shard", "3/2"]) == 2


def test_batch_csv_shards_merge(files, tmp_path):
    import csv

    from emgeom.cli.merge import merge_files

    d, truth = files
    table = d / "pairs_csv.csv"
    table.write_text("reference,moving,rotation_deg\n" + "view.mrc,prev.mrc,8\n" * 3)
    parts = []
    for i in range(2):
        part = tmp_path / f"part{i}.csv"
        assert main(["crossmag", "batch", str(table), "--out", str(part), "--shard", f"{i}/2"]) == 0
        parts.append(part)
    out = tmp_path / "all.csv"
    assert merge_files(parts, out) == 3
    rows = list(csv.DictReader(out.read_text().splitlines()))
    assert [int(r["row"]) for r in rows] == [0, 1, 2]
    for r in rows:
        assert r["found"] == "True"
        assert (
            np.hypot(float(r["center_x_px"]) - truth[0], float(r["center_y_px"]) - truth[1]) < 0.5
        )
        assert float(r["a02"]) != 0.0
