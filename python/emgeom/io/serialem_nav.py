"""SerialEM Navigator files (``.nav``, autodoc format): read, edit, write byte-identically.

Format (SerialEM ``hlp/html/about_formats.htm``, "Navigator files"): two global lines
``AdocVersion = x.xx`` and ``LastSavedAs = <path>``, then one ``[Item = label]`` section per
item with ``key = value`` lines. Stage coordinates are in µm (kept in µm here: this is an
``io`` adapter; :mod:`emgeom.serialem` converts). Every line is kept as written, so
:func:`write_nav` reproduces an unchanged file byte for byte and rewrites only the items that
were edited or added (their keys keep their order; new keys are appended).

Formats not read (decided, see docs/serialem.md): the pre-3.6 tab-delimited Navigator (first
line ``Version<TAB>x.xx``; no real file of it exists to test a reader against, and SerialEM ≥ 3.6
converts it on open and save) and the XML variant: both raise a :class:`FileFormatError` saying
so.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from emgeom._validate import as_float, as_matrix
from emgeom.errors import EmgeomWarning, FileFormatError, InvalidValueError
from emgeom.io.atomic import atomic_output
from emgeom.io.mdoc import AutodocSection, parse_autodoc, read_autodoc_text, section_floats
from emgeom.io.text import parse_int

__all__ = ["NavItem", "Navigator", "NotSerialEMWarning", "read_nav", "write_nav"]

#: ``Type`` values (about_formats.htm: "Type: 0-2 for point, polygon, map")
KINDS = {0: "point", 1: "polygon", 2: "map"}


class NotSerialEMWarning(EmgeomWarning):
    """The Navigator file does not look written by SerialEM (its geometry may not follow
    SerialEM's conventions).
    """


def _fmt(v: float) -> str:
    """A number the way SerialEM writes stage values: at most 4 decimals, no trailing zeros."""
    s = f"{float(v):.4f}".rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s


@dataclass(eq=False)
class NavItem:
    """One Navigator item, with every ``key = value`` kept as written.

    Typed accessors read the raw values (stage in µm). Edit with :meth:`set` (or
    :meth:`set_stage`); an edited item is rewritten by :func:`write_nav`, the others are copied
    byte for byte.

    Attributes
    ----------
    label : str
        The ``[Item = label]`` name.
    values : dict of str to str
        Every key and its value string, in file order.
    source : str
        File (and item) the item came from, for error messages.
    """

    label: str
    values: dict[str, str]
    source: str = "<new item>"
    _raw: str | None = field(default=None, repr=False)

    # ------------------------------------------------------------------ raw access
    def get(self, key: str, default: str | None = None) -> str | None:
        """The raw value string of ``key`` (or ``default``)."""
        return self.values.get(key, default)

    def floats(self, key: str, n: int | None = None) -> NDArray[np.float64] | None:
        """The numbers of ``key`` (None when absent); ``n`` = the required count."""
        return section_floats(AutodocSection("Item", self.label, self.values), key, n, self.source)

    def require(self, key: str, n: int | None = None) -> NDArray[np.float64]:
        """Numbers of ``key``; a missing key raises :class:`FileFormatError` naming it."""
        v = self.floats(key, n)
        if v is None:
            raise FileFormatError(f"{self.source}: [Item = {self.label}]: missing key {key}")
        return v

    def _int(self, key: str) -> int | None:
        v = self.floats(key, 1)
        if v is None:
            return None
        return parse_int(float(v[0]), key, f"{self.source}: [Item = {self.label}]")

    def set(self, key: str, value: str | float | Sequence[float] | NDArray[np.float64]) -> None:
        """Set ``key`` (numbers are formatted like SerialEM's); marks the item as edited."""
        if isinstance(value, str):
            text = value
        elif isinstance(value, int | float | np.floating | np.integer):
            text = _fmt(as_float(value, key))
        else:
            text = " ".join(_fmt(float(v)) for v in as_matrix(value, key, (np.size(value),)))
        if "\n" in text or "\r" in text:
            raise InvalidValueError(f"{key}: a Navigator value cannot contain a line break")
        self.values[key] = text
        self._raw = None

    @property
    def edited(self) -> bool:
        """True when the item will be rewritten by :func:`write_nav` (edited or new)."""
        return self._raw is None

    # ------------------------------------------------------------------ typed fields
    @property
    def kind(self) -> str:
        """``"point"``, ``"polygon"``, ``"map"`` (``Type`` 0/1/2) or ``"type <n>"``."""
        t = self._int("Type")
        return "point" if t is None else KINDS.get(t, f"type {t}")

    @property
    def stage_xyz_um(self) -> tuple[float, float, float]:
        """``StageXYZ`` (µm): the stage position adjusted for image shift (about_formats.htm)."""
        v = self.require("StageXYZ")
        if v.size < 2:
            raise FileFormatError(
                f"{self.source}: [Item = {self.label}] StageXYZ: expected 3 numbers"
            )
        return (float(v[0]), float(v[1]), float(v[2]) if v.size > 2 else 0.0)

    @property
    def raw_stage_xy_um(self) -> tuple[float, float] | None:
        """``RawStageXY`` (µm): the stage position before image-shift adjustment, if written."""
        v = self.floats("RawStageXY", 2)
        return None if v is None else (float(v[0]), float(v[1]))

    @property
    def points_um(self) -> NDArray[np.float64]:
        """``(n, 2)`` corner/outline points ``PtsX``/``PtsY`` (µm); empty if absent."""
        x, y = self.floats("PtsX"), self.floats("PtsY")
        if x is None or y is None:
            return np.zeros((0, 2))
        if x.size != y.size:
            raise FileFormatError(
                f"{self.source}: [Item = {self.label}]: PtsX has {x.size} values, PtsY {y.size}"
            )
        return np.column_stack([x, y])

    @property
    def registration(self) -> int | None:
        """``Regis``: the registration the item belongs to."""
        return self._int("Regis")

    @property
    def map_id(self) -> int | None:
        """``MapID`` (maps only)."""
        return self._int("MapID")

    @property
    def drawn_id(self) -> int | None:
        """``DrawnID``: the ``MapID`` of the map this item was drawn on."""
        return self._int("DrawnID")

    @property
    def imported(self) -> bool:
        """``Imported = 1``: an externally made map or point (not SerialEM geometry)."""
        return bool(self._int("Imported") or 0)

    @property
    def map_file(self) -> str | None:
        """``MapFile``: the image file of a map (as written; may be a Windows path)."""
        return self.values.get("MapFile")

    @property
    def map_section(self) -> int | None:
        """``MapSection``: the section (Z) of the map in its file."""
        return self._int("MapSection")

    @property
    def map_montage(self) -> bool:
        """``MapMontage = 1``: the map is a montage."""
        return bool(self._int("MapMontage") or 0)

    @property
    def map_binning(self) -> int | None:
        """``MapBinning``: binning of the map (of the overview for a montage)."""
        return self._int("MapBinning")

    @property
    def mont_binning(self) -> int | None:
        """``MontBinning``: binning of the montage pieces."""
        return self._int("MontBinning")

    @property
    def map_scale_mat(self) -> NDArray[np.float64] | None:
        """``MapScaleMat`` as ``[[xpx, xpy], [ypx, ypy]]`` (map pixels per µm, Y row negated)."""
        v = self.floats("MapScaleMat", 4)
        return None if v is None else v.reshape(2, 2)

    @property
    def map_width_height(self) -> tuple[int, int] | None:
        """``MapWidthHeight``: size of the map image when the matrix was defined (x, y)."""
        v = self.floats("MapWidthHeight", 2)
        return None if v is None else (int(v[0]), int(v[1]))

    @property
    def map_frames_xy(self) -> tuple[int, int] | None:
        """``MapFramesXY``: montage frames in X and Y when acquired (0 0 for single frames)."""
        v = self.floats("MapFramesXY", 2)
        return None if v is None else (int(v[0]), int(v[1]))

    @property
    def note(self) -> str:
        """``Note`` text (empty if absent)."""
        return self.values.get("Note", "")

    def set_stage(self, x_um: float, y_um: float, z_um: float | None = None) -> None:
        """Move the item to stage ``(x, y[, z])`` µm: ``StageXYZ``, and the outline points of a
        point or polygon are shifted with it (SerialEM's "Update position" does the same).
        """
        x0, y0, z0 = self.stage_xyz_um
        z = z0 if z_um is None else float(z_um)
        if self.kind != "map":
            pts = self.points_um
            if len(pts):
                self.set("PtsX", pts[:, 0] + (x_um - x0))
                self.set("PtsY", pts[:, 1] + (y_um - y0))
        self.set("StageXYZ", (x_um, y_um, z))

    def render(self, newline: str = "\n") -> str:
        """The item's text as :func:`write_nav` writes it."""
        if self._raw is not None:
            return self._raw
        lines = [f"[Item = {self.label}]"] + [f"{k} = {v}" for k, v in self.values.items()]
        return newline.join(lines) + newline + newline


@dataclass(eq=False)
class Navigator:
    """A Navigator file: global lines and items in file order.

    ``nav[label]`` finds an item by label (the first one, labels need not be unique),
    ``nav.items`` lists all, ``nav.maps()`` the map items.
    """

    path: str
    header: str
    items: list[NavItem]
    newline: str = "\n"
    encoding: str = "utf-8"

    def __iter__(self) -> Iterator[NavItem]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, label: str | int) -> NavItem:
        key = str(label)
        for it in self.items:
            if it.label == key:
                return it
        known = ", ".join(it.label for it in self.items[:20])
        raise InvalidValueError(f"{self.path}: no item labelled {key!r} (items: {known})")

    def maps(self) -> list[NavItem]:
        """The map items (``Type = 2``) in file order."""
        return [it for it in self.items if it.kind == "map"]

    def by_map_id(self, map_id: int) -> NavItem:
        """The map item with this ``MapID`` (e.g. an item's ``DrawnID``)."""
        for it in self.items:
            if it.kind == "map" and it.map_id == map_id:
                return it
        raise InvalidValueError(f"{self.path}: no map item with MapID {map_id}")

    @property
    def written_by_serialem(self) -> bool:
        """SerialEM always writes ``AdocVersion`` and ``LastSavedAs`` first (about_formats.htm:
        "There are two lines of global data"); tools that write navs often omit ``LastSavedAs``.
        """
        return "LastSavedAs" in parse_autodoc(self.header)[0].values

    def add_point(
        self,
        label: str,
        stage_xy_um: Sequence[float],
        z_um: float = 0.0,
        *,
        drawn_id: int | None = None,
        registration: int | None = None,
        note: str = "",
        color: int = 0,
    ) -> NavItem:
        """Append a point item (``Type = 0``) at stage ``(x, y)`` µm and return it."""
        if not isinstance(label, str | int) or not str(label).strip():
            raise InvalidValueError(f"label: expected a non-empty name, got {label!r}")
        if any(c in str(label) for c in "\r\n]"):
            raise InvalidValueError(f"label: {label!r} cannot contain ']' or a line break")
        if any(it.label == str(label) for it in self.items):
            raise InvalidValueError(f"label: {label!r} is already used in {self.path}")
        x, y = as_matrix(stage_xy_um, "stage_xy_um", (2,), max_abs=1e6)
        z_um = as_float(z_um, "z_um", low=-1e6, high=1e6)
        reg = registration
        if reg is None:
            regs = [it.registration for it in self.items if it.registration is not None]
            reg = regs[-1] if regs else 1
        it = NavItem(str(label), {}, source=f"{self.path} (new item {label})")
        it.set("Color", color)
        it.set("StageXYZ", (x, y, z_um))
        it.set("NumPts", 1)
        it.set("Regis", reg)
        it.set("Type", 0)
        if note:
            it.set("Note", note)
        if drawn_id is not None:
            it.set("DrawnID", str(int(drawn_id)))
        it.set("PtsX", x)
        it.set("PtsY", y)
        self.items.append(it)
        return it


def _split_sections(text: str) -> tuple[str, list[tuple[str, str]]]:
    """Header text and ``(label, raw text)`` per ``[Item = ...]`` section, lossless."""
    header: list[str] = []
    items: list[tuple[str, list[str]]] = []
    for line in text.splitlines(keepends=True):
        s = line.strip()
        if s.startswith("[") and s.endswith("]") and s[1:].split("=", 1)[0].strip() == "Item":
            items.append((s[1:-1].split("=", 1)[1].strip(), [line]))
        elif items:
            items[-1][1].append(line)
        else:
            header.append(line)
    return "".join(header), [(lab, "".join(lines)) for lab, lines in items]


def read_nav(path: str | os.PathLike[str]) -> Navigator:
    """Read a SerialEM Navigator file in the autodoc format (``AdocVersion``).

    Raises
    ------
    EmgeomFileError
        The file does not exist or cannot be read.
    FileFormatError
        Not an autodoc Navigator (the old tab-delimited and the XML formats are refused with a
        message saying so), or an unparsable line.

    Warns
    -----
    NotSerialEMWarning
        The file lacks SerialEM's ``LastSavedAs`` line (written by another tool).
    """
    p, text, encoding = read_autodoc_text(path, "path", "Navigator file")
    first = text.lstrip("\ufeff").lstrip().split("\n", 1)[0]
    if first.startswith("Version\t") or first.startswith("Version "):
        raise FileFormatError(
            f"{p}: the pre-3.6 tab-delimited Navigator format is not supported; open it in "
            "SerialEM and save it again (SerialEM writes the autodoc format)"
        )
    if first.startswith("<?xml") or first.startswith("<"):
        raise FileFormatError(
            f"{p}: the XML Navigator format is not supported; save it from SerialEM as autodoc"
        )
    if not first.startswith("AdocVersion"):
        raise FileFormatError(f"{p}: not a SerialEM Navigator file (no 'AdocVersion' first line)")
    newline = "\r\n" if "\r\n" in text else "\n"
    header, raw_items = _split_sections(text)
    items = []
    line = header.count("\n") + 1
    for label, raw in raw_items:
        secs = parse_autodoc(raw, str(p), line)
        line += raw.count("\n")
        it = NavItem(label, secs[1].values, source=str(p), _raw=raw)
        items.append(it)
    nav = Navigator(str(p), header, items, newline=newline, encoding=encoding)
    parse_autodoc(header, str(p))  # validate the header lines too
    if not nav.written_by_serialem:
        warnings.warn(
            f"{p}: no 'LastSavedAs' line: not written by SerialEM; map geometry will be "
            "checked item by item (MapFrame refuses imported maps)",
            NotSerialEMWarning,
            stacklevel=2,
        )
    return nav


def write_nav(nav: Navigator, path: str | os.PathLike[str], *, force: bool = False) -> None:
    """Write ``nav`` atomically; unchanged items are copied byte for byte.

    Never overwrites an existing file unless ``force=True``.
    """
    nl = nav.newline
    parts = [nav.header]
    for it in nav.items:
        if it.edited and not parts[-1].endswith(nl * 2):
            # an edited/new item after text without a blank line: separate it like SerialEM
            parts.append(nl if parts[-1].endswith(nl) else nl * 2)
        parts.append(it.render(nl))
    with atomic_output(path, force=force) as tmp:
        tmp.write_bytes("".join(parts).encode(nav.encoding))
