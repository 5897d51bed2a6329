"""Montage layout, piece selection and assembly (real layouts; a tiny written MRC montage)."""

from __future__ import annotations

import math

import mrcfile
import numpy as np
import pytest

from emgeom.errors import FileFormatError, InvalidValueError
from emgeom.io.montage import Montage, read_montage
from tests.conftest import shared_file

REAL = {
    "gm": (("serialem", "pyserialem", "gm.mrc.mdoc"), (5, 5), (9424, 9424)),
    "lmm": (("serialem", "mdocfile", "montage_section.mdoc"), (7, 9), (31992, 31176)),
    "mmm": (("serialem", "mdocfile", "montage_section_multiple.mdoc"), (3, 3), (7948, 5562)),
}


@pytest.mark.parametrize("name", sorted(REAL))
def test_real_layout_and_full_size(name) -> None:  # type: ignore[no-untyped-def]
    parts, frames, full = REAL[name]
    sections = range(10) if name == "mmm" else [0]
    for s in sections:
        m = Montage.from_mdoc(shared_file(*parts), section=s)
        assert m.n_frames == frames and m.full_size == full
        fm = [m.mdoc.floats(x, "FullMontSize", 2) for x in m.mdoc.of_kind("MontSection")]
        if fm and fm[0] is not None:  # gm has no FullMontSize; LMM and MMM do
            assert tuple(int(v) for v in fm[0]) == full
        # ZValue is acquisition order, not the piece index (gm snakes down the columns)
        assert sorted(m.piece_index.tolist()) == sorted(set(m.piece_index.tolist()))
    if name == "gm":
        assert m.piece_index[:6].tolist() == [0, 1, 2, 3, 4, 9]
        assert m.aligned_coords is None and m.aligned_coords_vs is not None
    if name == "lmm":
        assert len(m.piece_z) == 62 and 6 * 9 + 0 not in m.piece_index.tolist()


def _nav_txt_piece(m: Montage, xy_rh: np.ndarray) -> tuple[int, int]:
    """navigator.txt: px = (imageX − (xFrame − xOverlap)/2)/(xFrame − xOverlap), truncated."""
    out = []
    for a in (0, 1):
        v = int((xy_rh[a] - m.spacing[a] / 2) / m.spacing[a])
        out.append(min(max(v, 0), m.n_frames[a] - 1))
    return out[0], out[1]


@pytest.mark.parametrize("name", sorted(REAL))
def test_piece_at_contains_the_point_and_navigator_txt_does_not(name) -> None:  # type: ignore[no-untyped-def]
    parts, _, _ = REAL[name]
    m = Montage.from_mdoc(shared_file(*parts))
    rng = np.random.default_rng(1)
    pts = rng.uniform(0, 1, (4000, 2)) * (np.array(m.full_size) - 1)
    ixy = m.piece_ixy
    nav_bad = 0
    for p in pts:
        i = m.piece_at(p)
        ix, iy = (int(v) for v in ixy[i])
        exists = {(int(a), int(b)) for a, b in ixy}
        tile = tuple(
            int(
                np.clip(
                    math.floor((p[a] + 0.5 - m.overlap[a] / 2) / m.spacing[a]), 0, m.n_frames[a] - 1
                )
            )
            for a in (0, 1)
        )
        if tile in exists:
            assert m.contains(i, p), (p, i)
            # midway rule: at least overlap/2 from the piece's edges (except at the montage border)
            loc = p + 0.5 - m.piece_coords[i]
            for a in (0, 1):
                lo = 0 if (ix, iy)[a] == 0 else m.overlap[a] / 2
                hi = m.frame_size[a] - (0 if (ix, iy)[a] == m.n_frames[a] - 1 else m.overlap[a] / 2)
                assert lo - 1e-9 <= loc[a] <= hi + 1e-9
        nx_, ny_ = _nav_txt_piece(m, p + 0.5)
        k = nx_ * m.n_frames[1] + ny_
        hit = np.flatnonzero(m.piece_index == k)
        if hit.size and not m.contains(int(hit[0]), p):
            nav_bad += 1
    assert nav_bad > 0  # navigator.txt's formula picks pieces that miss the point


def test_piece_at_boundary_and_missing_piece() -> None:
    m = Montage.from_mdoc(shared_file(*REAL["gm"][0]))
    b = m.spacing[0] + m.overlap[0] / 2  # 1946: midway in the first overlap (1844..2048)
    left = m.piece_at((b - 0.5 - 1e-6, 5000.0))
    right = m.piece_at((b - 0.5 + 1e-6, 5000.0))
    assert m.piece_ixy[left][0] == 0 and m.piece_ixy[right][0] == 1
    lmm = Montage.from_mdoc(shared_file(*REAL["lmm"][0]))
    # piece (6, 0) is missing: (5, 0) and (6, 1) are both 1 step away; StageToImage's loop
    # (ix ascending, iy from the top) meets (5, 0) first
    i = lmm.piece_at((6 * 4488 + 1000.0, 500.0))
    assert tuple(lmm.piece_ixy[i]) == (5, 0)


# ---------------------------------------------------------------- a written montage
MDOC = """PixelSpacing = 10
ImageFile = tiny.mrc
ImageSize = 40 30
Montage = 1
DataMode = 2

[T = SerialEM: test]

{pieces}
[MontSection = 0]
FullMontSize = 104 84
FullMontNumFrames = 3 3
"""


def _write_tiny(tmp_path, aligned: dict[int, tuple[int, int]] | None = None):  # type: ignore[no-untyped-def]
    spacing = (32, 27)
    order = [(0, 0), (0, 1), (0, 2), (1, 2), (1, 1), (1, 0), (2, 0), (2, 1), (2, 2)]  # snake
    secs, data = [], []
    for z, (ix, iy) in enumerate(order):
        x, y = ix * spacing[0], iy * spacing[1]
        txt = f"[ZValue = {z}]\nPieceCoordinates = {x} {y} 0\nStagePosition = {ix} {iy}\n"
        if aligned is not None:
            dx, dy = aligned.get(z, (0, 0))
            txt += f"AlignedPieceCoords = {x + dx} {y + dy} 0\n"
        secs.append(txt)
        rows, cols = np.mgrid[0:30, 0:40]
        data.append((z * 10000 + rows * 100 + cols).astype(np.float32))
    (tmp_path / "tiny.mrc.mdoc").write_text(MDOC.format(pieces="\n".join(secs)))
    with mrcfile.new(tmp_path / "tiny.mrc") as f:
        f.set_data(np.stack(data))
    return read_montage(tmp_path / "tiny.mrc")


def test_read_and_assemble_nominal(tmp_path) -> None:  # type: ignore[no-untyped-def]
    m = _write_tiny(tmp_path)
    assert m.n_frames == (3, 3) and m.overlap == (8, 3) and m.full_size == (104, 84)
    img = m.assemble()
    assert img.shape == (84, 104)  # 104 is a multiple of 4 already
    for y, x in [(0, 0), (10, 35), (29, 39), (40, 70), (83, 103), (26, 36)]:
        i = m.piece_at((x, y))
        c = m.piece_coords[i]
        expect = m.piece_z[i] * 10000 + (y - c[1]) * 100 + (x - c[0])
        assert img[y, x] == expect, (x, y)
    # binning 2: exact block means of the piece, width rounded up to a multiple of 4
    b2 = m.assemble(2)
    assert b2.shape == (42, 52)
    assert b2[0, 0] == pytest.approx(np.mean(m.piece(0)[:2, :2]))


def test_assemble_uses_aligned_coords(tmp_path) -> None:  # type: ignore[no-untyped-def]
    m = _write_tiny(tmp_path, aligned={4: (3, -2)})  # the centre piece (1, 1) is displaced
    img = m.assemble()
    x, y = 48, 40  # in the centre tile
    i = m.piece_at((x, y))
    assert m.piece_z[i] == 4
    ax, ay = m.aligned_coords[i]  # type: ignore[index]
    assert img[y, x] == 4 * 10000 + (y - ay) * 100 + (x - ax)
    nominal = m.assemble(which="nominal")
    assert nominal[y, x] == 4 * 10000 + (y - 27) * 100 + (x - 32)
    with pytest.raises(InvalidValueError, match="no aligned_vs piece coordinates"):
        m.assemble(which="aligned_vs")


def test_bad_mrc_for_montage(tmp_path) -> None:  # type: ignore[no-untyped-def]
    m = _write_tiny(tmp_path)
    with mrcfile.new(tmp_path / "short.mrc") as f:
        f.set_data(np.zeros((3, 30, 40), np.float32))
    with pytest.raises(FileFormatError, match="has 3 sections, the mdoc needs 9"):
        read_montage(tmp_path / "short.mrc", tmp_path / "tiny.mrc.mdoc")
    with mrcfile.new(tmp_path / "wrong.mrc") as f:
        f.set_data(np.zeros((9, 20, 40), np.float32))
    w = read_montage(tmp_path / "wrong.mrc", tmp_path / "tiny.mrc.mdoc")
    with pytest.raises(FileFormatError, match=r"has shape \(20, 40\), ImageSize says 30×40"):
        w.piece(0)
    assert m.piece(8).shape == (30, 40)
