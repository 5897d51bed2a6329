"""Physical-chain tests: does each program's documented correction, fed emgeom's converted
parameters, undo a known distortion — and does the opposite reading fail?

A true specimen T is distorted analytically by a known D (``x_obs = D·x_true`` about the centre
c = (N/2, N/2)); nothing here uses emgeom's resampler to make the data. Each program's
correction is implemented in this file from that program's documented formula (sources in
emgeom.conventions.anisomag), independently of emgeom's converters:

* real-space programs (MotionCor2/3, cisTEM, emgeom.correct): Gaussian dots rendered at
  c + D·p_i, the program's resampling applied with scipy.ndimage.map_coordinates, dot centroids
  measured, and the map p_i → centroid fitted: it must be a pure (scaled) rotation, with the
  scale the program is documented to leave.
* Fourier-space programs (RELION, cryoSPARC, Warp 2 / M): a plane wave of known k_true is
  distorted analytically, its observed frequency k_obs measured from the image, and the
  program's documented relation between k_obs and k_true checked with emgeom's parameters.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage, optimize

from emgeom import anisomag
from emgeom.anisomag import AnisoMag

N = 256
C = np.array([N // 2, N // 2], dtype=float)  # (x, y) centre used by MotionCor3, cisTEM, RELION


def q(a_deg: float) -> np.ndarray:
    """Columns u = (cos a, -sin a), u_perp = (sin a, cos a)."""
    a = math.radians(a_deg)
    return np.array([[math.cos(a), math.sin(a)], [-math.sin(a), math.cos(a)]])


# A symmetric distortion of 4 % along 35° with a 0.3 % isotropic part: large enough that a
# wrong axis leaves an obvious residual.
D_TRUE = 1.003 * q(35.0) @ np.diag([0.98, 1.02]) @ q(35.0).T


def dots_true() -> np.ndarray:
    g = np.arange(-80, 81, 20, dtype=float)
    return np.array([(x, y) for x in g for y in g if x * x + y * y <= 85**2])


def render_dots(positions_xy: np.ndarray, sigma: float = 1.3) -> np.ndarray:
    yy, xx = np.mgrid[:N, :N].astype(float)
    img = np.zeros((N, N))
    for x, y in positions_xy:
        img += np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2))
    return img


def resample_with_content_map(img: np.ndarray, content_map: np.ndarray) -> np.ndarray:
    """out(x) = img(content_map⁻¹·(x − c) + c): content at x_in moves to content_map·x_in."""
    inv = np.linalg.inv(content_map)
    yy, xx = np.mgrid[:N, :N].astype(float)
    rel = np.stack([xx - C[0], yy - C[1]])
    src = np.tensordot(inv, rel, axes=1)
    coords = np.stack([src[1] + C[1], src[0] + C[0]])  # (row, col) for scipy
    return ndimage.map_coordinates(img, coords, order=3, mode="constant")


def measured_map(corrected: np.ndarray, p_true: np.ndarray, guess: np.ndarray) -> np.ndarray:
    """Fit L in (centroid − c) = L·p_true from dot centroids found near c + guess·p_true."""
    yy, xx = np.mgrid[:N, :N].astype(float)
    found = []
    for p in p_true:
        x0, y0 = C + guess @ p
        win = (np.abs(xx - x0) <= 5) & (np.abs(yy - y0) <= 5)
        w = np.where(win, np.clip(corrected, 0, None), 0.0)
        found.append([(w * xx).sum() / w.sum(), (w * yy).sum() / w.sum()])
    rel = np.array(found) - C
    sol, *_ = np.linalg.lstsq(p_true, rel, rcond=None)
    return np.asarray(sol.T)


def anisotropy(m: np.ndarray) -> float:
    s = np.linalg.svd(m, compute_uv=False)
    return float(s[0] / s[1] - 1)


@pytest.fixture(scope="module")
def observed() -> tuple[np.ndarray, np.ndarray]:
    p = dots_true()
    return p, render_dots(C + p @ D_TRUE.T)


def motioncor_content_map(major: float, minor: float, angle_deg: float) -> np.ndarray:
    # MotionCor3 CAlignParam::GetMagStretch: stretch s = major/minor, axis angle θ = −angle;
    # GStretch: S = R(θ)·diag(s, 1)·R(θ)ᵀ in (x, y) array coordinates; output(x) = input(S⁻¹x),
    # i.e. content is moved by S. R(θ) = [[cos θ, −sin θ], [sin θ, cos θ]].
    t = math.radians(-angle_deg)
    r = np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])
    return r @ np.diag([major / minor, 1.0]) @ r.T


def cistem_content_map(angle_deg: float, major: float, minor: float) -> np.ndarray:
    # cisTEM Image::CorrectMagnificationDistortion: output pixel d samples the input at
    # R(−φ)·diag(1/J, 1/N)·R(φ)·d, i.e. content is moved by R(−φ)·diag(J, N)·R(φ).
    def r(deg: float) -> np.ndarray:
        t = math.radians(deg)
        return np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])

    return r(-angle_deg) @ np.diag([major, minor]) @ r(angle_deg)


def test_motioncor_correction_recovers_true_image(observed) -> None:  # type: ignore[no-untyped-def]
    p, obs = observed
    mc = AnisoMag(D_TRUE).to_motioncor()
    s = motioncor_content_map(*mc)
    corrected = resample_with_content_map(obs, s)
    lmap = measured_map(corrected, p, s @ D_TRUE)
    assert anisotropy(lmap) < 5e-4  # the 4 % distortion is gone
    # MotionCor leaves an isotropic scale of `major` (its header pixel = p/major is then exact)
    np.testing.assert_allclose(lmap, mc.major * np.eye(2), atol=2e-3)


def test_motioncor_opposite_readings_fail(observed) -> None:  # type: ignore[no-untyped-def]
    p, obs = observed
    mc = AnisoMag(D_TRUE).to_motioncor()
    wrong_angles = {
        "axis + 90° (transposed/inverted matrix)": mc.angle_deg + 90,
        "angle sign flipped (y-up vs y-down)": -mc.angle_deg,
    }
    for why, angle in wrong_angles.items():
        s = motioncor_content_map(mc.major, mc.minor, angle)
        lmap = measured_map(resample_with_content_map(obs, s), p, s @ D_TRUE)
        assert anisotropy(lmap) > 0.02, why


def test_cistem_correction_recovers_true_image(observed) -> None:  # type: ignore[no-untyped-def]
    p, obs = observed
    ci = AnisoMag(D_TRUE).to_cistem()
    cmap = cistem_content_map(*ci)
    lmap = measured_map(resample_with_content_map(obs, cmap), p, cmap @ D_TRUE)
    np.testing.assert_allclose(lmap, np.eye(2), atol=2e-3)  # exact correction, true scale
    wrong = cistem_content_map(ci.angle_deg + 90, ci.major, ci.minor)
    lwrong = measured_map(resample_with_content_map(obs, wrong), p, wrong @ D_TRUE)
    assert anisotropy(lwrong) > 0.05


def test_emgeom_correct_recovers_true_image(observed) -> None:  # type: ignore[no-untyped-def]
    p, obs = observed
    corrected = anisomag.correct(obs, AnisoMag(D_TRUE))
    lmap = measured_map(corrected, p, np.eye(2))
    np.testing.assert_allclose(lmap, np.eye(2), atol=2e-3)
    wrong = anisomag.correct(obs, AnisoMag(D_TRUE).inverse())  # the opposite direction
    assert anisotropy(measured_map(wrong, p, np.linalg.inv(D_TRUE) @ D_TRUE)) > 0.05


# --- Fourier-space conventions ------------------------------------------------------------------

K_TRUE = [np.array([0.11, 0.05]), np.array([-0.04, 0.13]), np.array([0.09, -0.09])]


def measure_frequency(img: np.ndarray) -> np.ndarray:
    """Frequency (cycles/px, (k_x, k_y)) of a plane wave, to ~1e-6, by maximising |DFT|."""
    win = np.outer(np.hanning(N), np.hanning(N))
    f = np.abs(np.fft.fft2(img * win))
    iy, ix = np.unravel_index(np.argmax(f[:, : N // 2]), (N, N // 2))
    k0 = np.array([np.fft.fftfreq(N)[ix], np.fft.fftfreq(N)[iy]])
    yy, xx = np.mgrid[:N, :N].astype(float)
    data = img * win

    def neg_power(k: np.ndarray) -> float:
        return -float(np.abs(np.sum(data * np.exp(-2j * np.pi * (k[0] * xx + k[1] * yy)))))

    step = 0.25 / N  # well inside the main lobe (width ~ 2/N with the Hann window)
    simplex = np.array([k0, k0 + [step, 0.0], k0 + [0.0, step]])
    res = optimize.minimize(
        neg_power,
        k0,
        method="Nelder-Mead",
        options={"xatol": 1e-9, "fatol": 1e-12, "maxiter": 600, "initial_simplex": simplex},
    )
    return np.asarray(res.x)


def observed_plane_wave(k_true: np.ndarray, d: np.ndarray) -> np.ndarray:
    # O(x) = T(D⁻¹(x − c)) with T(x) = cos(2π k_true·x): analytic, no resampling.
    yy, xx = np.mgrid[:N, :N].astype(float)
    rel = np.stack([xx - C[0], yy - C[1]])
    src = np.tensordot(np.linalg.inv(d), rel, axes=1)
    return np.cos(2 * np.pi * (k_true[0] * src[0] + k_true[1] * src[1]))


@pytest.fixture(scope="module")
def measured_k() -> list[tuple[np.ndarray, np.ndarray]]:
    d = (
        1.002
        * q(-20.0)
        @ np.diag([0.97, 1.03])
        @ q(-20.0).T
        @ np.array([[math.cos(0.01), -math.sin(0.01)], [math.sin(0.01), math.cos(0.01)]])
    )
    pytest.d_fourier = d  # type: ignore[attr-defined]
    pairs = []
    for k in K_TRUE:
        k_obs = measure_frequency(observed_plane_wave(k, d))
        # a cosine is the same wave for ±k: report the sign closest to k_true
        pairs.append((k, k_obs if k_obs @ k > 0 else -k_obs))
    return pairs


def test_relion_reference_sampled_at_magmat_k_obs(measured_k) -> None:  # type: ignore[no-untyped-def]
    magmat = AnisoMag(pytest.d_fourier).to_relion()  # type: ignore[attr-defined]
    for k_true, k_obs in measured_k:
        # RELION (Projector::project, CTF::getCTF): the reference is evaluated at MagMat·k_obs
        np.testing.assert_allclose(magmat @ k_obs, k_true, atol=2e-5)
        assert np.abs(magmat.T @ k_obs - k_true).max() > 1e-3  # transposed reading fails


def test_cryosparc_identity_plus_m_maps_true_to_observed(measured_k) -> None:  # type: ignore[no-untyped-def]
    a = np.eye(2) + AnisoMag(pytest.d_fourier).to_cryosparc()  # type: ignore[attr-defined]
    for k_true, k_obs in measured_k:
        # H_A (passive Fourier transformation): k_obs = (I + M)·k_true
        np.testing.assert_allclose(a @ k_true, k_obs, atol=2e-5)
        # H_B (literal active reading, k_true = (I + M)·k_obs) must fail on the same data
        assert np.abs(a @ k_obs - k_true).max() > 1e-3


def test_warp_mag_same_semantics_as_relion(measured_k) -> None:  # type: ignore[no-untyped-def]
    text = AnisoMag(pytest.d_fourier).to_warp()  # type: ignore[attr-defined]
    m11, m21, m12, m22 = (float(v) for v in text.split(","))
    mag = np.array([[m11, m12], [m21, m22]])
    for k_true, k_obs in measured_k:
        # Warp 2 / M (MPARefine.cu): reference sampled at Mag·k_obs
        np.testing.assert_allclose(mag @ k_obs, k_true, atol=2e-5)
