"""Reading small text inputs (tables, JSON lines) with one clear error per kind of problem."""

from __future__ import annotations

import codecs
import csv
import os
from pathlib import Path

from emgeom.errors import EmgeomFileError, FileFormatError
from emgeom.io._atomic import file_error

__all__ = ["MAX_TEXT_BYTES", "read_table", "read_text"]

#: Largest text input read into memory (a typo pointing at a 200 GB stack is refused first).
MAX_TEXT_BYTES = 1 << 30

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def read_text(path: str | os.PathLike[str], what: str = "file", *, utf8_only: bool = False) -> str:
    """The text of ``path``: UTF-8 (with or without BOM) or UTF-16/32 with a BOM (refused with a
    message saying so when ``utf8_only``, for files another library parses from the path).

    Raises :class:`EmgeomFileError` for a missing path, a folder or an unreadable file and
    :class:`FileFormatError` for binary content or another encoding (naming the file and the
    problem).
    """
    p = Path(path)
    try:
        if not p.exists():
            raise EmgeomFileError(f"{p}: no such file")
        if p.is_dir():
            raise EmgeomFileError(f"{p}: is a folder, expected a {what}")
        size = p.stat().st_size
        if size > MAX_TEXT_BYTES:
            raise FileFormatError(
                f"{p}: {size / 1e9:.1f} GB is too large for a {what} (at most "
                f"{MAX_TEXT_BYTES / 1e9:.1f} GB)"
            )
        raw = p.read_bytes()
    except OSError as exc:
        if isinstance(exc, EmgeomFileError):
            raise
        raise file_error(p, exc, "read") from None
    encoding = next((enc for bom, enc in _BOMS if raw.startswith(bom)), "utf-8")
    if utf8_only and encoding not in ("utf-8", "utf-8-sig"):
        raise FileFormatError(
            f"{p}: is {encoding.upper()} encoded; expected a {what} saved as UTF-8 "
            f"(convert it, e.g. iconv -f {encoding.upper()} -t UTF-8)"
        )
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as exc:
        hint = "truncated or corrupt" if encoding != "utf-8" else "binary, or not UTF-8 text"
        raise FileFormatError(
            f"{p}: cannot decode as {encoding} at byte {exc.start} ({hint}); expected a {what} "
            "saved as UTF-8"
        ) from None
    if "\x00" in text:
        raise FileFormatError(
            f"{p}: contains NUL bytes (binary, or UTF-16 without a byte-order mark); expected a "
            f"{what} saved as UTF-8"
        )
    return text.lstrip("\ufeff")


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
    p = Path(path)
    text = read_text(p, what)
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
