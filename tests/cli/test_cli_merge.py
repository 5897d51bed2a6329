"""`emgeom merge`: joining sharded batch outputs."""

from __future__ import annotations

import json

import pytest

from emgeom.cli import main
from emgeom.cli.merge import merge_files
from emgeom.errors import FileFormatError, InvalidValueError, OutputExistsError


def test_jsonl_shards_are_ordered_by_row(tmp_path) -> None:  # type: ignore[no-untyped-def]
    a = tmp_path / "a.jsonl"
    b = tmp_path / "b.jsonl"
    a.write_text("".join(json.dumps({"row": r, "v": r * 10}) + "\n" for r in (0, 2, 4)))
    b.write_text("".join(json.dumps({"row": r, "v": r * 10}) + "\n" for r in (1, 3)))
    out = tmp_path / "all.jsonl"
    assert main(["merge", str(a), str(b), "-o", str(out)]) == 0
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["row"] for r in rows] == [0, 1, 2, 3, 4] and rows[3]["v"] == 30
    with pytest.raises(OutputExistsError):
        merge_files([a, b], out)
    assert main(["merge", str(a), str(b), "-o", str(out)]) == 2  # no clobber from the CLI
    with pytest.raises(InvalidValueError, match="more than one shard"):
        merge_files([a, a], tmp_path / "dup.jsonl")


def test_csv_shards_and_bad_inputs(tmp_path) -> None:  # type: ignore[no-untyped-def]
    a = tmp_path / "a.csv"
    b = tmp_path / "b.csv"
    a.write_text("x,y\n1,2\n")
    b.write_text("x,y\n3,4\n5,6\n")
    out = tmp_path / "all.csv"
    assert merge_files([a, b], out) == 3
    assert out.read_text() == "x,y\n1,2\n3,4\n5,6\n"
    c = tmp_path / "c.csv"
    c.write_text("x,z\n1,2\n")
    with pytest.raises(FileFormatError, match="header"):
        merge_files([a, c], tmp_path / "bad.csv")
    j = tmp_path / "a.jsonl"
    j.write_text("{}\n")
    with pytest.raises(InvalidValueError, match="only"):
        merge_files([a, j], tmp_path / "mixed.csv")
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{not json}\n")
    with pytest.raises(FileFormatError, match=r"bad\.jsonl:1"):
        merge_files([bad], tmp_path / "o.jsonl")
