"""The registry of named conventions: every program's way of writing a geometric quantity.

A :class:`Convention` is data: its name, the quantity it describes (``"anisomag"``,
``"tilt"``, ...), the program, what the stored numbers mean in words and as a formula
relative to emgeom's canonical form, its sources (program + file + function, or a document
URL), how confident we are, and the functions that convert to and from the canonical form.
Each entry has its own test in ``tests/test_conventions.py, tests/*/test_*_conventions.py``.

>>> from emgeom import conventions
>>> conventions.get("anisomag", "relion").sources[0].repository
'3dem/relion'
"""

from __future__ import annotations

# the entries register themselves when their module is imported: every quantity, eagerly
from emgeom.conventions import anisomag, serialem, similarity, tilt
from emgeom.conventions._registry import (
    Convention,
    Source,
    all_conventions,
    get,
    names,
    register,
)

__all__ = [
    "Convention",
    "Source",
    "all_conventions",
    "anisomag",
    "get",
    "names",
    "register",
    "serialem",
    "similarity",
    "tilt",
]
