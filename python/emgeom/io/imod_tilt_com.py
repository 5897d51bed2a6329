"""IMOD ``tilt.com`` (the command file etomo writes for ``tilt``) → a dict of its entries.

Source: LabShare-Archive/IMOD ``flib/tilt/tilt.f90`` (``inputParameters``): ``THICKNESS``,
``SHIFT`` (x, z), ``OFFSET`` (angle offset, tilt-axis x offset), ``FULLIMAGE`` (nx, ny),
``SUBSETSTART`` (x, y) and ``WIDTH`` are given in *unbinned* pixels and divided by
``IMAGEBINNED`` ("scale dimensions down by binning then report them"); ``XAXISTILT`` is
subtracted from every ``XTILTFILE`` value. Lines starting with ``#`` and ``$`` commands are
skipped; a keyword without values (``PERPENDICULAR``, ``AdjustOrigin``) is ``True``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from emgeom.errors import EmgeomFileError, FileFormatError

__all__ = ["TILT_COM_NUMBERS", "read_tilt_com"]

#: keywords whose values are numbers (scalars or tuples); everything else stays a string
TILT_COM_NUMBERS = (
    "THICKNESS",
    "SHIFT",
    "OFFSET",
    "XAXISTILT",
    "FULLIMAGE",
    "SUBSETSTART",
    "IMAGEBINNED",
    "WIDTH",
    "SLICE",
    "RADIAL",
    "SCALE",
    "MODE",
    "LOG",
    "FalloffIsTrueSigma",
)


def _number(tok: str) -> int | float:
    v = float(tok)
    return int(v) if v.is_integer() and "." not in tok and "e" not in tok.lower() else v


def read_tilt_com(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Entries of an IMOD ``tilt.com``: ``{keyword: value}``.

    Numbers (:data:`TILT_COM_NUMBERS`) become ``int``/``float`` (one value) or tuples
    (``SHIFT``, ``FULLIMAGE``, ...); flags become ``True``; other entries stay strings
    (``InputProjections``, ``OutputFile``, ``TILTFILE``, ``XTILTFILE``, ...).
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        raise EmgeomFileError(f"{p}: file not found") from None
    except IsADirectoryError:
        raise EmgeomFileError(f"{p}: is a directory, expected a tilt.com file") from None
    out: dict[str, Any] = {}
    seen_tilt = False
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("$"):
            seen_tilt = seen_tilt or line[1:].split()[0:1] == ["tilt"]
            continue
        key, _, rest = line.partition(" ")
        rest = rest.strip()
        if key in TILT_COM_NUMBERS:
            toks = rest.replace(",", " ").split()
            try:
                vals = [_number(t) for t in toks]
            except ValueError:
                raise FileFormatError(f"{p}: {key} expects numbers, got {rest!r}") from None
            if not vals:
                raise FileFormatError(f"{p}: {key} has no value")
            out[key] = vals[0] if len(vals) == 1 else tuple(vals)
        else:
            out[key] = rest if rest else True
    if not seen_tilt and "THICKNESS" not in out:
        raise FileFormatError(f"{p}: not an IMOD tilt.com (no '$tilt' command, no THICKNESS)")
    return out
