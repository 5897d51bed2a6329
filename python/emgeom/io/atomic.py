"""Atomic, no-clobber file writing shared by every writer in emgeom.

Rules (every writer follows them through :func:`atomic_output`):

* The data is first written to a hidden temporary file next to the destination,
  ``.<name>.emgeom-<8 hex>.tmp``, created with the mode a plain ``open(path, "w")`` would give
  (``0o666`` minus the umask; the existing file's mode when it is replaced with ``force``).
* On success it is moved into place atomically (readers see the old file or the complete new
  one); without ``force`` an existing destination is never replaced, even one that appears
  while we write.
* On every error the temporary file is removed, and operating-system errors (read-only folder,
  full disk, a file where a folder is expected, ...) become :class:`~emgeom.errors.EmgeomFileError`
  (an ``OSError``) naming the path.
* Only a hard kill (SIGKILL, power loss) can leave a temporary file behind: files matching
  ``.*.emgeom-*.tmp`` (or the older ``.<name>.<8 chars>.tmp``) are never read by emgeom and can
  be deleted at any time no emgeom process writes to that folder; ``emgeom clean-temp DIR`` lists
  and removes them (see :func:`stale_temp_files`).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from emgeom._validate import as_bool
from emgeom.errors import EmgeomError, EmgeomFileError, InvalidTypeError, OutputExistsError

__all__ = ["atomic_output", "check_output", "file_error", "force_arg", "stale_temp_files"]

_NO_HARD_LINKS = (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK)

#: Hidden temporary files left by an interrupted write (this version and older ones).
TEMP_PATTERN = re.compile(r"^\..+\.(emgeom-[0-9a-f]{8}|[a-z0-9_]{8})\.tmp$")


def file_error(path: str | os.PathLike[str], exc: OSError, action: str) -> EmgeomFileError:
    """An :class:`EmgeomFileError` for ``exc`` that names ``path`` (errno kept)."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    err = EmgeomFileError(f"{os.fspath(path)}: cannot {action} ({reason})")
    err.errno = exc.errno
    err.filename = os.fspath(path)
    return err


def force_arg(force: Any) -> bool:
    """Validate ``force``: exactly a bool (``force="no"`` would be truthy and overwrite)."""
    return as_bool(force, "force")


def check_output(path: str | os.PathLike[str], force: bool) -> Path:
    """Refuse an existing output unless ``force``; check that its folder exists."""
    ok = force_arg(force)
    try:
        p = Path(path)
    except TypeError:
        raise InvalidTypeError(f"path: expected a file path, got {path!r}") from None
    try:
        if p.is_dir():
            raise EmgeomFileError(f"{p}: is a directory, expected a file path")
        if (p.exists() or p.is_symlink()) and not ok:
            raise OutputExistsError(
                f"{p}: already exists; pass force=True (CLI: --force) to overwrite"
            )
        parent = p.parent
        if not parent.exists():
            raise EmgeomFileError(f"{parent}: output folder does not exist")
        if not parent.is_dir():
            raise EmgeomFileError(f"{parent}: is not a folder, cannot write {p.name} in it")
    except EmgeomError:
        raise
    except OSError as exc:
        raise file_error(p, exc, "check the output path") from None
    return p


def _create_temp(dest: Path) -> Path:
    """Create the hidden temporary file next to ``dest`` with the final file mode."""
    mode = 0o666  # minus the umask, as open(..., "w") does
    with contextlib.suppress(OSError):
        mode = stat.S_IMODE(dest.stat().st_mode)  # replacing a file (force): keep its mode
    for _ in range(100):
        tmp = dest.with_name(f".{dest.name}.emgeom-{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        except FileExistsError:
            continue
        except OSError as exc:
            raise file_error(dest, exc, "write") from None
        os.close(fd)
        return tmp
    raise EmgeomFileError(f"{dest}: cannot create a temporary file next to it")  # pragma: no cover


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str], *, force: bool = False) -> Iterator[Path]:
    """Yield a temporary path in the destination folder; move it into place on success.

    The final step is atomic: readers see either the old file or the complete new one, never a
    partial write. Without ``force``, an existing file is never replaced, even if it appears
    while we write (``os.link`` fails instead of clobbering). Any ``OSError`` (including one
    raised by the caller's writing) becomes an :class:`EmgeomFileError` naming the destination,
    and the temporary file is removed.
    """
    ok = force_arg(force)
    dest = check_output(path, ok)
    tmp = _create_temp(dest)
    try:
        yield tmp
        if ok:
            os.replace(tmp, dest)
        else:
            _link_no_clobber(tmp, dest)
    except EmgeomError:
        raise
    except OSError as exc:
        raise file_error(dest, exc, "write") from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def _link_no_clobber(tmp: Path, dest: Path) -> None:
    try:
        os.link(tmp, dest)
    except FileExistsError:
        raise OutputExistsError(
            f"{dest}: appeared while writing; pass force=True to overwrite"
        ) from None
    except OSError as exc:  # file systems without hard links
        if exc.errno not in _NO_HARD_LINKS:
            raise
        if dest.exists():
            raise OutputExistsError(f"{dest}: already exists") from None
        os.replace(tmp, dest)


def stale_temp_files(folder: str | os.PathLike[str], *, min_age_s: float = 3600.0) -> list[Path]:
    """Temporary files of interrupted emgeom writes in ``folder`` (not recursive).

    Parameters
    ----------
    folder : path
        Folder to look in.
    min_age_s : float
        Only files not modified for this many seconds (default one hour), so that a write in
        progress in another process is left alone.

    Returns
    -------
    list of Path
        Sorted paths matching ``.<name>.emgeom-<8 hex>.tmp`` (or the older
        ``.<name>.<8 chars>.tmp``).
    """
    d = Path(folder)
    try:
        if not d.is_dir():
            raise EmgeomFileError(f"{d}: not a folder")
        now = time.time()
        found = []
        for entry in os.scandir(d):
            if not TEMP_PATTERN.match(entry.name) or not entry.is_file(follow_symlinks=False):
                continue
            if now - entry.stat(follow_symlinks=False).st_mtime >= min_age_s:
                found.append(Path(entry.path))
    except EmgeomError:
        raise
    except OSError as exc:
        raise file_error(d, exc, "list") from None
    return sorted(found)
