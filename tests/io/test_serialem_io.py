"""SerialEM Navigator / mdoc readers and the exact map geometry on the real files."""

from __future__ import annotations

import shutil
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emgeom.errors import EmgeomFileError, FileFormatError, InvalidValueError, OutputExistsError
from emgeom.io.mdoc import read_mdoc
from emgeom.io.montage import Montage
from emgeom.io.serialem_nav import NavItem, NotSerialEMWarning, read_nav, write_nav
from emgeom.serialem import MapFrame, fit_stage_to_montage, montage_map_item
from tests.conftest import shared_file

NAV = ("serialem", "pyserialem", "nav.nav")
CLEM = ("serialem", "corr", "clem.nav")
MDOCS = [
    (("serialem", "pyserialem", "gm.mrc.mdoc"), 0),
    (("serialem", "mdocfile", "montage_section.mdoc"), 0),
    *((("serialem", "mdocfile", "montage_section_multiple.mdoc"), s) for s in range(10)),
]


def _map_item(text: str, tmp_path, name: str = "m.nav") -> NavItem:  # type: ignore[no-untyped-def]
    p = tmp_path / name
    p.write_text("AdocVersion = 2.00\nLastSavedAs = m.nav\n\n" + text)
    return read_nav(p).items[0]


# ---------------------------------------------------------------- real geometry
def test_real_map_outline_within_1nm() -> None:
    nav = read_nav(shared_file(*NAV))
    maps = nav.maps()
    assert [m.label for m in maps] == ["17-1-A"]
    it = maps[0]
    frame = MapFrame.from_item(it)
    err = np.hypot(*(frame.outline_um() - it.points_um).T)
    assert err.max() < 1e-3  # µm: 0.43 nm, the 3-decimal rounding of PtsX/PtsY
    assert err.max() > 1e-5  # the stored values really are rounded (the check can fail)
    # binned load (BufferStageToImage load/use scaling): same outline, 1/4 the pixels per µm
    f4 = MapFrame.from_item(it, (1024, 1024))
    np.testing.assert_allclose(f4.outline_um(), frame.outline_um(), atol=1e-9)
    assert f4.pixel_size_a == pytest.approx(4 * frame.pixel_size_a)
    # 26.61 px/µm -> 375.75 Å per pixel; StageXYZ is the map centre ((W-1)/2 in emgeom pixels)
    assert frame.pixel_size_a == pytest.approx(1e4 / np.sqrt(abs(np.linalg.det(it.map_scale_mat))))
    np.testing.assert_allclose(
        frame.stage_to_pixel(it.stage_xyz_um[:2]), [2047.5, 2047.5], atol=1e-9
    )


def test_real_map_row_orientation() -> None:
    """The y flip: stage +y goes to a smaller inverted-Y value (row up the display) and so to a
    *larger* numpy row of the file SerialEM wrote (row 0 = bottom of the display)."""
    it = read_nav(shared_file(*NAV)).maps()[0]
    frame = MapFrame.from_item(it)
    a = it.map_scale_mat
    # SerialEM's inverted-Y rate of change per µm of stage y is a[1, 1]; numpy rows move opposite
    d = frame.stage_to_pixel(np.array(it.stage_xyz_um[:2]) + [0.0, 1.0]) - frame.stage_to_pixel(
        it.stage_xyz_um[:2]
    )
    assert d[0] == pytest.approx(a[0, 1])
    assert d[1] == pytest.approx(-a[1, 1])
    # first outline corner = inverted-Y (0, 0) = top-left of the display = numpy (−0.5, H−0.5)
    np.testing.assert_allclose(frame.stage_to_pixel(it.points_um[0]), [-0.5, 4095.5], atol=0.05)


def test_clem_nav_is_refused() -> None:
    with pytest.warns(NotSerialEMWarning, match="LastSavedAs"):
        nav = read_nav(shared_file(*CLEM))
    assert len(nav) == 13 and [m.label for m in nav.maps()] == ["Leica"]
    with pytest.raises(
        FileFormatError, match=r"clem.nav: \[Item = Leica\]: not a SerialEM-made map"
    ):
        MapFrame.from_item(nav["Leica"])
    # and its stored outline indeed disagrees with its matrix by ~10 µm (README check A)
    it = nav["Leica"]
    a = it.map_scale_mat * np.array([[1], [-1]])  # pretend it were SerialEM's
    f = MapFrame.from_serialem(a, it.stage_xyz_um[:2], it.map_width_height)
    assert np.hypot(*(f.outline_um() - it.points_um).T).max() > 5.0


@pytest.mark.parametrize(("parts", "section"), MDOCS[:3])
def test_montage_map_item_outline_and_fit(parts, section) -> None:  # type: ignore[no-untyped-def]
    m = Montage.from_mdoc(shared_file(*parts), section=section)
    fit = fit_stage_to_montage(m)
    # README check C: 0.1 px rms (gm, LMM), 0.4-1.3 px (MMM, low-dose View at -300 µm)
    assert fit.rms_px < 1.5 and np.linalg.det(fit.affine[:, :2]) > 0  # right-handed
    it = montage_map_item(m, 4)
    frame = MapFrame.from_item(it, montage_layout=m.layout)
    assert np.linalg.det(it.map_scale_mat) < 0
    assert np.hypot(*(frame.outline_um() - it.points_um).T).max() < 1e-3
    # montage pixel of each piece centre (binning 1, emgeom px) from its stage: ≤ 3 fit residuals
    full = frame.scaled(4, shape=(m.full_size[1], m.full_size[0]))
    pred = full.stage_to_pixel(m.stage_um) + 0.5
    cen = m.piece_coords + np.array(m.frame_size) / 2.0
    assert np.hypot(*(pred - cen).T).max() < 3 * fit.max_px + 1e-6


# ---------------------------------------------------------------- round trips
def test_nav_byte_identical_round_trip(tmp_path) -> None:  # type: ignore[no-untyped-def]
    for parts in (NAV, CLEM):
        src = shared_file(*parts)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotSerialEMWarning)
            nav = read_nav(src)
            out = tmp_path / src.name
            write_nav(nav, out)
            assert out.read_bytes() == src.read_bytes()
            again = read_nav(out)
        assert [i.values for i in again] == [i.values for i in nav]


def test_nav_crlf_round_trip_and_edit(tmp_path) -> None:  # type: ignore[no-untyped-def]
    src = shared_file(*NAV)
    crlf = tmp_path / "crlf.nav"
    crlf.write_bytes(src.read_bytes().replace(b"\n", b"\r\n"))
    nav = read_nav(crlf)
    write_nav(nav, tmp_path / "same.nav")
    assert (tmp_path / "same.nav").read_bytes() == crlf.read_bytes()
    p = nav.add_point(
        "new-1", (-500.25, 437.125), 44.77, drawn_id=nav.maps()[0].map_id, note="realigned"
    )
    nav.maps()[0].set("Color", 3)
    out = tmp_path / "edited.nav"
    write_nav(nav, out)
    raw = out.read_bytes()
    assert raw.startswith(crlf.read_bytes().split(b"[Item")[0])
    assert b"\n" not in raw.replace(b"\r\n", b"")  # one line ending throughout
    back = read_nav(out)
    assert back["new-1"].stage_xyz_um == (-500.25, 437.125, 44.77)
    assert back["new-1"].drawn_id == 1291353952 and back["new-1"].kind == "point"
    assert back["17-1-A"].get("Color") == "3"
    assert {k: v for k, v in back["17-1-A"].values.items() if k != "Color"} == {
        k: v for k, v in read_nav(crlf)["17-1-A"].values.items() if k != "Color"
    }
    p.set_stage(-499.0, 436.0)
    np.testing.assert_allclose(p.points_um, [[-499.0, 436.0]])
    with pytest.raises(OutputExistsError):
        write_nav(nav, out)
    write_nav(nav, out, force=True)
    assert read_nav(out)["new-1"].stage_xyz_um[:2] == (-499.0, 436.0)


@settings(max_examples=60, deadline=None)
@given(
    st.floats(-5, 5).filter(lambda v: abs(v) > 0.05),
    st.floats(-40, 40),
    st.floats(-40, 40),
    st.floats(-40, 40).filter(lambda v: abs(v) > 0.5),
    st.tuples(st.floats(-1000, 1000), st.floats(-1000, 1000)),
    st.integers(16, 9000),
    st.integers(16, 9000),
    st.lists(st.tuples(st.floats(-3000, 3000), st.floats(-3000, 3000)), min_size=1, max_size=5),
)
def test_pixel_stage_round_trip(a, b, c, d, s0, w, h, pts) -> None:  # type: ignore[no-untyped-def]
    mat = np.array([[a, b], [c, d]])
    if abs(np.linalg.det(mat)) < 1e-2:
        return
    f = MapFrame.from_serialem(mat, s0, (w, h))
    px = np.array(pts)
    back = f.stage_to_pixel(f.pixel_to_stage(px))
    np.testing.assert_allclose(back, px, rtol=0, atol=1e-9 * max(1.0, np.abs(px).max()))
    stg = f.pixel_to_stage(px)
    np.testing.assert_allclose(
        f.pixel_to_stage(f.stage_to_pixel(stg)), stg, atol=1e-9 * max(1, np.abs(stg).max())
    )


def test_frame_to_between_maps() -> None:
    it = read_nav(shared_file(*NAV)).maps()[0]
    f1, f2 = MapFrame.from_item(it), MapFrame.from_item(it, (512, 512))
    t = f1.to(f2)
    np.testing.assert_allclose(t[:, :2], np.eye(2) / 8, atol=1e-12)
    np.testing.assert_allclose(t @ [2047.5, 2047.5, 1], [255.5, 255.5], atol=1e-9)
    np.testing.assert_allclose(t @ [-0.5, -0.5, 1], [-0.5, -0.5], atol=1e-9)


# ---------------------------------------------------------------- mdoc reader
@pytest.mark.parametrize(
    "name",
    [
        "gm.mrc.mdoc",
        "montage_section.mdoc",
        "montage_section_multiple.mdoc",
        "tilt_series.mdoc",
        "frame_set_multiple.mdoc",
    ],
)
def test_mdoc_agrees_with_mdocfile(name) -> None:  # type: ignore[no-untyped-def]
    mdocfile = pytest.importorskip("mdocfile")
    sub = "pyserialem" if name.startswith("gm") else "mdocfile"
    path = shared_file("serialem", sub, name)
    md = read_mdoc(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        df = mdocfile.read(path)
    zs = md.of_kind("ZValue")
    rows = df[df["ZValue"].notna()] if "ZValue" in df else df
    assert len(zs) == len(rows)
    for sec, (_, row) in zip(zs, rows.iterrows(), strict=True):
        for key in ("TiltAngle", "StagePosition", "PieceCoordinates", "PixelSpacing", "ImageShift"):
            ours = md.floats(sec, key)
            if ours is None or key not in row or row[key] is None:
                continue
            theirs = np.atleast_1d(np.asarray(row[key], dtype=float))
            np.testing.assert_allclose(ours[: theirs.size], theirs, rtol=1e-6)
    # what mdocfile gets wrong for montages: the MontSection is a row of the piece table
    if name == "gm.mrc.mdoc":
        assert len(df) == 26 and len(md.of_kind("MontSection")) == 1 and len(zs) == 25


def test_mdoc_pixel_spacing_and_crlf() -> None:
    md = read_mdoc(shared_file("serialem", "mdocfile", "montage_section_multiple.mdoc"))
    assert md.pixel_spacing_a() == 76.8 and md.titles[0].startswith("SerialEM: UMass_Krios")
    assert len(md.of_kind("MontSection")) == 10


# ---------------------------------------------------------------- bad input
def test_bad_navs(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(EmgeomFileError, match="no such Navigator"):
        read_nav(tmp_path / "none.nav")
    old = tmp_path / "old.nav"
    old.write_text("Version\t1.50\nLabel\tColor\n")
    with pytest.raises(FileFormatError, match="tab-delimited Navigator format is not supported"):
        read_nav(old)
    xml = tmp_path / "x.nav"
    xml.write_text('<?xml version="1.0"?>\n<navigator/>\n')
    with pytest.raises(FileFormatError, match="XML Navigator"):
        read_nav(xml)
    bad = tmp_path / "bad.nav"
    bad.write_text(
        "AdocVersion = 2.00\nLastSavedAs = bad.nav\n\n[Item = 1]\nthis is no key value\n"
    )
    with pytest.raises(FileFormatError, match=r"bad.nav: line 5: expected 'key = value'"):
        read_nav(bad)
    base = "Type = 2\nStageXYZ = 0 0 0\nMapWidthHeight = 100 100\n"
    it = _map_item("[Item = a]\n" + base, tmp_path)
    with pytest.raises(FileFormatError, match=r"m.nav: \[Item = a\]: missing key MapScaleMat"):
        MapFrame.from_item(it)
    it = _map_item("[Item = b]\n" + base + "MapScaleMat = 1 2 2 4\n", tmp_path)
    with pytest.raises(InvalidValueError, match=r"\[Item = b\]: MapScaleMat .* is singular"):
        MapFrame.from_item(it)
    it = _map_item("[Item = c]\nType = 2\nStageXYZ = 0 0 0\nMapScaleMat = 1 0 0 -1\n", tmp_path)
    with pytest.raises(FileFormatError, match="missing key MapWidthHeight"):
        MapFrame.from_item(it)
    it = _map_item("[Item = d]\n" + base + "MapScaleMat = 1 0 0 nan\n", tmp_path)
    with pytest.raises(FileFormatError, match=r"\[Item = d\] MapScaleMat: non-finite"):
        MapFrame.from_item(it)
    it = _map_item("[Item = e]\n" + base + "MapScaleMat = 1 0 0 -1\n", tmp_path)
    with pytest.raises(InvalidValueError, match=r"map_shape: \(50, 100\).*aspect"):
        MapFrame.from_item(it, (50, 100))
    it = _map_item("[Item = f]\nType = 0\nStageXYZ = 0 0 0\n", tmp_path)
    with pytest.raises(FileFormatError, match="not a map"):
        MapFrame.from_item(it)


def test_bad_montage_mdocs(tmp_path) -> None:  # type: ignore[no-untyped-def]
    src = shared_file("serialem", "mdocfile", "montage_section.mdoc").read_text()
    bad = tmp_path / "full.mdoc"
    bad.write_text(src.replace("FullMontSize = 31992 31176", "FullMontSize = 31990 31176"))
    with pytest.raises(
        FileFormatError, match=r"full.mdoc: \[MontSection = 0\] FullMontSize 31990 31176 disagrees"
    ):
        Montage.from_mdoc(bad)
    bad.write_text(src.replace("ImageSize = 5064 3976", "ImageSize = 4000 3976"))
    with pytest.raises(FileFormatError, match="negative overlap"):
        Montage.from_mdoc(bad)
    bad.write_text(src.replace("PieceCoordinates = 4488 0 0", "PieceCoordinates = 4487 0 0", 1))
    with pytest.raises(FileFormatError, match=r"common spacing|disagrees"):
        Montage.from_mdoc(bad)
    with pytest.raises(EmgeomFileError, match="no such mdoc"):
        Montage.from_mdoc(tmp_path / "none.mdoc")
    shutil.copy(shared_file("serialem", "pyserialem", "gm.mrc.mdoc"), tmp_path / "gm.mrc.mdoc")
    from emgeom.io.montage import read_montage

    with pytest.raises(EmgeomFileError, match=r"gm\.mrc: no such montage MRC"):
        read_montage(tmp_path / "gm.mrc")
