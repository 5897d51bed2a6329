"""Bad input to crossmag (issue 13): every size a user's number drives is bounded before any
allocation; errors are emgeom exceptions naming the argument, never an abort or a panic."""

from __future__ import annotations

import numpy as np
import pytest

from emgeom import _core, crossmag
from emgeom.errors import EmgeomError, InvalidTypeError


@pytest.fixture(scope="module")
def pair():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(128, 128)).astype(np.float32)
    mov = rng.normal(size=(128, 128)).astype(np.float32)
    return ref, mov


@pytest.mark.parametrize(
    "kw",
    [
        {"max_shift_a": 1e12},
        {"max_shift_a": 1e30},
        {"max_shift_a": 1e300},
        # a tiny pixel size with a moderate shift: the radius in pixels is huge
        {"reference_pixel_a": 1e-9, "moving_pixel_a": 1e-10, "max_shift_a": 100.0},
    ],
)
def test_huge_search_radius_is_bounded(pair, kw):
    """These allocated ~4–15 GB and aborted (or panicked: "capacity overflow"); the radius is
    bounded by the reference's extent, so they search the whole reference (noise: not found)."""
    ref, mov = pair
    args = {"reference_pixel_a": 4.0, "moving_pixel_a": 1.0, **kw}
    res = crossmag.align(ref, mov, **args)
    assert not res.found
    assert res.binning <= 2
    assert np.all(np.isfinite(res.affine))


def test_correlate_filter_must_be_four_numbers(pair):
    ref, mov = pair
    with pytest.raises(InvalidTypeError, match="filter"):
        crossmag.correlate(ref, mov, filter=5)  # type: ignore[arg-type]
    with pytest.raises(EmgeomError, match="filter"):
        crossmag.correlate(ref, mov, filter=(1, 2, 3))
    with pytest.raises(InvalidTypeError, match="filter"):
        crossmag.align(ref, mov, reference_pixel_a=4, moving_pixel_a=1, filter="abcd")  # type: ignore[arg-type]


@pytest.mark.parametrize("zoom", [1e-10, 0.0, -1.0, float("nan"), float("inf")])
def test_rescale_kernel_guards_its_zoom(zoom):
    """The Rust-side guard: a zoom whose filter support dwarfs the image is an error, not a
    multi-GB allocation."""
    img = np.zeros((64, 64), np.float32)
    with pytest.raises(EmgeomError, match="zoom"):
        _core.rescale_separable(img, output_shape=(1, 1), zoom=(zoom, zoom), method="area")


def test_area_predict_kernel_guards_its_arguments():
    img = np.zeros((32, 32), np.float32)
    pose = _core.Pose(tx=1.0, ty=1.0, s=0.5, theta_rad=0.0)
    c = (15.5, 15.5)
    with pytest.raises(EmgeomError, match="k"):
        _core.crossmag_area_predict(img, pose, center=c, box_=(0, 0, 4, 4), k=10**6)
    with pytest.raises(EmgeomError, match="box"):
        _core.crossmag_area_predict(img, pose, center=c, box_=(0, 0, 1 << 20, 1 << 20), k=1)
    flat = _core.Pose(tx=1.0, ty=1.0, s=0.0, theta_rad=0.0)
    with pytest.raises(EmgeomError, match="s"):
        _core.crossmag_area_predict(img, flat, center=c, box_=(0, 0, 4, 4), k=1)
