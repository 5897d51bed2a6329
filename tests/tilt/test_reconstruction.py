"""Reconstruction readers and the peers' geometry goldens (expected_values.json)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import starfile

from emgeom.errors import EmgeomFileError, FileFormatError, InvalidValueError
from emgeom.io.aretomo import read_aln, read_aretomo
from emgeom.io.imod import read_imod, read_xf
from emgeom.io.imod_tilt_com import read_tilt_com
from emgeom.io.portal import read_portal_alignment, read_portal_tomograms
from emgeom.model.geometry import rotation_matrices
from emgeom.tilt import Reconstruction, TiltGeometry, remap
from tests.conftest import shared_file

G = "cryoet_alignment_golden"
SDIST = (G, "uermel_cryoet-alignment_0.2.0_sdist", "tests", "data")
CZ = (G, "chanzuckerberg_cryoet-data-portal-backend")
RUN1 = (*CZ, "test_infra", "test_files", "input_bucket", "10001_input", "alignments")
CDP = (G, "TomoBabel_cets-cryoet-data-portal", "tests", "data")


@pytest.fixture(scope="module")
def expected():
    return json.loads(shared_file(G, "expected_values.json").read_text())


# ---------------------------------------------------------------------------- IMOD
def test_tilt_com_golden(expected):
    exp = expected["cryoet_alignment_0.2.0"]["imod_tilt_com"]["expect"]
    com = read_tilt_com(shared_file(*SDIST, "tilt.com"))
    for key in ("THICKNESS", "IMAGEBINNED", "XAXISTILT", "OFFSET", "MODE", "FalloffIsTrueSigma"):
        assert com[key] == exp[key], key
    for key in ("FULLIMAGE", "SUBSETSTART", "SHIFT", "RADIAL", "SCALE"):
        assert list(com[key]) == exp[key], key
    for key in ("InputProjections", "OutputFile", "TILTFILE", "XTILTFILE"):
        assert com[key] == exp[key], key
    assert com["PERPENDICULAR"] is True and com["AdjustOrigin"] is True


def test_xf_and_aln_goldens(expected):
    e = expected["cryoet_alignment_0.2.0"]
    rows = read_xf(shared_file(*SDIST, "test.xf"))
    np.testing.assert_allclose(rows, e["imod_xf"]["expect"]["rows_[mxx,mxy,myx,myy,sx,sy]"])
    a = read_aln(shared_file(*SDIST, "test.aln"))
    ex = e["aretomo3_aln"]["expect"]
    assert list(a["raw_size"]) == ex["RawSize"]
    glob = np.array(ex["Global_[SEC,ROT,TX,TY,TILT]"])
    np.testing.assert_allclose(
        np.stack([a["sec"], a["rot"], a["tx"], a["ty"], a["tilt"]], 1), glob, atol=1e-9
    )
    assert list(a["dark"]) == [d[0] for d in ex["DarkFrames_[section_idx,val2,angle]"]]


def test_from_imod_tilt_com_with_subset_and_binning(tmp_path):
    d = (G, "..", "cryoet_alignment", "tests", "data", "convert", "imod_1")
    com = shared_file(*SDIST, "convert", "imod_1", "tilt.com")
    tlt, xf, xtilt = (shared_file(*d, f"tilt_1.{e}") for e in ("tlt", "xf", "xtilt"))
    rec = Reconstruction.from_imod(com, tlt=tlt, xf=xf, xtilt=xtilt, pixel_size_a=2.0)
    # FULLIMAGE 3708 3832 at IMAGEBINNED 4, THICKNESS 2000: 927 x 958 x 500 voxels of 8 A
    assert rec.volume_shape == (927, 958, 500) and rec.binning == 4 and rec.voxel_size_a == 8
    # geometric centre, moved by SUBSETSTART -2 (unbinned) = +0.5 binned voxel in x
    assert rec.centre_vox.tolist() == [463.5, 478.5, 249.5]
    assert rec.image_centre_px.tolist() == [1853.5, 1915.5]
    assert rec.n_tilts == 59
    # tilt's un-rotated output: (x, z, y) slices, same points, same projections
    raw = Reconstruction.from_imod(
        com, tlt=tlt, xf=xf, xtilt=xtilt, pixel_size_a=2.0, rotation="none"
    )
    assert raw.volume_shape == (927, 500, 958)
    pts = np.array([[100.0, 200.0, 50.0], [463.5, 478.5, 249.5], [900, 10, 499]])
    r = remap(pts, rec, raw)
    assert r.exact
    np.testing.assert_allclose(r.points[:, 0], pts[:, 0])
    np.testing.assert_allclose(r.points[:, 2], pts[:, 1])  # file z of raw = y
    np.testing.assert_allclose(r.points[:, 1], 499 - pts[:, 2])  # file y of raw = -z
    with pytest.raises(FileFormatError, match="TILTFILE"):
        Reconstruction.from_imod(com, pixel_size_a=2.0)
    with pytest.raises(InvalidValueError, match="pixel_size_a"):
        Reconstruction.from_imod(com, tlt=tlt, xf=xf)
    bad = tmp_path / "x.com"
    bad.write_text("hello\n")
    with pytest.raises(FileFormatError, match=r"tilt\.com"):
        read_tilt_com(bad)
    with pytest.raises(EmgeomFileError):
        read_tilt_com(tmp_path / "missing.com")


def test_imod_shift_follows_tilt_adjust_origin(tmp_path):
    """tilt.f90 AdjustOrigin: origx -= delta*(nx/2 - iwide/2 - xoffset), origy =
    delta*(ithick/2 + yoffset): with SHIFT 8 -12 at IMAGEBINNED 4 the tilt axis sits 2 output
    voxels right of the centre and the specimen centre at row centre - 3 of tilt's (x, z, y)
    output, i.e. 3 voxels above the centre (+z) once rotated by trimvol -rx."""
    tlt = tmp_path / "a.tlt"
    tlt.write_text("-30\n0\n30\n")
    com = tmp_path / "tilt.com"
    base = "$tilt -StandardInput\nIMAGEBINNED 4\nTHICKNESS 400\nFULLIMAGE 400 800\nTILTFILE a.tlt\n"
    com.write_text(base + "SHIFT 8 -12\n")
    raw = Reconstruction.from_imod(com, pixel_size_a=1.0, rotation="none")
    rot = Reconstruction.from_imod(com, pixel_size_a=1.0)
    com.write_text(base + "SHIFT 0 0\n")
    raw0 = Reconstruction.from_imod(com, pixel_size_a=1.0, rotation="none")
    assert raw.volume_shape == (100, 100, 200)
    np.testing.assert_allclose(raw.centre_vox - raw0.centre_vox, [2.0, -3.0, 0.0])
    # the same physical point, in the rotated volume: canonical z = -(row - centre)
    np.testing.assert_allclose(rot.centre_vox - raw0.centre_vox[[0, 2, 1]], [2.0, 0.0, 3.0])
    assert any("SHIFT" in n for n in raw.notes)


def test_imod_reconstruction_reproduces_tilt_f90_projection():
    """tilt.f90 projects a voxel of its output slice to xproj = x cos(b) + zz sin(b)... with
    z = -zz (slices upside down, io/imod.py notes): for a rotx volume, canonical z = +file z."""
    g = TiltGeometry([30.0], 0.0, [1e4], pixel_size_a=1.0)
    rec = Reconstruction(g, (101, 51, 41), binning=1, program="imod", image_shape=(51, 101))
    # a point 10 voxels above the centre projects to x = 50 + 10 sin 30 (image centre 50)
    u = rec.project([[50, 25, 30]])[0, 0]
    assert u.tolist() == pytest.approx([50 + 10 * math.sin(math.radians(30)), 25])


# ---------------------------------------------------------------------------- RELION
def test_relion_projection_matrices_golden(expected):
    """WarpTools' matching_tomograms.star: the recomposed projection of every voxel equals the
    file's rlnTomoProjX/Y rows (1e-3 px incl. shifts); pixel 1.54, 4096 x 4096 x 2000."""
    e = expected["cryoet_alignment_0.2.0"]["relion_warptools_star"]["expect"]
    star = shared_file("cryoet_alignment", "tests", "data", "relion", "matching_tomograms.star")
    name = "24jul16a_Position_16_3.tomostar"
    rec = Reconstruction.from_relion(star, name, image_shape=(4096, 4096), binning=1)
    exp = e[f"tomo {name}"]
    assert rec.n_tilts == exp["n_tilts"] and rec.pixel_size_a == exp["pixel_size_a"]
    assert list(rec.full_shape) == exp["volume_size_px"]
    assert rec.alignment.relion_hand == exp["hand"]
    t = rec.alignment.tilt_deg
    assert t.min() == pytest.approx(-45, abs=0.1) and t.max() == pytest.approx(45, abs=0.1)
    block = starfile.read(star, always_dict=True)[name]
    rows = {
        k: np.array([np.fromstring(v.strip("[]"), sep=",") for v in block[k]])
        for k in ("rlnTomoProjX", "rlnTomoProjY")
    }
    rng = np.random.default_rng(0)
    vox = rng.uniform(0, 1, (50, 3)) * np.array([4095, 4095, 1999])
    u = rec.project(vox)
    # WarpTools writes zero translations: the file's matrices act on voxels about the
    # tomogram centre and give pixels about the image centre (Warp's centred convention)
    c_vol, c_img = np.array([2048, 2048, 1000]), np.array([2048, 2048])
    for k, lab in enumerate(("rlnTomoProjX", "rlnTomoProjY")):
        m = rows[lab]
        ref = (vox - c_vol) @ m[:, :3].T + m[:, 3] + c_img[k]
        assert np.abs(u[:, :, k] - ref.T).max() < 1e-3


def test_relion_odd_size_decomposition_rule():
    """RELION's setProjectionMatrix centres on N//2, getProjectionAnglesFromMatrix on N/2: for
    odd sizes the recovered shift differs by pix*[R (N/2 - N//2)]_xy (the peer's golden). Our
    relion5 Reconstruction reproduces setProjectionMatrix's projection exactly."""
    pix = 2.0
    for vol, img in (((512, 512, 400), (512, 512)), ((511, 513, 401), (513, 511))):
        rng = np.random.default_rng(1)
        n = 5
        tilt, axis, xt = rng.uniform(-60, 60, n), rng.uniform(-180, 180, n), rng.normal(0, 2, n)
        shifts = rng.normal(0, 30, (n, 2))
        g = TiltGeometry(
            tilt, axis, np.full(n, 1e4), x_tilt_deg=xt, shifts_a=shifts, pixel_size_a=pix
        )
        rec = Reconstruction(g, vol, binning=1, program="relion5", image_shape=img)
        r = rotation_matrices(tilt, axis, xt)
        c_int = np.array([v // 2 for v in vol], dtype=float)
        c_img = np.array([img[1] // 2, img[0] // 2], dtype=float)
        # Tomogram::setProjectionMatrix: S(shift/pix) S(c_img) R S(-int(N/2))
        pos = rng.uniform(0, 1, (20, 3)) * (np.array(vol) - 1)
        ref = np.einsum("tij,nj->tni", r[:, :2], pos - c_int) + shifts[:, None] / pix + c_img
        assert np.abs(rec.project(pos) - ref).max() < 1e-9
        # getProjectionAnglesFromMatrix recovers shifts about the float centre N/2
        t_col = shifts / pix + c_img - np.einsum("tij,j->ti", r[:, :2], c_int)
        recovered = pix * (t_col + np.einsum("tij,j->ti", r[:, :2], np.array(vol) / 2) - c_img)
        delta = pix * np.einsum("tij,j->ti", r[:, :2], np.array(vol) / 2 - c_int)
        np.testing.assert_allclose(recovered - shifts, delta, atol=1e-9)
        assert (np.abs(delta).max() > 0.1) == any(v % 2 for v in vol)


def test_naive_shift_copy_is_wrong_for_odd_sizes():
    """cets gate: copying shifts between frames without the centre deltas is > 0.5 px off for
    odd sizes (image 4095 x 4095, volume 819 x 819 x 239) and exact for even ones;
    Reconstruction.with_program carries the deltas."""
    for img, vol, odd in (
        ((4095, 4095), (819, 819, 239), True),
        ((4096, 4096), (820, 820, 240), False),
    ):
        g = TiltGeometry(
            np.linspace(-60, 60, 41),
            84.0,
            np.full(41, 2e4),
            pixel_size_a=1.54,
            shifts_a=np.random.default_rng(2).normal(0, 20, (41, 2)),
        )
        rel = Reconstruction(g, vol, binning=5, program="relion5", image_shape=img)
        naive = Reconstruction(g, vol, binning=5, program="aretomo3", image_shape=img)
        proper = rel.with_program("aretomo3")
        pts = np.random.default_rng(3).uniform(0, 1, (100, 3)) * (np.array(vol) - 1)
        same_physical = proper.alignment_a_to_voxels(rel.voxels_to_alignment_a(pts))
        assert np.abs(rel.project(pts) - proper.project(same_physical)).max() < 1e-9
        # the same file voxel, decoded in the other program's frame without the deltas
        err = np.abs(rel.project(pts) - naive.project(pts)).max()
        assert (0.5 < err < 2.0) if odd else (err < 1e-9), err
        # remap sees it: not the same projection model, a sub-pixel residual after the fit
        r = remap(pts, rel, naive)
        assert r.exact is (not odd)
        assert (0.01 < r.residual_max_px < 0.5) if odd else r.residual_px == 0


# ---------------------------------------------------------------------------- AreTomo3, Warp
def test_from_aretomo_and_errors(tmp_path):
    aln = shared_file(
        "cryoet_alignment", "TomoBabel_cets-aretomo3", "tests", "data", "Position_16_3.aln"
    )
    rec = Reconstruction.from_aretomo(aln, pixel_size_a=1.54, vol_z=1500, at_bin=4)
    assert rec.volume_shape == (1024, 1024, 375) and rec.centre_vox.tolist() == [512, 512, 187.5]
    assert rec.image_centre_px.tolist() == [2048, 2048]
    xzy = Reconstruction.from_aretomo(
        aln, pixel_size_a=1.54, vol_z=1500, at_bin=4, flip_volume=False
    )
    assert xzy.volume_shape == (1024, 375, 1024) and xzy.mirrored is False
    with pytest.raises(InvalidValueError, match="vol_z"):
        Reconstruction.from_aretomo(aln, pixel_size_a=1.54)
    bad = tmp_path / "x.aln"
    bad.write_text("# AreTomo Alignment\n    1   0.0  1.0  0 0 1 1 1 0 0.0\n")
    with pytest.raises(FileFormatError, match="RawSize"):
        Reconstruction.from_aretomo(bad, pixel_size_a=1.0, vol_z=100)


def test_from_warp_needs_a_volume():
    xml = shared_file(
        "cryoet_alignment", "TomoBabel_cets-warpm", "tests", "data", "Position_16_3.xml"
    )
    with pytest.raises(InvalidValueError, match="VolumeDimensionsPhysical"):
        Reconstruction.from_warp(xml, image_shape=(4096, 4096), voxel_size_a=10.0)
    rec = Reconstruction.from_warp(
        xml, image_shape=(4096, 4096), voxel_size_a=12.32, volume_shape=(512, 512, 188)
    )
    np.testing.assert_allclose(rec.centre_vox, [256.0, 256.0, 94.0], atol=1e-9)
    assert rec.program == "warp"
    # the session's .settings: Tomo 4096 x 4096 x 2000 at 1.54 A
    settings = shared_file("cryoet_alignment", "tests", "data", "warp", "test.settings")
    rec = Reconstruction.from_warp(
        xml, image_shape=(4096, 4096), voxel_size_a=12.32, settings=settings
    )
    assert rec.volume_shape == (512, 512, 250)
    np.testing.assert_allclose(rec.full_shape, [4096, 4096, 2000])
    np.testing.assert_allclose(rec.centre_vox, [256.0, 256.0, 125.0], atol=1e-9)


# ---------------------------------------------------------------------------- portal
def portal_doc(expected, drop_offsets=True):
    e = expected["cz_portal_backend_ingestion"]["TS_run1_imod_to_alignment_metadata"]["expect"]
    doc = {
        "per_section_alignment_parameters": e["per_section_alignment_parameters"],
        "affine_transformation_matrix": np.eye(4).tolist(),
        "format": "IMOD",
    }
    if not drop_offsets:
        doc["tilt_offset"] = e["tilt_offset"]
        doc["x_rotation_offset"] = e["x_rotation_offset"]
    return doc


def test_portal_ingestion_goldens_describe_the_imod_and_aretomo_geometry(expected, tmp_path):
    """The portal's per-section values for TS_run1 (expected_values.json) describe the same
    projection as the IMOD .xf/.tlt/.xtilt and the AreTomo3 .aln they were made from."""
    path = tmp_path / "alignment_metadata.json"
    path.write_text(json.dumps(portal_doc(expected)))
    g, _ = read_portal_alignment(path, pixel_size_a=1.0)
    imod = read_imod(
        shared_file(*RUN1, "TS_run1.tlt"),
        xf=shared_file(*RUN1, "TS_run1.xf"),
        xtilt=shared_file(*RUN1, "TS_run1.xtilt"),
        pixel_size_a=1.0,
    )
    are = read_aretomo(shared_file(*RUN1, "TS_run1.aln"), pixel_size_a=1.0)
    for other, tol in ((imod, 0.1), (are, 1e-3)):
        np.testing.assert_allclose(g.tilt_deg, other.tilt_deg)
        np.testing.assert_allclose(g.axis_deg, other.axis_deg, atol=1e-4)
        # IMOD: the portal uses -transpose(xf)·d; the .xf 2x2 has det 1.00084: <= 0.08 px apart
        np.testing.assert_allclose(g.shifts_a, other.shifts_a, atol=tol)
    # which is right, by the projection: IMOD's .xf maps raw -> aligned as A·(r - c) + d, and
    # tilt reconstructs with the tilt axis at the aligned centre, so the alignment frame's
    # origin must land there: A·s + d = 0. emgeom's -A^-1·d does exactly; the portal's
    # -A^T·d misses by (I - A·A^T)·d, up to 0.08 px here.
    xf = read_xf(shared_file(*RUN1, "TS_run1.xf"))
    a, d = xf[:, :4].reshape(-1, 2, 2), xf[:, 4:]
    ours = np.einsum("tij,tj->ti", a, np.asarray(imod.shifts_a)) + d
    portal = np.einsum("tij,tj->ti", a, np.asarray(g.shifts_a)) + d
    assert np.abs(ours).max() < 1e-9
    assert 0.05 < np.abs(portal).max() < 0.1
    np.testing.assert_allclose(g.x_tilt_deg, [0.23, 2.12, 1.97])
    np.testing.assert_allclose(g.x_tilt_deg, imod.x_tilt_deg)
    # offsets whose effect the portal does not define are refused
    path.write_text(json.dumps(portal_doc(expected, drop_offsets=False)))
    with pytest.raises(FileFormatError, match="tilt_offset"):
        read_portal_alignment(path, pixel_size_a=1.0)


def test_portal_migration_fixture_refused():
    p = shared_file(
        *CZ,
        "test_infra",
        "test_files",
        "30001",
        "RUN1",
        "Alignments",
        "100",
        "alignment_metadata.json",
    )
    # flat in_plane_rotation is read as 2x2, but [0.1, 0.2, -0.3, 0.4] is no rotation
    with pytest.raises(FileFormatError, match="not a rotation"):
        read_portal_alignment(p, pixel_size_a=1.0, tilt_deg=[0.0, 1.0])


def test_portal_null_tilt_needs_tilt_deg(tmp_path):
    c, s_ = math.cos(0.3), math.sin(0.3)
    rows = [
        {
            "z_index": i,
            "in_plane_rotation": [c, -s_, s_, c],
            "x_offset": 1.0,
            "y_offset": 2.0,
            "tilt_angle": None,
            "volume_x_rotation": 0,
        }
        for i in range(2)
    ]
    p = tmp_path / "a.json"
    p.write_text(json.dumps({"per_section_alignment_parameters": rows}))
    with pytest.raises(FileFormatError, match="tilt_angle is null"):
        read_portal_alignment(p, pixel_size_a=1.0)
    g, _ = read_portal_alignment(p, pixel_size_a=2.0, tilt_deg=[-3.0, 3.0])
    assert g.tilt_deg.tolist() == [-3.0, 3.0] and g.shifts_a[0].tolist() == [2.0, 4.0]
    assert g.axis_deg[0] == pytest.approx(math.degrees(0.3))
    with pytest.raises(InvalidValueError, match="tilt_deg"):
        read_portal_alignment(p, pixel_size_a=2.0, tilt_deg=[1.0])


def test_portal_10445_goldens(expected):
    e = expected["cets_cdp_10445_TS_105_5"]["expect"]
    p = shared_file(*CDP, "10445_TS_105_5.extract.json")
    g, facts = read_portal_alignment(p)
    assert g.n_tilts == e["n_tilt_images"] and facts["image_shape"] == (4096, 4096)
    np.testing.assert_allclose(g.shifts_a[0], e["CETS translation[0] (A)"], atol=1e-9)
    toms = read_portal_tomograms(p)
    assert len(toms) == e["tomograms"]
    fine = min(toms, key=lambda t: t.voxel_spacing_a)
    assert fine.volume_shape == (1260, 1260, 368) and fine.voxel_spacing_a == 4.99
    assert fine.implied_voxel_size_a(1.54, 4096) == pytest.approx(5.00622, abs=1e-5)
    coarse = max(toms, key=lambda t: t.voxel_spacing_a)
    assert coarse.implied_voxel_size_a(1.54, 4096) == pytest.approx(10.01244, abs=1e-5)
    # portal -> .aln: the 31 global rows are the portal's per-section values
    aln = read_aretomo(shared_file(*CDP, "10445_TS_105_5.aln"), pixel_size_a=1.54)
    np.testing.assert_allclose(g.tilt_deg, aln.tilt_deg, atol=0)
    np.testing.assert_allclose(g.axis_deg, aln.axis_deg, atol=1e-9)
    np.testing.assert_allclose(g.shifts_a, aln.shifts_a, atol=1e-9)
    assert g.axis_deg[0] == pytest.approx(e["ingestion draft"]["tilt_axis"], abs=1e-4)


def test_small_geometry_goldens(expected):
    """rawtlt angles, Warp 00254 (41 tilts, -60.01 deg), WarpTools Position_16_3 |x_tilt| < 1,
    Warp settings (1.54 A, 4096 x 4096 x 2000)."""
    from emgeom.io.imod import read_tlt
    from emgeom.io.warp_settings import read_warp_settings
    from emgeom.io.warp_xml import read_warp

    e = expected["cryoet_alignment_0.2.0"]
    assert (
        read_tlt(shared_file(*SDIST, "test.rawtlt")).tolist()
        == e["imod_rawtlt"]["expect"]["angles"]
    )
    w = read_warp(shared_file(*SDIST, "warp", "00254.xml"))  # UTF-8 BOM
    ex = e["warp_xml_00254"]["expect"]
    assert w.n_tilts == ex["n_tilts"]
    assert -w.tilt_deg.max() == pytest.approx(ex["min Angle"])  # Warp Angle = -theta
    star = shared_file("cryoet_alignment", "tests", "data", "relion", "matching_tomograms.star")
    rec = Reconstruction.from_relion(
        star, "24jul16a_Position_16_3.tomostar", image_shape=(4096, 4096), binning=1
    )
    assert np.abs(rec.alignment.x_tilt_deg).max() < 1.0
    s = read_warp_settings(
        shared_file("cryoet_alignment", "tests", "data", "warp", "test.settings")
    )
    es = expected["cryoet_alignment_cets_branch"]["warp_settings"]["expect"]
    assert s["pixel_size_a"] == es["pixel_size_a"]
    assert list(s["tomo_dims_px"]) == es["tomo_dims_px"]


def test_from_imod_reads_the_rec_header(tmp_path):
    import mrcfile

    (tmp_path / "a.tlt").write_text("-30\n0\n30\n")
    com = tmp_path / "tilt.com"
    com.write_text(
        "$tilt -StandardInput\nIMAGEBINNED 4\nTHICKNESS 400\nFULLIMAGE 400 800\nTILTFILE a.tlt\n"
    )
    rec = tmp_path / "a.rec"
    with mrcfile.new(rec) as m:
        m.set_data(np.zeros((100, 200, 100), dtype=np.int8))  # (z, y, x): rotx layout
        m.voxel_size = 6.0
    r = Reconstruction.from_imod(com, rec)
    assert r.volume_shape == (100, 200, 100) and r.pixel_size_a == 1.5 and r.voxel_size_a == 6.0
    bad = tmp_path / "b.rec"
    bad.write_bytes(b"not an mrc file at all" * 100)
    with pytest.raises(FileFormatError, match="MRC"):
        Reconstruction.from_imod(com, bad)
    with pytest.raises(EmgeomFileError):
        Reconstruction.from_imod(com, tmp_path / "missing.rec")
