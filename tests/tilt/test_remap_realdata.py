"""Remap on real data: Position_16_3 (Warp vs AreTomo3), TS_03 (RELION 5 vs IMOD), portal run
10445/TS_105_5 (95 oriented picks into AreTomo3 / IMOD / RELION 5 reconstructions and back).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.optimize import least_squares
from scipy.spatial.transform import Rotation

from emgeom.errors import ImplausibleValueWarning, InvalidValueError, LossyConversionWarning
from emgeom.io.imod import read_imod
from emgeom.io.particles import read_particles
from emgeom.tilt import Reconstruction, remap
from emgeom.tilt._remap import _grid, particles_to_voxels
from tests.conftest import shared_file

POS = "cryoet_alignment"
CDP = ("cryoet_alignment_golden", "TomoBabel_cets-cryoet-data-portal", "tests", "data")
TUT = "relion5_tomo_tutorial"

pytestmark = pytest.mark.realdata


def position_16_3():
    xml = shared_file(POS, "TomoBabel_cets-warpm", "tests", "data", "Position_16_3.xml")
    aln = shared_file(POS, "TomoBabel_cets-aretomo3", "tests", "data", "Position_16_3.aln")
    # the session's Warp settings: 4096 x 4096 images at 1.54 A; AreTomo3 Thickness 1500
    warp = Reconstruction.from_warp(
        xml,
        image_shape=(4096, 4096),
        voxel_size_a=1.54 * 8,
        full_shape_a=(4096 * 1.54, 4096 * 1.54, 1500 * 1.54),
    )
    are = Reconstruction.from_aretomo(aln, pixel_size_a=1.54, vol_z=1500, at_bin=8)
    return warp, are


def brute_force_rigid(src, tgt, pairs):
    """Best rigid map by scipy least_squares from several starts (independent of emgeom's fit)."""
    g = _grid(src, 6)
    p1, o1 = src.projection_affine()
    p2, o2 = tgt.projection_affine()
    p1, o1, p2, o2 = p1[pairs[:, 0]], o1[pairs[:, 0]], p2[pairs[:, 1]], o2[pairs[:, 1]]
    target = np.einsum("tij,mj->tmi", p1, g) + o1[:, None, :]

    def fun(x):
        q = Rotation.from_rotvec(x[:3]).as_matrix()
        pred = np.einsum("tij,mj->tmi", p2, g @ q.T + x[3:]) + o2[:, None, :]
        return (pred - target).ravel()

    best = np.inf
    for start in ([0, 0, 0], [0.02, 0, 0], [0, -0.02, 0.01]):
        sol = least_squares(fun, np.r_[start, 0.0, 0.0, 0.0], xtol=1e-14, ftol=1e-14)
        r = sol.fun.reshape(-1, 2)
        best = min(best, float(np.sqrt(np.mean(np.sum(r**2, axis=1)))))
    return best


def test_position_16_3_warp_vs_aretomo3_rigid_fit():
    warp, are = position_16_3()
    rng = np.random.default_rng(0)
    pts = rng.uniform(0, 1, (200, 3)) * (np.array(warp.volume_shape) - 1)
    with pytest.warns(ImplausibleValueWarning, match="residual"):
        r = remap(pts, warp, are)
    assert not r.exact and r.tilt_pairs.shape == (31, 2)
    # Warp Angles are +45.01 ... -44.99, AreTomo3 TILT -45.01 ...: canonical theta = -Angle
    # pairs them row by row, within 0.02 deg
    assert r.tilt_pairs.tolist() == [[i, i] for i in range(31)]
    d = warp.alignment.tilt_deg[r.tilt_pairs[:, 0]] - are.alignment.tilt_deg[r.tilt_pairs[:, 1]]
    assert np.abs(d).max() < 0.02
    # two independent alignments: ~5 px rms, as good as the best rigid fit
    assert 4.5 < r.residual_px < 5.5
    assert r.residual_px <= brute_force_rigid(warp, are, r.tilt_pairs) + 1e-6
    # an affine map does not do better: the disagreement is in per-tilt shifts
    with pytest.warns(ImplausibleValueWarning):
        aff = remap(pts, warp, are, model="affine")
    assert aff.residual_px > r.residual_px - 0.01
    # a small map: < 0.1 deg rotation, < 3 voxels shift
    ang = np.degrees(Rotation.from_matrix(r.transform[:3, :3]).magnitude())
    assert ang < 0.1 and np.all(np.abs(r.transform[:3, 3]) < 3 * warp.voxel_size_a)
    # the invariant on the tilts where the two alignments agree (five of 31 within 2 px)
    assert int(np.count_nonzero(r.residual_per_tilt_px <= 2.0)) == 5


def test_ts03_relion5_against_its_imod_alignment():
    star = shared_file(TUT, "relion", "CtfRefine", "job027", "tomograms.star")
    # K2 tilt images of EMPIAR-10164 at 1.35 A (3710 x 3838); the size only places the centres
    rel = Reconstruction.from_relion(star, "TS_03", image_shape=(3838, 3710))
    assert rel.volume_shape == (540, 540, 270) and rel.binning == pytest.approx(7.407407)
    g = read_imod(
        shared_file(TUT, "imod_TS_03", "TS_03.tlt"),
        xf=shared_file(TUT, "imod_TS_03", "TS_03.xf"),
        pixel_size_a=1.35,
    )
    imod = Reconstruction(g, (464, 480, 250), binning=8, program="imod", image_shape=(3838, 3710))
    with pytest.warns(ImplausibleValueWarning):
        r = remap([[270, 270, 135]], rel, imod)
    assert r.tilt_pairs.shape == (40, 2) and 3.5 < r.residual_px < 5.0
    with pytest.warns(ImplausibleValueWarning):
        rob = remap([[270, 270, 135]], rel, imod, robust=True)
    # two tilts disagree (25 and 9 px); on the 38 others the mapped points stay within 2 px
    assert int(rob.tilts_fitted.sum()) == 38
    assert rob.residual_per_tilt_px[rob.tilts_fitted].max() < 2.0
    assert np.sort(rob.residual_per_tilt_px)[-2] > 5


def portal():
    rec = Reconstruction.from_portal(shared_file(*CDP, "10445_TS_105_5.extract.json"))
    picks = read_particles(shared_file(*CDP, "annotations", "175505_OrientedPoint.ndjson"))
    return rec, picks


def test_portal_implied_voxel_size():
    rec, _ = portal()
    assert rec.volume_shape == (1260, 1260, 368)
    assert rec.voxel_size_a == pytest.approx(4096 * 1.54 / 1260)  # 5.00622, not 4.99
    assert any("implied voxel" in n for n in rec.notes)
    # the implied voxel makes the volume span the 4096-px images exactly: the corner voxels
    # (edges -0.5 and N-0.5) project to the image edges at 0 degrees (pixel edges -0.5, n-0.5)
    flat = int(np.argmin(np.abs(rec.alignment.tilt_deg)))
    edges = np.array([[-0.5, 629.5 + 0.5, 184], [1259.5, 630, 184]])
    u = rec.project(edges)[flat]
    span = np.linalg.norm(u[1] - u[0])
    assert span == pytest.approx(4096.0, abs=0.01)  # tilt -0.04 deg: cos = 1 - 2.4e-7
    # the published 4.99 A would make it 12.8 px short (the peer's "4 voxels short")
    assert 1260 * 4.99 / 1.54 == pytest.approx(4082.7, abs=0.1)


def test_portal_picks_through_every_program_and_back():
    rec, picks = portal()
    aln = shared_file(*CDP, "10445_TS_105_5.aln")
    v = particles_to_voxels(picks.coordinates, picks.frame, rec)
    m = picks.matrices
    # the portal's alignment is the .aln: an AreTomo3 reconstruction of it is the same frame
    are = Reconstruction.from_aretomo(aln, pixel_size_a=1.54, vol_z=1840, at_bin=8)
    imod = rec.with_program("imod", binning=4, volume_shape=(1024, 1024, 300))
    rel = rec.with_program(
        "relion5", binning=6, volume_shape=(683, 683, 201), axes=None, full_shape=(4096, 4096, 1206)
    )
    imod_raw = rec.with_program(
        "imod",
        binning=4,
        volume_shape=(1024, 300, 1024),
        axes=[[1, 0, 0], [0, 0, 1], [0, -1, 0]],  # tilt's un-rotated (x, z, y) output
    )
    for tgt in (are, imod, rel, imod_raw):
        m_tgt = m if tgt is not imod_raw else None
        r = remap(v, rec, tgt, matrices=m_tgt)
        assert r.exact, tgt
        assert np.abs(rec.project(v) - tgt.project(r.points)).max() < 1e-6
        back = remap(r.points, tgt, rec, matrices=r.matrices)
        assert np.abs(back.points - v).max() < 1e-6
        if m_tgt is not None:
            assert np.abs(back.matrices - m).max() < 1e-9
    # the one pick beyond the portal tomogram's x extent is flagged, not dropped
    r = remap(v, rec, rec)
    assert r.n_outside == 1 and r.points.shape == (95, 3)


def test_portal_picks_into_a_mirrored_volume_warn():
    rec, picks = portal()
    v = particles_to_voxels(picks.coordinates, picks.frame, rec)
    flipped = rec.with_program("imod", axes=np.diag([1, 1, -1]))
    with warnings.catch_warnings():
        warnings.simplefilter("error", LossyConversionWarning)
        with pytest.raises(LossyConversionWarning, match="mirror"):
            remap(v, rec, flipped, matrices=picks.matrices)


def test_a_tomogram_of_another_tilt_series_is_refused():
    """Position_16_3 (Warp) against portal run 10445 (AreTomo3): same pixel, 31 tilts at 3 deg,
    different specimen and alignment -> the projection models cannot be reconciled."""
    warp, _ = position_16_3()
    other, _ = portal()
    with pytest.raises(InvalidValueError, match="disagree by"):
        remap([[10.0, 20.0, 30.0]], warp, other)
