"""Warp/WarpTools ``.settings`` (the session's ``warp_tiltseries.settings``): pixel size and the
tomogram dimensions.

Source: the XML written by Warp's ``Options.Save`` (warpem/warp ``WarpLib/Options.cs``):
``<Import><Param Name="PixelSize"/>``, ``<Tomo><Param Name="DimensionsX/Y/Z"/>`` (unbinned
tilt-series pixels; ``VolumeDimensionsPhysical = Dimensions · PixelSize`` Å).
"""

from __future__ import annotations

import os

from emgeom.errors import FileFormatError
from emgeom.io.text import parse_float
from emgeom.io.warp_xml import parse_warp_xml

__all__ = ["read_warp_settings"]


def read_warp_settings(path: str | os.PathLike[str]) -> dict[str, float | tuple[float, ...]]:
    """``{"pixel_size_a": …, "tomo_dims_px": (x, y, z), "volume_dimensions_a": (x, y, z)}``."""
    # Warp's XML (UTF-8 or, on Windows, UTF-16): the same reading as its per-tilt-series XML
    p, root = parse_warp_xml(path, "path")
    params = {el.get("Name"): el.get("Value") for el in root.iter("Param")}
    tomo = root.find("Tomo")
    if tomo is None or params.get("PixelSize") is None:
        raise FileFormatError(f"{p}: no <Tomo> dimensions or PixelSize (not a Warp .settings)")
    tparams = {el.get("Name"): el.get("Value") for el in tomo.iter("Param")}
    px = parse_float(params["PixelSize"], "PixelSize", p, positive=True)
    if any(tparams.get(f"Dimensions{a}") is None for a in "XYZ"):
        raise FileFormatError(f"{p}: <Tomo> lacks DimensionsX/Y/Z (not a Warp .settings)")
    dims = tuple(
        parse_float(tparams[f"Dimensions{a}"], f"Dimensions{a}", p, positive=True) for a in "XYZ"
    )
    return {
        "pixel_size_a": px,
        "tomo_dims_px": dims,
        "volume_dimensions_a": tuple(d * px for d in dims),
    }
