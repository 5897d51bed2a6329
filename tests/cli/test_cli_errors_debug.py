"""Only the root's ``--debug`` (before the command name) shows tracebacks."""

from __future__ import annotations

import pytest

from emgeom.cli import main
from emgeom.errors import EmgeomFileError


def test_debug_after_the_command_is_not_the_global_flag(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    nav = str(tmp_path / "missing.nav")
    # as a sub-command's value: one line, exit 2, no traceback
    assert main(["serialem", "where", nav, "--item", "--debug", "--pixel", "1,2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("emgeom: error:") and "missing.nav" in err[0]
    # an unknown option of the sub-command: a usage error in one line
    assert main(["version", "--debug"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0]


def test_debug_before_the_command_raises(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(EmgeomFileError, match=r"missing\.nav"):
        main(
            [
                "--debug",
                "serialem",
                "where",
                str(tmp_path / "missing.nav"),
                "--item",
                "1",
                "--pixel",
                "1,2",
            ]
        )
