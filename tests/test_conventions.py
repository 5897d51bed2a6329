"""The convention registry: every entry has provenance, a documented example, and docs."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from emgeom import conventions
from emgeom.anisomag import AnisoMag
from emgeom.errors import InvalidValueError, UnknownConventionError

ROOT = Path(__file__).resolve().parents[1]

# One documented example per anisomag convention: (value as the program writes it, check).
# The checks restate each program's formula independently of emgeom's code.
ANISOMAG_EXAMPLES = {
    # cryoSPARC forum thread 12204: det(I + M) is the logged determinant; D = (I + M)^-T
    "cryosparc": (
        [-0.00571369, -0.00932393, -0.01013075, 0.00451204],
        lambda am: (
            math.isclose(1 / am.determinant, 0.99867812, abs_tol=2e-8)
            and np.allclose(
                am.distortion
                @ (np.eye(2) + np.array([[-0.00571369, -0.00932393], [-0.01013075, 0.00451204]])).T,
                np.eye(2),
                atol=1e-12,
            )
        ),
    ),
    # real RELION 3.1 optics group (cryoDRGN test data, opticsGroup5): D = MagMat^T
    "relion": (
        [[1.011472, 0.004231], [0.004560, 1.008858]],
        lambda am: np.array_equal(am.distortion, [[1.011472, 0.004560], [0.004231, 1.008858]]),
    ),
    # MotionCor3 -Mag help: stretch along the major axis at `angle` from x
    "motioncor2": (
        (1.011726, 0.989718, 58.875),
        lambda am: (
            math.isclose(am.major_axis_deg, 58.875, abs_tol=1e-9)
            and math.isclose(am.anisotropy_percent, 100 * (1.011726 / 0.989718 - 1), rel_tol=1e-9)
        ),
    ),
    # Grigorieff forum "angle definition": 19.6°, major 1.005, minor 0.995 (total ≈ 1.0 %)
    "cistem": (
        (19.6, 1.005, 0.995),
        lambda am: (
            math.isclose(am.major_axis_deg, 19.6, abs_tol=1e-9)
            and math.isclose(am.anisotropy_percent, 100 * (1.005 / 0.995 - 1), rel_tol=1e-9)
        ),
    ),
    # Warp 2 XML attribute, column-major M11, M21, M12, M22
    "warp": (
        "1.01, 0.003, 0.002, 0.99",
        lambda am: np.allclose(am.distortion, [[1.01, 0.003], [0.002, 0.99]], atol=1e-15),
    ),
    # Warp 1: X = 1.02 Å along θ = 30° (cos θ, sin θ), Y = 0.98 Å across, nominal 1.0 Å
    "warp1": (
        {"pixel_x_a": 1.02, "pixel_y_a": 0.98, "angle_deg": 30.0, "pixel_size_a": 1.0},
        lambda am: np.allclose(
            am.distortion @ [math.cos(math.radians(30)), math.sin(math.radians(30))],
            np.array([math.cos(math.radians(30)), math.sin(math.radians(30))]) / 1.02,
            atol=1e-14,
        ),
    ),
}


def test_every_anisomag_convention_has_an_example() -> None:
    assert set(conventions.names("anisomag")) == set(ANISOMAG_EXAMPLES)


@pytest.mark.parametrize("name", sorted(ANISOMAG_EXAMPLES))
def test_anisomag_convention_example(name: str) -> None:
    conv = conventions.get("anisomag", name)
    value, check = ANISOMAG_EXAMPLES[name]
    assert conv.to_canonical is not None and conv.from_canonical is not None
    am = AnisoMag(conv.to_canonical(value))
    assert check(am), name


@pytest.mark.parametrize("conv", list(conventions.all_conventions()), ids=lambda c: c.name)
def test_entry_has_provenance_and_is_documented(conv: conventions.Convention) -> None:
    assert conv.sources and all(s.where and s.program for s in conv.sources)
    assert conv.confidence in ("high", "medium", "low")
    assert conv.meaning and conv.parameters
    docs = (ROOT / "docs" / "conventions.md").read_text(encoding="utf-8")
    assert f"`{conv.name}`" in docs, f"docs/conventions.md lacks the {conv.name} entry"
    assert conv.sources[0].where.split(":")[0].split(" ")[0] in docs


def test_lookup_is_forgiving_about_case_and_aliases() -> None:
    assert conventions.get("anisomag", "MotionCor3").name == "motioncor2"
    assert conventions.get("anisomag", "mag_distortion_estimate").name == "cistem"
    assert conventions.get("anisomag", "CryoSPARC").name == "cryosparc"


def test_unknown_names_list_the_known_ones() -> None:
    with pytest.raises(UnknownConventionError, match="known: cistem, cryosparc"):
        conventions.get("anisomag", "gctf")


def test_registering_twice_is_refused() -> None:
    conv = conventions.get("anisomag", "relion")
    with pytest.raises(InvalidValueError, match="already registered"):
        conventions.register(conv)
