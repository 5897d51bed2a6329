"""Warp/WarpTools ``.settings`` (the session's ``warp_tiltseries.settings``): pixel size and the
tomogram dimensions.

Source: the XML written by Warp's ``Options.Save`` (warpem/warp ``WarpLib/Options.cs``):
``<Import><Param Name="PixelSize"/>``, ``<Tomo><Param Name="DimensionsX/Y/Z"/>`` (unbinned
tilt-series pixels; ``VolumeDimensionsPhysical = Dimensions · PixelSize`` Å).
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

from emgeom.errors import EmgeomFileError, FileFormatError

__all__ = ["read_warp_settings"]


def read_warp_settings(path: str | os.PathLike[str]) -> dict[str, float | tuple[float, ...]]:
    """``{"pixel_size_a": …, "tomo_dims_px": (x, y, z), "volume_dimensions_a": (x, y, z)}``."""
    p = Path(path)
    try:
        text = p.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise EmgeomFileError(f"{p}: file not found") from None
    except UnicodeDecodeError:
        text = p.read_bytes().decode("utf-16")
    if text.startswith("<?xml"):
        text = text[text.index("?>") + 2 :]
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise FileFormatError(f"{p}: not XML ({exc})") from None
    params = {el.get("Name"): el.get("Value") for el in root.iter("Param")}
    tomo = root.find("Tomo")
    if tomo is None or params.get("PixelSize") is None:
        raise FileFormatError(f"{p}: no <Tomo> dimensions or PixelSize (not a Warp .settings)")
    tparams = {el.get("Name"): el.get("Value") for el in tomo.iter("Param")}
    try:
        px = float(params["PixelSize"] or "")
        dims = tuple(float(tparams[f"Dimensions{a}"] or "") for a in "XYZ")
    except (KeyError, ValueError):
        raise FileFormatError(f"{p}: Tomo DimensionsX/Y/Z or PixelSize not numbers") from None
    return {
        "pixel_size_a": px,
        "tomo_dims_px": dims,
        "volume_dimensions_a": tuple(d * px for d in dims),
    }
