"""Dask helpers: emgeom's kernels over data sets larger than one call.

Dask is an optional extra (``pip install 'emgeom[dask]'``) imported only when these functions
run. The kernels release the GIL, so dask's default *threaded* scheduler already uses every
core; with ``distributed`` the same graphs run on a cluster (the inputs and results pickle).

* :func:`particle_defocus` — per-particle, per-tilt defocus over a ``dask.array`` of positions
  (``map_blocks``; one task per block of particles).
* :func:`align_pairs` — cross-magnification alignment of many image pairs as a ``dask.bag``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from emgeom import crossmag
from emgeom._validate import as_int, describe, real_array, require
from emgeom.errors import InvalidTypeError, InvalidValueError, ShapeError
from emgeom.io.mrc import read_mrc
from emgeom.tilt import TiltGeometry
from emgeom.tilt import particle_defocus as _kernel

__all__ = ["align_pairs", "particle_defocus"]


def particle_defocus(
    geometry: Any,
    positions_a: Any,
    *,
    dtype: Any = np.float32,
    component: str = "mean",
    threads_per_block: int | None = 1,
) -> Any:
    """Lazy ``(N, T)`` defocus (Å) for a ``dask.array`` of positions ``(N, 3)`` (x, y, z, Å).

    Parameters
    ----------
    geometry : emgeom.tilt.TiltGeometry
        The tilt series (pickled once into the graph).
    positions_a : dask.array.Array or array_like, shape (N, 3)
        Particle positions ``(x, y, z)`` in Å from the tomogram centre; chunked along N only
        (it is rechunked to one chunk along the last axis if needed). A numpy array is wrapped
        in chunks of 1,000,000 particles.
    dtype : float32 or float64
        Output type.
    component : {"mean", "u", "v"}
        As in :func:`emgeom.tilt.particle_defocus`.
    threads_per_block : int or None
        Kernel threads per task (default 1: dask runs one task per core; ``None`` lets each
        task use every core, for few large blocks).

    Returns
    -------
    dask.array.Array
        ``(N, T)`` defocus in Å (underfocus positive), chunked like ``positions_a`` along N.
    """
    da = require("dask.array", "dask")

    if not isinstance(geometry, TiltGeometry):
        raise InvalidTypeError(f"geometry: expected a TiltGeometry, got {describe(geometry)}")
    if isinstance(positions_a, da.Array):
        pos = positions_a
    else:
        arr = real_array(positions_a, "positions_a")
        if arr.ndim != 2 or arr.shape[1] != 3:
            raise ShapeError(f"positions_a: expected shape (N, 3), got {arr.shape}")
        pos = da.from_array(arr, chunks=(1_000_000, 3))
    if pos.ndim != 2 or pos.shape[1] != 3:
        raise ShapeError(f"positions_a: expected shape (N, 3), got {pos.shape}")
    if len(pos.chunks[1]) != 1:
        pos = pos.rechunk({1: 3})
    threads = (
        None
        if threads_per_block is None
        else as_int(threads_per_block, "threads_per_block", low=1, high=1024)
    )
    try:
        ok = not isinstance(dtype, np.ndarray) and np.dtype(dtype) in (np.float32, np.float64)
    except TypeError:
        ok = False
    if not ok:
        raise InvalidValueError(f"dtype: expected numpy.float32 or numpy.float64, got {dtype!r}")
    out_dtype = np.dtype(dtype)
    if not isinstance(component, str) or component not in ("mean", "u", "v"):
        raise InvalidValueError(f"component: expected 'mean', 'u' or 'v', got {component!r}")
    n_tilts = geometry.n_tilts

    def block(p: np.ndarray) -> np.ndarray:
        return _kernel(geometry, p, dtype=out_dtype, component=component, n_threads=threads)

    return pos.map_blocks(
        block,
        dtype=out_dtype,
        chunks=(pos.chunks[0], (n_tilts,)),
        meta=np.empty((0, 0), dtype=out_dtype),
    )


def _load(image: Any) -> tuple[Any, float | None]:
    if isinstance(image, str) or hasattr(image, "__fspath__"):
        mrc = read_mrc(image)
        return mrc.data, mrc.pixel_size_a
    return image, None


def _align_one(pair: Any, kwargs: dict[str, Any]) -> Any:

    if not isinstance(pair, tuple | list) or len(pair) != 2:
        raise InvalidTypeError(
            f"pairs: each item must be (reference, moving), got {describe(pair)}"
        )
    ref, ref_px = _load(pair[0])
    mov, mov_px = _load(pair[1])
    kw = dict(kwargs)
    if kw.get("reference_pixel_a") is None and ref_px is not None:
        kw["reference_pixel_a"] = ref_px
    if kw.get("moving_pixel_a") is None and mov_px is not None:
        kw["moving_pixel_a"] = mov_px
    kw.setdefault("n_threads", 1)
    return crossmag.align(ref, mov, **kw)


def align_pairs(
    pairs: Iterable[Any], *, npartitions: int | None = None, **align_kwargs: Any
) -> Any:
    """A ``dask.bag`` of :func:`emgeom.crossmag.align` results, one per ``(reference, moving)``.

    Parameters
    ----------
    pairs : iterable of (reference, moving)
        Each item is two ``(y, x)`` arrays or two MRC paths (pixel sizes then come from the
        headers unless given in ``align_kwargs``).
    npartitions : int, optional
        Bag partitions (default: one per pair, up to 100).
    **align_kwargs
        Passed to :func:`emgeom.crossmag.align` (``reference_pixel_a``, ``moving_pixel_a``,
        ``rotation_deg``, ...). ``n_threads`` defaults to 1 per task.

    Returns
    -------
    dask.bag.Bag
        Lazy results in input order; ``.compute()`` gives a list of alignment results.
    """
    db = require("dask.bag", "dask")
    items = list(pairs)
    n = npartitions if npartitions is not None else max(1, min(len(items), 100))
    n = as_int(n, "npartitions", low=1, high=max(1, len(items)))
    return db.from_sequence(items, npartitions=n).map(_align_one, align_kwargs)
