"""``emgeom merge``: join the outputs of sharded batch runs (``--shard i/n``, SLURM arrays)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Annotated, Any

import typer

from emgeom.errors import EmgeomFileError, FileFormatError, InvalidValueError
from emgeom.io._atomic import atomic_output

__all__ = ["merge", "merge_files"]


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    records = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            raise FileFormatError(f"{path}:{n}: not a JSON line ({exc.msg})") from None
        if not isinstance(rec, dict):
            raise FileFormatError(f"{path}:{n}: expected a JSON object per line")
        records.append(rec)
    return records


def merge_files(inputs: list[Path], output: Path, *, force: bool = False) -> int:
    """Merge shard outputs into one file; returns the number of records.

    JSON-lines (``.jsonl``/``.json``): records are ordered by their ``row`` field when every
    record has one (the batch commands write it), and a row present in two shards is an error.
    CSV/TSV: rows are concatenated (ordered by a ``row`` column when there is one); all inputs
    must have the same header. The output is written
    atomically and never replaces an existing file unless ``force``.
    """
    if not inputs:
        raise InvalidValueError("inputs: give at least one shard output")
    for p in inputs:
        if not p.is_file():
            raise EmgeomFileError(f"{p}: no such file")
    suffixes = {p.suffix.lower() for p in inputs}
    if suffixes <= {".jsonl", ".json", ".ndjson"}:
        records = [r for p in inputs for r in _read_jsonl(p)]
        if records and all("row" in r for r in records):
            rows = [r["row"] for r in records]
            dupes = sorted({r for r in rows if rows.count(r) > 1})
            if dupes:
                raise InvalidValueError(f"inputs: rows {dupes[:10]} appear in more than one shard")
            records.sort(key=lambda r: r["row"])
        text = "".join(json.dumps(r) + "\n" for r in records)
        count = len(records)
    elif suffixes <= {".csv", ".tsv"} and len(suffixes) == 1:
        delim = "\t" if suffixes == {".tsv"} else ","
        header: list[str] | None = None
        body: list[list[str]] = []
        for p in inputs:
            rows_in = list(csv.reader(p.read_text(encoding="utf-8").splitlines(), delimiter=delim))
            if not rows_in:
                continue
            if header is None:
                header = rows_in[0]
            elif rows_in[0] != header:
                raise FileFormatError(f"{p}: header {rows_in[0]} differs from {header}")
            body.extend(rows_in[1:])
        if header is not None and "row" in header:
            k = header.index("row")
            try:
                body.sort(key=lambda r: int(r[k]))
            except (ValueError, IndexError):
                raise FileFormatError("inputs: the 'row' column must hold integers") from None
        buf = io.StringIO()
        writer = csv.writer(buf, delimiter=delim, lineterminator="\n")
        if header is not None:
            writer.writerow(header)
        writer.writerows(body)
        text, count = buf.getvalue(), len(body)
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
