"""A small STAR reader/writer (RELION data blocks, loops and key-value pairs).

Values are kept as strings; callers convert. Enough for tomograms.star, per-tilt tables and
particle tables, including RELION-4/Warp bracketed vectors such as ``[0.07,-0.99,0.0,0]``
(which contain no spaces). No third-party dependency.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from emgeom.errors import EmgeomFileError, FileFormatError
from emgeom.io._atomic import atomic_output

__all__ = ["StarBlock", "read_star", "write_star"]


@dataclass
class StarBlock:
    """One ``data_`` block: either a loop (``columns`` + ``rows``) or key-value ``pairs``."""

    name: str
    columns: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    pairs: dict[str, str] = field(default_factory=dict)

    @property
    def is_loop(self) -> bool:
        return bool(self.columns)

    def column(self, label: str) -> list[str]:
        """The values of ``label`` (with or without the leading ``_``) of a loop or pair block."""
        key = label.lstrip("_")
        if key in self.columns:
            i = self.columns.index(key)
            return [r[i] for r in self.rows]
        if key in self.pairs:
            return [self.pairs[key]]
        raise KeyError(key)

    def has(self, label: str) -> bool:
        key = label.lstrip("_")
        return key in self.columns or key in self.pairs

    def n_rows(self) -> int:
        return len(self.rows) if self.is_loop else (1 if self.pairs else 0)

    def records(self) -> list[dict[str, str]]:
        if self.is_loop:
            return [dict(zip(self.columns, r, strict=True)) for r in self.rows]
        return [dict(self.pairs)] if self.pairs else []


def _tokens(line: str) -> list[str]:
    if '"' in line or "'" in line:
        try:
            return shlex.split(line, posix=True)
        except ValueError:
            pass
    return line.split()


def read_star(path: str | os.PathLike[str]) -> dict[str, StarBlock]:
    """Read every data block of a STAR file (ordered dict name → block)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        raise EmgeomFileError(f"{p}: file not found") from None
    except OSError as exc:
        raise EmgeomFileError(f"{p}: cannot read ({exc})") from exc
    blocks: dict[str, StarBlock] = {}
    block: StarBlock | None = None
    in_loop_header = False
    in_loop = False
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            if in_loop and not line and block is not None and block.rows:
                in_loop = False
            continue
        if line.startswith("data_"):
            block = StarBlock(name=line[5:])
            blocks[block.name] = block
            in_loop_header = in_loop = False
            continue
        if block is None:
            raise FileFormatError(f"{p}:{lineno}: content before the first data_ block")
        if line.startswith("loop_"):
            in_loop_header, in_loop = True, False
            continue
        if line.startswith("_"):
            toks = line.split()
            name = toks[0][1:]
            if in_loop_header:
                block.columns.append(name)
            else:
                if len(toks) < 2:
                    raise FileFormatError(f"{p}:{lineno}: label {toks[0]} has no value")
                rest = _tokens(line)[1:]
                block.pairs[name] = rest[0] if rest else ""
            continue
        # data row
        if in_loop_header:
            in_loop_header, in_loop = False, True
        if not in_loop:
            raise FileFormatError(f"{p}:{lineno}: unexpected data outside a loop: {line[:60]!r}")
        toks = _tokens(line)
        if len(toks) != len(block.columns):
            raise FileFormatError(
                f"{p}:{lineno}: expected {len(block.columns)} values in block data_{block.name}, "
                f"got {len(toks)}"
            )
        block.rows.append(toks)
    return blocks


def _fmt(v: object) -> str:
    s = str(v)
    if s == "" or any(c.isspace() for c in s):
        return '"' + s.replace('"', "'") + '"'
    return s


def format_star(blocks: Iterable[StarBlock], header: str = "") -> str:
    out: list[str] = []
    if header:
        out += [f"# {line}" for line in header.splitlines()]
    out.append("")
    out.append("# version 50001")
    for b in blocks:
        out += ["", f"data_{b.name}", ""]
        if b.is_loop:
            out.append("loop_")
            out += [f"_{c} #{i + 1}" for i, c in enumerate(b.columns)]
            out += [" ".join(_fmt(v) for v in r) for r in b.rows]
        else:
            width = max((len(k) for k in b.pairs), default=0) + 2
            out += [f"_{k:<{width}}{_fmt(v)}" for k, v in b.pairs.items()]
        out.append("")
    return "\n".join(out) + "\n"


def write_star(
    path: str | os.PathLike[str],
    blocks: Sequence[StarBlock],
    *,
    force: bool = False,
    header: str = "",
) -> Path:
    """Write blocks atomically; refuse to overwrite without ``force``."""
    text = format_star(blocks, header)
    with atomic_output(path, force=force) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)
