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
from typing import Any

from emgeom.errors import FileFormatError
from emgeom.io.text import parse_float, read_text

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


#: value count (low, high), must-be-integer and must-be-positive of the entries the
#: reconstruction uses (tilt.f90 ``PipGetInteger``/``PipGetTwoIntegers``/``PipGetTwoFloats``)
_SHAPES: dict[str, tuple[int, int, bool, bool]] = {
    "THICKNESS": (1, 1, True, True),
    "IMAGEBINNED": (1, 1, True, True),
    "FULLIMAGE": (2, 2, True, True),
    "SUBSETSTART": (2, 2, True, False),
    "WIDTH": (1, 1, True, True),
    "XAXISTILT": (1, 1, False, False),
    "SHIFT": (1, 2, False, False),
    "OFFSET": (1, 2, False, False),
}


def _check(key: str, vals: list[int | float], where: object) -> None:
    """Refuse a value count or kind ``tilt`` itself would refuse (see :data:`_SHAPES`)."""
    low, high, integer, positive = _SHAPES[key]
    if not low <= len(vals) <= high:
        want = str(low) if low == high else f"{low} or {high}"
        raise FileFormatError(f"{where}: {key} expects {want} value(s), got {len(vals)}")
    if integer and not all(float(v).is_integer() for v in vals):
        raise FileFormatError(f"{where}: {key} expects integers, got {vals}")
    if positive and not all(v > 0 for v in vals):
        raise FileFormatError(f"{where}: {key} must be > 0, got {vals}")


def _number(tok: str, key: str, where: object) -> int | float:
    """A finite number (an ``int`` when written as one, as IMOD's ``PipGetInteger`` needs)."""
    v = parse_float(tok, key, where)
    return int(v) if v.is_integer() and "." not in tok and "e" not in tok.lower() else v


def read_tilt_com(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Entries of an IMOD ``tilt.com``: ``{keyword: value}``.

    Numbers (:data:`TILT_COM_NUMBERS`) become ``int``/``float`` (one value) or tuples
    (``SHIFT``, ``FULLIMAGE``, ...); flags become ``True``; other entries stay strings
    (``InputProjections``, ``OutputFile``, ``TILTFILE``, ``XTILTFILE``, ...).
    """
    # IMOD's PIP reads the command file as bytes (ASCII): UTF-16 is refused
    p, text = read_text(path, "path", what="IMOD tilt.com")
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
            vals = [_number(t, key, p) for t in toks]
            if not vals:
                raise FileFormatError(f"{p}: {key} has no value")
            if key in _SHAPES:
                _check(key, vals, p)
            out[key] = vals[0] if len(vals) == 1 else tuple(vals)
        else:
            out[key] = rest if rest else True
    if not seen_tilt and "THICKNESS" not in out:
        raise FileFormatError(f"{p}: not an IMOD tilt.com (no '$tilt' command, no THICKNESS)")
    return out
