"""RELION optics tables: read and write ``_rlnMagMat00/01/10/11`` per optics group.

``rlnMagMat00`` is "element 1,1" (row, column) of RELION's MagMat (3dem/relion
``src/metadata_label.h``); absent columns mean the identity (``ObservationModel``). Reading and
writing STAR files uses ``starfile`` through :mod:`emgeom.io.star` (the one STAR implementation).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from emgeom.anisomag import AnisoMag
from emgeom.errors import FileFormatError, InvalidTypeError, InvalidValueError
from emgeom.io._frames import starfile
from emgeom.io.atomic import atomic_output
from emgeom.io.star import read_star

__all__ = ["MAGMAT_COLUMNS", "read_relion_optics", "write_relion_optics"]

MAGMAT_COLUMNS = ("rlnMagMat00", "rlnMagMat01", "rlnMagMat10", "rlnMagMat11")


def _read_blocks(path: str) -> dict[str, Any]:
    blocks = read_star(path)  # path, encoding and parser failures named (emgeom.io.star)
    if not isinstance(blocks, dict) or "optics" not in blocks:
        blocks = blocks if isinstance(blocks, dict) else {}
        raise FileFormatError(
            f"{path}: no data_optics block (blocks: {', '.join(blocks) or 'none'}); "
            "RELION ≥ 3.1 keeps rlnMagMat in the optics table"
        )
    return dict(blocks)


def read_relion_optics(path: str | os.PathLike[str]) -> dict[int, AnisoMag]:
    """Read ``{rlnOpticsGroup: AnisoMag}`` from a RELION ≥ 3.1 STAR file's optics table.

    Groups without ``rlnMagMat*`` columns get the identity. ``D = MagMatᵀ`` (see
    :meth:`emgeom.anisomag.AnisoMag.from_relion`).
    """
    if not isinstance(path, str | os.PathLike):
        raise InvalidTypeError(f"path: expected a file path, got {path!r}")
    p = os.fspath(path)
    optics = _read_blocks(p)["optics"]
    if not hasattr(optics, "columns") or "rlnOpticsGroup" not in optics.columns:
        raise FileFormatError(f"{p}: optics table has no rlnOpticsGroup column")
    present = [c for c in MAGMAT_COLUMNS if c in optics.columns]
    if present and len(present) != 4:
        raise FileFormatError(f"{p}: optics table has only {present} of {list(MAGMAT_COLUMNS)}")
    out: dict[int, AnisoMag] = {}
    for k, (_, row) in enumerate(optics.iterrows(), 1):
        group = _cell(row["rlnOpticsGroup"], p, k, "rlnOpticsGroup", integer=True)
        if group in out:
            raise FileFormatError(f"{p}: optics row {k}: rlnOpticsGroup {group} appears twice")
        if present:
            m = np.array([_cell(row[c], p, k, c) for c in MAGMAT_COLUMNS]).reshape(2, 2)
            try:
                out[int(group)] = AnisoMag.from_relion(m)
            except InvalidValueError as exc:
                raise FileFormatError(f"{p}: optics group {group}: {exc}") from None
        else:
            out[int(group)] = AnisoMag(np.eye(2))
    return out


def _cell(value: Any, path: str, row: int, column: str, *, integer: bool = False) -> float:
    """A finite number from a STAR cell (an integer if asked), or a FileFormatError naming the
    file, the optics row and the column.
    """
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = math.nan
    if not math.isfinite(v) or (integer and (v != int(v) or abs(v) > 2**31)):
        what = "an integer" if integer else "a finite number"
        raise FileFormatError(
            f"{path}: optics row {row}, column {column}: expected {what}, got {str(value)[:40]!r}"
        )
    return int(v) if integer else v


def write_relion_optics(
    star_in: str | os.PathLike[str],
    star_out: str | os.PathLike[str],
    anisomag: Mapping[int, AnisoMag] | AnisoMag,
    *,
    force: bool = False,
) -> None:
    """Copy a RELION STAR file, setting ``rlnMagMat*`` of its optics groups.

    Parameters
    ----------
    star_in, star_out : path-like
        Input STAR file (with a ``data_optics`` block) and output path. The output is written
        atomically and never replaces an existing file unless ``force``.
    anisomag : AnisoMag or mapping {rlnOpticsGroup: AnisoMag}
        One value for every group, or per group (groups not listed keep their values).
    """
    if not isinstance(star_in, str | os.PathLike):
        raise InvalidTypeError(f"star_in: expected a file path, got {star_in!r}")
    p_in = os.fspath(star_in)
    blocks = _read_blocks(p_in)
    optics = blocks["optics"].copy()
    if isinstance(anisomag, AnisoMag):
        values = {int(g): anisomag for g in optics["rlnOpticsGroup"]}
    elif isinstance(anisomag, Mapping):
        values = dict(anisomag)
        for g, v in values.items():
            if not isinstance(v, AnisoMag):
                raise InvalidTypeError(f"anisomag[{g!r}]: expected an AnisoMag, got {type(v)}")
    else:
        raise InvalidTypeError(
            f"anisomag: expected an AnisoMag or a mapping of them, got {type(anisomag)}"
        )
    groups = [int(g) for g in optics["rlnOpticsGroup"]]
    unknown = sorted(set(values) - set(groups))
    if unknown:
        raise InvalidValueError(f"anisomag: optics groups {unknown} are not in {p_in} ({groups})")
    for c in MAGMAT_COLUMNS:
        if c not in optics.columns:
            optics[c] = 1.0 if c in ("rlnMagMat00", "rlnMagMat11") else 0.0
    for i, g in enumerate(groups):
        if g in values:
            mag = values[g].to_relion()
            for c, entry in zip(MAGMAT_COLUMNS, mag.ravel().tolist(), strict=True):
                optics.loc[optics.index[i], c] = float(entry)
    blocks["optics"] = optics
    with atomic_output(star_out, force=force) as tmp:
        starfile().write(blocks, tmp, overwrite=True)
