"""Robustness of the tilt-series readers (Warp XML, RELION tomograms.star and per-tilt tables,
AreTomo .aln / _CTF.txt, IMOD .tlt/.xf/.defocus, CTFFIND5 *_tilt.json, sub-tilt star, audit of
a good file plus a corrupt one) on corrupt files; contract in tests/_robust.py.

These readers are being fixed in parallel (issue 13, tilt readers): on a branch without those
fixes some of these tests fail, and that is the point of them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from emgeom import tilt
from tests._robust import (
    reader_contract_tests,
)
from tests.conftest import SHARED_DATA


def _geometry() -> Any:
    t = np.arange(-30.0, 31.0, 10.0)
    return tilt.TiltGeometry(
        t,
        85.0,
        20000.0 + 10.0 * t,
        hand=-1,
        pixel_size_a=2.0,
        volume_shape=(400, 400, 100),
        shifts_a=np.stack([t * 0.5, -t * 0.25], axis=1),
    )


def _written(writer: str, name: str) -> Callable[[Path], bytes]:
    def seed(folder: Path) -> bytes:
        path = folder / ("seed_" + name)
        getattr(tilt, writer)(_geometry(), path, force=True)
        return path.read_bytes()

    return seed


def _shared(*parts: str) -> Callable[[Path], bytes]:
    def seed(folder: Path) -> bytes:
        p = SHARED_DATA.joinpath(*parts)
        if not p.is_file():
            pytest.skip(f"real data file not available: {p}")
        return p.read_bytes()

    return seed


def _audit_pair(p: Path) -> Any:
    good = p.with_name("good.xml")
    if not good.exists():
        tilt.to_warp(_geometry(), good)
    return tilt.audit([good, p], pixel_size_a=2.0)


def _io(module: str, name: str) -> Callable[[Path], Any]:
    def call(p: Path) -> Any:
        import importlib

        return getattr(importlib.import_module(module), name)(p)

    return call


CTFFIND5 = ("ctffind5_tilt", "tilt_brute_force")
CTFFIND5_FILE = "s_tiltseries04_00009_-38.0_Oct28_14.01.22_10_0_CTF_1_debug__tilt.json"

# name -> (reader, file name, seed(folder) -> bytes)
READERS: dict[str, tuple[Callable[[Path], Any], str, Callable[[Path], bytes]]] = {
    "warp xml": (tilt.read_warp, "ts.xml", _written("to_warp", "ts.xml")),
    "relion tomograms.star": (
        lambda p: tilt.read_relion(p, "TS_01"),
        "tomograms.star",
        _written("to_relion", "tomograms.star"),
    ),
    "relion tomograms.star (all)": (
        tilt.read_relion_tomograms,
        "tomograms.star",
        _written("to_relion", "tomograms.star"),
    ),
    "star blocks": (
        _io("emgeom.io.star", "read_star"),
        "tomograms.star",
        _written("to_relion", "tomograms.star"),
    ),
    "aretomo aln": (
        lambda p: tilt.read_aretomo(p, pixel_size_a=2.0),
        "ts.aln",
        _shared(
            "cryoet_alignment", "TomoBabel_cets-aretomo3", "tests", "data", "Position_16_3.aln"
        ),
    ),
    "aretomo ctf txt": (
        _io("emgeom.io.aretomo", "read_ctf_txt"),
        "ts_CTF.txt",
        _shared("cryoet_alignment", "tests", "data", "test_8col_CTF.txt"),
    ),
    "imod tlt": (
        lambda p: tilt.read_imod(p, axis_deg=85.0),
        "ts.tlt",
        _shared("relion5_tomo_tutorial", "imod_TS_03", "TS_03.tlt"),
    ),
    "imod xf": (
        _io("emgeom.io.imod", "read_xf"),
        "ts.xf",
        _shared("relion5_tomo_tutorial", "imod_TS_03", "TS_03.xf"),
    ),
    "imod ctfplotter defocus": (
        _io("emgeom.io.imod", "read_ctfplotter_defocus"),
        "ts.defocus",
        _shared("relion5_tomo_tutorial", "imod_TS_03", "TS_03_plain_estimation.defocus"),
    ),
    "ctffind5 tilt json": (
        _io("emgeom.io.ctffind5", "read_ctffind5_tilt"),
        CTFFIND5_FILE,
        _shared(*CTFFIND5, CTFFIND5_FILE),
    ),
    "subtilt star": (
        tilt.read_subtilt_star,
        "subtilt.star",
        _shared("warp_tomo", "cryodrgn_subtilt", "sta_testing_bin8.star"),
    ),
    "audit good + corrupt": (_audit_pair, "bad.xml", _written("to_warp", "ts.xml")),
}


(
    test_corrupt_tilt_files,
    test_corrupt_tilt_files_long,
    test_directory_or_missing_tilt_file,
    test_unreadable_tilt_file,
) = reader_contract_tests({k: (r, f, s, True) for k, (r, f, s) in READERS.items()})
