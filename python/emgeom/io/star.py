"""STAR files through ``starfile`` (teamtomo; the one STAR implementation of emgeom, a required
dependency).

``starfile`` parses and writes; this module adds what the readers and writers of ``emgeom.io``
need around it:

- reading: path checks and encoding (:mod:`emgeom.io.text`), every parser failure as a
  :class:`~emgeom.errors.FileFormatError` naming the file, names kept as strings (starfile
  would turn a tomogram called ``001`` into the integer 1), and typed column access
  (:func:`floats`, :func:`strings`) naming file, block and column;
- writing: atomic, no clobber without ``force`` (:mod:`emgeom.io.atomic`), values that cannot
  round-trip refused (:func:`check_token`), numbers formatted by the caller (exact where it
  matters, e.g. the pixel size RELION-4 translations are in).

Blocks are what ``starfile.read(..., always_dict=True)`` returns: a ``pandas.DataFrame`` per
loop, a ``dict`` per key-value block.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np
from numpy.typing import NDArray

from emgeom.errors import FileFormatError, InvalidValueError
from emgeom.io._frames import is_frame, pandas, starfile
from emgeom.io.atomic import atomic_output, file_error
from emgeom.io.text import as_path, parse_float, read_bytes, refuse_utf16

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "STRING_COLUMNS",
    "Block",
    "check_token",
    "column",
    "floats",
    "has",
    "loop",
    "read_star",
    "records",
    "strings",
    "write_star",
]

Block: TypeAlias = "pd.DataFrame | dict[str, Any]"

# columns holding names or paths: never numericised
STRING_COLUMNS = [
    "rlnTomoName",
    "rlnTomoTiltSeriesStarFile",
    "rlnTomoTiltSeriesName",
    "rlnTomoImportImodDir",
    "rlnTomoImportCtfFindFile",
    "rlnTomoImportCtfPlotterFile",
    "rlnTomoImportFractionalDose",
    "rlnMicrographName",
    "rlnMicrographMovieName",
    "rlnImageName",
    "rlnGroupName",
    "rlnOpticsGroupName",
    "rlnTomoReconstructedTomogram",
    "rlnTomoReconstructedTomogramHalf1",
    "rlnTomoReconstructedTomogramHalf2",
    "rlnTomoVisibleFrames",
]


def read_star(value: Any, name: str = "path") -> dict[str, Block]:
    """Every data block of a STAR file (ordered dict block name → DataFrame or dict).

    Raises :class:`~emgeom.errors.InvalidTypeError` (not a path),
    :class:`~emgeom.errors.EmgeomFileError` (missing, a directory, unreadable) or
    :class:`~emgeom.errors.FileFormatError` (UTF-16, binary, malformed; the message names the
    file).
    """
    path = as_path(value, name)
    # encoding checked on the first bytes; starfile decodes the rest (errors wrapped below)
    refuse_utf16(read_bytes(path, 4), path, "STAR file")
    try:
        blocks = starfile().read(path, always_dict=True, parse_as_string=STRING_COLUMNS)
    except UnicodeDecodeError as exc:
        raise FileFormatError(
            f"{path}: not UTF-8 text (byte {exc.start}); not a STAR file"
        ) from None
    except OSError as exc:  # permissions, I/O errors while starfile reads
        raise file_error(path, exc, "read") from None
    except (ValueError, TypeError, IndexError, KeyError, pandas().errors.ParserError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise FileFormatError(f"{path}: malformed STAR file ({msg})") from None
    if not isinstance(blocks, dict) or not blocks:
        raise FileFormatError(f"{path}: no data_ block (not a STAR file)")
    out: dict[str, Block] = {}
    for k, b in blocks.items():
        if b is None:
            raise FileFormatError(f"{path}: data_{k} is empty")
        out[str(k)] = b
    return out


def loop(block: Block | None) -> pd.DataFrame | None:
    """``block`` when it is a loop (DataFrame), else None."""
    return block if is_frame(block) else None


def has(block: Block, label: str) -> bool:
    """Whether ``block`` has the column (loop) or key (key-value block) ``label``."""
    key = label.lstrip("_")
    return key in block.columns if is_frame(block) else key in block


def column(block: Block, label: str, where: object) -> list[Any]:
    """The raw values of ``label`` of a loop, or the one value of a key-value block."""
    key = label.lstrip("_")
    if not has(block, key):
        raise FileFormatError(f"{where}: missing column _{key}")
    if is_frame(block):
        return list(block[key])
    return [block[key]]


def strings(block: Block, label: str, where: object) -> list[str]:
    """The values of ``label`` as strings (names, paths, bracketed vectors)."""
    return [str(v) for v in column(block, label, where)]


def floats(block: Block, label: str, where: object) -> NDArray[np.float64]:
    """A finite float64 column; a non-number or NaN/inf names the file, column and row."""
    vals = column(block, label, where)
    try:
        arr = np.asarray(vals, dtype=np.float64)
    except (TypeError, ValueError):
        arr = np.array(
            [parse_float(v, f"_{label} (row {i + 1})", where) for i, v in enumerate(vals)]
        )
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        i = int(bad[0])
        raise FileFormatError(
            f"{where}: _{label.lstrip('_')} = {vals[i]!r} (row {i + 1}) is NaN/inf, expected a "
            "finite number"
        )
    return arr


def records(block: Block) -> list[dict[str, Any]]:
    """The rows of a loop (or the one row of a key-value block) as dicts."""
    if is_frame(block):
        return [dict(r) for r in block.to_dict(orient="records")]
    return [dict(block)] if block else []


# starfile (pandas) reads these as missing values even in string columns
_NA_TOKENS = frozenset({"nan", "NaN", "<NA>"})


def check_token(value: object, what: str) -> str:
    """``str(value)`` when a STAR reader gets it back unchanged, else :class:`InvalidValueError`
    naming ``what``: no empty value, whitespace, quotes or ``#`` (starfile quotes only values
    with spaces and reads ``#`` as a comment anywhere; RELION splits on any whitespace), no
    leading ``_``, ``data_``, ``loop_``,
    and not ``nan``/``NaN``/``<NA>`` (which starfile reads back as a missing value).
    """
    s = str(value)
    bad = (
        not s
        or s in _NA_TOKENS
        or any(c.isspace() or c in "\"'#" for c in s)
        or s.startswith(("_", "#", "data_", "loop_"))
        or not s.isprintable()
    )
    if bad:
        raise InvalidValueError(
            f"{what}: {s!r} cannot be written to a STAR file and read back (no spaces, "
            "quotes, '#', control characters or newlines; no leading '_', 'data_', 'loop_'; "
            "not nan/NaN/<NA>)"
        )
    return s


def write_star(
    path: str | os.PathLike[str],
    blocks: Mapping[str, Block],
    *,
    force: bool = False,
) -> Path:
    """Write ``blocks`` (name → DataFrame or dict) atomically; refuse to overwrite without
    ``force``. Format numbers before (strings are written verbatim).
    """
    for name in blocks:
        if any(c.isspace() for c in str(name)) or not str(name).isprintable():
            raise InvalidValueError(f"block name: {name!r} cannot be a STAR data_ block name")
    with atomic_output(path, force=force) as tmp:
        starfile().write(dict(blocks), tmp, sep=" ", float_format="%.12g")
    return Path(path)
