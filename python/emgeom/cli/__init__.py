"""The ``emgeom`` command line.

Each capability has its own sub-command module in this package exposing ``app`` (a
``typer.Typer``); they are discovered from :data:`SUBCOMMANDS`.

Error contract (every command): one line on stderr and a non-zero exit code, never a
traceback.

* usage errors (unknown command or option, a value that does not parse): exit code 2, whichever
  package provides the parser's exceptions (typer >= 0.2x bundles its own click; older typer
  uses ``click``, which a plain ``pip install emgeom`` may not have);
* :mod:`emgeom.errors` exceptions: exit code 2 (bad input) or 1 (:class:`InternalError`);
* anything else is a bug: exit code 1, one line and "run with --debug for the traceback";
* SIGTERM (a batch system's time limit): exit code 143 after the ``finally`` blocks ran, so no
  temporary file is left (only SIGKILL can leave one: see ``emgeom clean-temp``).

``emgeom --debug ...`` (or ``EMGEOM_DEBUG=1``) shows the traceback instead.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Annotated, Any

import typer

from emgeom import __version__
from emgeom._validate import as_float
from emgeom.cli import anisomag, crossmag, demo, merge, serialem, tilt
from emgeom.errors import EmgeomError, InternalError
from emgeom.io.atomic import file_error, stale_temp_files

__all__ = ["app", "main"]

#: sub-command name -> its module in this package (each defines ``app``)
SUBCOMMANDS = {"anisomag": anisomag, "tilt": tilt, "crossmag": crossmag, "serialem": serialem}

app = typer.Typer(
    name="emgeom",
    help="Cryo-EM geometry conventions done right: anisotropic magnification, "
    "cross-magnification alignment, tilt-series defocus handedness.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

_state = {"debug": False}


@app.callback()
def _root(
    debug: Annotated[
        bool,
        typer.Option("--debug", help="Show the full traceback of an error (or EMGEOM_DEBUG=1)."),
    ] = False,
) -> None:
    """Cryo-EM geometry conventions done right."""
    _state["debug"] = _state["debug"] or debug


for _name, _module in SUBCOMMANDS.items():
    app.add_typer(_module.app, name=_name)

app.command("demo")(demo.demo)
app.command("merge")(merge.merge)


@app.command("clean-temp")
def clean_temp(
    folder: Annotated[Path, typer.Argument(help="Folder to clean (not recursive).")],
    min_age: Annotated[
        float, typer.Option(help="Only files untouched for this many seconds (>= 0).")
    ] = 3600.0,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List, do not delete.")] = False,
) -> None:
    """Remove the hidden temporary files (.NAME.emgeom-XXXXXXXX.tmp) a killed write left."""
    age = as_float(min_age, "--min-age", nonnegative=True)
    files = stale_temp_files(folder, min_age_s=age)
    total = 0
    for f in files:
        try:
            total += f.stat().st_size
            if not dry_run:
                f.unlink()
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise file_error(f, exc, "remove") from None
        typer.echo(str(f))
    verb = "would remove" if dry_run else "removed"
    typer.echo(f"{verb} {len(files)} temporary file(s), {total / 1e6:.1f} MB", err=True)


@app.command("version")
def version() -> None:
    """Print the emgeom version."""
    typer.echo(__version__)


def _parser_error_types() -> tuple[type[BaseException], ...]:
    """The command-line parser's exception base classes, from whichever package provides them.

    typer >= 0.2x raises its bundled click's exceptions (subclasses of
    ``typer.exceptions.TyperException``); older typer raises ``click.ClickException``. ``click``
    is imported only if it is installed: a plain ``pip install emgeom`` need not have it.
    """
    found: list[type[BaseException]] = []
    for module, name in (("typer.exceptions", "TyperException"), ("click", "ClickException")):
        try:
            found.append(getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError):
            continue
    return tuple(found)


def _one_line(text: str) -> str:
    """``text`` on one line (a message never spreads over several stderr lines)."""
    return " ".join(str(text).split())


def _usage_message(exc: BaseException) -> str:
    fmt = getattr(exc, "format_message", None)
    msg = _one_line(fmt() if callable(fmt) else str(exc))
    ctx = getattr(exc, "ctx", None)
    cmd = getattr(ctx, "command_path", None) or "emgeom"
    if type(exc).__name__ == "NoArgsIsHelpError":
        return f"emgeom: error: {cmd} needs a command or arguments; see '{cmd} --help'"
    if "UsageError" in {c.__name__ for c in type(exc).__mro__}:
        return f"emgeom: usage error: {msg} (see '{cmd} --help')"
    return f"emgeom: error: {msg}"


_COMMAND_CACHE: dict[tuple[int, ...], Any] = {}


def _click_command() -> Any:
    """The click command typer builds from :data:`app`, built once (~60 ms per build: scripts
    and SerialEM's Python that call :func:`main` repeatedly pay it once); rebuilt if commands
    are added to ``app``.
    """
    key = tuple(id(c) for c in app.registered_commands) + tuple(
        id(g) for g in app.registered_groups
    )
    if key not in _COMMAND_CACHE:
        _COMMAND_CACHE.clear()
        _COMMAND_CACHE[key] = typer.main.get_command(app)
    return _COMMAND_CACHE[key]


def _debug() -> bool:
    return _state["debug"] or os.environ.get("EMGEOM_DEBUG", "") not in ("", "0")


class _Terminated(BaseException):
    """SIGTERM (e.g. a SLURM time limit) raised as an exception, so that every ``finally``
    runs: atomic writes remove their temporary files instead of leaving them behind.
    """


def _on_sigterm(signum: int, frame: Any) -> None:
    raise _Terminated()


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``emgeom`` console script; returns the exit code."""
    args = sys.argv[1:] if argv is None else list(argv)
    # `--debug` is the root's option: it counts only before the command name (a `--debug`
    # further on is some sub-command's value or an unknown option, reported in one line). Known
    # before parsing, so that even a failure while parsing shows its traceback.
    _state["debug"] = (
        "--debug"
        in args[: next((i for i, a in enumerate(args) if not a.startswith("-") or a == "--"), None)]
    )
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return _run(args)
    except _Terminated:
        typer.echo("emgeom: terminated (SIGTERM); no partial output was left", err=True)
        return 143
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _run(args: list[str]) -> int:
    parser_errors = _parser_error_types()
    try:
        rv = _click_command().main(args=args, prog_name="emgeom", standalone_mode=False)
    except EmgeomError as exc:
        if _debug():
            raise
        code = 1 if isinstance(exc, InternalError) else 2
        typer.echo(f"emgeom: error: {_one_line(str(exc))}", err=True)
        return code
    except (typer.Abort, KeyboardInterrupt):
        typer.echo("emgeom: aborted", err=True)
        return 130
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except Exception as exc:
        if parser_errors and isinstance(exc, parser_errors):
            if type(exc).__name__ == "NoArgsIsHelpError":
                typer.echo(exc.format_message())  # type: ignore[attr-defined]
            typer.echo(_usage_message(exc), err=True)
            return int(getattr(exc, "exit_code", 2) or 2)
        if _debug():
            raise
        if isinstance(exc, MemoryError):
            what = "out of memory"
        else:
            what = f"internal error, please report it ({type(exc).__name__}: {_one_line(str(exc))})"
        typer.echo(f"emgeom: {what}; run with --debug for the traceback", err=True)
        return 1
    return rv if isinstance(rv, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
