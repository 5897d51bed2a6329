"""Realign a 4096² image into a 5×5 montage map (issue 14 goal: ≤ 0.5 s on 2 cores, ≤ 1 map px).

The montage is the real gm.mrc.mdoc layout (5×5 pieces of 2048², 204 px overlap, recorded stage
positions) rendered from a synthetic specimen and written as an int16 MRC stack next to a copy
of the mdoc; the map item is the one SerialEM would make at overview binning 4; the new image
uses the real nav.nav ``MapScaleMat`` (26.6 px/µm, 4096²). Groups (``pytest
benches/bench_serialem.py --benchmark-only``; with ``--benchmark-disable`` the layout is scaled
down 4× and the image is 1024²):

* ``serialem-realign``: ``realign`` end to end (open the montage, read the piece window from the
  memory-mapped file, bin it, bin and undistort the image, align, convert back), and its parts:
  I/O (parse the mdoc, map the file, read the window), assembly (bin the window, page cache
  warm), and realign with the pieces in memory (assembly + alignment).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import mrcfile
import numpy as np
import pytest
from tests.conftest import SHARED_DATA
from tests.serialem.test_serialem_realign import make_world

from emgeom.io.montage import Montage, read_montage
from emgeom.io.serialem_nav import read_nav
from emgeom.serialem import fit_stage_to_montage, montage_map_item, realign

GM = SHARED_DATA / "serialem" / "pyserialem" / "gm.mrc.mdoc"
NAV = SHARED_DATA / "serialem" / "pyserialem" / "nav.nav"
OV = 4  # overview binning of the map item (realign's default montage binning)
pytestmark = pytest.mark.skipif(not GM.exists(), reason="real SerialEM data absent")


def _small(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("benchmark_disable", False))


def _scaled_mdoc(src: Path, dst: Path, k: int) -> None:
    """The gm mdoc with every pixel quantity divided by k (ImageSize, PieceCoordinates)."""
    out = []
    for line in src.read_text().splitlines():
        key, sep, val = line.partition("=")
        if sep and key.strip() in ("ImageSize", "PieceCoordinates", "AlignedPieceCoordsVS"):
            v = [int(x) for x in val.split()]
            v[:2] = [x // k for x in v[:2]]
            line = f"{key.strip()} = {' '.join(map(str, v))}"
        out.append(line)
    dst.write_text("\n".join(out) + "\n")


@pytest.fixture(scope="module")
def scene(request, tmp_path_factory):  # type: ignore[no-untyped-def]
    k = 4 if _small(request) else 1
    d = tmp_path_factory.mktemp("gm")
    mdoc = d / "gm.mrc.mdoc"
    if k == 1:
        shutil.copy(GM, mdoc)
    else:
        _scaled_mdoc(GM, mdoc, k)
    m = Montage.from_mdoc(mdoc)
    fit = fit_stage_to_montage(m)
    world = make_world((0.0, 0.0), 1400.0, 0.35, seed=5)
    inv = np.linalg.inv(fit.affine[:, :2])
    half = np.array(m.frame_size) / 2.0
    pieces = np.zeros((len(m.piece_z), m.frame_size[1], m.frame_size[0]), np.int16)
    near = np.hypot(*m.stage_um.T) < 700  # type: ignore[union-attr]  # inside the world
    for i, z in enumerate(m.piece_z):
        if near[i]:
            a = np.hstack([inv, (m.stage_um[i] - inv @ half)[:, None]])  # type: ignore[index]
            pieces[z] = np.clip(
                world.render(a, pieces.shape[1:], 0.05, 100 + z) * 3000, -32000, 32000
            )
    with mrcfile.new(d / "gm.mrc") as f:
        f.set_data(pieces)
    item = montage_map_item(m, OV, label="atlas")
    nav_mat = read_nav(NAV).maps()[0].map_scale_mat
    cam = np.array([nav_mat[0], -nav_mat[1]]) / k  # same field: 4096² (1024² when scaled)
    n = 4096 // k
    true = np.array([-150.0, 120.0])
    ci = np.linalg.inv(cam)
    img = world.render(np.hstack([ci, (true - ci @ [n / 2, n / 2])[:, None]]), (n, n), 0.3, 1)
    ism = np.array([cam[0], -cam[1]])
    px = 1e4 / np.sqrt(abs(np.linalg.det(cam)))
    return {"mrc": d / "gm.mrc", "item": item, "img": img, "ism": ism, "px": px, "true": true}


def _realign(sc, m=None):  # type: ignore[no-untyped-def]
    """realign as a script would call it (opening the montage unless given one)."""
    return realign(
        sc["item"],
        read_montage(sc["mrc"]) if m is None else m,
        sc["img"],
        image_pixel_a=sc["px"],
        stage_xy_um=sc["true"] + [4.0, -3.0],
        image_scale_mat=sc["ism"],
        max_shift_um=10.0,
    )


@pytest.mark.benchmark(group="serialem-realign")
def test_realign_end_to_end(benchmark, scene) -> None:  # type: ignore[no-untyped-def]
    res = benchmark(_realign, scene)
    assert res.found
    map_px_um = 1.0 / np.sqrt(abs(np.linalg.det(scene["item"].map_scale_mat)))
    err = np.hypot(*(np.array(res.stage_xy_um) - scene["true"]))
    assert err <= map_px_um
    benchmark.extra_info["error_um"] = float(err)
    benchmark.extra_info["error_map_px"] = float(err / map_px_um)


@pytest.mark.benchmark(group="serialem-realign")
def test_part_io(benchmark, scene) -> None:  # type: ignore[no-untyped-def]
    res = _realign(scene)
    h = _bin_of(scene, read_montage(scene["mrc"]), res) * res.alignment.reference_shape[0]

    def io():  # type: ignore[no-untyped-def]
        m = read_montage(scene["mrc"])
        return np.array(m.piece(res.piece)[:h, :h])

    out = benchmark(io)
    assert out.size > 0


@pytest.mark.benchmark(group="serialem-realign")
def test_part_assembly(benchmark, scene) -> None:  # type: ignore[no-untyped-def]
    res = _realign(scene)
    m = read_montage(scene["mrc"])
    b = _bin_of(scene, m, res)
    h = b * res.alignment.reference_shape[0]
    m.piece(res.piece)[:h, :h].sum()  # page cache warm: binning/conversion alone
    out = benchmark(m.extract_piece, res.piece, b, (0, 0, h, h))
    assert out.shape == (h // b, h // b)


def _bin_of(sc, m, res) -> int:  # type: ignore[no-untyped-def]
    """The piece binning realign used (map region pixel / montage pixel)."""
    from emgeom.serialem import MapFrame

    w, h = m.overview_size(OV)
    full = MapFrame.from_item(sc["item"], (h, w)).scaled(OV)
    return round(res.map_pixel_a / full.pixel_size_a)


@pytest.mark.benchmark(group="serialem-realign")
def test_part_in_memory(benchmark, scene) -> None:  # type: ignore[no-untyped-def]
    """``realign`` with the pieces already in memory: assembly + alignment, no file I/O
    (alignment ≈ this − assembly)."""
    m = read_montage(scene["mrc"])
    cache = {int(z): np.array(m.reader(int(z))) for z in m.piece_z}  # type: ignore[misc]
    m.reader = cache.__getitem__

    out = benchmark(_realign, scene, m)
    assert out.found
