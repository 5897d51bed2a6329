"""``emgeom demo``: run emgeom's capabilities on bundled sample data."""
from __future__ import annotations
