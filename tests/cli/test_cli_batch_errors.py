"""`emgeom crossmag batch` and `emgeom merge` on bad tables: one line, non-zero exit, nothing
written, checked before the first pair is aligned.
"""

from __future__ import annotations

import json
import time

import pytest

from emgeom import crossmag
from emgeom.cli import main
from emgeom.cli.merge import merge_files
from emgeom.errors import FileFormatError, InvalidValueError

GOOD = "reference,moving,rotation_deg\nv.mrc,p.mrc,8\n"


def _never_align(*args, **kwargs):  # type: ignore[no-untyped-def]
    raise AssertionError("align must not run")


@pytest.fixture
def no_align(monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setattr(crossmag, "align", _never_align)


def _batch(tmp_path, content, *extra, name="pairs.csv"):  # type: ignore[no-untyped-def]
    table = tmp_path / name
    if isinstance(content, bytes):
        table.write_bytes(content)
    elif content is not None:
        table.write_text(content)
    out = tmp_path / "out.jsonl"
    rc = main(["crossmag", "batch", str(table), "--out", str(out), *extra])
    return rc, out


BAD_TABLES = {
    "empty": b"",
    "blank lines": b"\n\n  \n",
    "binary": bytes(range(256)) * 4,
    "utf-16 truncated": GOOD.encode("utf-16")[:-1],
    "no moving column": "reference,rotation_deg\nv.mrc,8\n",
    "short row": "reference,moving,rotation_deg\nv.mrc\n",
    "long row": "reference,moving\nv.mrc,p.mrc,extra\n",
    "empty path": "reference,moving\nv.mrc,\n",
    "text in number": "reference,moving,rotation_deg\nv.mrc,p.mrc,eight\n",
    "nan pixel": "reference,moving,moving_pixel_a\nv.mrc,p.mrc,nan\n",
    "negative pixel": "reference,moving,reference_pixel_a\nv.mrc,p.mrc,-2\n",
    "inf rotation": "reference,moving,rotation_deg\nv.mrc,p.mrc,inf\n",
    "stray quote": 'reference,moving\n"v.mrc,p.mrc\n',
}


@pytest.mark.parametrize("name", sorted(BAD_TABLES))
def test_bad_pairs_tables(tmp_path, capsys, no_align, name) -> None:  # type: ignore[no-untyped-def]
    rc, out = _batch(tmp_path, BAD_TABLES[name])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and not out.exists()
    assert len(err) == 1 and "pairs.csv" in err[0] and "Traceback" not in err[0], err


def test_bad_cell_names_line_and_column(tmp_path, capsys, no_align) -> None:  # type: ignore[no-untyped-def]
    rc, _ = _batch(tmp_path, "reference,moving,moving_pixel_a\nv.mrc,p.mrc,4\nv.mrc,p.mrc,x\n")
    err = capsys.readouterr().err
    assert rc == 2 and "pairs.csv:3" in err and "'moving_pixel_a'" in err


def test_directory_or_missing_pairs_file(tmp_path, capsys, no_align) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "pairs.csv").mkdir()
    assert _batch(tmp_path, None)[0] == 2
    assert _batch(tmp_path, None, name="missing.csv")[0] == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "is a directory" in err[0] and "file not found" in err[1]


@pytest.mark.parametrize(
    "option",
    [
        ["--threads", "0"],
        ["--threads", "-3"],
        ["--scale-search", "nan"],
        ["--rotation-search", "1e9"],
        ["--shard", "2/2"],
    ],
)
def test_bad_options_fail_before_aligning(tmp_path, capsys, no_align, option) -> None:  # type: ignore[no-untyped-def]
    rc, out = _batch(tmp_path, GOOD, *option)
    assert rc == 2 and not out.exists()
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_existing_out_is_refused_before_aligning(tmp_path, capsys, no_align) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "out.jsonl"
    out.write_text("keep\n")
    assert _batch(tmp_path, GOOD)[0] == 2
    assert out.read_text() == "keep\n" and "already exists" in capsys.readouterr().err
    bad_suffix = ["--out", str(tmp_path / "out.txt")]
    assert main(["crossmag", "batch", str(tmp_path / "pairs.csv"), *bad_suffix]) == 2


def test_utf16_and_utf8_bom_tables_are_read(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # UTF-16 with a BOM, UTF-16-LE without one (ASCII text as Windows tools write it), UTF-8 BOM
    raws = [GOOD.encode("utf-16"), GOOD.encode("utf-16-le"), GOOD.encode("utf-8-sig")]
    for i, raw in enumerate(raws):
        out = tmp_path / f"o{i}.jsonl"
        (tmp_path / "pairs.csv").write_bytes(raw)
        assert main(["crossmag", "batch", str(tmp_path / "pairs.csv"), "--out", str(out)]) == 0
        rec = json.loads(out.read_text())
        assert rec["reference"] == "v.mrc" and "no such file" in rec["error"]


# --------------------------------------------------------------------------- merge


@pytest.mark.parametrize("row", ['"3"', "1.5", "null", "true", "[1]", '{"a": 1}'])
def test_merge_non_integer_row_field(tmp_path, row) -> None:  # type: ignore[no-untyped-def]
    a = tmp_path / "a.jsonl"
    a.write_text('{"row": 0}\n{"row": ' + row + "}\n")
    with pytest.raises(FileFormatError, match=r"a\.jsonl:2: field 'row' must be an integer"):
        merge_files([a], tmp_path / "m.jsonl")


def test_merge_non_integer_row_column(tmp_path) -> None:  # type: ignore[no-untyped-def]
    a = tmp_path / "a.csv"
    a.write_text("row,x\n1,2\nzwei,3\n")
    with pytest.raises(FileFormatError, match=r"a\.csv:3: column 'row'"):
        merge_files([a], tmp_path / "m.csv")


@pytest.mark.parametrize(
    "content",
    [b"\xff\xfe{\x00", bytes(range(256)), b"[1, 2]\n", b"{" * 10**5],
)
def test_merge_bad_jsonl_one_line(tmp_path, capsys, content) -> None:  # type: ignore[no-untyped-def]
    a = tmp_path / "a.jsonl"
    a.write_bytes(content)
    out = tmp_path / "m.jsonl"
    assert main(["merge", str(a), "-o", str(out)]) == 2 and not out.exists()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "a.jsonl" in err[0]


def test_merge_folder_input_and_output_checked_first(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    a = tmp_path / "a.jsonl"
    a.write_text('{"row": 0}\n')
    (tmp_path / "d.jsonl").mkdir()
    assert main(["merge", str(tmp_path / "d.jsonl"), "-o", str(tmp_path / "m.jsonl")]) == 2
    out = tmp_path / "m.jsonl"
    out.write_text("keep")
    (tmp_path / "broken.jsonl").write_text("{not json\n")
    assert main(["merge", str(tmp_path / "broken.jsonl"), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "is a directory" in err[0] and "already exists" in err[1] and out.read_text() == "keep"


def test_merge_duplicate_check_is_linear(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # 100k records: the old quadratic check (rows.count per row) takes ~75 s (64k: 31 s)
    n = 100_000
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_text("".join(f'{{"row": {r}}}\n' for r in range(0, n, 2)))
    b.write_text("".join(f'{{"row": {r}}}\n' for r in range(n - 1, 0, -2)))
    start = time.perf_counter()
    assert merge_files([a, b], tmp_path / "m.jsonl") == n
    assert time.perf_counter() - start < 15.0  # ~1 s here, 2 cores; bound only catches O(n²)
    rows = [json.loads(x)["row"] for x in (tmp_path / "m.jsonl").read_text().splitlines()]
    assert rows == list(range(n))
    with pytest.raises(InvalidValueError, match="2 row"):
        b.write_text('{"row": 4}\n{"row": 10}\n')
        merge_files([a, b], tmp_path / "m2.jsonl")
