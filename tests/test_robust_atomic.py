"""Atomic writes: final file mode, OSError wrapped with the path, temp file removed on every
error path, ``force`` a real bool, ``emgeom clean-temp`` and MRC error messages.
"""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path

import numpy as np
import pytest

from emgeom.cli import main
from emgeom.errors import EmgeomFileError, FileFormatError, InvalidTypeError
from emgeom.io import atomic
from emgeom.io.atomic import atomic_output, stale_temp_files
from emgeom.io.mrc import read_mrc, write_mrc


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_written_file_honours_the_umask(tmp_path, umask) -> None:  # type: ignore[no-untyped-def]
    old = os.umask(umask)
    try:
        write_mrc(tmp_path / "a.mrc", np.ones((4, 4), np.float32))
        with atomic_output(tmp_path / "b.txt") as tmp:
            tmp.write_text("x")
    finally:
        os.umask(old)
    for name in ("a.mrc", "b.txt"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o666 & ~umask, name


def test_force_keeps_the_mode_of_the_replaced_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    p = tmp_path / "a.txt"
    p.write_text("old")
    p.chmod(0o640)
    with atomic_output(p, force=True) as tmp:
        tmp.write_text("new")
    assert p.read_text() == "new" and p.stat().st_mode & 0o777 == 0o640


@pytest.mark.parametrize("force", ["no", "False", 0, 1, None, [], np.array([1, 0])])
def test_force_must_be_a_bool(tmp_path, force) -> None:  # type: ignore[no-untyped-def]
    p = tmp_path / "a.mrc"
    write_mrc(p, np.ones((4, 4), np.float32))
    before = p.read_bytes()
    with pytest.raises(InvalidTypeError, match="force"):
        write_mrc(p, np.zeros((6, 6), np.float32), force=force)
    assert p.read_bytes() == before and _leftovers(tmp_path) == []


@pytest.mark.parametrize(
    "err", [errno.EROFS, errno.EACCES, errno.ENOSPC, errno.EDQUOT], ids=errno.errorcode.get
)
def test_os_errors_while_writing_name_the_path(tmp_path, err) -> None:  # type: ignore[no-untyped-def]
    dest = tmp_path / "out.txt"
    with pytest.raises(EmgeomFileError, match=r"out\.txt") as info:
        with atomic_output(dest) as tmp:
            tmp.write_text("partial")
            raise OSError(err, os.strerror(err))
    assert isinstance(info.value, OSError) and info.value.errno == err
    assert not dest.exists() and _leftovers(tmp_path) == []


def test_temp_file_creation_failure_is_wrapped(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    def read_only(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(atomic.os, "open", read_only)
    with pytest.raises(EmgeomFileError, match=r"x\.mrc: cannot write \(Read-only"):
        write_mrc(tmp_path / "x.mrc", np.ones((4, 4), np.float32))


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores folder permissions")
def test_read_only_folder(tmp_path) -> None:  # type: ignore[no-untyped-def]
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        with pytest.raises(EmgeomFileError, match="ro"):
            write_mrc(ro / "x.mrc", np.ones((4, 4), np.float32))
    finally:
        ro.chmod(0o755)


def test_parent_is_a_file_or_missing(tmp_path) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(EmgeomFileError, match="is not a folder"):
        write_mrc(f / "x.mrc", np.ones((4, 4), np.float32))
    with pytest.raises(EmgeomFileError, match="does not exist"):
        write_mrc(tmp_path / "nope" / "x.mrc", np.ones((4, 4), np.float32))
    with pytest.raises(EmgeomFileError, match="is a directory"):
        write_mrc(tmp_path, np.ones((4, 4), np.float32), force=True)


def test_writer_failure_leaves_no_temp_and_no_output(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ZeroDivisionError):
        with atomic_output(tmp_path / "a.txt") as tmp:
            tmp.write_text("x")
            _ = 1 / 0
    assert list(tmp_path.iterdir()) == []


def test_demo_output_errors(tmp_path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "file"
    f.write_text("keep")
    assert main(["demo", "-o", str(f)]) == 2
    assert main(["demo", "-o", str(f), "--force"]) == 2
    assert f.read_text() == "keep"
    assert main(["demo", "-o", str(f / "sub")]) == 2

    def refuse(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(Path, "mkdir", refuse)
    assert main(["demo", "-o", str(tmp_path / "ro" / "demo")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 4 and all(line.startswith("emgeom: error: ") for line in err)
    assert "Permission denied" in err[-1] and "ro/demo" in err[-1]


def test_clean_temp_removes_only_stale_emgeom_temp_files(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    stale = [tmp_path / ".a.mrc.emgeom-0123abcd.tmp", tmp_path / ".b.star.k2j_x9q1.tmp"]
    keep = [tmp_path / "a.mrc", tmp_path / ".hidden", tmp_path / "x.tmp"]
    fresh = tmp_path / ".c.mrc.emgeom-89abcdef.tmp"
    old = time.time() - 7200
    for p in stale + keep + [fresh]:
        p.write_bytes(b"0" * 1000)
        if p != fresh:
            os.utime(p, (old, old))
    assert stale_temp_files(tmp_path) == sorted(stale)
    assert main(["clean-temp", str(tmp_path), "--dry-run"]) == 0
    assert all(p.exists() for p in stale)
    assert main(["clean-temp", str(tmp_path)]) == 0
    assert not any(p.exists() for p in stale) and all(p.exists() for p in keep + [fresh])
    assert main(["clean-temp", str(tmp_path), "--min-age", "0"]) == 0
    assert not fresh.exists()
    assert main(["clean-temp", str(tmp_path / "a.mrc")]) == 2


def test_temp_name_matches_the_clean_temp_pattern(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with atomic_output(tmp_path / "x.mrc") as tmp:
        assert atomic.TEMP_PATTERN.match(tmp.name), tmp.name
        tmp.write_text("x")


def test_mrc_errors_say_why_once(tmp_path) -> None:  # type: ignore[no-untyped-def]
    p = tmp_path / "t.mrc"
    write_mrc(p, np.ones((10, 12), np.float32), 1.5)
    p.write_bytes(p.read_bytes()[:1100])
    with pytest.raises(FileFormatError) as info:
        read_mrc(p)
    msg = str(info.value)
    assert msg.count("not a readable MRC file") == 1 and msg.count(str(p)) == 1
    with pytest.raises(EmgeomFileError, match="is a folder"):
        read_mrc(tmp_path)


def test_negative_header_pixel_size_is_not_recorded(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import mrcfile

    p = tmp_path / "neg.mrc"
    with mrcfile.new(p) as m:
        m.set_data(np.ones((4, 4), np.float32))
        m.voxel_size = 1.0
        m.header.cella.x = -8.0
    assert read_mrc(p).pixel_size_a is None


def test_write_mrc_refuses_values_float32_cannot_hold(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="data"):
        write_mrc(tmp_path / "x.mrc", np.full((4, 4), 1e300))
    assert not (tmp_path / "x.mrc").exists()


def _tilt_geometry():  # type: ignore[no-untyped-def]
    from emgeom import tilt

    t = np.arange(-30.0, 31.0, 10.0)
    return tilt.TiltGeometry(
        t, 85.0, 20000.0 + t, hand=-1, pixel_size_a=2.0, volume_shape=(400, 400, 100)
    )


@pytest.mark.parametrize("writer", ["to_warp", "to_relion"])
def test_tilt_writers_into_unwritable_folder(tmp_path, monkeypatch, writer) -> None:  # type: ignore[no-untyped-def]
    from emgeom import tilt

    write = getattr(tilt, writer)
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(EmgeomFileError, match="is not a folder"):
        write(_tilt_geometry(), f / "out.star")

    def read_only(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(atomic.os, "open", read_only)
    with pytest.raises(EmgeomFileError, match=r"out\.x: cannot write \(Read-only") as info:
        write(_tilt_geometry(), tmp_path / "out.x")
    assert isinstance(info.value, OSError)


@pytest.mark.parametrize("writer", ["to_warp", "to_relion"])
def test_tilt_writers_force_must_be_bool(tmp_path, writer) -> None:  # type: ignore[no-untyped-def]
    from emgeom import tilt

    p = tmp_path / "out.x"
    p.write_text("keep")
    with pytest.raises(InvalidTypeError, match="force"):
        getattr(tilt, writer)(_tilt_geometry(), p, force="no")
    assert p.read_text() == "keep"
