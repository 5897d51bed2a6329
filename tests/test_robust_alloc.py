"""Every size a user's number drives is bounded BEFORE allocating, with an error naming the
argument.

Each case runs in a forked child of one driver process, under an address-space limit of
(current size + 1 GiB), an allocation budget of 0.5 GiB (``EMGEOM_MAX_OUTPUT_GB``) and a 60 s
alarm: a case that allocates first dies (MemoryError, or
SIGABRT from a Rust allocation) or hangs instead of raising, and is reported by name. Adding a
size parameter = adding one row to ``CASES``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
LIMIT_EXTRA = 1 << 30
#: the allocation budget in the children (the default, 4 GiB, exceeds their 1 GiB limit)
BUDGET_GB = 0.5


def _img(n: int = 64) -> np.ndarray:
    return np.random.default_rng(0).normal(size=(n, n)).astype(np.float32)


def _geom() -> Any:
    from emgeom.tilt import TiltGeometry

    return TiltGeometry(np.arange(-30.0, 31.0, 10.0), 85.0, 20000.0, hand=1, pixel_size_a=2.0)


def _specimen() -> Any:
    from emgeom.synthetic import make_specimen

    return make_specimen((128, 128), 4.0, n_particles=5, n_contamination=0)


def _c(func: str, *args: Any, **kwargs: Any) -> Callable[[], Any]:
    def call() -> Any:
        import importlib

        module, name = func.rsplit(".", 1)
        target = importlib.import_module(module)
        return getattr(target, name)(*[a() if callable(a) else a for a in args], **kwargs)

    return call


# name -> (call, the argument its message must name)
CASES: dict[str, tuple[Callable[[], Any], str]] = {
    "log_polar r_max=1e5": (_c("emgeom.transform.log_polar", _img, r_max=1e5), "r_max"),
    "log_polar r_max=1e4": (_c("emgeom.transform.log_polar", _img, r_max=1e4), "r_max"),
    "log_polar r_max=1e300": (_c("emgeom.transform.log_polar", _img, r_max=1e300), "r_max"),
    "log_polar center far": (
        _c("emgeom.transform.log_polar", _img, center=(1e8, 1e8), r_max=1e8),
        "r_max",
    ),
    "log_polar output_shape": (
        _c("emgeom.transform.log_polar", _img, output_shape=(1 << 20, 1 << 11)),
        "output_shape",
    ),
    "log_polar_spectrum output_shape": (
        _c(
            "emgeom.transform.log_polar_spectrum",
            np.ones((64, 33), np.float32),
            64,
            (1 << 20, 1 << 11),
        ),
        "output_shape",
    ),
    "log_polar_grid output_shape": (
        _c("emgeom.transform.log_polar_grid", (1 << 40, 8), 1.0, 2.0),
        "output_shape",
    ),
    "warp_affine output_shape": (
        _c("emgeom.resample.warp_affine", _img, np.eye(2, 3), (60000, 60000)),
        "output_shape",
    ),
    "warp_affine stack output_shape": (
        _c("emgeom.resample.warp_affine", np.ones((64, 8, 8)), np.eye(2, 3), (8000, 8000)),
        "output_shape",
    ),
    "rescale factor": (_c("emgeom.resample.rescale", _img, 700.0), "factor"),
    "rescale factor bilinear": (_c("emgeom.resample.rescale", _img, 400.0, "bilinear"), "factor"),
    "rescale factor fourier": (_c("emgeom.resample.rescale", _img, 300.0, "fourier"), "factor"),
    "rescale (fy, fx)": (_c("emgeom.resample.rescale", _img, (1e5, 1.0)), "factor"),
    "rescale output_shape": (
        _c("emgeom.resample.rescale", _img, 1.0, output_shape=(50000, 50000)),
        "output_shape",
    ),
    "make_specimen shape": (_c("emgeom.synthetic.make_specimen", (50000, 50000)), "shape"),
    "make_specimen n_particles": (
        _c("emgeom.synthetic.make_specimen", (64, 64), n_particles=10**12),
        "n_particles",
    ),
    "make_specimen n_contamination": (
        _c("emgeom.synthetic.make_specimen", (64, 64), n_contamination=10**9),
        "n_contamination",
    ),
    "make_specimen hole_pitch_a": (
        _c("emgeom.synthetic.make_specimen", (256, 256), holes="lattice", hole_pitch_a=1e-3),
        "hole_pitch_a",
    ),
    "make_specimen hole_diameter_a": (
        _c("emgeom.synthetic.make_specimen", (256, 256), holes="lattice", hole_diameter_a=1e-3),
        "hole_diameter_a",
    ),
    "make_specimen particle_sigma_a": (
        _c("emgeom.synthetic.make_specimen", (64, 64), particle_sigma_a=1e12),
        "particle_sigma_a",
    ),
    "acquire shape": (
        _c("emgeom.synthetic.acquire", _specimen, pixel_a=4.0, shape=(50000, 50000)),
        "shape",
    ),
    "simulate_tilt_series shape": (
        _c("emgeom.simulate.simulate_tilt_series", _geom, shape=(30000, 30000)),
        "shape",
    ),
    "simulate_tilt_series defocus_step_a": (
        _c("emgeom.simulate.simulate_tilt_series", _geom, shape=(64, 64), defocus_step_a=1e-9),
        "defocus_step_a",
    ),
    "random_geometry n_tilts": (
        _c("emgeom.simulate.random_geometry", np.random.default_rng(0), n_tilts=10**10),
        "n_tilts",
    ),
}


# A search radius beyond the reference means "anywhere": align clamps it to the reference's
# extent before any size follows from it (it used to allocate ~15 GB and abort, or panic with a
# Rust "capacity overflow"), so these calls must *return*, inside the address-space limit.
def _align(max_shift_a: float) -> Callable[[], Any]:
    return _c(
        "emgeom.crossmag.align",
        _img,
        lambda: _img(32),
        reference_pixel_a=1.0,
        moving_pixel_a=1.0,
        max_shift_a=max_shift_a,
        scale_search=0.0,
        rotation_search_deg=0.0,
    )


OTHERS: dict[str, tuple[Callable[[], Any], str]] = {
    "align max_shift_a=1e12": (_align(1e12), "max_shift_a"),
    "align max_shift_a=1e30": (_align(1e30), "max_shift_a"),
    "audit n_grid": (_c("emgeom.tilt.audit", lambda: [_geom(), _geom()], n_grid=10**5), "n_grid"),
}


def _montage_assemble(binning: int) -> Callable[[], Any]:
    """A 2 x 2 montage of 20000² frames (a 39000² overview, 6 GB as float32 at binning 1):
    the overview must be refused before it is allocated (the pieces are never read).
    """

    def call() -> Any:
        import tempfile

        from emgeom.io.montage import Montage

        with tempfile.TemporaryDirectory() as d:
            mdoc = Path(d) / "big.mrc.mdoc"
            secs = "".join(
                f"[ZValue = {z}]\nPieceCoordinates = {x} {y} 0\n\n"
                for z, (x, y) in enumerate([(0, 0), (0, 19000), (19000, 19000), (19000, 0)])
            )
            mdoc.write_text(f"PixelSpacing = 10\nImageSize = 20000 20000\nMontage = 1\n\n{secs}")
            return Montage.from_mdoc(mdoc).assemble(binning)

    return call


def _recon() -> Any:
    from emgeom.tilt import Reconstruction, TiltGeometry

    g = TiltGeometry([-30.0, 0.0, 30.0], 0.0, [1e4] * 3, pixel_size_a=1.0)
    return Reconstruction(g, (101, 51, 41), binning=1, program="imod", image_shape=(51, 101))


def _realign(**kwargs: Any) -> Callable[[], Any]:
    """``realign`` of a 32² image on a 64² map (frame of the map's stage->pixel matrix)."""

    def call() -> Any:
        from emgeom.serialem import MapFrame, realign

        frame = MapFrame.from_serialem([[10.0, 0.0], [0.0, -10.0]], (0.0, 0.0), (64, 64))
        return realign(
            frame,
            _img(64),
            _img(32),
            **{"image_pixel_a": 1000.0, "rotation_deg": 0.0, "stage_xy_um": (0.0, 0.0), **kwargs},
        )

    return call


# Sizes of the SerialEM / remap functions (issue 13 follow-up)
CASES.update(
    {
        "montage assemble binning=1": (_montage_assemble(1), "binning"),
        "remap grid=10**6": (
            _c("emgeom.tilt.remap", np.zeros((1, 3)), _recon, _recon, grid=10**6),
            "grid",
        ),
        "realign max_shift_um=1e30": (_realign(max_shift_um=1e30), "max_shift"),
        "realign image_pixel_a=1e30": (_realign(image_pixel_a=1e30), "image_pixel_a"),
        "realign scale_search=1e6": (_realign(scale_search=1e6), "scale_search"),
        "realign rotation_search_deg=1e9": (
            _realign(rotation_search_deg=1e9),
            "rotation_search_deg",
        ),
    }
)


def _vm_size() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmSize")  # pragma: no cover


def _one(name: str, table: dict[str, tuple[Callable[[], Any], str]], fd: int) -> None:
    """Forked child: limit memory and time, run one case, write its outcome, exit."""
    import resource
    import signal

    from emgeom.errors import EmgeomError

    limit = _vm_size() + LIMIT_EXTRA
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    signal.alarm(60)
    call, _ = table[name]
    try:
        call()
        res = {"outcome": "no error"}
    except EmgeomError as exc:
        res = {"outcome": "emgeom", "type": type(exc).__name__, "message": str(exc)}
    except BaseException as exc:
        res = {"outcome": "other", "type": type(exc).__name__, "message": str(exc)[:300]}
    os.write(fd, json.dumps(res).encode())
    os._exit(0)


def _drive(which: str) -> None:
    """Driver process: fork one child per case; print ``{name: outcome}`` as JSON."""
    import numpy  # noqa: F401  (imported once, shared by the forks)

    import emgeom.resample
    import emgeom.transform  # noqa: F401

    table = CASES if which == "mine" else OTHERS
    results = {}
    for name in table:
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            os.close(r)
            _one(name, table, w)
        os.close(w)
        chunks = []
        while chunk := os.read(r, 65536):
            chunks.append(chunk)
        os.close(r)
        _, status = os.waitpid(pid, 0)
        if chunks:
            results[name] = json.loads(b"".join(chunks))
        else:
            sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
            results[name] = {"outcome": "killed", "type": f"signal {sig}", "message": ""}
    print(json.dumps(results))


def _run_driver(which: str) -> dict[str, dict[str, str]]:
    code = (
        f"import sys; sys.path.insert(0, {str(ROOT)!r}); "
        f"from tests.test_robust_alloc import _drive; _drive({which!r})"
    )
    import emgeom

    # the child imports the same emgeom as this process (installed wheel or python/ checkout)
    paths = [str(Path(emgeom.__file__).parents[1]), *(p for p in sys.path if p)]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(paths))
    env["EMGEOM_MAX_OUTPUT_GB"] = str(BUDGET_GB)  # below the child's address-space limit
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def results() -> dict[str, dict[str, str]]:
    if not Path("/proc/self/status").exists() or not hasattr(os, "fork"):
        pytest.skip("needs Linux /proc and fork")
    return _run_driver("mine")


def _check(res: dict[str, str], arg: str) -> None:
    assert res["outcome"] == "emgeom", res
    assert arg in res["message"], res
    assert res["type"] in ("InvalidValueError", "ShapeError", "InvalidTypeError"), res


@pytest.mark.parametrize("name", sorted(CASES))
def test_size_is_bounded_before_allocating(results, name) -> None:  # type: ignore[no-untyped-def]
    _check(results[name], CASES[name][1])


@pytest.mark.parametrize("name", sorted(OTHERS))
def test_size_is_bounded_before_allocating_others(name) -> None:  # type: ignore[no-untyped-def]
    res = _others()[name]
    if name.startswith("align"):
        assert res == {"outcome": "no error"}, res  # clamped, returned within the limit
    else:
        _check(res, OTHERS[name][1])


_OTHERS_CACHE: dict[str, dict[str, str]] = {}


def _others() -> dict[str, dict[str, str]]:
    if not _OTHERS_CACHE:
        _OTHERS_CACHE.update(_run_driver("others"))
    return _OTHERS_CACHE


def test_limit_makes_a_real_allocation_fail() -> None:
    """The harness itself: a 2 GiB allocation must fail in a child (else it proves nothing)."""
    CASES["_probe"] = (lambda: np.ones(1 << 28), "")  # 2 GiB of float64
    try:
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            os.close(r)
            _one("_probe", CASES, w)
        os.close(w)
        out = os.read(r, 65536)
        os.close(r)
        os.waitpid(pid, 0)
    finally:
        del CASES["_probe"]
    assert json.loads(out)["type"] == "MemoryError"
