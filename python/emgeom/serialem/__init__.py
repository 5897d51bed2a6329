"""SerialEM Navigator geometry, montage maps and Realign to Item from Python.

- :class:`MapFrame`: the exact stage ↔ pixel transform of a Navigator map item.
- :func:`realign`: SerialEM's Realign to Item on a single-frame or montage map.
- :func:`lowdose_offset`: the Low Dose View/Search image-shift offset from two images.
- :func:`fit_stage_to_montage`, :func:`montage_map_item`: a montage's stage relation from its
  ``.mdoc`` and the map item SerialEM would make for it.

Files are read in :mod:`emgeom.io` (:func:`~emgeom.io.serialem_nav.read_nav`,
:func:`~emgeom.io.montage.read_montage`, :func:`~emgeom.io.mdoc.read_mdoc`); nothing here needs
SerialEM to be installed. Formulas and sources: docs/serialem.md.
"""

from emgeom.io.montage import Montage, read_montage
from emgeom.io.serialem_nav import Navigator, NavItem, read_nav, write_nav
from emgeom.serialem._frame import MapFrame, map_path
from emgeom.serialem._montage_map import StageFit, fit_stage_to_montage, montage_map_item
from emgeom.serialem._realign import LowDoseOffset, RealignResult, lowdose_offset, realign

__all__ = [
    "LowDoseOffset",
    "MapFrame",
    "Montage",
    "NavItem",
    "Navigator",
    "RealignResult",
    "StageFit",
    "fit_stage_to_montage",
    "lowdose_offset",
    "map_path",
    "montage_map_item",
    "read_montage",
    "read_nav",
    "realign",
    "write_nav",
]
