"""Shared machinery of the robustness suite (tests/test_robust_*.py).

* :func:`corruptions`: a hypothesis strategy turning a valid file into a corrupt one: truncate,
  flip bytes, change the encoding, remove a column (a token of a line, or a header line), put a
  non-number in a number field, keep only the header lines, or empty it.
* :func:`check_reader`: the reader contract. A call returns (with finite numbers) or raises an
  ``emgeom.errors.EmgeomError`` that is also a ``ValueError`` or ``OSError`` and whose message
  names the file (or the folder it is in).
* :func:`run_cli` / :func:`check_cli_failure`: the CLI contract. rc != 0, exactly one line on
  stderr, no traceback or internal error, and nothing in the work folder changed (no output,
  no temporary file, an existing output untouched).

``EMGEOM_ROBUST_EXAMPLES`` (default 200) sets the examples per reader and per command; the
``slow`` tests run 10x as many with fresh random examples.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import re
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emgeom.errors import EmgeomError, EmgeomFileError, EmgeomWarning, MissingDependencyError

EXAMPLES = int(os.environ.get("EMGEOM_ROBUST_EXAMPLES", "200"))
SLOW_EXAMPLES = 10 * EXAMPLES


def robust_settings(examples: int = EXAMPLES, *, slow: bool = False) -> settings:
    """Hypothesis settings: derandomized by default (reproducible CI), random when slow."""
    return settings(
        max_examples=examples,
        derandomize=not slow,
        deadline=None,
        database=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.function_scoped_fixture,
            HealthCheck.filter_too_much,
        ],
    )


# --------------------------------------------------------------------------- corruptions

NOT_NUMBERS = [
    "abc",
    "nan",
    "NaN",
    "inf",
    "-inf",
    "1e999",
    "-1e999",
    "",
    "1,5",
    "--1",
    "0x1F",
    "sixty",
    "1.2.3",
    "١٢",
    "None",
    "true",
    "\x00",
    "1e-999",
    "+-",
    "'3'",
]
_NUMBER = re.compile(rb"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def _truncate(data: bytes, at: int) -> bytes:
    return data[: at % (len(data) + 1)]


def _flip(data: bytes, positions: list[int], values: list[int]) -> bytes:
    if not data:
        return data
    out = bytearray(data)
    for p, v in zip(positions, values, strict=False):
        out[p % len(out)] ^= v or 0xFF
    return bytes(out)


def _reencode(data: bytes, encoding: str, cut: int) -> bytes:
    text = data.decode("utf-8", errors="replace")
    if encoding == "latin-1 + non-ascii":
        return ("µÅ°é " + text).encode("latin-1", errors="replace")
    raw = text.encode(encoding)
    if cut % 2:  # truncated at an odd byte
        raw = raw[: max(1, (cut % max(1, len(raw))) | 1)]
    return raw


def _lines(data: bytes) -> list[bytes]:
    return data.split(b"\n")


def _drop_token(data: bytes, line: int, token: int) -> bytes:
    lines = _lines(data)
    candidates = [i for i, ln in enumerate(lines) if ln.split()]
    if not candidates:
        return data
    i = candidates[line % len(candidates)]
    parts = re.split(rb"(\s+|,)", lines[i])
    words = [k for k, p in enumerate(parts) if p.strip() and p != b","]
    del parts[words[token % len(words)]]
    lines[i] = b"".join(parts)
    return b"\n".join(lines)


def _drop_header_line(data: bytes, which: int) -> bytes:
    lines = _lines(data)
    headers = [i for i, ln in enumerate(lines) if re.match(rb"\s*(_|#|<|loop_|data_|\w+\s*=)", ln)]
    if not headers:
        return data
    del lines[headers[which % len(headers)]]
    return b"\n".join(lines)


def _headers_only(data: bytes) -> bytes:
    keep = [ln for ln in _lines(data) if not re.match(rb"\s*[-+.\d]", ln)]
    return b"\n".join(keep)


def _non_number(data: bytes, which: int, text: str) -> bytes:
    matches = list(_NUMBER.finditer(data))
    if not matches:
        return data
    m = matches[which % len(matches)]
    return data[: m.start()] + text.encode("utf-8") + data[m.end() :]


def corruptions(seed: bytes, *, text: bool = True) -> st.SearchStrategy[bytes]:
    """Corrupt versions of ``seed`` (a valid file's bytes)."""
    idx = st.integers(0, 1 << 30)
    kinds = [
        st.builds(_truncate, st.just(seed), idx),
        st.builds(
            _flip,
            st.just(seed),
            st.lists(idx, min_size=1, max_size=4),
            st.lists(st.integers(0, 255), min_size=1, max_size=4),
        ),
        st.builds(_non_number, st.just(seed), idx, st.sampled_from(NOT_NUMBERS)),
        st.just(b""),
        st.binary(max_size=64),
    ]
    if text:
        kinds += [
            st.builds(
                _reencode,
                st.just(seed),
                st.sampled_from(
                    ["utf-16", "utf-16-le", "utf-16-be", "utf-32", "latin-1 + non-ascii"]
                ),
                idx,
            ),
            st.builds(_drop_token, st.just(seed), idx, idx),
            st.builds(_drop_header_line, st.just(seed), idx),
            st.just(_headers_only(seed)),
        ]
    return st.one_of(kinds)


# --------------------------------------------------------------------------- reader contract


def _finite(value: Any, depth: int = 0) -> bool:
    if depth > 3:
        return True
    if isinstance(value, float):
        return bool(np.isfinite(value))
    if isinstance(value, np.ndarray):
        return value.dtype.kind not in "fc" or bool(np.isfinite(value).all())
    if isinstance(value, dict):
        return all(_finite(v, depth + 1) for v in value.values())
    if isinstance(value, list | tuple):
        return all(_finite(v, depth + 1) for v in value[:1000])
    for attr in ("tilt_deg", "defocus_a", "shifts_a", "distortion", "data"):
        if hasattr(value, attr) and not isinstance(value, type):
            if not _finite(getattr(value, attr), depth + 1):
                return False
    return True


def check_reader(call: Callable[[], Any], path: Path) -> Exception | None:
    """Apply the reader contract; returns the exception raised (or None)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EmgeomWarning)
        try:
            result = call()
        except MissingDependencyError as exc:  # e.g. a CSDAT .cs without cryosparc-tools
            assert "pip install" in str(exc), exc
            return exc
        except EmgeomError as exc:
            assert isinstance(exc, ValueError | OSError), (
                f"{type(exc).__name__} is neither a ValueError nor an OSError: {exc}"
            )
            msg = str(exc)
            assert path.name in msg or str(path.parent) in msg, (
                f"message does not name {path}: {msg}"
            )
            return exc
    assert _finite(result), f"non-finite numbers returned for {path.name}"
    return None


def fuzz_reader(
    reader: Callable[[Path], Any], path: Path, seed: bytes, *, text: bool, examples: int, slow: bool
) -> None:
    """Check that ``seed`` reads, then the reader contract on ``examples`` corruptions of it."""
    path.write_bytes(seed)
    assert check_reader(lambda: reader(path), path) is None, "the seed itself must be valid"

    @robust_settings(examples, slow=slow)
    @given(data=corruptions(seed, text=text))
    def run(data: bytes) -> None:
        path.write_bytes(data)
        check_reader(lambda: reader(path), path)

    run()


def check_folder_and_missing(reader: Callable[[Path], Any], folder: Path, filename: str) -> None:
    """A folder in place of the file and a missing file: each an EmgeomFileError naming it."""
    inside = folder / filename
    inside.mkdir()
    exc = check_reader(lambda: reader(inside), inside)
    assert isinstance(exc, EmgeomFileError), exc
    missing = folder / ("missing_" + filename)
    exc = check_reader(lambda: reader(missing), missing)
    assert isinstance(exc, EmgeomFileError), exc


def check_unreadable(reader: Callable[[Path], Any], path: Path, monkeypatch: Any) -> None:
    """A PermissionError on every way of opening ``path`` (``open``, ``os.open``,
    ``Path.read_bytes/read_text``) must give an EmgeomFileError naming it.
    """
    import builtins

    def check(file: Any) -> None:
        if isinstance(file, str | os.PathLike) and os.fspath(file) == str(path):
            raise PermissionError(errno.EACCES, "Permission denied", str(file))

    def wrap(real: Callable[..., Any]) -> Callable[..., Any]:
        def call(file: Any, *args: Any, **kwargs: Any) -> Any:
            check(file)
            return real(file, *args, **kwargs)

        return call

    monkeypatch.setattr(builtins, "open", wrap(builtins.open))
    monkeypatch.setattr(os, "open", wrap(os.open))
    monkeypatch.setattr(Path, "read_bytes", wrap(Path.read_bytes))
    monkeypatch.setattr(Path, "read_text", wrap(Path.read_text))
    exc = check_reader(lambda: reader(path), path)
    assert isinstance(exc, EmgeomFileError), exc


#: name -> (reader, file name, seed bytes given the test's tmp folder, text format?)
ReaderTable = dict[str, tuple[Callable[[Path], Any], str, Callable[[Path], bytes], bool]]


def no_tmp(
    readers: dict[str, tuple[Callable[[Path], Any], str, Callable[[], bytes], bool]],
) -> ReaderTable:
    """A table whose seeds need no folder, as a :data:`ReaderTable`."""
    return {k: (r, f, lambda _tmp, s=s: s(), t) for k, (r, f, s, t) in readers.items()}


def reader_contract_tests(readers: ReaderTable) -> tuple[Callable[..., None], ...]:
    """The four reader-contract tests over ``readers``, to bind to ``test_*`` names in a test
    module: corruptions (default and ``slow``), a folder or a missing path, an unreadable file.
    """
    names = sorted(readers)

    def fuzz(name: str, tmp_path: Path, examples: int, slow: bool) -> None:
        reader, filename, seed_fn, text = readers[name]
        seed = seed_fn(tmp_path)
        fuzz_reader(reader, tmp_path / filename, seed, text=text, examples=examples, slow=slow)

    @pytest.mark.parametrize("name", names)
    def corrupt(name: str, tmp_path: Path) -> None:
        fuzz(name, tmp_path, EXAMPLES, slow=False)

    @pytest.mark.slow
    @pytest.mark.parametrize("name", names)
    def corrupt_long(name: str, tmp_path: Path) -> None:
        fuzz(name, tmp_path, SLOW_EXAMPLES, slow=True)

    @pytest.mark.parametrize("name", names)
    def folder_or_missing(name: str, tmp_path: Path) -> None:
        reader, filename, _, _ = readers[name]
        check_folder_and_missing(reader, tmp_path, filename)

    @pytest.mark.parametrize("name", names)
    def unreadable(name: str, tmp_path: Path, monkeypatch: Any) -> None:
        """An OSError while reading (permissions, I/O error) is an EmgeomFileError naming it."""
        reader, filename, seed_fn, _ = readers[name]
        path = tmp_path / filename
        path.write_bytes(seed_fn(tmp_path))
        check_unreadable(reader, path, monkeypatch)

    return corrupt, corrupt_long, folder_or_missing, unreadable


# --------------------------------------------------------------------------- CLI contract


def snapshot(folder: Path) -> dict[str, tuple[int, int, bytes]]:
    """Every file under ``folder``: (size, mtime_ns, first 64 bytes)."""
    out = {}
    for p in sorted(folder.rglob("*")):
        st_ = p.lstat()
        head = p.read_bytes()[:64] if p.is_file() else b"<dir>"
        out[str(p.relative_to(folder))] = (st_.st_size, st_.st_mtime_ns, head)
    return out


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """Run ``emgeom argv`` in this process; returns (rc, stdout, stderr)."""
    from emgeom.cli import main

    out, err = io.StringIO(), io.StringIO()
    with (
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore")
        rc = main(argv)
    return rc, out.getvalue(), err.getvalue()


def check_cli_ok_or_clean_failure(
    argv: list[str], folder: Path, *, must_fail: bool, ok_codes: tuple[int, ...] = (0,)
) -> int:
    """The CLI contract for one run: a failure is one stderr line, no traceback or internal
    error, and ``folder`` unchanged; returns rc. Outputs of a successful run are removed.
    """
    before = snapshot(folder)
    rc, _, err = run_cli(argv)
    lines = err.strip().splitlines()
    assert "Traceback" not in err and "internal error" not in err, err[-2000:]
    if rc in ok_codes:
        assert not must_fail, f"exit code {rc} for a bad input: {argv}"
        for name in set(snapshot(folder)) - set(before):
            p = folder / name
            if p.is_file():
                p.unlink()
        return rc
    assert len(lines) == 1, f"{len(lines)} stderr lines for {argv}: {err[-2000:]}"
    assert lines[0].startswith("emgeom: "), lines[0]
    assert snapshot(folder) == before, f"files changed by a failed run: {argv}"
    return rc
