"""Low Dose View offset from two images: orientation of SerialEM-saved files handled."""

from __future__ import annotations

import numpy as np
import pytest

from emgeom import synthetic as syn
from emgeom.errors import InvalidValueError
from emgeom.serialem import lowdose_offset


@pytest.mark.parametrize("rotation_deg", [0.0, 12.0])
def test_lowdose_offset_file_and_buffer_orientation(rotation_deg) -> None:  # type: ignore[no-untyped-def]
    spec = syn.make_specimen((2048, 2048), pixel_a=4.0, seed=3)
    view = syn.acquire(spec, pixel_a=20.0, shape=(400, 400), noise_sigma=0.2, seed=1)
    # the Record's centre is 30 View px right of and 20 View px *below* (smaller row) the View
    # centre in the file orientation (row 0 = bottom): camera offset (+30, −20), y up
    c_view = np.array(view.center)
    c_m = view.to_master[:, :2] @ (c_view + [30.0, -20.0]) + view.to_master[:, 2]
    rec = syn.acquire(
        spec,
        pixel_a=4.0,
        shape=(512, 512),
        center=c_m,
        rotation_deg=rotation_deg,
        noise_sigma=0.5,
        seed=2,
    )
    b = np.array(
        [[2.0, 0.3], [-0.2, 1.5]]
    )  # IS units -> unbinned camera px (SerialEM's IStoCamera)
    res = lowdose_offset(
        view.image,
        rec.image,
        view_pixel_a=20.0,
        record_pixel_a=4.0,
        rotation_deg=rotation_deg,
        is_to_camera=b,
        view_binning=4.0,
    )
    assert res.found
    expect = np.linalg.solve(b, 4.0 * np.array([30.0, -20.0]))
    np.testing.assert_allclose(
        res.image_shift, expect, atol=np.abs(np.linalg.inv(b)).sum() * 4 * 0.3
    )
    # the same pair as serialem.bufferImage gives it (row 0 = top): the same offset
    buf = lowdose_offset(
        np.flipud(view.image),
        np.flipud(rec.image),
        view_pixel_a=20.0,
        record_pixel_a=4.0,
        rotation_deg=-rotation_deg,
        is_to_camera=b,
        view_binning=4.0,
        orientation="buffer",
    )
    np.testing.assert_allclose(buf.image_shift, res.image_shift, atol=1e-6)
    with pytest.raises(InvalidValueError, match="orientation"):
        lowdose_offset(
            view.image,
            rec.image,
            view_pixel_a=20.0,
            record_pixel_a=4.0,
            is_to_camera=b,
            orientation="up",
        )
