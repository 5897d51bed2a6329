"""Atomic, no-clobber file writing shared by every writer in emgeom."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from emgeom.errors import EmgeomFileError, OutputExistsError

__all__ = ["atomic_output", "check_output"]


def check_output(path: str | os.PathLike[str], force: bool) -> Path:
    """Refuse an existing output unless ``force``; check its folder exists."""
    p = Path(path)
    if p.exists() and not force:
        raise OutputExistsError(f"{p}: already exists; pass force=True (CLI: --force) to overwrite")
    if p.is_dir():
        raise EmgeomFileError(f"{p}: is a directory, expected a file path")
    if not p.parent.exists():
        raise EmgeomFileError(f"{p.parent}: output folder does not exist")
    return p


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str], *, force: bool = False) -> Iterator[Path]:
    """Yield a temporary path in the destination folder; move it into place on success.

    The final step is atomic: readers see either the old file or the complete new one, never a
    partial write. Without ``force``, an existing file is never replaced, even if it appears
    while we write (``os.link`` fails instead of clobbering).
    """
    dest = check_output(path, force)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        if force:
            os.replace(tmp, dest)
        else:
            try:
                os.link(tmp, dest)
            except FileExistsError:
                raise OutputExistsError(
                    f"{dest}: appeared while writing; pass force=True to overwrite"
                ) from None
            except OSError:  # file systems without hard links
                if dest.exists():
                    raise OutputExistsError(f"{dest}: already exists") from None
                os.replace(tmp, dest)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
