"""The ``emgeom`` command line.

Each capability has its own sub-command module in this package exposing ``app`` (a
``typer.Typer``); they are discovered from :data:`SUBCOMMANDS`. Errors from
:mod:`emgeom.errors` become one-line messages and exit code 2 (bad input) or 1 (other
failures); no traceback is shown unless ``EMGEOM_DEBUG=1``.
"""

from __future__ import annotations

import importlib
import os
import sys

import typer

from emgeom.errors import EmgeomError, InternalError

__all__ = ["app", "main"]

#: sub-command name -> module in this package that defines ``app``
SUBCOMMANDS = {
    "anisomag": "emgeom.cli.anisomag",
    "tilt": "emgeom.cli.tilt",
    "crossmag": "emgeom.cli.crossmag",
    "serialem": "emgeom.cli.serialem",
}

app = typer.Typer(
    name="emgeom",
    help="Cryo-EM geometry conventions done right: anisotropic magnification, "
    "cross-magnification alignment, tilt-series defocus handedness.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

for _name, _module in SUBCOMMANDS.items():
    try:
        _mod = importlib.import_module(_module)
    except ModuleNotFoundError as _exc:  # capability not built yet in this checkout
        if _exc.name != _module:
            raise
        continue
    app.add_typer(_mod.app, name=_name)

from emgeom.cli import demo as _demo  # noqa: E402
from emgeom.cli import merge as _merge  # noqa: E402

app.command("demo")(_demo.demo)
app.command("merge")(_merge.merge)


@app.command("version")
def version() -> None:
    """Print the emgeom version."""
    from emgeom import __version__

    typer.echo(__version__)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``emgeom`` console script."""
    try:
        app(args=argv, standalone_mode=False)
    except EmgeomError as exc:
        if os.environ.get("EMGEOM_DEBUG"):
            raise
        code = 1 if isinstance(exc, InternalError) else 2
        typer.echo(f"emgeom: error: {exc}", err=True)
        return code
    except typer.Abort:
        typer.echo("emgeom: aborted", err=True)
        return 130
    except SystemExit as exc:
        return int(exc.code or 0)
    except Exception as exc:  # click usage errors
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            return exc.exit_code
        raise
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
