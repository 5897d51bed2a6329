"""Cross-program handedness audit: do two programs' files for one tilt series agree?

:func:`audit` evaluates per-particle defocus on a grid of 3-D positions under **each file's own
stated convention** (the readers in :mod:`emgeom.io` put every file into the canonical model;
pytom-match-pick's non-rigid ``+1`` is modelled separately, design note §2.6) and compares them
point by point. Frames may differ between programs (Warp vs IMOD tilt sign, a 180° axis), so the
grid point of file A is mapped to file B's frame by least squares on its image positions in every
tilt (the same physical point projects to the same pixels). The per-tilt defocus difference is
split into a constant (the programs' per-tilt CTF estimates differ: not a convention problem) and
a position-dependent part (geometry or hand). When only the latter disagrees and toggling one
file's hand flag removes it, the report names that flag.

:func:`audit_dataset` checks many tilt series of one data set (a RELION ``tomograms.star`` or a
folder of Warp XMLs) and flags series whose hand or tilt-axis angle disagrees with the majority
(inconsistent in-plane rotation at import: a 180° axis error point-inverts the tomogram and flips
the defocus hand, design T6).
"""

from __future__ import annotations

import math
import os
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from emgeom._validate import as_float, as_int, describe
from emgeom.errors import InvalidTypeError, InvalidValueError
from emgeom.io import aretomo, imod, relion_tomo, warp_xml
from emgeom.model.geometry import TiltGeometry, particle_defocus, project
from emgeom.tilt._audit_dataset import DatasetAudit, audit_dataset

__all__ = [
    "AuditReport",
    "AuditSource",
    "DatasetAudit",
    "PairAudit",
    "audit",
    "audit_dataset",
    "load_source",
]

PROGRAMS = ("canonical", "relion", "warp", "imod", "aretomo", "pytom")


# ------------------------------------------------------------------------------ sources
@dataclass(frozen=True)
class AuditSource:
    """One program's description of a tilt series.

    Parameters
    ----------
    geometry : TiltGeometry
        The file read into the canonical model (its hand is the file's stated hand).
    program : str
        ``"relion"``, ``"warp"``, ``"imod"``, ``"aretomo"``, ``"canonical"`` or ``"pytom"``
        (names the flag to change).
    label : str
        For reports (e.g. the path).
    pytom_handedness : {-1, 0, +1}, optional
        For ``program="pytom"``: pytom-match-pick's ``--defocus-handedness``. pytom's model
        (``tmjob.py`` ``get_defocus_offsets``): ``Δf = Δf_t + z·cosθ + s·x·sinθ`` in the
        tomogram frame of ``geometry`` (θ negated for ``s < 0``; ``s = 0`` disables it).
    """

    geometry: TiltGeometry
    program: str = "canonical"
    label: str = ""
    pytom_handedness: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.geometry, TiltGeometry):
            raise InvalidTypeError(
                f"geometry: expected a TiltGeometry, got {describe(self.geometry)}"
            )
        if self.program not in PROGRAMS:
            raise InvalidValueError(f"program: expected one of {PROGRAMS}, got {self.program!r}")
        if self.program == "pytom" and self.pytom_handedness not in (-1, 0, 1):
            raise InvalidValueError(
                f"pytom_handedness: expected -1, 0 or +1, got {self.pytom_handedness!r}"
            )

    @property
    def name(self) -> str:
        return self.label or f"{self.program} file"

    def defocus(self, positions_a: NDArray[np.float64]) -> NDArray[np.float64]:
        """Defocus (N, T) in Å at tomogram-frame positions under this program's convention."""
        g = self.geometry
        if self.program != "pytom":
            return np.asarray(particle_defocus(g, positions_a, dtype=np.float64))
        s = int(self.pytom_handedness or 0)
        t = np.radians(g.tilt_deg)
        base = g.defocus_a[None, :]
        if s == 0:
            return np.broadcast_to(base, (positions_a.shape[0], g.n_tilts)).copy()
        x, z = positions_a[:, :1], positions_a[:, 2:3]
        return np.asarray(base + z * np.cos(t)[None, :] + s * x * np.sin(t)[None, :])

    def flag(self) -> str:
        """The hand flag of this file as the program spells it."""
        g = self.geometry
        if self.program == "relion":
            return f"_rlnTomoHand {g.relion_hand:+d}"
        if self.program == "warp":
            return f'AreAnglesInverted="{g.warp_angles_inverted}"'
        if self.program == "imod":
            return "ctfphaseflip/ctfplotter " + (
                "-invert" if g.ctfphaseflip_invert else "without -invert"
            )
        if self.program == "aretomo":
            return f"AreTomo3 hand h = {g.hand:+d} (dfHand/-TiltAxis rule, design T12)"
        if self.program == "pytom":
            return f"--defocus-handedness {self.pytom_handedness:+d}"
        return f"canonical hand {g.hand:+d}"

    def flipped(self, value: int | None = None) -> AuditSource:
        """The same file with its hand flag toggled (pytom: set to ``value`` or negated)."""
        if self.program == "pytom":
            v = -int(self.pytom_handedness or 0) if value is None else int(value)
            return AuditSource(self.geometry, "pytom", self.label, v)
        return AuditSource(self.geometry.with_hand(-self.geometry.hand), self.program, self.label)


def _stem(name: str) -> str:
    base = re.split(r"[\\/]", name)[-1]
    base = re.sub(r"\.(mrc|mrcs|tif|tiff|eer|st|mrc:mrc)$", "", base, flags=re.I)
    return base


def load_source(
    path: str | os.PathLike[str],
    *,
    tomo_name: str | None = None,
    pixel_size_a: float | None = None,
    pytom_handedness: int | None = None,
) -> AuditSource:
    """Read a file by its extension into an :class:`AuditSource`.

    ``.xml`` Warp/M; ``.star`` RELION ``tomograms.star`` (``tomo_name`` when it holds several);
    ``.tlt`` IMOD (sibling ``.xf`` and ``*.defocus`` with the same stem are used when present,
    ``pixel_size_a`` needed for shifts); ``.aln`` AreTomo (sibling ``<stem>_CTF.txt`` when
    present). ``pytom_handedness`` turns a RELION/IMOD/AreTomo file into pytom-match-pick's
    reading of it with that ``--defocus-handedness``.
    """
    p = Path(path)
    ext = p.suffix.lower()
    if ext == ".xml":
        src = AuditSource(warp_xml.read_warp(p), "warp", str(p))
    elif ext == ".star":
        src = AuditSource(relion_tomo.read_relion(p, tomo_name), "relion", str(p))
    elif ext == ".tlt":
        xf = p.with_suffix(".xf")
        defs = sorted(p.parent.glob(p.stem + "*.defocus"))
        g = imod.read_imod(
            p,
            xf=xf if xf.exists() else None,
            defocus=defs[0] if defs else None,
            pixel_size_a=pixel_size_a,
        )
        src = AuditSource(g, "imod", str(p))
    elif ext == ".aln":
        ctf = p.with_name(p.stem + "_CTF.txt")
        g = aretomo.read_aretomo(p, ctf=ctf if ctf.exists() else None, pixel_size_a=pixel_size_a)
        src = AuditSource(g, "aretomo", str(p))
    else:
        raise InvalidValueError(
            f"path: cannot tell the program of {p.name!r} (expected .xml, .star, .tlt or .aln)"
        )
    if pytom_handedness is not None:
        src = AuditSource(src.geometry, "pytom", f"pytom reading {p}", int(pytom_handedness))
    return src


# ------------------------------------------------------------------------------ results
@dataclass(frozen=True)
class PairAudit:
    """Comparison of two sources (see :func:`audit`)."""

    a: str
    b: str
    agree: bool
    verdict: str
    fix: str | None
    position_rms_a: float
    position_max_a: float
    flipped_rms_a: float
    constant_rms_a: float
    projection_rms_a: float
    tilt_pairs: NDArray[np.int64]
    tilts_inverted: bool
    details: Mapping[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {
            "a": self.a,
            "b": self.b,
            "agree": self.agree,
            "verdict": self.verdict,
            "fix": self.fix,
            "position_dependent_rms_a": self.position_rms_a,
            "position_dependent_max_a": self.position_max_a,
            "with_b_flag_toggled_rms_a": self.flipped_rms_a,
            "per_tilt_defocus_difference_rms_a": self.constant_rms_a,
            "projection_residual_rms_a": self.projection_rms_a,
            "tilts_inverted": self.tilts_inverted,
            **{k: v for k, v in self.details.items()},
        }


@dataclass(frozen=True)
class AuditReport:
    """All pairwise comparisons and a majority verdict."""

    sources: tuple[str, ...]
    flags: tuple[str, ...]
    pairs: tuple[PairAudit, ...]
    agree: bool
    odd_ones_out: tuple[str, ...]
    advice: tuple[str, ...]

    def summary(self) -> dict[str, Any]:
        return {
            "agree": self.agree,
            "sources": [
                {"source": s, "flag": f} for s, f in zip(self.sources, self.flags, strict=True)
            ],
            "odd_ones_out": list(self.odd_ones_out),
            "advice": list(self.advice),
            "pairs": [p.summary() for p in self.pairs],
        }


# ------------------------------------------------------------------------------ helpers
def _match_tilts(ga: TiltGeometry, gb: TiltGeometry, tol: float) -> tuple[NDArray[np.int64], bool]:
    """Pairs (i_a, i_b) of the same tilt images, and whether B's angles are A's negated."""
    ta, tb = ga.tilt_deg, gb.tilt_deg
    if ga.names is not None and gb.names is not None:
        sa = {_stem(n): i for i, n in enumerate(ga.names)}
        sb = {_stem(n): i for i, n in enumerate(gb.names)}
        common = [k for k in sa if k in sb]
        if len(common) >= max(3, min(len(sa), len(sb)) // 2):
            pairs = np.array(sorted((sa[k], sb[k]) for k in common), dtype=np.int64)
            c = np.corrcoef(ta[pairs[:, 0]], tb[pairs[:, 1]])[0, 1]
            return pairs, bool(c < 0)
    if ta.size == tb.size:
        if np.max(np.abs(ta - tb)) < tol:
            return np.stack([np.arange(ta.size)] * 2, axis=1), False
        if np.max(np.abs(ta + tb)) < tol:
            return np.stack([np.arange(ta.size)] * 2, axis=1), True
    for sign in (1.0, -1.0):
        found: list[tuple[int, int]] = []
        for i, t in enumerate(ta):
            j = int(np.argmin(np.abs(sign * tb - t)))
            if abs(sign * tb[j] - t) < tol:
                found.append((i, j))
        if len(found) >= max(3, int(0.8 * min(ta.size, tb.size))) and len(
            {j for _, j in found}
        ) == len(found):
            return np.array(found, dtype=np.int64), sign < 0
    raise InvalidValueError(
        "audit: cannot tell which tilts of the two files are the same image (names differ, "
        f"tilt angles do not match within {tol} deg, even with inverted sign): "
        f"{ta.size} tilts [{ta.min():.1f}..{ta.max():.1f}] vs {tb.size} tilts "
        f"[{tb.min():.1f}..{tb.max():.1f}]"
    )


_MAX_GRID = 100  # 30 000 points: ~30 MB of projections for 60 tilts


def _grid(g: TiltGeometry, n_xy: int, half_thickness_a: float) -> NDArray[np.float64]:
    if g.volume_shape is not None and g.pixel_size_a is not None:
        half = 0.4 * min(g.volume_shape[0], g.volume_shape[1]) * g.pixel_size_a
    else:
        half = 2000.0
    v = np.linspace(-half, half, n_xy)
    z = np.array([-half_thickness_a, 0.0, half_thickness_a])
    xx, yy, zz = np.meshgrid(v, v, z, indexing="ij")
    return np.stack([xx.ravel(), yy.ravel(), zz.ravel()], axis=1)


def _map_points(
    pa: NDArray[np.float64], sa: AuditSource, sb: AuditSource, pairs: NDArray[np.int64]
) -> tuple[NDArray[np.float64], float]:
    """Positions in B's frame that project like ``pa`` does in A (least squares over tilts)."""
    qa = project(sa.geometry, pa)[:, pairs[:, 0], :]  # (N, P, 2)
    rb = sb.geometry.rotation_matrices()[pairs[:, 1], :2, :]  # (P, 2, 3)
    shb = sb.geometry.shifts_a[pairs[:, 1]]  # (P, 2)
    m = rb.reshape(-1, 3)
    rhs = (qa - shb[None]).reshape(qa.shape[0], -1).T  # (2P, N)
    sol, *_ = np.linalg.lstsq(m, rhs, rcond=None)
    pb = sol.T
    res = (m @ sol - rhs).T.reshape(qa.shape)
    # a constant image offset between the programs' shift conventions is not a geometry error
    res = res - res.mean(axis=0, keepdims=True)
    return pb, float(np.sqrt(np.mean(np.sum(res**2, axis=-1))))


def _compare(
    sa: AuditSource,
    sb: AuditSource,
    pa: NDArray[np.float64],
    pb: NDArray[np.float64],
    pairs: NDArray[np.int64],
) -> tuple[float, float, float, NDArray[np.float64]]:
    da = sa.defocus(pa)[:, pairs[:, 0]]
    db = sb.defocus(pb)[:, pairs[:, 1]]
    d = db - da
    const = d.mean(axis=0)
    pos = d - const[None, :]
    return (
        float(np.sqrt(np.mean(pos**2))),
        float(np.max(np.abs(pos))),
        float(np.sqrt(np.mean(const**2))),
        pos,
    )


def _best_toggle(
    sa: AuditSource,
    sb: AuditSource,
    pa: NDArray[np.float64],
    pb: NDArray[np.float64],
    pairs: NDArray[np.int64],
) -> tuple[AuditSource, float]:
    """B with its hand flag toggled (for pytom: every other setting) that best matches A."""
    candidates = (
        [sb.flipped()]
        if sb.program != "pytom"
        else [sb.flipped(v) for v in (-1, 1) if v != sb.pytom_handedness]
    )
    best: tuple[float, AuditSource] | None = None
    for cb in candidates:
        r2, _, _, _ = _compare(sa, cb, pa, pb, pairs)
        if best is None or r2 < best[0]:
            best = (r2, cb)
    assert best is not None
    return best[1], best[0]


def _pytom_verdict(
    sa: AuditSource,
    sb: AuditSource,
    fb: AuditSource,
    pa: NDArray[np.float64],
    pb: NDArray[np.float64],
    pairs: NDArray[np.int64],
    pos: NDArray[np.float64],
    rms_frms: tuple[float, float],
) -> tuple[str, str]:
    """Verdict and fix when pytom is involved and no setting reproduces the other file."""
    rms, frms = rms_frms
    zero = np.abs(pa[:, 2]) < 1e-9
    r0 = float(np.sqrt(np.mean(pos[zero] ** 2))) if np.any(zero) else math.nan
    _, _, _, fpos = _compare(sa, fb, pa, pb, pairs)
    f0 = float(np.sqrt(np.mean(fpos[zero] ** 2))) if np.any(zero) else math.nan
    verdict = (
        f"hand disagrees and no pytom --defocus-handedness reproduces the other file: "
        f"{sb.flag()} differs by {rms:.0f} Å rms; {fb.flag()} by {frms:.0f} Å rms "
        f"(at z = 0: {r0:.0f} / {f0:.0f} Å). pytom's +1 flips only the x-term of the depth "
        "(design note §2.6): it is exact for canonical h = +1 only at z = 0"
    )
    fix = f"for {sa.name} (h = {sa.geometry.hand:+d}) pytom needs " + (
        "--defocus-handedness -1"
        if sa.geometry.hand == -1
        else "--defocus-handedness +1 (approximate: exact only at z = 0) or 0"
    )
    return verdict, fix


def _pair(
    sa: AuditSource,
    sb: AuditSource,
    *,
    n_xy: int,
    half_thickness_a: float,
    tol_a: float,
    tilt_tol_deg: float,
) -> PairAudit:
    pairs, inverted = _match_tilts(sa.geometry, sb.geometry, tilt_tol_deg)
    pa = _grid(sa.geometry, n_xy, half_thickness_a)
    pb, proj_rms = _map_points(pa, sa, sb, pairs)
    rms, mx, const, pos = _compare(sa, sb, pa, pb, pairs)
    details: dict[str, Any] = {"flag_a": sa.flag(), "flag_b": sb.flag()}
    # typical depth-term magnitude, to scale the tolerance
    za = np.abs(sa.geometry.depth(pa)[:, pairs[:, 0]])
    scale = float(np.sqrt(np.mean(za**2)))
    tol = max(tol_a, 0.02 * scale)
    details["depth_term_rms_a"] = scale
    details["tolerance_a"] = tol

    def result(
        agree: bool, verdict: str, fix: str | None = None, frms: float = math.nan
    ) -> PairAudit:
        return PairAudit(
            sa.name, sb.name, agree, verdict, fix, rms, mx, frms, const, proj_rms, pairs,
            inverted, details,
        )  # fmt: skip

    if proj_rms > max(50.0, 0.02 * float(np.max(np.abs(pa[:, :2])))):
        return result(
            False,
            f"the two files do not describe the same projection geometry (image positions "
            f"differ by {proj_rms:.0f} Å rms after the best frame mapping): tilt angles or "
            "axes disagree, not only the hand",
        )
    if rms <= tol:
        verdict = f"agree: per-particle defocus matches to {rms:.1f} Å rms (position-dependent)"
        if const > 5 * tol:
            verdict += f"; the per-tilt defocus values differ by {const:.0f} Å rms (CTF fits)"
        return result(True, verdict)
    # toggle B's flag (and, for pytom, try every setting)
    fb, frms = _best_toggle(sa, sb, pa, pb, pairs)
    details["with_b_toggled_flag"] = fb.flag()
    if frms <= tol:
        fa = sa.flipped()
        fix = f"change {sb.name}: {sb.flag()} -> {fb.flag()}" + (
            f"  (or {sa.name}: {sa.flag()} -> {fa.flag()})" if sa.program != "pytom" else ""
        )
        verdict = (
            f"hand disagrees: per-particle defocus differs by {rms:.0f} Å rms (max {mx:.0f} Å, "
            f"= 2|z'|); toggling one hand flag makes them agree ({frms:.1f} Å)"
        )
        return result(False, verdict, fix, frms)
    # pytom +1: only the x-term can be matched
    if sb.program == "pytom" or sa.program == "pytom":
        verdict, fix = _pytom_verdict(sa, sb, fb, pa, pb, pairs, pos, (rms, frms))
        return result(False, verdict, fix, frms)
    verdict = (
        f"disagree: per-particle defocus differs by {rms:.0f} Å rms (max {mx:.0f} Å) and "
        f"toggling the hand leaves {frms:.0f} Å: tilt angles, axes or defocus slopes differ"
    )
    return result(False, verdict, None, frms)


# ------------------------------------------------------------------------------- audit
def audit(
    sources: Sequence[AuditSource | TiltGeometry | str | os.PathLike[str]],
    *,
    n_grid: int = 5,
    half_thickness_a: float = 750.0,
    tolerance_a: float = 20.0,
    tilt_tolerance_deg: float = 0.5,
    **load_kwargs: Any,
) -> AuditReport:
    """Compare two or more programs' files for the same tilt series.

    Parameters
    ----------
    sources : sequence of AuditSource, TiltGeometry or paths
        Paths are read with :func:`load_source` (``load_kwargs`` passed on); bare geometries
        count as ``program="canonical"``.
    n_grid : int
        Grid points per in-plane axis (positions span ±40 % of the tomogram, or ±2000 Å),
        2 to 100 (the grid has ``3·n_grid²`` points, each projected on every tilt).
    half_thickness_a : float
        The grid's z layers are ``−t, 0, +t`` Å (default 750 Å).
    tolerance_a : float
        Position-dependent defocus difference (rms, Å) still counted as agreement
        (at least 2 % of the depth-term rms).
    tilt_tolerance_deg : float
        For matching tilts by angle when the files carry no common image names.

    Returns
    -------
    AuditReport
        Pairwise verdicts, each with the flag to change when toggling one hand flag makes the
        two files agree; with three or more sources, the sources whose hand disagrees with the
        majority (``odd_ones_out``).
    """
    if isinstance(sources, str | os.PathLike | TiltGeometry | AuditSource):
        raise InvalidTypeError("sources: expected a sequence of two or more sources")
    # bounded before anything is allocated: 3·n_grid² points projected on every tilt
    n_grid = as_int(n_grid, "n_grid", low=2, high=_MAX_GRID)
    ht = as_float(half_thickness_a, "half_thickness_a", positive=True)
    tol = as_float(tolerance_a, "tolerance_a", positive=True)
    ttol = as_float(tilt_tolerance_deg, "tilt_tolerance_deg", positive=True)
    srcs: list[AuditSource] = []
    for i, s in enumerate(sources):
        if isinstance(s, AuditSource):
            srcs.append(s)
        elif isinstance(s, TiltGeometry):
            srcs.append(AuditSource(s, "canonical", s.source or f"geometry {i}"))
        elif isinstance(s, str | os.PathLike):
            srcs.append(load_source(s, **load_kwargs))
        else:
            raise InvalidTypeError(
                f"sources[{i}]: expected an AuditSource, a TiltGeometry or a path, "
                f"got {describe(s)}"
            )
    if len(srcs) < 2:
        raise InvalidValueError(f"sources: need at least two sources, got {len(srcs)}")
    pairs = []
    for i in range(len(srcs)):
        for j in range(i + 1, len(srcs)):
            pairs.append(
                _pair(
                    srcs[i], srcs[j], n_xy=n_grid, half_thickness_a=ht, tol_a=tol, tilt_tol_deg=ttol
                )
            )
    agree = all(p.agree for p in pairs)
    odd: list[str] = []
    advice: list[str] = []
    if not agree and len(srcs) >= 3:
        # how many others each source agrees with
        score = Counter({s.name: 0 for s in srcs})
        for p in pairs:
            if p.agree:
                score[p.a] += 1
                score[p.b] += 1
        best = max(score.values())
        if best > 0:
            odd = [s.name for s in srcs if score[s.name] < best]
            for s in srcs:
                if s.name in odd:
                    pa = next(
                        (
                            p
                            for p in pairs
                            if {p.a, p.b}
                            == {s.name, next(t.name for t in srcs if score[t.name] == best)}
                        ),
                        None,
                    )
                    if pa is not None and pa.fix is not None:
                        advice.append(f"{s.name} disagrees with the majority: {pa.fix}")
                    else:
                        advice.append(
                            f"{s.name} disagrees with the majority: {pa.verdict if pa else ''}"
                        )
    elif not agree:
        advice = [f"{p.a} vs {p.b}: {p.fix or p.verdict}" for p in pairs if not p.agree]
    return AuditReport(
        sources=tuple(s.name for s in srcs),
        flags=tuple(s.flag() for s in srcs),
        pairs=tuple(pairs),
        agree=agree,
        odd_ones_out=tuple(odd),
        advice=tuple(advice),
    )
