"""Finite inputs never give NaN/inf results: every public numeric function of the image and
simulation modules, fed images of any finite magnitude (float32 and float64) and extreme finite
parameters, either returns finite values or raises an ``emgeom.errors`` exception.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emgeom import anisomag, resample, simulate, synthetic, transform
from emgeom.cli import main
from emgeom.errors import EmgeomError, EmgeomWarning

EXAMPLES = int(os.environ.get("EMGEOM_ROBUST_EXAMPLES", "200"))
_BASE = np.random.default_rng(3).normal(size=(48, 40))


def _image(exponent: int, float64: bool, shape: tuple[int, int]) -> np.ndarray:
    img = _BASE[: shape[0], : shape[1]] * 10.0**exponent
    return img if float64 else img.astype(np.float32)


IMAGE_CALLS = {
    "rescale area": lambda im: resample.rescale(im, 0.37, "area"),
    "rescale area x2": lambda im: resample.rescale(im, 2.0, "area"),
    "rescale fourier": lambda im: resample.rescale(im, 0.5, "fourier"),
    "rescale fourier x2": lambda im: resample.rescale(im, 2.0, "fourier"),
    "rescale lanczos3": lambda im: resample.rescale(im, 0.3, "lanczos3"),
    "rescale bicubic": lambda im: resample.rescale(im, 1.7, "bicubic"),
    "rescale bilinear": lambda im: resample.rescale(im, 0.8, "bilinear"),
    "warp_affine": lambda im: resample.warp_affine(im, [[1.1, 0.2, 3.0], [0.1, 0.9, -2.0]]),
    "warp_affine fill": lambda im: resample.warp_affine(im, np.eye(2, 3) * 2, fill=0.0, order=1),
    "correct": lambda im: anisomag.correct(im, [[1.02, 0.01], [0.0, 0.98]]),
    "distort": lambda im: anisomag.distort(im, [[1.02, 0.01], [0.0, 0.98]], order=1),
    "log_polar": lambda im: transform.log_polar(im, order=3),
    "log_polar_spectrum": lambda im: transform.log_polar_spectrum(
        np.abs(np.fft.rfft2(im)), im.shape[1], (16, 8), emphasis=True
    ),
}


def _finite_or_emgeom_error(call: Any) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EmgeomWarning)
        try:
            out = call()
        except EmgeomError:
            return
    arrays = out if isinstance(out, tuple) else (out,)
    for a in arrays:
        a = np.asarray(a)
        if a.dtype.kind in "fc":
            assert np.isfinite(a).all(), f"{np.count_nonzero(~np.isfinite(a))} non-finite values"


@pytest.mark.parametrize("name", sorted(IMAGE_CALLS))
def test_images_of_any_finite_magnitude(name) -> None:  # type: ignore[no-untyped-def]
    @settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None)
    @given(
        exponent=st.integers(-320, 308),
        float64=st.booleans(),
        shape=st.tuples(st.integers(2, 48), st.integers(2, 40)),
    )
    def run(exponent: int, float64: bool, shape: tuple[int, int]) -> None:
        if not float64 and not -45 <= exponent <= 38:
            exponent = max(-45, min(38, exponent))
        img = _image(exponent, float64, shape)
        if not np.isfinite(img).all():
            return
        _finite_or_emgeom_error(lambda: IMAGE_CALLS[name](img))

    run()


def test_fourier_rescale_of_huge_values_is_exact_in_scale() -> None:
    img = _image(0, False, (48, 40))
    ref = resample.rescale(img, 0.5, "fourier")
    big = resample.rescale(img * np.float32(1e34), 0.5, "fourier")
    assert np.isfinite(big).all()  # was all inf/NaN
    np.testing.assert_allclose(big / np.float32(1e34), ref, rtol=1e-5, atol=1e-6)
    huge = resample.rescale(img.astype(np.float64) * 1e36, 2.0, "fourier")
    assert np.isfinite(huge).all() and huge.dtype == np.float32
    with pytest.raises(ValueError, match="fourier"):
        resample.rescale(img.astype(np.float64) * 1e300, 0.5, "fourier")


finite = st.floats(allow_nan=False, allow_infinity=False)
SPECIMEN = synthetic.make_specimen((128, 128), 4.0, n_particles=5, n_contamination=1)
PARAM_CALLS: dict[str, tuple[Any, dict[str, Any]]] = {
    "make_specimen": (
        lambda **kw: synthetic.make_specimen((32, 32), n_particles=3, n_contamination=1, **kw),
        {
            "pixel_a": 4.0,
            "hole_diameter_a": 1000.0,
            "carbon": -0.5,
            "carbon_texture": 0.08,
            "particle_sigma_a": 24.0,
            "particle_amplitude": -0.1,
            "ice_gradient": 0.1,
        },
    ),
    "make_specimen lattice": (
        lambda **kw: synthetic.make_specimen((32, 32), holes="lattice", n_particles=0, **kw),
        {"pixel_a": 4.0, "hole_diameter_a": 100.0, "hole_pitch_a": 60.0},
    ),
    "acquire": (
        lambda **kw: synthetic.acquire(SPECIMEN, shape=(16, 16), allow_outside=True, **kw),
        {"pixel_a": 8.0, "rotation_deg": 5.0, "noise_sigma": 0.1},
    ),
}


@pytest.mark.parametrize("name", sorted(PARAM_CALLS))
def test_extreme_finite_parameters(name) -> None:  # type: ignore[no-untyped-def]
    func, valid = PARAM_CALLS[name]

    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(key=st.sampled_from(sorted(valid)), value=finite)
    def run(key: str, value: float) -> None:
        _finite_or_emgeom_error(lambda: func(**{**valid, key: value}).image)

    run()


def test_simulate_extreme_parameters() -> None:
    from emgeom.tilt import TiltGeometry

    geom = TiltGeometry(np.array([-30.0, 0.0, 30.0]), 85.0, 20000.0, hand=1, pixel_size_a=4.0)
    valid = {
        "voltage_kv": 300.0,
        "cs_mm": 2.7,
        "amplitude_contrast": 0.07,
        "dose_e_per_a2": 3.0,
        "snr": 0.3,
        "b_factor_a2": 150.0,
        "astigmatism_a": 0.0,
        "astigmatism_deg": 0.0,
        "defocus_step_a": 2000.0,
    }

    @settings(max_examples=EXAMPLES // 2, derandomize=True, deadline=None, database=None)
    @given(key=st.sampled_from(sorted(valid)), value=finite)
    def run(key: str, value: float) -> None:
        _finite_or_emgeom_error(
            lambda: simulate.simulate_tilt_series(
                geom, shape=(16, 16), seed=0, **{**valid, key: value}
            )
        )

    run()


def test_simulate_tiny_defocus_step_is_refused() -> None:
    from emgeom.tilt import TiltGeometry

    geom = TiltGeometry(np.array([-30.0, 0.0, 30.0]), 85.0, 20000.0, hand=1, pixel_size_a=4.0)
    with pytest.raises(ValueError, match="defocus_step_a"):
        simulate.simulate_tilt_series(geom, shape=(16, 16), defocus_step_a=1.1e-308)


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "-1", "0"])
def test_anisomag_convert_rejects_a_non_finite_determinant(value, capsys) -> None:  # type: ignore[no-untyped-def]
    forum = ["-0.00571369", "-0.00932393", "-0.01013075", "0.00451204"]
    argv = ["anisomag", "convert", "--from", "cryosparc", "--determinant", value, "--", *forum]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--determinant" in err[0]
