"""Canonical tilt model: design note handedness.md §6 scenarios T1–T12, kernel vs reference."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emgeom import errors
from emgeom.reference import defocus as ref
from emgeom.tilt import (
    TiltGeometry,
    angles_from_matrices,
    particle_defocus,
    project,
    rotation_matrices,
    voxels_to_centered_a,
)

D0 = 30000.0


def df(g: TiltGeometry, p) -> float:
    return float(particle_defocus(g, p, dtype=np.float64)[0, 0])


# ---------------------------------------------------------------- replicas of other programs
def warp_euler(rot: float, tilt: float, psi: float) -> np.ndarray:
    """Warp WarpLib/Tools/Matrix3.cs Matrix3.Euler, element by element (radians)."""
    ca, cb, cg = math.cos(rot), math.cos(tilt), math.cos(psi)
    sa, sb, sg = math.sin(rot), math.sin(tilt), math.sin(psi)
    cc, cs, sc, ss = cb * ca, cb * sa, sb * ca, sb * sa
    return np.array(
        [
            [cg * cc - sg * sa, cg * cs + sg * ca, -cg * sb],
            [-sg * cc - cg * sa, -sg * cs + cg * ca, sg * sb],
            [sc, ss, cb],
        ]
    )


def warp_rotate_x(a: float) -> np.ndarray:
    """Matrix3.RotateX: new Matrix3(1,0,0, 0,c,s, 0,-s,c) with column-major arguments."""
    c, s = math.cos(a), math.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def warp_tilt_matrix(angle_deg, axis_deg, ly_deg=0.0, lx_deg=0.0, inverted=False):
    """TiltSeries.GetPositionInAllTilts: Euler(0, Angle+LevelAngleY, -axis)·RotateX(LevelAngleX);
    inverted branch uses the negated tilt and level-X angles (applied to (x, y, -z))."""
    sgn = -1.0 if inverted else 1.0
    return warp_euler(
        0.0, sgn * math.radians(angle_deg + ly_deg), -math.radians(axis_deg)
    ) @ warp_rotate_x(sgn * math.radians(lx_deg))


def warp_defocus_um(angle_deg, axis_deg, d_um, p, inverted, ly=0.0, lx=0.0):
    """Warp's per-particle defocus (µm): D + 1e-4·z'_W (inverted: z' of the (x,y,-z) branch)."""
    p = np.asarray(p, float)
    if inverted:
        z = (warp_tilt_matrix(angle_deg, axis_deg, ly, lx, True) @ (p * [1, 1, -1]))[2]
    else:
        z = (warp_tilt_matrix(angle_deg, axis_deg, ly, lx) @ p)[2]
    return d_um + 1e-4 * z


def relion_defocus(proj_z, p, hand, d=D0, slope=1.0, pixel=1.0):
    """RELION tomogram.cpp Tomogram::getCtf: Δf + hand·pixel·slope·(ProjZ·(pos − centre))."""
    return d + hand * pixel * slope * float(np.dot(proj_z[:3], p))


def pytom_defocus(theta_deg, p, handedness, d=D0):
    """pytom-match-pick tmjob.py get_defocus_offsets: z·cosθ + x·sinθ, θ negated if hand < 0."""
    t = math.radians(theta_deg) * (-1 if handedness < 0 else 1)
    return d + p[2] * math.cos(t) + p[0] * math.sin(t)


def ctfphaseflip_defocus(theta_deg, u, invert=False, d=D0):
    """IMOD ctfphaseflip strip defocus: Δf + u·tan(±θ) at image distance u right of the axis
    (planar specimen: u = x·cosθ for a point at z = 0)."""
    t = math.radians(-theta_deg if invert else theta_deg)
    return d + u * math.tan(t)


# ---------------------------------------------------------------- T1–T4
def test_t1_depth_only():
    p = [0, 0, 500]
    g = TiltGeometry([60.0], 0.0, D0, hand=+1)
    assert g.depth(p)[0, 0] == pytest.approx(250.0)
    assert df(g, p) == pytest.approx(29750.0)
    assert df(g.with_hand(-1), p) == pytest.approx(30250.0)
    # RELION: ProjZ = row 3 of R, hand -1 -> 29750, +1 -> 30250
    r3 = g.depth_rows()[0]
    assert relion_defocus(r3, p, -1) == pytest.approx(29750.0)
    assert relion_defocus(r3, p, +1) == pytest.approx(30250.0)
    assert g.relion_hand == -1 and g.with_hand(-1).relion_hand == +1
    # Warp: Angle = -60; inverted False -> 3.0250 µm, True -> 2.9750 µm
    assert warp_defocus_um(-60, 0, 3.0, p, False) == pytest.approx(3.0250)
    assert warp_defocus_um(-60, 0, 3.0, p, True) == pytest.approx(2.9750)
    assert g.warp_angles_inverted is True and g.with_hand(-1).warp_angles_inverted is False
    # pytom: z-term identical for both settings
    assert pytom_defocus(60, p, +1) == pytest.approx(30250.0)
    assert pytom_defocus(60, p, -1) == pytest.approx(30250.0)


def test_t2_x_only():
    p = [1000, 0, 0]
    g = TiltGeometry([60.0], 0.0, D0)
    assert g.depth(p)[0, 0] == pytest.approx(-866.0254, abs=1e-3)
    assert project(g, p)[0, 0, 0] == pytest.approx(500.0)  # right of the axis
    assert df(g, p) == pytest.approx(30866.0254, abs=1e-3)
    assert df(g.with_hand(-1), p) == pytest.approx(29133.9746, abs=1e-3)
    assert relion_defocus(g.depth_rows()[0], p, -1) == pytest.approx(30866.0254, abs=1e-3)
    assert warp_defocus_um(-60, 0, 3.0, p, False) * 1e4 == pytest.approx(29133.9746, abs=1e-3)
    assert warp_defocus_um(-60, 0, 3.0, p, True) * 1e4 == pytest.approx(30866.0254, abs=1e-3)
    assert ctfphaseflip_defocus(60, 500.0) == pytest.approx(df(g, p), abs=1e-6)
    assert ctfphaseflip_defocus(60, 500.0, invert=True) == pytest.approx(
        df(g.with_hand(-1), p), abs=1e-6
    )
    assert g.ctfphaseflip_invert is False and g.with_hand(-1).ctfphaseflip_invert is True
    assert pytom_defocus(60, p, +1) == pytest.approx(30866.0254, abs=1e-3)
    assert pytom_defocus(60, p, -1) == pytest.approx(29133.9746, abs=1e-3)


def test_t3_mixed_and_pytom_inconsistency():
    p = [1000, 0, 500]
    g = TiltGeometry([60.0], 0.0, D0)
    assert df(g, p) == pytest.approx(30616.0254, abs=1e-3)
    assert df(g.with_hand(-1), p) == pytest.approx(29383.9746, abs=1e-3)
    # pytom +1 matches neither canonical hand; -1 matches h = -1 exactly
    assert pytom_defocus(60, p, +1) == pytest.approx(31116.0254, abs=1e-3)
    assert pytom_defocus(60, p, -1) == pytest.approx(df(g.with_hand(-1), p), abs=1e-6)
    with pytest.warns(errors.LossyConversionWarning, match="pytom"):
        assert g.pytom_hand == +1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert g.with_hand(-1).pytom_hand == -1


def test_t4_rotated_axis():
    g = TiltGeometry([60.0], 85.0, D0)
    q = project(g, [1000, 0, 0])[0, 0]
    assert q == pytest.approx([43.578, 498.097], abs=1e-3)
    assert df(g, [1000, 0, 0]) == pytest.approx(30866.0254, abs=1e-3)
    # the defocus gradient in the raw image points along (cos ψ, sin ψ) (CTFFIND5 φ = 90° − ψ
    # for h·sign(θ) = +1, design §2.5): moving 1 Å along it raises defocus by tanθ·h
    pts = np.array([[0.0, 0, 0], [100.0, 0, 0]])
    d = particle_defocus(g, pts, dtype=np.float64)[:, 0]
    qq = project(g, pts)[:, 0]
    grad_dir = (qq[1] - qq[0]) / np.linalg.norm(qq[1] - qq[0])
    assert grad_dir == pytest.approx([math.cos(math.radians(85)), math.sin(math.radians(85))])
    assert (d[1] - d[0]) / np.linalg.norm(qq[1] - qq[0]) == pytest.approx(math.tan(math.pi / 3))


# ---------------------------------------------------------------- T5–T6
@settings(max_examples=40, deadline=None)
@given(
    st.floats(-70, 70),
    st.floats(-180, 180),
    st.floats(-10, 10),
    st.floats(-10, 10),
)
def test_t5_warp_rotation_identity(angle, axis, ly, lx):
    w = warp_tilt_matrix(angle, axis, ly, lx)
    c = rotation_matrices(-(angle + ly), axis, lx)[0]
    np.testing.assert_allclose(w, c, atol=1e-12)
    # inverted branch: XY unchanged, z' negated exactly
    p = np.array([123.0, -456.0, 789.0])
    wi = warp_tilt_matrix(angle, axis, ly, lx, inverted=True) @ (p * [1, 1, -1])
    np.testing.assert_allclose(wi[:2], (w @ p)[:2], atol=1e-9)
    assert wi[2] == pytest.approx(-(w @ p)[2], abs=1e-9)


def test_t6_axis_180_identity():
    rng = np.random.default_rng(6)
    tilt = rng.uniform(-60, 60, 9)
    axis = rng.uniform(-180, 180, 9)
    xt = rng.uniform(-5, 5, 9)
    g = TiltGeometry(
        tilt,
        axis,
        D0 + rng.uniform(-500, 500, 9),
        x_tilt_deg=xt,
        shifts_a=rng.normal(0, 50, (9, 2)),
        hand=+1,
    )
    # Rz(ψ+180)·Ry(θ) == Rz(ψ)·Ry(−θ)·Rz(180)
    lhs = rotation_matrices(tilt, axis + 180, 0.0)
    rhs = rotation_matrices(-tilt, axis, 0.0) @ rotation_matrices(0.0, 180.0, 0.0)
    np.testing.assert_allclose(lhs, rhs, atol=1e-12)
    g2 = g.rotate_axis_180()
    assert g2.hand == -1 and g2.relion_hand == +1
    p = rng.uniform(-3000, 3000, (20, 3))
    # same images: p of g is −p of g2; same defocus; depth flips
    np.testing.assert_allclose(project(g2, -p), project(g, p), atol=1e-8)
    np.testing.assert_allclose(g2.depth(-p), -g.depth(p), atol=1e-8)
    np.testing.assert_allclose(
        particle_defocus(g2, -p, dtype=np.float64),
        particle_defocus(g, p, dtype=np.float64),
        atol=1e-8,
    )
    # keeping the hand would be a 2|z'| error
    bad = particle_defocus(g2.with_hand(+1), -p, dtype=np.float64)
    np.testing.assert_allclose(
        np.abs(bad - particle_defocus(g, p, dtype=np.float64)), 2 * np.abs(g.depth(p)), atol=1e-6
    )
    assert np.all((g2.axis_deg >= -180) & (g2.axis_deg < 180))


# ---------------------------------------------------------------- T7–T8
def test_t7_warp_hand_check_replication():
    """ts_defocus_hand --check: assumed gradient (flag forced False) vs measured gradient."""
    x_vol = 6000.0
    left, right = np.array([-x_vol / 2, 0, 0]), np.array([x_vol / 2, 0, 0])
    tilts = np.arange(-60, 61, 3.0)
    for h, expected in ((+1, -1.0), (-1, +1.0)):
        g = TiltGeometry(tilts, 85.0, D0, hand=h)
        measured = particle_defocus(g, np.stack([left, right]), dtype=np.float64)
        meas_grad = measured[1] - measured[0]  # Å
        angles_w = -tilts  # Warp default import: Angle = -θ_C
        assumed = np.array(
            [
                warp_defocus_um(a, 85.0, 0.0, right, False)
                - warp_defocus_um(a, 85.0, 0.0, left, False)
                for a in angles_w
            ]
        )
        corr = np.corrcoef(meas_grad, assumed)[0, 1]
        assert corr == pytest.approx(expected, abs=1e-9)
        # "flip" (negative) <=> AreAnglesInverted=True <=> h = +1
        assert (corr < 0) == g.warp_angles_inverted
    # magnitude at 60°: X·sin θ = 0.52 µm
    g = TiltGeometry([60.0], 0.0, D0)
    grad = np.diff(particle_defocus(g, np.stack([left, right]), dtype=np.float64)[:, 0])[0]
    assert abs(grad) == pytest.approx(5196.15, abs=0.01)


def test_t8_warp_to_relion_round_trip_exposes_export_sign():
    """AreAnglesInverted=False, Warp Angle −60, particle x=+1000 Å."""
    p = np.array([1000.0, 0, 0])
    warp_df = warp_defocus_um(-60.0, 0.0, 3.0, p, False) * 1e4
    assert warp_df == pytest.approx(29133.97, abs=0.01)
    proj_z = warp_tilt_matrix(-60.0, 0.0)[2]  # ProjZ written by ExportParticlesTiltseries
    assert relion_defocus(proj_z, p, +1) == pytest.approx(warp_df, abs=1e-6)
    # Warp's exported rlnTomoHand (GetRelionHand(False) = -1) gives the other side
    assert relion_defocus(proj_z, p, -1) == pytest.approx(30866.03, abs=0.01)
    # emgeom's own export of this geometry writes +1
    g = TiltGeometry([60.0], 0.0, D0, hand=-1)
    assert g.warp_angles_inverted is False and g.relion_hand == +1
    assert df(g, p) == pytest.approx(warp_df, abs=1e-6)


# ---------------------------------------------------------------- T9–T12
def test_t9_mirrors():
    rng = np.random.default_rng(9)
    tilt = rng.uniform(-60, 60, 7)
    g = TiltGeometry(
        tilt,
        rng.uniform(-180, 180, 7),
        D0,
        x_tilt_deg=rng.uniform(-4, 4, 7),
        shifts_a=rng.normal(0, 30, (7, 2)),
        hand=+1,
    )
    p = rng.uniform(-2000, 2000, (15, 3))
    # x-mirror of images + volume: z' and Δf unchanged, images mirrored in x, hand unchanged
    gm = g.mirror_x()
    pm = p * [-1, 1, 1]
    assert gm.hand == g.hand
    np.testing.assert_allclose(gm.depth(pm), g.depth(p), atol=1e-8)
    np.testing.assert_allclose(
        particle_defocus(gm, pm, dtype=np.float64),
        particle_defocus(g, p, dtype=np.float64),
        atol=1e-8,
    )
    q, qm = project(g, p), project(gm, pm)
    np.testing.assert_allclose(qm[..., 0], -q[..., 0], atol=1e-8)
    np.testing.assert_allclose(qm[..., 1], q[..., 1], atol=1e-8)
    # θ → −θ alone: z-mirror; z' → −z', so h flips to keep the defocus
    gi = g.invert_tilt_angles()
    pz = p * [1, 1, -1]
    assert gi.hand == -g.hand
    np.testing.assert_allclose(gi.tilt_deg, -g.tilt_deg)
    np.testing.assert_allclose(gi.depth(pz), -g.depth(p), atol=1e-8)
    np.testing.assert_allclose(project(gi, pz), project(g, p), atol=1e-8)
    np.testing.assert_allclose(
        particle_defocus(gi, pz, dtype=np.float64),
        particle_defocus(g, p, dtype=np.float64),
        atol=1e-8,
    )
    # operations compose to identities
    np.testing.assert_allclose(g.mirror_x().mirror_x().tilt_deg, g.tilt_deg)
    assert g.invert_tilt_angles().invert_tilt_angles().hand == g.hand
    assert g.rotate_axis_180().rotate_axis_180().hand == g.hand
    np.testing.assert_allclose(
        g.rotate_axis_180().rotate_axis_180().rotation_matrices(),
        g.rotation_matrices(),
        atol=1e-12,
    )


def test_t10_magnitude():
    g = TiltGeometry([60.0], 0.0, D0)
    # flat specimen, 4000 px × 1.5 Å: image edge at u = 3000 Å ⇒ x = u / cos θ
    x = 3000.0 / math.cos(math.pi / 3)
    d = particle_defocus(g, [[x, 0, 0], [-x, 0, 0]], dtype=np.float64)[:, 0] - D0
    assert d == pytest.approx([5196.15, -5196.15], abs=0.01)
    wrong = particle_defocus(g.with_hand(-1), [[x, 0, 0]], dtype=np.float64)[0, 0] - D0
    assert abs(d[0] - wrong) == pytest.approx(10392.3, abs=0.1)


def test_t11_centre_conventions_odd_sizes():
    # RELION depth reference w0/2.0 (float) == canonical N/2, odd sizes included
    shape = (4001, 3999, 1001)
    centre_px = np.array(shape) / 2.0
    p_px = np.array([[100.0, 2000.0, 700.0]])
    np.testing.assert_allclose(voxels_to_centered_a(p_px, shape, 1.0), p_px - centre_px)
    floor = voxels_to_centered_a(p_px, shape, 1.0, convention="floor")
    np.testing.assert_allclose(floor - (p_px - centre_px), [[0.5, 0.5, 0.5]])
    imod = voxels_to_centered_a(p_px + 1, shape, 2.0, convention="imod")
    np.testing.assert_allclose(imod, (p_px - (np.array(shape) - 1) / 2) * 2.0)
    with pytest.raises(errors.InvalidValueError, match="convention"):
        voxels_to_centered_a(p_px, shape, 1.0, convention="centre")


def test_t12_aretomo3_hand_rule():
    from emgeom.io.aretomo import aretomo3_hand

    assert aretomo3_hand(+1, axis_refined=True) == -1
    assert aretomo3_hand(-1, axis_refined=True) == -1
    assert aretomo3_hand(-1, axis_refined=False) == +1
    assert aretomo3_hand(+1, axis_refined=False) == -1


# ---------------------------------------------------------------- kernel vs reference
@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(0, 300),
    t=st.integers(1, 45),
    hand=st.sampled_from([1, -1]),
    slope=st.floats(0.5, 2.0),
    seed=st.integers(0, 2**31),
)
def test_rust_equals_reference(n, t, hand, slope, seed):
    rng = np.random.default_rng(seed)
    tilt = rng.uniform(-70, 70, t)
    axis = rng.uniform(-180, 180, t)
    xt = rng.uniform(-10, 10, t)
    d0 = rng.uniform(5000, 50000, t)
    g = TiltGeometry(tilt, axis, d0, x_tilt_deg=xt, hand=hand, defocus_slope=slope)
    p = rng.uniform(-8000, 8000, (n, 3))
    want = ref.particle_defocus(p, tilt, axis, d0, hand, x_tilt_deg=xt, defocus_slope=slope)
    got64 = particle_defocus(g, p, dtype=np.float64)
    np.testing.assert_allclose(got64, want, rtol=0, atol=1e-7)
    got32 = particle_defocus(g, p, n_threads=1)
    assert got32.dtype == np.float32
    np.testing.assert_allclose(got32, want, rtol=0, atol=0.05)
    q = project(g, p)
    np.testing.assert_allclose(q, ref.project(p, tilt, axis, x_tilt_deg=xt), atol=1e-7)


def test_large_output_streaming_path_and_out_argument():
    rng = np.random.default_rng(1)
    g = TiltGeometry(np.linspace(-60, 60, 41), 85.0, rng.uniform(2e4, 4e4, 41), hand=-1)
    p = rng.uniform(-5000, 5000, (70_000, 3))  # 11.5 MB of float32: streaming stores
    out = np.full((70_000, 41), np.nan, dtype=np.float32)
    res = particle_defocus(g, p, out=out)
    assert res is out
    want = ref.particle_defocus(p, g.tilt_deg, g.axis_deg, g.defocus_a, -1)
    np.testing.assert_allclose(out, want, atol=0.05)
    # misaligned (4-byte offset) C-contiguous output: unaligned head + aligned streaming body
    flat = np.full(70_000 * 41 + 1, np.nan, dtype=np.float32)
    shifted = flat[1:].reshape(70_000, 41)
    particle_defocus(g, p, out=shifted)
    assert np.isnan(flat[0])
    np.testing.assert_array_equal(shifted, out)  # bit-identical to the aligned run
    # small (non-streaming) run of the first rows gives the same bits
    np.testing.assert_array_equal(particle_defocus(g, p[:100]), out[:100])
    out64 = np.empty((70_000, 41))
    particle_defocus(g, p, out=out64, n_threads=2)
    np.testing.assert_allclose(out64, want, atol=1e-7)


def test_angles_round_trip_from_matrices():
    rng = np.random.default_rng(3)
    t, a, x = rng.uniform(-70, 70, 20), rng.uniform(-179, 179, 20), rng.uniform(-20, 20, 20)
    t2, a2, x2 = angles_from_matrices(rotation_matrices(t, a, x))
    np.testing.assert_allclose(t2, t, atol=1e-9)
    np.testing.assert_allclose(a2, a, atol=1e-9)
    np.testing.assert_allclose(x2, x, atol=1e-9)


# ---------------------------------------------------------------- bad input
def test_bad_input_errors():
    with pytest.raises(errors.ShapeError, match=r"axis_deg.*3 per-tilt"):
        TiltGeometry([0, 10, 20], [1, 2], D0)
    with pytest.raises(errors.InvalidValueError, match=r"tilt_deg.*finite"):
        TiltGeometry([0, np.nan], 0, D0)
    with pytest.raises(errors.InvalidValueError, match="hand"):
        TiltGeometry([0], 0, D0, hand=0)
    with pytest.raises(errors.InvalidValueError, match="hand"):
        TiltGeometry([0], 0, D0, hand=2)
    with pytest.raises(errors.InvalidTypeError, match="hand"):
        TiltGeometry([0], 0, D0, hand="imod")
    with pytest.raises(errors.InvalidValueError, match="defocus_slope"):
        TiltGeometry([0], 0, D0, defocus_slope=0)
    with pytest.raises(errors.InvalidValueError, match="defocus_u_a"):
        TiltGeometry([0], 0, D0, defocus_u_a=[1.0])
    with pytest.raises(errors.InvalidValueError, match=r"tilt_deg.*90"):
        TiltGeometry([95.0], 0, D0)
    with pytest.raises(errors.ShapeError, match="shifts_a"):
        TiltGeometry([0, 1], 0, D0, shifts_a=np.zeros((3, 2)))
    g = TiltGeometry([0, 10], 0, D0)
    with pytest.raises(errors.ShapeError, match=r"positions_a.*\(N, 3\)"):
        particle_defocus(g, np.zeros((5, 2)))
    with pytest.raises(errors.InvalidValueError, match=r"positions_a.*NaN"):
        particle_defocus(g, [[0, 0, np.nan]])
    # float32/float64 arrays are validated inside the Rust tasks: same errors, naming the
    # first bad row, for NaN, inf and |p| > 1e9 Å, in particle_defocus and project alike
    big = np.zeros((50_000, 3))
    for row, bad in ((41_234, np.nan), (7, -np.inf), (49_999, 2e9)):
        p = big.copy()
        p[row, 1] = bad
        p[row + 1 :: 997, 0] = np.nan  # later bad rows are not the one reported
        for fn in (particle_defocus, project):
            with pytest.raises(errors.InvalidValueError, match=rf"positions_a: row {row} .*NaN"):
                fn(g, p)
        with pytest.raises(errors.InvalidValueError, match=rf"positions_a: row {row} "):
            particle_defocus(g, p.astype(np.float32))  # widened, then checked in Rust
    big[:, 2] = 1e9  # the bound itself is fine
    assert np.isfinite(particle_defocus(g, big)).all()
    with pytest.raises(errors.ShapeError, match="out"):
        particle_defocus(g, np.zeros((5, 3)), out=np.empty((5, 3), np.float32))
    with pytest.raises(errors.InvalidTypeError, match="out"):
        particle_defocus(g, np.zeros((5, 3)), out=np.empty((5, 2), np.int32))
    with pytest.raises(errors.InvalidValueError, match="C-contiguous"):
        particle_defocus(g, np.zeros((5, 3)), out=np.empty((2, 5), np.float32).T)
    ro = np.empty((5, 2), np.float32)
    ro.setflags(write=False)
    with pytest.raises(errors.InvalidValueError, match="writeable"):
        particle_defocus(g, np.zeros((5, 3)), out=ro)
    with pytest.raises(errors.InvalidTypeError, match="dtype"):
        particle_defocus(g, np.zeros((5, 3)), dtype=np.int16)
    with pytest.raises(errors.InvalidValueError, match="component"):
        particle_defocus(g, np.zeros((5, 3)), component="u")
    with pytest.raises(errors.InvalidTypeError, match="geometry"):
        particle_defocus("TS_01", np.zeros((5, 3)))
    with pytest.raises(errors.InvalidValueError, match="n_threads"):
        particle_defocus(g, np.zeros((5, 3)), n_threads=0)


def test_defocus_in_wrong_units_warns():
    with pytest.warns(errors.ImplausibleValueWarning, match="µm"):
        TiltGeometry([0.0, 3.0], 0.0, [2.5, 2.6])  # µm passed as Å
    with pytest.warns(errors.ImplausibleValueWarning, match="50 µm"):
        TiltGeometry([0.0], 0.0, 2.5e7)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        TiltGeometry([0.0], 0.0, 0.0)  # no CTF yet: fine
        TiltGeometry([0.0], 0.0, 25000.0)


def test_attributes_and_astigmatism():
    g = TiltGeometry(
        [-3.0, 0.0, 3.0],
        85.0,
        None,
        defocus_u_a=[3e4, 3.1e4, 3.2e4],
        defocus_v_a=[2.9e4, 3.0e4, 3.1e4],
        astigmatism_deg=17.0,
        volume_shape=(4000, 4000, 2000),
        pixel_size_a=1.35,
    )
    np.testing.assert_allclose(g.defocus_a, [2.95e4, 3.05e4, 3.15e4])
    np.testing.assert_allclose(g.axis_deg, [85.0] * 3)
    assert g.astigmatism_deg is not None and g.astigmatism_deg.tolist() == [17.0] * 3
    with pytest.raises(ValueError):
        g.tilt_deg[0] = 5.0  # read-only
    p = np.array([[100.0, 200.0, 300.0]])
    du = particle_defocus(g, p, component="u", dtype=np.float64)
    dv = particle_defocus(g, p, component="v", dtype=np.float64)
    np.testing.assert_allclose(du - dv, [[1000.0] * 3])
    flags = g.program_flags()
    assert flags["relion_rlnTomoHand"] == -1 and flags["warp_AreAnglesInverted"] is True
    assert "hand=+1" in repr(g)
