"""Warp per-tilt-movie XMLs → defocus samples for the handedness check.

Warp's ``fs_ctf`` with a spatial grid of at least 2×2×1 stores a spatially resolved defocus per
movie (``<GridCTF>``, values in µm). Warp's own check
(``WarpTools/Commands/Tiltseries/DefocusHandTiltseries.cs``) interpolates
``Movie.GridCTFDefocus`` at image positions normalised by the image size (``CubicGrid``
coordinates in [0, 1]: node ``i`` of ``W`` sits at ``i/(W−1)`` of the image width).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from emgeom._validate import as_float, as_int, describe
from emgeom.errors import FileFormatError, InvalidTypeError, InvalidValueError
from emgeom.io.text import parse_int
from emgeom.io.warp_xml import UM_TO_A, parse_warp_xml
from emgeom.model.hand_samples import HandSamples

__all__ = ["samples_from_warp_movies"]


def _grid_nodes(
    path: os.PathLike[str] | str, t: int, shape: tuple[int, int], px: float
) -> list[tuple[int, float, float, float]]:
    """``(tilt, x_a, y_a, defocus_a)`` of every ``Z = 0`` GridCTF node of one movie XML."""
    pth, root = parse_warp_xml(path, f"movie_xmls[{t}]")
    grid = root.find("GridCTF")
    if grid is None:
        raise FileFormatError(f"{pth}: no <GridCTF> (run Warp fs_ctf with a 2x2x1 grid)")
    where = f"{pth} <GridCTF>"
    w = parse_int(grid.get("Width", "1"), "Width", where, low=1)
    h = parse_int(grid.get("Height", "1"), "Height", where, low=1)
    if w * h < 2:
        raise FileFormatError(
            f"{pth}: GridCTF is {w}x{h}: no local defocus (run fs_ctf with a 2x2x1 grid)"
        )
    ny, nx = shape
    out = []
    for node in grid.findall("Node"):
        if parse_int(node.get("Z", "0"), "Node Z", where) != 0:
            continue
        gx = parse_int(node.get("X", "0"), "Node X", where)
        gy = parse_int(node.get("Y", "0"), "Node Y", where)
        fx = gx / (w - 1) if w > 1 else 0.5
        fy = gy / (h - 1) if h > 1 else 0.5
        try:
            value_um = float(node.get("Value", "nan"))
        except ValueError:
            raise FileFormatError(
                f"{where}: Node Value = {node.get('Value')!r} is not a number"
            ) from None
        # a non-finite value is dropped by HandSamples.from_columns (an unusable node)
        out.append((t, (fx - 0.5) * nx * px, (fy - 0.5) * ny * px, value_um * UM_TO_A))
    return out


def samples_from_warp_movies(
    movie_xmls: Sequence[str | os.PathLike[str]],
    image_shape_px: tuple[int, int],
    pixel_size_a: float,
) -> HandSamples:
    """Defocus samples from Warp's per-tilt-movie spatially resolved ``GridCTF`` (``fs_ctf``
    with a grid of at least 2×2×1), one movie XML per tilt in the geometry's order.

    The node positions are returned in Å from the image centre, the values (µm in the XML) as
    defocus in Å (see the module docstring for Warp's grid convention).

    Parameters
    ----------
    movie_xmls : paths
        Warp movie XML files (UTF-8 or UTF-16), one per tilt.
    image_shape_px : (ny, nx)
        Size of the tilt images in pixels of ``pixel_size_a`` (not stored in movie XMLs).
    pixel_size_a : float
        Pixel size (Å).
    """
    px = as_float(pixel_size_a, "pixel_size_a", positive=True)
    if isinstance(image_shape_px, str | bytes) or len(image_shape_px) != 2:
        raise InvalidValueError(f"image_shape_px: expected (ny, nx), got {image_shape_px!r}")
    ny = as_int(image_shape_px[0], "image_shape_px[0]", low=1)
    nx = as_int(image_shape_px[1], "image_shape_px[1]", low=1)
    if isinstance(movie_xmls, str | bytes | os.PathLike) or not isinstance(movie_xmls, Sequence):
        raise InvalidTypeError(
            f"movie_xmls: expected a sequence of paths (one movie XML per tilt), "
            f"got {describe(movie_xmls)}"
        )
    nodes = [n for t, p in enumerate(movie_xmls) for n in _grid_nodes(p, t, (ny, nx), px)]
    if not nodes:
        raise InvalidValueError("movie_xmls: no files given")
    ti, xs, ys, ds = (np.array(c) for c in zip(*nodes, strict=True))
    return HandSamples.from_columns(ti, xs, ys, ds)
