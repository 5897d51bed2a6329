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
from numpy.typing import NDArray

from emgeom._validate import require
from emgeom.anisomag import AnisoMag
from emgeom.errors import EmgeomFileError, EmgeomWarning, FileFormatError, InvalidValueError
from emgeom.io.atomic import file_error

__all__ = ["read_cryosparc_anisomag"]

_NUMPY_MAGIC = b"\x93NUMPY"
#: cryoem-uoft/cryosparc-tools ``cryosparc/dataset/__init__.py``, ``FORMAT_MAGIC_PREFIXES``
_CSDAT_MAGIC = b"\x95CSDAT"


def _load_fields(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            magic = fh.read(8)
    except OSError as exc:
        raise file_error(path, exc, "read") from None
    if magic.startswith(_NUMPY_MAGIC):
        try:
            arr = np.load(path, allow_pickle=False)
        except OSError as exc:
            raise file_error(path, exc, "read") from None
        except Exception as exc:  # numpy raises ValueError, EOFError, TypeError, ... on bad data
            raise FileFormatError(
                f"{path}: not a readable cryoSPARC .cs file ({type(exc).__name__}: "
                f"{' '.join(str(exc).split())[:200]})"
            ) from None
        if not isinstance(arr, np.ndarray) or arr.dtype.names is None:
            raise FileFormatError(f"{path}: expected a structured array (cryoSPARC .cs)")
        return {name: arr[name] for name in arr.dtype.names}
    if not magic.startswith(_CSDAT_MAGIC):
        raise FileFormatError(
            f"{path}: not a cryoSPARC .cs file (neither the NumPy nor the CSDAT format)"
        )
    dataset_mod = require("cryosparc.dataset", "cryosparc")
    try:
        ds = dataset_mod.Dataset.load(path)
    except Exception as exc:
        raise FileFormatError(f"{path}: not a readable cryoSPARC .cs file ({exc})") from None
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
    if os.path.isdir(p):
        raise EmgeomFileError(f"{p}: is a folder, expected a cryoSPARC .cs file")
    if not os.path.isfile(p):
        raise EmgeomFileError(f"{p}: no such file")
    fields = _load_fields(p)
    if "ctf/anisomag" not in fields:
        raise FileFormatError(
            f"{p}: no 'ctf/anisomag' field (fields: {', '.join(sorted(fields)) or 'none'}); "
            "export particles after Global CTF Refinement with anisotropic magnification"
        )
    m = _numeric(fields["ctf/anisomag"], p, "ctf/anisomag")
    if m.ndim != 2 or m.shape[1] != 4:
        raise FileFormatError(f"{p}: 'ctf/anisomag' has shape {m.shape}, expected (N, 4)")
    if len(m) == 0:
        raise FileFormatError(f"{p}: the file has no rows")
    if not np.isfinite(m).all():
        raise FileFormatError(f"{p}: 'ctf/anisomag' has NaN or inf values")
    groups = _numeric(fields.get("ctf/exp_group_id", np.zeros(len(m))), p, "ctf/exp_group_id")
    if (
        groups.shape != (len(m),)
        or not np.isfinite(groups).all()
        or (groups != np.round(groups)).any()
    ):
        raise FileFormatError(f"{p}: 'ctf/exp_group_id' must hold one integer per row")
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
        try:
            out[int(g)] = AnisoMag.from_cryosparc(med)
        except InvalidValueError as exc:
            raise FileFormatError(f"{p}: exposure group {int(g)}: {exc}") from None
    return out


def _numeric(values: Any, path: str, field: str) -> NDArray[np.float64]:
    arr = np.asarray(values)
    if arr.dtype.kind not in "fiub":
        raise FileFormatError(f"{path}: field {field!r} is not numeric (dtype {arr.dtype})")
    return np.asarray(arr, dtype=np.float64)
