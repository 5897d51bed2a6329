"""Robustness: hypothesis throws bad values at every public function.

For each public function, one argument at a time is replaced by an arbitrary value (NaN, inf,
huge and negative numbers, strings, None, nested lists, arrays of odd shapes and dtypes, empty
arrays) while the others stay valid. The call must either succeed with a finite result or raise
an ``emgeom.errors`` exception — never another exception type, a crash or a hang.

CI runs ``EMGEOM_FUZZ_EXAMPLES`` (default 1000) examples per function, derandomized so that
CI is reproducible; the ``slow`` marker's run (``pytest -m slow``) explores 20x more with fresh
random examples every time.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from emgeom import anisomag, crossmag, resample, serialem, simulate, synthetic, tilt, transform
from emgeom.anisomag import AnisoMag
from emgeom.errors import EmgeomError, EmgeomWarning
from emgeom.io.mrc import write_mrc
from emgeom.io.particles import read_particles
from emgeom.serialem import MapFrame

EXAMPLES = int(os.environ.get("EMGEOM_FUZZ_EXAMPLES", "1000"))

scalars = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(2**70), 2**70),
    st.sampled_from([0, -1, 1e-300, 1e300, True, None, "1.0", "", b"x", 1j]),
)
small_arrays = hnp.arrays(
    dtype=st.sampled_from(
        [np.float32, np.float64, np.int16, np.uint8, np.complex64, np.bool_, np.float16]
    ),
    shape=hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=6),
    elements=None,
)
garbage = st.one_of(
    scalars,
    small_arrays,
    st.lists(scalars, max_size=6),
    st.lists(st.lists(st.floats(allow_nan=True), max_size=3), max_size=3),
    st.dictionaries(st.text(max_size=3), scalars, max_size=3),
)

IMG = np.random.default_rng(0).normal(size=(12, 10)).astype(np.float32)
FORUM = [-0.00571369, -0.00932393, -0.01013075, 0.00451204]
AM = AnisoMag.from_cryosparc(FORUM)
_rng = np.random.default_rng(1)
REF = _rng.normal(size=(64, 64)).astype(np.float32)
MOV = np.ascontiguousarray(REF[10:42, 20:52])
TILTS = np.arange(-30.0, 31.0, 10.0)
GEOM = tilt.TiltGeometry(TILTS, 85.0, 20000.0, hand=1, pixel_size_a=2.0)
POS = _rng.uniform(-500, 500, size=(5, 3))
SAMPLES = np.array(
    [
        [t, x, y, 20000.0 + 0.1 * x * np.tan(np.radians(TILTS[t]))]
        for t in range(len(TILTS))
        for x in (-400.0, 0.0, 400.0)
        for y in (-400.0, 400.0)
    ]
)

_OUT = Path(tempfile.mkdtemp(prefix="emgeom-fuzz-"))


def _write_mrc(data: Any, pixel_size_a: Any = None) -> None:
    write_mrc(_OUT / "fuzz.mrc", data, pixel_size_a, force=True)


def _dask_defocus(geometry: Any, positions: Any, **kwargs: Any) -> Any:
    from emgeom import dask as emdask

    return emdask.particle_defocus(geometry, positions, **kwargs).compute(scheduler="sync")


def _write_optics(anisomag_value: Any, star_in: Any = None) -> None:
    from emgeom.io.relion_optics import write_relion_optics

    src = _OUT / "optics_in.star"
    if not src.exists():
        src.write_text(
            "data_optics\n\nloop_\n_rlnOpticsGroup #1\n_rlnVoltage #2\n1 300.0\n2 300.0\n"
        )
    write_relion_optics(
        src if star_in is None else star_in, _OUT / "o.star", anisomag_value, force=True
    )


# ---------------------------------------------------------------- SerialEM, remap, particles
def _serialem_fixtures() -> tuple[Any, Any, Any]:
    """(Navigator map item 17-1-A, a 2 x 2 montage of 40 x 30 pieces, the portal/IMOD-free
    reconstruction used by remap), written once under the fuzz folder.
    """
    from emgeom.io.montage import read_montage
    from emgeom.serialem import read_nav
    from tests.io.test_robust_new_readers import MDOC, NAV, _pieces

    (_OUT / "m.nav").write_bytes(NAV)
    (_OUT / "tiny.mrc").write_bytes(_pieces())
    (_OUT / "tiny.mrc.mdoc").write_bytes(MDOC)
    write_mrc(_OUT / "map.mrc", np.zeros((8, 8), np.float32), 1000.0, force=True)
    g = tilt.TiltGeometry([-30.0, 0.0, 30.0], 0.0, [1e4] * 3, pixel_size_a=1.0)
    rec = tilt.Reconstruction(g, (101, 51, 41), binning=1, program="imod", image_shape=(51, 101))
    return read_nav(_OUT / "m.nav")["17-1-A"], read_montage(_OUT / "tiny.mrc"), rec


ITEM, MONTAGE, REC = _serialem_fixtures()
REC2 = tilt.Reconstruction(
    REC.alignment, (51, 26, 21), binning=2, program="imod", image_shape=(51, 101)
)
FRAME = MapFrame.from_serialem([[10.0, 0.0], [0.0, -10.0]], (0.0, 0.0), (64, 64))
VOX = np.array([[50.0, 25.0, 20.0], [10.0, 40.0, 5.0]])


def _write_particles(form: str, coordinates: Any, **kwargs: Any) -> Path:
    from emgeom.io.particles import write_particles

    suffix = {"relion5": ".star", "warp": ".star", "imod": ".txt", "copick": ".json"}
    name = "fuzz_particles" + suffix.get(str(form), ".ndjson")
    return write_particles(_OUT / name, form, coordinates, force=True, **kwargs)


def _add_point(label: Any, stage_xy_um: Any, stage_z_um: Any = 0.0) -> Any:
    from emgeom.serialem import read_nav

    return read_nav(_OUT / "m.nav").add_point(label, stage_xy_um, stage_z_um)


SERIALEM_CALLS: dict[str, tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]] = {
    "MapFrame.from_serialem": (
        MapFrame.from_serialem,
        ([[10.0, 0.0], [0.0, -10.0]], (0.0, 0.0), (64, 64)),
        {"map_shape": (32, 32), "use_width_height": None},
    ),
    "MapFrame.from_item": (MapFrame.from_item, (ITEM, (256, 256)), {}),
    "MapFrame.stage_to_pixel": (FRAME.stage_to_pixel, ([[1.0, 2.0], [3.0, 4.0]],), {}),
    "MapFrame.pixel_to_stage": (FRAME.pixel_to_stage, ((10.0, 20.0),), {}),
    "MapFrame.scaled": (FRAME.scaled, (0.5,), {"shape": (32, 32)}),
    "MapFrame.cropped": (FRAME.cropped, ((4.0, 4.0), (16, 16)), {}),
    "map_path": (serialem.map_path, (ITEM, _OUT / "m.nav"), {}),
    "Navigator.add_point": (_add_point, ("new", (1.0, 2.0)), {"stage_z_um": 3.0}),
    "Montage.assemble": (MONTAGE.assemble, (2,), {"which": "auto", "fill": None}),
    "Montage.piece_at": (MONTAGE.piece_at, ((50.0, 20.0),), {}),
    "Montage.extract_piece": (MONTAGE.extract_piece, (1, 2), {"window": (0, 0, 20, 10)}),
    "montage_map_item": (serialem.montage_map_item, (MONTAGE, 2), {"label": "m", "map_id": 7}),
    "realign": (
        serialem.realign,
        (FRAME, REF, MOV),
        {"image_pixel_a": 1000.0, "stage_xy_um": (0.0, 0.0), "rotation_deg": 0.0}
        | {"max_shift_um": 2.0, "scale_search": 0.0, "rotation_search_deg": 0.0},
    ),
    "lowdose_offset": (
        serialem.lowdose_offset,
        (REF, MOV),
        {"view_pixel_a": 1.0, "record_pixel_a": 1.0, "rotation_deg": 0.0, "view_binning": 1.0}
        | {"is_to_camera": [[1.0, 0.0], [0.0, 1.0]]},
    ),
    "Reconstruction": (
        tilt.Reconstruction,
        (REC.alignment, (101, 51, 41)),
        {"binning": 1, "program": "imod", "image_shape": (51, 101)},
    ),
    "Reconstruction.project": (REC.project, (VOX,), {}),
    "remap": (
        tilt.remap,
        (VOX, REC, REC2),
        {"model": "rigid", "grid": 4, "robust": False, "max_residual_px": 20.0},
    ),
    "write_particles": (
        _write_particles,
        ("relion5", VOX),
        {"tomo_names": ["TS_01"] * 2, "pixel_size_a": 2.0},
    ),
    "write_particles copick": (_write_particles, ("copick", VOX), {"matrices": None}),
    "write_particles portal": (_write_particles, ("portal", VOX), {"matrices": None}),
}


# name -> (function, valid positional args, valid keyword args)
CALLS: dict[str, tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]] = {
    "AnisoMag": (AnisoMag, ([[1.01, 0.0], [0.0, 0.99]],), {}),
    "from_cryosparc": (AnisoMag.from_cryosparc, (FORUM,), {}),
    "from_relion": (AnisoMag.from_relion, ([[1.01, 0.0], [0.0, 0.99]],), {}),
    "from_motioncor": (AnisoMag.from_motioncor, (1.02, 0.98, 30.0), {}),
    "from_cistem": (AnisoMag.from_cistem, (30.0, 1.02, 0.98), {}),
    "from_warp": (AnisoMag.from_warp, ("1.01, 0, 0, 0.99",), {}),
    "from_warp1": (AnisoMag.from_warp1, (1.02, 0.98, 30.0), {"pixel_size_a": 1.0}),
    "convert": (anisomag.convert, (FORUM,), {"source": "cryosparc", "target": "motioncor2"}),
    "AnisoMag.rescale": (AM.rescale, (1.0, 1.1), {}),
    "AnisoMag.to_warp1": (AM.to_warp1, (1.0,), {}),
    "AnisoMag.isclose": (AM.isclose, (AM,), {"atol": 1e-9}),
    "correct": (anisomag.correct, (IMG, AM), {"order": 3, "fill": None, "n_threads": None}),
    "distort": (anisomag.distort, (IMG, AM), {"order": 1, "fill": 0.0, "n_threads": 1}),
    "warp_affine": (
        resample.warp_affine,
        (IMG, [[1.0, 0.1, 0.5], [0.0, 1.0, -1.0]], (8, 9)),
        {"order": 3, "fill": None, "n_threads": None},
    ),
    "affine_about_center": (resample.affine_about_center, (np.eye(2), (3.0, 4.0)), {}),
    "rescale": (resample.rescale, (REF, 0.5), {"method": "area", "n_threads": None}),
    "log_polar": (
        transform.log_polar,
        (REF,),
        {"center": None, "output_shape": (16, 12), "r_min": 1.0, "r_max": 20.0, "order": 1},
    ),
    "TiltGeometry": (
        tilt.TiltGeometry,
        (TILTS, 85.0, 20000.0),
        {"x_tilt_deg": 0.0, "hand": 1, "defocus_slope": 1.0, "pixel_size_a": 2.0},
    ),
    "particle_defocus": (tilt.particle_defocus, (GEOM, POS), {"dtype": np.float32}),
    "project": (tilt.project, (GEOM, POS), {}),
    "voxels_to_centered_a": (
        tilt.voxels_to_centered_a,
        ([[10.0, 20.0, 5.0]], (100, 100, 40), 2.0),
        {"convention": "n/2"},
    ),
    "check_hand": (tilt.check_hand, (GEOM,), {"samples": SAMPLES}),
    "correlate": (crossmag.correlate, (REF, REF), {"n_peaks": 3, "max_shift": None}),
    "masked_correlate": (
        crossmag.masked_correlate,
        (REF, MOV),
        {"reference_mask": REF > -1.0, "moving_mask": None, "min_overlap": 0.3, "n_peaks": 3},
    ),
    "find_similarity": (
        crossmag.find_similarity,
        (REF, MOV),
        {"scale_range": (0.5, 2.0), "rotation_range_deg": None, "n_candidates": 3},
    ),
    "log_polar_grid": (transform.log_polar_grid, ((16, 12), 1.0, 20.0), {"half": True}),
    "log_polar_spectrum": (
        transform.log_polar_spectrum,
        (np.abs(np.fft.rfft2(REF)).astype(np.float32), 64, (16, 12)),
        {"r_min": 0.05, "r_max": 0.4, "order": 1, "emphasis": True},
    ),
    "simulate_tilt_series": (
        simulate.simulate_tilt_series,
        (GEOM,),
        {"shape": (16, 16), "voltage_kv": 300.0, "defocus_step_a": 500.0, "seed": 0},
    ),
    "defocus_gradients": (simulate.defocus_gradients, (GEOM,), {}),
    "write_mrc": (_write_mrc, (IMG,), {"pixel_size_a": 1.5}),
    "write_relion_optics": (_write_optics, (AM,), {"star_in": None}),
    "dask.particle_defocus": (
        _dask_defocus,
        (GEOM, POS),
        {"dtype": np.float64, "component": "mean", "threads_per_block": 1},
    ),
    "rotation_matrix": (synthetic.rotation_matrix, (30.0,), {}),
    "compose_affine": (synthetic.compose_affine, (np.eye(2, 3), [[1, 0.1, 2], [0, 1, 3]]), {}),
    "invert_affine": (synthetic.invert_affine, ([[1.0, 0.2, 3.0], [0.1, 0.9, -2.0]],), {}),
    "make_specimen": (
        synthetic.make_specimen,
        ((32, 32), 4.0),
        {"holes": "lattice", "hole_diameter_a": 60.0, "n_particles": 3, "n_contamination": 1},
    ),
    "acquire": (
        synthetic.acquire,
        (synthetic.make_specimen((64, 64), 4.0, n_particles=3, n_contamination=0),),
        {"pixel_a": 8.0, "shape": (12, 12), "rotation_deg": 5.0, "noise_sigma": 0.1},
    ),
    "random_geometry": (
        simulate.random_geometry,
        (np.random.default_rng(0),),
        {"n_tilts": 5, "max_tilt_deg": 50.0, "pixel_size_a": (1.0, 2.0)},
    ),
    "align": (
        crossmag.align,
        (REF, MOV),
        {
            "reference_pixel_a": 1.0,
            "moving_pixel_a": 1.0,
            "rotation_deg": 0.0,
            "scale_search": 0.0,
            "rotation_search_deg": 0.0,
        },
    ),
}


CALLS.update(SERIALEM_CALLS)
_write_particles("relion5", VOX, tomo_names=["TS_01"] * 2, pixel_size_a=2.0)
CALLS["read_particles"] = (read_particles, (_OUT / "fuzz_particles.star",), {"form": None})

#: rows fuzzed with fewer examples by default (slower calls, simple argument types; the slow
#: run still uses 20 x EMGEOM_FUZZ_EXAMPLES)
LIGHT = {"rotation_matrix", "compose_affine", "invert_affine", "make_specimen", "acquire"}
LIGHT |= {"random_geometry", "simulate_tilt_series", "write_mrc", "log_polar_spectrum"}
LIGHT |= {"defocus_gradients", "log_polar_grid", "AnisoMag.isclose", "write_relion_optics"}
LIGHT |= {"dask.particle_defocus"}
LIGHT |= set(SERIALEM_CALLS)


def _slots(name: str) -> list[tuple[str, int | str]]:
    _, args, kwargs = CALLS[name]
    return [("arg", i) for i in range(len(args))] + [("kw", k) for k in kwargs]


def _check_result(value: Any) -> None:
    if isinstance(value, np.ndarray) and value.dtype.kind == "f":
        assert np.isfinite(value).all(), "non-finite result"
    elif isinstance(value, float):
        assert np.isfinite(value), "non-finite result"
    elif isinstance(value, tuple):
        for v in value:
            _check_result(v)


def _run(name: str, slot: tuple[str, int | str], bad: Any) -> None:
    func, args, kwargs = CALLS[name]
    a, kw = list(args), dict(kwargs)
    if slot[0] == "arg":
        a[int(slot[1])] = bad
    else:
        kw[str(slot[1])] = bad
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EmgeomWarning)
        try:
            result = func(*a, **kw)
        except EmgeomError:
            return
    _check_result(result)


def _fuzz(name: str, examples: int, *, derandomize: bool = True) -> None:
    @settings(
        max_examples=examples,
        derandomize=derandomize,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        database=None,
    )
    @given(slot=st.sampled_from(_slots(name)), bad=garbage)
    def inner(slot: tuple[str, int | str], bad: Any) -> None:
        _run(name, slot, bad)

    inner()


@pytest.mark.parametrize("name", sorted(CALLS))
def test_valid_call_succeeds(name: str) -> None:
    func, args, kwargs = CALLS[name]
    _check_result(func(*args, **kwargs))


@pytest.mark.parametrize("name", sorted(CALLS))
def test_bad_values_raise_only_emgeom_errors(name: str) -> None:
    _fuzz(name, min(EXAMPLES, 200) if name in LIGHT else EXAMPLES)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CALLS))
def test_bad_values_raise_only_emgeom_errors_long(name: str) -> None:
    _fuzz(name, 20 * EXAMPLES, derandomize=False)
