"""AreTomo2/3 alignment (``.aln``) and AreTomo3 CTF (``_CTF.txt``) → canonical.

Sources (czimaginginstitute/AreTomo3, design note §2.4): ``.aln`` global table
``SEC ROT GMAG TX TY SMEAN SFIT SCALE BASE TILT`` (ROT: "angle of tilt axis in degree relative
to the y (vertical) axis of the unaligned tilt images"; TX/TY: shifts in pixels of the unaligned
images); projection ``q = Rz(ROT)·Ry(TILT)·p + (TX, TY)`` (IMOD sign since AreTomo2 1.0.12,
"Adopted IMOD handedness"; RELION imports YTilt = TILT, ZRot = ROT in
``align_tilt_series/aretomo/utils.py``). ``_CTF.txt`` column 8 ``dfHand`` (AreTomo3 ≥ 2.0.6,
``AreTomo/FindCtf/CRefineCtfMain.cpp`` ``mFindHandedness``); ``AreTomo/CAreTomoMain.cpp``
rotates the tilt axis by 180° when the measured hand is −1 and axis refinement is allowed,
then continues with its own hand +1 whose tile model is ``Δf = Δf_c + ΔZ`` with
``ΔZ = z'`` (``CTiltInducedZ.cpp``), i.e. canonical ``h = −1``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from emgeom._validate import as_float
from emgeom.conventions.tilt import aretomo3_hand
from emgeom.errors import FileFormatError, InvalidValueError
from emgeom.io.text import as_path, from_file, parse_int, parse_row, read_text
from emgeom.model.fields import as_hand
from emgeom.model.geometry import TiltGeometry

__all__ = ["aretomo3_hand", "read_aln", "read_aretomo", "read_ctf_txt"]


def _header_values(body: str, key: str, p: Path, lineno: int) -> list[str]:
    """The values after ``=`` of a ``# Key = v1 v2`` header line (at least one)."""
    _, eq, rest = body.partition("=")
    if not eq or not rest.split():
        raise FileFormatError(f"{p}:{lineno}: header {key} has no '= value': {body!r}")
    return rest.split()


def read_aln(path: str | os.PathLike[str]) -> dict[str, NDArray[np.float64] | tuple[int, ...]]:
    """Global table of an AreTomo ``.aln``: ``sec``, ``rot``, ``tx``, ``ty``, ``tilt``,
    ``raw_size`` (nx, ny, n) and ``dark`` (0-based raw indices of removed dark frames).
    """
    p, text = read_text(path, "path", what="AreTomo .aln file")
    rows: list[list[float]] = []
    raw_size: tuple[int, ...] = ()
    dark: list[int] = []
    for lineno, ln in enumerate(text.splitlines(), 1):
        s = ln.strip()
        if not s:
            continue
        if s.startswith("#"):
            body = s[1:].strip()
            if body.startswith("Local Alignment"):
                break
            if body.startswith("RawSize"):
                vals = _header_values(body, "RawSize", p, lineno)
                raw_size = tuple(parse_int(v, "RawSize", f"{p}:{lineno}", low=1) for v in vals)
            elif body.startswith("DarkFrame"):
                v = _header_values(body, "DarkFrame", p, lineno)[0]
                dark.append(parse_int(v, "DarkFrame", f"{p}:{lineno}", low=0))
            continue
        parts = s.split()
        if len(parts) != 10:
            raise FileFormatError(
                f"{p}:{lineno}: expected 10 columns (SEC ROT GMAG TX TY ... TILT): {s!r}"
            )
        rows.append(parse_row(parts, f"{p}:{lineno}"))
    if not rows:
        raise FileFormatError(f"{p}: no alignment rows (not an AreTomo .aln?)")
    a = np.array(rows)
    return {
        "sec": a[:, 0],
        "rot": a[:, 1],
        "tx": a[:, 3],
        "ty": a[:, 4],
        "tilt": a[:, 9],
        "raw_size": raw_size,
        "dark": tuple(dark),
    }


def read_ctf_txt(path: str | os.PathLike[str]) -> dict[str, NDArray[np.float64]]:
    """AreTomo3/CTFFIND4-style ``_CTF.txt``: ``defocus_u_a``, ``defocus_v_a`` (Å),
    ``astigmatism_deg`` and ``df_hand`` (column 8; absent → empty array).
    """
    p, text = read_text(path, "path", what="AreTomo _CTF.txt file")
    rows = []
    for lineno, ln in enumerate(text.splitlines(), 1):
        s = ln.strip()
        if not s or s.startswith("#"):
            continue
        rows.append(parse_row(s.split(), f"{p}:{lineno}"))
    if not rows or any(len(r) < 4 for r in rows):
        raise FileFormatError(f"{p}: expected rows of >= 4 numbers (index, defocus 1/2 Å, azimuth)")
    n_cols = min(len(r) for r in rows)
    a = np.array([r[:n_cols] for r in rows])
    return {
        "defocus_u_a": a[:, 1],
        "defocus_v_a": a[:, 2],
        "astigmatism_deg": a[:, 3],
        "df_hand": a[:, 7] if n_cols >= 8 else np.array([]),
    }


def read_aretomo(
    aln: str | os.PathLike[str],
    *,
    ctf: str | os.PathLike[str] | None = None,
    pixel_size_a: float | None = None,
    axis_refined: bool = True,
    hand: int | None = None,
) -> TiltGeometry:
    """Read an AreTomo ``.aln`` (+ optional AreTomo3 ``_CTF.txt``) into the canonical model.

    Parameters
    ----------
    aln : path
    ctf : path, optional
        AreTomo3 ``_CTF.txt`` (Å); rows in the order of the ``.aln`` rows. Its ``dfHand``
        column decides the hand (see :func:`aretomo3_hand`).
    pixel_size_a : float, optional
        Tilt-series pixel size (Å): required when TX/TY are non-zero.
    axis_refined : bool
        Whether AreTomo3 was allowed to refine the tilt axis (``-TiltAxis a b`` with b ≥ 0,
        the default); False for ``-TiltAxis a -1``.
    hand : {+1, -1}, optional
        Override. Without ``ctf`` and ``hand``, ``h = −1`` is assumed (AreTomo3 ≥ 2.0.6 output
        after its own hand step) and said so in ``notes``; AreTomo ≤ 2 does not determine the
        hand — measure it.
    """
    p = as_path(aln, "aln")
    px = None if pixel_size_a is None else as_float(pixel_size_a, "pixel_size_a", positive=True)
    a = read_aln(p)
    tilt = np.asarray(a["tilt"], dtype=np.float64)
    n = tilt.size
    notes: list[str] = []
    du = dv = ang = None
    if ctf is not None:
        c = read_ctf_txt(as_path(ctf, "ctf"))
        if c["defocus_u_a"].size != n:
            raise FileFormatError(f"{ctf}: {c['defocus_u_a'].size} rows for {n} tilts in {p}")
        du, dv, ang = c["defocus_u_a"], c["defocus_v_a"], c["astigmatism_deg"]
    if hand is not None:
        h = as_hand(hand)
        notes.append(f"hand: h = {h:+d} given by the caller")
    elif ctf is not None and c["df_hand"].size:
        vals = set(np.unique(c["df_hand"]).tolist())
        if len(vals) != 1 or not vals <= {1.0, -1.0}:
            raise FileFormatError(
                f"{ctf}: dfHand column must be one of +1/-1 for all rows, got {vals}"
            )
        dfh = int(vals.pop())
        h = aretomo3_hand(dfh, axis_refined=axis_refined)
        notes.append(
            f"hand: AreTomo3 dfHand = {dfh:+d}, axis {'refined' if axis_refined else 'fixed'} "
            f"-> h = {h:+d} (CAreTomoMain rotates ROT by 180 deg when dfHand=-1 and the axis may "
            "be refined; AreTomo3's own model then is df = df_c + z', i.e. h = -1)"
        )
    else:
        h = -1
        notes.append(
            "hand: not measured in the input; h = -1 assumed (AreTomo3 >= 2.0.6 output); "
            "AreTomo <= 2 does not determine the hand: measure it"
        )
    tx, ty = np.asarray(a["tx"]), np.asarray(a["ty"])
    if np.any(tx != 0) or np.any(ty != 0):
        if px is None:
            raise InvalidValueError(
                f"pixel_size_a: needed to convert the TX/TY (pixels) of {p} to Å"
            )
        shifts = np.stack([tx, ty], axis=1) * px
    else:
        shifts = np.zeros((n, 2))
    if du is None:
        notes.append("defocus: no _CTF.txt (zeros)")
    with from_file(p if ctf is None else f"{p} + {ctf}"):
        return TiltGeometry(
            tilt,
            a["rot"],
            None if du is not None else np.zeros(n),
            shifts_a=shifts,
            hand=h,
            defocus_u_a=du,
            defocus_v_a=dv,
            astigmatism_deg=ang,
            pixel_size_a=px,
            source=f"aretomo:{p}",
            notes=notes,
        )
