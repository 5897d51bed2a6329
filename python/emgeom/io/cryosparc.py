"""cryoSPARC ``.cs`` files: read ``ctf/anisomag`` per exposure group.

``.cs`` files in the NumPy format are plain ``numpy.save`` structured arrays
(cryoem-uoft/cryosparc-tools ``cryosparc/dataset/__init__.py``: format detected from the first
bytes); the newer CSDAT stream format needs ``cryosparc-tools`` (optional extra
``emgeom[cryosparc]``). Fields used: ``ctf/anisomag`` (4 × float32, row-major, identity
subtracted) and ``ctf/exp_group_id``.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import numpy as np

from emgeom._validate import require
from emgeom.anisomag import AnisoMag
from emgeom.errors import EmgeomFileError, EmgeomWarning, FileFormatError

__all__ = ["read_cryosparc_anisomag"]

_NUMPY_MAGIC = b"\x93NUMPY"


def _load_fields(path: str) -> dict[str, Any]:
    with open(path, "rb") as fh:
        magic = fh.read(6)
    if magic == _NUMPY_MAGIC:
        try:
            arr = np.load(path, allow_pickle=False)
        except ValueError as exc:
            raise FileFormatError(f"{path}: not a readable cryoSPARC .cs file ({exc})") from exc
        if arr.dtype.names is None:
            raise FileFormatError(f"{path}: expected a structured array (cryoSPARC .cs)")
        return {name: arr[name] for name in arr.dtype.names}
    dataset_mod = require("cryosparc.dataset", "cryosparc")
    try:
        ds = dataset_mod.Dataset.load(path)
    except Exception as exc:
        raise FileFormatError(f"{path}: not a readable cryoSPARC .cs file ({exc})") from exc
    return {name: np.asarray(ds[name]) for name in ds.fields()}


def read_cryosparc_anisomag(path: str | os.PathLike[str]) -> dict[int, AnisoMag]:
    """Read the anisotropic magnification of each exposure group from a ``.cs`` file.

    Parameters
    ----------
    path : path-like
        A cryoSPARC particle (or exposure) ``.cs`` file with a ``ctf/anisomag`` field.

    Returns
    -------
    dict
        ``{exp_group_id: AnisoMag}`` (group 0 when the file has no ``ctf/exp_group_id``).
        cryoSPARC keeps anisomag constant within an exposure group; if rows of a group differ
        (more than float32 round-off), the median is used and an
        :class:`~emgeom.errors.EmgeomWarning` is emitted.
    """
    p = os.fspath(path)
    if not os.path.isfile(p):
        raise EmgeomFileError(f"{p}: no such file")
    fields = _load_fields(p)
    if "ctf/anisomag" not in fields:
        raise FileFormatError(
            f"{p}: no 'ctf/anisomag' field (fields: {', '.join(sorted(fields)) or 'none'}); "
            "export particles after Global CTF Refinement with anisotropic magnification"
        )
    m = np.asarray(fields["ctf/anisomag"], dtype=np.float64)
    if m.ndim != 2 or m.shape[1] != 4:
        raise FileFormatError(f"{p}: 'ctf/anisomag' has shape {m.shape}, expected (N, 4)")
    if len(m) == 0:
        raise FileFormatError(f"{p}: the file has no rows")
    groups = np.asarray(fields.get("ctf/exp_group_id", np.zeros(len(m), np.uint32)))
    out: dict[int, AnisoMag] = {}
    for g in np.unique(groups):
        rows = m[groups == g]
        med = np.median(rows, axis=0)
        if np.abs(rows - med).max() > 1e-6:
            warnings.warn(
                f"{p}: ctf/anisomag varies within exposure group {int(g)} "
                f"(max deviation {np.abs(rows - med).max():.2g}); using the median",
                EmgeomWarning,
                stacklevel=2,
            )
        out[int(g)] = AnisoMag.from_cryosparc(med)
    return out
