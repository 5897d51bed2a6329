"""Particle tables in every program's form: goldens, round trips, frames, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from emgeom.errors import (
    FileFormatError,
    InvalidValueError,
    OutputExistsError,
    UnknownConventionError,
)
from emgeom.io.particles import (
    FORMAT_FRAMES,
    read_particles,
    read_star_particles,
    write_particles,
)
from emgeom.io.portal import read_portal_annotations
from emgeom.model.rotation import (
    as_rotation_matrices,
    matrices_from_relion,
    relion_from_matrices,
)
from emgeom.tilt import Reconstruction, TiltGeometry
from emgeom.tilt._remap import (
    orientations_to_voxels,
    particles_to_voxels,
    remap,
    voxels_to_particles,
)
from tests.conftest import shared_file

GOLD = "cryoet_alignment_golden"
PART = (GOLD, "uermel_cryoet-alignment_cets-branch", "tests", "data", "particles")
CDP = (GOLD, "TomoBabel_cets-cryoet-data-portal", "tests", "data")


def rotations(n, seed=0):
    rng = np.random.default_rng(seed)
    e = np.stack([rng.uniform(-180, 180, n), rng.uniform(0, 180, n), rng.uniform(-180, 180, n)], 1)
    return matrices_from_relion(e[:, 0], e[:, 1], e[:, 2])


# ---------------------------------------------------------------------------- rotations
def test_relion_euler_matrix_matches_relion_formula_and_inverts():
    # RELION Euler_angles2matrix at (rot, tilt, psi) = (90, 0, 0): A maps x -> -y
    m = matrices_from_relion(90.0, 0.0, 0.0)[0]
    np.testing.assert_allclose(m, [[0, 1, 0], [-1, 0, 0], [0, 0, 1]], atol=1e-15)

    # A = (Rz(rot) Ry(tilt) Rz(psi))^T
    def rz(a):
        c, s = np.cos(np.radians(a)), np.sin(np.radians(a))
        return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])

    def ry(a):
        c, s = np.cos(np.radians(a)), np.sin(np.radians(a))
        return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])

    np.testing.assert_allclose(
        matrices_from_relion(30, 40, 50)[0], (rz(30) @ ry(40) @ rz(50)).T, atol=1e-15
    )
    m = rotations(2000)
    e = relion_from_matrices(m)
    assert np.all((e[:, 1] >= 0) & (e[:, 1] <= 180))
    np.testing.assert_allclose(matrices_from_relion(*e.T), m, atol=1e-12)
    # gimbal lock: tilt 0 and 180
    for t in (0.0, 180.0):
        g = matrices_from_relion([25.0], [t], [35.0])
        np.testing.assert_allclose(matrices_from_relion(*relion_from_matrices(g).T), g, atol=1e-12)


def test_rotation_validation():
    with pytest.raises(InvalidValueError, match="proper rotation"):
        as_rotation_matrices(np.diag([1.0, 1.0, -1.0]))
    with pytest.raises(InvalidValueError, match="finite"):
        matrices_from_relion(np.nan, 0, 0)


# ---------------------------------------------------------------------------- peer goldens
def test_m_import_golden():
    """MTools create_species: rlnCoordinate * rlnImagePixelSize (4.0) - rlnOrigin*Angst equals
    the species table's wrpCoordinate (1e-3 Å); rotations equal (1e-5 in the matrix)."""
    star = read_star_particles(shared_file(*PART, "m_import_run_data.star"), coords_angpix=4.0)
    species = read_particles(shared_file(*PART, "m_species_particles.star"))
    assert star.frame == species.frame == "corner_a"
    assert len(star) == len(species) == 12
    assert np.abs(star.coordinates - species.coordinates).max() < 1e-3
    assert np.abs(star.matrices - species.matrices).max() < 1e-5
    assert star.tomo_names == species.tomo_names


def test_same_star_as_relion5_legacy_uses_the_tilt_series_pixel():
    """Read as RELION would: coords_angpix = rlnTomoTiltSeriesPixelSize = 1.54."""
    p = shared_file(*PART, "m_import_run_data.star")
    legacy = read_star_particles(p)
    assert legacy.meta["coords_angpix"] == 1.54
    m = read_star_particles(p, coords_angpix=4.0)
    raw = legacy.table[["rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ"]].to_numpy(float)
    origin = legacy.table[["rlnOriginXAngst", "rlnOriginYAngst", "rlnOriginZAngst"]].to_numpy(float)
    np.testing.assert_allclose(legacy.coordinates, raw * 1.54 - origin, atol=1e-9)
    np.testing.assert_allclose(m.coordinates, raw * 4.0 - origin, atol=1e-9)


def test_warp_2d_export_golden():
    p = shared_file(*PART, "warp_2d_export.star")
    t = read_star_particles(p)
    assert t.frame == "corner_a" and t.meta["coords_angpix"] == 1.54
    raw = t.table[["rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ"]].to_numpy(float)
    origin = t.table[["rlnOriginXAngst", "rlnOriginYAngst", "rlnOriginZAngst"]].to_numpy(float)
    np.testing.assert_allclose(t.coordinates, raw * 1.54 - origin, atol=1e-9)
    assert t.tomo_names[0] == "24aug01b_Position_15_5"


def test_portal_oriented_points():
    locs, mats = read_portal_annotations(
        shared_file(*CDP, "annotations", "175505_OrientedPoint.ndjson")
    )
    assert locs.shape == (95, 3) and mats.shape == (95, 3, 3)
    err = np.abs(np.einsum("nji,njk->nik", mats, mats) - np.eye(3)).max()
    assert err < 8e-8
    # one Octopi pick lies 5 voxels beyond the 1260-voxel x extent of the tomogram
    outside = ~np.all((locs >= -0.5) & (locs < np.array([1260, 1260, 368]) - 0.5), axis=1)
    assert np.flatnonzero(outside).size == 1 and locs[outside, 0][0] > 1265
    pts = read_particles(shared_file(*CDP, "annotations", "69546_Point.ndjson"))
    assert len(pts) == 43 and pts.matrices is None and pts.frame == "voxels"


# ---------------------------------------------------------------------------- round trips
@pytest.mark.parametrize("form", ["relion5", "warp", "imod", "copick", "portal"])
def test_write_read_round_trip(tmp_path, form):
    rng = np.random.default_rng(3)
    c = rng.uniform(0, 500, (25, 3))
    m = rotations(25, 4)
    ext = {"relion5": "star", "warp": "star", "imod": "mod", "copick": "json", "portal": "ndjson"}
    path = tmp_path / f"p.{ext[form]}"
    kw = {"pixel_size_a": 4.0} if form in ("warp", "relion5") else {}
    names = ["TS_01"] * 25 if form in ("relion5", "warp") else None
    write_particles(path, form, c, matrices=None if form == "imod" else m, tomo_names=names, **kw)
    back = read_particles(path, coords_angpix=4.0 if form == "warp" else None)
    assert back.frame == FORMAT_FRAMES[form]
    tol = 2e-6 if form in ("relion5", "warp") else 1e-9  # starfile writes 6 decimals
    if form == "imod":
        tol = 1e-4  # IMOD models are float32
    assert np.abs(back.coordinates - c).max() < tol * max(1, np.abs(c).max())
    if form != "imod":
        assert np.abs(back.matrices - m).max() < 1e-5
    with pytest.raises(OutputExistsError):
        write_particles(path, form, c, matrices=None, tomo_names=names, **kw)
    write_particles(path, form, c, tomo_names=names, force=True, **kw)


def test_copick_translation_is_added(tmp_path):
    t = np.eye(4)
    t[:3, 3] = [10.0, -20.0, 5.0]
    doc = {
        "points": [{"location": {"x": 100.0, "y": 200.0, "z": 50.0}, "transformation_": t.tolist()}]
    }
    p = tmp_path / "picks.json"
    p.write_text(json.dumps(doc))
    assert read_particles(p).coordinates.tolist() == [[110.0, 180.0, 55.0]]


def test_model2point_text(tmp_path):
    p = tmp_path / "pts.txt"
    p.write_text("   1   2   10.50   20.50   3.00\n   1   2   11.50   21.50   4.00\n")
    t = read_particles(p)
    assert t.coordinates.tolist() == [[10.5, 20.5, 3.0], [11.5, 21.5, 4.0]]
    rec = Reconstruction(
        TiltGeometry([0.0, 10, 20], 0.0, [1e4] * 3, pixel_size_a=1.0),
        (40, 40, 10),
        binning=1,
        program="imod",
        image_shape=(40, 40),
    )
    # IMOD model: voxel (i, j, k) centre at (i + 0.5, j + 0.5, k)
    assert particles_to_voxels(t.coordinates, "imod_model", rec).tolist() == [
        [10.0, 20.0, 3.0],
        [11.0, 21.0, 4.0],
    ]


def test_relion5_centred_coordinates_in_a_relion_tomogram():
    """rlnCenteredCoordinate c sits at voxel (c/px + W/2.0)/b of RELION's own reconstruction
    (odd W: the half-voxel of relion #1137/#1280 between W/2.0 and int(W/2))."""
    g = TiltGeometry(np.linspace(-60, 60, 41), 85.0, np.full(41, 3e4), pixel_size_a=1.35)
    full = (4001, 3999, 1001)
    rec = Reconstruction(
        g, (500, 500, 125), binning=8, program="relion5", image_shape=(3838, 3710), full_shape=full
    )
    c = np.array([[0.0, 0.0, 0.0], [135.0, -270.0, 13.5]])
    v = particles_to_voxels(c, "relion_centered_a", rec)
    np.testing.assert_allclose(v, (c / 1.35 + np.array(full) / 2.0) / 8, atol=1e-12)
    np.testing.assert_allclose(voxels_to_particles(v, "relion_centered_a", rec), c, atol=1e-9)
    # the extraction projection (about int(W/2)) and the reconstruction agree on the point
    r4 = rec.with_program("warp", volume_shape=(500, 500, 125))
    mapped = remap(v, rec, r4)
    assert np.abs(rec.project(v) - r4.project(mapped.points)).max() < 1e-6
    with pytest.raises(InvalidValueError, match="RELION 5"):
        particles_to_voxels(c, "relion_centered_a", r4)


def test_orientations_follow_axes():
    g = TiltGeometry([0.0, 10, 20], 0.0, [1e4] * 3, pixel_size_a=1.0)
    rec = Reconstruction(
        g,
        (10, 10, 10),
        binning=1,
        program="relion5",
        image_shape=(10, 10),
        axes=[[1, 0, 0], [0, 0, 1], [0, -1, 0]],
    )
    m = rotations(5)
    out = orientations_to_voxels(m, "relion_centered_a", rec)
    np.testing.assert_allclose(np.einsum("ij,njk->nik", rec.axes, out), m, atol=1e-12)
    assert np.array_equal(orientations_to_voxels(m, "voxels", rec), m)


# ---------------------------------------------------------------------------- bad input
def test_bad_particle_files(tmp_path):
    with pytest.raises(UnknownConventionError, match="format"):
        read_particles(tmp_path / "x.csv")
    bad = tmp_path / "b.star"
    bad.write_text("data_particles\n\nloop_\n_rlnTomoName #1\nTS_01\n")
    with pytest.raises(FileFormatError, match="coordinates"):
        read_particles(bad)
    nopx = tmp_path / "c.star"
    nopx.write_text(
        "data_particles\n\nloop_\n_rlnCoordinateX\n_rlnCoordinateY\n_rlnCoordinateZ\n1 2 3\n"
    )
    with pytest.raises(InvalidValueError, match="coords_angpix"):
        read_particles(nopx)
    assert read_particles(nopx, coords_angpix=2.0).coordinates.tolist() == [[2.0, 4.0, 6.0]]
    j = tmp_path / "d.json"
    j.write_text(json.dumps({"nope": 1}))
    with pytest.raises(FileFormatError, match="points"):
        read_particles(j)
    t = tmp_path / "e.txt"
    t.write_text("1 2\n")
    with pytest.raises(FileFormatError, match="3 to 5"):
        read_particles(t)
    n = tmp_path / "f.ndjson"
    n.write_text('{"type": "point"}\n')
    with pytest.raises(FileFormatError, match="location"):
        read_particles(n)
    with pytest.raises(InvalidValueError, match="pixel_size_a"):
        write_particles(tmp_path / "w.star", "warp", [[1, 2, 3]])


# ---------------------------------------------------------------------------- tables x programs
def _recs():
    g = TiltGeometry(
        np.linspace(-60, 60, 41),
        84.0,
        np.full(41, 3e4),
        shifts_a=np.random.default_rng(5).normal(0, 20, (41, 2)),
        pixel_size_a=1.54,
    )
    rel = Reconstruction(
        g, (1023, 1024, 301), binning=4, program="relion5", image_shape=(4095, 4096)
    )
    return {
        "relion5": rel,
        "warp": rel.with_program("warp", binning=8, volume_shape=(512, 512, 151)),
        "imod": rel.with_program(
            "imod", binning=6, volume_shape=(683, 201, 682), axes=[[1, 0, 0], [0, 0, 1], [0, -1, 0]]
        ),
        "portal": rel.with_program("portal", binning=3.25, volume_shape=(1260, 1260, 368)),
        "copick": rel.with_program("portal", binning=3.25, volume_shape=(1260, 1260, 368)),
    }


_EXT = {"relion5": "star", "warp": "star", "imod": "mod", "copick": "json", "portal": "ndjson"}


@pytest.mark.parametrize("a", sorted(FORMAT_FRAMES))
@pytest.mark.parametrize("b", sorted(FORMAT_FRAMES))
def test_tables_through_every_pair_of_programs(tmp_path, a, b):
    """Picks written in program A's table for A's tomogram, read, remapped to B's tomogram,
    written in B's table, read and mapped back: the same voxels (file precision: starfile 6
    decimals, IMOD float32) and orientations."""
    recs = _recs()
    ra, rb = recs[a], recs[b]
    rng = np.random.default_rng(7)
    vox = rng.uniform(0.1, 0.9, (30, 3)) * (np.array(ra.volume_shape) - 1)
    mats = rotations(30, 8)
    from emgeom.tilt._remap import orientations_from_voxels

    def write(rec, form, v, m, path):
        frame = FORMAT_FRAMES[form]
        coords = voxels_to_particles(v, frame, rec)
        mm = None if form == "imod" else orientations_from_voxels(m, frame, rec)
        px = rec.pixel_size_a if form == "relion5" else rec.voxel_size_a
        names = ["TS"] * len(v) if form in ("relion5", "warp") else None
        write_particles(path, form, coords, matrices=mm, tomo_names=names, pixel_size_a=px)

    def read(rec, form, path):
        t = read_particles(path, coords_angpix=rec.voxel_size_a if form == "warp" else None)
        v = particles_to_voxels(t.coordinates, t.frame, rec)
        m = None if t.matrices is None else orientations_to_voxels(t.matrices, t.frame, rec)
        return v, m

    write(ra, a, vox, mats, tmp_path / f"a.{_EXT[a]}")
    va, ma = read(ra, a, tmp_path / f"a.{_EXT[a]}")
    r = remap(va, ra, rb, matrices=ma)
    assert r.exact
    write(
        rb, b, r.points, r.matrices if r.matrices is not None else mats, tmp_path / f"b.{_EXT[b]}"
    )
    vb, mb = read(rb, b, tmp_path / f"b.{_EXT[b]}")
    back = remap(vb, rb, ra, matrices=mb)
    tol = 1e-4 if "imod" in (a, b) else 2e-5
    assert np.abs(back.points - vox).max() < tol
    if "imod" not in (a, b):
        assert np.abs(back.matrices - mats).max() < 1e-5


def test_relion5_origin_and_subtomogram_orientation(tmp_path):
    """ParticleSet::getPosition / getMatrix3x3: position = centred - A_sub·origin, orientation
    A_sub·A_particle."""
    import pandas as pd
    import starfile

    rng = np.random.default_rng(11)
    n = 6
    c = rng.uniform(-500, 500, (n, 3))
    origin = rng.uniform(-5, 5, (n, 3))
    sub = np.stack(
        [rng.uniform(-180, 180, n), rng.uniform(0, 180, n), rng.uniform(-180, 180, n)], 1
    )
    part = np.stack(
        [rng.uniform(-180, 180, n), rng.uniform(0, 180, n), rng.uniform(-180, 180, n)], 1
    )
    df = pd.DataFrame(
        {
            "rlnTomoName": ["TS_01"] * n,
            **{f"rlnCenteredCoordinate{a}Angst": c[:, i] for i, a in enumerate("XYZ")},
            **{f"rlnOrigin{a}Angst": origin[:, i] for i, a in enumerate("XYZ")},
            "rlnTomoSubtomogramRot": sub[:, 0],
            "rlnTomoSubtomogramTilt": sub[:, 1],
            "rlnTomoSubtomogramPsi": sub[:, 2],
            "rlnAngleRot": part[:, 0],
            "rlnAngleTilt": part[:, 1],
            "rlnAnglePsi": part[:, 2],
        }
    )
    p = tmp_path / "particles.star"
    starfile.write({"particles": df}, p)
    t = read_particles(p)
    a_sub = matrices_from_relion(*sub.T)
    a_part = matrices_from_relion(*part.T)
    want = c - np.einsum("nij,nj->ni", a_sub, origin)
    assert t.frame == "relion_centered_a"
    assert np.abs(t.coordinates - want).max() < 1e-5
    assert np.abs(t.matrices - a_sub @ a_part).max() < 1e-6
    assert t.tomo_names == ["TS_01"] * n
