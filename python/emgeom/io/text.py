"""Shared helpers of the text-file readers: path arguments, reading, decoding, number fields.

Every failure is an :mod:`emgeom.errors` exception that names the argument or the file and the
key, never a built-in exception:

- :func:`as_path`: a path argument of the wrong type → :class:`InvalidTypeError` naming it.
- :func:`read_bytes`: missing file, a directory, no permission → :class:`EmgeomFileError`.
- :func:`decode_text`: encoding. UTF-8 (with or without BOM) always; UTF-16 (with BOM, or
  little-endian without BOM as Warp on Windows writes it) only where the producing program
  writes it (Warp XML). Elsewhere (STAR, ``.tlt``, ``.aln``, CTFFIND5 output) UTF-16 is refused
  with a message naming the encoding and the fix, because the programs that read those files
  (RELION, IMOD, AreTomo) read bytes as ASCII and would fail on them too.
- :func:`read_table`: a CSV/TSV table with a header (``crossmag batch`` pairs files), every
  bad row named by file and line.
- :func:`parse_json`, :func:`read_json`: JSON (the CZ portal, copick; RFC 8259 JSON is UTF-8,
  so UTF-16 is refused); ``NaN``/``Infinity``/``1e999`` and too-deep nesting are refused.
- :func:`parse_float`, :func:`parse_int`: a number field → a finite number, else
  :class:`FileFormatError` naming the file and the key.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from emgeom._validate import describe
from emgeom.errors import EmgeomFileError, FileFormatError, InvalidTypeError, InvalidValueError
from emgeom.io.atomic import file_error

__all__ = [
    "MAX_TEXT_BYTES",
    "as_path",
    "decode_text",
    "from_file",
    "parse_float",
    "parse_int",
    "parse_json",
    "parse_matrix",
    "parse_row",
    "read_bytes",
    "read_json",
    "read_table",
    "read_text",
    "record_float",
    "refuse_utf16",
]

#: Largest text input read into memory (a typo pointing at a 200 GB stack is refused first).
MAX_TEXT_BYTES = 1 << 30

_UTF16_FIX = "convert it with `iconv -f UTF-16 -t UTF-8 IN > OUT`"


def as_path(value: Any, name: str) -> Path:
    """``value`` as a :class:`~pathlib.Path`; anything but ``str``/``os.PathLike`` is refused."""
    if isinstance(value, bytes) or not isinstance(value, str | os.PathLike):
        raise InvalidTypeError(f"{name}: expected a file path, got {describe(value)}")
    return Path(value)


def read_bytes(path: Path, n: int | None = None, *, what: str = "file") -> bytes:
    """The content of ``path`` (its first ``n`` bytes when given); every OS failure becomes
    :class:`EmgeomFileError` naming it, and a whole file over :data:`MAX_TEXT_BYTES` is
    refused before it is read.
    """
    try:
        if n is None:
            size = path.stat().st_size
            if size > MAX_TEXT_BYTES and not path.is_dir():
                raise FileFormatError(
                    f"{path}: {size / 1e9:.1f} GB is too large for a {what} (at most "
                    f"{MAX_TEXT_BYTES / 1e9:.1f} GB)"
                )
            return path.read_bytes()
        with path.open("rb") as fh:
            return fh.read(n)
    except FileNotFoundError:
        raise EmgeomFileError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise EmgeomFileError(f"{path}: is a directory, expected a {what}") from None
    except OSError as exc:
        raise file_error(path, exc, "read") from None


def _utf16(raw: bytes) -> str | None:
    """The codec of UTF-16 text (BOM, or ASCII text encoded UTF-16-LE without BOM), or None."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "utf-16"
    if len(raw) > 1 and raw[1:2] == b"\x00" and raw[0:1] != b"\x00":
        return "utf-16-le"
    return None


def refuse_utf16(head: bytes, path: Path, what: str) -> None:
    """Refuse a file whose first bytes show UTF-16 (see :func:`decode_text`)."""
    if _utf16(head) is not None:
        raise FileFormatError(
            f"{path}: is UTF-16 text, but this {what} must be ASCII/UTF-8 (the programs "
            f"that read it do not decode UTF-16): {_UTF16_FIX}"
        )


def decode_text(raw: bytes, path: Path, *, utf16: bool = False, what: str = "file") -> str:
    """Decode ``raw`` read from ``path``; see the module docstring for the rules.

    ``what`` names the format in the messages (e.g. ``"STAR file"``).
    """
    if not utf16:
        refuse_utf16(raw[:4], path, what)
    codec = _utf16(raw)
    if codec is not None:
        try:
            return raw.decode(codec).lstrip("\ufeff")
        except UnicodeDecodeError as exc:
            raise FileFormatError(
                f"{path}: is UTF-16 text but cannot be decoded at byte {exc.start} "
                f"({exc.reason}; truncated or corrupt file?)"
            ) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FileFormatError(
            f"{path}: not UTF-8 text (byte {exc.start}: {exc.reason}); expected a {what}"
        ) from None
    if "\x00" in text:
        raise FileFormatError(
            f"{path}: contains NUL bytes (binary, or UTF-16 without a byte-order mark); "
            f"expected a {what}"
        )
    return text.lstrip("\ufeff")


def read_text(
    value: Any, name: str, *, utf16: bool = False, what: str = "file"
) -> tuple[Path, str]:
    """``(path, text)`` of a text-file argument named ``name`` (see :func:`decode_text`)."""
    path = as_path(value, name)
    return path, decode_text(read_bytes(path, what=what), path, utf16=utf16, what=what)


def parse_float(
    value: Any, key: str, where: object, *, positive: bool = False, nonnegative: bool = False
) -> float:
    """A finite float from a file field ``key`` of ``where`` (file, optionally block/line)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise FileFormatError(f"{where}: {key} = {value!r} is not a number") from None
    if not math.isfinite(v):
        raise FileFormatError(f"{where}: {key} = {value!r} is NaN/inf, expected a finite number")
    if positive and not v > 0:
        raise FileFormatError(f"{where}: {key} = {value!r} must be > 0")
    if nonnegative and v < 0:
        raise FileFormatError(f"{where}: {key} = {value!r} must be >= 0")
    return v


def parse_row(fields: list[str], where: object) -> list[float]:
    """Finite floats of a whitespace-split text line; a bad field names ``where`` + column."""
    return [parse_float(v, f"column {i + 1}", where) for i, v in enumerate(fields)]


def parse_int(value: Any, key: str, where: object, *, low: int | None = None) -> int:
    """An integer from a file field ``key`` of ``where`` (integral floats such as ``"60.0"``
    are accepted, as RELION and Warp write them).
    """
    v = parse_float(value, key, where)
    if v != round(v):
        raise FileFormatError(f"{where}: {key} = {value!r} is not an integer")
    if low is not None and v < low:
        raise FileFormatError(f"{where}: {key} = {value!r} must be >= {low}")
    return round(v)


def parse_json(text: str, where: object) -> Any:
    """The JSON document ``text`` read from ``where``; non-finite numbers (``NaN``,
    ``Infinity``, ``1e999``), malformed or too deeply nested JSON → :class:`FileFormatError`.
    """

    def constant(word: str) -> float:
        raise FileFormatError(f"{where}: {word} is not a finite number (not standard JSON)")

    def number(word: str) -> float:
        v = float(word)
        if not math.isfinite(v):
            constant(word)
        return v

    try:
        return json.loads(text, parse_constant=constant, parse_float=number)
    except json.JSONDecodeError as exc:
        raise FileFormatError(f"{where}: not JSON ({exc})") from None
    except FileFormatError:
        raise
    except (RecursionError, ValueError) as exc:  # nesting depth; an integer of > 4300 digits
        raise FileFormatError(f"{where}: not readable JSON ({type(exc).__name__})") from None


def record_float(r: Mapping[str, Any], key: str, where: object, default: float = 0.0) -> float:
    """A finite number field of a JSON record (``default`` when absent or null)."""
    v = r.get(key)
    if v is None:
        return default
    if isinstance(v, bool) or not isinstance(v, int | float | str):
        raise FileFormatError(f"{where}: {key} = {v!r} is not a number")
    return parse_float(v, key, where)


def parse_matrix(
    value: Any, shape: tuple[int, ...], key: str, where: object
) -> NDArray[np.float64]:
    """A finite numeric matrix field of ``shape`` (a flat list of the same size is reshaped)."""
    try:
        m = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        m = np.full(0, np.nan)
    if m.size == math.prod(shape) and m.ndim == 1:
        m = m.reshape(shape)
    if m.shape != shape or not np.all(np.isfinite(m)):
        text = repr(value)
        raise FileFormatError(
            f"{where}: {key} must be {'x'.join(map(str, shape))} finite numbers, "
            f"got {text[:80]}{'...' if len(text) > 80 else ''}"
        )
    return m


def read_json(value: Any, name: str, *, what: str = "JSON file") -> tuple[Path, Any]:
    """``(path, document)`` of a JSON file argument ``name`` (UTF-8; see :func:`parse_json`)."""
    path, text = read_text(value, name, what=what)
    return path, parse_json(text, path)


@contextlib.contextmanager
def from_file(path: object) -> Iterator[None]:
    """Values read from ``path`` that the model refuses (``InvalidValueError``, e.g. a tilt of
    95° or a NaN shift in a file) become :class:`FileFormatError` naming the file as well as
    the model's argument. Validate the caller's own arguments before entering.
    """
    try:
        yield
    except FileFormatError:
        raise
    except InvalidValueError as exc:
        raise FileFormatError(f"{path}: {exc}") from None


def read_table(
    path: str | os.PathLike[str], required: tuple[str, ...], what: str = "table"
) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """Read a CSV (comma) or TSV (tab, if the header has one) table with a header line.

    Returns
    -------
    header : list of str
        Column names (stripped).
    rows : list of (line number, {column: cell})
        One entry per non-blank data line; every row has every header column.

    Raises
    ------
    FileFormatError
        Empty file, no header, a required column missing, or a row with too few or too many
        cells (the message gives the file and line).
    """
    p, text = read_text(path, "path", utf16=True, what=what)
    lines = text.splitlines()
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    if first is None:
        raise FileFormatError(f"{p}: is empty; expected a header line with {', '.join(required)}")
    delim = "\t" if "\t" in lines[first] else ","
    try:
        parsed = list(csv.reader(lines[first:], delimiter=delim, strict=True))
    except csv.Error as exc:
        raise FileFormatError(f"{p}: not a readable {what} ({exc})") from None
    header = [h.strip() for h in parsed[0]]
    missing = [c for c in required if c not in header]
    if missing:
        raise FileFormatError(
            f"{p}:{first + 1}: the header {header[:8]} lacks the column(s) {missing}"
        )
    rows = []
    for k, cells in enumerate(parsed[1:], start=first + 2):
        if not any(c.strip() for c in cells):
            continue
        if len(cells) != len(header):
            raise FileFormatError(
                f"{p}:{k}: {len(cells)} cell(s), the header has {len(header)} ({header[:8]})"
            )
        rows.append((k, dict(zip(header, cells, strict=True))))
    return header, rows
