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

import numpy as np
from numpy.typing import NDArray

from emgeom.errors import (
    EmgeomFileError,
    FileFormatError,
    InvalidTypeError,
    LossyConversionWarning,
)
from emgeom.io._atomic import atomic_output
from emgeom.tilt._geometry import TiltGeometry

__all__ = ["read_warp", "to_warp"]

UM_TO_A = 1e4


def _decode(raw: bytes, path: Path) -> str:
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        text = raw.decode("utf-16")
    elif len(raw) > 1 and raw[1:2] == b"\x00":
        text = raw.decode("utf-16-le")
    elif raw.startswith(b"\xef\xbb\xbf"):
        text = raw[3:].decode("utf-8")
    else:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise FileFormatError(f"{path}: not UTF-8 or UTF-16 text ({exc})") from None
    if text.startswith("<?xml"):
        text = text[text.index("?>") + 2 :]  # the declaration may name another encoding
    return text


def _lines(root: ET.Element, tag: str, path: Path, required: bool = True) -> list[str] | None:
    el = root.find(tag)
    if el is None or el.text is None:
        if required:
            raise FileFormatError(f"{path}: missing <{tag}> (not a Warp tilt-series XML?)")
        return None
    return [s.strip() for s in el.text.strip().splitlines() if s.strip()]


def _floats(vals: list[str], what: str, path: Path) -> NDArray[np.float64]:
    try:
        a = np.array([float(v) for v in vals])
    except ValueError:
        raise FileFormatError(f"{path}: <{what}> holds non-numeric values") from None
    if not np.all(np.isfinite(a)):
        raise FileFormatError(f"{path}: <{what}> has NaN/inf values")
    return a


def _grid_per_tilt(root: ET.Element, tag: str, n: int, path: Path) -> NDArray[np.float64] | None:
    el = root.find(tag)
    if el is None:
        return None
    depth = int(el.get("Depth", "1"))
    nodes = el.findall("Node")
    if not nodes:
        return None
    vals: dict[int, list[float]] = {}
    for nd in nodes:
        vals.setdefault(int(nd.get("Z", "0")), []).append(float(nd.get("Value", "nan")))
    if depth == 1 and n > 1:
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


def read_warp(xml_path: str | os.PathLike[str]) -> TiltGeometry:
    """Read a Warp/M tilt-series XML (UTF-8 or UTF-16).

    Returns
    -------
    TiltGeometry
        Canonical; ``tilt_deg = −(Angles + LevelAngleY)``; ``hand = +1`` if
        ``AreAnglesInverted="True"`` else ``−1`` (Warp adds ``+z'`` to the defocus when not
        inverted; canonical subtracts ``h·z'``). ``pixel_size_a`` from ``<CTF> PixelSize``;
        ``names`` from ``<MoviePath>``. Spatially resolved ``GridCTF`` (more than 1×1 per
        tilt) is averaged per tilt (noted). Volume warps / grid movements are not represented.
    """
    path = Path(xml_path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise EmgeomFileError(f"{path}: file not found") from None
    try:
        root = ET.fromstring(_decode(raw, path))
    except ET.ParseError as exc:
        raise FileFormatError(f"{path}: not valid XML ({exc})") from None
    if root.tag != "TiltSeries":
        raise FileFormatError(f"{path}: root element is <{root.tag}>, expected <TiltSeries>")
    angles = _floats(_lines(root, "Angles", path) or [], "Angles", path)
    n = angles.size
    if n == 0:
        raise FileFormatError(f"{path}: <Angles> is empty")
    axis_l = _lines(root, "AxisAngle", path)
    axis = _floats(axis_l or [], "AxisAngle", path)
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
    inv_s = root.get("AreAnglesInverted", "False").strip().lower()
    if inv_s not in ("true", "false"):
        raise FileFormatError(f"{path}: AreAnglesInverted={inv_s!r}, expected True/False")
    inverted = inv_s == "true"
    lx = float(root.get("LevelAngleX", "0"))
    ly = float(root.get("LevelAngleY", "0"))
    notes = [
        f"hand: AreAnglesInverted={inverted} -> h = {+1 if inverted else -1:+d} (Warp "
        "TiltSeries.GetPositionInAllTilts adds +z' to the defocus unless inverted)",
        "tilt: theta = -(Angle + LevelAngleY) (Warp Euler(0, Angle, -axis) = Rz(axis)Ry(-Angle))",
    ]
    d = _grid_per_tilt(root, "GridCTF", n, path)
    if d is None:
        dval = _param(root, "CTF", "Defocus")
        if dval is None:
            raise FileFormatError(f"{path}: no <GridCTF> and no CTF Defocus")
        d = np.full(n, float(dval))
        notes.append("defocus: no GridCTF; CTF Defocus used for every tilt")
    g_ctf = root.find("GridCTF")
    if g_ctf is not None and (
        int(g_ctf.get("Width", "1")) > 1 or int(g_ctf.get("Height", "1")) > 1
    ):
        notes.append("defocus: spatial GridCTF averaged per tilt")
    delta = _grid_per_tilt(root, "GridCTFDefocusDelta", n, path)
    if delta is None:
        delta = np.full(n, float(_param(root, "CTF", "DefocusDelta") or 0.0))
    ang = _grid_per_tilt(root, "GridCTFDefocusAngle", n, path)
    if ang is None:
        ang = np.full(n, float(_param(root, "CTF", "DefocusAngle") or 0.0))
    px = _param(root, "CTF", "PixelSize")
    pixel = float(px) if px is not None and float(px) > 0 else None
    shape = None
    vd = root.get("VolumeDimensionsAngstrom") or root.get("VolumeDimensionsPhysical")
    if vd and pixel:
        dims = [float(s) for s in vd.split(",")]
        if len(dims) == 3 and all(v > 0 for v in dims):
            shape = tuple(round(v / pixel) for v in dims)
    if not np.all(np.isfinite(d)) or np.any(d == 0):
        notes.append("defocus: GridCTF empty/zero (CTF not estimated)")
    names = _lines(root, "MoviePath", path, required=False)
    if names is not None and len(names) != n:
        names = None
    use = _lines(root, "UseTilt", path, required=False)
    if use is not None and any(u.lower() == "false" for u in use):
        notes.append(
            f"UseTilt False for tilts {[i for i, u in enumerate(use) if u.lower() == 'false']}"
        )
    return TiltGeometry(
        -(angles + ly),
        axis,
        None,
        x_tilt_deg=lx,
        shifts_a=np.stack(offs, axis=1),
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
        parts.append(_block("MoviePath", list(g.names)))
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
