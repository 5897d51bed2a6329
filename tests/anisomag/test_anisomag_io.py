"""cryoSPARC .cs and RELION optics-table I/O, on synthetic files and the real MagMat values."""

from __future__ import annotations

import numpy as np
import pytest

from emgeom.anisomag import AnisoMag
from emgeom.errors import (
    EmgeomFileError,
    EmgeomWarning,
    FileFormatError,
    OutputExistsError,
)
from emgeom.io.cryosparc import read_cryosparc_anisomag
from emgeom.io.relion_optics import read_relion_optics, write_relion_optics
from tests.conftest import shared_file

FORUM_M = [-0.00571369, -0.00932393, -0.01013075, 0.00451204]


def write_cs(path, anisomag_rows, groups=None):  # type: ignore[no-untyped-def]
    fields = [("uid", "<u8"), ("ctf/anisomag", "<f4", (4,))]
    if groups is not None:
        fields.append(("ctf/exp_group_id", "<u4"))
    arr = np.zeros(len(anisomag_rows), dtype=fields)
    arr["uid"] = np.arange(len(anisomag_rows))
    arr["ctf/anisomag"] = anisomag_rows
    if groups is not None:
        arr["ctf/exp_group_id"] = groups
    with open(path, "wb") as fh:
        np.save(fh, arr)


def test_cs_groups(tmp_path) -> None:  # type: ignore[no-untyped-def]
    p = tmp_path / "particles.cs"
    other = [0.01, 0.0, 0.0, -0.01]
    write_cs(p, [FORUM_M] * 3 + [other] * 2, groups=[1, 1, 1, 2, 2])
    got = read_cryosparc_anisomag(p)
    assert sorted(got) == [1, 2]
    assert got[1].to_motioncor().as_args() == "-Mag 1.011726 0.989718 58.875"
    assert got[2].isclose(AnisoMag.from_cryosparc(np.float32(other)), atol=1e-12)


def test_cs_without_group_and_all_zero_is_identity(tmp_path) -> None:  # type: ignore[no-untyped-def]
    p = tmp_path / "p.cs"
    write_cs(p, [[0, 0, 0, 0]] * 4)
    got = read_cryosparc_anisomag(p)
    assert list(got) == [0] and got[0] == AnisoMag(np.eye(2))


def test_cs_inconsistent_group_warns(tmp_path) -> None:  # type: ignore[no-untyped-def]
    p = tmp_path / "p.cs"
    write_cs(p, [FORUM_M, [0, 0, 0, 0], FORUM_M], groups=[0, 0, 0])
    with pytest.warns(EmgeomWarning, match="varies"):
        read_cryosparc_anisomag(p)


def test_cs_bad_files(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(EmgeomFileError, match="no such file"):
        read_cryosparc_anisomag(tmp_path / "missing.cs")
    arr = np.zeros(3, dtype=[("uid", "<u8")])
    p = tmp_path / "noaniso.cs"
    with open(p, "wb") as fh:
        np.save(fh, arr)
    with pytest.raises(FileFormatError, match="ctf/anisomag"):
        read_cryosparc_anisomag(p)


def test_real_relion_magmat_values() -> None:
    star = shared_file("anisomag", "cryodrgn_relion31.6opticsgroups.star")
    groups = read_relion_optics(star)
    assert sorted(groups) == [1, 2, 3, 4, 5, 6]
    # opticsGroup5 (rlnOpticsGroup 1): MagMat 1.011472 0.004231 0.004560 1.008858
    np.testing.assert_allclose(
        groups[1].to_relion(), [[1.011472, 0.004231], [0.004560, 1.008858]], atol=0
    )
    np.testing.assert_allclose(groups[1].distortion, [[1.011472, 0.004560], [0.004231, 1.008858]])
    assert groups[1].anisotropy_percent == pytest.approx(0.912, abs=1e-3)
    # group 6 has a different pixel size (1.035 Å): its MagMat is near identity too
    assert 0.99 < groups[6].pixel_size_scale < 1.01
    relion5 = read_relion_optics(shared_file("anisomag", "cryodrgn_relion5.star"))
    np.testing.assert_allclose(
        relion5[1].to_relion(), [[1.001833, -7.04404e-04], [-8.23335e-04, 1.000381]]
    )


def test_optics_round_trip_and_no_clobber(tmp_path) -> None:  # type: ignore[no-untyped-def]
    star = shared_file("anisomag", "cryodrgn_relion31.6opticsgroups.star")
    out = tmp_path / "out.star"
    new = AnisoMag.from_cryosparc(FORUM_M)
    write_relion_optics(star, out, {3: new})
    back = read_relion_optics(out)
    assert back[3].isclose(new, atol=1e-6)
    assert back[1] == read_relion_optics(star)[1]
    with pytest.raises(OutputExistsError, match="--force"):
        write_relion_optics(star, out, new)
    write_relion_optics(star, out, new, force=True)
    assert all(v.isclose(new, atol=1e-6) for v in read_relion_optics(out).values())


def test_optics_synthetic_without_magmat_is_identity(tmp_path) -> None:  # type: ignore[no-untyped-def]
    p = tmp_path / "o.star"
    p.write_text("data_optics\n\nloop_\n_rlnOpticsGroup #1\n_rlnImagePixelSize #2\n1 1.0\n2 1.1\n")
    got = read_relion_optics(p)
    assert got[1] == AnisoMag(np.eye(2)) and got[2] == AnisoMag(np.eye(2))
    q = tmp_path / "bad.star"
    q.write_text("data_particles\n\nloop_\n_rlnCoordinateX #1\n1.0\n")
    with pytest.raises(FileFormatError, match="data_optics"):
        read_relion_optics(q)
