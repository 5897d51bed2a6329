"""remap between reconstructions: exactness for the same alignment, the frame fit otherwise.

The oracle is the projection invariant: a point and its image project to the same raw
tilt-image pixel, tilt by tilt, through the source's and the target's model.
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emgeom import tilt
from emgeom.errors import (
    ImplausibleValueWarning,
    InvalidTypeError,
    InvalidValueError,
    LossyConversionWarning,
    ShapeError,
    UnknownConventionError,
)
from emgeom.model.geometry import angles_from_matrices
from emgeom.model.rotation import matrices_from_relion
from emgeom.tilt import Reconstruction, TiltGeometry, remap
from emgeom.tilt._reconstruction import PROGRAMS

PX = 1.54
IMAGE = (4095, 4096)  # (ny, nx): odd and even axes

# signed permutations: identity, IMOD's un-rotated (x, z, y), a z-flip (mirror), y/z swap
AXES = {
    "xyz": np.eye(3),
    "imod-none": np.array([[1, 0, 0], [0, 0, 1], [0, -1, 0]]),
    "zflip": np.diag([1, 1, -1]),
    "swap-yz": np.array([[1, 0, 0], [0, 0, 1], [0, 1, 0]]),
    "rot-z": np.array([[0, -1, 0], [1, 0, 0], [0, 0, 1]]),
}


def geometry(seed: int = 0, n: int = 41) -> TiltGeometry:
    rng = np.random.default_rng(seed)
    tilt_deg = np.linspace(-60, 60, n) + rng.normal(0, 0.2, n)
    return TiltGeometry(
        tilt_deg,
        85.3 + rng.normal(0, 0.3, n),
        np.full(n, 30000.0),
        x_tilt_deg=rng.normal(0, 1.0, n),
        shifts_a=rng.normal(0, 40.0, (n, 2)),
        pixel_size_a=PX,
    )


def reconstruction(program: str, binning: float, shape_xyz, axes="xyz", g=None) -> Reconstruction:
    f = AXES[axes]
    file_shape = tuple(int(v) for v in np.abs(f.T) @ np.array(shape_xyz))
    return Reconstruction(
        g if g is not None else geometry(),
        file_shape,
        binning=binning,
        program=program,
        image_shape=IMAGE,
        axes=f,
    )


def random_points(rec: Reconstruction, n: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 1, (n, 3)) * (np.array(rec.volume_shape) - 1)


def random_rotations(n: int, seed: int = 2) -> np.ndarray:
    rng = np.random.default_rng(seed)
    q = rng.normal(size=(n, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    w, x, y, z = q.T
    return np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
            np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
            np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1),
        ],
        axis=1,
    )


def assert_invariant(src, tgt, pts, mapped, tol=1e-6):
    d = np.abs(src.project(pts) - tgt.project(mapped)).max()
    assert d <= tol, d


# ---------------------------------------------------------------------------- same alignment
@pytest.mark.parametrize(("p1", "p2"), list(itertools.product(PROGRAMS, PROGRAMS)))
def test_every_program_pair_round_trip_exact(p1, p2):
    src = reconstruction(p1, 4, (1023, 1024, 301))
    tgt = src.with_program(p2, binning=6, volume_shape=(683, 682, 201))
    pts = random_points(src, 500)
    mats = random_rotations(500)
    r = remap(pts, src, tgt, matrices=mats)
    assert r.exact and r.residual_px == 0.0 and r.model == "exact"
    assert_invariant(src, tgt, pts, r.points)
    back = remap(r.points, tgt, src, matrices=r.matrices)
    assert np.abs(back.points - pts).max() <= 1e-6
    assert np.abs(back.matrices - mats).max() <= 1e-12


@settings(max_examples=60, deadline=None)
@given(
    p1=st.sampled_from(PROGRAMS),
    p2=st.sampled_from(PROGRAMS),
    b1=st.integers(1, 8),
    b2=st.integers(1, 8),
    n1=st.tuples(st.integers(50, 700), st.integers(50, 700), st.integers(20, 300)),
    n2=st.tuples(st.integers(50, 700), st.integers(50, 700), st.integers(20, 300)),
    a1=st.sampled_from(sorted(AXES)),
    a2=st.sampled_from(sorted(AXES)),
    seed=st.integers(0, 1000),
)
def test_round_trip_property(p1, p2, b1, b2, n1, n2, a1, a2, seed):
    src = reconstruction(p1, b1, n1, a1, g=geometry(seed))
    f2 = AXES[a2]
    tgt = src.with_program(
        p2, binning=b2, axes=f2, volume_shape=tuple(int(v) for v in np.abs(f2.T) @ np.array(n2))
    )
    pts = random_points(src, 50, seed)
    mats = random_rotations(50, seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LossyConversionWarning)  # mirrored pairs
        r = remap(pts, src, tgt, matrices=mats)
        back = remap(r.points, tgt, src, matrices=r.matrices)
    assert r.exact
    assert_invariant(src, tgt, pts, r.points)
    assert np.abs(back.points - pts).max() <= 1e-6
    assert np.abs(back.matrices - mats).max() <= 1e-9
    # orientations are physical: canonical rotation F·M equal (mirror: reference z-mirrored)
    mirror = np.linalg.det(src.axes) * np.linalg.det(tgt.axes) < 0
    d = np.diag([1.0, 1.0, -1.0]) if mirror else np.eye(3)
    lhs = np.einsum("ij,njk->nik", tgt.axes, r.matrices)
    rhs = np.einsum("ij,njk->nik", src.axes, mats) @ d
    assert np.abs(lhs - rhs).max() <= 1e-9


def test_binning_and_centres_by_hand():
    """RELION 5 odd size: voxel j at unbinned j*b, centre int(W/2); Warp: W/2."""
    g = geometry()
    rel = Reconstruction(g, (5, 5, 5), binning=1, program="relion5", image_shape=(11, 11))
    assert rel.centre_vox.tolist() == [2.0, 2.0, 2.0]
    assert rel.image_centre_px.tolist() == [5.0, 5.0]
    warp = Reconstruction(g, (5, 5, 5), binning=1, program="warp", image_shape=(11, 11))
    assert warp.centre_vox.tolist() == [2.5, 2.5, 2.5]
    assert warp.image_centre_px.tolist() == [5.5, 5.5]
    imod = Reconstruction(g, (5, 5, 5), binning=1, program="imod", image_shape=(11, 11))
    assert imod.centre_vox.tolist() == [2.0, 2.0, 2.0]
    assert imod.image_centre_px.tolist() == [5.0, 5.0]
    # RELION binned: centre int(W/2)/b from the unbinned size
    rel8 = Reconstruction(
        g,
        (500, 500, 250),
        binning=8,
        program="relion5",
        image_shape=IMAGE,
        full_shape=(4001, 4000, 2001),
    )
    assert rel8.centre_vox.tolist() == [2000 / 8, 2000 / 8, 1000 / 8]
    # the untilted projection of the centre voxel is the image centre plus the shift
    flat = TiltGeometry([0.0], 0.0, [1e4], shifts_a=[[PX * 3, -PX * 2]], pixel_size_a=PX)
    r = Reconstruction(flat, (9, 9, 9), binning=1, program="relion5", image_shape=(8, 8))
    assert r.project([[4, 4, 4]])[0, 0].tolist() == [4 + 3, 4 - 2]
    assert r.project([[5, 4, 7]])[0, 0].tolist() == [5 + 3, 4 - 2]


def test_with_program_keeps_every_projection():
    src = reconstruction("imod", 3, (1365, 1365, 401), "imod-none")
    for p in PROGRAMS:
        tgt = src.with_program(p)
        assert tgt.program == p
        assert np.array_equal(tgt.axes, src.axes)
        pts = random_points(src, 100)
        same = tgt.alignment_a_to_voxels(src.voxels_to_alignment_a(pts))
        assert np.abs(src.project(pts) - tgt.project(same)).max() < 1e-9


# ---------------------------------------------------------------------------- other alignments
def transformed_geometry(g: TiltGeometry, q: np.ndarray, d: np.ndarray) -> TiltGeometry:
    """The alignment in which p2 = Q·p1 + d projects like p1 did (exactly)."""
    r2 = g.rotation_matrices() @ q.T
    tilt_deg, axis, xt = angles_from_matrices(r2)
    s2 = np.asarray(g.shifts_a) - (r2 @ d)[:, :2]
    return TiltGeometry(tilt_deg, axis, g.defocus_a, x_tilt_deg=xt, shifts_a=s2, pixel_size_a=PX)


def rot(axis, deg):
    a = np.radians(deg)
    k = np.array(axis, float) / np.linalg.norm(axis)
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(a) * kx + (1 - np.cos(a)) * kx @ kx


@pytest.mark.parametrize("model", ["rigid", "similarity", "affine"])
def test_fit_recovers_known_rigid_frame_map(model):
    g1 = geometry(3)
    q, d = rot([0.3, -0.2, 1.0], 2.5), np.array([120.0, -80.0, 45.0])
    src = reconstruction("warp", 8, (512, 512, 190), g=g1)
    tgt = Reconstruction(
        transformed_geometry(g1, q, d),
        (512, 512, 190),
        binning=8,
        program="warp",
        image_shape=IMAGE,
    )
    pts = random_points(src, 300)
    r = remap(pts, src, tgt, model=model)
    assert not r.exact
    assert r.residual_px < 1e-6 and r.residual_max_px < 1e-5
    np.testing.assert_allclose(r.transform[:3, :3], q, atol=1e-8)
    np.testing.assert_allclose(r.transform[:3, 3], d, atol=1e-5)
    assert_invariant(src, tgt, pts, r.points, tol=1e-5)


def test_noisy_second_alignment_residual_is_honest():
    g1 = geometry(4)
    rng = np.random.default_rng(5)
    g2 = transformed_geometry(g1, rot([0, 0, 1], 1.0), np.array([30.0, 0, 0]))
    noise_px = rng.normal(0, 1.0, (g2.n_tilts, 2))
    g2 = g2.replace(shifts_a=np.asarray(g2.shifts_a) + noise_px * PX)
    src = reconstruction("aretomo3", 8, (512, 512, 190), g=g1)
    tgt = Reconstruction(g2, (512, 512, 190), binning=8, program="aretomo3", image_shape=IMAGE)
    r = remap([[256, 256, 95]], src, tgt)
    # a per-tilt shift the rigid map cannot absorb: rms close to the noise (1.41 px in 2-D)
    assert 0.8 < r.residual_px < 1.6
    assert r.residual_per_tilt_px.shape == (41,)


def test_different_tilt_series_refused():
    src = reconstruction("warp", 8, (512, 512, 190), g=geometry(6))
    rng = np.random.default_rng(7)
    other = geometry(8).replace(shifts_a=rng.normal(0, 300 * PX, (41, 2)))
    tgt = Reconstruction(other, (512, 512, 190), binning=8, program="warp", image_shape=IMAGE)
    with pytest.raises(InvalidValueError, match="disagree by"):
        remap([[1, 2, 3]], src, tgt)
    far = TiltGeometry([70.0, 75.0, 80.0], 0.0, [0, 0, 0], pixel_size_a=PX)
    tgt2 = Reconstruction(far, (512, 512, 190), binning=8, program="warp", image_shape=IMAGE)
    with pytest.raises(InvalidValueError, match="pair"):
        remap([[1, 2, 3]], src, tgt2)


def test_moderate_residual_warns():
    g1 = geometry(9)
    rng = np.random.default_rng(10)
    g2 = g1.replace(shifts_a=np.asarray(g1.shifts_a) + rng.normal(0, 4 * PX, (41, 2)))
    src = reconstruction("warp", 8, (512, 512, 190), g=g1)
    tgt = Reconstruction(g2, (512, 512, 190), binning=8, program="warp", image_shape=IMAGE)
    with pytest.warns(ImplausibleValueWarning, match="residual"):
        r = remap([[1, 2, 3]], src, tgt)
    assert 3 < r.residual_px < 8


# ---------------------------------------------------------------------------- flags and bad input
def test_points_outside_flagged():
    src = reconstruction("relion5", 4, (1024, 1024, 300))
    tgt = src.with_program("warp", binning=4, volume_shape=(512, 512, 100))  # a smaller box
    r = remap([[512, 512, 150], [10, 10, 10], [-5, 3, 3]], src, tgt)
    assert r.inside.tolist() == [True, False, False]
    assert r.n_outside == 2
    assert any("outside" in n for n in r.notes)


def test_bad_input():
    src = reconstruction("relion5", 4, (100, 100, 30))
    with pytest.raises(InvalidTypeError, match="target"):
        remap([[1, 2, 3]], src, "x")
    with pytest.raises(ShapeError, match="points"):
        remap([[1, 2]], src, src)
    with pytest.raises(InvalidValueError, match="points"):
        remap([[1, 2, np.nan]], src, src)
    # the float64 fast path is checked row by row in the Rust kernel
    with pytest.raises(InvalidValueError, match=r"points: row 1 .* voxels"):
        remap(np.array([[1.0, 2, 3], [np.inf, 1, 1]]), src, src)
    assert remap(np.zeros((0, 3)), src, src).points.shape == (0, 3)
    with pytest.raises(UnknownConventionError, match="model"):
        remap([[1, 2, 3]], src, src, model="spline")
    with pytest.raises(InvalidValueError, match="matrices"):
        remap([[1, 2, 3]], src, src, matrices=np.eye(3)[None] * 2)
    with pytest.raises(InvalidValueError, match="matrices"):
        remap([[1, 2, 3], [4, 5, 6]], src, src, matrices=np.eye(3)[None])
    with pytest.raises(InvalidValueError, match="tilt_pairs"):
        remap([[1, 2, 3]], src, src, tilt_pairs=[[0, 99]])
    g = geometry()
    with pytest.raises(UnknownConventionError, match="program"):
        Reconstruction(g, (10, 10, 10), binning=1, program="eman", image_shape=(10, 10))
    with pytest.raises(UnknownConventionError, match="centre"):
        Reconstruction(g, (10, 10, 10), binning=1, image_shape=(10, 10), centre="middle")
    with pytest.raises(InvalidValueError, match="image_shape"):
        Reconstruction(g, (10, 10, 10), binning=1)
    with pytest.raises(InvalidValueError, match="voxel_size_a, binning"):
        Reconstruction(g, (10, 10, 10), image_shape=(10, 10))
    with pytest.raises(ShapeError, match="volume_shape"):
        Reconstruction(g, (10, 10), binning=1, image_shape=(10, 10))
    with pytest.raises(InvalidValueError, match="volume_shape"):
        Reconstruction(g, (10, 10, 0), binning=1, image_shape=(10, 10))
    with pytest.raises(InvalidValueError, match="axes"):
        Reconstruction(g, (10, 10, 10), binning=1, image_shape=(10, 10), axes=np.ones((3, 3)))
    with pytest.raises(InvalidValueError, match="binning"):
        Reconstruction(g, (10, 10, 10), binning=2, voxel_size_a=PX * 3, image_shape=(10, 10))
    nopx = TiltGeometry([0.0, 10.0, 20.0], 0.0, [0, 0, 0])
    with pytest.raises(InvalidValueError, match="pixel_size_a"):
        Reconstruction(nopx, (10, 10, 10), binning=1, image_shape=(10, 10))


def test_mirror_orientation_warning():
    src = reconstruction("warp", 2, (100, 100, 40))
    tgt = src.with_program("imod", axes=AXES["zflip"])
    m = matrices_from_relion([10.0], [20.0], [30.0])
    with pytest.warns(LossyConversionWarning, match="mirror"):
        r = remap([[5, 5, 5]], src, tgt, matrices=m)
    assert np.linalg.det(r.matrices[0]) == pytest.approx(1.0)


def test_public_names():
    for name in (
        "Reconstruction",
        "RemapResult",
        "remap",
        "pair_tilts",
        "particles_to_voxels",
        "voxels_to_particles",
        "orientations_to_voxels",
        "orientations_from_voxels",
        "matrices_from_relion",
        "relion_from_matrices",
    ):
        assert name in tilt.__all__ and callable(getattr(tilt, name))
