"""The binding boundary's structure (rust/bindings): files named after the kernel they wrap,
every shim releases the GIL through the one guarded path, errors go through the one mapping,
no argument-list shims, and the stub declares exactly what the module exports.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from emgeom import _core, errors

REPO = Path(__file__).resolve().parents[2]
BINDINGS = REPO / "rust" / "bindings"
KERNELS = REPO / "rust" / "kernels" / "src"
SHARED = {"lib.rs", "common.rs"}

pytestmark = pytest.mark.skipif(not BINDINGS.is_dir(), reason="needs the source tree")


def _shim_files() -> list[Path]:
    return sorted(p for p in BINDINGS.glob("*.rs") if p.name not in SHARED)


def _functions(text: str) -> dict[str, tuple[bool, str]]:
    """``name -> (is a #[pyfunction], body)`` of every fn (body = up to the next item)."""
    out = {}
    for m in re.finditer(r"(#\[pyfunction\][^{]*?)?\bfn (\w+)", text, flags=re.S):
        rest = text[m.end() :]
        end = re.search(r"\n(?:#\[|pub fn |fn |struct |impl |type |macro_rules)", rest)
        out[m.group(2)] = (m.group(1) is not None, rest[: end.start() if end else len(rest)])
    return out


def _pyfunctions(text: str) -> list[tuple[str, str]]:
    return [(n, body) for n, (py, body) in _functions(text).items() if py]


def _releases_gil(name: str, fns: dict[str, tuple[bool, str]], depth: int = 0) -> bool:
    """The fn calls run_parallel/run_detached, itself or through a helper of the same file."""
    body = fns[name][1]
    if re.search(r"\brun_(parallel|detached)\(", body):
        return True
    calls = set(re.findall(r"\b(\w+)\(", body)) & set(fns) - {name}
    return depth < 3 and any(_releases_gil(c, fns, depth + 1) for c in calls)


def test_binding_files_are_named_after_the_kernel_they_wrap():
    for f in _shim_files():
        kernel = KERNELS / f.name
        assert kernel.is_file() or (KERNELS / f.stem).is_dir(), f"{f.name}: no such kernel"
        assert f"emgeom_kernels::{f.stem}" in f.read_text("utf-8"), f"{f.name} wraps another"


def test_every_shim_releases_the_gil_in_the_guard():
    bad, n_shims = [], 0
    for f in _shim_files():
        fns = _functions(f.read_text("utf-8"))
        shims = [n for n, (py, _) in fns.items() if py]
        n_shims += len(shims)
        bad += [f"{f.name}::{n}" for n in shims if not _releases_gil(n, fns)]
    assert n_shims >= 18
    assert bad == []


def test_errors_only_through_the_one_mapping_and_no_argument_list_shims():
    for f in [*_shim_files(), BINDINGS / "lib.rs"]:
        text = f.read_text("utf-8")
        assert "exceptions::" not in text, f"{f.name} raises a Python exception directly"
        assert "too_many_arguments" not in text, f.name
        assert not re.search(r"_f(32|64)\b", "\n".join(n for n, _ in _pyfunctions(text)))


def test_stub_all_is_the_runtime_all():
    stub = (Path(_core.__file__).parent / "_core.pyi").read_text("utf-8")
    block = re.search(r"__all__ = \[(.*?)\]", stub, flags=re.S)
    assert block is not None
    assert sorted(re.findall(r'"(\w+)"', block.group(1))) == sorted(_core.__all__)


def test_parameter_types_are_frozen_and_keyword_only():
    grid = _core.LogPolarGrid(n_angle=8, n_radius=4, r_min=1.0, r_max=5.0)
    assert (grid.n_angle, grid.n_radius, grid.r_min, grid.r_max) == (8, 4, 1.0, 5.0)
    with pytest.raises(AttributeError):
        grid.n_angle = 9  # type: ignore[misc]
    with pytest.raises(TypeError):
        _core.LogPolarGrid(8, 4, 1.0, 5.0)  # type: ignore[misc]
    region = _core.AllowedRegion(x0=0, x1=4, y0=0, y1=3)
    assert (region.cx, region.cy, region.radius) == (0.0, 0.0, -1.0)
    band = _core.Bandpass(sigma1=0.03, sigma2=0.05, radius1=0.0, radius2=0.25)
    setup = _core.CorrelationSetup(pad=(64, 64), taper=4.0, filter=band, method="phase")
    assert setup.method == "phase" and setup.filter.radius2 == 0.25


def test_bad_modes_and_shapes_raise_emgeom_errors():
    band = _core.Bandpass(sigma1=0.03, sigma2=0.05, radius1=0.0, radius2=0.25)
    with pytest.raises(errors.InvalidValueError, match="method"):
        _core.CorrelationSetup(pad=(8, 8), taper=1.0, filter=band, method="bogus")  # type: ignore[arg-type]
    img = np.zeros((1, 8, 8), np.float32)
    with pytest.raises(errors.InvalidValueError, match="affine"):
        _core.warp_affine(img, np.eye(3), output_shape=(8, 8), order=1)
    with pytest.raises(errors.InvalidValueError, match="order"):
        _core.warp_affine(img, np.eye(3)[:2], output_shape=(8, 8), order=2)  # type: ignore[arg-type]
    with pytest.raises(errors.InvalidValueError, match="score_affines"):
        _core.PatchSearch(
            half=(2, 2),
            taper=1.0,
            allowed=_core.AllowedRegion(x0=0, x1=4, y0=0, y1=4),
            peaks=_core.PeakSearch(n_peaks=1, min_separation=1.0),
            score_affines=np.zeros((1, 3, 3)),
        )


def test_one_shim_serves_both_dtypes():
    a = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 0.25]])
    for dtype in (np.float32, np.float64):
        img = np.arange(48, dtype=dtype).reshape(1, 6, 8)
        out = _core.warp_affine(img, a, output_shape=(6, 8), order=1, fill=0.0)
        assert out.dtype == dtype
        # interior sample (x, y) = (2, 3) reads (2.5, 3.25): bilinear of a linear ramp is exact
        assert out[0, 3, 2] == pytest.approx(3.25 * 8 + 2.5)
        small = _core.rescale_separable(img[0], output_shape=(3, 4), zoom=(0.5, 0.5), method="area")
        assert small.dtype == dtype and small.shape == (3, 4)
        # area of 2×2 blocks of a linear ramp: the block-centre value
        assert small[1, 1] == pytest.approx(float(img[0, 2:4, 2:4].mean()))
