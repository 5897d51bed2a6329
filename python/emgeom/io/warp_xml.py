"""Warp/M tilt-series XML ↔ canonical :class:`~emgeom.tilt.TiltGeometry`.

Source (warpem/warp): ``WarpLib/TiltSeries/TiltSeries.cs`` (``GetPositionInAllTilts``: tilt
matrix ``Euler(0, Angle+LevelAngleY, −AxisAngle)·RotateX(LevelAngleX)`` =
``Rz(AxisAngle)·Ry(−(Angle+LevelAngleY))·Rx(LevelAngleX)``, defocus
``GridCTF + 1e-4·z'`` µm when ``AreAnglesInverted`` is False and ``− 1e-4·z'`` when True);
``WarpLib/Tools/Matrix3.cs`` (``Euler``, ``RotateX``); XML attribute/element names as written
by ``TiltSeries.SaveMeta``.

Canonical mapping: ``θ = −(Angle + LevelAngleY)``, ``ψ = AxisAngle``, ``χ = LevelAngleX``,
``s = (AxisOffsetX, AxisOffsetY)`` Å, ``h = +1`` if ``AreAnglesInverted`` else ``−1``;
``Δf0 = GridCTF·1e4`` Å, ``ΔfU,V = (GridCTF ± GridCTFDefocusDelta/2)·1e4`` Å,
astigmatism angle = ``GridCTFDefocusAngle``. Units: Warp stores defocus in µm (converted here
and only here). Some Warp XML files are UTF-16 (Windows Warp); both encodings are read.
"""

from __future__ import annotations

import os
import warnings
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape as xml_escape

import numpy as np
from numpy.typing import NDArray

from emgeom.errors import (
    FileFormatError,
    InvalidTypeError,
    InvalidValueError,
    LossyConversionWarning,
)
from emgeom.io.atomic import atomic_output
from emgeom.io.text import as_path, from_file, parse_float, parse_int, read_text
from emgeom.model.geometry import TiltGeometry

__all__ = ["UM_TO_A", "parse_warp_xml", "read_warp", "to_warp"]

UM_TO_A = 1e4


def parse_warp_xml(value: Any, name: str) -> tuple[Path, ET.Element]:
    """``(path, root element)`` of a Warp XML file argument ``name`` (UTF-8 or UTF-16: Warp on
    Windows writes UTF-16).
    """
    path, text = read_text(value, name, utf16=True, what="Warp XML file")
    if text.startswith("<?xml"):
        end = text.find("?>")
        if end < 0:
            raise FileFormatError(f"{path}: not valid XML (unterminated <?xml declaration)")
        text = text[end + 2 :]  # the declaration may name another encoding
    try:
        return path, ET.fromstring(text)
    except ET.ParseError as exc:
        raise FileFormatError(f"{path}: not valid XML ({exc})") from None


def _lines(root: ET.Element, tag: str, path: Path, required: bool = True) -> list[str] | None:
    el = root.find(tag)
    if el is None or el.text is None:
        if required:
            raise FileFormatError(f"{path}: missing <{tag}> (not a Warp tilt-series XML?)")
        return None
    return [s.strip() for s in el.text.strip().splitlines() if s.strip()]


def _floats(vals: list[str], what: str, path: Path) -> NDArray[np.float64]:
    return np.array([parse_float(v, f"<{what}> value", path) for v in vals], dtype=np.float64)


def _grid_per_tilt(root: ET.Element, tag: str, n: int, path: Path) -> NDArray[np.float64] | None:
    el = root.find(tag)
    if el is None:
        return None
    where = f"{path} <{tag}>"
    depth = parse_int(el.get("Depth", "1"), "Depth", where, low=1)
    nodes = el.findall("Node")
    if not nodes:
        return None
    vals: dict[int, list[float]] = {}
    for nd in nodes:
        z = parse_int(nd.get("Z", "0"), "Node Z", where)
        vals.setdefault(z, []).append(parse_float(nd.get("Value"), "Node Value", where))
    if depth == 1 and n > 1 and 0 in vals:
        v = float(np.mean(vals[0]))
        return np.full(n, v)
    if depth != n or sorted(vals) != list(range(n)):
        raise FileFormatError(f"{path}: <{tag}> has depth {depth}, expected {n} (one per tilt)")
    return np.array([float(np.mean(vals[z])) for z in range(n)])


def _param(root: ET.Element, section: str, name: str) -> str | None:
    sec = root.find(section)
    if sec is None:
        return None
    for p in sec.findall("Param"):
        if p.get("Name") == name:
            return p.get("Value")
    return None


def _param_float(root: ET.Element, section: str, name: str, path: Path) -> float | None:
    v = _param(root, section, name)
    return None if v is None else parse_float(v, f"<{section}> Param {name}", path)


def _per_tilt_axes(root: ET.Element, path: Path) -> tuple[Any, Any, Any]:
    """``Angles``, ``AxisAngle`` and ``AxisOffsetX/Y`` (stacked), one per tilt."""
    angles = _floats(_lines(root, "Angles", path) or [], "Angles", path)
    n = angles.size
    if n == 0:
        raise FileFormatError(f"{path}: <Angles> is empty")
    axis = _floats(_lines(root, "AxisAngle", path) or [], "AxisAngle", path)
    if axis.size == 1:
        axis = np.full(n, axis[0])
    if axis.size != n:
        raise FileFormatError(f"{path}: {axis.size} AxisAngle values for {n} Angles")
    offs = []
    for tag in ("AxisOffsetX", "AxisOffsetY"):
        v = _lines(root, tag, path, required=False)
        a = np.zeros(n) if v is None else _floats(v, tag, path)
        if a.size != n:
            raise FileFormatError(f"{path}: {a.size} {tag} values for {n} Angles")
        offs.append(a)
    return angles, axis, np.stack(offs, axis=1)


def _defocus(root: ET.Element, n: int, path: Path, notes: list[str]) -> tuple[Any, Any, Any]:
    """Per-tilt defocus, astigmatism delta (µm) and angle (deg)."""
    d = _grid_per_tilt(root, "GridCTF", n, path)
    if d is None:
        dval = _param_float(root, "CTF", "Defocus", path)
        if dval is None:
            raise FileFormatError(f"{path}: no <GridCTF> and no CTF Defocus")
        d = np.full(n, dval)
        notes.append("defocus: no GridCTF; CTF Defocus used for every tilt")
    g_ctf = root.find("GridCTF")
    if g_ctf is not None and (
        parse_int(g_ctf.get("Width", "1"), "Width", f"{path} <GridCTF>") > 1
        or parse_int(g_ctf.get("Height", "1"), "Height", f"{path} <GridCTF>") > 1
    ):
        notes.append("defocus: spatial GridCTF averaged per tilt")
    delta = _grid_per_tilt(root, "GridCTFDefocusDelta", n, path)
    if delta is None:
        delta = np.full(n, _param_float(root, "CTF", "DefocusDelta", path) or 0.0)
    ang = _grid_per_tilt(root, "GridCTFDefocusAngle", n, path)
    if ang is None:
        ang = np.full(n, _param_float(root, "CTF", "DefocusAngle", path) or 0.0)
    if np.any(d == 0):
        notes.append("defocus: GridCTF empty/zero (CTF not estimated)")
    return d, delta, ang


def _volume_shape(root: ET.Element, path: Path, pixel: float | None) -> tuple[int, ...] | None:
    key = "VolumeDimensionsAngstrom"
    vd = root.get(key)
    if vd is None:
        key, vd = "VolumeDimensionsPhysical", root.get("VolumeDimensionsPhysical")
    if not vd or not pixel:
        return None
    dims = [parse_float(s, key, path) for s in vd.split(",")]
    if len(dims) == 3 and all(v > 0 for v in dims):
        return tuple(round(v / pixel) for v in dims)
    return None


def read_warp(xml_path: str | os.PathLike[str]) -> TiltGeometry:
    """Read a Warp/M tilt-series XML (UTF-8 or UTF-16).

    Returns
    -------
    TiltGeometry
        Canonical; ``tilt_deg = −(Angles + LevelAngleY)``; ``hand = +1`` if
        ``AreAnglesInverted="True"`` else ``−1`` (Warp adds ``+z'`` to the defocus when not
        inverted; canonical subtracts ``h·z'``). ``pixel_size_a`` from ``<CTF> PixelSize``
        (a non-positive value is not used, and said so in ``notes``);
        ``names`` from ``<MoviePath>``. Spatially resolved ``GridCTF`` (more than 1×1 per
        tilt) is averaged per tilt (noted). Volume warps / grid movements are not represented.

    Raises
    ------
    InvalidTypeError
        ``xml_path`` is not a path.
    EmgeomFileError
        Missing file, a directory, unreadable.
    FileFormatError
        Not XML, truncated UTF-16, a non-numeric or non-finite value (the message names the
        element or attribute).
    """
    path, root = parse_warp_xml(xml_path, "xml_path")
    if root.tag != "TiltSeries":
        raise FileFormatError(f"{path}: root element is <{root.tag}>, expected <TiltSeries>")
    angles, axis, shifts = _per_tilt_axes(root, path)
    n = angles.size
    inv_s = root.get("AreAnglesInverted", "False").strip().lower()
    if inv_s not in ("true", "false"):
        raise FileFormatError(f"{path}: AreAnglesInverted={inv_s!r}, expected True/False")
    inverted = inv_s == "true"
    lx = parse_float(root.get("LevelAngleX", "0"), "LevelAngleX", path)
    ly = parse_float(root.get("LevelAngleY", "0"), "LevelAngleY", path)
    notes = [
        f"hand: AreAnglesInverted={inverted} -> h = {+1 if inverted else -1:+d} (Warp "
        "TiltSeries.GetPositionInAllTilts adds +z' to the defocus unless inverted)",
        "tilt: theta = -(Angle + LevelAngleY) (Warp Euler(0, Angle, -axis) = Rz(axis)Ry(-Angle))",
    ]
    d, delta, ang = _defocus(root, n, path, notes)
    px = _param_float(root, "CTF", "PixelSize", path)
    pixel = px if px is not None and px > 0 else None
    if px is not None and pixel is None:
        notes.append(f"pixel size: <CTF> PixelSize = {px:g} is not positive; not used")
    names = _lines(root, "MoviePath", path, required=False)
    if names is not None and len(names) != n:
        names = None
    use = _lines(root, "UseTilt", path, required=False)
    if use is not None and any(u.lower() == "false" for u in use):
        notes.append(
            f"UseTilt False for tilts {[i for i, u in enumerate(use) if u.lower() == 'false']}"
        )
    shape = _volume_shape(root, path, pixel)
    with from_file(path):
        return TiltGeometry(
            -(angles + ly),
            axis,
            None,
            x_tilt_deg=lx,
            shifts_a=shifts,
            hand=+1 if inverted else -1,
            defocus_u_a=(d + delta / 2) * UM_TO_A,
            defocus_v_a=(d - delta / 2) * UM_TO_A,
            astigmatism_deg=ang,
            volume_shape=shape,
            pixel_size_a=pixel,
            source=f"warp:{path}",
            notes=notes,
            names=names,
        )


def _movie_path(name: str, i: int) -> str:
    """A ``<MoviePath>`` line: one per tilt, so no line breaks; XML-escaped."""
    if not name.strip() or any(c in name for c in "\r\n") or not name.isprintable():
        raise InvalidValueError(
            f"geometry.names[{i}]: {name!r} cannot be written as a Warp MoviePath line and read "
            "back (empty, line break or control character)"
        )
    return xml_escape(name.strip())


def _block(tag: str, values: NDArray[np.float64] | list[str]) -> str:
    body = "\n".join(v if isinstance(v, str) else f"{v:.9g}" for v in values)
    return f"\t<{tag}>{body}</{tag}>\n"


def _grid(tag: str, values: NDArray[np.float64]) -> str:
    n = len(values)
    nodes = "".join(
        f'\t\t<Node X="0" Y="0" Z="{i}" Value="{v:.9g}" />\n' for i, v in enumerate(values)
    )
    return (
        f'\t<{tag} Width="1" Height="1" Depth="{n}" MarginX="0" MarginY="0" MarginZ="0">\n'
        f"{nodes}\t</{tag}>\n"
    )


def to_warp(
    geometry: TiltGeometry,
    path: str | os.PathLike[str],
    *,
    force: bool = False,
) -> Path:
    """Write the geometry as a Warp/M tilt-series XML (UTF-8), atomically, no clobber.

    ``Angles = −θ`` (``LevelAngleY = 0``), ``AxisAngle = ψ``, ``LevelAngleX = χ`` (must be the
    same for every tilt: Warp has one value; otherwise the mean is written with a
    :class:`~emgeom.errors.LossyConversionWarning`), ``AxisOffsetX/Y = s``,
    ``AreAnglesInverted = (h == +1)``, ``GridCTF`` (µm) per tilt with ``GridCTFDefocusDelta``
    and ``GridCTFDefocusAngle``. Only the alignment/CTF fields are written: use it to seed or
    compare with Warp, not to replace a Warp project file.
    """
    if not isinstance(geometry, TiltGeometry):
        raise InvalidTypeError(f"geometry: expected a TiltGeometry, got {type(geometry).__name__}")
    as_path(path, "path")
    g = geometry
    xt = g.x_tilt_deg
    if np.ptp(xt) > 1e-6:
        warnings.warn(
            "to_warp: per-tilt x_tilt_deg differs between tilts; Warp has one LevelAngleX, "
            "writing the mean",
            LossyConversionWarning,
            stacklevel=2,
        )
    lx = float(np.mean(xt))
    if g.defocus_u_a is not None and g.defocus_v_a is not None:
        delta = (g.defocus_u_a - g.defocus_v_a) / UM_TO_A
    else:
        delta = np.zeros(g.n_tilts)
    ang = g.astigmatism_deg if g.astigmatism_deg is not None else np.zeros(g.n_tilts)
    d_um = g.defocus_a / UM_TO_A
    attrs = f'AreAnglesInverted="{g.warp_angles_inverted}" LevelAngleX="{lx:.9g}" LevelAngleY="0"'
    if g.volume_shape is not None and g.pixel_size_a is not None:
        dims = ", ".join(f"{v * g.pixel_size_a:.9g}" for v in g.volume_shape)
        attrs += f' VolumeDimensionsAngstrom="{dims}"'
    parts = ['<?xml version="1.0" encoding="utf-8"?>\n', f"<TiltSeries {attrs}>\n"]
    parts.append(_block("Angles", -g.tilt_deg))
    parts.append(_block("UseTilt", ["True"] * g.n_tilts))
    parts.append(_block("AxisAngle", g.axis_deg))
    parts.append(_block("AxisOffsetX", g.shifts_a[:, 0]))
    parts.append(_block("AxisOffsetY", g.shifts_a[:, 1]))
    if g.names is not None:
        parts.append(_block("MoviePath", [_movie_path(n, i) for i, n in enumerate(g.names)]))
    parts.append("\t<CTF>\n")
    if g.pixel_size_a is not None:
        parts.append(f'\t\t<Param Name="PixelSize" Value="{g.pixel_size_a:.9g}" />\n')
    parts.append(f'\t\t<Param Name="Defocus" Value="{float(np.mean(d_um)):.9g}" />\n')
    parts.append(f'\t\t<Param Name="DefocusDelta" Value="{float(np.mean(delta)):.9g}" />\n')
    parts.append(f'\t\t<Param Name="DefocusAngle" Value="{float(np.mean(ang)):.9g}" />\n')
    parts.append("\t</CTF>\n")
    parts.append(_grid("GridCTF", d_um))
    parts.append(_grid("GridCTFDefocusDelta", delta))
    parts.append(_grid("GridCTFDefocusAngle", ang))
    parts.append("</TiltSeries>\n")
    with atomic_output(path, force=force) as tmp:
        tmp.write_text("".join(parts), encoding="utf-8")
    return Path(path)
