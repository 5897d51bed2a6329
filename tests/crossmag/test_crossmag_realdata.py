"""crossmag on real images: pairs cut from a real micrograph with known transforms, and the
EPU grid-square / foil-hole pair of ../shared/data/epu_three_mag (README §1)."""

from __future__ import annotations

import glob

import numpy as np
import pytest

from emgeom import crossmag, synthetic
from emgeom.io.mrc import read_mrc
from emgeom.resample import rescale, warp_affine
from tests.conftest import shared_file

pytestmark = pytest.mark.realdata


@pytest.fixture(scope="module")
def micrograph() -> np.ndarray:
    return read_mrc(shared_file("micrographs", "mce_Ucsf_stack_1142_DW.mrc")).data.astype(
        np.float32
    )


@pytest.mark.parametrize(
    "bin_, center, rot",
    [
        (8.0, (520.3, 250.8), 0.0),
        (6.0, (700.0, 380.5), 17.0),
        (8.0, (560.7, 150.2), -120.0),
        (5.0, (640.2, 330.9), 170.0),
    ],
)
def test_micrograph_pairs_with_known_transform(micrograph, bin_, center, rot):
    """Reference = the whole micrograph area-binned by `bin_`; moving = a 320×256 field of the
    full-resolution micrograph centred at `center` (on the edge of the large ice ball, top
    right), rotated by `rot` (Keys bicubic)."""
    img = micrograph
    ref = rescale(img, 1.0 / bin_, "area")
    # moving pixel (x, y) shows the micrograph at c + R(rot)·(u − c_mov)
    lin = synthetic.rotation_matrix(rot)
    c_mov = np.array([(256 - 1) / 2, (320 - 1) / 2])
    a = np.hstack([lin, (np.asarray(center) - lin @ c_mov)[:, None]])
    mov = warp_affine(img, a, (320, 256), order=3)
    r = crossmag.align(
        ref,
        mov,
        reference_pixel_a=bin_,
        moving_pixel_a=1.0,
        rotation_deg=rot,
        scale_search=0.0,
        rotation_search_deg=0.0,
    )
    truth = (np.asarray(center) + 0.5) / bin_ - 0.5
    # the only feature is the smooth edge of an ice ball: sub-pixel accuracy is not reachable
    assert np.hypot(*(np.array(r.center) - truth)) < 1.0
    assert r.significance > 1.5
    # with the residual search the smooth ice-ball edge leaves scale poorly determined (~2%):
    # the position must still hold
    s = crossmag.align(ref, mov, reference_pixel_a=bin_, moving_pixel_a=1.0, rotation_deg=rot)
    assert np.hypot(*(np.array(s.center) - truth)) < 1.5
    if s.found:
        assert s.rotation_deg == pytest.approx(rot, abs=1.5)


def test_micrograph_featureless_field_is_not_found(micrograph):
    """A field with particles only (bottom left; no contamination at 8× binning) is honestly
    reported as not found."""
    ref = rescale(micrograph, 1 / 8.0, "area")
    mov = np.ascontiguousarray(micrograph[560:816, 100:420])
    r = crossmag.align(ref, mov, reference_pixel_a=8, moving_pixel_a=1)
    assert not r.found and r.confidence < 0.5


def test_micrograph_with_added_noise_and_wrong_region_prior(micrograph):
    """A prior 40 px (binned) away with a 20 px search radius must not report a confident
    answer at the wrong place."""
    ref = rescale(micrograph, 1 / 8.0, "area")
    mov = micrograph[200:456, 400:720] + np.random.default_rng(1).normal(
        0, 2 * micrograph.std(), (256, 320)
    ).astype(np.float32)
    truth = (np.array([400 + 159.5, 200 + 127.5]) + 0.5) / 8 - 0.5
    good = crossmag.align(ref, mov, reference_pixel_a=8, moving_pixel_a=1, **{"scale_search": 0.0})
    assert np.hypot(*(np.array(good.center) - truth)) < 1.0
    bad = crossmag.align(
        ref,
        mov,
        reference_pixel_a=8,
        moving_pixel_a=1,
        scale_search=0.0,
        expected_center=truth + np.array([40.0, 0.0]),
        max_shift_a=20 * 8.0,
    )
    assert not bad.found or np.hypot(*(np.array(bad.center) - truth)) < 1.0


def _jpeg(path: str) -> np.ndarray:
    pil = pytest.importorskip("PIL.Image")
    return np.asarray(pil.open(path).convert("L"), dtype=np.float32)


@pytest.mark.parametrize(
    "square, stage_offset",
    [("GridSquare_8999138", (-3.3, 51.7)), ("GridSquare_8999186", (-21.5, 97.4))],
)
def test_epu_grid_square_to_foil_hole(square, stage_offset):
    """README §1: grid square ← foil hole = 0.03936·R(+172.56°) (from EPU's
    ReferenceTransformation matrices); the foil-hole field is only ~20×14 grid-square px and
    shows one hole of a periodic lattice (pitch ≈ 22 px), so an honest aligner must either be
    unsure (found=False) or land within half a pitch of the stage prediction. The rotation sign
    convention is checked by the CCC: +172.56° must fit far better than −172.56°."""
    base = shared_file("epu_three_mag", "Images-Disc1", square)
    gs = _jpeg(glob.glob(str(base / "GridSquare_*.jpg"))[0])
    prior = np.array([(gs.shape[1] - 1) / 2, (gs.shape[0] - 1) / 2]) + np.array(stage_offset)
    holes = sorted(glob.glob(str(base / "FoilHoles" / "*.jpg")))
    assert holes
    for path in holes:
        fh = _jpeg(path)
        kw = {
            "reference_pixel_a": 1.0,
            "moving_pixel_a": 0.03936,
            "expected_center": prior,
            "max_shift_a": 14.0,
        }
        right = crossmag.align(gs, fh, rotation_deg=172.56, **kw)
        wrong = crossmag.align(gs, fh, rotation_deg=-172.56, **kw)
        assert right.ccc > wrong.ccc + 0.1
        assert (not right.found) or np.hypot(*(np.array(right.center) - prior)) <= 11.0
        assert abs(right.rotation_deg - 172.56) <= 3.0 + 1e-9
