"""Cross-cutting guarantees: panics never reach Python, errors subclass built-ins, thread safety."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from emgeom import _core, anisomag, errors
from emgeom.anisomag import AnisoMag


def test_kernel_panic_becomes_internal_error() -> None:
    with pytest.raises(errors.InternalError, match="deliberate test panic"):
        _core._panic_in_kernel_for_tests()


def test_error_classes_subclass_builtins() -> None:
    assert issubclass(errors.InvalidValueError, ValueError)
    assert issubclass(errors.ShapeError, ValueError)
    assert issubclass(errors.InvalidTypeError, TypeError)
    assert issubclass(errors.FileFormatError, ValueError)
    assert issubclass(errors.EmgeomFileError, OSError)
    assert issubclass(errors.OutputExistsError, FileExistsError)
    assert issubclass(errors.MissingDependencyError, ImportError)
    assert issubclass(errors.InternalError, RuntimeError)
    for name in errors.__all__:
        cls = getattr(errors, name)
        assert issubclass(cls, errors.EmgeomError | errors.EmgeomWarning), name


def test_correct_from_many_threads_equals_one_thread() -> None:
    rng = np.random.default_rng(7)
    images = [rng.normal(size=(200, 230)).astype(np.float32) for _ in range(16)]
    am = AnisoMag.from_motioncor(1.02, 0.98, 25.0)
    expected = [anisomag.correct(img, am, n_threads=1) for img in images]
    with ThreadPoolExecutor(max_workers=8) as pool:
        got = list(pool.map(lambda img: anisomag.correct(img, am), images))
    for e, g in zip(expected, got, strict=True):
        np.testing.assert_array_equal(e, g)


def test_missing_optional_dependency_says_how_to_install() -> None:
    from emgeom._validate import require

    with pytest.raises(errors.MissingDependencyError, match=r"pip install 'emgeom\[nope\]'"):
        require("emgeom_module_that_does_not_exist", "nope")


def _same_from_8_threads(func, inputs) -> None:  # type: ignore[no-untyped-def]
    expected = [func(x) for x in inputs]
    with ThreadPoolExecutor(max_workers=8) as pool:
        got = list(pool.map(func, inputs))
    for e, g in zip(expected, got, strict=True):
        np.testing.assert_array_equal(e, g)


def test_kernels_from_8_threads_equal_one_thread() -> None:
    from emgeom import crossmag, resample, tilt, transform

    rng = np.random.default_rng(11)
    images = [rng.normal(size=(160, 170)).astype(np.float32) for _ in range(12)]
    _same_from_8_threads(lambda im: resample.rescale(im, 0.37, "area"), images)
    _same_from_8_threads(lambda im: resample.rescale(im, 0.6, "lanczos3"), images)
    _same_from_8_threads(
        lambda im: transform.log_polar(im, output_shape=(90, 60), r_max=70.0), images
    )
    _same_from_8_threads(
        lambda im: np.array(crossmag.correlate(im, np.ascontiguousarray(im[20:100, 30:110])).shift),
        images,
    )
    g = tilt.TiltGeometry(np.arange(-60.0, 61.0, 3.0), 85.0, 30000.0, hand=1)
    positions = [rng.uniform(-1000, 1000, size=(20_000, 3)) for _ in range(12)]
    _same_from_8_threads(lambda p: tilt.particle_defocus(g, p), positions)
