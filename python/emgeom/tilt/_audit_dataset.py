"""Consistency of a data set: do all tilt series of one project share hand and tilt axis?

:func:`audit_dataset` reads a RELION ``tomograms.star``, a folder of Warp XMLs, or a mapping of
geometries, and flags the series whose hand or axis (modulo 180°) differ from the majority.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from emgeom._validate import as_float, describe
from emgeom.errors import InvalidTypeError, InvalidValueError
from emgeom.io import relion_tomo, warp_xml
from emgeom.model.geometry import TiltGeometry

__all__ = ["DatasetAudit", "audit_dataset"]


# -------------------------------------------------------------------------- dataset
@dataclass(frozen=True)
class DatasetAudit:
    """Majority check over many tilt series (see :func:`audit_dataset`)."""

    names: tuple[str, ...]
    hands: NDArray[np.int64]
    axes_deg: NDArray[np.float64]
    majority_hand: int
    majority_axis_deg: float
    flagged: Mapping[str, str]

    @property
    def consistent(self) -> bool:
        return not self.flagged

    def summary(self) -> dict[str, Any]:
        return {
            "n_series": len(self.names),
            "majority_hand": self.majority_hand,
            "majority_axis_deg": self.majority_axis_deg,
            "consistent": self.consistent,
            "flagged": dict(self.flagged),
            "series": [
                {"name": n, "hand": int(h), "axis_deg": float(a)}
                for n, h, a in zip(self.names, self.hands, self.axes_deg, strict=True)
            ],
        }


def _wrap(a: NDArray[np.float64] | float) -> Any:
    return (np.asarray(a) + 180.0) % 360.0 - 180.0


def audit_dataset(
    geometries: Mapping[str, TiltGeometry] | str | os.PathLike[str],
    *,
    axis_tolerance_deg: float = 10.0,
) -> DatasetAudit:
    """Flag tilt series whose hand or tilt-axis angle disagrees with the data set's majority.

    Parameters
    ----------
    geometries : mapping name → TiltGeometry, a RELION ``tomograms.star``, or a folder of Warp
        XML files
    axis_tolerance_deg : float
        Allowed deviation of a series' median tilt axis from the majority (circular median).

    Notes
    -----
    Series of one data set share microscope, camera and processing, so their canonical hand
    and (to a few degrees) their tilt-axis angle should agree. An axis off by ~180° with the
    same hand means the in-plane rotation was imported inconsistently: that tomogram is
    point-inverted (``rotate_axis_180``, design T6) and its defocus hand is wrong relative to
    the others.
    """
    if isinstance(geometries, str | os.PathLike):
        p = Path(geometries)
        if p.is_dir():
            files = sorted(p.glob("*.xml"))
            if not files:
                raise InvalidValueError(f"geometries: no *.xml files in {p}")
            geos = {f.stem: warp_xml.read_warp(f) for f in files}
        else:
            geos = relion_tomo.read_relion_tomograms(p)
    elif isinstance(geometries, Mapping):
        geos = dict(geometries)
    else:
        raise InvalidTypeError(
            f"geometries: expected a mapping, a tomograms.star or a folder, got "
            f"{describe(geometries)}"
        )
    if len(geos) < 2:
        raise InvalidValueError(f"geometries: need at least two tilt series, got {len(geos)}")
    tol = as_float(axis_tolerance_deg, "axis_tolerance_deg", positive=True, high=90.0)
    names = tuple(geos)
    hands = np.array([geos[n].hand for n in names], dtype=np.int64)
    axes = np.array([float(np.median(_wrap(geos[n].axis_deg))) for n in names])
    c = Counter(hands.tolist())
    majority_hand = int(c.most_common(1)[0][0]) if c[1] != c[-1] else 0
    # circular median of the axes (minimise summed angular distance)
    cand = axes
    cost = [np.sum(np.abs(_wrap(axes - a))) for a in cand]
    maj_axis = float(cand[int(np.argmin(cost))])
    flagged: dict[str, str] = {}
    for n, h, a in zip(names, hands, axes, strict=True):
        msgs = []
        dev = float(_wrap(a - maj_axis))
        if abs(abs(dev) - 180.0) <= tol:
            msgs.append(
                f"tilt axis {a:.1f} deg is ~180 deg from the majority {maj_axis:.1f} deg: "
                "in-plane rotation imported inconsistently (tomogram point-inverted, defocus "
                "hand effectively flipped relative to the other series)"
            )
        elif abs(dev) > tol:
            msgs.append(
                f"tilt axis {a:.1f} deg differs from the majority {maj_axis:.1f} deg "
                f"by {dev:+.1f} deg"
            )
        if majority_hand != 0 and h != majority_hand:
            msgs.append(
                f"hand h = {h:+d} differs from the majority h = {majority_hand:+d} "
                f"(RELION rlnTomoHand {-h:+d} vs {-majority_hand:+d})"
            )
        if msgs:
            flagged[n] = "; ".join(msgs)
    if majority_hand == 0:
        flagged["(data set)"] = "no majority hand: as many series with h = +1 as with h = -1"
    return DatasetAudit(
        names=names,
        hands=hands,
        axes_deg=axes,
        majority_hand=majority_hand,
        majority_axis_deg=maj_axis,
        flagged=flagged,
    )
