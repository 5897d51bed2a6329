"""IMOD alignment files (``.tlt``, ``.xf``, ``.xtilt``, ctfplotter ``.defocus``) → canonical.

Sources: IMOD man pages tiltalign (``RotationAngle``: "rotation (CCW positive) from the Y-axis
(the tilt axis after the views are aligned) to the suspected tilt axis in the unaligned
views"), xfproduct/``.xf`` format (``A11 A12 A21 A22 DX DY`` mapping raw → aligned about the
image centre), ctfphaseflip ("At positive tilt angles, the right side of the images should be
more underfocused than the left side; if not, then [-invert] is needed"), ctfplotter (defocus
file versions 2 and 3, nm); ``flib/tilt/tilt.f90`` (tilt sign, design note §2.3); RELION's
import ``src/tomography_python_programs/align_tilt_series/imod/_utils.py`` (YTilt = ``.tlt``,
ZRot from ``.xf``, XTilt = 0) and yet-another-imod-wrapper ``utils/xf.py``
(``specimen_shifts = −A⁻¹·(DX, DY)``); Warp's IMOD import
(``WarpLib/TiltSeries/TiltSeries.ImportAlignments.cs``: ``Shift = Rotationᵀ·(−DX, −DY)·pixel``
→ ``TiltAxisOffsetX/Y``, added in image space by ``GetPositionInAllTilts``) agrees.

Canonical mapping: ``θ = .tlt``, ``ψ = atan2(−A21, A11)``, ``s = −A⁻¹·(DX, DY)·pixel``,
``χ = .xtilt − XAXISTILT`` (verified against ``flib/tilt/tilt.f90``, below; RELION's import
ignores the x-tilt), ``h = +1`` (IMOD
convention) or ``−1`` when ctfphaseflip/ctfplotter needed ``-invert``. Defocus files are in nm
(converted here).

The x-axis tilt, from ``flib/tilt/tilt.f90`` (LabShare-Archive/IMOD): the per-view
``alpha = XTILTFILE value − XAXISTILT``; the trig tables use ``sinBeta = −sin θ`` ("equations
are written for rotations in the X/Z plane, viewed from the negative Y axis") and
``sinAlpha = −sin alpha`` ("the entered value is the amount that the specimen is tilted and we
need to rotate by negative of that"); the back-projection maps a voxel ``(xx, yy, zz)`` of the
output slice to ``xproj = xx·cos θ + yy·sinAlpha·sinBeta + zz·cosAlpha·sinBeta`` and
``yproj = yy·cosAlpha − zz·sinAlpha``. With ``alpha = 0`` this is the canonical
``x cos θ + z sin θ`` only for ``z = −zz`` (tilt's slices are upside down, as its comments
say); substituting gives exactly the canonical ``Ry(θ)·Rx(χ)`` with ``χ = +alpha``.
``tests/io/test_tilt_io.py::test_imod_xtilt_sign_follows_tilt_f90`` checks it numerically.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from emgeom._validate import as_float
from emgeom.errors import FileFormatError, InvalidValueError
from emgeom.io.text import as_path, from_file, parse_row, read_text
from emgeom.model.geometry import TiltGeometry

__all__ = ["read_ctfplotter_defocus", "read_imod", "read_tlt", "read_xf"]

NM_TO_A = 10.0


_MAX_VIEWS = 100_000  # a bound on the per-view arrays a .defocus file's view numbers size


def _rows(value: Any, name: str, what: str) -> tuple[Path, list[tuple[int, list[str]]]]:
    """``(path, [(line number, fields)])`` of the non-empty, non-comment lines."""
    path, text = read_text(value, name, what=what)
    rows = [
        (i, ln.split())
        for i, ln in enumerate(text.splitlines(), 1)
        if ln.strip() and not ln.lstrip().startswith("#")
    ]
    return path, rows


def read_tlt(path: str | os.PathLike[str]) -> NDArray[np.float64]:
    """Tilt angles (degrees) from an IMOD ``.tlt``/``.rawtlt``/``.xtilt`` (first column)."""
    p, rows = _rows(path, "path", "IMOD tilt-angle file")
    a = np.array([parse_row(r[:1], f"{p}:{i}")[0] for i, r in rows], dtype=np.float64)
    if a.size == 0:
        raise FileFormatError(f"{p}: no angles")
    return a


def read_xf(path: str | os.PathLike[str]) -> NDArray[np.float64]:
    """``(T, 6)`` rows ``A11 A12 A21 A22 DX DY`` of an IMOD ``.xf``."""
    p, rows = _rows(path, "path", "IMOD .xf file")
    for i, r in rows:
        if len(r) != 6:
            raise FileFormatError(
                f"{p}:{i}: expected 6 numbers per line (A11 A12 A21 A22 DX DY), got {len(r)}"
            )
    if not rows:
        raise FileFormatError(f"{p}: no transforms")
    return np.array([parse_row(r, f"{p}:{i}") for i, r in rows], dtype=np.float64)


def read_ctfplotter_defocus(
    path: str | os.PathLike[str], n_views: int | None = None
) -> dict[str, NDArray[np.float64]]:
    """Per-view defocus from a ctfplotter ``.defocus`` file (versions 2 and 3), in Å.

    Version 2: ``startView endView startAngle endAngle defocus_nm`` (the first line carries
    a trailing ``2``). Version 3: a header ``flags 0 0. 0. 0. 3`` (flags: 1 astigmatism,
    4 phase shift, 32 cut-on frequency), then ``start end a1 a2 defocus1 [defocus2 astigAngle]
    [phase] [cuton]``. Views are 1-based and ranges are inclusive; a range assigns its value
    to every view in it.

    Returns
    -------
    dict
        ``defocus_u_a``, ``defocus_v_a``, ``astigmatism_deg`` (length ``n_views``, NaN for
        views not listed) and ``views`` (the 0-based views that were listed).
    """
    p, rows = _rows(path, "path", "ctfplotter .defocus file")
    if not rows:
        raise FileFormatError(f"{p}: empty defocus file")
    flags = 0
    line1, first = rows[0]
    head = parse_row(first, f"{p}:{line1}")
    if len(first) == 6 and first[5] == "3" and head[2] == 0 and head[4] == 0:
        flags = int(head[0])
        rows = rows[1:]
        version = 3
    else:
        version = 2
        if len(first) == 6:  # "1 1 -57.00 -57.00 1360 2": trailing version number
            rows = [(line1, first[:5]), *rows[1:]]
    astig = bool(flags & 1)
    entries = []
    for lineno, r in rows:
        v = parse_row(r, f"{p}:{lineno}")
        need = 7 if astig else 5
        if len(v) < need:
            raise FileFormatError(
                f"{p}: version {version} line needs >= {need} values, got {' '.join(r)!r}"
            )
        d1 = v[4]
        d2 = v[5] if astig else d1
        ang = v[6] if astig else 0.0
        entries.append((int(v[0]), int(v[1]), d1, d2, ang))
    if not entries:
        raise FileFormatError(f"{p}: no defocus lines")
    n = n_views if n_views is not None else max(max(e[0], e[1]) for e in entries)
    if n > _MAX_VIEWS:
        raise FileFormatError(f"{p}: view number {n} > {_MAX_VIEWS} (corrupt file?)")
    u = np.full(n, np.nan)
    vv = np.full(n, np.nan)
    an = np.full(n, np.nan)
    listed = []
    for s, e, d1, d2, a in entries:
        lo, hi = min(s, e), max(s, e)
        if lo < 1 or hi > n:
            raise FileFormatError(f"{p}: view range {s}-{e} outside 1..{n}")
        for k in range(lo - 1, hi):
            u[k], vv[k], an[k] = d1 * NM_TO_A, d2 * NM_TO_A, a
            listed.append(k)
    return {
        "defocus_u_a": u,
        "defocus_v_a": vv,
        "astigmatism_deg": an,
        "views": np.array(sorted(set(listed))),
    }


def _xf_geometry(
    xf: Path, n: int, px: float | None, tlt_p: Path, notes: list[str]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Tilt axis (deg) and specimen shifts (Å) from an IMOD ``.xf``:
    ``ψ = atan2(−A21, A11)``, ``s = −A⁻¹·(DX, DY)·pixel``.
    """
    m = read_xf(xf)
    if m.shape[0] != n:
        raise FileFormatError(f"{xf}: {m.shape[0]} transforms for {n} tilts in {tlt_p}")
    a = m[:, :4].reshape(-1, 2, 2)
    det = np.linalg.det(a)
    if np.any(np.abs(det) < 1e-6):
        i = int(np.argmin(np.abs(det)))
        raise FileFormatError(f"{xf}:{i + 1}: singular transform (determinant {det[i]:.3g})")
    axis = np.degrees(np.arctan2(-a[:, 1, 0], a[:, 0, 0]))
    if np.any(np.abs(det - 1) > 0.02):
        notes.append(f".xf includes magnification/stretch (det {det.min():.4f}..{det.max():.4f})")
    d = m[:, 4:6]
    if not np.any(d != 0):
        return axis, np.zeros((n, 2))
    if px is None:
        raise InvalidValueError(f"pixel_size_a: needed to convert the shifts (pixels) of {xf} to Å")
    return axis, -np.einsum("tij,tj->ti", np.linalg.inv(a), d) * px


def read_imod(
    tlt: str | os.PathLike[str],
    *,
    xf: str | os.PathLike[str] | None = None,
    xtilt: str | os.PathLike[str] | None = None,
    defocus: str | os.PathLike[str] | None = None,
    pixel_size_a: float | None = None,
    invert: bool = False,
    axis_deg: float | None = None,
    x_axis_tilt_deg: float = 0.0,
) -> TiltGeometry:
    """Read an IMOD alignment into the canonical model.

    Parameters
    ----------
    tlt : path
        ``.tlt`` (final tilt angles used by ``tilt``; first column).
    xf : path, optional
        ``.xf``: tilt axis ``ψ = atan2(−A21, A11)`` and shifts ``−A⁻¹·(DX, DY)``.
    xtilt : path, optional
        ``.xtilt`` per-view x-axis tilt (degrees), written by tiltalign and read by ``tilt``
        (``XTILTFILE``): canonical ``χ = xtilt − x_axis_tilt_deg`` (module notes).
    defocus : path, optional
        ctfplotter ``.defocus`` (nm → Å). Views it does not list are an error.
    pixel_size_a : float, optional
        Pixel size of the aligned stack (Å): required when the ``.xf`` has shifts.
    invert : bool
        True if ctfphaseflip/ctfplotter needed ``-invert`` for this series (then ``h = −1``).
    axis_deg : float, optional
        Tilt axis when no ``.xf`` is given (e.g. ctfplotter ``-aAngle``); default 0.
    x_axis_tilt_deg : float
        The ``XAXISTILT`` entry of ``tilt.com`` (degrees; tomopitch's global x-axis tilt of
        the reconstruction), which ``tilt`` subtracts from every ``.xtilt`` value. Default 0.

    Returns
    -------
    TiltGeometry
        ``hand = −1 if invert else +1``: IMOD's convention (ctfphaseflip without ``-invert``)
        is canonical ``h = +1`` by definition.
    """
    tlt_p = as_path(tlt, "tlt")
    px = None if pixel_size_a is None else as_float(pixel_size_a, "pixel_size_a", positive=True)
    tilt = read_tlt(tlt_p)
    n = tilt.size
    notes = [
        f"hand: h = {-1 if invert else +1:+d} (IMOD convention = canonical +1; -invert -> -1; "
        "ctfphaseflip man page)",
    ]
    if xf is not None:
        axis, shifts = _xf_geometry(as_path(xf, "xf"), n, px, tlt_p, notes)
    else:
        axis = np.full(n, 0.0 if axis_deg is None else as_float(axis_deg, "axis_deg"))
        shifts = np.zeros((n, 2))
    xt = np.zeros(n)
    if xtilt is not None:
        xt = read_tlt(as_path(xtilt, "xtilt"))
        if xt.size != n:
            raise FileFormatError(f"{xtilt}: {xt.size} values for {n} tilts")
    x_axis = as_float(x_axis_tilt_deg, "x_axis_tilt_deg", low=-90.0, high=90.0)
    xt = xt - x_axis
    if np.any(xt != 0):
        notes.append(
            "x_tilt: chi = .xtilt - XAXISTILT (tilt.f90: alpha = XTILTFILE - XAXISTILT, "
            "projection Ry(theta)·Rx(alpha) in the canonical frame)"
        )
    d0: NDArray[np.float64] | None
    du: NDArray[np.float64] | None
    dv: NDArray[np.float64] | None
    ang: NDArray[np.float64] | None
    if defocus is not None:
        dd = read_ctfplotter_defocus(as_path(defocus, "defocus"), n_views=n)
        missing = np.flatnonzero(np.isnan(dd["defocus_u_a"]))
        if missing.size:
            raise FileFormatError(
                f"{defocus}: no defocus for views {(missing + 1).tolist()} (1-based)"
            )
        du, dv, ang = dd["defocus_u_a"], dd["defocus_v_a"], dd["astigmatism_deg"]
        d0 = None
    else:
        du = dv = ang = None
        d0 = np.zeros(n)
        notes.append("defocus: none given (zeros)")
    with from_file(tlt_p):
        return TiltGeometry(
            tilt,
            axis,
            d0,
            x_tilt_deg=xt,
            shifts_a=shifts,
            hand=-1 if invert else +1,
            defocus_u_a=du,
            defocus_v_a=dv,
            astigmatism_deg=ang,
            pixel_size_a=px,
            source=f"imod:{tlt_p}",
            notes=notes,
        )
