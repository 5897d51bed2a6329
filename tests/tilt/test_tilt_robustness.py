"""Bad input to the tilt readers, writers and model (issue 13): every failure is an
``emgeom.errors`` exception whose message names the argument or the file and the key; no
built-in exception, no NaN result, no allocation driven by an unchecked number.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emgeom import errors, tilt
from emgeom.cli import main
from emgeom.io import aretomo, ctffind5, imod
from emgeom.io import star as star_io

GOOD_STAR = """data_global

loop_
_rlnTomoName #1
_rlnTomoHand #2
_rlnTomoTiltSeriesPixelSize #3
_rlnTomoSizeX #4
_rlnTomoSizeY #5
_rlnTomoSizeZ #6
TS -1 2.0 {sx} 100 50

data_TS

loop_
_rlnTomoXTilt #1
_rlnTomoYTilt #2
_rlnTomoZRot #3
_rlnDefocusU #4
0 -30 85 20000
0 0 85 20100
0 30 85 20200
"""

GOOD_ALN = """# AreTomo Alignment / Priims bprmMn
# RawSize = 100 100 3
# NumPatches = 0
# SEC     ROT         GMAG       TX          TY      SMEAN     SFIT    SCALE     BASE     TILT
    0    85.0    1.00000      0.000      0.000     1.00     1.00     1.00     0.00   -30.00
    1    85.0    1.00000      0.000      0.000     1.00     1.00     1.00     0.00     0.00
    2    85.0    1.00000      0.000      0.000     1.00     1.00     1.00     0.00    30.00
"""

GOOD_CTF_TXT = """# Columns: #1 micrograph number; #2 - defocus 1 [A]; #3 - defocus 2; #4 - azimuth
1 20000 19000 10 0 0 0 -1
2 20100 19100 10 0 0 0 -1
3 20200 19200 10 0 0 0 -1
"""


def good_geometry(**kw):
    base = dict(pixel_size_a=2.0, volume_shape=(100, 100, 50), names=["a.mrc", "b.mrc", "c.mrc"])
    base.update(kw)
    return tilt.TiltGeometry([-30.0, 0.0, 30.0], 85.0, [2e4, 2.01e4, 2.02e4], **base)


def good_warp_xml(path: Path) -> Path:
    tilt.to_warp(good_geometry(), path, force=True)
    return path


def raises(exc, *words):
    """pytest.raises for ``exc`` whose message contains every one of ``words``."""

    class _Check:
        def __enter__(self):
            self.ctx = pytest.raises(exc)
            self.info = self.ctx.__enter__()
            return self.info

        def __exit__(self, *a):
            suppressed = self.ctx.__exit__(*a)
            if not suppressed:
                return suppressed
            msg = str(self.info.value)
            for w in words:
                assert str(w) in msg, f"{w!r} not in {msg!r}"
            return suppressed

    return _Check()


# ----------------------------------------------------------------------- corrupt content
def test_warp_non_numeric_attribute_and_depth(tmp_path):
    p = good_warp_xml(tmp_path / "w.xml")
    text = p.read_text()
    for old, new, key in [
        ('LevelAngleX="0"', 'LevelAngleX="abc"', "LevelAngleX"),
        ('Depth="3"', 'Depth="sixty"', "Depth"),
        ('Z="0" Value="2"', 'Z="0" Value="x2"', "Node Value"),
        ('Name="PixelSize" Value="2"', 'Name="PixelSize" Value="two"', "PixelSize"),
    ]:
        assert old in text, old
        bad = tmp_path / f"bad_{key.replace(' ', '_')}.xml"
        bad.write_text(text.replace(old, new, 1))
        with raises(errors.FileFormatError, bad.name, key):
            tilt.read_warp(bad)


def test_warp_utf16_decoded_and_truncation_named(tmp_path):
    p = good_warp_xml(tmp_path / "w.xml")
    u16 = tmp_path / "u16.xml"
    u16.write_bytes(p.read_text().encode("utf-16"))
    g = tilt.read_warp(u16)  # Warp on Windows writes UTF-16: decoded
    np.testing.assert_allclose(g.tilt_deg, [-30.0, 0.0, 30.0])
    odd = tmp_path / "odd.xml"
    odd.write_bytes(u16.read_bytes()[:-1])
    with raises(errors.FileFormatError, "odd.xml", "UTF-16", "truncated"):
        tilt.read_warp(odd)


def test_aln_raw_size(tmp_path):
    for line, words in [
        ("# RawSize = abc 100 3", ["RawSize", "'abc'"]),
        ("# RawSize", ["RawSize", "'= value'"]),
        ("# RawSize = ", ["RawSize"]),
    ]:
        p = tmp_path / "a.aln"
        p.write_text(GOOD_ALN.replace("# RawSize = 100 100 3", line))
        with raises(errors.FileFormatError, "a.aln:2", *words):
            aretomo.read_aln(p)
    p.write_text(GOOD_ALN.replace("-30.00", "nan", 1))
    with raises(errors.FileFormatError, "a.aln:5", "column 10", "NaN/inf"):
        tilt.read_aretomo(p)
    p.write_text(GOOD_ALN.replace("   30.00", "   95.00"))
    with raises(errors.FileFormatError, "a.aln", "tilt_deg"):  # the model's refusal, in the file
        tilt.read_aretomo(p)


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "abc", "0", "12.5"])
def test_tomograms_star_size(tmp_path, value):
    p = tmp_path / "tomograms.star"
    p.write_text(GOOD_STAR.format(sx=value))
    with raises(errors.FileFormatError, "tomograms.star", "_rlnTomoSizeX", value):
        tilt.read_relion(p)


def test_tomograms_star_pixel_hand_slope(tmp_path):
    good = GOOD_STAR.format(sx=100)
    p = tmp_path / "t.star"
    for old, new, key in [
        ("TS -1 2.0", "TS -1 -2.0", "_rlnTomoTiltSeriesPixelSize"),  # negative: refused
        ("TS -1 2.0", "TS nan 2.0", "_rlnTomoHand"),
        ("0 30 85 20200", "0 30 85 inf", "_rlnDefocusU"),
        ("0 30 85 20200", "0 95 85 20200", "tilt_deg"),
    ]:
        p.write_text(good.replace(old, new))
        with raises(errors.FileFormatError, "t.star", key):
            tilt.read_relion(p)
    assert tilt.read_relion(_write(p, good)).n_tilts == 3


def _write(p: Path, text: str) -> Path:
    p.write_text(text)
    return p


def test_tables_with_headers_but_no_rows(tmp_path):
    per_tilt_empty = GOOD_STAR.format(sx=100).split("0 -30 85")[0]
    p = _write(tmp_path / "t.star", per_tilt_empty)
    with raises(errors.FileFormatError, "t.star", "no rows"):
        tilt.read_relion(p)
    glob_empty = "data_global\n\nloop_\n_rlnTomoName #1\n_rlnTomoHand #2\n"
    p = _write(tmp_path / "g.star", glob_empty)
    with raises(errors.FileFormatError, "g.star", "no rows"):
        tilt.read_relion(p)
    parts = "data_particles\n\nloop_\n_rlnTomoName #1\n_rlnCenteredCoordinateXAngst #2\n"
    p = _write(tmp_path / "p.star", parts)
    with raises(errors.FileFormatError, "p.star", "no rows"):
        tilt.add_particle_defocus(p, {"TS": good_geometry()})
    sub = "data_\n\nloop_\n_rlnMicrographName #1\n" + "".join(
        f"_{c} #{i}\n"
        for i, c in enumerate(
            [
                "rlnDefocusU",
                "rlnCoordinateX",
                "rlnCoordinateY",
                "rlnAngleRot",
                "rlnAngleTilt",
                "rlnAnglePsi",
            ],
            2,
        )
    )
    p = _write(tmp_path / "s.star", sub)
    with raises(errors.FileFormatError, "s.star", "no rows"):
        tilt.read_subtilt_star(p, pixel_size_a=1.0)


def _readers():
    """(name, call) of every reader this package owns, taking one path."""
    return [
        ("read_warp", tilt.read_warp),
        ("read_relion", tilt.read_relion),
        ("read_relion_tomograms", tilt.read_relion_tomograms),
        ("read_imod", tilt.read_imod),
        ("read_tlt", imod.read_tlt),
        ("read_xf", imod.read_xf),
        ("read_ctfplotter_defocus", imod.read_ctfplotter_defocus),
        ("read_aretomo", tilt.read_aretomo),
        ("read_aln", aretomo.read_aln),
        ("read_ctf_txt", aretomo.read_ctf_txt),
        ("read_subtilt_star", tilt.read_subtilt_star),
        ("read_ctffind5_tilt", ctffind5.read_ctffind5_tilt),
        ("add_particle_defocus", lambda p: tilt.add_particle_defocus(p, {})),
        ("read_star", star_io.read_star),
        ("load_source", lambda p: tilt.load_source(Path(p) / "x.star")),
        ("samples_from_warp_movies", lambda p: tilt.samples_from_warp_movies([p], (10, 10), 1)),
    ]


@pytest.mark.parametrize(("name", "call"), _readers(), ids=[n for n, _ in _readers()])
def test_directory_where_a_file_is_expected(tmp_path, name, call):
    d = tmp_path / "folder.star"
    d.mkdir()
    (d / "x.star").mkdir()
    with raises(errors.EmgeomFileError, "folder.star", "directory"):
        call(d)


@pytest.mark.parametrize(("name", "call"), _readers(), ids=[n for n, _ in _readers()])
def test_not_a_path(name, call):
    if name == "load_source":
        pytest.skip("load_source joins the argument itself")
    with pytest.raises(errors.InvalidTypeError):
        call(123)


@pytest.mark.parametrize(
    ("suffix", "content", "reader"),
    [
        (".star", GOOD_STAR.format(sx=100), tilt.read_relion),
        (".tlt", "-30\n0\n30\n", imod.read_tlt),
        (".xf", "1 0 0 1 0 0\n", imod.read_xf),
        (".defocus", "1 1 -30 -30 2000 2\n", imod.read_ctfplotter_defocus),
        (".aln", GOOD_ALN, aretomo.read_aln),
        ("_CTF.txt", GOOD_CTF_TXT, aretomo.read_ctf_txt),
        (
            ".json",
            json.dumps({"tilt_axis_and_angle_search": [[0, 0, 1]]}),
            ctffind5.read_ctffind5_tilt,
        ),
    ],
)
def test_utf16_text_files_named_with_the_encoding(tmp_path, suffix, content, reader):
    p = tmp_path / f"u16{suffix}"
    for enc in ("utf-16", "utf-16-le"):  # with BOM, and without (Windows tools)
        p.write_bytes(content.encode(enc))
        with raises(errors.FileFormatError, p.name, "UTF-16", "iconv"):
            reader(p)
    p.write_bytes(content.encode("utf-8-sig"))  # a UTF-8 BOM is fine
    reader(p)


def test_binary_file_named(tmp_path):
    p = tmp_path / "b.star"
    p.write_bytes(bytes(range(256)) * 4)
    with raises(errors.FileFormatError, "b.star"):
        tilt.read_relion(p)


def test_audit_good_plus_corrupt(tmp_path):
    good = tilt.to_relion(good_geometry(), tmp_path / "good.star")
    bad = _write(tmp_path / "bad.xml", "<TiltSeries><Angles>0\n")
    with raises(errors.FileFormatError, "bad.xml", "not valid XML"):
        tilt.audit([good, bad])
    bad2 = _write(tmp_path / "bad.star", GOOD_STAR.format(sx="abc"))
    with raises(errors.FileFormatError, "bad.star", "_rlnTomoSizeX"):
        tilt.audit([good, bad2])


def test_audit_grid_bounded_before_allocating():
    g = good_geometry()
    for n in (10**5, 10**12):
        with raises(errors.InvalidValueError, "n_grid", "100"):
            tilt.audit([g, g], n_grid=n)
    with raises(errors.InvalidTypeError, "n_grid"):
        tilt.audit([g, g], n_grid="abc")
    assert tilt.audit([g, g], n_grid=100).agree


@pytest.mark.parametrize(
    "argv",
    [
        ["tilt", "audit", "{good}", "{bad}"],
        ["tilt", "explain", "{bad}"],
        ["tilt", "convert", "{bad}", "--to", "warp", "-o", "{out}"],
        ["tilt", "explain", "{u16}"],
        ["tilt", "explain", "{folder}"],
        ["tilt", "defocus", "--relion", "{bad}", "--particles", "{good}", "-o", "{out}"],
        ["tilt", "check-hand", "{bad}", "--subtilt", "{folder}"],
    ],
    ids=["audit", "explain", "convert", "explain-utf16", "explain-folder", "defocus", "hand"],
)
def test_cli_bad_files_give_one_line_and_write_nothing(tmp_path, capsys, argv):
    bad = _write(tmp_path / "bad.star", GOOD_STAR.format(sx="nan"))
    good = tilt.to_relion(good_geometry(), tmp_path / "good.star")
    u16 = tmp_path / "u16.star"
    u16.write_bytes(GOOD_STAR.format(sx=100).encode("utf-16"))
    folder = tmp_path / "folder.star"
    folder.mkdir()
    out = tmp_path / "out.xml"
    names = {"good": good, "bad": bad, "u16": u16, "folder": folder, "out": out}
    code = main([a.format(**names) for a in argv])
    err = capsys.readouterr().err.strip()
    assert code != 0 and "\n" not in err and "Traceback" not in err, err
    assert any(n in err for n in ("bad.star", "u16.star", "folder.star")), err
    assert not out.exists()


# ---------------------------------------------------------------------- model: NaN / inf
def test_particle_defocus_overflow_refused_in_o_ntilts():
    pos = np.array([[100.0, -50.0, 20.0]])
    with pytest.warns(errors.ImplausibleValueWarning):
        g = tilt.TiltGeometry([-30.0, 0.0, 30.0], 85.0, 1e300)
    with raises(errors.InvalidValueError, "defocus_a", "float32"):
        tilt.particle_defocus(g, pos)
    d64 = tilt.particle_defocus(g, pos, dtype=np.float64)  # representable: computed
    assert np.all(np.isfinite(d64)) and d64[0, 1] == 1e300
    g2 = tilt.TiltGeometry([-30.0, 0.0, 30.0], 85.0, 2e4, defocus_slope=1e308)
    for dt in (np.float32, np.float64):
        with raises(errors.InvalidValueError, "defocus_slope"):
            tilt.particle_defocus(g2, pos, dtype=dt)
    out = np.zeros((1, 3))
    with raises(errors.InvalidValueError, "defocus_slope"):
        tilt.particle_defocus(g2, pos, out=out)
    assert np.all(out == 0)  # refused before the kernel ran


@given(
    d0=st.floats(-1e38, 1e38, allow_nan=False),
    kappa=st.floats(1e-6, 1e30, allow_nan=False),
    p=st.lists(st.floats(-1e9, 1e9, allow_nan=False), min_size=3, max_size=3),
)
@settings(max_examples=200, deadline=None)
def test_particle_defocus_never_returns_non_finite(d0, kappa, p):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", errors.ImplausibleValueWarning)
        g = tilt.TiltGeometry([-60.0, 0.0, 60.0], 85.0, d0, defocus_slope=kappa)
    for dt in (np.float32, np.float64):
        try:
            d = tilt.particle_defocus(g, [p], dtype=dt)
        except errors.InvalidValueError as exc:
            assert "defocus" in str(exc)
        else:
            assert np.all(np.isfinite(d))


def test_particle_defocus_out_aliasing_input():
    g = good_geometry()
    pos = np.zeros((4, 3))
    with raises(errors.InvalidValueError, "out", "positions_a"):
        tilt.particle_defocus(g, pos, out=pos)
    buf = np.zeros((4, 6))
    with raises(errors.InvalidValueError, "out"):
        tilt.particle_defocus(g, buf[:, :3].copy(order="C"), out=buf[:, :3])
    view = np.zeros((2, 3))
    with raises(errors.InvalidValueError, "out", "positions_a"):
        tilt.particle_defocus(g, view, out=view)


def test_rotation_matrices_refuse_non_finite():
    with raises(errors.InvalidValueError, "tilt_deg", "finite"):
        tilt.rotation_matrices([np.nan], 0)
    with raises(errors.InvalidValueError, "axis_deg"):
        tilt.rotation_matrices([0.0], np.inf)
    with raises(errors.InvalidValueError, "x_tilt_deg"):
        tilt.rotation_matrices([0.0], 0.0, [np.nan])
    with raises(errors.ShapeError, "tilt_deg, axis_deg"):
        tilt.rotation_matrices([0.0, 1.0], [1.0, 2.0, 3.0])


def test_angles_from_matrices_bad_input():
    with raises(errors.ShapeError, "r", "r[None]"):
        tilt.angles_from_matrices(np.eye(3))
    with raises(errors.InvalidValueError, "r", "finite"):
        tilt.angles_from_matrices(np.full((1, 3, 3), np.nan))
    with raises(errors.InvalidValueError, "r", "matrix 1", "proper rotation"):
        tilt.angles_from_matrices(np.stack([np.eye(3), 2 * np.eye(3)]))
    with raises(errors.InvalidValueError, "proper rotation"):
        tilt.angles_from_matrices(-np.eye(3)[None])
    t, a, x = tilt.angles_from_matrices(tilt.rotation_matrices([20.0], [85.0], [1.5]))
    np.testing.assert_allclose([t[0], a[0], x[0]], [20.0, 85.0, 1.5], atol=1e-12)


def test_to_relion_refuses_nan_optics_and_writes_nothing(tmp_path):
    g = good_geometry()
    for kw, key in [
        ({"voltage_kv": np.nan}, "voltage_kv"),
        ({"cs_mm": np.inf}, "cs_mm"),
        ({"amplitude_contrast": 2.0}, "amplitude_contrast"),
        ({"voltage_kv": "300"}, "voltage_kv"),
    ]:
        out = tmp_path / f"{key}.star"
        with pytest.raises((errors.InvalidValueError, errors.InvalidTypeError), match=key):
            tilt.to_relion(g, out, **kw)
        assert not out.exists()


# --------------------------------------------------------------- built-ins from public API
def test_public_functions_name_their_argument(tmp_path):
    g = good_geometry()
    with raises(errors.InvalidTypeError, "xml_path", "123"):
        tilt.read_warp(123)
    with raises(errors.InvalidTypeError, "path", "None"):
        tilt.to_relion(g, None)
    with raises(errors.InvalidTypeError, "path"):
        tilt.to_warp(g, None)
    p = tilt.to_relion(g, tmp_path / "t.star", tomo_name="TS")
    with raises(errors.InvalidTypeError, "geometries", "5"):
        tilt.add_particle_defocus(p, 5)
    with raises(errors.InvalidTypeError, "particles"):
        tilt.add_particle_defocus(5, {"TS": g})
    with raises(errors.InvalidTypeError, "geometries['TS']"):
        parts = _write(
            tmp_path / "p.star",
            "data_particles\n\nloop_\n_rlnTomoName #1\n_rlnCenteredCoordinateXAngst #2\n"
            "_rlnCenteredCoordinateYAngst #3\n_rlnCenteredCoordinateZAngst #4\nTS 1 2 3\n",
        )
        tilt.add_particle_defocus(parts, {"TS": "not a geometry"})
    with raises(errors.InvalidTypeError, "aln"):
        tilt.read_aretomo(None)
    with raises(errors.InvalidTypeError, "tlt"):
        tilt.read_imod(3.5)
    with raises(errors.InvalidTypeError, "movie_xmls"):
        tilt.samples_from_warp_movies("one.xml", (10, 10), 1.0)
    with raises(errors.InvalidTypeError, "paths"):
        ctffind5.read_ctffind5_tilt_series(5)


# --------------------------------------------------------------------------- invalid state
def test_tilt_geometry_is_immutable():
    g = good_geometry()
    for name, value in [("hand", -1), ("defocus_slope", 2.0), ("tilt_deg", [0.0, 1, 2])]:
        with pytest.raises(AttributeError, match=f"immutable.*{name}"):
            setattr(g, name, value)
    with pytest.raises(AttributeError, match="immutable"):
        del g.hand
    with pytest.raises(ValueError, match="read-only"):
        g.tilt_deg[0] = 5.0
    assert g.hand == 1 and g.defocus_slope == 1.0 and g.tilt_deg[0] == -30.0
    h = pickle.loads(pickle.dumps(g))
    np.testing.assert_array_equal(h.tilt_deg, g.tilt_deg)
    assert h.names == g.names
    with pytest.raises(AttributeError, match="immutable"):
        h.hand = -1
    assert g.replace(hand=-1).hand == -1 and g.hand == 1


_TOKEN = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=0, max_size=12
)


@given(name=_TOKEN)
@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_tomo_names_round_trip_or_are_refused(tmp_path_factory, name):
    g = good_geometry()
    out = tmp_path_factory.mktemp("names") / "t.star"
    try:
        tilt.to_relion(g, out, tomo_name=name)
    except errors.InvalidValueError as exc:
        assert "tomo_name" in str(exc)
        assert not out.exists()
        return
    back = tilt.read_relion_tomograms(out)
    assert list(back) == [name]
    np.testing.assert_allclose(back[name].tilt_deg, g.tilt_deg)


def test_tilt_names_that_cannot_round_trip(tmp_path):
    g = good_geometry(names=["a b.mrc", "b.mrc", "c.mrc"])
    with raises(errors.InvalidValueError, "geometry.names[0]", "'a b.mrc'"):
        tilt.to_relion(g, tmp_path / "t.star")
    g = good_geometry(names=["a.mrc", "line\nbreak", "c.mrc"])
    with raises(errors.InvalidValueError, "geometry.names[1]"):
        tilt.to_warp(g, tmp_path / "t.xml")
    g = good_geometry(names=["a&<b>.mrc", "b.mrc", "c.mrc"])  # XML-escaped, round-trips
    back = tilt.read_warp(tilt.to_warp(g, tmp_path / "ok.xml"))
    assert back.names == g.names


def test_negative_header_pixel_size_not_copied(tmp_path):
    p = good_warp_xml(tmp_path / "w.xml")
    bad = _write(
        tmp_path / "neg.xml",
        p.read_text().replace('Name="PixelSize" Value="2"', 'Name="PixelSize" Value="-2"'),
    )
    g = tilt.read_warp(bad)
    assert g.pixel_size_a is None and g.volume_shape is None
    assert any("PixelSize = -2" in n for n in g.notes)


# ------------------------------------------------------------------- corrupt files: fuzzing
def _good_files(d: Path) -> dict[str, tuple[Path, object]]:
    g = good_geometry(names=None)
    return {
        "relion": (tilt.to_relion(g, d / "t.star", force=True), tilt.read_relion),
        "warp": (tilt.to_warp(g, d / "w.xml", force=True), tilt.read_warp),
        "aretomo": (_write(d / "a.aln", GOOD_ALN), tilt.read_aretomo),
        "ctf_txt": (_write(d / "a_CTF.txt", GOOD_CTF_TXT), aretomo.read_ctf_txt),
        "tlt": (_write(d / "a.tlt", "-30\n0\n30\n"), tilt.read_imod),
        "xf": (_write(d / "a.xf", "1 0 0 1 0 0\n" * 3), imod.read_xf),
        "defocus": (
            _write(d / "a.defocus", "1 1 -30 -30 2000 2\n2 2 0 0 2010\n3 3 30 30 2020\n"),
            imod.read_ctfplotter_defocus,
        ),
        "warp_movie": (
            _write(
                d / "m.xml",
                '<Movie><GridCTF Width="2" Height="2" Depth="1">'
                + "".join(
                    f'<Node X="{x}" Y="{y}" Z="0" Value="{2.0 + 0.01 * (x + 2 * y)}" />'
                    for x in (0, 1)
                    for y in (0, 1)
                )
                + "</GridCTF></Movie>",
            ),
            lambda p: tilt.samples_from_warp_movies([p], (100, 100), 1.0),
        ),
        "ctffind5": (
            _write(
                d / "c.json",
                json.dumps({"tilt_axis_and_angle_search": [[0, 0, 1.0], [90, 10, 2.0]]}),
            ),
            ctffind5.read_ctffind5_tilt,
        ),
    }


_CORRUPTIONS = st.one_of(
    st.tuples(st.just("truncate"), st.floats(0.0, 1.0)),
    st.tuples(
        st.just("flip"),
        st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)), min_size=1, max_size=6),
    ),
    st.tuples(st.just("number"), st.sampled_from(["abc", "nan", "inf", "-1e400", "", "1e309"])),
    st.tuples(st.just("encoding"), st.sampled_from(["utf-16", "utf-16-be", "utf-32", "latin-1"])),
    st.tuples(st.just("drop_line"), st.floats(0.0, 1.0)),
)


def _corrupt(raw: bytes, how: tuple) -> bytes:
    kind, arg = how
    if kind == "truncate":
        return raw[: int(arg * len(raw))]
    if kind == "flip":
        b = bytearray(raw)
        for pos, val in arg:
            if b:
                b[min(int(pos * len(b)), len(b) - 1)] = val
        return bytes(b)
    if kind == "number":  # replace the last number-looking token
        toks = raw.split(b"0")
        return b"0".join(toks[:-1]) + arg.encode() + toks[-1] if len(toks) > 1 else raw
    if kind == "encoding":
        return raw.decode("utf-8").encode(arg, errors="replace")
    lines = raw.splitlines(keepends=True)
    if lines:
        del lines[min(int(arg * len(lines)), len(lines) - 1)]
    return b"".join(lines)


@pytest.mark.parametrize(
    "fmt",
    ["relion", "warp", "aretomo", "ctf_txt", "tlt", "xf", "defocus", "warp_movie", "ctffind5"],
)
@given(how=_CORRUPTIONS)
@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_corrupt_files_give_emgeom_errors(tmp_path_factory, fmt, how):
    d = tmp_path_factory.mktemp(fmt)
    path, reader = _good_files(d)[fmt]
    path.write_bytes(_corrupt(path.read_bytes(), how))
    try:
        res = reader(path)
    except errors.EmgeomError as exc:
        assert path.name in str(exc), str(exc)
        return
    # accepted: then every number in the result is finite
    if isinstance(res, tilt.TiltGeometry):
        assert np.all(np.isfinite(res.tilt_deg)) and np.all(np.isfinite(res.defocus_a))
    elif isinstance(res, np.ndarray):
        assert np.all(np.isfinite(res))
    elif isinstance(res, tilt.HandSamples):
        assert np.all(np.isfinite(res.defocus_a)) and np.all(np.isfinite(res.x_a))


def test_singular_xf_and_bad_volume_shape(tmp_path):
    tlt = _write(tmp_path / "a.tlt", "-30\n0\n30\n")
    xf = _write(tmp_path / "a.xf", "1 0 0 1 0 0\n0 0 0 0 0 0\n1 0 0 1 0 0\n")
    with raises(errors.FileFormatError, "a.xf:2", "singular"):
        tilt.read_imod(tlt, xf=xf)
    xf.write_text("1 0 0 1 3 0\n" * 3)
    with raises(errors.InvalidValueError, "pixel_size_a", "a.xf"):
        tilt.read_imod(tlt, xf=xf)
    with raises(errors.InvalidValueError, "pixel_size_a"):
        tilt.read_imod(tlt, xf=xf, pixel_size_a=-1.0)
    for bad in (5, "abc", (1, 2), (1.5, 2, 3), (0, 1, 1)):
        with raises(errors.InvalidValueError, "volume_shape"):
            good_geometry(volume_shape=bad)


def test_utf8_star_with_non_ascii_beyond_the_encoding_probe(tmp_path):
    text = "# " + "x" * 5000 + "\n" + GOOD_STAR.format(sx=100).replace("TS", "TS_é")
    p = tmp_path / "t.star"
    p.write_text(text, encoding="utf-8")
    assert list(tilt.read_relion_tomograms(p)) == ["TS_é"]
    p.write_bytes(text.encode("utf-8")[:-40] + b"\xff\xfe\xff" + b"\n")
    with raises(errors.FileFormatError, "t.star"):
        tilt.read_relion_tomograms(p)


# ------------------------------------------------------------------ one-way dependencies
def _modules(pkg: str) -> list[Path]:
    root = Path(tilt.__file__).parents[1]
    return sorted((root / pkg).glob("*.py"))


def test_no_private_names_across_packages_and_no_cycle_dodging_imports():
    """tilt/ and io/: no ``from emgeom.<other package> import _name``; no function-local
    import of emgeom (the lazy re-export table of tilt/__init__ is the one PEP 562 facade);
    io never imports the tilt workflows.
    """
    import ast

    bad = []
    for pkg in ("tilt", "io"):
        for f in _modules(pkg):
            tree = ast.parse(f.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("emgeom."):
                    other = node.module.split(".")[1]
                    if other not in (pkg, "_validate", "_core", "errors"):
                        bad += [
                            f"{f.name}: {node.module}.{a.name}"
                            for a in node.names
                            if a.name.startswith("_")
                        ]
                    if pkg == "io" and node.module.startswith(
                        ("emgeom.tilt._hand.", "emgeom.tilt._audit")
                    ):
                        bad.append(f"{f.name}: io imports workflow {node.module}")
                    if pkg == "io" and node.module in ("emgeom.tilt._hand", "emgeom.tilt"):
                        bad.append(f"{f.name}: io imports {node.module}")
                if isinstance(node, ast.FunctionDef) and f.name != "__init__.py":
                    for inner in ast.walk(node):
                        if isinstance(inner, ast.ImportFrom) and (inner.module or "").startswith(
                            "emgeom"
                        ):
                            bad.append(f"{f.name}:{inner.lineno} local import of {inner.module}")
    assert bad == []
