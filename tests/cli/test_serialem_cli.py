"""`emgeom serialem` CLI and the embedded-SerialEM recipe (against a stub `serialem` module)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from emgeom.cli import main
from emgeom.io.mrc import write_mrc
from emgeom.io.serialem_nav import read_nav
from emgeom.serialem import MapFrame
from tests.conftest import shared_file
from tests.serialem.test_serialem_realign import make_world

ROOT = Path(__file__).resolve().parents[2]
TRUE_OFFSET_UM = np.array([12.0, -7.0])
ROT_DEG = 30.0


def _scene(tmp_path: Path) -> dict[str, Any]:
    """nav.nav next to a synthetic map.mrc (the real 4096² item loaded binned by 4) and a new
    image 'new.mrc' taken 12, −7 µm from the item, rotated 30° (file orientation)."""
    shutil.copy(shared_file("serialem", "pyserialem", "nav.nav"), tmp_path / "nav.nav")
    item = read_nav(tmp_path / "nav.nav").maps()[0]
    sx, sy, _ = item.stage_xyz_um
    world = make_world((sx, sy), 220.0, 0.15, seed=11)
    frame = MapFrame.from_item(item, (1024, 1024))
    p2s = frame.pixel_to_stage_affine
    a = np.hstack([p2s[:, :2], (p2s[:, :2] @ [-0.5, -0.5] + p2s[:, 2])[:, None]])
    write_mrc(tmp_path / "map.mrc", world.render(a, (1024, 1024), 0.05, 2))
    cam = np.array([item.map_scale_mat[0], -item.map_scale_mat[1]])
    t = np.radians(ROT_DEG)
    cam_new = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]]) @ cam
    inv = np.linalg.inv(cam_new)
    true = np.array([sx, sy]) + TRUE_OFFSET_UM
    img = world.render(
        np.hstack([inv, (true - inv @ [512.0, 512.0])[:, None]]), (1024, 1024), 0.3, 3
    )
    px = 1e4 / np.sqrt(abs(np.linalg.det(cam_new)))
    write_mrc(tmp_path / "new.mrc", img, pixel_size_a=px)
    m = cam / 4.0 @ inv
    rot = float(np.degrees(np.arctan2(m[1, 0] - m[0, 1], m[0, 0] + m[1, 1])))
    return {"item": item, "true": true, "img": img, "px": px, "rot": rot, "stage": (sx, sy)}


def test_cli_items_and_where(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    nav = shared_file("serialem", "pyserialem", "nav.nav")

    def where(*extra: str) -> int:
        return main(["serialem", "where", str(nav), "--item", "17-1-A", *extra])

    assert main(["serialem", "items", str(nav), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["written_by_serialem"] and d["items"][0]["label"] == "17-1-A"
    assert d["items"][0]["stage_xyz_um"] == [-495.956, 436.348, 44.77]
    assert where("--pixel", "2047.5,2047.5", "--json") == 0
    d = json.loads(capsys.readouterr().out)
    np.testing.assert_allclose(d["stage_um"], [-495.956, 436.348], atol=1e-9)
    assert where("--stage", "-421.93,515.071") == 0
    out = capsys.readouterr().out
    assert re.search(r"pixel \(-0\.\d\d, 4095\.\d\d\)", out), out
    assert where("--stage", "0,0", "--map-shape", "1024,1024", "--json") == 0
    assert json.loads(capsys.readouterr().out)["map_shape"] == [1024, 1024]
    png = tmp_path / "w.png"
    assert where("--stage", "0,0", "--plot", str(png)) == 0
    assert png.stat().st_size > 1000
    assert where("--stage", "0,0", "--plot", str(png)) == 2  # never overwritten without --force


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["where", "{nav}", "--item", "nope", "--pixel", "1,1"], "no item labelled 'nope'"),
        (["where", "{nav}", "--item", "17-1-A"], "exactly one of --pixel and --stage"),
        (["where", "{nav}", "--item", "17-1-A", "--pixel", "1;x"], "--pixel: expected 'x,y'"),
        (["where", "{clem}", "--item", "Leica", "--pixel", "1,1"], "not a SerialEM-made map"),
        (["items", "{missing}"], "no such Navigator file"),
        (["realign", "{nav}", "{nav}", "--item", "17-1-A"], "give --rotation or --image-scale-mat"),
    ],
)
def test_cli_errors_are_one_line(tmp_path, capsys, args, message) -> None:  # type: ignore[no-untyped-def]
    paths = {
        "nav": str(shared_file("serialem", "pyserialem", "nav.nav")),
        "clem": str(shared_file("serialem", "corr", "clem.nav")),
        "missing": str(tmp_path / "missing.nav"),
    }
    assert main(["serialem", *[a.format(**paths) for a in args]]) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("emgeom: error")]
    assert len(err) == 1 and message in err[0], err


def test_cli_realign_writes_corrected_nav(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    sc = _scene(tmp_path)
    nav, out = tmp_path / "nav.nav", tmp_path / "out.nav"
    args = [
        "serialem",
        "realign",
        str(nav),
        str(tmp_path / "new.mrc"),
        "--item",
        "17-1-A",
        "--rotation",
        str(sc["rot"]),
        "--max-shift",
        "20",
        "--out",
        str(out),
        "--json",
    ]
    assert main(args) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["found"]
    err = np.array(d["stage_xy_um"]) - sc["true"]
    assert np.hypot(*err) < 0.15  # one map pixel of the binned map is 0.150 µm
    added = read_nav(out)["17-1-A-realigned"]
    np.testing.assert_allclose(added.stage_xyz_um[:2], d["stage_xy_um"], atol=1e-4)
    assert added.drawn_id == 1291353952
    assert (out.read_bytes()).startswith(nav.read_bytes())  # the original items byte for byte
    assert main(args) == 2  # --out exists: never overwritten without --force
    png = tmp_path / "r.png"
    assert main([*args, "--force", "--plot", str(png)]) == 0
    assert png.stat().st_size > 1000
    # an image from elsewhere: not found, and no nav written
    other = tmp_path / "other.mrc"
    write_mrc(
        other,
        np.random.default_rng(0).normal(size=(512, 512)).astype(np.float32),
        pixel_size_a=sc["px"],
    )
    bad_out = tmp_path / "bad.nav"
    assert (
        main(
            [
                "serialem",
                "realign",
                str(nav),
                str(other),
                "--item",
                "17-1-A",
                "--rotation",
                "0",
                "--out",
                str(bad_out),
            ]
        )
        == 2
    )
    assert "not found on map 17-1-A" in capsys.readouterr().err and not bad_out.exists()


def _recipe_code() -> str:
    text = (ROOT / "docs" / "recipes" / "realign_to_item.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    return next(b for b in blocks if "import serialem" in b)


def test_embedded_recipe_with_stub_serialem(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    sc = _scene(tmp_path)
    calls: list[tuple[str, tuple[Any, ...]]] = []
    stub = types.ModuleType("serialem")
    said = np.array(sc["stage"])  # the stage reports the item position; the image is 12, -7 off

    def rec(name: str, ret: Any = None) -> Any:
        def f(*args: Any) -> Any:
            calls.append((name, args))
            return ret

        return f

    stub.MoveStageTo = rec("MoveStageTo")  # type: ignore[attr-defined]
    stub.V = rec("V")  # type: ignore[attr-defined]
    stub.MoveStage = rec("MoveStage")  # type: ignore[attr-defined]
    stub.Echo = rec("Echo")  # type: ignore[attr-defined]
    # the buffer: row 0 at the top (SerialEM flips rows when saving, so flip the file image)
    stub.bufferImage = rec("bufferImage", np.flipud(sc["img"]).copy())  # type: ignore[attr-defined]
    stub.ReportPixelSize = rec("ReportPixelSize", sc["px"] / 10.0)  # type: ignore[attr-defined]
    stub.ReportStageXYZ = rec("ReportStageXYZ", (said[0], said[1], 44.77))  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "serialem", stub)
    ns: dict[str, Any] = {"__name__": "recipe"}
    exec(compile(_recipe_code(), "realign_to_item.md", "exec"), ns)
    res = ns["realign_to_item"](
        str(tmp_path / "nav.nav"), "17-1-A", rotation_deg=sc["rot"], max_shift_um=20.0
    )
    assert res.found
    names = [c[0] for c in calls]
    assert names == [
        "MoveStageTo",
        "V",
        "bufferImage",
        "ReportPixelSize",
        "ReportStageXYZ",
        "MoveStage",
        "Echo",
    ]
    np.testing.assert_allclose(calls[0][1], said)
    # the move brings the item under the beam: item − where the image really was = −offset
    np.testing.assert_allclose(calls[5][1], -TRUE_OFFSET_UM, atol=0.15)


def test_emgeom_imports_without_serialem() -> None:
    code = "import sys, emgeom.serialem, emgeom.cli.serialem; assert 'serialem' not in sys.modules"
    r = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=dict(os.environ),  # the same emgeom as this process (installed, or PYTHONPATH)
        check=False,
    )
    assert r.returncode == 0, r.stderr


def test_realign_direction_up_and_bad_input(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    from emgeom.errors import InvalidTypeError, InvalidValueError
    from emgeom.io.mrc import read_mrc
    from emgeom.serialem import realign

    sc = _scene(tmp_path)
    item, the_map = sc["item"], read_mrc(tmp_path / "map.mrc").data
    kw = {"image_pixel_a": sc["px"], "stage_xy_um": sc["stage"], "max_shift_um": 20.0}
    up = realign(item, the_map, sc["img"], rotation_deg=sc["rot"], direction="up", **kw)
    assert up.found and np.hypot(*(np.array(up.stage_xy_um) - sc["true"])) <= 0.15
    with pytest.raises(InvalidTypeError, match="frame_or_item"):
        realign("17-1-A", the_map, sc["img"], rotation_deg=0.0, **kw)  # type: ignore[arg-type]
    frame = MapFrame.from_item(item, the_map.shape)
    with pytest.raises(InvalidValueError, match="stage_xy_um: required"):
        realign(frame, the_map, sc["img"], image_pixel_a=sc["px"], rotation_deg=0.0)
    with pytest.raises(InvalidValueError, match=r"shape .* differs from the frame"):
        realign(frame, the_map[:512], sc["img"], rotation_deg=0.0, **kw)
    with pytest.raises(InvalidValueError, match="either rotation_deg or image_scale_mat"):
        realign(item, the_map, sc["img"], rotation_deg=0.0, image_scale_mat=np.eye(2), **kw)
    with pytest.raises(InvalidValueError, match=r"image_scale_mat: .* is singular"):
        realign(item, the_map, sc["img"], image_scale_mat=np.zeros((2, 2)), **kw)
    # the map file is not there: one line naming the item, the key and the file
    (tmp_path / "map.mrc").rename(tmp_path / "moved.mrc")
    args = [
        "serialem",
        "realign",
        str(tmp_path / "nav.nav"),
        str(tmp_path / "new.mrc"),
        "--item",
        "17-1-A",
        "--rotation",
        "0",
    ]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "[Item = 17-1-A] MapFile 'map.mrc': file not found" in err[0]
