"""Robustness of the readers merged after the suite was built (issue 13 follow-up): CZ portal
JSON/NDJSON, IMOD ``tilt.com`` and ``.rec`` header, Warp ``.settings``, particle tables (RELION
5 / Warp STAR, IMOD model2point text, copick JSON), SerialEM Navigator, ``.mdoc`` and montage
(mdoc layout + MRC pieces), the reconstructions built from them; contract in tests/_robust.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mrcfile
import numpy as np
import pytest

from tests._robust import no_tmp, reader_contract_tests

_ROWS = [
    {
        "z_index": i,
        "in_plane_rotation": [[0.996, -0.0872], [0.0872, 0.996]],
        "x_offset": 1.5 * i,
        "y_offset": -0.5,
        "tilt_angle": -30.0 + 30.0 * i,
        "volume_x_rotation": 0.3,
    }
    for i in range(3)
]
PORTAL_ALIGNMENT = json.dumps(
    {
        "per_section_alignment_parameters": _ROWS,
        "volume_dimension": {"x": 4000.0, "y": 4000.0, "z": 1200.0},
        "volume_offset": {"x": 0, "y": 0, "z": 0},
        "tilt_offset": 0,
        "x_rotation_offset": 0,
        "affine_transformation_matrix": np.eye(4).tolist(),
        "format": "IMOD",
    },
    indent=1,
).encode()
PORTAL_TOMOGRAMS = json.dumps(
    {
        "tomograms": [
            {"id": 7, "voxel_spacing": 10.012, "size": [630, 630, 184], "processing": "raw"},
            {
                "id": 8,
                "voxel_spacing": 13.48,
                "scale0_dimensions": {"width": 470, "height": 470, "depth": 140},
            },
        ]
    },
    indent=1,
).encode()
PORTAL_RUN = json.dumps(
    {**json.loads(PORTAL_ALIGNMENT), **json.loads(PORTAL_TOMOGRAMS)}, indent=1
).encode()
PORTAL_POINTS = (
    b'{"type": "orientedPoint", "location": {"x": 10.5, "y": 20.0, "z": 30.25}, '
    b'"xyz_rotation_matrix": [[1, 0, 0], [0, 1, 0], [0, 0, 1]]}\n'
    b'{"type": "orientedPoint", "location": {"x": 1.0, "y": 2.0, "z": 3.0}, '
    b'"xyz_rotation_matrix": [[0, -1, 0], [1, 0, 0], [0, 0, 1]]}\n'
)
COPICK = json.dumps(
    {
        "pickable_object_name": "ribosome",
        "user_id": "u",
        "session_id": "0",
        "run_name": "TS_01",
        "unit": "angstrom",
        "points": [
            {
                "location": {"x": 100.0, "y": 200.0, "z": 300.0},
                "transformation_": np.eye(4).tolist(),
            },
            {"location": {"x": 10.0, "y": 20.0, "z": 30.0}},
        ],
    },
    indent=1,
).encode()
TILT_COM = b"""# THIS IS A COMMAND FILE TO RUN TILT
$tilt -StandardInput
InputProjections TS_01_ali.mrc
OutputFile TS_01_full_rec.mrc
IMAGEBINNED 4
TILTFILE a.tlt
THICKNESS 400
RADIAL 0.35 0.035
FalloffIsTrueSigma 1
XAXISTILT 0.0
SCALE 0.0 250.0
PERPENDICULAR
MODE 2
FULLIMAGE 400 800
SUBSETSTART 0 0
AdjustOrigin
OFFSET 0.0
SHIFT 8.0 -12.0
$if (-e ./savework) ./savework
"""
WARP_SETTINGS = b"""<?xml version="1.0" encoding="utf-8"?>
<Settings>
  <Param Name="PixelSizeX" Value="1.54" />
  <Import>
    <Param Name="PixelSize" Value="1.54" />
  </Import>
  <Tomo>
    <Param Name="DimensionsX" Value="4096" />
    <Param Name="DimensionsY" Value="4096" />
    <Param Name="DimensionsZ" Value="2000" />
  </Tomo>
</Settings>
"""
IMOD_POINTS = (
    b"       1       1      10.50      20.00      30.00\n       1       2   1.0   2.0   3.0\n"
)
NAV = b"""AdocVersion = 2.00
LastSavedAs = m.nav

[Item = pt-1]
Color = 0
StageXYZ = -495.956 436.348 44.77
NumPts = 1
Regis = 1
Type = 0
RawStageXY = -495.956 436.348
PtsX = -495.956
PtsY = 436.348

[Item = 17-1-A]
Color = 2
StageXYZ = -495.956 436.348 44.77
NumPts = 5
Regis = 1
Type = 2
Note = Sec 0 - map.mrc -
MapFile = map.mrc
MapID = 1291353952
MapMontage = 0
MapSection = 0
MapBinning = 1
MapScaleMat = 0.638997 -26.616 -26.5862 -1.01529
MapWidthHeight = 4096 4096
MapFramesXY = 0 0
MontBinning = 1
PtsX = -421.93 -416.058 -569.982 -575.854 -421.93
PtsY = 515.071 361.32 357.625 511.376 515.071
"""
MDOC = b"""PixelSpacing = 10
ImageFile = tiny.mrc
ImageSize = 40 30
Montage = 1
DataMode = 2

[T = SerialEM: test]

[ZValue = 0]
PieceCoordinates = 0 0 0
StagePosition = 0 0

[ZValue = 1]
PieceCoordinates = 0 27 0
StagePosition = 0 1

[ZValue = 2]
PieceCoordinates = 32 27 0
StagePosition = 1 1

[ZValue = 3]
PieceCoordinates = 32 0 0
StagePosition = 1 0

[MontSection = 0]
FullMontSize = 72 57
FullMontNumFrames = 2 2
"""


def _mrc_bytes(data: np.ndarray, voxel: float = 6.0) -> bytes:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "seed.mrc"
        with mrcfile.new(path) as m:
            m.set_data(data)
            m.voxel_size = voxel
        return path.read_bytes()


def _pieces() -> bytes:
    return _mrc_bytes(np.arange(4 * 30 * 40, dtype=np.float32).reshape(4, 30, 40), 10.0)


def _rec() -> bytes:
    return _mrc_bytes(np.zeros((10, 20, 10), dtype=np.int8))


def _star_particles() -> bytes:
    import tempfile

    from emgeom.io.particles import write_relion5_particles

    rng = np.random.default_rng(3)
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "p.star"
        write_relion5_particles(
            p,
            rng.normal(0, 500, (4, 3)),
            tomo_names=["TS_01"] * 2 + ["TS_02"] * 2,
            matrices=np.stack([np.eye(3)] * 4),
            pixel_size_a=1.35,
        )
        return p.read_bytes()


# ---------------------------------------------------------------------------- readers


def _call(module: str, name: str, **kw: Any) -> Callable[[Path], Any]:
    def call(p: Path) -> Any:
        import importlib

        return getattr(importlib.import_module(module), name)(p, **kw)

    return call


def _montage_mdoc(p: Path) -> Any:
    """A corrupt mdoc next to a good MRC; the result is assembled (every piece read)."""
    from emgeom.io.montage import read_montage

    mrc = p.with_name("tiny.mrc")
    if not mrc.exists():
        mrc.write_bytes(_pieces())
    m = read_montage(mrc, p)
    return m.assemble(binning=2)


def _montage_mrc(p: Path) -> Any:
    """A corrupt MRC next to a good mdoc."""
    from emgeom.io.montage import read_montage

    mdoc = p.with_name("tiny.mrc.mdoc")
    if not mdoc.exists():
        mdoc.write_bytes(MDOC)
    return read_montage(p, mdoc).assemble(binning=2)


def _imod_com(p: Path) -> Any:
    from emgeom.tilt import Reconstruction

    tlt = p.with_name("a.tlt")
    if not tlt.exists():
        tlt.write_text("-30\n0\n30\n")
    return Reconstruction.from_imod(p, pixel_size_a=1.5).volume_shape


def _imod_rec(p: Path) -> Any:
    from emgeom.tilt import Reconstruction

    com = p.with_name("tilt.com")
    if not com.exists():
        com.write_bytes(TILT_COM)
        p.with_name("a.tlt").write_text("-30\n0\n30\n")
    r = Reconstruction.from_imod(com, p)
    return (r.volume_shape, r.pixel_size_a)


def _portal_recon(p: Path) -> Any:
    from emgeom.tilt import Reconstruction

    r = Reconstruction.from_portal(p, pixel_size_a=2.0, image_shape=(400, 400))
    return (r.volume_shape, r.voxel_size_a)


# name -> (reader, file name, seed bytes, text format?)
READERS: dict[str, tuple[Callable[[Path], Any], str, Callable[[], bytes], bool]] = {
    "portal alignment": (
        _call("emgeom.io.portal", "read_portal_alignment", pixel_size_a=2.0),
        "alignment_metadata.json",
        lambda: PORTAL_ALIGNMENT,
        True,
    ),
    "portal reconstruction": (_portal_recon, "run.json", lambda: PORTAL_RUN, True),
    "portal tomograms": (
        _call("emgeom.io.portal", "read_portal_tomograms"),
        "run.json",
        lambda: PORTAL_TOMOGRAMS,
        True,
    ),
    "portal annotations": (
        _call("emgeom.io.portal", "read_portal_annotations"),
        "ribosome_orientedpoint.ndjson",
        lambda: PORTAL_POINTS,
        True,
    ),
    "imod tilt.com": (
        _call("emgeom.io.imod_tilt_com", "read_tilt_com"),
        "tilt.com",
        lambda: TILT_COM,
        True,
    ),
    "imod reconstruction tilt.com": (_imod_com, "tilt.com", lambda: TILT_COM, True),
    "imod reconstruction rec header": (_imod_rec, "TS_01.rec", _rec, False),
    "warp settings": (
        _call("emgeom.io.warp_settings", "read_warp_settings"),
        "warp_tiltseries.settings",
        lambda: WARP_SETTINGS,
        True,
    ),
    "particles relion5 star": (
        _call("emgeom.io.particles", "read_particles"),
        "particles.star",
        _star_particles,
        True,
    ),
    "particles imod points": (
        _call("emgeom.io.particles", "read_particles"),
        "picks.txt",
        lambda: IMOD_POINTS,
        True,
    ),
    "particles copick": (
        _call("emgeom.io.particles", "read_particles"),
        "picks.json",
        lambda: COPICK,
        True,
    ),
    "particles portal ndjson": (
        _call("emgeom.io.particles", "read_particles"),
        "picks.ndjson",
        lambda: PORTAL_POINTS,
        True,
    ),
    "serialem nav": (_call("emgeom.io.serialem_nav", "read_nav"), "m.nav", lambda: NAV, True),
    "serialem mdoc": (_call("emgeom.io.mdoc", "read_mdoc"), "tiny.mrc.mdoc", lambda: MDOC, True),
    "montage mdoc": (_montage_mdoc, "tiny.mrc.mdoc", lambda: MDOC, True),
    "montage mrc": (_montage_mrc, "tiny.mrc", _pieces, False),
}


(
    test_corrupt_new_files,
    test_corrupt_new_files_long,
    test_directory_or_missing_new_file,
    test_unreadable_new_file,
) = reader_contract_tests(no_tmp(READERS))


# ---------------------------------------------------------------------------- encodings
# UTF-16 is decoded only where the producing program writes it (io/text.py): Warp (.settings,
# like its XML) on Windows; refused with the iconv fix elsewhere (IMOD, SerialEM, the portal's
# and copick's JSON, which RFC 8259 requires to be UTF-8).
ENCODING_CASES = {
    "warp settings": True,
    "imod tilt.com": False,
    "serialem nav": False,
    "serialem mdoc": False,
    "portal alignment": False,
    "portal annotations": False,
    "particles copick": False,
    "particles imod points": False,
    "particles relion5 star": False,
}


@pytest.mark.parametrize("name", sorted(ENCODING_CASES))
@pytest.mark.parametrize("codec", ["utf-16", "utf-16-le"])
def test_utf16_decoded_or_refused(name, codec, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from emgeom.errors import FileFormatError

    reader, filename, seed_fn, _ = READERS[name]
    path = tmp_path / filename
    path.write_bytes(seed_fn().decode("utf-8").encode(codec))
    if ENCODING_CASES[name]:
        path2 = tmp_path / ("utf8_" + filename)
        path2.write_bytes(seed_fn())
        assert reader(path) == reader(path2)
    else:
        with pytest.raises(FileFormatError, match=r"UTF-16.*iconv"):
            reader(path)


def test_montage_bin_means_do_not_overflow(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """float32 pieces near the float32 maximum: block means accumulate in float64 (a float32
    sum of 4 x 3e38 is inf)."""
    from emgeom.io.montage import read_montage

    (tmp_path / "tiny.mrc.mdoc").write_bytes(MDOC)
    (tmp_path / "tiny.mrc").write_bytes(_mrc_bytes(np.full((4, 30, 40), 3e38, np.float32)))
    out = read_montage(tmp_path / "tiny.mrc").assemble(binning=2)
    assert np.isfinite(out).all() and out.max() == pytest.approx(3e38, rel=1e-6)


def test_montage_negative_zvalue_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A ZValue of -1 would index the last section of the MRC (numpy counts from the end)."""
    from emgeom.errors import FileFormatError
    from emgeom.io.montage import Montage

    mdoc = tmp_path / "tiny.mrc.mdoc"
    mdoc.write_bytes(MDOC.replace(b"[ZValue = 3]", b"[ZValue = -1]"))
    with pytest.raises(FileFormatError, match="ZValue -1 is negative"):
        Montage.from_mdoc(mdoc)


def test_nav_integer_keys_are_not_truncated(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """MapSection = 1.5 was read as section 1 (int() truncates): now refused, naming the item."""
    from emgeom.errors import FileFormatError
    from emgeom.io.serialem_nav import read_nav

    p = tmp_path / "m.nav"
    p.write_bytes(NAV.replace(b"MapSection = 0", b"MapSection = 1.5"))
    with pytest.raises(FileFormatError, match=r"\[Item = 17-1-A\]: MapSection = 1\.5"):
        _ = read_nav(p)["17-1-A"].map_section
