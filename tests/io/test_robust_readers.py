"""Robustness of emgeom's own readers (MRC, RELION optics STAR, cryoSPARC .cs, batch pairs
tables, JSON-lines shards) on corrupt files: see tests/_robust.py for the contract.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from tests._robust import no_tmp, reader_contract_tests

OPTICS_STAR = b"""# version 30001

data_optics

loop_
_rlnOpticsGroup #1
_rlnOpticsGroupName #2
_rlnVoltage #3
_rlnImagePixelSize #4
_rlnMagMat00 #5
_rlnMagMat01 #6
_rlnMagMat10 #7
_rlnMagMat11 #8
1 opticsGroup1 300.000000 1.059000 1.004200 0.002100 -0.001300 0.996100
2 opticsGroup2 300.000000 1.059000 1.000000 0.000000 0.000000 1.000000

# version 30001

data_particles

loop_
_rlnCoordinateX #1
_rlnCoordinateY #2
_rlnOpticsGroup #3
100.0 200.0 1
300.0 400.0 2
"""


def _cs_seed() -> bytes:
    arr = np.zeros(
        4, dtype=[("uid", "<u8"), ("ctf/anisomag", "<f4", (4,)), ("ctf/exp_group_id", "<u4")]
    )
    arr["ctf/anisomag"] = [-0.00571369, -0.00932393, -0.01013075, 0.00451204]
    arr["ctf/exp_group_id"] = [1, 1, 2, 2]
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def _mrc_seed() -> bytes:
    import tempfile

    import mrcfile

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "seed.mrc"
        with mrcfile.new(path) as m:
            m.set_data(np.arange(12 * 10, dtype=np.float32).reshape(12, 10))
            m.voxel_size = 1.5
        return path.read_bytes()


def _read_optics(p: Path) -> Any:
    from emgeom.io.relion_optics import read_relion_optics

    return read_relion_optics(p)


def _read_cs(p: Path) -> Any:
    from emgeom.io.cryosparc import read_cryosparc_anisomag

    return read_cryosparc_anisomag(p)


def _read_mrc(p: Path) -> Any:
    from emgeom.io.mrc import read_mrc

    return read_mrc(p)


def _read_pairs(p: Path) -> Any:
    from emgeom.cli.crossmag import _pairs

    return _pairs(p)


def _merged(suffix: str) -> Callable[[Path], Any]:
    def read(p: Path) -> Any:
        from emgeom.cli.merge import merge_files

        out = p.with_name("merged" + suffix)
        try:
            return merge_files([p], out)
        finally:
            out.unlink(missing_ok=True)

    return read


PAIRS = (
    b"reference,moving,reference_pixel_a,moving_pixel_a,rotation_deg\n"
    b"v.mrc,p.mrc,20.0,4.0,8\nv.mrc,q.mrc,,,\n"
)
JSONL = b'{"row": 0, "found": true, "center_px": [1.5, 2.5]}\n{"row": 2, "found": false}\n'
CSV_SHARD = b"row,reference,found,center_x_px\n0,v.mrc,True,1.5\n3,w.mrc,False,\n"

# name -> (reader, file name, seed bytes, text format?)
READERS: dict[str, tuple[Callable[[Path], Any], str, Callable[[], bytes], bool]] = {
    "mrc": (_read_mrc, "image.mrc", _mrc_seed, False),
    "relion optics star": (_read_optics, "particles.star", lambda: OPTICS_STAR, True),
    "cryosparc cs": (_read_cs, "particles.cs", _cs_seed, False),
    "batch pairs table": (_read_pairs, "pairs.csv", lambda: PAIRS, True),
    "merge jsonl": (_merged(".jsonl"), "shard.jsonl", lambda: JSONL, True),
    "merge csv": (_merged(".csv"), "shard.csv", lambda: CSV_SHARD, True),
}


(
    test_corrupt_files,
    test_corrupt_files_long,
    test_directory_or_missing_file,
    test_unreadable_file,
) = reader_contract_tests(no_tmp(READERS))
