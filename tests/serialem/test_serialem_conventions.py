"""The SerialEM entries of the convention registry: provenance, docs, and their numbers."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from emgeom import conventions
from emgeom.io.serialem_nav import read_nav
from emgeom.serialem import MapFrame
from tests.conftest import shared_file

ROOT = Path(__file__).resolve().parents[2]


def test_entries_have_provenance_and_docs() -> None:
    names = conventions.names("serialem")
    assert names == ["montage-piece", "navigator-map"]
    docs = (ROOT / "docs" / "conventions.md").read_text(encoding="utf-8")
    for n in names:
        c = conventions.get("serialem", n)
        assert c.sources and all(s.where and s.program and s.repository for s in c.sources)
        assert f"`{n}`" in docs
        assert c.sources[0].where.split(":")[0] in docs


def test_navigator_map_entry_matches_mapframe_and_real_outline() -> None:
    it = read_nav(shared_file("serialem", "pyserialem", "nav.nav")).maps()[0]
    c = conventions.get("serialem", "navigator-map")
    for shape in (None, (1024, 1024), (512, 512)):
        got = c.to_canonical(it.map_scale_mat, it.stage_xyz_um[:2], it.map_width_height, shape)  # type: ignore[misc]
        f = MapFrame.from_item(it, shape)
        np.testing.assert_allclose(got["stage_to_pixel_affine"], f.stage_to_pixel_affine, atol=1e-9)
    # inverse: back to the stored numbers
    back = c.from_canonical(f.stage_to_pixel_affine, f.shape)  # type: ignore[misc]
    np.testing.assert_allclose(back["map_scale_mat"] * 8, it.map_scale_mat, atol=1e-12)
    np.testing.assert_allclose(back["stage_xy_um"], it.stage_xyz_um[:2], atol=1e-9)
    # the first outline point = top-left of SerialEM's display = last file row
    full = c.to_canonical(it.map_scale_mat, it.stage_xyz_um[:2], it.map_width_height)  # type: ignore[misc]
    a = full["stage_to_pixel_affine"]
    np.testing.assert_allclose(a @ [*it.points_um[0], 1.0], [-0.5, 4095.5], atol=0.05)


def test_montage_piece_entry() -> None:
    c = conventions.get("serialem", "montage-piece")
    assert c.to_canonical([1844, 3688, 0], 10.0, 20.0) == {"montage_xy_px": (1854.0, 3708.0)}  # type: ignore[misc]
    assert c.from_canonical((1854.0, 3708.0), [1844, 3688]) == {"column": 10.0, "row": 20.0}  # type: ignore[misc]
