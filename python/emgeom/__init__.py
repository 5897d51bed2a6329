"""emgeom: cryo-EM geometry conventions done right, fast.

Subpackages and modules (all imported with ``import emgeom``; each listed in ``__all__`` has an
API page):

* :mod:`emgeom.anisomag`: anisotropic magnification in every program's convention.
* :mod:`emgeom.tilt`: tilt-series geometry in one canonical model, handedness, remapping.
* :mod:`emgeom.crossmag`: cross-magnification alignment.
* :mod:`emgeom.serialem`: SerialEM Navigator geometry.
* :mod:`emgeom.io`: file formats (the only place with µm, nm and radians).
* :mod:`emgeom.resample`, :mod:`emgeom.transform`: affine resampling and log-polar kernels (Rust).
* :mod:`emgeom.dask`: the same kernels over dask arrays (optional extra).
* :mod:`emgeom.simulate`, :mod:`emgeom.synthetic`: simulated data with a known truth.
* :mod:`emgeom.reference`: numpy oracles of the Rust kernels.
* :mod:`emgeom.conventions`: the registry of named conventions with their sources.
* :mod:`emgeom.errors`: exceptions and warnings.

Layers (dependencies point one way): :mod:`emgeom.model` → :mod:`emgeom.io` → workflows →
:mod:`emgeom.cli`.

Conventions used everywhere: images are numpy ``(y, x)`` arrays (stacks ``(n, y, x)``);
coordinates and vectors are ``(x, y[, z])``; lengths in Å, angles in degrees.

>>> import emgeom
>>> emgeom.tilt.TiltGeometry.__module__
'emgeom.model.geometry'
"""

from __future__ import annotations

from emgeom import (
    anisomag,
    conventions,
    crossmag,
    dask,
    errors,
    io,
    reference,
    resample,
    serialem,
    simulate,
    synthetic,
    tilt,
    transform,
)
from emgeom._core import __version__ as _core_version

__version__: str = "0.1.0"
"""The emgeom version; the compiled ``emgeom._core`` must have the same."""

__all__ = [
    "__version__",
    "anisomag",
    "conventions",
    "crossmag",
    "dask",
    "errors",
    "io",
    "reference",
    "resample",
    "serialem",
    "simulate",
    "synthetic",
    "tilt",
    "transform",
]

if _core_version != __version__:  # pragma: no cover - packaging error
    raise ImportError(
        f"emgeom._core version {_core_version} does not match emgeom {__version__}; "
        "reinstall emgeom"
    )
