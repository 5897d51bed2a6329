"""``emgeom merge``: join the outputs of sharded batch runs (``--shard i/n``, SLURM arrays)."""

from __future__ import annotations

import csv
import io
import json
import os
from collections import Counter
from pathlib import Path
from typing import Annotated, Any

import typer

from emgeom.errors import FileFormatError, InvalidValueError
from emgeom.io.atomic import atomic_output, check_output
from emgeom.io.text import read_text

__all__ = ["merge", "merge_files"]


def _read_jsonl(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """``(where, record)`` per non-blank line, ``where`` = ``file:line``."""
    records = []
    _, text = read_text(path, "input", utf16=True, what="JSON-lines file")
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except (json.JSONDecodeError, RecursionError) as exc:
            msg = exc.msg if isinstance(exc, json.JSONDecodeError) else "nested too deeply"
            raise FileFormatError(f"{path}:{n}: not a JSON line ({msg})") from None
        if not isinstance(rec, dict):
            raise FileFormatError(f"{path}:{n}: expected a JSON object per line")
        records.append((f"{path}:{n}", rec))
    return records


def _row_number(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise FileFormatError(f"{where}: field 'row' must be an integer, got {value!r}"[:200])
    return value


def _check_unique(rows: list[int]) -> None:
    """Rows present in more than one shard are an error (one pass: O(n))."""
    dupes = sorted(r for r, c in Counter(rows).items() if c > 1)
    if dupes:
        raise InvalidValueError(
            f"inputs: {len(dupes)} row(s) appear in more than one shard, e.g. {dupes[:10]}"
        )


def _merge_jsonl(inputs: list[Path]) -> tuple[str, int]:
    records = [wr for p in inputs for wr in _read_jsonl(p)]
    if records and all("row" in r for _, r in records):
        rows = [_row_number(r["row"], where) for where, r in records]
        _check_unique(rows)
        order = sorted(range(len(rows)), key=rows.__getitem__)
        records = [records[i] for i in order]
    try:
        text = "".join(json.dumps(r) + "\n" for _, r in records)
    except (TypeError, ValueError, RecursionError) as exc:  # pragma: no cover - json input
        raise FileFormatError(f"inputs: cannot write the records as JSON ({exc})") from None
    return text, len(records)


def _merge_table(inputs: list[Path], delim: str) -> tuple[str, int]:
    header: list[str] | None = None
    body: list[tuple[str, list[str]]] = []
    for p in inputs:
        lines = read_text(p, "input", utf16=True, what="table")[1].splitlines()
        try:
            rows_in = list(csv.reader(lines, delimiter=delim, strict=True))
        except csv.Error as exc:
            raise FileFormatError(f"{p}: not a readable table ({exc})") from None
        rows_in = [r for r in rows_in if any(c.strip() for c in r)]
        if not rows_in:
            continue
        if header is None:
            header = rows_in[0]
        elif rows_in[0] != header:
            raise FileFormatError(f"{p}: header {rows_in[0][:8]} differs from {header[:8]}")
        for n, r in enumerate(rows_in[1:], 2):
            if len(r) != len(header):
                raise FileFormatError(f"{p}:{n}: {len(r)} cell(s), the header has {len(header)}")
            body.append((f"{p}:{n}", r))
    if header is not None and "row" in header:
        k = header.index("row")
        rows = []
        for where, r in body:
            try:
                rows.append(int(r[k]))
            except ValueError:
                raise FileFormatError(
                    f"{where}: column 'row' must hold an integer, got {r[k]!r}"[:200]
                ) from None
        _check_unique(rows)
        order = sorted(range(len(rows)), key=rows.__getitem__)
        body = [body[i] for i in order]
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter=delim, lineterminator="\n")
    if header is not None:
        writer.writerow(header)
    writer.writerows(r for _, r in body)
    return buf.getvalue(), len(body)


def merge_files(inputs: list[Path], output: Path, *, force: bool = False) -> int:
    """Merge shard outputs into one file; returns the number of records.

    JSON-lines (``.jsonl``/``.json``/``.ndjson``): records are ordered by their integer ``row``
    field when every record has one (the batch commands write it). CSV/TSV: rows are
    concatenated (ordered by an integer ``row`` column when there is one); all inputs must have
    the same header. Either way a row present in two shards is an error. The output is checked
    before any input is read, written atomically and never replaces an existing file unless
    ``force``.
    """
    if isinstance(inputs, str | os.PathLike) or not inputs:
        raise InvalidValueError("inputs: give a list of at least one shard output")
    paths = [Path(p) for p in inputs]
    suffixes = {p.suffix.lower() for p in paths}
    if suffixes <= {".jsonl", ".json", ".ndjson"}:
        check_output(output, force)
        text, count = _merge_jsonl(paths)
    elif suffixes <= {".csv", ".tsv"} and len(suffixes) == 1:
        check_output(output, force)
        text, count = _merge_table(paths, "\t" if suffixes == {".tsv"} else ",")
    else:
        raise InvalidValueError(
            f"inputs: expected only .jsonl or only .csv/.tsv files, got {sorted(suffixes)}"
        )
    with atomic_output(output, force=force) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return count


def merge(
    inputs: Annotated[list[Path], typer.Argument(help="Shard outputs (.jsonl, or .csv/.tsv).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Merged output file.")],
    force: Annotated[bool, typer.Option("--force", help="Overwrite the output.")] = False,
) -> None:
    """Merge the outputs of sharded batch runs into one file (ordered by row)."""
    n = merge_files(inputs, output, force=force)
    typer.echo(f"merged {n} records from {len(inputs)} files -> {output}", err=True)
