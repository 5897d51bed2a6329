"""Registry entries of the tilt quantity: round trips and documented examples (design §5.1)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from emgeom import conventions, errors
from emgeom.tilt import TiltGeometry, particle_defocus

NAMES = {"warp", "relion5", "relion4", "imod", "aretomo3", "pytom"}
CENTRES = {
    "centre-relion5",
    "centre-relion5-particles",
    "centre-warp",
    "centre-aretomo3",
    "centre-imod",
    "centre-imod-model",
    "centre-portal",
    "centre-copick",
}


def test_all_tilt_entries_registered():
    assert set(conventions.names("tilt")) == NAMES | CENTRES
    for n in NAMES:
        c = conventions.get("tilt", n)
        assert c.quantity == "tilt" and c.sources and c.to_canonical and c.from_canonical
    assert conventions.get("tilt", "WarpTools").name == "warp"
    assert conventions.get("tilt", "RELION").name == "relion5"
    assert conventions.get("tilt", "ctfphaseflip").name == "imod"


def test_warp_example_position_16_3():
    # Warp XML Angle +45.01, AxisAngle 83.939545, AreAnglesInverted False
    w = conventions.get("tilt", "warp")
    c = w.to_canonical(45.01, 83.939545, are_angles_inverted=False)
    assert c == {"tilt_deg": -45.01, "axis_deg": 83.939545, "x_tilt_deg": 0.0, "hand": -1}
    back = w.from_canonical(**c)
    assert back["Angle"] == 45.01 and back["AreAnglesInverted"] is False
    assert w.to_canonical(10.0, 0.0, 2.0, 5.0, True)["tilt_deg"] == -15.0


def test_relion5_example_ts03():
    r = conventions.get("tilt", "relion5")
    c = r.to_canonical(0.0, -57.0, 85.105602, -1)
    assert c["hand"] == +1 and c["tilt_deg"] == -57.0 and c["axis_deg"] == 85.105602
    assert r.from_canonical(**c)["rlnTomoHand"] == -1
    with pytest.raises(errors.InvalidValueError, match="tomo_hand"):
        r.to_canonical(0.0, 0.0, 0.0, 0.5)


def test_relion4_matrices_real_row():
    # first row of Position_27_1 in matching_tomograms.star (WarpTools export)
    r4 = conventions.get("tilt", "relion4")
    c = r4.to_canonical(
        [0.07464177, -0.99441105, -0.07466782, 0],
        [0.7030321, 0.10557783, -0.70327747, 0],
        [0.70723015, 0, 0.7069834, 0],
        -1,
    )
    assert c["tilt_deg"] == pytest.approx(-45.01, abs=1e-3)
    assert c["axis_deg"] == pytest.approx(83.94, abs=0.01)
    assert c["hand"] == +1
    back = r4.from_canonical(**c)
    assert back["rlnTomoProjZ"][:3] == pytest.approx([0.70723015, 0, 0.7069834], abs=1e-6)


def test_imod_and_aretomo_and_pytom():
    im = conventions.get("tilt", "imod")
    c = im.to_canonical(-57.0, 0.0856836, -0.9963228)
    assert c["axis_deg"] == pytest.approx(85.085, abs=1e-3) and c["hand"] == +1
    assert im.to_canonical(0, 1, 0, invert=True)["hand"] == -1
    assert im.from_canonical(**c)["ctfphaseflip_invert"] is False
    ar = conventions.get("tilt", "aretomo3")
    assert ar.to_canonical(-45.01, 83.9316, -1)["hand"] == -1
    assert ar.to_canonical(-45.01, 83.9316, -1, axis_refined=False)["hand"] == +1
    assert ar.from_canonical(1.0, 80.0, 0.0, +1)["ROT"] == -100.0
    pt = conventions.get("tilt", "pytom")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert pt.to_canonical(30.0, -1)["hand"] == -1
        assert pt.from_canonical(30.0, 0.0, 0.0, -1)["defocus_handedness"] == -1
    with pytest.warns(errors.LossyConversionWarning):
        assert pt.from_canonical(30.0, 0.0, 0.0, +1)["defocus_handedness"] == +1
    with pytest.raises(errors.InvalidValueError, match="defocus_handedness"):
        pt.to_canonical(30.0, 0)


def test_conventions_agree_on_defocus_of_a_particle():
    """The same physical geometry through every program's numbers gives the same defocus."""
    canon = {"tilt_deg": 40.0, "axis_deg": 85.0, "x_tilt_deg": 0.0, "hand": -1}
    p = np.array([[800.0, -300.0, 250.0]])
    ref = particle_defocus(TiltGeometry(40.0, 85.0, 2e4, hand=-1), p, dtype=np.float64)
    for name in ("warp", "relion5", "relion4", "imod"):
        conv = conventions.get("tilt", name)
        stored = conv.from_canonical(**canon)
        args = {
            "warp": lambda s: (
                s["Angle"],
                s["AxisAngle"],
                s["LevelAngleX"],
                0.0,
                s["AreAnglesInverted"],
            ),
            "relion5": lambda s: (
                s["rlnTomoXTilt"],
                s["rlnTomoYTilt"],
                s["rlnTomoZRot"],
                s["rlnTomoHand"],
            ),
            "relion4": lambda s: (
                s["rlnTomoProjX"],
                s["rlnTomoProjY"],
                s["rlnTomoProjZ"],
                s["rlnTomoHand"],
            ),
            "imod": lambda s: (
                s["tlt"],
                s["xf_rotation"][0],
                s["xf_rotation"][2],
                s["ctfphaseflip_invert"],
                s["xtilt"],
            ),
        }[name](stored)
        c = conv.to_canonical(*args)
        g = TiltGeometry(
            c["tilt_deg"], c["axis_deg"], 2e4, x_tilt_deg=c["x_tilt_deg"], hand=c["hand"]
        )
        np.testing.assert_allclose(particle_defocus(g, p, dtype=np.float64), ref, atol=1e-9)


@pytest.mark.parametrize(
    ("name", "n", "centre"),
    [
        ("centre-relion5", 4001, 2000.0),
        ("centre-relion5", 4000, 2000.0),
        ("centre-relion5-particles", 4001, 2000.5),
        ("centre-warp", 4095, 2047.5),
        ("centre-aretomo3", 1260, 630.0),
        ("centre-imod", 4096, 2047.5),
        ("centre-imod", 4095, 2047.0),
        ("centre-imod-model", 100, 50.0),  # model units: voxel 49 centre at 49.5
        ("centre-portal", 368, 184.0),
        ("centre-copick", 1260, 630.0),
    ],
)
def test_centre_entries(name, n, centre):
    c = conventions.get("tilt", name)
    assert c.to_canonical(centre, n) == {"offset": 0.0}
    assert c.to_canonical(centre + 3.25, n) == {"offset": 3.25}
    assert c.from_canonical(-1.5, n) == {"coordinate": centre - 1.5}


def test_centre_entries_agree_with_reconstruction():
    """The registry's rules are the ones Reconstruction applies (binning 1)."""
    from emgeom.tilt import Reconstruction

    g = TiltGeometry([0.0, 10.0, 20.0], 0.0, [1e4] * 3, pixel_size_a=1.0)
    for prog in ("relion5", "warp", "aretomo3", "imod", "portal"):
        rec = Reconstruction(g, (11, 12, 5), binning=1, program=prog, image_shape=(7, 8))
        c = conventions.get("tilt", f"centre-{prog}")
        for k, n in enumerate((11, 12, 5)):
            assert c.to_canonical(rec.centre_vox[k], n)["offset"] == 0.0
        assert c.to_canonical(rec.image_centre_px[0], 8)["offset"] == 0.0
        assert c.to_canonical(rec.image_centre_px[1], 7)["offset"] == 0.0
