"""find_similarity: unknown rotation and scale (log-polar Fourier–Mellin + translation step).

Truth convention everywhere: ``[x_ref, y_ref] = truth @ [x_mov, y_mov, 1]`` (pixels), the
geometry of :class:`emgeom.crossmag.AlignmentResult`.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from emgeom.crossmag import AlignmentResult, SimilarityResult, find_similarity
from emgeom.errors import InvalidValueError
from emgeom.resample import warp_affine
from tests._crossmag_data import similarity_pair
from tests.conftest import shared_file


def _rot(theta_deg: float) -> np.ndarray:
    t = math.radians(theta_deg)
    return np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])


def _corner_err(affine: np.ndarray, truth: np.ndarray, shape: tuple[int, int]) -> float:
    ny, nx = shape
    p = np.array([[0, 0], [nx - 1, 0], [0, ny - 1], [nx - 1, ny - 1]], float)
    a = p @ affine[:, :2].T + affine[:, 2]
    b = p @ truth[:, :2].T + truth[:, 2]
    return float(np.abs(a - b).max())


def _angle_diff(a: float, b: float) -> float:
    return abs((a - b + 180.0) % 360.0 - 180.0)


# ---------------------------------------------------------------------------------------------
# real micrograph: random similarity transforms of crops


@pytest.fixture(scope="module")
def micrograph() -> np.ndarray:
    mrcfile = pytest.importorskip("mrcfile")
    p = shared_file("micrographs", "mce_Ucsf_stack_1142_DW.mrc")
    return np.squeeze(mrcfile.read(p)).astype(np.float32)


def _mic_pair(mic, scale, rot, n=320, snr=None, seed=0):
    """Reference = an n×n crop; moving = the micrograph sampled through a known similarity
    (moving px → micrograph px: ``scale·R(rot)`` about the crop centre plus a random shift)."""
    return similarity_pair(mic, scale, rot, n, snr, seed)


@pytest.mark.realdata
@pytest.mark.parametrize(
    ("scale", "rot", "snr", "tol_px"),
    [
        (1.2, 33.0, None, 0.1),
        (0.85, -150.0, None, 0.1),
        (1.0, 178.0, 1.0, 1.0),  # the 180° twin of −2°: must not be answered as −2°
        (1.35, 100.0, 1.0, 1.0),
        (0.7, -60.0, 0.5, 1.5),
    ],
)
def test_micrograph_random_similarity(micrograph, scale, rot, snr, tol_px):
    ref, mov, truth = _mic_pair(micrograph, scale, rot, snr=snr, seed=int(scale * 100))
    res = find_similarity(ref, mov)
    assert isinstance(res, SimilarityResult) and isinstance(res, AlignmentResult)
    assert res.found, (res.scale, res.rotation_deg, res.ccc, res.pose_ratio)
    assert res.confidence >= 0.5
    assert abs(res.scale / scale - 1) < 0.004
    assert _angle_diff(res.rotation_deg, rot) < 0.2
    assert _corner_err(res.affine, truth, mov.shape) < tol_px
    # the result is self-consistent: centre = affine · moving centre
    c = res.transform_points([[(mov.shape[1] - 1) / 2, (mov.shape[0] - 1) / 2]])[0]
    assert np.allclose(c, res.center)
    # candidates are ranked and contain both members of the 180° pair of the best peak
    scores = [k.score for k in res.candidates]
    assert scores == sorted(scores, reverse=True)
    best = res.candidates[0]
    assert any(_angle_diff(k.rotation_deg, best.rotation_deg + 180) < 1e-6 for k in res.candidates)


@pytest.mark.realdata
@pytest.mark.parametrize(("scale", "snr"), [(2.5, None), (0.35, None), (2.5, 0.5), (0.3, 1.0)])
def test_out_of_range_scales_are_never_found(micrograph, scale, snr):
    ref, mov, _truth = _mic_pair(micrograph, scale, 10.0, snr=snr, seed=3)
    res = find_similarity(ref, mov)  # default scale_range (0.5, 2.0)
    assert not res.found
    assert res.confidence < 0.5


@pytest.mark.realdata
def test_narrow_scale_range_refuses_a_scale_outside_it(micrograph):
    ref, mov, _truth = _mic_pair(micrograph, 1.3, 25.0, seed=5)
    ok = find_similarity(ref, mov, scale_range=(0.5, 1.5))
    assert ok.found and abs(ok.scale - 1.3) < 0.005
    res = find_similarity(ref, mov, scale_range=(0.6, 1.15))
    assert not res.found
    assert all(0.6 * 0.98 <= k.scale <= 1.15 * 1.02 for k in res.candidates)


@pytest.mark.realdata
def test_rotation_range_selects_the_twin(micrograph):
    # a near-180°-symmetric question: restrict the rotation and the other member wins
    ref, mov, _truth = _mic_pair(micrograph, 1.0, 172.0, seed=7)
    res = find_similarity(ref, mov, rotation_range_deg=(150, 200))
    assert res.found and _angle_diff(res.rotation_deg, 172.0) < 0.1
    res2 = find_similarity(ref, mov, rotation_range_deg=(-30, 30))
    assert all(_angle_diff(k.rotation_deg, 0.0) <= 30.5 for k in res2.candidates)
    assert not res2.found


@pytest.mark.realdata
def test_pixel_sizes_apply_the_nominal_ratio_first(micrograph):
    # moving pixel 1.1× the nominal: reference 2 Å, moving nominally 1 Å → scale 0.5·1.1
    ref, mov, _truth = _mic_pair(micrograph, 1.1, -20.0, seed=9)
    big = warp_affine(ref, np.array([[0.5, 0, -0.25], [0, 0.5, -0.25]]), (640, 640), order=3)
    # `big` is the reference enlarged 2× (its pixel is half the reference pixel)
    # without the nominal ratio the scale 2.2 is outside the default range (0.5, 2): not found
    assert not find_similarity(big, mov).found
    res2 = find_similarity(big, mov, reference_pixel_a=1.0, moving_pixel_a=2.0)
    assert res2.found and res2.nominal_scale == 2.0
    assert abs(res2.scale - 2.2) < 0.01 and _angle_diff(res2.rotation_deg, -20.0) < 0.2


@pytest.mark.realdata
def test_low_snr_sweep_has_no_confident_wrong_answer(micrograph):
    rng = np.random.default_rng(11)
    for k in range(6):
        snr = (0.1, 0.05)[k % 2]
        scale = float(np.exp(rng.uniform(np.log(0.6), np.log(1.6))))
        rot = float(rng.uniform(-180, 180))
        ref, mov, truth = _mic_pair(micrograph, scale, rot, snr=snr, seed=200 + k)
        res = find_similarity(ref, mov)
        if res.found:
            assert _corner_err(res.affine, truth, mov.shape) < 2.0, (snr, scale, rot)
        else:
            assert res.confidence < 0.5


# ---------------------------------------------------------------------------------------------
# imreg_dft's published regression cases (tests/regressiontests/Makefile of matejak/imreg_dft)


def _load_png(*parts: str) -> np.ndarray:
    plt = pytest.importorskip("matplotlib.pyplot")
    a = plt.imread(shared_file("imreg_dft_known_transforms", *parts))
    if a.ndim == 3:
        g = a[..., :3].mean(axis=-1)
        if a.shape[-1] == 4:  # palette images with transparency: composite over white
            g = a[..., 3] * g + (1 - a[..., 3])
        a = g
    return np.asarray(a, dtype=np.float32)


@pytest.mark.realdata
def test_imreg_dft_sample1_to_sample2_translation():
    res = find_similarity(_load_png("sample1.png"), _load_png("sample2.png"))
    # imreg_dft expects (tx, ty, angle, scale) = (−19, 79, 0, 1)
    assert res.found
    assert abs(res.scale - 1) < 1e-3 and abs(res.rotation_deg) < 0.05
    np.testing.assert_allclose(res.affine[:, 2], [-19.0, 79.0], atol=0.25)


@pytest.mark.realdata
@pytest.mark.parametrize(
    ("a", "b", "angle", "scale"), [("1", "3", -30.0, 1.25), ("3", "1", 30.0, 0.8)]
)
def test_imreg_dft_sample1_sample3_rotation_scale(a, b, angle, scale):
    res = find_similarity(_load_png(f"sample{a}.png"), _load_png(f"sample{b}.png"))
    assert res.found
    # imreg_dft's angle is counter-clockwise as displayed; emgeom's θ is clockwise: θ = −angle
    assert _angle_diff(res.rotation_deg, -angle) < 0.15
    assert abs(res.scale / scale - 1) < 0.003


@pytest.mark.realdata
def test_imreg_dft_three_to_two_is_ninety_degrees_or_flagged():
    res = find_similarity(
        _load_png("constraints", "three.png"), _load_png("constraints", "two.png")
    )
    # expected angle 90 (imreg_dft) = θ −90 here, scale 1; these synthetic shapes are nearly
    # symmetric, so the answer may be flagged ambiguous, but it is never a different pose
    assert _angle_diff(res.rotation_deg, -90.0) < 0.3 and abs(res.scale - 1) < 0.005
    if not res.found:
        assert res.pose_ratio < 1.1


@pytest.mark.realdata
def test_imreg_dft_tricky_with_rotation_constraint():
    img = _load_png("constraints", "tricky.png")
    res = find_similarity(img, img)
    assert abs(res.rotation_deg) < 0.05 and abs(res.scale - 1) < 1e-3
    # imreg_dft: with the constraint 140 ± 20 it answers 180; a hard range around 180 here
    res2 = find_similarity(img, img, rotation_range_deg=(160, 200))
    assert _angle_diff(res2.rotation_deg, 180.0) < 0.5


@pytest.mark.realdata
def test_imreg_dft_tiling_small_in_big():
    # imreg_dft (tiling mode): (tx, ty, angle, scale) = (156, 137, 40.5°, 0.51), tolerance ×8.
    # The small image covers ~2 % of the big one: emgeom searches the reference in windows.
    big, small = _load_png("tiling", "big.png"), _load_png("tiling", "small.png")
    res = find_similarity(big, small)
    assert res.found
    assert _angle_diff(res.rotation_deg, -40.5) < 1.0
    assert abs(res.scale - 0.51) < 0.01
    # imreg_dft's (tx, ty) is the displacement of the small image's centre from the big one's
    d = np.asarray(res.center) - [(big.shape[1] - 1) / 2, (big.shape[0] - 1) / 2]
    np.testing.assert_allclose(d, [156, 137], atol=2.0)
    # the other way round (the moving image is the big one): the exact inverse
    rev = find_similarity(small, big)
    assert rev.found and rev.reference_shape == small.shape and rev.moving_shape == big.shape
    inv = rev.affine[:, :2]
    np.testing.assert_allclose(
        np.hstack([np.linalg.inv(inv), (-np.linalg.inv(inv) @ rev.affine[:, 2])[:, None]]),
        res.affine,
        atol=1e-3,
    )
    assert abs(rev.scale * res.scale - 1) < 1e-6


# ---------------------------------------------------------------------------------------------
# cryo-like accuracy goal (issue 6): 1024², SNR 0.5


def test_cryo_like_1024_snr_half_accuracy():
    syn = pytest.importorskip("emgeom.synthetic")
    spec = syn.make_specimen((2600, 2600), pixel_a=2.0, seed=0, holes="edge")
    c = np.array([1299.5, 1299.5])
    ref = syn.acquire(spec, pixel_a=2.0, shape=(1024, 1024), center=c, seed=1)
    mov = syn.acquire(
        spec, pixel_a=2.6, shape=(1024, 1024), center=c + [12.0, -7.0], rotation_deg=17.0, seed=2
    )
    rng = np.random.default_rng(5)
    snr = 0.5  # signal variance / noise variance, per pixel
    r = ref.clean + rng.normal(0, ref.clean.std() / math.sqrt(snr), ref.clean.shape)
    m = mov.clean + rng.normal(0, mov.clean.std() / math.sqrt(snr), mov.clean.shape)
    truth = syn.affine_between(ref, mov)
    res = find_similarity(r.astype(np.float32), m.astype(np.float32))
    assert res.found
    assert _angle_diff(res.rotation_deg, 17.0) <= 0.1
    assert abs(res.scale / 1.3 - 1) <= 0.002
    c_true = truth[:, :2] @ [511.5, 511.5] + truth[:, 2]
    assert np.hypot(*(np.asarray(res.center) - c_true)) <= 1.0


# ---------------------------------------------------------------------------------------------
# honesty on bad content, and argument errors


def test_blank_tiny_and_unrelated_images_are_not_found():
    rng = np.random.default_rng(0)
    noise = rng.normal(size=(256, 256)).astype(np.float32)
    assert not find_similarity(np.zeros((256, 256)), noise).found
    assert not find_similarity(noise, np.full((256, 256), 3.0)).found
    tiny = find_similarity(noise[:20, :20], noise[:20, :20])
    assert not tiny.found and tiny.confidence == 0.0
    unrelated = find_similarity(noise, rng.normal(size=(256, 256)))
    assert not unrelated.found and unrelated.confidence < 0.5


@pytest.mark.realdata
@pytest.mark.parametrize(
    ("frac", "direction", "must_find"),
    [
        (0.35, (0.0, 1.0), True),
        (0.35, (-0.6, 0.8), True),
        (0.35, (0.6, -0.8), False),
        (0.5, (0.6, -0.8), False),
    ],
)
def test_partial_overlap(micrograph, frac, direction, must_find):
    # moving centre displaced by frac·n from the reference centre, SNR 1; Fourier–Mellin on
    # whole images degrades with the overlap: where it is not found it must say so
    rng = np.random.default_rng(5)
    n = 320
    ny, nx = micrograph.shape
    c = np.array([(nx - 1) / 2, (ny - 1) / 2])
    o = np.round(c - (n - 1) / 2).astype(int)
    ref = micrograph[o[1] : o[1] + n, o[0] : o[0] + n]
    lin = 0.92 * _rot(102.0)
    cm = np.array([(n - 1) / 2] * 2)
    t = np.hstack([lin, (c + frac * n * np.array(direction) - lin @ cm)[:, None]])
    mov = warp_affine(micrograph, t, (n, n), order=3)
    truth = t.copy()
    truth[:, 2] -= o
    r = ref + rng.normal(0, ref.std(), ref.shape).astype(np.float32)
    m = mov + rng.normal(0, mov.std(), mov.shape).astype(np.float32)
    res = find_similarity(r, m)
    if must_find:
        assert res.found
    if res.found:
        assert _corner_err(res.affine, truth, m.shape) < 1.5


@pytest.mark.realdata
def test_deterministic_threads_and_integer_input(micrograph):
    ref, mov, truth = _mic_pair(micrograph, 0.9, 48.0, snr=1.0, seed=21)
    a = find_similarity(ref, mov)
    b = find_similarity(ref, mov, n_threads=1)
    assert a.found and b.found
    np.testing.assert_allclose(a.affine, b.affine, atol=1e-6)
    # unsigned integer data (e.g. MRC mode 6) after an offset: same answer
    lo = min(float(ref.min()), float(mov.min()))
    k = 1000.0 / (max(float(ref.max()), float(mov.max())) - lo)
    r16 = np.round((ref - lo) * k).astype(np.uint16)
    m16 = np.round((mov - lo) * k).astype(np.uint16)
    c = find_similarity(r16, m16)
    assert c.found and _corner_err(c.affine, truth, mov.shape) < 1.0


def test_argument_errors():
    img = np.random.default_rng(1).normal(size=(64, 64))
    with pytest.raises(InvalidValueError, match="pixel"):
        find_similarity(img, img, reference_pixel_a=1.0)
    with pytest.raises(InvalidValueError, match="scale_range"):
        find_similarity(img, img, scale_range=(2.0, 1.0))
    with pytest.raises(InvalidValueError, match="scale_range"):
        find_similarity(img, img, scale_range=(0.1, 2.0))
    with pytest.raises(InvalidValueError, match="rotation_range_deg"):
        find_similarity(img, img, rotation_range_deg=(10, -10))
    with pytest.raises(InvalidValueError, match="n_candidates"):
        find_similarity(img, img, n_candidates=0)


# ---------------------------------------------------------------------------------------------
# registry entries (quantity "similarity")


def test_registry_entries_round_trip():
    from emgeom import conventions

    ird = conventions.get("similarity", "imreg_dft")
    c = ird.to_canonical(angle=-30.0, scale=1.25, tvec=(72.0, 35.0))
    assert c == {"rotation_deg": 30.0, "scale": 1.25, "center_offset": (35.0, 72.0)}
    assert ird.from_canonical(**c) == {"angle": -30.0, "scale": 1.25, "tvec": (72.0, 35.0)}
    sk = conventions.get("similarity", "skimage_recipe")
    c2 = sk.to_canonical(recovered_angle=17.0, shift_scale=0.8)
    assert c2["rotation_deg"] == 17.0 and c2["scale"] == pytest.approx(1.25)
    assert sk.from_canonical(**c2)["shift_scale"] == pytest.approx(0.8)
    assert ird.sources[0].repository == "matejak/imreg_dft"


@pytest.mark.realdata
def test_imreg_dft_convention_matches_emgeom_on_its_own_example():
    imreg_dft = pytest.importorskip("imreg_dft")
    from emgeom import conventions

    a, b = _load_png("sample1.png"), _load_png("sample3.png")
    theirs = imreg_dft.similarity(a, b)
    c = conventions.get("similarity", "imreg_dft").to_canonical(
        angle=theirs["angle"], scale=theirs["scale"], tvec=theirs["tvec"]
    )
    ours = find_similarity(a, b)
    assert _angle_diff(c["rotation_deg"], ours.rotation_deg) < 0.1
    assert abs(c["scale"] / ours.scale - 1) < 0.003
    d = np.asarray(ours.center) - [(a.shape[1] - 1) / 2, (a.shape[0] - 1) / 2]
    np.testing.assert_allclose(c["center_offset"], d, atol=1.0)
