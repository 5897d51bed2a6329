"""SerialEM autodoc files: image metadata (``.mdoc``) and the shared ``key = value`` parser.

This is emgeom's one reader for SerialEM's autodoc format (used by ``.mdoc`` files and by the
autodoc-format Navigator, :mod:`emgeom.io.serialem_nav`). Format (SerialEM
``hlp/html/about_formats.htm``, "Image metadata" and "Navigator" sections): global
``key = value`` lines, then sections opened by ``[Kind = name]`` lines (``ZValue``,
``MontSection``, ``FrameSet``, ``Item``, ``T`` for titles). Both LF and CRLF endings occur in
real files. Values are kept as the written strings; typed getters convert on demand and name
the file, section and key in every error.

Why not ``mdocfile`` (teamtomo): it covers ``ZValue`` sections, but it merges ``[MontSection]``
blocks into the same table as pieces (the gm.mrc.mdoc ``MontSection`` becomes a 26th row with
its own ``PieceCoordinates`` and a NaN ``ZValue``), loses the section kinds' order, parses
values lossily and pulls pandas and pydantic. Montage geometry needs the ``MontSection`` keys
(``FullMontSize``, ``FullMontNumFrames``, ``StagePosition`` of the montage centre) kept apart, so
emgeom parses the (simple) format itself; ``tests/io/test_serialem_io.py`` cross-checks every
``ZValue`` value that mdocfile reads.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from emgeom.errors import EmgeomFileError, FileFormatError
from emgeom.io.text import as_path, decode_text, read_bytes, refuse_utf16

__all__ = [
    "AutodocSection",
    "Mdoc",
    "parse_autodoc",
    "read_autodoc_text",
    "read_mdoc",
    "section_floats",
]


@dataclass
class AutodocSection:
    """One ``[kind = name]`` section (or the global block: ``kind == ""``).

    Attributes
    ----------
    kind : str
        ``"ZValue"``, ``"MontSection"``, ``"FrameSet"``, ``"Item"``, ``"T"``... (``""`` = global).
    name : str
        The section's value (``"0"``, an item label, a title text).
    values : dict of str to str
        ``key -> value`` exactly as written (whitespace-trimmed), in file order; a repeated key
        keeps its first value (SerialEM never repeats keys).
    """

    kind: str
    name: str
    values: dict[str, str] = field(default_factory=dict)


def parse_autodoc(text: str, source: str = "<text>", first_line: int = 1) -> list[AutodocSection]:
    """Split autodoc text into sections; the first is the global block (kind ``""``).

    ``first_line`` is the file line number of ``text``'s first line (for error messages).
    """
    sections = [AutodocSection("", "")]
    for lineno, raw in enumerate(text.splitlines(), first_line):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            kind, sep, name = line[1:-1].partition("=")
            if not sep:
                raise FileFormatError(f"{source}: line {lineno}: section header without '='")
            sections.append(AutodocSection(kind.strip(), name.strip()))
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise FileFormatError(f"{source}: line {lineno}: expected 'key = value', got {line!r}")
        sections[-1].values.setdefault(key.strip(), value.strip())
    return sections


def section_floats(
    section: AutodocSection, key: str, n: int | None, source: str
) -> NDArray[np.float64] | None:
    """The numbers of ``key`` in ``section`` (None when absent); ``n`` = required count."""
    raw = section.values.get(key)
    if raw is None:
        return None
    where = (
        f"{source}: [{section.kind} = {section.name}] {key}" if section.kind else f"{source}: {key}"
    )
    try:
        vals = np.array([float(v) for v in raw.split()], dtype=np.float64)
    except ValueError:
        raise FileFormatError(f"{where}: expected numbers, got {raw!r}") from None
    if n is not None and vals.size != n:
        raise FileFormatError(f"{where}: expected {n} numbers, got {vals.size} ({raw!r})")
    if not np.all(np.isfinite(vals)):
        raise FileFormatError(f"{where}: non-finite value in {raw!r}")
    return vals


@dataclass
class Mdoc:
    """A SerialEM ``.mdoc`` file.

    Attributes
    ----------
    path : str
        The file read.
    globals : dict of str to str
        Header keys (``PixelSpacing``, ``ImageFile``, ``ImageSize``, ``Montage``, ...).
    titles : list of str
        ``[T = ...]`` title lines.
    sections : list of AutodocSection
        Every other section in file order (``ZValue``, ``MontSection``, ``FrameSet``, ...).
    """

    path: str
    globals: dict[str, str]
    titles: list[str]
    sections: list[AutodocSection]

    def of_kind(self, kind: str) -> list[AutodocSection]:
        """Sections of one kind (``"ZValue"``, ``"MontSection"``, ...) in file order."""
        return [s for s in self.sections if s.kind == kind]

    def floats(
        self, section: AutodocSection | None, key: str, n: int | None = None
    ) -> NDArray[np.float64] | None:
        """Numbers of ``key`` in ``section`` (None = the header); None when absent."""
        sec = AutodocSection("", "", self.globals) if section is None else section
        return section_floats(sec, key, n, self.path)

    def require(
        self, section: AutodocSection | None, key: str, n: int | None = None
    ) -> NDArray[np.float64]:
        """Like :meth:`floats` but a missing key is a :class:`FileFormatError` naming it."""
        v = self.floats(section, key, n)
        if v is None:
            where = "header" if section is None else f"[{section.kind} = {section.name}]"
            raise FileFormatError(f"{self.path}: {where}: missing key {key}")
        return v

    def pixel_spacing_a(self) -> float | None:
        """``PixelSpacing`` (Å) of the header or else of the first section; None if absent/≤ 0."""
        for sec in [None, *self.sections]:
            v = self.floats(sec, "PixelSpacing")
            if v is not None and v.size >= 1:
                return float(v[0]) if v[0] > 0 else None
        return None


def read_autodoc_text(value: Any, name: str, what: str) -> tuple[Path, str, str]:
    """``(path, text, encoding)`` of a SerialEM autodoc file (``.mdoc``, ``.nav``).

    SerialEM writes these as 8-bit text in the Windows code page, never UTF-16: UTF-16
    and binary files are refused (:func:`emgeom.io.text.decode_text`); bytes that are not
    UTF-8 (a ``µ`` or ``Å`` typed into a note) are read as Latin-1, which keeps every byte for
    a byte-identical rewrite.
    """
    path = as_path(value, name)
    if not path.exists():
        raise EmgeomFileError(f"{path}: no such {what}")
    raw = read_bytes(path, what=what)
    try:
        text = decode_text(raw, path, what=what)
        return path, text, "utf-8-sig" if raw.startswith(b"\xef\xbb\xbf") else "utf-8"
    except FileFormatError:
        refuse_utf16(raw[:4], path, what)
        text = raw.decode("latin-1")
        if "\x00" in text:
            raise FileFormatError(
                f"{path}: contains NUL bytes (binary?); expected a {what}"
            ) from None
        return path, text, "latin-1"


def read_mdoc(path: str | os.PathLike[str]) -> Mdoc:
    """Read a SerialEM ``.mdoc`` (autodoc) file.

    Raises
    ------
    EmgeomFileError
        The file does not exist or cannot be read.
    FileFormatError
        A line is neither a section header nor ``key = value``.
    """
    p, text, _ = read_autodoc_text(path, "path", "mdoc file")
    secs = parse_autodoc(text, str(p))
    titles = [s.name for s in secs[1:] if s.kind == "T"]
    others = [s for s in secs[1:] if s.kind != "T"]
    return Mdoc(path=str(p), globals=secs[0].values, titles=titles, sections=others)
