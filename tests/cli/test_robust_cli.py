"""Table-driven robustness of every CLI command: one row per command (a valid command line and
its mutable slots); hypothesis replaces one slot with a bad value (which must fail) or mutates
the command line at random (which may succeed). Every failure must be: rc != 0, exactly one
line on stderr, no traceback or internal error, and no file changed in the work folder (no
partial output, no temporary file, an existing output untouched). Adding a command = one row.
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from emgeom import simulate, synthetic, tilt
from emgeom.io.mrc import write_mrc
from tests._robust import (
    EXAMPLES,
    NOT_NUMBERS,
    SLOW_EXAMPLES,
    check_cli_ok_or_clean_failure,
    robust_settings,
    run_cli,
)

FORUM = ["-0.00571369", "-0.00932393", "-0.01013075", "0.00451204"]
PARTICLES = """
data_particles

loop_
_rlnTomoName #1
_rlnCenteredCoordinateXAngst #2
_rlnCenteredCoordinateYAngst #3
_rlnCenteredCoordinateZAngst #4
TS_01 10.0 20.0 30.0
TS_01 -100.0 50.0 0.0
"""


@dataclass(frozen=True)
class Row:
    """A command: valid argv (paths relative to the work folder) and its slots: index -> kind.

    Kinds: ``in`` input file, ``out`` output file, ``outdir`` output folder, ``float``, ``int``,
    ``name`` (a word from a fixed set).
    """

    argv: tuple[str, ...]
    slots: dict[int, str] = field(default_factory=dict)
    ok_codes: tuple[int, ...] = (0,)
    slots_only: bool = False  # no random edits (a valid run would be too slow)
    accepts_empty: bool = False  # an empty input file is valid (merge: a shard with no rows)


ROWS: dict[str, Row] = {
    "(root)": Row(("version",)),
    "version": Row(("version",)),
    "demo": Row(("demo", "-o", "out/demo"), {2: "outdir"}, slots_only=True),
    "merge": Row(
        ("merge", "a.jsonl", "-o", "out/m.jsonl"), {1: "in", 3: "out"}, accepts_empty=True
    ),
    "clean-temp": Row(("clean-temp", "empty", "--min-age", "10"), {1: "in", 3: "float"}),
    "anisomag convert": Row(
        ("anisomag", "convert", "--from", "cryosparc", "--determinant", "0.99867812", "--", *FORUM),
        {3: "name", 5: "float", 7: "float", 8: "float", 9: "float", 10: "float"},
    ),
    "anisomag correct": Row(
        ("anisomag", "correct", "view.mrc", "out/c.mrc", "--order", "3", "--from", "cryosparc")
        + ("--", *FORUM),
        {2: "in", 3: "out", 5: "int", 7: "name", 9: "float", 10: "float", 11: "float"},
    ),
    "crossmag align": Row(
        ("crossmag", "align", "view.mrc", "prev.mrc", "--rotation", "0", "--scale-search")
        + ("0.02", "--rotation-search", "1", "--threads", "1", "--max-shift", "2000"),
        {2: "in", 3: "in", 5: "float", 7: "float", 9: "float", 11: "int", 13: "float"},
    ),
    "crossmag batch": Row(
        ("crossmag", "batch", "pairs.csv", "--out", "out/b.jsonl", "--threads", "1")
        + ("--shard", "0/1", "--scale-search", "0.02"),
        {2: "in", 4: "out", 6: "int", 8: "name", 10: "float"},
    ),
    "tilt explain": Row(("tilt", "explain", "ts.xml"), {2: "in"}),
    "tilt convert": Row(
        ("tilt", "convert", "ts.xml", "-o", "out/t.star", "--to", "relion"),
        {2: "in", 4: "out", 6: "name"},
    ),
    "tilt defocus": Row(
        ("tilt", "defocus", "--relion", "tomograms.star", "--particles", "particles.star")
        + ("-o", "out/p.star"),
        {3: "in", 5: "in", 7: "out"},
    ),
    "tilt audit": Row(("tilt", "audit", "ts.xml", "tomograms.star"), {2: "in", 3: "in"}),
    "tilt check-hand": Row(
        ("tilt", "check-hand", "ts.xml", "--images", "ts.mrc", "--voltage", "300")
        + ("--plot", "out/h.png"),
        {2: "in", 4: "in", 6: "float", 8: "out"},
        ok_codes=(0, 3),  # 3 = hand undecided (reported on stdout)
    ),
    "tilt convert --from portal": Row(
        ("tilt", "convert", "alignment.json", "--from", "portal", "-o", "out/t.star")
        + ("--pixel-size", "2", "--volume-shape", "400,400,100"),
        {2: "in", 6: "out", 8: "float", 10: "triple"},
    ),
    "tilt remap": Row(
        ("tilt", "remap", "picks.txt", "--from", "imod:tilt.com,pixel=1.5", "--to")
        + ("imod:tilt.com,pixel=1.5,rotation=none", "-o", "out/p.txt", "--max-residual", "20"),
        {2: "in", 4: "name", 6: "name", 8: "out", 10: "float"},
    ),
    "serialem items": Row(("serialem", "items", "m.nav", "--json"), {2: "in"}),
    "serialem where": Row(
        ("serialem", "where", "m.nav", "--item", "17-1-A", "--pixel", "10,20")
        + ("--map-shape", "256,256"),
        {2: "in", 4: "name", 6: "xy", 8: "pair"},
    ),
    "serialem realign": Row(
        ("serialem", "realign", "m.nav", "new.mrc", "--item", "17-1-A", "--rotation", "0")
        + ("--max-shift", "30", "--out", "out/r.nav", "--threads", "1"),
        {2: "in", 3: "in", 5: "name", 7: "float", 9: "float", 11: "out", 13: "int"},
    ),
}


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:  # type: ignore[no-untyped-def]
    """The work folder: valid inputs, sentinel outputs, corrupt variants of the inputs."""
    w = tmp_path_factory.mktemp("cli")
    t = np.arange(-30.0, 31.0, 10.0)
    g = tilt.TiltGeometry(
        t, 85.0, 20000.0 + 10.0 * t, hand=-1, pixel_size_a=2.0, volume_shape=(400, 400, 100)
    )
    tilt.to_warp(g, w / "ts.xml")
    tilt.to_relion(g, w / "tomograms.star", tomo_name="TS_01")
    write_mrc(w / "ts.mrc", simulate.simulate_tilt_series(g, shape=(64, 64), seed=0), 2.0)
    spec = synthetic.make_specimen((256, 256), 4.0, n_particles=200, n_contamination=2)
    view = synthetic.acquire(spec, pixel_a=16.0, shape=(64, 64), noise_sigma=0.05, seed=1)
    prev = synthetic.acquire(
        spec, pixel_a=4.0, shape=(48, 48), center=(140.0, 120.0), noise_sigma=0.1, seed=2
    )
    write_mrc(w / "view.mrc", view.image, 16.0)
    write_mrc(w / "prev.mrc", prev.image, 4.0)
    (w / "pairs.csv").write_text("reference,moving\nview.mrc,prev.mrc\n")
    (w / "a.jsonl").write_text('{"row": 0}\n{"row": 1}\n')
    (w / "particles.star").write_text(PARTICLES)
    (w / "out").mkdir()
    (w / "empty").mkdir()
    (w / "adir").mkdir()
    (w / "adir" / "x").write_text("x")
    (w / "afile").write_text("not a folder")
    _new_readers_inputs(w)
    for suffix in (".jsonl", ".mrc", ".star", ".png", ".csv", ".nav", ".txt"):
        (w / f"exists{suffix}").write_text("keep")
    inputs = ("ts.xml", "tomograms.star", "view.mrc", "pairs.csv", "a.jsonl", "particles.star")
    for src in (*inputs, "m.nav", "new.mrc", "picks.txt", "alignment.json"):
        data = (w / src).read_bytes()
        stem, suffix = src.rsplit(".", 1)
        (w / f"trunc_{stem}.{suffix}").write_bytes(data[:10])
        (w / f"empty_{stem}.{suffix}").write_bytes(b"")
        (w / f"binary_{stem}.{suffix}").write_bytes(bytes(range(256)) * 3)
        if suffix != "mrc":
            text = data.decode("utf-8")
            (w / f"utf16_{stem}.{suffix}").write_bytes(text.encode("utf-16-le"))
    return w


def _new_readers_inputs(w: Path) -> None:
    """Inputs of the SerialEM and remap commands: a Navigator whose map item 17-1-A has a
    256² map.mrc, a new image cut from that map, IMOD picks + tilt.com, a portal alignment.
    """
    from scipy.ndimage import gaussian_filter

    from tests.io.test_robust_new_readers import IMOD_POINTS, NAV, PORTAL_ALIGNMENT, TILT_COM

    (w / "m.nav").write_bytes(NAV)
    world = gaussian_filter(np.random.default_rng(0).normal(size=(256, 256)), 3)
    write_mrc(w / "map.mrc", world.astype(np.float32))
    # 4096-px map (MapScaleMat 26.6 px/um) saved binned by 16: 6016 A per map pixel
    write_mrc(w / "new.mrc", world[64:192, 64:192].astype(np.float32), 6016.0)
    (w / "tilt.com").write_bytes(TILT_COM)
    (w / "a.tlt").write_text("-30\n0\n30\n")
    (w / "picks.txt").write_bytes(IMOD_POINTS)
    (w / "alignment.json").write_bytes(PORTAL_ALIGNMENT)


def _argv(row: Row, work: Path, replace: dict[int, str] | None = None) -> list[str]:
    argv = list(row.argv)
    for i, v in (replace or {}).items():
        argv[i] = v
    return argv


def _bad_values(kind: str, original: str, work: Path) -> st.SearchStrategy[str]:
    """Values for a slot of ``kind`` that the command must refuse (and, for inputs, truncated
    and UTF-16 variants, which it may read).
    """
    suffix = original.rpartition(".")[2]
    if kind == "in":
        if original == "empty":  # a folder argument
            return st.sampled_from(["afile", "missing_folder"])
        name = Path(original).name
        variants = [f"{p}_{name}" for p in ("trunc", "empty", "binary", "utf16")]
        existing = [v for v in variants if (work / v).exists()]
        return st.sampled_from(["missing." + suffix, "adir", *existing])
    if kind == "out":
        return st.sampled_from(
            [f"exists.{suffix}", f"missing/x.{suffix}", f"afile/x.{suffix}", "adir", "out"]
        )
    if kind == "outdir":
        return st.sampled_from(["afile", "afile/sub", "adir", "exists.png"])
    if kind == "float":
        return st.one_of(
            st.sampled_from([v for v in NOT_NUMBERS if not _is_finite_number(v)]),
            st.text(max_size=8).filter(lambda s: not _is_finite_number(s) and "\x00" not in s),
        )
    if kind == "int":
        return st.one_of(
            st.sampled_from(["abc", "1.5", "", "nan", "1e3", "--", "0x10"]),
            st.text(max_size=6).filter(lambda s: not _is_int(s) and "\x00" not in s),
        )
    if kind == "xy":  # a coordinate pair: any finite numbers are valid
        return st.sampled_from(["", "1", "1;2", "nan,1", "1,inf", "a,b", "1,2,3", "1e999,0"])
    if kind in ("pair", "triple"):  # a shape: positive integers
        n = 2 if kind == "pair" else 3
        good = ",".join(["1"] * n)
        return st.sampled_from(
            ["", "1", "1;2", ",".join(["nan"] * n), ",".join(["inf"] * n), ",".join("abc"[:n])]
            + [good + ",1", ",".join(["0"] * n), ",".join(["-5"] * n), ",".join(["1e30"] * n)]
        )
    if kind == "name":
        # (a value "--debug" after the command is a bad value like any other: only the root's
        # --debug, before the command name, turns tracebacks on)
        return st.text(max_size=10).filter(lambda s: s.strip().lower() not in _NAMES and s != "0/1")
    raise AssertionError(kind)


_NAMES = {"cryosparc", "relion", "relion4", "warp", "json", "matrix", "motioncor2", "cistem"}


def _is_finite_number(s: str) -> bool:
    try:
        return math.isfinite(float(s))
    except ValueError:
        return False


def _is_int(s: str) -> bool:
    try:
        int(s)
    except ValueError:
        return False
    return True


def _random_mutation(argv: list[str], data: st.DataObject) -> list[str]:
    """A random edit of the command line: drop, duplicate or insert a token, or add an option."""
    kind = data.draw(st.sampled_from(["drop", "dup", "insert", "option"]))
    i = data.draw(st.integers(0, len(argv)))
    if kind == "drop" and argv:
        return argv[: min(i, len(argv) - 1)] + argv[min(i, len(argv) - 1) + 1 :]
    if kind == "dup" and argv:
        j = min(i, len(argv) - 1)
        return argv[: j + 1] + [argv[j]] + argv[j + 1 :]
    if kind == "insert":
        token = data.draw(st.sampled_from(["--", "-", "--force", "nan", "adir", "-o", "--help"]))
        return argv[:i] + [token] + argv[i:]
    return argv + [data.draw(st.sampled_from(["--bogus", "--threads", "-x", "--json=1"]))]


def _fuzz(name: str, work: Path, examples: int, slow: bool) -> None:
    row = ROWS[name]
    slots = sorted(row.slots.items())

    @robust_settings(examples, slow=slow)
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        if slots and (row.slots_only or data.draw(st.booleans(), label="slot or random edit")):
            i, kind = data.draw(st.sampled_from(slots), label="slot")
            value = data.draw(_bad_values(kind, row.argv[i], work), label="bad value")
            argv = _argv(row, work, {i: value})
            # a truncated or UTF-16 (no BOM) input may still be readable: it must not crash
            may_read = ("trunc_", "utf16_") + (("empty_",) if row.accepts_empty else ())
            must_fail = not value.startswith(may_read)
        else:
            argv = _random_mutation(_argv(row, work), data)
            must_fail = False
        with _chdir(work):
            rc = check_cli_ok_or_clean_failure(
                argv, work, must_fail=must_fail, ok_codes=row.ok_codes
            )
        assert rc in (1, 2) or rc in row.ok_codes, rc
        shutil.rmtree(work / "out", ignore_errors=True)
        (work / "out").mkdir(exist_ok=True)

    run()


class _chdir:
    def __init__(self, path: Path) -> None:
        self.path, self.old = path, Path.cwd()

    def __enter__(self) -> None:
        import os

        os.chdir(self.path)

    def __exit__(self, *args: object) -> None:
        import os

        os.chdir(self.old)


@pytest.mark.parametrize("name", sorted(ROWS))
def test_valid_command_line_works(name, work) -> None:  # type: ignore[no-untyped-def]
    row = ROWS[name]
    if name == "demo":
        pytest.skip("the demo runs in tests/cli/test_demo.py")
    with _chdir(work):
        rc, _, err = run_cli(_argv(row, work))
    assert rc in row.ok_codes, err
    shutil.rmtree(work / "out")
    (work / "out").mkdir()


@pytest.mark.parametrize("name", sorted(ROWS))
def test_bad_command_lines(name, work) -> None:  # type: ignore[no-untyped-def]
    _fuzz(name, work, EXAMPLES, slow=False)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(ROWS))
def test_bad_command_lines_long(name, work) -> None:  # type: ignore[no-untyped-def]
    _fuzz(name, work, SLOW_EXAMPLES, slow=True)


def test_json_output_has_no_nan(work) -> None:  # type: ignore[no-untyped-def]
    with _chdir(work):
        rc, out, _ = run_cli(["crossmag", "align", "view.mrc", "prev.mrc", "--json"])
    assert rc == 0
    json.loads(out, parse_constant=lambda c: pytest.fail(f"{c} in JSON output"))
