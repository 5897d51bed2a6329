"""The CLI's error path: one line on stderr, exit code 2 for usage errors, no traceback, with
or without the ``click`` package (typer >= 0.2x bundles its own; a bare install lacks it).
"""

from __future__ import annotations

import sys

import pytest

import emgeom.cli as cli
from emgeom.cli import main

USAGE_ERRORS = [
    [],
    ["foo"],
    ["--bogus"],
    ["crossmag", "align", "--threads", "abc", "a.mrc", "b.mrc"],
    ["anisomag", "convert", "--nope"],
    ["merge"],
]


@pytest.fixture(params=["with click", "without click"])
def click_state(request, monkeypatch):  # type: ignore[no-untyped-def]
    if request.param == "without click":
        monkeypatch.setitem(sys.modules, "click", None)  # `import click` -> ImportError
    return request.param


@pytest.mark.parametrize("argv", USAGE_ERRORS, ids=lambda a: " ".join(a) or "no-args")
def test_usage_errors_are_one_line_exit_2(argv, click_state, capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("emgeom: ") and "Traceback" not in err


def test_no_args_shows_the_help_on_stdout(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main([]) == 2
    out = capsys.readouterr().out
    assert "crossmag" in out and "demo" in out


def test_help_and_version_exit_0(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["--help"]) == 0
    assert main(["version"]) == 0
    assert capsys.readouterr().err == ""


def _boom() -> None:
    raise KeyError("unexpected")


def test_internal_error_is_one_line_with_debug_hint(monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("EMGEOM_DEBUG", raising=False)
    monkeypatch.setattr(cli.app, "registered_commands", list(cli.app.registered_commands))
    cli.app.command("boom")(_boom)
    assert main(["boom"]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert "KeyError" in err and "run with --debug for the traceback" in err
    with pytest.raises(KeyError):
        main(["--debug", "boom"])
    monkeypatch.setenv("EMGEOM_DEBUG", "1")
    with pytest.raises(KeyError):
        main(["boom"])


def test_emgeom_error_message_stays_on_one_line(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "two\nlines.mrc"
    assert main(["crossmag", "align", str(bad), str(bad), "--ref-pixel", "1"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "lines.mrc" in err


def test_sigterm_removes_the_temporary_file(tmp_path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    import os
    import signal

    from emgeom.io.atomic import atomic_output

    dest = tmp_path / "out.txt"

    def slow_write() -> None:
        with atomic_output(dest) as tmp:
            tmp.write_text("partial")
            os.kill(os.getpid(), signal.SIGTERM)  # e.g. a SLURM time limit, mid-write
            tmp.write_text("never")

    monkeypatch.setattr(cli.app, "registered_commands", list(cli.app.registered_commands))
    cli.app.command("slow-write")(slow_write)
    before = signal.getsignal(signal.SIGTERM)
    assert main(["slow-write"]) == 143
    assert list(tmp_path.iterdir()) == []  # no output, no .out.txt.emgeom-*.tmp
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert signal.getsignal(signal.SIGTERM) is before  # handler restored
