"""AnisoMag: the forum example, conversions in every direction, properties, frames, bad input."""

from __future__ import annotations

import math
import pickle
import warnings

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from emgeom import anisomag, reference
from emgeom.anisomag import AnisoMag, convert
from emgeom.errors import (
    ImplausibleValueWarning,
    InvalidTypeError,
    InvalidValueError,
    LossyConversionWarning,
    ShapeError,
    UnknownConventionError,
)

FORUM_M = np.array([[-0.00571369, -0.00932393], [-0.01013075, 0.00451204]])


def rot(deg: float) -> np.ndarray:
    t = math.radians(deg)
    return np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])


# --- the question that started the project --------------------------------------------------


def test_forum_example_all_formats() -> None:
    am = AnisoMag.from_cryosparc(FORUM_M)
    # D = (I+M)^-T, numbers of design note anisomag.md §4 (hypothesis H_A).
    np.testing.assert_allclose(
        am.distortion, [[1.00584165, 0.01014416], [0.00933627, 0.99560239]], atol=5e-8
    )
    np.testing.assert_allclose(
        am.to_relion(), [[1.005842, 0.009336], [0.010144, 0.995602]], atol=5e-7
    )
    mc = am.to_motioncor()
    assert mc.as_args() == "-Mag 1.011726 0.989718 58.875"
    assert mc.major == pytest.approx(1.01172585, abs=1e-7)
    assert mc.minor == pytest.approx(0.98971835, abs=1e-7)
    ci = am.to_cistem()
    assert ci.angle_deg == pytest.approx(58.875, abs=1e-3)
    assert ci.major == pytest.approx(1.010388, abs=1e-6)
    assert ci.minor == pytest.approx(0.988410, abs=1e-6)
    assert am.anisotropy_percent == pytest.approx(2.2236, abs=1e-3)
    assert am.pixel_size_scale == pytest.approx(0.999339, abs=1e-6)
    assert am.rotation_deg == pytest.approx(-0.0231, abs=1e-3)
    # the logged determinant is det(I + M)
    assert np.linalg.det(np.eye(2) + FORUM_M) == pytest.approx(0.99867812, abs=2e-8)
    assert np.linalg.det(np.eye(2) + am.to_cryosparc()) == pytest.approx(0.99867812, abs=2e-8)
    # Patch Motion micrographs are y-flipped relative to MotionCor2 output
    assert am.flip_y().to_motioncor().angle_deg == pytest.approx(121.125, abs=1e-3)


def test_forum_example_by_name() -> None:
    got = convert(FORUM_M.ravel(), source="cryosparc", target="motioncor3")
    assert got.as_args() == "-Mag 1.011726 0.989718 58.875"


# --- one test per convention's defining formula ---------------------------------------------


def test_cryosparc_is_inverse_transpose_of_identity_plus_m() -> None:
    m = np.array([[0.02, -0.01], [0.005, -0.03]])
    am = AnisoMag.from_cryosparc(m.ravel())  # 4 numbers, row-major
    np.testing.assert_allclose(am.distortion, np.linalg.inv(np.eye(2) + m).T, atol=1e-15)
    # cryosparc-tools' pixel-size example: relabelling 0.876667 Å/px as 0.6575 Å/px makes
    # I+M = 1.3333·I (declared pixel too small: features look magnified).
    relabelled = AnisoMag(np.eye(2)).rescale(0.876667, 0.6575)
    np.testing.assert_allclose(relabelled.to_cryosparc(), np.eye(2) * 0.333334, atol=1e-6)


def test_relion_is_transpose() -> None:
    mag = np.array([[1.011472, 0.004231], [0.004560, 1.008858]])
    am = AnisoMag.from_relion(mag)
    np.testing.assert_array_equal(am.distortion, mag.T)
    np.testing.assert_array_equal(am.to_relion(), mag)
    # RELION MagMat = (I+M)^-1 for the same cryoSPARC value
    cs = AnisoMag.from_cryosparc(FORUM_M)
    np.testing.assert_allclose(cs.to_relion(), np.linalg.inv(np.eye(2) + FORUM_M), atol=1e-15)


def test_motioncor_stretch_axis_and_scale() -> None:
    # major axis at 30°: u = (cos 30, -sin 30) in (x, y); D compresses along u by minor.
    am = AnisoMag.from_motioncor(1.02, 0.98, 30.0)
    u = np.array([math.cos(math.radians(30)), -math.sin(math.radians(30))])
    v = np.array([-u[1], u[0]])
    np.testing.assert_allclose(am.distortion @ u, 0.98 * u, atol=1e-15)
    np.testing.assert_allclose(am.distortion @ v, 1.02 * v, atol=1e-15)
    assert am.major_axis_deg == pytest.approx(30.0, abs=1e-12)
    # MotionCor's stretch S = Q diag(major/minor, 1) Q^T makes S·D isotropic with scale major
    s = np.outer(u, u) * (1.02 / 0.98) + np.outer(v, v)
    np.testing.assert_allclose(s @ am.distortion, 1.02 * np.eye(2), atol=1e-14)


def test_cistem_correction_is_inverse_of_d() -> None:
    am = AnisoMag.from_cistem(19.6, 1.005, 0.995)
    q = np.array(
        [
            [math.cos(math.radians(19.6)), math.sin(math.radians(19.6))],
            [-math.sin(math.radians(19.6)), math.cos(math.radians(19.6))],
        ]
    )
    c = q @ np.diag([1.005, 0.995]) @ q.T  # cisTEM's content map
    np.testing.assert_allclose(c @ am.distortion, np.eye(2), atol=1e-14)
    # same angle as MotionCor for the same distortion
    assert am.to_motioncor().angle_deg == pytest.approx(19.6, abs=1e-9)


def test_warp_xml_is_column_major() -> None:
    mag = np.array([[1.01, 0.002], [0.003, 0.99]])
    xml = "1.01, 0.003, 0.002, 0.99"  # M11, M21, M12, M22
    am = AnisoMag.from_warp(xml)
    np.testing.assert_allclose(am.distortion, mag.T, atol=1e-15)
    assert AnisoMag.from_warp(mag).isclose(am)
    assert AnisoMag.from_warp([1.01, 0.003, 0.002, 0.99]).isclose(am)
    assert am.to_warp() == "1.01, 0.003, 0.002, 0.99"
    with pytest.raises(InvalidValueError, match="Warp 1"):
        AnisoMag.from_warp("1, 1, 0")


def test_warp1_has_opposite_rotation_sense() -> None:
    # X along (cos θ, sin θ): the lowest-magnification direction (largest true pixel).
    am = AnisoMag.from_warp1(1.02, 0.98, 30.0, pixel_size_a=1.0)
    assert am.major_axis_deg == pytest.approx(150.0, abs=1e-9)  # MotionCor angle = −θ
    w = am.to_warp1(1.0)
    assert w.pixel_x_a == pytest.approx(1.02) and w.pixel_y_a == pytest.approx(0.98)
    assert w.angle_deg == pytest.approx(30.0)


# --- round trips ------------------------------------------------------------------------------

aniso_matrices = st.builds(
    lambda s1, ratio, axis, rot_deg: (
        rot(axis) @ np.diag([s1, s1 / ratio]) @ rot(-axis) @ rot(rot_deg)
    ),
    st.floats(0.8, 1.25),
    st.floats(1.0, 1.15),
    st.floats(-180, 180),
    st.floats(-2, 2),
)


@settings(max_examples=200, deadline=None)
@given(d=aniso_matrices)
def test_full_matrix_formats_round_trip(d: np.ndarray) -> None:
    for name in ("cryosparc", "relion", "warp", "matrix"):
        value = convert(d, source="matrix", target=name)
        back = convert(value, source=name, target="matrix")
        np.testing.assert_allclose(back, d, atol=1e-9)


@settings(max_examples=200, deadline=None)
@given(d=aniso_matrices)
def test_symmetric_formats_round_trip_the_symmetric_part(d: np.ndarray) -> None:
    am = AnisoMag(d)
    p = am.symmetric_part
    assume(am.anisotropy_percent > 1e-4)  # the axis is undefined for isotropic D
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LossyConversionWarning)
        for name in ("motioncor2", "cistem"):
            value = convert(d, source="matrix", target=name)
            back = convert(value, source=name, target="matrix")
            np.testing.assert_allclose(back, p.distortion, atol=1e-9)
        w1 = am.to_warp1(1.3)
    assert AnisoMag.from_warp1(*w1, pixel_size_a=1.3).isclose(p, atol=1e-9)
    mc = p.to_motioncor()
    assert mc.major >= mc.minor
    assert 0.0 <= mc.angle_deg < 180.0


@settings(max_examples=100, deadline=None)
@given(d=aniso_matrices, a=st.floats(0.5, 3.0), b=st.floats(0.5, 3.0))
def test_frame_changes(d: np.ndarray, a: float, b: float) -> None:
    am = AnisoMag(d)
    assert am.flip_y().flip_y() == am
    if am.anisotropy_percent > 1e-3:
        flipped = am.flip_y().major_axis_deg
        assert math.isclose((flipped + am.major_axis_deg) % 180, 0, abs_tol=1e-6) or math.isclose(
            (flipped + am.major_axis_deg) % 180, 180, abs_tol=1e-6
        )
    assume(0.25 < np.linalg.svd(d * b / a, compute_uv=False).min())
    assume(np.linalg.svd(d * b / a, compute_uv=False).max() < 4)
    r = am.rescale(a, b)
    assert r.anisotropy_percent == pytest.approx(am.anisotropy_percent, abs=1e-9)
    assert r.pixel_size_scale == pytest.approx(am.pixel_size_scale * a / b, rel=1e-12)


def test_properties_are_immutable_and_picklable() -> None:
    am = AnisoMag.from_cryosparc(FORUM_M)
    with pytest.raises(AttributeError):
        am.foo = 1  # type: ignore[attr-defined]
    d = am.distortion
    d[0, 0] = 99
    assert am.distortion[0, 0] != 99
    assert pickle.loads(pickle.dumps(am)) == am
    assert hash(am) == hash(AnisoMag(am.distortion))


def test_rotation_part_warns_on_symmetric_export() -> None:
    am = AnisoMag(rot(1.0) @ np.diag([1.01, 0.99]))
    assert am.rotation_deg == pytest.approx(1.0, abs=1e-9)
    with pytest.warns(LossyConversionWarning, match="rotation"):
        am.to_motioncor()
    with pytest.warns(LossyConversionWarning):
        am.to_cistem()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        AnisoMag.from_cryosparc(FORUM_M).to_motioncor()  # 0.023° is negligible


# --- images -----------------------------------------------------------------------------------


def smooth_image(ny: int, nx: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    f = np.fft.rfft2(rng.normal(size=(ny, nx)))
    ky = np.fft.fftfreq(ny)[:, None]
    kx = np.fft.rfftfreq(nx)[None, :]
    f *= np.exp(-(kx**2 + ky**2) / (2 * 0.05**2))
    return np.fft.irfft2(f, s=(ny, nx)).astype(np.float32)


@pytest.mark.parametrize("shape", [(128, 128), (97, 130)])
@pytest.mark.parametrize("order", [1, 3])
def test_correct_undoes_distort(shape: tuple[int, int], order: int) -> None:
    t = smooth_image(*shape)
    am = AnisoMag.from_motioncor(1.03, 0.97, 40.0)
    back = anisomag.correct(anisomag.distort(t, am, order=order), am, order=order)
    inner = (slice(12, -12), slice(12, -12))
    err = np.abs(back[inner] - t[inner]).max() / np.abs(t).max()
    assert err < (0.01 if order == 3 else 0.05)
    # without correction the images differ a lot
    assert np.abs(anisomag.distort(t, am)[inner] - t[inner]).max() / np.abs(t).max() > 0.1


def test_correct_matches_reference_warp_about_nx_half() -> None:
    t = smooth_image(64, 80)
    am = AnisoMag.from_cryosparc(FORUM_M * 5)
    d = am.distortion
    c = np.array([40.0, 32.0])  # (nx // 2, ny // 2)
    a = np.hstack([d, (c - d @ c)[:, None]])
    np.testing.assert_allclose(
        anisomag.correct(t, am), reference.warp_affine(t, a, t.shape, order=3), atol=1e-5
    )
    # a point feature at x_true moves to D·(x_true − c) + c when distorted
    img = np.zeros((64, 80), np.float32)
    img[20, 50] = 1.0
    obs = anisomag.distort(img, am, order=1, fill=0)
    expect = d @ (np.array([50.0, 20.0]) - c) + c
    yy, xx = np.mgrid[:64, :80]
    centroid = np.array([(obs * xx).sum(), (obs * yy).sum()]) / obs.sum()
    np.testing.assert_allclose(centroid, expect, atol=0.02)


def test_stack_and_dtypes() -> None:
    stack = np.stack([smooth_image(40, 48, s) for s in range(3)])
    am = AnisoMag.from_motioncor(1.02, 0.99, 10.0)
    out = anisomag.correct(stack, am)
    assert out.shape == stack.shape and out.dtype == np.float32
    np.testing.assert_array_equal(out[1], anisomag.correct(stack[1], am))
    assert anisomag.correct(stack.astype(np.float64), am).dtype == np.float64
    ints = (stack[0] * 100).astype(np.int16)
    assert anisomag.correct(ints, am).dtype == np.float32
    assert np.isfinite(out).all()


def test_fill_is_the_image_mean() -> None:
    img = np.full((32, 32), 3.0, np.float32)
    img[10:20, 10:20] = 5.0
    big = AnisoMag(np.diag([1.3, 1.3]))
    out = anisomag.correct(img, big, fill=None)
    assert out[0, 0] == pytest.approx(img.mean())
    assert anisomag.correct(img, big, fill=-1.0)[0, 0] == -1.0


# --- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "exc", "match"),
    [
        (lambda: AnisoMag([[1, 0], [0, np.nan]]), InvalidValueError, "finite"),
        (lambda: AnisoMag([[1, 0], [0, np.inf]]), InvalidValueError, "finite"),
        (lambda: AnisoMag([1, 0, 0]), ShapeError, r"\(2, 2\)"),
        (lambda: AnisoMag([[1, 0], [0, 0]]), InvalidValueError, "singular values"),
        (lambda: AnisoMag([[1, 0], [0, -1]]), InvalidValueError, "reflection"),
        (lambda: AnisoMag("abc"), InvalidTypeError, "distortion"),
        (lambda: AnisoMag.from_relion(FORUM_M), InvalidValueError, "identity"),
        (lambda: AnisoMag.from_cryosparc([[-1, 0], [0, -1]]), InvalidValueError, "singular"),
        (lambda: AnisoMag.from_motioncor(1.0, 0.0, 10), InvalidValueError, "> 0"),
        (lambda: AnisoMag.from_motioncor(-1.0, 1.0, 10), InvalidValueError, "> 0"),
        (lambda: AnisoMag.from_motioncor(1.0, 1.0, float("nan")), InvalidValueError, "finite"),
        (lambda: AnisoMag.from_cistem(10, 1.0, -0.5), InvalidValueError, "> 0"),
        (
            lambda: convert(FORUM_M, source="cryosparc", target="gctf"),
            UnknownConventionError,
            "known",
        ),
        (lambda: convert(FORUM_M, source=3, target="relion"), InvalidTypeError, "source"),
        (lambda: AnisoMag.from_cryosparc(FORUM_M).rescale(0, 1), InvalidValueError, "from_pixel_a"),
        (lambda: anisomag.correct(np.zeros((0, 4)), np.eye(2)), ShapeError, "non-empty"),
        (lambda: anisomag.correct(np.full((4, 4), np.nan), np.eye(2)), InvalidValueError, "NaN"),
        (lambda: anisomag.correct(np.zeros((4, 4)), "x"), InvalidTypeError, "am"),
        (
            lambda: anisomag.correct(np.zeros((4, 4)), np.eye(2), order=2),
            InvalidValueError,
            "order",
        ),
        (lambda: anisomag.correct(np.zeros((2, 2, 2, 2)), np.eye(2)), ShapeError, "image"),
    ],
)
def test_bad_input(call, exc: type, match: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(exc, match=match):
        call()


def test_implausible_anisotropy_warns() -> None:
    with pytest.warns(ImplausibleValueWarning, match="implausible"):
        AnisoMag.from_motioncor(1.3, 1.0, 0.0)


def test_bad_input_is_also_a_builtin_exception() -> None:
    with pytest.raises(ValueError):
        AnisoMag([[1, 0], [0, -1]])
    with pytest.raises(KeyError):
        convert(FORUM_M, source="nope", target="relion")
