"""Log-polar kernels: Rust == numpy reference, coordinate conventions, peers, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emgeom import _core
from emgeom import transform as tr
from emgeom.errors import InvalidTypeError, InvalidValueError, ShapeError
from emgeom.reference import logpolar as ref


def _blobs(
    shape: tuple[int, int], pts: list[tuple[float, float]], sigma: float = 1.5
) -> np.ndarray:
    ny, nx = shape
    yy, xx = np.mgrid[0:ny, 0:nx].astype(np.float64)
    img = np.zeros(shape)
    for x, y in pts:
        img += np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma * sigma))
    return img.astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Rust == reference


@settings(max_examples=40, deadline=None)
@given(
    ny=st.integers(1, 33),
    nx=st.integers(1, 33),
    na=st.integers(1, 40),
    nr=st.integers(1, 20),
    cxf=st.floats(-0.3, 1.3),
    cyf=st.floats(-0.3, 1.3),
    r_min=st.floats(0.05, 5.0),
    span=st.floats(0.0, 30.0),
    order=st.sampled_from([1, 3]),
    seed=st.integers(0, 2**16),
)
def test_log_polar_matches_reference(ny, nx, na, nr, cxf, cyf, r_min, span, order, seed):
    img = np.random.default_rng(seed).normal(size=(ny, nx)).astype(np.float32)
    c = (cxf * (nx - 1), cyf * (ny - 1))
    got = tr.log_polar(img, c, (na, nr), r_min, r_min + span, order)
    exp = ref.log_polar(img, c, (na, nr), r_min, r_min + span, order)
    assert got.shape == (na, nr) and got.dtype == np.float32
    np.testing.assert_allclose(got, exp, atol=2e-5 * (1 + np.abs(img).max()) * 4)


@settings(max_examples=40, deadline=None)
@given(
    ny=st.integers(1, 24),
    nx=st.integers(1, 24),
    na=st.integers(1, 30),
    nr=st.integers(1, 12),
    r_min=st.floats(0.01, 0.3),
    span=st.floats(0.0, 0.5),
    order=st.sampled_from([1, 3]),
    emphasis=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_half_spectrum_matches_reference(ny, nx, na, nr, r_min, span, order, emphasis, seed):
    img = np.random.default_rng(seed).normal(size=(ny, nx))
    mag = np.abs(np.fft.rfft2(img)).astype(np.float32)
    hi = min(0.7, r_min + span)
    got = tr.log_polar_spectrum(mag, nx, (na, nr), r_min, hi, order, emphasis=emphasis)
    exp = ref.log_polar_half_spectrum(mag, nx, (na, nr), r_min, hi, order, emphasis)
    np.testing.assert_allclose(got, exp, atol=1e-4 * (1 + mag.max()))


@pytest.mark.parametrize(
    ("shape", "order", "taper", "mag", "emph"),
    [
        ((64, 64), 1, 0.5, "abs", False),
        ((50, 37), 3, 0.1, "log", True),
        ((31, 48), 1, 0.25, "abs", True),
    ],
)
def test_fm_descriptor_matches_reference(shape, order, taper, mag, emph):
    img = np.random.default_rng(3).normal(size=shape).astype(np.float32) + 5
    grid = _core.LogPolarGrid(n_angle=45, n_radius=20, r_min=0.03, r_max=0.45)
    got = _core.fm_log_polar(
        img, grid, order=order, taper_fraction=taper, magnitude=mag, emphasis=emph
    )
    exp = ref.spectrum_log_polar(img, (45, 20), 0.03, 0.45, order, taper, mag, emph)
    np.testing.assert_allclose(got, exp, atol=2e-4 * np.abs(exp).max())


def test_tukey_and_apodize_reference_agree_with_definition():
    w = ref.tukey(10, 0.2)  # ramps of 2 samples
    np.testing.assert_allclose(
        w[:3], [0.5 - 0.5 * math.cos(math.pi * 0.25), 0.5 + 0.5 * math.sqrt(0.5), 1]
    )
    assert w[4] == 1.0 and np.allclose(w, w[::-1])
    a = ref.apodize(np.full((6, 6), 3.0), 0.5)
    assert np.allclose(a, 0.0)


# ---------------------------------------------------------------------------------------------
# conventions


def test_angle_axis_is_rows_clockwise_as_displayed_and_radius_is_columns():
    shape = (81, 81)
    c = (40.0, 40.0)
    # one blob right of the centre (θ = 0), one below it (y down: θ = 90°, clockwise on screen)
    for (x, y), theta in [((52.0, 40.0), 0.0), ((40.0, 52.0), 90.0), ((28.0, 40.0), 180.0)]:
        img = _blobs(shape, [(x, y)])
        lp = tr.log_polar(img, c, (360, 64), 2.0, 38.0)
        i, j = np.unravel_index(np.argmax(lp), lp.shape)
        angles, radii = tr.log_polar_grid((360, 64), 2.0, 38.0)
        assert abs(angles[i] - theta) <= 1.0
        assert abs(radii[j] - 12.0) < 0.6


def test_rotation_and_magnification_become_shifts():
    shape = (129, 129)
    c = np.array([64.0, 64.0])
    pts = [(64 + 20 * math.cos(a), 64 + 14 * math.sin(2 * a) + 3) for a in (0.3, 1.9, 4.0)]
    ref_img = _blobs(shape, pts, 2.0)
    alpha, k = 30.0, 1.3
    rot = np.array(
        [
            [math.cos(math.radians(alpha)), -math.sin(math.radians(alpha))],
            [math.sin(math.radians(alpha)), math.cos(math.radians(alpha))],
        ]
    )
    # moving(x) = reference(R(α)ᵀ x / k): rotated by +α (clockwise as displayed), magnified k
    mov_pts = [tuple(c + k * rot @ (np.array(p) - c)) for p in pts]
    mov = _blobs(shape, mov_pts, 2.0 * k)
    na, nr, lo, hi = 360, 128, 3.0, 60.0
    a = tr.log_polar(ref_img, tuple(c), (na, nr), lo, hi, 3)
    b = tr.log_polar(mov, tuple(c), (na, nr), lo, hi, 3)
    d = math.log(hi / lo) / (nr - 1)
    # lp_moving[i, j] = lp_reference[i − α/Δθ, j − ln k / Δ]
    fa, fb = np.fft.fft2(a), np.fft.fft2(b)
    xc = np.real(np.fft.ifft2(fb * np.conj(fa)))
    si, sj = np.unravel_index(np.argmax(xc), xc.shape)
    si = si if si <= na // 2 else si - na
    sj = sj if sj <= nr // 2 else sj - nr
    assert abs(si - alpha) <= 1
    assert abs(sj - math.log(k) / d) <= 1.0


def test_spectrum_log_polar_of_rotated_scaled_image_is_shifted():
    n = 256
    c = (n - 1) / 2
    rng = np.random.default_rng(0)
    pts = [(c + rng.uniform(-70, 70), c + rng.uniform(-70, 70)) for _ in range(40)]
    a = _blobs((n, n), pts, 1.2)
    alpha, k = 25.0, 1.2
    t = math.radians(alpha)
    rot = np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])
    b = _blobs(
        (n, n), [tuple(np.array([c, c]) + k * rot @ (np.array(p) - c)) for p in pts], 1.2 * k
    )
    na, nr, lo, hi = 180, 96, 0.02, 0.4
    fa = np.abs(np.fft.rfft2(a)).astype(np.float32)
    fb = np.abs(np.fft.rfft2(b)).astype(np.float32)
    la = tr.log_polar_spectrum(fa, n, (na, nr), lo, hi)
    lb = tr.log_polar_spectrum(fb, n, (na, nr), lo, hi)
    # the spectrum turns with the image (+α rows) and shrinks by k (−ln k / Δ columns)
    xc = np.real(np.fft.ifft2(np.fft.fft2(lb) * np.conj(np.fft.fft2(la))))
    si, sj = np.unravel_index(np.argmax(xc), xc.shape)
    si = si if si <= na // 2 else si - na
    sj = sj if sj <= nr // 2 else sj - nr
    d = math.log(hi / lo) / (nr - 1)
    assert abs(si - alpha) <= 1
    assert abs(sj + math.log(k) / d) <= 1.0


def test_half_spectrum_equals_full_circle_of_centred_spectrum():
    # Hermitian symmetry: the half-plane transform equals the first half of a full-circle
    # log-polar of the fftshift-ed full magnitude (even sizes: centre at n/2).
    img = np.random.default_rng(1).normal(size=(64, 64))
    full = np.fft.fftshift(np.abs(np.fft.fft2(img))).astype(np.float32)
    half = np.abs(np.fft.rfft2(img)).astype(np.float32)
    lp_half = tr.log_polar_spectrum(half, 64, (90, 20), 0.05, 0.45)
    lp_full = tr.log_polar(full, (32.0, 32.0), (180, 20), 0.05 * 64, 0.45 * 64)
    np.testing.assert_allclose(lp_half, lp_full[:90], rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(lp_half, lp_full[90:], rtol=1e-4, atol=1e-3)


def test_same_layout_and_angle_sense_as_cv2_warp_polar():
    cv2 = pytest.importorskip("cv2")
    n = 256
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float64)
    c = (127.5, 127.5)
    w, h, max_r = 96, 360, 120.0
    flags = cv2.WARP_POLAR_LOG | cv2.INTER_LINEAR | cv2.WARP_FILL_OUTLIERS
    # linear images x − cx and y − cy: bilinear sampling is exact, so the outputs are
    # r·cos θ and r·sin θ on each program's own grid
    gx = (xx - c[0]).astype(np.float32)
    gy = (yy - c[1]).astype(np.float32)
    cx_, cy_ = (
        cv2.warpPolar(gx, (w, h), c, max_r, flags),
        cv2.warpPolar(gy, (w, h), c, max_r, flags),
    )
    ox, oy = tr.log_polar(gx, c, (h, w), 1.0, 100.0), tr.log_polar(gy, c, (h, w), 1.0, 100.0)
    angles, radii = tr.log_polar_grid((h, w), 1.0, 100.0)
    th_cv2 = np.degrees(np.arctan2(cy_[:, 40], cx_[:, 40])) % 360
    th_ours = np.degrees(np.arctan2(oy[:, 40], ox[:, 40])) % 360
    # rows = angle, same origin and sense (clockwise as displayed) in both
    np.testing.assert_allclose(th_ours, angles, atol=0.01)
    d = (th_cv2 - angles + 180) % 360 - 180
    assert np.abs(d).max() < 0.2
    np.testing.assert_allclose(np.hypot(ox[0], oy[0]), radii, rtol=1e-4)
    # cv2's radius grid (documented in docs/conventions.md): exp(j·ln(maxR)/W) − 1
    r_cv2 = np.hypot(cx_[0], cy_[0])
    j = np.arange(w)
    np.testing.assert_allclose(r_cv2[1:], np.exp(j * math.log(max_r) / w)[1:] - 1, rtol=2e-3)


# ---------------------------------------------------------------------------------------------
# defaults and errors


def test_defaults():
    img = np.ones((21, 31), dtype=np.float64)
    lp = tr.log_polar(img)
    # centre (15, 10), r_max = 10 → shape (ceil(2π·10), 10); inside the image: all ones
    assert lp.shape == (63, 10)
    np.testing.assert_allclose(lp, 1.0, atol=1e-6)
    angles, radii = tr.log_polar_grid((4, 3), 1.0, 4.0, half=True)
    np.testing.assert_allclose(angles, [0, 45, 90, 135])
    np.testing.assert_allclose(radii, [1, 2, 4])


def test_outside_is_zero_and_uint_is_accepted():
    img = np.full((10, 10), 7, dtype=np.uint16)
    lp = tr.log_polar(img, (4.5, 4.5), (16, 8), 1.0, 40.0)
    assert lp[:, 0].min() == pytest.approx(7.0)
    assert np.all(lp[:, -1] == 0.0)


def test_errors():
    img = np.zeros((8, 8), dtype=np.float32)
    with pytest.raises(InvalidValueError, match="order"):
        tr.log_polar(img, order=2)
    with pytest.raises(InvalidValueError, match="r_max"):
        tr.log_polar(img, r_min=3.0, r_max=2.0)
    with pytest.raises(InvalidValueError, match="r_min"):
        tr.log_polar(img, r_min=0.0)
    with pytest.raises(InvalidValueError, match="output_shape"):
        tr.log_polar(img, output_shape=(0, 3))
    with pytest.raises(InvalidValueError, match="NaN"):
        tr.log_polar(np.full((4, 4), np.nan))
    with pytest.raises(InvalidTypeError):
        tr.log_polar(np.zeros((4, 4), dtype=complex))
    with pytest.raises(ShapeError, match="columns"):
        tr.log_polar_spectrum(np.zeros((8, 4)), 8, (4, 4))
    with pytest.raises(InvalidValueError, match="center"):
        tr.log_polar(img, center=(np.inf, 1.0))
