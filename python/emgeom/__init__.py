"""emgeom: cryo-EM geometry conventions done right, fast.

Submodules (imported lazily, so ``import emgeom`` is cheap):

* :mod:`emgeom.anisomag`: anisotropic magnification in every program's convention.
* :mod:`emgeom.resample`: affine resampling kernels (Rust).
* :mod:`emgeom.conventions`: the registry of named conventions with their sources.
* :mod:`emgeom.errors`: exceptions and warnings.

Conventions used everywhere: images are numpy ``(y, x)`` arrays (stacks ``(n, y, x)``);
coordinates and vectors are ``(x, y[, z])``; lengths in Å, angles in degrees.
"""

from __future__ import annotations

import importlib
from typing import Any

from emgeom._core import __version__ as _core_version

__version__ = "0.1.0"

_SUBMODULES = {
    "anisomag",
    "conventions",
    "crossmag",
    "dask",
    "errors",
    "io",
    "reference",
    "resample",
    "tilt",
    "transform",
}

__all__ = sorted(_SUBMODULES | {"__version__"})

if _core_version != __version__:  # pragma: no cover - packaging error
    raise ImportError(
        f"emgeom._core version {_core_version} does not match emgeom {__version__}; "
        "reinstall emgeom"
    )


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"emgeom.{name}")
    raise AttributeError(f"module 'emgeom' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
